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
            report: None,
        };
    };
    let dkim = auth.verify_dkim(c.with(&msg)).await;
    let arc = auth.verify_arc(c.with(&msg)).await;
    let mail_from_domain = spf_domain.clone();
    let dmarc = auth
        .verify_dmarc(c.with(DmarcParameters::new(&msg, &dkim, &mail_from_domain, &spf)))
        .await;
    let from = msg.from.first().cloned().unwrap_or_default();
    let summary = Summary {
        spf: spf.result(),
        spf_domain,
        dkim: dkim.iter().map(|d| body_hash_is_fail(d.result())).collect(),
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
    let header = if dkim.is_empty() {
        with_dkim_none(header, a.hostname)
    } else {
        header.replace(
            "dkim=neutral (body hash did not verify)",
            "dkim=fail (body hash did not verify)",
        )
    };
    let decision = decide(policy, &summary);
    let report = report_row(&a, &decision, &dkim, &spf, &dmarc, &mail_from_domain);
    Checked {
        decision,
        header,
        report,
    }
}

/// The row for DMARC aggregate reports of a message whose author domain
/// publishes `rua=` (RFC 7489 §7.2); `None` otherwise and for a deferred
/// message (not decided yet). The policy domain is the author domain as
/// mail-auth 0.13.3 reports it, `pct` 100 (that version has no `pct`).
fn report_row(
    a: &Arrival<'_>,
    decision: &Decision,
    dkim: &[mail_auth::DkimOutput<'_>],
    spf: &mail_auth::SpfOutput,
    dmarc: &mail_auth::DmarcOutput,
    mail_from_domain: &str,
) -> Option<crate::inbound::report::ReportRow> {
    use crate::inbound::report as rep;
    let record = dmarc.dmarc_record().filter(|r| !r.rua().is_empty())?;
    let disposition = match decision {
        Decision::Defer(_) => return None,
        Decision::Reject(_) => rep::Disposition::Reject,
        Decision::Deliver { junk: true, .. } => rep::Disposition::Quarantine,
        Decision::Deliver { junk: false, .. } => rep::Disposition::None,
    };
    let align = |a: &mail_auth::dmarc::Alignment| match a {
        mail_auth::dmarc::Alignment::Strict => rep::Align::Strict,
        mail_auth::dmarc::Alignment::Relaxed => rep::Align::Relaxed,
    };
    let requested = |p: &mail_auth::dmarc::Policy| match p {
        mail_auth::dmarc::Policy::Reject => rep::Requested::Reject,
        mail_auth::dmarc::Policy::Quarantine => rep::Requested::Quarantine,
        mail_auth::dmarc::Policy::None | mail_auth::dmarc::Policy::Unspecified => {
            rep::Requested::None
        }
    };
    let domain = dmarc.domain().to_ascii_lowercase();
    let policy = rep::PublishedPolicy {
        domain: domain.clone(),
        adkim: align(&record.adkim),
        aspf: align(&record.aspf),
        p: requested(&record.p),
        sp: requested(&record.sp),
        pct: 100,
        rua: record
            .rua()
            .iter()
            // mail-auth keeps only `mailto:` URIs, without the scheme.
            .map(|u| rep::ReportUri {
                uri: format!("mailto:{}", u.uri()),
                max_size: u.max_size() as u64,
            })
            .collect(),
    };
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut row = rep::ReportRow::new(at, a.ip, domain, mail_from_domain, policy);
    row.disposition = disposition;
    row.dkim_aligned = matches!(dmarc.dkim_result(), DmarcResult::Pass);
    row.spf_aligned = matches!(dmarc.spf_result(), DmarcResult::Pass);
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
            mail_auth::SpfResult::Pass => rep::SpfVerdict::Pass,
            mail_auth::SpfResult::Fail => rep::SpfVerdict::Fail,
            mail_auth::SpfResult::SoftFail => rep::SpfVerdict::Softfail,
            mail_auth::SpfResult::Neutral => rep::SpfVerdict::Neutral,
            mail_auth::SpfResult::TempError => rep::SpfVerdict::Temperror,
            mail_auth::SpfResult::PermError => rep::SpfVerdict::Permerror,
            mail_auth::SpfResult::None => rep::SpfVerdict::None,
        },
    }];
    Some(row)
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

/// `dkim=none` stated when the message carries no signature (RFC 8601
/// §2.7.1), which mail-auth leaves out.
fn with_dkim_none(header: String, hostname: &str) -> String {
    let head = format!("Authentication-Results: {hostname}");
    match header.strip_prefix(&head) {
        Some(rest) => format!("{head};\r\n\tdkim=none{rest}"),
        None => header,
    }
}
