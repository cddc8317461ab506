//! Mail address syntax and normalisation shared by the compiler and the
//! runtime: domains through IDNA (UTS #46) to lower-case A-labels, local parts
//! as RFC 5321 dot-atoms (UTF-8 allowed, RFC 6531).

/// Longest local part in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain name in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 253;

/// Why a domain or a local part is not valid. The text is shown to admins
/// inside diagnostics (`address `x`: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("empty domain name")]
    EmptyDomain,
    #[error("address literals like [192.0.2.1] are not domains")]
    AddressLiteral,
    #[error("`{0}` is not a valid internationalised domain name")]
    Idna(String),
    #[error("longer than {} characters", MAX_DOMAIN)]
    DomainTooLong,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label `{0}` is longer than 63 characters")]
    LabelTooLong(String),
    #[error("label `{0}` may only contain letters, digits and hyphens")]
    LabelCharacter(String),
    #[error("label `{0}` starts or ends with a hyphen")]
    LabelHyphen(String),
    #[error("looks like an IP address, not a domain name")]
    LooksLikeIp,
    #[error("empty local part")]
    EmptyLocalPart,
    #[error("longer than {} octets", MAX_LOCAL_PART)]
    LocalPartTooLong,
    #[error("dots may not lead, trail or repeat")]
    LocalPartDots,
    #[error("character `{0}` is not allowed in a local part")]
    LocalPartCharacter(char),
}

/// A domain in both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName {
    /// A-labels, lower case, no trailing dot.
    pub ascii: String,
    /// U-labels, for display.
    pub unicode: String,
}

/// Normalises a domain name: IDNA mapping (so `Bücher.Example` and
/// `xn--bcher-kva.example` are the same), lower case, trailing dot removed,
/// then LDH and length rules checked.
pub fn normalize_domain(input: &str) -> Result<DomainName, AddrError> {
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() {
        return Err(AddrError::EmptyDomain);
    }
    if trimmed.starts_with('[') {
        return Err(AddrError::AddressLiteral);
    }
    let ascii = idna::domain_to_ascii(trimmed).map_err(|_| AddrError::Idna(input.to_string()))?;
    if ascii.len() > MAX_DOMAIN {
        return Err(AddrError::DomainTooLong);
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(AddrError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(AddrError::LabelTooLong(label.to_string()));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(AddrError::LabelCharacter(label.to_string()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddrError::LabelHyphen(label.to_string()));
        }
    }
    if ascii.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(AddrError::LooksLikeIp);
    }
    let (unicode, _) = idna::domain_to_unicode(&ascii);
    Ok(DomainName { ascii, unicode })
}

/// A DNS name that need not be a host name: labels may contain `_`
/// (`_spf.example.net`, `_dmarc.example.com`). ASCII only.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_DOMAIN
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// True for a name with at least two labels (`mail.example.test`).
pub fn is_fqdn(ascii: &str) -> bool {
    ascii.contains('.')
}

/// Checks a local part as written in the config: a dot-atom of RFC 5322
/// `atext` characters, plus any non-ASCII character (RFC 6531).
pub fn validate_local_part(lp: &str) -> Result<(), AddrError> {
    if lp.is_empty() {
        return Err(AddrError::EmptyLocalPart);
    }
    if lp.len() > MAX_LOCAL_PART {
        return Err(AddrError::LocalPartTooLong);
    }
    if lp.starts_with('.') || lp.ends_with('.') || lp.contains("..") {
        return Err(AddrError::LocalPartDots);
    }
    if let Some(c) = lp.chars().find(|&c| !is_atext(c) && c != '.') {
        return Err(AddrError::LocalPartCharacter(c));
    }
    Ok(())
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// Splits `local@domain` at the last `@`.
pub fn split(address: &str) -> Option<(&str, &str)> {
    let at = address.rfind('@')?;
    Some((&address[..at], &address[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let d = normalize_domain("Bücher.Example.").unwrap();
        assert_eq!(d.ascii, "xn--bcher-kva.example");
        assert_eq!(d.unicode, "bücher.example");
        assert_eq!(
            normalize_domain("xn--bcher-kva.example").unwrap().ascii,
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normalize_domain("EXAMPLE.test").unwrap().ascii,
            "example.test"
        );
        for bad in [
            "",
            ".",
            "a..b",
            "-a.test",
            "a-.test",
            "a_b.test",
            "exa mple.test",
            "[192.0.2.1]",
            "192.0.2.1",
            &"a".repeat(64),
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}.test", vec!["a".repeat(60); 5].join("."));
        assert!(normalize_domain(&long).is_err());
    }

    #[test]
    fn local_parts() {
        for ok in ["alice", "a.smith", "b+c", "x_y-z", "jörg", "o'brien"] {
            assert!(validate_local_part(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a b",
            "a@b",
            "a\"b",
            "a,b",
            "a(b)",
            &"x".repeat(65),
        ] {
            assert!(validate_local_part(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn splitting() {
        assert_eq!(split("a@b@c.test"), Some(("a@b", "c.test")));
        assert_eq!(split("nodomain"), None);
    }
}
