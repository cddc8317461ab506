//! Framing of command lines: find the next line in a buffer, never letting a
//! line grow past a cap. An overlong line is discarded up to its end and
//! reported once, so a client cannot make the server buffer without bound.

/// RFC 5321 §4.5.3.1.4 allows 512 octets; extensions (long parameters, SASL
/// initial responses) need more.
pub const MAX_COMMAND_LINE: usize = 4096;

/// What the framer found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// A complete line occupies `buf[..len]`, line end included.
    Line { len: usize },
    /// No line end yet, and the line is still within the cap.
    Incomplete,
    /// `buf[..len]` belongs to an overlong line and must be dropped; when
    /// `finished`, the overlong line has ended and should be answered once.
    Discard { len: usize, finished: bool },
}

/// Keeps the one bit of state framing needs: whether we are inside an
/// overlong line that is being thrown away.
#[derive(Debug, Clone)]
pub struct LineFramer {
    max: usize,
    discarding: bool,
}

impl LineFramer {
    pub fn new(max: usize) -> LineFramer {
        LineFramer {
            max,
            discarding: false,
        }
    }

    pub fn next(&mut self, buf: &[u8]) -> Framed {
        let limit = buf.len().min(self.max);
        let newline = buf.iter().position(|&b| b == b'\n');
        if self.discarding {
            return match newline {
                Some(i) => {
                    self.discarding = false;
                    Framed::Discard {
                        len: i + 1,
                        finished: true,
                    }
                }
                None => Framed::Discard {
                    len: buf.len(),
                    finished: false,
                },
            };
        }
        match newline {
            Some(i) if i < self.max => Framed::Line { len: i + 1 },
            Some(i) => Framed::Discard {
                len: i + 1,
                finished: true,
            },
            None if limit >= self.max => {
                self.discarding = true;
                Framed::Discard {
                    len: buf.len(),
                    finished: false,
                }
            }
            None => Framed::Incomplete,
        }
    }
}

/// The line without its line end (`\r\n` or a bare `\n`).
pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines() {
        let mut f = LineFramer::new(10);
        assert_eq!(f.next(b"NOOP\r\nQUIT\r\n"), Framed::Line { len: 6 });
        assert_eq!(f.next(b"NOO"), Framed::Incomplete);
        assert_eq!(f.next(b""), Framed::Incomplete);
    }

    #[test]
    fn overlong_lines_are_discarded_and_reported_once() {
        let mut f = LineFramer::new(8);
        assert_eq!(
            f.next(b"0123456789"),
            Framed::Discard {
                len: 10,
                finished: false
            }
        );
        assert_eq!(
            f.next(b"abc"),
            Framed::Discard {
                len: 3,
                finished: false
            }
        );
        assert_eq!(
            f.next(b"xyz\r\nNOOP\r\n"),
            Framed::Discard {
                len: 5,
                finished: true
            }
        );
        assert_eq!(f.next(b"NOOP\r\n"), Framed::Line { len: 6 });
        assert_eq!(
            f.next(b"0123456789\r\n"),
            Framed::Discard {
                len: 12,
                finished: true
            }
        );
    }

    #[test]
    fn trims() {
        assert_eq!(trim_line_end(b"A\r\n"), b"A");
        assert_eq!(trim_line_end(b"A\n"), b"A");
        assert_eq!(trim_line_end(b"A"), b"A");
    }
}
