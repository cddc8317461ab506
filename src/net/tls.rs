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
//! offering `acme-tls/1` is answered from the challenge store while a
//! validation for its name is pending.

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
        let key = match load(&a.cert, &a.key) {
            Ok(key) => key,
            Err(e) if let Some(k) = recover_dane_switch(a) => {
                tracing::warn!(error = %e, cert = %a.cert.display(), "the ACME chain is on the DANE next key (a switch was interrupted before its key was stored): key restored");
                k
            }
            Err(e) => {
                // Missing, or a crash between writing the key and the
                // chain: the renewal task orders a new one at once.
                if a.cert.exists() || a.key.exists() {
                    tracing::warn!(error = %e, "the ACME certificate on disk is unusable");
                }
                tracing::warn!(names = %a.order_names.join(","), "no ACME certificate yet: serving a temporary self-signed one until the CA issues it");
                placeholder(&a.order_names)?
            }
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

/// A DANE switch interrupted between storing the chain and the key: the
/// chain loads with the next key, which is then stored as the key (the
/// switch is settled afterwards by `dns::rollover::settle`).
fn recover_dane_switch(a: &AcmeCert) -> Option<CertifiedKey> {
    let next = a.dane_next_key.as_ref()?;
    let key = load(&a.cert, next).ok()?;
    let pem = std::fs::read(next).ok()?;
    if let Err(e) = fsutil::write_atomic_durable(&a.key, &pem) {
        tracing::warn!(error = %e, key = %a.key.display(), "cannot store the recovered key");
    }
    Some(key)
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
        if acme
            && let Some(name) = hello.server_name()
            && let Some(cert) = self.challenges.alpn(name)
        {
            // RFC 8737 §3: the challenge certificate answers `acme-tls/1`.
            // Without a pending challenge the ordinary certificate does
            // (the validation then fails for want of the acmeIdentifier);
            // either way no application data follows on such a connection.
            return Some(cert);
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
    let der =
        PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| TlsError::Other(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{AcmeChallenge, Certificate};
    use rustls::pki_types::ServerName;

    /// Accepts any server certificate: these tests look at which one the
    /// resolver chose, not at trust.
    #[derive(Debug)]
    struct AnyCert;

    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            provider::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// An in-memory handshake; the leaf certificate the server sent, or
    /// the error.
    fn handshake(
        server: Arc<rustls::ServerConfig>,
        sni: &str,
        alpn: &[&[u8]],
    ) -> Result<CertificateDer<'static>, rustls::Error> {
        let mut client =
            rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert))
                .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut c = rustls::ClientConnection::new(
            Arc::new(client),
            ServerName::try_from(sni.to_string()).unwrap(),
        )
        .unwrap();
        let mut s = rustls::ServerConnection::new(server)?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(c.peer_certificates().unwrap()[0].clone().into_owned());
            }
        }
        panic!("handshake did not finish");
    }

    fn acme_tables(dir: &Path) -> Tables {
        let mut t: Tables = serde_json::from_str(
            &crate::compile::compile_str(
                "t.kdl",
                dir,
                &format!(
                    "hostname \"mail.example.test\"\nstate \"{}\"\nlisten \"imaps\" \"127.0.0.1:993\"\n\
                     tls {{\n    acme directory=\"https://acme.test/dir\"\n}}\n",
                    dir.display()
                ),
                crate::compile::Options { offline: true },
            )
            .compiled
            .expect("compiles")
            .tables
            .to_json(),
        )
        .unwrap();
        // A second, file-less certificate is not needed: the ACME one is
        // the default too.
        t.tls.retain(|c| matches!(c.source, CertSource::Acme(_)));
        t
    }

    fn acme_of(t: &Tables) -> AcmeCert {
        match &t.tls[0] {
            Certificate {
                source: CertSource::Acme(a),
                ..
            } => a.clone(),
            _ => unreachable!(),
        }
    }

    /// A DANE switch stores the chain on the next key before the key: after
    /// a crash between the two, start-up serves the chain with the next
    /// key and stores it as the key.
    #[test]
    fn a_switch_interrupted_before_the_key_was_stored_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = acme_of(&acme_tables(dir.path()));
        let next_key = dir.path().join("tls/dane-next.key");
        a.keep_key = true;
        a.dane_next_key = Some(next_key.clone());
        let old = rcgen::KeyPair::generate().unwrap();
        let next = rcgen::KeyPair::generate().unwrap();
        let chain = rcgen::CertificateParams::new(a.order_names.clone())
            .unwrap()
            .self_signed(&next)
            .unwrap();
        fsutil::create_private_dir(a.cert.parent().unwrap()).unwrap();
        fsutil::create_private_dir(next_key.parent().unwrap()).unwrap();
        std::fs::write(&a.cert, chain.pem()).unwrap();
        std::fs::write(&a.key, old.serialize_pem()).unwrap();
        std::fs::write(&next_key, next.serialize_pem()).unwrap();
        let live = LiveCerts::new(Challenges::new());
        let served = live.acme_slot(&a).unwrap().get();
        assert_eq!(
            served.cert[0].as_ref(),
            chain.der().as_ref(),
            "not a placeholder"
        );
        assert_eq!(
            std::fs::read_to_string(&a.key).unwrap(),
            next.serialize_pem(),
            "the key file now holds the chain's key"
        );
        assert!(load(&a.cert, &a.key).is_ok());
        // Without DANE there is nothing to recover from: a placeholder.
        std::fs::write(&a.key, old.serialize_pem()).unwrap();
        a.dane_next_key = None;
        let served = LiveCerts::new(Challenges::new())
            .acme_slot(&a)
            .unwrap()
            .get();
        assert_ne!(served.cert[0].as_ref(), chain.der().as_ref());
    }

    #[test]
    fn a_new_certificate_reaches_new_handshakes_of_every_config_sharing_the_resolver() {
        let dir = tempfile::tempdir().unwrap();
        let tables = acme_tables(dir.path());
        let a = acme_of(&tables);
        assert_eq!(a.challenge, AcmeChallenge::TlsAlpn01);
        let live = LiveCerts::new(Challenges::new());
        let config = server_config(&tables, &live).unwrap().unwrap();
        // What the https listener does: the same resolver, other ALPN ids.
        let mut https = (*config).clone();
        https.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
        let https = Arc::new(https);

        let before = handshake(config.clone(), "mail.example.test", &[]).unwrap();
        assert_eq!(
            handshake(https.clone(), "mail.example.test", &[b"http/1.1"]).unwrap(),
            before
        );
        let renewed = placeholder(&a.order_names).unwrap();
        let renewed_leaf = renewed.cert[0].clone();
        live.install(&a.cert, Arc::new(renewed));
        let after = handshake(config.clone(), "mail.example.test", &[]).unwrap();
        assert_ne!(after, before);
        assert_eq!(after, renewed_leaf);
        assert_eq!(
            handshake(https, "mail.example.test", &[b"http/1.1"]).unwrap(),
            after
        );
        // A reload builds a new configuration from the same live slot.
        let reloaded = server_config(&tables, &live).unwrap().unwrap();
        assert_eq!(
            handshake(reloaded, "mail.example.test", &[]).unwrap(),
            after
        );
    }

    #[test]
    fn acme_tls_alpn_gets_the_challenge_certificate_while_one_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let tables = acme_tables(dir.path());
        let live = LiveCerts::new(Challenges::new());
        let config = server_config(&tables, &live).unwrap().unwrap();
        let acme = challenge_config(&config);
        // No challenge pending: the ordinary certificate, no acmeIdentifier.
        let ordinary = handshake(config.clone(), "mail.example.test", &[]).unwrap();
        assert_eq!(
            handshake(acme.clone(), "mail.example.test", &[ACME_TLS_ALPN]).unwrap(),
            ordinary
        );

        let digest = [7u8; 32];
        let cert = challenge_cert("mail.example.test", &digest).unwrap();
        live.challenges
            .set_alpn("mail.example.test", Arc::new(cert));
        let leaf = handshake(acme.clone(), "mail.example.test", &[ACME_TLS_ALPN]).unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        // RFC 8737 §3: the name, and the critical acmeIdentifier extension
        // (1.3.6.1.5.5.7.1.31) holding the digest as an OCTET STRING.
        let ext = x509
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        assert_eq!(ext.value, [&[0x04, 32][..], &digest[..]].concat());
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1);
        // Another name has no challenge: the ordinary certificate.
        assert_ne!(
            handshake(acme.clone(), "autoconfig.example.test", &[ACME_TLS_ALPN]).unwrap(),
            leaf
        );
        // Ordinary clients still get the ordinary certificate.
        assert_ne!(
            handshake(config.clone(), "mail.example.test", &[]).unwrap(),
            leaf
        );
        live.challenges.remove_alpn("mail.example.test");
        assert_eq!(
            handshake(acme, "mail.example.test", &[ACME_TLS_ALPN]).unwrap(),
            ordinary
        );
    }

    #[test]
    fn a_certificate_that_does_not_match_its_key_is_replaced_by_a_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let tables = acme_tables(dir.path());
        let a = acme_of(&tables);
        std::fs::create_dir_all(a.cert.parent().unwrap()).unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["mail.example.test".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["mail.example.test".into()]).unwrap();
        std::fs::write(&a.cert, one.cert.pem()).unwrap();
        std::fs::write(&a.key, two.signing_key.serialize_pem()).unwrap();
        let live = LiveCerts::new(Challenges::new());
        let config = server_config(&tables, &live).unwrap().unwrap();
        let leaf = handshake(config, "mail.example.test", &[]).unwrap();
        assert_ne!(leaf, *one.cert.der());
    }
}
