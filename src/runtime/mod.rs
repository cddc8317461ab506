//! `runtime`: `mailc serve`. Compiles the config, binds every listener,
//! runs the services, and handles signals: SIGHUP recompiles and swaps the
//! tables atomically (keeping the old ones if the new config has errors),
//! adding and removing listeners to match; SIGTERM/SIGINT stop accepting,
//! give sessions `shutdown-grace` to finish, and exit. Queued mail is always
//! on disk already.

pub mod control;
mod logging;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::compile::{self, Compiled, Options};
use crate::diag::{self, Style};
use crate::net::tls::LiveCerts;
use crate::queue::Spool;
use crate::services::conn::{self, Conn};
use crate::services::{self, Shared, Snapshot, delivery};
use crate::store::{fsutil, usage::Usage};
use crate::tables::{ListenerKind, Tables};

/// Entry point of `mailc serve`; returns the process exit code.
pub fn serve(config: &Path) -> i32 {
    let out = compile::compile_file(config, Options::default());
    if !out.diags.is_empty() {
        eprint!(
            "{}",
            diag::render_all(&out.diags, &out.sources, Style::Plain, 100)
        );
    }
    let Some(compiled) = out.compiled else {
        eprintln!(
            "{}: failed ({})",
            config.display(),
            diag::summary(&out.diags)
        );
        return 1;
    };
    logging::init(&compiled.tables.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(run(config.to_path_buf(), compiled))
}

/// Creates the DKIM keys marked `generate=#true` whose files are missing.
fn generate_dkim_keys(tables: &Tables) -> Result<(), String> {
    let mut wanted = tables.clone();
    for d in wanted.domains.values_mut() {
        d.dkim.retain(|k| k.generate && !k.key.exists());
    }
    if wanted.domains.values().all(|d| d.dkim.is_empty()) {
        return Ok(());
    }
    for k in crate::dns::keys::keygen(&wanted)? {
        if k.created {
            tracing::warn!(domain = %k.domain, selector = %k.selector, path = %k.path.display(), "created a DKIM key: publish its record (`mailc dns`)");
        }
    }
    Ok(())
}

/// `tls_attempts`: where the SMTP client's TLS attempts go (TLS-RPT), the
/// same log for every snapshot of the process; `certs`: the live ACME
/// certificates, kept across reloads.
fn snapshot(
    compiled: &Compiled,
    certs: &LiveCerts,
    tls_attempts: Arc<crate::services::tls_reports::AttemptLog>,
) -> Result<Snapshot, String> {
    generate_dkim_keys(&compiled.tables)?;
    if let Some(p) = crate::dns::dane::key_paths(&compiled.tables) {
        use crate::dns::rollover::{Settled, settle};
        match settle(&p, crate::services::unix_now())? {
            Settled::Created => {
                tracing::warn!(path = %p.next_key.display(), "created the next DANE key: publish its TLSA record (`mailc dns`)");
            }
            Settled::Switched(s) => {
                tracing::warn!(key = %s.to, path = %p.next_key.display(), "DANE rollover: the certificate is on the former next key; made a fresh next key: publish its TLSA record, retire the old one (`mailc plan`)");
            }
            Settled::Unchanged => {}
        }
    }
    let config =
        crate::net::tls::server_config(&compiled.tables, certs).map_err(|e| e.to_string())?;
    let https = config.as_ref().map(crate::services::http::acceptor);
    let tls = config.map(tokio_rustls::TlsAcceptor::from);
    let mut outbound = crate::services::outbound::OutboundRuntime::load(&compiled.tables)
        .map_err(|e| format!("outbound delivery: {e}"))?;
    outbound.tlsrpt = tls_attempts;
    let filters = crate::services::filtering::Filters::load(&compiled.tables)?;
    Ok(Snapshot {
        filters: Arc::new(filters),
        tables: Arc::new(compiled.tables.clone()),
        secrets: Arc::new(compiled.secrets.clone()),
        tls,
        https,
        outbound: Arc::new(outbound),
        login_cache: crate::auth::cache::CredentialCache::from_table(&compiled.tables.auth_cache),
    })
}

/// Listener kinds this build serves (all of them).
fn served(kind: ListenerKind) -> bool {
    matches!(
        kind,
        ListenerKind::Smtp
            | ListenerKind::Submission
            | ListenerKind::Submissions
            | ListenerKind::Lmtp
            | ListenerKind::Imap
            | ListenerKind::Imaps
            | ListenerKind::Pop3
            | ListenerKind::Pop3s
            | ListenerKind::Managesieve
            | ListenerKind::Http
            | ListenerKind::Https
    )
}

struct Running {
    task: JoinHandle<()>,
}

/// The running services that outlive one reload.
struct Services {
    shared: Arc<Shared>,
    delivery_task: JoinHandle<()>,
    outbound_task: JoinHandle<()>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
}

async fn run(config: PathBuf, compiled: Compiled) -> i32 {
    let tables = compiled.tables.clone();
    let state = tables.state_dir.clone();
    let Some(lock) = lock_state_dir(&state) else {
        return 1;
    };
    let Some(services) = start_services(&compiled, &state).await else {
        return 1;
    };
    let shared = services.shared.clone();
    // Signal handlers first: a SIGHUP or SIGTERM sent as soon as the
    // listeners log "listening" must find them installed.
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()),
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return 1;
    };
    let mut listeners: HashMap<(ListenerKind, SocketAddr), Running> = HashMap::new();
    if let Err(e) = reconcile_listeners(&shared, &tables, &mut listeners).await {
        tracing::error!(error = %e, "cannot bind a listener");
        return 1;
    }
    let control_task = match control::start(shared.clone(), &state).await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "queue control socket unavailable");
            None
        }
    };
    tracing::info!(tables = %tables.content_hash, "mailc ready");
    pick_up_incoming(&shared, &state);
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&config, &shared, &mut listeners).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down");
    for (_, l) in listeners.drain() {
        l.task.abort();
    }
    if let Some(t) = control_task {
        t.abort();
    }
    shut_down(services).await;
    drop(lock);
    0
}

/// Creates the state directory and locks it: one server per state
/// directory. The lock holds while the returned file is open.
fn lock_state_dir(state: &Path) -> Option<std::fs::File> {
    if let Err(e) = fsutil::create_private_dir(state) {
        tracing::error!(dir = %state.display(), error = %e, "cannot create the state directory");
        return None;
    }
    let lock = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.join("mailc.lock"))
    {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the lock file");
            return None;
        }
    };
    if lock.try_lock().is_err() {
        tracing::error!(dir = %state.display(), "another mailc serve is running on this state directory");
        return None;
    }
    Some(lock)
}

/// The first snapshot, the SRS key and the queue (what a previous run left
/// in it goes back to delivery), then the delivery and outbound services.
async fn start_services(compiled: &Compiled, state: &Path) -> Option<Services> {
    let certs = LiveCerts::new(crate::net::challenges::Challenges::new());
    let tls_attempts = Arc::new(crate::services::tls_reports::AttemptLog::default());
    let snap = snapshot(compiled, &certs, tls_attempts.clone())
        .map_err(|e| tracing::error!(error = %e, "cannot start"))
        .ok()?;
    let srs = crate::outbound::srs::Srs::load_or_create(state)
        .map_err(|e| tracing::error!(error = %e, "cannot read or create the SRS key"))
        .ok()?;
    let (spool, recovered) = Spool::open(state)
        .map_err(|e| tracing::error!(error = %e, "cannot open the queue"))
        .ok()?;
    if !recovered.is_empty() {
        tracing::info!(entries = recovered.len(), "recovered queued messages");
    }
    let usage = Arc::new(Usage::new());
    preload_usage(&usage, &compiled.tables).await;
    let (delivery_tx, delivery_rx) = tokio::sync::mpsc::unbounded_channel();
    let (outbound_tx, outbound_rx) = tokio::sync::mpsc::unbounded_channel();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut shared = Shared::new(
        snap,
        spool.clone(),
        usage,
        delivery_tx,
        outbound_tx,
        srs,
        shutdown_rx,
    )
    .with_tls_attempts(tls_attempts);
    shared.certs = certs;
    let shared = Arc::new(shared);
    match shared.greylist.open(state) {
        Ok(0) => {}
        Ok(n) => tracing::info!(entries = n, "greylisting state loaded"),
        // Greylisting goes on, in memory only (nothing is written over a
        // file that could not be read).
        Err(e) => {
            tracing::error!(error = %e, "cannot read the greylisting state; greylisting in memory only until restart")
        }
    }
    let delivery_task = tokio::spawn(delivery::run(shared.clone(), delivery_rx));
    let outbound_task = tokio::spawn(crate::services::outbound::run(shared.clone(), outbound_rx));
    crate::services::dmarc_reports::start(&shared);
    #[cfg(feature = "acme")]
    crate::services::acme::start(&shared);
    crate::services::tls_reports::start(&shared);
    crate::services::dane_watch::start(&shared);
    for entry in recovered {
        let _ = shared.delivery.send(entry);
    }
    Some(Services {
        shared,
        delivery_task,
        outbound_task,
        shutdown_tx,
    })
}

/// What `mailc sendmail` left while no server ran.
fn pick_up_incoming(shared: &Arc<Shared>, state: &Path) {
    let (shared, state) = (shared.clone(), state.to_path_buf());
    tokio::spawn(async move {
        let n = crate::services::submit::pick_up(&shared, &state).await;
        if n > 0 {
            tracing::info!(entries = n, "picked up messages from queue/incoming");
        }
    });
}

/// With the listeners closed: sessions get `shutdown-grace` to finish,
/// local delivery a few seconds to finish the message in hand.
async fn shut_down(services: Services) {
    let shared = services.shared;
    let _ = services.shutdown_tx.send(true);
    let grace = Duration::from_secs(shared.snapshot().tables.timeouts.shutdown_grace_secs);
    let deadline = tokio::time::Instant::now() + grace;
    while shared.conns.total() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), services.delivery_task).await;
    // Outbound connections in flight are abandoned: their deliveries are
    // still pending in the queue and are retried at the next start.
    services.outbound_task.abort();
    tracing::info!(open_connections = shared.conns.total(), "stopped");
}

/// Loads mailbox usage for every mailbox with a quota, so the RCPT check
/// never scans a Maildir.
async fn preload_usage(usage: &Arc<Usage>, tables: &Tables) {
    let with_quota: Vec<(String, PathBuf)> = tables
        .mailboxes
        .values()
        .filter(|m| m.quota.is_some())
        .map(|m| (m.address.clone(), m.maildir.clone()))
        .collect();
    let usage = usage.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for (address, maildir) in with_quota {
            usage.get(&address, &maildir);
        }
    })
    .await;
}

/// Binds listeners the tables have and we do not, stops those we have and
/// the tables do not.
async fn reconcile_listeners(
    shared: &Arc<Shared>,
    tables: &Tables,
    running: &mut HashMap<(ListenerKind, SocketAddr), Running>,
) -> std::io::Result<()> {
    let wanted: Vec<(ListenerKind, SocketAddr)> = tables
        .listeners
        .iter()
        .map(|l| (l.kind, l.address))
        .collect();
    let stale: Vec<_> = running
        .keys()
        .filter(|k| !wanted.contains(k))
        .copied()
        .collect();
    for key in stale {
        if let Some(l) = running.remove(&key) {
            l.task.abort();
            tracing::info!("stopped listening proto={} addr={}", key.0.as_str(), key.1);
        }
    }
    for (kind, addr) in wanted {
        if running.contains_key(&(kind, addr)) {
            continue;
        }
        if !served(kind) {
            tracing::warn!(proto = kind.as_str(), addr = %addr, "not served by this version yet; listener skipped");
            continue;
        }
        let listener = crate::net::listen::bind(addr)?;
        let bound = listener.local_addr()?;
        tracing::info!("listening proto={} addr={}", kind.as_str(), bound);
        let task = tokio::spawn(accept_loop(shared.clone(), kind, addr, listener));
        running.insert((kind, addr), Running { task });
    }
    Ok(())
}

async fn accept_loop(
    shared: Arc<Shared>,
    kind: ListenerKind,
    configured: SocketAddr,
    listener: TcpListener,
) {
    let counter = Arc::new(AtomicU32::new(0));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tracing::debug!(client = %peer, proto = kind.as_str(), "connection");
        let snapshot = shared.snapshot();
        // The listener's row, once per connection: the session gets it and
        // never looks the listener up again.
        let Some(listener) = snapshot.tables.listener(kind, configured).copied() else {
            // Removed by a reload; this loop is being stopped.
            tracing::debug!(client = %peer, proto = kind.as_str(), "listener gone; connection dropped");
            continue;
        };
        let limits = &snapshot.tables.limits;
        match shared.conns.acquire(
            peer.ip(),
            &counter,
            limits.max_connections,
            listener.max_connections,
            listener.max_connections_per_ip,
        ) {
            Some(slot) => {
                let conn = Conn {
                    shared: shared.clone(),
                    snapshot,
                    listener,
                    peer,
                };
                match kind {
                    ListenerKind::Imap | ListenerKind::Imaps => {
                        tokio::spawn(services::imap::handle(conn, tcp, slot));
                    }
                    ListenerKind::Pop3 | ListenerKind::Pop3s => {
                        tokio::spawn(services::pop3::handle(conn, tcp, slot));
                    }
                    ListenerKind::Managesieve => {
                        tokio::spawn(services::managesieve::handle(conn, tcp, slot));
                    }
                    ListenerKind::Http | ListenerKind::Https => {
                        let challenges = shared.certs.challenges.clone();
                        tokio::spawn(services::http::handle(conn, tcp, slot, challenges));
                    }
                    ListenerKind::Smtp
                    | ListenerKind::Submission
                    | ListenerKind::Submissions
                    | ListenerKind::Lmtp => {
                        tokio::spawn(services::smtp_in::handle(conn, tcp, slot));
                    }
                }
            }
            None => {
                tracing::warn!(client = %peer.ip(), proto = kind.as_str(), "connection refused: limit reached");
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut tcp = tcp;
                    let refusal = conn::refusal(kind);
                    if !refusal.is_empty() {
                        let _ = tcp.write_all(&refusal).await;
                    }
                    let _ = tcp.shutdown().await;
                });
            }
        }
    }
}

async fn reload(
    config: &Path,
    shared: &Arc<Shared>,
    listeners: &mut HashMap<(ListenerKind, SocketAddr), Running>,
) {
    tracing::info!(config = %config.display(), "reloading");
    let path = config.to_path_buf();
    let out =
        match tokio::task::spawn_blocking(move || compile::compile_file(&path, Options::default()))
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "reload failed");
                return;
            }
        };
    let Some(compiled) = out.compiled else {
        let text = diag::render_all(&out.diags, &out.sources, Style::Plain, 100);
        tracing::error!(
            "reload failed ({}); still serving the previous configuration\n{text}",
            diag::summary(&out.diags)
        );
        return;
    };
    let old = shared.snapshot();
    if compiled.tables.state_dir != old.tables.state_dir {
        tracing::error!(
            "reload refused: the state directory cannot change while running; restart instead"
        );
        return;
    }
    let snap = match snapshot(&compiled, &shared.certs, shared.tls_attempts.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "reload failed; still serving the previous configuration");
            return;
        }
    };
    let tables = snap.tables.clone();
    shared.replace(snap);
    preload_usage(&shared.usage, &tables).await;
    if let Err(e) = reconcile_listeners(shared, &tables, listeners).await {
        tracing::error!(error = %e, "reload: cannot bind a new listener");
    }
    tracing::info!(tables = %tables.content_hash, "reloaded");
}
