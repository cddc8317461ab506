//! What the one connection driver (`services::conn`) needs from a
//! line-protocol session: feed it bytes, take its output and at most one
//! effect, report the effect's result back. SMTP, LMTP, IMAP and POP3
//! implement [`Protocol`]; a new protocol (ManageSieve) implements it and
//! gets timeouts, STARTTLS, login, shutdown and buffering for free.
//!
//! The effects every protocol shares (TLS upgrade, credential check) are
//! [`Effect::StartTls`] and [`Effect::Authenticate`]; anything else (SMTP's
//! durable enqueue) travels as [`Effect::Other`] and is performed by the
//! protocol's own service.

use std::time::Duration;

use super::AuthOutcome;
use crate::proto::sasl::Credentials;

/// The TLS parameters of an encrypted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

impl TlsInfo {
    pub fn describe(&self) -> String {
        format!("{} {}", self.version, self.cipher)
    }
}

/// Work the driver does before the session can go on.
#[derive(Debug)]
pub enum Effect<X> {
    /// Write the output, drop input already buffered (it was sent in the
    /// clear: RFC 3207 §5, RFC 2595 §4, RFC 9051 §6.2.1), run the handshake,
    /// then call [`Protocol::tls_established`].
    StartTls,
    /// Check the credentials, then call [`Protocol::auth_result`].
    Authenticate(Credentials),
    /// A protocol's own effect, performed by its service.
    Other(X),
}

/// The result of one session step: bytes to write, then maybe an effect.
#[derive(Debug)]
pub struct Step<X> {
    pub bytes: Vec<u8>,
    pub effect: Option<Effect<X>>,
    /// Close the connection after writing `bytes`.
    pub close: bool,
}

impl<X> Step<X> {
    pub fn bytes(bytes: Vec<u8>) -> Step<X> {
        Step {
            bytes,
            effect: None,
            close: false,
        }
    }
}

/// A session the connection driver can run.
pub trait Protocol {
    /// Effects beyond STARTTLS and login ([`std::convert::Infallible`]
    /// when there are none).
    type Extra;
    /// For logs: `smtp`, `imap`, `pop3`.
    const NAME: &'static str;
    /// Whether the session waits for mail in an IDLE state, to be woken by
    /// mail events (and a timer for changes made by other programs).
    const WAKES_ON_MAIL: bool = false;
    /// Whether steps may read mail files (POP3 RETR reads whole messages):
    /// the driver then tells tokio to move other tasks off this worker while
    /// a step runs. IMAP reads in bounded chunks and stays on the worker.
    const BLOCKING_STEPS: bool = false;
    /// Whether to ask the kernel for immediate ACKs after each read (IMAP:
    /// clients that send a literal and its CRLF separately).
    const QUICKACK: bool = false;

    fn greeting(&mut self) -> Vec<u8>;
    /// Processes buffered input until more is needed, an effect must run,
    /// or the session ends; consumed bytes are removed from `input`.
    fn feed(&mut self, input: &mut Vec<u8>) -> Step<Self::Extra>;
    /// Whether the last step stopped with output still to produce (a long
    /// FETCH in chunks): `feed` again once its bytes are written.
    fn has_pending(&self) -> bool {
        false
    }
    fn tls_established(&mut self, tls: TlsInfo) -> Step<Self::Extra>;
    fn auth_result(&mut self, outcome: AuthOutcome) -> Step<Self::Extra>;
    /// The inactivity timeout ran out: the goodbye to send.
    fn timeout(&mut self) -> Vec<u8>;
    /// The server is stopping: the goodbye to send.
    fn shutdown(&mut self) -> Vec<u8>;
    fn is_closed(&self) -> bool;
    /// How long to wait for the next input now.
    fn read_timeout(&self) -> Duration;
    /// Room to make in the read buffer before reading: small for command
    /// lines, larger for message data.
    fn read_reserve(&self) -> usize;
    /// Whether the session is idling (IMAP IDLE): no read buffer is kept,
    /// mail events wake it.
    fn idling(&self) -> bool {
        false
    }
    /// The mailbox whose mail events concern this session.
    fn mail_owner(&self) -> Option<&str> {
        None
    }
    /// Looks for changes while idling.
    fn poll(&mut self) -> Vec<u8> {
        Vec::new()
    }
}
