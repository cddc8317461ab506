//! `mailc report [CONFIG] [--mailbox PATH|ADDRESS] [--json] [--since DATE]`:
//! reads the DMARC aggregate reports (RFC 7489 §7.2: XML, `.xml.gz`,
//! `.zip`) and TLS-RPT reports (RFC 8460: JSON, `.json.gz`) that other
//! servers sent about our domains into a Maildir, and prints a summary: per
//! domain, reporter and source address the messages, aligned DKIM/SPF
//! passes and failures and dispositions, and the addresses that send as
//! the domain and fail DMARC; per TLS policy the successful and failed
//! sessions and the failure types.
//!
//! The mailbox is a Maildir path, or an address of ours resolved through
//! CONFIG; with CONFIG and no `--mailbox`, the mailboxes the domains'
//! `dmarc rua=` and `tls-rpt` addresses deliver to. Messages that are not
//! reports, or that do not parse, are listed as unreadable with the reason;
//! nothing in a message can make the command fail or use unbounded memory
//! (files over [`MAX_MESSAGE`] are not read, reports are decompressed up to
//! [`MAX_REPORT`]).
//!
//! The JSON shape (`--json`) is stable; fields are only ever added:
//!
//! ```text
//! { "messages": N,
//!   "dmarc": { "reports": N, "domains": [ {
//!       "domain", "messages", "dmarc-pass", "dmarc-fail",
//!       "dkim-aligned": {"pass","fail"}, "spf-aligned": {"pass","fail"},
//!       "disposition": {"none","quarantine","reject"},
//!       "sources": [ { "ip", "messages", "dkim-aligned", "spf-aligned",
//!                      "disposition", "reporters": [org...] } ],
//!       "reporters": [ { "org", "reports", "messages", "sources": [...] } ],
//!       "failing": [ { "ip", "messages", "header-from": [..], "reporters": [..] } ] } ] },
//!   "tls": { "reports": N, "policies": [ {
//!       "domain", "policy-type", "reporters": [..], "successful", "failed",
//!       "failures": [ {"result-type", "sessions"} ] } ] },
//!   "unreadable": [ {"file", "reason"} ] }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mail_auth::report::tlsrpt::TlsReport;
use mail_auth::report::{ActionDisposition, DmarcResult, Report};
use serde::Serialize;

use crate::tables::resolve::Resolution;
use crate::tables::{Tables, TargetKind};

/// Messages larger than this are not read.
pub const MAX_MESSAGE: u64 = 64 << 20;
/// Largest report once decompressed.
pub const MAX_REPORT: usize = 64 << 20;

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PassFail {
    pub pass: u64,
    pub fail: u64,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Dispositions {
    pub none: u64,
    pub quarantine: u64,
    pub reject: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Source {
    pub ip: String,
    pub messages: u64,
    pub dkim_aligned: PassFail,
    pub spf_aligned: PassFail,
    pub disposition: Dispositions,
    pub reporters: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Reporter {
    pub org: String,
    pub reports: u64,
    pub messages: u64,
    pub sources: Vec<Source>,
}

/// An address that sent mail as the domain which failed DMARC (neither
/// aligned DKIM nor aligned SPF passed).
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Failing {
    pub ip: String,
    pub messages: u64,
    pub header_from: Vec<String>,
    pub reporters: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Domain {
    pub domain: String,
    pub messages: u64,
    pub dmarc_pass: u64,
    pub dmarc_fail: u64,
    pub dkim_aligned: PassFail,
    pub spf_aligned: PassFail,
    pub disposition: Dispositions,
    pub sources: Vec<Source>,
    pub reporters: Vec<Reporter>,
    pub failing: Vec<Failing>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Dmarc {
    pub reports: u64,
    pub domains: Vec<Domain>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct FailureCount {
    pub result_type: String,
    pub sessions: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct TlsPolicy {
    pub domain: String,
    pub policy_type: String,
    pub reporters: Vec<String>,
    pub successful: u64,
    pub failed: u64,
    pub failures: Vec<FailureCount>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Tls {
    pub reports: u64,
    pub policies: Vec<TlsPolicy>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unreadable {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub messages: u64,
    pub dmarc: Dmarc,
    pub tls: Tls,
    pub unreadable: Vec<Unreadable>,
}

/// What one message turned out to be.
pub enum Parsed {
    Dmarc(Box<Report>),
    Tls(Box<TlsReport>),
    Unreadable(String),
}

/// A message's report, if it holds one.
pub fn parse(message: &[u8]) -> Parsed {
    use mail_auth::report::Error;
    let dmarc = match Report::parse_rfc5322(message, MAX_REPORT) {
        Ok(r) => return Parsed::Dmarc(Box::new(r)),
        Err(e) => e,
    };
    let tls = match TlsReport::parse_rfc5322(message, MAX_REPORT) {
        Ok(r) => return Parsed::Tls(Box::new(r)),
        Err(e) => e,
    };
    let why = |e: &Error| match e {
        Error::MailParseError => "not a readable message".to_string(),
        Error::ReportParseError(s) => format!("report does not parse: {s}"),
        Error::UncompressError(s) => format!("attachment does not decompress: {s}"),
        Error::ReportTooLarge => format!("report larger than {} MiB", MAX_REPORT >> 20),
        Error::NoReportsFound => "no DMARC or TLS-RPT report in it".to_string(),
    };
    // The more telling of the two reasons: a report that failed to parse
    // rather than "none found".
    Parsed::Unreadable(match (&dmarc, &tls) {
        (Error::NoReportsFound, t) => why(t),
        (d, _) => why(d),
    })
}

#[derive(Default)]
struct SourceAcc {
    messages: u64,
    dkim: PassFail,
    spf: PassFail,
    disposition: Dispositions,
    reporters: BTreeSet<String>,
    failing: u64,
    failing_from: BTreeSet<String>,
    failing_reporters: BTreeSet<String>,
}

#[derive(Default)]
struct DomainAcc {
    sources: BTreeMap<String, SourceAcc>,
    reporters: BTreeMap<String, (u64, BTreeMap<String, SourceAcc>)>,
}

#[derive(Default)]
struct TlsAcc {
    reporters: BTreeSet<String>,
    successful: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
}

/// Builds the summary from reports one at a time.
#[derive(Default)]
pub struct Collector {
    messages: u64,
    dmarc_reports: u64,
    domains: BTreeMap<String, DomainAcc>,
    tls_reports: u64,
    tls: BTreeMap<(String, String), TlsAcc>,
    unreadable: Vec<Unreadable>,
    /// Reports that end before this Unix time are left out.
    pub since: Option<u64>,
}

fn ip_key(ip: Option<std::net::IpAddr>) -> String {
    ip.map_or_else(|| "unknown".into(), |i| i.to_string())
}

fn add_record(acc: &mut SourceAcc, r: &mail_auth::report::Record, org: &str) {
    let n = u64::from(r.count());
    acc.messages += n;
    let dkim = r.dmarc_dkim_result() == DmarcResult::Pass;
    let spf = r.dmarc_spf_result() == DmarcResult::Pass;
    if dkim {
        acc.dkim.pass += n
    } else {
        acc.dkim.fail += n
    }
    if spf {
        acc.spf.pass += n
    } else {
        acc.spf.fail += n
    }
    match r.action_disposition() {
        ActionDisposition::Quarantine => acc.disposition.quarantine += n,
        ActionDisposition::Reject => acc.disposition.reject += n,
        _ => acc.disposition.none += n,
    }
    acc.reporters.insert(org.to_string());
    if !dkim && !spf {
        acc.failing += n;
        acc.failing_from
            .insert(r.header_from().to_ascii_lowercase());
        acc.failing_reporters.insert(org.to_string());
    }
}

impl Collector {
    pub fn add_message(&mut self, file: &str, message: &[u8]) {
        self.messages += 1;
        match parse(message) {
            Parsed::Dmarc(r) => self.add_dmarc(&r),
            Parsed::Tls(r) => self.add_tls(&r),
            Parsed::Unreadable(reason) => self.unreadable(file, reason),
        }
    }

    pub fn unreadable(&mut self, file: &str, reason: String) {
        self.unreadable.push(Unreadable {
            file: file.to_string(),
            reason,
        });
    }

    pub fn add_dmarc(&mut self, r: &Report) {
        if self.since.is_some_and(|s| r.date_range_end() < s) {
            return;
        }
        self.dmarc_reports += 1;
        let org = r.org_name().to_string();
        let d = self
            .domains
            .entry(r.domain().to_ascii_lowercase())
            .or_default();
        let rep = d.reporters.entry(org.clone()).or_default();
        rep.0 += 1;
        for rec in r.records() {
            let ip = ip_key(rec.source_ip());
            add_record(d.sources.entry(ip.clone()).or_default(), rec, &org);
            add_record(rep.1.entry(ip).or_default(), rec, &org);
        }
    }

    pub fn add_tls(&mut self, r: &TlsReport) {
        if self
            .since
            .is_some_and(|s| r.date_range.end_datetime.to_timestamp() < s as i64)
        {
            return;
        }
        self.tls_reports += 1;
        let org = r.organization_name.clone().unwrap_or_default();
        for p in &r.policies {
            let kind = serde_json::to_value(p.policy.policy_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "other".into());
            let acc = self
                .tls
                .entry((p.policy.policy_domain.to_ascii_lowercase(), kind))
                .or_default();
            acc.reporters.insert(org.clone());
            acc.successful += u64::from(p.summary.total_success);
            acc.failed += u64::from(p.summary.total_failure);
            for f in &p.failure_details {
                let kind = serde_json::to_value(f.result_type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "other".into());
                *acc.failures.entry(kind).or_default() += u64::from(f.failed_session_count);
            }
        }
    }

    pub fn finish(self) -> Summary {
        let source = |ip: &String, s: &SourceAcc| Source {
            ip: ip.clone(),
            messages: s.messages,
            dkim_aligned: s.dkim,
            spf_aligned: s.spf,
            disposition: s.disposition,
            reporters: s.reporters.iter().cloned().collect(),
        };
        let by_messages = |v: &mut Vec<Source>| {
            v.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.ip.cmp(&b.ip)))
        };
        let domains = self
            .domains
            .into_iter()
            .map(|(domain, d)| {
                let mut sources: Vec<Source> =
                    d.sources.iter().map(|(ip, s)| source(ip, s)).collect();
                by_messages(&mut sources);
                let mut failing: Vec<Failing> = d
                    .sources
                    .iter()
                    .filter(|(_, s)| s.failing > 0)
                    .map(|(ip, s)| Failing {
                        ip: ip.clone(),
                        messages: s.failing,
                        header_from: s.failing_from.iter().cloned().collect(),
                        reporters: s.failing_reporters.iter().cloned().collect(),
                    })
                    .collect();
                failing.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.ip.cmp(&b.ip)));
                let reporters = d
                    .reporters
                    .iter()
                    .map(|(org, (reports, srcs))| {
                        let mut sources: Vec<Source> =
                            srcs.iter().map(|(ip, s)| source(ip, s)).collect();
                        by_messages(&mut sources);
                        Reporter {
                            org: org.clone(),
                            reports: *reports,
                            messages: sources.iter().map(|s| s.messages).sum(),
                            sources,
                        }
                    })
                    .collect();
                let mut out = Domain {
                    domain,
                    sources,
                    reporters,
                    ..Domain::default()
                };
                for s in d.sources.values() {
                    out.messages += s.messages;
                    out.dmarc_fail += s.failing;
                    out.dkim_aligned.pass += s.dkim.pass;
                    out.dkim_aligned.fail += s.dkim.fail;
                    out.spf_aligned.pass += s.spf.pass;
                    out.spf_aligned.fail += s.spf.fail;
                    out.disposition.none += s.disposition.none;
                    out.disposition.quarantine += s.disposition.quarantine;
                    out.disposition.reject += s.disposition.reject;
                }
                out.dmarc_pass = out.messages - out.dmarc_fail;
                out.failing = failing;
                out
            })
            .collect();
        let policies = self
            .tls
            .into_iter()
            .map(|((domain, policy_type), t)| {
                let mut failures: Vec<FailureCount> = t
                    .failures
                    .into_iter()
                    .map(|(result_type, sessions)| FailureCount {
                        result_type,
                        sessions,
                    })
                    .collect();
                failures.sort_by(|a, b| {
                    b.sessions
                        .cmp(&a.sessions)
                        .then(a.result_type.cmp(&b.result_type))
                });
                TlsPolicy {
                    domain,
                    policy_type,
                    reporters: t.reporters.into_iter().collect(),
                    successful: t.successful,
                    failed: t.failed,
                    failures,
                }
            })
            .collect();
        Summary {
            messages: self.messages,
            dmarc: Dmarc {
                reports: self.dmarc_reports,
                domains,
            },
            tls: Tls {
                reports: self.tls_reports,
                policies,
            },
            unreadable: self.unreadable,
        }
    }
}

/// Reads every message of the Maildirs (`cur/` and `new/`), in name order.
pub fn collect(maildirs: &[PathBuf], since: Option<u64>) -> Summary {
    let mut c = Collector {
        since,
        ..Collector::default()
    };
    for maildir in maildirs {
        let mut files: Vec<PathBuf> = Vec::new();
        for sub in ["cur", "new"] {
            match std::fs::read_dir(maildir.join(sub)) {
                Ok(rd) => files.extend(rd.flatten().map(|e| e.path())),
                Err(e) => c.unreadable(&maildir.join(sub).display().to_string(), e.to_string()),
            }
        }
        files.sort();
        for f in files {
            let name = f.display().to_string();
            match std::fs::metadata(&f) {
                Ok(m) if !m.is_file() => continue,
                Ok(m) if m.len() > MAX_MESSAGE => {
                    c.messages += 1;
                    c.unreadable(&name, format!("larger than {} MiB", MAX_MESSAGE >> 20));
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    c.unreadable(&name, e.to_string());
                    continue;
                }
            }
            match std::fs::read(&f) {
                Ok(bytes) => c.add_message(&name, &bytes),
                Err(e) => {
                    c.messages += 1;
                    c.unreadable(&name, e.to_string())
                }
            }
        }
    }
    c.finish()
}

fn count(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The summary as text for a terminal.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} read: {} DMARC, {} TLS-RPT, {} unreadable",
        count(s.messages, "message"),
        s.dmarc.reports,
        s.tls.reports,
        s.unreadable.len()
    );
    let table_head = format!(
        "      {:<40} {:>8} {:>14} {:>14} {:>17}\n",
        "source", "messages", "dkim pass/fail", "spf pass/fail", "none/quar/reject"
    );
    let row = |src: &Source| {
        format!(
            "      {:<40} {:>8} {:>14} {:>14} {:>17}\n",
            src.ip,
            src.messages,
            format!("{}/{}", src.dkim_aligned.pass, src.dkim_aligned.fail),
            format!("{}/{}", src.spf_aligned.pass, src.spf_aligned.fail),
            format!(
                "{}/{}/{}",
                src.disposition.none, src.disposition.quarantine, src.disposition.reject
            )
        )
    };
    for d in &s.dmarc.domains {
        let _ = writeln!(
            o,
            "\nDMARC {}: {}, {} pass, {} fail",
            d.domain,
            count(d.messages, "message"),
            d.dmarc_pass,
            d.dmarc_fail
        );
        for r in &d.reporters {
            let _ = writeln!(
                o,
                "  reported by {} ({}, {})",
                if r.org.is_empty() {
                    "(no name)"
                } else {
                    &r.org
                },
                count(r.reports, "report"),
                count(r.messages, "message")
            );
            o.push_str(&table_head);
            for src in &r.sources {
                o.push_str(&row(src));
            }
        }
        if d.failing.is_empty() {
            let _ = writeln!(o, "  nobody sending as {} failed DMARC", d.domain);
        } else {
            let _ = writeln!(o, "  sending as {} and failing DMARC:", d.domain);
            for f in &d.failing {
                let _ = writeln!(
                    o,
                    "    {:<40} {} (From: {}; reported by {})",
                    f.ip,
                    count(f.messages, "message"),
                    f.header_from.join(", "),
                    f.reporters.join(", ")
                );
            }
        }
    }
    for p in &s.tls.policies {
        let _ = writeln!(
            o,
            "\nTLS {} policy {}: {} successful, {} failed (reported by {})",
            p.domain,
            p.policy_type,
            count(p.successful, "session"),
            p.failed,
            p.reporters.join(", ")
        );
        for f in &p.failures {
            let _ = writeln!(
                o,
                "    {:<32} {}",
                f.result_type,
                count(f.sessions, "session")
            );
        }
    }
    if !s.unreadable.is_empty() {
        let _ = writeln!(o, "\nunreadable:");
        for u in &s.unreadable {
            let _ = writeln!(o, "  {}: {}", u.file, u.reason);
        }
    }
    o
}

/// `YYYY-MM-DD` as the Unix time of that day's start (UTC).
pub fn parse_date(s: &str) -> Option<u64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400).ok()
}

/// The Maildir an address of ours delivers to.
fn maildir_of(tables: &Tables, address: &str) -> Result<PathBuf, String> {
    let address = address.trim().trim_start_matches("mailto:");
    match tables.resolve(address) {
        Resolution::Deliver(d) => d
            .targets
            .iter()
            .filter(|t| t.kind == TargetKind::Mailbox)
            .find_map(|t| tables.mailboxes.get(&t.address))
            .map(|m| m.maildir.clone())
            .ok_or_else(|| format!("{address} delivers to no local mailbox")),
        _ => Err(format!("{address} is not one of our addresses")),
    }
}

/// The mailboxes the domains' `dmarc rua=` and `tls-rpt` addresses reach.
fn report_mailboxes(tables: &Tables) -> Vec<PathBuf> {
    let mut out = BTreeSet::new();
    for d in tables.domains.values() {
        let dmarc = d
            .dmarc
            .as_ref()
            .and_then(|m| m.rua.clone())
            .into_iter()
            .flat_map(|r| {
                r.split(',')
                    .map(|u| u.split('!').next().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            });
        for uri in dmarc.chain(d.tls_rpt.iter().cloned()) {
            if uri.starts_with("mailto:")
                && let Ok(p) = maildir_of(tables, &uri)
            {
                out.insert(p);
            }
        }
    }
    out.into_iter().collect()
}

/// `mailc report`.
pub fn run(config: Option<&Path>, mailbox: Option<&str>, json: bool, since: Option<&str>) -> i32 {
    let since = match since.map(|s| (s, parse_date(s))) {
        None => None,
        Some((_, Some(t))) => Some(t),
        Some((s, None)) => {
            eprintln!("--since {s}: expected a date such as 2026-12-01");
            return 64;
        }
    };
    let tables = match config {
        Some(c) => {
            let out = crate::compile::compile_file(c, crate::compile::Options { offline: true });
            match out.compiled {
                Some(compiled) => Some(compiled.tables),
                None => {
                    super::report_failure(c, &out);
                    return 1;
                }
            }
        }
        None => None,
    };
    let maildirs = match (mailbox, &tables) {
        (Some(m), _) if Path::new(m).is_dir() => vec![PathBuf::from(m)],
        (Some(m), Some(t)) if m.contains('@') => match maildir_of(t, m) {
            Ok(p) => vec![p],
            Err(e) => {
                eprintln!("--mailbox {m}: {e}");
                return 1;
            }
        },
        (Some(m), _) => {
            eprintln!(
                "--mailbox {m}: no such Maildir (give a Maildir path, or an address with the config)"
            );
            return 1;
        }
        (None, Some(t)) => {
            let found = report_mailboxes(t);
            if found.is_empty() {
                eprintln!(
                    "no local mailbox receives the domains' DMARC or TLS-RPT reports: give --mailbox"
                );
                return 1;
            }
            found
        }
        (None, None) => {
            eprintln!("give --mailbox PATH, or the config");
            return 64;
        }
    };
    let summary = collect(&maildirs, since);
    if json {
        match serde_json::to_string_pretty(&summary) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        }
    } else {
        print!("{}", render(&summary));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-12-03"), Some(1_796_256_000));
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400));
        for bad in ["", "2026-13-01", "yesterday", "2026-1", "1969-12-31"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn garbage_is_unreadable_not_a_panic() {
        let mut c = Collector::default();
        for (i, bytes) in [
            &b""[..],
            b"\xff\xfe\x00garbage",
            b"Subject: hi\r\n\r\nnot a report\r\n",
            b"Content-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sIAAAA\r\n",
        ]
        .iter()
        .enumerate()
        {
            c.add_message(&format!("m{i}"), bytes);
        }
        let s = c.finish();
        assert_eq!(s.messages, 4);
        assert_eq!(s.unreadable.len(), 4);
        assert!(s.dmarc.domains.is_empty());
    }
}
