//! `mailc deliver` as Postfix's `mailbox_command`: a private Postfix takes
//! mail for `local.test` over SMTP and its local(8) runs `mailc deliver -f
//! "$SENDER" -d "${EXTENSION:-$USER}@example.test"` as the recipient's
//! Unix user (`nobody`). mailc's Sieve files one message into a folder with a flag,
//! rejects another (Postfix bounces it with mailc's reason, from exit 77),
//! and a mailbox over quota makes Postfix defer (exit 75). No mailc
//! server runs.
//!
//! Needs root and Debian's `postfix` (installed by `.ci/run`); run with
//! `cargo test --test interop_mda -- --ignored`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::postfix::{Postfix, maildir_files};
use common::server::Raw;

const NOBODY: u32 = 65534;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chown_r(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_r(&e.path());
        }
    }
}

fn send(port: u16, to: &str, subject: &str) {
    let mut c = Raw::connect(([127, 0, 0, 1], port).into());
    assert_eq!(c.reply().unwrap().0, 220);
    assert_eq!(c.cmd("EHLO client.example.net").unwrap().0, 250);
    let body =
        format!("From: <dev@example.net>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello.\r\n");
    assert_eq!(
        c.send_mail("dev@example.net", &[to], &body).unwrap(),
        250,
        "{subject}"
    );
    let _ = c.cmd("QUIT");
}

#[test]
#[ignore = "needs root and Debian's postfix; run by .ci/run"]
fn postfix_mailbox_command_runs_mailc_deliver() {
    // The site mailc deliver works on, owned by the user it runs as.
    let site = tempfile::Builder::new()
        .prefix("mailc-mda-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let s = site.path();
    std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = s.join("mailc");
    std::fs::copy(env!("CARGO_BIN_EXE_mailc"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        s.join("nobody.sieve"),
        "require [\"fileinto\", \"mailbox\", \"imap4flags\", \"reject\"];\n\
         if header :contains \"subject\" \"[ci]\" { fileinto :create :flags \"\\\\Flagged\" \"CI\"; }\n\
         elsif header :contains \"subject\" \"offer\" { reject \"No offers, thank you.\"; }\n",
    )
    .unwrap();
    let config = s.join("mailc.kdl");
    std::fs::write(
        &config,
        format!(
            "hostname \"mail.example.test\"\nstate \"{}\"\ntls self-signed=#true\nlisten \"smtp\" \"127.0.0.1:2525\"\n\
             domain \"example.test\" {{\n    mailbox \"nobody\" sieve=\"nobody.sieve\"\n    mailbox \"full\" quota=\"1KiB\"\n}}\n",
            s.join("state").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(s.join("state")).unwrap();
    chown_r(s);
    std::fs::set_permissions(s.join("state"), std::fs::Permissions::from_mode(0o700)).unwrap();

    let port = free_port();
    let postfix = Postfix::start(
        "127.0.0.1",
        port,
        &format!(
            "myhostname = mx.local.test\nmydestination = local.test\nalias_maps =\nalias_database =\n\
             local_recipient_maps = unix:passwd.byname\nbiff = no\n\
             mailbox_command = {bin} deliver -C {config} -f \"$SENDER\" -d \"${{EXTENSION:-$USER}}@example.test\"\nrecipient_delimiter = +\n",
            bin = bin.display(),
            config = config.display(),
        ),
        &[],
    );
    let mailbox = s.join("state/mail/example.test/nobody");

    send(port, "nobody@local.test", "[ci] build 42 passed");
    postfix
        .wait_log(
            &["to=<nobody@local.test>", "status=sent"],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("not delivered:\n{}", postfix.log()));
    let ci = maildir_files(&mailbox.join(".CI"));
    assert_eq!(ci.len(), 1, "{}", postfix.log());
    assert!(ci[0].to_string_lossy().ends_with(":2,F"), "{ci:?}");
    let text = std::fs::read_to_string(&ci[0]).unwrap();
    assert!(
        text.starts_with("Return-Path: <dev@example.net>\r\nDelivered-To: nobody@example.test\r\n"),
        "{text}"
    );
    assert!(text.contains("Subject: [ci] build 42 passed\r\n"), "{text}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&ci[0]).unwrap().uid(),
        NOBODY,
        "written as the user"
    );

    // Rejected by Sieve: exit 77, Postfix bounces with mailc's reason.
    send(port, "nobody@local.test", "a special offer");
    let line = postfix
        .wait_log(
            &["to=<nobody@local.test>", "status=bounced"],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("not bounced:\n{}", postfix.log()));
    assert!(line.contains("No offers, thank you."), "{line}");
    assert_eq!(
        maildir_files(&mailbox).len(),
        0,
        "nothing stored for the rejected one"
    );

    // A mailbox over quota: exit 75, Postfix defers and keeps the message.
    std::fs::create_dir_all(s.join("state/mail/example.test/full/new")).unwrap();
    std::fs::write(
        s.join("state/mail/example.test/full/new/old,S=2000"),
        "x".repeat(2000),
    )
    .unwrap();
    chown_r(&s.join("state"));
    // `full` is not a Unix user: the address extension names the mailbox
    // (`-d "${EXTENSION:-$USER}@example.test"`).
    send(port, "nobody+full@local.test", "[ci] to the full one");
    let line = postfix
        .wait_log(
            &["to=<nobody+full@local.test>", "status=deferred"],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("not deferred:\n{}", postfix.log()));
    assert!(line.contains("mailbox full"), "{line}");
    assert!(
        postfix.queue().contains("nobody+full@local.test"),
        "{}",
        postfix.queue()
    );
}
