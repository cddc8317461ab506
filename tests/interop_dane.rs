//! Outbound DANE (RFC 7672) against real DNSSEC: Debian's `knot` signs the
//! test zones (automatic DNSSEC, `dnssec-signing: on`), a validating
//! `unbound` on loopback trusts their DNSKEYs and is mailc's `resolver`;
//! the receiving side is a second mailc on 127.0.0.2 whose certificate is
//! issued by a test CA that WebPKI does not trust.
//!
//! Zones (each with `MX 10 mx.<zone>`, `mx A 127.0.0.2` and a TLSA RRset
//! at `_<port>._tcp.mx.<zone>`):
//! - `ee.test`: DANE-EE `3 1 1` of the server's key → delivered;
//! - `ta.test`: DANE-TA `2 1 1` of the CA's key → delivered;
//! - `badee.test`: `3 1 1` of another key → deferred, not delivered;
//! - `badta.test`: `2 1 1` of the CA, but the certificate does not name
//!   `mx.badta.test` → deferred;
//! - `unsigned.test`: not signed, a non-matching TLSA → no DANE, delivered
//!   (opportunistic TLS);
//! - `bogus.test`: signed, then the TLSA data changed under the old
//!   signature (served by knot with signing off) → unbound SERVFAILs the
//!   TLSA lookup while the MX RRset validates → deferred, never sent in
//!   the clear.
//!
//! Interop: `#[ignore]`d, run by `.ci/run` with `-- --ignored`; panics when
//! knot, kdig or unbound is missing.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{ALICE_HASH, Server, standard_domain, submit_as_alice};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;

const SIGNED: &[&str] = &[
    "ee.test",
    "ta.test",
    "badee.test",
    "badta.test",
    "bogus.test",
];
const ALL: &[&str] = &[
    "ee.test",
    "ta.test",
    "badee.test",
    "badta.test",
    "bogus.test",
    "unsigned.test",
];

/// A daemon killed (and reaped) when the test ends, also on panic.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = format!("{dir}/{name}");
        if Path::new(&p).is_file() {
            return p;
        }
    }
    panic!("{name} is not installed (Debian packages knot, knot-dnsutils, unbound)");
}

fn free_udp_port(ip: &str) -> u16 {
    loop {
        let u = std::net::UdpSocket::bind(format!("{ip}:0")).unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(format!("{ip}:{port}")).is_ok() {
            return port;
        }
    }
}

fn free_tcp_port(ip: &str) -> u16 {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02X}"))
        .collect()
}

fn spki_hash(der: &CertificateDer<'_>) -> String {
    sha256_hex(&mailc::outbound::dane::spki(der).expect("SPKI"))
}

struct Pki {
    chain_pem: String,
    key_pem: String,
    ee: CertificateDer<'static>,
    ca: CertificateDer<'static>,
    other: CertificateDer<'static>,
}

/// A test CA and a server certificate it issued for the MX names of every
/// zone but `badta.test`.
fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mailc DANE test TA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let names: Vec<String> = ALL
        .iter()
        .filter(|z| **z != "badta.test")
        .map(|z| format!("mx.{z}"))
        .collect();
    let ee_key = KeyPair::generate().unwrap();
    let ee = CertificateParams::new(names)
        .unwrap()
        .signed_by(&ee_key, &issuer)
        .unwrap();
    let other_key = KeyPair::generate().unwrap();
    let other = CertificateParams::new(vec!["other.invalid".to_string()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    Pki {
        chain_pem: format!("{}{}", ee.pem(), ca.pem()),
        key_pem: ee_key.serialize_pem(),
        ee: ee.der().clone(),
        ca: ca.der().clone(),
        other: other.der().clone(),
    }
}

fn zone_text(zone: &str, ns_ip: &str, port: u16, tlsa: &str) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns.{zone}. admin.{zone}. 1 3600 600 86400 300\n@ NS ns\nns A {ns_ip}\n@ MX 10 mx\nmx A 127.0.0.2\n_{port}._tcp.mx TLSA {tlsa}\n"
    )
}

fn knot_conf(dir: &Path, listen: &str, signing: bool) -> String {
    let mut c = format!(
        "server:\n    listen: {listen}\n    rundir: {d}\ndatabase:\n    storage: {d}\ntemplate:\n  - id: default\n    storage: {d}\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    semantic-checks: off\nacl:\n  - id: xfr\n    address: 127.0.0.0/8\n    action: transfer\nzone:\n",
        d = dir.display()
    );
    for z in ALL {
        let sign = signing && SIGNED.contains(z);
        c.push_str(&format!(
            "  - domain: {z}\n    acl: xfr\n    dnssec-signing: {}\n",
            if sign { "on" } else { "off" }
        ));
    }
    c
}

fn start_knot(dir: &Path) -> Daemon {
    let child = Command::new(tool("knotd"))
        .arg("-c")
        .arg(dir.join("knot.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("knot.log")).unwrap())
        .spawn()
        .expect("knotd starts");
    Daemon(child)
}

fn kdig(server_ip: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new(tool("kdig"))
        .arg(format!("@{server_ip}"))
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("kdig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The knot + unbound pair; dropping it stops both.
struct Dns {
    _knot: Daemon,
    _unbound: Daemon,
    resolver: SocketAddr,
    _dir: tempfile::TempDir,
}

fn dns(smtp_port: u16, pki: &Pki) -> Dns {
    let dir = tempfile::tempdir().unwrap();
    let kdir = dir.path().join("knot");
    std::fs::create_dir_all(&kdir).unwrap();
    let (knot_ip, unbound_ip) = ("127.0.0.61", "127.0.0.62");
    let knot_port = free_udp_port(knot_ip);
    let listen = format!("{knot_ip}@{knot_port}");
    let ee = format!("3 1 1 {}", spki_hash(&pki.ee));
    let ta = format!("2 1 1 {}", spki_hash(&pki.ca));
    let other = format!("3 1 1 {}", spki_hash(&pki.other));
    for (zone, tlsa) in [
        ("ee.test", &ee),
        ("ta.test", &ta),
        ("badee.test", &other),
        ("badta.test", &ta),
        ("bogus.test", &ee),
        ("unsigned.test", &other),
    ] {
        std::fs::write(
            kdir.join(format!("{zone}.zone")),
            zone_text(zone, knot_ip, smtp_port, tlsa),
        )
        .unwrap();
    }
    // Phase 1: knot signs; the signed zones and their keys are taken by
    // AXFR.
    std::fs::write(kdir.join("knot.conf"), knot_conf(&kdir, &listen, true)).unwrap();
    let knot = start_knot(&kdir);
    let mut signed = Vec::new();
    for z in SIGNED {
        let mut axfr = String::new();
        wait_until(
            &format!("knot to sign {z}"),
            Duration::from_secs(20),
            || {
                axfr = kdig(knot_ip, knot_port, &["AXFR", z]);
                axfr.contains("RRSIG") && axfr.contains("DNSKEY") && axfr.contains("TLSA")
            },
        );
        signed.push((z.to_string(), axfr));
    }
    drop(knot);
    // Phase 2: the signed zones served as they are, signing off; in
    // bogus.test the TLSA data changes under its old signature.
    let mut anchors = String::new();
    for (z, axfr) in &signed {
        let mut seen = std::collections::HashSet::new();
        let mut text = String::new();
        for line in axfr.lines() {
            if line.starts_with(';') || line.trim().is_empty() || !seen.insert(line.to_string()) {
                continue;
            }
            let mut l = line.to_string();
            let fields: Vec<&str> = line.split_whitespace().collect();
            if z == "bogus.test" && fields.get(3) == Some(&"TLSA") {
                l = format!(
                    "{} {} IN TLSA 3 1 1 {}",
                    fields[0],
                    fields[1],
                    spki_hash(&pki.other)
                );
            }
            if fields.get(3) == Some(&"DNSKEY") {
                anchors.push_str(&format!(
                    "    trust-anchor: \"{} {} IN DNSKEY {}\"\n",
                    fields[0],
                    fields[1],
                    fields[4..].join(" ")
                ));
            }
            text.push_str(&l);
            text.push('\n');
        }
        assert!(text.contains("TLSA"), "{z}: {text}");
        std::fs::write(kdir.join(format!("{z}.zone")), text).unwrap();
    }
    for f in std::fs::read_dir(&kdir).unwrap().flatten() {
        let p = f.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        }
    }
    std::fs::write(kdir.join("knot.conf"), knot_conf(&kdir, &listen, false)).unwrap();
    let knot = start_knot(&kdir);
    wait_until(
        "knot to serve the static zones",
        Duration::from_secs(20),
        || kdig(knot_ip, knot_port, &["+dnssec", "MX", "bogus.test"]).contains("RRSIG"),
    );

    let udir = dir.path().join("unbound");
    std::fs::create_dir_all(&udir).unwrap();
    let unbound_port = free_udp_port(unbound_ip);
    let mut conf = format!(
        "server:\n    interface: {unbound_ip}@{unbound_port}\n    port: {unbound_port}\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"\"\n    use-syslog: no\n    logfile: \"\"\n    verbosity: 1\n    val-log-level: 2\n    do-ip6: no\n    access-control: 127.0.0.0/8 allow\n    do-not-query-localhost: no\n    module-config: \"validator iterator\"\n    harden-dnssec-stripped: yes\n    local-zone: \"test.\" nodefault\n{anchors}",
        d = udir.display()
    );
    for z in ALL {
        conf.push_str(&format!(
            "stub-zone:\n    name: \"{z}\"\n    stub-addr: {knot_ip}@{knot_port}\n"
        ));
    }
    // Nothing leaves loopback: every other name goes to a closed port.
    conf.push_str("forward-zone:\n    name: \".\"\n    forward-addr: 127.0.0.1@9\nremote-control:\n    control-enable: no\n");
    std::fs::write(udir.join("unbound.conf"), &conf).unwrap();
    let unbound = Daemon(
        Command::new(tool("unbound"))
            .arg("-d")
            .arg("-c")
            .arg(udir.join("unbound.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(udir.join("unbound.log")).unwrap())
            .spawn()
            .expect("unbound starts"),
    );
    wait_until("unbound to validate", Duration::from_secs(20), || {
        let out = kdig(unbound_ip, unbound_port, &["+adflag", "MX", "ee.test"]);
        out.contains(" ad;") && out.contains("mx.ee.test")
    });
    // The fixture is what it claims: secure, insecure and bogus answers.
    let tlsa = |z: &str| {
        kdig(
            unbound_ip,
            unbound_port,
            &["+adflag", "TLSA", &format!("_{smtp_port}._tcp.mx.{z}")],
        )
    };
    assert!(tlsa("ee.test").contains(" ad;"), "{}", tlsa("ee.test"));
    assert!(!tlsa("unsigned.test").contains(" ad;"));
    assert!(tlsa("unsigned.test").contains("TLSA"));
    assert!(
        tlsa("bogus.test").contains("SERVFAIL"),
        "{}",
        tlsa("bogus.test")
    );
    assert!(
        kdig(unbound_ip, unbound_port, &["+adflag", "MX", "bogus.test"]).contains(" ad;"),
        "the MX RRset of bogus.test validates"
    );
    Dns {
        _knot: knot,
        _unbound: unbound,
        resolver: format!("{unbound_ip}:{unbound_port}").parse().unwrap(),
        _dir: dir,
    }
}

#[test]
#[ignore = "interop: needs Debian's knot, knot-dnsutils and unbound"]
fn dane_outbound_with_knot_signed_zones_behind_a_validating_unbound() {
    let pki = pki();
    let port = free_tcp_port("127.0.0.2");
    let mut domains = String::new();
    for z in ALL {
        domains.push_str(&format!(
            "domain \"{z}\" {{\n    mailbox \"u\" password=\"{ALICE_HASH}\"\n}}\n"
        ));
    }
    let remote = Server::start_with_state_files(
        &format!("listen \"smtp\" \"127.0.0.2:{port}\"\n{domains}"),
        &[
            ("tls/selfsigned.pem", pki.chain_pem.as_bytes()),
            ("tls/selfsigned.key", pki.key_pem.as_bytes()),
        ],
    );
    let dns = dns(port, &pki);
    let local = Server::start(&format!(
        "listen \"submissions\" \"127.0.0.1:0\"\nresolver \"{}\"\noutbound {{\n    port {port}\n}}\n{}",
        dns.resolver,
        standard_domain()
    ));
    let rcpts: Vec<String> = ALL.iter().map(|z| format!("u@{z}")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    submit_as_alice(&local, &rcpts, "DANE");

    for z in ["ee.test", "ta.test", "unsigned.test"] {
        let got = remote.wait_for_mail(z, "u", 1, Duration::from_secs(60));
        assert_eq!(got.len(), 1, "{z}: {}", local.log_text());
    }
    // The other three are deferred with the reason, and not delivered.
    let deferral = |r: &str| -> Option<String> {
        local
            .log_lines_containing("delivery deferred")
            .into_iter()
            .find(|l| l.contains(&format!("to={r} ")))
    };
    wait_until("three deferrals", Duration::from_secs(60), || {
        ["u@badee.test", "u@badta.test", "u@bogus.test"]
            .iter()
            .all(|r| deferral(r).is_some())
    });
    let err = |r: &str| deferral(r).unwrap();
    assert!(
        err("u@badee.test").contains("no TLSA record matches"),
        "badee: {}",
        err("u@badee.test")
    );
    assert!(
        err("u@badta.test").contains("DANE-TA")
            && err("u@badta.test").contains("not valid for name"),
        "badta: {}",
        err("u@badta.test")
    );
    assert!(
        err("u@bogus.test").contains("TLSA lookup")
            && err("u@bogus.test").contains("Server Failure"),
        "bogus: {}",
        err("u@bogus.test")
    );
    // bogus.test: no connection was even tried.
    assert_eq!(
        local.count_log("host=mx.bogus.test addr="),
        0,
        "{}",
        local.log_text()
    );
    for z in ["badee.test", "badta.test", "bogus.test"] {
        assert!(remote.maildir_files(z, "u").is_empty(), "{z} got mail");
    }
    // What TLS-RPT is told (RFC 8460 result types).
    let rpt = |domain: &str, result: &str| {
        let needle = format!("tls-rpt attempt domain={domain} policy=tlsa");
        wait_until(
            &format!("{needle} {result}"),
            Duration::from_secs(10),
            || {
                local
                    .log_lines_containing(&needle)
                    .iter()
                    .any(|l| l.contains(&format!("result={result}")))
            },
        );
    };
    rpt("ee.test", "success");
    rpt("ta.test", "success");
    rpt("badee.test", "tlsa-invalid");
    rpt("badta.test", "certificate-host-mismatch");
    rpt("bogus.test", "dnssec-invalid");
    assert!(
        local
            .log_lines_containing("tls-rpt attempt domain=unsigned.test policy=no-policy-found")
            .iter()
            // Delivered over opportunistic TLS; the receiver's test
            // certificate is not trusted by WebPKI, which the report says.
            .any(|l| l.contains("result=certificate-not-trusted")),
        "{}",
        local.log_text()
    );
    drop(dns);
}
