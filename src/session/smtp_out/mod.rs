//! The outbound SMTP client as state machines without I/O. [`Opening`]
//! takes a connection from the greeting to a ready state (EHLO, HELO
//! fallback, STARTTLS, EHLO again, AUTH); [`Transaction`] carries one
//! message (MAIL, RCPTs, DATA, pipelined when the server offers it) and
//! decides what each recipient's outcome is. Both take the server's replies
//! and say what to write next; the driver in `services::smtp_out` owns the
//! socket, TLS and the timeouts (each step names the [`Stage`] whose
//! RFC 5321 §4.5.3.2 timeout applies).
//!
//! Outcome rules: a 4xx to RCPT defers that recipient, a 5xx fails it; a
//! reply to DATA or to the final dot applies to every recipient the RCPTs
//! accepted; a connection lost, a timeout or a reply that makes no sense
//! (250 to DATA, garbage) defers every recipient not already decided — a
//! message is only ever marked delivered after a 2xx to its final dot.

mod opening;
#[cfg(test)]
mod properties;
mod transaction;

pub use opening::{OpenConfig, OpenStep, Opening};
pub use transaction::{Transaction, TxResult, TxStep};

use std::fmt;

use crate::proto::smtp::client::enhanced_or_derived;
use crate::proto::smtp::reply::{Enhanced, Reply};

/// How much TLS a destination demands. The session only knows "required";
/// whether the certificate must verify is the driver's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// STARTTLS whenever offered; an unverified certificate still encrypts.
    #[default]
    Opportunistic,
    /// No TLS, no delivery (temporary failure).
    Require,
    /// TLS with a certificate that verifies against the trust anchors for
    /// the server name.
    RequireVerified,
}

/// Where in the dialogue a reply (or a local decision) came from: names the
/// timeout that applies and goes into diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// Sending the message body.
    DataBlock,
    /// The reply to the final dot.
    DataEnd,
    Rset,
    Quit,
    /// Refused before sending: the message is bigger than the SIZE the
    /// server announced.
    SizeCheck,
    /// Refused before sending for another reason (8BITMIME, SMTPUTF8, an
    /// address that cannot be written).
    Local,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "CONNECT",
            Stage::Greeting => "GREETING",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::DataBlock => "DATA-BLOCK",
            Stage::DataEnd => "DATA-END",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
            Stage::SizeCheck => "SIZE-check",
            Stage::Local => "local",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reply (or a locally made decision) that settled a recipient's fate:
/// enough for a DSN `Diagnostic-Code: smtp; 550 5.1.1 no such user` and for
/// `mailc queue show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyInfo {
    pub code: u16,
    /// As the server sent it, or derived from the basic code (X.0.0).
    pub enhanced: Enhanced,
    /// The reply's lines joined by a space.
    pub text: String,
    pub stage: Stage,
    /// True when the server said it; false when mailc decided (size check,
    /// timeout, lost connection, protocol error). A DSN gives a
    /// `Diagnostic-Code` only for remote replies.
    pub remote: bool,
}

impl ReplyInfo {
    pub fn from_reply(reply: &Reply, stage: Stage) -> ReplyInfo {
        ReplyInfo {
            code: reply.code,
            enhanced: enhanced_or_derived(reply),
            text: reply.lines.join(" "),
            stage,
            remote: true,
        }
    }

    pub fn local(code: u16, enhanced: Enhanced, text: impl Into<String>, stage: Stage) -> Self {
        ReplyInfo {
            code,
            enhanced,
            text: text.into(),
            stage,
            remote: false,
        }
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// `smtp; 550 5.1.1 no such user` (RFC 3464 §2.3.6).
    pub fn diagnostic_code(&self) -> String {
        format!("smtp; {self}")
    }
}

impl fmt::Display for ReplyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.enhanced, self.text)
    }
}

/// What became of one recipient of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    Delivered(ReplyInfo),
    /// Try again later.
    Deferred(ReplyInfo),
    /// Permanent: a bounce is due.
    Failed(ReplyInfo),
}

impl RcptOutcome {
    /// Deferred on 4xx, failed on 5xx, delivered on 2xx.
    pub fn from_info(info: ReplyInfo) -> RcptOutcome {
        match info.code {
            200..=299 => RcptOutcome::Delivered(info),
            400..=499 => RcptOutcome::Deferred(info),
            _ => RcptOutcome::Failed(info),
        }
    }

    pub fn info(&self) -> &ReplyInfo {
        match self {
            RcptOutcome::Delivered(i) | RcptOutcome::Deferred(i) | RcptOutcome::Failed(i) => i,
        }
    }
}

/// Why a connection could not be opened or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnError {
    /// Try again later, or try the next MX: connect or TLS failure, timeout,
    /// 4xx greeting/EHLO, required TLS not offered, AUTH refused.
    Temporary(String),
    /// The server refused us with a 5xx at the greeting or HELO. RFC 5321
    /// §3.1 / §5.1: the scheduler should still try the next MX, and fail the
    /// recipients only when no MX accepts the connection.
    Permanent(ReplyInfo),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Temporary(t) => f.write_str(t),
            ConnError::Permanent(i) => write!(f, "{} refused: {i}", i.stage),
        }
    }
}

/// One recipient of an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRcpt {
    pub address: String,
    pub notify: Option<crate::envelope::Notify>,
    /// The original recipient (decoded address); sent as ORCPT when the
    /// server offers DSN.
    pub orcpt: Option<String>,
}

/// One message to send over an open connection.
#[derive(Debug, Clone, Copy)]
pub struct OutMessage<'a> {
    /// `""` is the null sender.
    pub sender: &'a str,
    pub recipients: &'a [OutRcpt],
    /// The whole message, CRLF line ends, not dot-stuffed.
    pub body: &'a [u8],
    /// The body has 8-bit bytes (it came in with BODY=8BITMIME). Such a body
    /// is never converted to 7 bit for a server without 8BITMIME: conversion
    /// would break the DKIM signatures over it, so the recipients fail with
    /// 5.6.3 instead.
    pub body_8bit: bool,
    /// The message came in with SMTPUTF8 (UTF-8 headers may be inside).
    pub smtputf8: bool,
    pub ret: Option<crate::envelope::Ret>,
    pub envid: Option<&'a str>,
}

/// Why the driver stopped reading or writing in the middle of a dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No reply (or no progress writing) within the stage's timeout.
    Timeout,
    /// The server closed the connection, or a read/write failed.
    Io(String),
    /// Bytes that are not a reply (garbage, too long, too many lines).
    Protocol(String),
}

impl Fault {
    fn info(&self, stage: Stage) -> ReplyInfo {
        match self {
            Fault::Timeout => ReplyInfo::local(
                451,
                Enhanced(4, 4, 2),
                format!("timeout waiting for the {stage} reply"),
                stage,
            ),
            Fault::Io(e) => ReplyInfo::local(
                451,
                Enhanced(4, 4, 2),
                format!("connection lost at {stage}: {e}"),
                stage,
            ),
            Fault::Protocol(e) => ReplyInfo::local(
                451,
                Enhanced(4, 5, 0),
                format!("protocol error at {stage}: {e}"),
                stage,
            ),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Timeout => f.write_str("timeout"),
            Fault::Io(e) => write!(f, "connection lost: {e}"),
            Fault::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}
