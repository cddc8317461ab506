//! The outbound SMTP client against real sockets on loopback: a scripted
//! peer for every fault the issue lists (per-recipient refusals, SIZE,
//! 8BITMIME, SMTPUTF8, hangs, garbage, long and endless replies, drops,
//! 250 to DATA, a refusing greeting), real TLS (rcgen certificates,
//! opportunistic and verified, STARTTLS and implicit), AUTH over TLS, and a
//! real `mailc serve` as the receiving server.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scripted_peer::{Peer, Step, expect, pipelined, say, tls_acceptor};
use mailc::outbound::dane::Tlsa;
use mailc::outbound::tlsrpt::FailureType;
use mailc::services::smtp_out::{
    CertCheck, ClientSettings, ClientTimeouts, ConnError, Connection, OutMessage, OutRcpt,
    RcptOutcome, Stage, TlsPolicy,
};

const MX: &str = "mx.test.example";

fn settings() -> ClientSettings {
    ClientSettings {
        helo: "out.example.test".into(),
        tls: TlsPolicy::Opportunistic,
        implicit_tls: false,
        server_name: MX.into(),
        auth: None,
        source: None,
        timeouts: ClientTimeouts::uniform(Duration::from_secs(5)),
        roots: Arc::new(rustls::RootCertStore::empty()),
        cert_check: Default::default(),
    }
}

fn short_timeouts() -> ClientSettings {
    ClientSettings {
        timeouts: ClientTimeouts::uniform(Duration::from_millis(400)),
        ..settings()
    }
}

/// A 250 reply to EHLO offering these extensions.
fn ehlo(exts: &[&str]) -> Step {
    let mut lines = vec![MX.to_string()];
    lines.extend(exts.iter().map(|s| s.to_string()));
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("250{sep}{l}\r\n"));
    }
    Step::Raw(out.into_bytes())
}

fn rcpts(names: &[&str]) -> Vec<OutRcpt> {
    names
        .iter()
        .map(|n| OutRcpt {
            address: n.to_string(),
            notify: None,
            orcpt: None,
        })
        .collect()
}

fn message<'a>(r: &'a [OutRcpt], body: &'a [u8]) -> OutMessage<'a> {
    OutMessage {
        sender: "sender@out.example.test",
        recipients: r,
        body,
        body_8bit: false,
        smtputf8: false,
        ret: None,
        envid: None,
    }
}

const BODY: &[u8] = b"Subject: test\r\n\r\nfirst\r\n.leading dot\r\n..two dots\r\nlast\r\n";

fn start() -> Vec<Step> {
    vec![
        say("220 mx.test.example ESMTP"),
        expect("EHLO out.example.test"),
    ]
}

fn quit() -> Vec<Step> {
    vec![expect("QUIT"), say("221 bye")]
}

fn script(parts: Vec<Vec<Step>>) -> Vec<Step> {
    parts.into_iter().flatten().collect()
}

fn kinds(outcomes: &[RcptOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| {
            let k = match o {
                RcptOutcome::Delivered(_) => "delivered",
                RcptOutcome::Deferred(_) => "deferred",
                RcptOutcome::Failed(_) => "failed",
            };
            format!("{k} {} {}", o.info().code, o.info().stage)
        })
        .collect()
}

#[tokio::test]
async fn happy_path_pipelined_and_dot_stuffed() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&[
                "PIPELINING",
                "SIZE 100000",
                "8BITMIME",
                "ENHANCEDSTATUSCODES",
            ]),
            pipelined(&[
                &format!("MAIL FROM:<sender@out.example.test> SIZE={}", BODY.len()),
                "RCPT TO:<a@dest.example>",
                "RCPT TO:<b@dest.example>",
                "DATA",
            ]),
            say("250 2.1.0 ok"),
            say("250 2.1.5 ok"),
            say("250 2.1.5 ok"),
            say("354 go ahead"),
            Step::Data,
            say("250 2.0.0 queued as X1"),
        ],
        quit(),
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    assert!(conn.capabilities().pipelining);
    assert_eq!(conn.capabilities().size, Some(100_000));
    assert_eq!(conn.peer_name(), MX);
    assert!(conn.tls().is_none());
    let r = rcpts(&["a@dest.example", "b@dest.example"]);
    let out = conn.send(&message(&r, BODY)).await.unwrap();
    assert_eq!(
        kinds(&out),
        ["delivered 250 DATA-END", "delivered 250 DATA-END"]
    );
    assert_eq!(out[0].info().to_string(), "250 2.0.0 queued as X1");
    conn.quit().await;
    let t = peer.finish().await;
    assert_eq!(
        t.bodies,
        vec![BODY.to_vec()],
        "dot-stuffing undone gives the body back"
    );
    assert!(t.after.is_empty(), "{:?}", t.after);
}

#[tokio::test]
async fn without_pipelining_one_command_at_a_time() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["8BITMIME"]),
            expect("MAIL FROM:<sender@out.example.test>"),
            say("250 ok"),
            expect("RCPT TO:<a@dest.example>"),
            say("250 ok"),
            expect("DATA"),
            say("354 go"),
            Step::Data,
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    peer.finish().await;
}

#[tokio::test]
async fn recipient_451_then_250_on_the_next_attempt() {
    let first = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "RCPT TO:<b@", "DATA"]),
            say("250 ok"),
            say("451 4.3.0 try later"),
            say("250 ok"),
            say("354 go"),
            Step::Data,
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let r = rcpts(&["a@dest.example", "b@dest.example"]);
    let mut conn = Connection::open(first.addr, &settings()).await.unwrap();
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["deferred 451 RCPT", "delivered 250 DATA-END"]);
    assert_eq!(out[0].info().to_string(), "451 4.3.0 try later");
    conn.quit().await;
    first.finish().await;

    // The retry carries only the deferred recipient.
    let second = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@dest.example>", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("354 go"),
            Step::Data,
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let retry = &r[..1];
    let mut conn = Connection::open(second.addr, &settings()).await.unwrap();
    let out = conn.send(&message(retry, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    second.finish().await;
}

#[tokio::test]
async fn one_recipient_550_others_delivered() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING", "ENHANCEDSTATUSCODES"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "RCPT TO:<nobody@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("550 5.1.1 no such user"),
            say("354 go"),
            Step::Data,
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let r = rcpts(&["a@dest.example", "nobody@dest.example"]);
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END", "failed 550 RCPT"]);
    assert_eq!(
        out[1].info().diagnostic_code(),
        "smtp; 550 5.1.1 no such user"
    );
    conn.quit().await;
    peer.finish().await;
}

#[tokio::test]
async fn all_recipients_refused_no_data_then_next_message() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING"]),
            // first message: nobody accepted, DATA refused, RSET
            pipelined(&["MAIL FROM:", "RCPT TO:<x@", "DATA"]),
            say("250 ok"),
            say("550 5.1.1 unknown"),
            say("554 5.5.1 no valid recipients"),
            expect("RSET"),
            say("250 reset"),
            // second message on the same connection
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("354 go"),
            Step::Data,
            say("250 ok 1"),
            // third
            pipelined(&["MAIL FROM:", "RCPT TO:<b@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("354 go"),
            Step::Data,
            say("250 ok 2"),
        ],
        quit(),
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let x = rcpts(&["x@dest.example"]);
    let out = conn.send(&message(&x, b"one\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["failed 550 RCPT"]);
    assert!(conn.is_usable());
    let a = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&a, b"two\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    let b = rcpts(&["b@dest.example"]);
    let out = conn.send(&message(&b, b"three\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    let t = peer.finish().await;
    assert_eq!(t.bodies, vec![b"two\r\n".to_vec(), b"three\r\n".to_vec()]);
}

#[tokio::test]
async fn data_refused_defers_every_accepted_recipient() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "RCPT TO:<b@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("250 ok"),
            say("451 4.3.0 local problem"),
            expect("RSET"),
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let r = rcpts(&["a@dest.example", "b@dest.example"]);
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["deferred 451 DATA", "deferred 451 DATA"]);
    conn.quit().await;
    peer.finish().await;
}

/// A refusal decided before sending: no MAIL, nothing but QUIT.
async fn refused_locally(exts: &[&str], body: &[u8], body_8bit: bool) -> RcptOutcome {
    let peer = Peer::start(script(vec![start(), vec![ehlo(exts)], quit()])).await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = rcpts(&["a@dest.example", "b@dest.example"]);
    let out = conn
        .send(&OutMessage {
            body_8bit,
            ..message(&r, body)
        })
        .await
        .unwrap();
    conn.quit().await;
    let t = peer.finish().await;
    assert_eq!(
        t.lines,
        ["EHLO out.example.test", "QUIT"],
        "nothing but QUIT was sent"
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], out[1]);
    out[0].clone()
}

#[tokio::test]
async fn size_too_big_is_refused_before_sending() {
    let big = vec![b'x'; 2000];
    let o = refused_locally(&["PIPELINING", "SIZE 1000", "8BITMIME"], &big, false).await;
    let RcptOutcome::Failed(info) = o else {
        panic!("{o:?}")
    };
    assert_eq!((info.code, info.stage), (552, Stage::SizeCheck));
    assert_eq!(info.enhanced.to_string(), "5.3.4");
    assert!(
        info.text.contains("2000 bytes") && info.text.contains("1000"),
        "{}",
        info.text
    );
    assert!(!info.remote);
}

#[tokio::test]
async fn eight_bit_body_to_a_seven_bit_server_fails() {
    let body = "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n".as_bytes();
    let o = refused_locally(&["PIPELINING"], body, true).await;
    let RcptOutcome::Failed(info) = o else {
        panic!("{o:?}")
    };
    assert_eq!(info.enhanced.to_string(), "5.6.3");
    assert!(info.text.contains("8BITMIME"));
}

#[tokio::test]
async fn utf8_envelope_to_a_server_without_smtputf8_fails() {
    let peer = Peer::start(script(vec![
        start(),
        vec![ehlo(&["PIPELINING", "8BITMIME"])],
        quit(),
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = rcpts(&["j\u{f6}rg@dest.example"]);
    let out = conn
        .send(&OutMessage {
            smtputf8: true,
            ..message(&r, b"x\r\n")
        })
        .await
        .unwrap();
    conn.quit().await;
    assert_eq!(peer.finish().await.lines, ["EHLO out.example.test", "QUIT"]);
    let RcptOutcome::Failed(info) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(info.enhanced.to_string(), "5.6.7");
    assert!(info.text.contains("SMTPUTF8"));
}

#[tokio::test]
async fn utf8_envelope_with_smtputf8_and_dsn_parameters() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING", "8BITMIME", "SMTPUTF8", "DSN"]),
            pipelined(&[
                "MAIL FROM:<sender@out.example.test> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=env+2B1",
                "RCPT TO:<j\u{f6}rg@dest.example> NOTIFY=FAILURE,DELAY ORCPT=utf-8;j\\x{F6}rg@dest.example",
                "DATA",
            ]),
            say("250 ok"),
            say("250 ok"),
            say("354 go"),
            Step::Data,
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = vec![OutRcpt {
        address: "j\u{f6}rg@dest.example".into(),
        notify: Some(mailc::envelope::Notify {
            failure: true,
            delay: true,
            ..Default::default()
        }),
        orcpt: Some("j\u{f6}rg@dest.example".into()),
    }];
    let body = "Subject: gr\u{fc}\u{df}e\r\n\r\nx\r\n".as_bytes();
    let out = conn
        .send(&OutMessage {
            smtputf8: true,
            body_8bit: true,
            ret: Some(mailc::envelope::Ret::Headers),
            envid: Some("env+1"),
            ..message(&r, body)
        })
        .await
        .unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    assert_eq!(peer.finish().await.bodies, vec![body.to_vec()]);
}

#[tokio::test]
async fn hang_at_greeting_times_out() {
    let peer = Peer::start(vec![Step::Sleep(Duration::from_secs(3)), Step::Close]).await;
    let started = Instant::now();
    let err = Connection::open(peer.addr, &short_timeouts())
        .await
        .err()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let ConnError::Temporary(text) = err else {
        panic!("{err:?}")
    };
    assert!(
        text.contains("GREETING") && text.contains("timeout"),
        "{text}"
    );
    drop(peer);
}

#[tokio::test]
async fn hang_after_the_final_dot_defers_and_closes() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("354 go"),
            Step::Data,
            Step::Sleep(Duration::from_secs(2)),
        ],
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &short_timeouts())
        .await
        .unwrap();
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["deferred 451 DATA-END"]);
    assert!(out[0].info().text.contains("timeout"));
    assert!(!conn.is_usable());
    // the connection is not used again: no bytes, an error
    let again = conn.send(&message(&r, b"x\r\n")).await;
    assert!(matches!(again, Err(ConnError::Temporary(_))), "{again:?}");
    conn.quit().await;
    let t = peer.finish().await;
    assert!(
        t.after.is_empty(),
        "nothing sent after the timeout: {:?}",
        t.after
    );
}

#[tokio::test]
async fn garbage_greeting_and_garbage_reply() {
    let peer = Peer::start(vec![Step::Raw(
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
    )])
    .await;
    let err = Connection::open(peer.addr, &settings())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("protocol error")),
        "{err:?}"
    );
    peer.finish().await;

    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&[]),
            expect("MAIL FROM:"),
            Step::Raw(b"\x00\xffwhat\r\n".to_vec()),
        ],
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["deferred 451 MAIL"]);
    assert!(out[0].info().text.contains("protocol error"));
    assert_eq!(out[0].info().enhanced.to_string(), "4.5.0");
    assert!(!conn.is_usable());
    drop(conn);
    peer.finish().await;
}

#[tokio::test]
async fn long_reply_lines() {
    // 600 bytes: over RFC 5321's 512, within our slack: read as a reply.
    let long = format!("550 5.7.1 {}", "z".repeat(590));
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "DATA"]),
            say("250 ok"),
            Step::Say(long),
            say("554 no recipients"),
            expect("RSET"),
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["failed 550 RCPT"]);
    assert_eq!(out[0].info().text.len(), 590);
    conn.quit().await;
    peer.finish().await;

    // 3,000 bytes: a protocol error, the recipient deferred.
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&[]),
            expect("MAIL FROM:"),
            Step::Say(format!("250 {}", "y".repeat(3000))),
        ],
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["deferred 451 MAIL"]);
    assert!(
        out[0].info().text.contains("longer than"),
        "{}",
        out[0].info().text
    );
    drop(conn);
    peer.finish().await;
}

#[tokio::test]
async fn endless_continuation_lines_are_cut_off() {
    let peer = Peer::start(vec![
        say("220 mx"),
        expect("EHLO"),
        Step::Flood(b"250-PIPELINING\r\n".to_vec()),
    ])
    .await;
    let started = Instant::now();
    let err = Connection::open(peer.addr, &settings())
        .await
        .err()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("more than 100 lines")),
        "{err:?}"
    );
    peer.finish().await;
}

#[tokio::test]
async fn drop_mid_data_defers() {
    let body = vec![b'a'; 4_000_000];
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING", "8BITMIME"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "RCPT TO:<b@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("550 no"),
            say("354 go"),
            Step::ReadBytes(10_000),
            Step::Close,
        ],
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = rcpts(&["a@dest.example", "b@dest.example"]);
    let out = conn.send(&message(&r, &body)).await.unwrap();
    // The refused recipient keeps its 550; the accepted one is deferred.
    assert_eq!(out.len(), 2);
    assert!(
        matches!(&out[0], RcptOutcome::Deferred(i) if i.code == 451 && !i.remote),
        "{out:?}"
    );
    assert!(matches!(
        out[0].info().stage,
        Stage::DataBlock | Stage::DataEnd
    ));
    assert_eq!(kinds(&out[1..]), ["failed 550 RCPT"]);
    assert!(!conn.is_usable());
    peer.finish().await;
}

#[tokio::test]
async fn answer_250_to_data_before_the_data() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING"]),
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("250 2.0.0 thanks, delivered"),
        ],
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, BODY)).await.unwrap();
    assert_eq!(
        kinds(&out),
        ["deferred 451 DATA"],
        "nothing is marked delivered"
    );
    assert!(out[0].info().text.contains("unexpected reply 250"));
    assert!(!conn.is_usable());
    drop(conn);
    let t = peer.finish().await;
    assert!(
        t.bodies.is_empty() && t.after.is_empty(),
        "the body was not sent: {t:?}"
    );
}

#[tokio::test]
async fn greeting_554_is_permanent() {
    let peer = Peer::start(script(vec![
        vec![say("554 5.7.1 no service for you")],
        quit(),
    ]))
    .await;
    let err = Connection::open(peer.addr, &settings())
        .await
        .err()
        .unwrap();
    let ConnError::Permanent(info) = err else {
        panic!("{err:?}")
    };
    assert_eq!((info.code, info.stage), (554, Stage::Greeting));
    assert_eq!(info.diagnostic_code(), "smtp; 554 5.7.1 no service for you");
    // the script's QUIT step checks that the refused dialogue ends properly
    peer.finish().await;
}

#[tokio::test]
async fn helo_when_ehlo_is_not_understood() {
    let peer = Peer::start(script(vec![
        start(),
        vec![
            say("502 command not implemented"),
            expect("HELO out.example.test"),
            say("250 hello"),
            expect("MAIL FROM:<sender@out.example.test>"),
            say("250 ok"),
            expect("RCPT TO:<a@dest.example>"),
            say("250 ok"),
            expect("DATA"),
            say("354 go"),
            Step::Data,
            say("250 ok"),
        ],
        quit(),
    ]))
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    assert!(!conn.capabilities().extended);
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    peer.finish().await;
}

/// A STARTTLS dialogue up to the second EHLO's reply, then one delivery.
fn starttls_script(after_tls_ehlo: Step, extra: Vec<Step>) -> Vec<Step> {
    script(vec![
        start(),
        vec![
            ehlo(&["PIPELINING", "STARTTLS"]),
            expect("STARTTLS"),
            say("220 2.0.0 go ahead"),
            Step::Tls,
            expect("EHLO out.example.test"),
            after_tls_ehlo,
        ],
        extra,
    ])
}

fn one_delivery() -> Vec<Step> {
    script(vec![
        vec![
            pipelined(&["MAIL FROM:", "RCPT TO:<a@", "DATA"]),
            say("250 ok"),
            say("250 ok"),
            say("354 go"),
            Step::Data,
            say("250 ok"),
        ],
        quit(),
    ])
}

#[tokio::test]
async fn starttls_with_self_signed_certificate_is_opportunistic() {
    let (acceptor, _) = tls_acceptor(MX);
    let peer = Peer::start_tls(
        starttls_script(ehlo(&["PIPELINING"]), one_delivery()),
        acceptor,
    )
    .await;
    let mut conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let tls = conn.tls().cloned().expect("TLS is up");
    assert!(!tls.verified);
    assert!(tls.verify_error.is_some());
    assert!(tls.version.starts_with("TLSv1."), "{}", tls.version);
    assert!(!tls.cipher.is_empty());
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"secret\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    let t = peer.finish().await;
    assert_eq!(t.bodies, vec![b"secret\r\n".to_vec()]);
}

#[tokio::test]
async fn require_verified_refuses_a_self_signed_certificate() {
    let (acceptor, _) = tls_acceptor(MX);
    let peer = Peer::start_tls(
        script(vec![
            start(),
            vec![
                ehlo(&["STARTTLS"]),
                expect("STARTTLS"),
                say("220 go ahead"),
                Step::Tls,
            ],
        ]),
        acceptor,
    )
    .await;
    let s = ClientSettings {
        tls: TlsPolicy::RequireVerified,
        ..settings()
    };
    let err = Connection::open(peer.addr, &s).await.err().unwrap();
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("TLS handshake")),
        "{err:?}"
    );
    // the peer's handshake fails too; its result does not matter
    drop(peer);
}

#[tokio::test]
async fn require_verified_with_the_certificate_as_trust_anchor() {
    let (acceptor, cert) = tls_acceptor(MX);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let peer = Peer::start_tls(
        starttls_script(ehlo(&["PIPELINING"]), one_delivery()),
        acceptor,
    )
    .await;
    let s = ClientSettings {
        tls: TlsPolicy::RequireVerified,
        roots: Arc::new(roots),
        ..settings()
    };
    let mut conn = Connection::open(peer.addr, &s).await.unwrap();
    let tls = conn.tls().cloned().unwrap();
    assert!(tls.verified, "{tls:?}");
    assert_eq!(tls.verify_error, None);
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    peer.finish().await;
}

#[tokio::test]
async fn wrong_name_does_not_verify() {
    let (acceptor, cert) = tls_acceptor("other.example");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let peer = Peer::start_tls(starttls_script(ehlo(&["PIPELINING"]), quit()), acceptor).await;
    let s = ClientSettings {
        roots: Arc::new(roots),
        ..settings()
    };
    let conn = Connection::open(peer.addr, &s).await.unwrap();
    let tls = conn.tls().cloned().unwrap();
    assert!(!tls.verified);
    assert!(
        tls.verify_error
            .as_deref()
            .unwrap_or("")
            .contains("not valid for name"),
        "{tls:?}"
    );
    conn.quit().await;
    peer.finish().await;
}

#[tokio::test]
async fn bytes_after_the_starttls_reply_are_refused() {
    // A reply smuggled behind the 220 would be taken as if it came over TLS.
    let peer = Peer::start(script(vec![
        start(),
        vec![
            ehlo(&["STARTTLS"]),
            expect("STARTTLS"),
            Step::Raw(b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n".to_vec()),
        ],
    ]))
    .await;
    let err = Connection::open(peer.addr, &settings())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("after its reply to STARTTLS")),
        "{err:?}"
    );
    peer.finish().await;
}

#[tokio::test]
async fn require_tls_without_starttls_fails() {
    let peer = Peer::start(script(vec![start(), vec![ehlo(&["PIPELINING"])], quit()])).await;
    let s = ClientSettings {
        tls: TlsPolicy::Require,
        ..settings()
    };
    let err = Connection::open(peer.addr, &s).await.err().unwrap();
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("does not offer STARTTLS")),
        "{err:?}"
    );
    let t = peer.finish().await;
    assert!(t.lines.iter().all(|l| !l.starts_with("MAIL")), "{t:?}");
}

#[test]
fn trust_anchors_from_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec![MX.to_string()]).unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, generated.cert.pem()).unwrap();
    let roots =
        mailc::services::smtp_out::trust_anchors(std::slice::from_ref(&pem), false).unwrap();
    assert_eq!(roots.len(), 1);
    let missing = dir.path().join("missing.pem");
    let err = mailc::services::smtp_out::trust_anchors(&[missing], false).unwrap_err();
    assert!(err.contains("missing.pem"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    assert!(mailc::services::smtp_out::trust_anchors(&[empty], false).is_err());
}

#[tokio::test]
async fn implicit_tls() {
    let (acceptor, cert) = tls_acceptor(MX);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let peer = Peer::start_tls(
        script(vec![
            vec![Step::Tls],
            start(),
            vec![ehlo(&["PIPELINING", "STARTTLS"])],
            one_delivery(),
        ]),
        acceptor,
    )
    .await;
    let s = ClientSettings {
        implicit_tls: true,
        tls: TlsPolicy::RequireVerified,
        roots: Arc::new(roots),
        ..settings()
    };
    let mut conn = Connection::open(peer.addr, &s).await.unwrap();
    assert!(conn.tls().unwrap().verified);
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    let t = peer.finish().await;
    assert!(
        !t.lines.iter().any(|l| l == "STARTTLS"),
        "no STARTTLS inside TLS"
    );
}

#[tokio::test]
async fn auth_plain_over_tls_only() {
    let (acceptor, _) = tls_acceptor(MX);
    let peer = Peer::start_tls(
        starttls_script(
            ehlo(&["PIPELINING", "AUTH PLAIN LOGIN"]),
            script(vec![
                // base64("\0relay-user\0relay-pass")
                vec![
                    expect("AUTH PLAIN AHJlbGF5LXVzZXIAcmVsYXktcGFzcw=="),
                    say("235 2.7.0 ok"),
                ],
                one_delivery(),
            ]),
        ),
        acceptor,
    )
    .await;
    let s = ClientSettings {
        auth: Some(("relay-user".into(), "relay-pass".into())),
        ..settings()
    };
    let mut conn = Connection::open(peer.addr, &s).await.unwrap();
    let r = rcpts(&["a@dest.example"]);
    let out = conn.send(&message(&r, b"x\r\n")).await.unwrap();
    assert_eq!(kinds(&out), ["delivered 250 DATA-END"]);
    conn.quit().await;
    let t = peer.finish().await;
    // the plaintext part of the dialogue carried no credentials
    assert_eq!(t.lines[..2], ["EHLO out.example.test", "STARTTLS"]);

    // A server without STARTTLS never sees the password.
    let peer = Peer::start(script(vec![start(), vec![ehlo(&["AUTH PLAIN"])], quit()])).await;
    let err = Connection::open(peer.addr, &s).await.err().unwrap();
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("without TLS")),
        "{err:?}"
    );
    let t = peer.finish().await;
    assert!(
        t.lines
            .iter()
            .chain(&t.after)
            .all(|l| !l.starts_with("AUTH")),
        "{t:?}"
    );
}

#[tokio::test]
async fn auth_login_when_plain_is_missing_and_a_refusal_defers() {
    let (acceptor, _) = tls_acceptor(MX);
    let peer = Peer::start_tls(
        starttls_script(
            ehlo(&["AUTH LOGIN"]),
            script(vec![
                vec![
                    expect("AUTH LOGIN"),
                    say("334 VXNlcm5hbWU6"),
                    expect("cmVsYXktdXNlcg=="),
                    say("334 UGFzc3dvcmQ6"),
                    expect("d3Jvbmc="),
                    say("535 5.7.8 authentication credentials invalid"),
                ],
                quit(),
            ]),
        ),
        acceptor,
    )
    .await;
    let s = ClientSettings {
        auth: Some(("relay-user".into(), "wrong".into())),
        ..settings()
    };
    let err = Connection::open(peer.addr, &s).await.err().unwrap();
    // a wrong password is our configuration error: defer, never bounce
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("535 5.7.8")),
        "{err:?}"
    );
    peer.finish().await;
}

#[tokio::test]
async fn connect_refused_is_temporary() {
    // A port nobody listens on: bind, learn the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = Connection::open(([127, 0, 0, 1], port).into(), &settings())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("connect")),
        "{err:?}"
    );
}

#[tokio::test]
async fn source_address_is_bound() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        use tokio::io::AsyncWriteExt;
        s.write_all(b"554 no\r\n").await.unwrap();
        peer
    });
    let s = ClientSettings {
        source: Some("127.0.0.3".parse().unwrap()),
        ..settings()
    };
    let err = Connection::open(addr, &s).await.err().unwrap();
    assert!(matches!(err, ConnError::Permanent(_)));
    assert_eq!(accept.await.unwrap().ip().to_string(), "127.0.0.3");
}

/// The real server as the receiving MX: STARTTLS with its self-signed
/// certificate (opportunistic), pipelining, delivery into the Maildir.
#[test]
fn delivers_to_a_real_mailc_server() {
    use common::server::{Server, standard_domain};
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let mx = server.addr("smtp");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcomes = rt.block_on(async {
        let s = ClientSettings {
            server_name: "mail.example.test".into(),
            ..settings()
        };
        let mut conn = Connection::open(mx, &s).await.unwrap();
        let tls = conn.tls().cloned().expect("mailc offers STARTTLS");
        assert!(!tls.verified, "self-signed");
        let caps = conn.capabilities().clone();
        assert!(caps.pipelining && caps.eightbitmime && caps.size.is_some(), "{caps:?}");
        let r = rcpts(&["alice@example.test", "nobody@example.test"]);
        let body = b"From: r@remote.example\r\nTo: alice@example.test\r\nSubject: out\r\n\r\n.dot line\r\nbody\r\n";
        let out = conn.send(&message(&r, body)).await.unwrap();
        conn.quit().await;
        out
    });
    assert_eq!(
        kinds(&outcomes),
        ["delivered 250 DATA-END", "failed 550 RCPT"]
    );
    assert_eq!(outcomes[1].info().enhanced.to_string(), "5.1.1");
    let files = server.wait_for_mail("example.test", "alice", 1, Duration::from_secs(10));
    assert_eq!(files.len(), 1);
    let stored = std::fs::read(&files[0]).unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(text.contains("\r\n.dot line\r\nbody\r\n"), "{text}");
}

fn dane_ee(cert: &rustls::pki_types::CertificateDer<'_>) -> Tlsa {
    let spki = mailc::outbound::dane::spki(cert).unwrap();
    Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: ring::digest::digest(&ring::digest::SHA256, &spki)
            .as_ref()
            .to_vec(),
    }
}

fn dane(records: Vec<Tlsa>) -> ClientSettings {
    ClientSettings {
        tls: TlsPolicy::RequireVerified,
        cert_check: CertCheck::Dane {
            records: Arc::new(records),
            names: vec![MX.to_string()],
        },
        ..settings()
    }
}

#[tokio::test]
async fn a_dane_ee_record_authenticates_a_self_signed_certificate_of_any_name() {
    let (acceptor, cert) = tls_acceptor("not-the-mx.example");
    let peer = Peer::start_tls(starttls_script(ehlo(&["PIPELINING"]), quit()), acceptor).await;
    let conn = Connection::open(peer.addr, &dane(vec![dane_ee(&cert)]))
        .await
        .unwrap();
    let tls = conn.tls().cloned().unwrap();
    assert!(tls.verified, "{tls:?}");
    assert_eq!(tls.failure, None);
    conn.quit().await;
    peer.finish().await;
}

#[tokio::test]
async fn a_dane_mismatch_fails_the_handshake_as_tlsa_invalid() {
    let (acceptor, _) = tls_acceptor(MX);
    let (_, other) = tls_acceptor(MX);
    let peer = Peer::start_tls(
        script(vec![
            start(),
            vec![
                ehlo(&["STARTTLS"]),
                expect("STARTTLS"),
                say("220 go ahead"),
                Step::Tls,
            ],
        ]),
        acceptor,
    )
    .await;
    let (err, failure, local) = Connection::open_reporting(peer.addr, &dane(vec![dane_ee(&other)]))
        .await
        .err()
        .unwrap();
    // Our end of the failed connection, for TLS-RPT's sending-mta-ip.
    assert_eq!(local.map(|a| a.ip()), Some(peer.addr.ip()));
    assert!(
        matches!(&err, ConnError::Temporary(t) if t.contains("no TLSA record matches")),
        "{err:?}"
    );
    assert_eq!(failure.map(|f| f.0), Some(FailureType::TlsaInvalid));
    drop(peer);
}

#[tokio::test]
async fn required_tls_without_starttls_is_starttls_not_supported() {
    let peer = Peer::start(script(vec![start(), vec![ehlo(&["PIPELINING"])], quit()])).await;
    let (err, failure, local) = Connection::open_reporting(peer.addr, &dane(vec![]))
        .await
        .err()
        .unwrap();
    assert!(local.is_some_and(|a| a.ip().is_loopback()), "{local:?}");
    assert!(matches!(err, ConnError::Temporary(_)), "{err:?}");
    assert_eq!(
        failure.map(|f| f.0),
        Some(FailureType::StarttlsNotSupported)
    );
    peer.finish().await;
}

#[tokio::test]
async fn opportunistic_tls_records_why_the_certificate_did_not_verify() {
    let (acceptor, _) = tls_acceptor("other.example");
    let peer = Peer::start_tls(starttls_script(ehlo(&["PIPELINING"]), quit()), acceptor).await;
    let conn = Connection::open(peer.addr, &settings()).await.unwrap();
    let tls = conn.tls().cloned().unwrap();
    assert!(!tls.verified);
    // No trust anchors: the self-signed certificate is not trusted.
    assert_eq!(
        tls.failure.map(|f| f.0),
        Some(FailureType::CertificateNotTrusted)
    );
    conn.quit().await;
    peer.finish().await;
}
