//! TLS reports (RFC 8460) about our outbound sessions, as pure code: the
//! stored form of one [`TlsAttempt`] (a JSON line), the aggregation of a
//! period's attempts per recipient domain and policy (§4.4: totals of
//! successful and failed sessions, failure details grouped by result type,
//! sending and receiving addresses and MX host), the JSON report, the
//! report mail (§5.3: `multipart/report; report-type="tlsrpt"`, the
//! gzip'd JSON as `application/tlsrpt+gzip`), and the recipient domain's
//! `_smtp._tls` TXT record (§3). Storage and sending live in
//! `services::tls_reports`.
//!
//! Memory is bounded: at most [`MAX_DOMAINS_PER_PERIOD`] domains,
//! [`MAX_POLICIES_PER_DOMAIN`] policies per domain and
//! [`MAX_DETAILS_PER_POLICY`] failure-detail rows per policy; attempts
//! beyond still count in the totals (or, past the domain limit, are
//! counted as dropped).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::tlsrpt::{FailureType, Outcome, PolicyType, TlsAttempt};

pub const MAX_DOMAINS_PER_PERIOD: usize = 10_000;
pub const MAX_POLICIES_PER_DOMAIN: usize = 100;
pub const MAX_DETAILS_PER_POLICY: usize = 1_000;
/// `rua` destinations used per domain (RFC 8460 does not limit them; a
/// record listing many must not make us send many).
pub const MAX_DESTINATIONS_PER_DOMAIN: usize = 2;
/// Longest `additional-information` kept (a verifier's error text).
pub const MAX_REASON: usize = 200;

/// One attempt as stored: a JSON line in the period's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Row {
    /// Unix time of the attempt.
    pub at: u64,
    pub domain: String,
    /// RFC 8460 `policy-type`.
    pub policy: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_strings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx_patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<IpAddr>,
    /// `None`: success; else the RFC 8460 result type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Row {
    pub fn new(at: u64, a: &TlsAttempt) -> Row {
        let (failure, reason) = match &a.outcome {
            Outcome::Success => (None, None),
            Outcome::Failure { kind, reason } => (
                Some(kind.as_str().to_string()),
                reason.as_ref().map(|r| truncate(r, MAX_REASON)),
            ),
        };
        Row {
            at,
            domain: a.domain.trim_end_matches('.').to_ascii_lowercase(),
            policy: a.policy.as_str().to_string(),
            policy_strings: a.policy_strings.clone(),
            mx_patterns: a.mx_patterns.clone(),
            mx_host: a
                .mx_host
                .as_ref()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
            sending_ip: a.sending_ip,
            receiving_ip: a.receiving_ip,
            failure,
            reason,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The result type named in a row, if it is one RFC 8460 defines.
pub fn failure_type(name: &str) -> Option<FailureType> {
    use FailureType as F;
    [
        F::StarttlsNotSupported,
        F::CertificateHostMismatch,
        F::CertificateExpired,
        F::CertificateNotTrusted,
        F::ValidationFailure,
        F::TlsaInvalid,
        F::DnssecInvalid,
        F::DaneRequired,
        F::StsPolicyFetchError,
        F::StsPolicyInvalid,
        F::StsWebpkiInvalid,
    ]
    .into_iter()
    .find(|f| f.as_str() == name)
}

/// A policy as §4.4 identifies it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PolicyKey {
    policy_type: String,
    strings: Vec<String>,
    mx_patterns: Vec<String>,
}

/// One `failure-details` row's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DetailKey {
    result_type: String,
    sending_ip: Option<IpAddr>,
    mx_host: Option<String>,
    receiving_ip: Option<IpAddr>,
    reason: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct PolicyTotals {
    success: u64,
    failure: u64,
    details: BTreeMap<DetailKey, u64>,
}

/// A period's attempts, per recipient domain and policy.
#[derive(Debug, Default)]
pub struct Aggregator {
    domains: BTreeMap<String, BTreeMap<PolicyKey, PolicyTotals>>,
    /// Attempts not counted (a domain past [`MAX_DOMAINS_PER_PERIOD`], a
    /// policy past [`MAX_POLICIES_PER_DOMAIN`], an unknown result type).
    pub dropped: u64,
}

impl Aggregator {
    pub fn add(&mut self, row: Row) {
        if !matches!(row.policy.as_str(), "tlsa" | "sts" | "no-policy-found")
            || row
                .failure
                .as_deref()
                .is_some_and(|f| failure_type(f).is_none())
        {
            self.dropped += 1;
            return;
        }
        if !self.domains.contains_key(&row.domain) && self.domains.len() >= MAX_DOMAINS_PER_PERIOD {
            self.dropped += 1;
            return;
        }
        let policies = self.domains.entry(row.domain).or_default();
        let key = PolicyKey {
            policy_type: row.policy,
            strings: row.policy_strings,
            mx_patterns: row.mx_patterns,
        };
        if !policies.contains_key(&key) && policies.len() >= MAX_POLICIES_PER_DOMAIN {
            self.dropped += 1;
            return;
        }
        let totals = policies.entry(key).or_default();
        match row.failure {
            None => totals.success += 1,
            Some(result_type) => {
                totals.failure += 1;
                let d = DetailKey {
                    result_type,
                    sending_ip: row.sending_ip,
                    mx_host: row.mx_host,
                    receiving_ip: row.receiving_ip,
                    reason: row.reason,
                };
                if totals.details.len() < MAX_DETAILS_PER_POLICY || totals.details.contains_key(&d)
                {
                    *totals.details.entry(d).or_default() += 1;
                }
            }
        }
    }

    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }

    /// Successful and failed sessions counted for `domain`.
    pub fn totals(&self, domain: &str) -> (u64, u64) {
        self.domains.get(domain).map_or((0, 0), |p| {
            p.values()
                .fold((0, 0), |(s, f), t| (s + t.success, f + t.failure))
        })
    }

    /// The RFC 8460 §4.4 JSON report about `domain` for `[begin, end)`.
    pub fn report(&self, reporter: &Reporter, domain: &str, begin: u64, end: u64) -> Option<Value> {
        let policies = self.domains.get(domain)?;
        let policies: Vec<Value> = policies
            .iter()
            .map(|(k, t)| policy_json(domain, k, t))
            .collect();
        Some(json!({
            "organization-name": reporter.org_name,
            "date-range": {
                "start-datetime": rfc3339(begin),
                "end-datetime": rfc3339(end),
            },
            "contact-info": reporter.contact,
            "report-id": report_id(&reporter.submitter, domain, begin, end),
            "policies": policies,
        }))
    }
}

fn policy_json(domain: &str, k: &PolicyKey, t: &PolicyTotals) -> Value {
    let mut policy = Map::new();
    policy.insert("policy-type".into(), json!(k.policy_type));
    if !k.strings.is_empty() {
        policy.insert("policy-string".into(), json!(k.strings));
    }
    policy.insert("policy-domain".into(), json!(domain));
    if !k.mx_patterns.is_empty() {
        policy.insert("mx-host".into(), json!(k.mx_patterns));
    }
    let mut out = Map::new();
    out.insert("policy".into(), Value::Object(policy));
    out.insert(
        "summary".into(),
        json!({
            "total-successful-session-count": t.success,
            "total-failure-session-count": t.failure,
        }),
    );
    if !t.details.is_empty() {
        let details: Vec<Value> = t
            .details
            .iter()
            .map(|(d, n)| {
                let mut m = Map::new();
                m.insert("result-type".into(), json!(d.result_type));
                if let Some(ip) = d.sending_ip {
                    m.insert("sending-mta-ip".into(), json!(ip.to_string()));
                }
                if let Some(h) = &d.mx_host {
                    m.insert("receiving-mx-hostname".into(), json!(h));
                }
                if let Some(ip) = d.receiving_ip {
                    m.insert("receiving-ip".into(), json!(ip.to_string()));
                }
                m.insert("failed-session-count".into(), json!(n));
                if let Some(r) = &d.reason {
                    m.insert("additional-information".into(), json!(r));
                }
                Value::Object(m)
            })
            .collect();
        out.insert("failure-details".into(), Value::Array(details));
    }
    Value::Object(out)
}

/// Who sends the reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// `organization-name`.
    pub org_name: String,
    /// `contact-info`: the From address.
    pub contact: String,
    /// `TLS-Report-Submitter` and the first part of the file name: the
    /// domain of the From address.
    pub submitter: String,
}

/// Unique per submitter, domain and period; the same on a resend, so a
/// receiver can drop a duplicate.
pub fn report_id(submitter: &str, domain: &str, begin: u64, end: u64) -> String {
    format!("{begin}-{end}.{domain}@{submitter}")
}

/// `2026-12-03T00:00:00Z`.
pub fn rfc3339(unix: u64) -> String {
    let (y, m, d) = crate::proto::smtp::headers::civil_from_days((unix / 86_400) as i64);
    let s = unix % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The report's JSON, gzip'd (the body of the attachment and of an https
/// POST).
pub fn gzip_json(report: &Value) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(report).map_err(std::io::Error::other)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)?;
    gz.finish()
}

/// §5.1 file name: `submitter!policy-domain!begin!end!unique.json.gz`;
/// `unique` is `1*(ALPHA / DIGIT)`: hex of a hash of the report-id.
pub fn file_name(submitter: &str, domain: &str, begin: u64, end: u64) -> String {
    let id = report_id(submitter, domain, begin, end);
    let unique: String = sha256(id.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{submitter}!{domain}!{begin}!{end}!{unique}.json.gz")
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// The report mail (§5.3): From/To, `TLS-Report-Domain`,
/// `TLS-Report-Submitter`, the Subject §5.3 gives, a text part and the
/// gzip'd JSON as `application/tlsrpt+gzip`. `date` is the Unix time of
/// the Date header. DKIM signing is the queue's (submission path).
pub fn message(
    reporter: &Reporter,
    domain: &str,
    begin: u64,
    end: u64,
    gzipped: &[u8],
    to: &str,
    date: u64,
) -> Vec<u8> {
    let id = report_id(&reporter.submitter, domain, begin, end);
    let boundary = format!(
        "tlsrpt-{}",
        crate::proto::sasl::base64_encode(&sha256(id.as_bytes())[..12]).replace(['+', '/'], "_")
    );
    let name = file_name(&reporter.submitter, domain, begin, end);
    let mut m = String::new();
    let mut h = |k: &str, v: &str| {
        m.push_str(k);
        m.push_str(": ");
        m.push_str(v);
        m.push_str("\r\n");
    };
    h("From", &format!("<{}>", reporter.contact));
    h("To", &format!("<{to}>"));
    h("Date", &crate::proto::smtp::headers::rfc5322_date(date));
    h(
        "Subject",
        &format!(
            "Report Domain: {domain} Submitter: {} Report-ID: <{id}>",
            reporter.submitter
        ),
    );
    h("Message-ID", &format!("<{id}>"));
    h("TLS-Report-Domain", domain);
    h("TLS-Report-Submitter", &reporter.submitter);
    h("Auto-Submitted", "auto-generated");
    h("MIME-Version", "1.0");
    h(
        "Content-Type",
        &format!("multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"{boundary}\""),
    );
    m.push_str("\r\n");
    m.push_str("This is a TLS report (RFC 8460).\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=\"us-ascii\"\r\n");
    m.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
    m.push_str(&format!(
        "This is an aggregate TLS report from {}\r\nabout mail sent to {domain}\r\nfrom {} to {}.\r\n\r\n",
        reporter.org_name,
        rfc3339(begin),
        rfc3339(end)
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: application/tlsrpt+gzip\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment;\r\n\tfilename=\"{name}\"\r\n\r\n"
    ));
    let b64 = crate::proto::sasl::base64_encode(gzipped);
    for line in b64.as_bytes().chunks(76) {
        m.push_str(&String::from_utf8_lossy(line));
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// Where one `rua` URI sends a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Mail(String),
    /// `https://host[:port]/path`: a POST of the gzip'd JSON.
    Https {
        host: String,
        port: u16,
        path: String,
    },
    /// Not `mailto:` or `https:`, or malformed.
    Unsupported(String),
}

/// The `rua` URIs of a domain's `_smtp._tls` TXT records (§3): exactly one
/// record starting `v=TLSRPTv1;` must remain after the others are
/// discarded, else the domain does not do TLS-RPT (empty).
pub fn rua_from_txt(records: &[String]) -> Vec<String> {
    let ours: Vec<&String> = records
        .iter()
        .filter(|r| {
            let r = r.trim_start();
            r.get(..10).is_some_and(|v| v == "v=TLSRPTv1") && r[10..].trim_start().starts_with(';')
        })
        .collect();
    let [record] = ours.as_slice() else {
        return Vec::new();
    };
    record
        .split(';')
        .skip(1)
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            (k.trim() == "rua").then(|| v.trim())
        })
        .take(1)
        .flat_map(|v| v.split(',').map(|u| u.trim().to_string()))
        .filter(|u| !u.is_empty())
        .collect()
}

pub fn destination(uri: &str) -> Destination {
    let lower = uri
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if lower.starts_with("mailto:") {
        let address = percent_decode(uri[7..].split('?').next().unwrap_or_default());
        let ok = address.rsplit_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        }) && !address
            .contains(|c: char| c.is_whitespace() || c.is_control() || "<>,\"".contains(c));
        return if ok {
            let (l, d) = address.rsplit_once('@').unwrap_or_default();
            Destination::Mail(format!("{l}@{}", d.to_ascii_lowercase()))
        } else {
            Destination::Unsupported(uri.to_string())
        };
    }
    if lower == "https://" {
        let rest = &uri[8..];
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, p),
                _ => return Destination::Unsupported(uri.to_string()),
            },
            _ => (authority, 443),
        };
        let host_ok = !host.is_empty()
            && !authority.contains('@')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
        let path_ok = !path.contains(|c: char| c.is_whitespace() || c.is_control());
        if host_ok && path_ok {
            return Destination::Https {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase(),
                port,
                path: path.to_string(),
            };
        }
    }
    Destination::Unsupported(uri.to_string())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(h), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTP/1.1 request head of an https report (§5.4): a POST of
/// `application/tlsrpt+gzip`.
pub fn https_request_head(host: &str, port: u16, path: &str, length: usize) -> String {
    let authority = if port == 443 {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Length: {length}\r\nUser-Agent: mailc\r\nConnection: close\r\n\r\n"
    )
}

/// The status code of an HTTP/1.x response's first line.
pub fn http_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

/// The result type of a TLS session that was set up but whose certificate
/// did not verify, from the verifier's error text (rustls/webpki names).
pub fn certificate_failure(error: &str) -> FailureType {
    let e = error.to_ascii_lowercase();
    if e.contains("notvalidforname") || e.contains("not valid for name") {
        FailureType::CertificateHostMismatch
    } else if e.contains("expired") || e.contains("notvalidyet") || e.contains("not valid yet") {
        FailureType::CertificateExpired
    } else if e.contains("unknownissuer")
        || e.contains("unknown issuer")
        || e.contains("badsignature")
        || e.contains("self-signed")
        || e.contains("untrusted")
        || e.contains("no trust anchors")
    {
        FailureType::CertificateNotTrusted
    } else {
        FailureType::ValidationFailure
    }
}

/// `PolicyType` of a stored row.
pub fn policy_type(name: &str) -> Option<PolicyType> {
    [PolicyType::Tlsa, PolicyType::Sts, PolicyType::NoPolicyFound]
        .into_iter()
        .find(|p| p.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn attempt(domain: &str, outcome: Outcome, mx: &str, ip: &str) -> TlsAttempt {
        TlsAttempt {
            domain: domain.into(),
            policy: PolicyType::NoPolicyFound,
            policy_strings: vec![],
            mx_patterns: vec![],
            mx_host: Some(mx.into()),
            sending_ip: Some("192.0.2.25".parse().unwrap()),
            receiving_ip: Some(ip.parse().unwrap()),
            outcome,
        }
    }

    fn fail(kind: FailureType, why: &str) -> Outcome {
        Outcome::Failure {
            kind,
            reason: Some(why.into()),
        }
    }

    fn reporter() -> Reporter {
        Reporter {
            org_name: "Example Org".into(),
            contact: "tls-reports@example.test".into(),
            submitter: "example.test".into(),
        }
    }

    const DAY: u64 = 1_796_256_000; // 2026-12-03T00:00:00Z

    fn sample() -> Aggregator {
        let mut agg = Aggregator::default();
        let rows = [
            attempt(
                "Rcpt.Test.",
                Outcome::Success,
                "mx1.rcpt.test",
                "198.51.100.1",
            ),
            attempt(
                "rcpt.test",
                Outcome::Success,
                "mx1.rcpt.test",
                "198.51.100.1",
            ),
            attempt(
                "rcpt.test",
                fail(FailureType::StarttlsNotSupported, "no STARTTLS in EHLO"),
                "mx2.rcpt.test",
                "198.51.100.2",
            ),
            attempt(
                "rcpt.test",
                fail(FailureType::StarttlsNotSupported, "no STARTTLS in EHLO"),
                "mx2.rcpt.test",
                "198.51.100.2",
            ),
            attempt(
                "rcpt.test",
                fail(FailureType::CertificateHostMismatch, "NotValidForName"),
                "mx3.rcpt.test",
                "2001:db8::3",
            ),
        ];
        for (i, a) in rows.iter().enumerate() {
            agg.add(Row::new(DAY + i as u64, a));
        }
        let mut sts = attempt(
            "rcpt.test",
            Outcome::Success,
            "mx1.rcpt.test",
            "198.51.100.1",
        );
        sts.policy = PolicyType::Sts;
        sts.policy_strings = vec!["version: STSv1".into(), "mode: enforce".into()];
        sts.mx_patterns = vec!["*.rcpt.test".into()];
        agg.add(Row::new(DAY + 9, &sts));
        agg
    }

    #[test]
    fn a_day_with_both_outcomes_makes_one_report_per_policy() {
        let agg = sample();
        assert_eq!(agg.domains().collect::<Vec<_>>(), vec!["rcpt.test"]);
        assert_eq!(agg.totals("rcpt.test"), (3, 3));
        let report = agg
            .report(&reporter(), "rcpt.test", DAY, DAY + 86_400)
            .unwrap();
        insta::assert_json_snapshot!("tls_report_json", report);
    }

    #[test]
    fn rows_survive_their_json_line() {
        let a = attempt(
            "rcpt.test",
            fail(FailureType::CertificateExpired, &"x".repeat(500)),
            "mx.rcpt.test",
            "198.51.100.9",
        );
        let row = Row::new(7, &a);
        assert_eq!(row.reason.as_ref().unwrap().len(), MAX_REASON);
        let line = serde_json::to_string(&row).unwrap();
        assert_eq!(serde_json::from_str::<Row>(&line).unwrap(), row);
    }

    #[test]
    fn unknown_result_types_and_policies_are_dropped_not_reported() {
        let mut agg = Aggregator::default();
        let mut row = Row::new(
            1,
            &attempt("d.test", Outcome::Success, "m.d.test", "192.0.2.1"),
        );
        row.failure = Some("made-up".into());
        agg.add(row.clone());
        row.failure = None;
        row.policy = "other".into();
        agg.add(row);
        assert_eq!(agg.dropped, 2);
        assert_eq!(agg.domains().count(), 0);
    }

    #[test]
    fn failure_details_are_bounded() {
        let mut agg = Aggregator::default();
        for i in 0..(MAX_DETAILS_PER_POLICY as u32 + 50) {
            let ip = std::net::Ipv4Addr::from(0xC000_0200 + i).to_string();
            agg.add(Row::new(
                1,
                &attempt(
                    "d.test",
                    fail(FailureType::ValidationFailure, "x"),
                    "m.d.test",
                    &ip,
                ),
            ));
        }
        let r = agg.report(&reporter(), "d.test", 0, 86_400).unwrap();
        let p = &r["policies"][0];
        assert_eq!(
            p["summary"]["total-failure-session-count"],
            MAX_DETAILS_PER_POLICY as u64 + 50
        );
        assert_eq!(
            p["failure-details"].as_array().unwrap().len(),
            MAX_DETAILS_PER_POLICY
        );
    }

    #[test]
    fn the_report_mail_is_a_multipart_report_with_the_gzipped_json() {
        let agg = sample();
        let report = agg
            .report(&reporter(), "rcpt.test", DAY, DAY + 86_400)
            .unwrap();
        let gz = gzip_json(&report).unwrap();
        let mail = message(
            &reporter(),
            "rcpt.test",
            DAY,
            DAY + 86_400,
            &gz,
            "tlsrpt@rcpt.test",
            DAY + 90_000,
        );
        let text = String::from_utf8(mail.clone()).unwrap();
        // The head and the text part as a user sees them; the base64 body
        // is checked by decoding it below.
        let head_and_text = &text[..text.find("Content-Transfer-Encoding: base64").unwrap()];
        insta::assert_snapshot!("tls_report_mail_head", head_and_text);
        let parsed = mail_parser::MessageParser::default().parse(&mail).unwrap();
        let attachment = parsed.attachments().next().unwrap();
        let name = file_name("example.test", "rcpt.test", DAY, DAY + 86_400);
        assert_eq!(attachment.attachment_name(), Some(name.as_str()));
        let unique = name
            .strip_prefix("example.test!rcpt.test!1796256000!1796342400!")
            .and_then(|n| n.strip_suffix(".json.gz"))
            .unwrap();
        assert!(
            !unique.is_empty() && unique.chars().all(|c| c.is_ascii_alphanumeric()),
            "{name}"
        );
        let mut json = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(attachment.contents()),
            &mut json,
        )
        .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), report);
        // An independent parser reads it as a TLS report.
        let tls = mail_auth::report::tlsrpt::TlsReport::parse_rfc5322(&mail, 1 << 20).unwrap();
        assert_eq!(tls.policies.len(), 2);
        assert_eq!(tls.report_id, report["report-id"]);
    }

    #[test]
    fn the_tlsrpt_record_gives_its_rua_or_nothing() {
        let one = |t: &str| rua_from_txt(&[t.to_string()]);
        assert_eq!(
            one("v=TLSRPTv1; rua=mailto:a@rcpt.test,https://r.rcpt.test/x"),
            vec!["mailto:a@rcpt.test", "https://r.rcpt.test/x"]
        );
        assert_eq!(
            one("v=TLSRPTv1;rua=mailto:a@rcpt.test"),
            vec!["mailto:a@rcpt.test"]
        );
        assert!(one("v=TLSRPTv2; rua=mailto:a@rcpt.test").is_empty());
        assert!(one("v=spf1 -all").is_empty());
        // Two TLSRPT records: the domain does not do TLS-RPT (§3).
        assert!(
            rua_from_txt(&[
                "v=TLSRPTv1; rua=mailto:a@rcpt.test".into(),
                "v=TLSRPTv1; rua=mailto:b@rcpt.test".into(),
            ])
            .is_empty()
        );
        // Other records are discarded first.
        assert_eq!(
            rua_from_txt(&[
                "v=spf1 -all".into(),
                "v=TLSRPTv1; rua=mailto:a@rcpt.test".into()
            ]),
            vec!["mailto:a@rcpt.test"]
        );
    }

    #[test]
    fn destinations() {
        assert_eq!(
            destination("mailto:TLS%2Drpt@Rcpt.Test"),
            Destination::Mail("TLS-rpt@rcpt.test".into())
        );
        assert_eq!(
            destination("https://reports.rcpt.test:8443/v1/tlsrpt"),
            Destination::Https {
                host: "reports.rcpt.test".into(),
                port: 8443,
                path: "/v1/tlsrpt".into()
            }
        );
        assert_eq!(
            destination("HTTPS://r.test"),
            Destination::Https {
                host: "r.test".into(),
                port: 443,
                path: "/".into()
            }
        );
        for bad in [
            "http://r.test/",
            "mailto:nobody",
            "mailto:<a@b.test>",
            "https://user@r.test/",
            "https://r.test:0/",
            "https://r.test:x/",
            "ftp://r.test",
        ] {
            assert!(
                matches!(destination(bad), Destination::Unsupported(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(http_status(b"HTTP/1.1 201 Created\r\n"), Some(201));
        assert_eq!(http_status(b"HTTP/1.0 500 x\r\n"), Some(500));
        assert_eq!(http_status(b"SMTP 250\r\n"), None);
        assert_eq!(http_status(b"HTTP/1.1 2000 x\r\n"), None);
        assert_eq!(
            https_request_head("r.test", 443, "/x", 10),
            "POST /x HTTP/1.1\r\nHost: r.test\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Length: 10\r\nUser-Agent: mailc\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn certificate_errors_map_to_result_types() {
        assert_eq!(
            certificate_failure("invalid peer certificate: NotValidForName"),
            FailureType::CertificateHostMismatch
        );
        assert_eq!(
            certificate_failure("invalid peer certificate: UnknownIssuer"),
            FailureType::CertificateNotTrusted
        );
        assert_eq!(
            certificate_failure("invalid peer certificate: Expired"),
            FailureType::CertificateExpired
        );
        assert_eq!(
            certificate_failure("something else"),
            FailureType::ValidationFailure
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(DAY), "2026-12-03T00:00:00Z");
        assert_eq!(rfc3339(DAY + 86_399), "2026-12-03T23:59:59Z");
    }
}
