//! The SMTP/LMTP driver: runs a [`Session`] over a TCP or TLS stream,
//! enforcing the per-state timeouts, and performs the session's effects:
//! the STARTTLS handshake (dropping pipelined input first), credential
//! checks off the async runtime with failure throttling, and durable
//! enqueueing before any 250.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Shared, Snapshot, unix_now};
use crate::net::limits::Slot;
use crate::net::stream::Stream;
use crate::proto::smtp::line::{LineFramer, MAX_COMMAND_LINE};
use crate::proto::smtp::reply::Reply;
use crate::session::smtp::{AuthOutcome, ConnInfo, Effect, Env, Expect, Output, Session, TlsInfo};
use crate::tables::ListenerKind;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// How long a TLS handshake may take.
use super::HANDSHAKE_TIMEOUT;
/// Pause after a failed login, to slow down password guessing.
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(500);

struct LiveEnv {
    shared: Arc<Shared>,
    tables: Arc<crate::tables::Tables>,
}

impl Env for LiveEnv {
    fn now(&self) -> u64 {
        unix_now()
    }

    fn mailbox_usage(&self, mailbox: &str) -> u64 {
        // Loaded at startup for every mailbox with a quota, and kept current
        // by delivery; never a disk scan on this path.
        let _ = &self.tables;
        self.shared.usage.cached(mailbox).unwrap_or(0)
    }

    fn new_id(&self) -> String {
        crate::queue::new_id()
    }

    fn srs_reverse(&self, address: &str) -> Option<String> {
        self.shared.srs.reverse(address, unix_now()).ok()
    }
}

/// Handles one accepted connection until it closes.
pub async fn handle(
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    kind: ListenerKind,
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    _slot: Slot,
) {
    let tables = snapshot.tables.clone();
    let Some(mut stream) = super::accept(&snapshot, kind, tcp, peer, local).await else {
        return;
    };
    let tls = stream
        .tls_info()
        .map(|(version, cipher)| TlsInfo { version, cipher });
    let conn = ConnInfo {
        peer,
        local,
        kind,
        tls,
    };
    let env = LiveEnv {
        shared: shared.clone(),
        tables: tables.clone(),
    };
    let mut session = Session::new(tables.clone(), conn, env);
    let result = drive(&shared, &snapshot, &mut session, &mut stream, peer).await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "SMTP connection ended with an error");
    }
    let _ = stream.shutdown().await;
}

async fn write_replies(stream: &mut Stream, replies: &[Reply]) -> std::io::Result<()> {
    if replies.is_empty() {
        return Ok(());
    }
    let mut out = Vec::with_capacity(64 * replies.len());
    for r in replies {
        r.write_to(&mut out);
    }
    stream.write_all(&out).await?;
    stream.flush().await
}

async fn drive(
    shared: &Arc<Shared>,
    snapshot: &Arc<Snapshot>,
    session: &mut Session<LiveEnv>,
    stream: &mut Stream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let tables = snapshot.tables.clone();
    let greeting = session.greeting();
    write_replies(stream, &greeting.replies).await?;
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut framer = LineFramer::new(MAX_COMMAND_LINE);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut shutdown = shared.shutdown.clone();
    loop {
        let mut out: Output = session.process(&mut input, &mut framer);
        // Effects may produce more output (and more effects, e.g. a reply to
        // a pipelined command after the queue answered).
        loop {
            write_replies(stream, &out.replies).await?;
            if out.close {
                return Ok(());
            }
            let next = match out.effect.take() {
                None => break,
                Some(Effect::StartTls) => {
                    // RFC 3207 §5 / CVE-2011-0411: nothing sent before the
                    // handshake may be read after it.
                    input.clear();
                    let Some(acceptor) = snapshot.tls.clone() else {
                        return Ok(());
                    };
                    if let Err(e) = stream.upgrade(&acceptor, HANDSHAKE_TIMEOUT).await {
                        tracing::debug!(%peer, error = %e, "STARTTLS handshake failed");
                        return Ok(());
                    }
                    let (version, cipher) = stream.tls_info().unwrap_or_default();
                    session.tls_established(TlsInfo { version, cipher })
                }
                Some(Effect::Authenticate { credentials, .. }) => {
                    let outcome = authenticate(shared, snapshot, peer, credentials).await;
                    if outcome == AuthOutcome::Failed {
                        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                    }
                    session.auth_result(outcome)
                }
                Some(Effect::Enqueue(mut accepted)) => {
                    super::outbound::sign_submission(snapshot, &mut accepted);
                    let rcpts: Vec<String> = accepted
                        .envelope
                        .recipients
                        .iter()
                        .map(|r| r.address.clone())
                        .collect();
                    let id = accepted.envelope.id.clone();
                    let result = match shared.spool.store(*accepted).await {
                        Ok(entry) => {
                            tracing::info!(
                                id = %entry.envelope.id,
                                from = %entry.envelope.sender,
                                rcpts = entry.envelope.recipients.len(),
                                size = entry.envelope.size,
                                client = %peer.ip(),
                                "queued"
                            );
                            let _ = shared.delivery.send(entry);
                            Ok(id)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot write to the queue");
                            Err(e.to_string())
                        }
                    };
                    session.enqueued(result, &rcpts)
                }
            };
            out = next;
        }
        // Commands already buffered come first.
        if session.expect() == Expect::Line && !input.is_empty() && input.contains(&b'\n') {
            continue;
        }
        let limit = match session.expect() {
            Expect::Body => tables.timeouts.smtp_data_secs,
            _ => tables.timeouts.smtp_command_secs,
        };
        tokio::select! {
            read = tokio::time::timeout(Duration::from_secs(limit), stream.read(&mut chunk)) => {
                match read {
                    Err(_) => {
                        let out = session.timeout();
                        write_replies(stream, &out.replies).await?;
                        return Ok(());
                    }
                    Ok(Ok(0)) => return Ok(()),
                    Ok(Ok(n)) => input.extend_from_slice(&chunk[..n]),
                    Ok(Err(e)) => return Err(e),
                }
            }
            _ = shutdown.changed() => {
                let out = session.shutdown();
                write_replies(stream, &out.replies).await?;
                return Ok(());
            }
        }
    }
}

pub(crate) async fn authenticate(
    shared: &Arc<Shared>,
    snapshot: &Arc<Snapshot>,
    peer: SocketAddr,
    credentials: crate::proto::sasl::Credentials,
) -> AuthOutcome {
    let limits = &snapshot.tables.limits;
    let now = unix_now();
    if shared.auth_limiter.is_locked(
        peer.ip(),
        &credentials.username,
        limits.auth_failures,
        limits.auth_lockout_secs,
        now,
    ) {
        tracing::warn!(client = %peer.ip(), user = %credentials.username, "login refused: too many failures");
        return AuthOutcome::Locked;
    }
    let tables = snapshot.tables.clone();
    let secrets = snapshot.secrets.clone();
    let user = credentials.username.clone();
    let result = tokio::task::spawn_blocking(move || {
        crate::auth::verify_login(
            &tables,
            &secrets,
            &credentials.username,
            &credentials.password,
        )
    })
    .await;
    match result {
        Ok(Ok(mailbox)) => {
            shared.auth_limiter.record_success(&user);
            tracing::info!(client = %peer.ip(), user = %mailbox, "login");
            AuthOutcome::Ok(mailbox)
        }
        Ok(Err(crate::auth::LoginError::Invalid)) => {
            shared.auth_limiter.record_failure(
                peer.ip(),
                &user,
                limits.auth_lockout_secs,
                unix_now(),
            );
            tracing::warn!(client = %peer.ip(), user = %user, "login failed");
            AuthOutcome::Failed
        }
        Ok(Err(crate::auth::LoginError::Unavailable(e))) => {
            tracing::error!(user = %user, error = %e, "password store unavailable");
            AuthOutcome::TempFail
        }
        Err(_) => AuthOutcome::TempFail,
    }
}
