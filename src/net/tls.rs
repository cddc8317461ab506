//! TLS server configuration from the tables: certificates from PEM files or
//! a generated development certificate, chosen per connection by SNI (exact
//! names, then `*.` wildcards, then the default). TLS 1.2 and 1.3 only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::store::fsutil;
use crate::tables::{CertSource, Tables};

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
pub fn server_config(tables: &Tables) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
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
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
    Ok(Some(Arc::new(config)))
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signing =
        provider::sign::any_supported_type(&der).map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("{} does not match {}: {e}", key.display(), cert.display()))?;
    Ok(certified)
}

fn generate_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<(), String> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("generating a certificate: {e}"))?;
    if let Some(dir) = cert.parent() {
        fsutil::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fsutil::write_atomic_durable(key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(|e| format!("{}: {e}", key.display()))?;
    fsutil::write_atomic_durable(cert, generated.cert.pem().as_bytes())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    tracing::warn!(cert = %cert.display(), "generated a self-signed development certificate");
    Ok(())
}
