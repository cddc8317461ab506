//! Local delivery: takes queue entries and writes a copy into the Maildir of
//! every local mailbox they are for. Entries with remote recipients are
//! announced to the outbound manager ([`super::outbound`]) here too.
//!
//! Deliveries are batched: every copy of a batch is written unsynced into
//! `tmp/`, one file-system sync makes the data durable, every copy is
//! renamed into `new/`, and one more sync makes the names durable (a batch
//! of one copy is written, synced and its directory synced). Only then are
//! the queue entries marked delivered, with [`Queue::modify`] (so the
//! outbound manager's progress on the same entry is kept). A mailbox that no
//! longer exists or is disabled fails permanently (a DSN goes back); other
//! failures are retried with back-off until the outbound expiry.
//!
//! [`Queue::modify`]: crate::queue::Queue::modify

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Shared, unix_now};
use crate::envelope::{Destination, Status};
use crate::proto::smtp::headers;
use crate::queue::Entry;
use crate::store::{fsutil, maildir};
use crate::tables::Tables;

/// Most entries delivered in one batch (one sync).
const MAX_BATCH: usize = 512;
/// How long the first entry of a batch waits for company. At one SMTP
/// session messages arrive one at a time; gathering them for a few
/// milliseconds lets one directory sync (and one journal commit for the
/// files synced together) serve many, instead of the disk syncing for
/// delivery once per message while acceptance needs it too.
const LINGER: Duration = Duration::from_millis(10);
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
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(e)) => batch.push(e),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        // Remote recipients are the outbound manager's; local delivery
        // keeps only entries with a local copy to make.
        batch.retain(|e| {
            let env = &e.envelope;
            let pending = |local: bool| {
                env.deliveries.iter().any(|d| {
                    matches!(d.status, Status::Pending)
                        && matches!(d.destination, Destination::Mailbox { .. }) == local
                })
            };
            if pending(false) {
                let _ = shared
                    .outbound
                    .send(super::outbound::Event::Queued(env.id.clone()));
            }
            pending(true)
        });
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

/// One copy to write.
struct Job {
    entry: usize,
    delivery: usize,
    mailbox: String,
    folder: std::path::PathBuf,
    name: String,
    head: String,
    message: Arc<Vec<u8>>,
    check: bool,
}

fn deliver_batch(shared: &Shared, mut batch: Vec<Entry>) {
    let snapshot = shared.snapshot();
    let tables = &snapshot.tables;
    let now = unix_now();
    let jobs = plan_jobs(shared, tables, &mut batch, now);
    let (results, dir_ok) = if jobs.len() >= 2 {
        deliver_staged(&jobs)
    } else {
        deliver_each(&jobs)
    };
    apply_results(shared, tables, &mut batch, &jobs, results, &dir_ok, now);
    record_batch(shared, &batch);
}

/// A job for each pending local delivery of the batch; a mailbox that no
/// longer exists or is disabled fails its delivery at once.
fn plan_jobs(shared: &Shared, tables: &Tables, batch: &mut [Entry], now: u64) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
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
            let address = address.clone();
            let permanent = match tables.mailboxes.get(&address) {
                None => Some(("5.1.1", "mailbox no longer exists")),
                Some(m) if m.disabled => Some(("5.2.1", "mailbox is disabled")),
                Some(m) => {
                    let head = format!("{return_path}Delivered-To: {address}\r\n");
                    // Junk (the inbound checks): the Maildir++ Junk folder,
                    // made on first use as IMAP would (RFC 6154 \Junk).
                    let folder = if env.junk {
                        junk_folder(&m.maildir)
                    } else {
                        m.maildir.clone()
                    };
                    let size = (head.len() + message.len()) as u64;
                    jobs.push(Job {
                        entry: ei,
                        delivery: di,
                        mailbox: address.clone(),
                        folder,
                        name: maildir::file_name(
                            env.received_at,
                            &env.id,
                            di,
                            &tables.hostname,
                            size,
                        ),
                        head,
                        message: message.clone(),
                        check: retried || d.attempts > 0,
                    });
                    None
                }
            };
            if let Some((code, reason)) = permanent {
                tracing::warn!(id = %env.id, mailbox = %address, reason, "local delivery failed");
                d.attempts += 1;
                d.status = Status::Failed {
                    at: now,
                    reason: reason.to_string(),
                };
                d.status_code = Some(code.into());
                d.last_error = Some(reason.into());
            }
        }
    }
    jobs
}

/// Each job's outcome into its delivery: delivered (counted, sessions
/// told), or deferred when the write or the directory sync failed.
fn apply_results(
    shared: &Shared,
    tables: &Tables,
    batch: &mut [Entry],
    jobs: &[Job],
    results: Vec<std::io::Result<maildir::Delivered>>,
    dir_ok: &HashSet<PathBuf>,
    now: u64,
) {
    for (job, result) in jobs.iter().zip(results) {
        let env = &mut batch[job.entry].envelope;
        let id = env.id.clone();
        let expires = env.received_at.saturating_add(tables.outbound.expire_secs);
        let d = &mut env.deliveries[job.delivery];
        match result {
            Ok(r) => {
                let new = matches!(r, maildir::Delivered::New(_));
                if new && !dir_ok.contains(&job.folder) {
                    // Not durable: retried later, and the copy is found then.
                    defer(
                        &id,
                        &job.mailbox,
                        d,
                        "directory sync failed".into(),
                        now,
                        expires,
                    );
                    continue;
                }
                d.status = Status::Delivered { at: now };
                d.status_code = Some("2.0.0".into());
                let size = (job.head.len() + job.message.len()) as u64;
                if new
                    && let Some(m) = tables.mailboxes.get(&job.mailbox)
                    && m.quota.is_some()
                {
                    shared.usage.add(&job.mailbox, &m.maildir, size);
                }
                tracing::info!(id = %id, mailbox = %job.mailbox, size, "delivered");
                // The folder's memo is out of date; IDLE sessions of the
                // mailbox look now.
                if let Ok(mut memo) = shared.folders.get(&job.folder).lock() {
                    memo.stale();
                }
                let _ = shared.mail_events.send(job.mailbox.clone());
            }
            Err(e) => defer(
                &id,
                &job.mailbox,
                d,
                format!("writing to {}: {e}", job.folder.display()),
                now,
                expires,
            ),
        }
    }
}

/// The batch's results into the spool; an entry that owes a report goes to
/// the outbound manager, a finished one leaves the queue.
fn record_batch(shared: &Shared, batch: &[Entry]) {
    for entry in batch {
        let local = &entry.envelope;
        // Only this worker's deliveries are copied over: the outbound
        // manager may have recorded remote progress meanwhile.
        let changed = shared.spool.modify(&local.id, &mut |cur| {
            for (mine, theirs) in local.deliveries.iter().zip(cur.deliveries.iter_mut()) {
                if matches!(mine.destination, Destination::Mailbox { .. })
                    && mine.destination == theirs.destination
                {
                    *theirs = mine.clone();
                }
            }
        });
        let Some((env, finished)) = changed else {
            continue;
        };
        let owes_report = env
            .deliveries
            .iter()
            .any(|d| matches!(d.status, Status::Failed { .. }) && !d.dsn_sent)
            || env.recipients.iter().any(|r| r.notify.success);
        if owes_report {
            // DSNs are queued by the manager, the one task that settles.
            let _ = shared
                .outbound
                .send(super::outbound::Event::Settle(env.id.clone()));
        } else if finished && let Err(e) = shared.spool.finish(&env.id) {
            tracing::error!(id = %env.id, error = %e, "cannot update the queue entry");
        }
    }
}

/// A local delivery that may work later: retried with back-off, until the
/// outbound expiry, then failed (status 4.4.7, a DSN goes back).
fn defer(
    id: &str,
    mailbox: &str,
    d: &mut crate::envelope::Delivery,
    error: String,
    now: u64,
    expires: u64,
) {
    d.attempts += 1;
    if now >= expires {
        tracing::warn!(id, mailbox, %error, "local delivery expired");
        d.status = Status::Failed {
            at: now,
            reason: format!("delivery time expired; last error: {error}"),
        };
        d.status_code = Some("4.4.7".into());
    } else {
        d.next_attempt = (now + backoff(d.attempts)).min(expires);
        tracing::warn!(id, mailbox, %error, attempts = d.attempts, "delivery deferred");
        d.status_code = Some("4.2.0".into());
    }
    d.last_error = Some(error);
}

/// Batch delivery: every copy written unsynced into `tmp/`, one sync per
/// file system, every copy moved into `new/`, one more sync per file
/// system. Two journal commits for the whole batch instead of one per copy
/// and one per directory; a name in `new/` always has its data on disk (a
/// retry after a crash trusts it). Returns each result and the folders
/// whose deliveries are durable.
fn deliver_staged(
    jobs: &[Job],
) -> (
    Vec<std::io::Result<maildir::Delivered>>,
    std::collections::HashSet<std::path::PathBuf>,
) {
    use std::os::unix::fs::MetadataExt;
    let staged: Vec<std::io::Result<Option<std::path::PathBuf>>> = jobs
        .iter()
        .map(|j| {
            maildir::stage(
                &j.folder,
                &j.name,
                &[j.head.as_bytes(), &j.message],
                j.check,
            )
        })
        .collect();
    // One folder per file system stands for it.
    let mut filesystems: std::collections::HashMap<u64, &std::path::Path> =
        std::collections::HashMap::new();
    let mut dev_of: Vec<Option<u64>> = Vec::new();
    for j in jobs {
        let dev = std::fs::metadata(&j.folder).ok().map(|m| m.dev());
        if let Some(d) = dev {
            filesystems.entry(d).or_insert(j.folder.as_path());
        }
        dev_of.push(dev);
    }
    let sync_all = |what: &str| -> std::collections::HashSet<u64> {
        filesystems
            .iter()
            .filter_map(|(dev, path)| match fsutil::sync_filesystem(path) {
                Ok(()) => Some(*dev),
                Err(e) => {
                    tracing::error!(dir = %path.display(), error = %e, "cannot sync {what}");
                    None
                }
            })
            .collect()
    };
    let data_ok = sync_all("delivered data");
    let mut results = Vec::with_capacity(jobs.len());
    for ((j, st), dev) in jobs.iter().zip(staged).zip(&dev_of) {
        results.push(match st {
            Ok(None) => Ok(maildir::Delivered::Existing),
            Ok(Some(_)) if dev.is_some_and(|d| data_ok.contains(&d)) => {
                maildir::publish(&j.folder, &j.name).map(maildir::Delivered::New)
            }
            Ok(Some(tmp)) => {
                let _ = std::fs::remove_file(tmp);
                Err(std::io::Error::other("file system sync failed"))
            }
            Err(e) => Err(e),
        });
    }
    let names_ok = sync_all("a Maildir");
    let durable = jobs
        .iter()
        .zip(&dev_of)
        .filter(|(_, d)| d.is_some_and(|d| names_ok.contains(&d)))
        .map(|(j, _)| j.folder.clone())
        .collect();
    (results, durable)
}

/// A batch of one copy (or none): written and synced, then its directory
/// synced.
fn deliver_each(
    jobs: &[Job],
) -> (
    Vec<std::io::Result<maildir::Delivered>>,
    std::collections::HashSet<std::path::PathBuf>,
) {
    let results: Vec<std::io::Result<maildir::Delivered>> = jobs
        .iter()
        .map(|j| {
            maildir::deliver(
                &j.folder,
                &j.name,
                &[j.head.as_bytes(), &j.message],
                j.check,
            )
        })
        .collect();
    // One directory sync per `new/` for the whole batch.
    let mut dirs: Vec<&std::path::Path> = jobs
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(maildir::Delivered::New(_))))
        .map(|(j, _)| j.folder.as_path())
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut dir_ok = std::collections::HashSet::new();
    for d in dirs {
        match fsutil::sync_dir(&d.join("new")) {
            Ok(()) => {
                dir_ok.insert(d.to_path_buf());
            }
            Err(e) => tracing::error!(dir = %d.display(), error = %e, "cannot sync a Maildir"),
        }
    }
    (results, dir_ok)
}

/// The Junk folder of a mailbox's Maildir (`.Junk`, as the IMAP store
/// names it), created when missing. If it cannot be made, the message goes
/// to INBOX rather than nowhere.
fn junk_folder(maildir: &std::path::Path) -> PathBuf {
    let junk = maildir.join(".Junk");
    if junk.join("cur").is_dir() {
        return junk;
    }
    match crate::store::folder::Folder::new(&junk).create() {
        Ok(()) => {
            let _ = std::fs::write(junk.join("maildirfolder"), b"");
            junk
        }
        Err(e) => {
            tracing::warn!(folder = %junk.display(), error = %e, "cannot make the Junk folder; delivering to INBOX");
            maildir.to_path_buf()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Queue;
    use crate::services::outbound::Event;
    use crate::services::testing::{Harness, harness, mailbox, message, queued, remote};

    const SENDER: &str = "sender@remote.example";

    fn settles(h: &mut Harness) -> Vec<String> {
        let mut ids = Vec::new();
        while let Ok(ev) = h.outbound.try_recv() {
            if let Event::Settle(id) = ev {
                ids.push(id);
            }
        }
        ids
    }

    #[tokio::test]
    async fn unknown_and_disabled_mailboxes_fail_and_are_settled() {
        // No Maildir is touched: the state directory does not exist.
        let mut h = harness(std::path::Path::new("/nonexistent-mailc-test"));
        let to = [
            mailbox("nobody@example.test"),
            mailbox("bob@example.test"),
            remote("c@example.org"),
        ];
        let entry = queued(&h, message("U1", SENDER, &to, 100)).await;
        deliver_batch(&h.shared, vec![entry]);
        let env = h
            .queue
            .get("U1")
            .expect("the remote delivery keeps it queued");
        let codes: Vec<_> = env
            .deliveries
            .iter()
            .map(|d| d.status_code.as_deref())
            .collect();
        assert_eq!(codes, [Some("5.1.1"), Some("5.2.1"), None]);
        assert!(
            matches!(&env.deliveries[0].status, Status::Failed { reason, .. } if reason == "mailbox no longer exists")
        );
        assert!(matches!(env.deliveries[2].status, Status::Pending));
        assert_eq!(settles(&mut h), ["U1"], "the manager queues the DSN");
    }

    #[tokio::test]
    async fn delivered_copies_keep_remote_progress_recorded_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = harness(dir.path());
        let to = [mailbox("alice@example.test"), remote("c@example.org")];
        let entry = queued(&h, message("M1", SENDER, &to, 100)).await;
        // The outbound manager records an attempt after delivery took its
        // copy of the envelope.
        h.queue.modify("M1", &mut |e| {
            e.deliveries[1].attempts = 2;
            e.deliveries[1].last_error = Some("451 later".into());
        });
        deliver_batch(&h.shared, vec![entry]);
        let env = h.queue.get("M1").unwrap();
        assert!(matches!(env.deliveries[0].status, Status::Delivered { .. }));
        assert_eq!(env.deliveries[0].status_code.as_deref(), Some("2.0.0"));
        assert_eq!(env.deliveries[1].attempts, 2, "remote progress kept");
        assert_eq!(env.deliveries[1].last_error.as_deref(), Some("451 later"));
        assert!(settles(&mut h).is_empty(), "nothing owed");
        let new = dir.path().join("mail/example.test/alice/new");
        let files: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(
            text.starts_with(&format!(
                "Return-Path: <{SENDER}>\r\nDelivered-To: alice@example.test\r\n"
            )),
            "{text}"
        );
        assert!(text.ends_with("Subject: test M1\r\n\r\nbody\r\n"));
    }

    #[tokio::test]
    async fn an_entry_all_delivered_leaves_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = harness(dir.path());
        let a = queued(
            &h,
            message("A1", SENDER, &[mailbox("alice@example.test")], 100),
        )
        .await;
        let b = queued(
            &h,
            message("A2", SENDER, &[mailbox("alice@example.test")], 100),
        )
        .await;
        // Two entries: the staged path (one sync for the batch).
        deliver_batch(&h.shared, vec![a, b]);
        assert!(h.queue.list().is_empty());
        assert!(settles(&mut h).is_empty());
        let new = dir.path().join("mail/example.test/alice/new");
        assert_eq!(std::fs::read_dir(&new).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn a_write_failure_is_retried_with_backoff_then_expires() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the mail directory should be: every write fails.
        std::fs::write(dir.path().join("mail"), b"not a directory").unwrap();
        let mut h = harness(dir.path());
        let now = unix_now();
        let entry = queued(
            &h,
            message("W1", SENDER, &[mailbox("alice@example.test")], now),
        )
        .await;
        deliver_batch(&h.shared, vec![entry]);
        let d = h.queue.get("W1").unwrap().deliveries[0].clone();
        assert!(matches!(d.status, Status::Pending));
        assert_eq!(d.attempts, 1);
        assert_eq!(d.status_code.as_deref(), Some("4.2.0"));
        assert!(d.last_error.as_deref().unwrap().starts_with("writing to "));
        // backoff(1) = 2 minutes, whatever second the clock turned meanwhile.
        assert!(
            (now + 120..=now + 125).contains(&d.next_attempt),
            "{}",
            d.next_attempt
        );
        assert!(h.queue.due(d.next_attempt - 1, true).is_empty());
        assert!(settles(&mut h).is_empty());

        // Past the expiry, the next failure is permanent (4.4.7, a DSN).
        let expire = h.shared.snapshot().tables.outbound.expire_secs;
        h.queue
            .modify("W1", &mut |e| e.received_at = now - expire - 1);
        let retry = Entry {
            envelope: h.queue.get("W1").unwrap(),
            message: None,
            retried: true,
        };
        deliver_batch(&h.shared, vec![retry]);
        let d = h.queue.get("W1").unwrap().deliveries[0].clone();
        assert!(matches!(d.status, Status::Failed { .. }));
        assert_eq!(d.status_code.as_deref(), Some("4.4.7"));
        assert_eq!(d.attempts, 2);
        assert_eq!(settles(&mut h), ["W1"]);
    }

    #[tokio::test]
    async fn due_entries_are_requeued_as_retries() {
        let mut h = harness(std::path::Path::new("/nonexistent-mailc-test"));
        let now = unix_now();
        queued(
            &h,
            message("Q1", SENDER, &[mailbox("alice@example.test")], now - 5),
        )
        .await;
        queued(
            &h,
            message("Q2", SENDER, &[mailbox("alice@example.test")], now + 3600),
        )
        .await;
        queued(
            &h,
            message("Q3", SENDER, &[remote("c@example.org")], now - 5),
        )
        .await;
        requeue_due(&h.shared);
        let e = h.delivery.try_recv().expect("Q1 is due");
        assert_eq!(e.envelope.id, "Q1");
        assert!(e.retried && e.message.is_none());
        assert!(
            h.delivery.try_recv().is_err(),
            "Q2 is not due, Q3 is outbound's"
        );
    }
}
