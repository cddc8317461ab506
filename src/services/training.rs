//! Learning from users (issue #18, item 5): a message a user moves into
//! the `\Junk` folder over IMAP (COPY, MOVE or APPEND) is spam, one moved
//! out of Junk into any folder but Trash is ham; the spam scanners that can
//! learn (spamd `TELL`, rspamd `/learnspam` `/learnham`) are told, in the
//! background. The IMAP command never waits for a scanner: the store hands
//! the message to [`Training::offer`], which queues a copy within a byte
//! budget and returns at once; a full queue drops the lesson (logged), it
//! never blocks or grows without bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::time::Duration;

use tokio::sync::mpsc;

use super::scan::{self, Endpoint};
use crate::proto::scan::rspamd::Learned;
use crate::proto::scan::spamd;

/// What a message is, as the user's move says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

/// The folder a message is filed into by the `\Junk` special use, and the
/// one moving out of Junk into which is not ham (deleting spam).
const JUNK: &str = "Junk";
const TRASH: &str = "Trash";

/// What a message arriving in folder `to` teaches: `from` is the folder it
/// was copied or moved from, `None` for APPEND.
pub fn lesson(from: Option<&str>, to: &str) -> Option<Class> {
    let into_junk = to == JUNK;
    let from_junk = from == Some(JUNK);
    match (from_junk, into_junk) {
        (false, true) => Some(Class::Spam),
        (true, false) if to != TRASH => Some(Class::Ham),
        _ => None,
    }
}

/// A boxed future (the learners are called through a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A scanner that learns. `learn` returns a short description of what the
/// scanner answered (for the log), or why it failed.
pub trait Learner: Send + Sync {
    fn name(&self) -> &str;
    fn learn<'a>(
        &'a self,
        user: &'a str,
        class: Class,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The learners of the current configuration, and the largest message
/// they are sent. Replaced when the configuration is reloaded.
#[derive(Clone, Default)]
pub struct Learners {
    pub learners: Vec<Arc<dyn Learner>>,
    pub max_size: u64,
}

struct Job {
    user: String,
    class: Class,
    message: Vec<u8>,
}

/// Counters, for the log and the tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub learned: AtomicU64,
    pub failed: AtomicU64,
}

/// The store's handle on the training queue. Cheap to clone.
#[derive(Clone)]
pub struct Training {
    tx: mpsc::Sender<Job>,
    /// Bytes of messages queued and not yet learned.
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    learners: Arc<std::sync::RwLock<Learners>>,
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for Training {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Training")
            .field("queued_bytes", &self.queued_bytes.load(Ordering::Relaxed))
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// Messages waiting at most; beyond it (or beyond the byte budget) a
/// lesson is dropped.
const MAX_JOBS: usize = 256;
/// Bytes of messages waiting at most.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Scanners are told one lesson at a time; a learner gets this long.
const LEARN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Training {
    /// Starts the task that tells the learners, on the current runtime.
    pub fn spawn(learners: Learners) -> Training {
        Training::spawn_with(learners, MAX_QUEUED_BYTES)
    }

    fn spawn_with(learners: Learners, max_bytes: usize) -> Training {
        let learners = Arc::new(std::sync::RwLock::new(learners));
        let (tx, rx) = mpsc::channel(MAX_JOBS);
        let t = Training {
            tx,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            max_bytes,
            learners,
            stats: Arc::new(Stats::default()),
        };
        tokio::spawn(run(rx, t.clone()));
        t
    }

    /// The learners of a new configuration.
    pub fn set(&self, learners: Learners) {
        match self.learners.write() {
            Ok(mut l) => *l = learners,
            Err(poisoned) => *poisoned.into_inner() = learners,
        }
    }

    fn current(&self) -> Learners {
        match self.learners.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether a lesson is worth offering at all (some scanner learns).
    pub fn wanted(&self) -> bool {
        !self.current().learners.is_empty()
    }

    /// Queues `message` (copied) to be learned as `class` for `user`.
    /// Never blocks; `false` when the lesson was dropped (no learner, too
    /// big, queue full).
    pub fn offer(&self, user: &str, class: Class, message: &[u8]) -> bool {
        let Learners { learners, max_size } = self.current();
        if learners.is_empty() {
            return false;
        }
        if message.len() as u64 > max_size {
            tracing::info!(
                user,
                class = class.as_str(),
                size = message.len(),
                "not learned: over the scan size limit"
            );
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let len = message.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            tracing::warn!(
                user,
                class = class.as_str(),
                "not learned: the training queue is full"
            );
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let job = Job {
            user: user.to_string(),
            class,
            message: message.to_vec(),
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                tracing::warn!(
                    user,
                    class = class.as_str(),
                    "not learned: the training queue is full"
                );
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// How long one lesson may take a scanner (Bayes learning writes its
/// database; rspamd may wait for Redis).
const LESSON_TIMEOUT: Duration = Duration::from_secs(30);

/// The learners a configuration declares (`scan { learn }`). The rspamd
/// controller's password is read from its file here, at start and reload;
/// an unreadable file leaves rspamd untaught (logged).
pub fn learners(snapshot: &super::Snapshot) -> Learners {
    let Some(scan) = &snapshot.tables.scan else {
        return Learners::default();
    };
    let Some(learn) = &scan.learn else {
        return Learners::default();
    };
    let mut learners: Vec<Arc<dyn Learner>> = Vec::new();
    if learn.spamd
        && let Some(ep) = &scan.spamd
    {
        learners.push(Arc::new(Spamd {
            endpoint: ep.into(),
            per_user: learn.spamd_per_user,
            timeout: LESSON_TIMEOUT,
        }));
    }
    if let Some(ep) = &learn.rspamd_controller {
        let password = match &learn.password_file {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(p)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| format!("{}: {e}", p.display())),
        };
        match password {
            Ok(password) => learners.push(Arc::new(Rspamd {
                endpoint: ep.into(),
                password,
                timeout: LESSON_TIMEOUT,
            })),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the rspamd controller password; rspamd is not taught")
            }
        }
    }
    Learners {
        learners,
        max_size: scan.max_size,
    }
}

/// SpamAssassin's spamd: `TELL` with `Set: local` (its Bayes database;
/// spamd must run with `--allow-tell`).
pub struct Spamd {
    pub endpoint: Endpoint,
    /// Pass the mailbox address as spamd's user (per-user Bayes, spamd's
    /// `--virtual-config-dir`); `false`: spamd's default user learns.
    pub per_user: bool,
    pub timeout: Duration,
}

impl Learner for Spamd {
    fn name(&self) -> &str {
        "spamd"
    }

    fn learn<'a>(
        &'a self,
        user: &'a str,
        class: Class,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let class = match class {
                Class::Spam => spamd::Class::Spam,
                Class::Ham => spamd::Class::Ham,
            };
            let user = self.per_user.then_some(user);
            match scan::spamd_learn(&self.endpoint, class, user, message, self.timeout).await {
                Ok(true) => Ok("learned".into()),
                Ok(false) => Ok("already learned".into()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// rspamd's controller worker: `/learnspam`, `/learnham`.
pub struct Rspamd {
    /// The controller (not the normal worker that scans).
    pub endpoint: Endpoint,
    pub password: Option<String>,
    pub timeout: Duration,
}

impl Learner for Rspamd {
    fn name(&self) -> &str {
        "rspamd"
    }

    fn learn<'a>(
        &'a self,
        _user: &'a str,
        class: Class,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let spam = class == Class::Spam;
            let password = self.password.as_deref();
            match scan::rspamd_learn(&self.endpoint, spam, password, message, self.timeout).await {
                Ok(Learned::Learned) => Ok("learned".into()),
                Ok(Learned::AlreadyKnown) => Ok("already learned".into()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, t: Training) {
    while let Some(job) = rx.recv().await {
        for l in &t.current().learners {
            let r =
                tokio::time::timeout(LEARN_TIMEOUT, l.learn(&job.user, job.class, &job.message))
                    .await;
            match r {
                Ok(Ok(answer)) => {
                    t.stats.learned.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(user = %job.user, class = job.class.as_str(), scanner = l.name(), %answer, "learned");
                }
                Ok(Err(e)) => {
                    t.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(user = %job.user, class = job.class.as_str(), scanner = l.name(), error = %e, "learning failed");
                }
                Err(_) => {
                    t.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(user = %job.user, class = job.class.as_str(), scanner = l.name(), "learning timed out");
                }
            }
        }
        t.queued_bytes
            .fetch_sub(job.message.len(), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn moves_teach_what_users_expect() {
        assert_eq!(lesson(Some("INBOX"), "Junk"), Some(Class::Spam));
        assert_eq!(lesson(None, "Junk"), Some(Class::Spam));
        assert_eq!(lesson(Some("Junk"), "INBOX"), Some(Class::Ham));
        assert_eq!(lesson(Some("Junk"), "Archive/2026"), Some(Class::Ham));
        // Deleting spam is not ham; shuffling within Junk teaches nothing.
        assert_eq!(lesson(Some("Junk"), "Trash"), None);
        assert_eq!(lesson(Some("Junk"), "Junk"), None);
        assert_eq!(lesson(Some("INBOX"), "Archive"), None);
        assert_eq!(lesson(None, "Sent"), None);
        // Folder names are case-sensitive (only INBOX is not).
        assert_eq!(lesson(Some("INBOX"), "junk"), None);
    }

    struct Recorder(Mutex<Vec<(String, Class, usize)>>, tokio::sync::Semaphore);

    impl Learner for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn learn<'a>(
            &'a self,
            user: &'a str,
            class: Class,
            message: &'a [u8],
        ) -> BoxFuture<'a, Result<String, String>> {
            Box::pin(async move {
                // Held until the test lets it go: the queue fills.
                self.1.acquire().await.unwrap().forget();
                self.0
                    .lock()
                    .unwrap()
                    .push((user.to_string(), class, message.len()));
                Ok("ok".into())
            })
        }
    }

    #[tokio::test]
    async fn offers_never_block_and_stay_within_the_budget() {
        let rec = Arc::new(Recorder(
            Mutex::new(Vec::new()),
            tokio::sync::Semaphore::new(0),
        ));
        let learner: Arc<dyn Learner> = rec.clone();
        let t = Training::spawn_with(
            Learners {
                learners: vec![learner],
                max_size: 1000,
            },
            2500,
        );
        // Over the size limit: dropped at once.
        assert!(!t.offer("a@x", Class::Spam, &[b'x'; 1001]));
        // Three of 1000 bytes fit the 2500-byte budget only twice (the
        // first may already be taken by the learner, which holds it).
        let taken: Vec<bool> = (0..4)
            .map(|_| t.offer("a@x", Class::Spam, &[b'x'; 1000]))
            .collect();
        assert_eq!(taken, [true, true, false, false]);
        assert_eq!(t.stats.dropped.load(Ordering::Relaxed), 3);
        rec.1.add_permits(2);
        for _ in 0..100 {
            if rec.0.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            *rec.0.lock().unwrap(),
            vec![("a@x".to_string(), Class::Spam, 1000); 2]
        );
        // The budget is back: a new lesson is taken.
        for _ in 0..100 {
            if t.queued_bytes.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        rec.1.add_permits(1);
        assert!(t.offer("b@x", Class::Ham, b"hello"));
    }

    #[tokio::test]
    async fn no_learner_no_lesson() {
        let t = Training::spawn(Learners::default());
        assert!(!t.wanted());
        assert!(!t.offer("a@x", Class::Spam, b"x"));
    }
}
