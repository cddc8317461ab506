//! DMARC aggregate reports we send (RFC 7489 §7.2), the part without I/O:
//! the [`ReportRow`] recorded for each message that got a DMARC evaluation
//! against a record asking for aggregate reports (`rua=`), the
//! [`Aggregator`] that folds a period's rows into one report per policy
//! domain (RFC 7489 Appendix C XML, through mail-auth's report types), and
//! the rules for the destinations: `mailto:` only, the `!size` limit
//! (§6.2), and the authorisation an external destination must publish
//! (§7.1). Storing rows, DNS and queueing run in
//! `services::dmarc_reports`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use mail_auth::report as mr;
use serde::{Deserialize, Serialize};

/// Distinct records (source, identifiers, results) kept per domain and
/// period; further distinct ones are counted in [`DomainReport::dropped`]
/// and left out (RFC 7489 lets receivers bound their reports).
pub const MAX_RECORDS_PER_REPORT: usize = 10_000;
/// Policy domains kept per period; rows of further domains are dropped.
pub const MAX_DOMAINS_PER_PERIOD: usize = 10_000;
/// `rua` destinations served per domain (the first ones listed).
pub const MAX_DESTINATIONS_PER_DOMAIN: usize = 2;

/// One message's DMARC evaluation, as stored until its report is sent.
/// Plain values only, so any evaluator can fill it (the struct literal is
/// the constructor; [`ReportRow::new`] is the short form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReportRow {
    /// Unix time of the evaluation.
    pub at: u64,
    pub source_ip: IpAddr,
    /// RFC5322.From domain.
    pub header_from: String,
    /// RFC5321.MailFrom domain (the HELO name for the null sender).
    pub envelope_from: String,
    /// What we did with the message.
    pub disposition: Disposition,
    /// DMARC-aligned DKIM pass.
    pub dkim_aligned: bool,
    /// DMARC-aligned SPF pass.
    pub spf_aligned: bool,
    /// Every DKIM signature's raw result.
    pub dkim: Vec<DkimAuth>,
    /// The SPF result(s) DMARC used.
    pub spf: Vec<SpfAuth>,
    pub policy: PublishedPolicy,
}

impl ReportRow {
    pub fn new(
        at: u64,
        source_ip: IpAddr,
        header_from: impl Into<String>,
        envelope_from: impl Into<String>,
        policy: PublishedPolicy,
    ) -> ReportRow {
        ReportRow {
            at,
            source_ip,
            header_from: header_from.into().to_ascii_lowercase(),
            envelope_from: envelope_from.into().to_ascii_lowercase(),
            disposition: Disposition::None,
            dkim_aligned: false,
            spf_aligned: false,
            dkim: Vec::new(),
            spf: Vec::new(),
            policy,
        }
    }
}

/// The policy applied to a message (RFC 7489 Appendix C `DispositionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    None,
    Quarantine,
    Reject,
}

/// `p=`/`sp=` as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requested {
    None,
    Quarantine,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Align {
    Relaxed,
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkimVerdict {
    None,
    Pass,
    Fail,
    Policy,
    Neutral,
    Temperror,
    Permerror,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpfVerdict {
    None,
    Neutral,
    Pass,
    Fail,
    Softfail,
    Temperror,
    Permerror,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpfScope {
    Helo,
    Mfrom,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DkimAuth {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    pub result: DkimVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SpfAuth {
    pub domain: String,
    pub scope: SpfScope,
    pub result: SpfVerdict,
}

/// The DMARC record the message was evaluated against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PublishedPolicy {
    /// The domain whose record applied; the report is about this domain.
    pub domain: String,
    pub adkim: Align,
    pub aspf: Align,
    pub p: Requested,
    pub sp: Requested,
    pub pct: u8,
    /// `rua=`, in the order published.
    pub rua: Vec<ReportUri>,
}

/// One `rua` URI with its `!size` limit (0: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReportUri {
    pub uri: String,
    pub max_size: u64,
}

/// Who sends the reports (`inbound { dmarc { reports } }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// `org_name` and the report's Submitter (our domain).
    pub org_name: String,
    /// `email` of the report metadata and the From: of the message.
    pub email: String,
    /// Host name: part of every report id.
    pub hostname: String,
}

/// One policy domain's report for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainReport {
    pub domain: String,
    /// `rua` of the most recent row (the record as last seen).
    pub rua: Vec<ReportUri>,
    pub report: mr::Report,
    /// Messages left out because the report reached
    /// [`MAX_RECORDS_PER_REPORT`] distinct records.
    pub dropped: u64,
}

type RecordKey = (
    IpAddr,
    Disposition,
    bool,
    bool,
    String,
    String,
    Vec<DkimAuth>,
    Vec<SpfAuth>,
);

#[derive(Default)]
struct DomainRows {
    policy: Option<PublishedPolicy>,
    /// Latest evaluation seen, to keep the newest policy.
    latest: u64,
    records: HashMap<RecordKey, u32>,
    dropped: u64,
}

/// Folds one period's rows into reports, one per policy domain, in bounded
/// memory (distinct records, not messages).
#[derive(Default)]
pub struct Aggregator {
    domains: BTreeMap<String, DomainRows>,
    /// Rows dropped because [`MAX_DOMAINS_PER_PERIOD`] was reached.
    pub dropped_domains: u64,
}

impl Aggregator {
    pub fn add(&mut self, row: ReportRow) {
        let domain = row.policy.domain.to_ascii_lowercase();
        if !self.domains.contains_key(&domain) && self.domains.len() >= MAX_DOMAINS_PER_PERIOD {
            self.dropped_domains += 1;
            return;
        }
        let d = self.domains.entry(domain).or_default();
        if d.policy.is_none() || row.at >= d.latest {
            d.latest = row.at;
            d.policy = Some(row.policy.clone());
        }
        let mut dkim = row.dkim;
        dkim.sort_by(|a, b| (&a.domain, &a.selector).cmp(&(&b.domain, &b.selector)));
        let key = (
            row.source_ip,
            row.disposition,
            row.dkim_aligned,
            row.spf_aligned,
            row.header_from,
            row.envelope_from,
            dkim,
            row.spf,
        );
        let full = d.records.len() >= MAX_RECORDS_PER_REPORT;
        match d.records.get_mut(&key) {
            Some(n) => *n = n.saturating_add(1),
            None if full => d.dropped += 1,
            None => {
                d.records.insert(key, 1);
            }
        }
    }

    /// Domains seen so far.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }

    /// The reports of the period `[begin, end)`, by domain name. Records are
    /// in a stable order (source address, then the rest) so that the same
    /// rows always give the same XML.
    pub fn reports(self, reporter: &Reporter, begin: u64, end: u64) -> Vec<DomainReport> {
        let mut out = Vec::new();
        for (domain, rows) in self.domains {
            let Some(policy) = rows.policy else {
                continue;
            };
            let mut records: Vec<(RecordKey, u32)> = rows.records.into_iter().collect();
            records.sort_by(|a, b| {
                (a.0.0, &a.0.4, &a.0.5, a.0.2, a.0.3, format!("{:?}", a.0)).cmp(&(
                    b.0.0,
                    &b.0.4,
                    &b.0.5,
                    b.0.2,
                    b.0.3,
                    format!("{:?}", b.0),
                ))
            });
            let mut report = mr::Report::new()
                .with_version(1.0)
                .with_org_name(reporter.org_name.clone())
                .with_email(reporter.email.clone())
                .with_report_id(report_id(&reporter.hostname, &domain, begin, end))
                .with_date_range_begin(begin)
                .with_date_range_end(end)
                .with_domain(domain.clone())
                .with_adkim(align(policy.adkim))
                .with_aspf(align(policy.aspf))
                .with_p(requested(policy.p))
                .with_sp(requested(policy.sp));
            for (key, count) in records {
                report.add_record(record(key, count));
            }
            out.push(DomainReport {
                domain,
                rua: policy.rua,
                report,
                dropped: rows.dropped,
            });
        }
        out
    }
}

/// A report id unique per reporter, domain and period, and the same when a
/// run is repeated after a crash (receivers can drop the duplicate).
pub fn report_id(hostname: &str, domain: &str, begin: u64, end: u64) -> String {
    format!("{domain}.{begin}.{end}@{hostname}")
}

fn record(key: RecordKey, count: u32) -> mr::Record {
    let (ip, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf) = key;
    let pass = |p: bool| {
        if p {
            mr::DmarcResult::Pass
        } else {
            mr::DmarcResult::Fail
        }
    };
    let mut r = mr::Record::new()
        .with_source_ip(ip)
        .with_count(count)
        .with_action_disposition(match disposition {
            Disposition::None => mr::ActionDisposition::None,
            Disposition::Quarantine => mr::ActionDisposition::Quarantine,
            Disposition::Reject => mr::ActionDisposition::Reject,
        })
        .with_dmarc_dkim_result(pass(dkim_aligned))
        .with_dmarc_spf_result(pass(spf_aligned))
        .with_header_from(header_from)
        .with_envelope_from(envelope_from);
    for d in dkim {
        r = r.with_dkim_auth_result(
            mr::DKIMAuthResult::new()
                .with_domain(d.domain)
                .with_selector(d.selector)
                .with_result(match d.result {
                    DkimVerdict::None => mr::DkimResult::None,
                    DkimVerdict::Pass => mr::DkimResult::Pass,
                    DkimVerdict::Fail => mr::DkimResult::Fail,
                    DkimVerdict::Policy => mr::DkimResult::Policy,
                    DkimVerdict::Neutral => mr::DkimResult::Neutral,
                    DkimVerdict::Temperror => mr::DkimResult::TempError,
                    DkimVerdict::Permerror => mr::DkimResult::PermError,
                }),
        );
    }
    for s in spf {
        r = r.with_spf_auth_result(
            mr::SPFAuthResult::new()
                .with_domain(s.domain)
                .with_scope(match s.scope {
                    SpfScope::Helo => mr::SPFDomainScope::Helo,
                    SpfScope::Mfrom => mr::SPFDomainScope::MailFrom,
                })
                .with_result(match s.result {
                    SpfVerdict::None => mr::SpfResult::None,
                    SpfVerdict::Neutral => mr::SpfResult::Neutral,
                    SpfVerdict::Pass => mr::SpfResult::Pass,
                    SpfVerdict::Fail => mr::SpfResult::Fail,
                    SpfVerdict::Softfail => mr::SpfResult::SoftFail,
                    SpfVerdict::Temperror => mr::SpfResult::TempError,
                    SpfVerdict::Permerror => mr::SpfResult::PermError,
                }),
        );
    }
    r
}

fn align(a: Align) -> mr::Alignment {
    match a {
        Align::Relaxed => mr::Alignment::Relaxed,
        Align::Strict => mr::Alignment::Strict,
    }
}

fn requested(p: Requested) -> mr::Disposition {
    match p {
        Requested::None => mr::Disposition::None,
        Requested::Quarantine => mr::Disposition::Quarantine,
        Requested::Reject => mr::Disposition::Reject,
    }
}

/// Where one `rua` URI sends a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Mail to this address; `authorise`: the TXT name that must hold a
    /// `v=DMARC1` record first (RFC 7489 §7.1), for an address outside the
    /// policy domain.
    Mail {
        address: String,
        domain: String,
        authorise: Option<String>,
        max_size: u64,
    },
    /// Not a usable `mailto:` URI (RFC 7489 §6.2 allows receivers to
    /// support mailto only).
    Unsupported(String),
}

/// What a `rua` URI asks for, seen from `policy_domain`.
pub fn destination(policy_domain: &str, uri: &ReportUri) -> Destination {
    let Some(rest) = uri
        .uri
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("mailto:"))
        .map(|_| &uri.uri[7..])
    else {
        return Destination::Unsupported(uri.uri.clone());
    };
    // No header fields (`?subject=`) in a report destination.
    let address = percent_decode(rest.split('?').next().unwrap_or_default());
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Destination::Unsupported(uri.uri.clone());
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',');
    if local.is_empty() || domain.is_empty() || address.contains(bad) || !domain.contains('.') {
        return Destination::Unsupported(uri.uri.clone());
    }
    let policy = policy_domain.trim_end_matches('.').to_ascii_lowercase();
    // RFC 7489 §7.1: no authorisation is needed within the same
    // organisational domain (Public Suffix List).
    let internal = domain == policy
        || domain.ends_with(&format!(".{policy}"))
        || super::dmarc::org_domain(&domain) == super::dmarc::org_domain(&policy);
    Destination::Mail {
        address: format!("{local}@{domain}"),
        authorise: (!internal).then(|| format!("{policy}._report._dmarc.{domain}")),
        domain,
        max_size: uri.max_size,
    }
}

/// Whether the TXT strings at the authorisation name allow reports: one
/// record beginning `v=DMARC1` (RFC 7489 §7.1).
pub fn authorises(txt: &[String]) -> bool {
    txt.iter().any(|t| {
        let t = t.trim_start();
        t.get(..8)
            .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
            && t[8..].trim_start().chars().next().is_none_or(|c| c == ';')
    })
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

/// The report mail (text part and the `.xml.gz` attachment, RFC 7489
/// §7.2.1.1), from `reporter.email` to `to`. `now`: for the Date field.
pub fn message(reporter: &Reporter, report: &mr::Report, to: &str) -> std::io::Result<Vec<u8>> {
    let submitter = reporter
        .email
        .rsplit_once('@')
        .map_or(reporter.hostname.as_str(), |(_, d)| d);
    let mut out = Vec::new();
    report.write_rfc5322(
        submitter,
        reporter.email.as_str(),
        std::iter::once(to),
        &mut out,
    )?;
    Ok(out)
}

/// Period `[begin, end)` of length `interval` holding `at`; periods are
/// aligned on multiples of the interval since the epoch, so a day starts at
/// UTC midnight.
pub fn period(at: u64, interval: u64) -> (u64, u64) {
    let interval = interval.max(1);
    let begin = at - at % interval;
    (begin, begin + interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(domain: &str) -> PublishedPolicy {
        PublishedPolicy {
            domain: domain.into(),
            adkim: Align::Relaxed,
            aspf: Align::Strict,
            p: Requested::Reject,
            sp: Requested::Quarantine,
            pct: 100,
            rua: vec![ReportUri {
                uri: "mailto:reports@rua.example".into(),
                max_size: 0,
            }],
        }
    }

    fn row(ip: &str, pass: bool) -> ReportRow {
        let mut r = ReportRow::new(
            1_000,
            ip.parse().unwrap(),
            "Sender.Test",
            "bounces.sender.test",
            policy("sender.test"),
        );
        r.dkim_aligned = pass;
        r.spf_aligned = pass;
        r.disposition = if pass {
            Disposition::None
        } else {
            Disposition::Reject
        };
        r.dkim = vec![DkimAuth {
            domain: "sender.test".into(),
            selector: "s1".into(),
            result: if pass {
                DkimVerdict::Pass
            } else {
                DkimVerdict::Fail
            },
        }];
        r.spf = vec![SpfAuth {
            domain: "bounces.sender.test".into(),
            scope: SpfScope::Mfrom,
            result: if pass {
                SpfVerdict::Pass
            } else {
                SpfVerdict::Softfail
            },
        }];
        r
    }

    fn reporter() -> Reporter {
        Reporter {
            org_name: "example.test".into(),
            email: "dmarc-reports@example.test".into(),
            hostname: "mail.example.test".into(),
        }
    }

    #[test]
    fn rows_fold_into_one_report_per_domain_and_the_xml_reads_back() {
        let mut agg = Aggregator::default();
        for _ in 0..3 {
            agg.add(row("192.0.2.1", true));
        }
        agg.add(row("198.51.100.7", false));
        agg.add(row("198.51.100.7", false));
        let mut other = row("2001:db8::1", true);
        other.policy = policy("other.test");
        other.header_from = "other.test".into();
        agg.add(other);
        // Rows survive the JSON line they are stored as.
        let line = serde_json::to_string(&row("192.0.2.9", true)).unwrap();
        agg.add(serde_json::from_str(&line).unwrap());

        let reports = agg.reports(&reporter(), 86_400, 172_800);
        assert_eq!(
            reports
                .iter()
                .map(|r| r.domain.as_str())
                .collect::<Vec<_>>(),
            ["other.test", "sender.test"]
        );
        let sender = &reports[1];
        assert_eq!(sender.rua[0].uri, "mailto:reports@rua.example");
        let xml = sender.report.to_xml();
        let back = mr::Report::parse_xml(xml.as_bytes()).expect("our XML parses");
        assert_eq!(back.org_name(), "example.test");
        assert_eq!(back.email(), "dmarc-reports@example.test");
        assert_eq!(
            back.report_id(),
            "sender.test.86400.172800@mail.example.test"
        );
        assert_eq!(
            (back.date_range_begin(), back.date_range_end()),
            (86_400, 172_800)
        );
        assert_eq!(back.domain(), "sender.test");
        assert_eq!(back.adkim(), mr::Alignment::Relaxed);
        assert_eq!(back.aspf(), mr::Alignment::Strict);
        assert_eq!(back.p(), mr::Disposition::Reject);
        assert_eq!(back.sp(), mr::Disposition::Quarantine);
        let got: Vec<_> = back
            .records()
            .iter()
            .map(|r| {
                (
                    r.source_ip().unwrap().to_string(),
                    r.count(),
                    r.action_disposition(),
                    r.dmarc_dkim_result(),
                    r.dmarc_spf_result(),
                    r.header_from().to_string(),
                    r.envelope_from().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "192.0.2.1".to_string(),
                    3,
                    mr::ActionDisposition::None,
                    mr::DmarcResult::Pass,
                    mr::DmarcResult::Pass,
                    "sender.test".to_string(),
                    "bounces.sender.test".to_string()
                ),
                (
                    "192.0.2.9".to_string(),
                    1,
                    mr::ActionDisposition::None,
                    mr::DmarcResult::Pass,
                    mr::DmarcResult::Pass,
                    "sender.test".to_string(),
                    "bounces.sender.test".to_string()
                ),
                (
                    "198.51.100.7".to_string(),
                    2,
                    mr::ActionDisposition::Reject,
                    mr::DmarcResult::Fail,
                    mr::DmarcResult::Fail,
                    "sender.test".to_string(),
                    "bounces.sender.test".to_string()
                ),
            ]
        );
        let failed = &back.records()[2];
        let dkim = &failed.dkim_auth_result()[0];
        assert_eq!(
            (dkim.domain(), dkim.selector(), dkim.result()),
            ("sender.test", "s1", mr::DkimResult::Fail)
        );
        let spf = &failed.spf_auth_result()[0];
        assert_eq!(
            (spf.domain(), spf.scope(), spf.result()),
            (
                "bounces.sender.test",
                mr::SPFDomainScope::MailFrom,
                mr::SpfResult::SoftFail
            )
        );
        // The same rows give the same bytes.
        let mut again = Aggregator::default();
        for _ in 0..3 {
            again.add(row("192.0.2.1", true));
        }
        again.add(row("198.51.100.7", false));
        again.add(row("198.51.100.7", false));
        again.add(row("192.0.2.9", true));
        let again = again.reports(&reporter(), 86_400, 172_800);
        assert_eq!(again[0].report.to_xml(), xml);
    }

    #[test]
    fn the_report_mail_carries_the_gzipped_xml() {
        let mut agg = Aggregator::default();
        agg.add(row("192.0.2.1", true));
        let report = &agg.reports(&reporter(), 0, 86_400)[0].report;
        let mail = message(&reporter(), report, "reports@rua.example").unwrap();
        let text = String::from_utf8_lossy(&mail);
        assert!(
            text.contains("From: <dmarc-reports@example.test>"),
            "{text}"
        );
        assert!(text.contains("To: <reports@rua.example>"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
        assert!(
            text.contains("filename=\"example.test!sender.test!0!86400.xml.gz\""),
            "{text}"
        );
        assert!(text.contains("application/gzip"), "{text}");
        let back = mr::Report::parse_rfc5322(&mail, 1 << 20).expect("parses");
        assert_eq!(back.records()[0].count(), 1);
    }

    #[test]
    fn memory_is_bounded_by_distinct_records() {
        let mut agg = Aggregator::default();
        for i in 0..(MAX_RECORDS_PER_REPORT as u32 + 5) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            agg.add(row(&ip.to_string(), true));
        }
        agg.add(row("10.0.0.0", true));
        let r = agg.reports(&reporter(), 0, 1);
        assert_eq!(r[0].report.records().len(), MAX_RECORDS_PER_REPORT);
        assert_eq!(r[0].dropped, 5);
        assert_eq!(r[0].report.records()[0].count(), 2);
    }

    #[test]
    fn destinations() {
        let uri = |u: &str, n| ReportUri {
            uri: u.into(),
            max_size: n,
        };
        assert_eq!(
            destination("sender.test", &uri("mailto:dmarc@sender.test", 0)),
            Destination::Mail {
                address: "dmarc@sender.test".into(),
                domain: "sender.test".into(),
                authorise: None,
                max_size: 0
            }
        );
        assert_eq!(
            destination("Sender.Test", &uri("MAILTO:d%2Bx@Reports.Sender.Test", 10)),
            Destination::Mail {
                address: "d+x@reports.sender.test".into(),
                domain: "reports.sender.test".into(),
                authorise: None,
                max_size: 10
            }
        );
        assert_eq!(
            destination("sender.test", &uri("mailto:reports@rua.example", 0)),
            Destination::Mail {
                address: "reports@rua.example".into(),
                domain: "rua.example".into(),
                authorise: Some("sender.test._report._dmarc.rua.example".into()),
                max_size: 0
            }
        );
        for bad in [
            "https://rua.example/",
            "mailto:",
            "mailto:nobody",
            "mailto:a@b",
            "mailto:a b@c.test",
            "mailto:a@c.test,b@d.test",
        ] {
            assert!(
                matches!(
                    destination("sender.test", &uri(bad, 0)),
                    Destination::Unsupported(_)
                ),
                "{bad}"
            );
        }
        assert!(authorises(&["v=DMARC1".into()]));
        assert!(authorises(&["spf".into(), " v=dmarc1; rua=x".into()]));
        assert!(!authorises(&[]));
        assert!(!authorises(&["v=DMARC10".into(), "v=spf1 -all".into()]));
    }

    #[test]
    fn periods_are_aligned() {
        assert_eq!(period(86_400 * 3 + 5, 86_400), (86_400 * 3, 86_400 * 4));
        assert_eq!(period(7, 5), (5, 10));
        assert_eq!(period(7, 0), (7, 8));
    }
}
