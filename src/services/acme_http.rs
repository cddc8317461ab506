//! The HTTPS client of the ACME task: instant-acme's own stack (hyper with
//! rustls, the platform's roots or the configured `ca-file`), wrapped so
//! that the CA's `badNonce` rejections are seen. instant-acme sends a
//! rejected request again by itself (RFC 8555 §6.5: the error carries a
//! fresh nonce); without this wrapper those rejections leave no trace, and a
//! CA that keeps rejecting would look like a slow one.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The error type an ACME server's refusal of a nonce carries.
pub const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";

/// `badNonce` answers seen by this process (all ACME directories).
static REJECTED_NONCES: AtomicU64 = AtomicU64::new(0);

pub struct Http(Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl Http {
    /// A client trusting the platform's roots, or only `ca_file` (a PEM
    /// certificate: a test CA such as pebble's).
    pub fn new(ca_file: Option<&Path>) -> Result<Http, String> {
        let builder = match ca_file {
            Some(ca) => {
                let err = |e: &dyn std::fmt::Display| format!("ACME CA file {}: {e}", ca.display());
                let der = CertificateDer::from_pem_file(ca).map_err(|e| err(&e))?;
                let mut roots = rustls::RootCertStore::empty();
                roots.add(der).map_err(|e| err(&e))?;
                let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| err(&e))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                HttpsConnectorBuilder::new().with_tls_config(config)
            }
            None => HttpsConnectorBuilder::new()
                .try_with_platform_verifier()
                .map_err(|e| format!("ACME HTTP client: {e}"))?,
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        Ok(Http(Client::builder(TokioExecutor::new()).build(connector)))
    }
}

impl HttpClient for Http {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let url = req.uri().to_string();
        let sent = self.0.request(req);
        Box::pin(async move {
            let rsp = sent
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut rsp = BytesResponse::from(rsp);
            // A problem document (RFC 8555 §6.7) comes with 400; any other
            // answer goes to instant-acme untouched.
            if rsp.parts.status != StatusCode::BAD_REQUEST {
                return Ok(rsp);
            }
            let body = rsp
                .body
                .into_bytes()
                .await
                .map_err(instant_acme::Error::Other)?;
            if is_bad_nonce(&body) {
                let seen = REJECTED_NONCES.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(url = %url, rejected_since_start = seen, "ACME: the CA rejected a nonce (badNonce); the request goes again with a fresh one");
            }
            Ok(BytesResponse {
                parts: rsp.parts,
                body: Box::new(body),
            })
        })
    }
}

/// Whether a problem document's `type` is `badNonce`.
fn is_bad_nonce(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Problem {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_slice::<Problem>(body).is_ok_and(|p| p.kind.as_deref() == Some(BAD_NONCE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_nonce_problems_are_recognised() {
        assert!(is_bad_nonce(
            br#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce","status":400}"#
        ));
        assert!(!is_bad_nonce(
            br#"{"type":"urn:ietf:params:acme:error:malformed","detail":"badNonce","status":400}"#
        ));
        assert!(!is_bad_nonce(b"badNonce"));
        assert!(!is_bad_nonce(b""));
    }

    #[test]
    fn an_unreadable_ca_file_is_a_clear_error() {
        let Err(e) = Http::new(Some(Path::new("/nonexistent/ca.pem"))) else {
            panic!("a client without its CA file");
        };
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
