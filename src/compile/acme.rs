//! `tls { acme … }`: checks the directory URL and contact and lowers the
//! block to a [`CertSource::Acme`] whose files live under
//! `<state>/tls/acme/`. The names a certificate covers are decided here,
//! in [`acme_names`].

use std::path::Path;

use super::{Cx, defaults as def, secrets};
use crate::addr;
use crate::diag::{Code, Diag};
use crate::spec::ast::{Acme, Config, TlsCert};
use crate::tables::{AcmeCert, AcmeChallenge, CertSource};

/// The names an ACME certificate covers: the hostname, `mta-sts.DOMAIN`
/// for every domain publishing MTA-STS (its policy is served over HTTPS at
/// that name), `autoconfig.DOMAIN` and `autodiscover.DOMAIN` for every
/// domain (`mailc dns` publishes them as CNAMEs to the hostname; mail
/// clients fetch them over HTTPS), then the `tls` node's own SNI names.
/// Sorted after the hostname, without duplicates.
pub(super) fn acme_names(cfg: &Config, hostname: Option<&str>, sni: &[String]) -> Vec<String> {
    let mut extra = Vec::new();
    for d in &cfg.domains {
        let Ok(n) = addr::normalize_domain(&d.name.value) else {
            continue;
        };
        if d.mta_sts.is_some() {
            extra.push(format!("mta-sts.{}", n.ascii));
        }
        extra.push(format!("autoconfig.{}", n.ascii));
        extra.push(format!("autodiscover.{}", n.ascii));
    }
    extra.extend(sni.iter().filter(|n| !n.starts_with("*.")).cloned());
    extra.sort();
    extra.dedup();
    let mut names: Vec<String> = hostname.into_iter().map(str::to_string).collect();
    extra.retain(|n| !names.contains(n));
    names.extend(extra);
    names
}

pub(super) fn acme_source(
    cfg: &Config,
    t: &TlsCert,
    a: &Acme,
    sni: &[String],
    hostname: Option<&str>,
    state_dir: &Path,
    cx: &mut Cx<'_>,
) -> Option<CertSource> {
    if let Some(f) = t
        .cert
        .as_ref()
        .or(t.key.as_ref())
        .map(|f| f.span)
        .or(t.self_signed.as_ref().map(|s| s.span))
    {
        cx.diags.push(
            Diag::error(
                Code::TlsConflict,
                "a certificate from ACME cannot also be read from files or self-signed",
            )
            .label(f, "another source given here")
            .label(a.span, "ACME requested")
            .help("drop `cert=`, `key=` and `self-signed=` from this `tls` node, or drop `acme`"),
        );
        return None;
    }
    if !cfg!(feature = "acme") {
        cx.diags.push(
            Diag::error(Code::TlsAcme, "this mailc was built without ACME")
                .label(a.span, "needs the `acme` cargo feature")
                .help("build mailc with `--features acme` (on by default), or configure `cert=`/`key=` files"),
        );
        return None;
    }
    if let Some(w) = sni.iter().find(|n| n.starts_with("*.")) {
        cx.diags.push(
            Diag::error(
                Code::TlsAcme,
                format!("ACME cannot validate the wildcard `{w}` here"),
            )
            .label(t.span, "wildcard SNI name")
            .help("wildcards need DNS-01, which mailc does not do; name the hosts instead"),
        );
        return None;
    }
    let mut ok = true;
    let directory = a.directory.as_ref()?;
    if let Err(why) = check_directory(&directory.value) {
        cx.diags.push(
            Diag::error(
                Code::TlsAcme,
                format!("ACME directory `{}`: {why}", directory.value),
            )
            .label(directory.span, "not an https URL")
            .help("Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory (staging: https://acme-staging-v02.api.letsencrypt.org/directory)"),
        );
        ok = false;
    }
    let mut contact = Vec::new();
    if let Some(c) = &a.contact {
        match check_contact(&c.value) {
            Ok(()) => contact.push(c.value.clone()),
            Err(why) => {
                cx.diags.push(
                    Diag::error(Code::TlsAcme, format!("ACME contact `{}`: {why}", c.value))
                        .label(c.span, "not a mailto: address")
                        .help("write `contact=\"mailto:postmaster@example.com\"`"),
                );
                ok = false;
            }
        }
    }
    if let Some(ca) = &a.ca_file {
        ok &= secrets::check_file(ca, false, "ACME CA file", cx);
    }
    challenge_port_warning(cfg, a, cx);
    let names = acme_names(cfg, hostname, sni);
    if names.is_empty() {
        // No hostname: that error is reported where the hostname is read.
        return None;
    }
    if !ok {
        return None;
    }
    let dir = state_dir.join("tls").join(def::ACME_DIR);
    let stem = names[0].clone();
    Some(CertSource::Acme(AcmeCert {
        directory: directory.value.clone(),
        contact,
        ca_file: a.ca_file.as_ref().map(|c| c.value.clone()),
        challenge: match a.challenge.as_ref().map(|c| c.value) {
            Some("http-01") => AcmeChallenge::Http01,
            Some(_) => AcmeChallenge::TlsAlpn01,
            None => def::ACME_CHALLENGE,
        },
        account: dir.join(format!("account-{}.json", account_stem(&directory.value))),
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
        status: dir.join(format!("{stem}.status.json")),
        order_names: names,
        renew_before_secs: def::ACME_RENEW_BEFORE_SECS,
        retry_min_secs: def::ACME_RETRY_MIN_SECS,
        retry_max_secs: def::ACME_RETRY_MAX_SECS,
        // `dane #true` publishes TLSA 3 1 1 of this key: renewals must
        // not change it (the key changes only by the rollover).
        keep_key: cfg.dane.as_ref().is_some_and(|d| d.value),
        dane_next_key: cfg
            .dane
            .as_ref()
            .is_some_and(|d| d.value)
            .then(|| state_dir.join("tls").join("dane-next.key")),
    }))
}

/// ACME CAs validate on fixed ports: TLS-ALPN-01 connects to 443 (RFC
/// 8737 §3), HTTP-01 to 80 (RFC 8555 §8.3). Without a listener of the
/// kind that answers there, validation can only succeed through a port
/// forward the compiler cannot see: a warning, not an error.
fn challenge_port_warning(cfg: &Config, a: &Acme, cx: &mut Cx<'_>) {
    let challenge = match a.challenge.as_ref().map(|c| c.value) {
        Some("http-01") => AcmeChallenge::Http01,
        Some(_) => AcmeChallenge::TlsAlpn01,
        None => def::ACME_CHALLENGE,
    };
    // Any implicit-TLS listener answers `acme-tls/1` (the `https` one is
    // what port 443 is for); only the `http` listener serves HTTP-01.
    let (kind, port, answering): (_, _, &[&str]) = match challenge {
        AcmeChallenge::TlsAlpn01 => ("https", 443, &["https", "imaps", "pop3s", "submissions"]),
        AcmeChallenge::Http01 => ("http", 80, &["http"]),
    };
    if cfg
        .listeners
        .iter()
        .any(|l| answering.contains(&l.kind.value) && l.addr.value.port() == port)
    {
        return;
    }
    let (span, label) = match &a.challenge {
        Some(c) => (c.span, format!("{} is validated on port {port}", c.value)),
        None => (
            a.span,
            format!("the default challenge, tls-alpn-01, is validated on port {port}"),
        ),
    };
    let name = match challenge {
        AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        AcmeChallenge::Http01 => "http-01",
    };
    cx.diags.push(
        Diag::warning(
            Code::TlsAcmeChallengePort,
            format!("ACME {name}: no `{kind}` listener on port {port}, where the CA connects"),
        )
        .label(span, label)
        .help(format!(
            "add `listen \"{kind}\" \"0.0.0.0:{port}\"` (and [::]:{port}), or forward port {port} to a `{kind}` listener; otherwise every order fails validation"
        )),
    );
}

/// `https://HOST[:PORT]/PATH` with a host and no spaces or userinfo.
fn check_directory(url: &str) -> Result<(), &'static str> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err("an ACME directory is an https:// URL");
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err("the URL has no host");
    }
    if authority.contains('@') {
        return Err("the URL must not carry a user name");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains spaces or control characters");
    }
    Ok(())
}

/// `mailto:local@domain` with a valid address.
fn check_contact(contact: &str) -> Result<(), String> {
    let Some(address) = contact.strip_prefix("mailto:") else {
        return Err("an ACME contact is a `mailto:` URL".to_string());
    };
    if address.contains(',') || address.contains('?') {
        return Err("one address, without `?` headers".to_string());
    }
    let Some((local, domain)) = addr::split(address) else {
        return Err("the address has no `@`".to_string());
    };
    addr::validate_local_part(local).map_err(|e| e.to_string())?;
    let d = addr::normalize_domain(domain).map_err(|e| e.to_string())?;
    if !addr::is_fqdn(&d.ascii) {
        return Err(format!("`{domain}` is not a fully qualified domain"));
    }
    Ok(())
}

/// A file-name-safe name for the account of one directory URL: its host
/// and a short hash of the whole URL (staging and production of one CA
/// have different accounts).
fn account_stem(url: &str) -> String {
    use sha2::{Digest, Sha256};
    let host: String = url
        .trim_start_matches("https://")
        .split(['/', ':'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = Sha256::digest(url.as_bytes());
    format!(
        "{host}-{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_urls() {
        assert!(check_directory("https://acme-v02.api.letsencrypt.org/directory").is_ok());
        assert!(check_directory("https://127.0.0.1:14000/dir").is_ok());
        assert!(check_directory("http://acme.test/directory").is_err());
        assert!(check_directory("https:///directory").is_err());
        assert!(check_directory("https://u@acme.test/directory").is_err());
        assert!(check_directory("https://acme.test/a b").is_err());
    }

    #[test]
    fn contacts() {
        assert!(check_contact("mailto:postmaster@example.com").is_ok());
        assert!(check_contact("postmaster@example.com").is_err());
        assert!(check_contact("mailto:nobody").is_err());
        assert!(check_contact("mailto:a@example.com,b@example.com").is_err());
    }

    #[test]
    fn acme_needs_the_cargo_feature() {
        let out = crate::compile::compile_str(
            "t.kdl",
            Path::new("/"),
            "hostname \"mail.example.test\"\nstate \"/var/lib/mailc\"\n\
             listen \"imaps\" \"0.0.0.0:993\"\n\
             tls {\n    acme directory=\"https://acme.test/dir\"\n}\n",
            crate::compile::Options { offline: true },
        );
        let codes: Vec<String> = out.diags.iter().map(|d| d.code.to_string()).collect();
        if cfg!(feature = "acme") {
            assert!(out.compiled.is_some(), "{codes:?}");
        } else {
            assert!(out.compiled.is_none());
            assert!(codes.contains(&"mailc::tls::acme".to_string()), "{codes:?}");
        }
    }

    #[test]
    fn names_cover_the_hostname_then_the_domains_web_names() {
        let out = crate::compile::compile_str(
            "t.kdl",
            Path::new("/"),
            "hostname \"mail.example.test\"\nstate \"/var/lib/mailc\"\n\
             listen \"imaps\" \"0.0.0.0:993\"\n\
             tls \"imap.example.test\" {\n    acme directory=\"https://acme.test/dir\"\n}\n\
             domain \"example.test\" {\n    mta-sts mode=\"testing\"\n}\n\
             domain \"example.org\"\n",
            crate::compile::Options { offline: true },
        );
        let tables = out.compiled.expect("compiles").tables;
        let CertSource::Acme(a) = &tables.tls[0].source else {
            panic!("not ACME");
        };
        assert_eq!(
            a.order_names,
            [
                "mail.example.test",
                "autoconfig.example.org",
                "autoconfig.example.test",
                "autodiscover.example.org",
                "autodiscover.example.test",
                "imap.example.test",
                "mta-sts.example.test",
            ]
        );
        assert_eq!(tables.tls[0].names, a.order_names);
        // The only certificate also serves clients whose SNI matches nothing.
        assert!(tables.tls[0].default);
    }

    #[cfg(feature = "acme")]
    fn challenge_warnings(listeners: &str, challenge: &str) -> Vec<String> {
        let out = crate::compile::compile_str(
            "t.kdl",
            Path::new("/"),
            &format!(
                "hostname \"mail.example.test\"\nstate \"/var/lib/mailc\"\n\
                 listen \"imaps\" \"0.0.0.0:993\"\n{listeners}\
                 tls {{\n    acme directory=\"https://acme.test/dir\" {challenge}\n}}\n"
            ),
            crate::compile::Options { offline: true },
        );
        assert!(out.compiled.is_some(), "a warning, not an error");
        out.diags
            .iter()
            .filter(|d| d.code == Code::TlsAcmeChallengePort)
            .map(|d| d.message.clone())
            .collect()
    }

    #[cfg(feature = "acme")]
    #[test]
    fn challenges_want_a_listener_on_the_port_the_ca_connects_to() {
        let https = "listen \"https\" \"0.0.0.0:443\"\n";
        let http = "listen \"http\" \"[::]:80\"\n";
        // TLS-ALPN-01 (also by default) needs https on 443.
        assert_eq!(
            challenge_warnings("", ""),
            ["ACME tls-alpn-01: no `https` listener on port 443, where the CA connects"]
        );
        assert_eq!(challenge_warnings("", "challenge=\"tls-alpn-01\"").len(), 1);
        assert!(challenge_warnings(https, "").is_empty());
        // Any implicit-TLS listener on 443 answers `acme-tls/1`.
        assert!(challenge_warnings("listen \"imaps\" \"0.0.0.0:443\"\n", "").is_empty());
        assert_eq!(
            challenge_warnings("listen \"https\" \"0.0.0.0:8443\"\n", "").len(),
            1,
            "another port"
        );
        assert_eq!(challenge_warnings(http, "").len(), 1, "http does not help");
        // HTTP-01 needs http on 80.
        assert_eq!(
            challenge_warnings(https, "challenge=\"http-01\""),
            ["ACME http-01: no `http` listener on port 80, where the CA connects"]
        );
        assert!(challenge_warnings(http, "challenge=\"http-01\"").is_empty());
    }

    #[test]
    fn accounts_differ_per_directory() {
        let a = account_stem("https://acme-v02.api.letsencrypt.org/directory");
        let b = account_stem("https://acme-staging-v02.api.letsencrypt.org/directory");
        assert!(a.starts_with("acme-v02.api.letsencrypt.org-"), "{a}");
        assert_ne!(a, b);
    }
}
