//! DSN messages (RFC 3464 bounces, delay warnings, success reports): one
//! golden file per kind, and every generated report parsed back with
//! mail-parser to check its MIME structure.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailc::envelope::{Client, Envelope, Notify, Recipient, Ret};
use mailc::outbound::dsn::{self, Action, DsnKind, DsnRecipient};

const HOST: &str = "mail.example.com";
/// Tue, 24 Nov 2026 22:13:55 +0000
const NOW: u64 = 1_795_558_435;
const ARRIVED: u64 = NOW - 3 * 3600;

const ORIGINAL: &str = "Received: from client.example.com ([192.0.2.7])\r\n\
\tby mail.example.com (mailc) with ESMTPSA id 1A2B3C; Tue, 24 Nov 2026 19:13:55 +0000\r\n\
From: Alice <alice@example.com>\r\n\
To: Bob <bob@example.org>, carol@example.net\r\n\
Subject: Quarterly figures\r\n\
Date: Tue, 24 Nov 2026 19:13:50 +0000\r\n\
Message-ID: <q3@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Hello Bob, hello Carol,\r\n\
\r\n\
the figures are attached.\r\n";

fn envelope() -> Envelope {
    Envelope {
        id: "1A2B3C".into(),
        sender: "alice@example.com".into(),
        recipients: vec![Recipient {
            address: "bob@example.org".into(),
            orcpt: None,
            notify: Notify::default(),
            deliveries: vec![],
        }],
        deliveries: vec![],
        ret: None,
        envid: None,
        body_8bit: false,
        smtputf8: false,
        client: Client {
            ip: "192.0.2.7".into(),
            helo: "client.example.com".into(),
            tls: None,
            auth: Some("alice@example.com".into()),
            listener: "submission".into(),
        },
        received_at: ARRIVED,
        size: ORIGINAL.len() as u64,
        junk: false,
        arc_seals: Default::default(),
    }
}

fn failed(to: &str, orcpt: Option<&str>, status: &str, reply: &str) -> DsnRecipient {
    DsnRecipient {
        original: orcpt.map(String::from),
        final_recipient: to.into(),
        action: Action::Failed,
        status: status.into(),
        remote_mta: Some("mx1.example.org".into()),
        diagnostic: Some(format!("smtp; {reply}")),
        last_attempt: NOW - 60,
        will_retry_until: None,
    }
}

fn delayed(to: &str) -> DsnRecipient {
    DsnRecipient {
        original: None,
        final_recipient: to.into(),
        action: Action::Delayed,
        status: "4.4.1".into(),
        remote_mta: Some("mx.example.net".into()),
        diagnostic: Some("smtp; 451 4.4.1 connection timed out".into()),
        last_attempt: NOW - 120,
        will_retry_until: Some(ARRIVED + 5 * 86_400),
    }
}

/// What every report must be, whatever its kind: CRLF only, short lines,
/// a multipart/report of three parts with the expected types, the machine
/// part holding one block per recipient.
fn check_structure(bytes: &[u8], report_type: &str, third: (&str, &str), recipients: usize) {
    for (i, w) in bytes.windows(2).enumerate() {
        assert!(
            !(w[1] == b'\n' && w[0] != b'\r'),
            "bare LF at {i}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(
        !bytes.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'),
        "bare CR"
    );
    for line in bytes.split(|&b| b == b'\n') {
        assert!(line.len() <= 998, "line too long");
    }
    let msg = MessageParser::default().parse(bytes).expect("parses");
    let root = msg.content_type().expect("content type");
    assert_eq!(root.ctype(), "multipart");
    assert_eq!(root.subtype(), Some("report"));
    assert_eq!(root.attribute("report-type"), Some(report_type));
    let PartType::Multipart(children) = &msg.parts[0].body else {
        panic!("root is not multipart");
    };
    assert_eq!(children.len(), 3, "three parts");
    let part = |i: usize| &msg.parts[children[i] as usize];
    let ct = |i: usize| {
        let c = part(i).content_type().expect("part content type");
        (
            c.ctype().to_ascii_lowercase(),
            c.subtype().unwrap_or_default().to_ascii_lowercase(),
        )
    };
    assert_eq!(ct(0), ("text".into(), "plain".into()));
    assert_eq!(ct(1), ("message".into(), report_type.into()));
    assert_eq!(ct(2), (third.0.into(), third.1.into()));
    assert!(
        !part(0).text_contents().unwrap_or_default().is_empty(),
        "a human-readable explanation"
    );
    // The report itself: per-message block, then one block per recipient.
    let report = String::from_utf8_lossy(part(1).contents()).into_owned();
    let blocks: Vec<&str> = report.trim_end().split("\r\n\r\n").collect();
    assert_eq!(blocks.len(), 1 + recipients, "{report}");
    assert!(blocks[0].starts_with(&format!("Reporting-MTA: dns; {HOST}\r\n")));
    for b in &blocks[1..] {
        for field in ["Final-Recipient: ", "Action: ", "Status: "] {
            assert!(b.contains(field), "{field} missing in {b}");
        }
    }
    if third == ("message", "rfc822") || third == ("message", "global") {
        let PartType::Message(inner) = &part(2).body else {
            panic!("the returned message is not parsed as a message");
        };
        assert_eq!(inner.subject(), Some("Quarterly figures"));
    } else {
        let headers = String::from_utf8_lossy(part(2).contents()).into_owned();
        assert!(headers.contains("Subject: Quarterly figures"), "{headers}");
        assert!(
            !headers.contains("the figures are attached"),
            "headers only"
        );
    }
    let text = String::from_utf8_lossy(bytes);
    assert!(text.starts_with("From: Mail Delivery System <MAILER-DAEMON@mail.example.com>\r\n"));
    assert!(text.contains("\r\nAuto-Submitted: auto-replied\r\n"));
    assert_eq!(msg.date().map(|d| d.to_timestamp()), Some(NOW as i64));
}

fn snapshot(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec())
        .expect("UTF-8")
        .replace("\r\n", "\n")
}

#[test]
fn failure_with_two_recipients_one_with_orcpt() {
    let env = envelope();
    let rcpts = [
        failed(
            "bob@example.org",
            Some("Bob@Example.ORG"),
            "5.1.1",
            "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        ),
        failed(
            "carol@example.net",
            None,
            "5.2.2",
            "552 5.2.2 carol@example.net mailbox full",
        ),
    ];
    let out = dsn::build(
        DsnKind::Failure,
        HOST,
        &env,
        &rcpts,
        ORIGINAL.as_bytes(),
        NOW,
    );
    // Without RET, a failure returns the whole (small) message.
    check_structure(&out, "delivery-status", ("message", "rfc822"), 2);
    let text = snapshot(&out);
    assert!(text.contains("Original-Recipient: rfc822; Bob@Example.ORG\n"));
    assert_eq!(text.matches("Original-Recipient").count(), 1);
    assert!(text.contains("does not exist"), "plain words for 5.1.1");
    insta::assert_snapshot!("dsn_failure_two_recipients", text);
}

#[test]
fn delay_warning() {
    let env = envelope();
    let out = dsn::build(
        DsnKind::Delay,
        HOST,
        &env,
        &[delayed("carol@example.net")],
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "delivery-status", ("text", "rfc822-headers"), 1);
    let text = snapshot(&out);
    assert!(text.contains("Will-Retry-Until: Sun, 29 Nov 2026 19:13:55 +0000\n"));
    assert!(
        text.contains("keep trying until Sun, 29 Nov 2026"),
        "{text}"
    );
    insta::assert_snapshot!("dsn_delay", text);
}

#[test]
fn delay_with_ret_full_still_returns_headers_only() {
    let mut env = envelope();
    env.ret = Some(Ret::Full);
    let out = dsn::build(
        DsnKind::Delay,
        HOST,
        &env,
        &[delayed("carol@example.net")],
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "delivery-status", ("text", "rfc822-headers"), 1);
}

#[test]
fn success() {
    let env = envelope();
    let rcpts = [
        DsnRecipient {
            original: Some("bob@example.org".into()),
            final_recipient: "bob@example.org".into(),
            action: Action::Delivered,
            status: "2.0.0".into(),
            remote_mta: Some("mx1.example.org".into()),
            diagnostic: Some("smtp; 250 2.0.0 Ok: queued as 4ABC".into()),
            last_attempt: NOW,
            will_retry_until: None,
        },
        DsnRecipient {
            original: None,
            final_recipient: "carol@example.net".into(),
            action: Action::Relayed,
            status: "2.0.0".into(),
            remote_mta: Some("mx.example.net".into()),
            diagnostic: Some("smtp; 250 ok".into()),
            last_attempt: NOW,
            will_retry_until: Some(NOW + 86_400),
        },
    ];
    let out = dsn::build(
        DsnKind::Success,
        HOST,
        &env,
        &rcpts,
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "delivery-status", ("text", "rfc822-headers"), 2);
    let text = snapshot(&out);
    assert!(!text.contains("Will-Retry-Until"), "only for delays");
    insta::assert_snapshot!("dsn_success", text);
}

#[test]
fn ret_full() {
    let mut env = envelope();
    env.ret = Some(Ret::Full);
    let rcpts = [failed(
        "bob@example.org",
        None,
        "5.7.1",
        "550 5.7.1 Message rejected as spam",
    )];
    let out = dsn::build(
        DsnKind::Failure,
        HOST,
        &env,
        &rcpts,
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "delivery-status", ("message", "rfc822"), 1);
    let text = snapshot(&out);
    assert!(text.contains("the figures are attached."));
    insta::assert_snapshot!("dsn_ret_full", text);
}

#[test]
fn ret_full_over_the_size_cap_returns_headers() {
    let mut env = envelope();
    env.ret = Some(Ret::Full);
    let big = format!(
        "{ORIGINAL}{}",
        "0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
            .repeat(dsn::FULL_RETURN_LIMIT / 72 + 1)
    );
    let rcpts = [failed(
        "bob@example.org",
        None,
        "5.3.4",
        "552 5.3.4 Message too big",
    )];
    let out = dsn::build(DsnKind::Failure, HOST, &env, &rcpts, big.as_bytes(), NOW);
    check_structure(&out, "delivery-status", ("text", "rfc822-headers"), 1);
    assert!(out.len() < 8_000, "{} bytes", out.len());
    assert!(snapshot(&out).contains("too large to be returned in full"));
}

#[test]
fn ret_hdrs() {
    let mut env = envelope();
    env.ret = Some(Ret::Headers);
    let rcpts = [failed(
        "bob@example.org",
        None,
        "5.1.1",
        "550 5.1.1 no such user",
    )];
    let out = dsn::build(
        DsnKind::Failure,
        HOST,
        &env,
        &rcpts,
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "delivery-status", ("text", "rfc822-headers"), 1);
    insta::assert_snapshot!("dsn_ret_hdrs", snapshot(&out));
}

#[test]
fn envid() {
    let mut env = envelope();
    env.envid = Some("QQ314159+x=y".into());
    let out = dsn::build(
        DsnKind::Delay,
        HOST,
        &env,
        &[delayed("carol@example.net")],
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "delivery-status", ("text", "rfc822-headers"), 1);
    let text = snapshot(&out);
    assert!(
        text.contains("Original-Envelope-Id: QQ314159+2Bx+3Dy\n"),
        "xtext as RFC 3464 §2.2.1 asks"
    );
    insta::assert_snapshot!("dsn_envid", text);
}

#[test]
fn utf8_recipient_makes_a_global_report() {
    let mut env = envelope();
    env.smtputf8 = true;
    let rcpts = [failed(
        "jörg@bücher.example",
        Some("jörg@bücher.example"),
        "5.6.7",
        "553 5.6.7 SMTPUTF8 not supported by the peer",
    )];
    let out = dsn::build(
        DsnKind::Failure,
        HOST,
        &env,
        &rcpts,
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "global-delivery-status", ("message", "global"), 1);
    let text = snapshot(&out);
    assert!(text.contains("Final-Recipient: utf-8; jörg@bücher.example\n"));
    // The human part is quoted-printable UTF-8 (safe for any peer).
    assert!(text.contains("<j=C3=B6rg@b=C3=BCcher.example>"), "{text}");
    insta::assert_snapshot!("dsn_utf8_recipient", text);
}

#[test]
fn hostile_remote_text_cannot_add_fields() {
    let env = envelope();
    let rcpts = [DsnRecipient {
        diagnostic: Some(format!(
            "smtp; 550 no\r\nX-Injected: yes\r\n\r\nAction: delivered {}",
            "ü".repeat(3000)
        )),
        remote_mta: Some("mx\r\nX-Injected: yes".into()),
        ..failed("bob@example.org", None, "5.0.0", "")
    }];
    let out = dsn::build(
        DsnKind::Failure,
        HOST,
        &env,
        &rcpts,
        ORIGINAL.as_bytes(),
        NOW,
    );
    check_structure(&out, "delivery-status", ("message", "rfc822"), 1);
    let text = snapshot(&out);
    assert!(!text.contains("\nX-Injected"), "{text}");
    assert!(!text.contains("\nAction: delivered"));
    // The ASCII report carries no raw UTF-8.
    let report = text
        .split("Content-Type: message/delivery-status")
        .nth(1)
        .unwrap();
    let report = report.split("\n--").next().unwrap();
    assert!(report.is_ascii());
}

#[test]
fn deterministic_and_distinct() {
    let env = envelope();
    let rcpts = [delayed("carol@example.net")];
    let a = dsn::build(DsnKind::Delay, HOST, &env, &rcpts, ORIGINAL.as_bytes(), NOW);
    let b = dsn::build(DsnKind::Delay, HOST, &env, &rcpts, ORIGINAL.as_bytes(), NOW);
    assert_eq!(a, b);
    let c = dsn::build(
        DsnKind::Delay,
        HOST,
        &env,
        &rcpts,
        ORIGINAL.as_bytes(),
        NOW + 1,
    );
    let id = |m: &[u8]| {
        MessageParser::default()
            .parse(m)
            .unwrap()
            .message_id()
            .unwrap()
            .to_string()
    };
    assert_ne!(id(&a), id(&c), "two reports, two Message-IDs");
}

#[test]
fn never_to_the_null_sender() {
    let mut env = envelope();
    assert!(dsn::is_bounce_allowed(&env));
    env.sender = String::new();
    assert!(!dsn::is_bounce_allowed(&env));
    env.sender = "<>".into();
    assert!(!dsn::is_bounce_allowed(&env));
}
