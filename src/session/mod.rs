//! `session`: protocol state machines without I/O. A session takes input
//! (command lines, body bytes) and returns replies plus effects for the
//! driver in `services` to perform; it never touches sockets or files.

pub mod imap;
pub mod pop3;
pub mod smtp;

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
