//! ARC sealing of forwarded mail end to end (RFC 8617): a DKIM-signed
//! message from sender.test reaches mailc's MX for `carol@fwd.test`, an
//! alias forwarding to `carol@remote.test`, whose MX (a second `mailc
//! serve` on 127.0.0.2) receives it with an SRS sender and an ARC set
//! `i=1`, `cv=none`, signed with fwd.test's DKIM key; mail-auth verifies
//! the chain against the key published on the loopback DNS server. The
//! copy for a local mailbox in the same transaction carries no seal.

mod common;

use std::time::Duration;

use common::dns_server::DnsServer;
use common::server::Raw;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::generate::DkimKeyPair;

/// `"..." "..."`: a TXT record's data as strings of at most 200 bytes.
fn txt(record: &str) -> String {
    record
        .as_bytes()
        .chunks(200)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A fresh RSA-2048 key as the PEM file mailc reads, and its DNS record.
fn rsa_key(path: &std::path::Path) -> String {
    let pair = DkimKeyPair::generate_rsa(2048).expect("rsa key");
    let b64 = base64(pair.private_key());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(
        path,
        format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )
    .expect("key file");
    let public = mailc::dns::keys::public_key_b64(path, mailc::tables::DkimAlgorithm::Rsa)
        .expect("public key");
    format!("v=DKIM1; k=rsa; p={public}")
}

#[test]
fn forwarded_mail_is_arc_sealed_once_with_the_alias_domain_key() {
    let keys = tempfile::tempdir().expect("tempdir");
    let fwd_key = keys.path().join("fwd.key");
    let fwd_record = rsa_key(&fwd_key);
    let sender_key = DkimKeyPair::generate_ed25519().expect("key");
    let dns = DnsServer::start(&[
        (
            "sender.test.",
            format!(
                "@ 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
                 _dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n\
                 s1._domainkey 300 IN TXT \"v=DKIM1; k=ed25519; p={}\"\n",
                sender_key.encoded_public_key()
            ),
        ),
        (
            "remote.test.",
            "@ 300 IN MX 10 mx.remote.test.\nmx 300 IN A 127.0.0.2\n".into(),
        ),
        (
            "fwd.test.",
            format!("arc._domainkey 300 IN TXT {}\n", txt(&fwd_record)),
        ),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]);
    let (remote, local) = common::inbound::forwarding_pair(&dns.addr.to_string(), "arc", &fwd_key);

    let msg = "From: News <news@sender.test>\r\nTo: carol@fwd.test\r\nSubject: sealed\r\nDate: Thu, 03 Dec 2026 08:00:00 +0000\r\nMessage-ID: <sealed@sender.test>\r\n\r\nHello.\r\n";
    let signature =
        DkimSigner::from_key(Ed25519Key::from_pkcs8_der(sender_key.private_key()).expect("key"))
            .domain("sender.test")
            .selector("s1")
            .headers(["From", "To", "Subject", "Date", "Message-ID"])
            .sign(msg.as_bytes())
            .expect("sign");
    let body = format!("{}{msg}", signature.to_header());
    let mut c = Raw::connect(local.addr("smtp"));
    assert_eq!(c.reply().unwrap().0, 220);
    assert_eq!(c.cmd("EHLO mx.sender.test").unwrap().0, 250);
    let code = c
        .send_mail(
            "news@sender.test",
            &["carol@fwd.test", "alice@example.test"],
            &body,
        )
        .unwrap();
    assert_eq!(code, 250, "{}", local.log_text());

    let carol = remote.wait_for_mail("remote.test", "carol", 1, Duration::from_secs(20));
    assert_eq!(carol.len(), 1, "{}", local.log_text());
    let text = std::fs::read_to_string(&carol[0]).unwrap();
    // The SRS sender, and one ARC set, the first.
    let rp = text
        .lines()
        .find(|l| l.starts_with("Return-Path:"))
        .expect("Return-Path");
    assert!(rp.contains("<SRS0=") && rp.contains("@fwd.test>"), "{rp}");
    assert_eq!(text.matches("ARC-Seal:").count(), 1, "{text}");
    assert_eq!(text.matches("ARC-Message-Signature:").count(), 1);
    assert_eq!(text.matches("ARC-Authentication-Results:").count(), 1);
    let unfolded = text.replace("\r\n\t", " ").replace("\r\n ", " ");
    let field = |name: &str| {
        unfolded
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    let seal = field("ARC-Seal:");
    assert!(seal.contains("i=1;"), "{seal}");
    assert!(seal.contains("cv=none"), "{seal}");
    assert!(
        seal.contains("d=fwd.test") && seal.contains("s=arc"),
        "{seal}"
    );
    assert!(seal.contains("a=rsa-sha256"), "{seal}");
    let ams = field("ARC-Message-Signature:");
    assert!(ams.contains("i=1;") && ams.contains("d=fwd.test"), "{ams}");
    assert!(ams.contains("c=relaxed/relaxed"), "{ams}");
    assert!(!ams.contains(" l="), "no body length: {ams}");
    // The sealed results are the MX's own Authentication-Results.
    let aar = field("ARC-Authentication-Results:");
    let ours = field("Authentication-Results: mail.example.test");
    assert_eq!(
        aar.trim_start_matches("ARC-Authentication-Results: i=1;")
            .trim(),
        ours.trim_start_matches("Authentication-Results:").trim(),
    );
    assert!(
        aar.contains("dkim=pass") && aar.contains("arc=none"),
        "{aar}"
    );

    // mail-auth validates the chain mailc built, and the sender's DKIM
    // signature still verifies after the forward.
    let bytes = std::fs::read(&carol[0]).unwrap();
    let (arc, dkim) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let resolver = mailc::dns::live::resolver(Some(dns.addr)).unwrap();
            let auth = mail_auth::MessageAuthenticator(resolver);
            let parsed = mail_auth::AuthenticatedMessage::parse(&bytes).unwrap();
            let arc = auth.verify_arc(&parsed).await.result().clone();
            let dkim: Vec<_> = auth
                .verify_dkim(&parsed)
                .await
                .iter()
                .map(|o| o.result().clone())
                .collect();
            (arc, dkim)
        });
    assert_eq!(arc, mail_auth::DkimResult::Pass, "{text}");
    assert_eq!(dkim, vec![mail_auth::DkimResult::Pass]);

    // The local copy of the same message is not sealed.
    let alice = local.wait_for_mail("example.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(alice.len(), 1);
    let own = std::fs::read_to_string(&alice[0]).unwrap();
    assert!(own.contains("Subject: sealed"));
    assert!(!own.contains("ARC-"), "{own}");
}
