//! Typed IMAP status responses (RFC 9051 §7.1): a status, an optional
//! response code in brackets, and human-readable text. The session builds
//! every `OK`/`NO`/`BAD`/`BYE` line from these, never from string literals
//! with the codes typed in, so a code is spelled once and its arguments are
//! always well-formed.
//!
//! The tag is not part of a [`Response`]: the same response is written
//! tagged ([`Response::write_tagged`]) or untagged
//! ([`Response::write_untagged`]).

use std::borrow::Cow;

use super::encode::seq_set;

/// The status word of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    /// Untagged only: the server is closing the connection.
    Bye,
    /// Untagged only, in a greeting.
    PreAuth,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
            Status::Bye => "BYE",
            Status::PreAuth => "PREAUTH",
        }
    }
}

/// A response code (RFC 9051 §7.1, RFC 5530, and the extensions that
/// define their own: UIDPLUS, CONDSTORE/QRESYNC, BINARY, LITERAL+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    /// The charsets SEARCH accepts.
    BadCharset(&'static [&'static str]),
    /// The capability list, space separated.
    Capability(String),
    Parse,
    /// The flags a client may store, space separated (empty: none).
    PermanentFlags(String),
    ReadOnly,
    ReadWrite,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unseen(u32),
    /// UIDVALIDITY of the target and the new UIDs (RFC 4315).
    AppendUid(u32, Vec<u32>),
    /// UIDVALIDITY of the target, source UIDs, new UIDs (RFC 4315).
    CopyUid(u32, Vec<u32>, Vec<u32>),
    UidNotSticky,
    HighestModSeq(u64),
    NoModSeq,
    /// Messages a conditional STORE left alone (RFC 7162).
    Modified(Vec<u32>),
    Closed,
    TooBig,
    OverQuota,
    Limit,
    InUse,
    ExpungeIssued,
    Cannot,
    Nonexistent,
    AlreadyExists,
    ServerBug,
    ClientBug,
    ContactAdmin,
    NoPerm,
    AuthenticationFailed,
    AuthorizationFailed,
    PrivacyRequired,
    Unavailable,
    /// A BINARY fetch of a part whose transfer encoding is unknown
    /// (RFC 3516).
    UnknownCte,
}

impl Code {
    /// Writes the code without its brackets.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let word = match self {
            Code::Alert => "ALERT",
            Code::BadCharset(list) => {
                out.extend_from_slice(b"BADCHARSET (");
                out.extend_from_slice(list.join(" ").as_bytes());
                out.push(b')');
                return;
            }
            Code::Capability(caps) => {
                out.extend_from_slice(b"CAPABILITY ");
                out.extend_from_slice(caps.as_bytes());
                return;
            }
            Code::Parse => "PARSE",
            Code::PermanentFlags(flags) => {
                out.extend_from_slice(b"PERMANENTFLAGS (");
                out.extend_from_slice(flags.as_bytes());
                out.push(b')');
                return;
            }
            Code::ReadOnly => "READ-ONLY",
            Code::ReadWrite => "READ-WRITE",
            Code::TryCreate => "TRYCREATE",
            Code::UidNext(n) => return number(out, "UIDNEXT", u64::from(*n)),
            Code::UidValidity(n) => return number(out, "UIDVALIDITY", u64::from(*n)),
            Code::Unseen(n) => return number(out, "UNSEEN", u64::from(*n)),
            Code::AppendUid(validity, uids) => {
                number(out, "APPENDUID", u64::from(*validity));
                out.push(b' ');
                out.extend_from_slice(seq_set(uids).as_bytes());
                return;
            }
            Code::CopyUid(validity, from, to) => {
                number(out, "COPYUID", u64::from(*validity));
                out.push(b' ');
                out.extend_from_slice(seq_set(from).as_bytes());
                out.push(b' ');
                out.extend_from_slice(seq_set(to).as_bytes());
                return;
            }
            Code::UidNotSticky => "UIDNOTSTICKY",
            Code::HighestModSeq(n) => return number(out, "HIGHESTMODSEQ", *n),
            Code::NoModSeq => "NOMODSEQ",
            Code::Modified(set) => {
                out.extend_from_slice(b"MODIFIED ");
                out.extend_from_slice(seq_set(set).as_bytes());
                return;
            }
            Code::Closed => "CLOSED",
            Code::TooBig => "TOOBIG",
            Code::OverQuota => "OVERQUOTA",
            Code::Limit => "LIMIT",
            Code::InUse => "INUSE",
            Code::ExpungeIssued => "EXPUNGEISSUED",
            Code::Cannot => "CANNOT",
            Code::Nonexistent => "NONEXISTENT",
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::ServerBug => "SERVERBUG",
            Code::ClientBug => "CLIENTBUG",
            Code::ContactAdmin => "CONTACTADMIN",
            Code::NoPerm => "NOPERM",
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED",
            Code::AuthorizationFailed => "AUTHORIZATIONFAILED",
            Code::PrivacyRequired => "PRIVACYREQUIRED",
            Code::Unavailable => "UNAVAILABLE",
            Code::UnknownCte => "UNKNOWN-CTE",
        };
        out.extend_from_slice(word.as_bytes());
    }
}

fn number(out: &mut Vec<u8>, word: &str, n: u64) {
    out.extend_from_slice(word.as_bytes());
    out.push(b' ');
    out.extend_from_slice(n.to_string().as_bytes());
}

/// One status response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub code: Option<Code>,
    pub text: Cow<'static, str>,
}

impl Response {
    pub fn new(status: Status, code: Option<Code>, text: impl Into<Cow<'static, str>>) -> Self {
        Response {
            status,
            code,
            text: text.into(),
        }
    }

    pub fn ok(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Ok, None, text)
    }

    pub fn ok_code(code: Code, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Ok, Some(code), text)
    }

    pub fn no(code: Code, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::No, Some(code), text)
    }

    /// A NO without a code.
    pub fn no_plain(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::No, None, text)
    }

    pub fn bad(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Bad, None, text)
    }

    pub fn bye(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Bye, None, text)
    }

    pub fn is_bad(&self) -> bool {
        self.status == Status::Bad
    }

    /// `TAG STATUS [CODE] text\r\n`.
    pub fn write_tagged(&self, out: &mut Vec<u8>, tag: &str) {
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        self.write_rest(out);
    }

    /// `* STATUS [CODE] text\r\n`.
    pub fn write_untagged(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"* ");
        self.write_rest(out);
    }

    pub fn tagged(&self, tag: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_tagged(&mut out, tag);
        out
    }

    pub fn untagged(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_untagged(&mut out);
        out
    }

    fn write_rest(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        if let Some(code) = &self.code {
            out.push(b'[');
            code.write_to(out);
            out.extend_from_slice(b"] ");
        }
        write_text(out, &self.text);
        out.extend_from_slice(b"\r\n");
    }
}

/// Text any client can take: printable ASCII, controls (CR, LF) as spaces
/// so an echoed value never starts another line, other characters as `?`.
fn write_text(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for c in text.chars() {
        out.push(if c.is_control() {
            b' '
        } else if c.is_ascii() {
            c as u8
        } else {
            b'?'
        });
    }
}

/// The fixed responses of the server, one constructor per situation.
pub mod r {
    use super::{Code, Response, Status};

    pub fn too_many_errors() -> Response {
        Response::bye("Too many errors")
    }
    pub fn timeout() -> Response {
        Response::bye("Autologout; idle for too long")
    }
    pub fn shutting_down() -> Response {
        Response::bye("Server shutting down")
    }
    pub fn too_many_connections() -> Response {
        Response::bye("Too many connections, try again later")
    }
    pub fn stream_lost() -> Response {
        Response::bye("Cannot continue this command stream")
    }
    pub fn logging_out() -> Response {
        Response::bye("Logging out")
    }
    pub fn uidvalidity_changed() -> Response {
        Response::bye("Mailbox UIDVALIDITY changed, reselect")
    }
    pub fn mailbox_deleted() -> Response {
        Response::bye("Selected mailbox was deleted")
    }
    pub fn log_in_first() -> Response {
        Response::bad("Log in first")
    }
    pub fn already_authenticated() -> Response {
        Response::bad("Already authenticated")
    }
    pub fn no_mailbox_selected() -> Response {
        Response::bad("No mailbox selected")
    }
    pub fn auth_cancelled() -> Response {
        Response::bad("Authentication cancelled")
    }
    pub fn invalid_base64() -> Response {
        Response::bad("Invalid base64")
    }
    pub fn invalid_sequence_number() -> Response {
        Response::bad("Invalid message sequence number")
    }
    pub fn authentication_failed() -> Response {
        Response::no(Code::AuthenticationFailed, "Authentication failed")
    }
    pub fn read_only() -> Response {
        Response::no(Code::ReadOnly, "Mailbox is read-only")
    }
    pub fn try_create() -> Response {
        Response::no(Code::TryCreate, "No such mailbox")
    }
    pub fn over_quota() -> Response {
        Response::no(Code::OverQuota, "Quota exceeded")
    }
    pub fn invalid_mailbox_name() -> Response {
        Response::no(Code::Cannot, "Invalid mailbox name")
    }
    pub fn bad_charset() -> Response {
        Response::no(
            Code::BadCharset(&["UTF-8", "US-ASCII"]),
            "Unsupported charset",
        )
    }
    /// `WHAT completed`, the usual tagged OK.
    pub fn completed(what: &str) -> Response {
        Response::new(Status::Ok, None, format!("{what} completed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_status_lines() {
        assert_eq!(
            r::completed("NOOP").tagged("a1"),
            b"a1 OK NOOP completed\r\n"
        );
        assert_eq!(
            Response::no(Code::TryCreate, "No such mailbox").tagged("t"),
            b"t NO [TRYCREATE] No such mailbox\r\n"
        );
        assert_eq!(
            Response::ok_code(Code::CopyUid(7, vec![1, 2, 3], vec![10, 11, 12]), "Moved")
                .untagged(),
            b"* OK [COPYUID 7 1:3 10:12] Moved\r\n"
        );
        assert_eq!(
            Response::ok_code(Code::PermanentFlags(String::new()), "Read-only mailbox").untagged(),
            b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n"
        );
        assert_eq!(
            r::bad_charset().tagged("x"),
            b"x NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n"
        );
        assert_eq!(
            r::timeout().untagged(),
            b"* BYE Autologout; idle for too long\r\n"
        );
    }

    #[test]
    fn text_cannot_inject_a_line() {
        let r = Response::bad("Syntax error: x\r\nA2 OK ü");
        assert_eq!(r.tagged("A1"), b"A1 BAD Syntax error: x  A2 OK ?\r\n");
    }
}
