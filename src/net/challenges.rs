//! ACME challenge responses the listeners hand out while an order is being
//! validated (RFC 8555 §8.3 HTTP-01 on `http` listeners, RFC 8737
//! TLS-ALPN-01 on TLS listeners). The ACME client puts a response in before
//! it tells the CA to validate and takes it out when the order is done; the
//! listeners only read. One store per server, shared through an `Arc`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;

/// ALPN protocol id of TLS-ALPN-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Longest token accepted in an HTTP-01 path; RFC 8555 tokens are 43
/// base64url characters.
const MAX_TOKEN: usize = 128;

#[derive(Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: RwLock<HashMap<String, String>>,
    /// TLS-ALPN-01: lower-case domain → the self-signed challenge certificate.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("http", &self.http.read().map(|m| m.len()).unwrap_or(0))
            .field("alpn", &self.alpn.read().map(|m| m.len()).unwrap_or(0))
            .finish()
    }
}

impl Challenges {
    pub fn new() -> Arc<Challenges> {
        Arc::new(Challenges::default())
    }

    pub fn set_http(&self, token: &str, key_authorization: &str) {
        if let Ok(mut m) = self.http.write() {
            m.insert(token.to_string(), key_authorization.to_string());
        }
    }

    pub fn remove_http(&self, token: &str) {
        if let Ok(mut m) = self.http.write() {
            m.remove(token);
        }
    }

    /// The key authorization for `token` (the last path segment of
    /// `/.well-known/acme-challenge/TOKEN`); `None` for unknown or malformed
    /// tokens.
    pub fn http(&self, token: &str) -> Option<String> {
        if token.is_empty()
            || token.len() > MAX_TOKEN
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        self.http.read().ok()?.get(token).cloned()
    }

    pub fn set_alpn(&self, domain: &str, cert: Arc<CertifiedKey>) {
        if let Ok(mut m) = self.alpn.write() {
            m.insert(domain.trim_end_matches('.').to_ascii_lowercase(), cert);
        }
    }

    pub fn remove_alpn(&self, domain: &str) {
        if let Ok(mut m) = self.alpn.write() {
            m.remove(&domain.trim_end_matches('.').to_ascii_lowercase());
        }
    }

    /// The TLS-ALPN-01 certificate for `domain`, if a validation for it is
    /// under way.
    pub fn alpn(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let name = domain.trim_end_matches('.').to_ascii_lowercase();
        self.alpn.read().ok()?.get(&name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_tokens_come_and_go() {
        let c = Challenges::new();
        assert_eq!(c.http("abc_-9"), None);
        c.set_http("abc_-9", "abc_-9.thumb");
        assert_eq!(c.http("abc_-9").as_deref(), Some("abc_-9.thumb"));
        c.remove_http("abc_-9");
        assert_eq!(c.http("abc_-9"), None);
    }

    #[test]
    fn malformed_tokens_are_never_looked_up() {
        let c = Challenges::new();
        c.set_http("../x", "nope");
        assert_eq!(c.http("../x"), None);
        assert_eq!(c.http(""), None);
        assert_eq!(c.http(&"a".repeat(MAX_TOKEN + 1)), None);
    }
}
