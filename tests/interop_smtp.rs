//! Interop with real SMTP clients: Python's smtplib and swaks against the
//! real `mailc serve`. These need the tools installed, so they are ignored
//! in a plain `cargo test`; `.ci/run` installs the tools and runs them with
//! `--ignored`, where a missing tool is a failure, never a skip.

mod common;

use std::time::{Duration, Instant};

use common::server::{Server, standard_domain};

fn start() -> Server {
    Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"submission\" \"127.0.0.1:0\"\nlisten \"submissions\" \"127.0.0.1:0\"\ninbound {{\n    checks #false\n    max-message-size \"64KiB\"\n}}\nsubmission {{\n    max-message-size \"64KiB\"\n}}\n{}",
        standard_domain()
    ))
}

/// How long delivery may take after the client saw its 250.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

fn mail_containing(server: &Server, local: &str, needle: &str) -> Vec<String> {
    server
        .maildir_files("example.test", local)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .filter(|t| t.contains(needle))
        .collect()
}

#[test]
#[ignore = "needs python3; run by .ci/run"]
fn python_smtplib() {
    let server = start();
    let out = common::tool("python3")
        .arg(common::root().join("tests/interop/smtplib_client.py"))
        .arg(server.addr("smtp").port().to_string())
        .arg(server.addr("submission").port().to_string())
        .arg(server.addr("submissions").port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smtplib checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count() >= 14,
        "{stdout}"
    );
    wait_delivered(
        &server,
        &[
            ("alice", "smtplib mx"),
            ("bob", "smtplib mx"),
            ("bob", "smtplib 587"),
            ("alice", "smtplib 465"),
        ],
    );
    assert_eq!(mail_containing(&server, "alice", "smtplib mx").len(), 1);
    assert_eq!(mail_containing(&server, "bob", "smtplib mx").len(), 1);
    assert_eq!(mail_containing(&server, "bob", "smtplib 587").len(), 1);
    let from_465 = mail_containing(&server, "alice", "smtplib 465");
    assert_eq!(from_465.len(), 1);
    assert!(from_465[0].contains("with ESMTPSA"));
    assert!(mail_containing(&server, "alice", "forged").is_empty());
}

/// Waits until every (mailbox, needle) pair has a message: delivery runs
/// after the 250, so a client that returned is not yet a delivered message.
fn wait_delivered(server: &Server, expected: &[(&str, &str)]) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while !expected
        .iter()
        .all(|(local, needle)| !mail_containing(server, local, needle).is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "not delivered within {DELIVERY_DEADLINE:?}: {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn swaks(server: &Server, args: &[&str]) -> (bool, String) {
    let out = common::tool("swaks")
        .args(["--timeout", "30", "--helo", "swaks.example"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = server;
    (out.status.success(), text)
}

#[test]
#[ignore = "needs swaks; run by .ci/run"]
fn swaks_clients() {
    let server = start();
    let mx = format!("127.0.0.1:{}", server.addr("smtp").port());
    let sub = format!("127.0.0.1:{}", server.addr("submission").port());
    let subs = format!("127.0.0.1:{}", server.addr("submissions").port());

    // MX with STARTTLS.
    let (ok, text) = swaks(
        &server,
        &[
            "--server",
            &mx,
            "--tls",
            "--from",
            "x@remote.example",
            "--to",
            "alice@example.test",
            "--h-Subject",
            "swaks starttls",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("250 2.0.0 queued as"), "{text}");

    // Pipelining.
    let (ok, text) = swaks(
        &server,
        &[
            "--server",
            &mx,
            "--pipeline",
            "--from",
            "x@remote.example",
            "--to",
            "alice@example.test,bob@example.test",
            "--h-Subject",
            "swaks pipelined",
        ],
    );
    assert!(ok, "{text}");

    // Submission 587: AUTH PLAIN and LOGIN, only after STARTTLS.
    for mech in ["PLAIN", "LOGIN"] {
        let subject = format!("swaks 587 {mech}");
        let (ok, text) = swaks(
            &server,
            &[
                "--server",
                &sub,
                "--tls",
                "--auth",
                mech,
                "--auth-user",
                "alice@example.test",
                "--auth-password",
                "secret",
                "--from",
                "alice@example.test",
                "--to",
                "bob@example.test",
                "--h-Subject",
                &subject,
            ],
        );
        assert!(ok, "{mech}: {text}");
    }
    let (ok, text) = swaks(
        &server,
        &[
            "--server",
            &sub,
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            "secret",
            "--from",
            "alice@example.test",
            "--to",
            "bob@example.test",
        ],
    );
    assert!(!ok, "AUTH without TLS must fail: {text}");

    // Submissions 465 (implicit TLS), to a remote address: queued.
    let (ok, text) = swaks(
        &server,
        &[
            "--server",
            &subs,
            "--tls-on-connect",
            "--auth",
            "PLAIN",
            "--auth-user",
            "bob@example.test",
            "--auth-password",
            "secret",
            "--from",
            "bob@example.test",
            "--to",
            "friend@remote.example",
            "--h-Subject",
            "swaks 465",
        ],
    );
    assert!(ok, "{text}");
    // A wrong password.
    let (ok, text) = swaks(
        &server,
        &[
            "--server",
            &subs,
            "--tls-on-connect",
            "--auth",
            "PLAIN",
            "--auth-user",
            "bob@example.test",
            "--auth-password",
            "nope",
            "--from",
            "bob@example.test",
            "--to",
            "alice@example.test",
        ],
    );
    assert!(!ok && text.contains("535"), "{text}");

    // SIZE: a message over the limit is refused.
    let big = format!("Subject: swaks big\r\n\r\n{}", "y".repeat(80 * 1024));
    let (ok, text) = swaks(
        &server,
        &[
            "--server",
            &mx,
            "--from",
            "x@remote.example",
            "--to",
            "alice@example.test",
            "--data",
            &big,
        ],
    );
    assert!(!ok && text.contains("552"), "{text}");

    // Relay attempts: refused.
    for to in [
        "victim@elsewhere.example",
        "victim%elsewhere.example@example.test",
        "@example.test:victim@elsewhere.example",
    ] {
        let (ok, text) = swaks(
            &server,
            &["--server", &mx, "--from", "spam@remote.example", "--to", to],
        );
        assert!(!ok, "relay to {to} accepted: {text}");
    }

    // Smuggling: bare-LF end-of-data variants are not the end of data, and
    // the message is refused. With --no-data-fixup swaks sends the data as
    // given, so each variant carries its own real end-of-data marker.
    for data in [
        "Subject: swaks smuggle lf\n\nfirst\n.\nMAIL FROM:<evil@remote.example>\nRCPT TO:<bob@example.test>\nDATA\nSubject: smuggled\n\nevil\r\n.\r\n",
        "Subject: swaks smuggle crlf-lf\r\n\r\nfirst\r\n.\nMAIL FROM:<evil@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
        "Subject: swaks smuggle cr\r\n\r\nfirst\r.\rMAIL FROM:<evil@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
    ] {
        let (ok, text) = swaks(
            &server,
            &[
                "--server",
                &mx,
                "--no-data-fixup",
                "--from",
                "x@remote.example",
                "--to",
                "alice@example.test",
                "--data",
                data,
            ],
        );
        assert!(
            !ok && text.contains("5.6.11"),
            "smuggling variant not refused: {text}"
        );
    }

    // The refused messages were refused in the SMTP dialogue, so once the
    // accepted ones are delivered nothing else can arrive.
    wait_delivered(
        &server,
        &[
            ("alice", "swaks starttls"),
            ("bob", "swaks pipelined"),
            ("bob", "swaks 587 PLAIN"),
            ("bob", "swaks 587 LOGIN"),
        ],
    );
    assert_eq!(mail_containing(&server, "alice", "swaks starttls").len(), 1);
    assert_eq!(mail_containing(&server, "bob", "swaks pipelined").len(), 1);
    assert_eq!(mail_containing(&server, "bob", "swaks 587 PLAIN").len(), 1);
    assert_eq!(mail_containing(&server, "bob", "swaks 587 LOGIN").len(), 1);
    assert!(
        mail_containing(&server, "bob", "smuggled").is_empty(),
        "a smuggled message was delivered"
    );
    assert!(mail_containing(&server, "alice", "swaks smuggle").is_empty());
    assert!(mail_containing(&server, "alice", "swaks big").is_empty());
    // Local copies leave the queue just after their files appear.
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    let mut queued = server.queue_entries().len();
    while queued > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        queued = server.queue_entries().len();
    }
    assert_eq!(
        queued, 1,
        "the message to friend@remote.example waits in the queue"
    );
}
