//! The connection driver: runs any line-protocol session ([`Protocol`])
//! over a TCP or TLS stream. It owns what every protocol shares: the
//! implicit-TLS handshake at accept, the read loop with the session's
//! inactivity timeout and the server's shutdown signal, writing, STARTTLS
//! (dropping what was pipelined in the clear), login through
//! [`super::login`], blocking steps, and IDLE wake-ups on
//! [`Shared::mail_events`]. A protocol's own effects (SMTP's durable
//! enqueue) are performed by its service through [`Extras`].
//!
//! Buffers cost memory per connection: input is read straight into one
//! buffer sized by the session (command lines, message data), released while
//! the session idles or when a large literal left it big.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use super::{HANDSHAKE_TIMEOUT, Shared, Snapshot, login};
use crate::net::limits::Slot;
use crate::net::stream::Stream;
use crate::session::protocol::{Effect, Protocol, Step, TlsInfo};
use crate::tables::{ListenerKind, ListenerTable, TlsMode};

/// How often an idling session looks for changes made by other programs.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// An empty read buffer larger than this (a big literal passed through) is
/// given back rather than kept for the connection's lifetime.
const MAX_KEPT_BUFFER: usize = 256 * 1024;

/// Performs a protocol's own effects ([`Protocol::Extra`]).
pub trait Extras<P: Protocol> {
    fn perform(
        &mut self,
        session: &mut P,
        effect: P::Extra,
    ) -> impl Future<Output = Step<P::Extra>> + Send;
}

/// For protocols with no effects of their own.
pub struct NoExtras;

impl<P: Protocol<Extra = Infallible> + Send> Extras<P> for NoExtras {
    async fn perform(&mut self, _session: &mut P, effect: Infallible) -> Step<Infallible> {
        match effect {}
    }
}

/// What the driver knows about one connection.
pub struct Conn {
    pub shared: Arc<Shared>,
    pub snapshot: Arc<Snapshot>,
    pub listener: ListenerTable,
    pub peer: SocketAddr,
}

/// The bytes a listener of this kind sends when the server has too many
/// connections, each from its protocol's catalogue.
pub fn refusal(kind: ListenerKind) -> Vec<u8> {
    match kind {
        ListenerKind::Pop3 | ListenerKind::Pop3s => {
            crate::proto::pop3::r::too_many_connections().to_bytes()
        }
        ListenerKind::Imap | ListenerKind::Imaps => {
            crate::proto::imap::response::r::too_many_connections().untagged()
        }
        ListenerKind::Smtp
        | ListenerKind::Submission
        | ListenerKind::Submissions
        | ListenerKind::Lmtp => crate::proto::smtp::reply::r::too_many_connections().to_bytes(),
        ListenerKind::Managesieve => {
            crate::proto::managesieve::r::too_many_connections().to_bytes()
        }
        ListenerKind::Http | ListenerKind::Https => super::http::refusal(kind),
    }
}

/// Serves one accepted connection until it closes: the implicit-TLS
/// handshake if the listener has one, then the session `start` builds
/// (given the TLS parameters, if encrypted from the first byte).
pub async fn run<P, H>(
    conn: Conn,
    tcp: TcpStream,
    _slot: Slot,
    start: impl FnOnce(&Conn, Option<TlsInfo>) -> (P, H),
) where
    P: Protocol,
    H: Extras<P>,
{
    let Some(mut stream) = accept(&conn, tcp).await else {
        return;
    };
    let tls = matches!(stream, Stream::Tls(_)).then(|| {
        let (version, cipher) = stream.tls_info().unwrap_or_default();
        TlsInfo { version, cipher }
    });
    let (mut session, mut extras) = start(&conn, tls);
    if let Err(e) = drive(&conn, &mut session, &mut extras, &mut stream).await {
        tracing::debug!(peer = %conn.peer, proto = P::NAME, error = %e, "connection ended with an error");
    }
    let _ = stream.shutdown().await;
}

/// The TLS handshake first on an implicit-TLS listener. `None` when it
/// fails (logged) or no certificate is loaded.
async fn accept(conn: &Conn, tcp: TcpStream) -> Option<Stream> {
    let mut stream = Stream::Plain(tcp);
    if conn.listener.tls == TlsMode::Implicit {
        let acceptor = conn.snapshot.tls.clone()?;
        if let Err(e) = stream.upgrade(&acceptor, HANDSHAKE_TIMEOUT).await {
            tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed");
            return None;
        }
    }
    Some(stream)
}

async fn write(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Runs a session step. Steps of protocols that read whole mail files
/// (`BLOCKING_STEPS`) let tokio move other tasks off this worker meanwhile;
/// password hashing never runs here (see [`login`]).
fn step<P: Protocol, T>(f: impl FnOnce() -> T) -> T {
    if P::BLOCKING_STEPS {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The next mail event, or never when the session does not listen.
async fn next_event(
    events: &mut Option<broadcast::Receiver<String>>,
) -> Result<String, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn drive<P: Protocol, H: Extras<P>>(
    conn: &Conn,
    session: &mut P,
    extras: &mut H,
    stream: &mut Stream,
) -> std::io::Result<()> {
    write(stream, &session.greeting()).await?;
    let mut input: Vec<u8> = Vec::new();
    let mut shutdown = conn.shared.shutdown.clone();
    let mut events = P::WAKES_ON_MAIL.then(|| conn.shared.mail_events.subscribe());
    loop {
        let Some(effects) = answer(conn, session, extras, stream, &mut input).await? else {
            return Ok(());
        };
        if session.is_closed() {
            return Ok(());
        }
        // Input buffered behind an effect is processed before waiting for
        // more.
        if effects && !input.is_empty() {
            continue;
        }
        if !wait_for_input(session, stream, &mut input, &mut events, &mut shutdown).await? {
            return Ok(());
        }
    }
}

/// Feeds the buffered input to the session and writes what it answers,
/// carrying out its effects in between. Returns whether an effect ran, or
/// `None` when the connection is to end.
async fn answer<P: Protocol, H: Extras<P>>(
    conn: &Conn,
    session: &mut P,
    extras: &mut H,
    stream: &mut Stream,
    input: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    let mut out = step::<P, _>(|| session.feed(input));
    let mut effects = false;
    loop {
        write(stream, &out.bytes).await?;
        if out.close {
            return Ok(None);
        }
        out = match out.effect.take() {
            // A long FETCH: the next chunk once this one is out.
            None if session.has_pending() => step::<P, _>(|| session.feed(input)),
            None => return Ok(Some(effects)),
            Some(effect) => {
                effects = true;
                match perform(conn, session, extras, stream, input, effect).await {
                    Some(next) => next,
                    None => return Ok(None),
                }
            }
        };
    }
}

/// One effect the session asked for; `None` when the connection is to end
/// (STARTTLS without a certificate, or a failed handshake).
async fn perform<P: Protocol, H: Extras<P>>(
    conn: &Conn,
    session: &mut P,
    extras: &mut H,
    stream: &mut Stream,
    input: &mut Vec<u8>,
    effect: Effect<P::Extra>,
) -> Option<Step<P::Extra>> {
    match effect {
        Effect::StartTls => {
            // Anything pipelined after STARTTLS was sent in the clear.
            input.clear();
            let acceptor = conn.snapshot.tls.clone()?;
            if let Err(e) = stream.upgrade(&acceptor, HANDSHAKE_TIMEOUT).await {
                tracing::debug!(peer = %conn.peer, proto = P::NAME, error = %e, "STARTTLS handshake failed");
                return None;
            }
            let (version, cipher) = stream.tls_info().unwrap_or_default();
            Some(step::<P, _>(|| {
                session.tls_established(TlsInfo { version, cipher })
            }))
        }
        Effect::Authenticate(credentials) => {
            let outcome = login::login(
                &conn.shared,
                &conn.snapshot,
                conn.peer,
                P::NAME,
                credentials,
            )
            .await;
            Some(step::<P, _>(|| session.auth_result(outcome)))
        }
        Effect::Other(effect) => Some(extras.perform(session, effect).await),
    }
}

/// Waits for more input; while the session idles, also for mail events
/// and the poll interval. Returns false when the connection is to end
/// (timeout, end of input, shutdown).
async fn wait_for_input<P: Protocol>(
    session: &mut P,
    stream: &mut Stream,
    input: &mut Vec<u8>,
    events: &mut Option<broadcast::Receiver<String>>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<bool> {
    let idle = session.idling();
    let deadline = tokio::time::Instant::now() + session.read_timeout();
    if input.is_empty() && (idle || input.capacity() > MAX_KEPT_BUFFER) {
        *input = Vec::new();
    }
    input.reserve(session.read_reserve());
    loop {
        tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read_buf(input)) => {
                return match read {
                    Err(_) => {
                        write(stream, &session.timeout()).await?;
                        Ok(false)
                    }
                    Ok(Ok(0)) => Ok(false),
                    Ok(Ok(_)) => {
                        if P::QUICKACK {
                            stream.quickack();
                        }
                        Ok(true)
                    }
                    Ok(Err(e)) => Err(e),
                };
            }
            ev = next_event(events), if idle => {
                let mine = match ev {
                    Ok(owner) => Some(owner.as_str()) == session.mail_owner(),
                    // Missed some: look anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => {
                        *events = None;
                        false
                    }
                };
                if mine {
                    let bytes = step::<P, _>(|| session.poll());
                    write(stream, &bytes).await?;
                }
            }
            _ = tokio::time::sleep(IDLE_POLL), if idle => {
                let bytes = step::<P, _>(|| session.poll());
                write(stream, &bytes).await?;
            }
            _ = shutdown.changed() => {
                write(stream, &session.shutdown()).await?;
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_come_from_each_protocols_catalogue() {
        assert_eq!(
            refusal(ListenerKind::Smtp),
            b"421 4.7.0 too many connections, try again later\r\n"
        );
        assert_eq!(
            refusal(ListenerKind::Lmtp),
            refusal(ListenerKind::Submissions)
        );
        assert_eq!(
            refusal(ListenerKind::Pop3s),
            b"-ERR [SYS/TEMP] too many connections, try again later\r\n"
        );
        assert_eq!(
            refusal(ListenerKind::Imaps),
            b"* BYE Too many connections, try again later\r\n"
        );
        assert_eq!(
            refusal(ListenerKind::Managesieve),
            b"BYE (TRYLATER) \"too many connections, try again later\"\r\n"
        );
    }
}
