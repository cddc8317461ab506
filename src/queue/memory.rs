//! [`MemoryQueue`]: the [`Queue`] semantics in memory, without durability.
//! For the tests of the queue's users (the outbound manager's decisions,
//! local delivery), where the segment log would add files and syncs and
//! nothing to check. The contract test keeps it and [`super::Spool`] alike.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::{RemoveError, SpoolError};
use super::{Entry, Queue, StoreFuture, valid_id};
use crate::envelope::{Accepted, Envelope};

/// Queue id → envelope and message.
type Entries = BTreeMap<String, (Envelope, Arc<Vec<u8>>)>;

#[derive(Debug, Default)]
pub struct MemoryQueue {
    entries: Mutex<Entries>,
    in_flight: Mutex<HashSet<String>>,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves consistent data: every
        // change is a single insert, remove or closure over one envelope.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_flight(&self) -> MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Queue for MemoryQueue {
    fn store(&self, accepted: Accepted) -> StoreFuture<'_> {
        Box::pin(async move {
            let Accepted { envelope, message } = accepted;
            if !valid_id(&envelope.id) {
                return Err(SpoolError::InvalidId);
            }
            let message = Arc::new(message);
            self.entries()
                .insert(envelope.id.clone(), (envelope.clone(), message.clone()));
            Ok(Entry {
                envelope,
                message: Some(message),
                retried: false,
            })
        })
    }

    fn read_message(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        self.entries()
            .get(id)
            .map(|(_, m)| m.to_vec())
            .ok_or_else(|| SpoolError::NotQueued(id.to_string()))
    }

    fn get(&self, id: &str) -> Option<Envelope> {
        self.entries().get(id).map(|(e, _)| e.clone())
    }

    fn list(&self) -> Vec<Envelope> {
        self.entries().values().map(|(e, _)| e.clone()).collect()
    }

    fn modify(&self, id: &str, f: &mut dyn FnMut(&mut Envelope)) -> Option<(Envelope, bool)> {
        let mut entries = self.entries();
        let (env, _) = entries.get_mut(id)?;
        let was_done = env.is_done();
        f(env);
        let now = env.clone();
        let finished = !was_done && now.is_done();
        Some((now, finished))
    }

    fn finish(&self, id: &str) -> Result<(), SpoolError> {
        self.entries().remove(id);
        Ok(())
    }

    fn begin(&self, id: &str) -> bool {
        self.in_flight().insert(id.to_string())
    }

    fn end(&self, id: &str) {
        self.in_flight().remove(id);
    }

    fn remove(&self, id: &str) -> Result<Envelope, RemoveError> {
        if !valid_id(id) {
            return Err(RemoveError::NotAnId(id.to_string()));
        }
        if !self.begin(id) {
            return Err(RemoveError::Busy(id.to_string()));
        }
        let removed = self.entries().remove(id).map(|(e, _)| e);
        self.end(id);
        removed.ok_or_else(|| RemoveError::NoSuchEntry(id.to_string()))
    }
}
