//! Spam and virus scanning against the real scanners (Debian's spamd,
//! rspamd and clamd, private instances on loopback from
//! `common::scanners`), through the real `mailc serve` over SMTP: GTUBE
//! refused or put into Junk per policy, EICAR refused as a plain body and
//! inside a base64 attachment, ham delivered with the scanners' fields
//! (golden), a scanner stopped mid-run giving the fail mode, and the
//! learning calls seen in the scanners' own counters. Run by `.ci/run`
//! with `--ignored` (packages spamassassin, spamd, rspamd, clamav-daemon).

mod common;

use std::time::{Duration, Instant};

use common::inbound::{files_in, send, wait_for};
use common::scanners::{Clamd, Rspamd, Spamd, eicar, gtube};
use common::server::{Server, standard_domain};
use mailc::services::scan::{self as client, Endpoint};

fn mx(scan: &str) -> Server {
    Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nscan {{\n{scan}\n}}\n{}",
        standard_domain()
    ))
}

/// Now, as a Date: field (SpamAssassin scores dates far from its clock,
/// which would make the golden fields depend on the day).
fn now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-R"])
        .output()
        .expect("date runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Sender <s@sender.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Date: {}\r\nMessage-ID: <{subject}@sender.test>\r\n\r\n{body}\r\n",
        now()
    )
}

fn with_attachment(content: &str) -> String {
    use std::fmt::Write;
    let b64 = base64(content.as_bytes());
    let mut m = String::new();
    write!(
        m,
        "From: Sender <s@sender.test>\r\nTo: alice@example.test\r\nSubject: invoice\r\n\
         Date: {}\r\nMessage-ID: <att@sender.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
         Please find the invoice attached.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"invoice.com\"\r\n\
         Content-Disposition: attachment; filename=\"invoice.com\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b1--\r\n",
        now()
    )
    .unwrap();
    m
}

fn base64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The scanners' fields of a delivered message, in order, with spamd's
/// and rspamd's numbers kept (they are deterministic for one message and
/// rule set) and our host name as it is.
fn scan_fields(m: &str) -> String {
    let head = m.split("\r\n\r\n").next().unwrap();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .filter(|l| l.starts_with("X-Spam") || l.starts_with("X-Virus"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[ignore = "needs Debian's spamd, rspamd and clamav-daemon; run by .ci/run"]
fn real_scanners_at_the_end_of_data() {
    let t0 = Instant::now();
    // Start all three at once: rspamd's first start is the long one.
    let rspamd = std::thread::spawn(Rspamd::start);
    let spamd = std::thread::spawn(Spamd::start);
    let clamd = Clamd::start("2M");
    let mut spamd = spamd.join().expect("spamd started");
    let rspamd = rspamd.join().expect("rspamd started");
    eprintln!("scanners ready after {:?}", t0.elapsed());
    let clamd_sock = clamd.socket.display().to_string();

    // --- spamd + clamd, default policy (junk 5, reject 15, virus reject).
    let s = mx(&format!(
        "    spamd \"{}\"\n    clamd \"{clamd_sock}\"",
        spamd.addr
    ));
    let (code, text) = send(&s, "s@sender.test", &message("gtube", &gtube()));
    assert_eq!(code, 550, "GTUBE via spamd: {text}");
    assert!(text.contains("5.7.1") && text.contains("spam"), "{text}");
    let (code, text) = send(&s, "s@sender.test", &message("eicar", &eicar()));
    assert_eq!(code, 554, "EICAR in the body: {text}");
    assert!(
        text.contains("5.7.1") && text.contains("Eicar-Test-Signature"),
        "{text}"
    );
    let (code, text) = send(&s, "s@sender.test", &with_attachment(&eicar()));
    assert_eq!(code, 554, "EICAR in a base64 attachment: {text}");
    let ham = message("lunch", "Hi Alice, lunch tomorrow at noon? Bob");
    let forged = ham.replacen(
        "Subject:",
        "X-Spam-Flag: YES\r\nX-Virus-Status: Infected (x)\r\nSubject:",
        1,
    );
    let (code, text) = send(&s, "s@sender.test", &forged);
    assert_eq!(code, 250, "ham: {text}");
    let got = wait_for(&s, "", 1);
    assert_eq!(got.len(), 1, "ham delivered to INBOX");
    insta::assert_snapshot!("ham_spamd_clamd", scan_fields(&got[0]));
    assert!(files_in(&s, ".Junk").is_empty());
    // `mailc explain --message` asks the same scanners.
    let file = s.path().join("gtube.eml");
    std::fs::write(&file, message("explained", &gtube())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .arg("explain")
        .arg(&s.config)
        .arg("--message")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("scanners: spamd score=") && text.contains("clamd clean"),
        "{text}"
    );
    assert!(
        text.contains("verdict: reject at the end of DATA: 550 5.7.1"),
        "{text}"
    );
    drop(s);

    // --- spamd with GTUBE below the reject score: Junk, flagged.
    let s = mx(&format!(
        "    spamd \"{}\"\n    spam junk=5 reject=5000",
        spamd.addr
    ));
    let (code, text) = send(&s, "s@sender.test", &message("gtube", &gtube()));
    assert_eq!(code, 250, "GTUBE to Junk: {text}");
    let junk = wait_for(&s, ".Junk", 1);
    assert_eq!(junk.len(), 1, "GTUBE in Junk");
    // The flag comes first (readers take the first field), then the status.
    assert!(
        scan_fields(&junk[0]).starts_with("X-Spam-Flag: YES\nX-Spam-Score: "),
        "{}",
        junk[0]
    );
    assert!(
        scan_fields(&junk[0]).contains("X-Spam-Status: Yes, score="),
        "{}",
        junk[0]
    );
    assert!(scan_fields(&junk[0]).contains("GTUBE"), "{}", junk[0]);
    assert!(files_in(&s, "").is_empty());
    drop(s);

    // --- rspamd: its `reject` for GTUBE is ours; ham gets its fields.
    let s = mx(&format!(
        "    rspamd \"http://{}\"\n    clamd \"{clamd_sock}\"",
        rspamd.addr
    ));
    let (code, text) = send(&s, "s@sender.test", &message("gtube", &gtube()));
    assert_eq!(code, 550, "GTUBE via rspamd: {text}");
    let (code, text) = send(&s, "s@sender.test", &ham);
    assert_eq!(code, 250, "ham via rspamd: {text}");
    let got = wait_for(&s, "", 1);
    assert_eq!(got.len(), 1);
    let fields = scan_fields(&got[0]);
    assert!(
        fields.contains("X-Spam-Status: No, score=")
            && fields.contains("scanner=rspamd action=\"no action\""),
        "{fields}"
    );
    assert!(fields.contains("X-Virus-Status: Clean"), "{fields}");
    drop(s);

    // --- learning, as the IMAP side will call it: the scanners count it.
    let rt = rt();
    let spam = message(
        "learn",
        "Buy cheap replica watches today, limited offer for our valued customers: \
         genuine discount prices on luxury brands, free shipping worldwide, order now \
         and receive a second watch for free. Click the link below to claim your prize.",
    );
    let before = spamd.learned();
    let ep = Endpoint::Tcp(spamd.addr.clone());
    let learned = rt
        .block_on(client::spamd_learn(
            &ep,
            mailc::proto::scan::spamd::Class::Spam,
            None,
            spam.as_bytes(),
            Duration::from_secs(30),
        ))
        .expect("spamd TELL");
    assert!(learned, "first TELL learns");
    let again = rt
        .block_on(client::spamd_learn(
            &ep,
            mailc::proto::scan::spamd::Class::Spam,
            None,
            spam.as_bytes(),
            Duration::from_secs(30),
        ))
        .expect("spamd TELL again");
    assert!(!again, "the same message twice is learned once");
    let after = spamd.learned();
    assert_eq!(
        after.0,
        before.0 + 1,
        "nspam counted: {before:?} → {after:?}"
    );
    let rep = rt.block_on(client::rspamd_learn(
        &Endpoint::Tcp(rspamd.controller.clone()),
        true,
        None,
        spam.as_bytes(),
        Duration::from_secs(30),
    ));
    // rspamd's Bayes lives in Redis, which this private instance has not:
    // the controller must still answer in its protocol, and the answer is
    // read as such (not as success).
    eprintln!("rspamd /learnspam: {rep:?}");

    // --- a scanner that goes down mid-run: the default fails closed.
    let s = mx(&format!("    spamd \"{}\"\n    timeout \"5s\"", spamd.addr));
    spamd.daemon.stop();
    let (code, text) = send(&s, "s@sender.test", &ham);
    assert_eq!(code, 451, "spamd stopped: {text}");
    drop(s);
    eprintln!("interop_scan took {:?}", t0.elapsed());
    drop(clamd);
}
