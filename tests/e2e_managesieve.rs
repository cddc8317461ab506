//! ManageSieve (RFC 5804) end to end: the real server on a real socket,
//! STARTTLS (with a command pipelined behind it in the clear, which must
//! be dropped), SASL PLAIN, scripts stored, activated, read back and
//! deleted in the state directory where delivery finds them; and hostile
//! input (a huge literal, an endless line, garbage) answered with a clear
//! NO or BYE while the server keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::server::{Server, standard_domain};
use common::tls::{Lines, upgrade};

fn b64(bytes: &[u8]) -> String {
    mailc::proto::sasl::base64_encode(bytes)
}

/// Lines up to and including the first `OK`, `NO` or `BYE` line.
fn response<S: Read + Write>(c: &mut Lines<S>) -> (Vec<String>, String) {
    let mut lines = Vec::new();
    loop {
        let l = c.line().unwrap();
        if l.starts_with("OK") || l.starts_with("NO") || l.starts_with("BYE") {
            return (lines, l);
        }
        lines.push(l);
    }
}

fn cmd<S: Read + Write>(c: &mut Lines<S>, line: &str) -> (Vec<String>, String) {
    c.send(line).unwrap();
    response(c)
}

fn putscript<S: Read + Write>(c: &mut Lines<S>, name: &str, script: &str) -> String {
    c.stream
        .write_all(format!("PUTSCRIPT \"{name}\" {{{}+}}\r\n{script}\r\n", script.len()).as_bytes())
        .unwrap();
    response(c).1
}

fn connect(server: &Server) -> Lines<TcpStream> {
    let tcp = TcpStream::connect(server.addr("managesieve")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    Lines::new(tcp)
}

#[test]
fn scripts_over_starttls() {
    let server = Server::start(&format!(
        "listen \"managesieve\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    let mut plain = connect(&server);
    let (caps, ok) = response(&mut plain);
    assert_eq!(ok, "OK \"mail.example.test ManageSieve ready\"");
    assert!(caps.contains(&"\"STARTTLS\"".to_string()), "{caps:?}");
    assert!(caps.contains(&"\"SASL\" \"\"".to_string()), "{caps:?}");
    // No password in the clear.
    let ir = b64(b"\0alice@example.test\0secret");
    let (_, no) = cmd(&mut plain, &format!("AUTHENTICATE \"PLAIN\" \"{ir}\""));
    assert!(no.starts_with("NO (ENCRYPT-NEEDED)"), "{no}");
    // STARTTLS with LOGOUT pipelined behind it in the clear: dropped.
    plain.stream.write_all(b"STARTTLS\r\nLOGOUT\r\n").unwrap();
    assert_eq!(plain.line().unwrap(), "OK \"begin TLS negotiation now\"");
    let mut c = Lines::new(upgrade(plain.into_inner(), "mail.example.test"));
    // Capabilities again after TLS (RFC 5804 §2.2), now with mechanisms.
    let (caps, ok) = response(&mut c);
    assert_eq!(ok, "OK \"TLS negotiation successful\"");
    assert!(
        caps.contains(&"\"SASL\" \"PLAIN LOGIN\"".to_string()),
        "{caps:?}"
    );
    assert!(!caps.contains(&"\"STARTTLS\"".to_string()));

    let wrong = b64(b"\0alice@example.test\0wrong");
    let (_, no) = cmd(&mut c, &format!("AUTHENTICATE \"PLAIN\" \"{wrong}\""));
    assert_eq!(no, "NO \"authentication failed\"");
    // PLAIN without an initial response: the continuation.
    c.send("AUTHENTICATE \"PLAIN\"").unwrap();
    assert_eq!(c.line().unwrap(), "\"\"");
    let (_, ok) = cmd(&mut c, &format!("{{{}+}}\r\n{ir}", ir.len()));
    assert_eq!(ok, "OK \"logged in\"");

    let script = "require \"fileinto\";\r\nif header :contains \"subject\" \"[list]\" {\r\n  fileinto \"Lists\";\r\n}\r\n";
    assert_eq!(putscript(&mut c, "lists", script), "OK \"done\"");
    let bad = putscript(
        &mut c,
        "broken",
        "require \"fileinto\";\r\n\r\nfileinto \"x\"\r\n",
    );
    assert!(bad.starts_with("NO \"line 4: "), "{bad}");
    let (_, ok) = cmd(&mut c, "SETACTIVE \"lists\"");
    assert_eq!(ok, "OK \"done\"");
    let (list, _) = cmd(&mut c, "LISTSCRIPTS");
    assert_eq!(list, ["\"lists\" ACTIVE"]);
    let (got, ok) = cmd(&mut c, "GETSCRIPT \"lists\"");
    assert_eq!(ok, "OK \"done\"");
    assert_eq!(got[0], format!("{{{}}}", script.len()));
    assert_eq!(
        format!("{}\r\n", got[1..].join("\r\n")),
        format!("{script}\r\n")
    );

    // Where delivery finds it.
    let dir = server.state().join("sieve/example.test/alice");
    assert_eq!(
        std::fs::read_to_string(dir.join("lists.sieve")).unwrap(),
        script
    );
    assert_eq!(
        std::fs::read_link(dir.join(".active")).unwrap(),
        std::path::Path::new("lists.sieve")
    );
    assert!(!dir.join("broken.sieve").exists());

    let (_, no) = cmd(&mut c, "DELETESCRIPT \"lists\"");
    assert!(no.starts_with("NO (ACTIVE)"), "{no}");
    cmd(&mut c, "SETACTIVE \"\"");
    let (_, ok) = cmd(&mut c, "DELETESCRIPT \"lists\"");
    assert_eq!(ok, "OK \"done\"");
    assert!(!dir.join("lists.sieve").exists());
    let (_, bye) = cmd(&mut c, "LOGOUT");
    assert_eq!(bye, "OK \"logout completed\"");
}

#[test]
fn hostile_input_gets_clear_answers() {
    // Plaintext login on loopback so the raw socket can log in.
    let server = Server::start(&format!(
        "listen \"managesieve\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\nsieve {{\n    max-script-size \"64KiB\"\n}}\n{}",
        standard_domain()
    ));
    let mut c = connect(&server);
    response(&mut c);
    // A literal of 4 GiB announced before login: skipped as it comes, not
    // kept; 1 MiB of it is sent, then the connection is dropped.
    c.stream
        .write_all(b"AUTHENTICATE \"PLAIN\" {4294967295+}\r\n")
        .unwrap();
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..16 {
        c.stream.write_all(&chunk).unwrap();
    }
    assert_eq!(c.line().unwrap(), "NO \"literal too large\"");
    drop(c);

    // An endless line: answered once, then skipped until it ends.
    let mut c = connect(&server);
    response(&mut c);
    for _ in 0..16 {
        c.stream.write_all(&chunk).unwrap();
    }
    assert_eq!(c.line().unwrap(), "NO \"line too long\"");
    let (_, ok) = cmd(&mut c, "\r\nNOOP");
    // The rest of the long line ended with the CRLF; NOOP is answered.
    assert_eq!(ok, "OK \"done\"");

    // Logged in: a script over the size limit is refused with the quota
    // code, after its bytes were skipped.
    let ir = b64(b"\0alice@example.test\0secret");
    let (_, ok) = cmd(&mut c, &format!("AUTHENTICATE \"PLAIN\" \"{ir}\""));
    assert_eq!(ok, "OK \"logged in\"");
    let (_, no) = cmd(&mut c, "HAVESPACE \"big\" 1000000");
    assert!(no.starts_with("NO (QUOTA/MAXSIZE)"), "{no}");
    let big = format!("#{}\r\nkeep;", "x".repeat(200_000));
    assert!(putscript(&mut c, "big", &big).starts_with("NO (QUOTA/MAXSIZE)"));
    let (_, ok) = cmd(&mut c, "NOOP");
    assert_eq!(ok, "OK \"done\"");

    // Garbage until the error limit: BYE, and the connection closes.
    let mut last = String::new();
    for _ in 0..50 {
        if c.stream.write_all(b"\x00\xff{{}} \"\r\n").is_err() {
            break;
        }
        match c.line() {
            Ok(l) => last = l,
            Err(_) => break,
        }
        if last.starts_with("BYE") {
            break;
        }
    }
    assert_eq!(last, "BYE \"too many errors, closing connection\"");
    assert!(c.line().is_err());

    // The server still serves.
    let mut c = connect(&server);
    let (_, ok) = response(&mut c);
    assert!(ok.starts_with("OK"));
    assert!(server.log_lines_containing("panicked").is_empty());
}

/// Logins go through the path IMAP and POP3 use: failures are logged with
/// `proto=managesieve`, and past `auth-failures` the client is locked out
/// — even with the right password — with `BYE (TRYLATER)`.
#[test]
fn failed_logins_lock_out_like_the_other_protocols() {
    let server = Server::start(&format!(
        "listen \"managesieve\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\nlimits {{\n    auth-failures 2\n}}\n{}",
        standard_domain()
    ));
    let mut c = connect(&server);
    response(&mut c);
    let wrong = b64(b"\0alice@example.test\0wrong");
    for _ in 0..2 {
        let (_, no) = cmd(&mut c, &format!("AUTHENTICATE \"PLAIN\" \"{wrong}\""));
        assert_eq!(no, "NO \"authentication failed\"");
    }
    let right = b64(b"\0alice@example.test\0secret");
    let (_, bye) = cmd(&mut c, &format!("AUTHENTICATE \"PLAIN\" \"{right}\""));
    assert_eq!(
        bye,
        "BYE (TRYLATER) \"too many failed logins, try again later\""
    );
    assert!(c.line().is_err(), "the connection is closed");
    // The log is read from the server's stderr as it comes: wait for the
    // last line; the earlier ones were written before it.
    assert!(server.wait_log("login refused: too many failures", Duration::from_secs(10)));
    assert_eq!(
        server
            .log_lines_containing("login failed")
            .iter()
            .filter(|l| l.contains("proto=\"managesieve\"") || l.contains("proto=managesieve"))
            .count(),
        2,
        "{}",
        server.log_text()
    );
    assert_eq!(server.count_log("login refused: too many failures"), 1);
}

/// The whole path: a script uploaded and activated over ManageSieve files
/// the next message delivered over SMTP, and deactivating it stops that.
#[test]
fn an_uploaded_script_filters_delivery() {
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"managesieve\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\n{}",
        standard_domain()
    ));
    let mut c = connect(&server);
    response(&mut c);
    let ir = b64(b"\0alice@example.test\0secret");
    assert_eq!(
        cmd(&mut c, &format!("AUTHENTICATE \"PLAIN\" \"{ir}\"")).1,
        "OK \"logged in\""
    );
    // `:create`: delivery files into a folder that does not exist yet only
    // when asked to make it.
    let script = "require [\"fileinto\", \"mailbox\"];\r\nif header :contains \"subject\" \"[list]\" {\r\n  fileinto :create \"Lists\";\r\n}\r\n";
    assert_eq!(putscript(&mut c, "lists", script), "OK \"done\"");
    assert_eq!(cmd(&mut c, "SETACTIVE \"lists\"").1, "OK \"done\"");

    let mut smtp = common::server::Raw::connect(server.addr("smtp"));
    smtp.reply().unwrap();
    smtp.cmd("EHLO t").unwrap();
    let send = |smtp: &mut common::server::Raw, subject: &str| {
        let body = format!(
            "Subject: {subject}\r\nMessage-ID: <{}@t>\r\n\r\nbody\r\n",
            subject.len()
        );
        assert_eq!(
            smtp.send_mail("x@remote.example", &["alice@example.test"], &body)
                .unwrap(),
            250
        );
    };
    send(&mut smtp, "[list] hello");
    let folder = server.state().join("mail/example.test/alice/.Lists");
    let files = |dir: &std::path::Path| {
        ["new", "cur"]
            .iter()
            .flat_map(|s| {
                std::fs::read_dir(dir.join(s))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while files(&folder) < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        files(&folder),
        1,
        "filed into Lists; inbox {:?}\n{}",
        server.maildir_files("example.test", "alice"),
        server.log_text()
    );
    assert!(server.maildir_files("example.test", "alice").is_empty());

    // Deactivated: the next one stays in INBOX.
    assert_eq!(cmd(&mut c, "SETACTIVE \"\"").1, "OK \"done\"");
    send(&mut smtp, "[list] again");
    let inbox = server.wait_for_mail("example.test", "alice", 1, Duration::from_secs(15));
    assert_eq!(inbox.len(), 1);
    assert_eq!(files(&folder), 1);
}
