//! IMAP end to end with the real binary on port 0: Python's imaplib (always
//! present with python3) drives `tests/interop/imaplib_e2e.py` — nested
//! BODYSTRUCTURE, partial and 1 MB byte-exact fetches, SEARCH keys,
//! CONDSTORE/QRESYNC, two sessions, IDLE latency — and a raw TLS client
//! checks the line-level guarantees (huge literal refused, idle session
//! sees a file dropped into `new/` by another program).

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{Server, standard_domain};
use common::tls::{Lines, connect};

fn start() -> Server {
    Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"imap\" \"127.0.0.1:0\"\nlisten \"imaps\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ))
}

#[test]
fn imaplib_end_to_end() {
    let server = start();
    let maildir = server.state().join("mail/example.test/alice");
    let out = Command::new("python3")
        .arg(common::root().join("tests/interop/imaplib_e2e.py"))
        .arg(server.addr("smtp").port().to_string())
        .arg(server.addr("imap").port().to_string())
        .arg(server.addr("imaps").port().to_string())
        .arg(&maildir)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("\nOK"),
        "imaplib e2e failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log_text()
    );
    println!("{stdout}");
}

/// Sends a command and returns its tagged completion line.
fn tagged<S: std::io::Read + std::io::Write>(c: &mut Lines<S>, tag: &str, cmd: &str) -> String {
    c.send(&format!("{tag} {cmd}")).unwrap();
    loop {
        let l = c.line().unwrap();
        if l.starts_with(&format!("{tag} ")) {
            return l;
        }
    }
}

#[test]
fn raw_client_limits_and_foreign_delivery() {
    let server = start();
    let mut c = Lines::new(connect(server.addr("imaps")));
    assert!(c.line().unwrap().starts_with("* OK"));
    assert!(tagged(&mut c, "a1", "LOGIN alice@example.test secret").starts_with("a1 OK"));
    // A literal announcement of 100 GB is refused at once.
    let r = tagged(&mut c, "a2", "APPEND INBOX {100000000000}");
    assert!(r.starts_with("a2 NO [TOOBIG]"), "{r}");
    assert!(tagged(&mut c, "a3", "SELECT INBOX").starts_with("a3 OK"));
    c.send("a4 IDLE").unwrap();
    assert!(c.line().unwrap().starts_with("+ "));
    // Another program drops a message into new/: the idling session is told.
    let maildir = server.state().join("mail/example.test/alice");
    std::fs::write(
        maildir.join("tmp/foreign.1"),
        b"Subject: dropped\r\n\r\nx\r\n",
    )
    .unwrap();
    std::fs::rename(
        maildir.join("tmp/foreign.1"),
        maildir.join("new/1.foreign.host"),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let line = c.line().unwrap();
    assert!(line.contains("EXISTS"), "{line}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    c.send("DONE").unwrap();
    let mut done = c.line().unwrap();
    while !done.starts_with("a4 ") {
        done = c.line().unwrap();
    }
    assert!(done.starts_with("a4 OK"), "{done}");
    // A malformed command is BAD, and the session goes on.
    let r = tagged(&mut c, "a5", "FETCH x y z");
    assert!(r.starts_with("a5 BAD"), "{r}");
    let r = tagged(&mut c, "a6", "NOOP");
    assert_eq!(r, "a6 OK NOOP completed");
}

/// COPY and MOVE of a message another session expunged (not yet announced
/// to this one) copy nothing and say so with `NO [EXPUNGEISSUED]`, as
/// Dovecot 2.3 does; mailc used to answer `OK` without `[COPYUID]`, as if
/// the message had been copied. Once the expunge is announced the same
/// sequence numbers address the messages that are left.
#[test]
fn copy_of_a_message_expunged_elsewhere() {
    let server = start();
    let mut a = Lines::new(connect(server.addr("imaps")));
    let mut b = Lines::new(connect(server.addr("imaps")));
    for (c, t) in [(&mut a, "a"), (&mut b, "b")] {
        assert!(c.line().unwrap().starts_with("* OK"));
        let r = tagged(c, &format!("{t}1"), "LOGIN alice@example.test secret");
        assert!(r.starts_with(&format!("{t}1 OK")), "{r}");
    }
    assert!(tagged(&mut a, "a2", "CREATE dst").starts_with("a2 OK"));
    for (i, tag) in ["a3", "a4", "a5"].iter().enumerate() {
        let msg = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
        let r = tagged(
            &mut a,
            tag,
            &format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()),
        );
        assert!(r.starts_with(&format!("{tag} OK [APPENDUID ")), "{r}");
    }
    assert!(tagged(&mut a, "a6", "SELECT INBOX").starts_with("a6 OK"));
    assert!(tagged(&mut b, "b2", "SELECT INBOX").starts_with("b2 OK"));
    let r = tagged(&mut b, "b3", "STORE 1:2 +FLAGS.SILENT (\\Deleted)");
    assert!(r.starts_with("b3 OK"), "{r}");
    assert!(tagged(&mut b, "b4", "EXPUNGE").starts_with("b4 OK"));
    let r = tagged(&mut a, "a7", "COPY 1 dst");
    assert!(r.starts_with("a7 NO [EXPUNGEISSUED]"), "{r}");
    let r = tagged(&mut a, "a8", "COPY 1:3 dst");
    assert!(r.starts_with("a8 NO [EXPUNGEISSUED]"), "{r}");
    let r = tagged(&mut a, "a9", "MOVE 2 dst");
    assert!(r.starts_with("a9 NO [EXPUNGEISSUED]"), "{r}");
    // The message that is left is copied, with its COPYUID.
    let r = tagged(&mut a, "c1", "COPY 3 dst");
    assert!(r.starts_with("c1 OK [COPYUID "), "{r}");
    // Nothing else was copied; the expunges are announced now.
    let mut lines = Vec::new();
    for cmd in ["c2 STATUS dst (MESSAGES)", "c3 NOOP"] {
        a.send(cmd).unwrap();
        loop {
            let l = a.line().unwrap();
            let done = l.starts_with(&cmd[..3]);
            lines.push(l);
            if done {
                break;
            }
        }
    }
    assert!(
        lines.contains(&"* STATUS dst (MESSAGES 1)".to_string()),
        "{lines:?}"
    );
    let expunged: Vec<&String> = lines.iter().filter(|l| l.ends_with(" EXPUNGE")).collect();
    assert_eq!(expunged, ["* 2 EXPUNGE", "* 1 EXPUNGE"], "{lines:?}");
    let r = tagged(&mut a, "c4", "COPY 1 dst");
    assert!(r.starts_with("c4 OK [COPYUID "), "{r}");
}

/// Sends a command and returns every line up to and with its tagged one.
fn answer<S: std::io::Read + std::io::Write>(
    c: &mut Lines<S>,
    tag: &str,
    cmd: &str,
) -> Vec<String> {
    c.send(&format!("{tag} {cmd}")).unwrap();
    let mut lines = Vec::new();
    loop {
        let l = c.line().unwrap();
        let done = l.starts_with(&format!("{tag} "));
        lines.push(l);
        if done {
            return lines;
        }
    }
}

/// STATUS of the selected mailbox after another session expunged from it
/// and changed flags: the pending EXPUNGE comes before the STATUS line, so
/// the counts never disagree with what the client was told (mailc sent
/// the new counts first and the EXPUNGE after them). Dovecot 2.3 answers
/// from the session's stale view with `[CLIENTBUG]` instead; RFC 9051 says
/// clients should not do this, and either answer is consistent.
#[test]
fn status_of_the_selected_mailbox_after_changes() {
    let server = start();
    let mut a = Lines::new(connect(server.addr("imaps")));
    let mut b = Lines::new(connect(server.addr("imaps")));
    for (c, t) in [(&mut a, "a"), (&mut b, "b")] {
        assert!(c.line().unwrap().starts_with("* OK"));
        let r = tagged(c, &format!("{t}1"), "LOGIN alice@example.test secret");
        assert!(r.starts_with(&format!("{t}1 OK")), "{r}");
    }
    for (i, tag) in ["a2", "a3", "a4"].iter().enumerate() {
        let msg = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
        let r = tagged(
            &mut a,
            tag,
            &format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()),
        );
        assert!(r.starts_with(&format!("{tag} OK")), "{r}");
    }
    let st = answer(&mut a, "a5", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)");
    assert_eq!(
        st[0], "* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UNSEEN 3)",
        "{st:?}"
    );
    assert!(tagged(&mut a, "a6", "SELECT INBOX").starts_with("a6 OK"));
    assert!(tagged(&mut b, "b2", "SELECT INBOX").starts_with("b2 OK"));
    let r = tagged(&mut b, "b3", "STORE 2 +FLAGS.SILENT (\\Deleted)");
    assert!(r.starts_with("b3 OK"), "{r}");
    assert!(tagged(&mut b, "b4", "EXPUNGE").starts_with("b4 OK"));
    let r = tagged(&mut b, "b5", "STORE 1 +FLAGS.SILENT (\\Seen)");
    assert!(r.starts_with("b5 OK"), "{r}");
    let st = answer(&mut a, "a7", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)");
    let expunge = st.iter().position(|l| l == "* 2 EXPUNGE");
    let status = st
        .iter()
        .position(|l| l == "* STATUS INBOX (MESSAGES 2 UIDNEXT 4 UNSEEN 1)");
    assert!(
        expunge.is_some() && status.is_some() && expunge < status,
        "{st:?}"
    );
    assert!(st.last().unwrap().starts_with("a7 OK"), "{st:?}");
    // Nothing is announced twice.
    let noop = answer(&mut a, "a8", "NOOP");
    assert!(!noop.iter().any(|l| l.ends_with("EXPUNGE")), "{noop:?}");
    // EXAMINE after the changes: the counts and the first unseen.
    let ex = answer(&mut a, "a9", "EXAMINE INBOX");
    assert!(ex.contains(&"* 2 EXISTS".to_string()), "{ex:?}");
    assert!(
        ex.contains(&"* OK [UNSEEN 2] First unseen message".to_string()),
        "{ex:?}"
    );
    assert!(
        ex.contains(&"* OK [UIDNEXT 4] Predicted next UID".to_string()),
        "{ex:?}"
    );
    assert!(
        ex.last().unwrap().starts_with("a9 OK [READ-ONLY]"),
        "{ex:?}"
    );
}
