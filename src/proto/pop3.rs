//! POP3 (RFC 1939) on the wire: command lines, `+OK`/`-ERR` replies with
//! RFC 2449/3206 response codes, and multi-line bodies with dot-stuffing and
//! CRLF line ends.

/// RFC 2449 §4: commands are at most 255 octets; SASL responses (RFC 5034)
/// may be longer.
pub const MAX_LINE: usize = 4096;

/// One command: upper-cased verb and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: String,
    pub args: Vec<String>,
}

/// Splits a command line. `None` for an empty line.
pub fn parse(line: &[u8]) -> Option<Command> {
    let text = String::from_utf8_lossy(super::smtp::line::trim_line_end(line)).into_owned();
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let verb = words.next()?.to_ascii_uppercase();
    Some(Command {
        verb,
        args: words.map(str::to_string).collect(),
    })
}

/// `+OK` or `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Err,
}

/// Extended response codes (RFC 2449 §8, RFC 3206), written in brackets
/// after `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The maildrop is locked by another session.
    InUse,
    /// Logins are refused for a while (too many failures).
    LoginDelay,
    /// A temporary problem on the server: try again later.
    SysTemp,
    /// Authentication failed or is not possible (RFC 3206 §5).
    Auth,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InUse => "IN-USE",
            Code::LoginDelay => "LOGIN-DELAY",
            Code::SysTemp => "SYS/TEMP",
            Code::Auth => "AUTH",
        }
    }
}

/// One status line. Multi-line bodies follow it (see [`multiline`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    pub code: Option<Code>,
    pub text: std::borrow::Cow<'static, str>,
}

impl Reply {
    pub fn ok(text: impl Into<std::borrow::Cow<'static, str>>) -> Reply {
        Reply {
            status: Status::Ok,
            code: None,
            text: text.into(),
        }
    }

    pub fn err(text: impl Into<std::borrow::Cow<'static, str>>) -> Reply {
        Reply {
            status: Status::Err,
            code: None,
            text: text.into(),
        }
    }

    pub fn coded(code: Code, text: &'static str) -> Reply {
        Reply {
            status: Status::Err,
            code: Some(code),
            text: text.into(),
        }
    }

    /// Renders the line; CR and LF are stripped from the text so a value
    /// echoed into a reply can never inject another line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.text.len() + 20);
        out.extend_from_slice(match self.status {
            Status::Ok => b"+OK",
            Status::Err => b"-ERR",
        });
        if let Some(code) = self.code {
            out.extend_from_slice(b" [");
            out.extend_from_slice(code.as_str().as_bytes());
            out.push(b']');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            out.extend(self.text.bytes().filter(|&b| b != b'\r' && b != b'\n'));
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

/// The fixed replies of the server, one constructor per situation.
pub mod r {
    use super::{Code, Reply};

    pub fn too_many_connections() -> Reply {
        Reply::coded(Code::SysTemp, "too many connections, try again later")
    }
    pub fn timeout() -> Reply {
        Reply::coded(Code::SysTemp, "autologout: idle too long")
    }
    pub fn shutting_down() -> Reply {
        Reply::coded(Code::SysTemp, "server shutting down, try again later")
    }
    pub fn too_many_errors() -> Reply {
        Reply::err("too many errors, closing connection")
    }
    pub fn line_too_long() -> Reply {
        Reply::err("line too long")
    }
    pub fn empty_command() -> Reply {
        Reply::err("empty command")
    }
    pub fn unexpected_input() -> Reply {
        Reply::err("unexpected input")
    }
    pub fn unknown_command() -> Reply {
        Reply::err("unknown command")
    }
    pub fn ok() -> Reply {
        Reply::ok("")
    }
    pub fn tls_active() -> Reply {
        Reply::err("TLS already active")
    }
    pub fn stls_unavailable() -> Reply {
        Reply::err("STLS not available here")
    }
    pub fn begin_tls() -> Reply {
        Reply::ok("begin TLS negotiation")
    }
    pub fn login_needs_tls() -> Reply {
        Reply::coded(Code::Auth, "plaintext login is disabled: use STLS first")
    }
    pub fn login_not_offered() -> Reply {
        Reply::coded(Code::Auth, "login is not offered here")
    }
    pub fn send_pass() -> Reply {
        Reply::ok("send PASS")
    }
    pub fn usage(text: &'static str) -> Reply {
        Reply::err(text)
    }
    pub fn user_first() -> Reply {
        Reply::err("send USER first")
    }
    pub fn sasl_mechanisms() -> Reply {
        Reply::ok("SASL mechanisms follow")
    }
    pub fn capabilities() -> Reply {
        Reply::ok("capability list follows")
    }
    pub fn listing() -> Reply {
        Reply::ok("listing follows")
    }
    pub fn mechanism_unknown() -> Reply {
        Reply::err("unrecognized authentication mechanism")
    }
    pub fn apop() -> Reply {
        Reply::err("APOP is not supported: use USER/PASS or AUTH over TLS")
    }
    pub fn log_in_first() -> Reply {
        Reply::err("log in first")
    }
    pub fn already_logged_in() -> Reply {
        Reply::err("already logged in")
    }
    pub fn auth_cancelled() -> Reply {
        Reply::err("authentication cancelled")
    }
    pub fn auth_undecodable() -> Reply {
        Reply::err("cannot decode the authentication data")
    }
    pub fn auth_failed() -> Reply {
        Reply::coded(Code::Auth, "authentication failed")
    }
    pub fn auth_tempfail() -> Reply {
        Reply::coded(Code::SysTemp, "temporary authentication failure")
    }
    pub fn login_delay() -> Reply {
        Reply::coded(Code::LoginDelay, "too many failed logins, try again later")
    }
    pub fn in_use() -> Reply {
        Reply::coded(
            Code::InUse,
            "the maildrop is already in use by another POP3 session",
        )
    }
    pub fn maildrop_unavailable() -> Reply {
        Reply::coded(
            Code::SysTemp,
            "the maildrop cannot be opened now, try again later",
        )
    }
    pub fn cannot_read() -> Reply {
        Reply::coded(Code::SysTemp, "cannot read the message now")
    }
    pub fn commit_failed() -> Reply {
        Reply::coded(Code::SysTemp, "some deleted messages were not removed")
    }
    pub fn invalid_number() -> Reply {
        Reply::err("invalid message number")
    }
    pub fn no_such_message() -> Reply {
        Reply::err("no such message")
    }
    pub fn message_deleted() -> Reply {
        Reply::err("message is deleted")
    }
}

/// Appends `data` as a multi-line response body: every line end becomes
/// CRLF, lines starting with `.` get another `.`, and `.\r\n` ends it. With
/// `top = Some(n)`, only the header and the first `n` body lines are sent.
pub fn multiline(out: &mut Vec<u8>, data: &[u8], top: Option<usize>) {
    out.reserve(data.len() + data.len() / 64 + 8);
    let mut in_body = false;
    let mut body_lines = 0usize;
    let mut rest = data;
    while !rest.is_empty() {
        if let Some(limit) = top
            && in_body
            && body_lines >= limit
        {
            break;
        }
        let (line, tail) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        if in_body {
            body_lines += 1;
        } else if line.is_empty() {
            in_body = true;
        }
        rest = tail;
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            parse(b"retr 1\r\n"),
            Some(Command {
                verb: "RETR".into(),
                args: vec!["1".into()]
            })
        );
        assert_eq!(parse(b"\r\n"), None);
        assert_eq!(parse(b"TOP 1  5\n").expect("top").args, vec!["1", "5"]);
    }

    #[test]
    fn multiline_bodies() {
        let mut out = Vec::new();
        multiline(&mut out, b"Subject: x\r\n\r\n.dot\r\nline\nlast", None);
        assert_eq!(out, b"Subject: x\r\n\r\n..dot\r\nline\r\nlast\r\n.\r\n");
        let mut out = Vec::new();
        multiline(&mut out, b"A: 1\r\nB: 2\r\n\r\nb1\r\nb2\r\nb3\r\n", Some(2));
        assert_eq!(out, b"A: 1\r\nB: 2\r\n\r\nb1\r\nb2\r\n.\r\n");
        let mut out = Vec::new();
        multiline(&mut out, b"A: 1\r\n\r\nb1\r\n", Some(0));
        assert_eq!(out, b"A: 1\r\n\r\n.\r\n");
        let mut out = Vec::new();
        multiline(&mut out, b"", None);
        assert_eq!(out, b".\r\n");
    }

    #[test]
    fn replies_cannot_inject() {
        assert_eq!(
            Reply::err(String::from("a\r\n+OK b")).to_bytes(),
            b"-ERR a+OK b\r\n"
        );
    }

    #[test]
    fn replies_carry_codes() {
        assert_eq!(
            r::in_use().to_bytes(),
            b"-ERR [IN-USE] the maildrop is already in use by another POP3 session\r\n"
        );
        assert_eq!(r::ok().to_bytes(), b"+OK\r\n");
        assert_eq!(
            r::too_many_connections().to_bytes(),
            b"-ERR [SYS/TEMP] too many connections, try again later\r\n"
        );
    }
}
