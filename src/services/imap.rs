//! The IMAP driver: runs an IMAP [`Session`] over a TCP or TLS stream,
//! performs STARTTLS and credential checks, opens the user's mail store,
//! and wakes IDLE sessions when their mail changes (a delivery or another
//! session announces the user on [`Shared::mail_events`]; a timer catches
//! changes made by other programs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Shared, Snapshot};
use crate::net::limits::Slot;
use crate::net::stream::Stream;
use crate::session::AuthOutcome;
use crate::session::imap::{Effect, Env, Session, Store};
use crate::tables::ListenerKind;

use super::HANDSHAKE_TIMEOUT;
/// How often an IDLE session looks for changes made by other programs.
const IDLE_POLL: Duration = Duration::from_secs(5);

struct LiveEnv {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
}

impl Env for LiveEnv {
    fn open(&self, mailbox: &str) -> Result<Box<dyn Store>, String> {
        let Some(m) = self.snapshot.tables.mailboxes.get(mailbox) else {
            return Err("no such mailbox".into());
        };
        self.shared
            .storage
            .open_folders(m)
            .map_err(|e| format!("{e:?}"))
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    kind: ListenerKind,
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    _slot: Slot,
) {
    let Some(mut stream) = super::accept(&snapshot, kind, tcp, peer, local).await else {
        return;
    };
    let env = LiveEnv {
        shared: shared.clone(),
        snapshot: snapshot.clone(),
    };
    let tls = matches!(stream, Stream::Tls(_));
    let mut session = Session::new(snapshot.tables.clone(), kind, local, tls, env);
    if let Err(e) = drive(&shared, &snapshot, &mut session, &mut stream, peer).await {
        tracing::debug!(%peer, error = %e, "IMAP connection ended with an error");
    }
    let _ = stream.shutdown().await;
}

async fn write(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    stream.write_all(bytes).await?;
    stream.flush().await
}

async fn drive(
    shared: &Arc<Shared>,
    snapshot: &Arc<Snapshot>,
    session: &mut Session<LiveEnv>,
    stream: &mut Stream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    write(stream, &session.greeting().bytes).await?;
    let mut input = Vec::new();
    let mut shutdown = shared.shutdown.clone();
    let mut events = shared.mail_events.subscribe();
    let timeout = Duration::from_secs(snapshot.tables.timeouts.imap_secs.max(30 * 60));
    let idle_timeout = Duration::from_secs(snapshot.tables.timeouts.imap_idle_secs.max(30 * 60));
    loop {
        let mut out = session.process(&mut input);
        // Whether an effect ran: input buffered behind it is processed
        // before waiting for more.
        let mut effects = false;
        loop {
            write(stream, &out.bytes).await?;
            if out.close {
                return Ok(());
            }
            let next = match out.effect.take() {
                None => {
                    if session.has_pending() {
                        // A long FETCH: the next chunk once this one is out.
                        session.process(&mut input)
                    } else {
                        break;
                    }
                }
                Some(Effect::StartTls) => {
                    effects = true;
                    // Anything pipelined after STARTTLS was sent in the
                    // clear: dropped (RFC 9051 6.2.1).
                    input.clear();
                    let Some(acceptor) = snapshot.tls.clone() else {
                        return Ok(());
                    };
                    if let Err(e) = stream.upgrade(&acceptor, HANDSHAKE_TIMEOUT).await {
                        tracing::debug!(%peer, error = %e, "STARTTLS handshake failed");
                        return Ok(());
                    }
                    session.tls_established()
                }
                Some(Effect::Authenticate { credentials }) => {
                    effects = true;
                    let outcome =
                        super::smtp_in::authenticate(shared, snapshot, peer, credentials).await;
                    if outcome == AuthOutcome::Failed {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    if let AuthOutcome::Ok(user) = &outcome {
                        tracing::info!(%peer, user = %user, proto = "imap", "login");
                    }
                    session.auth_result(outcome)
                }
            };
            out = next;
        }
        if session.is_closed() {
            return Ok(());
        }
        if effects && !input.is_empty() {
            continue;
        }
        let idle = session.is_idle();
        let wait = if idle { idle_timeout } else { timeout };
        let user = session.user().map(str::to_string);
        let deadline = tokio::time::Instant::now() + wait;
        // Buffers cost memory per connection: none kept while idling, a
        // read buffer sized for commands and APPEND literals otherwise.
        if input.is_empty() {
            if idle || input.capacity() > 256 * 1024 {
                input = Vec::new();
            }
            input.reserve(if idle { 64 } else { 16 * 1024 });
        } else {
            input.reserve(16 * 1024);
        }
        // Wait for input; while idling, also for mail events and the poll.
        loop {
            tokio::select! {
                read = tokio::time::timeout_at(deadline, stream.read_buf(&mut input)) => {
                    match read {
                        Err(_) => {
                            write(stream, &session.timeout().bytes).await?;
                            return Ok(());
                        }
                        Ok(Ok(0)) => return Ok(()),
                        Ok(Ok(_)) => {
                            stream.quickack();
                            break;
                        }
                        Ok(Err(e)) => return Err(e),
                    }
                }
                ev = events.recv(), if idle => {
                    let mine = match ev {
                        Ok(u) => Some(&u) == user.as_ref(),
                        // Missed some: look anyway.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                    };
                    if mine {
                        let out = session.poll();
                        write(stream, &out.bytes).await?;
                    }
                }
                _ = tokio::time::sleep(IDLE_POLL), if idle => {
                    let out = session.poll();
                    write(stream, &out.bytes).await?;
                }
                _ = shutdown.changed() => {
                    write(stream, &session.shutdown().bytes).await?;
                    return Ok(());
                }
            }
        }
    }
}
