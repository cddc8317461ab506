//! Interop with real IMAP clients: mbsync (isync) syncing both ways over
//! IMAPS and over STARTTLS, and neomutt reading a message and saving it
//! into another folder. Ignored in a plain `cargo test`; `.ci/run`
//! installs the tools and runs these with `--ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::server::{Raw, Server, standard_domain};

fn start(n: usize) -> Server {
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"imap\" \"127.0.0.1:0\"\nlisten \"imaps\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let mut c = Raw::connect(server.addr("smtp"));
    c.reply().unwrap();
    c.cmd("EHLO t").unwrap();
    for i in 0..n {
        let body = format!(
            "From: x@remote.example\r\nSubject: msg-{i}\r\nMessage-ID: <m{i}@test>\r\n\r\nbody {i}\r\nünïcödé\r\n"
        );
        assert_eq!(
            c.send_mail("x@remote.example", &["alice@example.test"], &body)
                .unwrap(),
            250
        );
    }
    assert_eq!(
        server
            .wait_for_mail("example.test", "alice", n, Duration::from_secs(10))
            .len(),
        n
    );
    server
}

/// The server's self-signed certificate (clients are told to trust it).
fn certificate(server: &Server) -> PathBuf {
    let dir = server.state().join("tls");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.contains("BEGIN CERTIFICATE"))
                .unwrap_or(false)
        })
        .expect("self-signed certificate in state/tls")
}

/// Message contents of a Maildir folder (new and cur), sorted, compared
/// the way mbsync stores them: LF line ends (mbsync converts CRLF for a
/// local Maildir) and without the `X-TUID` header it adds while uploading.
fn contents(folder: &Path) -> Vec<String> {
    let mut out: Vec<String> = ["new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(folder.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| {
            let text = String::from_utf8(std::fs::read(e.path()).unwrap()).unwrap();
            text.replace("\r\n", "\n")
                .lines()
                .filter(|l| !l.starts_with("X-TUID: "))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        })
        .collect();
    out.sort();
    out
}

fn file_names(folder: &Path) -> Vec<String> {
    ["new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(folder.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn mbsync(server: &Server, kind: &str, tls: &str, local: &Path) {
    let config = local.with_extension("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount mailc\nHost 127.0.0.1\nPort {}\nUser alice@example.test\nPass secret\nSSLType {tls}\nCertificateFile {}\n\n\
             IMAPStore remote\nAccount mailc\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            server.addr(kind).port(),
            certificate(server).display(),
            local.display(),
            local.display(),
        ),
    )
    .unwrap();
    let out = common::tool("mbsync")
        .arg("-c")
        .arg(&config)
        .arg("-a")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mbsync over {kind} ({tls}) failed:\n{}\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
}

fn sync_both_ways(kind: &str, tls: &str) {
    let server = start(3);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("mail");
    std::fs::create_dir_all(&local).unwrap();
    let remote_inbox = server.state().join("mail/example.test/alice");

    // Down: the server's messages arrive byte for byte.
    mbsync(&server, kind, tls, &local);
    assert_eq!(contents(&local.join("INBOX")), contents(&remote_inbox));
    assert_eq!(contents(&local.join("INBOX")).len(), 3);
    // The special-use folders came along.
    for f in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(local.join(f).join("cur").is_dir(), "{f} synced");
    }

    // Up: a message written locally into Sent, and \Seen set on one in INBOX.
    let sent = b"From: alice@example.test\r\nSubject: sent locally\r\n\r\nhi\r\n";
    std::fs::write(local.join("Sent/new/1.local.host"), sent).unwrap();
    let cur = local.join("INBOX/cur");
    let first = ["new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(local.join("INBOX").join(d))
                .unwrap()
                .flatten()
        })
        .next()
        .expect("a synced message")
        .path();
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let flagged = if name.contains(":2,") {
        format!("{name}S")
    } else {
        format!("{name}:2,S")
    };
    std::fs::rename(&first, cur.join(flagged)).unwrap();
    mbsync(&server, kind, tls, &local);
    let remote_sent = remote_inbox.join(".Sent");
    assert_eq!(
        contents(&remote_sent),
        vec![
            String::from_utf8(sent.to_vec())
                .unwrap()
                .replace("\r\n", "\n")
        ]
    );
    let seen = file_names(&remote_inbox)
        .iter()
        .filter(|n| n.split_once(":2,").is_some_and(|(_, f)| f.contains('S')))
        .count();
    assert_eq!(seen, 1, "\\Seen went up: {:?}", file_names(&remote_inbox));

    // A third run changes nothing.
    mbsync(&server, kind, tls, &local);
    assert_eq!(contents(&local.join("INBOX")), contents(&remote_inbox));
}

#[test]
#[ignore = "needs isync (mbsync); run by .ci/run"]
fn mbsync_over_imaps() {
    sync_both_ways("imaps", "IMAPS");
}

#[test]
#[ignore = "needs isync (mbsync); run by .ci/run"]
fn mbsync_over_starttls() {
    sync_both_ways("imap", "STARTTLS");
}

#[test]
#[ignore = "needs neomutt and script (util-linux); run by .ci/run"]
fn neomutt_reads_and_saves() {
    let server = start(2);
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set imap_user=alice@example.test\nset imap_pass=secret\nset certificate_file={}\n\
             set ssl_verify_host=no\nset folder=imaps://127.0.0.1:{}/\nset spoolfile=+INBOX\n\
             set header_cache=\nset message_cachedir=\nset confirmappend=no\nset delete=yes\n\
             set mark_old=no\nset move=no\nset wait_key=no\nset sort=date\n",
            certificate(&server).display(),
            server.addr("imaps").port()
        ),
    )
    .unwrap();
    // neomutt needs a terminal: `script` gives it one. The pushed keys open
    // the first message (\Seen), save it to Archive (marks it deleted),
    // sync (expunge) and quit.
    let cmd = format!(
        "neomutt -n -F {} -e 'push <display-message><exit><save-message>=Archive<enter><sync-mailbox><quit>'",
        rc.display()
    );
    let mut child = common::tool("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("neomutt did not finish within 60 s\n{}", server.log_text());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let remote = server.state().join("mail/example.test/alice");
    let archive = contents(&remote.join(".Archive"));
    assert_eq!(
        archive.len(),
        1,
        "neomutt saved one message to Archive (status {status}):\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .take(3000)
            .collect::<String>(),
        server.log_text()
    );
    assert!(archive[0].contains("Subject: msg-"));
    assert_eq!(contents(&remote).len(), 1, "the saved message left INBOX");
}
