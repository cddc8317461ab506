//! Greylisting's durable state: the [`Table`] of `inbound::greylist` in
//! memory (every decision is answered from it, never from disk), and an
//! append-only log of changed entries, `<state>/greylist/greylist.log`,
//! written by one thread.
//!
//! Format: a header line `mailc-greylist 1`, then one line per change,
//! `<key, 32 hex digits> <first> <passed> <passes>` (Unix seconds); the
//! last line of a key wins. Keys are hashes: no address is stored in clear.
//! When the log holds more than twice the live entries (plus
//! [`COMPACT_SLACK`]), expired entries are dropped and the live ones
//! rewritten into a new file that replaces the log atomically (temporary
//! file, fsync, rename, fsync of the directory).
//!
//! Durability: every change is handed to the writer thread and written to
//! the file at once (a crash of the process loses at most what was in
//! flight, microseconds), and the file is synced (`fdatasync`) at most
//! every [`SYNC_EVERY`]; a power loss may forget the last seconds of
//! greylisting, which only means those triplets are greylisted once more.
//! A torn last line is skipped when the log is read.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::inbound::greylist::{Entry, Key, Table, Verdict};
use crate::store::fsutil;
use crate::tables::GreylistTable;

const HEADER: &str = "mailc-greylist 1";
/// The file is synced at most this often (and when the server stops).
pub const SYNC_EVERY: Duration = Duration::from_secs(5);
/// Log lines beyond twice the live entries before a compaction.
pub const COMPACT_SLACK: usize = 10_000;

enum Msg {
    Changed(Vec<(Key, Entry)>),
    /// Replace the log with exactly these entries.
    Compact(Vec<(Key, Entry)>),
}

/// The greylisting store of a running server. Without [`Greylist::open`]
/// it lives in memory only (as in unit tests).
pub struct Greylist {
    table: Mutex<Table>,
    log: Mutex<Option<Sender<Msg>>>,
    /// Lines in the log file (header excluded).
    lines: Arc<AtomicUsize>,
    compacting: Arc<AtomicBool>,
}

impl Default for Greylist {
    fn default() -> Self {
        Greylist {
            table: Mutex::new(Table::new(usize::MAX)),
            log: Mutex::new(None),
            lines: Arc::new(AtomicUsize::new(0)),
            compacting: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The log file in a state directory.
pub fn log_path(state: &Path) -> PathBuf {
    state.join("greylist").join("greylist.log")
}

impl Greylist {
    /// Loads what a previous run remembered and starts the writer thread.
    /// The directory and file are created at the first change, so a server
    /// that does not greylist leaves no trace.
    pub fn open(&self, state: &Path) -> std::io::Result<usize> {
        let path = log_path(state);
        let (entries, lines) = read_log(&path)?;
        let n = entries.len();
        {
            let mut table = self.lock();
            for (k, e) in entries {
                table.load(k, e);
            }
        }
        self.lines.store(lines, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer {
            path,
            file: None,
            dirty: false,
            last_sync: Instant::now(),
            lines: self.lines.clone(),
            compacting: self.compacting.clone(),
            failing: false,
        };
        std::thread::Builder::new()
            .name("greylist-log".into())
            .spawn(move || writer.run(rx))?;
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Greylisting of one recipient at `now`; changes go to the log.
    pub fn check(
        &self,
        t: &GreylistTable,
        ip: IpAddr,
        sender: &str,
        recipient: &str,
        now: u64,
    ) -> Verdict {
        let mut table = self.lock();
        table.set_max(t.max_entries as usize);
        let out = table.check(ip, sender, recipient, now, t);
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        // Sent while the table is locked, so the log sees changes in the
        // order the table made them.
        if let Some(tx) = log.as_ref() {
            if !out.changed.is_empty() {
                let _ = tx.send(Msg::Changed(out.changed));
            }
            let lines = self.lines.load(Ordering::Relaxed);
            if lines > 2 * table.len() + COMPACT_SLACK
                && !self.compacting.swap(true, Ordering::AcqRel)
            {
                table.purge(now, t);
                let live: Vec<(Key, Entry)> = table.entries().map(|(k, e)| (*k, *e)).collect();
                let _ = tx.send(Msg::Compact(live));
            }
        }
        out.verdict
    }

    /// Entries in memory.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The entries of a log (last line of a key wins) and its line count. A
/// file with another header is set aside (`.bad`) and nothing is loaded.
fn read_log(path: &Path) -> std::io::Result<(Vec<(Key, Entry)>, usize)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut lines = BufReader::new(file).split(b'\n');
    match lines.next() {
        Some(Ok(h)) if h == HEADER.as_bytes() => {}
        None => return Ok((Vec::new(), 0)),
        _ => {
            let aside = path.with_extension("log.bad");
            tracing::warn!(file = %path.display(), moved_to = %aside.display(), "greylist state not in a known format; starting empty");
            std::fs::rename(path, aside)?;
            return Ok((Vec::new(), 0));
        }
    }
    let mut map = std::collections::HashMap::new();
    let (mut count, mut bad) = (0usize, 0usize);
    for line in lines {
        let line = line?;
        count += 1;
        match parse_line(&line) {
            Some((k, e)) => {
                map.insert(k, e);
            }
            None => bad += 1,
        }
    }
    if bad > 0 {
        tracing::warn!(file = %path.display(), lines = bad, "greylist state: unreadable lines skipped (a torn write after a crash)");
    }
    Ok((map.into_iter().collect(), count))
}

fn parse_line(line: &[u8]) -> Option<(Key, Entry)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut f = text.split(' ');
    let key = Key::from_hex(f.next()?)?;
    let first = f.next()?.parse().ok()?;
    let passed = f.next()?.parse().ok()?;
    let passes = f.next()?.parse().ok()?;
    if f.next().is_some() {
        return None;
    }
    Some((
        key,
        Entry {
            first,
            passed,
            passes,
        },
    ))
}

fn format_line(out: &mut String, k: &Key, e: &Entry) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{} {} {} {}", k.hex(), e.first, e.passed, e.passes);
}

struct Writer {
    path: PathBuf,
    file: Option<File>,
    dirty: bool,
    last_sync: Instant,
    lines: Arc<AtomicUsize>,
    compacting: Arc<AtomicBool>,
    /// Logged once until writing works again.
    failing: bool,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let result = match rx.recv_timeout(SYNC_EVERY) {
                Ok(Msg::Changed(changes)) => self.append(&changes),
                Ok(Msg::Compact(live)) => {
                    let r = self.compact(&live);
                    self.compacting.store(false, Ordering::Release);
                    r
                }
                Err(RecvTimeoutError::Timeout) => Ok(()),
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.sync();
                    return;
                }
            };
            let result = result.and_then(|()| {
                if self.dirty && self.last_sync.elapsed() >= SYNC_EVERY {
                    self.sync()
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(()) => self.failing = false,
                Err(e) => {
                    if !self.failing {
                        tracing::error!(file = %self.path.display(), error = %e, "cannot write the greylist state; greylisting goes on in memory");
                    }
                    self.failing = true;
                    // Reopen next time.
                    self.file = None;
                }
            }
        }
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                fsutil::create_private_dir(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            if f.metadata()?.len() == 0 {
                f.write_all(format!("{HEADER}\n").as_bytes())?;
            }
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("greylist log not open"))
    }

    fn append(&mut self, changes: &[(Key, Entry)]) -> std::io::Result<()> {
        let mut text = String::with_capacity(64 * changes.len());
        for (k, e) in changes {
            format_line(&mut text, k, e);
        }
        self.file()?.write_all(text.as_bytes())?;
        self.dirty = true;
        self.lines.fetch_add(changes.len(), Ordering::Relaxed);
        Ok(())
    }

    fn compact(&mut self, live: &[(Key, Entry)]) -> std::io::Result<()> {
        let mut text = String::with_capacity(64 * (live.len() + 1));
        text.push_str(HEADER);
        text.push('\n');
        for (k, e) in live {
            format_line(&mut text, k, e);
        }
        if let Some(dir) = self.path.parent() {
            fsutil::create_private_dir(dir)?;
        }
        self.file = None;
        fsutil::write_atomic_durable(&self.path, text.as_bytes())?;
        self.lines.store(live.len(), Ordering::Relaxed);
        self.dirty = false;
        tracing::debug!(entries = live.len(), "greylist state compacted");
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(f) = &self.file
            && self.dirty
        {
            f.sync_data()?;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GreylistTable {
        GreylistTable {
            delay_secs: 60,
            expire_secs: 3600,
            keep_secs: 86400,
            max_entries: 1000,
            whitelist_after: 0,
        }
    }

    fn wait_for_lines(path: &Path, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() > n || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn state_survives_reopening_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let t = policy();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        {
            let g = Greylist::default();
            assert_eq!(g.open(dir.path()).unwrap(), 0);
            // Nothing written, nothing created.
            assert!(!dir.path().join("greylist").exists());
            assert!(matches!(
                g.check(&t, ip, "a@x", "b@y", 1000),
                Verdict::Greylisted { .. }
            ));
            assert_eq!(g.check(&t, ip, "a@x", "b@y", 1060), Verdict::Pass);
            let text = wait_for_lines(&log_path(dir.path()), 2);
            assert!(text.starts_with("mailc-greylist 1\n"), "{text}");
            assert_eq!(text.lines().count(), 3, "{text}");
            assert!(!text.contains("a@x"), "addresses are not stored: {text}");
        }
        // A crash in the middle of a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log_path(dir.path()))
            .unwrap();
        f.write_all(b"0123abc 17").unwrap();
        drop(f);
        let g = Greylist::default();
        assert_eq!(g.open(dir.path()).unwrap(), 1);
        // The pass is remembered: no delay for the next message.
        assert_eq!(g.check(&t, ip, "a@x", "b@y", 2000), Verdict::Pass);
        assert!(matches!(
            g.check(&t, ip, "other@x", "b@y", 2000),
            Verdict::Greylisted { .. }
        ));
    }

    #[test]
    fn a_foreign_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("greylist")).unwrap();
        std::fs::write(log_path(dir.path()), "something else\n").unwrap();
        let g = Greylist::default();
        assert_eq!(g.open(dir.path()).unwrap(), 0);
        assert!(dir.path().join("greylist/greylist.log.bad").exists());
    }

    #[test]
    fn the_log_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let t = GreylistTable {
            max_entries: 100,
            ..policy()
        };
        let g = Greylist::default();
        g.open(dir.path()).unwrap();
        // Far more changes than live entries: the table stays at its bound,
        // and the log is rewritten instead of growing without end.
        let total = 2 * COMPACT_SLACK + 1000;
        for i in 0..total {
            let ip: IpAddr = format!("10.{}.{}.1", (i >> 8) & 255, i & 255)
                .parse()
                .unwrap();
            g.check(&t, ip, &format!("s{i}@x"), "b@y", 1000 + (i as u64) / 100);
        }
        assert!(g.len() <= 100);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = std::fs::read_to_string(log_path(dir.path()))
                .unwrap()
                .lines()
                .count();
            if lines < total {
                assert!(lines < COMPACT_SLACK + 2 * 100 + 1000, "{lines}");
                break;
            }
            assert!(Instant::now() < deadline, "never compacted: {lines} lines");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
