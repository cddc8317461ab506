//! TLS server configuration from the tables: certificates from PEM files or
//! a generated development certificate, chosen per connection by SNI (exact
//! names, then `*.` wildcards, then the default). TLS 1.2 and 1.3 only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::store::fsutil;
use crate::tables::{CertSource, Tables};

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
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` for `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return Some(k.clone());
        }
        Some(self.default.clone())
    }
}

/// Builds the server configuration, generating the development certificate
/// when the tables ask for one and it does not exist yet. `None` when no
/// certificate is configured.
pub fn server_config(tables: &Tables) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    if tables.tls.is_empty() {
        return Ok(None);
    }
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    for cert in &tables.tls {
        let key = match &cert.source {
            CertSource::Files { cert, key } => load(cert, key)?,
            CertSource::SelfSigned {
                cert,
                key,
                subject_names,
            } => {
                if !cert.exists() || !key.exists() {
                    generate_self_signed(cert, key, subject_names)?;
                }
                load(cert, key)?
            }
        };
        let key = Arc::new(key);
        for name in &cert.names {
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.insert(parent.to_string(), key.clone()),
                None => exact.insert(name.clone(), key.clone()),
            };
        }
        if cert.default || default.is_none() {
            default = Some(key);
        }
    }
    let Some(default) = default else {
        return Ok(None);
    };
    let resolver = SniResolver {
        exact,
        wildcard,
        default,
    };
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
    Ok(Some(Arc::new(config)))
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
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
