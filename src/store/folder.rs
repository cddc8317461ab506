//! One Maildir folder (INBOX or a `.Sub` folder) with its index: the UIDs,
//! flags, MODSEQs, sizes and dates IMAP and POP3 need.
//!
//! The UID of a message is also written into its file name (`,U=<uid>`,
//! beside Dovecot's `,S=<size>`), and the folder's UIDVALIDITY lives in a
//! small file synced when the folder is created. So the index
//! (`mailc.index`) is only a cache: when it is missing or damaged it is
//! rebuilt from the file names with the same UIDVALIDITY and UIDs. System
//! flags live in the file names (`:2,FRS`), so mutt, neomutt and Dovecot
//! reading the same Maildir agree; keywords live in the index.
//!
//! Every change goes through [`Folder::sync`] and friends under one lock per
//! folder (see [`FolderLocks`]), so sessions, POP3 and delivery never race
//! each other inside this process; changes by other programs (a new file in
//! `new/`, a renamed or deleted file) are picked up by the next sync.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{fsutil, maildir};

/// IMAP system flags as Maildir info letters.
pub const FLAG_LETTERS: &[(char, &str)] = &[
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('P', "$Forwarded"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub uid: u32,
    /// Current file name in `cur/`.
    pub file: String,
    /// System flags as sorted Maildir letters (`FRS`).
    pub flags: String,
    /// IMAP keywords (`$Junk`, `NonJunk`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    pub modseq: u64,
    /// Bytes in the file.
    pub size: u64,
    /// Bytes with every line end as CRLF (what IMAP and POP3 send).
    pub vsize: u64,
    /// Unix time of arrival (the file's mtime).
    pub internal_date: i64,
}

impl Message {
    pub fn has(&self, letter: char) -> bool {
        self.flags.contains(letter)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// Sorted by UID.
    pub messages: Vec<Message>,
    /// Recently expunged UIDs with the MODSEQ of their expunge (for
    /// QRESYNC's VANISHED), oldest first, bounded.
    #[serde(default)]
    pub expunged: Vec<(u32, u64)>,
    /// Messages from this UID on are \Recent: no read-write session has
    /// had the folder selected since they arrived (RFC 3501 §2.3.2). An
    /// index written before this field existed reads as 0: no message is
    /// recent then (see [`Folder::load`]).
    #[serde(default)]
    pub recent_from: u32,
    /// Keywords defined in the folder, in the order of first use. IMAP's
    /// FLAGS lists them even when no message carries one any more (as
    /// Dovecot does), so the keyword list a client shows does not shrink
    /// under it. Bounded: past [`MAX_DEFINED_KEYWORDS`], keywords no
    /// message carries are forgotten first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// Keywords a folder remembers (see [`Index::keywords`]).
pub const MAX_DEFINED_KEYWORDS: usize = 64;

impl Index {
    /// Records keywords set on a message: new ones (compared without case,
    /// RFC 3501 §2.3.2) are added; when that passes the bound, keywords no
    /// message carries are dropped, oldest first.
    pub fn define_keywords(&mut self, keywords: &[String]) {
        for k in keywords {
            if !self.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                self.keywords.push(k.clone());
            }
        }
        if self.keywords.len() > MAX_DEFINED_KEYWORDS {
            let used: std::collections::HashSet<String> = self
                .messages
                .iter()
                .flat_map(|m| m.keywords.iter().map(|k| k.to_ascii_lowercase()))
                .collect();
            let mut excess = self.keywords.len() - MAX_DEFINED_KEYWORDS;
            self.keywords.retain(|k| {
                if excess > 0 && !used.contains(&k.to_ascii_lowercase()) {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }
}

const MAX_EXPUNGED: usize = 100_000;
/// Numbered files of `cur/` by UID: name and parsed name.
type Found = BTreeMap<u32, (String, NameParts)>;
const INDEX_FILE: &str = "mailc.index";
const UIDVALIDITY_FILE: &str = "mailc.uidvalidity";

/// What a sync saw change since the index was last written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<u32>,
    pub expunged: Vec<u32>,
    pub flags_changed: Vec<u32>,
    /// UIDs that were in `new/` (the IMAP \Recent flag).
    pub recent: Vec<u32>,
}

/// Per-folder locks shared by everything in one server process. Each lock
/// guards the folder's [`Memo`]: its index as last synced, so sessions do
/// not rescan an unchanged folder for every command.
#[derive(Debug, Default)]
pub struct FolderLocks {
    locks: Mutex<HashMap<PathBuf, Arc<Mutex<Memo>>>>,
    /// Header bytes cached over all folders.
    cached: Arc<std::sync::atomic::AtomicUsize>,
    /// Calls to [`FolderLocks::get`] since the last sweep.
    calls: std::sync::atomic::AtomicUsize,
}

/// Header bytes cached over all folders of the process.
const HEADER_CACHE_TOTAL: usize = 256 * 1024 * 1024;
/// A folder's memo unused this long is dropped (its index and headers are
/// read again when the folder is next used).
const MEMO_IDLE: std::time::Duration = std::time::Duration::from_secs(300);
/// The memo table is swept for idle folders every this many lookups.
const SWEEP_EVERY: usize = 4096;

/// How long a memoized index is trusted without a rescan, even when the
/// directories look unchanged (a change within one mtime tick, or between a
/// change of ours and the stamp taken after it, is found by then).
const MEMO_TRUST: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a stamp comparison is trusted: commands of the sessions of one
/// folder in between do not stat the directories again. Changes by this
/// process mark the memo stale themselves; other programs' changes show up
/// this much later at most.
const STAMP_TRUST: std::time::Duration = std::time::Duration::from_millis(100);

/// Bytes of message headers cached per folder (SEARCH, SORT and ENVELOPE
/// read only headers; message contents never change).
const HEADER_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A folder's index kept in memory, with the directory mtimes it matches,
/// and a bounded cache of message headers by UID.
#[derive(Debug, Default)]
pub struct Memo {
    /// The process-wide count of cached header bytes.
    budget: Arc<std::sync::atomic::AtomicUsize>,
    /// Last use (any lookup of the folder's lock).
    used: Option<std::time::Instant>,
    index: Option<Index>,
    stamp: Option<(std::time::SystemTime, std::time::SystemTime)>,
    scanned: Option<std::time::Instant>,
    /// When the stamp was last compared with the directories.
    checked: Option<std::time::Instant>,
    headers: HashMap<u32, Arc<[u8]>>,
    header_bytes: usize,
}

impl Drop for Memo {
    fn drop(&mut self) {
        self.drop_headers();
    }
}

impl Memo {
    /// Records that the index matches the files now (after a change made
    /// under the lock).
    pub fn restamp(&mut self, folder: &Folder) {
        self.stamp = folder.stamp();
        self.checked = Some(std::time::Instant::now());
    }

    /// A cached header.
    pub fn header(&self, uid: u32) -> Option<Arc<[u8]>> {
        self.headers.get(&uid).cloned()
    }

    /// Caches a header; when the folder's cache is full it starts over, and
    /// nothing is cached while the process-wide budget is spent.
    pub fn put_header(&mut self, uid: u32, header: Arc<[u8]>) {
        use std::sync::atomic::Ordering;
        if header.len() > HEADER_CACHE_BYTES / 64 {
            return;
        }
        if self.header_bytes + header.len() > HEADER_CACHE_BYTES {
            self.drop_headers();
        }
        if self.budget.load(Ordering::Relaxed) + header.len() > HEADER_CACHE_TOTAL {
            return;
        }
        self.header_bytes += header.len();
        self.budget.fetch_add(header.len(), Ordering::Relaxed);
        if let Some(old) = self.headers.insert(uid, header) {
            self.header_bytes -= old.len();
            self.budget.fetch_sub(old.len(), Ordering::Relaxed);
        }
    }

    fn drop_headers(&mut self) {
        self.budget
            .fetch_sub(self.header_bytes, std::sync::atomic::Ordering::Relaxed);
        self.headers.clear();
        self.header_bytes = 0;
    }

    /// The index as last synced, if any.
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }

    /// Makes the next sync rescan the directories (keeps what it knows).
    pub fn stale(&mut self) {
        self.stamp = None;
        self.checked = None;
    }

    /// Forgets the index (the next sync rescans) and the cached headers.
    pub fn clear(&mut self) {
        self.index = None;
        self.stamp = None;
        self.checked = None;
        self.drop_headers();
    }
}

impl FolderLocks {
    pub fn new() -> Arc<FolderLocks> {
        Arc::new(FolderLocks::default())
    }

    pub fn get(&self, folder: &Path) -> Arc<Mutex<Memo>> {
        use std::sync::atomic::Ordering;
        let mut map = match self.locks.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Memos of folders nobody used for a while go (a memo in use
            // elsewhere right now is kept: its lock is held or shared).
            map.retain(|_, m| {
                Arc::strong_count(m) > 1
                    || m.try_lock()
                        .map(|g| g.used.is_some_and(|t| t.elapsed() < MEMO_IDLE))
                        .unwrap_or(true)
            });
        }
        let memo = map
            .entry(folder.to_path_buf())
            .or_insert_with(|| {
                let mut memo = Memo::default();
                memo.budget = self.cached.clone();
                Arc::new(Mutex::new(memo))
            })
            .clone();
        drop(map);
        if let Ok(mut m) = memo.try_lock() {
            m.used = Some(std::time::Instant::now());
        }
        memo
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The parts of a Maildir file name: base (unique part and `,X=` fields),
/// the `U=` and `S=` values, and the info flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameParts {
    /// Everything before `:2,` (fields included).
    pub base: String,
    pub uid: Option<u32>,
    pub size: Option<u64>,
    pub vsize: Option<u64>,
    /// Letters after `:2,` that are system flags, sorted.
    pub flags: String,
}

pub fn parse_name(name: &str) -> NameParts {
    let (base, info) = match name.split_once(":2,") {
        Some((b, i)) => (b, i),
        None => (name.split(':').next().unwrap_or(name), ""),
    };
    let mut uid = None;
    let mut size = None;
    let mut vsize = None;
    for field in base.split(',').skip(1) {
        if let Some(v) = field.strip_prefix("U=") {
            uid = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("S=") {
            size = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("W=") {
            vsize = v.parse().ok();
        }
    }
    let mut flags: Vec<char> = info
        .chars()
        .filter(|c| FLAG_LETTERS.iter().any(|(l, _)| l == c))
        .collect();
    flags.sort_unstable();
    flags.dedup();
    NameParts {
        base: base.to_string(),
        uid,
        size,
        vsize,
        flags: flags.into_iter().collect(),
    }
}

/// `base` with `,U=uid` added (once).
fn with_uid(base: &str, uid: u32) -> String {
    let kept: Vec<&str> = base.split(',').filter(|f| !f.starts_with("U=")).collect();
    format!("{},U={uid}", kept.join(","))
}

pub fn file_name(base: &str, flags: &str) -> String {
    format!("{base}:2,{flags}")
}

/// Bytes of `data` once every bare LF is a CRLF.
pub fn crlf_size(data: &[u8]) -> u64 {
    let mut n = data.len() as u64;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// A Maildir folder (its root holds `cur`, `new`, `tmp`).
#[derive(Debug, Clone)]
pub struct Folder {
    pub path: PathBuf,
}

impl Folder {
    pub fn new(path: impl Into<PathBuf>) -> Folder {
        Folder { path: path.into() }
    }

    fn index_path(&self) -> PathBuf {
        self.path.join(INDEX_FILE)
    }

    /// Creates the folder (directories and UIDVALIDITY file) if missing.
    pub fn create(&self) -> std::io::Result<()> {
        maildir::ensure(&self.path)?;
        self.uidvalidity().map(|_| ())
    }

    /// Creates the folder with a given UIDVALIDITY (a store that hands out
    /// one per user, so a name deleted and created again never reuses one).
    /// An existing UIDVALIDITY is kept.
    pub fn create_with_uidvalidity(&self, uidvalidity: u32) -> std::io::Result<()> {
        maildir::ensure(&self.path)?;
        let p = self.path.join(UIDVALIDITY_FILE);
        if !p.exists() {
            fsutil::write_atomic_durable(&p, format!("{}\n", uidvalidity.max(1)).as_bytes())?;
        }
        Ok(())
    }

    /// The UIDVALIDITY recorded in the folder, if any (no side effect).
    pub fn recorded_uidvalidity(&self) -> Option<u32> {
        std::fs::read_to_string(self.path.join(UIDVALIDITY_FILE))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    pub fn exists(&self) -> bool {
        self.path.join("cur").is_dir()
    }

    /// The folder's UIDVALIDITY, created durably on first use; the flag
    /// says whether it was created just now.
    fn uidvalidity(&self) -> std::io::Result<(u32, bool)> {
        let p = self.path.join(UIDVALIDITY_FILE);
        if let Ok(text) = std::fs::read_to_string(&p)
            && let Some(Ok(v)) = text.split_whitespace().next().map(str::parse::<u32>)
        {
            return Ok((v, false));
        }
        // Time-based, so a folder deleted and created again gets a new one.
        let v = (now() as u32).max(1);
        fsutil::write_atomic_durable(&p, format!("{v}\n").as_bytes())?;
        Ok((v, true))
    }

    fn load(&self) -> Option<Index> {
        let bytes = std::fs::read(self.index_path()).ok()?;
        let mut idx: Index = serde_json::from_slice(&bytes).ok()?;
        if idx.recent_from == 0 {
            idx.recent_from = idx.uidnext;
        }
        // A sanity check: UIDs strictly increasing and below UIDNEXT.
        let ordered = idx.messages.windows(2).all(|w| w[0].uid < w[1].uid);
        let below = idx.messages.last().is_none_or(|m| m.uid < idx.uidnext);
        (ordered && below).then_some(idx)
    }

    fn save(&self, idx: &Index) -> std::io::Result<()> {
        let json = serde_json::to_vec(idx).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.index_path(), &json)
    }

    /// A fresh index from the file names alone (the index file was lost).
    fn rebuild(&self) -> std::io::Result<Index> {
        let (uidvalidity, created) = self.uidvalidity()?;
        // MODSEQs must never go backwards for a client that cached them: a
        // lost index restarts from the clock in microseconds, above anything
        // an earlier index can plausibly have handed out.
        // A folder whose files were never numbered had no index that a
        // client could have seen: it starts at 1.
        let numbered = std::fs::read_dir(self.path.join("cur"))
            .map(|d| {
                d.flatten()
                    .any(|e| parse_name(&e.file_name().to_string_lossy()).uid.is_some())
            })
            .unwrap_or(false);
        let modseq = if created || !numbered {
            1
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_micros() as u64)
        };
        Ok(Index {
            uidvalidity,
            uidnext: 1,
            highestmodseq: modseq,
            messages: Vec::new(),
            expunged: Vec::new(),
            recent_from: 1,
            keywords: Vec::new(),
        })
    }

    /// The mtimes of `cur/` and `new/`: any file added, removed or renamed
    /// there changes them.
    fn stamp(&self) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
        let m = |d: &str| {
            std::fs::metadata(self.path.join(d))
                .and_then(|m| m.modified())
                .ok()
        };
        Some((m("cur")?, m("new")?))
    }

    /// [`Folder::sync`] through the folder's memo: an unchanged folder
    /// (same directory mtimes, scanned recently) is not scanned again. Call
    /// with the memo's lock held; the index stays in the memo.
    pub fn sync_memo<'m>(&self, memo: &'m mut Memo) -> std::io::Result<(&'m mut Index, Changes)> {
        let recent = memo.scanned.is_some_and(|t| t.elapsed() < MEMO_TRUST);
        let fresh = memo.index.is_some()
            && memo.stamp.is_some()
            && recent
            && (memo.checked.is_some_and(|t| t.elapsed() < STAMP_TRUST)
                || memo.stamp == self.stamp());
        if fresh {
            memo.checked.get_or_insert_with(std::time::Instant::now);
            if memo.checked.is_some_and(|t| t.elapsed() >= STAMP_TRUST) {
                memo.checked = Some(std::time::Instant::now());
            }
        }
        let mut changes = Changes::default();
        if !fresh {
            // The folder may have been replaced behind our back (deleted and
            // created again): then the memo is worthless.
            let mut known = memo.index.take();
            if known
                .as_ref()
                .is_some_and(|i| self.uidvalidity().map(|v| v.0).ok() != Some(i.uidvalidity))
            {
                known = None;
                memo.drop_headers();
            }
            let (idx, ch) = self.sync_from(known)?;
            changes = ch;
            memo.index = Some(idx);
            memo.stamp = self.stamp();
            memo.scanned = Some(std::time::Instant::now());
            memo.checked = memo.scanned;
        }
        match memo.index.as_mut() {
            Some(idx) => Ok((idx, changes)),
            None => Err(std::io::Error::other("folder index missing after sync")),
        }
    }

    /// Brings the index up to date with the files: moves `new/` into `cur/`
    /// with fresh UIDs, notices files added, removed or re-flagged by
    /// others. Call with the folder's lock held.
    pub fn sync(&self) -> std::io::Result<(Index, Changes)> {
        self.sync_from(None)
    }

    /// [`Folder::sync`] starting from an index already in memory (one that
    /// matches the index file) instead of reading the file.
    fn sync_from(&self, known: Option<Index>) -> std::io::Result<(Index, Changes)> {
        maildir::ensure(&self.path)?;
        let (mut idx, loaded) = match known.or_else(|| self.load()) {
            Some(i) => (i, true),
            None => (self.rebuild()?, false),
        };
        let mut changes = Changes::default();
        let (mut found, unnumbered) = self.scan_cur()?;
        // UIDs found in names may be above the index's UIDNEXT (index lost).
        if let Some((max, _)) = found.last_key_value() {
            idx.uidnext = idx.uidnext.max(max + 1);
        }
        // A rebuilt index: what was numbered already is not new to anyone;
        // what comes from new/ below is.
        if !loaded {
            idx.recent_from = idx.uidnext;
        }
        self.number_incoming(&mut idx, &mut found, unnumbered, &mut changes)?;
        let reconciled = self.reconcile(&mut idx, found, &mut changes);
        if idx.expunged.len() > MAX_EXPUNGED {
            let cut = idx.expunged.len() - MAX_EXPUNGED;
            idx.expunged.drain(..cut);
        }
        if reconciled || !loaded {
            self.save(&idx)?;
        }
        Ok((idx, changes))
    }

    /// The files in `cur/`: numbered ones by UID, and those without a UID
    /// of their own (dropped there by another program, or a copy of a
    /// numbered file), which are new messages.
    fn scan_cur(&self) -> std::io::Result<(Found, Vec<(String, NameParts)>)> {
        let mut found = Found::new();
        let mut unnumbered = Vec::new();
        for e in std::fs::read_dir(self.path.join("cur"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let parts = parse_name(&name);
            match parts.uid {
                Some(uid) if uid > 0 && !found.contains_key(&uid) => {
                    found.insert(uid, (name, parts));
                }
                _ => unnumbered.push((name, parts)),
            }
        }
        unnumbered.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((found, unnumbered))
    }

    /// New mail gets UIDs: `new/` first (in arrival order; these are
    /// \Recent), then the strays of `cur/`; each is renamed into `cur/`
    /// with its UID in the name.
    fn number_incoming(
        &self,
        idx: &mut Index,
        found: &mut Found,
        unnumbered: Vec<(String, NameParts)>,
        changes: &mut Changes,
    ) -> std::io::Result<()> {
        let mut new_names: Vec<String> = std::fs::read_dir(self.path.join("new"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        new_names.sort();
        let incoming = new_names
            .into_iter()
            .map(|name| (self.path.join("new").join(&name), parse_name(&name), true))
            .chain(
                unnumbered
                    .into_iter()
                    .map(|(name, parts)| (self.path.join("cur").join(&name), parts, false)),
            );
        for (from, parts, recent) in incoming {
            let uid = idx.uidnext;
            let base = with_uid(&parts.base, uid);
            let target = file_name(&base, &parts.flags);
            match std::fs::rename(&from, self.path.join("cur").join(&target)) {
                Ok(()) => {
                    idx.uidnext += 1;
                    let parts = NameParts {
                        uid: Some(uid),
                        base,
                        ..parts
                    };
                    found.insert(uid, (target, parts));
                    if recent {
                        changes.recent.push(uid);
                    }
                }
                // Taken by another program meanwhile: it is not ours to number.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The index made to match the files: messages whose file is gone are
    /// expunged, renamed ones take their new name and flags, new ones are
    /// indexed. Returns whether anything changed.
    fn reconcile(&self, idx: &mut Index, found: Found, changes: &mut Changes) -> bool {
        let mut dirty = false;
        let mut by_uid: BTreeMap<u32, Message> =
            idx.messages.drain(..).map(|m| (m.uid, m)).collect();
        let gone: Vec<u32> = by_uid
            .keys()
            .filter(|u| !found.contains_key(u))
            .copied()
            .collect();
        for uid in gone {
            by_uid.remove(&uid);
            idx.highestmodseq += 1;
            idx.expunged.push((uid, idx.highestmodseq));
            changes.expunged.push(uid);
            dirty = true;
        }
        for (uid, (name, parts)) in found {
            match by_uid.get_mut(&uid) {
                Some(m) => {
                    if m.file != name || m.flags != parts.flags {
                        if m.flags != parts.flags {
                            idx.highestmodseq += 1;
                            m.modseq = idx.highestmodseq;
                            m.flags = parts.flags.clone();
                            changes.flags_changed.push(uid);
                        }
                        m.file = name;
                        dirty = true;
                    }
                }
                None => {
                    // Vanished between the listing and now: the next sync
                    // has nothing to report about it.
                    let Some(m) = self.new_message(uid, name, parts, idx.highestmodseq + 1) else {
                        continue;
                    };
                    idx.highestmodseq += 1;
                    by_uid.insert(uid, m);
                    changes.added.push(uid);
                    dirty = true;
                }
            }
        }
        idx.messages = by_uid.into_values().collect();
        dirty
    }

    /// The index entry of a file in `cur/` not yet indexed: sizes from its
    /// name (or the file), arrival time from its mtime.
    fn new_message(
        &self,
        uid: u32,
        name: String,
        parts: NameParts,
        modseq: u64,
    ) -> Option<Message> {
        let path = self.path.join("cur").join(&name);
        let meta = std::fs::metadata(&path).ok()?;
        let size = parts.size.unwrap_or(meta.len());
        let vsize = match parts.vsize {
            Some(v) => v,
            None if size == meta.len() => match std::fs::read(&path) {
                Ok(data) => crlf_size(&data),
                Err(_) => size,
            },
            None => size,
        };
        let internal_date = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now(), |d| d.as_secs() as i64);
        Some(Message {
            uid,
            file: name,
            flags: parts.flags,
            keywords: Vec::new(),
            modseq,
            size,
            vsize,
            internal_date,
        })
    }

    /// The \Recent messages of the index. With `claim` (a read-write
    /// session that has the folder selected) they stop being recent for
    /// every other session, and the index records that.
    pub fn recent(&self, idx: &mut Index, claim: bool) -> std::io::Result<Vec<u32>> {
        let from = idx.recent_from;
        let recent: Vec<u32> = idx
            .messages
            .iter()
            .rev()
            .take_while(|m| m.uid >= from)
            .map(|m| m.uid)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if claim && idx.recent_from != idx.uidnext {
            idx.recent_from = idx.uidnext;
            self.save(idx)?;
        }
        Ok(recent)
    }

    pub fn message_path(&self, m: &Message) -> PathBuf {
        self.path.join("cur").join(&m.file)
    }

    pub fn read(&self, m: &Message) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.message_path(m))
    }

    /// Sets the system flags (letters) and keywords of messages; returns
    /// the updated messages. Call with the lock held, after `sync`.
    pub fn set_flags(
        &self,
        idx: &mut Index,
        updates: &[(u32, String, Vec<String>)],
    ) -> std::io::Result<Vec<Message>> {
        let mut changed = Vec::new();
        for (uid, letters, keywords) in updates {
            let Ok(pos) = idx.messages.binary_search_by_key(uid, |m| m.uid) else {
                continue;
            };
            let m = &mut idx.messages[pos];
            let mut sorted: Vec<char> = letters.chars().collect();
            sorted.sort_unstable();
            sorted.dedup();
            let letters: String = sorted.into_iter().collect();
            if m.flags == letters && m.keywords == *keywords {
                continue;
            }
            if m.flags != letters {
                let base = parse_name(&m.file).base;
                let new_name = file_name(&base, &letters);
                match std::fs::rename(
                    self.path.join("cur").join(&m.file),
                    self.path.join("cur").join(&new_name),
                ) {
                    Ok(()) => m.file = new_name,
                    // Expunged by someone else: the next sync reports it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                m.flags = letters;
            }
            m.keywords = keywords.clone();
            idx.highestmodseq += 1;
            m.modseq = idx.highestmodseq;
            changed.push(m.clone());
            idx.define_keywords(keywords);
        }
        if !changed.is_empty() {
            self.save(idx)?;
        }
        Ok(changed)
    }

    /// Deletes messages; returns the UIDs removed.
    pub fn expunge(&self, idx: &mut Index, uids: &[u32]) -> std::io::Result<Vec<u32>> {
        let mut removed = Vec::new();
        for uid in uids {
            let Ok(pos) = idx.messages.binary_search_by_key(uid, |m| m.uid) else {
                continue;
            };
            let m = idx.messages.remove(pos);
            match std::fs::remove_file(self.path.join("cur").join(&m.file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    idx.messages.insert(pos, m);
                    return Err(e);
                }
            }
            idx.highestmodseq += 1;
            idx.expunged.push((*uid, idx.highestmodseq));
            removed.push(*uid);
        }
        if !removed.is_empty() {
            self.save(idx)?;
        }
        Ok(removed)
    }

    /// Adds a message (APPEND, COPY): written to `tmp/`, synced, moved into
    /// `cur/` with its UID, directory synced. Returns its UID. Call with the
    /// lock held; [`Folder::stage`] + [`Folder::commit`] +
    /// [`Folder::sync_cur`] do the same with the slow parts outside it.
    pub fn append(
        &self,
        idx: &mut Index,
        data: &[u8],
        letters: &str,
        keywords: &[String],
        internal_date: Option<i64>,
    ) -> std::io::Result<u32> {
        let staged = self.stage(data, internal_date)?;
        let uid = self.commit(idx, staged, letters, keywords)?;
        self.sync_cur()?;
        Ok(uid)
    }

    /// Writes a message into `tmp/` and syncs it (no lock needed).
    pub fn stage(&self, data: &[u8], internal_date: Option<i64>) -> std::io::Result<Staged> {
        maildir::ensure(&self.path)?;
        let unique = maildir_unique();
        let tmp = self.path.join("tmp").join(&unique);
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(data)?;
            if let Some(t) = internal_date {
                let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
                let _ = f.set_modified(when);
            }
            f.sync_data()?;
        }
        Ok(Staged {
            tmp,
            unique,
            size: data.len() as u64,
            vsize: crlf_size(data),
            internal_date: internal_date.unwrap_or_else(now),
        })
    }

    /// Moves a staged message into `cur/` with the next UID and indexes it.
    /// Call with the lock held. The rename is durable only after
    /// [`Folder::sync_cur`].
    pub fn commit(
        &self,
        idx: &mut Index,
        staged: Staged,
        letters: &str,
        keywords: &[String],
    ) -> std::io::Result<u32> {
        let uid = idx.uidnext;
        let base = format!("{},S={},U={uid}", staged.unique, staged.size);
        let mut sorted: Vec<char> = letters.chars().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let letters: String = sorted.into_iter().collect();
        let name = file_name(&base, &letters);
        if let Err(e) = std::fs::rename(&staged.tmp, self.path.join("cur").join(&name)) {
            let _ = std::fs::remove_file(&staged.tmp);
            return Err(e);
        }
        idx.uidnext += 1;
        idx.highestmodseq += 1;
        idx.define_keywords(keywords);
        idx.messages.push(Message {
            uid,
            file: name,
            flags: letters,
            keywords: keywords.to_vec(),
            modseq: idx.highestmodseq,
            size: staged.size,
            vsize: staged.vsize,
            internal_date: staged.internal_date,
        });
        self.save(idx)?;
        Ok(uid)
    }

    /// Delivers a copy that carries IMAP keywords (Sieve imap4flags):
    /// keywords live in the index, so the copy is added as APPEND adds one
    /// — written to `tmp/<name>` and synced, then under the folder's lock
    /// moved into `cur/` with the next UID, its flags and keywords indexed,
    /// and `cur/` synced. The file name starts with `name,` so a retry
    /// finds it ([`super::maildir::already_delivered`]). Returns its path.
    pub fn deliver_indexed(
        &self,
        memo: &std::sync::Mutex<Memo>,
        name: &str,
        data: &[u8],
        letters: &str,
        keywords: &[String],
    ) -> std::io::Result<PathBuf> {
        self.create()?;
        let tmp = self.path.join("tmp").join(name);
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_data()?;
        }
        let staged = Staged {
            tmp,
            unique: name.to_string(),
            size: data.len() as u64,
            vsize: crlf_size(data),
            internal_date: now(),
        };
        let uid = {
            let mut memo = memo
                .lock()
                .map_err(|_| std::io::Error::other("folder lock poisoned"))?;
            let committed = match self.sync_memo(&mut memo) {
                Ok((idx, _)) => self.commit(idx, staged, letters, keywords),
                Err(e) => Err(e),
            };
            match &committed {
                Ok(_) => memo.restamp(self),
                Err(_) => memo.stale(),
            }
            committed?
        };
        self.sync_cur()?;
        let prefix = format!("{name},");
        let found = std::fs::read_dir(self.path.join("cur"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.contains(&format!(",U={uid}")))
            });
        found.ok_or_else(|| std::io::Error::other("the delivered copy is not in cur/"))
    }

    /// Makes renames into `cur/` durable.
    pub fn sync_cur(&self) -> std::io::Result<()> {
        fsutil::sync_dir(&self.path.join("cur"))
    }

    /// Removes the index so the next sync rebuilds it (after a detected
    /// inconsistency).
    pub fn forget_index(&self) {
        let _ = std::fs::remove_file(self.index_path());
    }
}

/// A message written and synced in `tmp/`, waiting for its UID.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    unique: String,
    size: u64,
    vsize: u64,
    internal_date: i64,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Not committed: nothing may be left in tmp/ (a committed one was
        // renamed away, and removing its old name does nothing).
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A Maildir unique name: `<secs>.M<micros>P<pid>Q<counter>.<host>`.
pub fn maildir_unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let host = hostname();
    format!(
        "{}.M{}P{}Q{}.{host}",
        t.as_secs(),
        t.subsec_micros(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn hostname() -> String {
    static HOST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().replace(['/', ':', ','], "_"))
            .unwrap_or_else(|_| "localhost".into())
    });
    HOST.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(folder: &Path, name: &str, data: &[u8]) {
        maildir::deliver(folder, name, &[data], false, "").expect("deliver");
    }

    #[test]
    fn names() {
        let p = parse_name("1.Q1_0.host,S=265,U=12:2,SR");
        assert_eq!(p.base, "1.Q1_0.host,S=265,U=12");
        assert_eq!(p.uid, Some(12));
        assert_eq!(p.size, Some(265));
        assert_eq!(p.flags, "RS");
        assert_eq!(parse_name("1.M2P3.host").flags, "");
        assert_eq!(with_uid("a,S=1,U=3", 9), "a,S=1,U=9");
        assert_eq!(crlf_size(b"a\nb\r\nc\n"), 9);
    }

    #[test]
    fn uids_flags_and_rebuild() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Folder::new(dir.path().join("alice"));
        f.create().expect("create");
        deliver(&f.path, "100.a.host,S=5", b"one\r\n");
        deliver(&f.path, "101.b.host,S=5", b"two\r\n");
        let (idx, ch) = f.sync().expect("sync");
        assert_eq!(
            idx.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(ch.added, vec![1, 2]);
        assert_eq!(ch.recent, vec![1, 2]);
        assert!(
            std::fs::read_dir(f.path.join("new"))
                .expect("new")
                .next()
                .is_none()
        );
        let uidvalidity = idx.uidvalidity;

        // Flag change through the store, then by another program (rename).
        let mut idx = idx;
        f.set_flags(&mut idx, &[(1, "S".into(), vec!["$Junk".into()])])
            .expect("flags");
        let m2 = idx.messages[1].clone();
        let renamed = file_name(&parse_name(&m2.file).base, "F");
        std::fs::rename(f.message_path(&m2), f.path.join("cur").join(&renamed)).expect("rename");
        let (idx, ch) = f.sync().expect("sync");
        assert_eq!(ch.flags_changed, vec![2]);
        assert_eq!(idx.messages[0].flags, "S");
        assert_eq!(idx.messages[0].keywords, vec!["$Junk".to_string()]);
        assert_eq!(idx.messages[1].flags, "F");

        // Another program deletes one: reported as expunged.
        std::fs::remove_file(f.message_path(&idx.messages[1])).expect("rm");
        deliver(&f.path, "102.c.host,S=7", b"three\r\n");
        let (idx, ch) = f.sync().expect("sync");
        assert_eq!(ch.expunged, vec![2]);
        assert_eq!(ch.added, vec![3]);
        let modseq = idx.highestmodseq;

        // The index is lost: same UIDVALIDITY, same UIDs, MODSEQ never lower.
        f.forget_index();
        let (rebuilt, _) = f.sync().expect("sync");
        assert_eq!(rebuilt.uidvalidity, uidvalidity);
        assert_eq!(
            rebuilt.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(rebuilt.uidnext, 4);
        assert!(rebuilt.highestmodseq > modseq);
        assert_eq!(rebuilt.messages[0].flags, "S");
    }

    #[test]
    fn defined_keywords_outlive_their_messages_within_a_bound() {
        let msg = |uid: u32, kw: &[&str]| Message {
            uid,
            file: format!("{uid}"),
            flags: String::new(),
            keywords: kw.iter().map(|k| k.to_string()).collect(),
            modseq: 1,
            size: 1,
            vsize: 1,
            internal_date: 0,
        };
        let mut idx = Index {
            uidvalidity: 1,
            uidnext: 3,
            highestmodseq: 1,
            messages: vec![msg(1, &["Kept"]), msg(2, &[])],
            expunged: Vec::new(),
            recent_from: 1,
            keywords: Vec::new(),
        };
        idx.define_keywords(&["Kept".into(), "$Old".into()]);
        // Case-insensitive: the first spelling stays.
        idx.define_keywords(&["kept".into(), "$old".into()]);
        assert_eq!(idx.keywords, vec!["Kept".to_string(), "$Old".to_string()]);
        // Past the bound, unused keywords go first, oldest first; the one a
        // message carries stays.
        let many: Vec<String> = (0..MAX_DEFINED_KEYWORDS).map(|i| format!("K{i}")).collect();
        idx.define_keywords(&many);
        assert_eq!(idx.keywords.len(), MAX_DEFINED_KEYWORDS);
        assert_eq!(idx.keywords[0], "Kept");
        assert!(!idx.keywords.iter().any(|k| k == "$Old" || k == "K0"));
        assert_eq!(idx.keywords.last().map(String::as_str), Some("K63"));
        // Written and read back with the index.
        let json = serde_json::to_vec(&idx).expect("json");
        let back: Index = serde_json::from_slice(&json).expect("parse");
        assert_eq!(back.keywords, idx.keywords);
    }

    #[test]
    fn memo_header_budget() {
        use std::sync::atomic::Ordering;
        let locks = FolderLocks::new();
        let a = locks.get(Path::new("/x/a"));
        assert!(Arc::ptr_eq(&a, &locks.get(Path::new("/x/a"))));
        {
            let mut m = a.lock().expect("lock");
            m.put_header(1, Arc::from(&b"Subject: a\r\n\r\n"[..]));
            m.put_header(1, Arc::from(&b"Subject: bb\r\n\r\n"[..]));
            assert_eq!(locks.cached.load(Ordering::Relaxed), 15);
            assert_eq!(m.header(1).as_deref(), Some(&b"Subject: bb\r\n\r\n"[..]));
            m.clear();
            assert!(m.header(1).is_none());
        }
        assert_eq!(locks.cached.load(Ordering::Relaxed), 0);
        let b = locks.get(Path::new("/x/b"));
        b.lock()
            .expect("lock")
            .put_header(7, Arc::from(&b"X: y\r\n\r\n"[..]));
        drop(b);
        // Dropping a memo (swept) returns its bytes to the budget.
        locks.locks.lock().expect("map").clear();
        assert_eq!(locks.cached.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn append_and_expunge() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Folder::new(dir.path().join("box"));
        f.create().expect("create");
        let (mut idx, _) = f.sync().expect("sync");
        let uid = f
            .append(&mut idx, b"Subject: x\n\nbody\n", "S", &[], Some(1_000_000))
            .expect("append");
        assert_eq!(uid, 1);
        assert_eq!(idx.messages[0].vsize, 20);
        assert_eq!(idx.messages[0].internal_date, 1_000_000);
        let (idx2, ch) = f.sync().expect("sync");
        assert!(ch.added.is_empty(), "append is already indexed");
        assert_eq!(idx2.messages[0].internal_date, 1_000_000);
        let mut idx = idx2;
        assert_eq!(f.expunge(&mut idx, &[1]).expect("expunge"), vec![1]);
        assert!(idx.messages.is_empty());
        assert_eq!(idx.expunged.last().map(|e| e.0), Some(1));
        assert!(
            std::fs::read_dir(f.path.join("cur"))
                .expect("cur")
                .next()
                .is_none()
        );
    }
}
