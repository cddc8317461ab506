//! The `http` and `https` listeners: hyper (HTTP/1.1) over the server's
//! TLS configuration, answering what [`crate::session::http`] decides and
//! ACME HTTP-01 challenges from the shared [`Challenges`] store.
//!
//! The `https` listener shares the certificate resolver of the mail
//! listeners (SNI, hot-swapped certificates, TLS-ALPN-01 challenge
//! certificates) and offers ALPN `http/1.1` and `acme-tls/1`; a client
//! that negotiates `acme-tls/1` (a CA validating, RFC 8737 §3) gets the
//! handshake and nothing else.
//!
//! Bounds: the head of a request (line and headers) at most
//! `HTTP_MAX_HEAD_BYTES` and `HTTP_MAX_HEADERS` (431 past them), a body
//! at most `HTTP_MAX_BODY_BYTES` (413), the head, the body and the idle
//! time between requests each within `timeouts { http }` (slowloris: the
//! connection is closed), at most `HTTP_MAX_REQUESTS_PER_CONNECTION`
//! requests and `HTTP_MAX_CONNECTION_SECS` per connection, and the
//! server's connection limits at accept.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::conn::Conn;
use crate::compile::defaults as def;
use crate::net::challenges::{ACME_TLS_ALPN, Challenges};
use crate::net::limits::Slot;
use crate::session::http::{Method, Outcome, Request, Response, route};
use crate::tables::ListenerKind;

/// The TLS configuration of `https` listeners: the mail listeners' one
/// (same certificate resolver, so certificate swaps and TLS-ALPN-01
/// certificates reach it too) with HTTP's ALPN protocols.
pub fn acceptor(base: &Arc<rustls::ServerConfig>) -> tokio_rustls::TlsAcceptor {
    let mut config = (**base).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// What a listener sends when the server has too many connections: a 503
/// on `http`; nothing on `https` (there is no TLS session to send it in).
pub fn refusal(kind: ListenerKind) -> Vec<u8> {
    match kind {
        ListenerKind::Http => {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        }
        _ => Vec::new(),
    }
}

/// Serves one accepted connection until it closes.
pub async fn handle(conn: Conn, tcp: TcpStream, _slot: Slot, challenges: Arc<Challenges>) {
    let timeout = Duration::from_secs(conn.snapshot.tables.timeouts.http_secs.max(1));
    if conn.listener.kind == ListenerKind::Https {
        let Some(acceptor) = conn.snapshot.https.clone() else {
            tracing::debug!(peer = %conn.peer, "https: no certificate loaded");
            return;
        };
        let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %conn.peer, "TLS handshake timed out");
                return;
            }
        };
        let (_, session) = tls.get_ref();
        if session.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // RFC 8737 §3: the validation is the handshake itself.
            tracing::debug!(peer = %conn.peer, "acme-tls/1 handshake done; closing");
            let mut tls = tls;
            let _ = tls.shutdown().await;
            return;
        }
        let sni = session.server_name().map(str::to_string);
        serve(conn, tls, sni, true, timeout, challenges).await;
    } else {
        serve(conn, tcp, None, false, timeout, challenges).await;
    }
}

async fn serve<S>(
    conn: Conn,
    io: S,
    sni: Option<String>,
    secure: bool,
    timeout: Duration,
    challenges: Arc<Challenges>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let tables = conn.snapshot.tables.clone();
    let served = Arc::new(AtomicU32::new(0));
    let sni = Arc::new(sni);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let (tables, challenges, served, sni) = (
            tables.clone(),
            challenges.clone(),
            served.clone(),
            sni.clone(),
        );
        async move {
            let n = served.fetch_add(1, Ordering::Relaxed) + 1;
            let mut response =
                answer(&tables, &challenges, sni.as_deref(), secure, timeout, req).await;
            if n >= def::HTTP_MAX_REQUESTS_PER_CONNECTION {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(def::HTTP_MAX_HEAD_BYTES.max(8192))
        .max_header_size(def::HTTP_MAX_HEAD_BYTES)
        .max_headers(def::HTTP_MAX_HEADERS)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut shutdown = conn.shared.shutdown.clone();
    let lifetime = tokio::time::sleep(Duration::from_secs(def::HTTP_MAX_CONNECTION_SECS));
    tokio::pin!(lifetime);
    let mut closing = false;
    loop {
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, error = %e, "http connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = &mut lifetime => {
                tracing::debug!(peer = %peer, "http connection lived too long; closed");
                return;
            }
        }
    }
}

/// Reads the body (bounded in size and time), routes, and builds the reply.
async fn answer(
    tables: &crate::tables::Tables,
    challenges: &Challenges,
    sni: Option<&str>,
    secure: bool,
    timeout: Duration,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > def::HTTP_MAX_BODY_BYTES as u64) {
        return closing(build(Response::error(413, "request body too large"), false));
    }
    let body = match tokio::time::timeout(
        timeout,
        Limited::new(body, def::HTTP_MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return closing(build(Response::error(413, "request body too large"), false));
        }
        Ok(Err(_)) => {
            return closing(build(Response::error(400, "malformed request body"), false));
        }
        Err(_) => {
            return closing(build(Response::error(408, "request body too slow"), false));
        }
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .or(sni);
    let method = Method::parse(parts.method.as_str());
    let request = Request {
        method,
        host,
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &body,
        secure,
    };
    let head = method == Method::Head;
    match route(tables, &request) {
        Outcome::Respond(r) => build(r, head),
        Outcome::AcmeChallenge(token) => match challenges.http(&token) {
            // RFC 8555 §8.3: the key authorization, as
            // application/octet-stream.
            Some(key_authorization) => build(
                Response {
                    status: 200,
                    content_type: "application/octet-stream",
                    body: key_authorization.into_bytes(),
                    headers: Vec::new(),
                },
                head,
            ),
            None => build(Response::error(404, "not found"), head),
        },
    }
}

fn closing(mut r: hyper::Response<Full<Bytes>>) -> hyper::Response<Full<Bytes>> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn build(r: Response, head: bool) -> hyper::Response<Full<Bytes>> {
    let len = r.body.len();
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(r.body)
    };
    let mut out = hyper::Response::new(Full::new(body));
    *out.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(r.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::services::testing::harness_with;

    /// Serves one connection of the `http` listener on a real socket and
    /// returns what the client read.
    async fn one_request(h: &crate::services::testing::Harness, request: &[u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = h.shared.clone();
        let server = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.expect("accept");
            let snapshot = shared.snapshot();
            let row = *snapshot
                .tables
                .listeners
                .iter()
                .find(|l| l.kind == ListenerKind::Http)
                .expect("http listener");
            let slot = shared
                .conns
                .acquire(peer.ip(), &Arc::new(AtomicU32::new(0)), 10, 10, 10)
                .expect("slot");
            let challenges = shared.certs.challenges.clone();
            let conn = Conn {
                shared,
                snapshot,
                listener: row,
                peer,
            };
            handle(conn, tcp, slot, challenges).await;
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        client.write_all(request).await.expect("write");
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out))
            .await
            .expect("answered in time")
            .expect("read");
        server.await.expect("server task");
        String::from_utf8(out).expect("utf-8")
    }

    #[tokio::test]
    async fn http_01_answers_come_from_the_shared_challenge_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = harness_with(dir.path(), "listen \"http\" \"127.0.0.1:8080\"\n");
        let get = b"GET /.well-known/acme-challenge/tok_EN-1 HTTP/1.1\r\nHost: mail.example.test\r\nConnection: close\r\n\r\n";
        let before = one_request(&h, get).await;
        assert!(before.starts_with("HTTP/1.1 404 "), "{before}");
        h.shared
            .certs
            .challenges
            .set_http("tok_EN-1", "tok_EN-1.thumbprint");
        let during = one_request(&h, get).await;
        assert!(during.starts_with("HTTP/1.1 200 "), "{during}");
        assert!(
            during.contains("content-type: application/octet-stream\r\n"),
            "{during}"
        );
        assert!(during.ends_with("\r\n\r\ntok_EN-1.thumbprint"), "{during}");
        h.shared.certs.challenges.remove_http("tok_EN-1");
        let after = one_request(&h, get).await;
        assert!(after.starts_with("HTTP/1.1 404 "), "{after}");
        // Another path on plain HTTP: no https listener here, so 404, not
        // a redirect.
        let other = one_request(
            &h,
            b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
    }
}
