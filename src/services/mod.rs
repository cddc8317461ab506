//! `services`: the drivers. One connection driver ([`conn`]) runs every
//! sans-I/O protocol session over its socket and performs the effects they
//! share (TLS upgrades, logins through [`login`]); the protocol services
//! ([`smtp_in`], [`imap`], [`pop3`], [`managesieve`]) build their sessions and perform their
//! own effects (durable enqueueing). [`delivery`] takes queue entries to
//! Maildirs.

pub mod acme;
#[cfg(feature = "acme")]
pub mod acme_http;
pub mod conn;
pub mod dane_watch;
pub mod delivery;
pub mod dmarc_reports;
pub mod dnsbl;
pub mod filtering;
pub mod greylist;
pub mod http;
pub mod imap;
pub mod inbound;
pub mod login;
pub mod maildrop;
pub mod mailstore;
pub mod managesieve;
pub mod mta_sts;
pub mod notify;
pub mod outbound;
pub mod pop3;
pub mod report_periods;
pub mod scan;
pub mod smtp_in;
pub mod smtp_out;
pub mod storage;
pub mod submit;
#[cfg(test)]
pub(crate) mod testing;
pub mod tls_reports;
pub mod training;
pub mod verifier;

use std::sync::{Arc, RwLock};

use crate::auth::limiter::Limiter;
use crate::compile::Secrets;
use crate::net::limits::ConnLimiter;
use crate::queue::{Entry, Queue};
use crate::store::usage::Usage;
use crate::tables::Tables;

/// One compiled configuration and what was built from it. Connections keep
/// the snapshot they started with; a reload swaps in a new one.
pub struct Snapshot {
    pub tables: Arc<Tables>,
    pub secrets: Arc<Secrets>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The same certificates with HTTP's ALPN protocols, for `https`
    /// listeners ([`http::acceptor`]).
    pub https: Option<tokio_rustls::TlsAcceptor>,
    /// Resolver, trust anchors, route passwords and DKIM keys.
    pub outbound: Arc<outbound::OutboundRuntime>,
    /// Logins verified under this configuration (`auth-cache`); `None`
    /// when turned off. Each snapshot starts with an empty one, so a
    /// reload is a flush.
    pub login_cache: Option<crate::auth::cache::CredentialCache>,
    /// The Sieve scripts of this configuration, compiled.
    pub filters: Arc<filtering::Filters>,
}

/// State shared by every service of a running server.
pub struct Shared {
    current: RwLock<Arc<Snapshot>>,
    /// The queue (the spool seam): the durable spool when serving.
    pub spool: Arc<dyn Queue>,
    pub usage: Arc<Usage>,
    pub auth_limiter: Limiter,
    pub conns: Arc<ConnLimiter>,
    pub delivery: tokio::sync::mpsc::UnboundedSender<Entry>,
    /// The outbound manager's mailbox.
    pub outbound: tokio::sync::mpsc::UnboundedSender<outbound::Event>,
    /// The SRS key (forwarded mail), from the state directory.
    pub srs: crate::outbound::srs::Srs,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// One lock per Maildir folder for everything in this process.
    pub folders: Arc<crate::store::folder::FolderLocks>,
    /// The mail store, as the drivers see it (the storage seam).
    pub storage: Arc<dyn storage::MailStorage>,
    /// A mailbox address each time its mail changed (delivery, IMAP):
    /// IDLE sessions of that user look again.
    pub mail_events: tokio::sync::broadcast::Sender<String>,
    /// The threads that check passwords, one per core, behind a bounded
    /// queue (see [`verifier`]).
    pub verifier: verifier::Verifier,
    /// Records the inbound checks looked up, parsed, within their TTL.
    pub inbound_caches: inbound::Caches,
    /// DMARC evaluations waiting to be stored for aggregate reports.
    pub dmarc_rows: dmarc_reports::RowLog,
    /// The SMTP client's TLS attempts, waiting to be stored for TLS
    /// reports (RFC 8460).
    pub tls_attempts: Arc<tls_reports::AttemptLog>,
    /// Greylisting's triplets (`inbound { greylist }`), opened from the
    /// state directory at start.
    pub greylist: greylist::Greylist,
    /// When each DNS blocklist's refusals were last warned about.
    pub dnsbl_warnings: dnsbl::Warnings,
    /// The certificates that outlive a reload (ACME), swapped in place
    /// when renewed, and the ACME challenge responses the listeners hand
    /// out (`certs.challenges`: TLS-ALPN-01 on TLS listeners, HTTP-01 on
    /// `http` listeners).
    pub certs: Arc<crate::net::tls::LiveCerts>,
    /// Spam learning from users' moves into and out of Junk; its learners
    /// follow the configuration.
    pub training: training::Training,
}

impl Shared {
    pub fn new(
        snapshot: Snapshot,
        spool: Arc<dyn Queue>,
        usage: Arc<Usage>,
        delivery: tokio::sync::mpsc::UnboundedSender<Entry>,
        outbound: tokio::sync::mpsc::UnboundedSender<outbound::Event>,
        srs: crate::outbound::srs::Srs,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Shared {
        let certs = crate::net::tls::LiveCerts::new(crate::net::challenges::Challenges::new());
        let folders = crate::store::folder::FolderLocks::new();
        let mail_events = tokio::sync::broadcast::channel(1024).0;
        let events = mail_events.clone();
        let training = training::Training::spawn(training::learners(&snapshot));
        let storage = storage::Maildirs::new(
            folders.clone(),
            usage.clone(),
            Arc::new(move |user: &str| {
                let _ = events.send(user.to_string());
            }),
        )
        .with_training(training.clone());
        Shared {
            current: RwLock::new(Arc::new(snapshot)),
            spool,
            usage,
            auth_limiter: Limiter::new(),
            conns: ConnLimiter::new(),
            delivery,
            outbound,
            srs,
            shutdown,
            folders,
            storage: Arc::new(storage),
            mail_events,
            verifier: verifier::Verifier::per_core(),
            inbound_caches: inbound::Caches::default(),
            dmarc_rows: dmarc_reports::RowLog::default(),
            tls_attempts: Arc::new(tls_reports::AttemptLog::default()),
            greylist: greylist::Greylist::default(),
            dnsbl_warnings: dnsbl::Warnings::default(),
            certs,
            training,
        }
    }

    /// The TLS attempt log the snapshots' SMTP clients write to (made
    /// before the first snapshot).
    pub fn with_tls_attempts(mut self, log: Arc<tls_reports::AttemptLog>) -> Shared {
        self.tls_attempts = log;
        self
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new configuration. Logins cached under the old one are
    /// forgotten: connections still holding it check passwords again.
    pub fn replace(&self, snapshot: Snapshot) {
        self.training.set(training::learners(&snapshot));
        let old = match self.current.write() {
            Ok(mut s) => std::mem::replace(&mut *s, Arc::new(snapshot)),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), Arc::new(snapshot)),
        };
        if let Some(cache) = &old.login_cache {
            cache.flush();
        }
    }

    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long a TLS handshake (implicit or STARTTLS) may take.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
