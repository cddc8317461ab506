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

use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::postfix::Postfix;
use common::server::{Server, standard_domain, submit_as_alice};

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
    let postfix = Postfix::start(
        "127.0.0.2",
        port,
        "myhostname = mx.remote.test\nvirtual_mailbox_domains = remote.test\nvirtual_mailbox_base = {VMAIL}\nvirtual_mailbox_maps = texthash:{ETC}/vmailbox\nvirtual_uid_maps = static:{UID}\nvirtual_gid_maps = static:{GID}\nvirtual_minimum_uid = 1\nsmtpd_reject_unlisted_recipient = yes\n",
        &[("vmailbox", "carol@remote.test remote.test/carol/\n")],
    );
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
    while postfix.maildir("remote.test/carol").is_empty() {
        assert!(
            Instant::now() < deadline,
            "postfix got nothing\n{}",
            local.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = std::fs::read_to_string(&postfix.maildir("remote.test/carol")[0]).unwrap();
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
