//! DKIM signing of mail that leaves (RFC 6376, RFC 8463 for Ed25519).
//!
//! [`Signer::load`] reads every private key the tables name, once, at
//! start: a missing or unreadable key is an error naming the file (the
//! server refuses to start), never a silent unsigned send. [`Signer::sign`]
//! then returns the `DKIM-Signature:` fields to prepend, one per selector of
//! the `From:` domain (RSA and Ed25519 both when both are configured):
//! relaxed/relaxed canonicalization, `t=` set, no `l=` (a body length
//! limit lets anyone append content), and the header fields of RFC 6376
//! §5.4.1 that are present, plus `Message-ID`, `MIME-Version` and the
//! `Content-*` fields that describe the body. `From` is listed once more than
//! it occurs ("oversigned"), so a second `From:` added later breaks the
//! signature instead of being shown to the reader.
//!
//! Key files are the ones `mailc dkim keygen` writes (see
//! [`crate::dns::keys`]): RSA as PKCS#1 (or PKCS#8) PEM, Ed25519 as PKCS#8 PEM.
//!
//! mail-auth's own `DkimSigner::sign` takes the time from the system clock;
//! the signature is assembled here from its public parts (canonicalization,
//! hashing, `Signature` serialisation) with the caller's `now`, so signing is
//! a pure function of its inputs and testable at a fixed time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{
    DkimKey as SigningKeyPair, Ed25519Key, RsaKey, Sha256, SigningKey,
};
use mail_auth::common::headers::{HeaderStream, HeaderWriter, Writable, Writer};
use mail_auth::dkim::{Canonicalization, Signature};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::proto::smtp::headers::{from_addresses, header_end};
use crate::tables::{DkimAlgorithm, Tables};

/// Header fields signed when present: RFC 6376 §5.4.1's list, then the
/// fields that give the body its meaning. `From` is always signed.
const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key {path} (selector {selector} of {domain}): {reason}")]
    Key {
        domain: String,
        selector: String,
        path: PathBuf,
        reason: KeyError,
    },
    #[error("DKIM signing with {selector}._domainkey.{domain} failed: {reason}")]
    Sign {
        domain: String,
        selector: String,
        reason: mail_auth::Error,
    },
}

/// Why a key file cannot be used for the algorithm its selector names.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("not a PEM private key ({0})")]
    NotPem(rustls_pki_types::pem::Error),
    #[error("not a usable Ed25519 key ({0})")]
    Ed25519(mail_auth::Error),
    #[error("not a usable RSA key ({0})")]
    Rsa(mail_auth::Error),
    #[error("not an RSA private key")]
    NotRsa,
    #[error("not an Ed25519 private key (PKCS#8 expected)")]
    NotEd25519,
}

struct SelectorKey {
    selector: String,
    key: SigningKeyPair,
}

/// Every configured DKIM key, loaded, per domain (A-label, lower case).
pub struct Signer {
    domains: BTreeMap<String, Vec<SelectorKey>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (d, keys) in &self.domains {
            m.entry(d, &keys.iter().map(|k| &k.selector).collect::<Vec<_>>());
        }
        m.finish()
    }
}

impl Signer {
    /// Reads every key the tables list. The first key that is missing,
    /// unreadable or of the wrong kind is an error naming its file.
    pub fn load(tables: &Tables) -> Result<Signer, DkimError> {
        let mut domains = BTreeMap::new();
        for d in tables.domains.values() {
            let mut keys = Vec::new();
            for k in &d.dkim {
                let key = load_key(&k.key, k.algorithm).map_err(|reason| DkimError::Key {
                    domain: d.name.clone(),
                    selector: k.selector.clone(),
                    path: k.key.clone(),
                    reason,
                })?;
                keys.push(SelectorKey {
                    selector: k.selector.clone(),
                    key,
                });
            }
            if !keys.is_empty() {
                domains.insert(d.name.clone(), keys);
            }
        }
        Ok(Signer { domains })
    }

    /// Whether mail from `domain` (any case, U- or A-labels) gets signed.
    pub fn signs_for(&self, domain: &str) -> bool {
        crate::addr::normalize_domain(domain).is_ok_and(|d| self.domains.contains_key(&d.ascii))
    }

    /// The ARC set `domain` (A-label, lower case) adds when it forwards
    /// `message` ([`super::arc::seal`]), with the domain's first RSA
    /// selector.
    pub fn arc_seal(
        &self,
        domain: &str,
        message: &[u8],
        authserv_id: &str,
    ) -> Result<String, super::arc::NotSealed> {
        let key = self
            .domains
            .get(domain)
            .and_then(|keys| {
                keys.iter()
                    .find(|k| matches!(k.key, SigningKeyPair::Rsa(_)))
            })
            .ok_or_else(|| super::arc::NotSealed::NoKey(domain.to_string()))?;
        super::arc::seal(
            &key.key,
            domain,
            &key.selector,
            &fields_to_sign(message),
            message,
            authserv_id,
        )
    }

    /// The `DKIM-Signature:` fields (CRLF-terminated, folded) to prepend to
    /// `message`: one per selector of the domain of the first `From:`
    /// address, or nothing when that domain has no DKIM (or there is no
    /// `From:`).
    pub fn sign(&self, message: &[u8], now: u64) -> Result<Vec<u8>, DkimError> {
        let Some(domain) = from_domain(message) else {
            return Ok(Vec::new());
        };
        let Some(keys) = self.domains.get(&domain) else {
            return Ok(Vec::new());
        };
        let fields = fields_to_sign(message);
        let mut out = Vec::new();
        for k in keys {
            let signature = sign_one(&k.key, &domain, &k.selector, &fields, message, now).map_err(
                |reason| DkimError::Sign {
                    domain: domain.clone(),
                    selector: k.selector.clone(),
                    reason,
                },
            )?;
            out.extend_from_slice(signature.to_header().as_bytes());
        }
        Ok(out)
    }
}

fn load_key(path: &Path, algorithm: DkimAlgorithm) -> Result<SigningKeyPair, KeyError> {
    let text = std::fs::read(path).map_err(KeyError::Read)?;
    let der = PrivateKeyDer::from_pem_slice(&text).map_err(KeyError::NotPem)?;
    match (algorithm, der) {
        (DkimAlgorithm::Ed25519, PrivateKeyDer::Pkcs8(k)) => {
            Ed25519Key::from_pkcs8_maybe_unchecked_der(k.secret_pkcs8_der())
                .map(SigningKeyPair::Ed25519)
                .map_err(KeyError::Ed25519)
        }
        (DkimAlgorithm::Rsa, der @ (PrivateKeyDer::Pkcs1(_) | PrivateKeyDer::Pkcs8(_))) => {
            RsaKey::<Sha256>::from_key_der(der)
                .map(SigningKeyPair::Rsa)
                .map_err(KeyError::Rsa)
        }
        (DkimAlgorithm::Rsa, _) => Err(KeyError::NotRsa),
        (DkimAlgorithm::Ed25519, _) => Err(KeyError::NotEd25519),
    }
}

/// The A-label domain of the first `From:` address.
fn from_domain(message: &[u8]) -> Option<String> {
    let first = from_addresses(message).into_iter().next()?;
    let (_, domain) = crate::addr::split(&first)?;
    crate::addr::normalize_domain(domain).ok().map(|d| d.ascii)
}

/// The `h=` template: the fields of [`SIGNED_FIELDS`] present in the
/// message, and `From` once more (mail-auth signs every occurrence of a
/// listed field, then lists the template entries it did not find, so the
/// second `From` ends up as the oversigning entry).
pub(crate) fn fields_to_sign(message: &[u8]) -> Vec<String> {
    let mut present = Vec::new();
    let mut it = Fields::new(message);
    while let Some((name, _)) = it.next_header() {
        if let Some(f) = SIGNED_FIELDS
            .iter()
            .find(|f| f.as_bytes().eq_ignore_ascii_case(name))
            && !present.contains(f)
        {
            present.push(*f);
        }
    }
    let mut fields: Vec<String> = SIGNED_FIELDS
        .iter()
        .filter(|f| present.contains(f) || **f == "From")
        .map(|f| f.to_string())
        .collect();
    fields.push("From".into());
    fields
}

/// The header fields of a message as mail-auth's canonicalization wants
/// them: the name (before `:`), the value (after `:`, continuation lines and
/// the final line end included), then the body after the blank line.
/// (mail-auth's own iterator is private to it.) A line without a colon is
/// not a field and is skipped: it cannot be named in `h=`.
struct Fields<'x> {
    head: &'x [u8],
    pos: usize,
    body: &'x [u8],
}

impl<'x> Fields<'x> {
    fn new(message: &'x [u8]) -> Self {
        let end = header_end(message);
        let head = &message[..end];
        // The blank line that ends the section belongs to neither part.
        let head = head
            .strip_suffix(b"\r\n")
            .filter(|h| h.is_empty() || h.ends_with(b"\n"))
            .unwrap_or(head);
        Fields {
            head,
            pos: 0,
            body: &message[end..],
        }
    }
}

impl<'x> HeaderStream<'x> for Fields<'x> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        loop {
            let rest = &self.head[self.pos..];
            if rest.is_empty() {
                return None;
            }
            // The field runs to the line end not followed by a space or tab.
            let mut end = 0;
            loop {
                match rest[end..].iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        end += i + 1;
                        if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                            break;
                        }
                    }
                    None => {
                        end = rest.len();
                        break;
                    }
                }
            }
            let field = &rest[..end];
            self.pos += end;
            if let Some(colon) = field.iter().position(|&b| b == b':') {
                return Some((&field[..colon], &field[colon + 1..]));
            }
        }
    }

    fn body(&mut self) -> &'x [u8] {
        self.body
    }
}

/// What the key signs: the canonical header fields, then the signature
/// field itself with an empty `b=` (RFC 6376 §3.7).
struct Signable<'a, H: Writable> {
    headers: H,
    signature: &'a Signature,
}

impl<H: Writable> Writable for Signable<'_, H> {
    fn write(self, writer: &mut impl Writer) {
        self.headers.write(writer);
        self.signature.write(writer, false);
    }
}

fn sign_one(
    key: &SigningKeyPair,
    domain: &str,
    selector: &str,
    fields: &[String],
    message: &[u8],
    now: u64,
) -> Result<Signature, mail_auth::Error> {
    let template = Signature {
        v: 1,
        a: key.algorithm(),
        d: domain.to_string(),
        s: selector.to_string(),
        h: fields.to_vec(),
        ch: Canonicalization::Relaxed,
        cb: Canonicalization::Relaxed,
        ..Default::default()
    };
    let (_, headers, signed, body) = template.canonicalize(Fields::new(message));
    let mut signature = template;
    signature.bh = key.hash(body).as_ref().to_vec();
    signature.t = now;
    signature.h = signed;
    signature.b = key.sign(Signable {
        headers,
        signature: &signature,
    })?;
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversigns_from_and_lists_present_fields_only() {
        let msg = b"From: a@example.com\r\nTo: b@example.org\r\nsubject: hi\r\nReceived: x\r\nX-Other: y\r\n\r\nbody\r\n";
        assert_eq!(fields_to_sign(msg), ["From", "Subject", "To", "From"]);
        // Fields in the body are not fields.
        let msg = b"From: a@example.com\r\n\r\nCc: c@example.net\r\n";
        assert_eq!(fields_to_sign(msg), ["From", "From"]);
    }

    #[test]
    fn fields_split_like_rfc_5322() {
        let msg = b"From: a@example.com\r\nSubject: one\r\n two\r\n\tthree\r\nbroken line\r\nTo : b\r\n\r\nbody\r\n";
        let mut f = Fields::new(msg);
        let mut got = Vec::new();
        while let Some((n, v)) = f.next_header() {
            got.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        assert_eq!(
            got,
            [
                ("From".to_string(), " a@example.com\r\n".to_string()),
                ("Subject".into(), " one\r\n two\r\n\tthree\r\n".into()),
                ("To ".into(), " b\r\n".into()),
            ]
        );
        assert_eq!(f.body(), b"body\r\n");
        let mut f = Fields::new(b"From: a@example.com\r\n");
        assert!(f.next_header().is_some());
        assert!(f.next_header().is_none());
        assert_eq!(f.body(), b"");
    }

    #[test]
    fn from_domain_is_normalised() {
        assert_eq!(
            from_domain(b"From: \"A\" <a@B\xc3\xbccher.Example>\r\n\r\n").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            from_domain(b"From: a@x.example, b@y.example\r\n\r\n").as_deref(),
            Some("x.example")
        );
        assert_eq!(from_domain(b"To: a@x.example\r\n\r\n"), None);
        assert_eq!(from_domain(b"From: undisclosed\r\n\r\n"), None);
    }
}
