//! A connection that is plain TCP or TLS over TCP, so one session driver
//! handles both and STARTTLS can switch from one to the other.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// The TCP stream was taken for a TLS handshake that did not finish.
    Detached,
}

fn detached() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "stream detached for a TLS handshake",
    )
}

impl Stream {
    /// Protocol version and cipher suite, e.g. ("TLSv1.3", "TLS13_AES_256_GCM_SHA384").
    pub fn tls_info(&self) -> Option<(String, String)> {
        let Stream::Tls(s) = self else {
            return None;
        };
        let (_, conn) = s.get_ref();
        let version = conn.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        })?;
        let suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        Some((version, suite))
    }

    /// Asks the kernel to acknowledge received data at once rather than
    /// delaying the ACK. A client that writes a literal and its closing CRLF
    /// separately (Python's imaplib does) has Nagle's algorithm hold the CRLF
    /// until the literal is acknowledged; with a delayed ACK that costs
    /// 40 ms per APPEND. Linux clears the flag by itself, so it is set again
    /// after each read. Best effort.
    pub fn quickack(&self) {
        let tcp = match self {
            Stream::Plain(t) => t,
            Stream::Tls(s) => s.get_ref().0,
            Stream::Detached => return,
        };
        #[cfg(target_os = "linux")]
        let _ = rustix::net::sockopt::set_tcp_quickack(tcp, true);
        #[cfg(not(target_os = "linux"))]
        let _ = tcp;
    }

    /// The SNI name the client asked for.
    pub fn sni(&self) -> Option<String> {
        match self {
            Stream::Tls(s) => s.get_ref().1.server_name().map(str::to_string),
            _ => None,
        }
    }

    /// Runs the server side of a TLS handshake on a plain stream (implicit
    /// TLS or STARTTLS). A ClientHello offering the ALPN protocol
    /// `acme-tls/1` is a CA validating TLS-ALPN-01 (RFC 8737): it gets a
    /// configuration that negotiates that protocol, whose resolver answers
    /// with the challenge certificate of a pending validation.
    pub async fn upgrade(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
        timeout: std::time::Duration,
    ) -> std::io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Detached) else {
            return Err(std::io::Error::other("TLS is already active"));
        };
        let handshake = async {
            let start =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
                    .await?;
            let acme = start
                .client_hello()
                .alpn()
                .is_some_and(|mut offered| offered.any(|p| p == super::challenges::ACME_TLS_ALPN));
            let config = if acme {
                super::tls::challenge_config(acceptor.config())
            } else {
                acceptor.config().clone()
            };
            start.into_stream(config).await
        };
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(tls)) => {
                *self = Stream::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Detached => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Detached => Poll::Ready(Ok(())),
        }
    }
}
