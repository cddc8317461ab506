//! DANE for SMTP (RFC 7672), the pure parts: TLSA records, which of them
//! are usable (§2.1.1), and whether a server's certificate chain matches
//! them (DANE-EE(3) §3.1, DANE-TA(2) §3.2). The DNSSEC lookups are in
//! `dns::secure`, the policy decision in [`super::tls_policy`].

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::tlsrpt::FailureType;

/// TLSA records of one RRset processed at most; the rest are ignored. A
/// real RRset has a handful (current and next key); 1,000 records must not
/// cost 1,000 hash computations per handshake.
pub const MAX_TLSA_RECORDS: usize = 32;

/// The certificate-association data of one record, at most (a full
/// certificate, selector 0 matching 0).
pub const MAX_TLSA_DATA: usize = 16 * 1024;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// RFC 7672 §2.1.1: only DANE-TA(2) and DANE-EE(3), selectors Cert(0)
    /// and SPKI(1), matching Full(0), SHA2-256(1), SHA2-512(2), with data of
    /// the digest's length; everything else is unusable.
    pub fn is_usable(&self) -> bool {
        matches!(self.usage, 2 | 3)
            && matches!(self.selector, 0 | 1)
            && match self.matching {
                0 => !self.data.is_empty() && self.data.len() <= MAX_TLSA_DATA,
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// Presentation format (`3 1 1 ABCD…`), for TLS-RPT `policy-string`.
    pub fn presentation(&self) -> String {
        let mut hex = String::with_capacity(self.data.len() * 2);
        for b in &self.data {
            hex.push_str(&format!("{b:02X}"));
        }
        format!("{} {} {} {hex}", self.usage, self.selector, self.matching)
    }

    /// Does this record match the certificate `cert` (DER)? Selector 1
    /// takes the certificate's SubjectPublicKeyInfo.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            0 => cert.as_ref().to_vec(),
            1 => match spki(cert) {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data,
            1 => ring::digest::digest(&ring::digest::SHA256, &selected).as_ref() == self.data,
            2 => ring::digest::digest(&ring::digest::SHA512, &selected).as_ref() == self.data,
            _ => false,
        }
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let anchor = webpki::anchor_from_trusted_cert(cert).ok()?;
    Some(webpki::spki_for_anchor(&anchor).as_ref().to_vec())
}

/// The usable records of an RRset, at most [`MAX_TLSA_RECORDS`] looked at.
pub fn usable(records: &[Tlsa]) -> Vec<Tlsa> {
    records
        .iter()
        .take(MAX_TLSA_RECORDS)
        .filter(|r| r.is_usable())
        .cloned()
        .collect()
}

/// How a chain matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneMatch {
    /// A DANE-EE(3) record matched the server's certificate (names and
    /// dates not checked, §3.1).
    EndEntity(String),
    /// A DANE-TA(2) record matched a certificate of the chain, and the
    /// chain verified up to it for one of the reference names (§3.2).
    TrustAnchor(String),
}

/// Checks a presented chain against usable `records`. `names` are the
/// reference identifiers for DANE-TA (§3.2.2: the MX host name, and the
/// TLSA base domain when it differs). A failure says which RFC 8460
/// failure type applies and why.
pub fn verify(
    records: &[Tlsa],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    names: &[String],
    now: UnixTime,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<DaneMatch, (FailureType, String)> {
    let records = usable(records);
    if records.is_empty() {
        return Err((FailureType::TlsaInvalid, "no usable TLSA record".into()));
    }
    if let Some(r) = records
        .iter()
        .find(|r| r.usage == 3 && r.matches(end_entity))
    {
        return Ok(DaneMatch::EndEntity(r.presentation()));
    }
    let mut ta_error = None;
    for r in records.iter().filter(|r| r.usage == 2) {
        // The trust anchor must be in the chain the server sent (for
        // selector 1 a bare key could also be meant; RFC 7672 §3.2.2 asks
        // servers to include the TA certificate, and so do we).
        for ta in intermediates.iter().filter(|c| r.matches(c)) {
            let Ok(anchor) = webpki::anchor_from_trusted_cert(ta) else {
                continue;
            };
            let mut roots = rustls::RootCertStore::empty();
            roots.roots.push(anchor.to_owned());
            let Ok(verifier) =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
            else {
                continue;
            };
            for name in names {
                let Ok(server_name) = ServerName::try_from(name.as_str()) else {
                    continue;
                };
                match verifier.verify_server_cert(end_entity, intermediates, &server_name, &[], now)
                {
                    Ok(_) => return Ok(DaneMatch::TrustAnchor(r.presentation())),
                    Err(e) => ta_error = Some(e),
                }
            }
        }
    }
    Err(match ta_error {
        Some(e) => (
            classify(&e),
            format!("the chain to the DANE-TA certificate does not verify: {e}"),
        ),
        None => (
            FailureType::TlsaInvalid,
            "no TLSA record matches the server's certificate chain".into(),
        ),
    })
}

/// Maps a certificate verification error onto RFC 8460 §4.3.1.
pub fn classify(e: &rustls::Error) -> FailureType {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => FailureType::CertificateExpired,
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                FailureType::CertificateHostMismatch
            }
            C::UnknownIssuer | C::BadSignature | C::Revoked => FailureType::CertificateNotTrusted,
            _ => FailureType::ValidationFailure,
        },
        _ => FailureType::ValidationFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    struct Chain {
        ca: CertificateDer<'static>,
        ee: CertificateDer<'static>,
    }

    fn chain(name: &str) -> Chain {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test TA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let ee_key = KeyPair::generate().unwrap();
        let ee = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&ee_key, &issuer)
            .unwrap();
        Chain {
            ca: ca.der().clone(),
            ee: ee.der().clone(),
        }
    }

    fn sha256(b: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .to_vec()
    }
    fn sha512(b: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA512, b)
            .as_ref()
            .to_vec()
    }

    fn rec(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn check(records: &[Tlsa], c: &Chain, name: &str) -> Result<DaneMatch, (FailureType, String)> {
        verify(
            records,
            &c.ee,
            std::slice::from_ref(&c.ca),
            &[name.to_string()],
            UnixTime::now(),
            &provider(),
        )
    }

    #[test]
    fn usability() {
        assert!(rec(3, 1, 1, vec![0; 32]).is_usable());
        assert!(rec(2, 0, 2, vec![0; 64]).is_usable());
        assert!(rec(3, 0, 0, vec![1, 2, 3]).is_usable());
        assert!(!rec(1, 1, 1, vec![0; 32]).is_usable(), "PKIX-EE");
        assert!(!rec(0, 1, 1, vec![0; 32]).is_usable(), "PKIX-TA");
        assert!(!rec(3, 2, 1, vec![0; 32]).is_usable(), "selector");
        assert!(!rec(3, 1, 3, vec![0; 32]).is_usable(), "matching");
        assert!(!rec(3, 1, 1, vec![0; 31]).is_usable(), "digest length");
        assert!(!rec(3, 1, 2, vec![0; 32]).is_usable());
        assert_eq!(rec(3, 1, 1, vec![0xab, 0x01]).presentation(), "3 1 1 AB01");
    }

    #[test]
    fn dane_ee_matches_spki_or_cert_whatever_the_name() {
        let c = chain("mx.example.org");
        let spki = spki(&c.ee).unwrap();
        assert_eq!(spki[0], 0x30, "a DER SEQUENCE");
        for r in [
            rec(3, 1, 1, sha256(&spki)),
            rec(3, 1, 2, sha512(&spki)),
            rec(3, 0, 1, sha256(&c.ee)),
            rec(3, 0, 0, c.ee.to_vec()),
            rec(3, 1, 0, spki.clone()),
        ] {
            assert!(
                matches!(
                    check(std::slice::from_ref(&r), &c, "other.name"),
                    Ok(DaneMatch::EndEntity(_))
                ),
                "{}",
                r.presentation()
            );
        }
        let other = chain("mx.example.org");
        let e = check(&[rec(3, 1, 1, sha256(&spki))], &other, "mx.example.org").unwrap_err();
        assert_eq!(e.0, FailureType::TlsaInvalid);
    }

    #[test]
    fn dane_ta_needs_the_chain_and_the_name() {
        let c = chain("mx.example.org");
        let ta_spki = spki(&c.ca).unwrap();
        let r = rec(2, 1, 1, sha256(&ta_spki));
        assert!(matches!(
            check(std::slice::from_ref(&r), &c, "mx.example.org"),
            Ok(DaneMatch::TrustAnchor(_))
        ));
        let e = check(std::slice::from_ref(&r), &c, "wrong.example.org").unwrap_err();
        assert_eq!(e.0, FailureType::CertificateHostMismatch, "{}", e.1);
        // A TA record for a certificate not in the chain.
        let other = chain("mx.example.org");
        let e = check(&[rec(2, 0, 1, sha256(&other.ca))], &c, "mx.example.org").unwrap_err();
        assert_eq!(e.0, FailureType::TlsaInvalid);
        // A DANE-TA record naming the end entity itself does not make it a TA.
        let e = check(&[rec(2, 0, 1, sha256(&c.ee))], &c, "mx.example.org").unwrap_err();
        assert_eq!(e.0, FailureType::TlsaInvalid);
    }

    #[test]
    fn unusable_records_only_and_a_thousand_records_are_bounded() {
        let c = chain("mx.example.org");
        let e = check(&[rec(1, 1, 1, vec![0; 32])], &c, "mx.example.org").unwrap_err();
        assert_eq!(e.0, FailureType::TlsaInvalid);
        // 1,000 non-matching records and then the matching one: only the
        // first MAX_TLSA_RECORDS count, so the match is not found, quickly.
        let spki = spki(&c.ee).unwrap();
        let mut many: Vec<Tlsa> = (0..1000u32)
            .map(|i| rec(3, 1, 1, sha256(&i.to_be_bytes())))
            .collect();
        many.push(rec(3, 1, 1, sha256(&spki)));
        let t = std::time::Instant::now();
        assert!(check(&many, &c, "mx.example.org").is_err());
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(usable(&many).len(), MAX_TLSA_RECORDS);
    }

    #[test]
    fn classification() {
        use rustls::CertificateError as C;
        let f = |c| classify(&rustls::Error::InvalidCertificate(c));
        assert_eq!(f(C::Expired), FailureType::CertificateExpired);
        assert_eq!(f(C::NotValidForName), FailureType::CertificateHostMismatch);
        assert_eq!(f(C::UnknownIssuer), FailureType::CertificateNotTrusted);
        assert_eq!(f(C::BadEncoding), FailureType::ValidationFailure);
    }
}
