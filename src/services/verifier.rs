//! Password checks, bounded: a fixed set of threads (one per core) does
//! every password hash of the process, each with its own argon2 working
//! memory kept between checks (`auth::password::Argon2Memory`), behind a
//! bounded queue.
//!
//! Why not `spawn_blocking` per check: its pool grows to hundreds of
//! threads under a login flood, every one of them hashing at once (no
//! faster: there are only so many cores) and allocating its own 19 MiB,
//! which glibc then keeps per thread. Here the memory is fixed (workers ×
//! argon2's m), the CPU given to logins is at most the cores, and a flood
//! beyond the queue is told "try again later" at once instead of piling up
//! tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::auth::password::Argon2Memory;
use crate::auth::{LoginError, Secrets, Verified};
use crate::proto::sasl::Credentials;
use crate::tables::Tables;

/// Checks that may wait for a worker, per worker. At tens of milliseconds
/// per argon2id check, a full queue is a wait of a few seconds; beyond it a
/// client gets a temporary failure rather than a longer wait.
pub const QUEUE_PER_WORKER: usize = 64;

struct Job {
    tables: Arc<Tables>,
    secrets: Arc<Secrets>,
    credentials: Credentials,
    reply: tokio::sync::oneshot::Sender<Result<Verified, LoginError>>,
}

/// Why a check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotChecked {
    /// The queue is full: too many logins at once.
    Busy,
    /// The worker ended without an answer (it cannot in normal operation).
    Lost,
}

#[derive(Default)]
struct Counters {
    running: AtomicUsize,
    peak: AtomicUsize,
}

pub struct Verifier {
    jobs: SyncSender<Job>,
    workers: usize,
    counters: Arc<Counters>,
    /// The queue's receiving end when no worker was asked for, so that the
    /// queue fills instead of being closed.
    _unread: Option<Arc<Mutex<Receiver<Job>>>>,
}

impl Verifier {
    /// One worker per core the process may use.
    pub fn per_core() -> Verifier {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Verifier::start(cores, cores * QUEUE_PER_WORKER)
    }

    /// `workers` threads and `queue` places for waiting checks. (With no
    /// workers nothing is ever checked: only tests of the queue want that.)
    pub fn start(workers: usize, queue: usize) -> Verifier {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        let mut started = 0;
        for i in 0..workers {
            let (rx, counters) = (rx.clone(), counters.clone());
            // Named so that the threads doing password checks can be told
            // apart (`top -H`, /proc/PID/task/*/comm).
            match std::thread::Builder::new()
                .name("mailc-verify".into())
                .spawn(move || work(&rx, &counters))
            {
                Ok(_) => started += 1,
                Err(e) => {
                    tracing::error!(worker = i, error = %e, "cannot start a password check thread")
                }
            }
        }
        Verifier {
            jobs,
            workers: started,
            counters,
            _unread: (workers == 0).then_some(rx),
        }
    }

    /// Threads checking passwords.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The most checks that ever ran at once (never above the workers).
    pub fn peak(&self) -> usize {
        self.counters.peak.load(Ordering::SeqCst)
    }

    /// Checks `credentials` on a worker and waits for the answer.
    pub async fn verify(
        &self,
        tables: Arc<Tables>,
        secrets: Arc<Secrets>,
        credentials: Credentials,
    ) -> Result<Result<Verified, LoginError>, NotChecked> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            tables,
            secrets,
            credentials,
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(NotChecked::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(NotChecked::Lost),
        }
        answer.await.map_err(|_| NotChecked::Lost)
    }
}

fn work(rx: &Mutex<Receiver<Job>>, counters: &Counters) {
    let mut memory = Argon2Memory::new();
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return, // the Verifier is gone
            }
        };
        if job.reply.is_closed() {
            // The client left while its check waited: nobody would read
            // the answer. (Not a timing oracle: nothing is answered.)
            continue;
        }
        let running = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
        let peak = counters
            .peak
            .fetch_max(running, Ordering::SeqCst)
            .max(running);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::auth::verify_login_with(
                &job.tables,
                &job.secrets,
                &job.credentials.username,
                &job.credentials.password,
                &mut memory,
            )
        }));
        counters.running.fetch_sub(1, Ordering::SeqCst);
        let result = result.unwrap_or_else(|_| {
            memory = Argon2Memory::new();
            Err(LoginError::Unavailable("the password check failed".into()))
        });
        // `running` and `peak` count checks in progress at once: never more
        // than the workers.
        tracing::debug!(
            running,
            peak,
            kept_kib = memory.kept_kib(),
            "password checked"
        );
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Options, compile_str};

    fn tables() -> (Arc<Tables>, Arc<Secrets>) {
        let out = compile_str(
            "t.kdl",
            std::path::Path::new("/"),
            "hostname \"mail.example.test\"\nstate \"/nonexistent/v\"\nlisten \"lmtp\" \"127.0.0.1:24\"\n\
             domain \"example.test\" {\n dkim selector=\"s1\"\n dmarc policy=\"none\"\n\
             mailbox \"alice\" password=\"$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\" {\n alias \"postmaster\"\n }\n}\n",
            Options { offline: true },
        );
        let c = out.compiled.expect("compiles");
        (Arc::new(c.tables), Arc::new(c.secrets))
    }

    fn creds(password: &str) -> Credentials {
        Credentials {
            username: "alice@example.test".into(),
            password: password.into(),
        }
    }

    #[tokio::test]
    async fn checks_run_on_the_workers_and_answer() {
        let (t, s) = tables();
        let v = Verifier::start(2, 8);
        assert_eq!(v.workers(), 2);
        let ok = v.verify(t.clone(), s.clone(), creds("secret")).await;
        assert_eq!(ok.unwrap().unwrap().mailbox, "alice@example.test");
        let bad = v.verify(t, s, creds("wrong")).await;
        assert_eq!(bad.unwrap(), Err(LoginError::Invalid));
        assert!(v.peak() <= 2);
    }

    #[tokio::test]
    async fn a_full_queue_is_busy_at_once() {
        let (t, s) = tables();
        // No worker, two places: two checks wait, the third is refused.
        let v = Arc::new(Verifier::start(0, 2));
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let (v, t, s) = (v.clone(), t.clone(), s.clone());
                tokio::spawn(async move { v.verify(t, s, creds("secret")).await })
            })
            .collect();
        // Let both tasks reach their wait (this runtime has one thread).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(v.verify(t, s, creds("secret")).await, Err(NotChecked::Busy));
        assert!(waiting.iter().all(|w| !w.is_finished()));
    }

    #[tokio::test]
    async fn a_flood_is_answered_or_refused_never_lost() {
        let (t, s) = tables();
        // One worker, one waiting place: of many checks sent at once, each
        // is either answered or refused at once, and one runs at a time.
        let v = Arc::new(Verifier::start(1, 1));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (v, t, s) = (v.clone(), t.clone(), s.clone());
                tokio::spawn(async move { v.verify(t, s, creds("secret")).await })
            })
            .collect();
        let mut busy = 0;
        let mut answered = 0;
        for task in tasks {
            match task.await.unwrap() {
                Err(NotChecked::Busy) => busy += 1,
                Ok(Ok(_)) => answered += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(busy + answered, 20);
        assert!(answered >= 1);
        assert_eq!(v.peak(), 1);
    }
}
