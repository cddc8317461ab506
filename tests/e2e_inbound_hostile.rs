//! Hostile DNS data and signatures at the MX, through the real path (SMTP
//! to `mailc serve`, records on a loopback DNS server), beyond what
//! `e2e_inbound::hostile_records_and_signatures_are_bounded` covers (a
//! 12-deep include chain, a 16 KiB SPF record, a huge `h=`, 10,000 header
//! fields): an SPF record including itself, one record with 11 includes, a
//! TXT record as large as a DNS message allows (63 KiB, only reachable over
//! TCP) as SPF and as a DKIM key, a signature whose `l=` is larger than the
//! body, a malformed DKIM-Signature. Each message must be answered within
//! 10 s (a termination check, not a benchmark) with the verdict RFC 7208 /
//! RFC 6376 give, and the server must take the next message.

mod common;

use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::inbound::{message, results_field, send, server, wait_for};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::generate::DkimKeyPair;

/// Zone-file TXT data for `text`: quoted strings of 255 bytes.
fn strings(text: &str) -> String {
    text.as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An SPF record of about 63 KiB: 4,250 `ip4:` terms that do not match
/// 127.0.0.1, then one that does. Only a resolver that fetched it whole
/// (over TCP: it cannot fit a UDP answer) sees `pass`.
fn huge_spf() -> String {
    let mut r = String::from("v=spf1");
    for i in 0..4_250u32 {
        r.push_str(&format!(
            " ip4:10.{}.{}.{}",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    r.push_str(" ip4:127.0.0.1 -all");
    r
}

#[test]
fn hostile_spf_and_dkim_get_their_verdicts_within_bounds() {
    let key = DkimKeyPair::generate_ed25519().expect("key");
    let spf = huge_spf();
    assert!(spf.len() > 62_000, "{}", spf.len());
    let includes: String = (1..=11)
        .map(|i| format!(" include:i{i}.many.test"))
        .collect();
    let mut many = format!(
        "@ 300 IN TXT {}\n",
        strings(&format!("v=spf1{includes} ip4:127.0.0.1 -all"))
    );
    for i in 1..=11 {
        many.push_str(&format!("i{i} 300 IN TXT \"v=spf1 -all\"\n"));
    }
    let dns = DnsServer::start(&[
        (
            "sender.test.",
            format!(
                "@ 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
                 _dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n\
                 s1._domainkey 300 IN TXT \"v=DKIM1; k=ed25519; p={}\"\n\
                 big._domainkey 300 IN TXT {}\n",
                key.encoded_public_key(),
                strings(&format!("v=DKIM1; k=ed25519; p={}", "A".repeat(63_000)))
            ),
        ),
        (
            "loop.test.",
            "@ 300 IN TXT \"v=spf1 include:loop.test ip4:127.0.0.1 -all\"\n".into(),
        ),
        ("many.test.", many),
        ("huge.test.", format!("@ 300 IN TXT {}\n", strings(&spf))),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]);
    let server = server(&dns.addr.to_string());
    let sign = |msg: &str, selector: &str, body_length: bool| {
        let signature =
            DkimSigner::from_key(Ed25519Key::from_pkcs8_der(key.private_key()).expect("key"))
                .domain("sender.test")
                .selector(selector)
                .headers(["From", "To", "Subject", "Date", "Message-ID"])
                .body_length(body_length)
                .sign(msg.as_bytes())
                .expect("sign");
        format!("{}{msg}", signature.to_header())
    };
    // Signed with l= over a longer body, then cut: l= is larger than what
    // arrives (RFC 6376 §3.4.5: the signature cannot verify).
    let long =
        message("news@sender.test", "l-too-large").replace("Hello.\r\n", "Hello.\r\nAnd more.\r\n");
    let cut = sign(&long, "s1", true).replace("And more.\r\n", "");
    assert!(cut.contains("l=") || cut.contains(" l="), "{cut}");
    // (MAIL FROM, message, what our Authentication-Results must say.)
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "news@loop.test",
            message("news@loop.test", "spf-self-include"),
            &["spf=permerror"],
        ),
        (
            "news@many.test",
            message("news@many.test", "spf-11-includes"),
            &["spf=permerror"],
        ),
        (
            "news@huge.test",
            message("news@huge.test", "spf-63k"),
            &["spf=pass"],
        ),
        ("news@sender.test", cut, &["dkim=fail", "dmarc=pass"]),
        (
            "news@sender.test",
            sign(&message("news@sender.test", "key-63k"), "big", false),
            // A key that is no key: the signature cannot verify.
            &["dkim=fail", "dmarc=pass"],
        ),
        (
            "news@sender.test",
            format!(
                "DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; garbage;;; b=!!!\r\n{}",
                message("news@sender.test", "dkim-malformed")
            ),
            // RFC 8601 §2.7.1: signed, but with syntax errors.
            &["dkim=neutral (signature syntax error)", "dmarc=pass"],
        ),
        // The server is still there and still right.
        (
            "news@sender.test",
            sign(&message("news@sender.test", "after"), "s1", false),
            &["dkim=pass", "spf=pass", "dmarc=pass"],
        ),
    ];
    let mut figures = Vec::new();
    for (i, (from, body, expected)) in cases.iter().enumerate() {
        let subject = body
            .split("Subject: ")
            .nth(1)
            .and_then(|s| s.split("\r\n").next())
            .expect("subject")
            .to_string();
        let started = Instant::now();
        let (code, text) = send(&server, from, body);
        let took = started.elapsed();
        figures.push(format!("{subject}: {took:?}"));
        assert!(
            took < Duration::from_secs(10),
            "{subject} took {took:?}\n{}",
            server.log_text()
        );
        assert_eq!(code, 250, "{subject}: {text}\n{}", server.log_text());
        let inbox = wait_for(&server, "", i + 1);
        let got = inbox
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .unwrap_or_else(|| panic!("{subject} not delivered\n{}", server.log_text()));
        let field = results_field(got);
        for e in *expected {
            assert!(field.contains(e), "{subject}: {e} expected in {field}");
        }
    }
    eprintln!("{}", figures.join("\n"));
}
