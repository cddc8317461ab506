//! `queue`: the durable spool in `<state>/queue/`.
//!
//! Each entry is one file, `<id>.q`: a header line `MAILCQ1 <n>`, the
//! envelope as `n` bytes of JSON, then the message as received (trace
//! fields included). It is written into `queue/tmp/` and its data synced by
//! the session's own blocking task (so concurrent sessions sync in parallel
//! and the file system merges their journal commits), then a *group
//! commit* renames every file that is ready into `queue/` and syncs the
//! directory once for all of them. Only then does `store` return, and only
//! then may the SMTP session answer 250.
//!
//! Delivery progress is written beside it as `<id>.state` (the envelope
//! again, without sync: if a crash loses it, deliveries are retried and find
//! the copies they already made).
//!
//! Recovery at start keeps an entry only when its header and envelope parse
//! and the message has the size the envelope records; anything else is the
//! debris of a crash before the commit, for which no 250 was ever sent.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::envelope::{Accepted, Envelope, Status};
use crate::store::fsutil;

/// A message in the queue, with its bytes when they are at hand.
#[derive(Debug, Clone)]
pub struct Entry {
    pub envelope: Envelope,
    /// `None` after recovery: read from disk when needed.
    pub message: Option<Arc<Vec<u8>>>,
    /// Delivery was attempted before (recovery, retry): deliveries must
    /// check for copies made by the earlier attempt.
    pub retried: bool,
}

struct CommitRequest {
    ids: Vec<String>,
    done: tokio::sync::oneshot::Sender<std::io::Result<()>>,
}

pub struct Spool {
    dir: PathBuf,
    tmp: PathBuf,
    /// Finished queue files kept for reuse (`queue/free/`): creating and
    /// deleting a file per message makes ext4's inode allocator scan past
    /// recently deleted inodes, which costs more CPU than the mail itself.
    free_dir: PathBuf,
    free: Mutex<Vec<PathBuf>>,
    commits: std::sync::mpsc::Sender<CommitRequest>,
    index: Mutex<BTreeMap<String, Envelope>>,
    in_flight: Mutex<HashSet<String>>,
    /// Number of group commits and of messages they covered (for logs and
    /// the benchmark).
    pub stats: Arc<CommitStats>,
}

#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: AtomicU64,
    pub messages: AtomicU64,
}

/// A new queue id: seconds since the epoch, a per-process random part and a
/// counter, in upper-case hex (sortable by arrival, unique across restarts).
pub fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        // std's RandomState is seeded from the OS RNG once per process.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id() as u64);
        h.finish()
    });
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{secs:X}{:06X}{n:05X}", *PROCESS & 0xFF_FFFF)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

const MAGIC: &str = "MAILCQ1";

/// The queue file of an entry: header line, envelope JSON, message.
fn encode(envelope_json: &[u8]) -> Vec<u8> {
    format!("{MAGIC} {}\n", envelope_json.len()).into_bytes()
}

/// Reads the header and envelope of a queue file. Returns the envelope and
/// the offset where the message starts.
fn read_head(path: &Path) -> std::io::Result<(Envelope, u64)> {
    use std::io::{BufRead, Read};
    let f = std::fs::File::open(path)?;
    let mut r = std::io::BufReader::new(f);
    let mut line = String::new();
    (&mut r).take(64).read_line(&mut line)?;
    let len: usize = line
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.trim().parse().ok())
        .filter(|n| *n <= 16 << 20)
        .ok_or_else(|| std::io::Error::other("not a queue file"))?;
    let mut json = vec![0u8; len];
    r.read_exact(&mut json)?;
    let env: Envelope = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
    Ok((env, (line.len() + len) as u64))
}

impl Spool {
    /// Opens (creating if needed) the spool under `state_dir` and recovers
    /// what is in it. Returns the spool and the recovered entries.
    pub fn open(state_dir: &Path) -> std::io::Result<(Arc<Spool>, Vec<Entry>)> {
        let dir = state_dir.join("queue");
        let tmp = dir.join("tmp");
        let free_dir = dir.join("free");
        fsutil::create_private_dir(&tmp)?;
        fsutil::create_private_dir(&free_dir)?;
        let free: Vec<PathBuf> = std::fs::read_dir(&free_dir)?
            .flatten()
            .map(|e| e.path())
            .collect();
        // Debris of writes that never committed.
        for e in std::fs::read_dir(&tmp)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let mut recovered = Vec::new();
        let mut index = BTreeMap::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".q") else {
                continue;
            };
            let path = dir.join(&name);
            let valid = read_head(&path).ok().filter(|(env, offset)| {
                env.id == id && std::fs::metadata(&path).is_ok_and(|m| m.len() == offset + env.size)
            });
            let Some((mut env, _)) = valid else {
                tracing::warn!(
                    id,
                    "dropping an incomplete queue entry (written before a crash, never acknowledged)"
                );
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(dir.join(format!("{id}.state")));
                continue;
            };
            // Newer delivery progress, if it survived.
            if let Some(state) = std::fs::read(dir.join(format!("{id}.state")))
                .ok()
                .and_then(|b| serde_json::from_slice::<Envelope>(&b).ok())
                .filter(|s| s.id == env.id && s.deliveries.len() == env.deliveries.len())
            {
                env = state;
            }
            index.insert(id.to_string(), env.clone());
            recovered.push(Entry {
                envelope: env,
                message: None,
                retried: true,
            });
        }
        // Progress files whose entry is gone.
        for e in std::fs::read_dir(&dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".state")
                && !index.contains_key(id)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
        fsutil::sync_dir(&dir)?;
        let (tx, rx) = std::sync::mpsc::channel::<CommitRequest>();
        let stats = Arc::new(CommitStats::default());
        let spool = Arc::new(Spool {
            dir: dir.clone(),
            tmp: tmp.clone(),
            free_dir,
            free: Mutex::new(free),
            commits: tx,
            index: Mutex::new(index),
            in_flight: Mutex::new(HashSet::new()),
            stats: stats.clone(),
        });
        std::thread::Builder::new()
            .name("mailc-commit".into())
            .spawn(move || committer(dir, tmp, rx, stats))?;
        Ok((spool, recovered))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a message durably. Returns once the message and envelope are
    /// on stable storage (file data, directory entry).
    pub async fn store(&self, accepted: Accepted) -> std::io::Result<Entry> {
        let Accepted { envelope, message } = accepted;
        if !valid_id(&envelope.id) {
            return Err(std::io::Error::other("invalid queue id"));
        }
        let json = serde_json::to_vec(&envelope).map_err(std::io::Error::other)?;
        let message = Arc::new(message);
        let path = self.tmp.join(format!("{}.q", envelope.id));
        let msg = message.clone();
        let recycled = self.free.lock().ok().and_then(|mut f| f.pop());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let reused = recycled.is_some_and(|old| std::fs::rename(&old, &path).is_ok());
            let mut f = if reused {
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)?
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)?
            };
            f.write_all(&encode(&json))?;
            f.write_all(&json)?;
            f.write_all(&msg)?;
            f.sync_data()
        })
        .await
        .map_err(std::io::Error::other)??;
        let (done, wait) = tokio::sync::oneshot::channel();
        self.commits
            .send(CommitRequest {
                ids: vec![envelope.id.clone()],
                done,
            })
            .map_err(|_| std::io::Error::other("queue committer stopped"))?;
        wait.await
            .map_err(|_| std::io::Error::other("queue committer stopped"))??;
        if let Ok(mut idx) = self.index.lock() {
            idx.insert(envelope.id.clone(), envelope.clone());
        }
        Ok(Entry {
            envelope,
            message: Some(message),
            retried: false,
        })
    }

    /// Reads a queued message from disk.
    pub fn read_message(&self, id: &str) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek};
        if !valid_id(id) {
            return Err(std::io::Error::other("invalid queue id"));
        }
        let path = self.dir.join(format!("{id}.q"));
        let (env, offset) = read_head(&path)?;
        let mut f = std::fs::File::open(&path)?;
        f.seek(std::io::SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(env.size as usize);
        f.take(env.size).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Records delivery progress. Not synced: if it is lost in a crash, the
    /// deliveries are retried and find their earlier copies.
    pub fn update(&self, envelope: &Envelope) -> std::io::Result<()> {
        let json = serde_json::to_vec(envelope).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.dir.join(format!("{}.state", envelope.id)), &json)?;
        if let Ok(mut idx) = self.index.lock() {
            idx.insert(envelope.id.clone(), envelope.clone());
        }
        Ok(())
    }

    /// Removes a finished entry (every delivery done). Its file goes to the
    /// pool of files for reuse, up to a bound.
    pub fn finish(&self, id: &str) -> std::io::Result<()> {
        const MAX_FREE: usize = 4096;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if let Ok(mut idx) = self.index.lock() {
            idx.remove(id);
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.state")));
        let path = self.dir.join(format!("{id}.q"));
        let pooled = self
            .free
            .lock()
            .map(|f| f.len() < MAX_FREE)
            .unwrap_or(false);
        if pooled {
            let spare = self.free_dir.join(format!(
                "{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            if std::fs::rename(&path, &spare).is_ok() {
                if let Ok(mut f) = self.free.lock() {
                    f.push(spare);
                }
                return Ok(());
            }
        }
        std::fs::remove_file(path)
    }

    pub fn list(&self) -> Vec<Envelope> {
        self.index
            .lock()
            .map(|i| i.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<Envelope> {
        self.index.lock().ok().and_then(|i| i.get(id).cloned())
    }

    /// Marks an entry as being delivered; false if it already is.
    pub fn begin(&self, id: &str) -> bool {
        self.in_flight
            .lock()
            .map(|mut s| s.insert(id.to_string()))
            .unwrap_or(false)
    }

    pub fn end(&self, id: &str) {
        if let Ok(mut s) = self.in_flight.lock() {
            s.remove(id);
        }
    }

    /// Removes an entry on request of the admin. Refused while it is being
    /// delivered.
    pub fn remove(&self, id: &str) -> Result<Envelope, String> {
        if !valid_id(id) {
            return Err(format!("{id}: not a queue id"));
        }
        if !self.begin(id) {
            return Err(format!("{id}: being delivered right now, try again"));
        }
        let result = match self.get(id) {
            None => Err(format!("{id}: no such queue entry")),
            Some(env) => self
                .finish(id)
                .map(|_| env)
                .map_err(|e| format!("{id}: {e}")),
        };
        self.end(id);
        result
    }

    /// Entries with a pending delivery of the given kind that is due.
    pub fn due(&self, now: u64, local: bool) -> Vec<Envelope> {
        self.list()
            .into_iter()
            .filter(|e| {
                e.deliveries.iter().any(|d| {
                    matches!(d.status, Status::Pending)
                        && d.next_attempt <= now
                        && matches!(d.destination, crate::envelope::Destination::Mailbox { .. })
                            == local
                })
            })
            .collect()
    }

    /// Makes every pending delivery due now (`mailc queue flush`).
    pub fn flush(&self) -> usize {
        let mut n = 0;
        for mut env in self.list() {
            let mut changed = false;
            for d in &mut env.deliveries {
                if matches!(d.status, Status::Pending) && d.next_attempt > 0 {
                    d.next_attempt = 0;
                    changed = true;
                }
            }
            if changed && self.update(&env).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Reads an entry's envelope from the spool files (for `mailc queue`
    /// when the server is not running).
    pub fn read_envelope(dir: &Path, id: &str) -> Option<Envelope> {
        if !valid_id(id) {
            return None;
        }
        if let Some(state) = std::fs::read(dir.join(format!("{id}.state")))
            .ok()
            .and_then(|b| serde_json::from_slice::<Envelope>(&b).ok())
        {
            return Some(state);
        }
        read_head(&dir.join(format!("{id}.q"))).ok().map(|(e, _)| e)
    }
}

/// The group-commit thread: takes every commit request that is waiting
/// (their files already written and synced), renames them all into place,
/// syncs the directory once, and answers them all.
fn committer(
    dir: PathBuf,
    tmp: PathBuf,
    rx: std::sync::mpsc::Receiver<CommitRequest>,
    stats: Arc<CommitStats>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 1024 {
                break;
            }
        }
        let mut results: Vec<std::io::Result<()>> = Vec::with_capacity(batch.len());
        for req in &batch {
            let mut r = Ok(());
            for id in &req.ids {
                let name = format!("{id}.q");
                if let Err(e) = std::fs::rename(tmp.join(&name), dir.join(&name)) {
                    r = Err(e);
                }
            }
            results.push(r);
        }
        let synced = fsutil::sync_dir(&dir);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .messages
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for (req, r) in batch.into_iter().zip(results) {
            let r = match (&synced, r) {
                (Err(e), _) => Err(std::io::Error::new(e.kind(), e.to_string())),
                (Ok(()), r) => r,
            };
            if r.is_err() {
                // Leave nothing half-committed behind: the client gets a 451
                // and will send the message again.
                for id in &req.ids {
                    let name = format!("{id}.q");
                    let _ = std::fs::remove_file(dir.join(&name));
                    let _ = std::fs::remove_file(tmp.join(&name));
                }
            }
            let _ = req.done.send(r);
        }
    }
}
