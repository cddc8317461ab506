//! Learning from users (`scan { learn }`): a move into Junk over IMAP is
//! offered to the spam scanner in the background, and the IMAP command
//! never waits for it. Here spamd is a hostile fake that takes the `TELL`
//! and never answers: COPY and MOVE into Junk still complete at once, and
//! the fake sees the lesson. The real spamd and rspamd learning is in
//! `interop_learning.rs`.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::imap_client::Imap;
use common::server::{Server, standard_domain};

/// A spamd that records what it is sent and never answers.
fn silent_spamd() -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                // Holds the connection open until the peer gives up.
            });
        }
    });
    (addr, seen)
}

const MESSAGE: &[u8] = b"From: Sender <s@sender.test>\r\nTo: alice@example.test\r\nSubject: cheap watches\r\nMessage-ID: <w1@sender.test>\r\n\r\nBuy cheap watches now, the best replica watches at the lowest prices.\r\n";

#[test]
fn moves_into_junk_never_wait_for_the_scanner() {
    let (spamd, seen) = silent_spamd();
    let s = Server::start(&format!(
        "listen \"imap\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\nscan {{\n    spamd \"{spamd}\"\n}}\n{}",
        standard_domain()
    ));
    let mut c = Imap::connect(s.addr("imap"));
    c.ok("LOGIN alice@example.test secret");
    c.append("INBOX", MESSAGE);
    c.append("INBOX", MESSAGE);
    c.ok("SELECT INBOX");
    // The first lesson hangs in the fake spamd; the commands after it
    // must not care.
    c.ok("UID COPY 1 Junk");
    c.ok("UID MOVE 2 Junk");
    c.ok("NOOP");
    let t = Instant::now();
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("TELL SPAMC") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "spamd never got the lesson"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = String::from_utf8_lossy(&seen.lock().unwrap()).to_string();
    assert!(got.contains("Message-class: spam"), "{got}");
    assert!(got.contains("cheap watches"), "{got}");
    // APPEND into Junk teaches too, and is not held up either.
    c.append("Junk", MESSAGE);
    c.ok("LOGOUT");
}

#[test]
fn learning_off_sends_nothing() {
    let (spamd, seen) = silent_spamd();
    let s = Server::start(&format!(
        "listen \"imap\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\nscan {{\n    spamd \"{spamd}\"\n    learn #false\n}}\n{}",
        standard_domain()
    ));
    let mut c = Imap::connect(s.addr("imap"));
    c.ok("LOGIN alice@example.test secret");
    c.append("INBOX", MESSAGE);
    c.ok("SELECT INBOX");
    c.ok("UID MOVE 1 Junk");
    c.append("Junk", MESSAGE);
    // Nothing is queued, so nothing can arrive later either: the store
    // decides at the move. Give a wrongly queued lesson time to show.
    std::thread::sleep(Duration::from_millis(500));
    assert!(seen.lock().unwrap().is_empty());
}
