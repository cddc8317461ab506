//! The outbound SMTP client's transport: TCP connect (from a chosen source
//! address, bounded in time), implicit TLS or STARTTLS with rustls, the
//! RFC 5321 §4.5.3.2 timeouts, and the bounded reading of replies. The
//! dialogue itself is decided by the sans-I/O machines of
//! `session::smtp_out`; this driver writes what they say and feeds them
//! what the server answers.
//!
//! TLS: opportunistic by default — a certificate that does not verify still
//! encrypts, and the verification result is recorded in [`TlsOutcome`] for
//! TLS reporting; with [`TlsPolicy::RequireVerified`] a certificate that does
//! not verify for [`ClientSettings::server_name`] fails the handshake.
//!
//! Failure mid-transaction: `send` returns `Ok` with every recipient not yet
//! decided `Deferred` (recipients a RCPT already refused keep their
//! outcome); the connection is then unusable and a later `send` returns
//! `ConnError::Temporary` without writing anything.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::proto::smtp::client::{self, Capabilities, DotStuffer, Parsed};
use crate::proto::smtp::reply::Reply;
use crate::session::smtp_out::{Fault, OpenConfig, OpenStep, Opening, Transaction, TxStep};

pub use crate::session::smtp_out::{
    ConnError, OutMessage, OutRcpt, RcptOutcome, ReplyInfo, Stage, TlsPolicy,
};

/// Timeouts of the client. The defaults are RFC 5321 §4.5.3.2's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// TCP connect (RFC 5321 names none; Postfix uses 30 s).
    pub connect: Duration,
    /// Initial 220: 5 minutes.
    pub greeting: Duration,
    /// EHLO, HELO, STARTTLS, AUTH, RSET replies (5 minutes, like MAIL).
    pub command: Duration,
    /// The TLS handshake.
    pub tls_handshake: Duration,
    /// MAIL: 5 minutes.
    pub mail: Duration,
    /// RCPT: 5 minutes.
    pub rcpt: Duration,
    /// DATA initiation (the 354): 2 minutes.
    pub data_init: Duration,
    /// Each block of the body written: 3 minutes.
    pub data_block: Duration,
    /// The reply to the final dot: 10 minutes.
    pub data_end: Duration,
    /// QUIT's reply; nothing depends on it.
    pub quit: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        ClientTimeouts {
            connect: Duration::from_secs(30),
            greeting: min(5),
            command: min(5),
            tls_handshake: min(5),
            mail: min(5),
            rcpt: min(5),
            data_init: min(2),
            data_block: min(3),
            data_end: min(10),
            quit: Duration::from_secs(30),
        }
    }
}

impl ClientTimeouts {
    /// The same limit everywhere (tests).
    pub fn uniform(d: Duration) -> ClientTimeouts {
        ClientTimeouts {
            connect: d,
            greeting: d,
            command: d,
            tls_handshake: d,
            mail: d,
            rcpt: d,
            data_init: d,
            data_block: d,
            data_end: d,
            quit: d,
        }
    }

    pub fn for_stage(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Connect => self.connect,
            Stage::Greeting => self.greeting,
            Stage::Ehlo | Stage::Helo | Stage::StartTls | Stage::Auth | Stage::Rset => self.command,
            Stage::SizeCheck | Stage::Local => self.command,
            Stage::TlsHandshake => self.tls_handshake,
            Stage::Mail => self.mail,
            Stage::Rcpt => self.rcpt,
            Stage::Data => self.data_init,
            Stage::DataBlock => self.data_block,
            Stage::DataEnd => self.data_end,
            Stage::Quit => self.quit,
        }
    }
}

/// How to reach one destination.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Our host name for EHLO.
    pub helo: String,
    pub tls: TlsPolicy,
    /// TLS from the first byte (a port-465 smarthost).
    pub implicit_tls: bool,
    /// The MX or relay host name: SNI and the name the certificate must
    /// carry.
    pub server_name: String,
    /// User and password for AUTH PLAIN (or LOGIN); only ever sent over TLS.
    pub auth: Option<(String, String)>,
    /// Source address to bind before connecting.
    pub source: Option<IpAddr>,
    pub timeouts: ClientTimeouts,
    /// Trust anchors for certificate verification.
    pub roots: Arc<rustls::RootCertStore>,
    /// How the server's certificate is judged.
    pub cert_check: CertCheck,
}

/// How the server's certificate is judged: by WebPKI for `server_name`
/// against `roots`, or against DANE TLSA records (RFC 7672). Whether a
/// failed check fails the handshake is [`ClientSettings::tls`]'s
/// business: only `RequireVerified` makes it fatal.
#[derive(Debug, Clone, Default)]
pub enum CertCheck {
    #[default]
    WebPki,
    /// Usable TLSA records, and the reference names for DANE-TA (the MX
    /// host name).
    Dane {
        records: Arc<Vec<crate::outbound::dane::Tlsa>>,
        names: Vec<String>,
    },
}

/// Why TLS did not meet the policy, for TLS-RPT (RFC 8460 §4.3).
pub type TlsFailure = (crate::outbound::tlsrpt::FailureType, String);

impl TlsPolicy {
    /// The policy and the implicit-TLS flag a route's `tls` asks for
    /// (`implicit` is TLS from the first byte with a verified certificate).
    pub fn from_route(t: crate::tables::OutboundTls) -> (TlsPolicy, bool) {
        use crate::tables::OutboundTls as T;
        match t {
            T::Opportunistic => (TlsPolicy::Opportunistic, false),
            T::Require => (TlsPolicy::Require, false),
            T::RequireVerified => (TlsPolicy::RequireVerified, false),
            T::Implicit => (TlsPolicy::RequireVerified, true),
        }
    }
}

/// Where the system keeps its CA bundle (Debian, Fedora, Alpine, NixOS,
/// the BSDs); `SSL_CERT_FILE` first when set.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
];

/// Trust anchors: the system's CA bundle (the first that exists, when
/// `system`) and every PEM file of `extra` (`outbound { ca-file }`). A
/// missing or unreadable extra file is an error naming it; an unparsable
/// certificate in the system bundle is skipped.
pub fn trust_anchors(
    extra: &[std::path::PathBuf],
    system: bool,
) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if system {
        let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
        let bundle = from_env
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
            .find(|p| p.is_file());
        if let Some(path) = bundle
            && let Ok(certs) = CertificateDer::pem_file_iter(&path)
        {
            let certs: Vec<_> = certs.flatten().collect();
            roots.add_parsable_certificates(certs);
        }
    }
    for path in extra {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in the file", path.display()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// What TLS the connection got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOutcome {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The certificate chain verified for the server name.
    pub verified: bool,
    /// Why it did not.
    pub verify_error: Option<String>,
    /// The same, as an RFC 8460 failure type.
    pub failure: Option<TlsFailure>,
}

enum Wire {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Taken for a TLS handshake that did not finish.
    Gone,
}

impl Wire {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf).await,
            Wire::Tls(s) => s.read(buf).await,
            Wire::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Wire::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Wire::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Wire::Plain(s) => s.shutdown().await,
            Wire::Tls(s) => s.shutdown().await,
            Wire::Gone => Ok(()),
        };
    }
}

/// An open connection to a server, ready for transactions.
pub struct Connection {
    wire: Wire,
    /// Bytes read and not yet parsed (at most one reply's worth plus one
    /// read).
    buf: Vec<u8>,
    caps: Capabilities,
    tls: Option<TlsOutcome>,
    peer_name: String,
    peer: SocketAddr,
    /// Our end of the connection (TLS-RPT `sending-mta-ip`).
    local: Option<SocketAddr>,
    timeouts: ClientTimeouts,
    /// Set once the connection must not be used again.
    broken: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer_name", &self.peer_name)
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .field("caps", &self.caps)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

const READ_CHUNK: usize = 8192;
/// The body is written in blocks of this size, each within the data-block
/// timeout.
const BODY_BLOCK: usize = 64 * 1024;

impl Connection {
    /// TCP connect (bounded), greeting, EHLO (HELO fallback), STARTTLS when
    /// offered, EHLO again, AUTH when the settings ask for it.
    pub async fn open(addr: SocketAddr, s: &ClientSettings) -> Result<Connection, ConnError> {
        Self::open_reporting(addr, s).await.map_err(|(e, _, _)| e)
    }

    /// Like [`Connection::open`]; a failure also says, when TLS was the
    /// reason (no STARTTLS where TLS is required, a handshake or
    /// certificate check that failed), which RFC 8460 failure it was, and
    /// our end of the connection when there was one (TLS-RPT's
    /// `sending-mta-ip`).
    pub async fn open_reporting(
        addr: SocketAddr,
        s: &ClientSettings,
    ) -> Result<Connection, (ConnError, Option<TlsFailure>, Option<SocketAddr>)> {
        let mut tls_failure = None;
        let mut local = None;
        Self::open_inner(addr, s, &mut tls_failure, &mut local)
            .await
            .map_err(|e| (e, tls_failure, local))
    }

    async fn open_inner(
        addr: SocketAddr,
        s: &ClientSettings,
        tls_failure: &mut Option<TlsFailure>,
        local_out: &mut Option<SocketAddr>,
    ) -> Result<Connection, ConnError> {
        use crate::outbound::tlsrpt::FailureType;
        let tcp = connect(addr, s.source, s.timeouts.connect).await?;
        let local = tcp.local_addr().ok();
        *local_out = local;
        let mut conn = Connection {
            local,
            wire: Wire::Plain(tcp),
            buf: Vec::new(),
            caps: Capabilities::default(),
            tls: None,
            peer_name: s.server_name.clone(),
            peer: addr,
            timeouts: s.timeouts,
            broken: None,
        };
        if s.implicit_tls {
            conn.handshake(s, tls_failure).await?;
        }
        let mut opening = Opening::new(OpenConfig {
            helo: s.helo.clone(),
            tls: s.tls,
            tls_active: s.implicit_tls,
            auth: s.auth.clone(),
        });
        let mut step = match conn.read_reply(Stage::Greeting).await {
            Ok(r) => opening.on_reply(&r),
            Err(f) => conn.open_fault(&mut opening, &f),
        };
        loop {
            step = match step {
                OpenStep::Send(bytes) => {
                    let stage = opening.expecting();
                    let reply = match conn.write(&bytes, stage).await {
                        Ok(()) => conn.read_reply(stage).await,
                        Err(f) => Err(f),
                    };
                    match reply {
                        Ok(r) => opening.on_reply(&r),
                        Err(f) => conn.open_fault(&mut opening, &f),
                    }
                }
                OpenStep::StartTls => {
                    // Anything the server sent after its 220 would be read
                    // as if it came over TLS: STARTTLS response injection.
                    if !conn.buf.is_empty() {
                        return Err(ConnError::Temporary(
                            "the server sent data after its reply to STARTTLS".into(),
                        ));
                    }
                    conn.handshake(s, tls_failure).await?;
                    opening.tls_started()
                }
                OpenStep::Ready(caps) => {
                    conn.caps = caps;
                    return Ok(conn);
                }
                OpenStep::Fail(e) => {
                    if opening.starttls_missing() {
                        *tls_failure = Some((FailureType::StarttlsNotSupported, e.to_string()));
                    }
                    // Refused by a reply: the dialogue is still in step, so
                    // end it properly (RFC 5321 §3.1); after a fault, just
                    // close.
                    conn.quit().await;
                    return Err(e);
                }
            };
        }
    }

    fn open_fault(&mut self, opening: &mut Opening, f: &Fault) -> OpenStep {
        self.broken = Some(f.to_string());
        OpenStep::Fail(opening.fault(f))
    }

    pub fn tls(&self) -> Option<&TlsOutcome> {
        self.tls.as_ref()
    }

    /// The server's name (for a DSN's `Remote-MTA`).
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Our address on this connection (TLS-RPT `sending-mta-ip`).
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.local.map(|a| a.ip())
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// False once a transaction ended in a way that leaves the dialogue in
    /// an unknown state (timeout, lost connection, protocol error, 421).
    pub fn is_usable(&self) -> bool {
        self.broken.is_none()
    }

    /// One transaction: MAIL, RCPTs, DATA (pipelined when offered), RSET
    /// after one that failed before its final dot. `Err` only when the
    /// connection was already unusable; otherwise one outcome per
    /// recipient, in order.
    pub async fn send(&mut self, m: &OutMessage<'_>) -> Result<Vec<RcptOutcome>, ConnError> {
        if let Some(why) = &self.broken {
            return Err(ConnError::Temporary(format!(
                "connection to {} not usable: {why}",
                self.peer_name
            )));
        }
        let (mut tx, mut step) = Transaction::start(m, &self.caps);
        loop {
            let io = match step {
                TxStep::Done(result) => {
                    if !result.reusable {
                        self.broken = Some(
                            result
                                .outcomes
                                .iter()
                                .find(|o| matches!(o, RcptOutcome::Deferred(_)))
                                .map_or("the transaction ended abnormally".into(), |o| {
                                    o.info().to_string()
                                }),
                        );
                    }
                    return Ok(result.outcomes);
                }
                TxStep::Send(bytes) => {
                    let stage = tx.expecting();
                    if bytes.is_empty() {
                        Ok(())
                    } else {
                        self.write(&bytes, stage).await
                    }
                }
                TxStep::SendBody => {
                    let r = self.write_body(m.body).await;
                    tx.body_sent();
                    r
                }
            };
            let reply = match io {
                Ok(()) => self.read_reply(tx.expecting()).await,
                Err(f) => Err(f),
            };
            step = match reply {
                Ok(r) => tx.on_reply(&r),
                Err(f) => TxStep::Done(tx.fault(&f)),
            };
        }
    }

    /// QUIT, its reply (briefly), and close.
    pub async fn quit(mut self) {
        if self.broken.is_none() && self.write(client::QUIT, Stage::Quit).await.is_ok() {
            let _ = self.read_reply(Stage::Quit).await;
        }
        let t = self.timeouts.quit;
        let _ = tokio::time::timeout(t, self.wire.shutdown()).await;
    }

    async fn write(&mut self, bytes: &[u8], stage: Stage) -> Result<(), Fault> {
        let t = self.timeouts.for_stage(stage);
        match tokio::time::timeout(t, self.wire.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Fault::Io(e.to_string())),
            Err(_) => Err(Fault::Timeout),
        }
    }

    /// The body, dot-stuffed, in blocks, then the final dot.
    async fn write_body(&mut self, body: &[u8]) -> Result<(), Fault> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(BODY_BLOCK + BODY_BLOCK / 16);
        for block in body.chunks(BODY_BLOCK) {
            out.clear();
            stuffer.feed(block, &mut out);
            self.write(&out, Stage::DataBlock).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.write(&out, Stage::DataBlock).await
    }

    /// One reply within the stage's timeout. The buffer holds at most one
    /// reply (bounded by the parser's line and line-count limits) plus one
    /// read; it is parsed again only when a line may have ended, so a
    /// server dribbling bytes costs linear time.
    async fn read_reply(&mut self, stage: Stage) -> Result<Reply, Fault> {
        let t = self.timeouts.for_stage(stage);
        let read = async {
            let mut chunk = [0u8; READ_CHUNK];
            let mut parse = true;
            loop {
                if parse {
                    match client::parse_reply(&self.buf) {
                        Ok(Parsed::Reply { reply, len }) => {
                            self.buf.drain(..len);
                            return Ok(reply);
                        }
                        Ok(Parsed::NeedMore) => {}
                        Err(e) => return Err(Fault::Protocol(e.to_string())),
                    }
                }
                let n = self
                    .wire
                    .read(&mut chunk)
                    .await
                    .map_err(|e| Fault::Io(e.to_string()))?;
                if n == 0 {
                    return Err(Fault::Io("connection closed by the server".into()));
                }
                self.buf.extend_from_slice(&chunk[..n]);
                let since_newline = self
                    .buf
                    .iter()
                    .rev()
                    .take(client::MAX_REPLY_LINE + 1)
                    .position(|&b| b == b'\n')
                    .unwrap_or(self.buf.len());
                parse = chunk[..n].contains(&b'\n')
                    || self.buf.len() < 8
                    || since_newline >= client::MAX_REPLY_LINE;
            }
        };
        match tokio::time::timeout(t, read).await {
            Ok(r) => r,
            Err(_) => Err(Fault::Timeout),
        }
    }

    /// Implicit TLS or after STARTTLS's 220.
    async fn handshake(
        &mut self,
        s: &ClientSettings,
        tls_failure: &mut Option<TlsFailure>,
    ) -> Result<(), ConnError> {
        let Wire::Plain(tcp) = std::mem::replace(&mut self.wire, Wire::Gone) else {
            return Err(ConnError::Temporary("TLS is already active".into()));
        };
        let name = ServerName::try_from(s.server_name.clone())
            .map_err(|e| ConnError::Temporary(format!("server name {:?}: {e}", s.server_name)))?;
        let strict = s.tls == TlsPolicy::RequireVerified;
        let verifier = Arc::new(RecordingVerifier::new(
            &s.roots,
            strict,
            s.cert_check.clone(),
        ));
        let config = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConnError::Temporary(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let hs = tokio::time::timeout(s.timeouts.tls_handshake, connector.connect(name, tcp));
        let tls = match hs.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                let failed = verifier.result().and_then(Result::err);
                *tls_failure = Some(failed.clone().unwrap_or_else(|| {
                    (
                        crate::outbound::tlsrpt::FailureType::ValidationFailure,
                        e.to_string(),
                    )
                }));
                let why = failed.map_or_else(|| e.to_string(), |v| format!("{e} ({})", v.1));
                return Err(ConnError::Temporary(format!(
                    "TLS handshake with {} failed: {why}",
                    s.server_name
                )));
            }
            Err(_) => {
                *tls_failure = Some((
                    crate::outbound::tlsrpt::FailureType::ValidationFailure,
                    "TLS handshake timed out".into(),
                ));
                return Err(ConnError::Temporary(format!(
                    "TLS handshake with {} timed out",
                    s.server_name
                )));
            }
        };
        let (_, session) = tls.get_ref();
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher = session
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default();
        let verdict = verifier.result().unwrap_or(Err((
            crate::outbound::tlsrpt::FailureType::ValidationFailure,
            "no certificate checked".into(),
        )));
        self.tls = Some(TlsOutcome {
            version,
            cipher,
            verified: verdict.is_ok(),
            verify_error: verdict.as_ref().err().map(|f| f.1.clone()),
            failure: verdict.err(),
        });
        self.wire = Wire::Tls(Box::new(tls));
        Ok(())
    }
}

async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    limit: Duration,
) -> Result<TcpStream, ConnError> {
    let attempt = async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let tcp = socket.connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        Ok::<_, std::io::Error>(tcp)
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) => Err(ConnError::Temporary(format!("connect to {addr}: {e}"))),
        Err(_) => Err(ConnError::Temporary(format!(
            "connect to {addr}: timed out after {limit:?}"
        ))),
    }
}

/// Checks the certificate with webpki (or against DANE TLSA records) and
/// records the verdict. In strict mode a failure fails the handshake;
/// otherwise the handshake goes on (the connection is encrypted, though
/// not authenticated). Handshake signatures are always checked.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    strict: bool,
    check: CertCheck,
    verdict: Mutex<Option<Result<(), TlsFailure>>>,
}

impl RecordingVerifier {
    fn new(
        roots: &Arc<rustls::RootCertStore>,
        strict: bool,
        check: CertCheck,
    ) -> RecordingVerifier {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .ok();
        RecordingVerifier {
            inner,
            provider,
            strict,
            check,
            verdict: Mutex::new(None),
        }
    }

    fn result(&self) -> Option<Result<(), TlsFailure>> {
        match self.verdict.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn record(&self, r: Result<(), TlsFailure>) {
        match self.verdict.lock() {
            Ok(mut v) => *v = Some(r),
            Err(p) => *p.into_inner() = Some(r),
        }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use crate::outbound::{dane, tlsrpt::FailureType};
        let verdict = match (&self.check, &self.inner) {
            (CertCheck::Dane { records, names }, _) => dane::verify(
                records,
                end_entity,
                intermediates,
                names,
                now,
                &self.provider,
            )
            .map(|_| ()),
            (CertCheck::WebPki, Some(v)) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .map(|_| ())
                .map_err(|e| (dane::classify(&e), e.to_string())),
            (CertCheck::WebPki, None) => Err((
                FailureType::CertificateNotTrusted,
                "no trust anchors configured".to_string(),
            )),
        };
        self.record(verdict.clone());
        match verdict {
            Err(e) if self.strict => Err(rustls::Error::General(e.1)),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
