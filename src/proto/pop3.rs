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

pub fn ok(text: &str) -> Vec<u8> {
    line("+OK", text)
}

pub fn err(text: &str) -> Vec<u8> {
    line("-ERR", text)
}

fn line(status: &str, text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 8);
    v.extend_from_slice(status.as_bytes());
    if !text.is_empty() {
        v.push(b' ');
        v.extend(text.bytes().filter(|&b| b != b'\r' && b != b'\n'));
    }
    v.extend_from_slice(b"\r\n");
    v
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
        assert_eq!(err("a\r\n+OK b"), b"-ERR a+OK b\r\n");
    }
}
