//! Screening at the MX end to end: the real `mailc serve`, clients
//! connecting from chosen loopback addresses (127.0.0.1-5, ::1), and a
//! real DNS server (hickory) on 127.0.0.1 serving blocklist zones.
//!
//! DNSBL: a client listed in a heavy zone is refused at RCPT with 554 5.7.1
//! naming the zone and its TXT reason, while postmaster@ still works; two
//! light zones add up to the threshold, one alone does not; a zone
//! answering 127.255.255.254 ("public resolver refused") lists nobody and is
//! warned about once, not per connection; trusted networks, submission and
//! IPv6 clients; blocklists that do not answer let mail through.
//!
//! Greylisting: the first attempt and an early retry get 451 4.7.1 (an
//! unknown recipient still 550), a retry after the delay is delivered, the
//! pass survives a crash and restart, another sender is greylisted again,
//! authenticated submission never is.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::server::{Raw, Server, standard_domain, submit_as_alice};

/// A connection to `to` from the local address `from`.
fn connect_from(from: &str, to: SocketAddr) -> Raw {
    let from: IpAddr = from.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = match from {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        socket.connect(to).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    Raw::from_stream(stream)
}

/// Greeting, EHLO, MAIL FROM; the client is ready for RCPT.
fn start_mail(from_ip: &str, to: SocketAddr, sender: &str) -> Raw {
    let mut c = connect_from(from_ip, to);
    assert_eq!(c.reply().expect("greeting").0, 220);
    assert_eq!(c.cmd("EHLO mx.sender.test").expect("ehlo").0, 250);
    assert_eq!(
        c.cmd(&format!("MAIL FROM:<{sender}>")).expect("mail").0,
        250
    );
    c
}

fn rcpt(c: &mut Raw, to: &str) -> (u16, String) {
    c.cmd(&format!("RCPT TO:<{to}>")).expect("rcpt")
}

fn data(c: &mut Raw, subject: &str) -> u16 {
    assert_eq!(c.cmd("DATA").expect("data").0, 354);
    c.send(
        format!(
            "From: <news@sender.test>\r\nTo: <alice@example.test>\r\nSubject: {subject}\r\n\r\nHello.\r\n.\r\n"
        )
        .as_bytes(),
    )
    .expect("body");
    c.reply().expect("end of data").0
}

/// The zone-file owner of `ip` below a blocklist zone (relative name).
fn reversed(ip: &str) -> String {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}")
}

fn blocklists() -> DnsServer {
    let v6 = format!("1.{}", "0.".repeat(31));
    let v6 = v6.trim_end_matches('.');
    DnsServer::start(&[
        (
            "bl.test.",
            format!(
                "{} 300 IN A 127.0.0.2\n{} 300 IN TXT \"Listed for spam, see http://bl.test/q\"\n\
                 {} 300 IN A 127.0.0.2\n{v6} 300 IN A 127.0.0.2\n",
                reversed("127.0.0.2"),
                reversed("127.0.0.2"),
                reversed("127.0.0.5"),
            ),
        ),
        (
            // Answers every query with the "public resolver" refusal.
            "refused.test.",
            format!(
                "{} 300 IN A 127.255.255.254\n{} 300 IN A 127.255.255.254\n",
                reversed("127.0.0.1"),
                reversed("127.0.0.4"),
            ),
        ),
        (
            "light1.test.",
            format!("{} 300 IN A 127.0.0.3\n", reversed("127.0.0.3")),
        ),
        (
            "light2.test.",
            format!(
                "{} 300 IN A 127.0.0.3\n{} 300 IN A 127.0.0.3\n",
                reversed("127.0.0.3"),
                reversed("127.0.0.4"),
            ),
        ),
    ])
}

#[test]
fn dnsbl_refuses_listed_clients_at_rcpt() {
    let dns = blocklists();
    let server = Server::start(&format!(
        "resolver \"{}\"\n\
         listen \"smtp\" \"127.0.0.1:0\"\nlisten \"smtp\" \"[::1]:0\"\nlisten \"submissions\" \"127.0.0.1:0\"\n\
         trusted-networks \"127.0.0.5\"\n\
         inbound {{\n    checks #false\n    dnsbl threshold=2 timeout=\"5s\" {{\n        zone \"bl.test\" weight=2\n        zone \"refused.test\" weight=2\n        zone \"light1.test\"\n        zone \"light2.test\"\n    }}\n}}\n{}",
        dns.addr,
        standard_domain()
    ));
    let mx = server.addr("smtp");

    // Listed in the heavy zone: refused at RCPT, zone and reason named.
    let mut c = start_mail("127.0.0.2", mx, "news@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 554, "{text}");
    assert_eq!(
        text.trim_end(),
        "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test; Listed for spam, see http://bl.test/q"
    );
    // postmaster@ still reaches a human (RFC 5321 §4.5.1).
    let (code, text) = rcpt(&mut c, "postmaster@example.test");
    assert_eq!(code, 250, "{text}");
    assert_eq!(data(&mut c, "to postmaster"), 250);
    let _ = c.cmd("QUIT");
    assert_eq!(
        server
            .wait_for_mail("example.test", "alice", 1, Duration::from_secs(20))
            .len(),
        1
    );

    // Two light zones add up to the threshold; both are named.
    let mut c = start_mail("127.0.0.3", mx, "news@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 554, "{text}");
    assert!(
        text.contains("blocked using light1.test, light2.test"),
        "{text}"
    );
    let _ = c.cmd("QUIT");

    // One light zone alone does not; the refusal of refused.test for the
    // same client counts nothing either.
    let mut c = start_mail("127.0.0.4", mx, "news@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 250, "{text}");
    let _ = c.cmd("QUIT");

    // Only "listed" with the public-resolver refusal code: accepted and
    // delivered, the zone warned about once for all connections.
    for i in 0..2 {
        let mut c = start_mail("127.0.0.1", mx, "news@sender.test");
        let (code, text) = rcpt(&mut c, "alice@example.test");
        assert_eq!(code, 250, "{text}");
        assert_eq!(data(&mut c, &format!("refused zone {i}")), 250);
        let _ = c.cmd("QUIT");
    }
    assert_eq!(
        server
            .wait_for_mail("example.test", "alice", 3, Duration::from_secs(20))
            .len(),
        3
    );
    let warnings = server.log_lines_containing("DNS blocklist gives no usable answer");
    assert_eq!(warnings.len(), 1, "{}", server.log_text());
    assert!(warnings[0].contains("refused.test"), "{}", warnings[0]);
    assert!(warnings[0].contains("127.255.255.254"), "{}", warnings[0]);

    // A trusted network is not screened (and may relay).
    let mut c = start_mail("127.0.0.5", mx, "app@example.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 250, "{text}");
    let _ = c.cmd("QUIT");

    // Submission still works beside the screening MX (that a listed
    // client that logs in is not refused is in the SMTP dialogues).
    submit_as_alice(&server, &["alice@example.test"], "from alice");
    assert_eq!(
        server
            .wait_for_mail("example.test", "alice", 4, Duration::from_secs(20))
            .len(),
        4
    );
    // Only the MX connections were looked up: one log line per listed
    // client (127.0.0.2 and 127.0.0.3; 127.0.0.5 is trusted).
    assert_eq!(
        server.count_log("client on DNS blocklists"),
        2,
        "{}",
        server.log_text()
    );

    // IPv6: ::1 is looked up by its 32 reversed nibbles and listed.
    let v6 = server.addrs["smtp"][1];
    assert!(v6.is_ipv6());
    let mut c = start_mail("::1", v6, "news@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 554, "{text}");
    assert!(
        text.contains("client [::1] blocked using bl.test"),
        "{text}"
    );
    let _ = c.cmd("QUIT");
}

#[test]
fn dnsbl_fails_open_when_the_lists_do_not_answer() {
    // The default test resolver (127.0.0.1:9) answers nothing.
    let server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n\
         inbound {{\n    checks #false\n    dnsbl timeout=\"1s\" {{\n        zone \"bl.test\"\n    }}\n}}\n{}",
        standard_domain()
    ));
    let started = Instant::now();
    let mut c = start_mail("127.0.0.2", server.addr("smtp"), "news@sender.test");
    let waited = started.elapsed();
    // The greeting waited for the lookup, within its bound.
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 250, "{text}");
    assert_eq!(data(&mut c, "lists down"), 250);
    let _ = c.cmd("QUIT");
    assert_eq!(
        server
            .wait_for_mail("example.test", "alice", 1, Duration::from_secs(20))
            .len(),
        1
    );
}

#[test]
fn greylisting_defers_first_attempts_until_the_delay() {
    let mut server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"submissions\" \"127.0.0.1:0\"\n\
         inbound {{\n    checks #false\n    greylist delay=\"2s\" expire=\"1h\" keep=\"1d\"\n}}\n{}",
        standard_domain()
    ));
    // First attempt: 451 4.7.1; an unknown recipient is still 550.
    let mut c = start_mail("127.0.0.1", server.addr("smtp"), "News@Sender.test");
    let (code, text) = rcpt(&mut c, "nobody@example.test");
    assert_eq!(code, 550, "{text}");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("451 4.7.1 greylisted"), "{text}");
    let _ = c.cmd("QUIT");
    // An immediate retry (another host of the same /24): still deferred.
    let mut c = start_mail("127.0.0.9", server.addr("smtp"), "news@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 451, "{text}");
    let _ = c.cmd("QUIT");
    // After the delay: accepted and delivered.
    std::thread::sleep(Duration::from_millis(2200));
    let mut c = start_mail("127.0.0.1", server.addr("smtp"), "news@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 250, "{text}");
    assert_eq!(data(&mut c, "greylisted once"), 250);
    let _ = c.cmd("QUIT");
    assert_eq!(
        server
            .wait_for_mail("example.test", "alice", 1, Duration::from_secs(20))
            .len(),
        1
    );

    // The state is on disk, without addresses in clear.
    let log = std::fs::read_to_string(server.state().join("greylist/greylist.log")).unwrap();
    assert!(log.starts_with("mailc-greylist 1\n"), "{log}");
    assert!(
        !log.contains("sender.test") && !log.contains("alice"),
        "{log}"
    );

    // A crash (SIGKILL) and restart remember the pass: the next message
    // goes straight in.
    server.crash();
    server.spawn();
    let mut c = start_mail("127.0.0.1", server.addr("smtp"), "news@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 250, "{text}");
    assert_eq!(data(&mut c, "after restart"), 250);
    let _ = c.cmd("QUIT");
    // Another sender, another triplet: greylisted.
    let mut c = start_mail("127.0.0.1", server.addr("smtp"), "other@sender.test");
    let (code, text) = rcpt(&mut c, "alice@example.test");
    assert_eq!(code, 451, "{text}");
    let _ = c.cmd("QUIT");
    // Authenticated submission never is (mail-send fails on a 451).
    submit_as_alice(&server, &["alice@example.test"], "from alice");
    assert_eq!(
        server
            .wait_for_mail("example.test", "alice", 3, Duration::from_secs(20))
            .len(),
        3
    );
    assert_eq!(server.count_log("greylisted"), 3, "{}", server.log_text());
}

#[test]
fn both_are_off_by_default_and_defaults_apply() {
    let compile = |inbound: &str| {
        let text = format!(
            "hostname \"mail.example.test\"\nlisten \"lmtp\" \"127.0.0.1:24\"\ninbound {{\n{inbound}\n}}\n"
        );
        let out = mailc::compile::compile_str(
            "screen.kdl",
            std::path::Path::new("."),
            &text,
            mailc::compile::Options { offline: true },
        );
        out.compiled.expect("compiles").tables.inbound
    };
    let off = compile("    checks #true");
    assert_eq!(off.dnsbl, None);
    assert_eq!(off.greylist, None);
    let on = compile("    dnsbl {\n        zone \"Zen.Example.\"\n    }\n    greylist");
    let dnsbl = on.dnsbl.expect("dnsbl");
    assert_eq!(dnsbl.threshold, 1);
    assert_eq!(dnsbl.timeout_ms, 5000);
    assert_eq!(dnsbl.zones.len(), 1);
    assert_eq!(dnsbl.zones[0].name, "zen.example");
    assert_eq!(dnsbl.zones[0].weight, 1);
    assert!(dnsbl.zones[0].answers.is_empty());
    let grey = on.greylist.expect("greylist");
    assert_eq!(
        (grey.delay_secs, grey.expire_secs, grey.keep_secs),
        (300, 86400, 36 * 86400)
    );
    assert_eq!((grey.max_entries, grey.whitelist_after), (100_000, 5));
}

/// `mailc explain --message` says whether the blocklists list the client.
#[test]
fn explain_shows_the_listing() {
    let dns = blocklists();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::inbound::explain_config(
        dir.path(),
        &dns.addr.to_string(),
        "    checks #false\n    dnsbl {\n        zone \"bl.test\"\n    }",
    );
    let file = dir.path().join("message.eml");
    std::fs::write(&file, "From: <news@sender.test>\nSubject: hi\n\nHello.\n").expect("message");
    let explain = |ip: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
            .arg("explain")
            .arg(&config)
            .arg("--message")
            .arg(&file)
            .args(["--client-ip", ip, "--helo", "mx.sender.test"])
            .args(["--mail-from", "news@sender.test"])
            .output()
            .expect("mailc runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = explain("127.0.0.2");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("dnsbl: 127.0.0.2 listed, score 1 of 1; every recipient but postmaster@ refused at RCPT: 554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test; Listed for spam"),
        "{text}"
    );
    let (code, text) = explain("127.0.0.4");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("dnsbl: 127.0.0.4 not listed"), "{text}");
}
