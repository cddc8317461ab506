//! Local delivery: takes queue entries and writes a copy into the Maildir of
//! every local mailbox they are for. Deliveries are batched: all copies of a
//! batch are written, one `syncfs` makes them durable, and only then are the
//! queue entries marked delivered (or removed when nothing else is left).
//! Failed deliveries stay queued and are retried with back-off.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Shared, unix_now};
use crate::envelope::{Destination, Status};
use crate::proto::smtp::headers;
use crate::queue::Entry;
use crate::store::{fsutil, maildir};

/// Most entries delivered in one batch (one sync).
const MAX_BATCH: usize = 512;
/// How often the queue is scanned for deliveries due for a retry.
const SWEEP: Duration = Duration::from_secs(30);

/// Runs until the channel closes or the server shuts down.
pub async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<Entry>) {
    let mut shutdown = shared.shutdown.clone();
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => return,
            },
            _ = sweep.tick() => {
                requeue_due(&shared);
                continue;
            }
            _ = shutdown.changed() => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        batch.retain(|e| shared.spool.begin(&e.envelope.id));
        if batch.is_empty() {
            continue;
        }
        let ids: Vec<String> = batch.iter().map(|e| e.envelope.id.clone()).collect();
        let worker = shared.clone();
        let _ = tokio::task::spawn_blocking(move || deliver_batch(&worker, batch)).await;
        for id in ids {
            shared.spool.end(&id);
        }
    }
}

/// Hands entries whose local deliveries are due (retries, recovered entries
/// after a restart, `mailc queue flush`) to the worker.
pub fn requeue_due(shared: &Shared) {
    for envelope in shared.spool.due(unix_now(), true) {
        let _ = shared.delivery.send(Entry {
            envelope,
            message: None,
            retried: true,
        });
    }
}

fn backoff(attempts: u32) -> u64 {
    (60u64 << attempts.min(6)).min(3600)
}

struct Done {
    entry: usize,
    delivery: usize,
    mailbox: String,
    size: u64,
    new: bool,
}

fn deliver_batch(shared: &Shared, mut batch: Vec<Entry>) {
    let snapshot = shared.snapshot();
    let tables = &snapshot.tables;
    let now = unix_now();
    let mut done: Vec<Done> = Vec::new();
    for (ei, entry) in batch.iter_mut().enumerate() {
        let message = match &entry.message {
            Some(m) => m.clone(),
            None => match shared.spool.read_message(&entry.envelope.id) {
                Ok(m) => Arc::new(m),
                Err(e) => {
                    tracing::error!(id = %entry.envelope.id, error = %e, "cannot read queued message");
                    continue;
                }
            },
        };
        let retried = entry.retried;
        let env = &mut entry.envelope;
        let return_path = headers::return_path(&env.sender);
        for (di, d) in env.deliveries.iter_mut().enumerate() {
            let Destination::Mailbox { address } = &d.destination else {
                continue;
            };
            if !matches!(d.status, Status::Pending) {
                continue;
            }
            let failure = match tables.mailboxes.get(address) {
                None => Some("mailbox no longer exists".to_string()),
                Some(m) if m.disabled => Some("mailbox is disabled".to_string()),
                Some(m) => {
                    let delivered_to = format!("Delivered-To: {address}\r\n");
                    let size = (return_path.len() + delivered_to.len() + message.len()) as u64;
                    let name =
                        maildir::file_name(env.received_at, &env.id, di, &tables.hostname, size);
                    let parts: [&[u8]; 3] =
                        [return_path.as_bytes(), delivered_to.as_bytes(), &message];
                    match maildir::deliver(&m.maildir, &name, &parts, retried || d.attempts > 0) {
                        Ok(r) => {
                            done.push(Done {
                                entry: ei,
                                delivery: di,
                                mailbox: address.clone(),
                                size,
                                new: matches!(r, maildir::Delivered::New(_)),
                            });
                            None
                        }
                        Err(e) => Some(format!("writing to {}: {e}", m.maildir.display())),
                    }
                }
            };
            if let Some(error) = failure {
                d.attempts += 1;
                d.next_attempt = now + backoff(d.attempts);
                tracing::warn!(id = %env.id, mailbox = %address, %error, attempts = d.attempts, "delivery deferred");
                d.last_error = Some(error);
            }
        }
    }
    if done.iter().any(|d| d.new)
        && let Err(e) = fsutil::sync_filesystem(&tables.state_dir)
    {
        // Nothing is marked delivered: everything is retried later and the
        // copies already written are found again.
        tracing::error!(error = %e, "cannot sync deliveries to disk");
        return;
    }
    for d in &done {
        let env = &mut batch[d.entry].envelope;
        env.deliveries[d.delivery].status = Status::Delivered { at: now };
        if d.new
            && let Some(m) = tables.mailboxes.get(&d.mailbox)
            && m.quota.is_some()
        {
            shared.usage.add(&d.mailbox, &m.maildir, d.size);
        }
        tracing::info!(id = %env.id, mailbox = %d.mailbox, size = d.size, "delivered");
    }
    for entry in &batch {
        let env = &entry.envelope;
        let result = if env.is_done() {
            shared.spool.finish(&env.id)
        } else {
            shared.spool.update(env)
        };
        if let Err(e) = result {
            tracing::error!(id = %env.id, error = %e, "cannot update the queue entry");
        }
    }
}
