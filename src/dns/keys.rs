//! DKIM key files: `mailc dkim keygen` creates the missing ones (RSA-2048 as
//! PKCS#1 PEM, Ed25519 as PKCS#8 PEM, mode 0600, never overwriting), and
//! `mailc dns` reads the public half from them.

use std::io::Write;
use std::path::Path;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::generate::DkimKeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::{DnsError, PublicKeys};
use crate::tables::{DkimAlgorithm, Tables};

/// What `keygen` did for one selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyResult {
    pub domain: String,
    pub selector: String,
    pub path: std::path::PathBuf,
    pub algorithm: DkimAlgorithm,
    pub created: bool,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = crate::proto::sasl::base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Creates a key file; fails if it exists (never overwrites a key).
fn write_key(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::store::fsutil::create_private_dir(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        crate::store::fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// Creates every missing key the tables name.
pub fn keygen(tables: &Tables) -> Result<Vec<KeyResult>, String> {
    let mut out = Vec::new();
    for d in tables.domains.values() {
        for k in &d.dkim {
            let mut result = KeyResult {
                domain: d.name.clone(),
                selector: k.selector.clone(),
                path: k.key.clone(),
                algorithm: k.algorithm,
                created: false,
            };
            if k.key.exists() {
                out.push(result);
                continue;
            }
            let text = match k.algorithm {
                DkimAlgorithm::Rsa => {
                    let pair = DkimKeyPair::generate_rsa(2048)
                        .map_err(|e| format!("RSA key generation: {e}"))?;
                    pem("RSA PRIVATE KEY", pair.private_key())
                }
                DkimAlgorithm::Ed25519 => {
                    let pair = DkimKeyPair::generate_ed25519()
                        .map_err(|e| format!("Ed25519 key generation: {e}"))?;
                    pem("PRIVATE KEY", &ed25519_pkcs8_v1(pair.private_key())?)
                }
            };
            write_key(&k.key, &text).map_err(|e| format!("{}: {e}", k.key.display()))?;
            // Run as root by an admin: the server's user must read it.
            crate::store::fsutil::adopt_state_owner(&tables.state_dir, &k.key)
                .map_err(|e| format!("{}: {e}", k.key.display()))?;
            result.created = true;
            out.push(result);
        }
    }
    Ok(out)
}

/// ring writes Ed25519 keys as PKCS#8 v2 (RFC 5958, public key included),
/// which OpenSSL 3.0 cannot read; the plain v1 form (RFC 8410) works
/// everywhere, opendkim included.
fn ed25519_pkcs8_v1(v2: &[u8]) -> Result<Vec<u8>, String> {
    const PREFIX: [u8; 16] = [
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    if v2.len() < 48 || v2[..16] != PREFIX {
        return Err("unexpected Ed25519 key encoding from the generator".into());
    }
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&v2[16..48]);
    Ok(v1)
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form DKIM's
/// `p=` uses for RSA (RFC 6376 §3.6.1).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    fn der_len(n: usize) -> Vec<u8> {
        if n < 0x80 {
            vec![n as u8]
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect();
            let mut v = vec![0x80 | bytes.len() as u8];
            v.extend(bytes);
            v
        }
    }
    // AlgorithmIdentifier: rsaEncryption (1.2.840.113549.1.1.1), NULL.
    let algorithm: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x03];
    bit_string.extend(der_len(pkcs1.len() + 1));
    bit_string.push(0);
    bit_string.extend_from_slice(pkcs1);
    let mut body = algorithm.to_vec();
    body.extend(bit_string);
    let mut out = vec![0x30];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

/// The base64 `p=` value of a key file.
pub fn public_key_b64(path: &Path, algorithm: DkimAlgorithm) -> Result<String, DnsError> {
    let invalid = |reason: String| DnsError::KeyInvalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read(path).map_err(|source| DnsError::KeyRead {
        path: path.to_path_buf(),
        source,
    })?;
    let der = PrivateKeyDer::from_pem_slice(&text).map_err(|e| DnsError::KeyNotPem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let public = match (algorithm, der) {
        (DkimAlgorithm::Ed25519, PrivateKeyDer::Pkcs8(k)) => {
            Ed25519Key::from_pkcs8_maybe_unchecked_der(k.secret_pkcs8_der())
                .map_err(|e| invalid(e.to_string()))?
                .public_key()
        }
        (DkimAlgorithm::Rsa, der @ (PrivateKeyDer::Pkcs1(_) | PrivateKeyDer::Pkcs8(_))) => {
            let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| invalid(e.to_string()))?;
            rsa_spki(&key.public_key())
        }
        _ => {
            return Err(DnsError::KeyAlgorithm {
                path: path.to_path_buf(),
                algorithm: match algorithm {
                    DkimAlgorithm::Rsa => "RSA",
                    DkimAlgorithm::Ed25519 => "Ed25519",
                },
            });
        }
    };
    Ok(crate::proto::sasl::base64_encode(&public))
}

/// The public keys of every configured selector (`None` where the key file
/// does not exist yet).
pub fn public_keys(tables: &Tables) -> Result<PublicKeys, DnsError> {
    let mut out = PublicKeys::new();
    for d in tables.domains.values() {
        for k in &d.dkim {
            let value = if k.key.exists() {
                Some(public_key_b64(&k.key, k.algorithm)?)
            } else {
                None
            };
            out.insert((d.name.clone(), k.selector.clone()), value);
        }
    }
    Ok(out)
}

/// Selectors with a key file in `<state>/dkim/<domain>/` that the config no
/// longer names: their published records are stale.
pub fn retired_selectors(tables: &Tables) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in tables.domains.values() {
        let dir = tables.state_dir.join("dkim").join(&d.name);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(sel) = name.strip_suffix(".key")
                && !d.dkim.iter().any(|k| k.selector == sel)
            {
                out.push((d.name.clone(), sel.to_string()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_wraps_pkcs1() {
        // A tiny fake PKCS#1 body: the wrapper is pure DER framing.
        let spki = rsa_spki(&[0x30, 0x03, 0x02, 0x01, 0x05]);
        assert_eq!(spki[0], 0x30);
        assert_eq!(spki[1] as usize, spki.len() - 2);
        assert_eq!(
            &spki[2..17],
            &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00
            ]
        );
        assert_eq!(&spki[17..20], &[0x03, 0x06, 0x00]);
    }
}
