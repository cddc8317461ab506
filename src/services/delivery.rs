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

use super::{Shared, filtering, unix_now};
use crate::envelope::{Accepted, Destination, Status};
use crate::filter;
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
        let generated = tokio::task::spawn_blocking(move || deliver_batch(&worker, batch))
            .await
            .unwrap_or_default();
        for id in ids {
            shared.spool.end(&id);
        }
        queue_generated(&shared, generated).await;
    }
}

/// Queues the messages Sieve scripts made (redirects, vacation replies),
/// as the SMTP services queue what they accept.
async fn queue_generated(shared: &Shared, generated: Vec<Accepted>) {
    for mut accepted in generated {
        super::outbound::sign_submission(&shared.snapshot(), &mut accepted);
        match shared.spool.store(accepted).await {
            Ok(entry) => {
                tracing::info!(
                    id = %entry.envelope.id,
                    from = %entry.envelope.sender,
                    size = entry.envelope.size,
                    "queued (Sieve)"
                );
                let _ = shared.delivery.send(entry);
            }
            Err(e) => tracing::error!(error = %e, "cannot queue a Sieve redirect or reply"),
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
    /// Maildir flag letters set at delivery (Sieve imap4flags).
    flags: String,
    /// IMAP keywords set at delivery: the copy goes through the folder's
    /// index ([`crate::store::folder::Folder::deliver_indexed`]).
    keywords: Vec<String>,
}

/// What the Sieve scripts of one delivery decided beyond the copies to
/// write: carried out once the delivery is done.
struct Effects {
    entry: usize,
    delivery: usize,
    mailbox: String,
    evaluation: filtering::Evaluation,
}

/// Delivers a batch; returns the messages the Sieve scripts generated
/// (redirects, vacation replies), for the caller to queue.
fn deliver_batch(shared: &Shared, mut batch: Vec<Entry>) -> Vec<Accepted> {
    let snapshot = shared.snapshot();
    let tables = &snapshot.tables;
    let now = unix_now();
    let (jobs, effects) = plan_jobs(shared, &snapshot, &mut batch, now);
    let (indexed, plain): (Vec<Job>, Vec<Job>) =
        jobs.into_iter().partition(|j| !j.keywords.is_empty());
    let (mut results, mut dir_ok) = if plain.len() >= 2 {
        deliver_staged(&plain)
    } else {
        deliver_each(&plain)
    };
    // Copies with keywords, one by one through their folder's index.
    let plain_folders: HashSet<PathBuf> = plain.iter().map(|j| j.folder.clone()).collect();
    for j in &indexed {
        let r = if j.check && maildir::already_delivered(&j.folder, &j.name) {
            Ok(maildir::Delivered::Existing)
        } else {
            let data = [j.head.as_bytes(), j.message.as_slice()].concat();
            crate::store::folder::Folder::new(&j.folder)
                .deliver_indexed(
                    &shared.folders.get(&j.folder),
                    &j.name,
                    &data,
                    &j.flags,
                    &j.keywords,
                )
                .map(maildir::Delivered::New)
        };
        // Durable (cur/ synced) unless plain copies of the folder failed
        // their sync: then the delivery is retried and finds this copy.
        if r.is_ok() && (!plain_folders.contains(&j.folder) || dir_ok.contains(&j.folder)) {
            dir_ok.insert(j.folder.clone());
        }
        results.push(r);
    }
    let jobs: Vec<Job> = plain.into_iter().chain(indexed).collect();
    apply_results(shared, tables, &mut batch, &jobs, results, &dir_ok, now);
    let generated = carry_out(tables, &batch, effects, now);
    record_batch(shared, &batch);
    generated
}

/// The Sieve effects of the deliveries that are done: vacation and
/// `duplicate` ids recorded, redirects and replies built for the queue.
fn carry_out(tables: &Tables, batch: &[Entry], effects: Vec<Effects>, now: u64) -> Vec<Accepted> {
    let mut out = Vec::new();
    for fx in effects {
        let env = &batch[fx.entry].envelope;
        if !matches!(env.deliveries[fx.delivery].status, Status::Delivered { .. }) {
            continue;
        }
        filtering::record_seen(&tables.state_dir, &fx.mailbox, &fx.evaluation);
        out.extend(filtering::generated(
            tables,
            &fx.evaluation,
            &fx.mailbox,
            &env.sender,
            &env.id,
            now,
        ));
    }
    out
}

/// A job for each copy to write of the pending local deliveries of the
/// batch (one, or one per folder the Sieve scripts file it into), and the
/// scripts' other effects; a mailbox that no longer exists or is disabled,
/// or a Sieve `reject`, fails its delivery at once; a copy the scripts
/// discard or only redirect is delivered with nothing to write.
fn plan_jobs(
    shared: &Shared,
    snapshot: &super::Snapshot,
    batch: &mut [Entry],
    now: u64,
) -> (Vec<Job>, Vec<Effects>) {
    let tables = &snapshot.tables;
    let mut jobs: Vec<Job> = Vec::new();
    let mut effects: Vec<Effects> = Vec::new();
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
        let recipients = env.recipients.clone();
        for (di, d) in env.deliveries.iter_mut().enumerate() {
            let Destination::Mailbox { address } = &d.destination else {
                continue;
            };
            if !matches!(d.status, Status::Pending) {
                continue;
            }
            let address = address.clone();
            let junk = env.junk || d.junk;
            let permanent: Option<(&str, String)> = match tables.mailboxes.get(&address) {
                None => Some(("5.1.1", "mailbox no longer exists".into())),
                Some(m) if m.disabled => Some(("5.2.1", "mailbox is disabled".into())),
                Some(m) => {
                    let head = format!("{return_path}Delivered-To: {address}\r\n");
                    // The address the envelope named (`envelope :to`).
                    let rcpt = recipients
                        .iter()
                        .find(|r| r.deliveries.contains(&di))
                        .map_or(address.as_str(), |r| r.address.as_str());
                    let evaluation =
                        snapshot
                            .filters
                            .evaluate(tables, m, &message, &env.sender, rcpt);
                    let job = |folder: PathBuf,
                               flags: String,
                               keywords: Vec<String>,
                               msg: Arc<Vec<u8>>,
                               edit: usize| {
                        let size = (head.len() + msg.len()) as u64;
                        let id = if edit == 0 {
                            env.id.clone()
                        } else {
                            format!("{}e{edit}", env.id)
                        };
                        Job {
                            entry: ei,
                            delivery: di,
                            mailbox: address.clone(),
                            folder,
                            name: maildir::file_name(
                                env.received_at,
                                &id,
                                di,
                                &tables.hostname,
                                size,
                            ),
                            head: head.clone(),
                            message: msg,
                            check: retried || d.attempts > 0,
                            flags,
                            keywords,
                        }
                    };
                    match evaluation {
                        None => {
                            // Junk (the inbound checks): the Maildir++ Junk
                            // folder, made on first use as IMAP would (RFC
                            // 6154 \Junk).
                            let folder = if junk {
                                junk_folder(&m.maildir)
                            } else {
                                m.maildir.clone()
                            };
                            jobs.push(job(folder, String::new(), Vec::new(), message.clone(), 0));
                            None
                        }
                        Some(ev) => {
                            let reject = ev.outcome.actions.iter().find_map(|a| match a {
                                filter::Action::Reject { reason, .. } => Some(reason.clone()),
                                _ => None,
                            });
                            match reject {
                                Some(reason) if !ev.outcome.stores() => {
                                    tracing::info!(id = %env.id, mailbox = %address, %reason, "rejected by Sieve");
                                    Some((
                                        "5.7.1",
                                        format!("rejected by the recipient's filter: {reason}"),
                                    ))
                                }
                                _ => {
                                    let targets = filtering::targets(
                                        m,
                                        &ev,
                                        junk,
                                        shared.folders.clone(),
                                        shared.usage.clone(),
                                    );
                                    for t in &targets {
                                        let msg = if t.message == 0 {
                                            message.clone()
                                        } else {
                                            match ev.outcome.messages.get(&t.message) {
                                                Some(edited) => Arc::new(edited.clone()),
                                                None => message.clone(),
                                            }
                                        };
                                        jobs.push(job(
                                            t.folder.clone(),
                                            t.flags.clone(),
                                            t.keywords.clone(),
                                            msg,
                                            t.message,
                                        ));
                                    }
                                    for e in &ev.outcome.errors {
                                        tracing::warn!(id = %env.id, mailbox = %address, error = %e, "Sieve script failed; message kept");
                                    }
                                    if targets.is_empty() {
                                        // Discarded or only sent on.
                                        tracing::info!(id = %env.id, mailbox = %address, "nothing stored by Sieve (discard or redirect)");
                                        d.status = Status::Delivered { at: now };
                                        d.status_code = Some("2.0.0".into());
                                    }
                                    effects.push(Effects {
                                        entry: ei,
                                        delivery: di,
                                        mailbox: address.clone(),
                                        evaluation: ev,
                                    });
                                    None
                                }
                            }
                        }
                    }
                }
            };
            if let Some((code, reason)) = permanent {
                tracing::warn!(id = %env.id, mailbox = %address, reason, "local delivery failed");
                d.attempts += 1;
                d.status = Status::Failed {
                    at: now,
                    reason: reason.clone(),
                };
                d.status_code = Some(code.into());
                d.last_error = Some(reason);
            }
        }
    }
    (jobs, effects)
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
    // A delivery written into several folders is done when every copy is;
    // one failed copy defers it (the others are found on the retry).
    let mut failed: HashSet<(usize, usize)> = HashSet::new();
    for (job, result) in jobs.iter().zip(&results) {
        let durable = match result {
            Ok(maildir::Delivered::New(_)) => dir_ok.contains(&job.folder),
            Ok(maildir::Delivered::Existing) => true,
            Err(_) => false,
        };
        if !durable {
            failed.insert((job.entry, job.delivery));
        }
    }
    let mut deferred: HashSet<(usize, usize)> = HashSet::new();
    for (job, result) in jobs.iter().zip(results) {
        let env = &mut batch[job.entry].envelope;
        let id = env.id.clone();
        let expires = env.received_at.saturating_add(tables.outbound.expire_secs);
        let d = &mut env.deliveries[job.delivery];
        let key = (job.entry, job.delivery);
        let error = match result {
            Ok(r) => {
                let new = matches!(r, maildir::Delivered::New(_));
                if new && !dir_ok.contains(&job.folder) {
                    // Not durable: retried later, and the copy is found then.
                    Some("directory sync failed".to_string())
                } else {
                    let size = (job.head.len() + job.message.len()) as u64;
                    if new
                        && let Some(m) = tables.mailboxes.get(&job.mailbox)
                        && m.quota.is_some()
                    {
                        shared.usage.add(&job.mailbox, &m.maildir, size);
                    }
                    tracing::info!(id = %id, mailbox = %job.mailbox, folder = %job.folder.display(), size, "delivered");
                    // The folder's memo is out of date; IDLE sessions of
                    // the mailbox look now.
                    if let Ok(mut memo) = shared.folders.get(&job.folder).lock() {
                        memo.stale();
                    }
                    let _ = shared.mail_events.send(job.mailbox.clone());
                    if !failed.contains(&key) {
                        d.status = Status::Delivered { at: now };
                        d.status_code = Some("2.0.0".into());
                    }
                    None
                }
            }
            Err(e) => Some(format!("writing to {}: {e}", job.folder.display())),
        };
        if let Some(error) = error
            && deferred.insert(key)
        {
            defer(&id, &job.mailbox, d, error, now, expires);
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
                maildir::publish(&j.folder, &j.name, &j.flags).map(maildir::Delivered::New)
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
                &j.flags,
            )
        })
        .collect();
    // One directory sync per `new/` (or `cur/`, for flagged copies) for
    // the whole batch.
    let mut dirs: Vec<(&std::path::Path, &str)> = jobs
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(maildir::Delivered::New(_))))
        .map(|(j, _)| {
            (
                j.folder.as_path(),
                if j.flags.is_empty() { "new" } else { "cur" },
            )
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut dir_ok = std::collections::HashSet::new();
    let mut dir_bad = std::collections::HashSet::new();
    for (d, sub) in dirs {
        match fsutil::sync_dir(&d.join(sub)) {
            Ok(()) => {
                dir_ok.insert(d.to_path_buf());
            }
            Err(e) => {
                tracing::error!(dir = %d.display(), error = %e, "cannot sync a Maildir");
                dir_bad.insert(d.to_path_buf());
            }
        }
    }
    dir_ok.retain(|d| !dir_bad.contains(d));
    (results, dir_ok)
}

/// The Junk folder of a mailbox's Maildir (`.Junk`, as the IMAP store
/// names it), created when missing. If it cannot be made, the message goes
/// to INBOX rather than nowhere.
pub(crate) fn junk_folder(maildir: &std::path::Path) -> PathBuf {
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
    use crate::services::testing::{
        Harness, harness, harness_with, mailbox, message, queued, remote,
    };

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

    /// A harness whose server runs `script` before every user's.
    fn sieve_harness(dir: &std::path::Path, script: &str) -> Harness {
        std::fs::write(dir.join("before.sieve"), script).unwrap();
        harness_with(dir, "sieve {\n before \"before.sieve\"\n}\n")
    }

    fn to_alice(id: &str, from: &str, extra_head: &str) -> crate::envelope::Accepted {
        let mut m = message(id, from, &[mailbox("alice@example.test")], unix_now());
        m.message = format!(
            "{extra_head}From: <{from}>\r\nTo: alice@example.test\r\nSubject: test {id}\r\nMessage-ID: <{id}@remote.example>\r\n\r\nbody\r\n"
        )
        .into_bytes();
        m
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[tokio::test]
    async fn sieve_files_into_created_folders_with_flags() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = sieve_harness(
            dir.path(),
            "require [\"fileinto\", \"imap4flags\", \"mailbox\"];\nfileinto :create :flags \"\\\\Seen\" \"Work/Reports\";\nfileinto \"Missing\";\n",
        );
        let e = queued(&h, to_alice("S1", SENDER, "")).await;
        let generated = deliver_batch(&h.shared, vec![e]);
        assert!(generated.is_empty());
        assert!(h.queue.list().is_empty(), "delivered and finished");
        assert!(settles(&mut h).is_empty());
        let root = dir.path().join("mail/example.test/alice");
        let cur = files(&root.join(".Work.Reports/cur"));
        assert_eq!(cur.len(), 1, "{cur:?}");
        assert!(cur[0].ends_with(":2,S"), "{cur:?}");
        // `Missing` has no :create and does not exist: INBOX instead.
        assert_eq!(files(&root.join("new")).len(), 1);
        assert!(!root.join(".Missing").exists());
        // The folder is a real IMAP folder (UIDVALIDITY from the store).
        assert!(root.join(".Work.Reports/maildirfolder").exists());
    }

    #[tokio::test]
    async fn sieve_keywords_are_indexed_and_a_retry_finds_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let h = sieve_harness(
            dir.path(),
            "require [\"imap4flags\"];\naddflag [\"$label1\", \"\\\\Flagged\", \"Work\"];\n",
        );
        let e = queued(&h, to_alice("K1", SENDER, "")).await;
        let mut again = e.clone();
        deliver_batch(&h.shared, vec![e]);
        let root = dir.path().join("mail/example.test/alice");
        let cur = files(&root.join("cur"));
        assert_eq!(cur.len(), 1, "{cur:?}");
        assert!(cur[0].contains(",U=1:2,F"), "{cur:?}");
        let (idx, _) = crate::store::folder::Folder::new(&root).sync().unwrap();
        assert_eq!(idx.messages.len(), 1);
        assert_eq!(idx.messages[0].keywords, ["$label1", "Work"]);
        assert_eq!(idx.messages[0].flags, "F");
        // Delivered again (a retry after a crash): found, not duplicated.
        again.retried = true;
        deliver_batch(&h.shared, vec![again]);
        assert_eq!(files(&root.join("cur")).len(), 1);
        assert_eq!(files(&root.join("new")).len(), 0);
    }

    #[tokio::test]
    async fn sieve_discard_stores_nothing_and_keep_then_discard_stores() {
        let dir = tempfile::tempdir().unwrap();
        let h = sieve_harness(
            dir.path(),
            "if header :contains \"subject\" \"D1\" { discard; } else { keep; discard; }",
        );
        let a = queued(&h, to_alice("D1", SENDER, "")).await;
        let b = queued(&h, to_alice("D2", SENDER, "")).await;
        deliver_batch(&h.shared, vec![a, b]);
        assert!(h.queue.list().is_empty());
        let new = files(&dir.path().join("mail/example.test/alice/new"));
        assert_eq!(new.len(), 1, "{new:?}");
        assert!(new[0].contains("QD2_"), "{new:?}");
    }

    #[tokio::test]
    async fn sieve_reject_fails_the_delivery_with_a_dsn() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = sieve_harness(dir.path(), "require \"reject\"; reject \"not from you\";");
        let e = queued(&h, to_alice("R1", SENDER, "")).await;
        deliver_batch(&h.shared, vec![e]);
        let d = h.queue.get("R1").unwrap().deliveries[0].clone();
        assert_eq!(d.status_code.as_deref(), Some("5.7.1"));
        assert!(
            matches!(&d.status, Status::Failed { reason, .. } if reason.contains("not from you")),
            "{:?}",
            d.status
        );
        assert_eq!(settles(&mut h), ["R1"]);
    }

    #[tokio::test]
    async fn sieve_redirect_is_queued_with_delivered_to_and_loops_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let h = sieve_harness(dir.path(), "redirect \"carol@example.org\";");
        let e = queued(&h, to_alice("F1", SENDER, "")).await;
        let generated = deliver_batch(&h.shared, vec![e]);
        assert_eq!(generated.len(), 1);
        let g = &generated[0];
        assert_eq!(
            g.envelope.sender, SENDER,
            "the original sender (SRS when sent)"
        );
        assert_eq!(g.envelope.recipients[0].address, "alice@example.test");
        assert_eq!(
            g.envelope.deliveries[0].destination,
            remote("carol@example.org")
        );
        assert!(
            g.message
                .starts_with(b"Delivered-To: alice@example.test\r\nFrom: <")
        );
        assert!(files(&dir.path().join("mail/example.test/alice/new")).is_empty());
        // The same message coming back: not redirected again, kept.
        let back = queued(
            &h,
            to_alice("F2", SENDER, "Delivered-To: alice@example.test\r\n"),
        )
        .await;
        assert!(deliver_batch(&h.shared, vec![back]).is_empty());
        assert_eq!(
            files(&dir.path().join("mail/example.test/alice/new")).len(),
            1
        );
    }

    #[tokio::test]
    async fn sieve_vacation_answers_once_and_remembers_it() {
        let dir = tempfile::tempdir().unwrap();
        let h = sieve_harness(
            dir.path(),
            "require \"vacation\"; vacation :days 2 :subject \"Away\" \"Back on Monday.\";",
        );
        let e = queued(&h, to_alice("V1", SENDER, "")).await;
        let generated = deliver_batch(&h.shared, vec![e]);
        assert_eq!(generated.len(), 1);
        let g = &generated[0];
        assert_eq!(g.envelope.sender, "", "replies go from the null sender");
        assert_eq!(g.envelope.deliveries[0].destination, remote(SENDER));
        assert_eq!(
            g.envelope.client.auth.as_deref(),
            Some("alice@example.test")
        );
        let text = String::from_utf8_lossy(&g.message);
        assert!(
            text.contains("Subject: Away\r\n") && text.contains("Auto-Submitted: auto-replied"),
            "{text}"
        );
        assert_eq!(
            files(&dir.path().join("mail/example.test/alice/new")).len(),
            1,
            "kept too"
        );
        // Recorded durably: the next message from the sender gets none, a
        // list message none either.
        let again = queued(&h, to_alice("V2", SENDER, "")).await;
        assert!(deliver_batch(&h.shared, vec![again]).is_empty());
        let list = queued(
            &h,
            to_alice(
                "V3",
                "other@remote.example",
                "List-Id: <l.remote.example>\r\n",
            ),
        )
        .await;
        assert!(deliver_batch(&h.shared, vec![list]).is_empty());
        assert!(dir.path().join("sieve/example.test/alice/.seen").exists());
    }

    #[tokio::test]
    async fn a_user_script_from_managesieve_runs_and_a_failing_one_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        let store = crate::store::sieve::ScriptStore::for_mailbox(dir.path(), "alice@example.test");
        store
            .put(
                "mine",
                b"require [\"fileinto\", \"mailbox\"]; fileinto :create \"Mine\";",
            )
            .unwrap();
        store.set_active(Some("mine")).unwrap();
        let e = queued(&h, to_alice("U1", SENDER, "")).await;
        deliver_batch(&h.shared, vec![e]);
        let root = dir.path().join("mail/example.test/alice");
        assert_eq!(files(&root.join(".Mine/new")).len(), 1);
        // A script that fails at runtime (a missing include): INBOX.
        store
            .put(
                "mine",
                b"require [\"include\", \"fileinto\"]; fileinto \"Mine\"; include \"nope\";",
            )
            .unwrap();
        let e = queued(&h, to_alice("U2", SENDER, "")).await;
        deliver_batch(&h.shared, vec![e]);
        assert_eq!(files(&root.join("new")).len(), 1);
        assert_eq!(files(&root.join(".Mine/new")).len(), 1);
    }
}
