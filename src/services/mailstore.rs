//! One user's Maildir++ as the IMAP session's [`Store`] (opened through the
//! storage seam, [`super::storage::MailStorage`]): INBOX is the
//! Maildir itself, a folder `a/b` is the directory `.a.b` beside it (each
//! level in modified UTF-7 with `.` written `&AC4-`, as Dovecot does with
//! `/` as separator), subscriptions are a file `subscriptions` with one
//! name per line. Folder names are checked before they become paths: no
//! level may be empty, `.`, `..`, or hold `/`, `\` or control characters,
//! so no name reaches outside the user's Maildir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::proto::imap::mutf7;
use crate::session::imap::{
    FlagResult, FolderState, MsgMeta, Peek, Recent, SPECIAL_USE, Store, StoreError, valid_name,
};
use crate::store::folder::{FLAG_LETTERS, Folder, FolderLocks, Index, Memo, Message};
use crate::store::{fsutil, usage::Usage};

/// Where a user's store records the last UIDVALIDITY it handed out.
const UIDVALIDITY_ISSUED: &str = "mailc.uidvalidity-issued";

/// Called with the user's address after every change, so IDLE sessions
/// look again.
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

pub struct MailStore {
    user: String,
    root: PathBuf,
    quota: Option<u64>,
    locks: Arc<FolderLocks>,
    usage: Arc<Usage>,
    notify: Notify,
    /// Where moves into and out of Junk are reported (spam learning).
    training: Option<super::training::Training>,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// `a/b.c` → `.a.b&AC4-c`.
pub fn dir_name(name: &str) -> String {
    let mut out = String::new();
    for level in name.split('/') {
        out.push('.');
        out.push_str(&mutf7::encode(level).replace('.', "&AC4-"));
    }
    out
}

/// The inverse of [`dir_name`]; `None` for what is not a folder of ours.
pub fn folder_name(dir: &str) -> Option<String> {
    let rest = dir.strip_prefix('.')?;
    if rest.is_empty() || rest == "." {
        return None;
    }
    let mut levels = Vec::new();
    for level in rest.split('.') {
        // `&AC4-` is `.`; mutf7 alone refuses encoded ASCII.
        let mut decoded = String::new();
        for (i, piece) in level.split("&AC4-").enumerate() {
            if i > 0 {
                decoded.push('.');
            }
            decoded.push_str(&mutf7::decode(piece)?);
        }
        levels.push(decoded);
    }
    let name = levels.join("/");
    valid_name(&name).then_some(name)
}

fn letters_to_flags(m: &Message) -> Vec<String> {
    let mut out: Vec<String> = FLAG_LETTERS
        .iter()
        .filter(|(l, _)| m.has(*l))
        .map(|(_, f)| f.to_string())
        .collect();
    for k in &m.keywords {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

fn meta(m: &Message) -> MsgMeta {
    MsgMeta {
        uid: m.uid,
        flags: letters_to_flags(m),
        modseq: m.modseq,
        size: m.vsize,
        internal_date: m.internal_date,
    }
}

/// Flag names → (Maildir letters, keywords).
fn split_flags(flags: &[String]) -> (String, Vec<String>) {
    let mut letters = String::new();
    let mut keywords = Vec::new();
    for f in flags {
        match FLAG_LETTERS.iter().find(|(_, n)| n.eq_ignore_ascii_case(f)) {
            Some((l, _)) => {
                if !letters.contains(*l) {
                    letters.push(*l);
                }
            }
            None => {
                // Keywords are case-insensitive (RFC 3501 §2.3.2).
                if !keywords.iter().any(|k: &String| k.eq_ignore_ascii_case(f)) {
                    keywords.push(f.clone());
                }
            }
        }
    }
    (letters, keywords)
}

impl MailStore {
    pub fn new(
        user: &str,
        root: &Path,
        quota: Option<u64>,
        locks: Arc<FolderLocks>,
        usage: Arc<Usage>,
        notify: Notify,
    ) -> MailStore {
        MailStore {
            user: user.to_string(),
            root: root.to_path_buf(),
            quota,
            locks,
            usage,
            notify,
            training: None,
        }
    }

    /// Moves into and out of the Junk folder teach the spam scanners.
    pub fn with_training(mut self, training: Option<super::training::Training>) -> MailStore {
        self.training = training;
        self
    }

    /// APPEND without the training hook (COPY teaches with its source).
    fn store(
        &mut self,
        name: &str,
        data: &[u8],
        flags: &[String],
        date: Option<i64>,
    ) -> Result<(u32, u32), StoreError> {
        if let Some(q) = self.quota
            && self.usage.get(&self.user, &self.root) + data.len() as u64 > q
        {
            return Err(StoreError::OverQuota);
        }
        // The slow parts (writing and syncing the file, syncing the
        // directory) happen outside the folder lock, so other sessions of
        // the folder do not wait for the disk.
        let folder = self.existing(name)?;
        let staged = folder.stage(data, date).map_err(io)?;
        let r = self.with_index(name, move |f, idx| {
            let (letters, keywords) = split_flags(flags);
            let uid = f.commit(idx, staged, &letters, &keywords).map_err(io)?;
            Ok((idx.uidvalidity, uid))
        })?;
        folder.sync_cur().map_err(io)?;
        self.usage.add(&self.user, &self.root, data.len() as u64);
        self.changed();
        Ok(r)
    }

    /// Offers a message that arrived in folder `to` (from folder `from`, or
    /// APPENDed) to the spam scanners' training, when the move teaches
    /// something. Never waits.
    fn teach(&self, from: Option<&str>, to: &str, data: &[u8]) {
        if let Some(t) = &self.training
            && let Some(class) = super::training::lesson(from, to)
        {
            t.offer(&self.user, class, data);
        }
    }

    /// Creates INBOX and the special-use folders on first login.
    pub fn prepare(&mut self) -> Result<(), StoreError> {
        Folder::new(&self.root).create().map_err(io)?;
        let marker = self.root.join("mailc.folders-created");
        if marker.exists() {
            return Ok(());
        }
        let mut subs = self.subscriptions();
        for (name, _) in SPECIAL_USE {
            let path = self.path(name)?;
            if !path.exists() {
                self.create_dir(&path)?;
            }
            if !subs.iter().any(|s| s == name) {
                subs.push(name.to_string());
            }
        }
        if !subs.iter().any(|s| s == "INBOX") {
            subs.insert(0, "INBOX".into());
        }
        self.write_subscriptions(&subs)?;
        fsutil::write_atomic(&marker, b"").map_err(io)
    }

    /// The directory of a folder by its IMAP name; `None` for a name that
    /// is not valid.
    pub fn folder_path(&self, name: &str) -> Option<PathBuf> {
        self.path(name).ok()
    }

    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        if name == "INBOX" {
            return Ok(self.root.clone());
        }
        if !valid_name(name) {
            return Err(StoreError::Invalid("invalid mailbox name".into()));
        }
        let dir = dir_name(name);
        // Belt and braces: one path component, never a way out.
        if dir.contains('/') || dir == "." || dir == ".." {
            return Err(StoreError::Invalid("invalid mailbox name".into()));
        }
        Ok(self.root.join(dir))
    }

    fn existing(&self, name: &str) -> Result<Folder, StoreError> {
        let path = self.path(name)?;
        let f = Folder::new(path);
        if name != "INBOX" && !f.exists() {
            return Err(StoreError::NotFound);
        }
        Ok(f)
    }

    fn create_dir(&self, path: &Path) -> Result<(), StoreError> {
        let f = Folder::new(path);
        let uidvalidity = self.issue_uidvalidity(0)?;
        f.create_with_uidvalidity(uidvalidity).map_err(io)?;
        // Maildir++ marks folders so delivery agents know them.
        let _ = std::fs::write(path.join("maildirfolder"), b"");
        Ok(())
    }

    /// Runs `f` on the folder's up-to-date index, under its lock; the memo
    /// is restamped after `f` (which may have changed files) and cleared if
    /// `f` failed.
    fn with_index<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Folder, &mut Index) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let folder = self.existing(name)?;
        let lock = self.locks.get(&folder.path);
        let mut memo = lock
            .lock()
            .map_err(|_| StoreError::Io("lock poisoned".into()))?;
        let memo: &mut Memo = &mut memo;
        let (idx, _changes) = folder.sync_memo(memo).map_err(io)?;
        let before = (idx.highestmodseq, idx.uidnext);
        let result = f(&folder, idx);
        let after = memo.index().map(|i| (i.highestmodseq, i.uidnext));
        match &result {
            // A failed change may have left files and index apart: rescan.
            Err(StoreError::Io(_)) => memo.stale(),
            // Our own change moved the directories' mtimes: the memo knows.
            _ if after != Some(before) => memo.restamp(&folder),
            _ => {}
        }
        result
    }

    /// A UIDVALIDITY for a new folder of this user: the clock, but always
    /// above every value this user's folders were given (and above
    /// `at_least`, the value of a folder being deleted), so a name deleted
    /// and created again within one second still gets a new one and
    /// clients holding the old UIDs resynchronise (RFC 9051 §2.3.1.1).
    fn issue_uidvalidity(&self, at_least: u32) -> Result<u32, StoreError> {
        let file = self.root.join(UIDVALIDITY_ISSUED);
        let lock = self.locks.get(&file);
        let _g = lock
            .lock()
            .map_err(|_| StoreError::Io("lock poisoned".into()))?;
        let last: u32 = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let next = now
            .max(last.saturating_add(1))
            .max(at_least.saturating_add(1));
        fsutil::write_atomic_durable(&file, format!("{next}\n").as_bytes()).map_err(io)?;
        Ok(next)
    }

    /// Forgets what this process remembers of a folder (index, headers):
    /// after DELETE or RENAME nothing of the old folder may show through.
    fn forget(&self, path: &Path) {
        match self.locks.get(path).lock() {
            Ok(mut m) => m.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    fn write_subscriptions(&self, subs: &[String]) -> Result<(), StoreError> {
        let mut text = String::new();
        for s in subs {
            text.push_str(s);
            text.push('\n');
        }
        fsutil::write_atomic(&self.root.join("subscriptions"), text.as_bytes()).map_err(io)
    }

    fn changed(&self) {
        (self.notify)(&self.user);
    }
}

impl Store for MailStore {
    fn folders(&mut self) -> Result<Vec<String>, StoreError> {
        let mut out = vec!["INBOX".to_string()];
        let entries = std::fs::read_dir(&self.root).map_err(io)?;
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(name) = folder_name(&n)
                && e.path().join("cur").is_dir()
            {
                out.push(name);
            }
        }
        out[1..].sort();
        Ok(out)
    }

    fn create(&mut self, name: &str) -> Result<(), StoreError> {
        if name == "INBOX" {
            return Err(StoreError::Exists);
        }
        let path = self.path(name)?;
        if path.exists() {
            return Err(StoreError::Exists);
        }
        self.create_dir(&path)
    }

    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        if name == "INBOX" {
            return Err(StoreError::Refused("INBOX cannot be deleted".into()));
        }
        let f = self.existing(name)?;
        // The next folder of this name must get a higher UIDVALIDITY.
        if let Some(v) = f.recorded_uidvalidity() {
            self.issue_uidvalidity(v)?;
        }
        let lock = self.locks.get(&f.path);
        let mut memo = lock
            .lock()
            .map_err(|_| StoreError::Io("lock poisoned".into()))?;
        let size = crate::store::usage::scan(&f.path);
        // Renamed out of sight first, so a crash never leaves half a folder
        // that still looks like one.
        let doomed = self.root.join(format!(
            ".mailc-deleted.{}",
            crate::store::folder::maildir_unique()
        ));
        std::fs::rename(&f.path, &doomed).map_err(io)?;
        // Index, headers and stamps of the old folder go with it: a folder
        // created under this name starts from nothing.
        memo.clear();
        drop(memo);
        let _ = std::fs::remove_dir_all(&doomed);
        self.usage.subtract(&self.user, size);
        self.changed();
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StoreError> {
        let target = self.path(to)?;
        if to == "INBOX" || target.exists() {
            return Err(StoreError::Exists);
        }
        if from == "INBOX" {
            // RFC 9051: the messages move to the new folder, INBOX stays.
            self.create_dir(&target)?;
            let src = Folder::new(&self.root);
            let lock = self.locks.get(&src.path);
            let mut memo = lock
                .lock()
                .map_err(|_| StoreError::Io("lock poisoned".into()))?;
            src.sync().map_err(io)?;
            // INBOX's files leave: its memo must rescan.
            memo.stale();
            for e in std::fs::read_dir(self.root.join("cur"))
                .map_err(io)?
                .flatten()
            {
                let _ = std::fs::rename(e.path(), target.join("cur").join(e.file_name()));
            }
            fsutil::sync_dir(&target.join("cur")).map_err(io)?;
            self.changed();
            return Ok(());
        }
        let source = self.existing(from)?.path;
        let prefix = format!("{from}/");
        // Children move along.
        let children: Vec<String> = self
            .folders()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        // Memos follow paths: forget those of every path involved, before
        // (nothing stale is used meanwhile) and after the move (a session
        // that synced in between remembered the old folder's state).
        self.forget(&source);
        self.forget(&target);
        {
            let lock = self.locks.get(&source);
            let mut memo = lock
                .lock()
                .map_err(|_| StoreError::Io("lock poisoned".into()))?;
            std::fs::rename(&source, &target).map_err(io)?;
            memo.clear();
        }
        self.forget(&target);
        for c in children {
            let new = format!("{to}/{}", &c[prefix.len()..]);
            let (a, b) = (self.path(&c)?, self.path(&new)?);
            self.forget(&a);
            self.forget(&b);
            std::fs::rename(&a, &b).map_err(io)?;
            self.forget(&a);
            self.forget(&b);
        }
        let subs: Vec<String> = self
            .subscriptions()
            .into_iter()
            .map(|s| {
                if s == from {
                    to.to_string()
                } else if let Some(rest) = s.strip_prefix(&prefix) {
                    format!("{to}/{rest}")
                } else {
                    s
                }
            })
            .collect();
        self.write_subscriptions(&subs)?;
        self.changed();
        Ok(())
    }

    fn subscriptions(&mut self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("subscriptions"))
            .map(|t| {
                t.lines()
                    .filter(|l| !l.is_empty() && (*l == "INBOX" || valid_name(l)))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn subscribe(&mut self, name: &str, on: bool) -> Result<(), StoreError> {
        let mut subs = self.subscriptions();
        if on {
            if name != "INBOX" && !self.path(name)?.exists() {
                return Err(StoreError::NotFound);
            }
            if !subs.iter().any(|s| s == name) {
                subs.push(name.to_string());
            }
        } else {
            subs.retain(|s| s != name);
        }
        self.write_subscriptions(&subs)
    }

    fn sync(&mut self, name: &str, recent: Recent) -> Result<FolderState, StoreError> {
        self.with_index(name, |f, idx| {
            let recent = f.recent(idx, recent == Recent::Claim).map_err(io)?;
            Ok(FolderState {
                uidvalidity: idx.uidvalidity,
                uidnext: idx.uidnext,
                highestmodseq: idx.highestmodseq,
                messages: idx.messages.iter().map(meta).collect(),
                recent,
                keywords: idx.keywords.clone(),
            })
        })
    }

    fn peek(&mut self, name: &str, recent: Recent) -> Result<Peek, StoreError> {
        self.with_index(name, |f, idx| {
            let recent = f.recent(idx, recent == Recent::Claim).map_err(io)?;
            Ok(Peek {
                uidvalidity: idx.uidvalidity,
                highestmodseq: idx.highestmodseq,
                count: idx.messages.len(),
                recent,
            })
        })
    }

    fn read(&mut self, name: &str, uid: u32) -> Result<Vec<u8>, StoreError> {
        // The file name under the lock, the reading outside it. The memo
        // was brought up to date by the command's sync: no rescan here; a
        // file renamed meanwhile is found again below.
        let folder = self.existing(name)?;
        let known = {
            let lock = self.locks.get(&folder.path);
            let memo = lock
                .lock()
                .map_err(|_| StoreError::Io("lock poisoned".into()))?;
            memo.index().and_then(|idx| {
                idx.messages
                    .binary_search_by_key(&uid, |m| m.uid)
                    .ok()
                    .map(|pos| folder.message_path(&idx.messages[pos]))
            })
        };
        let path = match known {
            Some(p) => p,
            None => self.with_index(name, |f, idx| {
                let pos = idx
                    .messages
                    .binary_search_by_key(&uid, |m| m.uid)
                    .map_err(|_| StoreError::NotFound)?;
                Ok(f.message_path(&idx.messages[pos]))
            })?,
        };
        match std::fs::read(&path) {
            Ok(d) => Ok(d),
            // Renamed (flags changed by another program) or expunged: look
            // again from a fresh scan.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = self.existing(name)?;
                self.locks
                    .get(&f.path)
                    .lock()
                    .map_err(|_| StoreError::Io("lock poisoned".into()))?
                    .stale();
                let path = self.with_index(name, |f, idx| {
                    let pos = idx
                        .messages
                        .binary_search_by_key(&uid, |m| m.uid)
                        .map_err(|_| StoreError::NotFound)?;
                    Ok(f.message_path(&idx.messages[pos]))
                })?;
                std::fs::read(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::NotFound,
                    _ => io(e),
                })
            }
            Err(e) => Err(io(e)),
        }
    }

    fn read_header(&mut self, name: &str, uid: u32) -> Result<Arc<[u8]>, StoreError> {
        let folder = self.existing(name)?;
        let lock = self.locks.get(&folder.path);
        if let Some(h) = lock
            .lock()
            .map_err(|_| StoreError::Io("lock poisoned".into()))?
            .header(uid)
        {
            return Ok(h);
        }
        let data = crate::session::imap::mime::to_crlf(self.read(name, uid)?);
        let header: Arc<[u8]> = Arc::from(crate::session::imap::search::header_part(&data));
        lock.lock()
            .map_err(|_| StoreError::Io("lock poisoned".into()))?
            .put_header(uid, header.clone());
        Ok(header)
    }

    fn set_flags(
        &mut self,
        name: &str,
        updates: &[(u32, Vec<String>)],
        unchangedsince: Option<u64>,
    ) -> Result<FlagResult, StoreError> {
        let result = self.with_index(name, |f, idx| {
            let mut modified = Vec::new();
            let mut batch = Vec::new();
            for (uid, flags) in updates {
                let Ok(pos) = idx.messages.binary_search_by_key(uid, |m| m.uid) else {
                    continue;
                };
                if let Some(since) = unchangedsince
                    && idx.messages[pos].modseq > since
                {
                    modified.push(*uid);
                    continue;
                }
                let (letters, keywords) = split_flags(flags);
                batch.push((*uid, letters, keywords));
            }
            let changed = f.set_flags(idx, &batch).map_err(io)?;
            Ok(FlagResult {
                changed: changed.iter().map(meta).collect(),
                modified,
            })
        })?;
        if !result.changed.is_empty() {
            self.changed();
        }
        Ok(result)
    }

    fn expunge(&mut self, name: &str, uids: &[u32]) -> Result<Vec<u32>, StoreError> {
        let user = self.user.clone();
        let usage = self.usage.clone();
        let removed = self.with_index(name, |f, idx| {
            let freed: u64 = idx
                .messages
                .iter()
                .filter(|m| uids.contains(&m.uid))
                .map(|m| m.size)
                .sum();
            let removed = f.expunge(idx, uids).map_err(io)?;
            usage.subtract(&user, freed);
            Ok(removed)
        })?;
        if !removed.is_empty() {
            self.changed();
        }
        Ok(removed)
    }

    fn append(
        &mut self,
        name: &str,
        data: &[u8],
        flags: &[String],
        date: Option<i64>,
    ) -> Result<(u32, u32), StoreError> {
        let r = self.store(name, data, flags, date)?;
        self.teach(None, name, data);
        Ok(r)
    }

    fn copy(
        &mut self,
        from: &str,
        uids: &[u32],
        to: &str,
    ) -> Result<(u32, Vec<(u32, u32)>), StoreError> {
        let wanted: Vec<(u32, Vec<String>, i64)> = self.with_index(from, |_, idx| {
            Ok(idx
                .messages
                .iter()
                .filter(|m| uids.contains(&m.uid))
                .map(|m| (m.uid, letters_to_flags(m), m.internal_date))
                .collect())
        })?;
        let mut pairs = Vec::new();
        let mut validity = 0;
        for (uid, flags, internal_date) in wanted {
            let data = match self.read(from, uid) {
                Ok(d) => d,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            let (v, new) = self.store(to, &data, &flags, Some(internal_date))?;
            self.teach(Some(from), to, &data);
            validity = v;
            pairs.push((uid, new));
        }
        if validity == 0 {
            validity = self.sync(to, Recent::Look)?.uidvalidity;
        }
        Ok((validity, pairs))
    }

    fn vanished_since(&mut self, name: &str, modseq: u64) -> Result<Vec<u32>, StoreError> {
        self.with_index(name, |_, idx| {
            Ok(idx
                .expunged
                .iter()
                .filter(|(_, m)| *m > modseq)
                .map(|(u, _)| *u)
                .collect())
        })
    }

    fn quota(&mut self) -> (u64, Option<u64>) {
        (self.usage.get(&self.user, &self.root), self.quota)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_escape() {
        assert_eq!(dir_name("Sent"), ".Sent");
        assert_eq!(dir_name("a/b.c"), ".a.b&AC4-c");
        assert_eq!(folder_name(".a.b&AC4-c").as_deref(), Some("a/b.c"));
        assert!(valid_name("a\\b"));
        assert_eq!(folder_name(&dir_name("a\\b")).as_deref(), Some("a\\b"));
        assert_eq!(dir_name("Entwürfe"), ".Entw&APw-rfe");
        assert_eq!(folder_name(".Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(folder_name(".."), None);
        assert_eq!(folder_name("."), None);
        assert_eq!(folder_name("cur"), None);
        for bad in [
            "..", "a/../b", "/etc", "a//b", "", "a/", ".hidden", "x\u{0}y",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = MailStore::new(
            "u@x",
            dir.path(),
            None,
            FolderLocks::new(),
            Arc::new(Usage::new()),
            Arc::new(|_| {}),
        );
        assert!(matches!(s.create("../x"), Err(StoreError::Invalid(_))));
        assert!(matches!(s.create("a/../../x"), Err(StoreError::Invalid(_))));
        s.create("a/b").expect("create");
        assert!(dir.path().join(".a.b/cur").is_dir());
        assert_eq!(s.folders().expect("folders"), vec!["INBOX", "a/b"]);
    }

    /// Issue #14 (1): nothing of a deleted folder survives in the memo,
    /// and the folder created again under its name (within the same
    /// second) gets a new UIDVALIDITY; a renamed folder keeps its own.
    #[test]
    fn delete_and_rename_forget_the_old_folder() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = MailStore::new(
            "u@x",
            dir.path(),
            None,
            FolderLocks::new(),
            Arc::new(Usage::new()),
            Arc::new(|_| {}),
        );
        let msg = b"Subject: m\r\n\r\nbody\r\n";
        s.create("x").expect("create");
        for _ in 0..3 {
            s.append("x", msg, &["$Old".into()], None).expect("append");
        }
        let old = s.sync("x", Recent::Look).expect("sync");
        assert_eq!(old.messages.len(), 3);
        assert_eq!(s.read_header("x", 1).expect("header").len(), 14);
        s.delete("x").expect("delete");
        assert_eq!(s.sync("x", Recent::Look), Err(StoreError::NotFound));
        s.create("x").expect("create again");
        for _ in 0..3 {
            s.append("x", msg, &[], None).expect("append");
        }
        let new = s.sync("x", Recent::Look).expect("sync");
        assert_eq!(new.messages.len(), 3, "the old messages stay deleted");
        assert!(new.messages.iter().all(|m| m.flags.is_empty()));
        assert!(new.uidvalidity > old.uidvalidity);
        assert_eq!(new.messages[0].uid, 1);

        s.rename("x", "y").expect("rename");
        s.create("x").expect("create a third");
        let third = s.sync("x", Recent::Look).expect("sync");
        let moved = s.sync("y", Recent::Look).expect("sync");
        assert!(third.messages.is_empty());
        assert!(third.uidvalidity > new.uidvalidity);
        assert_eq!(moved.uidvalidity, new.uidvalidity);
        assert_eq!(moved.messages.len(), 3);
    }
}
