//! ManageSieve (RFC 5804) on the wire: commands made of an atom and
//! arguments (atoms, quoted strings, literals), responses `OK`/`NO`/`BYE`
//! with response codes, and strings written quoted or as literals.
//!
//! The [`Framer`] is incremental and bounded: the non-literal part of a
//! command is capped at [`MAX_LINE`], and the literals of one command
//! together at the framer's literal limit (the largest script). A literal
//! over the limit is never buffered: its bytes are skipped as they arrive
//! and the command is reported as [`Framed::TooBig`]. A line over the cap is
//! reported at once and the rest of it skipped.
//!
//! Literals: RFC 5804 §4 has clients send non-synchronizing literals
//! `{N+}`; a synchronizing `{N}` is accepted the same way (ManageSieve has
//! no continuation response, so the client cannot be waiting for one).

use std::borrow::Cow;

/// The non-literal bytes of one command (RFC 5804 sets no limit; a
/// command's words and short strings fit easily).
pub const MAX_LINE: usize = 8 * 1024;
/// Arguments of one command (RENAMESCRIPT takes two; SASL three).
pub const MAX_ARGS: usize = 8;
/// Quoted strings are at most 1024 octets (RFC 5804 §4 `quoted`).
pub const MAX_QUOTED: usize = 1024;

/// One argument, or the command name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A bare word: command names and numbers.
    Atom(String),
    /// A quoted string or a literal, as bytes.
    Str(Vec<u8>),
}

impl Arg {
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Arg::Str(s) => Some(s),
            Arg::Atom(_) => None,
        }
    }
}

/// What the framer found at the start of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// More bytes are needed.
    Incomplete,
    /// A whole command (or a SASL response: one string).
    Command(Vec<Arg>),
    /// An empty line.
    Empty,
    /// A command that is not well-formed (its line has been consumed).
    Invalid(&'static str),
    /// A literal beyond the limit: it was skipped without being kept.
    /// `verb` is the command's name, if it had one.
    TooBig { verb: Option<String> },
    /// The line went past [`MAX_LINE`]; the rest of it is skipped.
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Nothing is being skipped.
    None,
    /// Literal bytes still to drop, then the rest of the line.
    Literal(u64),
    /// Up to and including the next LF.
    Line,
}

/// Splits the input into commands; lives as long as the connection.
#[derive(Debug)]
pub struct Framer {
    max_literal: u64,
    skip: Skip,
    /// The input length the command being read needs at least (a literal
    /// not yet complete): nothing is parsed again before that.
    need: usize,
}

/// One scan of the buffer.
enum Scan {
    Incomplete {
        need: usize,
    },
    Done {
        len: usize,
        framed: Framed,
    },
    /// Start skipping: `len` bytes consumed, then the skip.
    Skip {
        len: usize,
        skip: Skip,
        framed: Framed,
    },
}

impl Framer {
    pub fn new(max_literal: u64) -> Framer {
        Framer {
            max_literal,
            skip: Skip::None,
            need: 0,
        }
    }

    /// The bytes the current command still waits for (a literal), to size
    /// the read buffer.
    pub fn wanted(&self, buffered: usize) -> usize {
        match self.skip {
            Skip::Literal(n) => usize::try_from(n).unwrap_or(usize::MAX),
            _ => self.need.saturating_sub(buffered),
        }
    }

    /// The next command at the start of `input`; consumed bytes are
    /// removed.
    pub fn next(&mut self, input: &mut Vec<u8>) -> Framed {
        loop {
            match self.skip {
                Skip::None => break,
                Skip::Literal(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(input.len());
                    input.drain(..take);
                    let left = n - take as u64;
                    if left > 0 {
                        self.skip = Skip::Literal(left);
                        return Framed::Incomplete;
                    }
                    self.skip = Skip::Line;
                }
                Skip::Line => match input.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        input.drain(..=i);
                        self.skip = Skip::None;
                    }
                    None => {
                        input.clear();
                        return Framed::Incomplete;
                    }
                },
            }
        }
        if input.len() < self.need {
            return Framed::Incomplete;
        }
        match scan(input, self.max_literal) {
            Scan::Incomplete { need } => {
                self.need = need;
                Framed::Incomplete
            }
            Scan::Done { len, framed } => {
                self.need = 0;
                input.drain(..len);
                framed
            }
            Scan::Skip { len, skip, framed } => {
                // The skipped part is dropped by the next calls, as it
                // arrives.
                self.need = 0;
                input.drain(..len.min(input.len()));
                self.skip = skip;
                framed
            }
        }
    }
}

fn is_atom_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'{' | b'}' | b'(' | b')' | b'\\' | b'%' | b'*')
}

/// Reads one command from the start of `buf`.
fn scan(buf: &[u8], max_literal: u64) -> Scan {
    let mut pos = 0;
    let mut args: Vec<Arg> = Vec::new();
    // Where the current run of non-literal bytes started.
    let mut run_start = 0;
    let mut literal_total: u64 = 0;
    let too_long = |pos: usize, run_start: usize| pos - run_start > MAX_LINE;
    loop {
        if too_long(pos, run_start) {
            return Scan::Skip {
                len: pos,
                skip: Skip::Line,
                framed: Framed::LineTooLong,
            };
        }
        let Some(&c) = buf.get(pos) else {
            return incomplete_or_too_long(buf, pos, run_start);
        };
        match c {
            b' ' => pos += 1,
            b'\r' | b'\n' => {
                let end = if c == b'\r' {
                    match buf.get(pos + 1) {
                        None => return Scan::Incomplete { need: pos + 2 },
                        Some(b'\n') => pos + 2,
                        Some(_) => return invalid_line(buf, pos, "bare CR in a command"),
                    }
                } else {
                    pos + 1
                };
                let framed = if args.is_empty() {
                    Framed::Empty
                } else {
                    Framed::Command(args)
                };
                return Scan::Done { len: end, framed };
            }
            _ if args.len() > MAX_ARGS => {
                return invalid_line(buf, pos, "too many arguments");
            }
            b'"' => {
                let mut s = Vec::new();
                let mut i = pos + 1;
                loop {
                    let Some(&b) = buf.get(i) else {
                        return incomplete_or_too_long(buf, i, run_start);
                    };
                    match b {
                        b'"' => break,
                        b'\\' => match buf.get(i + 1) {
                            None => return incomplete_or_too_long(buf, i + 1, run_start),
                            Some(&e @ (b'"' | b'\\')) => {
                                s.push(e);
                                i += 2;
                            }
                            Some(_) => {
                                return invalid_line(buf, i, "bad escape in a quoted string");
                            }
                        },
                        b'\r' | b'\n' | 0 => {
                            return invalid_line(buf, i, "unterminated quoted string");
                        }
                        _ => {
                            s.push(b);
                            i += 1;
                        }
                    }
                    if s.len() > MAX_QUOTED {
                        return invalid_line(buf, i, "quoted string too long");
                    }
                }
                args.push(Arg::Str(s));
                pos = i + 1;
            }
            b'{' => {
                // {N} or {N+} then CRLF.
                let Some(close) = buf[pos..].iter().position(|&b| b == b'}') else {
                    if buf.len() - pos > 24 {
                        return invalid_line(buf, pos, "bad literal");
                    }
                    return incomplete_or_too_long(buf, buf.len(), run_start);
                };
                let inner = &buf[pos + 1..pos + close];
                let digits = inner.strip_suffix(b"+").unwrap_or(inner);
                if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit)
                {
                    return invalid_line(buf, pos, "bad literal");
                }
                let n: u64 = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(u64::MAX);
                let after = pos + close + 1;
                let body = match (buf.get(after), buf.get(after + 1)) {
                    (Some(b'\r'), Some(b'\n')) => after + 2,
                    (Some(b'\n'), _) => after + 1,
                    (None, _) | (Some(b'\r'), None) => {
                        return Scan::Incomplete { need: after + 2 };
                    }
                    _ => return invalid_line(buf, after, "a literal's size must end the line"),
                };
                literal_total = literal_total.saturating_add(n);
                if literal_total > max_literal {
                    let verb = match args.first() {
                        Some(Arg::Atom(a)) => Some(a.to_ascii_uppercase()),
                        _ => None,
                    };
                    return Scan::Skip {
                        len: body,
                        skip: Skip::Literal(n),
                        framed: Framed::TooBig { verb },
                    };
                }
                let end = body + n as usize;
                if buf.len() < end {
                    return Scan::Incomplete { need: end };
                }
                args.push(Arg::Str(buf[body..end].to_vec()));
                pos = end;
                run_start = end;
            }
            _ if is_atom_byte(c) => {
                let end = buf[pos..]
                    .iter()
                    .position(|&b| !is_atom_byte(b))
                    .map_or(buf.len(), |i| pos + i);
                if end == buf.len() {
                    return incomplete_or_too_long(buf, end, run_start);
                }
                args.push(Arg::Atom(
                    String::from_utf8_lossy(&buf[pos..end]).into_owned(),
                ));
                pos = end;
            }
            _ => return invalid_line(buf, pos, "unexpected character in a command"),
        }
    }
}

fn incomplete_or_too_long(buf: &[u8], pos: usize, run_start: usize) -> Scan {
    if pos - run_start > MAX_LINE {
        return Scan::Skip {
            len: buf.len(),
            skip: Skip::Line,
            framed: Framed::LineTooLong,
        };
    }
    // Nothing is parsed again until at least one more byte arrives.
    Scan::Incomplete {
        need: buf.len() + 1,
    }
}

/// The command is malformed: drop its line (up to the next LF).
fn invalid_line(buf: &[u8], pos: usize, why: &'static str) -> Scan {
    match buf[pos..].iter().position(|&b| b == b'\n') {
        Some(i) => Scan::Done {
            len: pos + i + 1,
            framed: Framed::Invalid(why),
        },
        None => Scan::Skip {
            len: buf.len(),
            skip: Skip::Line,
            framed: Framed::Invalid(why),
        },
    }
}

/// `OK`, `NO` or `BYE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bye,
}

/// Response codes (RFC 5804 §1.3), written in parentheses after the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The mechanism needs TLS first.
    EncryptNeeded,
    /// Too many scripts.
    QuotaMaxScripts,
    /// The script is too large.
    QuotaMaxSize,
    /// A temporary failure: try again later.
    TryLater,
    /// The active script cannot be deleted.
    Active,
    /// No such script.
    Nonexistent,
    /// A script with the new name exists.
    AlreadyExists,
    /// Authentication failed for a reason a client may show.
    AuthTooWeak,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::EncryptNeeded => "ENCRYPT-NEEDED",
            Code::QuotaMaxScripts => "QUOTA/MAXSCRIPTS",
            Code::QuotaMaxSize => "QUOTA/MAXSIZE",
            Code::TryLater => "TRYLATER",
            Code::Active => "ACTIVE",
            Code::Nonexistent => "NONEXISTENT",
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::AuthTooWeak => "AUTH-TOO-WEAK",
        }
    }
}

/// One response line: status, optional code (or the `TAG` of NOOP), text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub code: Option<Code>,
    /// `(TAG "…")` echoing NOOP's argument (RFC 5804 §2.11).
    pub tag: Option<Vec<u8>>,
    pub text: Cow<'static, str>,
}

impl Response {
    fn new(status: Status, code: Option<Code>, text: impl Into<Cow<'static, str>>) -> Response {
        Response {
            status,
            code,
            tag: None,
            text: text.into(),
        }
    }
    pub fn ok(text: impl Into<Cow<'static, str>>) -> Response {
        Response::new(Status::Ok, None, text)
    }
    pub fn no(text: impl Into<Cow<'static, str>>) -> Response {
        Response::new(Status::No, None, text)
    }
    pub fn bye(text: impl Into<Cow<'static, str>>) -> Response {
        Response::new(Status::Bye, None, text)
    }
    pub fn coded(status: Status, code: Code, text: impl Into<Cow<'static, str>>) -> Response {
        Response::new(status, Some(code), text)
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.status {
            Status::Ok => b"OK",
            Status::No => b"NO",
            Status::Bye => b"BYE",
        });
        if let Some(code) = self.code {
            out.extend_from_slice(b" (");
            out.extend_from_slice(code.as_str().as_bytes());
            out.push(b')');
        } else if let Some(tag) = &self.tag {
            out.extend_from_slice(b" (TAG ");
            write_string(out, tag);
            out.push(b')');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            write_string(out, self.text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

/// A string as the server sends it: quoted when it can be (short, no CR,
/// LF or NUL), else a literal `{N}` (RFC 5804 §4 `literal-s2c`). Either way
/// the bytes cannot end the line early, so nothing echoed can inject a
/// response.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= MAX_QUOTED && !s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// `"KEY" "value"` or `"KEY"`: one capability line (RFC 5804 §1.7).
pub fn capability(out: &mut Vec<u8>, key: &str, value: Option<&str>) {
    write_string(out, key.as_bytes());
    if let Some(v) = value {
        out.push(b' ');
        write_string(out, v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The fixed responses of the server, one constructor per situation.
pub mod r {
    use super::{Code, Response, Status};

    pub fn too_many_connections() -> Response {
        Response::coded(
            Status::Bye,
            Code::TryLater,
            "too many connections, try again later",
        )
    }
    pub fn timeout() -> Response {
        Response::bye("disconnected for inactivity")
    }
    pub fn shutting_down() -> Response {
        Response::coded(
            Status::Bye,
            Code::TryLater,
            "server shutting down, try again later",
        )
    }
    pub fn too_many_errors() -> Response {
        Response::bye("too many errors, closing connection")
    }
    pub fn line_too_long() -> Response {
        Response::no("line too long")
    }
    pub fn literal_too_big() -> Response {
        Response::no("literal too large")
    }
    pub fn script_too_big(max: u64) -> Response {
        Response::coded(
            Status::No,
            Code::QuotaMaxSize,
            format!("scripts are limited to {max} bytes"),
        )
    }
    pub fn too_many_scripts(max: u32) -> Response {
        Response::coded(
            Status::No,
            Code::QuotaMaxScripts,
            format!("at most {max} scripts per user"),
        )
    }
    pub fn malformed(why: &'static str) -> Response {
        Response::no(why)
    }
    pub fn unknown_command() -> Response {
        Response::no("unknown command")
    }
    pub fn usage(text: &'static str) -> Response {
        Response::no(text)
    }
    pub fn log_in_first() -> Response {
        Response::no("log in first")
    }
    pub fn already_logged_in() -> Response {
        Response::no("already logged in")
    }
    pub fn ok() -> Response {
        Response::ok("")
    }
    pub fn done() -> Response {
        Response::ok("done")
    }
    pub fn logout() -> Response {
        Response::ok("logout completed")
    }
    pub fn begin_tls() -> Response {
        Response::ok("begin TLS negotiation now")
    }
    pub fn tls_active() -> Response {
        Response::no("TLS already active")
    }
    pub fn starttls_unavailable() -> Response {
        Response::no("STARTTLS not available here")
    }
    pub fn login_needs_tls() -> Response {
        Response::coded(
            Status::No,
            Code::EncryptNeeded,
            "plaintext login is disabled: use STARTTLS first",
        )
    }
    pub fn login_not_offered() -> Response {
        Response::no("login is not offered here")
    }
    pub fn mechanism_unknown() -> Response {
        Response::no("unsupported authentication mechanism")
    }
    pub fn auth_cancelled() -> Response {
        Response::no("authentication cancelled")
    }
    pub fn auth_undecodable() -> Response {
        Response::no("cannot decode the authentication data")
    }
    pub fn auth_failed() -> Response {
        Response::no("authentication failed")
    }
    pub fn auth_tempfail() -> Response {
        Response::coded(
            Status::No,
            Code::TryLater,
            "temporary authentication failure",
        )
    }
    pub fn login_delay() -> Response {
        Response::coded(
            Status::Bye,
            Code::TryLater,
            "too many failed logins, try again later",
        )
    }
    pub fn logged_in() -> Response {
        Response::ok("logged in")
    }
    pub fn storage_unavailable() -> Response {
        Response::coded(
            Status::No,
            Code::TryLater,
            "the scripts cannot be reached now",
        )
    }
    pub fn no_such_script() -> Response {
        Response::coded(
            Status::No,
            Code::Nonexistent,
            "there is no script by that name",
        )
    }
    pub fn script_active() -> Response {
        Response::coded(
            Status::No,
            Code::Active,
            "the active script cannot be deleted",
        )
    }
    pub fn script_exists() -> Response {
        Response::coded(
            Status::No,
            Code::AlreadyExists,
            "a script by that name already exists",
        )
    }
    pub fn bad_name() -> Response {
        Response::no("invalid script name")
    }
    pub fn not_utf8() -> Response {
        Response::no("a script must be UTF-8")
    }
    pub fn bad_number() -> Response {
        Response::no("invalid number")
    }
    pub fn unauthenticated() -> Response {
        Response::ok("logged out, log in again")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(framer: &mut Framer, input: &mut Vec<u8>) -> Vec<Framed> {
        let mut out = Vec::new();
        loop {
            match framer.next(input) {
                Framed::Incomplete => return out,
                f => out.push(f),
            }
        }
    }

    fn atom(s: &str) -> Arg {
        Arg::Atom(s.into())
    }
    fn st(s: &[u8]) -> Arg {
        Arg::Str(s.to_vec())
    }

    #[test]
    fn parses_atoms_quoted_and_literals() {
        let mut f = Framer::new(1000);
        let mut input =
            b"PUTSCRIPT \"my \\\"x\\\\\" {9+}\r\nkeep;\r\n\r\n\r\nlistscripts\nAUTHENTICATE \"PLAIN\" {4}\r\nabcd\r\n"
                .to_vec();
        let got = frame_all(&mut f, &mut input);
        assert_eq!(
            got,
            [
                Framed::Command(vec![
                    atom("PUTSCRIPT"),
                    st(b"my \"x\\"),
                    st(b"keep;\r\n\r\n")
                ]),
                Framed::Command(vec![atom("listscripts")]),
                Framed::Command(vec![atom("AUTHENTICATE"), st(b"PLAIN"), st(b"abcd")]),
            ]
        );
        assert!(input.is_empty());
    }

    #[test]
    fn waits_for_more_at_every_split() {
        let whole = b"PUTSCRIPT \"a\" {12+}\r\nrequire \"x\";\r\nNOOP\r\n";
        for cut in 0..whole.len() {
            let mut f = Framer::new(100);
            let mut input = whole[..cut].to_vec();
            let mut got = frame_all(&mut f, &mut input);
            input.extend_from_slice(&whole[cut..]);
            got.extend(frame_all(&mut f, &mut input));
            assert_eq!(got.len(), 2, "cut at {cut}: {got:?}");
            assert_eq!(
                got[0],
                Framed::Command(vec![atom("PUTSCRIPT"), st(b"a"), st(b"require \"x\";")])
            );
            assert_eq!(got[1], Framed::Command(vec![atom("NOOP")]));
        }
    }

    #[test]
    fn a_literal_over_the_limit_is_skipped_not_kept() {
        let mut f = Framer::new(10);
        let mut input = b"PUTSCRIPT \"a\" {100000+}\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 1000]);
        assert_eq!(
            f.next(&mut input),
            Framed::TooBig {
                verb: Some("PUTSCRIPT".into())
            }
        );
        assert_eq!(f.next(&mut input), Framed::Incomplete);
        assert!(input.is_empty());
        assert_eq!(f.wanted(0), 99_000);
        for _ in 0..99 {
            input.extend_from_slice(&[b'x'; 1000]);
            assert_eq!(f.next(&mut input), Framed::Incomplete);
            assert!(input.is_empty());
        }
        input.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(f.next(&mut input), Framed::Command(vec![atom("NOOP")]));
        // Several literals of one command count together.
        let mut f = Framer::new(10);
        let mut input = b"X {6+}\r\nabcdef {6+}\r\nabcdef\r\n".to_vec();
        assert_eq!(
            frame_all(&mut f, &mut input),
            [Framed::TooBig {
                verb: Some("X".into())
            }]
        );
    }

    #[test]
    fn an_endless_line_is_reported_and_skipped() {
        let mut f = Framer::new(10);
        let mut input = vec![b'A'; MAX_LINE + 10];
        assert_eq!(f.next(&mut input), Framed::LineTooLong);
        assert!(input.is_empty());
        for _ in 0..10 {
            input.extend_from_slice(&[b'A'; 4096]);
            assert_eq!(f.next(&mut input), Framed::Incomplete);
            assert!(input.is_empty());
        }
        input.extend_from_slice(b"AAA\r\nNOOP\r\n");
        assert_eq!(f.next(&mut input), Framed::Command(vec![atom("NOOP")]));
        // A quoted string that never ends.
        let mut f = Framer::new(10);
        let mut input = b"X \"".to_vec();
        input.extend_from_slice(&[b'a'; 5000]);
        input.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(
            frame_all(&mut f, &mut input),
            [
                Framed::Invalid("quoted string too long"),
                Framed::Command(vec![atom("NOOP")])
            ]
        );
    }

    #[test]
    fn garbage_is_invalid_not_fatal() {
        let mut f = Framer::new(10);
        let mut input =
            b"\x00\x01\x02\r\nX {abc}\r\nX {5+}junk\r\nX \"a\\q\"\r\nX \"a\rb\"\r\nX {99999999999}\r\nA\rB\r\n\r\nNOOP\r\n"
                .to_vec();
        let got = frame_all(&mut f, &mut input);
        assert_eq!(got.last(), Some(&Framed::Command(vec![atom("NOOP")])));
        assert!(got[..got.len() - 1].iter().all(|g| matches!(
            g,
            Framed::Invalid(_) | Framed::Empty | Framed::TooBig { .. }
        )));
    }

    #[test]
    fn responses_and_strings() {
        assert_eq!(r::ok().to_bytes(), b"OK\r\n");
        assert_eq!(
            r::no_such_script().to_bytes(),
            b"NO (NONEXISTENT) \"there is no script by that name\"\r\n"
        );
        assert_eq!(
            r::script_too_big(10).to_bytes(),
            b"NO (QUOTA/MAXSIZE) \"scripts are limited to 10 bytes\"\r\n"
        );
        assert_eq!(
            Response::no(String::from("line 2: a \"b\"\r\nOK")).to_bytes(),
            b"NO {17}\r\nline 2: a \"b\"\r\nOK\r\n"
        );
        let mut tagged = r::done();
        tagged.tag = Some(b"t1".to_vec());
        assert_eq!(tagged.to_bytes(), b"OK (TAG \"t1\") \"done\"\r\n");
        let mut out = Vec::new();
        write_string(&mut out, b"a\\\"");
        assert_eq!(out, b"\"a\\\\\\\"\"");
        let mut out = Vec::new();
        capability(&mut out, "VERSION", Some("1.0"));
        capability(&mut out, "UNAUTHENTICATE", None);
        assert_eq!(out, b"\"VERSION\" \"1.0\"\r\n\"UNAUTHENTICATE\"\r\n");
    }
}
