//! Inbound authentication end to end: the real `mailc serve` with an MX
//! listener, its resolver pointed at a real DNS server (hickory) on
//! 127.0.0.1 serving SPF, DKIM and DMARC records and a PTR for 127.0.0.1.
//! Mail signed with a fresh Ed25519 key passes and carries our
//! Authentication-Results (forged ones of our authserv-id removed); a
//! forged author domain with `p=reject` is refused with 550 5.7.1;
//! `p=quarantine` lands in Junk; authenticated submission is never checked;
//! with the DNS server unreachable the message is deferred (451 4.4.3) and
//! nothing is queued.

mod common;

use std::time::Duration;

use common::dns_server::DnsServer;
use common::inbound::{files_in, message, results_field, send, server, wait_for};
use common::server::{Server, standard_domain, submit_as_alice};
use mail_auth::dkim::generate::DkimKeyPair;

/// Zones: sender.test signs and publishes SPF for 127.0.0.1 and DMARC
/// reject; forged.test allows no host and rejects; quarantine.test allows
/// no host and quarantines; 127.0.0.1 has a PTR that resolves back.
fn zones(dkim_public: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "sender.test.",
            format!(
                "@ 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
                 _dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n\
                 s1._domainkey 300 IN TXT \"v=DKIM1; k=ed25519; p={dkim_public}\"\n\
                 mx 300 IN A 127.0.0.1\n"
            ),
        ),
        (
            "forged.test.",
            "@ 300 IN TXT \"v=spf1 -all\"\n_dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n".into(),
        ),
        (
            "quarantine.test.",
            "@ 300 IN TXT \"v=spf1 -all\"\n_dmarc 300 IN TXT \"v=DMARC1; p=quarantine\"\n".into(),
        ),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]
}

fn signed(key: &DkimKeyPair, msg: &str) -> String {
    common::inbound::sign_ed25519(key, "sender.test", msg)
}

#[test]
fn mx_checks_spf_dkim_dmarc_and_applies_the_policy() {
    let key = DkimKeyPair::generate_ed25519().expect("key");
    let dns = DnsServer::start(&zones(&key.encoded_public_key()));
    let server = server(&dns.addr.to_string());

    // Signed, SPF-authorised, aligned: delivered with our results on top; a
    // forged field claiming our authserv-id is gone, another one stays.
    let body = signed(&key, &message("news@sender.test", "pass"));
    let body = format!(
        "Authentication-Results: mail.example.test; dmarc=pass (forged)\r\nAuthentication-Results: elsewhere.test; spf=fail\r\n{body}"
    );
    let (code, text) = send(&server, "bounces@sender.test", &body);
    assert_eq!(code, 250, "{text}\n{}", server.log_text());
    let inbox = wait_for(&server, "", 1);
    assert_eq!(inbox.len(), 1, "{}", server.log_text());
    let delivered = &inbox[0];
    assert!(!delivered.contains("(forged)"), "{delivered}");
    assert!(delivered.contains("Authentication-Results: elsewhere.test; spf=fail"));
    assert_eq!(
        delivered
            .matches("Authentication-Results: mail.example.test")
            .count(),
        1
    );
    let field = results_field(delivered);
    insta::assert_snapshot!("pass", field);

    // The author domain forged by someone SPF does not allow, p=reject:
    // refused at the end of DATA with RFC 7489's 5.7.1, nothing queued.
    let (code, text) = send(
        &server,
        "ceo@forged.test",
        &message("ceo@forged.test", "forged"),
    );
    assert_eq!(code, 550, "{text}");
    assert!(text.starts_with("550 5.7.1"), "{text}");
    // p=quarantine: delivered into the Junk folder, not INBOX.
    let (code, text) = send(
        &server,
        "news@quarantine.test",
        &message("news@quarantine.test", "quarantined"),
    );
    assert_eq!(code, 250, "{text}");
    let junk = wait_for(&server, ".Junk", 1);
    assert_eq!(junk.len(), 1, "{}", server.log_text());
    assert!(junk[0].contains("Subject: quarantined"));
    assert!(junk[0].contains("dmarc=fail"), "{}", junk[0]);
    assert!(junk[0].contains("policy.dmarc=quarantine"), "{}", junk[0]);

    // A bounce (null sender) with a signed From: SPF of the HELO name.
    let (code, text) = send(
        &server,
        "",
        &signed(&key, &message("mailer-daemon@sender.test", "bounce")),
    );
    assert_eq!(code, 250, "{text}");
    let inbox = wait_for(&server, "", 2);
    assert_eq!(inbox.len(), 2);
    let bounce = inbox
        .iter()
        .find(|m| m.contains("Subject: bounce"))
        .expect("bounce delivered");
    let field = results_field(bounce);
    assert!(field.contains("smtp.mailfrom=<>"), "{field}");
    assert!(field.contains("dmarc=pass"), "{field}");

    // Authenticated submission is not checked: no results field.
    submit_as_alice(&server, &["alice@example.test"], "from alice");
    let inbox = wait_for(&server, "", 3);
    let own = inbox
        .iter()
        .find(|m| m.contains("Subject: from alice"))
        .expect("submission delivered");
    assert!(!own.contains("Authentication-Results"), "{own}");

    // Only the rejected message is missing; nothing waits in the queue.
    assert_eq!(
        files_in(&server, "").len() + files_in(&server, ".Junk").len(),
        4
    );
    assert!(server.queue_entries().is_empty());
}

/// RFC 7489 policy discovery and evaluation over real DNS: the
/// organisational domain's record (found through the Public Suffix List)
/// with its `sp` for a subdomain author, `pct=0` turning a reject into
/// quarantine, two records meaning no DMARC, strict against relaxed SPF
/// alignment.
#[test]
fn dmarc_discovery_subdomains_pct_and_alignment() {
    let spf_bounce = "bounce 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n";
    let zones = vec![
        (
            "org.test.",
            "@ 300 IN TXT \"v=spf1 -all\"\n_dmarc 300 IN TXT \"v=DMARC1; p=reject; sp=quarantine\"\n"
                .to_string(),
        ),
        (
            "sample.test.",
            "_dmarc 300 IN TXT \"v=DMARC1; p=reject; pct=0\"\n".into(),
        ),
        (
            "twice.test.",
            "_dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n\
             _dmarc 300 IN TXT \"v=DMARC1; p=none\"\n"
                .into(),
        ),
        (
            "strict.test.",
            format!("_dmarc 300 IN TXT \"v=DMARC1; p=reject; aspf=s\"\n{spf_bounce}"),
        ),
        (
            "relaxed.test.",
            format!("_dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n{spf_bounce}"),
        ),
    ];
    let dns = DnsServer::start(&zones);
    let server = server(&dns.addr.to_string());

    // No record at sub.org.test: org.test's applies, with its sp.
    let (code, text) = send(
        &server,
        "x@sub.org.test",
        &message("news@sub.org.test", "subdomain"),
    );
    assert_eq!(code, 250, "{text}\n{}", server.log_text());
    let junk = wait_for(&server, ".Junk", 1);
    assert!(junk[0].contains("Subject: subdomain"), "{}", junk[0]);
    let field = results_field(&junk[0]);
    assert!(
        field.contains("dmarc=fail (p=reject sp=quarantine pct=100 dis=quarantine) header.from=sub.org.test policy.dmarc=quarantine"),
        "{field}"
    );
    // The organisational domain itself: p=reject.
    let (code, text) = send(&server, "x@org.test", &message("ceo@org.test", "org"));
    assert!(text.starts_with("550 5.7.1"), "{code} {text}");

    // pct=0: no failing message is in the sample, reject becomes
    // quarantine.
    let (code, text) = send(
        &server,
        "x@sample.test",
        &message("news@sample.test", "sampled out"),
    );
    assert_eq!(code, 250, "{text}");
    let junk = wait_for(&server, ".Junk", 2);
    let sampled = junk
        .iter()
        .find(|m| m.contains("Subject: sampled out"))
        .expect("in Junk");
    assert!(
        results_field(sampled)
            .contains("dis=quarantine) header.from=sample.test policy.dmarc=quarantine"),
        "{sampled}"
    );

    // Two DMARC records: DMARC does not apply (§6.6.3), delivered to INBOX.
    let (code, text) = send(
        &server,
        "x@twice.test",
        &message("a@twice.test", "two records"),
    );
    assert_eq!(code, 250, "{text}");
    let inbox = wait_for(&server, "", 1);
    assert!(
        results_field(&inbox[0]).contains("dmarc=none header.from=twice.test"),
        "{}",
        inbox[0]
    );

    // SPF passes for bounce.<domain>: aligned under relaxed, not strict.
    let (code, text) = send(
        &server,
        "list@bounce.relaxed.test",
        &message("news@relaxed.test", "relaxed"),
    );
    assert_eq!(code, 250, "{text}");
    let inbox = wait_for(&server, "", 2);
    let relaxed = inbox
        .iter()
        .find(|m| m.contains("Subject: relaxed"))
        .expect("delivered");
    assert!(results_field(relaxed).contains("dmarc=pass"), "{relaxed}");
    let (code, text) = send(
        &server,
        "list@bounce.strict.test",
        &message("news@strict.test", "strict"),
    );
    assert!(text.starts_with("550 5.7.1"), "{code} {text}");
    assert_eq!(files_in(&server, "").len(), 2);
    assert_eq!(files_in(&server, ".Junk").len(), 2);
}

#[test]
fn dns_down_defers_and_queues_nothing() {
    // A port where nothing answers: every lookup fails.
    let server = server("127.0.0.1:9");
    let (code, text) = send(
        &server,
        "news@sender.test",
        &message("news@sender.test", "no dns"),
    );
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("451 4.4.3"), "{text}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(files_in(&server, "").is_empty());
    assert!(server.queue_entries().is_empty());
}

/// Hostile input: SPF records that loop or need more than 10 lookups, a
/// 16 KiB SPF record, malformed and absurd DKIM-Signature fields, 10,000
/// header fields. Each message gets its answer (accepted: none of these
/// proves forgery under the default policy) with our results, and the
/// server stays up.
#[test]
fn hostile_records_and_signatures_are_bounded() {
    let mut chain = String::new();
    for i in 0..12 {
        chain.push_str(&format!(
            "i{i} 300 IN TXT \"v=spf1 include:i{}.many.test -all\"\n",
            i + 1
        ));
    }
    let big: String = (0..80)
        .map(|i| {
            format!(
                "\"ip4:192.0.2.{} ip4:198.51.100.{} ip4:203.0.113.{} \"",
                i, i, i
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let dns = DnsServer::start(&[
        (
            "loop.test.",
            "@ 300 IN TXT \"v=spf1 include:loop.test -all\"\n".into(),
        ),
        (
            "many.test.",
            format!("@ 300 IN TXT \"v=spf1 include:i0.many.test -all\"\n{chain}"),
        ),
        (
            "big.test.",
            format!("@ 300 IN TXT \"v=spf1 \" {big} \"ip4:127.0.0.1 -all\"\n"),
        ),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]);
    let server = server(&dns.addr.to_string());
    let h_list = (0..5000)
        .map(|i| format!("X-{i}"))
        .collect::<Vec<_>>()
        .join(":");
    let many_headers: String = (0..10_000).map(|i| format!("X-Filler: {i}\r\n")).collect();
    let cases: Vec<(&str, String)> = vec![
        ("news@loop.test", message("news@loop.test", "spf-loop")),
        ("news@many.test", message("news@many.test", "spf-many")),
        ("news@big.test", message("news@big.test", "spf-big")),
        (
            "news@loop.test",
            format!(
                "DKIM-Signature: v=1; a=rsa-sha256; d=loop.test; garbage;;; b=!!!\r\n{}",
                message("news@loop.test", "dkim-malformed")
            ),
        ),
        (
            "news@loop.test",
            format!(
                "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=loop.test; s=x;\r\n l=999999999999999999999999; h={h_list};\r\n bh=AAAA; b=AAAA\r\n{}",
                message("news@loop.test", "dkim-absurd")
            ),
        ),
        (
            "news@loop.test",
            format!(
                "{many_headers}{}",
                message("news@loop.test", "many-headers")
            ),
        ),
    ];
    for (i, (from, body)) in cases.iter().enumerate() {
        let started = std::time::Instant::now();
        let (code, text) = send(&server, from, body);
        // A hang guard, not a performance figure: the checks are bounded
        // by the 30 s of services::inbound::CHECK_TIME.
        assert!(started.elapsed() < Duration::from_secs(40), "case {i}");
        assert_eq!(code, 250, "case {i}: {text}\n{}", server.log_text());
        let inbox = wait_for(&server, "", i + 1);
        assert_eq!(inbox.len(), i + 1, "{}", server.log_text());
    }
    let inbox = files_in(&server, "");
    for m in &inbox {
        let field = results_field(m);
        assert!(field.contains("spf="), "{field}");
    }
    let field = |subject: &str| {
        results_field(
            inbox
                .iter()
                .find(|m| m.contains(&format!("Subject: {subject}\r\n")))
                .expect("delivered"),
        )
    };
    assert!(field("spf-loop").contains("smtp.mailfrom=news@loop.test"));
    assert!(
        field("spf-many").contains("spf=permerror"),
        "{}",
        field("spf-many")
    );
    assert!(
        field("dkim-absurd").contains("dkim="),
        "{}",
        field("dkim-absurd")
    );
    assert!(!field("dkim-absurd").contains("dkim=pass"));
}

/// `dmarc own="reject"`: mail from outside claiming one of our domains and
/// failing DMARC is refused even though the domain still publishes
/// `p=none`; the same for another domain with `p=none` is delivered.
#[test]
fn own_domain_override_refuses_spoofing_under_p_none() {
    let dns = DnsServer::start(&[
        (
            "example.test.",
            "@ 300 IN TXT \"v=spf1 -all\"\n_dmarc 300 IN TXT \"v=DMARC1; p=none\"\n".into(),
        ),
        (
            "other.test.",
            "@ 300 IN TXT \"v=spf1 -all\"\n_dmarc 300 IN TXT \"v=DMARC1; p=none\"\n".into(),
        ),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]);
    let server = Server::start(&format!(
        "resolver \"{}\"\nlisten \"smtp\" \"127.0.0.1:0\"\ninbound {{\n    checks #true\n    dmarc own=\"reject\"\n    spf fail=\"accept\"\n}}\n{}",
        dns.addr,
        standard_domain()
    ));
    let (code, text) = send(
        &server,
        "ceo@example.test",
        &message("ceo@example.test", "spoof"),
    );
    assert_eq!(code, 550, "{text}");
    assert!(text.starts_with("550 5.7.1"), "{text}");
    let (code, text) = send(
        &server,
        "news@other.test",
        &message("news@other.test", "other"),
    );
    assert_eq!(code, 250, "{text}");
    let inbox = wait_for(&server, "", 1);
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("Subject: other"));
    assert!(results_field(&inbox[0]).contains("dmarc=fail"));
}

/// `mailc explain CONFIG --message FILE`: the same checks and policy
/// without a server, with the configuration's (or a given) resolver.
#[test]
fn explain_message_shows_results_and_verdict() {
    let key = DkimKeyPair::generate_ed25519().expect("key");
    let dns = DnsServer::start(&zones(&key.encoded_public_key()));
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        common::inbound::explain_config(dir.path(), &dns.addr.to_string(), "    checks #true");
    let explain = |msg: &str, from: &str| {
        let file = dir.path().join("message.eml");
        // LF line ends, as a saved file has them.
        std::fs::write(&file, msg.replace("\r\n", "\n")).expect("message");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
            .arg("explain")
            .arg(&config)
            .arg("--message")
            .arg(&file)
            .args(["--client-ip", "127.0.0.1", "--helo", "mx.sender.test"])
            .args(["--mail-from", from])
            .output()
            .expect("mailc runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = explain(
        &signed(&key, &message("news@sender.test", "explained")),
        "bounces@sender.test",
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("dkim=pass header.d=sender.test"), "{text}");
    assert!(text.contains("dmarc=pass"), "{text}");
    assert!(text.contains("verdict: deliver to INBOX"), "{text}");
    let (code, text) = explain(&message("ceo@forged.test", "forged"), "ceo@forged.test");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("verdict: reject at the end of DATA: 550 5.7.1"),
        "{text}"
    );
    let (code, text) = explain(
        &message("news@quarantine.test", "quarantined"),
        "news@quarantine.test",
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verdict: deliver into Junk"), "{text}");
}
