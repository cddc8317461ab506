//! A TLS client for tests: rustls with a verifier that accepts the server's
//! self-signed development certificate (and nothing in it is checked — test
//! use only).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    Arc::new(config)
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// TLS over an existing TCP stream (after STARTTLS/STLS).
pub fn upgrade(tcp: TcpStream, sni: &str) -> Tls {
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    let conn = ClientConnection::new(config(), name).expect("client connection");
    let mut tls = StreamOwned::new(conn, tcp);
    // Drive the handshake now, so errors show up here.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

/// TLS over an existing TCP stream, offering these ALPN protocols.
pub fn upgrade_alpn(tcp: TcpStream, sni: &str, alpn: &[&[u8]]) -> Tls {
    let mut c = (*config()).clone();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    let conn = ClientConnection::new(Arc::new(c), name).expect("client connection");
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

/// Implicit TLS.
pub fn connect(addr: SocketAddr) -> Tls {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    upgrade(tcp, "mail.example.test")
}

/// A line-oriented client over any stream.
pub struct Lines<S: Read + Write> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Lines<S> {
    pub fn new(stream: S) -> Lines<S> {
        Lines {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn line(&mut self) -> std::io::Result<String> {
        self.raw_line()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
    }

    /// One line without its CRLF, bytes as sent.
    pub fn raw_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..i + 2).collect();
                line.truncate(i);
                return Ok(line);
            }
            let mut chunk = [0u8; 8192];
            // A stop and continue (SIGSTOP/SIGCONT, a frozen machine) ends a
            // read with a timeout with EINTR (signal(7)): read again.
            let n = loop {
                match self.stream.read(&mut chunk) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.stream.write_all(format!("{line}\r\n").as_bytes())?;
        self.stream.flush()
    }

    pub fn cmd(&mut self, line: &str) -> std::io::Result<String> {
        self.send(line)?;
        self.line()
    }

    /// A POP3 multi-line body up to `.`, dot-unstuffed, as raw bytes with CRLF.
    pub fn multiline(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let line = self.raw_line()?;
            if line == b"." {
                return Ok(out);
            }
            let line = if line.starts_with(b"..") {
                &line[1..]
            } else {
                &line[..]
            };
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }
}
