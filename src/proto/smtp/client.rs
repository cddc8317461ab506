//! The client side of SMTP on the wire: reading the server's replies
//! (bounded, "need more" kept apart from "invalid"), the capabilities of an
//! EHLO reply (parsed by smtp-proto), and the commands the client writes —
//! `MAIL FROM` / `RCPT TO` with their ESMTP parameters (SIZE, BODY,
//! SMTPUTF8, and the DSN parameters of RFC 3461 in xtext), AUTH PLAIN/LOGIN,
//! and the dot-stuffed body. Pure functions over bytes; no I/O.

use super::reply::{Enhanced, Reply};

/// Longest reply line accepted, line end included. RFC 5321 §4.5.3.1.5
/// allows 512 octets; real servers exceed it a little (long EHLO keywords,
/// verbose rejections), so some slack before we call it a protocol error.
pub const MAX_REPLY_LINE: usize = 2000;

/// Most lines in one (multi-line) reply. An EHLO reply has a dozen or two.
pub const MAX_REPLY_LINES: usize = 100;

/// Why bytes from the server are not a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line longer than [`MAX_REPLY_LINE`].
    LineTooLong,
    /// More than [`MAX_REPLY_LINES`] lines.
    TooManyLines,
    /// Not `DDD SP text` / `DDD-text`, or the lines of one reply disagree on
    /// the code.
    Syntax(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::LineTooLong => {
                write!(f, "reply line longer than {MAX_REPLY_LINE} bytes")
            }
            ReplyError::TooManyLines => {
                write!(f, "reply of more than {MAX_REPLY_LINES} lines")
            }
            ReplyError::Syntax(what) => write!(f, "malformed reply: {what}"),
        }
    }
}

/// What [`parse_reply`] found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole reply occupies `buf[..len]`.
    Reply { reply: Reply, len: usize },
    /// The reply is not complete yet and still within the limits.
    NeedMore,
}

/// Reads one reply from the start of `buf`. The enhanced status code
/// (RFC 2034) is taken from the first line when its class matches the
/// reply's, and stripped from every line of the text. Lines may end in CRLF
/// or, leniently, a bare LF.
pub fn parse_reply(buf: &[u8]) -> Result<Parsed, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    let mut lines: Vec<&[u8]> = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().take(MAX_REPLY_LINE).position(|&b| b == b'\n') else {
            return if rest.len() >= MAX_REPLY_LINE {
                Err(ReplyError::LineTooLong)
            } else if !rest.is_empty() {
                // Reject garbage early rather than waiting for a line end.
                check_prefix(rest, code).map(|_| Parsed::NeedMore)
            } else {
                Ok(Parsed::NeedMore)
            };
        };
        let mut line = &rest[..nl];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let (this_code, last) = check_prefix(line, code)?;
        if line.len() < 3 {
            return Err(ReplyError::Syntax("line shorter than a reply code".into()));
        }
        code = Some(this_code);
        if lines.len() == MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        lines.push(line.get(4..).unwrap_or(b""));
        pos += nl + 1;
        if last {
            return Ok(Parsed::Reply {
                reply: build(this_code, &lines),
                len: pos,
            });
        }
    }
}

/// Checks the (possibly partial) start of a line: three digits, then a
/// space, a hyphen, or the line end. Returns the code and whether this is
/// the last line; for a partial line the second value is meaningless.
fn check_prefix(line: &[u8], expected: Option<u16>) -> Result<(u16, bool), ReplyError> {
    let digits = &line[..line.len().min(3)];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(ReplyError::Syntax(format!(
            "expected a three-digit code, got {:?}",
            String::from_utf8_lossy(&line[..line.len().min(40)])
        )));
    }
    if digits.len() < 3 {
        return Ok((0, false));
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..600).contains(&code) && !(100..200).contains(&code) {
        return Err(ReplyError::Syntax(format!(
            "reply code {code} out of range"
        )));
    }
    if let Some(e) = expected
        && e != code
    {
        return Err(ReplyError::Syntax(format!(
            "continuation line with code {code} in a {e} reply"
        )));
    }
    match line.get(3) {
        None => Ok((code, true)),
        Some(b' ') => Ok((code, true)),
        Some(b'-') => Ok((code, false)),
        Some(_) => Err(ReplyError::Syntax(
            "code not followed by a space or a hyphen".into(),
        )),
    }
}

fn build(code: u16, raw: &[&[u8]]) -> Reply {
    let class = (code / 100) as u8;
    let texts: Vec<String> = raw
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let enhanced = texts.first().and_then(|t| parse_enhanced(t, class));
    let lines = texts
        .into_iter()
        .map(|t| match enhanced {
            Some(e) => match t.split_once(' ') {
                Some((head, tail)) if parse_enhanced(head, class) == Some(e) => tail.to_string(),
                None if parse_enhanced(&t, class) == Some(e) => String::new(),
                _ => t,
            },
            None => t,
        })
        .collect();
    Reply {
        code,
        enhanced,
        lines,
    }
}

/// `class.subject.detail` at the start of `text`, class matching the reply.
fn parse_enhanced(text: &str, class: u8) -> Option<Enhanced> {
    let word = text.split(' ').next()?;
    let mut parts = word.split('.');
    let c: u8 = parts.next()?.parse().ok()?;
    let s: u16 = parts.next()?.parse().ok()?;
    let d: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || c != class || !matches!(c, 2 | 4 | 5) || s > 999 || d > 999 {
        return None;
    }
    Some(Enhanced(c, s, d))
}

/// The enhanced code a reply carries, or one derived from its basic code
/// when the server sent none (RFC 3463: X.0.0).
pub fn enhanced_or_derived(reply: &Reply) -> Enhanced {
    reply.enhanced.unwrap_or(match reply.code / 100 {
        2 => Enhanced(2, 0, 0),
        4 => Enhanced(4, 0, 0),
        _ => Enhanced(5, 0, 0),
    })
}

/// What the server offers in its EHLO reply, as far as the client cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `SIZE n` (RFC 1870); `None` when not offered or offered without a
    /// limit (`SIZE` or `SIZE 0`).
    pub size: Option<u64>,
    /// `SIZE` offered at all (with or without a limit): `MAIL FROM` then
    /// carries `SIZE=` so the server can refuse before the data.
    pub size_param: bool,
    pub pipelining: bool,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    pub enhanced_status_codes: bool,
    pub chunking: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
    /// False after a HELO fallback: no extension may be used.
    pub extended: bool,
}

impl Capabilities {
    /// From a 250 reply to EHLO (already read and bounded by
    /// [`parse_reply`]): smtp-proto parses the keywords.
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut wire = Vec::new();
        let n = reply.lines.len().max(1);
        for i in 0..n {
            let text = reply.lines.get(i).map_or("", String::as_str);
            let sep = if i + 1 == n { ' ' } else { '-' };
            wire.extend_from_slice(format!("250{sep}{text}\r\n").as_bytes());
        }
        let Ok(ehlo) = smtp_proto::EhloResponse::parse(&mut wire.iter()) else {
            // A keyword smtp-proto cannot parse: fall back to the bare
            // minimum, which is always safe (RFC 5321 without extensions).
            return Capabilities {
                extended: true,
                ..Capabilities::default()
            };
        };
        let has = |flag: u32| ehlo.capabilities & flag != 0;
        Capabilities {
            size: (has(smtp_proto::EXT_SIZE) && ehlo.size > 0).then_some(ehlo.size as u64),
            size_param: has(smtp_proto::EXT_SIZE),
            pipelining: has(smtp_proto::EXT_PIPELINING),
            eightbitmime: has(smtp_proto::EXT_8BIT_MIME),
            smtputf8: has(smtp_proto::EXT_SMTP_UTF8),
            dsn: has(smtp_proto::EXT_DSN),
            starttls: has(smtp_proto::EXT_START_TLS),
            enhanced_status_codes: has(smtp_proto::EXT_ENHANCED_STATUS_CODES),
            chunking: has(smtp_proto::EXT_CHUNKING),
            auth_plain: ehlo.auth_mechanisms & smtp_proto::AUTH_PLAIN != 0,
            auth_login: ehlo.auth_mechanisms & smtp_proto::AUTH_LOGIN != 0,
            extended: true,
        }
    }

    /// After `HELO`: plain RFC 5321.
    pub fn helo() -> Capabilities {
        Capabilities::default()
    }
}

/// `BODY=` of RFC 6152.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// `RET=` of RFC 3461.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Headers,
}

/// ESMTP parameters of `MAIL FROM`; a field is written only when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams<'a> {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<&'a str>,
}

/// `NOTIFY=` of RFC 3461 §4.1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// ESMTP parameters of `RCPT TO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams<'a> {
    pub notify: Option<Notify>,
    /// The original recipient, as an address (the type is chosen here).
    pub orcpt: Option<&'a str>,
}

/// A command line is never longer than this; an address or parameter that
/// would make it longer is a caller error caught before writing.
pub const MAX_COMMAND: usize = 2048;

/// Why a command cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// CR, LF, `<`, `>` or a space inside an address, or a control byte.
    BadAddress(String),
    TooLong,
}

fn check_address(a: &str) -> Result<(), CommandError> {
    if a.bytes()
        .any(|b| b.is_ascii_control() || matches!(b, b'<' | b'>' | b' '))
    {
        return Err(CommandError::BadAddress(a.escape_debug().to_string()));
    }
    Ok(())
}

fn finish(mut line: String) -> Result<Vec<u8>, CommandError> {
    line.push_str("\r\n");
    if line.len() > MAX_COMMAND {
        return Err(CommandError::TooLong);
    }
    Ok(line.into_bytes())
}

pub fn ehlo(host: &str) -> Vec<u8> {
    format!("EHLO {}\r\n", sanitize(host)).into_bytes()
}

pub fn helo(host: &str) -> Vec<u8> {
    format!("HELO {}\r\n", sanitize(host)).into_bytes()
}

fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && *c != ' ').collect()
}

pub const STARTTLS: &[u8] = b"STARTTLS\r\n";
pub const DATA: &[u8] = b"DATA\r\n";
pub const RSET: &[u8] = b"RSET\r\n";
pub const QUIT: &[u8] = b"QUIT\r\n";

/// `MAIL FROM:<sender> params`; `""` is the null sender.
pub fn mail_from(sender: &str, p: &MailParams<'_>) -> Result<Vec<u8>, CommandError> {
    check_address(sender)?;
    let mut line = format!("MAIL FROM:<{sender}>");
    if let Some(size) = p.size {
        line.push_str(&format!(" SIZE={size}"));
    }
    match p.body {
        Some(Body::EightBitMime) => line.push_str(" BODY=8BITMIME"),
        Some(Body::SevenBit) => line.push_str(" BODY=7BIT"),
        None => {}
    }
    if p.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    match p.ret {
        Some(Ret::Full) => line.push_str(" RET=FULL"),
        Some(Ret::Headers) => line.push_str(" RET=HDRS"),
        None => {}
    }
    if let Some(envid) = p.envid {
        line.push_str(" ENVID=");
        line.push_str(&xtext(envid));
    }
    finish(line)
}

/// `RCPT TO:<address> params`.
pub fn rcpt_to(address: &str, p: &RcptParams<'_>) -> Result<Vec<u8>, CommandError> {
    check_address(address)?;
    let mut line = format!("RCPT TO:<{address}>");
    if let Some(n) = p.notify {
        let mut words = Vec::new();
        if n.never {
            words.push("NEVER");
        } else {
            if n.success {
                words.push("SUCCESS");
            }
            if n.failure {
                words.push("FAILURE");
            }
            if n.delay {
                words.push("DELAY");
            }
        }
        if !words.is_empty() {
            line.push_str(" NOTIFY=");
            line.push_str(&words.join(","));
        }
    }
    if let Some(orcpt) = p.orcpt {
        if orcpt.is_ascii() {
            line.push_str(" ORCPT=rfc822;");
            line.push_str(&xtext(orcpt));
        } else {
            line.push_str(" ORCPT=utf-8;");
            line.push_str(&utf8_addr_xtext(orcpt));
        }
    }
    finish(line)
}

/// xtext (RFC 3461 §4): `+` and `=`, controls, space and non-ASCII as `+HH`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// utf-8-addr-xtext (RFC 6533 §3): non-ASCII kept as `\x{HEX}` so the
/// parameter stays ASCII for any peer.
fn utf8_addr_xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_graphic() && c != '+' && c != '=' && c != '\\' {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }
    out
}

/// `AUTH PLAIN <initial response>` (RFC 4616, RFC 4954 §4).
pub fn auth_plain(user: &str, password: &str) -> Vec<u8> {
    let mut raw = Vec::with_capacity(user.len() + password.len() + 2);
    raw.push(0);
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    format!("AUTH PLAIN {}\r\n", crate::proto::sasl::base64_encode(&raw)).into_bytes()
}

pub const AUTH_LOGIN: &[u8] = b"AUTH LOGIN\r\n";

/// One base64 line of the LOGIN exchange (user name, then password).
pub fn auth_login_line(text: &str) -> Vec<u8> {
    format!("{}\r\n", crate::proto::sasl::base64_encode(text.as_bytes())).into_bytes()
}

/// Dot-stuffing of a body (RFC 5321 §4.5.2) across any split of it: a line
/// that starts with `.` gets another. [`DotStuffer::finish`] ends the last
/// line if needed and writes the final `.`.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
        }
    }
}

impl DotStuffer {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 8);
        let mut start = 0;
        for (i, &b) in input.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                out.extend_from_slice(&input[start..i]);
                out.push(b'.');
                start = i;
            }
            self.at_line_start = b == b'\n';
        }
        out.extend_from_slice(&input[start..]);
    }

    pub fn finish(&self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Whether a body has bytes outside 7-bit ASCII (needs 8BITMIME).
pub fn is_8bit(body: &[u8]) -> bool {
    !body.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(buf: &[u8]) -> (Reply, usize) {
        match parse_reply(buf) {
            Ok(Parsed::Reply { reply, len }) => (reply, len),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let (r, len) = reply(b"550 5.1.1 no such user\r\nextra");
        assert_eq!(len, 24);
        assert_eq!(r.code, 550);
        assert_eq!(r.enhanced, Some(Enhanced(5, 1, 1)));
        assert_eq!(r.lines, vec!["no such user"]);
    }

    #[test]
    fn enhanced_code_of_another_class_is_text() {
        let (r, _) = reply(b"451 5.1.1 odd\r\n");
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, vec!["5.1.1 odd"]);
        assert_eq!(enhanced_or_derived(&r), Enhanced(4, 0, 0));
    }

    #[test]
    fn multi_line_and_bare_code() {
        let (r, len) = reply(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
        assert_eq!(len, 47);
        assert_eq!(r.lines, vec!["mx.example", "PIPELINING", "SIZE 1000"]);
        let (r, _) = reply(b"250\r\n");
        assert_eq!((r.code, r.lines.len()), (250, 1));
        let (r, _) = reply(b"220 ok\n");
        assert_eq!(r.lines, vec!["ok"]);
    }

    #[test]
    fn need_more_is_not_invalid() {
        for partial in [
            &b""[..],
            b"2",
            b"25",
            b"250",
            b"250-a\r\n",
            b"250-a\r\n25",
            b"250 x",
        ] {
            assert_eq!(parse_reply(partial), Ok(Parsed::NeedMore), "{partial:?}");
        }
        // every split of a valid reply is "need more", never an error
        let full = b"250-one\r\n250-two\r\n250 three\r\n";
        for i in 0..full.len() {
            assert_eq!(parse_reply(&full[..i]), Ok(Parsed::NeedMore));
        }
    }

    #[test]
    fn garbage_and_limits() {
        assert!(matches!(
            parse_reply(b"HTTP/1.1 400"),
            Err(ReplyError::Syntax(_))
        ));
        assert!(matches!(
            parse_reply(b"250x\r\n"),
            Err(ReplyError::Syntax(_))
        ));
        assert!(matches!(
            parse_reply(b"999 no\r\n"),
            Err(ReplyError::Syntax(_))
        ));
        assert!(matches!(
            parse_reply(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::Syntax(_))
        ));
        // a long line without its end yet: an error as soon as it passes the cap
        let mut long = b"250 ".to_vec();
        long.resize(MAX_REPLY_LINE - 1, b'x');
        assert_eq!(parse_reply(&long), Ok(Parsed::NeedMore));
        long.push(b'x');
        assert_eq!(parse_reply(&long), Err(ReplyError::LineTooLong));
        // 600 bytes is over RFC 5321's 512 but within the slack
        let mut six = b"250 ".to_vec();
        six.resize(600, b'y');
        six.extend_from_slice(b"\r\n");
        assert_eq!(reply(&six).0.lines[0].len(), 596);
        // endless continuation lines
        let many = b"250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(parse_reply(&many), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn capabilities_from_ehlo() {
        let (r, _) = reply(
            b"250-mx.example greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n\
              250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n",
        );
        let c = Capabilities::from_ehlo(&r);
        assert_eq!(
            c,
            Capabilities {
                size: Some(10_240_000),
                size_param: true,
                pipelining: true,
                eightbitmime: true,
                smtputf8: true,
                dsn: true,
                starttls: true,
                enhanced_status_codes: true,
                chunking: true,
                auth_plain: true,
                auth_login: true,
                extended: true,
            }
        );
        // unknown keywords and the old `AUTH=` form are skipped, not fatal
        let (r, _) =
            reply(b"250-mx\r\n250-X-EXPS GSSAPI NTLM\r\n250-AUTH=LOGIN\r\n250 PIPELINING\r\n");
        let c = Capabilities::from_ehlo(&r);
        assert!(c.pipelining && !c.auth_plain, "{c:?}");
        let (r, _) = reply(b"250-mx\r\n250 SIZE\r\n");
        let c = Capabilities::from_ehlo(&r);
        assert_eq!((c.size, c.size_param), (None, true));
        let (r, _) = reply(b"250 mx\r\n");
        assert!(!Capabilities::from_ehlo(&r).pipelining);
    }

    #[test]
    fn commands_parse_back_with_smtp_proto() {
        let mail = mail_from(
            "a+b@x.example",
            &MailParams {
                size: Some(1234),
                body: Some(Body::EightBitMime),
                smtputf8: true,
                ret: Some(Ret::Headers),
                envid: Some("id=1 2"),
            },
        )
        .unwrap();
        assert_eq!(
            mail,
            b"MAIL FROM:<a+b@x.example> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+3D1+202\r\n"
        );
        match smtp_proto::Request::parse(&mut mail.iter()) {
            Ok(smtp_proto::Request::Mail { from }) => {
                assert_eq!(from.address, "a+b@x.example");
                assert_eq!(from.size, 1234);
                assert_eq!(from.env_id.as_deref(), Some("id=1 2"));
                assert!(from.flags & smtp_proto::MAIL_RET_HDRS != 0);
            }
            other => panic!("{other:?}"),
        }
        let rcpt = rcpt_to(
            "u@d.example",
            &RcptParams {
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    ..Notify::default()
                }),
                orcpt: Some("o+x@d.example"),
            },
        )
        .unwrap();
        assert_eq!(
            rcpt,
            b"RCPT TO:<u@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;o+2Bx@d.example\r\n"
        );
        match smtp_proto::Request::parse(&mut rcpt.iter()) {
            Ok(smtp_proto::Request::Rcpt { to }) => {
                assert_eq!(to.orcpt.as_deref(), Some("o+x@d.example"));
                assert!(to.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            mail_from("", &MailParams::default()).unwrap(),
            b"MAIL FROM:<>\r\n"
        );
        assert!(mail_from("a@b\r\nRCPT TO:<x@y>", &MailParams::default()).is_err());
        assert!(rcpt_to(&"a".repeat(3000), &RcptParams::default()).is_err());
        assert_eq!(helo("host\r\nQUIT"), b"HELO hostQUIT\r\n");
    }

    #[test]
    fn auth_lines() {
        assert_eq!(auth_plain("u", "p"), b"AUTH PLAIN AHUAcA==\r\n");
        assert_eq!(auth_login_line("u"), b"dQ==\r\n");
    }

    #[test]
    fn dot_stuffing_across_splits() {
        let body = b".top\r\nmid\r\n..two\r\nend";
        let want = b"..top\r\nmid\r\n...two\r\nend\r\n.\r\n".to_vec();
        for split in 0..=body.len() {
            let mut s = DotStuffer::default();
            let mut out = Vec::new();
            s.feed(&body[..split], &mut out);
            s.feed(&body[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, want, "split at {split}");
        }
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        s.feed(b"a\r\n", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"a\r\n.\r\n");
    }
}
