//! Cuts IMAP input into complete commands: lines plus the literals they
//! announce (`{N}` synchronizing, `{N+}` LITERAL+, `~{N}` literal8). A
//! literal is checked against the limit when it is announced, before a
//! byte of it is stored, so a huge announcement costs nothing; a
//! synchronizing one is answered with a continuation only once accepted.

/// What the framer has for the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    /// A complete command: its lines (with CRLF) and literal data, as sent.
    Command(Vec<u8>),
    /// A synchronizing literal was accepted: send a continuation request.
    Continue,
    /// The command is refused before it is complete. `tag` is what could be
    /// read of it (`*` when none); after `close` the connection must end
    /// (the rest of the command cannot be told from the next).
    Reject {
        tag: String,
        toobig: bool,
        text: &'static str,
        close: bool,
    },
}

#[derive(Debug)]
pub struct Framer {
    max_line: usize,
    max_literal: u64,
    max_command: usize,
    buf: Vec<u8>,
    /// Literal bytes still expected.
    literal: usize,
    /// Bytes of the current line (since the last literal).
    line_len: usize,
}

fn tag_of(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let t = &buf[..end];
    if !t.is_empty()
        && t.len() <= 64
        && t.iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b))
    {
        String::from_utf8_lossy(t).into_owned()
    } else {
        "*".into()
    }
}

/// The literal announced at the end of a line (CRLF stripped), if any:
/// (length, synchronizing).
pub fn literal_announcement(line: &[u8]) -> Option<Result<(u64, bool), ()>> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let mut sync = true;
    if let Some(d) = digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
    {
        digits = d;
        sync = false;
    }
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Some(Err(()));
    }
    let n = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok());
    Some(n.map(|n| (n, sync)).ok_or(()))
}

impl Framer {
    pub fn new(max_line: usize, max_literal: u64, max_command: usize) -> Framer {
        Framer {
            max_line,
            max_literal,
            max_command,
            buf: Vec::new(),
            literal: 0,
            line_len: 0,
        }
    }

    pub fn set_max_literal(&mut self, max: u64) {
        self.max_literal = max;
    }

    /// Whether part of a command has been read.
    pub fn in_command(&self) -> bool {
        !self.buf.is_empty()
    }

    fn reset(&mut self) {
        self.buf = Vec::new();
        self.literal = 0;
        self.line_len = 0;
    }

    /// Takes what it can from `input`.
    pub fn next(&mut self, input: &mut Vec<u8>) -> Option<Framed> {
        loop {
            if self.literal > 0 {
                let n = self.literal.min(input.len());
                self.buf.extend_from_slice(&input[..n]);
                input.drain(..n);
                self.literal -= n;
                if self.literal > 0 {
                    return None;
                }
                self.line_len = 0;
            }
            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                if self.line_len + input.len() > self.max_line {
                    let tag = tag_of(if self.buf.is_empty() {
                        input
                    } else {
                        &self.buf
                    });
                    input.clear();
                    self.reset();
                    return Some(Framed::Reject {
                        tag,
                        toobig: false,
                        text: "Line too long",
                        close: true,
                    });
                }
                return None;
            };
            let line: Vec<u8> = input.drain(..=nl).collect();
            self.line_len += line.len();
            if self.line_len > self.max_line {
                let tag = tag_of(if self.buf.is_empty() {
                    &line
                } else {
                    &self.buf
                });
                self.reset();
                return Some(Framed::Reject {
                    tag,
                    toobig: false,
                    text: "Line too long",
                    close: false,
                });
            }
            self.buf.extend_from_slice(&line);
            match literal_announcement(&line) {
                None => {
                    self.line_len = 0;
                    return Some(Framed::Command(std::mem::take(&mut self.buf)));
                }
                Some(Err(())) => {
                    // Not a literal after all (`{abc}` in a quoted string,
                    // say): the parser decides.
                    self.line_len = 0;
                    return Some(Framed::Command(std::mem::take(&mut self.buf)));
                }
                Some(Ok((n, sync))) => {
                    if n > self.max_literal || self.buf.len() as u64 + n > self.max_command as u64 {
                        let tag = tag_of(&self.buf);
                        self.reset();
                        return Some(Framed::Reject {
                            tag,
                            toobig: true,
                            text: "Literal too large",
                            // A non-synchronizing literal is on its way:
                            // there is no telling where it ends but counting.
                            close: !sync,
                        });
                    }
                    self.literal = n as usize;
                    if self.literal == 0 {
                        self.line_len = 0;
                    }
                    if sync {
                        return Some(Framed::Continue);
                    }
                }
            }
        }
    }

    /// One raw line (AUTHENTICATE responses, IDLE's DONE), CRLF stripped;
    /// `Err` when it is too long (the connection should end).
    pub fn next_line(&mut self, input: &mut Vec<u8>) -> Option<Result<Vec<u8>, ()>> {
        match input.iter().position(|&b| b == b'\n') {
            Some(nl) if nl < self.max_line => {
                let mut line: Vec<u8> = input.drain(..=nl).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Ok(line))
            }
            Some(_) => Some(Err(())),
            None if input.len() > self.max_line => Some(Err(())),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        let mut f = Framer::new(100, 10, 1000);
        let mut input = b"a1 LOGIN {3}\r\n".to_vec();
        assert_eq!(f.next(&mut input), Some(Framed::Continue));
        input.extend_from_slice(b"bob {3+}\r\npwd\r\na2 NOOP\r\n");
        assert_eq!(
            f.next(&mut input),
            Some(Framed::Command(
                b"a1 LOGIN {3}\r\nbob {3+}\r\npwd\r\n".to_vec()
            ))
        );
        assert_eq!(
            f.next(&mut input),
            Some(Framed::Command(b"a2 NOOP\r\n".to_vec()))
        );
        let mut big = b"a3 APPEND x {99999999999}\r\n".to_vec();
        assert!(matches!(
            f.next(&mut big),
            Some(Framed::Reject {
                toobig: true,
                close: false,
                ..
            })
        ));
        let mut big = b"a4 APPEND x {11+}\r\n".to_vec();
        assert!(matches!(
            f.next(&mut big),
            Some(Framed::Reject { close: true, .. })
        ));
        let mut long = vec![b'x'; 200];
        assert!(matches!(
            f.next(&mut long),
            Some(Framed::Reject { close: true, .. })
        ));
    }
}
