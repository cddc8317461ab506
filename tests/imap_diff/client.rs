//! A small blocking IMAP client that records what a server answers: every
//! response is kept as raw bytes (its line with any literals inline), so the
//! normaliser sees exactly what came over the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One piece of a command: text sent as is, or a literal (synchronizing:
/// the client waits for the server's `+` before sending the bytes).
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    /// `binary`: a literal8 (`~{n}`, RFC 3516 §4.1) instead of `{n}`.
    Literal {
        bytes: Vec<u8>,
        binary: bool,
    },
}

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
pub enum ClientError {
    Io(std::io::Error),
    Closed,
    TooLong,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o error: {e}"),
            ClientError::Closed => write!(f, "connection closed by the server"),
            ClientError::TooLong => write!(f, "response larger than 16 MB"),
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// The most a single response may hold before the client gives up (the
/// corpus is a few KB; this only keeps a confused server from eating RAM).
const MAX_RESPONSE: usize = 16 << 20;

impl Client {
    pub fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    fn fill(&mut self) -> Result<(), ClientError> {
        let mut chunk = [0u8; 16384];
        // A stop and continue (SIGSTOP/SIGCONT, a frozen machine) ends a
        // read with a timeout with EINTR (signal(7)): read again.
        let n = loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        if self.buf.len() > MAX_RESPONSE {
            return Err(ClientError::TooLong);
        }
        Ok(())
    }

    fn line(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(self.buf.drain(..i + 2).collect());
            }
            self.fill()?;
        }
    }

    /// One whole response: a line, and while it ends in a literal
    /// announcement `{n}`, the n bytes and the rest of the line after them.
    pub fn response(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        loop {
            let line = self.line()?;
            let n = literal_length(&line);
            out.extend_from_slice(&line);
            let Some(n) = n else {
                return Ok(out);
            };
            if n > MAX_RESPONSE {
                return Err(ClientError::TooLong);
            }
            while self.buf.len() < n {
                self.fill()?;
            }
            out.extend(self.buf.drain(..n));
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Sends a tagged command and reads until its tagged completion.
    /// Returns every response in order (continuation requests included).
    /// A command the server refuses halfway (a tagged answer instead of a
    /// continuation for a literal) ends there, as the protocol says.
    pub fn command(&mut self, tag: &str, parts: &[Part]) -> Result<Vec<Vec<u8>>, ClientError> {
        let mut out = Vec::new();
        let mut pending = format!("{tag} ").into_bytes();
        for part in parts {
            match part {
                Part::Text(t) => pending.extend_from_slice(t.as_bytes()),
                Part::Literal { bytes, binary } => {
                    if *binary {
                        pending.push(b'~');
                    }
                    pending.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                    self.send(&pending)?;
                    pending.clear();
                    loop {
                        let r = self.response()?;
                        let cont = r.starts_with(b"+");
                        let done = is_tagged(&r, tag);
                        out.push(r);
                        if done {
                            return Ok(out);
                        }
                        if cont {
                            break;
                        }
                    }
                    self.send(bytes)?;
                }
            }
        }
        pending.extend_from_slice(b"\r\n");
        self.send(&pending)?;
        self.until_tagged(tag, &mut out)?;
        Ok(out)
    }

    /// Sends a command that the server answers with a continuation (IDLE):
    /// returns what came up to and including that continuation, or up to
    /// the tagged answer if the server refused.
    pub fn start(&mut self, tag: &str, text: &str) -> Result<(Vec<Vec<u8>>, bool), ClientError> {
        self.send(format!("{tag} {text}\r\n").as_bytes())?;
        let mut out = Vec::new();
        loop {
            let r = self.response()?;
            let cont = r.starts_with(b"+");
            let done = is_tagged(&r, tag);
            out.push(r);
            if done {
                return Ok((out, false));
            }
            if cont {
                return Ok((out, true));
            }
        }
    }

    pub fn until_tagged(&mut self, tag: &str, out: &mut Vec<Vec<u8>>) -> Result<(), ClientError> {
        loop {
            let r = self.response()?;
            let done = is_tagged(&r, tag);
            out.push(r);
            if done {
                return Ok(());
            }
        }
    }
}

fn is_tagged(response: &[u8], tag: &str) -> bool {
    response.starts_with(tag.as_bytes()) && response.get(tag.len()) == Some(&b' ')
}

/// `Some(n)` when a line (with its CRLF) ends in `{n}` or `~{n}` (a
/// server's literal is never `{n+}`).
fn literal_length(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r\n")?;
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
