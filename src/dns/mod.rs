//! `dns`: the DNS records each domain needs, derived from the tables.
//!
//! [`wanted`] is a pure function of the tables and the DKIM public keys (read
//! by the caller from the key files); [`zone`] renders it as zone-file
//! snippets; [`keys`] creates and reads DKIM key files; [`live`] queries
//! live DNS and compares (`mailc plan`).

pub mod dane;
pub mod keys;
pub mod live;
pub mod resolver;
pub mod rollover;
pub mod secure;
pub mod zone;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use sha2::{Digest, Sha256};

use crate::tables::{DkimAlgorithm, DomainTable, ListenerKind, Tables};

/// What went wrong reading DKIM keys or asking live DNS.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{}: {source}", path.display())]
    KeyRead {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM private key ({reason})", path.display())]
    KeyNotPem {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The key file holds a key the crypto library refuses.
    #[error("{}: {reason}", path.display())]
    KeyInvalid {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{}: not a {algorithm} key", path.display())]
    KeyAlgorithm {
        path: std::path::PathBuf,
        algorithm: &'static str,
    },
    #[error("cannot read the system resolver configuration: {0}")]
    SystemResolver(String),
    #[error("cannot build a resolver: {0}")]
    Resolver(String),
    #[error("no answer for {name} {rtype} within {seconds}s")]
    Timeout {
        name: String,
        rtype: String,
        seconds: u64,
    },
    #[error("{name} {rtype}: {reason}")]
    Query {
        name: String,
        rtype: String,
        reason: String,
    },
}

/// TTL of every record mailc writes.
pub const TTL: u32 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Data {
    Mx {
        preference: u16,
        host: String,
    },
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Txt(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Cname(String),
    /// RFC 6698: usage, selector, matching type, association data (hex).
    Tlsa {
        usage: u8,
        selector: u8,
        matching: u8,
        data: String,
    },
}

impl Data {
    pub fn rtype(&self) -> &'static str {
        match self {
            Data::Mx { .. } => "MX",
            Data::A(_) => "A",
            Data::Aaaa(_) => "AAAA",
            Data::Txt(_) => "TXT",
            Data::Srv { .. } => "SRV",
            Data::Cname(_) => "CNAME",
            Data::Tlsa { .. } => "TLSA",
        }
    }
}

/// One wanted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Fully qualified owner name with the trailing dot.
    pub name: String,
    pub data: Data,
    /// What the record is for, written above it in zone snippets.
    pub comment: String,
}

/// The records and advice for one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Zone apex (ASCII, no trailing dot).
    pub origin: String,
    pub records: Vec<Record>,
    /// Things that cannot be published in this zone (reverse DNS, web
    /// servers, records in other zones).
    pub advice: Vec<String>,
    /// The MTA-STS policy file to serve, when the domain has one.
    pub mta_sts_policy: Option<String>,
    /// DKIM selectors whose key file is missing.
    pub missing_keys: Vec<String>,
}

/// A DKIM public key for `p=`, by (domain, selector). `None`: no key file yet.
pub type PublicKeys = BTreeMap<(String, String), Option<String>>;

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// The MTA-STS policy text of a domain (RFC 8461 §3.2).
pub fn mta_sts_policy(d: &DomainTable) -> Option<String> {
    let p = d.mta_sts.as_ref()?;
    let mut text = format!("version: STSv1\nmode: {}\n", p.mode);
    for mx in &d.mx {
        text.push_str(&format!("mx: {}\n", mx.host));
    }
    text.push_str(&format!("max_age: {}\n", p.max_age_secs));
    Some(text)
}

/// The policy id: changes whenever the policy text does (RFC 8461 §3.1).
pub fn mta_sts_id(policy: &str) -> String {
    let digest = Sha256::digest(policy.as_bytes());
    digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

pub fn spf_text(d: &DomainTable) -> String {
    let mut parts = vec!["v=spf1".to_string()];
    parts.extend(d.spf.terms.iter().cloned());
    parts.push(d.spf.all.clone());
    parts.join(" ")
}

pub fn dmarc_text(d: &DomainTable) -> Option<String> {
    let m = d.dmarc.as_ref()?;
    let mut tags = vec!["v=DMARC1".to_string(), format!("p={}", m.policy)];
    if let Some(sp) = &m.subdomain_policy {
        tags.push(format!("sp={sp}"));
    }
    if m.adkim == "strict" {
        tags.push("adkim=s".into());
    }
    if m.aspf == "strict" {
        tags.push("aspf=s".into());
    }
    if m.pct != 100 {
        tags.push(format!("pct={}", m.pct));
    }
    if let Some(rua) = &m.rua {
        tags.push(format!("rua={rua}"));
    }
    if let Some(ruf) = &m.ruf {
        tags.push(format!("ruf={ruf}"));
    }
    Some(tags.join("; "))
}

pub fn dkim_text(algorithm: DkimAlgorithm, key_b64: &str) -> String {
    let k = match algorithm {
        DkimAlgorithm::Rsa => "rsa",
        DkimAlgorithm::Ed25519 => "ed25519",
    };
    format!("v=DKIM1; k={k}; p={key_b64}")
}

const SRV: &[(&str, ListenerKind, &str)] = &[
    (
        "_submissions._tcp",
        ListenerKind::Submissions,
        "mail submission over TLS (RFC 8314)",
    ),
    (
        "_submission._tcp",
        ListenerKind::Submission,
        "mail submission with STARTTLS (RFC 6186)",
    ),
    (
        "_imaps._tcp",
        ListenerKind::Imaps,
        "IMAP over TLS (RFC 8314)",
    ),
    (
        "_imap._tcp",
        ListenerKind::Imap,
        "IMAP with STARTTLS (RFC 6186)",
    ),
    (
        "_pop3s._tcp",
        ListenerKind::Pop3s,
        "POP3 over TLS (RFC 8314)",
    ),
    (
        "_pop3._tcp",
        ListenerKind::Pop3,
        "POP3 with STARTTLS (RFC 6186)",
    ),
];

/// Every zone's wanted records, in a stable order (no TLSA records: see
/// [`wanted_with_tlsa`]).
pub fn wanted(tables: &Tables, keys: &PublicKeys) -> Vec<Zone> {
    wanted_with_tlsa(tables, keys, None)
}

/// [`wanted`] plus the DANE TLSA records of `_25._tcp.<hostname>` for the
/// current and the next key (`dane #true`, read by [`dane::tlsa_keys`]).
pub fn wanted_with_tlsa(
    tables: &Tables,
    keys: &PublicKeys,
    tlsa: Option<&dane::TlsaKeys>,
) -> Vec<Zone> {
    let host = fqdn(&tables.hostname);
    // The zone that holds the server's own name gets its A/AAAA records.
    let host_zone = tables
        .domains
        .keys()
        .filter(|d| tables.hostname == **d || tables.hostname.ends_with(&format!(".{d}")))
        .max_by_key(|d| d.len())
        .cloned();
    let mut zones: Vec<Zone> = tables
        .domains
        .values()
        .map(|d| {
            let holds_host = host_zone.as_deref() == Some(d.name.as_str());
            let mut z = domain_zone(tables, keys, d, &host, holds_host);
            if holds_host && let Some(t) = tlsa {
                tlsa_records(t, &host, &mut z);
            }
            z
        })
        .collect();
    if host_zone.is_none()
        && let (Some(t), Some(first)) = (tlsa, zones.first_mut())
    {
        let have: Vec<&String> = t.current.iter().chain(t.next.iter()).collect();
        first.advice.push(format!(
            "DANE: {} is in a zone mailc does not manage; publish there _25._tcp.{host} TLSA 3 1 1 for {}.",
            tables.hostname,
            have.iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    if host_zone.is_none() && !tables.public_ips.is_empty() {
        // The server's name is in a zone mailc does not manage: say what it needs.
        if let Some(first) = zones.first_mut() {
            for ip in &tables.public_ips {
                first.advice.push(format!(
                    "{} needs an {} record for {ip} in its own zone, and reverse DNS (PTR) of {ip} pointing back to it.",
                    tables.hostname,
                    if ip.is_ipv4() { "A" } else { "AAAA" }
                ));
            }
        }
    }
    zones
}

/// TLSA 3 1 1 of the current and next keys, in the zone holding the host.
fn tlsa_records(t: &dane::TlsaKeys, host: &str, z: &mut Zone) {
    let name = format!("_25._tcp.{host}");
    let mut add = |hex: &str, comment: &str| {
        z.records.push(Record {
            name: name.clone(),
            data: Data::Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: hex.to_string(),
            },
            comment: comment.to_string(),
        })
    };
    match &t.current {
        Some(h) => add(
            h,
            "DANE (RFC 7672): SHA-256 of the public key of the certificate served on port 25 (current key).",
        ),
        None => z.advice.push(
            "DANE: the certificate for port 25 does not exist yet (a self-signed one is made by `mailc serve`); run `mailc dns` again after.".into(),
        ),
    }
    match &t.next {
        Some(h) if t.current.as_ref() != Some(h) => add(
            h,
            "DANE: the next key, published before any certificate uses it (rollover: publish next, wait the TTL, switch, retire).",
        ),
        Some(_) => {}
        None => z
            .advice
            .push("DANE: the next key does not exist yet (<state>/tls/dane-next.key).".into()),
    }
}

/// One domain's zone, record kind by record kind (the order of the
/// rendered snippet). `holds_host`: the server's own name is in this zone.
fn domain_zone(
    tables: &Tables,
    keys: &PublicKeys,
    d: &DomainTable,
    host: &str,
    holds_host: bool,
) -> Zone {
    let apex = fqdn(&d.name);
    let mut z = Zone {
        origin: d.name.clone(),
        records: Vec::new(),
        advice: Vec::new(),
        mta_sts_policy: None,
        missing_keys: Vec::new(),
    };
    mx_records(tables, d, &apex, &mut z);
    if holds_host {
        address_records(tables, host, &mut z);
    }
    z.records.push(Record {
        name: apex.clone(),
        data: Data::Txt(spf_text(d)),
        comment: "SPF (RFC 7208): hosts allowed to send mail as this domain. Publish exactly one."
            .into(),
    });
    dkim_records(d, keys, &apex, &mut z);
    dmarc_records(d, &apex, &mut z);
    mta_sts_records(tables, host, d, &apex, &mut z);
    if !d.tls_rpt.is_empty() {
        z.records.push(Record {
            name: format!("_smtp._tls.{apex}"),
            data: Data::Txt(format!("v=TLSRPTv1; rua={}", d.tls_rpt.join(","))),
            comment: "TLS-RPT (RFC 8460): where senders report TLS failures.".into(),
        });
    }
    autoconfig_records(tables, host, &apex, &mut z);
    if holds_host {
        for ip in &tables.public_ips {
            z.advice.push(format!(
                "Reverse DNS: the PTR record of {ip} must be {} (ask whoever runs the address; it cannot be set in this zone).",
                tables.hostname
            ));
        }
    }
    z
}

fn mx_records(tables: &Tables, d: &DomainTable, apex: &str, z: &mut Zone) {
    for mx in &d.mx {
        z.records.push(Record {
            name: apex.to_string(),
            data: Data::Mx {
                preference: mx.priority,
                host: fqdn(&mx.host),
            },
            comment: format!(
                "Mail for {} is delivered to {} (RFC 5321 §5).",
                d.unicode, mx.host
            ),
        });
        if mx.host != tables.hostname {
            z.advice.push(format!(
                "MX host {} is not this server: it needs its own A/AAAA records (never a CNAME, RFC 2181 §10.3) and a mail server.",
                mx.host
            ));
        }
    }
}

/// A/AAAA of the server's own name, in the zone that holds it.
fn address_records(tables: &Tables, host: &str, z: &mut Zone) {
    for ip in &tables.public_ips {
        let data = match ip {
            std::net::IpAddr::V4(v4) => Data::A(*v4),
            std::net::IpAddr::V6(v6) => Data::Aaaa(*v6),
        };
        z.records.push(Record {
            name: host.to_string(),
            data,
            comment: format!(
                "Address of the mail server {} (MX targets need A/AAAA, not CNAME).",
                tables.hostname
            ),
        });
    }
}

fn dkim_records(d: &DomainTable, keys: &PublicKeys, apex: &str, z: &mut Zone) {
    for k in &d.dkim {
        let name = format!("{}._domainkey.{apex}", k.selector);
        match keys.get(&(d.name.clone(), k.selector.clone())).cloned().flatten() {
            Some(b64) => z.records.push(Record {
                name,
                data: Data::Txt(dkim_text(k.algorithm, &b64)),
                comment: format!(
                    "DKIM public key of selector {} ({}), for verifying this domain's signatures (RFC 6376).",
                    k.selector,
                    match k.algorithm {
                        DkimAlgorithm::Rsa => "RSA-2048",
                        DkimAlgorithm::Ed25519 => "Ed25519, RFC 8463",
                    }
                ),
            }),
            None => z.missing_keys.push(k.selector.clone()),
        }
    }
}

fn dmarc_records(d: &DomainTable, apex: &str, z: &mut Zone) {
    let Some(text) = dmarc_text(d) else {
        return;
    };
    z.records.push(Record {
        name: format!("_dmarc.{apex}"),
        data: Data::Txt(text),
        comment: "DMARC (RFC 7489): what receivers do with mail that fails SPF and DKIM alignment."
            .into(),
    });
    for uri in d
        .dmarc
        .iter()
        .flat_map(|m| m.rua.iter().chain(m.ruf.iter()))
    {
        if let Some(target) = uri
            .strip_prefix("mailto:")
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, dom)| dom)
            && target != d.name
            && !target.ends_with(&format!(".{}", d.name))
        {
            z.advice.push(format!(
                "DMARC reports go to {target}, another domain: it must publish TXT \"v=DMARC1\" at {}._report._dmarc.{target}. (RFC 7489 §7.1).",
                d.name
            ));
        }
    }
}

fn mta_sts_records(tables: &Tables, host: &str, d: &DomainTable, apex: &str, z: &mut Zone) {
    let Some(p) = mta_sts_policy(d) else {
        return;
    };
    z.records.push(Record {
        name: format!("_mta-sts.{apex}"),
        data: Data::Txt(format!("v=STSv1; id={}", mta_sts_id(&p))),
        comment: "MTA-STS (RFC 8461): senders must use TLS; the id changes with the policy text."
            .into(),
    });
    if serves_https(tables) {
        z.records.push(Record {
            name: format!("mta-sts.{apex}"),
            data: Data::Cname(host.to_string()),
            comment: "MTA-STS policy host: this server's https listener serves the policy below."
                .into(),
        });
        z.advice.push(format!(
            "MTA-STS: the https listener serves the policy below at https://mta-sts.{}/.well-known/mta-sts.txt; its certificate must be valid for mta-sts.{}.",
            d.name, d.name
        ));
    } else {
        z.advice.push(format!(
            "MTA-STS: serve the policy below over HTTPS at https://mta-sts.{}/.well-known/mta-sts.txt (a valid certificate for mta-sts.{} is required), or add `listen \"https\" \"0.0.0.0:443\"` to have mailc serve it.",
            d.name, d.name
        ));
    }
    z.mta_sts_policy = Some(p);
}

/// Whether this server answers HTTPS itself (a `listen "https"`).
fn serves_https(tables: &Tables) -> bool {
    tables
        .listeners
        .iter()
        .any(|l| l.kind == ListenerKind::Https)
}

/// SRV records of RFC 6186/8314 (and RFC 5804's for ManageSieve) and the
/// autoconfig names clients try.
fn autoconfig_records(tables: &Tables, host: &str, apex: &str, z: &mut Zone) {
    for (label, kind, what) in SRV {
        let listener = tables.listeners.iter().find(|l| l.kind == *kind);
        let (data, comment) = match listener {
            Some(l) => (
                Data::Srv {
                    priority: 0,
                    weight: 1,
                    port: l.address.port(),
                    target: host.to_string(),
                },
                format!("Client autoconfiguration: {what}."),
            ),
            None => (
                Data::Srv {
                    priority: 0,
                    weight: 0,
                    port: 0,
                    target: ".".into(),
                },
                format!(
                    "Client autoconfiguration: {what} is not offered (target \".\", RFC 2782)."
                ),
            ),
        };
        z.records.push(Record {
            name: format!("{label}.{apex}"),
            data,
            comment,
        });
    }
    // RFC 5804 §1.8: where ManageSieve is. Published only where it is
    // offered: no client looks it up to learn that it is absent.
    if let Some(l) = tables
        .listeners
        .iter()
        .find(|l| l.kind == ListenerKind::Managesieve)
    {
        z.records.push(Record {
            name: format!("_sieve._tcp.{apex}"),
            data: Data::Srv {
                priority: 0,
                weight: 1,
                port: l.address.port(),
                target: host.to_string(),
            },
            comment: "Client autoconfiguration: ManageSieve with STARTTLS (RFC 5804 §1.8).".into(),
        });
    }
    let answered_by = if serves_https(tables) {
        "this server's https listener answers it"
    } else {
        "a web server at this name answers it"
    };
    for label in ["autoconfig", "autodiscover"] {
        z.records.push(Record {
            name: format!("{label}.{apex}"),
            data: Data::Cname(host.to_string()),
            comment: format!("Mail client autoconfiguration ({label}); {answered_by}."),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sieve_srv_record_only_where_managesieve_is_offered() {
        let zone_names = |listen: &str| {
            let text = format!(
                "hostname \"mail.example.test\"\nstate \"/nonexistent-mailc-test\"\ntls self-signed=#true\n{listen}\ndomain \"example.test\" {{\n dkim selector=\"s\"\n dmarc policy=\"none\"\n mailbox \"alice\" {{\n alias \"postmaster\"\n }}\n}}\n"
            );
            let out = crate::compile::compile_str(
                "t.kdl",
                std::path::Path::new("/nonexistent-mailc-test"),
                &text,
                crate::compile::Options { offline: true },
            );
            let tables = out.compiled.expect("compiles").tables;
            wanted(&tables, &PublicKeys::new())
                .into_iter()
                .flat_map(|z| z.records)
                .filter(|r| r.name.starts_with("_sieve."))
                .map(|r| match r.data {
                    Data::Srv { port, target, .. } => format!("{} {port} {target}", r.name),
                    _ => r.name,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            zone_names("listen \"managesieve\" \"0.0.0.0:4190\""),
            ["_sieve._tcp.example.test. 4190 mail.example.test."]
        );
        assert!(zone_names("listen \"imaps\" \"0.0.0.0:993\"").is_empty());
    }

    #[test]
    fn mta_sts_ids_follow_the_policy() {
        let a = "version: STSv1\nmode: testing\nmx: a\nmax_age: 1\n";
        let b = "version: STSv1\nmode: enforce\nmx: a\nmax_age: 1\n";
        assert_eq!(mta_sts_id(a), mta_sts_id(a));
        assert_ne!(mta_sts_id(a), mta_sts_id(b));
        assert!(
            mta_sts_id(a).len() <= 32 && mta_sts_id(a).chars().all(|c| c.is_ascii_alphanumeric())
        );
    }
}
