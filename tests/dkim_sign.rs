//! DKIM signing: keys made by `mailc dkim keygen`, messages signed by
//! `outbound::dkim::Signer`, verified by mail-auth's verifier against the
//! records `mailc dns` prints, served by a real DNS server on loopback.
//! RSA and Ed25519; a changed body or header must fail.

mod common;
mod dkim_site;

use dkim_site::{message, site};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use mailc::outbound::dkim::{DkimError, Signer};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(signer: &Signer, msg: &[u8], now: u64) -> Vec<u8> {
    let mut out = signer.sign(msg, now).expect("signs");
    out.extend_from_slice(msg);
    out
}

/// (selector, algorithm tag, passed) of every signature, as mail-auth sees it.
fn verify(server: &common::dns_server::DnsServer, msg: &[u8]) -> Vec<(String, String, bool)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resolver = mailc::dns::live::resolver(Some(server.addr)).expect("resolver");
        let auth = MessageAuthenticator(resolver);
        let parsed = AuthenticatedMessage::parse(msg).expect("parses");
        auth.verify_dkim(&parsed)
            .await
            .iter()
            .map(|o| {
                let s = o.signature().expect("a signature");
                (
                    s.s.clone(),
                    format!("{:?}", s.a),
                    matches!(o.result(), DkimResult::Pass),
                )
            })
            .collect()
    })
}

fn field_values(signatures: &[u8]) -> Vec<String> {
    // Unfold, then split into fields.
    let text = String::from_utf8(signatures.to_vec()).unwrap();
    let unfolded = text.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded.lines().map(String::from).collect()
}

fn tag<'a>(field: &'a str, name: &str) -> Option<&'a str> {
    field
        .split_once(':')?
        .1
        .split(';')
        .map(str::trim)
        .find_map(|t| t.strip_prefix(&format!("{name}=")))
}

#[test]
fn rsa_and_ed25519_signatures_verify_against_published_keys() {
    let s = site();
    let signer = Signer::load(&s.tables).expect("keys load");
    let t = now();
    let msg = signed(&signer, &message("alice@both.example"), t);
    let results = verify(&s.dns, &msg);
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|r| r.2), "{results:?}");
    let selectors: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
    assert!(selectors.contains(&"rsa2026") && selectors.contains(&"ed2026"));

    for (from, selector) in [
        ("rob@rsa.example", "s1"),
        ("eve@ed.example", "e1"),
        ("jörg@bücher.example", "b1"),
        ("Eve@ED.Example", "e1"),
    ] {
        let msg = signed(&signer, &message(from), t);
        let results = verify(&s.dns, &msg);
        assert_eq!(results.len(), 1, "{from}: {results:?}");
        assert_eq!(results[0].0, selector);
        assert!(results[0].2, "{from}: {results:?}");
    }
}

#[test]
fn signature_fields_are_as_documented() {
    let s = site();
    let signer = Signer::load(&s.tables).unwrap();
    let fields = field_values(
        &signer
            .sign(&message("alice@both.example"), 1_795_558_435)
            .unwrap(),
    );
    assert_eq!(fields.len(), 2);
    for f in &fields {
        assert!(f.starts_with("DKIM-Signature:"), "{f}");
        assert_eq!(tag(f, "c"), Some("relaxed/relaxed"), "{f}");
        assert_eq!(tag(f, "d"), Some("both.example"));
        assert_eq!(tag(f, "t"), Some("1795558435"), "t= is the caller's time");
        assert_eq!(tag(f, "l"), None, "no body length limit");
        let h: Vec<String> = tag(f, "h")
            .unwrap()
            .split(':')
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        assert_eq!(
            h.iter().filter(|n| *n == "from").count(),
            2,
            "From oversigned: {h:?}"
        );
        for name in [
            "to",
            "cc",
            "subject",
            "date",
            "message-id",
            "mime-version",
            "content-type",
            "content-transfer-encoding",
        ] {
            assert!(h.contains(&name.to_string()), "{name} in {h:?}");
        }
        assert!(!h.contains(&"received".to_string()), "{h:?}");
        assert!(
            !h.contains(&"reply-to".to_string()),
            "absent fields are not listed"
        );
    }
    let algorithms: Vec<_> = fields.iter().map(|f| tag(f, "a").unwrap()).collect();
    assert_eq!(algorithms, ["rsa-sha256", "ed25519-sha256"], "config order");
    // No lines longer than the SMTP limit, CRLF only.
    let raw = signer
        .sign(&message("alice@both.example"), 1_795_558_435)
        .unwrap();
    assert!(raw.split(|&b| b == b'\n').all(|l| l.len() < 998));
    assert!(raw.ends_with(b"\r\n"));
}

#[test]
fn changed_body_or_headers_fail() {
    let s = site();
    let signer = Signer::load(&s.tables).unwrap();
    let msg = signed(&signer, &message("alice@both.example"), now());
    let text = String::from_utf8(msg.clone()).unwrap();

    let cases = [
        ("body", text.replace("12 \u{20ac}", "13 \u{20ac}")),
        ("subject", text.replace("Quarterly", "Quarterly!")),
        (
            "from",
            text.replace("From: Sender <alice", "From: Sender <mallory"),
        ),
        (
            "second From added",
            text.replacen("To: Bob", "From: mallory@evil.example\r\nTo: Bob", 1),
        ),
        ("body appended", format!("{text}P.S. send money\r\n")),
    ];
    for (what, changed) in cases {
        let results = verify(&s.dns, changed.as_bytes());
        assert_eq!(results.len(), 2, "{what}: {results:?}");
        assert!(
            results.iter().all(|r| !r.2),
            "{what} must fail: {results:?}"
        );
    }
    // What relaxed canonicalization forgives: whitespace inside header
    // values, the case of field names, trailing whitespace of body lines,
    // and empty lines at the end of the body.
    let relaxed = text
        .replace(
            "Subject: Quarterly   figures",
            "SUBJECT:   Quarterly figures",
        )
        .replace("Hello Bob,  \r\n", "Hello Bob,\r\n")
        .replace("Cc: carol", "Cc:\tcarol");
    let relaxed = format!("{relaxed}\r\n\r\n");
    let results = verify(&s.dns, relaxed.as_bytes());
    assert!(results.iter().all(|r| r.2), "{results:?}");
    // A field that is not signed may be added by a later hop.
    let results = verify(
        &s.dns,
        format!(
            "Received: from relay.example by mx.example; Tue, 24 Nov 2026 20:00:00 +0000\r\n{text}"
        )
        .as_bytes(),
    );
    assert!(results.iter().all(|r| r.2), "{results:?}");
}

#[test]
fn unsigned_domains_and_messages_without_from() {
    let s = site();
    let signer = Signer::load(&s.tables).unwrap();
    assert!(
        signer
            .sign(&message("carol@plain.example"), now())
            .unwrap()
            .is_empty()
    );
    assert!(
        signer
            .sign(&message("someone@elsewhere.example"), now())
            .unwrap()
            .is_empty()
    );
    let no_from = b"To: bob@example.org\r\nSubject: x\r\n\r\nbody\r\n";
    assert!(signer.sign(no_from, now()).unwrap().is_empty());
    assert!(signer.signs_for("BOTH.example"));
    assert!(signer.signs_for("bücher.example"));
    assert!(!signer.signs_for("plain.example"));
    // A message with no body at all still signs (empty body hash).
    let head_only = b"From: eve@ed.example\r\nSubject: x\r\n";
    let msg = [signer.sign(head_only, now()).unwrap(), head_only.to_vec()].concat();
    let results = verify(&s.dns, &msg);
    assert_eq!(results.len(), 1);
    assert!(results[0].2, "{results:?}");
}

#[test]
fn a_missing_key_is_an_error_naming_the_file() {
    let s = site();
    let key = s.state.join("dkim/rsa.example/s1.key");
    std::fs::remove_file(&key).unwrap();
    let err = Signer::load(&s.tables).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&key.display().to_string()), "{text}");
    assert!(
        text.contains("s1") && text.contains("rsa.example"),
        "{text}"
    );
    assert!(matches!(err, DkimError::Key { .. }));
}

#[test]
fn a_key_of_the_wrong_kind_or_garbage_is_an_error() {
    let s = site();
    let rsa_key = s.state.join("dkim/rsa.example/s1.key");
    let ed_key = s.state.join("dkim/ed.example/e1.key");
    // The Ed25519 file where the config says RSA.
    std::fs::copy(&ed_key, &rsa_key).unwrap();
    let text = Signer::load(&s.tables).unwrap_err().to_string();
    assert!(text.contains(&rsa_key.display().to_string()), "{text}");
    std::fs::write(&rsa_key, "not a key\n").unwrap();
    let text = Signer::load(&s.tables).unwrap_err().to_string();
    assert!(text.contains("not a PEM private key"), "{text}");
}
