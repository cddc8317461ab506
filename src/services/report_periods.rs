//! What the periodic report services (DMARC aggregate reports,
//! [`super::dmarc_reports`]; TLS reports, [`super::tls_reports`]) share:
//! a bounded queue the hot path records into without waiting, a writer
//! that appends the rows as JSON lines to one file per period
//! (`<dir>/<begin>-<end>.rows`, one fsync per file per batch), the runner's
//! wait for the next period's end, and the period files read back with
//! their journal of destinations done (`<begin>-<end>.sent`, a line per
//! destination, fsynced). Each service keeps what differs: what a row is,
//! how rows aggregate, and how a report is sent.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::inbound::report::period;
use crate::store::fsutil;

/// A row that belongs to the period of its time.
pub trait Timed: Serialize + DeserializeOwned + Send + 'static {
    /// Unix time the row is about.
    fn at(&self) -> u64;
}

/// Rows drained into one write (and one fsync per file).
const BATCH: usize = 1024;

/// The recording side: a bounded channel that never waits; a row that
/// does not fit is dropped and counted in the log.
pub struct RowQueue<R> {
    tx: mpsc::Sender<R>,
    rx: Mutex<Option<mpsc::Receiver<R>>>,
    dropped: AtomicU64,
    what: &'static str,
}

impl<R> RowQueue<R> {
    /// `what`: the rows' name in log lines ("DMARC report rows").
    pub fn new(capacity: usize, what: &'static str) -> RowQueue<R> {
        let (tx, rx) = mpsc::channel(capacity);
        RowQueue {
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            what,
        }
    }

    /// Queues a row for the writer; never waits.
    pub fn push(&self, row: R) {
        if self.tx.try_send(row).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "{} dropped: the writer is behind",
                    self.what
                );
            }
        }
    }

    /// Rows dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The receiving half, once (the writer task takes it).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<R>> {
        self.rx.lock().ok()?.take()
    }
}

/// What a report service is, for [`start`].
pub struct Service {
    /// The rows' name in log lines.
    pub what: &'static str,
    /// A period's file stops growing here.
    pub max_file: u64,
    /// Its directory under the state directory.
    pub dir: fn(&Path) -> PathBuf,
    /// The period length in the tables; `None`: the service is off.
    pub interval: fn(&crate::tables::Tables) -> Option<u64>,
}

/// Starts the writer (once: it takes the queue's receiver) and the runner
/// calling `run_once(shared, now)` at each period's end, for the life of
/// the server.
pub fn start<R, F, Fut>(
    shared: &std::sync::Arc<super::Shared>,
    queue: &RowQueue<R>,
    service: Service,
    run_once: F,
) where
    R: Timed,
    F: Fn(std::sync::Arc<super::Shared>, u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(rx) = queue.take_receiver() else {
        return;
    };
    let s = shared.clone();
    tokio::spawn(write_rows(rx, service.max_file, service.what, move || {
        let snapshot = s.snapshot();
        let i = (service.interval)(&snapshot.tables)?;
        Some(((service.dir)(&snapshot.tables.state_dir), i))
    }));
    let s = shared.clone();
    tokio::spawn(run_every_period(
        shared.clone(),
        service.interval,
        move |now| run_once(s.clone(), now),
    ));
}

/// The writer task: drains the queue in batches and appends each batch to
/// the period files of `target()` (the directory and the period length,
/// read at each batch: a reload may change them; `None`: reports are off
/// and the batch is dropped).
async fn write_rows<R: Timed>(
    mut rx: mpsc::Receiver<R>,
    max_file: u64,
    what: &'static str,
    target: impl Fn() -> Option<(PathBuf, u64)>,
) {
    let mut batch = Vec::new();
    while let Some(row) = rx.recv().await {
        batch.push(row);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        let Some((dir, interval)) = target() else {
            batch.clear();
            continue;
        };
        let rows = std::mem::take(&mut batch);
        let written =
            tokio::task::spawn_blocking(move || append(&dir, &rows, interval, max_file, what))
                .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write {what}"),
            Err(e) => tracing::error!(error = %e, "the writer of {what} failed"),
        }
    }
}

/// The runner task: at each period's end plus its grace, or every minute
/// at most (a reload may turn reports on or change the interval; a run
/// that hit its budget continues), `run_once(now)` while `interval` of
/// the current tables is `Some`; until shutdown.
async fn run_every_period<F, Fut>(
    shared: std::sync::Arc<super::Shared>,
    interval: fn(&crate::tables::Tables) -> Option<u64>,
    mut run_once: F,
) where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut shutdown: watch::Receiver<bool> = shared.shutdown.clone();
    loop {
        let i = interval(&shared.snapshot().tables);
        let wait = match i {
            Some(i) => {
                let now = super::unix_now();
                let (_, end) = period(now, i);
                (end + grace(i) - now).min(60)
            }
            None => 60,
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = shutdown.changed() => return,
        }
        if i.is_some() {
            run_once(super::unix_now()).await;
        }
    }
}

/// Time after a period's end before its report is made: rows of events
/// just before the end are still being written.
pub fn grace(interval: u64) -> u64 {
    (interval / 4).clamp(1, 300)
}

pub fn rows_file(dir: &Path, begin: u64, end: u64) -> PathBuf {
    dir.join(format!("{begin}-{end}.rows"))
}

pub fn journal_file(dir: &Path, begin: u64, end: u64) -> PathBuf {
    dir.join(format!("{begin}-{end}.sent"))
}

/// Appends rows to their periods' files; one fsync per file touched. A
/// file at `max_file` takes no more rows (logged).
pub fn append<R: Timed>(
    dir: &Path,
    rows: &[R],
    interval: u64,
    max_file: u64,
    what: &str,
) -> std::io::Result<()> {
    if !dir.exists() {
        fsutil::create_private_dir(dir)?;
    }
    let mut files: Vec<((u64, u64), std::fs::File, Vec<u8>)> = Vec::new();
    let mut created = false;
    for row in rows {
        let p = period(row.at(), interval);
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
        if f.metadata()?.len() + buf.len() as u64 > max_file {
            tracing::warn!(
                period = p.0,
                "{what}: the period's file is full, rows dropped"
            );
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

/// Periods whose file is closed at `now` (their end plus the grace has
/// passed), oldest first.
pub fn closed_periods(dir: &Path, now: u64) -> Vec<(u64, u64)> {
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

/// A period's rows, each given to `add` (line by line: memory bounded by
/// what `add` keeps), and the destinations already done; also the count
/// of unreadable lines (a torn last line after a crash, or damage), which
/// are skipped.
pub fn load<R: Timed>(
    dir: &Path,
    begin: u64,
    end: u64,
    mut add: impl FnMut(R),
) -> std::io::Result<(HashSet<String>, usize)> {
    let mut bad = 0;
    let f = std::fs::File::open(rows_file(dir, begin, end))?;
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<R>(&line) {
            Ok(row) => add(row),
            Err(_) => bad += 1,
        }
    }
    let done = match std::fs::read_to_string(journal_file(dir, begin, end)) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(e) => return Err(e),
    };
    Ok((done, bad))
}

/// One journal line, fsynced.
pub fn note(journal: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

/// A period whose every destination is done: its files go.
pub fn remove_period(dir: &Path, begin: u64, end: u64) -> std::io::Result<()> {
    let _ = std::fs::remove_file(rows_file(dir, begin, end));
    let _ = std::fs::remove_file(journal_file(dir, begin, end));
    fsutil::sync_dir(dir)
}
