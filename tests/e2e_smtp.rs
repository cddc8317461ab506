//! End to end: the real `mailc serve` binary on port 0, real sockets, real
//! TLS (rustls on both sides), real files. Clients: the `mail-send` crate
//! (an independent SMTP implementation) and a raw socket client for exact
//! wire control.

mod common;

use std::time::Duration;

use common::server::{Raw, Server, standard_domain};

fn listeners_all() -> String {
    "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"submission\" \"127.0.0.1:0\"\nlisten \"submissions\" \"127.0.0.1:0\"\nlisten \"lmtp\" \"127.0.0.1:0\"\n".to_string()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn mail_send_over_starttls_and_implicit_tls_lands_in_maildir() {
    let server = Server::start(&format!("{}{}", listeners_all(), standard_domain()));
    let mx = server.addr("smtp");
    let subs = server.addr("submissions");
    let sub = server.addr("submission");
    rt().block_on(async {
        use mail_send::SmtpClientBuilder;
        use mail_send::mail_builder::MessageBuilder;
        // MX: STARTTLS, no login.
        let msg = MessageBuilder::new()
            .from(("Remote", "someone@remote.example"))
            .to(("Alice", "alice@example.test"))
            .subject("over STARTTLS")
            .text_body("first line\r\n.leading dot\r\nlast line\r\n");
        SmtpClientBuilder::new("127.0.0.1", mx.port())
            .unwrap()
            .implicit_tls(false)
            .allow_invalid_certs()
            .connect()
            .await
            .unwrap()
            .send(msg)
            .await
            .unwrap();
        // Submission 465 with AUTH, to a local and a remote recipient.
        let msg = MessageBuilder::new()
            .from(("Bob", "bob@example.test"))
            .to(vec!["alice@example.test", "friend@remote.example"])
            .subject("submitted")
            .text_body("hello from bob\r\n");
        SmtpClientBuilder::new("127.0.0.1", subs.port())
            .unwrap()
            .implicit_tls(true)
            .allow_invalid_certs()
            .credentials(("bob@example.test", "secret"))
            .connect()
            .await
            .unwrap()
            .send(msg)
            .await
            .unwrap();
        // Submission 587: STARTTLS then AUTH.
        let msg = MessageBuilder::new()
            .from("alice@example.test")
            .to("bob@example.test")
            .subject("via 587")
            .text_body("x\r\n");
        SmtpClientBuilder::new("127.0.0.1", sub.port())
            .unwrap()
            .implicit_tls(false)
            .allow_invalid_certs()
            .credentials(("alice@example.test", "secret"))
            .connect()
            .await
            .unwrap()
            .send(msg)
            .await
            .unwrap();
        // A wrong password is refused.
        let bad = SmtpClientBuilder::new("127.0.0.1", subs.port())
            .unwrap()
            .implicit_tls(true)
            .allow_invalid_certs()
            .credentials(("bob@example.test", "wrong"))
            .connect()
            .await;
        assert!(bad.is_err(), "a wrong password must not log in");
    });
    let files = server.wait_for_mail("example.test", "alice", 2, Duration::from_secs(10));
    assert_eq!(files.len(), 2, "{}", server.log_text());
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let starttls = texts
        .iter()
        .find(|t| t.contains("over STARTTLS"))
        .expect("STARTTLS message delivered");
    assert!(starttls.starts_with("Return-Path: <someone@remote.example>\r\nDelivered-To: alice@example.test\r\nReceived: from "));
    assert!(starttls.contains("with ESMTPS (TLSv1."), "{starttls}");
    assert!(
        starttls.contains("\r\n.leading dot\r\n"),
        "dot-stuffing undone: {starttls}"
    );
    let submitted = texts.iter().find(|t| t.contains("submitted")).unwrap();
    assert!(submitted.contains("with ESMTPSA"), "{submitted}");
    assert_eq!(
        server
            .wait_for_mail("example.test", "bob", 1, Duration::from_secs(10))
            .len(),
        1
    );

    // The remote copy stays queued and is visible with `mailc queue list`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(["queue", "list", "--json"])
        .arg(&server.config)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{json}");
    let id = entries[0]["id"].as_str().unwrap().to_string();
    let pending: Vec<&str> = entries[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"]["state"] == "pending")
        .map(|d| d["destination"]["address"].as_str().unwrap())
        .collect();
    assert_eq!(pending, vec!["friend@remote.example"]);
    // ... and can be removed on the live server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(["queue", "remove"])
        .arg(&server.config)
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.queue_entries().is_empty());
}

#[test]
fn no_open_relay_and_limits_over_a_real_socket() {
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\" max-connections-per-ip=2\ninbound {{\n    checks #false\n    max-message-size \"10KiB\"\n}}\n{}",
        standard_domain()
    ));
    let mx = server.addr("smtp");
    let mut c = Raw::connect(mx);
    assert_eq!(c.reply().unwrap().0, 220);
    assert_eq!(c.cmd("EHLO test").unwrap().0, 250);
    assert_eq!(c.cmd("MAIL FROM:<x@remote.example>").unwrap().0, 250);
    // 127.0.0.1 is not trusted unless the config says so.
    assert_eq!(c.cmd("RCPT TO:<victim@elsewhere.example>").unwrap().0, 554);
    assert_eq!(
        c.cmd("RCPT TO:<victim%elsewhere.example@example.test>")
            .unwrap()
            .0,
        550
    );
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").unwrap().0, 250);
    assert_eq!(c.cmd("DATA").unwrap().0, 354);
    let big = "x".repeat(100) + "\r\n";
    c.send(big.repeat(120).as_bytes()).unwrap();
    c.send(b".\r\n").unwrap();
    assert_eq!(c.reply().unwrap().0, 552, "message over the size limit");

    // A second connection is fine, a third from the same IP is refused.
    let mut c2 = Raw::connect(mx);
    assert_eq!(c2.reply().unwrap().0, 220);
    let mut c3 = Raw::connect(mx);
    let (code, text) = c3.reply().unwrap();
    assert_eq!(code, 421, "{text}");
    drop((c, c2, c3));
}

#[test]
fn idle_clients_are_timed_out() {
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\ntimeouts {{\n    smtp-command \"1s\"\n}}\n{}",
        standard_domain()
    ));
    let mut c = Raw::connect(server.addr("smtp"));
    assert_eq!(c.reply().unwrap().0, 220);
    let start = std::time::Instant::now();
    let (code, text) = c.reply().unwrap();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("4.4.2"));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn pipelined_transaction_and_bdat_over_tcp() {
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let mut c = Raw::connect(server.addr("smtp"));
    c.reply().unwrap();
    c.send(b"EHLO t\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n").unwrap();
    let codes: Vec<u16> = (0..5).map(|_| c.reply().unwrap().0).collect();
    assert_eq!(codes, vec![250, 250, 250, 250, 354]);
    c.send(b"Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.test>\r\nBDAT 21 LAST\r\nSubject: bdat\r\n\r\nxy\r\n").unwrap();
    let codes: Vec<u16> = (0..4).map(|_| c.reply().unwrap().0).collect();
    assert_eq!(codes, vec![250, 250, 250, 250]);
    assert_eq!(c.cmd("QUIT").unwrap().0, 221);
    let files = server.wait_for_mail("example.test", "alice", 2, Duration::from_secs(10));
    assert_eq!(files.len(), 2);
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(all.contains("Subject: piped\r\n\r\nbody\r\n"));
    assert!(all.contains("Subject: bdat\r\n\r\nxy\r\n"));
}

#[test]
fn reload_adds_a_mailbox_and_survives_a_broken_config() {
    let mut server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let mx = server.addr("smtp");
    let rcpt = |addr: &str| -> u16 {
        let mut c = Raw::connect(mx);
        c.reply().unwrap();
        c.cmd("HELO t").unwrap();
        c.cmd("MAIL FROM:<a@remote.example>").unwrap();
        c.cmd(&format!("RCPT TO:<{addr}>")).unwrap().0
    };
    assert_eq!(rcpt("carol@example.test"), 550);
    // Add carol and reload.
    let text = std::fs::read_to_string(&server.config).unwrap();
    let with_carol = text.replace("mailbox \"bob\"", "mailbox \"carol\"\n    mailbox \"bob\"");
    std::fs::write(&server.config, &with_carol).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_log("reloaded", Duration::from_secs(10)),
        "{}",
        server.log_text()
    );
    assert_eq!(rcpt("carol@example.test"), 250);
    // A broken config: logged, and the old tables keep serving.
    std::fs::write(
        &server.config,
        with_carol.replace("mailbox \"carol\"", "mailbox \"carol\" quota=\"lots\""),
    )
    .unwrap();
    let pid = server.pid();
    server.signal("HUP");
    assert!(
        server.wait_log("reload failed", Duration::from_secs(10)),
        "{}",
        server.log_text()
    );
    assert!(server.log_text().contains("mailc::value::size"));
    assert_eq!(rcpt("carol@example.test"), 250);
    assert_eq!(rcpt("alice@example.test"), 250);
    assert_eq!(server.pid(), pid);
    // SIGTERM: a clean exit.
    let (code, took) = server.stop();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn reload_adds_and_removes_listeners() {
    let mut server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let first = server.addr("smtp");
    // Add an LMTP listener on a fixed free port, drop nothing. The port is
    // free when chosen but another test may take it before the reload binds
    // it: then the reload says so, and another port is tried.
    let text = std::fs::read_to_string(&server.config).unwrap();
    let mut port = 0;
    for attempt in 0..5 {
        port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            &server.config,
            text.replace(
                "listen \"smtp\" \"127.0.0.1:0\"",
                &format!("listen \"smtp\" \"127.0.0.1:0\"\nlisten \"lmtp\" \"127.0.0.1:{port}\""),
            ),
        )
        .unwrap();
        let failures = server.count_log("cannot bind a new listener");
        server.signal("HUP");
        let listening = format!("listening proto=lmtp addr=127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline
            && server.count_log(&listening) == 0
            && server.count_log("cannot bind a new listener") == failures
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if server.count_log(&listening) > 0 {
            break;
        }
        assert!(
            attempt < 4,
            "LMTP listener never came up:\n{}",
            server.log_text()
        );
    }
    let mut c = Raw::connect(format!("127.0.0.1:{port}").parse().unwrap());
    assert!(c.reply().unwrap().1.contains("LMTP"));
    // The original listener kept running.
    let mut c = Raw::connect(first);
    assert_eq!(c.reply().unwrap().0, 220);
    // Remove the LMTP listener again.
    std::fs::write(&server.config, text).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_log("stopped listening proto=lmtp", Duration::from_secs(10)),
        "{}",
        server.log_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(Raw::try_connect(format!("127.0.0.1:{port}").parse().unwrap()).is_err());
    let _ = server.stop();
}

#[test]
fn a_second_server_on_the_same_state_refuses_to_start() {
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .arg("serve")
        .arg(&server.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another mailc serve is running"));
}

#[test]
fn serve_refuses_a_broken_config_with_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.kdl");
    std::fs::write(
        &cfg,
        "hostname \"mail.example.test\"\nlisten \"smtp\" \"127.0.0.1:0\" bogus=1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .arg("serve")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mailc::property::unknown"));
}
