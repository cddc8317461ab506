//! Sending DMARC aggregate reports (RFC 7489 §7.2) about the mail the MX
//! received, when `inbound { dmarc { reports } }` is configured.
//!
//! - The MX hands each message's [`ReportRow`] to [`RowLog::record`]
//!   (never blocking: a bounded channel; a row that does not fit is dropped
//!   and counted in the log). One writer task appends the rows as JSON
//!   lines to `<state>/dmarc-reports/<begin>-<end>.rows`, one file per
//!   period, and fsyncs once per batch it drained (group commit): a crash
//!   loses at most the rows of the batch being written, never mail, and
//!   no fsync waits on the SMTP path.
//! - A runner task wakes at each period's end (plus a short grace so late
//!   rows land) and, for every closed period, aggregates its rows per
//!   policy domain ([`crate::inbound::report::Aggregator`]), and mails each
//!   report, gzip'd XML, to the domain's `mailto:` `rua` destinations
//!   (at most [`MAX_DESTINATIONS_PER_DOMAIN`] per domain): through
//!   `submit::enqueue`, the path `mailc sendmail` uses, so the report is
//!   DKIM-signed with the `from` domain's key and delivered by the outbound
//!   queue with its retries. A destination outside the policy domain must
//!   authorise it (`<domain>._report._dmarc.<dest>` TXT, RFC 7489 §7.1); a
//!   report larger than the destination's `!size` or `max-size` is not
//!   sent (logged). At most [`MAX_REPORTS_PER_RUN`] reports are queued per
//!   run; the rest wait for the next run (a minute later).
//! - No loss, no double send: every destination done (queued, refused,
//!   unauthorised, too big) is appended to `<begin>-<end>.sent` and fsynced
//!   only after the report is durably queued; the `.rows` file and its
//!   journal are removed when every destination of every domain is done. A
//!   crash between queueing and the journal line sends that one report
//!   twice, with the same Report-ID (receivers drop duplicates by it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::report_periods::{self as periods, RowQueue, Timed};
use super::submit::{self, Submission};
use crate::inbound::report::{
    self, Aggregator, Destination, MAX_DESTINATIONS_PER_DOMAIN, ReportRow, Reporter,
};

/// Rows waiting for the writer; beyond this the MX drops rows rather than
/// wait or grow.
pub const ROW_QUEUE: usize = 10_000;
/// A period's row file stops growing here (about a million messages).
pub const MAX_ROWS_FILE: u64 = 512 << 20;
/// Report mails queued per run (every minute at most).
pub const MAX_REPORTS_PER_RUN: usize = 200;
/// A run looks at most this many closed periods.
pub const MAX_PERIODS_PER_RUN: usize = 16;

/// Where the MX puts rows: the sending half of the writer's channel.
pub struct RowLog(RowQueue<ReportRow>);

impl Default for RowLog {
    fn default() -> Self {
        RowLog(RowQueue::new(ROW_QUEUE, "DMARC report rows"))
    }
}

impl RowLog {
    /// Queues a row for the writer; never waits.
    pub fn record(&self, row: ReportRow) {
        self.0.push(row);
    }
}

impl Timed for ReportRow {
    fn at(&self) -> u64 {
        self.at
    }
}

/// `<state>/dmarc-reports`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("dmarc-reports")
}

/// The writer and the runner, for the life of the server.
pub fn start(shared: &Arc<Shared>) {
    periods::start(
        shared,
        &shared.dmarc_rows.0,
        periods::Service {
            what: "DMARC report rows",
            max_file: MAX_ROWS_FILE,
            dir,
            interval: |t| t.inbound.dmarc_reports.as_ref().map(|c| c.interval_secs),
        },
        |s, now| async move {
            run_once(&s, now).await;
        },
    );
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub queued: usize,
    pub skipped: usize,
    pub periods_done: usize,
}

/// Reports every period closed at `now`: queues them, journals each
/// destination done, removes a period's files when it is complete.
pub async fn run_once(shared: &Shared, now: u64) -> RunSummary {
    let snapshot = shared.snapshot();
    let mut summary = RunSummary::default();
    let Some(cfg) = snapshot.tables.inbound.dmarc_reports.clone() else {
        return summary;
    };
    let reporter = Reporter {
        org_name: cfg.org_name.clone(),
        email: cfg.from.clone(),
        hostname: snapshot.tables.hostname.clone(),
    };
    let dir = dir(&snapshot.tables.state_dir);
    let closed = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || periods::closed_periods(&dir, now))
            .await
            .unwrap_or_default()
    };
    let mut budget = MAX_REPORTS_PER_RUN;
    for (begin, end) in closed.into_iter().take(MAX_PERIODS_PER_RUN) {
        let loaded = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || load(&dir, begin, end))
                .await
                .ok()
                .and_then(Result::ok)
        };
        let Some((agg, mut done, bad_lines)) = loaded else {
            tracing::error!(period = begin, "cannot read DMARC report rows");
            continue;
        };
        if bad_lines > 0 {
            tracing::warn!(
                period = begin,
                lines = bad_lines,
                "unreadable DMARC report rows skipped"
            );
        }
        let mut complete = true;
        'domains: for dr in agg.reports(&reporter, begin, end) {
            if dr.dropped > 0 {
                tracing::warn!(domain = %dr.domain, messages = dr.dropped, "DMARC report truncated at its record limit");
            }
            for uri in dr.rua.iter().take(MAX_DESTINATIONS_PER_DOMAIN) {
                let key = format!("{} {}", dr.domain, uri.uri);
                if done.contains(&key) {
                    continue;
                }
                if budget == 0 {
                    complete = false;
                    break 'domains;
                }
                match send_one(shared, &snapshot, &cfg, &reporter, &dr, uri).await {
                    Sent::Queued => {
                        budget -= 1;
                        summary.queued += 1;
                    }
                    Sent::Skipped => summary.skipped += 1,
                    Sent::Later => {
                        complete = false;
                        break 'domains;
                    }
                }
                let journal = periods::journal_file(&dir, begin, end);
                let line = key.clone();
                let noted =
                    tokio::task::spawn_blocking(move || periods::note(&journal, &line)).await;
                if !matches!(noted, Ok(Ok(()))) {
                    tracing::error!(period = begin, "cannot write the DMARC report journal");
                    return summary;
                }
                done.insert(key);
            }
        }
        if complete {
            let dir = dir.clone();
            let _ =
                tokio::task::spawn_blocking(move || periods::remove_period(&dir, begin, end)).await;
            summary.periods_done += 1;
        } else {
            break;
        }
    }
    summary
}

enum Sent {
    /// Durably in the queue.
    Queued,
    /// Will never be sent (logged why).
    Skipped,
    /// Not now (the queue refused for now): the next run tries again.
    Later,
}

async fn send_one(
    shared: &Shared,
    snapshot: &super::Snapshot,
    cfg: &crate::tables::DmarcReportsTable,
    reporter: &Reporter,
    dr: &report::DomainReport,
    uri: &report::ReportUri,
) -> Sent {
    let (address, authorise, max_size) = match report::destination(&dr.domain, uri) {
        Destination::Mail {
            address,
            authorise,
            max_size,
            ..
        } => (address, authorise, max_size),
        Destination::Unsupported(u) => {
            tracing::info!(domain = %dr.domain, rua = %u, "DMARC report destination not supported (mailto: only)");
            return Sent::Skipped;
        }
    };
    if let Some(name) = authorise {
        match txt(&snapshot.outbound.resolver, &name).await {
            Ok(records) if report::authorises(&records) => {}
            Ok(_) => {
                tracing::info!(domain = %dr.domain, rua = %address, record = %name, "DMARC report not sent: the external destination does not authorise it");
                return Sent::Skipped;
            }
            Err(e) => {
                tracing::warn!(domain = %dr.domain, rua = %address, record = %name, error = %e, "DMARC report not sent: cannot verify the external destination");
                return Sent::Skipped;
            }
        }
    }
    let message = match report::message(reporter, &dr.report, &address) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(domain = %dr.domain, error = %e, "cannot build a DMARC report");
            return Sent::Skipped;
        }
    };
    let size = message.len() as u64;
    if size > cfg.max_size || (max_size > 0 && size > max_size) {
        tracing::warn!(domain = %dr.domain, rua = %address, size, limit = if max_size > 0 { max_size.min(cfg.max_size) } else { cfg.max_size }, "DMARC report not sent: larger than the destination accepts");
        return Sent::Skipped;
    }
    let sub = Submission {
        sender: cfg.from.clone(),
        recipients: vec![address.clone()],
        user: "dmarc-reports".into(),
        size,
    };
    match submit::enqueue(shared, &sub, &message).await {
        Ok(id) => {
            tracing::info!(id = %id, domain = %dr.domain, rua = %address, records = dr.report.records().len(), "DMARC report queued");
            Sent::Queued
        }
        Err(r) if r.exit == submit::exit::TEMPFAIL => Sent::Later,
        Err(r) => {
            tracing::warn!(domain = %dr.domain, rua = %address, reason = %r.message, "DMARC report refused");
            Sent::Skipped
        }
    }
}

/// The TXT strings at `name` (each record's strings joined); empty for
/// NXDOMAIN/NODATA.
async fn txt(resolver: &crate::dns::resolver::Resolver, name: &str) -> Result<Vec<String>, String> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let lookup = tokio::time::timeout(
        resolver.timeout() + Duration::from_secs(1),
        resolver.hickory().txt_lookup(fqdn),
    )
    .await;
    match lookup {
        Err(_) => Err("timed out".into()),
        Ok(Ok(l)) => Ok(l
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                hickory_resolver::proto::rr::RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect()),
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

type Loaded = (Aggregator, HashSet<String>, usize);

/// A period's rows, aggregated (line by line: memory bounded by distinct
/// records), and the destinations already done.
fn load(dir: &Path, begin: u64, end: u64) -> std::io::Result<Loaded> {
    let mut agg = Aggregator::default();
    let (done, bad) = periods::load(dir, begin, end, |row| agg.add(row))?;
    Ok((agg, done, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::report_periods::{closed_periods, journal_file, note, rows_file};
    use std::io::Write;

    fn append(d: &Path, rows: &[ReportRow], interval: u64) -> std::io::Result<()> {
        periods::append(d, rows, interval, MAX_ROWS_FILE, "DMARC report rows")
    }

    use crate::inbound::report::{Align, PublishedPolicy, ReportUri, Requested};
    use crate::queue::Queue;

    fn row(at: u64) -> ReportRow {
        row_for(at, "sender.test", &["mailto:d@sender.test"])
    }

    fn row_for(at: u64, domain: &str, rua: &[&str]) -> ReportRow {
        ReportRow::new(
            at,
            "192.0.2.1".parse().unwrap(),
            domain,
            domain,
            PublishedPolicy {
                domain: domain.into(),
                adkim: Align::Relaxed,
                aspf: Align::Relaxed,
                p: Requested::None,
                sp: Requested::None,
                pct: 100,
                rua: rua
                    .iter()
                    .map(|u| ReportUri {
                        uri: u.to_string(),
                        max_size: 0,
                    })
                    .collect(),
            },
        )
    }

    /// A run after a crash: the destination journalled as done is not sent
    /// again, the others are (two per domain at most); an external one that
    /// cannot be verified (no DNS here) is skipped; then the period's files
    /// are gone and a second run sends nothing.
    #[tokio::test]
    async fn journalled_destinations_are_not_sent_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let h = crate::services::testing::harness_with(
            tmp.path(),
            "inbound {\n dmarc {\n  reports from=\"dmarc@example.test\" interval=\"10s\"\n }\n}\n",
        );
        let d = dir(tmp.path());
        let rua = [
            "mailto:a@sender.test",
            "mailto:b@sender.test",
            "mailto:c@sender.test",
        ];
        append(
            &d,
            &[
                row_for(5, "sender.test", &rua),
                row_for(6, "sender.test", &rua),
                row_for(7, "other.test", &["mailto:x@elsewhere.test"]),
            ],
            10,
        )
        .unwrap();
        note(&journal_file(&d, 0, 10), "sender.test mailto:a@sender.test").unwrap();
        let summary = run_once(&h.shared, 100).await;
        assert_eq!(
            summary,
            RunSummary {
                queued: 1,
                skipped: 1,
                periods_done: 1
            }
        );
        let queued = h.queue.list();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].sender, "dmarc@example.test");
        assert_eq!(queued[0].recipients[0].address, "b@sender.test");
        let message = h.queue.read_message(&queued[0].id).unwrap();
        let report = mail_auth::report::Report::parse_rfc5322(&message, 1 << 20).unwrap();
        assert_eq!(report.domain(), "sender.test");
        assert_eq!(report.records()[0].count(), 2);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "files removed");
        assert_eq!(run_once(&h.shared, 200).await, RunSummary::default());
        assert_eq!(h.queue.list().len(), 1);
    }

    #[test]
    fn rows_go_to_their_period_and_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir(tmp.path());
        append(&d, &[row(5), row(12), row(7)], 10).unwrap();
        append(&d, &[row(8)], 10).unwrap();
        // A torn line (crash mid-write) is skipped, the rest counted.
        std::fs::OpenOptions::new()
            .append(true)
            .open(rows_file(&d, 0, 10))
            .unwrap()
            .write_all(b"{\"at\":9,\"sou")
            .unwrap();
        assert_eq!(closed_periods(&d, 10), Vec::<(u64, u64)>::new());
        assert_eq!(closed_periods(&d, 12), vec![(0, 10)]);
        assert_eq!(closed_periods(&d, 100), vec![(0, 10), (10, 20)]);
        note(&journal_file(&d, 0, 10), "sender.test mailto:d@sender.test").unwrap();
        let (agg, done, bad) = load(&d, 0, 10).unwrap();
        assert_eq!(bad, 1);
        assert!(done.contains("sender.test mailto:d@sender.test"));
        let reporter = Reporter {
            org_name: "o".into(),
            email: "r@example.test".into(),
            hostname: "h.example.test".into(),
        };
        let reports = agg.reports(&reporter, 0, 10);
        assert_eq!(reports[0].report.records()[0].count(), 3);
    }
}
