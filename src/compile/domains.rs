//! Domains: names (IDNA), duplicates, and the DNS-facing policy each publishes
//! (MX, DKIM selectors and keys, SPF, DMARC, MTA-STS, TLS-RPT), plus the
//! per-domain address rules (plus separator, local-part case).

use std::collections::BTreeMap;

use super::error::ValueError;
use super::server::Server;
use super::{Cx, defaults as def, secrets};
use crate::addr;
use crate::diag::{Code, Diag};
use crate::spec::ast::{Config, Domain};
use crate::spec::source::Span;
use crate::tables::{
    DkimAlgorithm, DkimKey, DmarcPolicy, DomainTable, LocalPartCase, MtaStsPolicy, MxTable,
    SpfPolicy,
};

pub(super) struct Domains {
    pub tables: BTreeMap<String, DomainTable>,
    pub origins: BTreeMap<String, Span>,
    pub catch_all_origins: BTreeMap<String, Span>,
    /// ASCII name of each `cfg.domains[i]`, `None` when it was invalid or a
    /// duplicate (its contents are then not compiled, to avoid cascades).
    pub names: Vec<Option<String>>,
}

pub(super) fn lower(cfg: &Config, server: &Server, cx: &mut Cx<'_>) -> Domains {
    let mut out = Domains {
        tables: BTreeMap::new(),
        origins: BTreeMap::new(),
        catch_all_origins: BTreeMap::new(),
        names: Vec::new(),
    };
    for d in &cfg.domains {
        let name = match addr::normalize_domain(&d.name.value) {
            Ok(n) => n,
            Err(e) => {
                cx.diags.push(
                    Diag::error(Code::DomainInvalid, format!("domain `{}`: {e}", d.name.value))
                        .label(d.name.span, "not a valid domain name")
                        .help("write the domain as in DNS, e.g. \"example.com\"; internationalised names like \"bücher.example\" are fine"),
                );
                out.names.push(None);
                continue;
            }
        };
        if let Some(prev) = out.origins.get(&name.ascii) {
            let same = if name.ascii == d.name.value {
                String::new()
            } else {
                format!(" (`{}` is `{}`)", d.name.value, name.ascii)
            };
            cx.diags.push(
                Diag::error(
                    Code::DomainDuplicate,
                    format!("domain `{}` is declared twice{same}", name.unicode),
                )
                .label(d.name.span, "declared again here")
                .label(*prev, "first declared here")
                .help("merge the two `domain` blocks into one"),
            );
            out.names.push(None);
            continue;
        }
        out.origins.insert(name.ascii.clone(), d.name.span);
        if let Some(c) = &d.catch_all {
            out.catch_all_origins.insert(name.ascii.clone(), c.span);
        }
        let table = domain(d, &name, server, cx);
        out.tables.insert(name.ascii.clone(), table);
        out.names.push(Some(name.ascii));
    }
    out
}

fn domain(d: &Domain, name: &addr::DomainName, server: &Server, cx: &mut Cx<'_>) -> DomainTable {
    let mx = mx_hosts(d, server, cx);
    let plus_separator = plus_separator(d, cx);
    let local_part_case = match d.local_part_case.as_ref().map(|c| c.value) {
        Some("sensitive") => LocalPartCase::Sensitive,
        Some(_) => LocalPartCase::Insensitive,
        None => def::LOCAL_PART_CASE,
    };
    let dkim = dkim(d, name, server, cx);
    let spf = spf(d, cx);
    let dmarc = dmarc(d, name, cx);
    let mta_sts = d.mta_sts.as_ref().map(|m| MtaStsPolicy {
        mode: m
            .mode
            .as_ref()
            .map_or(def::MTA_STS_MODE, |v| v.value)
            .to_string(),
        max_age_secs: m
            .max_age
            .as_ref()
            .map_or(def::MTA_STS_MAX_AGE_SECS, |v| v.value),
    });
    let tls_rpt = tls_rpt(d, cx);
    DomainTable {
        name: name.ascii.clone(),
        unicode: name.unicode.clone(),
        local_part_case,
        plus_separator,
        catch_all: None,
        mx,
        dkim,
        spf,
        dmarc,
        mta_sts,
        tls_rpt,
        sieve_before: d.sieve_before.iter().map(|p| p.value.clone()).collect(),
        sieve_after: d.sieve_after.iter().map(|p| p.value.clone()).collect(),
        // Lowered with the server's `scan { }` (compile::scan::lower_domain).
        scan: None,
    }
}

/// The MX hosts by priority; without any, the server's own hostname.
fn mx_hosts(d: &Domain, server: &Server, cx: &mut Cx<'_>) -> Vec<MxTable> {
    let mut mx = Vec::new();
    for m in &d.mx {
        match addr::normalize_domain(&m.host.value) {
            Ok(h) if addr::is_fqdn(&h.ascii) => mx.push(MxTable {
                host: h.ascii,
                priority: m.priority.as_ref().map_or(def::MX_PRIORITY, |p| p.value),
            }),
            Ok(_) | Err(_) => cx.diags.push(
                Diag::error(
                    Code::MxInvalid,
                    format!(
                        "MX host `{}` is not a fully qualified host name",
                        m.host.value
                    ),
                )
                .label(m.host.span, "not a host name")
                .help("an MX names a host (with A/AAAA records), never an IP address"),
            ),
        }
    }
    if d.mx.is_empty()
        && let Some(h) = &server.hostname
    {
        mx.push(MxTable {
            host: h.clone(),
            priority: def::MX_PRIORITY,
        });
    }
    mx.sort_by(|a, b| (a.priority, &a.host).cmp(&(b.priority, &b.host)));
    mx
}

/// The plus-address separator (`#null`: plus addressing off): one symbol
/// that may stand in a local part, not `.` or `@`.
fn plus_separator(d: &Domain, cx: &mut Cx<'_>) -> Option<String> {
    let Some(s) = &d.plus_separator else {
        return Some(def::PLUS_SEPARATOR.to_string());
    };
    let sep = s.value.as_ref()?;
    let mut chars = sep.chars();
    let ok = match (chars.next(), chars.next()) {
        (Some(c), None) => {
            c != '.' && c != '@' && !c.is_alphanumeric() && addr::validate_local_part(sep).is_ok()
        }
        _ => false,
    };
    if !ok {
        cx.diags.push(
            Diag::error(Code::PlusSeparator, format!("`{sep}` cannot separate plus addresses"))
                .label(s.span, "not a usable separator")
                .help("use one symbol allowed in local parts, such as \"+\" or \"-\" (or #null to turn plus addressing off)"),
        );
    }
    Some(sep.clone())
}

/// Where TLS-RPT reports go: `mailto:` or `https:` URIs.
fn tls_rpt(d: &Domain, cx: &mut Cx<'_>) -> Vec<String> {
    let mut tls_rpt = Vec::new();
    let Some(t) = &d.tls_rpt else {
        return tls_rpt;
    };
    for uri in &t.rua {
        match report_uri(&uri.value, true) {
            Ok(u) => tls_rpt.push(u),
            Err(e) => cx.diags.push(
                Diag::error(
                    Code::TlsRptUri,
                    format!("TLS-RPT report URI `{}`: {e}", uri.value),
                )
                .label(uri.span, "not mailto: or https:")
                .help(
                    "write \"mailto:tlsrpt@example.com\" or \"https://reports.example.com/tlsrpt\"",
                ),
            ),
        }
    }
    tls_rpt
}

fn dkim(d: &Domain, name: &addr::DomainName, server: &Server, cx: &mut Cx<'_>) -> Vec<DkimKey> {
    let mut out: Vec<DkimKey> = Vec::new();
    let mut seen: Vec<(String, Span)> = Vec::new();
    for k in &d.dkim {
        let sel = k.selector.value.to_ascii_lowercase();
        if !is_selector(&sel) {
            cx.diags.push(
                Diag::error(Code::DkimSelector, format!("DKIM selector `{}` is not a DNS label", k.selector.value))
                    .label(k.selector.span, "invalid selector")
                    .help("selectors are published as `<selector>._domainkey.<domain>`: use letters, digits and hyphens, e.g. \"mailc2025\""),
            );
            continue;
        }
        if let Some((_, prev)) = seen.iter().find(|(s, _)| *s == sel) {
            cx.diags.push(
                Diag::error(
                    Code::DkimDuplicate,
                    format!("DKIM selector `{sel}` is declared twice"),
                )
                .label(k.selector.span, "declared again here")
                .label(*prev, "first declared here")
                .help("each selector names one key; pick a new selector name for a second key"),
            );
            continue;
        }
        seen.push((sel.clone(), k.selector.span));
        let algorithm = match k.algorithm.as_ref().map(|a| a.value) {
            Some("ed25519") => DkimAlgorithm::Ed25519,
            Some(_) => DkimAlgorithm::Rsa,
            None => def::DKIM_ALGORITHM,
        };
        let generate = k.generate.as_ref().is_some_and(|g| g.value);
        let key = dkim_key_path(k, &sel, generate, name, server, cx);
        out.push(DkimKey {
            selector: sel,
            algorithm,
            key,
            generate,
        });
    }
    if d.dkim.is_empty() {
        cx.diags.push(
            Diag::warning(Code::DkimMissing, format!("domain `{}` has no DKIM key", name.unicode))
                .label(d.name.span, "outgoing mail will not be signed")
                .help("add `dkim selector=\"mailc1\"` to the domain and run `mailc dkim keygen`: unsigned mail is often rejected or junked"),
        );
    }
    out
}

/// A selector is published as `<selector>._domainkey.<domain>`: DNS labels
/// of letters, digits and inner hyphens.
fn is_selector(sel: &str) -> bool {
    !sel.is_empty()
        && sel.len() <= 63 * 2
        && sel.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// The key file: `key=` as given (checked unless it is to be generated),
/// else `dkim/<domain>/<selector>.key` in the state directory.
fn dkim_key_path(
    k: &crate::spec::ast::Dkim,
    sel: &str,
    generate: bool,
    name: &addr::DomainName,
    server: &Server,
    cx: &mut Cx<'_>,
) -> std::path::PathBuf {
    match &k.key {
        Some(path) if !generate => {
            secrets::check_file(path, true, "DKIM private key", cx);
            path.value.clone()
        }
        Some(path) => path.value.clone(),
        None => {
            let path = server
                .state_dir
                .join("dkim")
                .join(&name.ascii)
                .join(format!("{sel}.key"));
            if !generate && !cx.options.offline && !path.exists() {
                cx.diags.push(
                    Diag::warning(
                        Code::DkimKeyNotGenerated,
                        format!("DKIM key for selector `{sel}` of {} has not been generated yet", name.unicode),
                    )
                    .label(k.span, format!("expects {}", path.display()))
                    .help("run `mailc dkim keygen CONFIG`, then publish the record `mailc dns` prints"),
                );
            }
            path
        }
    }
}

fn spf(d: &Domain, cx: &mut Cx<'_>) -> SpfPolicy {
    let Some(s) = &d.spf else {
        return SpfPolicy {
            terms: def::SPF_TERMS.iter().map(|t| t.to_string()).collect(),
            all: all_term(def::SPF_ALL),
        };
    };
    let mut terms = Vec::new();
    for t in &s.terms {
        match spf_term(&t.value) {
            Ok(term) => terms.push(term),
            Err(e) => cx.diags.push(
                Diag::error(Code::SpfMechanism, format!("SPF term `{}`: {e}", t.value))
                    .label(t.span, "not valid SPF")
                    .help("use mechanisms such as \"mx\", \"a\", \"ip4:192.0.2.0/24\", \"ip6:2001:db8::/32\", \"include:_spf.example.net\"; set the final `all` with all=\"fail\""),
            ),
        }
    }
    SpfPolicy {
        terms,
        all: all_term(s.all.as_ref().map_or(def::SPF_ALL, |a| a.value)),
    }
}

fn all_term(word: &str) -> String {
    match word {
        "softfail" => "~all",
        "neutral" => "?all",
        _ => "-all",
    }
    .to_string()
}

/// Validates one SPF term (RFC 7208 §5, §6) and returns it lower-cased where
/// case does not matter.
fn spf_term(t: &str) -> Result<String, ValueError> {
    let (qual, body) = match t.chars().next() {
        Some(q @ ('+' | '-' | '~' | '?')) => (Some(q), &t[1..]),
        _ => (None, t),
    };
    let lower = body.to_ascii_lowercase();
    let (name, arg) = match lower.find([':', '/', '=']) {
        Some(i) => (&lower[..i], Some(&body[i..])),
        None => (lower.as_str(), None),
    };
    let check_domain = |spec: &str| -> Result<(), ValueError> {
        let spec = spec.split('/').next().unwrap_or(spec);
        if spec.contains('%') {
            return Ok(()); // macros are checked by the DNS, not us
        }
        if addr::is_dns_name(spec) {
            return Ok(());
        }
        addr::normalize_domain(spec)?;
        Ok(())
    };
    match (name, arg) {
        ("all", _) => Err(ValueError::SpfAll),
        ("v", _) => Err(ValueError::SpfVersion),
        ("mx" | "a", None) => Ok(()),
        ("mx" | "a", Some(a)) if a.starts_with('/') => cidr_suffix(a),
        ("mx" | "a", Some(a)) => check_domain(&a[1..]),
        ("ip4", Some(a)) if a.starts_with(':') => {
            let net = &a[1..];
            let ip = net.split('/').next().unwrap_or(net);
            ip.parse::<std::net::Ipv4Addr>()
                .map_err(|_| ValueError::NotIpv4(ip.to_string()))?;
            crate::ipnet::Network::parse(net)
                .map(|_| ())
                .map_err(|_| ValueError::NotIpv4Network(net.to_string()))
        }
        ("ip6", Some(a)) if a.starts_with(':') => {
            let net = &a[1..];
            let ip = net.split('/').next().unwrap_or(net);
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| ValueError::NotIpv6(ip.to_string()))?;
            crate::ipnet::Network::parse(net)
                .map(|_| ())
                .map_err(|_| ValueError::NotIpv6Network(net.to_string()))
        }
        ("include" | "exists" | "ptr", Some(a)) if a.starts_with(':') => check_domain(&a[1..]),
        ("ptr", None) => Err(ValueError::SpfPtr),
        ("redirect" | "exp", Some(a)) if a.starts_with('=') && qual.is_none() => {
            check_domain(&a[1..])
        }
        _ => Err(ValueError::SpfUnknown),
    }?;
    let mut out = String::new();
    if let Some(q) = qual {
        out.push(q);
    }
    out.push_str(name);
    if let Some(a) = arg {
        out.push_str(a);
    }
    Ok(out)
}

fn cidr_suffix(a: &str) -> Result<(), ValueError> {
    for part in a.split('/').skip(1) {
        if part.is_empty() {
            continue;
        }
        part.parse::<u8>()
            .ok()
            .filter(|n| *n <= 128)
            .ok_or_else(|| ValueError::Prefix(part.to_string()))?;
    }
    Ok(())
}

fn dmarc(d: &Domain, name: &addr::DomainName, cx: &mut Cx<'_>) -> Option<DmarcPolicy> {
    let Some(m) = &d.dmarc else {
        cx.diags.push(
            Diag::warning(Code::DmarcMissing, format!("domain `{}` publishes no DMARC policy", name.unicode))
                .label(d.name.span, "no `dmarc` node")
                .help(format!(
                    "add `dmarc policy=\"quarantine\" rua=\"postmaster@{}\"`: receivers trust mail from domains with DMARC more",
                    name.unicode
                )),
        );
        return None;
    };
    let mut uri = |v: &Option<crate::spec::source::Spanned<String>>| -> Option<String> {
        let v = v.as_ref()?;
        match report_uri(&v.value, false) {
            Ok(u) => Some(u),
            Err(e) => {
                cx.diags.push(
                    Diag::error(
                        Code::DmarcReport,
                        format!("DMARC report address `{}`: {e}", v.value),
                    )
                    .label(v.span, "not an address or mailto: URI")
                    .help("write \"dmarc@example.com\" or \"mailto:dmarc@example.com\""),
                );
                None
            }
        }
    };
    let rua = uri(&m.rua);
    let ruf = uri(&m.ruf);
    Some(DmarcPolicy {
        policy: m.policy.value.to_string(),
        subdomain_policy: m.subdomain_policy.as_ref().map(|s| s.value.to_string()),
        rua,
        ruf,
        pct: m.pct.as_ref().map_or(def::DMARC_PCT, |p| p.value),
        adkim: m
            .adkim
            .as_ref()
            .map_or(def::DMARC_ALIGNMENT, |a| a.value)
            .to_string(),
        aspf: m
            .aspf
            .as_ref()
            .map_or(def::DMARC_ALIGNMENT, |a| a.value)
            .to_string(),
    })
}

/// A report destination: a bare address becomes a `mailto:` URI; `https:` is
/// allowed where the report format permits it (TLS-RPT).
fn report_uri(text: &str, https_ok: bool) -> Result<String, ValueError> {
    if let Some(rest) = text.strip_prefix("https://") {
        if !https_ok {
            return Err(ValueError::MailtoOnly);
        }
        let host = rest.split(['/', ':']).next().unwrap_or("");
        addr::normalize_domain(host).map_err(ValueError::Host)?;
        if text.contains([',', '!', ';', ' ']) {
            return Err(ValueError::UriSeparator);
        }
        return Ok(text.to_string());
    }
    let address = text.strip_prefix("mailto:").unwrap_or(text);
    if text.contains(':') && !text.starts_with("mailto:") {
        return Err(ValueError::UriScheme);
    }
    let (local, domain) = addr::split(address).ok_or(ValueError::NotAnAddress)?;
    addr::validate_local_part(local)?;
    let d = addr::normalize_domain(domain)?;
    Ok(format!("mailto:{local}@{}", d.ascii))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_terms() {
        for ok in [
            "mx",
            "a",
            "a/24",
            "mx:other.example",
            "ip4:192.0.2.0/24",
            "ip4:192.0.2.1",
            "ip6:2001:db8::/32",
            "include:_spf.example.net",
            "-include:bad.example",
            "~a",
            "exists:%{i}.spf.example",
            "redirect=_spf.example.com",
        ] {
            assert!(spf_term(ok).is_ok(), "{ok}");
        }
        for bad in [
            "all",
            "-all",
            "v=spf1",
            "ip4:300.1.1.1",
            "ip6:192.0.2.1",
            "include:",
            "frob",
            "ptr",
            "ip4:192.0.2.1/24",
        ] {
            assert!(spf_term(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn report_uris() {
        assert_eq!(
            report_uri("dmarc@Example.COM", false).unwrap(),
            "mailto:dmarc@example.com"
        );
        assert_eq!(
            report_uri("mailto:d@example.com", false).unwrap(),
            "mailto:d@example.com"
        );
        assert!(report_uri("https://r.example.com/x", false).is_err());
        assert!(report_uri("https://r.example.com/x", true).is_ok());
        assert!(report_uri("ftp://x", true).is_err());
        assert!(report_uri("nobody", false).is_err());
    }
}
