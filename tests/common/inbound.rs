//! Helpers of the inbound-authentication tests (`e2e_inbound`,
//! `interop_inbound`): a server whose MX checks mail with the given
//! resolver, one SMTP transaction from 127.0.0.1 as `mx.sender.test`, the
//! delivered messages, our `Authentication-Results` field.
#![allow(dead_code)]

use std::time::Duration;

use super::server::{Raw, Server, standard_domain};

pub fn server(resolver: &str) -> Server {
    Server::start(&format!(
        "resolver \"{resolver}\"\nlisten \"smtp\" \"127.0.0.1:0\"\nlisten \"submissions\" \"127.0.0.1:0\"\ninbound {{\n    checks #true\n}}\n{}",
        standard_domain()
    ))
}

pub fn message(from: &str, subject: &str) -> String {
    format!(
        "From: Sender <{from}>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: Thu, 03 Dec 2026 08:00:00 +0000\r\nMessage-ID: <{subject}@sender.test>\r\n\r\nHello.\r\n"
    )
}

/// One SMTP transaction from 127.0.0.1 introducing itself as
/// mx.sender.test; the final reply.
pub fn send(server: &Server, from: &str, body: &str) -> (u16, String) {
    let mut c = Raw::connect(server.addr("smtp"));
    // The checks may take their whole 30 s bound (DNS down): wait longer.
    c.stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .expect("timeout");
    c.reply().expect("greeting");
    assert_eq!(c.cmd("EHLO mx.sender.test").expect("ehlo").0, 250);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{from}>")).expect("mail").0, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").expect("rcpt").0, 250);
    assert_eq!(c.cmd("DATA").expect("data").0, 354);
    c.send(body.replace("\r\n.", "\r\n..").as_bytes())
        .expect("body");
    c.send(b".\r\n").expect("end");
    let reply = c.reply().expect("reply");
    let _ = c.cmd("QUIT");
    reply
}

pub fn files_in(server: &Server, sub: &str) -> Vec<String> {
    let dir = server
        .state()
        .join("mail/example.test/alice")
        .join(sub)
        .join("new");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub fn wait_for(server: &Server, sub: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let files = files_in(server, sub);
        if files.len() >= n || std::time::Instant::now() > deadline {
            return files;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Authentication-Results field of a delivered message, unfolded, with
/// the signature prefix (`header.b=`, random per key) masked.
pub fn results_field(text: &str) -> String {
    let start = text
        .find("Authentication-Results: mail.example.test")
        .unwrap_or_else(|| panic!("no Authentication-Results of ours:\n{text}"));
    let mut field = String::new();
    for (i, line) in text[start..].split("\r\n").enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        field.push_str(line.trim_start());
        field.push(' ');
    }
    let field = field.trim_end().to_string();
    match field.find("header.b=") {
        Some(at) => {
            let end = field[at..].find([' ', ';']).map_or(field.len(), |n| at + n);
            format!("{}header.b=<masked>{}", &field[..at], &field[end..])
        }
        None => field,
    }
}

/// A configuration for `mailc explain --message` in `dir`: the resolver,
/// an MX listener, `inbound { <inbound> }`, the standard domain. Its path.
pub fn explain_config(dir: &std::path::Path, resolver: &str, inbound: &str) -> std::path::PathBuf {
    let config = dir.join("mailc.kdl");
    std::fs::write(
        &config,
        super::server::config_text(
            &dir.join("state"),
            &format!(
                "resolver \"{resolver}\"\nlisten \"smtp\" \"127.0.0.1:0\"\ninbound {{\n{inbound}\n}}\n{}",
                standard_domain()
            ),
        ),
    )
    .expect("config");
    config
}

/// `msg` with an Ed25519 DKIM signature of `domain`, selector `s1`, over
/// From, To, Subject, Date and Message-ID on top.
pub fn sign_ed25519(
    key: &mail_auth::dkim::generate::DkimKeyPair,
    domain: &str,
    msg: &str,
) -> String {
    use mail_auth::common::headers::HeaderWriter;
    let signing =
        mail_auth::common::crypto::Ed25519Key::from_pkcs8_der(key.private_key()).expect("key");
    let signature = mail_auth::dkim::DkimSigner::from_key(signing)
        .domain(domain)
        .selector("s1")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(msg.as_bytes())
        .expect("sign");
    format!("{}{msg}", signature.to_header())
}

/// Two servers for forwarding tests: `remote` is the MX of `remote.test`
/// on 127.0.0.2 (mailbox carol); `local` checks inbound mail with the DNS
/// server at `resolver`, sends outbound to the remote's port, and has
/// `fwd.test` whose alias carol forwards to carol@remote.test, signing with
/// the DKIM key at `key` under `selector`. `(remote, local)`.
pub fn forwarding_pair(resolver: &str, selector: &str, key: &std::path::Path) -> (Server, Server) {
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let remote = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.2:{port}\"\ndomain \"remote.test\" {{\n    mailbox \"carol\" password=\"{}\"\n}}\n",
        super::server::ALICE_HASH
    ));
    let local = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nresolver \"{resolver}\"\ninbound {{\n    checks #true\n}}\noutbound {{\n    port {port}\n}}\n{}domain \"fwd.test\" {{\n    dkim selector=\"{selector}\" key=\"{}\"\n    alias \"carol\" to=\"carol@remote.test\"\n    alias \"postmaster\" to=\"alice@example.test\"\n}}\n",
        standard_domain(),
        key.display()
    ));
    (remote, local)
}
