//! TLS server configuration from the tables: certificates from PEM files,
//! a generated development certificate, or ACME, chosen per connection by
//! SNI (exact names, then `*.` wildcards, then the default). TLS 1.2 and
//! 1.3 only.
//!
//! Every certificate sits in a [`CertSlot`], so a renewed one replaces the
//! old one for every listener sharing the `ServerConfig` (and every
//! configuration cloned from it, like the https listener's): new handshakes
//! get the new certificate, established connections keep theirs. ACME slots
//! live in [`LiveCerts`], one per server, and outlive reloads. A ClientHello
//! offering `acme-tls/1` is answered from the challenge store only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::challenges::{ACME_TLS_ALPN, Challenges};
use crate::store::fsutil;
use crate::tables::{AcmeCert, CertSource, Tables};

/// Why the TLS configuration could not be built. The server refuses to
/// start (or a reload is refused) with this message.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
    #[error("{}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("{}: no certificate in the file", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{} does not match {}: {reason}", key.display(), cert.display())]
    Mismatch {
        key: PathBuf,
        cert: PathBuf,
        reason: rustls::Error,
    },
    #[error("generating a certificate: {0}")]
    Generate(rcgen::Error),
    #[error("{0}")]
    Other(String),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One certificate as the listeners see it; [`CertSlot::set`] swaps in a
/// new one for every handshake that starts afterwards.
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<CertSlot> {
        Arc::new(CertSlot(RwLock::new(key)))
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        match self.0.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        match self.0.write() {
            Ok(mut k) => *k = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

/// The certificates of a running server that outlive one configuration:
/// the ACME certificates (by certificate path) and the challenge store.
#[derive(Debug, Default)]
pub struct LiveCerts {
    pub challenges: Arc<Challenges>,
    acme: Mutex<HashMap<PathBuf, Arc<CertSlot>>>,
}

impl LiveCerts {
    pub fn new(challenges: Arc<Challenges>) -> Arc<LiveCerts> {
        Arc::new(LiveCerts {
            challenges,
            acme: Mutex::new(HashMap::new()),
        })
    }

    /// The slot of an ACME certificate: the one already serving, else the
    /// certificate on disk, else a temporary self-signed one for its names
    /// until the first order completes.
    pub fn acme_slot(&self, a: &AcmeCert) -> Result<Arc<CertSlot>, TlsError> {
        let mut slots = match self.acme.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(slot) = slots.get(&a.cert) {
            return Ok(slot.clone());
        }
        let key = if a.cert.exists() && a.key.exists() {
            load(&a.cert, &a.key)?
        } else {
            tracing::warn!(names = %a.order_names.join(","), "no ACME certificate yet: serving a temporary self-signed one until the CA issues it");
            placeholder(&a.order_names)?
        };
        let slot = CertSlot::new(Arc::new(key));
        slots.insert(a.cert.clone(), slot.clone());
        Ok(slot)
    }

    /// Swaps a new certificate into the ACME slot of `cert` (created if
    /// no configuration uses it yet).
    pub fn install(&self, cert: &Path, key: Arc<CertifiedKey>) {
        let mut slots = match self.acme.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        match slots.get(cert) {
            Some(slot) => slot.set(key),
            None => {
                slots.insert(cert.to_path_buf(), CertSlot::new(key));
            }
        }
    }
}

#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertSlot>>,
    /// `example.com` for `*.example.com`.
    wildcard: HashMap<String, Arc<CertSlot>>,
    default: Arc<CertSlot>,
    challenges: Arc<Challenges>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // RFC 8737 §3: only the challenge certificate answers
            // `acme-tls/1`; without a pending challenge the handshake fails.
            return self.challenges.alpn(hello.server_name()?);
        }
        let Some(name) = hello.server_name() else {
            return Some(self.default.get());
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.get());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return Some(k.get());
        }
        Some(self.default.get())
    }
}

/// Builds the server configuration, generating the development certificate
/// when the tables ask for one and it does not exist yet, and taking ACME
/// certificates from `live`. `None` when no certificate is configured.
pub fn server_config(
    tables: &Tables,
    live: &LiveCerts,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    if tables.tls.is_empty() {
        return Ok(None);
    }
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    for cert in &tables.tls {
        let slot = match &cert.source {
            CertSource::Files { cert, key } => CertSlot::new(Arc::new(load(cert, key)?)),
            CertSource::SelfSigned {
                cert,
                key,
                subject_names,
            } => {
                if !cert.exists() || !key.exists() {
                    generate_self_signed(cert, key, subject_names)?;
                }
                CertSlot::new(Arc::new(load(cert, key)?))
            }
            CertSource::Acme(a) => live.acme_slot(a)?,
        };
        for name in &cert.names {
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.insert(parent.to_string(), slot.clone()),
                None => exact.insert(name.clone(), slot.clone()),
            };
        }
        if cert.default || default.is_none() {
            default = Some(slot);
        }
    }
    let Some(default) = default else {
        return Ok(None);
    };
    let resolver = SniResolver {
        exact,
        wildcard,
        default,
        challenges: live.challenges.clone(),
    };
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
    Ok(Some(Arc::new(config)))
}

/// The configuration a TLS-ALPN-01 validation gets: the same resolver
/// (which answers `acme-tls/1` from the challenge store), negotiating only
/// `acme-tls/1`.
pub fn challenge_config(config: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut c = (**config).clone();
    c.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Arc::new(c)
}

/// The self-signed TLS-ALPN-01 certificate for `domain` (RFC 8737 §3): the
/// domain as its only subjectAltName and the critical acmeIdentifier
/// extension holding the SHA-256 of the key authorization.
pub fn challenge_cert(domain: &str, key_auth_sha256: &[u8]) -> Result<CertifiedKey, TlsError> {
    if key_auth_sha256.len() != 32 {
        return Err(TlsError::Other(
            "a key authorization digest is 32 bytes".to_string(),
        ));
    }
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(TlsError::Generate)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(key_auth_sha256));
    certified_self_signed(params)
}

/// A short-lived self-signed certificate served for an ACME certificate
/// that the CA has not issued yet.
fn placeholder(names: &[String]) -> Result<CertifiedKey, TlsError> {
    let params = rcgen::CertificateParams::new(names.to_vec()).map_err(TlsError::Generate)?;
    certified_self_signed(params)
}

fn certified_self_signed(params: rcgen::CertificateParams) -> Result<CertifiedKey, TlsError> {
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    let der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::Other(e.to_string()))?;
    let signing = provider::sign::any_supported_type(&der).map_err(TlsError::Setup)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

/// A certificate chain and its key from PEM files, checked to match.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let bad_cert = |e: &dyn std::fmt::Display| TlsError::Certificate {
        path: cert.to_path_buf(),
        reason: e.to_string(),
    };
    let bad_key = |e: &dyn std::fmt::Display| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad_cert(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad_cert(&e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad_key(&e))?;
    let signing = provider::sign::any_supported_type(&der).map_err(|e| bad_key(&e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|reason| TlsError::Mismatch {
            key: key.to_path_buf(),
            cert: cert.to_path_buf(),
            reason,
        })?;
    Ok(certified)
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn generate_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    let generated =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(TlsError::Generate)?;
    if let Some(dir) = cert.parent() {
        fsutil::create_private_dir(dir).map_err(write_error(dir))?;
    }
    fsutil::write_atomic_durable(key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(write_error(key))?;
    fsutil::write_atomic_durable(cert, generated.cert.pem().as_bytes())
        .map_err(write_error(cert))?;
    tracing::warn!(cert = %cert.display(), "generated a self-signed development certificate");
    Ok(())
}
