//! ClamAV's `clamd` protocol, `zINSTREAM`: the command ends in NUL, the
//! message follows in chunks of a 4-byte big-endian length and the bytes,
//! a zero-length chunk ends it, and clamd answers one NUL-terminated line:
//! `stream: OK`, `stream: Eicar-Signature FOUND`, or `... ERROR`
//! (`INSTREAM size limit exceeded. ERROR` past its `StreamMaxLength`, after
//! which it closes the connection).

use super::{Invalid, Parse, VirusReport, invalid};

/// The command that starts a stream.
pub const INSTREAM: &[u8] = b"zINSTREAM\0";

/// The command that asks for the version (a readiness probe).
pub const VERSION: &[u8] = b"zVERSION\0";

/// The chunk size mailc sends (clamd reads any size up to its
/// `StreamMaxLength`).
pub const CHUNK: usize = 64 * 1024;

/// The longest reply line read; a virus name is short.
pub const MAX_REPLY: usize = 4096;

/// The frame header of one chunk of `len` bytes (`len` ≤ `u32::MAX`; the
/// driver sends chunks of [`CHUNK`]).
pub fn chunk_header(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// The zero-length chunk that ends the stream.
pub const END: [u8; 4] = [0, 0, 0, 0];

/// The whole request for `message`, framed (for tests and small messages;
/// the driver streams the same frames).
pub fn frames(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / CHUNK * 4 + 20);
    out.extend_from_slice(INSTREAM);
    for c in message.chunks(CHUNK) {
        out.extend_from_slice(&chunk_header(c.len()));
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&END);
    out
}

/// One reply line of clamd, without its terminator.
pub fn parse_line(buf: &[u8], eof: bool) -> Result<Parse<String>, Invalid> {
    let end = buf.iter().position(|&b| b == 0 || b == b'\n');
    let line = match end {
        Some(i) => &buf[..i],
        None if buf.len() > MAX_REPLY => return invalid("clamd reply too long"),
        // zINSTREAM replies end in NUL; a reply closed without one is whole.
        None if eof && !buf.is_empty() => buf,
        None if eof => return invalid("clamd closed the connection without a reply"),
        None => return Ok(Parse::Incomplete),
    };
    if line.len() > MAX_REPLY {
        return invalid("clamd reply too long");
    }
    match std::str::from_utf8(line) {
        Ok(s) => Ok(Parse::Done(s.trim_end_matches('\r').to_string())),
        Err(_) => invalid("clamd reply is not UTF-8"),
    }
}

/// What an `INSTREAM` reply line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Scanned(VirusReport),
    /// The message is longer than clamd's `StreamMaxLength`.
    TooLong,
}

pub fn outcome(line: &str) -> Result<Outcome, Invalid> {
    let rest = line
        .strip_prefix("stream:")
        .or_else(|| line.strip_prefix("stream"))
        .map(str::trim);
    if line.contains("size limit exceeded") {
        return Ok(Outcome::TooLong);
    }
    let Some(rest) = rest else {
        if let Some(e) = line.strip_suffix("ERROR") {
            return invalid(format!("clamd error: {}", e.trim()));
        }
        return invalid(format!(
            "not a clamd reply: {:?}",
            line.chars().take(80).collect::<String>()
        ));
    };
    if rest == "OK" {
        return Ok(Outcome::Scanned(VirusReport::Clean));
    }
    if let Some(name) = rest.strip_suffix(" FOUND") {
        let name = name.trim();
        // A signature name goes into a header field: printable ASCII only.
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) || name.len() > 200 {
            return invalid(format!("bad clamd signature name {name:?}"));
        }
        return Ok(Outcome::Scanned(VirusReport::Infected(name.to_string())));
    }
    if let Some(e) = rest.strip_suffix("ERROR") {
        return invalid(format!("clamd error: {}", e.trim()));
    }
    invalid(format!(
        "not a clamd reply: {:?}",
        line.chars().take(80).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(frames(b""), b"zINSTREAM\0\0\0\0\0");
        assert_eq!(frames(b"abc"), b"zINSTREAM\0\0\0\0\x03abc\0\0\0\0");
        let big = vec![7u8; CHUNK + 1];
        let f = frames(&big);
        assert_eq!(&f[10..14], &[0, 1, 0, 0]);
        assert_eq!(&f[14 + CHUNK..18 + CHUNK], &[0, 0, 0, 1]);
        assert_eq!(&f[f.len() - 4..], &END);
        assert_eq!(f.len(), 10 + 4 + CHUNK + 4 + 1 + 4);
    }

    #[test]
    fn replies() {
        let line = |b: &[u8]| match parse_line(b, false).unwrap() {
            Parse::Done(s) => s,
            Parse::Incomplete => panic!("incomplete"),
        };
        assert_eq!(
            outcome(&line(b"stream: OK\0")).unwrap(),
            Outcome::Scanned(VirusReport::Clean)
        );
        assert_eq!(
            outcome(&line(b"stream: Eicar-Test-Signature FOUND\0")).unwrap(),
            Outcome::Scanned(VirusReport::Infected("Eicar-Test-Signature".into()))
        );
        assert_eq!(
            outcome(&line(b"INSTREAM size limit exceeded. ERROR\0")).unwrap(),
            Outcome::TooLong
        );
        assert!(outcome(&line(b"stream: Can't allocate memory ERROR\0")).is_err());
        assert!(outcome(&line(b"UNKNOWN COMMAND\n")).is_err());
        assert!(outcome(&line(b"stream: \x1b[31m FOUND\0")).is_err());
        assert!(outcome("stream: FOUND").is_err());
        assert_eq!(parse_line(b"stream: O", false).unwrap(), Parse::Incomplete);
        assert_eq!(
            parse_line(b"stream: OK", true).unwrap(),
            Parse::Done("stream: OK".into())
        );
        assert!(parse_line(b"", true).is_err());
        assert!(parse_line(&vec![b'a'; MAX_REPLY + 1], false).is_err());
        assert!(parse_line(b"\xff\xfe\0", false).is_err());
    }
}
