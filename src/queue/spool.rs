//! The durable spool in `<state>/queue/`: the [`Queue`] the server runs on.
//!
//! Accepted messages are appended to a segment file (`seg/<n>`), a log of
//! records (see [`log`]). One committer thread takes every message that is
//! waiting, appends them all with one write and makes them durable with one
//! `fdatasync`: the *group commit*. Only then does [`Spool::store`] return,
//! and only then may the SMTP session answer 250. A segment is created (and
//! its directory synced) before the first record goes into it, so appending
//! never needs a directory sync.
//!
//! When every local delivery of an entry is durable and nothing else is
//! pending, its id is appended to `done.log`; a segment whose entries are all
//! done is deleted. Delivery progress of entries that stay queued is kept in
//! `state/<id>` (the envelope again). Neither is synced: if a crash loses
//! them, deliveries are retried and find the copies they already made.
//!
//! Recovery reads every segment up to its first record that does not check
//! out (a torn tail, which was never acknowledged), minus the done ids.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::{RemoveError, SpoolError};
use super::{Entry, Queue, StoreFuture, log, valid_id};
use crate::envelope::{Accepted, Envelope};
use crate::store::fsutil;

/// A segment is closed for new records past this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Most messages in one group commit.
const MAX_BATCH: usize = 1024;

/// Where a message lives.
#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u64,
    offset: u64,
    len: u64,
}

struct Append {
    json: Vec<u8>,
    message: Arc<Vec<u8>>,
    done: tokio::sync::oneshot::Sender<std::io::Result<Location>>,
}

#[derive(Debug, Default)]
struct Segments {
    /// Live (not done) entries per segment.
    live: BTreeMap<u64, usize>,
    /// The segment new records go to.
    current: u64,
}

pub struct Spool {
    dir: PathBuf,
    appends: std::sync::mpsc::Sender<Append>,
    index: Mutex<BTreeMap<String, (Envelope, Location)>>,
    segments: Arc<Mutex<Segments>>,
    done_log: Mutex<std::fs::File>,
    in_flight: Mutex<HashSet<String>>,
    /// Group commits and the messages they covered.
    pub stats: Arc<CommitStats>,
}

#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: AtomicU64,
    pub messages: AtomicU64,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join("seg").join(format!("{n:012}"))
}

/// What is in a spool directory: live entries with their locations, the
/// segments found, and the done ids.
struct Scan {
    entries: BTreeMap<String, (Envelope, Location)>,
    segments: BTreeMap<u64, usize>,
}

fn scan_dir(dir: &Path) -> std::io::Result<Scan> {
    let done: HashSet<String> = std::fs::read_to_string(dir.join("done.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let mut seg_numbers: Vec<u64> = match std::fs::read_dir(dir.join("seg")) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    seg_numbers.sort();
    let mut entries = BTreeMap::new();
    let mut segments = BTreeMap::new();
    for n in seg_numbers {
        let file = std::fs::File::open(segment_path(dir, n))?;
        let mut live = 0;
        for rec in log::scan(file) {
            let Ok(mut env) = serde_json::from_slice::<Envelope>(&rec.envelope_json) else {
                continue;
            };
            if done.contains(&env.id) || !valid_id(&env.id) {
                continue;
            }
            if let Some(state) = std::fs::read(dir.join("state").join(&env.id))
                .ok()
                .and_then(|b| serde_json::from_slice::<Envelope>(&b).ok())
                .filter(|s| s.id == env.id && s.deliveries.len() == env.deliveries.len())
            {
                env = state;
            }
            live += 1;
            entries.insert(
                env.id.clone(),
                (
                    env,
                    Location {
                        segment: n,
                        offset: rec.message_offset,
                        len: rec.message_len,
                    },
                ),
            );
        }
        segments.insert(n, live);
    }
    Ok(Scan { entries, segments })
}

impl Spool {
    /// Opens (creating if needed) the spool under `state_dir` and recovers
    /// what is in it. Returns the spool and the recovered entries.
    pub fn open(state_dir: &Path) -> std::io::Result<(Arc<Spool>, Vec<Entry>)> {
        let dir = state_dir.join("queue");
        fsutil::create_private_dir(&dir.join("seg"))?;
        fsutil::create_private_dir(&dir.join("state"))?;
        let scan = scan_dir(&dir)?;

        // Compact: drop segments with nothing live, rewrite the done log
        // with only the ids that still appear in a kept segment.
        let mut live_segments = scan.segments.clone();
        for (n, live) in &scan.segments {
            if *live == 0 {
                let _ = std::fs::remove_file(segment_path(&dir, *n));
                live_segments.remove(n);
            }
        }
        let done_path = dir.join("done.log");
        let still_done: Vec<String> = if live_segments.is_empty() {
            Vec::new()
        } else {
            let kept: HashSet<u64> = live_segments.keys().copied().collect();
            let mut ids = Vec::new();
            let old: HashSet<String> = std::fs::read_to_string(&done_path)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            for n in &kept {
                if let Ok(f) = std::fs::File::open(segment_path(&dir, *n)) {
                    for rec in log::scan(f) {
                        if let Ok(env) = serde_json::from_slice::<Envelope>(&rec.envelope_json)
                            && old.contains(&env.id)
                        {
                            ids.push(env.id);
                        }
                    }
                }
            }
            ids
        };
        let mut text = still_done.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        fsutil::write_atomic_durable(&done_path, text.as_bytes())?;
        // State files of entries that are gone.
        if let Ok(rd) = std::fs::read_dir(dir.join("state")) {
            for e in rd.flatten() {
                if !scan
                    .entries
                    .contains_key(e.file_name().to_string_lossy().as_ref())
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }

        // New records go to a fresh segment, created and made durable now.
        let current = live_segments.keys().next_back().map_or(1, |n| n + 1);
        let segment = create_segment(&dir, current)?;
        let mut live = live_segments;
        live.insert(current, 0);
        let segments = Arc::new(Mutex::new(Segments { live, current }));

        let recovered = scan
            .entries
            .values()
            .map(|(env, _)| Entry {
                envelope: env.clone(),
                message: None,
                retried: true,
            })
            .collect();
        let done_log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&done_path)?;
        let (tx, rx) = std::sync::mpsc::channel::<Append>();
        let stats = Arc::new(CommitStats::default());
        let spool = Arc::new(Spool {
            dir: dir.clone(),
            appends: tx,
            index: Mutex::new(scan.entries),
            segments: segments.clone(),
            done_log: Mutex::new(done_log),
            in_flight: Mutex::new(HashSet::new()),
            stats: stats.clone(),
        });
        std::thread::Builder::new()
            .name("mailc-commit".into())
            .spawn(move || committer(dir, segment, current, rx, segments, stats))?;
        Ok((spool, recovered))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a message durably. Returns once the message and envelope are
    /// on stable storage.
    async fn store_durably(&self, accepted: Accepted) -> Result<Entry, SpoolError> {
        let Accepted { envelope, message } = accepted;
        if !valid_id(&envelope.id) {
            return Err(SpoolError::InvalidId);
        }
        let json = serde_json::to_vec(&envelope).map_err(std::io::Error::other)?;
        let message = Arc::new(message);
        let (done, wait) = tokio::sync::oneshot::channel();
        self.appends
            .send(Append {
                json,
                message: message.clone(),
                done,
            })
            .map_err(|_| std::io::Error::other("queue committer stopped"))?;
        let location = wait
            .await
            .map_err(|_| std::io::Error::other("queue committer stopped"))??;
        if let Ok(mut idx) = self.index.lock() {
            idx.insert(envelope.id.clone(), (envelope.clone(), location));
        }
        Ok(Entry {
            envelope,
            message: Some(message),
            retried: false,
        })
    }

    fn read_segment(&self, id: &str, loc: Location) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(segment_path(&self.dir, loc.segment))?;
        f.seek(std::io::SeekFrom::Start(loc.offset))?;
        let mut buf = Vec::with_capacity(loc.len as usize);
        f.take(loc.len).read_to_end(&mut buf)?;
        if buf.len() as u64 != loc.len {
            return Err(std::io::Error::other(format!(
                "{id}: segment shorter than recorded"
            )));
        }
        Ok(buf)
    }

    /// Records delivery progress of an entry that stays queued. Not synced.
    pub fn update(&self, envelope: &Envelope) -> std::io::Result<()> {
        let json = serde_json::to_vec(envelope).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.dir.join("state").join(&envelope.id), &json)?;
        if let Ok(mut idx) = self.index.lock()
            && let Some(e) = idx.get_mut(&envelope.id)
        {
            e.0 = envelope.clone();
        }
        Ok(())
    }

    fn mark_done(&self, id: &str) -> std::io::Result<()> {
        let removed = self.index.lock().ok().and_then(|mut i| i.remove(id));
        let Some((_, loc)) = removed else {
            return Ok(());
        };
        if let Ok(mut log) = self.done_log.lock() {
            log.write_all(format!("{id}\n").as_bytes())?;
        }
        let _ = std::fs::remove_file(self.dir.join("state").join(id));
        let mut empty = Vec::new();
        if let Ok(mut segs) = self.segments.lock() {
            if let Some(n) = segs.live.get_mut(&loc.segment) {
                *n = n.saturating_sub(1);
            }
            let current = segs.current;
            empty = segs
                .live
                .iter()
                .filter(|(s, n)| **n == 0 && **s < current)
                .map(|(s, _)| *s)
                .collect();
            for s in &empty {
                segs.live.remove(s);
            }
        }
        for s in empty {
            let _ = std::fs::remove_file(segment_path(&self.dir, s));
        }
        Ok(())
    }

    /// Lists the entries of a spool directory without opening it (for
    /// `mailc queue` when no server runs).
    pub fn list_offline(state_dir: &Path) -> std::io::Result<Vec<Envelope>> {
        Ok(scan_dir(&state_dir.join("queue"))?
            .entries
            .into_values()
            .map(|(e, _)| e)
            .collect())
    }

    /// Removes an entry from a spool no server has open.
    pub fn remove_offline(state_dir: &Path, id: &str) -> Result<Envelope, RemoveError> {
        let dir = state_dir.join("queue");
        let scan = scan_dir(&dir).map_err(RemoveError::Scan)?;
        let (env, _) = scan
            .entries
            .get(id)
            .cloned()
            .ok_or_else(|| RemoveError::NoSuchEntry(id.to_string()))?;
        let io = |source| RemoveError::Io {
            id: id.to_string(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("done.log"))
            .map_err(io)?;
        f.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        let _ = std::fs::remove_file(dir.join("state").join(id));
        Ok(env)
    }
}

impl Queue for Spool {
    fn store(&self, accepted: Accepted) -> StoreFuture<'_> {
        Box::pin(self.store_durably(accepted))
    }

    /// Reads a queued message from its segment.
    fn read_message(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        let loc = self
            .index
            .lock()
            .ok()
            .and_then(|i| i.get(id).map(|(_, l)| *l))
            .ok_or_else(|| SpoolError::NotQueued(id.to_string()))?;
        self.read_segment(id, loc)
            .map_err(|source| SpoolError::Read {
                id: id.to_string(),
                source,
            })
    }

    fn get(&self, id: &str) -> Option<Envelope> {
        self.index
            .lock()
            .ok()
            .and_then(|i| i.get(id).map(|(e, _)| e.clone()))
    }

    fn list(&self) -> Vec<Envelope> {
        self.index
            .lock()
            .map(|i| i.values().map(|(e, _)| e.clone()).collect())
            .unwrap_or_default()
    }

    /// The change is recorded in `state/<id>` (unsynced, like
    /// [`Spool::update`]) unless it finished the entry.
    fn modify(&self, id: &str, f: &mut dyn FnMut(&mut Envelope)) -> Option<(Envelope, bool)> {
        let mut idx = self.index.lock().ok()?;
        let (env, _) = idx.get_mut(id)?;
        let was_done = env.is_done();
        f(env);
        let now = env.clone();
        // A finished entry is about to leave the queue: no progress file
        // for it (if a crash comes first, recovery retries its deliveries,
        // which find the copies they made).
        if !now.is_done() {
            let json = serde_json::to_vec(&now).ok()?;
            if let Err(e) = fsutil::write_atomic(&self.dir.join("state").join(id), &json) {
                tracing::warn!(id, error = %e, "cannot record queue progress (kept in memory)");
            }
        }
        drop(idx);
        let finished = !was_done && now.is_done();
        Some((now, finished))
    }

    /// Appends the id to `done.log` (unsynced) and deletes the segment when
    /// nothing in it is live any more.
    fn finish(&self, id: &str) -> Result<(), SpoolError> {
        self.mark_done(id).map_err(|source| SpoolError::Finish {
            id: id.to_string(),
            source,
        })
    }

    fn begin(&self, id: &str) -> bool {
        self.in_flight
            .lock()
            .map(|mut s| s.insert(id.to_string()))
            .unwrap_or(false)
    }

    fn end(&self, id: &str) {
        if let Ok(mut s) = self.in_flight.lock() {
            s.remove(id);
        }
    }

    /// Synced, so a crash does not bring the entry back.
    fn remove(&self, id: &str) -> Result<Envelope, RemoveError> {
        if !valid_id(id) {
            return Err(RemoveError::NotAnId(id.to_string()));
        }
        if !self.begin(id) {
            return Err(RemoveError::Busy(id.to_string()));
        }
        let result = match self.get(id) {
            None => Err(RemoveError::NoSuchEntry(id.to_string())),
            Some(env) => self
                .mark_done(id)
                .and_then(|_| self.done_log.lock().map_or(Ok(()), |f| f.sync_data()))
                .map(|_| env)
                .map_err(|source| RemoveError::Io {
                    id: id.to_string(),
                    source,
                }),
        };
        self.end(id);
        result
    }
}

fn create_segment(dir: &Path, n: u64) -> std::io::Result<std::fs::File> {
    let path = segment_path(dir, n);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    f.sync_all()?;
    fsutil::sync_dir(&dir.join("seg"))?;
    Ok(f)
}

/// The group-commit thread: appends every waiting message to the current
/// segment with one write, syncs once, answers them all; starts a new
/// segment when the current one is full.
fn committer(
    dir: PathBuf,
    mut file: std::fs::File,
    mut current: u64,
    rx: std::sync::mpsc::Receiver<Append>,
    segments: Arc<Mutex<Segments>>,
    stats: Arc<CommitStats>,
) {
    let mut size = file.metadata().map_or(0, |m| m.len());
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        buf.clear();
        let mut locations = Vec::with_capacity(batch.len());
        for a in &batch {
            let start = buf.len() as u64;
            let msg_at = log::encode(&mut buf, &a.json, &a.message) as u64;
            locations.push(Location {
                segment: current,
                offset: size + start + msg_at,
                len: a.message.len() as u64,
            });
        }
        let written = file.write_all(&buf).and_then(|_| file.sync_data());
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .messages
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        match written {
            Ok(()) => {
                size += buf.len() as u64;
                // Count the new entries before anyone hears of them, so the
                // segment cannot be deleted under them.
                if let Ok(mut segs) = segments.lock() {
                    *segs.live.entry(current).or_insert(0) += batch.len();
                }
                for (a, loc) in batch.into_iter().zip(locations) {
                    let _ = a.done.send(Ok(loc));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "queue write failed");
                // The segment may hold a partial batch now: never append to
                // it again. Its valid records stay readable.
                for a in batch {
                    let _ = a
                        .done
                        .send(Err(std::io::Error::new(e.kind(), e.to_string())));
                }
                size = SEGMENT_BYTES;
            }
        }
        if size >= SEGMENT_BYTES {
            match create_segment(&dir, current + 1) {
                Ok(f) => {
                    current += 1;
                    file = f;
                    size = 0;
                    if let Ok(mut segs) = segments.lock() {
                        segs.live.entry(current).or_insert(0);
                        segs.current = current;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot start a new queue segment"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Destination;

    /// One pending delivery to alice, due at once (the contract tests'
    /// message).
    fn accepted(id: &str, body: &str) -> Accepted {
        let alice = Destination::Mailbox {
            address: "alice@example.test".into(),
        };
        crate::queue::contract::accepted(id, body, &[alice], 0)
    }

    #[tokio::test]
    async fn store_recover_finish() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, recovered) = Spool::open(dir.path()).unwrap();
            assert!(recovered.is_empty());
            for (id, body) in [("A1", "first"), ("B2", "second"), ("C3", "third")] {
                spool.store(accepted(id, body)).await.unwrap();
            }
            assert_eq!(spool.read_message("B2").unwrap(), b"second");
            spool.finish("A1").unwrap();
            let mut env = spool.get("C3").unwrap();
            env.deliveries[0].attempts = 7;
            spool.update(&env).unwrap();
        }
        // "Restart": B2 and C3 come back, with C3's progress.
        let (spool, recovered) = Spool::open(dir.path()).unwrap();
        let ids: Vec<&str> = recovered.iter().map(|e| e.envelope.id.as_str()).collect();
        assert_eq!(ids, vec!["B2", "C3"]);
        assert_eq!(recovered[1].envelope.deliveries[0].attempts, 7);
        assert_eq!(spool.read_message("C3").unwrap(), b"third");
        spool.finish("B2").unwrap();
        spool.finish("C3").unwrap();
        drop(spool);
        let (_, recovered) = Spool::open(dir.path()).unwrap();
        assert!(recovered.is_empty());
        // Old segments were compacted away.
        let segs = std::fs::read_dir(dir.path().join("queue/seg"))
            .unwrap()
            .count();
        assert_eq!(segs, 1, "only the fresh current segment remains");
    }

    #[tokio::test]
    async fn a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(dir.path()).unwrap();
            spool.store(accepted("A1", "kept")).await.unwrap();
        }
        let seg = std::fs::read_dir(dir.path().join("queue/seg"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .max()
            .unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        let mut torn = Vec::new();
        log::encode(&mut torn, b"{\"id\":\"X\"}", b"never acknowledged");
        f.write_all(&torn[..torn.len() - 5]).unwrap();
        drop(f);
        let (spool, recovered) = Spool::open(dir.path()).unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(spool.read_message("A1").unwrap(), b"kept");
    }
}
