//! A scripted SMTP server for testing the outbound client: a tokio listener
//! on 127.0.0.1:0 that accepts one connection and plays a script — lines it
//! expects from the client, replies it sends, a TLS handshake, a hang, a
//! drop. A client line that does not match the script fails the peer, and
//! [`Peer::finish`] turns that into a test failure. After the script, the
//! peer records whatever else the client sends until it closes, so a test
//! can check that nothing more was sent.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailc::net::stream::Stream;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long the peer waits for a client line before failing the script.
const LINE_WAIT: Duration = Duration::from_secs(10);

pub enum Step {
    /// Send a reply line (CRLF added).
    Say(String),
    /// Send bytes as they are.
    Raw(Vec<u8>),
    /// Read one line; it must start with this text (ASCII case ignored).
    Expect(String),
    /// Read these lines, all before replying to any: a client that waits
    /// for a reply between them (no pipelining) fails this step.
    ExpectPipelined(Vec<String>),
    /// Read a body up to the final dot; recorded dot-unstuffed.
    Data,
    /// Read this many bytes of whatever comes (then usually `Close`).
    ReadBytes(usize),
    /// Server side of a TLS handshake.
    Tls,
    /// Do nothing for a while.
    Sleep(Duration),
    /// Send this line prefix over and over, until the client goes away.
    Flood(Vec<u8>),
    /// Close the connection now.
    Close,
}

pub fn say(s: &str) -> Step {
    Step::Say(s.to_string())
}

pub fn expect(s: &str) -> Step {
    Step::Expect(s.to_string())
}

pub fn pipelined(lines: &[&str]) -> Step {
    Step::ExpectPipelined(lines.iter().map(|s| s.to_string()).collect())
}

/// What the peer saw.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Every command line the client sent, in order (bodies excluded).
    pub lines: Vec<String>,
    /// Bodies received with [`Step::Data`].
    pub bodies: Vec<Vec<u8>>,
    /// Lines the client sent after the script ended.
    pub after: Vec<String>,
}

pub struct Peer {
    pub addr: SocketAddr,
    handle: tokio::task::JoinHandle<Result<Transcript, String>>,
}

impl Peer {
    /// Listens and plays `script` on the first connection.
    pub async fn start(script: Vec<Step>) -> Peer {
        Peer::start_with(script, None).await
    }

    pub async fn start_tls(script: Vec<Step>, tls: tokio_rustls::TlsAcceptor) -> Peer {
        Peer::start_with(script, Some(tls)).await
    }

    async fn start_with(script: Vec<Step>, tls: Option<tokio_rustls::TlsAcceptor>) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut conn = Conn {
                stream: Stream::Plain(tcp),
                buf: Vec::new(),
                transcript: Transcript::default(),
            };
            conn.play(script, tls).await?;
            Ok(conn.transcript)
        });
        Peer { addr, handle }
    }

    /// Waits for the script to end; a deviation fails the test here.
    pub async fn finish(self) -> Transcript {
        match tokio::time::timeout(Duration::from_secs(30), self.handle).await {
            Ok(Ok(Ok(t))) => t,
            Ok(Ok(Err(e))) => panic!("scripted peer: {e}"),
            Ok(Err(e)) => panic!("scripted peer task: {e}"),
            Err(_) => panic!("scripted peer did not finish"),
        }
    }
}

struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    transcript: Transcript,
}

impl Conn {
    async fn play(
        &mut self,
        script: Vec<Step>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<(), String> {
        for (n, step) in script.into_iter().enumerate() {
            let at = |e: String| format!("step {n}: {e}");
            match step {
                Step::Say(line) => self
                    .write(format!("{line}\r\n").as_bytes())
                    .await
                    .map_err(at)?,
                Step::Raw(bytes) => self.write(&bytes).await.map_err(at)?,
                Step::Expect(want) => {
                    let got = self.line(LINE_WAIT).await.map_err(at)?;
                    check(&got, &want).map_err(at)?;
                }
                Step::ExpectPipelined(wants) => {
                    for (i, want) in wants.iter().enumerate() {
                        // The first may take its time; the others must
                        // already be on their way.
                        let wait = if i == 0 {
                            LINE_WAIT
                        } else {
                            Duration::from_secs(2)
                        };
                        let got = self
                            .line(wait)
                            .await
                            .map_err(|e| at(format!("pipelined line {i} ({want}): {e}")))?;
                        check(&got, want).map_err(at)?;
                    }
                }
                Step::Data => {
                    let mut body = Vec::new();
                    loop {
                        let line = self.raw_line(LINE_WAIT).await.map_err(at)?;
                        if line == b"." {
                            break;
                        }
                        let line = line.strip_prefix(b".").unwrap_or(&line);
                        body.extend_from_slice(line);
                        body.extend_from_slice(b"\r\n");
                    }
                    self.transcript.bodies.push(body);
                }
                Step::ReadBytes(n) => {
                    while self.buf.len() < n {
                        self.fill(LINE_WAIT).await.map_err(at)?;
                    }
                }
                Step::Tls => {
                    let acceptor = tls.clone().ok_or_else(|| at("no TLS acceptor".into()))?;
                    if !self.buf.is_empty() {
                        return Err(at("client sent data before the TLS handshake".into()));
                    }
                    self.stream
                        .upgrade(&acceptor, Duration::from_secs(10))
                        .await
                        .map_err(|e| at(format!("TLS handshake: {e}")))?;
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Flood(line) => {
                    let block = line.repeat(64);
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                    while tokio::time::Instant::now() < deadline {
                        if self.stream.write_all(&block).await.is_err() {
                            break;
                        }
                    }
                    return Ok(());
                }
                Step::Close => {
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
            }
        }
        // Record whatever else comes until the client closes.
        while let Ok(line) = self.line(Duration::from_secs(5)).await {
            self.transcript.after.push(line);
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.stream.flush().await.map_err(|e| format!("flush: {e}"))
    }

    async fn fill(&mut self, wait: Duration) -> Result<(), String> {
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout(wait, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => Err("client closed the connection".into()),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("read: {e}")),
            Err(_) => Err(format!("nothing from the client for {wait:?}")),
        }
    }

    async fn raw_line(&mut self, wait: Duration) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..i + 2).collect();
                line.truncate(i);
                return Ok(line);
            }
            self.fill(wait).await?;
        }
    }

    async fn line(&mut self, wait: Duration) -> Result<String, String> {
        let line = self.raw_line(wait).await?;
        let line = String::from_utf8_lossy(&line).into_owned();
        self.transcript.lines.push(line.clone());
        Ok(line)
    }
}

fn check(got: &str, want: &str) -> Result<(), String> {
    let ok = got.len() >= want.len()
        && got.is_char_boundary(want.len())
        && got[..want.len()].eq_ignore_ascii_case(want);
    if ok {
        Ok(())
    } else {
        Err(format!("expected {want:?}, client sent {got:?}"))
    }
}

/// A self-signed certificate for `name` and a TLS acceptor serving it.
pub fn tls_acceptor(name: &str) -> (tokio_rustls::TlsAcceptor, CertificateDer<'static>) {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert)
}
