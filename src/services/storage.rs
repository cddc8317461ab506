//! The mail-storage seam: what the drivers need of the mail store, as one
//! narrow trait, so that a backend other than Maildir (metadata in a
//! database, message blobs in object storage) can be added here without
//! touching a protocol session or a driver.
//!
//! Two levels:
//! - the sessions declare what they need of one user's mail:
//!   [`crate::session::imap::Store`] (folders, flags, UIDs, MODSEQs) and
//!   [`crate::session::pop3::Maildrop`] (a locked INBOX snapshot). Their
//!   implementations are [`MailStore`] and [`FolderMaildrop`] over Maildir++,
//!   and the fuzz target's in-memory store;
//! - [`MailStorage`] opens those for a mailbox row of the tables. The
//!   drivers hold one `Arc<dyn MailStorage>` ([`super::Shared::storage`]).
//!
//! Local delivery (`services/delivery.rs`) still writes Maildir files
//! through `store::maildir` directly (it batches file-system syncs across
//! mailboxes); see `docs/architecture.md` for the seam it will get.

use std::sync::Arc;

use super::maildrop::{FolderMaildrop, PopLocks};
use super::mailstore::{MailStore, Notify};
use super::training::Training;
use crate::session::imap::{Store, StoreError};
use crate::session::pop3::{Maildrop, OpenError};
use crate::store::folder::FolderLocks;
use crate::store::usage::Usage;
use crate::tables::MailboxTable;

/// Opens a mailbox's mail for a protocol session.
pub trait MailStorage: Send + Sync {
    /// The user's folders for an IMAP session; INBOX and the special-use
    /// folders exist afterwards.
    fn open_folders(&self, mailbox: &MailboxTable) -> Result<Box<dyn Store>, StoreError>;
    /// The user's INBOX for a POP3 session, locked against a second POP3
    /// session until the returned value is dropped.
    fn open_maildrop(&self, mailbox: &MailboxTable) -> Result<Box<dyn Maildrop>, OpenError>;
}

/// Maildir++ under each mailbox's `maildir` path: one lock per folder for
/// the whole process, quota usage kept in memory, and a callback that
/// wakes IDLE sessions after a change.
pub struct Maildirs {
    folders: Arc<FolderLocks>,
    pop_locks: Arc<PopLocks>,
    usage: Arc<Usage>,
    notify: Notify,
    /// Spam learning from moves into and out of Junk.
    training: Option<Training>,
}

impl Maildirs {
    pub fn new(folders: Arc<FolderLocks>, usage: Arc<Usage>, notify: Notify) -> Maildirs {
        Maildirs {
            folders,
            pop_locks: PopLocks::new(),
            usage,
            notify,
            training: None,
        }
    }

    pub fn with_training(mut self, training: Training) -> Maildirs {
        self.training = Some(training);
        self
    }
}

impl MailStorage for Maildirs {
    fn open_folders(&self, m: &MailboxTable) -> Result<Box<dyn Store>, StoreError> {
        let mut store = MailStore::new(
            &m.address,
            &m.maildir,
            m.quota,
            self.folders.clone(),
            self.usage.clone(),
            self.notify.clone(),
        )
        .with_training(self.training.clone());
        store.prepare()?;
        Ok(Box::new(store))
    }

    fn open_maildrop(&self, m: &MailboxTable) -> Result<Box<dyn Maildrop>, OpenError> {
        let drop = FolderMaildrop::open(
            &m.address,
            &m.maildir,
            &self.folders,
            &self.pop_locks,
            self.usage.clone(),
        )?;
        Ok(Box::new(drop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::PasswordRef;

    fn mailbox(dir: &std::path::Path) -> MailboxTable {
        MailboxTable {
            address: "alice@example.test".into(),
            domain: "example.test".into(),
            local_part: "alice".into(),
            maildir: dir.join("alice"),
            password: PasswordRef::None,
            quota: None,
            disabled: false,
            sieve: None,
            send_as: Vec::new(),
        }
    }

    fn storage(events: Arc<std::sync::Mutex<Vec<String>>>) -> Maildirs {
        Maildirs::new(
            FolderLocks::new(),
            Arc::new(Usage::new()),
            Arc::new(move |u: &str| events.lock().unwrap().push(u.to_string())),
        )
    }

    /// What IMAP appends, POP3 sees; a second POP3 session is refused
    /// until the first is dropped.
    #[test]
    fn imap_and_pop3_open_the_same_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = storage(events.clone());
        let m = mailbox(dir.path());
        let mut folders = s.open_folders(&m).unwrap();
        assert!(folders.folders().unwrap().contains(&"INBOX".to_string()));
        let (_, uid) = folders
            .append("INBOX", b"Subject: hi\r\n\r\nbody\r\n", &[], None)
            .unwrap();
        assert_eq!(events.lock().unwrap().as_slice(), ["alice@example.test"]);

        let mut pop = s.open_maildrop(&m).unwrap();
        assert_eq!(pop.messages().len(), 1);
        assert_eq!(pop.messages()[0].uid, uid);
        assert_eq!(pop.read(uid).unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
        assert!(matches!(s.open_maildrop(&m), Err(OpenError::InUse)));
        drop(pop);
        assert!(s.open_maildrop(&m).is_ok());
    }
}
