//! What a certificate file says about itself: the names it covers, its
//! issuer, validity and serial. Used to plan ACME renewals and by
//! `mailc tls status`.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names of the subjectAltName extension, in the certificate's order.
    pub names: Vec<String>,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Hexadecimal, as `openssl x509 -serial` prints it.
    pub serial: String,
}

impl CertInfo {
    /// Whether the certificate covers every one of `names`.
    pub fn covers(&self, names: &[String]) -> bool {
        names
            .iter()
            .all(|n| self.names.iter().any(|m| m.eq_ignore_ascii_case(n)))
    }
}

/// The first certificate of a PEM file (the leaf of a chain).
pub fn read(path: &Path) -> Result<CertInfo, String> {
    let der = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .next()
        .ok_or_else(|| format!("{}: no certificate in the file", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&der).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(ip) if ip.len() == 4 || ip.len() == 16 => {
                    let addr = if ip.len() == 4 {
                        std::net::IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                    } else {
                        std::net::IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                    };
                    names.push(addr.to_string());
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        names,
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_issuer_and_validity_of_a_generated_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["mail.example.test".into(), "127.0.0.1".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2026, 4, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = parse(cert.der()).unwrap();
        assert_eq!(info.names, vec!["mail.example.test", "127.0.0.1"]);
        assert_eq!(info.issuer, "CN=Test CA");
        assert_eq!(info.not_before, 1_767_312_000);
        assert_eq!(info.not_after, 1_775_088_000);
        assert!(info.covers(&["MAIL.example.test".to_string()]));
        assert!(!info.covers(&["mta-sts.example.test".to_string()]));
        assert!(!info.serial.is_empty() && info.serial.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
