//! What the IMAP session needs from the mail store: one user's folders
//! behind the [`Store`] trait (the Maildir store in `services::mailstore`
//! and the fuzz target's in-memory store implement it), and [`Env`] to open
//! it once a user has logged in.

use std::sync::Arc;

use super::{mime, search};

/// A message as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgMeta {
    pub uid: u32,
    /// System flags (`\Seen`) and keywords.
    pub flags: Vec<String>,
    pub modseq: u64,
    /// RFC822.SIZE: octets with CRLF line ends.
    pub size: u64,
    /// Unix time.
    pub internal_date: i64,
}

/// What a sync does with the \Recent messages (RFC 3501 §2.3.2): the
/// first read-write session to have the folder selected after they arrived
/// takes them, so that no other session sees them as recent; EXAMINE,
/// STATUS and the checks of other commands only look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recent {
    Claim,
    Look,
}

/// A folder brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// Sorted by UID.
    pub messages: Vec<MsgMeta>,
    /// The \Recent UIDs (see [`Recent`]).
    pub recent: Vec<u32>,
    /// Keywords defined in the folder, whether or not a message carries
    /// them now (FLAGS lists them).
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    Exists,
    /// The name cannot be a mailbox (path escape, bad characters, INBOX).
    Invalid(String),
    OverQuota,
    /// The operation is refused (deleting INBOX, say).
    Refused(String),
    Io(String),
}

/// A folder's counters after a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    pub uidvalidity: u32,
    pub highestmodseq: u64,
    pub count: usize,
    pub recent: Vec<u32>,
}

/// Result of a flag change: messages changed, and UIDs left alone because
/// they were modified after UNCHANGEDSINCE.
#[derive(Debug, Clone, Default)]
pub struct FlagResult {
    pub changed: Vec<MsgMeta>,
    pub modified: Vec<u32>,
}

/// One user's mailboxes. Names are UTF-8 with `/` as the hierarchy
/// separator; `INBOX` is the inbox.
pub trait Store: Send {
    fn folders(&mut self) -> Result<Vec<String>, StoreError>;
    fn create(&mut self, name: &str) -> Result<(), StoreError>;
    fn delete(&mut self, name: &str) -> Result<(), StoreError>;
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StoreError>;
    fn subscriptions(&mut self) -> Vec<String>;
    fn subscribe(&mut self, name: &str, on: bool) -> Result<(), StoreError>;
    fn sync(&mut self, name: &str, recent: Recent) -> Result<FolderState, StoreError>;
    /// What [`Store::sync`] would say, without the message list: enough to
    /// tell that nothing changed.
    fn peek(&mut self, name: &str, recent: Recent) -> Result<Peek, StoreError> {
        let st = self.sync(name, recent)?;
        Ok(Peek {
            uidvalidity: st.uidvalidity,
            highestmodseq: st.highestmodseq,
            count: st.messages.len(),
            recent: st.recent,
        })
    }
    fn read(&mut self, name: &str, uid: u32) -> Result<Vec<u8>, StoreError>;
    /// The header section of a message (through the blank line), CRLF line
    /// ends. Message contents never change, so a store may cache these.
    fn read_header(&mut self, name: &str, uid: u32) -> Result<Arc<[u8]>, StoreError> {
        let data = mime::to_crlf(self.read(name, uid)?);
        Ok(Arc::from(search::header_part(&data)))
    }
    fn set_flags(
        &mut self,
        name: &str,
        updates: &[(u32, Vec<String>)],
        unchangedsince: Option<u64>,
    ) -> Result<FlagResult, StoreError>;
    fn expunge(&mut self, name: &str, uids: &[u32]) -> Result<Vec<u32>, StoreError>;
    /// Returns (UIDVALIDITY, UID).
    fn append(
        &mut self,
        name: &str,
        data: &[u8],
        flags: &[String],
        date: Option<i64>,
    ) -> Result<(u32, u32), StoreError>;
    /// Returns the target's UIDVALIDITY and (source UID, new UID) pairs.
    fn copy(
        &mut self,
        from: &str,
        uids: &[u32],
        to: &str,
    ) -> Result<(u32, Vec<(u32, u32)>), StoreError>;
    /// UIDs expunged after `modseq`, as far as history goes.
    fn vanished_since(&mut self, name: &str, modseq: u64) -> Result<Vec<u32>, StoreError>;
    /// (bytes used, limit).
    fn quota(&mut self) -> (u64, Option<u64>);
}

/// What the session needs from outside.
pub trait Env {
    /// The mailboxes of a user who logged in.
    fn open(&self, mailbox: &str) -> Result<Box<dyn Store>, String>;
}
