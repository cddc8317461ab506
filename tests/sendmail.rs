//! `mailc sendmail` end to end: the real binary against a real `mailc
//! serve` (control socket), and without a server (the `queue/incoming/`
//! spool, picked up at the next start). Exit codes are sysexits.h's.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::server::{Server, standard_domain};

fn start() -> Server {
    let s = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    assert!(
        s.wait_log("mailc ready", Duration::from_secs(30)),
        "{}",
        s.log_text()
    );
    s
}

fn sendmail(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailc"))
        .arg("sendmail")
        .arg("-C")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailc sendmail runs");
    // The command may stop reading early (a usage error, a too-big message).
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read(files: &[std::path::PathBuf]) -> String {
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read_to_string(&files[0]).unwrap()
}

fn login() -> String {
    mailc::cli::sendmail::login().0
}

#[test]
fn sendmail_t_delivers_to_local_maildirs_with_a_complete_header() {
    let s = start();
    let o = sendmail(
        &s.config,
        &["-t", "-oi", "-oem", "-odi"],
        "To: Alice <alice@example.test>\nBcc: bob@example.test\nSubject: from cron\n\nhello\n.\nafter the dot\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let alice = read(&s.wait_for_mail("example.test", "alice", 1, Duration::from_secs(10)));
    let bob = read(&s.wait_for_mail("example.test", "bob", 1, Duration::from_secs(10)));
    for m in [&alice, &bob] {
        let me = format!("{}@mail.example.test", login());
        assert!(m.contains(&format!("Return-Path: <{me}>\r\n")), "{m}");
        let from = m.lines().find(|l| l.starts_with("From: ")).unwrap_or("");
        assert!(from.contains(&me), "{m}");
        assert!(m.contains("\r\nDate: "), "{m}");
        assert!(
            m.contains("\r\nMessage-ID: <") && m.contains("@mail.example.test>\r\n"),
            "{m}"
        );
        assert!(
            m.contains("Received: from ") && m.contains("with local"),
            "{m}"
        );
        assert!(!m.contains("Bcc:"), "Bcc must be removed: {m}");
        // -oi: the lone dot is part of the message.
        assert!(m.contains("hello\r\n.\r\nafter the dot\r\n"), "{m}");
    }
    // Both copies are made: the entry leaves the queue (shortly after the
    // second file appears).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut entries = s.queue_entries();
    while !entries.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        entries = s.queue_entries();
    }
    assert!(entries.is_empty(), "{entries:?}");
}

#[test]
fn sender_and_full_name_come_from_f_and_capital_f() {
    let s = start();
    let o = sendmail(
        &s.config,
        &[
            "-f",
            "alice@example.test",
            "-FCron Daemon",
            "bob@example.test",
        ],
        "Subject: no from\n\nbody\n.\nnot sent\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = read(&s.wait_for_mail("example.test", "bob", 1, Duration::from_secs(10)));
    assert!(m.contains("Return-Path: <alice@example.test>\r\n"), "{m}");
    assert!(
        m.contains("From: \"Cron Daemon\" <alice@example.test>\r\n"),
        "{m}"
    );
    // Without -i a line with a single dot ends the message.
    assert!(m.contains("body\r\n") && !m.contains("not sent"), "{m}");
    // A From the message has is kept; a bare user name gets our domain.
    let o = sendmail(
        &s.config,
        &["-i", "-f", "<>", "alice"],
        "From: Robot <robot@example.test>\nSubject: x\n\ny\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = read(&s.wait_for_mail("example.test", "alice", 1, Duration::from_secs(10)));
    assert!(m.contains("Return-Path: <>\r\n"), "{m}");
    assert!(m.contains("From: Robot <robot@example.test>\r\n"), "{m}");
    assert_eq!(m.matches("From: ").count(), 1, "{m}");
}

#[test]
fn without_a_server_the_message_waits_in_incoming_and_is_picked_up_at_start() {
    let mut s = start();
    s.stop();
    let o = sendmail(
        &s.config,
        &["-t"],
        "To: alice@example.test\nSubject: while down\n\nqueued offline\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let incoming = s.state().join("queue/incoming");
    let files: Vec<_> = std::fs::read_dir(&incoming)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".msg"), "{files:?}");
    assert!(s.maildir_files("example.test", "alice").is_empty());
    s.spawn();
    let m = read(&s.wait_for_mail("example.test", "alice", 1, Duration::from_secs(10)));
    assert!(m.contains("queued offline"), "{m}");
    assert!(s.wait_log("picked up messages", Duration::from_secs(5)));
    assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 0);
}

#[test]
fn a_large_message_is_queued_once_and_promptly() {
    let s = start();
    let body: String = (0..4000)
        .map(|i| format!("line {i:05} of a long report\n"))
        .collect();
    let started = std::time::Instant::now();
    let o = sendmail(
        &s.config,
        &["alice@example.test"],
        &format!("Subject: report\n\n{body}"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let m = read(&s.wait_for_mail("example.test", "alice", 1, Duration::from_secs(10)));
    assert!(m.contains("line 03999 of a long report\r\n"), "{}", m.len());
    // Exactly one copy, and nothing fell back to the spool.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.maildir_files("example.test", "alice").len(), 1);
    let incoming = s.state().join("queue/incoming");
    assert_eq!(std::fs::read_dir(&incoming).map_or(0, |d| d.count()), 0);
}

#[test]
fn usage_errors_and_refusals_have_sysexits_codes() {
    let s = start();
    // Bad flags: EX_USAGE, nothing read.
    for bad in [
        &["-Z", "alice@example.test"][..],
        &["--bogus"],
        &["-bs"],
        &["-q"],
    ] {
        let o = sendmail(&s.config, bad, "Subject: x\n\ny\n");
        assert_eq!(o.status.code(), Some(64), "{bad:?}: {}", text(&o));
    }
    // No recipients: EX_USAGE.
    let o = sendmail(&s.config, &[], "Subject: x\n\ny\n");
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("no recipients"), "{}", text(&o));
    let o = sendmail(&s.config, &["-t"], "Subject: no To\n\ny\n");
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    // An unknown local user: EX_NOUSER, and nothing queued.
    let o = sendmail(&s.config, &["nobody@example.test"], "Subject: x\n\ny\n");
    assert_eq!(o.status.code(), Some(67), "{}", text(&o));
    assert!(text(&o).contains("nobody@example.test"), "{}", text(&o));
    assert!(s.queue_entries().is_empty());
    // A config that does not compile: EX_CONFIG.
    let bad = s.path().join("bad.kdl");
    std::fs::write(&bad, "this is not { a config").unwrap();
    let o = sendmail(&bad, &["alice@example.test"], "Subject: x\n\ny\n");
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    // Too big: EX_DATAERR.
    let big = format!("Subject: big\n\n{}\n", "x".repeat(100)).repeat(400_000);
    let o = sendmail(&s.config, &["alice@example.test"], &big);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o));
}
