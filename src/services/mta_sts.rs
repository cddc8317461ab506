//! MTA-STS (RFC 8461) for outbound mail: the `_mta-sts` TXT lookup, the
//! HTTPS fetch of `https://mta-sts.<domain>/.well-known/mta-sts.txt`, and
//! the policy cache in the state directory (`mta-sts/<domain>.json`, one
//! file per domain, written atomically), which survives restarts.
//!
//! The HTTPS client is a small bounded HTTP/1.1 GET of our own over
//! tokio-rustls (one request, `Connection: close`): the certificate must
//! verify via WebPKI for `mta-sts.<domain>` against the outbound trust
//! anchors (system bundle plus `outbound { ca-file }`), redirects are not
//! followed (§3.3), the response is read within [`FETCH_TIMEOUT`] and at
//! most [`MAX_RESPONSE`] bytes (headers plus a 64 KiB policy), `Content-
//! Length` or chunked bodies are understood.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{RData, RecordType};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dns::resolver::{self, Resolver};
use crate::outbound::mta_sts::{self, Cached, MAX_POLICY_BYTES, Mode, Policy, Refresh};
use crate::outbound::tlsrpt::FailureType;

/// The whole fetch (connect, handshake, request, response).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Response bytes read at most: 16 KiB of headers plus the policy.
pub const MAX_RESPONSE: usize = MAX_POLICY_BYTES + 16 * 1024;

/// After a failed fetch, the domain's policy is not fetched again for this
/// long: a queue of mail to a domain whose policy server is down must not
/// cost one 30-second fetch per delivery attempt.
pub const FAILURE_HOLD: Duration = Duration::from_secs(300);

/// Failed fetches remembered at most (the map is cleared when full).
const MAX_REMEMBERED_FAILURES: usize = 4096;

/// What the policy lookup found for a domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StsLookup {
    /// The policy in force (never a `mode: none` one).
    pub policy: Option<Policy>,
    /// A fetch that failed, for TLS-RPT (the cached policy may still be in
    /// force).
    pub failure: Option<(FailureType, String)>,
}

/// A failed fetch: when, and why.
type HeldFailure = (Instant, (FailureType, String));

/// Fetches and caches policies.
#[derive(Clone)]
pub struct StsClient {
    pub cache_dir: PathBuf,
    pub roots: Arc<rustls::RootCertStore>,
    pub resolver: Resolver,
    /// 443; another port only in tests of this module.
    pub https_port: u16,
    /// Recent failed fetches: domain → (when, why).
    failures: Arc<std::sync::Mutex<HashMap<String, HeldFailure>>>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl StsClient {
    pub fn new(state_dir: &Path, roots: Arc<rustls::RootCertStore>, resolver: Resolver) -> Self {
        StsClient {
            cache_dir: state_dir.join("mta-sts"),
            roots,
            resolver,
            https_port: 443,
            failures: Arc::default(),
        }
    }

    fn cache_path(&self, domain: &str) -> Option<PathBuf> {
        // Domains are lower-case A-labels; refuse anything that could
        // leave the directory.
        if domain.is_empty()
            || domain.starts_with('.')
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return None;
        }
        Some(self.cache_dir.join(format!("{domain}.json")))
    }

    pub fn cached(&self, domain: &str) -> Option<Cached> {
        let path = self.cache_path(domain)?;
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn store(&self, domain: &str, c: &Cached) {
        let Some(path) = self.cache_path(domain) else {
            return;
        };
        let written = std::fs::create_dir_all(&self.cache_dir).and_then(|()| {
            let bytes = serde_json::to_vec_pretty(c).map_err(std::io::Error::other)?;
            crate::store::fsutil::write_atomic_durable(&path, &bytes)
        });
        if let Err(e) = written {
            tracing::warn!(%domain, error = %e, "cannot write the MTA-STS policy cache");
        }
    }

    /// The policy for mail to `domain` (RFC 8461 §5): from the cache when
    /// its id still matches the TXT record, else fetched (and cached); a
    /// failed fetch falls back to a fresh cached policy.
    pub async fn lookup(&self, domain: &str) -> StsLookup {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let txt = resolver::txt(&self.resolver, &format!("_mta-sts.{domain}"))
            .await
            .unwrap_or_default();
        let id = mta_sts::txt_id(&txt);
        let cached = self.cached(&domain);
        let t = now();
        let in_force = |c: Option<&Cached>| {
            c.filter(|c| c.is_fresh(t) && c.policy.mode != Mode::None)
                .map(|c| c.policy.clone())
        };
        match mta_sts::refresh(cached.as_ref(), id.as_deref(), t) {
            Refresh::NoPolicy => StsLookup {
                policy: None,
                failure: None,
            },
            Refresh::UseCached => StsLookup {
                policy: in_force(cached.as_ref()),
                failure: None,
            },
            Refresh::Fetch { id } => match self.fetch_held(&domain).await {
                Ok(policy) => {
                    let c = Cached {
                        id,
                        fetched: t,
                        policy,
                    };
                    self.store(&domain, &c);
                    StsLookup {
                        policy: in_force(Some(&c)),
                        failure: None,
                    }
                }
                Err(failure) => {
                    tracing::info!(%domain, error = %failure.1, "MTA-STS policy fetch failed");
                    StsLookup {
                        policy: in_force(cached.as_ref()),
                        failure: Some(failure),
                    }
                }
            },
        }
    }

    /// [`StsClient::fetch`], unless it failed within [`FAILURE_HOLD`]: then
    /// that failure again, without a fetch.
    async fn fetch_held(&self, domain: &str) -> Result<Policy, (FailureType, String)> {
        fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
            match m.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }
        if let Some((at, failure)) = lock(&self.failures).get(domain)
            && at.elapsed() < FAILURE_HOLD
        {
            return Err(failure.clone());
        }
        let r = self.fetch(domain).await;
        let mut failures = lock(&self.failures);
        match &r {
            Ok(_) => {
                failures.remove(domain);
            }
            Err(f) => {
                if failures.len() >= MAX_REMEMBERED_FAILURES {
                    failures.clear();
                }
                failures.insert(domain.to_string(), (Instant::now(), f.clone()));
            }
        }
        r
    }

    /// One fetch of the policy file, parsed.
    pub async fn fetch(&self, domain: &str) -> Result<Policy, (FailureType, String)> {
        let host = format!("mta-sts.{domain}");
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.get(&host))
            .await
            .map_err(|_| {
                (
                    FailureType::StsPolicyFetchError,
                    format!("https://{host}/: no answer within {FETCH_TIMEOUT:?}"),
                )
            })??;
        mta_sts::parse_policy(&body).map_err(|e| (FailureType::StsPolicyInvalid, e))
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Ok(Some(rs)) = resolver::records(&self.resolver, host, rtype).await {
                out.extend(rs.into_iter().filter_map(|r| match r {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                }));
            }
        }
        if out.is_empty() {
            return Err(format!("{host} has no address"));
        }
        out.truncate(4);
        Ok(out)
    }

    async fn get(&self, host: &str) -> Result<Vec<u8>, (FailureType, String)> {
        let fetch_err = |e: String| (FailureType::StsPolicyFetchError, e);
        let ips = self.addresses(host).await.map_err(fetch_err)?;
        let mut tcp = None;
        let mut last = String::new();
        for ip in ips {
            match TcpStream::connect(SocketAddr::new(ip, self.https_port)).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {ip}:{}: {e}", self.https_port),
            }
        }
        let tcp = tcp.ok_or_else(|| fetch_err(last))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fetch_err(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| (FailureType::StsPolicyFetchError, e.to_string()))?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let kind = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(rustls::Error::InvalidCertificate(_)) => FailureType::StsWebpkiInvalid,
                    _ => FailureType::StsPolicyFetchError,
                };
                (kind, format!("TLS with {host}: {e}"))
            })?;
        let req = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mailc\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| fetch_err(e.to_string()))?;
        let mut resp = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match tls.read(&mut chunk).await {
                Ok(n) => n,
                // A peer closing without close_notify after a complete
                // response is common; the body's framing decides below.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(fetch_err(e.to_string())),
            };
            if n == 0 {
                break;
            }
            if resp.len() + n > MAX_RESPONSE {
                return Err((
                    FailureType::StsPolicyInvalid,
                    format!(
                        "https://{host}/.well-known/mta-sts.txt: response larger than {MAX_RESPONSE} bytes"
                    ),
                ));
            }
            resp.extend_from_slice(&chunk[..n]);
        }
        parse_response(&resp)
            .map_err(|(k, e)| (k, format!("https://{host}/.well-known/mta-sts.txt: {e}")))
    }
}

/// Status, headers and body of an HTTP/1.1 response read to its end.
fn parse_response(resp: &[u8]) -> Result<Vec<u8>, (FailureType, String)> {
    let fetch_err = |e: &str| (FailureType::StsPolicyFetchError, e.to_string());
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fetch_err("incomplete HTTP response"))?;
    let head =
        std::str::from_utf8(&resp[..end]).map_err(|_| fetch_err("HTTP headers are not UTF-8"))?;
    let body = &resp[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") {
        return Err(fetch_err("not an HTTP/1.x response"));
    }
    if code != "200" {
        // Redirects included: RFC 8461 §3.3 forbids following them.
        return Err(fetch_err(&format!("HTTP status {}", truncate(status))));
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| fetch_err("bad Content-Length"))?,
            );
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.eq_ignore_ascii_case("chunked");
        } else if k.eq_ignore_ascii_case("content-type")
            && !v.to_ascii_lowercase().starts_with("text/plain")
        {
            return Err((
                FailureType::StsPolicyInvalid,
                format!("Content-Type {} is not text/plain", truncate(v)),
            ));
        }
    }
    if chunked {
        return dechunk(body).ok_or_else(|| fetch_err("bad chunked body"));
    }
    match length {
        Some(n) if n > body.len() => Err(fetch_err("body shorter than its Content-Length")),
        Some(n) => Ok(body[..n].to_vec()),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 || out.len() + size > MAX_RESPONSE {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses() {
        let ok = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
        )
        .unwrap();
        assert_eq!(ok, b"hello");
        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked, b"hello");
        let e = parse_response(b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n").unwrap_err();
        assert_eq!(e.0, FailureType::StsPolicyFetchError);
        let e =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<x>").unwrap_err();
        assert_eq!(e.0, FailureType::StsPolicyInvalid);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
