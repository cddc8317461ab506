//! `session`: protocol state machines without I/O. A session takes input
//! (command lines, body bytes) and returns replies plus effects for the
//! driver in `services` to perform; it never touches sockets or files.

pub mod imap;
pub mod pop3;
pub mod smtp;
pub mod smtp_out;

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

/// TLS and login modes of the listener a connection came in on.
fn listener_modes(
    tables: &crate::tables::Tables,
    kind: crate::tables::ListenerKind,
    local: std::net::SocketAddr,
) -> (crate::tables::TlsMode, crate::tables::AuthMode) {
    use crate::tables::{AuthMode, TlsMode};
    tables
        .listeners
        .iter()
        .find(|l| l.kind == kind && l.address == local)
        .map_or((TlsMode::None, AuthMode::None), |l| (l.tls, l.auth))
}

/// Whether the connection may upgrade with STARTTLS/STLS now.
pub fn can_starttls(
    tables: &crate::tables::Tables,
    kind: crate::tables::ListenerKind,
    local: std::net::SocketAddr,
    tls: bool,
) -> bool {
    !tls && listener_modes(tables, kind, local).0 == crate::tables::TlsMode::Starttls
}

/// Whether the listener lets the client log in (now, given TLS) — the POP3
/// and IMAP rule; SMTP submission has its own.
pub fn login_allowed(
    tables: &crate::tables::Tables,
    kind: crate::tables::ListenerKind,
    local: std::net::SocketAddr,
    tls: bool,
) -> bool {
    match listener_modes(tables, kind, local).1 {
        crate::tables::AuthMode::None => false,
        crate::tables::AuthMode::AfterTls => tls,
        crate::tables::AuthMode::Plaintext => true,
    }
}
