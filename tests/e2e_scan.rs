//! `scan { }` through the real `mailc serve` with scanners that fail:
//! none listening, one that never answers, one that answers garbage, one
//! that sends without end (a "1 GB" reply), and a message over `max-size`
//! that must not be sent to any scanner. Each must end in the configured
//! fail mode within the timeout — 451 for `on-failure "tempfail"` (the
//! default), delivery marked `X-Spam-Scanned: unscanned` for `"accept"` —
//! never a hang, a crash, or a 250 that hides the failure. The real
//! scanners are in `interop_scan.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::inbound::{send, wait_for};
use common::server::{Server, standard_domain};

/// A TCP port where nothing listens.
fn dead_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

/// A hostile scanner: reads what it is sent for a moment, then runs
/// `answer` on the connection. Runs until the test process ends.
fn fake(answer: fn(&mut std::net::TcpStream)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
                let mut buf = [0u8; 65536];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                answer(&mut s);
            });
        }
    });
    addr
}

fn mx(scan: &str, extra: &str) -> Server {
    Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{extra}scan {{\n{scan}\n}}\n{}",
        standard_domain()
    ))
}

const HAM: &str = "From: Sender <s@sender.test>\r\nTo: alice@example.test\r\nSubject: lunch\r\nX-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=99.0 required=5.0\r\nX-Virus-Status: Infected (forged)\r\n\r\nLunch tomorrow?\r\n";

#[test]
fn scanner_down_tempfails_by_default() {
    let s = mx(&format!("    spamd \"{}\"", dead_port()), "");
    let (code, text) = send(&s, "s@sender.test", HAM);
    assert_eq!(code, 451, "{text}");
    assert!(text.contains("4.3.0"), "{text}");
    assert!(common::inbound::files_in(&s, "").is_empty());
}

#[test]
fn scanner_down_fail_open_marks_unscanned_and_strips_forgeries() {
    let s = mx(
        &format!(
            "    spamd \"{}\"\n    clamd \"{}/nothing.sock\"\n    on-failure \"accept\"",
            dead_port(),
            std::env::temp_dir().display()
        ),
        "",
    );
    let (code, text) = send(&s, "s@sender.test", HAM);
    assert_eq!(code, 250, "{text}");
    let got = wait_for(&s, "", 1);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(
        m.contains("X-Spam-Scanned: unscanned (spamd: cannot reach"),
        "{m}"
    );
    assert!(m.contains("clamd: cannot reach"), "{m}");
    // The sender's claims are gone: no flag, no status, no virus verdict.
    assert!(!m.contains("X-Spam-Flag"), "{m}");
    assert!(!m.contains("X-Spam-Status"), "{m}");
    assert!(!m.contains("forged"), "{m}");
}

#[test]
fn hanging_scanner_times_out_then_tempfails() {
    let addr = fake(|s| {
        // Holds the connection and says nothing.
        std::thread::sleep(Duration::from_secs(30));
        let _ = s.write_all(b"");
    });
    let s = mx(
        &format!("    rspamd \"http://{addr}\"\n    timeout \"2s\""),
        "",
    );
    let t = Instant::now();
    let (code, text) = send(&s, "s@sender.test", HAM);
    let took = t.elapsed();
    assert_eq!(code, 451, "{text}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        s.wait_log("did not answer within", Duration::from_secs(5)),
        "{}",
        s.log_text()
    );
}

#[test]
fn garbage_and_endless_replies_are_bounded() {
    let garbage = fake(|s| {
        let _ = s.write_all(b"SPAMD/1.1 0 EX_OK\r\nSpam: Perhaps ; lots / few\r\n\r\n");
    });
    // Sends until the client goes away: 1 GB if it kept reading.
    let endless = fake(|s| {
        let chunk = vec![b'A'; 1 << 20];
        for _ in 0..1024 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let huge_head = fake(|s| {
        let _ = s.write_all(b"SPAMD/1.1 0 EX_OK\r\nX-Long: ");
        let _ = s.write_all(&vec![b'x'; 200_000]);
        let _ = s.write_all(b"\r\n\r\n");
    });
    for (addr, what) in [
        (garbage, "bad spamd Spam field"),
        (endless, "spamd reply head too long"),
        (huge_head, "spamd reply head too long"),
    ] {
        let s = mx(&format!("    spamd \"{addr}\"\n    timeout \"20s\""), "");
        let t = Instant::now();
        let (code, text) = send(&s, "s@sender.test", HAM);
        assert_eq!(code, 451, "{text}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(
            s.wait_log(what, Duration::from_secs(5)),
            "{what}: {}",
            s.log_text()
        );
    }
}

#[test]
fn large_message_is_not_scanned() {
    // The scanner is down and failing closed: any attempt to scan would
    // be a 451. 60 MB over the 10 MiB default is delivered, marked skipped.
    let s = mx(
        &format!("    spamd \"{}\"", dead_port()),
        "inbound {\n    checks #false\n    max-message-size \"100MiB\"\n}\n",
    );
    let line = "x".repeat(998);
    let mut body =
        String::from("From: s@sender.test\r\nTo: alice@example.test\r\nSubject: big\r\n\r\n");
    while body.len() < 60 << 20 {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    let (code, text) = send(&s, "s@sender.test", &body);
    assert_eq!(code, 250, "{text}");
    let dir = s.state().join("mail/example.test/alice/new");
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = loop {
        if let Some(f) = std::fs::read_dir(&dir).ok().and_then(|mut d| d.next()) {
            break f.unwrap().path();
        }
        assert!(Instant::now() < deadline, "not delivered");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(file).unwrap().read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(
        head.contains("X-Spam-Scanned: skipped (message of "),
        "{head}"
    );
    assert!(head.contains("over the 10485760 byte limit"), "{head}");
}
