//! Mail address syntax and normalisation shared by the compiler and the
//! runtime: domains through IDNA (UTS #46) to lower-case A-labels, local parts
//! as RFC 5321 dot-atoms (UTF-8 allowed, RFC 6531).

/// Longest local part in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain name in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 253;

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
pub fn normalize_domain(input: &str) -> Result<DomainName, String> {
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() {
        return Err("empty domain name".into());
    }
    if trimmed.starts_with('[') {
        return Err("address literals like [192.0.2.1] are not domains".into());
    }
    let ascii = idna::domain_to_ascii(trimmed)
        .map_err(|_| format!("`{input}` is not a valid internationalised domain name"))?;
    if ascii.len() > MAX_DOMAIN {
        return Err(format!("longer than {MAX_DOMAIN} characters"));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "label `{label}` may only contain letters, digits and hyphens"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with a hyphen"));
        }
    }
    if ascii.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("looks like an IP address, not a domain name".into());
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
pub fn validate_local_part(lp: &str) -> Result<(), String> {
    if lp.is_empty() {
        return Err("empty local part".into());
    }
    if lp.len() > MAX_LOCAL_PART {
        return Err(format!("longer than {MAX_LOCAL_PART} octets"));
    }
    if lp.starts_with('.') || lp.ends_with('.') || lp.contains("..") {
        return Err("dots may not lead, trail or repeat".into());
    }
    if let Some(c) = lp.chars().find(|&c| !is_atext(c) && c != '.') {
        return Err(format!("character `{c}` is not allowed in a local part"));
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
