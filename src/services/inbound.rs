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
    let (spf_helo, spf, iprev, signatures) = tokio::join!(
        spf_helo(resolver, a.ip, helo),
        spf_mail_from(resolver, a.ip, helo, a.sender),
        auth.verify_iprev(c.with(a.ip)),
        signatures
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
        };
    };
    let dmarc = dmarc_of(resolver, &msg.from, &spf, &spf_domain, &dkim).await;
    let from = msg.from.first().cloned().unwrap_or_default();
    let summary = Summary {
        spf: spf.result(),
        spf_domain,
        dkim: dkim.iter().map(|d| body_hash_is_fail(d.result())).collect(),
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
    let header = if dkim.is_empty() {
        with_dkim_none(header, a.hostname)
    } else {
        header.replace(
            "dkim=neutral (body hash did not verify)",
            "dkim=fail (body hash did not verify)",
        )
    };
    Checked {
        decision: decide(policy, &summary),
        header,
    }
}

/// Most author domains DMARC is evaluated for in one message: a From
/// field with addresses of more domains than this is judged by the first.
const MAX_AUTHOR_DOMAINS: usize = 4;

/// DMARC (RFC 7489) of the message's author domains. Several From
/// addresses of different domains (§6.6.1) are each evaluated; the first
/// that does not pass is the verdict (so a second author cannot hide a
/// failing one), otherwise the first with a policy.
async fn dmarc_of(
    resolver: &Resolver,
    from: &[String],
    spf: &mail_auth::SpfOutput,
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
    let mut domains: Vec<String> = Vec::new();
    for addr in from {
        if let Some((_, d)) = addr.rsplit_once('@') {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !d.is_empty() && !domains.contains(&d) && domains.len() < MAX_AUTHOR_DOMAINS {
                domains.push(d);
            }
        }
    }
    let mut first: Option<Evaluation> = None;
    for domain in &domains {
        let discovery = discover(resolver, domain).await;
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
/// if it has none, `_dmarc.` its organisational domain.
async fn discover(resolver: &Resolver, domain: &str) -> Discovery {
    let lookup = |d: String| async move {
        match resolver::txt(resolver, &format!("_dmarc.{d}")).await {
            Ok(txts) => Lookup::Found(txts),
            Err(e) => Lookup::Error(e.to_string()),
        }
    };
    if let Some(found) = dmarc::pick(domain, lookup(domain.to_string()).await) {
        return found;
    }
    let org = dmarc::org_domain(domain);
    if org == domain {
        return Discovery::Nothing;
    }
    dmarc::pick(&org, lookup(org.clone()).await).unwrap_or(Discovery::Nothing)
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

/// `dkim=none` stated when the message carries no signature (RFC 8601
/// §2.7.1), which mail-auth leaves out.
fn with_dkim_none(header: String, hostname: &str) -> String {
    let head = format!("Authentication-Results: {hostname}");
    match header.strip_prefix(&head) {
        Some(rest) => format!("{head};\r\n\tdkim=none{rest}"),
        None => header,
    }
}
