//! Learning from users against the real scanners: moves into and out of
//! Junk over IMAP, seen in spamd's Bayes counters (`sa-learn --dump
//! magic`: nspam, nham) and rspamd's (`learned` of its controller's
//! `/stat`, statistics in a private Redis). Needs Debian's spamd,
//! spamassassin, rspamd and redis-server (installed by `.ci/run`).

mod common;

use std::time::{Duration, Instant};

use common::imap_client::Imap;
use common::scanners::{Redis, Rspamd, Spamd};
use common::server::{Server, standard_domain};

/// Polls `f` until it holds (scanners learn in the background).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A message with enough words for both classifiers (rspamd wants at
/// least 11 tokens).
fn message(n: u32) -> Vec<u8> {
    format!(
        "From: Sender <s{n}@sender.test>\r\nTo: alice@example.test\r\nSubject: offer number {n}\r\n\
         Message-ID: <offer-{n}@sender.test>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n\
         Dear friend, this is offer number {n}: replica watches, cheap pills and a lottery \
         you already won, claim your prize today by sending your bank details to our agent.\r\n"
    )
    .into_bytes()
}

#[test]
#[ignore = "interop: needs spamd, rspamd, redis-server (.ci/run installs them)"]
fn junk_moves_teach_spamd_and_rspamd() {
    let spamd = Spamd::start();
    let redis = Redis::start();
    let rspamd = Rspamd::start_with_redis(&redis);
    let s = Server::start(&format!(
        "listen \"imap\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\n\
         scan {{\n    spamd \"{}\"\n    rspamd \"http://{}\"\n    learn #true rspamd-controller=\"http://{}\"\n}}\n{}",
        spamd.addr,
        rspamd.addr,
        rspamd.controller,
        standard_domain()
    ));
    assert_eq!(spamd.learned(), (0, 0));
    assert_eq!(rspamd.learned(), 0);

    let mut c = Imap::connect(s.addr("imap"));
    c.ok("LOGIN alice@example.test secret");
    for n in 1..=3 {
        c.append("INBOX", &message(n));
    }
    c.ok("SELECT INBOX");

    // INBOX → Junk: spam.
    c.ok("UID MOVE 1 Junk");
    eventually("spamd learned one spam", || spamd.learned() == (1, 0));
    eventually("rspamd learned one", || rspamd.learned() == 1);

    // Junk → INBOX: the user changed their mind, ham (SpamAssassin
    // forgets it as spam and learns it as ham).
    c.ok("SELECT Junk");
    c.ok("UID MOVE 1 INBOX");
    eventually("spamd relearned it as ham", || spamd.learned() == (0, 1));
    eventually("rspamd learned it again", || rspamd.learned() == 2);

    // Junk → Trash teaches nothing; the APPEND after it does (spam), and
    // lessons are told in order: once the APPEND is learned, a lesson from
    // the Trash move would have been too.
    c.ok("SELECT INBOX");
    c.ok("UID COPY 2 Junk");
    eventually("spamd learned the copy", || spamd.learned() == (1, 1));
    c.ok("SELECT Junk");
    c.ok("UID MOVE 2 Trash");
    c.append("Junk", &message(4));
    eventually("spamd learned the APPEND", || spamd.learned().0 == 2);
    eventually("rspamd learned the APPEND", || rspamd.learned() == 4);
    assert_eq!(spamd.learned(), (2, 1), "Junk → Trash is not ham");
    c.ok("LOGOUT");
    assert!(
        s.count_log("learned") >= 8,
        "each lesson is logged: {}",
        s.log_text()
    );
}
