//! LMTP behind a real MTA: a private Postfix on 127.0.0.1 hands the mail
//! of `example.test` to mailc's LMTP listener (`virtual_transport =
//! lmtp:inet:127.0.0.1:PORT`), and mail injected into Postfix over SMTP
//! shows what Postfix makes of mailc's answers, recipient by recipient:
//! delivered, bounced (550 5.1.1, the bounce delivered back through
//! mailc), deferred (452 4.2.2, a full mailbox), and an SMTPUTF8 address.
//! A message too big for mailc, sent by a Postfix that ignores the SIZE
//! announcement, gets one 552 per recipient after DATA (RFC 2033 §4.2).
//!
//! `Site::folder` reads any Maildir++ folder of a mailbox, so a delivery-
//! time Sieve check is one more line (`Site::start` takes config nodes).
//!
//! Needs root and Debian's `postfix` (installed by `.ci/run`); run with
//! `cargo test --test interop_lmtp -- --ignored`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::postfix::{Postfix, maildir_files};
use common::server::{Raw, Server};

/// mailc (LMTP only) and a Postfix in front of it.
struct Site {
    mailc: Server,
    postfix: Postfix,
    /// Postfix's smtpd, where the tests inject mail.
    smtp: std::net::SocketAddr,
    /// mailc's LMTP listener.
    lmtp: std::net::SocketAddr,
}

/// The mailboxes: `ok` and `sender` take mail, `full` has a 1 KiB quota
/// (filled by [`Site::fill`]), `jörg` needs SMTPUTF8. No other user exists.
const DOMAIN: &str = "domain \"example.test\" {\n    mailbox \"ok\"\n    mailbox \"sender\"\n    mailbox \"full\" quota=\"1KiB\"\n    mailbox \"jörg\"\n}\n";

impl Site {
    /// mailc with `mailc_extra` config nodes; Postfix with `postfix_extra`
    /// lines in main.cf.
    fn start(mailc_extra: &str, postfix_extra: &str) -> Site {
        let mailc = Server::start(&format!(
            "listen \"lmtp\" \"127.0.0.1:0\"\ninbound {{\n    checks #false\n    max-message-size \"64KiB\"\n}}\n{DOMAIN}{mailc_extra}"
        ));
        let lmtp = mailc.addr("lmtp");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Postfix accepts every recipient of example.test and lets mailc
        // decide over LMTP; the lmtp client's dialogue is logged
        // (debug_peer_list) so the test can read what went over the wire.
        let postfix = Postfix::start(
            "127.0.0.1",
            port,
            &format!(
                "myhostname = relay.example.test\nvirtual_mailbox_domains = example.test\nvirtual_transport = lmtp:inet:{lmtp}\nsmtpd_reject_unlisted_recipient = no\nsmtputf8_enable = yes\nlmtp_data_done_timeout = 20s\ndebug_peer_list = {ip}\n{postfix_extra}",
                ip = lmtp.ip(),
            ),
            &[],
        );
        Site {
            mailc,
            postfix,
            smtp: ([127, 0, 0, 1], port).into(),
            lmtp,
        }
    }

    /// Files of a mailbox's folder (`""` is INBOX, else e.g. `"Lists"`).
    fn folder(&self, local: &str, folder: &str) -> Vec<PathBuf> {
        let mut dir = self.mailc.state().join("mail/example.test").join(local);
        if !folder.is_empty() {
            dir = dir.join(format!(".{folder}"));
        }
        maildir_files(&dir)
    }

    /// Waits until a mailbox's folder holds `n` messages; returns them.
    fn wait_folder(&self, local: &str, folder: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let files = self.folder(local, folder);
            if files.len() >= n {
                return files
                    .iter()
                    .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{local}/{folder}: {} of {n} messages\n--- mailc ---\n{}\n--- postfix ---\n{}",
                files.len(),
                self.mailc.log_text(),
                self.postfix.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Postfix's log line for `rcpt` with `status=`, once there.
    fn status(&self, rcpt: &str) -> String {
        self.postfix
            .wait_log(
                &[&format!("to=<{rcpt}>"), "status="],
                Duration::from_secs(40),
            )
            .unwrap_or_else(|| {
                panic!(
                    "no status for {rcpt}\n--- postfix ---\n{}\n--- mailc ---\n{}",
                    self.postfix.log(),
                    self.mailc.log_text()
                )
            })
    }

    /// Fills `full@` past its quota with one message straight over LMTP.
    fn fill(&self) {
        let mut c = Raw::connect(self.lmtp);
        assert_eq!(c.reply().unwrap().0, 220);
        assert_eq!(c.cmd("LHLO test").unwrap().0, 250);
        let body = format!("Subject: filler\r\n\r\n{}\r\n", "x".repeat(2000));
        assert_eq!(
            c.send_mail("sender@example.test", &["full@example.test"], &body)
                .unwrap(),
            250
        );
        let _ = c.cmd("QUIT");
        self.wait_folder("full", "", 1);
    }

    /// Sends one message to Postfix's smtpd; every command must succeed.
    fn inject(&self, mail_from: &str, to: &[&str], message: &str) {
        let mut c = Raw::connect(self.smtp);
        let expect = |(code, text): (u16, String), want: u16| {
            assert_eq!(code, want, "postfix said {text}");
        };
        expect(c.reply().unwrap(), 220);
        expect(c.cmd("EHLO client.test").unwrap(), 250);
        expect(c.cmd(&format!("MAIL FROM:{mail_from}")).unwrap(), 250);
        for rcpt in to {
            expect(c.cmd(&format!("RCPT TO:<{rcpt}>")).unwrap(), 250);
        }
        expect(c.cmd("DATA").unwrap(), 354);
        c.send(message.as_bytes()).unwrap();
        c.send(b".\r\n").unwrap();
        expect(c.reply().unwrap(), 250);
        let _ = c.cmd("QUIT");
    }
}

fn message(to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Sender <sender@example.test>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.test>\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
}

#[test]
#[ignore = "needs root and Debian's postfix; run by .ci/run"]
fn postfix_gets_a_result_per_recipient() {
    let site = Site::start("", "");

    // mailc's LHLO offers SMTPUTF8 (and PIPELINING, ENHANCEDSTATUSCODES).
    let mut c = Raw::connect(site.lmtp);
    let (code, greeting) = c.reply().unwrap();
    assert_eq!(code, 220);
    assert!(greeting.contains("LMTP"), "{greeting}");
    let (code, lhlo) = c.cmd("LHLO test").unwrap();
    assert_eq!(code, 250);
    for ext in ["SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"] {
        assert!(
            lhlo.lines().any(|l| l.get(4..) == Some(ext)),
            "{ext} in {lhlo}"
        );
    }
    drop(c);

    site.fill();

    // One message, three recipients: one transaction over LMTP.
    site.inject(
        "<sender@example.test>",
        &[
            "ok@example.test",
            "nobody@example.test",
            "full@example.test",
        ],
        &message(
            "ok@example.test, nobody@example.test, full@example.test",
            "three recipients",
            "Hello.",
        ),
    );
    let ok = site.status("ok@example.test");
    assert!(ok.contains("status=sent"), "{ok}");
    assert!(ok.contains("250 2.1.5 <ok@example.test> queued as"), "{ok}");
    let got = site.wait_folder("ok", "", 1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: three recipients"), "{}", got[0]);
    assert!(got[0].contains("with LMTP"), "{}", got[0]);

    // The unknown user: 550 5.1.1 at RCPT, bounced by Postfix.
    let nobody = site.status("nobody@example.test");
    assert!(nobody.contains("status=bounced"), "{nobody}");
    assert!(
        nobody.contains("said: 550 5.1.1 no such user here (in reply to RCPT TO command)"),
        "{nobody}"
    );

    // The full mailbox: mailc says 452 4.2.2 at RCPT; Postfix defers it
    // with that reply and keeps it in its queue.
    let full = site.status("full@example.test");
    assert!(full.contains("status=deferred"), "{full}");
    assert!(
        full.contains("said: 452 4.2.2 mailbox full (in reply to RCPT TO command)"),
        "{full}"
    );
    let queue = site.postfix.queue();
    assert!(queue.contains("452 4.2.2 mailbox full"), "{queue}");
    assert!(queue.contains("full@example.test"), "{queue}");
    assert!(!queue.contains("nobody@example.test"), "{queue}");
    assert_eq!(site.folder("full", "").len(), 1, "only the filler");

    // The three RCPTs went in one LMTP transaction (one MAIL, one DATA).
    let log = site.postfix.log();
    let to_mailc = format!(
        "> {}[{}]:{}: ",
        site.lmtp.ip(),
        site.lmtp.ip(),
        site.lmtp.port()
    );
    let sent: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(&to_mailc).map(|(_, cmd)| cmd))
        .filter(|cmd| !cmd.starts_with("LHLO") && !cmd.starts_with("QUIT"))
        .collect();
    let first = sent
        .iter()
        .position(|c| c.starts_with("MAIL FROM:<sender@example.test>"))
        .unwrap_or_else(|| panic!("no MAIL in {sent:?}"));
    // Postfix sorts the recipients and adds ORCPT.
    let rcpts: Vec<&str> = sent[first + 1..first + 4]
        .iter()
        .map(|c| c.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        rcpts,
        [
            "TO:<full@example.test>",
            "TO:<nobody@example.test>",
            "TO:<ok@example.test>"
        ],
        "{sent:?}"
    );
    assert_eq!(sent[first + 4], "DATA", "{sent:?}");
    // Postfix heard SMTPUTF8 in mailc's LHLO reply too.
    let from_mailc = format!(
        "< {}[{}]:{}: ",
        site.lmtp.ip(),
        site.lmtp.ip(),
        site.lmtp.port()
    );
    assert!(log.contains(&format!("{from_mailc}250-SMTPUTF8")), "{log}");

    // Postfix's bounce for nobody@ comes back to the sender through mailc.
    let bounce = site.wait_folder("sender", "", 1);
    assert_eq!(bounce.len(), 1);
    let b = &bounce[0];
    assert!(b.contains("Return-Path: <>"), "{b}");
    assert!(b.contains("message/delivery-status"), "{b}");
    assert!(
        b.contains("Final-Recipient: rfc822; nobody@example.test"),
        "{b}"
    );
    assert!(b.contains("Status: 5.1.1"), "{b}");
    assert!(
        b.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user here"),
        "{b}"
    );
    assert!(
        !b.contains("Final-Recipient: rfc822; full@example.test"),
        "{b}"
    );
    assert!(
        !b.contains("Final-Recipient: rfc822; ok@example.test"),
        "{b}"
    );

    // An SMTPUTF8 address through Postfix.
    site.inject(
        "<sender@example.test> SMTPUTF8",
        &["jörg@example.test"],
        &message("Jörg <jörg@example.test>", "Grüße", "Grüße aus Köln."),
    );
    let jorg = site.status("jörg@example.test");
    assert!(jorg.contains("status=sent"), "{jorg}");
    let got = site.wait_folder("jörg", "", 1);
    assert!(got[0].contains("Subject: Grüße"), "{}", got[0]);
    assert!(got[0].contains("Grüße aus Köln."), "{}", got[0]);
    // Postfix sent the UTF-8 address as it is, with SMTPUTF8 on MAIL.
    let log = site.postfix.log();
    let sent = |what: &[&str]| {
        log.lines()
            .any(|l| l.contains(&to_mailc) && what.iter().all(|w| l.contains(w)))
    };
    assert!(
        sent(&["MAIL FROM:<sender@example.test>", " SMTPUTF8"]),
        "{log}"
    );
    assert!(sent(&["RCPT TO:<jörg@example.test>"]), "{log}");
}

#[test]
#[ignore = "needs root and Debian's postfix; run by .ci/run"]
fn too_big_after_data_is_refused_for_each_recipient() {
    // Postfix ignores mailc's SIZE and sends a message over its 64 KiB
    // limit: mailc answers 552 after the data for each recipient, and
    // Postfix bounces both at once instead of waiting for a second reply.
    let site = Site::start("", "lmtp_discard_lhlo_keywords = size\n");
    let body = format!("{}\r\n", "y".repeat(998)).repeat(100);
    site.inject(
        "<>",
        &["ok@example.test", "sender@example.test"],
        &message("ok@example.test", "too big", &body),
    );
    for rcpt in ["ok@example.test", "sender@example.test"] {
        let line = site.status(rcpt);
        assert!(line.contains("status=bounced"), "{line}");
        assert!(
            line.contains("said: 552 5.3.4 message too big (in reply to end of DATA command)"),
            "{line}"
        );
    }
    assert!(site.folder("ok", "").is_empty());
}

#[test]
#[ignore = "needs root and Debian's postfix; run by .ci/run"]
fn sieve_files_mail_that_came_through_postfix() {
    // The admin's script runs at delivery of what Postfix handed over.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("before.sieve");
    std::fs::write(
        &script,
        "require [\"fileinto\", \"mailbox\", \"envelope\"];\nif allof (header :contains \"List-Id\" \"rust.example\", envelope :domain :is \"from\" \"lists.example\") {\n  fileinto :create \"Lists\";\n}\n",
    )
    .unwrap();
    let site = Site::start(
        &format!("sieve {{\n    before \"{}\"\n}}\n", script.display()),
        "",
    );
    site.inject(
        "<bounces@lists.example>",
        &["ok@example.test", "sender@example.test"],
        &format!(
            "List-Id: <users.rust.example>\r\n{}",
            message("users@rust.example", "list mail", "Hello, list.")
        ),
    );
    for rcpt in ["ok@example.test", "sender@example.test"] {
        assert!(site.status(rcpt).contains("status=sent"));
    }
    for local in ["ok", "sender"] {
        let got = site.wait_folder(local, "Lists", 1);
        assert!(got[0].contains("Subject: list mail"), "{}", got[0]);
        assert!(site.folder(local, "").is_empty(), "{local}: not in INBOX");
    }
}
