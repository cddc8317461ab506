//! `session`: protocol state machines without I/O. A session takes input
//! (command lines, body bytes) and returns replies plus effects for the
//! driver in `services` to perform; it never touches sockets or files.
//! Every session implements [`Protocol`], the one interface the connection
//! driver (`services::conn`) runs, and receives the row of the listener it
//! was accepted on once, at construction.

pub mod http;
pub mod imap;
pub mod managesieve;
pub mod pop3;
pub mod protocol;
pub mod smtp;
pub mod smtp_out;

pub use protocol::{Protocol, TlsInfo};

/// Result of checking credentials, shared by the SMTP, IMAP and POP3
/// sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The mailbox (its normalised address) that logged in.
    Ok(String),
    Failed,
    /// Too many recent failures for this client or user.
    Locked,
    /// The password store could not be read.
    TempFail,
}

/// Whether the connection may upgrade with STARTTLS/STLS now.
pub fn can_starttls(listener: &crate::tables::ListenerTable, tls: bool) -> bool {
    !tls && listener.tls == crate::tables::TlsMode::Starttls
}

/// Whether the listener lets the client log in (now, given TLS) — the POP3
/// and IMAP rule; SMTP submission has its own.
pub fn login_allowed(listener: &crate::tables::ListenerTable, tls: bool) -> bool {
    match listener.auth {
        crate::tables::AuthMode::None => false,
        crate::tables::AuthMode::AfterTls => tls,
        crate::tables::AuthMode::Plaintext => true,
    }
}
