//! ACME without a CA: the directory does not answer. The server still
//! starts and serves a temporary certificate, records the failed attempt
//! and when it will try again, and `mailc tls status` shows it. (Issuance
//! against a real CA is tests/interop_acme.rs, with pebble.)

mod common;

use std::time::{Duration, Instant};

use common::server::Server;

#[test]
fn an_unreachable_directory_is_recorded_and_retried_later() {
    // Nothing listens on the discard port of loopback.
    let server = Server::start(&format!(
        "listen \"imaps\" \"127.0.0.1:0\"\n\
         tls \"imap.example.test\" {{\n    acme directory=\"https://127.0.0.1:9/dir\" contact=\"mailto:postmaster@example.test\"\n}}\n{}",
        common::server::standard_domain()
    ));
    assert!(
        server.wait_log("ACME: renewal failed", Duration::from_secs(30)),
        "{}",
        server.log_text()
    );
    let status_file = server
        .state()
        .join("tls/acme/mail.example.test.status.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status_file.exists() {
        assert!(Instant::now() < deadline, "no status file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
    assert_eq!(status["failures"], 1, "{status}");
    let attempt = status["last-attempt"].as_u64().unwrap();
    let retry = status["retry-after"].as_u64().unwrap();
    assert!(
        (attempt + 60..attempt + 62).contains(&retry),
        "first retry one minute later: {status}"
    );
    assert!(status["last-success"].is_null());
    assert!(!status["last-error"].as_str().unwrap().is_empty());

    // The listener serves the temporary certificate meanwhile.
    let mut imap = common::tls::Lines::new(common::tls::connect(server.addr("imaps")));
    assert!(imap.line().unwrap().starts_with("* OK"));

    let text = common::mailc_tls_status(&server.config);
    assert!(
        text.contains("source: acme (https://127.0.0.1:9/dir, tls-alpn-01)"),
        "{text}"
    );
    assert!(text.contains("no certificate on disk"), "{text}");
    assert!(text.contains("(1 failures in a row)"), "{text}");
    assert!(text.contains("next attempt not before"), "{text}");
    assert!(text.contains("last issued: never"), "{text}");
    // The other certificate of the test config, self-signed.
    assert!(text.contains("source: self-signed"), "{text}");
}
