//! Message bodies: the DATA receiver (dot-stuffed, ends at CRLF.CRLF) and
//! the BDAT receiver (counted chunks). Both are strict about line ends: a
//! bare CR or bare LF anywhere marks the message as invalid (SMTP smuggling,
//! CVE-2023-51764), and only `<CR><LF>.<CR><LF>` ends DATA — never `<LF>.<LF>`.
//! Bytes past the size limit are counted but not kept.

/// Tracks bare CR and bare LF across any split of a byte stream.
#[derive(Debug, Clone, Default)]
pub struct NewlineCheck {
    saw_cr: bool,
    pub bare_cr: bool,
    pub bare_lf: bool,
}

impl NewlineCheck {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match (self.saw_cr, b) {
                (true, b'\n') => self.saw_cr = false,
                (true, b'\r') => self.bare_cr = true,
                (true, _) => {
                    self.bare_cr = true;
                    self.saw_cr = false;
                }
                (false, b'\r') => self.saw_cr = true,
                (false, b'\n') => self.bare_lf = true,
                (false, _) => {}
            }
        }
    }

    /// At the end of the stream: a trailing CR is bare too.
    pub fn finish(&mut self) {
        if self.saw_cr {
            self.bare_cr = true;
            self.saw_cr = false;
        }
    }

    pub fn is_clean(&self) -> bool {
        !self.bare_cr && !self.bare_lf
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// At the start of a line (after CRLF, or at the very start).
    LineStart,
    /// Inside a line.
    Mid,
    /// Inside a line, after a CR.
    SawCr,
    /// A line started with `.`.
    Dot,
    /// A line started with `.` then CR.
    DotCr,
}

/// Receives the body of a DATA command.
#[derive(Debug, Clone)]
pub struct DataReceiver {
    st: St,
    limit: usize,
    /// Bytes of the message (after unstuffing), including any not kept.
    pub size: usize,
    pub bare_cr: bool,
    pub bare_lf: bool,
}

impl DataReceiver {
    pub fn new(limit: usize) -> DataReceiver {
        DataReceiver {
            st: St::LineStart,
            limit,
            size: 0,
            bare_cr: false,
            bare_lf: false,
        }
    }

    pub fn oversize(&self) -> bool {
        self.size > self.limit
    }

    fn emit(&mut self, out: &mut Vec<u8>, b: u8) {
        self.size += 1;
        if self.size <= self.limit {
            out.push(b);
        }
    }

    /// Consumes `input`, appending message bytes to `out`. Returns how many
    /// bytes were consumed and whether the end of data was reached (the rest
    /// of `input` then belongs to the next command).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        for (i, &b) in input.iter().enumerate() {
            match self.st {
                St::LineStart => match b {
                    b'.' => self.st = St::Dot,
                    b'\r' => self.st = St::SawCr,
                    b'\n' => {
                        // Bare LF: kept, but it does not start a new line, so
                        // `\n.\n` can never end the message.
                        self.bare_lf = true;
                        self.emit(out, b);
                        self.st = St::Mid;
                    }
                    _ => {
                        self.emit(out, b);
                        self.st = St::Mid;
                    }
                },
                St::Mid => match b {
                    b'\r' => self.st = St::SawCr,
                    b'\n' => {
                        self.bare_lf = true;
                        self.emit(out, b);
                    }
                    _ => self.emit(out, b),
                },
                St::SawCr => match b {
                    b'\n' => {
                        self.emit(out, b'\r');
                        self.emit(out, b'\n');
                        self.st = St::LineStart;
                    }
                    b'\r' => {
                        self.bare_cr = true;
                        self.emit(out, b'\r');
                    }
                    _ => {
                        self.bare_cr = true;
                        self.emit(out, b'\r');
                        self.emit(out, b);
                        self.st = St::Mid;
                    }
                },
                St::Dot => match b {
                    b'\r' => self.st = St::DotCr,
                    _ => {
                        // The leading dot was stuffing: drop it (RFC 5321 §4.5.2).
                        if b == b'\n' {
                            self.bare_lf = true;
                        }
                        self.emit(out, b);
                        self.st = St::Mid;
                    }
                },
                St::DotCr => match b {
                    b'\n' => {
                        self.st = St::LineStart;
                        return (i + 1, true);
                    }
                    b'\r' => {
                        self.bare_cr = true;
                        self.emit(out, b'\r');
                        self.st = St::SawCr;
                    }
                    _ => {
                        self.bare_cr = true;
                        self.emit(out, b'\r');
                        self.emit(out, b);
                        self.st = St::Mid;
                    }
                },
            }
        }
        (input.len(), false)
    }
}

/// Receives one BDAT chunk of a known size.
#[derive(Debug, Clone)]
pub struct BdatReceiver {
    left: usize,
}

impl BdatReceiver {
    pub fn new(size: usize) -> BdatReceiver {
        BdatReceiver { left: size }
    }

    pub fn remaining(&self) -> usize {
        self.left
    }

    /// Takes up to the rest of the chunk from `input`; returns bytes consumed
    /// and whether the chunk is complete. Bytes beyond `keep_limit` total in
    /// `out` are dropped (the message is already too big).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        keep_limit: usize,
        check: &mut NewlineCheck,
    ) -> (usize, bool) {
        let n = input.len().min(self.left);
        let chunk = &input[..n];
        check.feed(chunk);
        let room = keep_limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.left -= n;
        (n, self.left == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, usize, bool, DataReceiver) {
        let mut r = DataReceiver::new(1 << 20);
        let mut out = Vec::new();
        let (n, done) = r.feed(input, &mut out);
        (out, n, done, r)
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        let (out, n, done, r) = run(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert!(done);
        assert_eq!(out, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(n, 24);
        assert!(!r.bare_lf && !r.bare_cr);
    }

    #[test]
    fn empty_message() {
        let (out, n, done, _) = run(b".\r\n");
        assert!(done);
        assert!(out.is_empty());
        assert_eq!(n, 3);
    }

    #[test]
    fn unstuffs_dots() {
        let (out, _, done, _) = run(b"..hidden\r\n...\r\n.x\r\n.\r\n");
        assert!(done);
        assert_eq!(out, b".hidden\r\n..\r\nx\r\n");
    }

    #[test]
    fn smuggling_variants_do_not_end_data_and_are_flagged() {
        for (input, lf, cr) in [
            (&b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n"[..], true, false),
            (&b"a\r\n.\nRCPT TO:<x@y>\r\n.\r\n"[..], true, false),
            (&b"a\n.\r\nDATA\r\n.\r\n"[..], true, false),
            (&b"a\r.\r\nb\r\n.\r\n"[..], false, true),
            (&b"a\r\n.\rMAIL\r\n.\r\n"[..], false, true),
            (&b"a\r\r\n.\r\n"[..], false, true),
        ] {
            let (_, n, done, r) = run(input);
            assert!(done, "{input:?}");
            assert_eq!(n, input.len(), "ended early on {input:?}");
            assert_eq!((r.bare_lf, r.bare_cr), (lf, cr), "{input:?}");
        }
    }

    #[test]
    fn any_split_gives_the_same_result() {
        let input = b"Subject: x\r\n\r\n..a\r\nb\n\r\n.\r\nNEXT";
        let (whole, n_whole, _, r_whole) = run(input);
        for cut in 0..input.len() {
            let mut r = DataReceiver::new(1 << 20);
            let mut out = Vec::new();
            let (n1, d1) = r.feed(&input[..cut], &mut out);
            assert!(d1 || n1 == cut);
            let (n2, d2) = if d1 {
                (0, true)
            } else {
                r.feed(&input[cut..], &mut out)
            };
            assert!(d1 || d2);
            assert_eq!(out, whole, "cut at {cut}");
            assert_eq!(n1 + n2, n_whole);
            assert_eq!(r.bare_lf, r_whole.bare_lf);
        }
    }

    #[test]
    fn size_limit_counts_but_does_not_keep() {
        let mut r = DataReceiver::new(5);
        let mut out = Vec::new();
        let (_, done) = r.feed(b"0123456789\r\n.\r\n", &mut out);
        assert!(done);
        assert!(r.oversize());
        assert_eq!(out, b"01234");
        assert_eq!(r.size, 12);
    }

    #[test]
    fn bdat_chunks_and_newline_check() {
        let mut check = NewlineCheck::default();
        let mut out = Vec::new();
        let mut b = BdatReceiver::new(6);
        assert_eq!(b.feed(b"ab\r", &mut out, 100, &mut check), (3, false));
        assert_eq!(b.feed(b"\ncdEXTRA", &mut out, 100, &mut check), (3, true));
        assert_eq!(out, b"ab\r\ncd");
        check.finish();
        assert!(check.is_clean());
        let mut check = NewlineCheck::default();
        check.feed(b"x\ny");
        assert!(check.bare_lf);
        let mut check = NewlineCheck::default();
        check.feed(b"x\r");
        check.finish();
        assert!(check.bare_cr);
    }
}
