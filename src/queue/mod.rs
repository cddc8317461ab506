//! `queue`: what was accepted and is not yet everywhere it must go.
//!
//! The consumers (SMTP/LMTP acceptance, `mailc sendmail`, DSNs, local
//! delivery, the outbound manager, the control socket) hold an
//! `Arc<dyn Queue>` and use only the operations of [`Queue`]. Two
//! implementations keep the trait honest:
//!
//! - [`Spool`]: the durable segment-log spool in `<state>/queue/`, the one
//!   the server runs on (group commit, crash recovery; see [`spool`]).
//! - [`memory::MemoryQueue`]: the same semantics in memory, without
//!   durability, for the tests of the queue's users.
//!
//! A contract test (`contract.rs`) runs the same checks against both.
//! Offline administration (`mailc queue` when no server runs) reads the
//! spool directory itself: [`Spool::list_offline`], [`Spool::remove_offline`].

pub mod error;
pub mod log;
pub mod memory;
pub mod spool;

#[cfg(test)]
pub(crate) mod contract;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::envelope::{Accepted, Destination, Envelope, Status};

pub use error::{QueueId, RemoveError, SpoolError};
pub use spool::{CommitStats, Spool};

/// A message in the queue, with its bytes when they are at hand.
#[derive(Debug, Clone)]
pub struct Entry {
    pub envelope: Envelope,
    /// `None` after recovery: read from the queue when needed.
    pub message: Option<Arc<Vec<u8>>>,
    /// Delivery was attempted before (recovery, retry): deliveries must
    /// check for copies made by the earlier attempt.
    pub retried: bool,
}

/// What [`Queue::store`] returns: a boxed future keeps the trait usable as
/// `dyn Queue` (one allocation per stored message).
pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<Entry, SpoolError>> + Send + 'a>>;

/// The spool seam: every operation the queue's consumers use.
///
/// Entries are keyed by queue id and listed in id order (ids sort by
/// arrival, see [`new_id`]). Deliveries are idempotent locally and
/// at-least-once remotely, so progress recorded with [`Queue::modify`] may
/// be lost in a crash; what [`Queue::store`] acknowledged may not.
pub trait Queue: Send + Sync {
    /// Stores a message. Returns only once the message and its envelope
    /// survive a crash (for a durable implementation): only then may SMTP
    /// answer 250. An id [`new_id`] would not produce is refused.
    fn store(&self, accepted: Accepted) -> StoreFuture<'_>;

    /// The bytes of a queued message.
    fn read_message(&self, id: &str) -> Result<Vec<u8>, SpoolError>;

    /// The envelope of a queued entry as it is now.
    fn get(&self, id: &str) -> Option<Envelope>;

    /// Every queued entry, in id order.
    fn list(&self) -> Vec<Envelope>;

    /// Changes an entry's envelope atomically with respect to every other
    /// `modify`, so that local delivery and the outbound workers, each
    /// changing only its own deliveries, never overwrite each other's
    /// progress. Returns the envelope as it is now and whether this change
    /// finished it (pending before, not now): only that caller settles it.
    /// `None` when no such entry is queued.
    fn modify(&self, id: &str, f: &mut dyn FnMut(&mut Envelope)) -> Option<(Envelope, bool)>;

    /// The entry leaves the queue (every delivery finished, any report it
    /// owed queued first). Finishing an entry that is not queued is not an
    /// error.
    fn finish(&self, id: &str) -> Result<(), SpoolError>;

    /// Marks an entry as being delivered; false if it already is.
    fn begin(&self, id: &str) -> bool;

    /// Ends what [`Queue::begin`] started.
    fn end(&self, id: &str);

    /// Removes an entry on request of the admin (it is not delivered).
    /// Refused while it is being delivered ([`Queue::begin`]); durable when
    /// it returns.
    fn remove(&self, id: &str) -> Result<Envelope, RemoveError>;

    /// Entries with a pending delivery of the given kind (local: to a
    /// mailbox; else remote) whose next attempt is at or before `now`, in
    /// id order.
    fn due(&self, now: u64, local: bool) -> Vec<Envelope> {
        self.list()
            .into_iter()
            .filter(|e| {
                e.deliveries.iter().any(|d| {
                    matches!(d.status, Status::Pending)
                        && d.next_attempt <= now
                        && matches!(d.destination, Destination::Mailbox { .. }) == local
                })
            })
            .collect()
    }

    /// Makes pending deliveries due now (`mailc queue flush`): all of them,
    /// or those of the entry with id `target`, or those to the recipient
    /// domain `target`. Changes go through [`Queue::modify`], so a result
    /// recorded meanwhile is never overwritten. Returns the entries changed.
    fn flush(&self, target: Option<&str>) -> usize {
        let mut n = 0;
        for id in self.list().into_iter().map(|e| e.id) {
            let mut changed = false;
            self.modify(&id, &mut |env| {
                let whole = target.is_none_or(|t| t == env.id);
                for d in &mut env.deliveries {
                    let domain =
                        d.destination
                            .address()
                            .rsplit_once('@')
                            .is_some_and(|(_, dom)| {
                                target.is_some_and(|t| dom.eq_ignore_ascii_case(t))
                            });
                    if matches!(d.status, Status::Pending)
                        && d.next_attempt > 0
                        && (whole || domain)
                    {
                        d.next_attempt = 0;
                        changed = true;
                    }
                }
            });
            n += usize::from(changed);
        }
        n
    }
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

/// Whether `id` is one [`new_id`] could have made: it names files in the
/// spool, so nothing else is taken.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}
