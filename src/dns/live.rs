//! `mailc plan`: wanted records against live DNS, like `terraform plan`.
//!
//! Every wanted name and type is queried (UDP and TCP, each query bounded
//! in time), RRsets are compared by meaning (SPF terms, DMARC and DKIM tags,
//! MX and SRV sets), and common mistakes in live DNS are reported.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use serde::Serialize;

use super::{Data, DnsError, Zone};

/// How long one query may take before the plan fails.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Add,
    Change,
    Remove,
    Same,
}

impl Action {
    pub fn sign(self) -> char {
        match self {
            Action::Add => '+',
            Action::Change => '~',
            Action::Remove => '-',
            Action::Same => '=',
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub action: Action,
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    /// Record data as in a zone file.
    pub wanted: Vec<String>,
    pub live: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub name: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainPlan {
    pub domain: String,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Format version of this JSON.
    pub format: u32,
    pub resolver: String,
    pub in_sync: bool,
    pub summary: Summary,
    pub domains: Vec<DomainPlan>,
    /// Key rollovers in progress or ready (DANE TLSA, DKIM selectors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollovers: Vec<Rollover>,
}

/// A key rollover as a plan (RFC 7671 §8.1 for TLSA, the same shape for
/// DKIM selectors): publish next → wait TTL → switch → retire.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rollover {
    /// `DANE _25._tcp.mail.example.org`, `DKIM example.org`.
    pub what: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    /// `publish-next`, `wait-ttl`, `switch`, `retire`.
    pub step: &'static str,
    pub state: StepState,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Done,
    /// What to do now.
    Now,
    /// After an earlier step.
    Pending,
}

impl StepState {
    fn word(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Now => "NOW",
            StepState::Pending => "later",
        }
    }
}

fn short(hex: &str) -> String {
    format!("{}…", &hex[..hex.len().min(12)])
}

/// What the state directory knows of the DANE rollover
/// ([`super::rollover`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaneState {
    /// When the next key was first seen published (unix seconds).
    pub first_seen: Option<u64>,
    /// The longest TTL of the TLSA RRset seen live (0: none seen); the
    /// wait is this or mailc's own TTL, whichever is longer.
    pub ttl_seen: u32,
    /// The last switch done.
    pub switch: Option<super::rollover::Switch>,
    pub now: u64,
}

/// The DANE rollover's state from the TLSA data live at `_25._tcp.<host>`
/// (`live`: lower-case hex of the `3 1 1` records) and what the state
/// directory recorded. Right after a switch (the current key is the one
/// switched to, and the fresh next key has not yet been live for the
/// TTL) the switch shows done and the old record is to be retired; then
/// the next cycle starts.
pub fn dane_rollover(keys: &super::dane::TlsaKeys, live: &[String], state: &DaneState) -> Rollover {
    use super::rollover::{Readiness, readiness};
    let has = |h: &Option<String>| h.as_ref().is_some_and(|h| live.contains(h));
    let next_live = has(&keys.next);
    let ttl = super::rollover::wait_for(state.ttl_seen);
    let ready = match readiness(state.first_seen.filter(|_| next_live), state.now, ttl) {
        Readiness::Ready { .. } => true,
        Readiness::NotPublished | Readiness::Waiting { .. } => false,
    };
    let switched = state
        .switch
        .as_ref()
        .filter(|s| Some(&s.to) == keys.current.as_ref() && !ready);
    let stale: Vec<&String> = live
        .iter()
        .filter(|l| Some(*l) != keys.current.as_ref() && Some(*l) != keys.next.as_ref())
        .collect();
    let mut steps = Vec::new();
    steps.push(Step {
        step: "publish-next",
        state: if next_live {
            StepState::Done
        } else {
            StepState::Now
        },
        detail: match &keys.next {
            Some(h) if next_live => format!("next key {} is published", short(h)),
            Some(h) => format!("publish TLSA 3 1 1 {h} (see `mailc dns`)"),
            None => "no next key yet: `mailc dns` or `mailc serve` makes one".into(),
        },
    });
    let wait = match (next_live, state.first_seen) {
        (false, _) => (
            StepState::Pending,
            format!(
                "after publishing, wait at least the TTL ({ttl}s) plus the longest cache time of the senders' resolvers before switching"
            ),
        ),
        (true, Some(since)) if ready => (
            StepState::Done,
            format!(
                "published for {}s (TTL {ttl}s)",
                state.now.saturating_sub(since)
            ),
        ),
        (true, Some(since)) => (
            StepState::Now,
            format!(
                "first seen published {}s ago; wait {}s more (TTL {ttl}s)",
                state.now.saturating_sub(since),
                (since + ttl).saturating_sub(state.now)
            ),
        ),
        (true, None) => (
            StepState::Now,
            format!("wait at least the TTL ({ttl}s) from now before switching"),
        ),
    };
    steps.push(Step {
        step: "wait-ttl",
        state: wait.0,
        detail: wait.1,
    });
    steps.push(match switched {
        Some(s) => Step {
            step: "switch",
            state: StepState::Done,
            detail: format!(
                "serving a certificate on key {} since {}s ago",
                short(&s.to),
                state.now.saturating_sub(s.at)
            ),
        },
        None => Step {
            step: "switch",
            state: if ready && has(&keys.current) {
                StepState::Now
            } else {
                StepState::Pending
            },
            detail: if !has(&keys.current) {
                "the current key is NOT published: DANE senders cannot deliver until it is".into()
            } else if ready {
                "`mailc tls rollover CONFIG`: serve a certificate on the next key; a new next key is then made".into()
            } else {
                "`mailc tls rollover CONFIG` once the wait is over: serve a certificate on the next key; a new next key is then made".into()
            },
        },
    });
    steps.push(Step {
        step: "retire",
        state: if stale.is_empty() {
            StepState::Done
        } else {
            StepState::Now
        },
        detail: if stale.is_empty() {
            "no stale TLSA record".into()
        } else {
            format!(
                "remove the stale TLSA 3 1 1 {}",
                stale
                    .iter()
                    .map(|s| short(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    });
    Rollover {
        what: format!("DANE _25._tcp.{}", keys.host),
        steps,
    }
}

/// The TLSA RRset live at `_25._tcp.<host>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveTlsa {
    /// The `3 1 1` data (lower-case hex).
    pub data: Vec<String>,
    /// The RRset's TTL as the resolver gave it (0 when there is none): a
    /// cache may keep the RRset without the next key this long, so the
    /// rollover waits at least this.
    pub ttl: u32,
}

impl LiveTlsa {
    pub fn contains(&self, data: &str) -> bool {
        self.data.iter().any(|d| d == data)
    }
}

/// The live `3 1 1` TLSA data at `_25._tcp.<host>`, with the RRset's TTL.
pub async fn live_tlsa(r: &TokioResolver, host: &str) -> Result<LiveTlsa, DnsError> {
    let name = format!("_25._tcp.{}", lower_fqdn(host));
    let (records, ttl) = query_with_ttl(r, &name, RecordType::TLSA).await?;
    let data = records
        .iter()
        .filter_map(live_data)
        .filter_map(|d| match d {
            Data::Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data,
            } => Some(data),
            _ => None,
        })
        .collect();
    Ok(LiveTlsa { data, ttl })
}

/// DKIM selector rollovers seen in a plan, per domain: a configured
/// selector not yet published while another is (publish next), a selector
/// whose key the configuration no longer names still published (retire).
/// Domains with nothing in progress have none.
pub fn dkim_rollovers(plan: &Plan) -> Vec<Rollover> {
    let mut out = Vec::new();
    for d in &plan.domains {
        let dkim: Vec<&Change> = d
            .changes
            .iter()
            .filter(|c| c.name.contains("._domainkey.") && c.rtype == "TXT")
            .collect();
        let selector = |c: &Change| c.name.split('.').next().unwrap_or_default().to_string();
        let new: Vec<String> = dkim
            .iter()
            .filter(|c| matches!(c.action, Action::Add | Action::Change))
            .map(|c| selector(c))
            .collect();
        let live: Vec<String> = dkim
            .iter()
            .filter(|c| c.action == Action::Same)
            .map(|c| selector(c))
            .collect();
        let old: Vec<String> = dkim
            .iter()
            .filter(|c| c.action == Action::Remove)
            .map(|c| selector(c))
            .collect();
        if (new.is_empty() || live.is_empty()) && old.is_empty() {
            continue;
        }
        let steps = vec![
            Step {
                step: "publish-next",
                state: if new.is_empty() {
                    StepState::Done
                } else {
                    StepState::Now
                },
                detail: if new.is_empty() {
                    format!("selectors published: {}", live.join(", "))
                } else {
                    format!("publish selector {} (see `mailc dns`)", new.join(", "))
                },
            },
            Step {
                step: "wait-ttl",
                state: if new.is_empty() {
                    StepState::Done
                } else {
                    StepState::Pending
                },
                detail: format!(
                    "wait at least the TTL ({}s) after publishing before signing with it alone",
                    super::TTL
                ),
            },
            Step {
                step: "switch",
                state: if new.is_empty() {
                    StepState::Done
                } else {
                    StepState::Pending
                },
                detail: "remove the old selector from the domain's `dkim` list: mail is then signed with the new one only".into(),
            },
            Step {
                step: "retire",
                state: if old.is_empty() {
                    StepState::Pending
                } else {
                    StepState::Now
                },
                detail: if old.is_empty() {
                    "after the switch, remove the old selector's record once mail signed with it has been delivered (days)".into()
                } else {
                    format!("remove the record of retired selector {}", old.join(", "))
                },
            },
        ];
        out.push(Rollover {
            what: format!("DKIM {}", d.domain),
            steps,
        });
    }
    out
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
    pub same: usize,
    pub problems: usize,
}

/// Resolver pointed at `server` (or the system's resolvers).
pub fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, DnsError> {
    let mut opts = ResolverOpts::default();
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.ndots = 0;
    let builder = match server {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            let config = ResolverConfig::from_name_servers(vec![ns]);
            Resolver::builder_with_config(
                config,
                hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
            )
        }
        None => Resolver::builder_tokio().map_err(|e| DnsError::SystemResolver(e.to_string()))?,
    };
    builder
        .with_options(opts)
        .build()
        .map_err(|e| DnsError::Resolver(e.to_string()))
}

/// Answers of one query, as zone-file text; empty for NXDOMAIN/NODATA.
async fn query(r: &TokioResolver, name: &str, rtype: RecordType) -> Result<Vec<RData>, DnsError> {
    Ok(query_with_ttl(r, name, rtype).await?.0)
}

/// Answers of one query and their longest TTL (0 without answers).
async fn query_with_ttl(
    r: &TokioResolver,
    name: &str,
    rtype: RecordType,
) -> Result<(Vec<RData>, u32), DnsError> {
    let lookup = tokio::time::timeout(
        QUERY_TIMEOUT + Duration::from_secs(1),
        r.lookup(name, rtype),
    )
    .await;
    match lookup {
        Err(_) => Err(DnsError::Timeout {
            name: name.to_string(),
            rtype: rtype.to_string(),
            seconds: QUERY_TIMEOUT.as_secs() + 1,
        }),
        Ok(Ok(l)) => {
            let answers = l.answers().iter().filter(|rec| rec.record_type() == rtype);
            let ttl = answers.clone().map(|rec| rec.ttl).max().unwrap_or(0);
            Ok((answers.map(|rec| rec.data.clone()).collect(), ttl))
        }
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Ok((Vec::new(), 0)),
        Ok(Err(e)) => Err(DnsError::Query {
            name: name.to_string(),
            rtype: rtype.to_string(),
            reason: e.to_string(),
        }),
    }
}

fn txt_of(data: &RData) -> Option<String> {
    match data {
        RData::TXT(t) => Some(
            t.txt_data
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<String>(),
        ),
        _ => None,
    }
}

fn lower_fqdn(s: &str) -> String {
    let s = s.to_ascii_lowercase();
    if s.ends_with('.') { s } else { format!("{s}.") }
}

/// `k=v; k=v` tags, keys lower-cased, values trimmed.
fn tags(text: &str) -> BTreeMap<String, String> {
    text.split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn spf_terms(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect()
}

fn dmarc_norm(text: &str) -> Option<BTreeMap<String, String>> {
    let mut t = tags(text);
    if t.get("v").map(String::as_str) != Some("DMARC1") {
        return None;
    }
    let p = t.get("p")?.to_ascii_lowercase();
    if !["none", "quarantine", "reject"].contains(&p.as_str()) {
        return None;
    }
    t.entry("sp".into()).or_insert_with(|| p.clone());
    t.entry("pct".into()).or_insert_with(|| "100".into());
    t.entry("adkim".into()).or_insert_with(|| "r".into());
    t.entry("aspf".into()).or_insert_with(|| "r".into());
    for k in ["rua", "ruf"] {
        if let Some(v) = t.get_mut(k) {
            *v = v
                .split(',')
                .map(|u| u.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(",");
        }
    }
    t.retain(|k, _| ["v", "p", "sp", "pct", "adkim", "aspf", "rua", "ruf"].contains(&k.as_str()));
    Some(t)
}

fn dkim_norm(text: &str) -> (String, String) {
    let t = tags(text);
    let k = t
        .get("k")
        .cloned()
        .unwrap_or_else(|| "rsa".into())
        .to_ascii_lowercase();
    let p: String = t
        .get("p")
        .cloned()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    (k, p)
}

/// The semantic key of a record, so that equal meaning compares equal.
fn meaning(name: &str, data: &Data) -> String {
    match data {
        Data::Mx { preference, host } => format!("{preference} {}", lower_fqdn(host)),
        Data::A(ip) => ip.to_string(),
        Data::Aaaa(ip) => ip.to_string(),
        Data::Cname(t) => lower_fqdn(t),
        Data::Srv {
            priority,
            weight,
            port,
            target,
        } => format!("{priority} {weight} {port} {}", lower_fqdn(target)),
        Data::Txt(t) => txt_meaning(name, t),
        Data::Tlsa {
            usage,
            selector,
            matching,
            data,
        } => format!(
            "{usage} {selector} {matching} {}",
            data.to_ascii_lowercase()
        ),
    }
}

fn txt_meaning(name: &str, t: &str) -> String {
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("v=spf1") {
        return spf_terms(t).join(" ");
    }
    if name.starts_with("_dmarc.") {
        return match dmarc_norm(t) {
            Some(m) => format!("{m:?}"),
            None => format!("malformed: {t}"),
        };
    }
    if name.contains("._domainkey.") {
        return format!("{:?}", dkim_norm(t));
    }
    format!("{:?}", tags(t))
}

fn live_data(data: &RData) -> Option<Data> {
    Some(match data {
        RData::MX(mx) => Data::Mx {
            preference: mx.preference,
            host: mx.exchange.to_ascii(),
        },
        RData::A(a) => Data::A(a.0),
        RData::AAAA(a) => Data::Aaaa(a.0),
        RData::CNAME(c) => Data::Cname(c.0.to_ascii()),
        RData::SRV(s) => Data::Srv {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: s.target.to_ascii(),
        },
        RData::TXT(_) => Data::Txt(txt_of(data)?),
        RData::TLSA(t) => Data::Tlsa {
            usage: u8::from(t.cert_usage),
            selector: u8::from(t.selector),
            matching: u8::from(t.matching),
            data: t.cert_data.iter().map(|b| format!("{b:02x}")).collect(),
        },
        _ => return None,
    })
}

fn rtype_of(d: &Data) -> RecordType {
    match d {
        Data::Mx { .. } => RecordType::MX,
        Data::A(_) => RecordType::A,
        Data::Aaaa(_) => RecordType::AAAA,
        Data::Txt(_) => RecordType::TXT,
        Data::Srv { .. } => RecordType::SRV,
        Data::Cname(_) => RecordType::CNAME,
        Data::Tlsa { .. } => RecordType::TLSA,
    }
}

/// Of the TXT records at a name, the ones the wanted record competes with.
fn same_kind(name: &str, wanted: &str, live: &str) -> bool {
    let w = wanted.to_ascii_lowercase();
    let l = live.trim().to_ascii_lowercase();
    if w.starts_with("v=spf1") {
        return l.starts_with("v=spf1");
    }
    if name.contains("._domainkey.") {
        return true;
    }
    match w.split(';').next() {
        Some(v) if v.starts_with("v=") => l.replace(' ', "").starts_with(&v.replace(' ', "")),
        _ => true,
    }
}

fn show(data: &Data) -> String {
    super::zone::data_text(data)
}

/// Compares wanted zones with live DNS.
pub async fn plan(
    zones: &[Zone],
    retired: &[(String, String)],
    r: &TokioResolver,
    resolver_name: &str,
) -> Result<Plan, DnsError> {
    let mut domains = Vec::new();
    let mut summary = Summary::default();
    for zone in zones {
        let domain = plan_zone(zone, retired, r).await?;
        summary.count(&domain);
        domains.push(domain);
    }
    Ok(Plan {
        format: 1,
        resolver: resolver_name.to_string(),
        in_sync: summary.add + summary.change + summary.remove == 0,
        summary,
        domains,
        rollovers: Vec::new(),
    })
}

impl Summary {
    fn count(&mut self, domain: &DomainPlan) {
        for c in &domain.changes {
            match c.action {
                Action::Add => self.add += 1,
                Action::Change => self.change += 1,
                Action::Remove => self.remove += 1,
                Action::Same => self.same += 1,
            }
        }
        self.problems += domain.problems.len();
    }
}

/// One zone: each wanted RRset against its live counterpart, then the
/// retired DKIM selectors still published.
async fn plan_zone(
    zone: &Zone,
    retired: &[(String, String)],
    r: &TokioResolver,
) -> Result<DomainPlan, DnsError> {
    let mut plan = DomainPlan {
        domain: zone.origin.clone(),
        changes: Vec::new(),
        problems: Vec::new(),
    };
    for ((name, rt), wanted) in &wanted_rrsets(zone) {
        plan_rrset(r, name, rt, wanted, &mut plan).await?;
    }
    plan_retired_selectors(r, zone, retired, &mut plan.changes).await?;
    Ok(plan)
}

/// Wanted records grouped by (name, type), in name order.
fn wanted_rrsets(zone: &Zone) -> BTreeMap<(String, String), Vec<&Data>> {
    let mut groups: BTreeMap<(String, String), Vec<&Data>> = BTreeMap::new();
    for rec in &zone.records {
        groups
            .entry((rec.name.clone(), rec.data.rtype().to_string()))
            .or_default()
            .push(&rec.data);
    }
    groups
}

/// One wanted RRset: what to do about it, and what is wrong with the live one.
async fn plan_rrset(
    r: &TokioResolver,
    name: &str,
    rt: &str,
    wanted: &[&Data],
    plan: &mut DomainPlan,
) -> Result<(), DnsError> {
    let live = live_competitors(r, name, wanted[0]).await?;
    let action = decide_action(name, rt, wanted, &live, plan);
    live_problems(r, name, rt, wanted, &live, action, &mut plan.problems).await?;
    plan.changes.push(Change {
        action,
        name: name.to_string(),
        rtype: rt.to_string(),
        wanted: wanted.iter().map(|d| show(d)).collect(),
        live: live.iter().map(show).collect(),
        note: None,
    });
    Ok(())
}

/// The live records at `name` that compete with `first_wanted`: all of its
/// type, or for TXT only those of the same kind (SPF, DMARC, ...).
async fn live_competitors(
    r: &TokioResolver,
    name: &str,
    first_wanted: &Data,
) -> Result<Vec<Data>, DnsError> {
    let live = query(r, name, rtype_of(first_wanted))
        .await?
        .iter()
        .filter_map(live_data)
        .collect::<Vec<Data>>();
    Ok(match first_wanted {
        Data::Txt(w) => live
            .into_iter()
            .filter(|l| matches!(l, Data::Txt(t) if same_kind(name, w, t)))
            .collect(),
        _ => live,
    })
}

/// Add, change or leave the RRset; several live SPF, DMARC or DKIM records
/// also yield a problem and the removal of the extra ones.
fn decide_action(
    name: &str,
    rt: &str,
    wanted: &[&Data],
    live: &[Data],
    plan: &mut DomainPlan,
) -> Action {
    let want_set: BTreeSet<String> = wanted.iter().map(|d| meaning(name, d)).collect();
    let single_txt = matches!(wanted[0], Data::Txt(_));
    if live.is_empty() {
        Action::Add
    } else if single_txt && live.len() > 1 {
        remove_duplicates(name, rt, live, &want_set, plan)
    } else if want_set
        == live
            .iter()
            .map(|d| meaning(name, d))
            .collect::<BTreeSet<_>>()
    {
        Action::Same
    } else {
        Action::Change
    }
}

/// Two SPF or DMARC records are an error in themselves: keep the right one
/// (if any), remove the rest.
fn remove_duplicates(
    name: &str,
    rt: &str,
    live: &[Data],
    want_set: &BTreeSet<String>,
    plan: &mut DomainPlan,
) -> Action {
    let kind = if name.starts_with("_dmarc.") {
        "DMARC"
    } else if name.contains("._domainkey.") {
        "DKIM"
    } else {
        "SPF"
    };
    plan.problems.push(Problem {
        name: name.to_string(),
        message: format!(
            "{} {kind} records: receivers treat this as an error (RFC 7208 §4.5, RFC 7489 §6.6.3)",
            live.len()
        ),
    });
    let keep = live
        .iter()
        .position(|l| want_set.contains(&meaning(name, l)));
    for (i, l) in live.iter().enumerate() {
        if Some(i) != keep && (keep.is_some() || i > 0) {
            plan.changes.push(Change {
                action: Action::Remove,
                name: name.to_string(),
                rtype: rt.to_string(),
                wanted: Vec::new(),
                live: vec![show(l)],
                note: Some(format!("duplicate {kind} record")),
            });
        }
    }
    if keep.is_some() {
        Action::Same
    } else {
        Action::Change
    }
}

/// Common mistakes in the live RRset: a DKIM key that differs from ours,
/// malformed DMARC, MX targets that break delivery, SPF over its lookup limit.
async fn live_problems(
    r: &TokioResolver,
    name: &str,
    rt: &str,
    wanted: &[&Data],
    live: &[Data],
    action: Action,
    problems: &mut Vec<Problem>,
) -> Result<(), DnsError> {
    if name.contains("._domainkey.") && action == Action::Change {
        problems.push(Problem {
            name: name.to_string(),
            message: "the published DKIM key does not match the local key: signatures will fail"
                .into(),
        });
    }
    if name.starts_with("_dmarc.") {
        malformed_dmarc(name, live, problems);
    }
    if rt == "MX" {
        for l in live {
            if let Data::Mx { host, .. } = l {
                check_mx_target(r, host, problems).await?;
            }
        }
    }
    let wants_spf = wanted
        .iter()
        .any(|w| matches!(w, Data::Txt(t) if t.starts_with("v=spf1")));
    if rt == "TXT" && wants_spf {
        spf_over_lookup_limit(r, name, live, problems).await?;
    }
    Ok(())
}

fn malformed_dmarc(name: &str, live: &[Data], problems: &mut Vec<Problem>) {
    for l in live {
        if let Data::Txt(t) = l
            && dmarc_norm(t).is_none()
        {
            problems.push(Problem {
                name: name.to_string(),
                message: format!("malformed DMARC record \"{t}\" (needs v=DMARC1 and a valid p=)"),
            });
        }
    }
}

async fn spf_over_lookup_limit(
    r: &TokioResolver,
    name: &str,
    live: &[Data],
    problems: &mut Vec<Problem>,
) -> Result<(), DnsError> {
    for l in live {
        if let Data::Txt(t) = l {
            let mut budget = 30;
            let n = spf_lookups(r, t, 0, &mut budget).await?;
            if n > 10 {
                problems.push(Problem {
                    name: name.to_string(),
                    message: format!("the SPF record needs {n} DNS lookups; more than 10 is a permanent error (RFC 7208 §4.6.4)"),
                });
            }
        }
    }
    Ok(())
}

/// Stale records mailc owns: retired DKIM selectors still published.
async fn plan_retired_selectors(
    r: &TokioResolver,
    zone: &Zone,
    retired: &[(String, String)],
    changes: &mut Vec<Change>,
) -> Result<(), DnsError> {
    for (domain, sel) in retired.iter().filter(|(d, _)| *d == zone.origin) {
        let name = format!("{sel}._domainkey.{domain}.");
        let live = query(r, &name, RecordType::TXT).await?;
        if !live.is_empty() {
            changes.push(Change {
                action: Action::Remove,
                name,
                rtype: "TXT".into(),
                wanted: Vec::new(),
                live: live
                    .iter()
                    .filter_map(txt_of)
                    .map(|t| super::zone::txt_strings(&t))
                    .collect(),
                note: Some(
                    "retired DKIM selector (its key file is still in the state directory)".into(),
                ),
            });
        }
    }
    Ok(())
}

async fn check_mx_target(
    r: &TokioResolver,
    host: &str,
    problems: &mut Vec<Problem>,
) -> Result<(), DnsError> {
    let cname = query(r, host, RecordType::CNAME).await?;
    if !cname.is_empty() {
        problems.push(Problem {
            name: host.to_string(),
            message:
                "the MX target is a CNAME; MX must name a host with A/AAAA records (RFC 2181 §10.3)"
                    .into(),
        });
        return Ok(());
    }
    let a = query(r, host, RecordType::A).await?;
    let aaaa = query(r, host, RecordType::AAAA).await?;
    if a.is_empty() && aaaa.is_empty() {
        problems.push(Problem {
            name: host.to_string(),
            message:
                "the MX target has no A or AAAA record: mail for this domain cannot be delivered"
                    .into(),
        });
    }
    Ok(())
}

/// DNS lookups an SPF record causes (RFC 7208 §4.6.4), following includes
/// and redirects; `budget` bounds the queries this check makes.
fn spf_lookups<'a>(
    r: &'a TokioResolver,
    text: &'a str,
    depth: u32,
    budget: &'a mut u32,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, DnsError>> + 'a>> {
    Box::pin(async move {
        let mut n = 0;
        for term in text.split_whitespace().skip(1) {
            let t = term
                .trim_start_matches(['+', '-', '~', '?'])
                .to_ascii_lowercase();
            let (mech, arg) = match t.find([':', '=']) {
                Some(i) => (&t[..i], Some(&t[i + 1..])),
                None => (t.as_str(), None),
            };
            match mech {
                "a" | "mx" | "ptr" | "exists" => n += 1,
                "include" | "redirect" => {
                    n += 1;
                    if let Some(domain) = arg
                        && depth < 10
                        && *budget > 0
                    {
                        *budget -= 1;
                        for rd in query(r, domain, RecordType::TXT).await? {
                            if let Some(txt) = txt_of(&rd)
                                && txt.to_ascii_lowercase().starts_with("v=spf1")
                            {
                                n += spf_lookups(r, &txt, depth + 1, budget).await?;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(n)
    })
}

/// The plan as text (what `mailc plan` prints).
pub fn render(plan: &Plan, verbose: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "mailc plan: {} to add, {} to change, {} to remove, {} in sync (resolver {})",
        s.add, s.change, s.remove, s.same, plan.resolver
    );
    for d in &plan.domains {
        let shown: Vec<&Change> = d
            .changes
            .iter()
            .filter(|c| verbose || c.action != Action::Same)
            .collect();
        if shown.is_empty() && d.problems.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", d.domain);
        let width = shown.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in shown {
            let text = match c.action {
                Action::Add => c.wanted.join(" | "),
                Action::Remove => c.live.join(" | "),
                Action::Same => c.wanted.join(" | "),
                Action::Change => format!("{}  →  {}", c.live.join(" | "), c.wanted.join(" | ")),
            };
            let note = c
                .note
                .as_ref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {:width$}  {:<5} {text}{note}",
                c.action.sign(),
                c.name,
                c.rtype
            );
        }
        for p in &d.problems {
            let _ = writeln!(out, "  ! {}: {}", p.name, p.message);
        }
    }
    for r in &plan.rollovers {
        let _ = writeln!(out, "\nrollover {}", r.what);
        for (i, s) in r.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {}. {:<12} {:<5}  {}",
                i + 1,
                s.step,
                s.state.word(),
                s.detail
            );
        }
    }
    if plan.in_sync {
        let _ = writeln!(out, "\nDNS is in sync with the configuration.");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dane::TlsaKeys;

    fn keys(current: Option<&str>, next: Option<&str>) -> TlsaKeys {
        TlsaKeys {
            host: "mail.example.test".into(),
            current: current.map(str::to_string),
            next: next.map(str::to_string),
        }
    }

    fn states(r: &Rollover) -> Vec<(&'static str, StepState)> {
        r.steps.iter().map(|s| (s.step, s.state)).collect()
    }

    #[test]
    fn dane_rollover_states_follow_what_is_live() {
        use StepState::*;
        let k = keys(Some("c"), Some("n"));
        let fresh = DaneState {
            now: 10_000,
            ..DaneState::default()
        };
        // Only the current key live: publish the next one now.
        let r = dane_rollover(&k, &["c".into()], &fresh);
        assert_eq!(
            states(&r),
            vec![
                ("publish-next", Now),
                ("wait-ttl", Pending),
                ("switch", Pending),
                ("retire", Done)
            ]
        );
        assert!(r.steps[0].detail.contains("publish TLSA 3 1 1 n"));
        // Both live, seen 100 s ago: wait, then switch.
        let seen = DaneState {
            first_seen: Some(9_900),
            ..fresh.clone()
        };
        let r = dane_rollover(&k, &["c".into(), "n".into()], &seen);
        assert_eq!(r.steps[0].state, Done);
        assert_eq!(r.steps[1].state, Now);
        assert!(r.steps[1].detail.contains("wait 3500s more"), "{r:?}");
        assert_eq!(r.steps[2].state, Pending);
        // Live for the TTL: switch now.
        let waited = DaneState {
            first_seen: Some(10_000 - 3600),
            ..fresh.clone()
        };
        let r = dane_rollover(&k, &["c".into(), "n".into()], &waited);
        assert_eq!(r.steps[1].state, Done);
        assert_eq!(r.steps[2].state, Now);
        assert!(r.steps[2].detail.contains("mailc tls rollover"));
        // The zone's RRset has a longer TTL than mailc's: that is the wait.
        let long = DaneState {
            ttl_seen: 7200,
            ..waited.clone()
        };
        let r = dane_rollover(&k, &["c".into(), "n".into()], &long);
        assert_eq!(r.steps[1].state, Now);
        assert!(
            r.steps[1].detail.contains("wait 3600s more (TTL 7200s)"),
            "{r:?}"
        );
        assert_eq!(r.steps[2].state, Pending);
        // A key that is neither: retire it.
        let r = dane_rollover(&k, &["c".into(), "n".into(), "old".into()], &seen);
        assert_eq!(r.steps[3].state, Now);
        assert!(r.steps[3].detail.contains("old"));
        // The current key missing from DNS is said loudly.
        let r = dane_rollover(&k, &["n".into()], &waited);
        assert!(r.steps[2].detail.contains("NOT published"));
        assert_eq!(r.steps[2].state, Pending);
        // No next key yet.
        let r = dane_rollover(&keys(Some("c"), None), &["c".into()], &fresh);
        assert_eq!(r.steps[0].state, Now);
        assert!(r.steps[0].detail.contains("no next key"));
        assert_eq!(r.what, "DANE _25._tcp.mail.example.test");
    }

    /// After `mailc tls rollover`: "n" is served, "n2" is the new next
    /// key; the switch shows done and the old record "c" is to go.
    #[test]
    fn after_a_switch_it_is_done_and_the_old_record_retires() {
        use StepState::*;
        let after = keys(Some("n"), Some("n2"));
        let state = DaneState {
            first_seen: None,
            ttl_seen: 0,
            switch: Some(crate::dns::rollover::Switch {
                from: Some("c".into()),
                to: "n".into(),
                at: 9_000,
            }),
            now: 10_000,
        };
        let r = dane_rollover(&after, &["c".into(), "n".into()], &state);
        assert_eq!(
            states(&r),
            vec![
                ("publish-next", Now),
                ("wait-ttl", Pending),
                ("switch", Done),
                ("retire", Now)
            ]
        );
        assert!(r.steps[3].detail.contains("c…"), "{r:?}");
        // Old record gone, new next published and waited for: the next
        // cycle's switch is due.
        let later = DaneState {
            first_seen: Some(10_000),
            now: 20_000,
            ..state
        };
        let r = dane_rollover(&after, &["n".into(), "n2".into()], &later);
        assert_eq!(
            states(&r),
            vec![
                ("publish-next", Done),
                ("wait-ttl", Done),
                ("switch", Now),
                ("retire", Done)
            ]
        );
    }

    fn change(action: Action, selector: &str) -> Change {
        Change {
            action,
            name: format!("{selector}._domainkey.example.test."),
            rtype: "TXT".into(),
            wanted: vec![],
            live: vec![],
            note: None,
        }
    }

    fn plan_with(changes: Vec<Change>) -> Plan {
        Plan {
            format: 1,
            resolver: "test".into(),
            in_sync: false,
            summary: Summary::default(),
            domains: vec![DomainPlan {
                domain: "example.test".into(),
                changes,
                problems: vec![],
            }],
            rollovers: vec![],
        }
    }

    #[test]
    fn dkim_rollovers_only_when_one_is_under_way() {
        use StepState::*;
        // Nothing under way: all published, or a first publication.
        assert!(dkim_rollovers(&plan_with(vec![change(Action::Same, "s1")])).is_empty());
        assert!(dkim_rollovers(&plan_with(vec![change(Action::Add, "s1")])).is_empty());
        // A new selector beside a published one: publish it now.
        let r = dkim_rollovers(&plan_with(vec![
            change(Action::Same, "s1"),
            change(Action::Add, "s2"),
        ]));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].what, "DKIM example.test");
        assert_eq!(
            states(&r[0]),
            vec![
                ("publish-next", Now),
                ("wait-ttl", Pending),
                ("switch", Pending),
                ("retire", Pending)
            ]
        );
        assert!(r[0].steps[0].detail.contains("s2"));
        // A retired selector still published: retire it now.
        let r = dkim_rollovers(&plan_with(vec![
            change(Action::Same, "s2"),
            change(Action::Remove, "s1"),
        ]));
        assert_eq!(r[0].steps[3].state, Now);
        assert!(r[0].steps[3].detail.contains("s1"));
    }
}
