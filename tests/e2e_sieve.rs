//! Sieve at delivery, end to end: the real `mailc serve`, mail sent to the
//! MX over SMTP, the admin's `before` script and a user's script activated
//! in the ManageSieve store; what lands in which Maildir folder with which
//! flags, redirects between two local mailboxes (and a loop between them
//! that ends), the vacation reply queued once per sender and still once
//! after a restart; `mailc check` pointing into a broken script;
//! `mailc explain ADDRESS --message` as a dry run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Raw, Server, standard_domain};

fn scripts_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn send(server: &Server, from: &str, to: &str, head: &str, subject: &str) {
    let mut c = Raw::connect(server.addr("smtp"));
    assert_eq!(c.reply().unwrap().0, 220);
    assert_eq!(c.cmd("EHLO client.remote.example").unwrap().0, 250);
    let body = format!(
        "{head}From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{}@remote.example>\r\n\r\nHello.\r\n",
        subject.replace(' ', ".")
    );
    assert_eq!(c.send_mail(from, &[to], &body).unwrap(), 250, "{subject}");
    let _ = c.cmd("QUIT");
}

fn folder_files(server: &Server, local: &str, folder: &str) -> Vec<String> {
    let base = server
        .state()
        .join("mail/example.test")
        .join(local)
        .join(folder);
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(base.join(sub)) {
            out.extend(
                rd.flatten()
                    .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy())),
            );
        }
    }
    out.sort();
    out
}

fn wait_files(server: &Server, local: &str, folder: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let f = folder_files(server, local, folder);
        if f.len() >= n || Instant::now() > deadline {
            return f;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Queue entries from the null sender (vacation replies) to `to`.
fn replies_to(server: &Server, to: &str) -> usize {
    server
        .queue_entries()
        .iter()
        .filter(|e| {
            e["sender"] == ""
                && e["recipients"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["address"] == to))
        })
        .count()
}

fn wait_replies(server: &Server, to: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let k = replies_to(server, to);
        if k >= n || Instant::now() > deadline {
            return k;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn admin_and_user_scripts_file_flag_and_answer_once() {
    let dir = scripts_dir();
    let before = write(
        dir.path(),
        "lists.sieve",
        "require [\"fileinto\", \"imap4flags\", \"mailbox\"];\n\
         if header :contains \"subject\" \"[rust]\" {\n  fileinto :create :flags \"\\\\Seen\" \"Lists/rust\";\n}\n",
    );
    let body = format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}sieve {{\n    before \"{}\"\n}}\n",
        standard_domain(),
        before.display()
    );
    let mut server = Server::start(&body);
    // alice's own script, as ManageSieve stores it.
    let store =
        mailc::store::sieve::ScriptStore::for_mailbox(&server.state(), "alice@example.test");
    store
        .put(
            "away",
            b"require \"vacation\";\nvacation :days 3 :subject \"Away until Monday\" \"I read mail on Monday.\";\n",
        )
        .unwrap();
    assert!(store.set_active(Some("away")).unwrap());

    send(
        &server,
        "dev@remote.example",
        "alice@example.test",
        "",
        "[rust] release notes",
    );
    let lists = wait_files(&server, "alice", ".Lists.rust", 1);
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert!(
        lists[0].starts_with("cur/") && lists[0].ends_with(":2,S"),
        "{lists:?}"
    );
    // The list message ended the scripts: no vacation reply for it.
    send(
        &server,
        "friend@remote.example",
        "alice@example.test",
        "",
        "lunch",
    );
    assert_eq!(wait_files(&server, "alice", "", 1).len(), 1);
    assert_eq!(wait_replies(&server, "friend@remote.example", 1), 1);
    assert_eq!(replies_to(&server, "dev@remote.example"), 0);
    // Once per sender and period, also after a restart.
    send(
        &server,
        "friend@remote.example",
        "alice@example.test",
        "",
        "lunch again",
    );
    assert_eq!(wait_files(&server, "alice", "", 2).len(), 2);
    server.stop();
    server.spawn();
    send(
        &server,
        "friend@remote.example",
        "alice@example.test",
        "",
        "lunch once more",
    );
    assert_eq!(wait_files(&server, "alice", "", 3).len(), 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(replies_to(&server, "friend@remote.example"), 1);
    // Never to mailing lists or automatic mail.
    send(
        &server,
        "robot@remote.example",
        "alice@example.test",
        "Auto-Submitted: auto-generated\r\n",
        "report",
    );
    assert_eq!(wait_files(&server, "alice", "", 4).len(), 4);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(replies_to(&server, "robot@remote.example"), 0);
}

#[test]
fn redirects_between_mailboxes_end_when_they_loop() {
    let dir = scripts_dir();
    let domain = format!(
        "domain \"example.test\" {{\n    mailbox \"alice\" sieve=\"{}\"\n    mailbox \"bob\" sieve=\"{}\"\n    mailbox \"carol\" sieve=\"{}\"\n}}\n",
        write(dir.path(), "alice.sieve", "redirect \"bob@example.test\";").display(),
        write(
            dir.path(),
            "bob.sieve",
            "if header :contains \"subject\" \"loop\" { redirect \"alice@example.test\"; }"
        )
        .display(),
        write(
            dir.path(),
            "carol.sieve",
            "require \"copy\"; redirect :copy \"bob@example.test\";"
        )
        .display(),
    );
    let server = Server::start(&format!("listen \"smtp\" \"127.0.0.1:0\"\n{domain}"));
    send(
        &server,
        "x@remote.example",
        "alice@example.test",
        "",
        "hello",
    );
    let bob = wait_files(&server, "bob", "", 1);
    assert_eq!(bob.len(), 1);
    assert!(
        folder_files(&server, "alice", "").is_empty(),
        "alice's copy was redirected"
    );
    let text = std::fs::read_to_string(server.state().join("mail/example.test/bob").join(&bob[0]))
        .unwrap();
    assert!(
        text.contains("Delivered-To: alice@example.test\r\n"),
        "{text}"
    );
    // :copy keeps carol's copy too.
    send(
        &server,
        "x@remote.example",
        "carol@example.test",
        "",
        "copy",
    );
    assert_eq!(wait_files(&server, "carol", "", 1).len(), 1);
    assert_eq!(wait_files(&server, "bob", "", 2).len(), 2);
    // alice → bob → alice: the second time alice sees it, it is kept.
    send(
        &server,
        "x@remote.example",
        "alice@example.test",
        "",
        "loop",
    );
    assert_eq!(wait_files(&server, "alice", "", 1).len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(folder_files(&server, "alice", "").len(), 1);
    assert_eq!(
        folder_files(&server, "bob", "").len(),
        2,
        "bob redirected it on"
    );
    assert_eq!(server.count_log("mail loop"), 1);
}

#[test]
fn check_points_into_a_broken_script_and_explain_dry_runs() {
    let dir = scripts_dir();
    let broken = write(
        dir.path(),
        "broken.sieve",
        "require \"fileinto\";\n\nif header :contains \"subject\" \"x\" {\n  fileinto \"A\"\n}\n",
    );
    let config = write(
        dir.path(),
        "mailc.kdl",
        &format!(
            "hostname \"mail.example.test\"\nstate \"{}\"\ntls self-signed=#true\nlisten \"smtp\" \"127.0.0.1:2525\"\ndomain \"example.test\" {{\n    mailbox \"alice\"\n}}\nsieve {{\n    before \"broken.sieve\"\n}}\n",
            dir.path().join("state").display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(["check", "--offline"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("mailc::sieve::syntax"), "{text}");
    assert!(
        text.contains(&format!("{}:5:1", broken.display())),
        "the error at line 5: {text}"
    );

    // Fixed, the same config explains a message for alice.
    std::fs::write(
        &broken,
        "require [\"fileinto\", \"imap4flags\", \"vacation\"];\nif header :contains \"subject\" \"invoice\" {\n  addflag \"\\\\Flagged\";\n  fileinto \"Bills\";\n}\nvacation \"Away.\";\n",
    )
    .unwrap();
    let msg = write(
        dir.path(),
        "m.eml",
        "From: shop@remote.example\nTo: alice@example.test\nSubject: your invoice\n\nPay.\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(["explain", "--offline"])
        .arg(&config)
        .arg("alice@example.test")
        .arg("--message")
        .arg(&msg)
        .args(["--mail-from", "shop@remote.example"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "store      Bills (does not exist, no :create: INBOX instead)  flags \\Flagged"
        ),
        "{text}"
    );
    assert!(
        text.contains("vacation   reply from <> to shop@remote.example:"),
        "{text}"
    );
    assert!(text.contains("| Auto-Submitted: auto-replied"), "{text}");
    assert!(
        !dir.path().join("state/mail").exists(),
        "a dry run writes nothing"
    );
}

#[test]
fn a_reject_for_one_recipient_is_a_550_at_the_end_of_data() {
    let dir = scripts_dir();
    let domain = format!(
        "domain \"example.test\" {{\n    mailbox \"alice\" sieve=\"{}\"\n    mailbox \"bob\"\n}}\n",
        write(
            dir.path(),
            "alice.sieve",
            "require \"reject\";\nif header :contains \"subject\" \"offer\" { reject \"I do not want offers.\"; }\n"
        )
        .display(),
    );
    let server = Server::start(&format!("listen \"smtp\" \"127.0.0.1:0\"\n{domain}"));
    let mut c = Raw::connect(server.addr("smtp"));
    assert_eq!(c.reply().unwrap().0, 220);
    assert_eq!(c.cmd("EHLO client.remote.example").unwrap().0, 250);
    assert_eq!(c.cmd("MAIL FROM:<shop@remote.example>").unwrap().0, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").unwrap().0, 250);
    assert_eq!(c.cmd("DATA").unwrap().0, 354);
    c.send(b"Subject: a great offer\r\n\r\nBuy.\r\n.\r\n")
        .unwrap();
    let (code, text) = c.reply().unwrap();
    assert_eq!(code, 550, "{text}");
    assert!(
        text.contains("5.7.1") && text.contains("I do not want offers."),
        "{text}"
    );
    assert!(server.queue_entries().is_empty(), "nothing was queued");
    // Another message in the same session is delivered.
    assert_eq!(
        c.send_mail(
            "shop@remote.example",
            &["alice@example.test"],
            "Subject: invoice\r\n\r\nPay.\r\n"
        )
        .unwrap(),
        250
    );
    assert_eq!(wait_files(&server, "alice", "", 1).len(), 1);
    // With two recipients the rejection is a DSN, and bob gets his copy.
    assert_eq!(
        c.send_mail(
            "shop@remote.example",
            &["alice@example.test", "bob@example.test"],
            "Subject: offer for two\r\n\r\nBuy.\r\n"
        )
        .unwrap(),
        250
    );
    assert_eq!(wait_files(&server, "bob", "", 1).len(), 1);
    assert_eq!(folder_files(&server, "alice", "").len(), 1);
}
