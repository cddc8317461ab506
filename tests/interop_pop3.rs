//! Interop with real POP3 clients: Python's poplib, fetchmail (STLS and
//! POP3S) and getmail6 (POP3S; it has no STLS). Ignored in a plain `cargo
//! test`; `.ci/run` installs the tools and runs these with `--ignored`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{Raw, Server, standard_domain};

fn start(n: usize) -> (Server, Vec<Vec<u8>>) {
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"pop3\" \"127.0.0.1:0\"\nlisten \"pop3s\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let mut c = Raw::connect(server.addr("smtp"));
    c.reply().unwrap();
    c.cmd("EHLO t").unwrap();
    for i in 0..n {
        let body = format!(
            "Subject: msg-{i}\r\nMessage-ID: <m{i}@test>\r\n\r\nbody {i}\r\n.dot line\r\nünïcödé\r\n"
        );
        assert_eq!(
            c.send_mail("x@remote.example", &["alice@example.test"], &body)
                .unwrap(),
            250
        );
    }
    let files = server.wait_for_mail("example.test", "alice", n, Duration::from_secs(10));
    assert_eq!(files.len(), n);
    let mut stored: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    stored.sort();
    (server, stored)
}

#[test]
#[ignore = "needs python3; run by .ci/run"]
fn python_poplib() {
    let (server, _) = start(5);
    let out = common::tool("python3")
        .arg(common::root().join("tests/interop/poplib_client.py"))
        .arg(server.addr("pop3").port().to_string())
        .arg(server.addr("pop3s").port().to_string())
        .arg("5")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "poplib checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

/// Messages a client saved into a directory, normalised to CRLF.
fn saved(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for sub in ["", "new", "cur"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_file() {
                let data = std::fs::read(e.path()).unwrap();
                let text = data
                    .split(|&b| b == b'\n')
                    .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                    .collect::<Vec<_>>()
                    .join(&b"\r\n"[..]);
                out.push(text);
            }
        }
    }
    out.sort();
    out
}

/// A saved message without the header fields the client itself added
/// (its own `Received:` trace field and the like, which name the client).
fn without_client_fields(msg: &[u8]) -> Vec<u8> {
    let split = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(msg.len(), |i| i + 2);
    let (head, body) = msg.split_at(split);
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some(last) = fields.last_mut() {
                last.extend_from_slice(line);
            }
        } else {
            fields.push(line.to_vec());
        }
    }
    let mut out: Vec<u8> = fields
        .into_iter()
        .filter(|f| {
            let t = String::from_utf8_lossy(f).to_ascii_lowercase();
            !(t.contains("fetchmail") || t.contains("getmail"))
        })
        .flatten()
        .collect();
    out.extend_from_slice(body);
    out
}

/// Every stored message was saved by the client byte for byte (line ends
/// normalised to CRLF, the client's own trace fields left out).
fn assert_same(stored: &[Vec<u8>], got: &[Vec<u8>], who: &str) {
    assert_eq!(
        got.len(),
        stored.len(),
        "{who} saved {} of {} messages",
        got.len(),
        stored.len()
    );
    let mut cleaned: Vec<Vec<u8>> = got.iter().map(|g| without_client_fields(g)).collect();
    cleaned.sort();
    for (s, g) in stored.iter().zip(&cleaned) {
        let s = s.strip_suffix(b"\r\n").unwrap_or(s);
        let g = g.strip_suffix(b"\r\n").unwrap_or(g);
        assert!(
            s == g,
            "{who}: a message was not saved byte for byte:\n--- stored\n{}\n--- saved\n{}",
            String::from_utf8_lossy(s),
            String::from_utf8_lossy(g)
        );
    }
}

#[test]
#[ignore = "needs fetchmail; run by .ci/run"]
fn fetchmail_over_stls_and_pop3s() {
    for (port_kind, ssl) in [("pop3", false), ("pop3s", true)] {
        let (server, stored) = start(6);
        let out_dir = server.path().join(format!("fetched-{port_kind}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let rc = server.path().join("fetchmailrc");
        std::fs::write(
            &rc,
            format!(
                "poll 127.0.0.1 port {} protocol POP3 user \"alice@example.test\" password \"secret\" {} sslproto \"TLS1.2+\" no sslcertck keep\n",
                server.addr(port_kind).port(),
                if ssl { "ssl" } else { "" }
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mda = format!("/bin/sh -c 'cat > {}/$(date +%s%N)-$$'", out_dir.display());
        let out = common::tool("fetchmail")
            .args(["-f"])
            .arg(&rc)
            .args(["--nodetach", "--all", "--mda", &mda, "--pidfile"])
            .arg(server.path().join("fetchmail.pid"))
            .env("FETCHMAILHOME", server.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "fetchmail over {port_kind} failed:\n{text}"
        );
        assert_same(
            &stored,
            &saved(&out_dir),
            &format!("fetchmail over {port_kind}"),
        );
        assert!(
            server.log_text().contains("POP3 session committed"),
            "{}",
            server.log_text()
        );
    }
}

/// Header fields unfolded with runs of white space collapsed, and the body.
fn fields_and_body(msg: &[u8]) -> (Vec<String>, Vec<u8>) {
    let split = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(msg.len(), |i| i + 4);
    let (head, body) = msg.split_at(split);
    let mut fields: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(head).split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else if !line.is_empty() {
            fields.push(line.trim().to_string());
        }
    }
    let fields = fields
        .into_iter()
        .map(|f| f.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (fields, body.to_vec())
}

/// getmail re-serialises header fields (folding, its own Delivered-To and
/// Received), so for it: the body byte for byte, and every stored header
/// field present, unfolded.
fn assert_same_content(stored: &[Vec<u8>], got: &[Vec<u8>], who: &str) {
    assert_eq!(
        got.len(),
        stored.len(),
        "{who} saved {} of {} messages",
        got.len(),
        stored.len()
    );
    for s in stored {
        let (want_fields, want_body) = fields_and_body(s);
        let found = got.iter().any(|g| {
            let (fields, body) = fields_and_body(g);
            body == want_body && want_fields.iter().all(|f| fields.contains(f))
        });
        assert!(
            found,
            "{who}: message not saved intact:\n{}",
            String::from_utf8_lossy(s)
        );
    }
}

#[test]
#[ignore = "needs getmail6; run by .ci/run"]
fn getmail6_over_pop3s() {
    let (server, stored) = start(6);
    let maildir = server.path().join("getmail-maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    // getmail refuses to deliver as root; as root (CI) it switches to the
    // `user` of the destination, which must own the Maildir.
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if as_root {
        let _ = Command::new("chmod").arg("755").arg(server.path()).status();
        let status = Command::new("chown")
            .arg("-R")
            .arg("nobody")
            .arg(&maildir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let rcdir = server.path().join("getmail");
    std::fs::create_dir_all(&rcdir).unwrap();
    std::fs::write(
        rcdir.join("getmailrc"),
        format!(
            "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\nport = {}\nusername = alice@example.test\npassword = secret\n\n[destination]\ntype = Maildir\npath = {}/\n{}\n[options]\nread_all = true\ndelete = true\nverbose = 1\n",
            server.addr("pop3s").port(),
            maildir.display(),
            if as_root { "user = nobody\n" } else { "" }
        ),
    )
    .unwrap();
    let out = common::tool("getmail")
        .arg("--getmaildir")
        .arg(&rcdir)
        .arg("--rcfile")
        .arg("getmailrc")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "getmail failed:\n{text}");
    assert_same_content(&stored, &saved(&maildir), "getmail6");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.maildir_files("example.test", "alice").is_empty(),
        "delete = true removed them on the server"
    );
}

/// fetchmail with `mailc deliver` as its MDA: the messages fetched from
/// one server land, through the second site's Sieve script, in that
/// site's Maildir (no server runs there).
#[test]
#[ignore = "needs fetchmail; run by .ci/run"]
fn fetchmail_with_mailc_deliver_as_mda() {
    let (server, stored) = start(3);
    let site = server.path().join("site");
    std::fs::create_dir_all(site.join("state")).unwrap();
    std::fs::write(
        site.join("bob.sieve"),
        "require [\"fileinto\", \"mailbox\"];\nif header :is \"subject\" \"msg-1\" { fileinto :create \"Fetched\"; }\n",
    )
    .unwrap();
    let config = site.join("mailc.kdl");
    std::fs::write(
        &config,
        format!(
            "hostname \"home.example.test\"\nstate \"{}\"\ntls self-signed=#true\nlisten \"smtp\" \"127.0.0.1:2525\"\ndomain \"example.test\" {{\n    mailbox \"bob\" sieve=\"bob.sieve\"\n}}\n",
            site.join("state").display()
        ),
    )
    .unwrap();
    let rc = server.path().join("fetchmailrc-mda");
    std::fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 port {} protocol POP3 user \"alice@example.test\" password \"secret\" sslproto \"TLS1.2+\" no sslcertck keep\n",
            server.addr("pop3").port()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mda = format!(
        "{} deliver -C {} -f %F -d bob@example.test",
        env!("CARGO_BIN_EXE_mailc"),
        config.display()
    );
    let out = common::tool("fetchmail")
        .args(["-f"])
        .arg(&rc)
        .args(["--nodetach", "--all", "--mda", &mda, "--pidfile"])
        .arg(server.path().join("fetchmail-mda.pid"))
        .env("FETCHMAILHOME", server.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "fetchmail with mailc deliver failed:\n{text}"
    );
    let bob = site.join("state/mail/example.test/bob");
    // Only the messages (new/ and cur/), not the folders' own files.
    let messages = |dir: &std::path::Path| -> Vec<Vec<u8>> {
        ["new", "cur"]
            .iter()
            .flat_map(|s| {
                std::fs::read_dir(dir.join(s))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|e| std::fs::read(e.path()).unwrap())
            .collect()
    };
    let inbox = messages(&bob);
    let fetched = messages(&bob.join(".Fetched"));
    assert_eq!((inbox.len(), fetched.len()), (2, 1), "{text}");
    // What mailc deliver stored is the fetched message under its own two
    // trace fields (and fetchmail's).
    let mut got: Vec<Vec<u8>> = inbox
        .iter()
        .chain(&fetched)
        .map(|m| {
            let t = String::from_utf8_lossy(m);
            assert!(t.starts_with("Return-Path: <"), "{t}");
            assert!(t.contains("Delivered-To: bob@example.test\r\n"), "{t}");
            let rest: String = t.split_inclusive("\r\n").skip(2).collect();
            rest.into_bytes()
        })
        .collect();
    got.sort();
    assert_same(&stored, &got, "fetchmail + mailc deliver");
}
