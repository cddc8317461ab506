//! The POP3 [`Maildrop`] over a mailbox's INBOX folder (opened through the
//! storage seam, [`super::storage::MailStorage`]): locked for one POP3
//! session at a time, a snapshot of the messages at login, deletions and
//! \Seen flags applied at QUIT through the folder index (so an IMAP session
//! on the same mailbox sees them).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::session::pop3::{DropMessage, Maildrop, OpenError};
use crate::store::folder::{Folder, FolderLocks, Memo};
use crate::store::usage::Usage;

/// Mailboxes with an open POP3 session.
#[derive(Debug, Default)]
pub struct PopLocks {
    held: Mutex<HashSet<String>>,
}

impl PopLocks {
    pub fn new() -> Arc<PopLocks> {
        Arc::new(PopLocks::default())
    }
}

struct Held {
    locks: Arc<PopLocks>,
    mailbox: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut h) = self.locks.held.lock() {
            h.remove(&self.mailbox);
        }
    }
}

pub struct FolderMaildrop {
    folder: Folder,
    lock: Arc<Mutex<Memo>>,
    uidvalidity: u32,
    messages: Vec<DropMessage>,
    files: HashMap<u32, String>,
    usage: Arc<Usage>,
    mailbox: String,
    _held: Held,
}

impl FolderMaildrop {
    pub fn open(
        mailbox: &str,
        maildir: &std::path::Path,
        folders: &FolderLocks,
        pops: &Arc<PopLocks>,
        usage: Arc<Usage>,
    ) -> Result<FolderMaildrop, OpenError> {
        {
            let mut held = pops
                .held
                .lock()
                .map_err(|_| OpenError::Unavailable("lock poisoned".into()))?;
            if !held.insert(mailbox.to_string()) {
                return Err(OpenError::InUse);
            }
        }
        let held = Held {
            locks: pops.clone(),
            mailbox: mailbox.to_string(),
        };
        let folder = Folder::new(maildir);
        let lock = folders.get(&folder.path);
        let idx = {
            let mut g = lock
                .lock()
                .map_err(|_| OpenError::Unavailable("lock poisoned".into()))?;
            folder
                .create()
                .map_err(|e| OpenError::Unavailable(e.to_string()))?;
            folder
                .sync_memo(&mut g)
                .map_err(|e| OpenError::Unavailable(e.to_string()))?
                .0
                .clone()
        };
        Ok(FolderMaildrop {
            uidvalidity: idx.uidvalidity,
            messages: idx
                .messages
                .iter()
                .map(|m| DropMessage {
                    uid: m.uid,
                    size: m.vsize,
                })
                .collect(),
            files: idx
                .messages
                .iter()
                .map(|m| (m.uid, m.file.clone()))
                .collect(),
            folder,
            lock,
            usage,
            mailbox: mailbox.to_string(),
            _held: held,
        })
    }
}

impl Maildrop for FolderMaildrop {
    fn uidvalidity(&self) -> u32 {
        self.uidvalidity
    }

    fn messages(&self) -> &[DropMessage] {
        &self.messages
    }

    fn read(&mut self, uid: u32) -> std::io::Result<Vec<u8>> {
        let path = |f: &str| self.folder.path.join("cur").join(f);
        if let Some(f) = self.files.get(&uid)
            && let Ok(data) = std::fs::read(path(f))
        {
            return Ok(data);
        }
        // Renamed meanwhile (an IMAP client changed its flags): look again.
        let mut g = self
            .lock
            .lock()
            .map_err(|_| std::io::Error::other("lock poisoned"))?;
        let (idx, _) = self.folder.sync_memo(&mut g)?;
        let m = idx.messages.iter().find(|m| m.uid == uid).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "message was expunged")
        })?;
        self.files.insert(uid, m.file.clone());
        self.folder.read(m)
    }

    fn commit(&mut self, delete: &[u32], seen: &[u32]) -> std::io::Result<()> {
        let lock = self.lock.clone();
        let mut g = lock
            .lock()
            .map_err(|_| std::io::Error::other("lock poisoned"))?;
        let result = self.commit_locked(&mut g, delete, seen);
        // Whatever happened, the memo must not be trusted blindly.
        g.restamp(&self.folder);
        if result.is_err() {
            g.clear();
        }
        result
    }
}

impl FolderMaildrop {
    fn commit_locked(
        &mut self,
        memo: &mut Memo,
        delete: &[u32],
        seen: &[u32],
    ) -> std::io::Result<()> {
        let (idx, _) = self.folder.sync_memo(memo)?;
        let updates: Vec<(u32, String, Vec<String>)> = idx
            .messages
            .iter()
            .filter(|m| seen.contains(&m.uid) && !m.has('S'))
            .map(|m| (m.uid, format!("{}S", m.flags), m.keywords.clone()))
            .collect();
        self.folder.set_flags(idx, &updates)?;
        let freed: u64 = idx
            .messages
            .iter()
            .filter(|m| delete.contains(&m.uid))
            .map(|m| m.size)
            .sum();
        self.folder.expunge(idx, delete)?;
        self.usage.subtract(&self.mailbox, freed);
        Ok(())
    }
}
