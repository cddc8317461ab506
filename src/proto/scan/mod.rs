//! The wire formats of the content scanners mailc talks to at the end of
//! DATA: SpamAssassin's `spamd` (SPAMC/1.5, [`spamd`]), rspamd's HTTP
//! protocol (`/checkv2`, `/learnspam`, `/learnham`, [`rspamd`]) and ClamAV's
//! `clamd` (`zINSTREAM`, [`clamd`]). Requests are built and replies parsed
//! here as pure functions over bytes; the sockets, timeouts and read bounds
//! live in `services::scan`.
//!
//! Every reply parser answers [`Parse::Incomplete`] while more bytes may
//! complete the reply, and an [`Invalid`] error when no more bytes can: the
//! driver keeps reading (up to its cap) on the first, gives up on the
//! second.

pub mod clamd;
pub mod rspamd;
pub mod spamd;

use std::fmt;

/// The outcome of feeding a reply parser the bytes read so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Parse<T> {
    /// A whole reply.
    Done(T),
    /// Not yet: more bytes may complete it.
    Incomplete,
}

/// A reply no further bytes can make valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

pub(crate) fn invalid<T>(what: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(what.into()))
}

/// What a spam scanner (spamd or rspamd) said about a message.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamReport {
    /// The scanner's own verdict (spamd `Spam: True`, rspamd an action
    /// other than `no action`).
    pub is_spam: bool,
    pub score: f64,
    /// The scanner's threshold (spamd `required_score`, rspamd
    /// `required_score`, the score of its `reject` action).
    pub threshold: f64,
    /// The rules that matched, sorted.
    pub symbols: Vec<String>,
    /// rspamd's action; `None` for spamd.
    pub action: Option<RspamdAction>,
    /// rspamd's rewritten Subject (its `subject` member, with the action
    /// `rewrite subject`); `None` for spamd.
    pub subject: Option<String>,
}

/// rspamd's actions (its `actions` config), as `/checkv2` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RspamdAction {
    NoAction,
    Greylist,
    AddHeader,
    RewriteSubject,
    SoftReject,
    Reject,
}

impl RspamdAction {
    pub fn parse(s: &str) -> Option<RspamdAction> {
        Some(match s {
            "no action" => RspamdAction::NoAction,
            "greylist" => RspamdAction::Greylist,
            "add header" => RspamdAction::AddHeader,
            "rewrite subject" => RspamdAction::RewriteSubject,
            "soft reject" => RspamdAction::SoftReject,
            "reject" => RspamdAction::Reject,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RspamdAction::NoAction => "no action",
            RspamdAction::Greylist => "greylist",
            RspamdAction::AddHeader => "add header",
            RspamdAction::RewriteSubject => "rewrite subject",
            RspamdAction::SoftReject => "soft reject",
            RspamdAction::Reject => "reject",
        }
    }
}

/// What a virus scanner said about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirusReport {
    Clean,
    /// The signature's name (`Eicar-Test-Signature`).
    Infected(String),
}

/// Finds `\r\n\r\n` (or a bare `\n\n`, which some daemons send) ending a
/// head; returns (head length, body start).
pub(crate) fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c + 1 => Some((l, l + 2)),
        (Some(c), _) => Some((c, c + 4)),
        (None, Some(l)) => Some((l, l + 2)),
        (None, None) => None,
    }
}

/// The longest head (status line and header fields) any reply parser here
/// accepts; past it the reply is [`Invalid`], not [`Parse::Incomplete`].
pub const MAX_HEAD: usize = 16 * 1024;
