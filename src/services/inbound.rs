//! Inbound authentication at the MX: SPF for the HELO name and MAIL FROM
//! (RFC 7208), every DKIM signature (RFC 6376), the ARC chain (RFC 8617),
//! DMARC of the author domain (RFC 7489) and iprev (RFC 8601 §3) of a
//! message arriving from another server, through mail-auth with the
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

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MX, MessageAuthenticator,
    Parameters, RecordSet, ResolverCache, Txt,
};

use crate::dns::resolver::Resolver;
use crate::inbound::{Decision, Summary, decide};
use crate::proto::smtp::reply::r;
use crate::tables::InboundPolicy;

/// The longest all checks of one message may take together. A sender
/// whose DNS is this slow is told to try again (451), as for any other DNS
/// failure.
pub const CHECK_TIME: Duration = Duration::from_secs(30);

/// Records the checks looked up, parsed, each kept until its TTL runs out
/// (mail-auth's own caches: a sender's SPF, DKIM key and DMARC policy are
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
    let spf_helo = auth
        .verify_spf(c.with(SpfParameters::verify_ehlo(a.ip, helo, a.hostname)))
        .await;
    let spf = spf_mail_from(&auth, c, a.ip, helo, a.sender, a.hostname).await;
    let spf_domain = a
        .sender
        .rsplit_once('@')
        .map_or(helo, |(_, d)| d)
        .to_ascii_lowercase();
    let iprev = auth.verify_iprev(c.with(a.ip)).await;
    let Some(msg) = AuthenticatedMessage::parse(message) else {
        // No header mail-auth can read: nothing to verify but the SMTP
        // identities.
        let summary = Summary {
            spf: spf.result(),
            spf_domain,
            dkim: Vec::new(),
            dmarc: DmarcResult::None,
            dmarc_policy: mail_auth::dmarc::Policy::Unspecified,
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
    let dkim = auth.verify_dkim(c.with(&msg)).await;
    let too_long = lengths_beyond_body(&msg);
    let unreadable = unreadable_signatures(&msg);
    let arc = auth.verify_arc(c.with(&msg)).await;
    let mail_from_domain = spf_domain.clone();
    let dmarc = auth
        .verify_dmarc(c.with(DmarcParameters::new(&msg, &dkim, &mail_from_domain, &spf)))
        .await;
    let from = msg.from.first().cloned().unwrap_or_default();
    let summary = Summary {
        spf: spf.result(),
        spf_domain,
        dkim: length_beyond_body_is_fail(
            dkim.iter()
                .map(|d| body_hash_is_fail(d.result()))
                .chain((0..unreadable).map(|_| DkimResult::Neutral(mail_auth::Error::ParseError)))
                .collect(),
            too_long,
        ),
        dmarc: dmarc.result(),
        dmarc_policy: dmarc.policy(),
        from_domain: dmarc.domain().to_string(),
        own_domain: a
            .own_domains
            .contains_key(&dmarc.domain().to_ascii_lowercase()),
    };
    let header = AuthenticationResults::new(a.hostname)
        .with_dkim_results(&dkim, &from)
        .with_spf_ehlo_result(&spf_helo, a.ip, helo)
        .with_spf_mailfrom_result(&spf, a.ip, a.sender, helo)
        .with_arc_result(&arc, a.ip)
        .with_dmarc_result(&dmarc)
        .with_iprev_result(&iprev, a.ip)
        .to_header();
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
    Checked {
        decision: decide(policy, &summary),
        header,
    }
}

/// SPF of the MAIL FROM identity (RFC 7208 §2.4; for the null sender,
/// `postmaster@` the HELO name), as the MX evaluates it. Public for the
/// RFC 7208 test suite (`tests/spf_suite.rs`).
pub async fn spf_mail_from(
    auth: &MessageAuthenticator,
    caches: &Caches,
    ip: IpAddr,
    helo: &str,
    sender: &str,
    hostname: &str,
) -> mail_auth::SpfOutput {
    // RFC 7208 §2.4: the null sender is `postmaster@` the HELO name; §4.3:
    // an empty local part is `postmaster`.
    let sender = match sender.rsplit_once('@') {
        None if sender.is_empty() => format!("postmaster@{helo}"),
        Some(("", domain)) => format!("postmaster@{domain}"),
        _ => sender.to_string(),
    };
    auth.verify_spf(caches.with(SpfParameters::verify_mail_from(ip, helo, hostname, &sender)))
        .await
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
