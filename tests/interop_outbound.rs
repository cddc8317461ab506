//! Outbound interop with a real MTA: a private Postfix instance on
//! 127.0.0.2 is the remote MX (virtual Maildir delivery), found through MX
//! records served by a DNS server on loopback. mailc relays a submitted
//! message to it over STARTTLS-less plain SMTP (Postfix has no certificate
//! here: opportunistic TLS falls back to plain), a 550 of Postfix for an
//! unknown user comes back as one DSN, and the delivered copy carries
//! mailc's DKIM signature, which verifies.
//!
//! Needs root and Debian's `postfix` (installed by `.ci/run`); run with
//! `cargo test --test interop_outbound -- --ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::server::{Server, standard_domain, submit_as_alice};

struct Postfix {
    etc: PathBuf,
    vmail: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.etc)
            .arg("stop")
            .output();
    }
}

fn id(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, "postfix"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn start_postfix(port: u16) -> Postfix {
    let dir = tempfile::Builder::new()
        .prefix("mailc-postfix-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let w = dir.path();
    let (etc, spool, data, vmail) = (
        w.join("etc"),
        w.join("spool"),
        w.join("data"),
        w.join("vmail"),
    );
    for d in [&etc, &spool, &data, &vmail] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (uid, gid) = (id("-u"), id("-g"));
    for d in [&vmail, &data] {
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy("/etc/postfix/dynamicmaps.cf", etc.join("dynamicmaps.cf")).unwrap();
    let _ = Command::new("cp")
        .arg("-r")
        .arg("/etc/postfix/dynamicmaps.cf.d")
        .arg(&etc)
        .status();
    std::fs::write(
        etc.join("main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {spool}\ndata_directory = {data}\nmyhostname = mx.remote.test\nmydestination =\ninet_interfaces = loopback-only\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\nmaillog_file = {w}/postfix.log\nvirtual_mailbox_domains = remote.test\nvirtual_mailbox_base = {vmail}\nvirtual_mailbox_maps = texthash:{etc}/vmailbox\nvirtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{gid}\nvirtual_minimum_uid = 1\nsmtpd_reject_unlisted_recipient = yes\nalternate_config_directories = {etc}\n",
            spool = spool.display(),
            data = data.display(),
            w = w.display(),
            vmail = vmail.display(),
            etc = etc.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("vmailbox"),
        "carol@remote.test remote.test/carol/\n",
    )
    .unwrap();
    // master.cf: smtpd on 127.0.0.2:port, nothing chrooted.
    let master = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
    let mut lines = Vec::new();
    for line in master.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() >= 8 && !line.starts_with([' ', '#', '\t']) {
            let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            if p[0] == "smtp" && p[1] == "inet" {
                p[0] = format!("127.0.0.2:{port}");
            }
            if p[4] == "y" {
                p[4] = "n".into();
            }
            lines.push(p.join(" "));
        } else {
            lines.push(line.to_string());
        }
    }
    std::fs::write(etc.join("master.cf"), lines.join("\n") + "\n").unwrap();
    for args in [
        vec!["post-install", "create-missing"],
        vec!["set-permissions"],
    ] {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .args(args)
            .output();
    }
    let out = Command::new("postfix")
        .arg("-c")
        .arg(&etc)
        .arg("start")
        .output()
        .expect("postfix runs (apt-get install postfix)");
    if !out.status.success() {
        let check = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("check")
            .output();
        panic!(
            "postfix start: {out:?}\ncheck: {check:?}\nlog: {}",
            std::fs::read_to_string(w.join("postfix.log")).unwrap_or_default()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.2", port)).is_err() {
        assert!(Instant::now() < deadline, "postfix does not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Postfix {
        etc,
        vmail,
        _dir: dir,
    }
}

fn maildir(base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(base.join("remote.test/carol").join(sub)) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
#[ignore = "needs root and Debian's postfix; run by .ci/run"]
fn relays_to_postfix_and_bounces_its_refusals() {
    let port = free_port();
    let postfix = start_postfix(port);
    let dns = DnsServer::start(&[(
        "remote.test.",
        "@ 300 IN MX 10 mx.remote.test.\nmx 300 IN A 127.0.0.2\n".to_string(),
    )]);
    let local = Server::start(&format!(
        "listen \"submissions\" \"127.0.0.1:0\"\nresolver \"{}\"\noutbound {{\n    port {port}\n}}\n{}",
        dns.addr,
        standard_domain()
    ));
    submit_as_alice(
        &local,
        &["carol@remote.test", "nobody@remote.test"],
        "to postfix",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while maildir(&postfix.vmail).is_empty() {
        assert!(
            Instant::now() < deadline,
            "postfix got nothing\n{}",
            local.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = std::fs::read_to_string(&maildir(&postfix.vmail)[0]).unwrap();
    assert!(got.contains("Subject: to postfix"), "{got}");
    assert!(got.contains("DKIM-Signature:"), "{got}");
    assert!(got.contains("Return-Path: <alice@example.test>"), "{got}");
    // Postfix refused nobody@ with 550: one DSN to alice, quoting it.
    let dsn = local.wait_for_mail("example.test", "alice", 1, Duration::from_secs(30));
    assert_eq!(dsn.len(), 1, "{}", local.log_text());
    let text = std::fs::read_to_string(&dsn[0]).unwrap();
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@remote.test"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Remote-MTA: dns; mx.remote.test"), "{text}");
    assert!(text.contains("Diagnostic-Code: smtp; 550"), "{text}");
    assert!(
        !text.contains("carol@remote.test\r\nAction"),
        "carol was delivered"
    );
}
