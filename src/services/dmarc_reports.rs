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
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;
use super::submit::{self, Submission};
use crate::inbound::report::{
    self, Aggregator, Destination, MAX_DESTINATIONS_PER_DOMAIN, ReportRow, Reporter,
};
use crate::store::fsutil;

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
pub struct RowLog {
    tx: mpsc::Sender<ReportRow>,
    rx: Mutex<Option<mpsc::Receiver<ReportRow>>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Default for RowLog {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(ROW_QUEUE);
        RowLog {
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: Default::default(),
        }
    }
}

impl RowLog {
    /// Queues a row for the writer; never waits.
    pub fn record(&self, row: ReportRow) {
        if self.tx.try_send(row).is_err() {
            let n = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "DMARC report rows dropped: the writer is behind"
                );
            }
        }
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<ReportRow>> {
        self.rx.lock().ok()?.take()
    }
}

/// `<state>/dmarc-reports`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("dmarc-reports")
}

fn rows_file(dir: &Path, begin: u64, end: u64) -> PathBuf {
    dir.join(format!("{begin}-{end}.rows"))
}

/// The writer and the runner, for the life of the server.
pub fn start(shared: &Arc<Shared>) {
    if let Some(rx) = shared.dmarc_rows.take_receiver() {
        tokio::spawn(write_rows(shared.clone(), rx));
        tokio::spawn(run(shared.clone()));
    }
}

async fn write_rows(shared: Arc<Shared>, mut rx: mpsc::Receiver<ReportRow>) {
    let mut batch = Vec::new();
    while let Some(row) = rx.recv().await {
        batch.push(row);
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        let snapshot = shared.snapshot();
        let Some(cfg) = snapshot.tables.inbound.dmarc_reports.clone() else {
            batch.clear();
            continue;
        };
        let state = snapshot.tables.state_dir.clone();
        let rows = std::mem::take(&mut batch);
        let written =
            tokio::task::spawn_blocking(move || append(&dir(&state), &rows, cfg.interval_secs))
                .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write DMARC report rows"),
            Err(e) => tracing::error!(error = %e, "DMARC report writer failed"),
        }
    }
}

/// Appends rows to their periods' files; one fsync per file touched.
fn append(dir: &Path, rows: &[ReportRow], interval: u64) -> std::io::Result<()> {
    if !dir.exists() {
        fsutil::create_private_dir(dir)?;
    }
    let mut files: Vec<((u64, u64), std::fs::File, Vec<u8>)> = Vec::new();
    let mut created = false;
    for row in rows {
        let p = report::period(row.at, interval);
        let at = match files.iter().position(|(q, ..)| *q == p) {
            Some(i) => i,
            None => {
                let path = rows_file(dir, p.0, p.1);
                created |= !path.exists();
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                files.push((p, f, Vec::new()));
                files.len() - 1
            }
        };
        if let Ok(line) = serde_json::to_vec(row) {
            files[at].2.extend_from_slice(&line);
            files[at].2.push(b'\n');
        }
    }
    for (p, mut f, buf) in files {
        if f.metadata()?.len() + buf.len() as u64 > MAX_ROWS_FILE {
            tracing::warn!(period = p.0, "DMARC report rows file full: rows dropped");
            continue;
        }
        f.write_all(&buf)?;
        f.sync_data()?;
    }
    if created {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let interval = shared
            .snapshot()
            .tables
            .inbound
            .dmarc_reports
            .as_ref()
            .map(|c| c.interval_secs);
        // Wake at the next period's end plus the grace, or within a minute
        // (a reload may turn reports on or change the interval; a run that
        // hit its budget continues).
        let wait = match interval {
            Some(i) => {
                let now = super::unix_now();
                let (_, end) = report::period(now, i);
                (end + grace(i) - now).min(60)
            }
            None => 60,
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = shutdown.changed() => return,
        }
        if interval.is_some() {
            run_once(&shared, super::unix_now()).await;
        }
    }
}

/// Time after a period's end before its report is made: rows of messages
/// checked just before the end are still being written.
fn grace(interval: u64) -> u64 {
    (interval / 4).clamp(1, 300)
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
        tokio::task::spawn_blocking(move || closed_periods(&dir, now))
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
                let journal = journal_file(&dir, begin, end);
                let line = key.clone();
                let noted = tokio::task::spawn_blocking(move || note(&journal, &line)).await;
                if !matches!(noted, Ok(Ok(()))) {
                    tracing::error!(period = begin, "cannot write the DMARC report journal");
                    return summary;
                }
                done.insert(key);
            }
        }
        if complete {
            let dir = dir.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_file(rows_file(&dir, begin, end));
                let _ = std::fs::remove_file(journal_file(&dir, begin, end));
                fsutil::sync_dir(&dir)
            })
            .await;
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

fn journal_file(dir: &Path, begin: u64, end: u64) -> PathBuf {
    dir.join(format!("{begin}-{end}.sent"))
}

/// Periods whose file is closed at `now` (their end plus the grace has
/// passed), oldest first.
fn closed_periods(dir: &Path, now: u64) -> Vec<(u64, u64)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, u64)> = read
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (b, e) = name.strip_suffix(".rows")?.split_once('-')?;
            let (b, e): (u64, u64) = (b.parse().ok()?, e.parse().ok()?);
            (e > b && e + grace(e - b) <= now).then_some((b, e))
        })
        .collect();
    out.sort();
    out
}

type Loaded = (Aggregator, HashSet<String>, usize);

/// A period's rows, aggregated (line by line: memory bounded by distinct
/// records), and the destinations already done.
fn load(dir: &Path, begin: u64, end: u64) -> std::io::Result<Loaded> {
    let mut agg = Aggregator::default();
    let mut bad = 0;
    let f = std::fs::File::open(rows_file(dir, begin, end))?;
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<ReportRow>(&line) {
            Ok(row) => agg.add(row),
            // A torn last line after a crash, or damage: counted, skipped.
            Err(_) => bad += 1,
        }
    }
    let done = match std::fs::read_to_string(journal_file(dir, begin, end)) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(e) => return Err(e),
    };
    Ok((agg, done, bad))
}

/// One journal line, fsynced.
fn note(journal: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
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
