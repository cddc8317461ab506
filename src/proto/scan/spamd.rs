//! SpamAssassin's `spamd` protocol (SPAMC/1.5), as its own `spamc` speaks it:
//! a request line (`SYMBOLS SPAMC/1.5`), header fields, an empty line and
//! the message; the reply (`SPAMD/1.1 0 EX_OK` — spamd answers 1.1 to most
//! commands and 1.5 to some, both are read) has a `Spam: True ; 15.0 / 5.0`
//! field and, for `SYMBOLS`, the matched rules as its body. `TELL` (with
//! `Message-class: spam|ham` and `Set: local`) teaches the Bayes database
//! and answers `DidSet:`/`DidRemove:`; spamd needs `--allow-tell` for it.

use super::{Invalid, MAX_HEAD, Parse, SpamReport, head_end, invalid};

/// The scanning commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The verdict only.
    Check,
    /// The verdict and the rules that matched (what mailc uses).
    Symbols,
    /// The verdict and the header spamd would write (body ignored here).
    Headers,
}

impl Command {
    fn verb(self) -> &'static str {
        match self {
            Command::Check => "CHECK",
            Command::Symbols => "SYMBOLS",
            Command::Headers => "HEADERS",
        }
    }
}

/// A message class for `TELL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

/// The head of a scanning request; the message (exactly `len` bytes)
/// follows it. `user` selects spamd's per-user preferences.
pub fn request(cmd: Command, user: Option<&str>, len: usize) -> Vec<u8> {
    let mut out = format!("{} SPAMC/1.5\r\nContent-length: {len}\r\n", cmd.verb());
    push_user(&mut out, user);
    out.push_str("\r\n");
    out.into_bytes()
}

/// The head of a `TELL` request teaching spamd's local database (Bayes)
/// that the message (`len` bytes, following) is `class`.
pub fn tell(class: Class, user: Option<&str>, len: usize) -> Vec<u8> {
    let class = match class {
        Class::Spam => "spam",
        Class::Ham => "ham",
    };
    let mut out = format!(
        "TELL SPAMC/1.5\r\nMessage-class: {class}\r\nSet: local\r\nContent-length: {len}\r\n"
    );
    push_user(&mut out, user);
    out.push_str("\r\n");
    out.into_bytes()
}

fn push_user(out: &mut String, user: Option<&str>) {
    // A user name is one header value: nothing that could end the line.
    if let Some(u) = user.filter(|u| !u.is_empty() && !u.contains(['\r', '\n'])) {
        out.push_str("User: ");
        out.push_str(u);
        out.push_str("\r\n");
    }
}

/// A reply of spamd.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `SPAMD/1.1` → (1, 1).
    pub version: (u8, u8),
    /// 0 (`EX_OK`) on success; sysexits codes otherwise (76 protocol error).
    pub code: u32,
    pub message: String,
    /// The `Spam:` field: (verdict, score, threshold).
    pub spam: Option<(bool, f64, f64)>,
    /// `DidSet:`/`DidRemove:` of a `TELL` (`local`, `remote`).
    pub did_set: Vec<String>,
    pub did_remove: Vec<String>,
    pub body: Vec<u8>,
}

/// Parses a reply from the bytes read so far; `eof` says the daemon closed
/// the connection (spamd does after each reply), which ends a body that had
/// no `Content-length`.
pub fn parse_reply(buf: &[u8], eof: bool) -> Result<Parse<Reply>, Invalid> {
    let Some((head_len, body_start)) = head_end(buf) else {
        if buf.len() > MAX_HEAD {
            return invalid("spamd reply head too long");
        }
        // A bare status line then EOF is how spamd reports some errors.
        if eof {
            if buf.is_empty() {
                return invalid("spamd closed the connection without a reply");
            }
            return finish(buf, &[], eof).map(Parse::Done);
        }
        return Ok(Parse::Incomplete);
    };
    if head_len > MAX_HEAD {
        return invalid("spamd reply head too long");
    }
    let head = &buf[..head_len];
    let body = &buf[body_start..];
    let length = content_length(head)?;
    match length {
        Some(n) if body.len() < n => {
            if eof {
                return invalid(format!(
                    "spamd reply body cut short ({} of {n} bytes)",
                    body.len()
                ));
            }
            Ok(Parse::Incomplete)
        }
        Some(n) => finish(head, &body[..n], eof).map(Parse::Done),
        None if eof => finish(head, body, eof).map(Parse::Done),
        // No length: the body (if any) ends at EOF.
        None => Ok(Parse::Incomplete),
    }
}

fn content_length(head: &[u8]) -> Result<Option<usize>, Invalid> {
    for line in lines(head).skip(1) {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            return match value.trim().parse::<usize>() {
                Ok(n) => Ok(Some(n)),
                Err(_) => invalid(format!("spamd Content-length not a number: {value:?}")),
            };
        }
    }
    Ok(None)
}

fn lines(head: &[u8]) -> impl Iterator<Item = &str> {
    head.split(|&b| b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap_or("").trim_end_matches('\r'))
}

fn finish(head: &[u8], body: &[u8], _eof: bool) -> Result<Reply, Invalid> {
    if std::str::from_utf8(head).is_err() {
        return invalid("spamd reply head is not UTF-8");
    }
    let mut ls = lines(head);
    let status = ls.next().unwrap_or("");
    let (version, code, message) = status_line(status)?;
    let mut reply = Reply {
        version,
        code,
        message,
        spam: None,
        did_set: Vec::new(),
        did_remove: Vec::new(),
        body: body.to_vec(),
    };
    for line in ls {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return invalid(format!("spamd reply field without a colon: {line:?}"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "spam" => reply.spam = Some(spam_field(value)?),
            "didset" => reply.did_set = list(value),
            "didremove" => reply.did_remove = list(value),
            _ => {}
        }
    }
    Ok(reply)
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn status_line(line: &str) -> Result<((u8, u8), u32, String), Invalid> {
    let bad = || Invalid(format!("not a spamd status line: {:?}", truncate(line)));
    let rest = line.strip_prefix("SPAMD/").ok_or_else(bad)?;
    let (ver, rest) = rest.split_once(' ').ok_or_else(bad)?;
    let (major, minor) = ver.split_once('.').ok_or_else(bad)?;
    let version = (
        major.parse().map_err(|_| bad())?,
        minor.parse().map_err(|_| bad())?,
    );
    let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let code = code.parse().map_err(|_| bad())?;
    Ok((version, code, message.trim().to_string()))
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `True ; 15.0 / 5.0` (spaces optional; `Yes` in old versions).
fn spam_field(v: &str) -> Result<(bool, f64, f64), Invalid> {
    let bad = || Invalid(format!("bad spamd Spam field: {:?}", truncate(v)));
    let (flag, scores) = v.split_once(';').ok_or_else(bad)?;
    let flag = match flag.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => true,
        "false" | "no" => false,
        _ => return Err(bad()),
    };
    let (score, threshold) = scores.split_once('/').ok_or_else(bad)?;
    let score: f64 = score.trim().parse().map_err(|_| bad())?;
    let threshold: f64 = threshold.trim().parse().map_err(|_| bad())?;
    if !score.is_finite() || !threshold.is_finite() {
        return Err(bad());
    }
    Ok((flag, score, threshold))
}

/// The verdict of a `CHECK`/`SYMBOLS`/`HEADERS` reply.
pub fn report(reply: &Reply, cmd: Command) -> Result<SpamReport, Invalid> {
    if reply.code != 0 {
        return invalid(format!(
            "spamd error {} {}",
            reply.code,
            truncate(&reply.message)
        ));
    }
    let Some((is_spam, score, threshold)) = reply.spam else {
        return invalid("spamd reply without a Spam field");
    };
    let mut symbols: Vec<String> = if cmd == Command::Symbols {
        let text = String::from_utf8_lossy(&reply.body);
        text.split(',')
            .map(|s| s.trim())
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    symbols.sort();
    symbols.dedup();
    Ok(SpamReport {
        is_spam,
        score,
        threshold,
        symbols,
        action: None,
        subject: None,
    })
}

/// Whether a `TELL` reply says the database took the message (`DidSet`)
/// or already had it: spamd answers `EX_OK` with an empty `DidSet` then.
pub fn tell_ok(reply: &Reply) -> Result<bool, Invalid> {
    if reply.code != 0 {
        return invalid(format!(
            "spamd error {} {}",
            reply.code,
            truncate(&reply.message)
        ));
    }
    Ok(!reply.did_set.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(b: &[u8]) -> Reply {
        match parse_reply(b, true).unwrap() {
            Parse::Done(r) => r,
            Parse::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn requests() {
        assert_eq!(
            request(Command::Symbols, Some("alice"), 42),
            b"SYMBOLS SPAMC/1.5\r\nContent-length: 42\r\nUser: alice\r\n\r\n"
        );
        assert_eq!(
            request(Command::Check, None, 0),
            b"CHECK SPAMC/1.5\r\nContent-length: 0\r\n\r\n"
        );
        // A user with a line break is left out, never sent.
        assert_eq!(
            request(Command::Headers, Some("a\r\nSpam: x"), 1),
            b"HEADERS SPAMC/1.5\r\nContent-length: 1\r\n\r\n"
        );
        assert_eq!(
            tell(Class::Spam, None, 7),
            b"TELL SPAMC/1.5\r\nMessage-class: spam\r\nSet: local\r\nContent-length: 7\r\n\r\n"
        );
        assert_eq!(
            tell(Class::Ham, Some("bob"), 7),
            b"TELL SPAMC/1.5\r\nMessage-class: ham\r\nSet: local\r\nContent-length: 7\r\nUser: bob\r\n\r\n"
        );
    }

    #[test]
    fn symbols_reply_1_1() {
        let b = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 24\r\nSpam: True ; 1002.3 / 5.0\r\n\r\nGTUBE,MISSING_DATE,X-1\r\n";
        let r = done(b);
        assert_eq!(r.version, (1, 1));
        assert_eq!(r.spam, Some((true, 1002.3, 5.0)));
        let rep = report(&r, Command::Symbols).unwrap();
        assert!(rep.is_spam);
        // `X-1` is not a rule name; the trailing CRLF is not part of one.
        assert_eq!(rep.symbols, vec!["GTUBE", "MISSING_DATE"]);
        assert_eq!(rep.threshold, 5.0);
    }

    #[test]
    fn check_reply_1_5_without_length() {
        let r = done(b"SPAMD/1.5 0 EX_OK\r\nSpam: False ; -0.1 / 5.0\r\n\r\n");
        assert_eq!(r.version, (1, 5));
        let rep = report(&r, Command::Check).unwrap();
        assert!(!rep.is_spam);
        assert_eq!(rep.score, -0.1);
        assert!(rep.symbols.is_empty());
    }

    #[test]
    fn incremental() {
        let b = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: False ; 0.0 / 5.0\r\n\r\nA,B,C";
        for i in 0..b.len() {
            assert_eq!(
                parse_reply(&b[..i], false).unwrap(),
                Parse::Incomplete,
                "{i}"
            );
        }
        assert!(matches!(parse_reply(b, false).unwrap(), Parse::Done(_)));
        // Cut short then closed: invalid, not incomplete.
        assert!(parse_reply(&b[..b.len() - 1], true).is_err());
    }

    #[test]
    fn errors() {
        let r = done(b"SPAMD/1.0 76 Bad header line: (Content-Length mismatch: Expected 5 bytes, got 4 bytes)\r\n");
        assert_eq!(r.code, 76);
        let e = report(&r, Command::Symbols).unwrap_err();
        assert!(e.0.contains("76"), "{e}");
        assert!(parse_reply(b"", true).is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n\r\n", true).is_err());
        assert!(parse_reply(b"SPAMD/x 0 EX_OK\r\n\r\n", true).is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe ; 1 / 2\r\n\r\n", true).is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 2\r\n\r\n", true).is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nContent-length: -1\r\n\r\n", true).is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nnocolon\r\n\r\n", true).is_err());
        // No Spam field: not a verdict.
        let r = done(b"SPAMD/1.1 0 EX_OK\r\n\r\n");
        assert!(report(&r, Command::Check).is_err());
        // An endless head is invalid once past the cap, not incomplete forever.
        let long = vec![b'a'; MAX_HEAD + 1];
        assert!(parse_reply(&long, false).is_err());
    }

    #[test]
    fn tell_replies() {
        let r = done(b"SPAMD/1.1 0 EX_OK\r\nDidSet: local\r\n\r\n");
        assert_eq!(r.did_set, vec!["local"]);
        assert!(tell_ok(&r).unwrap());
        let r = done(b"SPAMD/1.1 0 EX_OK\r\n\r\n");
        assert!(!tell_ok(&r).unwrap());
        let r = done(b"SPAMD/1.1 69 EX_UNAVAILABLE TELL commands are not enabled, set the --allow-tell switch.\r\n");
        assert!(tell_ok(&r).is_err());
    }
}
