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
use common::server::{Raw, Server, standard_domain, submit_as_alice};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
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

fn server(resolver: &str) -> Server {
    Server::start(&format!(
        "resolver \"{resolver}\"\nlisten \"smtp\" \"127.0.0.1:0\"\nlisten \"submissions\" \"127.0.0.1:0\"\ninbound {{\n    checks #true\n}}\n{}",
        standard_domain()
    ))
}

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: Sender <{from}>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: Thu, 03 Dec 2026 08:00:00 +0000\r\nMessage-ID: <{subject}@sender.test>\r\n\r\nHello.\r\n"
    )
}

fn signed(key: &DkimKeyPair, msg: &str) -> String {
    let signing = Ed25519Key::from_pkcs8_der(key.private_key()).expect("key");
    let signature = DkimSigner::from_key(signing)
        .domain("sender.test")
        .selector("s1")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(msg.as_bytes())
        .expect("sign");
    format!("{}{msg}", signature.to_header())
}

/// One SMTP transaction from 127.0.0.1 introducing itself as
/// mx.sender.test; the final reply.
fn send(server: &Server, from: &str, body: &str) -> (u16, String) {
    let mut c = Raw::connect(server.addr("smtp"));
    c.reply().expect("greeting");
    assert_eq!(c.cmd("EHLO mx.sender.test").expect("ehlo").0, 250);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{from}>")).expect("mail").0, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").expect("rcpt").0, 250);
    assert_eq!(c.cmd("DATA").expect("data").0, 354);
    c.send(body.replace("\r\n.", "\r\n..").as_bytes())
        .expect("body");
    c.send(b".\r\n").expect("end");
    let reply = c.reply().expect("reply");
    let _ = c.cmd("QUIT");
    reply
}

fn files_in(server: &Server, sub: &str) -> Vec<String> {
    let dir = server
        .state()
        .join("mail/example.test/alice")
        .join(sub)
        .join("new");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn wait_for(server: &Server, sub: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let files = files_in(server, sub);
        if files.len() >= n || std::time::Instant::now() > deadline {
            return files;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Authentication-Results field of a delivered message, unfolded, with
/// the signature prefix (`header.b=`, random per key) masked.
fn results_field(text: &str) -> String {
    let start = text
        .find("Authentication-Results: mail.example.test")
        .unwrap_or_else(|| panic!("no Authentication-Results of ours:\n{text}"));
    let mut field = String::new();
    for (i, line) in text[start..].split("\r\n").enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        field.push_str(line.trim_start());
        field.push(' ');
    }
    let field = field.trim_end().to_string();
    match field.find("header.b=") {
        Some(at) => {
            let end = field[at..].find([' ', ';']).map_or(field.len(), |n| at + n);
            format!("{}header.b=<masked>{}", &field[..at], &field[end..])
        }
        None => field,
    }
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
