//! rspamd's HTTP protocol: `POST /checkv2` with the message as the body and
//! the SMTP facts as header fields (`From`, `Rcpt`, `IP`, `Helo`, `User`,
//! `Queue-Id`), answered with JSON (`action`, `score`, `required_score`,
//! `symbols`); `POST /learnspam` and `/learnham` (the controller worker)
//! teach its Bayes classifier. Only the small part of HTTP/1.1 these need is
//! here: one request per connection (`Connection: close`), a reply with a
//! `Content-Length`, a chunked body, or a body up to the end of the stream.

use serde::Deserialize;

use super::{Invalid, MAX_HEAD, Parse, RspamdAction, SpamReport, head_end, invalid};

/// The SMTP facts passed along with a message to `/checkv2`.
#[derive(Debug, Clone, Default)]
pub struct Envelope<'a> {
    /// MAIL FROM (empty for the null sender).
    pub from: &'a str,
    pub rcpts: &'a [String],
    pub ip: Option<std::net::IpAddr>,
    pub helo: &'a str,
    /// The authenticated (SASL) user, for submission.
    pub user: Option<&'a str>,
    pub queue_id: Option<&'a str>,
    /// Our host name (`MTA-Name`).
    pub mta: &'a str,
}

/// The head of a `/checkv2` request for a message of `len` bytes.
/// `host` is the `Host` field (the address from the config).
pub fn check_request(host: &str, env: &Envelope<'_>, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str("POST /checkv2 HTTP/1.1\r\n");
    field(&mut out, "Host", host);
    field(&mut out, "Connection", "close");
    field(&mut out, "Content-Length", &len.to_string());
    // rspamd reads `<>` for the null sender.
    let from = if env.from.is_empty() { "<>" } else { env.from };
    field(&mut out, "From", from);
    for r in env.rcpts {
        field(&mut out, "Rcpt", r);
    }
    if let Some(ip) = env.ip {
        field(&mut out, "IP", &ip.to_string());
    }
    if !env.helo.is_empty() {
        field(&mut out, "Helo", env.helo);
    }
    if let Some(u) = env.user {
        field(&mut out, "User", u);
    }
    if let Some(q) = env.queue_id {
        field(&mut out, "Queue-Id", q);
    }
    if !env.mta.is_empty() {
        field(&mut out, "MTA-Name", env.mta);
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The head of a `/learnspam` or `/learnham` request (`password`: the
/// controller's, when it asks for one).
pub fn learn_request(host: &str, spam: bool, password: Option<&str>, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(160);
    out.push_str(if spam {
        "POST /learnspam HTTP/1.1\r\n"
    } else {
        "POST /learnham HTTP/1.1\r\n"
    });
    field(&mut out, "Host", host);
    field(&mut out, "Connection", "close");
    field(&mut out, "Content-Length", &len.to_string());
    if let Some(p) = password {
        field(&mut out, "Password", p);
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// One header field; a value with a line break (it would smuggle another
/// field) is left out.
fn field(out: &mut String, name: &str, value: &str) {
    if value.contains(['\r', '\n']) {
        return;
    }
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// An HTTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Parses an HTTP/1.x reply from the bytes read so far (`eof`: the server
/// closed the connection).
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Parse<Response>, Invalid> {
    let Some((head_len, body_start)) = head_end(buf) else {
        if buf.len() > MAX_HEAD {
            return invalid("HTTP reply head too long");
        }
        if eof {
            return invalid(if buf.is_empty() {
                "the scanner closed the connection without a reply".to_string()
            } else {
                "HTTP reply cut short in its head".to_string()
            });
        }
        return Ok(Parse::Incomplete);
    };
    if head_len > MAX_HEAD {
        return invalid("HTTP reply head too long");
    }
    let Ok(head) = std::str::from_utf8(&buf[..head_len]) else {
        return invalid("HTTP reply head is not UTF-8");
    };
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c));
    let Some(status) = status else {
        return invalid(format!(
            "not an HTTP status line: {:?}",
            status_line.chars().take(80).collect::<String>()
        ));
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return invalid(format!(
                "HTTP header field without a colon: {:?}",
                line.chars().take(80).collect::<String>()
            ));
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) => length = Some(n),
                Err(_) => return invalid(format!("bad Content-Length {value:?}")),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else {
                return invalid(format!("unsupported Transfer-Encoding {value:?}"));
            }
        }
    }
    let body = &buf[body_start..];
    if chunked {
        return match dechunk(body)? {
            Some(b) => Ok(Parse::Done(Response { status, body: b })),
            None if eof => invalid("chunked HTTP body cut short"),
            None => Ok(Parse::Incomplete),
        };
    }
    match length {
        Some(n) if body.len() >= n => Ok(Parse::Done(Response {
            status,
            body: body[..n].to_vec(),
        })),
        Some(n) if eof => invalid(format!("HTTP body cut short ({} of {n} bytes)", body.len())),
        Some(_) => Ok(Parse::Incomplete),
        None if eof => Ok(Parse::Done(Response {
            status,
            body: body.to_vec(),
        })),
        None => Ok(Parse::Incomplete),
    }
}

/// A whole chunked body, or `None` while it is incomplete.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, Invalid> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            if b.len() > 64 {
                return invalid("chunk size line too long");
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[..eol]).unwrap_or("");
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return invalid(format!("bad chunk size {size_text:?}"));
        };
        b = &b[eol + 2..];
        if size == 0 {
            // Trailer fields are not read; the end is the last CRLF.
            return Ok(Some(out));
        }
        if b.len() < size.saturating_add(2) {
            return Ok(None);
        }
        out.extend_from_slice(&b[..size]);
        if &b[size..size + 2] != b"\r\n" {
            return invalid("chunk not followed by CRLF");
        }
        b = &b[size + 2..];
    }
}

#[derive(Deserialize)]
struct CheckJson {
    #[serde(default)]
    is_skipped: bool,
    #[serde(default)]
    score: f64,
    #[serde(default)]
    required_score: f64,
    action: Option<String>,
    #[serde(default)]
    symbols: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    error: Option<String>,
    /// The new Subject with `rewrite subject`.
    subject: Option<String>,
}

/// The verdict in a `/checkv2` reply.
pub fn check_report(resp: &Response) -> Result<SpamReport, Invalid> {
    let json: CheckJson = serde_json::from_slice(&resp.body)
        .map_err(|e| Invalid(format!("rspamd reply is not its JSON: {e}")))?;
    if resp.status != 200 {
        return invalid(format!(
            "rspamd answered HTTP {}: {}",
            resp.status,
            json.error.as_deref().unwrap_or("")
        ));
    }
    if let Some(e) = json.error {
        return invalid(format!("rspamd error: {e}"));
    }
    let action = match json.action.as_deref() {
        Some(a) => {
            RspamdAction::parse(a).ok_or_else(|| Invalid(format!("unknown rspamd action {a:?}")))?
        }
        None if json.is_skipped => RspamdAction::NoAction,
        None => return invalid("rspamd reply without an action"),
    };
    if !json.score.is_finite() || !json.required_score.is_finite() {
        return invalid("rspamd score is not a number");
    }
    let symbols = json
        .symbols
        .into_keys()
        .filter(|s| s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect();
    Ok(SpamReport {
        is_spam: action != RspamdAction::NoAction && action != RspamdAction::Greylist,
        score: json.score,
        threshold: json.required_score,
        symbols,
        action: Some(action),
        subject: json
            .subject
            .filter(|_| action == RspamdAction::RewriteSubject),
    })
}

/// What rspamd did with a message to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    Learned,
    /// It had learned this message as that class before (HTTP 208).
    AlreadyKnown,
}

/// The outcome of `/learnspam` or `/learnham`.
pub fn learn_result(resp: &Response) -> Result<Learned, Invalid> {
    #[derive(Deserialize)]
    struct LearnJson {
        #[serde(default)]
        success: bool,
        error: Option<String>,
    }
    let json: Option<LearnJson> = serde_json::from_slice(&resp.body).ok();
    let error = json.as_ref().and_then(|j| j.error.clone());
    match resp.status {
        200 if json.as_ref().is_some_and(|j| j.success) => Ok(Learned::Learned),
        208 => Ok(Learned::AlreadyKnown),
        s => invalid(format!(
            "rspamd did not learn the message (HTTP {s}{}{})",
            if error.is_some() { ": " } else { "" },
            error.unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(b: &[u8]) -> Response {
        match parse_response(b, true).unwrap() {
            Parse::Done(r) => r,
            Parse::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn check_request_head() {
        let rcpts = vec!["a@example.test".to_string(), "b@example.test".to_string()];
        let env = Envelope {
            from: "",
            rcpts: &rcpts,
            ip: Some("192.0.2.1".parse().unwrap()),
            helo: "client.test",
            user: Some("alice@example.test"),
            queue_id: Some("Q1"),
            mta: "mx.example.test",
        };
        let head = String::from_utf8(check_request("127.0.0.1:11333", &env, 10)).unwrap();
        assert_eq!(
            head,
            "POST /checkv2 HTTP/1.1\r\nHost: 127.0.0.1:11333\r\nConnection: close\r\nContent-Length: 10\r\n\
             From: <>\r\nRcpt: a@example.test\r\nRcpt: b@example.test\r\nIP: 192.0.2.1\r\n\
             Helo: client.test\r\nUser: alice@example.test\r\nQueue-Id: Q1\r\nMTA-Name: mx.example.test\r\n\r\n"
        );
        // A HELO with a line break does not become a header field.
        let env = Envelope {
            helo: "x\r\nUser: root",
            ..Envelope::default()
        };
        let head = String::from_utf8(check_request("h", &env, 0)).unwrap();
        assert!(!head.contains("User"), "{head}");
    }

    #[test]
    fn learn_request_head() {
        let head = String::from_utf8(learn_request("h:1", true, Some("pw"), 3)).unwrap();
        assert_eq!(
            head,
            "POST /learnspam HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nContent-Length: 3\r\nPassword: pw\r\n\r\n"
        );
        assert!(
            String::from_utf8(learn_request("h", false, None, 0))
                .unwrap()
                .starts_with("POST /learnham ")
        );
    }

    #[test]
    fn check_reply() {
        let body = br#"{"is_skipped":false,"score":1.5,"required_score":15.0,"action":"no action","symbols":{"MIME_GOOD":{"name":"MIME_GOOD","score":-0.1},"R_SPF_NA":{"score":0}},"messages":{}}"#;
        let mut b =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        b.extend_from_slice(body);
        for i in 0..b.len() {
            assert_eq!(
                parse_response(&b[..i], false).unwrap(),
                Parse::Incomplete,
                "{i}"
            );
        }
        let r = done(&b);
        let rep = check_report(&r).unwrap();
        assert!(!rep.is_spam);
        assert_eq!(rep.score, 1.5);
        assert_eq!(rep.threshold, 15.0);
        assert_eq!(rep.symbols, vec!["MIME_GOOD", "R_SPF_NA"]);
        assert_eq!(rep.action, Some(RspamdAction::NoAction));

        let r = done(b"HTTP/1.0 200 OK\r\n\r\n{\"score\":0,\"required_score\":15,\"action\":\"reject\",\"symbols\":{\"GTUBE\":{}}}");
        let rep = check_report(&r).unwrap();
        assert!(rep.is_spam);
        assert_eq!(rep.action, Some(RspamdAction::Reject));
        assert_eq!(rep.subject, None);

        // `rewrite subject` comes with the new Subject; another action's
        // `subject` member is not taken.
        let r = done(b"HTTP/1.0 200 OK\r\n\r\n{\"score\":4,\"required_score\":15,\"action\":\"rewrite subject\",\"subject\":\"***SPAM*** hi\",\"symbols\":{}}");
        let rep = check_report(&r).unwrap();
        assert_eq!(rep.action, Some(RspamdAction::RewriteSubject));
        assert_eq!(rep.subject.as_deref(), Some("***SPAM*** hi"));
        let r = done(b"HTTP/1.0 200 OK\r\n\r\n{\"score\":4,\"required_score\":15,\"action\":\"add header\",\"subject\":\"x\",\"symbols\":{}}");
        assert_eq!(check_report(&r).unwrap().subject, None);
        let r = done(b"HTTP/1.1 200 OK\r\n\r\n{\"action\":\"soft reject\",\"score\":1e400}");
        assert!(check_report(&r).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{}", true).is_err());
    }

    #[test]
    fn chunked() {
        let b = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"ac\r\n1b\r\ntion\":\"greylist\",\"score\":4}\r\n0\r\n\r\n";
        for i in 0..b.len() - 2 {
            assert_eq!(
                parse_response(&b[..i], false).unwrap(),
                Parse::Incomplete,
                "{i}"
            );
        }
        let r = done(b);
        assert_eq!(r.body, b"{\"action\":\"greylist\",\"score\":4}");
        let rep = check_report(&r).unwrap();
        assert_eq!(rep.action, Some(RspamdAction::Greylist));
        assert!(!rep.is_spam);
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                true
            )
            .is_err()
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", true).is_err()
        );
    }

    #[test]
    fn bad_replies() {
        assert!(parse_response(b"", true).is_err());
        assert!(parse_response(b"SPAMD/1.1 0 EX_OK\r\n\r\n", true).is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n", true).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", true).is_err());
        assert!(parse_response(&vec![b'x'; MAX_HEAD + 1], false).is_err());
        let r = done(b"HTTP/1.1 200 OK\r\n\r\nnot json");
        assert!(check_report(&r).is_err());
        let r = done(b"HTTP/1.1 200 OK\r\n\r\n{\"action\":\"explode\",\"score\":1}");
        assert!(check_report(&r).is_err());
        let r = done(b"HTTP/1.1 500 Internal\r\n\r\n{\"error\":\"boom\"}");
        let e = check_report(&r).unwrap_err();
        assert!(e.0.contains("500") && e.0.contains("boom"), "{e}");
    }

    #[test]
    fn learn_replies() {
        let r = done(b"HTTP/1.1 200 OK\r\n\r\n{\"success\":true}");
        assert_eq!(learn_result(&r).unwrap(), Learned::Learned);
        let r = done(b"HTTP/1.1 208 Already Reported\r\n\r\n{\"error\":\"<x> has been already learned as spam, ignore it\"}");
        assert_eq!(learn_result(&r).unwrap(), Learned::AlreadyKnown);
        let r = done(b"HTTP/1.1 403 Forbidden\r\n\r\n{\"error\":\"Unauthorized\"}");
        let e = learn_result(&r).unwrap_err();
        assert!(e.0.contains("403") && e.0.contains("Unauthorized"), "{e}");
    }
}
