//! The POP3 driver: runs a POP3 [`Session`] over a TCP or TLS stream with
//! the POP3 inactivity timeout, performs STLS and credential checks, and
//! opens maildrops for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Shared, Snapshot};
use crate::net::limits::Slot;
use crate::net::stream::Stream;
use crate::proto::pop3::MAX_LINE;
use crate::proto::smtp::line::LineFramer;
use crate::session::AuthOutcome;
use crate::session::pop3::{Effect, Env, Maildrop, OpenError, Session};
use crate::tables::ListenerKind;

use super::HANDSHAKE_TIMEOUT;

struct LiveEnv {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
}

impl Env for LiveEnv {
    fn open(&self, mailbox: &str) -> Result<Box<dyn Maildrop>, OpenError> {
        let Some(m) = self.snapshot.tables.mailboxes.get(mailbox) else {
            return Err(OpenError::Unavailable("no such mailbox".into()));
        };
        self.shared.storage.open_maildrop(m)
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
        tracing::debug!(%peer, error = %e, "POP3 connection ended with an error");
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
    let mut input = Vec::with_capacity(1024);
    let mut framer = LineFramer::new(MAX_LINE);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut shutdown = shared.shutdown.clone();
    let timeout = Duration::from_secs(snapshot.tables.timeouts.pop3_secs);
    loop {
        // Session steps may read mail files: let tokio move other tasks off
        // this worker meanwhile.
        let mut out = tokio::task::block_in_place(|| session.process(&mut input, &mut framer));
        loop {
            write(stream, &out.bytes).await?;
            if out.close {
                return Ok(());
            }
            let next = match out.effect.take() {
                None => break,
                Some(Effect::StartTls) => {
                    input.clear();
                    let Some(acceptor) = snapshot.tls.clone() else {
                        return Ok(());
                    };
                    if let Err(e) = stream.upgrade(&acceptor, HANDSHAKE_TIMEOUT).await {
                        tracing::debug!(%peer, error = %e, "STLS handshake failed");
                        return Ok(());
                    }
                    session.tls_established()
                }
                Some(Effect::Authenticate { credentials, .. }) => {
                    let outcome =
                        super::smtp_in::authenticate(shared, snapshot, peer, credentials).await;
                    if outcome == AuthOutcome::Failed {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    tokio::task::block_in_place(|| session.auth_result(outcome))
                }
            };
            out = next;
        }
        if input.contains(&b'\n') && session.wants_input() {
            continue;
        }
        tokio::select! {
            read = tokio::time::timeout(timeout, stream.read(&mut chunk)) => {
                match read {
                    Err(_) => {
                        write(stream, &session.timeout().bytes).await?;
                        return Ok(());
                    }
                    Ok(Ok(0)) => return Ok(()),
                    Ok(Ok(n)) => input.extend_from_slice(&chunk[..n]),
                    Ok(Err(e)) => return Err(e),
                }
            }
            _ = shutdown.changed() => {
                write(stream, &session.shutdown().bytes).await?;
                return Ok(());
            }
        }
    }
}
