//! DANE for mail to us (RFC 7672, RFC 7671 §8 key rollover): with
//! `dane #true`, the TLSA `3 1 1` records (DANE-EE, SubjectPublicKeyInfo,
//! SHA-256) of `_25._tcp.<hostname>` for
//!
//! - the *current* key: the public key of the certificate `mailc serve`
//!   presents for the host name on port 25 (the `tls` entry chosen by SNI,
//!   as `net::tls` chooses it), read from the certificate file;
//! - the *next* key: a key pair kept in `<state>/tls/dane-next.key`
//!   (ECDSA P-256, PKCS#8, mode 0600), created by `mailc serve` at start
//!   and by `mailc dns`/`mailc plan` when missing, and published ahead of
//!   its use so that a certificate renewed on it is already trusted when
//!   it is served.
//!
//! The rollover is a plan, not an event: publish next → wait at least the
//! TTL → switch (a certificate for the next key is served; the old next
//! key becomes current and a new next key is made) → retire the old
//! record. [`key_paths`] is what certificate renewal (ACME) uses: renew on
//! `key` until a rollover, then on `next_key`.

use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};

use crate::tables::{CertSource, Tables};

/// The files of the port-25 certificate and the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    /// The host name the MX presents (the server's `hostname`).
    pub host: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub next_key: PathBuf,
    /// The state directory (files made under it get its owner).
    pub state: PathBuf,
}

/// The TLSA data of the current and next keys (lower-case hex SHA-256 of
/// the SubjectPublicKeyInfo); `None` where the file does not exist yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsaKeys {
    pub host: String,
    pub current: Option<String>,
    pub next: Option<String>,
}

/// `<state>/tls/dane-next.key`.
pub fn next_key_path(tables: &Tables) -> PathBuf {
    tables.state_dir.join("tls").join("dane-next.key")
}

/// Where the certificate served for the host name on port 25 and the next
/// key live; `None` without `dane #true` or without a certificate.
pub fn key_paths(tables: &Tables) -> Option<KeyPaths> {
    if !tables.dane {
        return None;
    }
    let host = tables.hostname.to_ascii_lowercase();
    let parent = host.split_once('.').map(|(_, p)| format!("*.{p}"));
    let chosen = tables
        .tls
        .iter()
        .find(|c| c.names.contains(&host))
        .or_else(|| {
            tables
                .tls
                .iter()
                .find(|c| c.names.iter().any(|n| Some(n) == parent.as_ref()))
        })
        .or_else(|| tables.tls.iter().find(|c| c.default))
        .or_else(|| tables.tls.first())?;
    let (cert, key) = match &chosen.source {
        CertSource::Files { cert, key } | CertSource::SelfSigned { cert, key, .. } => {
            (cert.clone(), key.clone())
        }
        // The key of the current ACME certificate: renewals keep it
        // (`keep_key`) until `mailc tls rollover` has one made on the
        // next key.
        CertSource::Acme(a) => (a.cert.clone(), a.key.clone()),
    };
    Some(KeyPaths {
        host,
        cert,
        key,
        next_key: next_key_path(tables),
        state: tables.state_dir.clone(),
    })
}

/// Creates the next key when it is missing; `Ok(true)` when created.
pub fn ensure_next_key(path: &Path) -> std::io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(false);
    }
    let pair = rcgen::KeyPair::generate().map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        crate::store::fsutil::create_private_dir(dir)?;
    }
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Made by another process meanwhile: keep theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    f.write_all(pair.serialize_pem().as_bytes())?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        crate::store::fsutil::sync_dir(dir)?;
    }
    Ok(true)
}

/// The TLSA data of both keys (files that do not exist yet give `None`;
/// a file that exists but cannot be read is an error naming it).
pub fn tlsa_keys(tables: &Tables) -> Result<Option<TlsaKeys>, String> {
    let Some(p) = key_paths(tables) else {
        return Ok(None);
    };
    let current = if p.cert.exists() {
        Some(cert_spki_sha256(&p.cert)?)
    } else {
        None
    };
    let next = if p.next_key.exists() {
        Some(key_spki_sha256(&p.next_key)?)
    } else {
        None
    };
    Ok(Some(TlsaKeys {
        host: p.host,
        current,
        next,
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the SubjectPublicKeyInfo of the first certificate of a PEM
/// chain (the one served).
pub fn cert_spki_sha256(path: &Path) -> Result<String, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let first = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .next()
        .ok_or_else(|| format!("{}: no certificate in the file", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let spki = spki_of_certificate(&first)
        .ok_or_else(|| format!("{}: not an X.509 certificate", path.display()))?;
    Ok(hex(&Sha256::digest(spki)))
}

/// SHA-256 of the SubjectPublicKeyInfo of a PEM private key (PKCS#8).
pub fn key_spki_sha256(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let pair = rcgen::KeyPair::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(hex(&Sha256::digest(pair.subject_public_key_info())))
}

/// One DER element at the start of `der`: (tag, whole element, contents).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((tag, der.get(..end)?, der.get(head..end)?))
}

/// The SubjectPublicKeyInfo element of an X.509 certificate (RFC 5280
/// §4.1): the seventh field of the TBSCertificate counting the optional
/// `[0]` version.
pub fn spki_of_certificate(der: &[u8]) -> Option<&[u8]> {
    let (0x30, _, cert) = element(der)? else {
        return None;
    };
    let (0x30, _, mut tbs) = element(cert)? else {
        return None;
    };
    if tbs.first() == Some(&0xa0) {
        let (_, whole, _) = element(tbs)?;
        tbs = &tbs[whole.len()..];
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        let (_, whole, _) = element(tbs)?;
        tbs = &tbs[whole.len()..];
    }
    match element(tbs)? {
        (0x30, whole, _) => Some(whole),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPKI found in a certificate is the key's (rcgen makes both).
    #[test]
    fn certificate_and_key_give_the_same_tlsa_data() {
        let tmp = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(tmp.path().join("c.pem"), cert.pem()).unwrap();
        std::fs::write(tmp.path().join("k.pem"), key.serialize_pem()).unwrap();
        let from_cert = cert_spki_sha256(&tmp.path().join("c.pem")).unwrap();
        let from_key = key_spki_sha256(&tmp.path().join("k.pem")).unwrap();
        assert_eq!(from_cert, from_key);
        assert_eq!(from_cert.len(), 64);
        assert_eq!(
            from_cert,
            hex(&Sha256::digest(key.subject_public_key_info()))
        );
    }

    #[test]
    fn the_next_key_is_made_once_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("tls/dane-next.key");
        assert!(ensure_next_key(&p).unwrap());
        let first = std::fs::read(&p).unwrap();
        assert!(!ensure_next_key(&p).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), first, "never replaced");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(key_spki_sha256(&p).unwrap().len(), 64);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert_eq!(spki_of_certificate(b""), None);
        assert_eq!(spki_of_certificate(&[0x30, 0x82, 0xff]), None);
        assert_eq!(spki_of_certificate(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
        assert_eq!(spki_of_certificate(&[0x30, 0x85, 0, 0, 0, 0, 1]), None);
    }
}
