//! DNS: golden zone snippets for every example, DKIM key generation, and
//! `mailc plan` against a real authoritative DNS server on loopback
//! (hickory-server in-process): empty zone, in sync (a zone loaded from
//! `mailc dns` output itself), drift, stale records, broken records, and an
//! unreachable resolver.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::*;

fn mailc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(args)
        .output()
        .expect("mailc runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Keys are random: snapshots show `p=[KEY]` (also across the quoted
/// 255-byte strings a long key is split into, escaped or not).
fn mask_keys(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("p=") {
        out.push_str(&rest[..i + 2]);
        let tail = &rest[i + 2..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "+/=\" \\".contains(c)))
            .unwrap_or(tail.len());
        let taken = &tail[..end];
        if taken.len() > 20 {
            out.push_str("[KEY]");
            // Keep the closing quotes (and their escapes) of the last string.
            let closing: String = taken
                .chars()
                .rev()
                .take_while(|c| *c == '"' || *c == '\\')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str(&closing);
        } else {
            out.push_str(taken);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if e.file_name() != "state" {
                copy_tree(&p, &to.join(e.file_name()));
            }
        } else if p.extension().is_some_and(|x| x == "kdl") {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn zone_snippets_of_every_example_are_pinned() {
    // A copy without state: no DKIM key exists, so the snippets do not
    // depend on what was generated on this machine.
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&root().join("examples"), tmp.path());
    for path in example_configs() {
        let rel = path.strip_prefix(root().join("examples")).unwrap();
        let copy = tmp.path().join(rel);
        let out = mailc(&["dns", copy.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let name = rel.display().to_string().replace(['/', '.'], "_");
        let text =
            normalize(&stdout(&out)).replace(&tmp.path().display().to_string(), "[EXAMPLES]");
        insta::assert_snapshot!(format!("dns_{name}"), text);
    }
}

struct Site {
    _dir: tempfile::TempDir,
    config: String,
    state: std::path::PathBuf,
}

const SITE: &str = r#"hostname "mail.example.com"
state "STATE"
public-ip "192.0.2.10" "2001:db8::10"
tls self-signed=#true
listen "smtp" "0.0.0.0:25"
listen "submissions" "0.0.0.0:465"
listen "imaps" "0.0.0.0:993"
domain "example.com" {
    dkim selector="s2026"
    dkim selector="e2026" algorithm="ed25519"
    spf "mx" "ip4:192.0.2.0/24"
    dmarc policy="quarantine" rua="dmarc@example.com"
    mta-sts mode="enforce"
    tls-rpt "mailto:tlsrpt@example.com"
    mailbox "alice" {
        alias "postmaster" "dmarc" "tlsrpt"
    }
}
"#;

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("site.kdl");
    std::fs::write(&config, SITE.replace("STATE", &state.display().to_string())).unwrap();
    let config = config.display().to_string();
    let out = mailc(&["dkim", "keygen", &config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Site {
        _dir: dir,
        config,
        state,
    }
}

fn plan(site: &Site, server: &DnsServer, json: bool) -> (Option<i32>, String) {
    let addr = server.addr.to_string();
    let mut args = vec!["plan", "--resolver", &addr, &site.config];
    if json {
        args.extend(["--format", "json"]);
    }
    let out = mailc(&args);
    let text = mask_seconds(&stdout(&out).replace(&addr, "[RESOLVER]"));
    (
        out.status.code(),
        format!(
            "{}{}",
            mask_keys(&text),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The rollover's elapsed and remaining seconds depend on the clock:
/// snapshots show `[N]s` after "published " and "wait ".
fn mask_seconds(text: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let Some(at) = line.find("first seen published") else {
            out.push_str(line);
            continue;
        };
        let mut masked = line[..at].to_string();
        let mut digits = false;
        for c in line[at..].chars() {
            if c.is_ascii_digit() {
                if !digits {
                    masked.push_str("[N]");
                }
                digits = true;
            } else {
                digits = false;
                masked.push(c);
            }
        }
        out.push_str(&masked);
    }
    out
}

/// The snippet `mailc dns` prints for the site.
fn snippet(site: &Site) -> String {
    let out = mailc(&["dns", &site.config]);
    assert!(out.status.success());
    stdout(&out)
}

#[test]
fn keygen_creates_keys_once_with_private_modes() {
    let s = site();
    let dir = s.state.join("dkim/example.com");
    for name in ["s2026.key", "e2026.key"] {
        let meta = std::fs::metadata(dir.join(name)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let before = std::fs::read(dir.join("s2026.key")).unwrap();
    let out = mailc(&["dkim", "keygen", &s.config]);
    assert!(stdout(&out).contains("kept"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read(dir.join("s2026.key")).unwrap(),
        before,
        "an existing key is never overwritten"
    );
    let text = snippet(&s);
    let line = |sel: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(sel))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        line("s2026._domainkey")
            .starts_with("s2026._domainkey IN TXT \"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEF"),
        "{text}"
    );
    assert!(
        line("e2026._domainkey").starts_with("e2026._domainkey IN TXT \"v=DKIM1; k=ed25519; p="),
        "{text}"
    );
    // RSA-2048 keys need more than one 255-byte TXT string.
    let line = text
        .lines()
        .find(|l| l.starts_with("s2026._domainkey"))
        .unwrap();
    assert!(line.matches("\" \"").count() >= 1, "{line}");
}

#[test]
fn plan_against_an_empty_zone_adds_everything() {
    let s = site();
    let server = DnsServer::start(&[("example.com.", String::new())]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        !text.contains("\n  ~ ") && !text.contains("\n  - "),
        "{text}"
    );
    insta::assert_snapshot!("plan_empty_zone", text);
}

#[test]
fn plan_against_its_own_snippet_is_in_sync() {
    let s = site();
    let zone = snippet(&s);
    let server = DnsServer::start(&[("example.com.", zone)]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("DNS is in sync"), "{text}");
    let (code, json) = plan(&s, &server, true);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(json.split("\n{").next().unwrap_or(&json))
        .unwrap_or_else(|_| serde_json::from_str(&json).unwrap());
    assert_eq!(v["in_sync"], true);
    assert_eq!(v["summary"]["add"], 0);
}

#[test]
fn plan_shows_drift() {
    let s = site();
    let zone = snippet(&s)
        .replace("\"v=spf1 mx ip4:192.0.2.0/24 -all\"", "\"v=spf1 mx ~all\"")
        .replace("p=quarantine", "p=none")
        .replace("MX    10 mail.example.com.", "MX    20 mail.example.com.");
    let server = DnsServer::start(&[("example.com.", zone)]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(2), "{text}");
    assert_eq!(text.matches("\n  ~ ").count(), 3, "{text}");
    insta::assert_snapshot!("plan_drift_text", text);
    let (_, json) = plan(&s, &server, true);
    insta::assert_snapshot!("plan_drift_json", json);
}

#[test]
fn plan_finds_stale_records() {
    let s = site();
    // A retired selector: its key file is still there, the config names it
    // no more, and it is still published.
    let dir = s.state.join("dkim/example.com");
    std::fs::copy(dir.join("s2026.key"), dir.join("old2020.key")).unwrap();
    let zone = format!(
        "{}\nold2020._domainkey IN TXT \"v=DKIM1; k=rsa; p=MIIBIjANretired\"\n@ IN TXT \"v=spf1 a -all\"\n_dmarc IN TXT \"v=DMARC1; p=none\"\n",
        snippet(&s)
    );
    let server = DnsServer::start(&[("example.com.", zone)]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("- old2020._domainkey.example.com."), "{text}");
    assert!(text.contains("duplicate SPF record"), "{text}");
    assert!(text.contains("duplicate DMARC record"), "{text}");
    assert!(text.contains("2 SPF records"), "{text}");
    insta::assert_snapshot!("plan_stale", text);
}

#[test]
fn plan_reports_broken_records() {
    let s = site();
    let includes: String = (0..6)
        .map(|i| format!("include:spf{i}.example.net "))
        .collect();
    let zone = format!(
        "@ IN MX 10 alias.example.com.\n@ IN MX 20 nowhere.example.com.\nalias IN CNAME mail.example.com.\nmail IN A 192.0.2.10\n@ IN TXT \"v=spf1 {includes}-all\"\n@ IN TXT \"v=spf1 mx -all\"\n_dmarc IN TXT \"v=DMARC1; p=maybe\"\n"
    );
    let net: String = (0..6)
        .map(|i| format!("spf{i} IN TXT \"v=spf1 a mx -all\"\n"))
        .collect();
    let server = DnsServer::start(&[("example.com.", zone), ("example.net.", net)]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("the MX target is a CNAME"), "{text}");
    assert!(
        text.contains("nowhere.example.com.: the MX target has no A or AAAA record"),
        "{text}"
    );
    assert!(text.contains("more than 10 is a permanent error"), "{text}");
    assert!(text.contains("malformed DMARC record"), "{text}");
    assert!(text.contains("2 SPF records"), "{text}");
    insta::assert_snapshot!("plan_broken", text);
}

#[test]
fn plan_with_an_unreachable_resolver_fails_fast() {
    let s = site();
    // A UDP socket that never answers, and nothing on TCP.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    let out = mailc(&["plan", "--resolver", &addr, &s.config]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DNS query failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// The snippets load in NSD as they are (prefixed with the SOA and NS a real
/// zone has). Needs `nsd-checkzone`: run by `.ci/run`.
#[test]
#[ignore = "needs nsd-checkzone (Debian package nsd); run by .ci/run"]
fn snippets_load_in_nsd() {
    let found = Command::new("sh")
        .arg("-c")
        .arg("command -v nsd-checkzone")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "nsd-checkzone is not installed: .ci/run installs it; the interop tests never skip"
    );
    let s = site();
    let mut zones: Vec<(String, String)> = vec![("example.com".into(), snippet(&s))];
    for path in example_configs() {
        let text = stdout(&mailc(&["dns", path.to_str().unwrap()]));
        // Split the output into its zones at each $ORIGIN.
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(origin) = line.strip_prefix("$ORIGIN ") {
                if let Some(z) = current.take() {
                    zones.push(z);
                }
                current = Some((origin.trim_end_matches('.').to_string(), String::new()));
            }
            if let Some((_, body)) = current.as_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        zones.extend(current);
    }
    assert!(zones.len() >= 6);
    let dir = tempfile::tempdir().unwrap();
    for (origin, body) in zones {
        let file = dir.path().join(format!("{origin}.zone"));
        std::fs::write(&file, format!("$ORIGIN {origin}.\n$TTL 3600\n@ IN SOA ns1.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n@ IN NS ns1.{origin}.\nns1 IN A 192.0.2.53\n{body}")).unwrap();
        let out = Command::new("nsd-checkzone")
            .arg(&origin)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "NSD rejects the snippet of {origin}:\n{}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `p=` values are what OpenSSL derives from the key files: the RSA
/// SubjectPublicKeyInfo and the raw Ed25519 key (RFC 8463). Run by `.ci/run`.
#[test]
#[ignore = "needs the openssl command; run by .ci/run"]
fn published_keys_match_openssl() {
    let found = Command::new("sh")
        .arg("-c")
        .arg("command -v openssl")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "openssl is not installed: .ci/run installs it; the interop tests never skip"
    );
    let s = site();
    let text = snippet(&s);
    let p_of = |sel: &str| -> String {
        let line = text.lines().find(|l| l.starts_with(sel)).expect("record");
        line.split("p=")
            .nth(1)
            .unwrap()
            .replace("\" \"", "")
            .replace('"', "")
    };
    let dir = s.state.join("dkim/example.com");
    let der = |args: &[&str]| -> Vec<u8> {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let rsa = der(&[
        "pkey",
        "-in",
        dir.join("s2026.key").to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    assert_eq!(
        p_of("s2026._domainkey"),
        mailc::proto::sasl::base64_encode(&rsa)
    );
    let ed = der(&[
        "pkey",
        "-in",
        dir.join("e2026.key").to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    assert_eq!(
        p_of("e2026._domainkey"),
        mailc::proto::sasl::base64_encode(&ed[ed.len() - 32..])
    );
}

#[test]
fn dns_for_one_domain() {
    let cfg = root().join("examples/multi-domain.kdl");
    let out = mailc(&["dns", "--domain", "EXAMPLE.net", cfg.to_str().unwrap()]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert_eq!(text.matches("$ORIGIN").count(), 1, "{text}");
    assert!(text.contains("$ORIGIN example.net."));
    let out = mailc(&["dns", "--domain", "nope.example", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

// ---- DANE (`dane #true`): TLSA 3 1 1 for the current and the next key

/// SHA-256 of the SubjectPublicKeyInfo of tests/data/dane/current.pem and
/// next.key, computed once with openssl (`openssl x509 -pubkey | openssl
/// pkey -pubin -outform DER | sha256sum`): an independent check of ours.
const DANE_CURRENT: &str = "d2cce5290e6836474a599f2843842efb7c559807867bfe9ace2f6e772fdabf5f";
const DANE_NEXT: &str = "1b0e9fdd6194b7a06f5c0ecd7dd16cf9c25eef0bd02f03783cf6ec047f929a90";

/// The site with `dane #true` and a fixed certificate for the host name;
/// `with_next`: the fixed next key is in the state directory already.
fn dane_site(with_next: bool) -> Site {
    use std::os::unix::fs::PermissionsExt;
    let s = site();
    let data = root().join("tests/data/dane");
    let dir = s.state.parent().unwrap().to_path_buf();
    for f in ["current.pem", "current.key"] {
        std::fs::copy(data.join(f), dir.join(f)).unwrap();
    }
    std::fs::set_permissions(
        dir.join("current.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if with_next {
        std::fs::create_dir_all(s.state.join("tls")).unwrap();
        std::fs::copy(data.join("next.key"), s.state.join("tls/dane-next.key")).unwrap();
    }
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        "tls self-signed=#true\n",
        &format!(
            "tls \"mail.example.com\" cert=\"{}\" key=\"{}\"\ndane #true\n",
            dir.join("current.pem").display(),
            dir.join("current.key").display()
        ),
    );
    std::fs::write(&s.config, text).unwrap();
    s
}

fn tlsa_lines(zone: &str) -> Vec<String> {
    zone.lines()
        .filter(|l| l.contains(" TLSA "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn dns_with_dane_publishes_the_current_and_the_next_key() {
    let s = dane_site(true);
    let zone = snippet(&s);
    assert_eq!(
        tlsa_lines(&zone),
        vec![
            format!("_25._tcp.mail IN TLSA 3 1 1 {DANE_CURRENT}"),
            format!("_25._tcp.mail IN TLSA 3 1 1 {DANE_NEXT}"),
        ],
        "{zone}"
    );
    let lines: Vec<&str> = zone.lines().collect();
    let first = lines.iter().position(|l| l.contains("DANE")).unwrap();
    let last = lines.iter().rposition(|l| l.contains(" TLSA ")).unwrap();
    let tlsa_part = lines[first..=last].join("\n");
    insta::assert_snapshot!("dns_dane_tlsa", tlsa_part);
}

#[test]
fn the_next_dane_key_is_made_once_when_missing() {
    use std::os::unix::fs::PermissionsExt;
    let s = dane_site(false);
    let key = s.state.join("tls/dane-next.key");
    let out = mailc(&["dns", &s.config]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("created the next DANE key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read(&key).unwrap();
    let lines = tlsa_lines(&stdout(&out));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(DANE_CURRENT));
    assert!(!lines[1].ends_with(DANE_CURRENT) && !lines[1].ends_with(DANE_NEXT));
    // Printed again: the same key, the same records.
    let again = mailc(&["dns", &s.config]);
    assert!(String::from_utf8_lossy(&again.stderr).is_empty());
    assert_eq!(std::fs::read(&key).unwrap(), first);
    assert_eq!(tlsa_lines(&stdout(&again)), lines);
}

/// `mailc plan` against a real DNS server: the next key not yet published
/// (publish now), published (wait the TTL), and a stale key left (retire).
#[test]
fn plan_checks_tlsa_and_shows_the_rollover() {
    let s = dane_site(true);
    let zone = snippet(&s);
    let next_line = zone
        .lines()
        .find(|l| l.contains(DANE_NEXT))
        .unwrap()
        .to_string();

    let without_next = zone.replace(&next_line, "");
    let server = DnsServer::start(&[("example.com.", without_next)]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("~ _25._tcp.mail.example.com."), "{text}");
    assert!(
        text.contains(&format!(
            "1. publish-next NOW    publish TLSA 3 1 1 {DANE_NEXT}"
        )),
        "{text}"
    );
    assert!(text.contains("2. wait-ttl     later"), "{text}");

    let server = DnsServer::start(&[("example.com.", zone.clone())]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1. publish-next done"), "{text}");
    assert!(text.contains("2. wait-ttl     NOW"), "{text}");
    assert!(text.contains("4. retire       done"), "{text}");

    let stale = "aa".repeat(32);
    let with_stale = format!("{zone}\n_25._tcp.mail IN TLSA 3 1 1 {stale}\n");
    let server = DnsServer::start(&[("example.com.", with_stale)]);
    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("4. retire       NOW    remove the stale TLSA 3 1 1 aaaaaaaaaaaa…"),
        "{text}"
    );
    insta::assert_snapshot!("plan_dane_stale", text);
    let (_, json) = plan(&s, &server, true);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let dane = &v["rollovers"][0];
    assert_eq!(dane["what"], "DANE _25._tcp.mail.example.com");
    assert_eq!(dane["steps"][3]["state"], "now");
}

// ---- `mailc tls rollover`: the switch step, certificate files

/// `<state>/tls/dane-next.seen` as JSON.
fn read_seen(s: &Site) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(s.state.join("tls/dane-next.seen")).unwrap()).unwrap()
}

/// Writes `<state>/tls/dane-next.seen`: the next key first seen at
/// `first_seen`, with the longest TTL seen when given.
fn write_seen(s: &Site, first_seen: u64, ttl: Option<u32>) {
    let ttl = ttl.map_or(String::new(), |t| format!(", \"ttl\": {t}"));
    std::fs::write(
        s.state.join("tls/dane-next.seen"),
        format!("{{\"key\": \"{DANE_NEXT}\", \"first-seen\": {first_seen}{ttl}}}"),
    )
    .unwrap();
}

fn rollover(s: &Site, server: &DnsServer, force: bool) -> Output {
    let addr = server.addr.to_string();
    let mut args = vec!["tls", "rollover", "--resolver", &addr, &s.config];
    if force {
        args.push("--force");
    }
    mailc(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn spki_sha256_of_csr(pem: &str) -> String {
    use sha2::Digest;
    use x509_parser::prelude::FromDer;
    let start = pem
        .find("-----BEGIN CERTIFICATE REQUEST-----")
        .expect("a CSR");
    let (_, der) = x509_parser::pem::parse_x509_pem(&pem.as_bytes()[start..]).unwrap();
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der.contents)
            .unwrap();
    sha2::Sha256::digest(csr.certification_request_info.subject_pki.raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Against a real DNS server: refused while the next key is not published
/// (`--force` too), refused while it has been published for less than the
/// TTL (unless `--force`), then, with certificate files, a CSR on the next
/// key and instructions, the certificate files untouched. The admin then
/// installs a certificate on the next key: `mailc plan` shows the switch
/// done and the old record to retire, and a fresh next key is made.
#[test]
fn tls_rollover_with_certificate_files() {
    let s = dane_site(true);
    let dir = s.state.parent().unwrap().to_path_buf();
    let zone = snippet(&s);
    let next_line = zone
        .lines()
        .find(|l| l.contains(DANE_NEXT))
        .unwrap()
        .to_string();
    let before: Vec<Vec<u8>> = ["current.pem", "current.key"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();

    // Not published: refused, --force or not.
    let server = DnsServer::start(&[("example.com.", zone.replace(&next_line, ""))]);
    for force in [false, true] {
        let out = rollover(&s, &server, force);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("TLSA 3 1 1 {DANE_NEXT}` is not published")),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("d2cce5290e68…"),
            "the live record is named"
        );
    }
    assert!(!s.state.join("tls/dane-next.seen").exists());

    // Published just now: the wait is not over.
    let server = DnsServer::start(&[("example.com.", zone.clone())]);
    let out = rollover(&s, &server, false);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more (the TTL is 3600s)"),
        "{}",
        stderr(&out)
    );
    let seen: serde_json::Value = read_seen(&s);
    assert_eq!(seen["key"], DANE_NEXT);
    let first_seen = seen["first-seen"].as_u64().unwrap();
    assert!(first_seen.abs_diff(now()) < 60, "{seen}");
    // `mailc plan` agrees: waiting.
    let (_, text) = plan(&s, &server, false);
    assert!(
        text.contains("2. wait-ttl     NOW    first seen published [N]s ago; wait [N]s more"),
        "{text}"
    );
    assert!(text.contains("3. switch       later"), "{text}");
    // The first sighting is kept, not moved.
    let again: serde_json::Value = read_seen(&s);
    assert_eq!(again["first-seen"].as_u64(), Some(first_seen));

    // --force skips the wait.
    let out = rollover(&s, &server, true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("--force: not waiting"),
        "{}",
        stdout(&out)
    );

    // Published for more than the TTL (as recorded an hour ago): done
    // without --force.
    write_seen(&s, now() - 3601, None);
    let (_, text) = plan(&s, &server, false);
    assert!(text.contains("2. wait-ttl     done"), "{text}");
    assert!(
        text.contains("3. switch       NOW    `mailc tls rollover CONFIG`"),
        "{text}"
    );
    // Without --resolver: the configuration's `resolver` is asked.
    let config = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("resolver \"{}\"\n{config}", server.addr)).unwrap();
    let out = mailc(&["tls", "rollover", &s.config]);
    // `mailc plan` too.
    let planned = mailc(&["plan", &s.config]);
    std::fs::write(&s.config, config).unwrap();
    assert!(
        stdout(&planned).contains(&format!("(resolver {})", server.addr)),
        "{}{}",
        stdout(&planned),
        stderr(&planned)
    );
    assert!(stdout(&planned).contains("2. wait-ttl     done"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("mailc does not manage these certificate files"),
        "{text}"
    );
    assert!(text.contains("mail.example.com"), "{text}");
    let csr_path = s.state.join("tls/dane-next.csr");
    assert_eq!(spki_sha256_of_csr(&text), DANE_NEXT, "the CSR printed");
    assert_eq!(
        spki_sha256_of_csr(&std::fs::read_to_string(&csr_path).unwrap()),
        DANE_NEXT,
        "the CSR written"
    );
    let after: Vec<Vec<u8>> = ["current.pem", "current.key"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after, "the certificate files are the admin's");

    // The admin installs a certificate on the next key.
    let next_key = s.state.join("tls/dane-next.key");
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&next_key).unwrap()).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mail.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("current.pem"), cert.pem()).unwrap();
    std::fs::copy(&next_key, dir.join("current.key")).unwrap();

    let (code, text) = plan(&s, &server, false);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("made a fresh next key"), "{text}");
    assert!(text.contains("1. publish-next NOW"), "{text}");
    assert!(text.contains("3. switch       done"), "{text}");
    assert!(
        text.contains("4. retire       NOW    remove the stale TLSA 3 1 1 d2cce5290e68…"),
        "{text}"
    );
    let switch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state.join("tls/dane-switch.json")).unwrap())
            .unwrap();
    assert_eq!(switch["from"], DANE_CURRENT);
    assert_eq!(switch["to"], DANE_NEXT);
    assert!(!s.state.join("tls/dane-rollover.request").exists());
    // `mailc dns` now publishes the key served and the fresh next one.
    let lines = tlsa_lines(&snippet(&s));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(DANE_NEXT), "{lines:?}");
    assert!(!lines[1].ends_with(DANE_NEXT) && !lines[1].ends_with(DANE_CURRENT));
    // `mailc tls status` shows both keys and the switch.
    let out = mailc(&["tls", "status", &s.config]);
    let status = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        status.contains("DANE _25._tcp.mail.example.com (TLSA 3 1 1)"),
        "{status}"
    );
    assert!(
        status.contains(&format!("current key: {DANE_NEXT}")),
        "{status}"
    );
    assert!(
        status.contains(&format!("next key: {}", &lines[1][lines[1].len() - 64..])),
        "{status}"
    );
    assert!(status.contains("last switch: "), "{status}");
    assert!(status.contains(&format!(" to {DANE_NEXT}")), "{status}");
    // And the plan stays as it is until DNS changes.
    let (_, again) = plan(&s, &server, false);
    assert!(again.contains("3. switch       done"), "{again}");
    assert!(!again.contains("made a fresh next key"), "{again}");
}

/// The zone publishes the TLSA RRset with a TTL of a day, longer than
/// mailc's: `mailc tls rollover` and `mailc plan` wait that long (a cache
/// may hold the RRset without the next key for a day), and the TTL seen
/// is kept with the first sighting.
#[test]
fn the_rollover_waits_for_the_zones_longer_ttl() {
    let s = dane_site(true);
    let zone = snippet(&s).replace("_25._tcp.mail     IN TLSA", "_25._tcp.mail 86400 IN TLSA");
    assert_eq!(zone.matches(" 86400 IN TLSA").count(), 2, "{zone}");
    let server = DnsServer::start(&[("example.com.", zone)]);
    let out = rollover(&s, &server, false);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more (the TTL is 86400s)"),
        "{}",
        stderr(&out)
    );
    let seen: serde_json::Value = read_seen(&s);
    assert_eq!(seen["ttl"], 86400, "{seen}");
    // Seen two hours ago (mailc's TTL is over) but the zone's day is not.
    write_seen(&s, now() - 7200, Some(86400));
    let out = rollover(&s, &server, false);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // (A second may pass between the write and the command's clock.)
    let waited: u64 = stderr(&out)
        .split("seen published for ")
        .nth(1)
        .and_then(|w| w.split("s only").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", stderr(&out)));
    assert!(waited.abs_diff(7200) < 60, "{}", stderr(&out));
    // (`plan()` masks the numbers; here they are the point.)
    let wait_step = |s: &Site| {
        let addr = server.addr.to_string();
        let out = mailc(&["plan", "--resolver", &addr, &s.config, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["rollovers"][0]["steps"][1].clone()
    };
    let step = wait_step(&s);
    assert_eq!(step["state"], "now", "{step}");
    let detail = step["detail"].as_str().unwrap();
    assert!(detail.contains("(TTL 86400s)"), "{detail}");
    let left: u64 = detail
        .split("wait ")
        .nth(1)
        .and_then(|w| w.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{detail}"));
    assert!(left.abs_diff(86_400 - 7200) < 60, "{detail}");
    // A day later: the switch may go.
    write_seen(&s, now() - 86_401, Some(86400));
    let step = wait_step(&s);
    assert_eq!(step["state"], "done", "{step}");
    assert!(
        step["detail"].as_str().unwrap().contains("(TTL 86400s)"),
        "{step}"
    );
}

#[test]
fn tls_rollover_needs_dane() {
    let s = site();
    let server = DnsServer::start(&[("example.com.", String::new())]);
    let out = rollover(&s, &server, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`dane #true`"), "{}", stderr(&out));
}

/// Run as root (CI), `mailc dns` and `mailc dkim keygen` give what they
/// create in the state directory to the directory's owner (here nobody),
/// so that the server's user can read its keys.
#[test]
#[ignore = "needs root; run by .ci/run"]
fn files_made_as_root_belong_to_the_state_dir_owner() {
    use std::os::unix::fs::MetadataExt;
    assert!(
        rustix::process::geteuid().is_root(),
        "this test must run as root"
    );
    let s = dane_site(false);
    // The service user owns the state directory (nobody:nogroup).
    for e in walk(&s.state) {
        std::os::unix::fs::lchown(&e, Some(65_534), Some(65_534)).unwrap();
    }
    std::fs::remove_file(s.state.join("dkim/example.com/s2026.key")).unwrap();
    let out = mailc(&["dns", &s.config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mailc(&["dkim", "keygen", &s.config]);
    assert!(out.status.success(), "{}", stderr(&out));
    for e in walk(&s.state) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        assert_eq!((m.uid(), m.gid()), (65_534, 65_534), "{}", e.display());
    }
    assert!(s.state.join("tls/dane-next.key").exists());
    assert!(s.state.join("dkim/example.com/s2026.key").exists());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// With ACME and no server running, `mailc tls rollover` leaves the request
/// for the server and says so (exit 3) after `--wait`; it touches neither
/// the certificate nor the key.
#[test]
fn tls_rollover_with_acme_waits_for_the_server() {
    let s = site();
    let acme = s.state.join("tls/acme");
    std::fs::create_dir_all(&acme).unwrap();
    // The certificate an earlier order stored.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mail.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(acme.join("mail.example.com.pem"), cert.pem()).unwrap();
    std::fs::write(acme.join("mail.example.com.key"), key.serialize_pem()).unwrap();
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        "tls self-signed=#true\n",
        "tls {\n    acme directory=\"https://127.0.0.1:9/dir\"\n}\ndane #true\nlisten \"https\" \"0.0.0.0:443\"\n",
    );
    std::fs::write(&s.config, text).unwrap();
    let zone = snippet(&s);
    assert_eq!(tlsa_lines(&zone).len(), 2, "{zone}");
    let server = DnsServer::start(&[("example.com.", zone)]);
    let addr = server.addr.to_string();
    let before = std::fs::read(acme.join("mail.example.com.key")).unwrap();
    let out = mailc(&[
        "tls",
        "rollover",
        "--force",
        "--wait",
        "1",
        "--resolver",
        &addr,
        &s.config,
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("asked the server to renew"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("is `mailc serve` running?"),
        "{}",
        stdout(&out)
    );
    let request: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state.join("tls/dane-rollover.request")).unwrap())
            .unwrap();
    let next = mailc::dns::dane::key_spki_sha256(&s.state.join("tls/dane-next.key")).unwrap();
    assert_eq!(request["next"], next.as_str());
    let status = stdout(&mailc(&["tls", "status", &s.config]));
    assert!(
        status.contains(&format!("to {next}: pending (the server carries it out)")),
        "{status}"
    );
    assert_eq!(
        std::fs::read(acme.join("mail.example.com.key")).unwrap(),
        before
    );
}

/// `mailc serve` with `dane #true` looks whether the next key's record is
/// live (through its `resolver`) and records the first sighting, so the
/// wait before the switch counts without anyone running `mailc plan`.
#[test]
fn the_server_records_when_the_next_key_is_first_seen_published() {
    let next = rcgen::KeyPair::generate().unwrap();
    let hash: String = {
        use rcgen::PublicKeyData;
        use sha2::Digest;
        sha2::Sha256::digest(next.subject_public_key_info())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let dns = DnsServer::start(&[(
        "example.test.",
        format!("_25._tcp.mail 3600 IN TLSA 3 1 1 {hash}\n"),
    )]);
    let pem = next.serialize_pem();
    let server = common::server::Server::start_with_state_files(
        &format!(
            "dane #true\nresolver \"{}\"\nlisten \"smtp\" \"127.0.0.1:0\"\n",
            dns.addr
        ),
        &[("tls/dane-next.key", pem.as_bytes())],
    );
    let seen = server.state().join("tls/dane-next.seen");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.exists() {
        assert!(
            Instant::now() < deadline,
            "no sighting recorded\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
    assert_eq!(v["key"], hash.as_str());
    assert!(
        v["first-seen"].as_u64().unwrap().abs_diff(now()) < 60,
        "{v}"
    );
    assert!(
        server.wait_log(
            "the next key's TLSA record is published",
            Duration::from_secs(5)
        ),
        "{}",
        server.log_text()
    );
}
