//! `mailc deliver`, the standalone MDA, as an MTA runs it: the message on
//! standard input, no server running. Sieve files and flags as at the
//! server's delivery, the sysexits codes an MTA acts on (67 unknown user,
//! 75 over quota, 77 rejected with the reason on stderr), an mbox `From `
//! line dropped, and a vacation reply handed to the server's spool.

mod common;

use std::path::{Path, PathBuf};

struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn site(sieve: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bob.sieve"), sieve).unwrap();
    let config = dir.path().join("mailc.kdl");
    std::fs::write(
        &config,
        format!(
            "hostname \"mail.example.test\"\nstate \"{}\"\ntls self-signed=#true\nlisten \"smtp\" \"127.0.0.1:2525\"\n\
             domain \"example.test\" {{\n    mailbox \"bob\" sieve=\"bob.sieve\"\n    mailbox \"tiny\" quota=\"1KiB\"\n    alias \"team\" to=\"bob\"\n}}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    Site { dir, config }
}

fn deliver(site: &Site, args: &[&str], message: &str) -> (i32, String) {
    common::mailc_deliver(&site.config, args, message)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .flat_map(|s| {
            std::fs::read_dir(dir.join(s))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

const SCRIPT: &str = "require [\"fileinto\", \"imap4flags\", \"mailbox\", \"reject\", \"vacation\"];\n\
    if header :contains \"subject\" \"[ci]\" { fileinto :create :flags [\"\\\\Seen\", \"$ci\"] \"CI\"; stop; }\n\
    if header :contains \"subject\" \"spam\" { reject \"no spam here\"; stop; }\n\
    if header :contains \"subject\" \"away\" { vacation :subject \"Out\" \"Back soon.\"; }\n";

#[test]
fn delivers_with_sieve_into_folders_with_flags() {
    let s = site(SCRIPT);
    let (code, err) = deliver(
        &s,
        &["-f", "ci@remote.example", "-d", "bob@example.test"],
        "From ci@remote.example Thu Dec  3 10:00:00 2026\nFrom: ci@remote.example\nTo: bob@example.test\nSubject: [ci] build passed\n\nAll green.\n",
    );
    assert_eq!(code, 0, "{err}");
    let bob = s.dir.path().join("state/mail/example.test/bob");
    let ci = files(&bob.join(".CI"));
    assert_eq!(ci.len(), 1, "{ci:?}");
    let name = ci[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with(":2,S") && name.contains(".mail.example.test,S="),
        "{name}"
    );
    let text = std::fs::read_to_string(&ci[0]).unwrap();
    assert!(
        text.starts_with("Return-Path: <ci@remote.example>\r\nDelivered-To: bob@example.test\r\nFrom: ci@remote.example\r\n"),
        "the mbox From line is not kept: {text}"
    );
    // Through an alias, with no Sieve match: INBOX.
    let (code, err) = deliver(
        &s,
        &["-f", "a@remote.example", "team@example.test"],
        "Subject: hi\n\nx\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(files(&bob).len(), 1);
}

#[test]
fn exit_codes_an_mta_acts_on() {
    let s = site(SCRIPT);
    let (code, err) = deliver(&s, &["-d", "nobody@example.test"], "Subject: x\n\nx\n");
    assert_eq!(code, 67, "EX_NOUSER: {err}");
    assert!(err.contains("no such user"), "{err}");
    let (code, err) = deliver(
        &s,
        &["-f", "s@remote.example", "-d", "bob@example.test"],
        "Subject: buy spam\n\nx\n",
    );
    assert_eq!(code, 77, "EX_NOPERM: {err}");
    assert!(err.contains("no spam here"), "{err}");
    assert!(files(&s.dir.path().join("state/mail/example.test/bob")).is_empty());
    let big = format!("Subject: big\n\n{}\n", "x".repeat(2000));
    let (code, err) = deliver(&s, &["-d", "tiny@example.test"], &big);
    assert_eq!(code, 75, "EX_TEMPFAIL over quota: {err}");
    assert!(err.contains("mailbox full"), "{err}");
    let (code, _) = deliver(&s, &[], "Subject: x\n\nx\n");
    assert_eq!(code, 64, "EX_USAGE without a recipient");
}

#[test]
fn a_vacation_reply_goes_to_the_servers_spool_once() {
    let s = site(SCRIPT);
    for _ in 0..2 {
        let (code, err) = deliver(
            &s,
            &["-f", "friend@remote.example", "-d", "bob@example.test"],
            "From: friend@remote.example\nTo: bob@example.test\nSubject: are you away?\n\nx\n",
        );
        assert_eq!(code, 0, "{err}");
    }
    let incoming = s.dir.path().join("state/queue/incoming");
    let spooled: Vec<PathBuf> = std::fs::read_dir(&incoming)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "msg"))
        .collect();
    assert_eq!(spooled.len(), 1, "one reply for two messages: {spooled:?}");
    let text = String::from_utf8_lossy(&std::fs::read(&spooled[0]).unwrap()).into_owned();
    assert!(
        text.contains("\"sender\":\"\""),
        "from the null sender: {text}"
    );
    assert!(
        text.contains("friend@remote.example") && text.contains("Subject: Out"),
        "{text}"
    );
    assert_eq!(
        files(&s.dir.path().join("state/mail/example.test/bob")).len(),
        2
    );
}
