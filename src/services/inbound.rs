//! Inbound authentication at the MX: SPF for the HELO name and MAIL FROM
//! (RFC 7208), every DKIM signature (RFC 6376), the ARC chain (RFC 8617),
//! DMARC of the author domain (RFC 7489) and iprev (RFC 8601 §3) of a
//! message arriving from another server: DKIM, ARC and iprev through
//! mail-auth, SPF and DMARC by our own evaluators
//! ([`crate::inbound::spf`], [`crate::inbound::dmarc`]), all with the
//! server's resolver (hickory's cache keeps answers within their TTL, every
//! query is bounded by the resolver's timeout and the whole check by
//! [`CHECK_TIME`]). The results become the `Authentication-Results` field
//! and, under the configured policy ([`crate::inbound::decide`]), the fate
//! of the message.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{RData, RecordType};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimError;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, MX, MessageAuthenticator,
    Parameters, RecordSet, ResolverCache, SpfOutput, SpfResult, Txt,
};

use crate::dns::resolver::{self, Resolver};
use crate::inbound::dmarc::{self, Discovery, Evaluation, Identifier, Lookup, Outcome, Verdict};
use crate::inbound::spf;
use crate::inbound::{Decision, Summary, decide};
use crate::proto::smtp::reply::r;
use crate::tables::InboundPolicy;

/// The longest all checks of one message may take together. A sender
/// whose DNS is this slow is told to try again (451), as for any other DNS
/// failure.
pub const CHECK_TIME: Duration = Duration::from_secs(30);

/// Records the checks looked up, parsed, each kept until its TTL runs out
/// (mail-auth's own caches: a sender's DKIM key and the PTR of a client are
/// read from DNS and parsed once, not for every message). Bounded: at
/// [`CACHE_ENTRIES`] per kind, expired entries go, then everything.
#[derive(Default)]
pub struct Caches {
    txt: TtlCache<Box<str>, Txt>,
    mx: TtlCache<Box<str>, RecordSet<MX>>,
    ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
    ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
}

/// Entries per record kind in [`Caches`].
pub const CACHE_ENTRIES: usize = 10_000;

struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.map.lock().ok()?;
        match map.get(name) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.lock().ok()?.remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= CACHE_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (value, valid_until));
    }
}

type Cached<'x, P> = Parameters<
    'x,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

impl Caches {
    fn with<P>(&self, params: P) -> Cached<'_, P> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ptr_cache(&self.ptr)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
    }
}

/// What the checks concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub decision: Decision,
    /// The `Authentication-Results` field, CRLF-terminated (empty when the
    /// checks did not finish).
    pub header: String,
    /// For DMARC aggregate reports: the evaluation, when the author
    /// domain's record asks for them (`rua=`) and the message was decided.
    pub report: Option<crate::inbound::report::ReportRow>,
}

/// The SMTP facts the checks need besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// MAIL FROM; empty for the null sender.
    pub sender: &'a str,
    /// Our host name: the authserv-id, and SPF's `%{r}`.
    pub hostname: &'a str,
    /// Our domains (`inbound { dmarc own= }`).
    pub own_domains: &'a std::collections::BTreeMap<String, crate::tables::DomainTable>,
}

/// Runs the checks and applies `policy`.
pub async fn check(
    resolver: &Resolver,
    caches: &Caches,
    policy: &InboundPolicy,
    arrival: Arrival<'_>,
    message: &[u8],
) -> Checked {
    let checks = run(resolver, caches, policy, arrival, message);
    match tokio::time::timeout(CHECK_TIME, checks).await {
        Ok(checked) => checked,
        Err(_) => Checked {
            decision: Decision::Defer(r::auth_dns_error("the message")),
            header: String::new(),
            report: None,
        },
    }
}

async fn run(
    resolver: &Resolver,
    c: &Caches,
    policy: &InboundPolicy,
    a: Arrival<'_>,
    message: &[u8],
) -> Checked {
    let auth = MessageAuthenticator(resolver.hickory().clone());
    let helo = a.helo.trim_start_matches('[').trim_end_matches(']');
    let spf_domain = a
        .sender
        .rsplit_once('@')
        .map_or(helo, |(_, d)| d)
        .to_ascii_lowercase();
    let msg = AuthenticatedMessage::parse(message);
    // The checks that do not depend on each other wait for DNS together:
    // a message costs the slowest lookup chain, not the sum of them.
    let signatures = async {
        match &msg {
            Some(msg) => {
                let (dkim, arc) =
                    tokio::join!(auth.verify_dkim(c.with(msg)), auth.verify_arc(c.with(msg)));
                Some((dkim, arc))
            }
            None => None,
        }
    };
    let authors = msg
        .as_ref()
        .map(|m| author_domains(&m.from))
        .unwrap_or_default();
    let (spf_helo, spf, iprev, signatures, discovered) = tokio::join!(
        spf_helo(resolver, a.ip, helo),
        spf_mail_from(resolver, a.ip, helo, a.sender),
        auth.verify_iprev(c.with(a.ip)),
        signatures,
        policies(resolver, &authors)
    );
    let (Some(msg), Some((dkim, arc))) = (&msg, signatures) else {
        // No header mail-auth can read: nothing to verify but the SMTP
        // identities.
        let summary = Summary {
            spf: spf.result(),
            spf_domain,
            dkim: Vec::new(),
            dmarc: Verdict::None,
            dmarc_policy: dmarc::Policy::None,
            from_domain: String::new(),
            own_domain: false,
        };
        let header = AuthenticationResults::new(a.hostname)
            .with_spf_ehlo_result(&spf_helo, a.ip, helo)
            .with_spf_mailfrom_result(&spf, a.ip, a.sender, helo)
            .with_iprev_result(&iprev, a.ip)
            .to_header();
        return Checked {
            decision: decide(policy, &summary),
            header: with_dkim_none(header, a.hostname),
            report: None,
        };
    };
    let too_long = lengths_beyond_body(msg);
    let unreadable = unreadable_signatures(msg);
    let dmarc = dmarc_of(&authors, discovered, &spf, &spf_domain, &dkim);
    let from = msg.from.first().cloned().unwrap_or_default();
    let summary = Summary {
        spf: spf.result(),
        spf_domain: spf_domain.clone(),
        dkim: length_beyond_body_is_fail(
            dkim.iter()
                .map(|d| body_hash_is_fail(d.result()))
                .chain((0..unreadable).map(|_| DkimResult::Neutral(mail_auth::Error::ParseError)))
                .collect(),
            too_long,
        ),
        dmarc: dmarc.verdict,
        dmarc_policy: dmarc.disposition,
        own_domain: a.own_domains.contains_key(&dmarc.from_domain),
        from_domain: dmarc.from_domain.clone(),
    };
    let header = AuthenticationResults::new(a.hostname)
        .with_dkim_results(&dkim, &from)
        .with_spf_ehlo_result(&spf_helo, a.ip, helo)
        .with_spf_mailfrom_result(&spf, a.ip, a.sender, helo)
        .with_arc_result(&arc, a.ip)
        .to_header();
    // mail-auth writes no DMARC of ours: the `dmarc=` and `iprev=` parts
    // go after the others, in the order its writer had them.
    let iprev = AuthenticationResults::new("")
        .with_iprev_result(&iprev, a.ip)
        .to_string();
    let header = format!(
        "{};\r\n\t{}{iprev}\r\n",
        header.trim_end_matches("\r\n"),
        dmarc::auth_result(&dmarc)
    );
    let header = if dkim.is_empty() && unreadable == 0 {
        with_dkim_none(header, a.hostname)
    } else {
        header
            .replace(
                "dkim=neutral (body hash did not verify)",
                "dkim=fail (body hash did not verify)",
            )
            .replacen(LENGTH_IGNORED, LENGTH_BEYOND_BODY, too_long)
    };
    let header = with_unreadable(header, a.hostname, unreadable);
    let decision = decide(policy, &summary);
    let report = report_row(&a, &decision, &dkim, &spf, &dmarc, &spf_domain);
    Checked {
        decision,
        header,
        report,
    }
}

/// Most author domains DMARC is evaluated for in one message: a From
/// field with addresses of more domains than this is judged by the first.
const MAX_AUTHOR_DOMAINS: usize = 4;

/// The author domains of a message's From: addresses, lower case, at most
/// [`MAX_AUTHOR_DOMAINS`].
fn author_domains(from: &[String]) -> Vec<String> {
    let mut domains: Vec<String> = Vec::new();
    for addr in from {
        if let Some((_, d)) = addr.rsplit_once('@') {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !d.is_empty() && !domains.contains(&d) && domains.len() < MAX_AUTHOR_DOMAINS {
                domains.push(d);
            }
        }
    }
    domains
}

/// Policy discovery for every author domain, all at once.
async fn policies(resolver: &Resolver, domains: &[String]) -> Vec<Discovery> {
    let mut out = Vec::with_capacity(domains.len());
    // At most MAX_AUTHOR_DOMAINS: sequential per domain is bounded, and the
    // two lookups of each run together.
    for d in domains {
        out.push(discover(resolver, d).await);
    }
    out
}

/// DMARC (RFC 7489) of the message's author domains, from their discovered
/// policies. Several From addresses of different domains (§6.6.1) are each
/// evaluated; the first that does not pass is the verdict (so a second
/// author cannot hide a failing one), otherwise the first with a policy.
fn dmarc_of(
    domains: &[String],
    discovered: Vec<Discovery>,
    spf: &SpfOutput,
    spf_domain: &str,
    dkim: &[DkimOutput<'_>],
) -> Evaluation {
    let spf = Identifier {
        domain: spf_domain.to_string(),
        result: outcome_spf(spf.result()),
    };
    let dkim: Vec<Identifier> = dkim
        .iter()
        .filter_map(|d| {
            Some(Identifier {
                domain: d.signature()?.d.to_ascii_lowercase(),
                result: match d.result() {
                    DkimResult::Pass => Outcome::Pass,
                    DkimResult::TempError(_) => Outcome::TempError,
                    _ => Outcome::Other,
                },
            })
        })
        .collect();
    let mut first: Option<Evaluation> = None;
    for (domain, discovery) in domains.iter().zip(discovered) {
        let e = dmarc::evaluate(domain, discovery, &spf, &dkim, sample());
        if !matches!(e.verdict, Verdict::Pass | Verdict::None) {
            return e;
        }
        if first
            .as_ref()
            .is_none_or(|f| f.record.is_none() && e.record.is_some())
        {
            first = Some(e);
        }
    }
    first.unwrap_or_else(|| dmarc::evaluate("", Discovery::Nothing, &spf, &dkim, 0))
}

/// Policy discovery (RFC 7489 §6.6.3): `_dmarc.` the author domain, then,
/// if it has none, `_dmarc.` its organisational domain. Both are asked at
/// once (the second answer is only used when the first finds nothing): a
/// message waits for one round trip, and for one timeout when DNS is down.
async fn discover(resolver: &Resolver, domain: &str) -> Discovery {
    let lookup = |d: String| async move {
        match resolver::txt(resolver, &format!("_dmarc.{d}")).await {
            Ok(txts) => Lookup::Found(txts),
            Err(e) => Lookup::Error(e.to_string()),
        }
    };
    let org = dmarc::org_domain(domain);
    if org == domain {
        return dmarc::pick(domain, lookup(domain.to_string()).await).unwrap_or(Discovery::Nothing);
    }
    let (own, at_org) = tokio::join!(lookup(domain.to_string()), lookup(org.clone()));
    if let Some(found) = dmarc::pick(domain, own) {
        return found;
    }
    dmarc::pick(&org, at_org).unwrap_or(Discovery::Nothing)
}

fn outcome_spf(r: SpfResult) -> Outcome {
    match r {
        SpfResult::Pass => Outcome::Pass,
        SpfResult::TempError => Outcome::TempError,
        _ => Outcome::Other,
    }
}

/// A uniformly random number 0–99 for DMARC's `pct` sampling.
fn sample() -> u8 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    (u32::from_le_bytes(b) % 100) as u8
}

/// The row for DMARC aggregate reports of a message whose policy record
/// asks for them (`rua=`, RFC 7489 §7.2); `None` otherwise and for a
/// deferred message (not decided yet). The policy domain is where the
/// record was found (the author or the organisational domain).
fn report_row(
    a: &Arrival<'_>,
    decision: &Decision,
    dkim: &[DkimOutput<'_>],
    spf: &SpfOutput,
    dmarc: &Evaluation,
    mail_from_domain: &str,
) -> Option<crate::inbound::report::ReportRow> {
    use crate::inbound::report as rep;
    let record = dmarc.record.as_ref().filter(|r| !r.rua.is_empty())?;
    let disposition = match decision {
        Decision::Defer(_) => return None,
        Decision::Reject(_) => rep::Disposition::Reject,
        Decision::Deliver { junk: true, .. } => rep::Disposition::Quarantine,
        Decision::Deliver { junk: false, .. } => rep::Disposition::None,
    };
    let align = |a: dmarc::Alignment| match a {
        dmarc::Alignment::Strict => rep::Align::Strict,
        dmarc::Alignment::Relaxed => rep::Align::Relaxed,
    };
    let requested = |p: dmarc::Policy| match p {
        dmarc::Policy::Reject => rep::Requested::Reject,
        dmarc::Policy::Quarantine => rep::Requested::Quarantine,
        dmarc::Policy::None => rep::Requested::None,
    };
    let policy = rep::PublishedPolicy {
        domain: dmarc.policy_domain.clone(),
        adkim: align(record.adkim),
        aspf: align(record.aspf),
        p: requested(record.p),
        sp: requested(record.sp.unwrap_or(record.p)),
        pct: record.pct,
        rua: record
            .rua
            .iter()
            .map(|u| rep::ReportUri {
                uri: u.uri.clone(),
                max_size: u.max_size.unwrap_or(0),
            })
            .collect(),
    };
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut row = rep::ReportRow::new(
        at,
        a.ip,
        dmarc.from_domain.clone(),
        mail_from_domain,
        policy,
    );
    row.disposition = disposition;
    row.dkim_aligned = dmarc.dkim_aligned;
    row.spf_aligned = dmarc.spf_aligned;
    row.dkim = dkim
        .iter()
        .filter_map(|d| {
            let sig = d.signature()?;
            Some(rep::DkimAuth {
                domain: sig.d.to_ascii_lowercase(),
                selector: sig.s.clone(),
                result: match body_hash_is_fail(d.result()) {
                    DkimResult::Pass => rep::DkimVerdict::Pass,
                    DkimResult::Neutral(_) => rep::DkimVerdict::Neutral,
                    DkimResult::Fail(_) => rep::DkimVerdict::Fail,
                    DkimResult::PermError(_) => rep::DkimVerdict::Permerror,
                    DkimResult::TempError(_) => rep::DkimVerdict::Temperror,
                    DkimResult::None => rep::DkimVerdict::None,
                },
            })
        })
        .collect();
    row.spf = vec![rep::SpfAuth {
        domain: mail_from_domain.to_string(),
        scope: if a.sender.is_empty() {
            rep::SpfScope::Helo
        } else {
            rep::SpfScope::Mfrom
        },
        result: match spf.result() {
            SpfResult::Pass => rep::SpfVerdict::Pass,
            SpfResult::Fail => rep::SpfVerdict::Fail,
            SpfResult::SoftFail => rep::SpfVerdict::Softfail,
            SpfResult::Neutral => rep::SpfVerdict::Neutral,
            SpfResult::TempError => rep::SpfVerdict::Temperror,
            SpfResult::PermError => rep::SpfVerdict::Permerror,
            SpfResult::None => rep::SpfVerdict::None,
        },
    }];
    Some(row)
}

/// SPF of the MAIL FROM identity (RFC 7208 §2.4; for the null sender,
/// `postmaster@` the HELO name), as the MX evaluates it
/// ([`crate::inbound::spf`]). Public for the RFC 7208 test suite
/// (`tests/spf_suite.rs`).
pub async fn spf_mail_from(resolver: &Resolver, ip: IpAddr, helo: &str, sender: &str) -> SpfOutput {
    // RFC 7208 §2.4: the null sender is `postmaster@` the HELO name; §4.3:
    // an empty local part is `postmaster`.
    let sender = match sender.rsplit_once('@') {
        None if sender.is_empty() => format!("postmaster@{helo}"),
        Some(("", domain)) => format!("postmaster@{domain}"),
        _ => sender.to_string(),
    };
    let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
    let o = spf::check_host(&SpfDns(resolver), ip, domain, &sender, helo).await;
    SpfOutput::new(domain.to_string()).with_result(o.result)
}

/// SPF of the HELO identity (RFC 7208 §2.3).
async fn spf_helo(resolver: &Resolver, ip: IpAddr, helo: &str) -> SpfOutput {
    let sender = format!("postmaster@{helo}");
    let o = spf::check_host(&SpfDns(resolver), ip, helo, &sender, helo).await;
    SpfOutput::new(helo.to_string()).with_result(o.result)
}

/// SPF's lookups through the server's resolver.
struct SpfDns<'a>(&'a Resolver);

/// A name hickory cannot put into a query (e.g. one with a `:` or a
/// space, which a macro can produce) cannot exist for us: no match, not
/// a DNS error that would defer the mail.
fn askable(name: &str) -> bool {
    hickory_resolver::proto::rr::Name::from_ascii(name).is_ok()
}

fn answer<T>(
    r: Result<Option<Vec<RData>>, resolver::RouteError>,
    pick: impl Fn(&RData) -> Option<T>,
) -> spf::Answer<T> {
    match r {
        Err(_) => spf::Answer::Error,
        Ok(None) => spf::Answer::NotFound,
        Ok(Some(rs)) => {
            let v: Vec<T> = rs.iter().filter_map(pick).collect();
            if v.is_empty() {
                spf::Answer::NotFound
            } else {
                spf::Answer::Records(v)
            }
        }
    }
}

impl spf::Dns for SpfDns<'_> {
    async fn txt(&self, name: &str) -> spf::Answer<String> {
        if !askable(name) {
            return spf::Answer::NotFound;
        }
        answer(
            resolver::records(self.0, name, RecordType::TXT).await,
            |rd| match rd {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|p| String::from_utf8_lossy(p))
                        .collect::<String>(),
                ),
                _ => None,
            },
        )
    }

    async fn a(&self, name: &str) -> spf::Answer<Ipv4Addr> {
        if !askable(name) {
            return spf::Answer::NotFound;
        }
        answer(
            resolver::records(self.0, name, RecordType::A).await,
            |rd| match rd {
                RData::A(a) => Some(a.0),
                _ => None,
            },
        )
    }

    async fn aaaa(&self, name: &str) -> spf::Answer<Ipv6Addr> {
        if !askable(name) {
            return spf::Answer::NotFound;
        }
        answer(
            resolver::records(self.0, name, RecordType::AAAA).await,
            |rd| match rd {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            },
        )
    }

    async fn mx(&self, name: &str) -> spf::Answer<String> {
        if !askable(name) {
            return spf::Answer::NotFound;
        }
        let mut sorted = answer(
            resolver::records(self.0, name, RecordType::MX).await,
            |rd| match rd {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            },
        );
        match &mut sorted {
            spf::Answer::Records(v) => {
                v.sort();
                spf::Answer::Records(v.drain(..).map(|(_, n)| n).collect())
            }
            spf::Answer::NotFound => spf::Answer::NotFound,
            spf::Answer::Error => spf::Answer::Error,
        }
    }

    async fn ptr(&self, ip: IpAddr) -> spf::Answer<String> {
        let name = reverse_name(ip);
        answer(
            resolver::records(self.0, &name, RecordType::PTR).await,
            |rd| match rd {
                RData::PTR(p) => Some(p.0.to_ascii()),
                _ => None,
            },
        )
    }
}

/// `1.2.0.192.in-addr.arpa` / the nibbles of an IPv6 address in `ip6.arpa`.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 15, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// A body changed after signing is a signature that failed verification
/// (RFC 6376 §6.1.3, PERMFAIL "body hash did not verify"; RFC 8601
/// §2.7.1 `fail`); mail-auth 0.13.3 reports it as neutral.
fn body_hash_is_fail(result: &DkimResult) -> DkimResult {
    match result {
        DkimResult::Neutral(e @ mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            DkimResult::Fail(e.clone())
        }
        other => other.clone(),
    }
}

/// How mail-auth 0.13.3 reports every signature with `l=` (it verifies
/// none of them: content appended after `l=` bytes would pass).
const LENGTH_IGNORED: &str = "dkim=neutral (signature length ignored due to security risk)";
const LENGTH_BEYOND_BODY: &str = "dkim=fail (body shorter than l=)";

/// How many DKIM-Signature fields have an `l=` larger than the body: those
/// cannot verify (RFC 6376 §3.5, §6.1.3; dkimpy fails them too), a `fail`
/// rather than mail-auth's `neutral`. The canonical body is at most 2
/// bytes longer than the raw one (a missing final CRLF), so `l=` beyond
/// that is beyond any canonical form.
fn lengths_beyond_body(msg: &AuthenticatedMessage<'_>) -> usize {
    let body =
        msg.raw_message.len() as u64 - u64::from(msg.body_offset).min(msg.raw_message.len() as u64);
    msg.errors
        .iter()
        .filter(|e| matches!(e.header, mail_auth::Error::Dkim(DkimError::SignatureLength)))
        .filter_map(|e| mail_auth::dkim::Signature::parse(e.value).ok())
        .filter(|sig| sig.l > body + 2)
        .count()
}

/// The first `n` signatures mail-auth ignored for their `l=` become
/// failures (which of them does not matter: their results carry no
/// signature to tell them apart).
fn length_beyond_body_is_fail(mut results: Vec<DkimResult>, n: usize) -> Vec<DkimResult> {
    results
        .iter_mut()
        .filter(|r| {
            matches!(
                r,
                DkimResult::Neutral(mail_auth::Error::Dkim(DkimError::SignatureLength))
            )
        })
        .take(n)
        .for_each(|r| *r = DkimResult::Fail(mail_auth::Error::Dkim(DkimError::SignatureLength)));
    results
}

/// DKIM-Signature fields mail-auth 0.13.3 could not parse and left out of
/// its results (it reports only errors of its DKIM kind; a broken tag list
/// or base64 is dropped, and the message would read `dkim=none`). RFC 8601
/// §2.7.1: a signature with syntax errors is `neutral`.
fn unreadable_signatures(msg: &AuthenticatedMessage<'_>) -> usize {
    msg.errors
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(b"DKIM-Signature"))
        .filter(|e| !matches!(e.header, mail_auth::Error::Dkim(_)))
        .count()
}

/// One `dkim=neutral` per signature [`unreadable_signatures`] counted.
fn with_unreadable(header: String, hostname: &str, n: usize) -> String {
    let head = format!("Authentication-Results: {hostname}");
    match header.strip_prefix(&head) {
        Some(rest) if n > 0 => {
            let entries = ";\r\n\tdkim=neutral (signature syntax error)".repeat(n);
            format!("{head}{entries}{rest}")
        }
        _ => header,
    }
}

/// `dkim=none` stated when the message carries no signature (RFC 8601
/// §2.7.1), which mail-auth leaves out.
fn with_dkim_none(header: String, hostname: &str) -> String {
    let head = format!("Authentication-Results: {hostname}");
    match header.strip_prefix(&head) {
        Some(rest) => format!("{head};\r\n\tdkim=none{rest}"),
        None => header,
    }
}
