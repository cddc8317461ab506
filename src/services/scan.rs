//! The scanner clients: one exchange per message with SpamAssassin's
//! `spamd`, rspamd and ClamAV's `clamd`, over TCP or a Unix socket, each
//! bounded in time (the caller's timeout covers connect, send and reply)
//! and in what it reads ([`MAX_REPLY`]). The wire formats are
//! `proto::scan`; what a result means under the configured policy is
//! decided elsewhere. Learning (`TELL`, `/learnspam`, `/learnham`) is here
//! too, for the IMAP side that trains the scanners.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proto::scan::clamd::{self, Outcome};
use crate::proto::scan::rspamd::{self, Envelope, Learned};
use crate::proto::scan::spamd::{self, Class, Command};
use crate::proto::scan::{Invalid, Parse, SpamReport};

/// The most bytes read of any scanner's reply: a verdict with its rules
/// fits in a few KiB; a daemon that keeps sending is cut off here.
pub const MAX_REPLY: usize = 1024 * 1024;

/// Where a scanner listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`, resolved when connecting (a literal address needs no
    /// DNS).
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => f.write_str(a),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why a scan has no result.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot reach the scanner at {0}: {1}")]
    Unreachable(String, std::io::Error),
    #[error("the scanner at {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("the scanner at {0} failed: {1}")]
    Io(String, std::io::Error),
    #[error("bad reply from the scanner at {0}: {1}")]
    Protocol(String, Invalid),
    #[error("the scanner at {0} sent more than {MAX_REPLY} bytes")]
    ReplyTooLong(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(ep: &Endpoint) -> std::io::Result<Box<dyn Stream>> {
    Ok(match ep {
        Endpoint::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a.as_str()).await?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
        Endpoint::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
    })
}

/// Sends `parts` and reads one reply with `parse`, all within `timeout`.
/// `half_close`: shut the sending side after the request (spamd reads to
/// its Content-length either way; spamc closes, so do we).
async fn exchange<T>(
    ep: &Endpoint,
    parts: &[&[u8]],
    half_close: bool,
    timeout: Duration,
    parse: impl Fn(&[u8], bool) -> Result<Parse<T>, Invalid>,
) -> Result<T, ScanError> {
    let name = ep.to_string();
    let work = async {
        let mut s = connect(ep)
            .await
            .map_err(|e| ScanError::Unreachable(name.clone(), e))?;
        let mut write_error = None;
        for p in parts {
            if let Err(e) = s.write_all(p).await {
                // The daemon may have answered and closed early (clamd
                // past its StreamMaxLength): read what it said.
                write_error = Some(e);
                break;
            }
        }
        if write_error.is_none() {
            if let Err(e) = s.flush().await {
                write_error = Some(e);
            } else if half_close {
                let _ = s.shutdown().await;
            }
        }
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = match s.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) if buf.is_empty() => {
                    return Err(ScanError::Io(name.clone(), write_error.unwrap_or(e)));
                }
                // A reset after a partial reply: judge what arrived.
                Err(_) => 0,
            };
            let eof = n == 0;
            if buf.len() + n > MAX_REPLY {
                return Err(ScanError::ReplyTooLong(name.clone()));
            }
            buf.extend_from_slice(&chunk[..n]);
            if eof
                && buf.is_empty()
                && let Some(e) = write_error
            {
                return Err(ScanError::Io(name.clone(), e));
            }
            match parse(&buf, eof) {
                Ok(Parse::Done(t)) => return Ok(t),
                Ok(Parse::Incomplete) if !eof => continue,
                Ok(Parse::Incomplete) => {
                    return Err(ScanError::Protocol(
                        name.clone(),
                        Invalid("reply cut short".into()),
                    ));
                }
                Err(e) => return Err(ScanError::Protocol(name.clone(), e)),
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ScanError::Timeout(name, timeout)),
    }
}

/// Asks spamd (`SYMBOLS`) for its verdict on `message`; `user` selects
/// its per-user preferences.
pub async fn spamd_scan(
    ep: &Endpoint,
    user: Option<&str>,
    message: &[u8],
    timeout: Duration,
) -> Result<SpamReport, ScanError> {
    let head = spamd::request(Command::Symbols, user, message.len());
    let reply = exchange(ep, &[&head, message], true, timeout, spamd::parse_reply).await?;
    spamd::report(&reply, Command::Symbols).map_err(|e| ScanError::Protocol(ep.to_string(), e))
}

/// Teaches spamd's local (Bayes) database that `message` is `class`
/// (`TELL` with `Set: local`; spamd must run with `--allow-tell`).
/// `Ok(true)`: learned; `Ok(false)`: it had learned it before.
pub async fn spamd_learn(
    ep: &Endpoint,
    class: Class,
    user: Option<&str>,
    message: &[u8],
    timeout: Duration,
) -> Result<bool, ScanError> {
    let head = spamd::tell(class, user, message.len());
    let reply = exchange(ep, &[&head, message], true, timeout, spamd::parse_reply).await?;
    spamd::tell_ok(&reply).map_err(|e| ScanError::Protocol(ep.to_string(), e))
}

/// The `Host` field for an endpoint.
fn http_host(ep: &Endpoint) -> &str {
    match ep {
        Endpoint::Tcp(a) => a,
        Endpoint::Unix(_) => "localhost",
    }
}

/// Asks rspamd (`/checkv2` on its normal worker) for its verdict.
pub async fn rspamd_scan(
    ep: &Endpoint,
    env: &Envelope<'_>,
    message: &[u8],
    timeout: Duration,
) -> Result<SpamReport, ScanError> {
    let head = rspamd::check_request(http_host(ep), env, message.len());
    let resp = exchange(
        ep,
        &[&head, message],
        false,
        timeout,
        rspamd::parse_response,
    )
    .await?;
    rspamd::check_report(&resp).map_err(|e| ScanError::Protocol(ep.to_string(), e))
}

/// Teaches rspamd's classifier (`/learnspam` or `/learnham` on its
/// controller worker; `password` when the controller asks for one).
pub async fn rspamd_learn(
    ep: &Endpoint,
    spam: bool,
    password: Option<&str>,
    message: &[u8],
    timeout: Duration,
) -> Result<Learned, ScanError> {
    let head = rspamd::learn_request(http_host(ep), spam, password, message.len());
    let resp = exchange(
        ep,
        &[&head, message],
        false,
        timeout,
        rspamd::parse_response,
    )
    .await?;
    rspamd::learn_result(&resp).map_err(|e| ScanError::Protocol(ep.to_string(), e))
}

/// Streams `message` to clamd (`zINSTREAM`). [`Outcome::TooLong`]: longer
/// than clamd's `StreamMaxLength`.
pub async fn clamd_scan(
    ep: &Endpoint,
    message: &[u8],
    timeout: Duration,
) -> Result<Outcome, ScanError> {
    let headers: Vec<[u8; 4]> = message
        .chunks(clamd::CHUNK)
        .map(|c| clamd::chunk_header(c.len()))
        .collect();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(headers.len() * 2 + 2);
    parts.push(clamd::INSTREAM);
    for (h, c) in headers.iter().zip(message.chunks(clamd::CHUNK)) {
        parts.push(h);
        parts.push(c);
    }
    parts.push(&clamd::END);
    let line = exchange(ep, &parts, false, timeout, clamd::parse_line).await?;
    clamd::outcome(&line).map_err(|e| ScanError::Protocol(ep.to_string(), e))
}

impl From<&crate::tables::ScanEndpoint> for Endpoint {
    fn from(e: &crate::tables::ScanEndpoint) -> Endpoint {
        match e {
            crate::tables::ScanEndpoint::Tcp(a) => Endpoint::Tcp(a.to_string()),
            crate::tables::ScanEndpoint::Unix(p) => Endpoint::Unix(p.clone()),
        }
    }
}

/// Asks every scanner of `table` about `message` at once, each within the
/// table's timeout (so all of them within it too). A message over
/// `max-size` is not sent to any.
pub async fn scan_message(
    table: &crate::tables::ScanTable,
    env: &Envelope<'_>,
    message: &[u8],
) -> crate::inbound::scan::Results {
    use crate::inbound::scan::{Outcome as O, Results};
    if message.len() as u64 > table.max_size {
        return Results {
            too_large: Some(message.len() as u64),
            ..Results::default()
        };
    }
    let timeout = Duration::from_millis(table.timeout_ms);
    fn failed<T>(e: ScanError) -> crate::inbound::scan::Outcome<T> {
        crate::inbound::scan::Outcome::Failed(e.to_string())
    }
    let spamd = async {
        match &table.spamd {
            Some(ep) => Some(
                spamd_scan(&ep.into(), env.user, message, timeout)
                    .await
                    .map_or_else(failed, O::Done),
            ),
            None => None,
        }
    };
    let rspamd = async {
        match &table.rspamd {
            Some(ep) => Some(
                rspamd_scan(&ep.into(), env, message, timeout)
                    .await
                    .map_or_else(failed, O::Done),
            ),
            None => None,
        }
    };
    let clamd = async {
        match &table.clamd {
            Some(ep) => Some(match clamd_scan(&ep.into(), message, timeout).await {
                Ok(Outcome::Scanned(v)) => O::Done(v),
                Ok(Outcome::TooLong) => O::Skipped("over its StreamMaxLength".into()),
                Err(e) => failed(e),
            }),
            None => None,
        }
    };
    let (spamd, rspamd, clamd) = tokio::join!(spamd, rspamd, clamd);
    Results {
        spamd,
        rspamd,
        clamd,
        too_large: None,
    }
}

/// clamd's version line (`ClamAV 1.4.3/...`): a readiness probe.
pub async fn clamd_version(ep: &Endpoint, timeout: Duration) -> Result<String, ScanError> {
    exchange(ep, &[clamd::VERSION], false, timeout, clamd::parse_line).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A fake daemon that reads the request head then answers `reply`
    /// (for the client's own bounds; the real daemons are in the interop
    /// tests).
    async fn fake(reply: Vec<u8>, read_all: bool) -> Endpoint {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    if read_all {
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    } else {
                        let _ = s.read(&mut buf).await;
                    }
                    let _ = s.write_all(&reply).await;
                });
            }
        });
        Endpoint::Tcp(addr.to_string())
    }

    #[tokio::test]
    async fn spamd_roundtrip_and_bounds() {
        let ep = fake(
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE"
                .to_vec(),
            true,
        )
        .await;
        let r = spamd_scan(
            &ep,
            None,
            b"Subject: x\r\n\r\nbody\r\n",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(r.is_spam);
        assert_eq!(r.symbols, vec!["GTUBE"]);

        // Garbage: a protocol error, not a verdict.
        let ep = fake(b"HELLO THERE\r\n\r\n".to_vec(), true).await;
        let e = spamd_scan(&ep, None, b"x", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, ScanError::Protocol(..)), "{e}");

        // 2 MiB of head: cut off at MAX_REPLY or the head cap.
        let ep = fake(vec![b'A'; 2 * MAX_REPLY], true).await;
        let e = spamd_scan(&ep, None, b"x", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ScanError::Protocol(..) | ScanError::ReplyTooLong(_)),
            "{e}"
        );
    }

    #[tokio::test]
    async fn timeout_and_unreachable() {
        // Accepts and never answers.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Endpoint::Tcp(l.local_addr().unwrap().to_string());
        let hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                conns.push(s);
            }
        });
        let t = std::time::Instant::now();
        let e = clamd_scan(&ep, b"x", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, ScanError::Timeout(..)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        hold.abort();

        let dir = tempfile::tempdir().unwrap();
        let ep = Endpoint::Unix(dir.path().join("nothing.sock"));
        let e = spamd_scan(&ep, None, b"x", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, ScanError::Unreachable(..)), "{e}");
    }

    #[tokio::test]
    async fn clamd_over_unix_and_early_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                // Reads the command and 1 KiB, then answers as clamd does
                // past StreamMaxLength and closes.
                let mut buf = vec![0u8; 1024];
                let _ = s.read_exact(&mut buf).await;
                let _ = s.write_all(b"INSTREAM size limit exceeded. ERROR\0").await;
            }
        });
        let ep = Endpoint::Unix(path);
        let big = vec![b'x'; 8 * 1024 * 1024];
        let r = clamd_scan(&ep, &big, Duration::from_secs(5)).await.unwrap();
        assert_eq!(r, Outcome::TooLong);
    }

    #[tokio::test]
    async fn rspamd_fake_reply() {
        let body = br#"{"score":20.5,"required_score":15,"action":"reject","symbols":{"GTUBE":{"score":0}}}"#;
        let mut reply =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        reply.extend_from_slice(body);
        let ep = fake(reply, false).await;
        let r = rspamd_scan(&ep, &Envelope::default(), b"x", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.action, Some(crate::proto::scan::RspamdAction::Reject));
        assert_eq!(r.score, 20.5);
    }
}
