//! Outbound delivery end to end, all on loopback: the real `mailc serve`
//! sends to a second `mailc serve` acting as the remote MX on 127.0.0.2,
//! finding it through MX records served by a real DNS server (hickory) on
//! 127.0.0.1. Submission is DKIM-signed and verified against the published
//! key; null MX and unknown domains bounce with one DSN; a deferred message
//! survives a restart and is delivered after `mailc queue flush`; delay
//! warnings and expiry follow the message's age as recorded in the queue.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::server::{ALICE_HASH, Server, standard_domain, submit_as_alice};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A port free on 127.0.0.2 now (the remote MX binds it next).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    l.local_addr().unwrap().port()
}

fn zones() -> Vec<(&'static str, String)> {
    vec![
        (
            "remote.test.",
            "@ 300 IN MX 10 mx.remote.test.\nmx 300 IN A 127.0.0.2\n".to_string(),
        ),
        ("nullmx.test.", "@ 300 IN MX 0 .\n".to_string()),
        // The preferred MX (127.0.0.3) has nothing listening: the next one
        // takes the mail.
        (
            "fallback.test.",
            "@ 300 IN MX 10 dead.fallback.test.\n@ 300 IN MX 20 mx.remote.test.\ndead 300 IN A 127.0.0.3\n"
                .to_string(),
        ),
    ]
}

/// The remote side: a mailc for `remote.test` on 127.0.0.2:`port`.
fn remote_mx(port: u16) -> Server {
    Server::start(&format!(
        "listen \"smtp\" \"127.0.0.2:{port}\"\ndomain \"remote.test\" {{\n    mailbox \"carol\" password=\"{ALICE_HASH}\"\n    mailbox \"dave\" password=\"{ALICE_HASH}\"\n    alias \"postmaster\" to=\"carol@remote.test\"\n}}\ndomain \"fallback.test\" {{\n    alias \"erin\" to=\"carol@remote.test\"\n    alias \"postmaster\" to=\"carol@remote.test\"\n}}\n"
    ))
}

/// The server under test: example.test, submission and MX on 127.0.0.1,
/// outbound to `port`, DNS from `dns`.
fn sender(dns: SocketAddr, port: u16, extra: &str) -> Server {
    Server::start(&format!(
        "listen \"submissions\" \"127.0.0.1:0\"\nlisten \"smtp\" \"127.0.0.1:0\"\nresolver \"{dns}\"\noutbound {{\n    port {port}\n}}\n{}{extra}",
        standard_domain()
    ))
}

fn mailc(args: &[&str], config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(args)
        .arg(config)
        .output()
        .unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(files: &[std::path::PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

#[test]
fn submission_is_dkim_signed_and_relayed_to_the_mx() {
    let dns = DnsServer::start(&zones());
    let port = free_port();
    let remote = remote_mx(port);
    let local = sender(dns.addr, port, "");
    submit_as_alice(
        &local,
        &["carol@remote.test", "dave@remote.test"],
        "to the remote MX",
    );
    let carol = remote.wait_for_mail("remote.test", "carol", 1, Duration::from_secs(20));
    let dave = remote.wait_for_mail("remote.test", "dave", 1, Duration::from_secs(20));
    assert_eq!(
        carol.len(),
        1,
        "{}\n---\n{}",
        local.log_text(),
        remote.log_text()
    );
    assert_eq!(dave.len(), 1);
    let text = &read(&carol)[0];
    assert!(text.contains("Subject: to the remote MX"), "{text}");
    assert!(text.contains("DKIM-Signature:"), "signed: {text}");
    assert!(text.contains("d=example.test"), "{text}");
    // Both recipients went in one transaction over one connection.
    assert_eq!(remote.count_log("queued id="), 1, "{}", remote.log_text());
    // The signature verifies against the key mailc publishes.
    let key = local.state().join("dkim/example.test/s1.key");
    let public = mailc::dns::keys::public_key_b64(&key, mailc::tables::DkimAlgorithm::Rsa).unwrap();
    let mut record = format!("v=DKIM1; k=rsa; p={public}");
    let mut txt = String::new();
    while !record.is_empty() {
        let n = record.len().min(200);
        txt.push_str(&format!("\"{}\" ", &record[..n]));
        record = record[n..].to_string();
    }
    let keys = DnsServer::start(&[("example.test.", format!("s1._domainkey 300 IN TXT {txt}\n"))]);
    let body = std::fs::read(&carol[0]).unwrap();
    let verdicts = rt().block_on(async {
        let resolver = mailc::dns::live::resolver(Some(keys.addr)).unwrap();
        let auth = mail_auth::MessageAuthenticator(resolver);
        let parsed = mail_auth::AuthenticatedMessage::parse(&body).unwrap();
        auth.verify_dkim(&parsed)
            .await
            .iter()
            .map(|o| matches!(o.result(), mail_auth::DkimResult::Pass))
            .collect::<Vec<_>>()
    });
    assert_eq!(verdicts, vec![true], "the DKIM signature verifies");
    // The entry left the queue.
    wait_until("an empty queue", Duration::from_secs(10), || {
        local.queue_entries().is_empty()
    });
}

#[test]
fn a_dead_preferred_mx_falls_back_to_the_next() {
    let dns = DnsServer::start(&zones());
    let port = free_port();
    let remote = remote_mx(port);
    let local = sender(dns.addr, port, "");
    submit_as_alice(&local, &["erin@fallback.test"], "fallback");
    let carol = remote.wait_for_mail("remote.test", "carol", 1, Duration::from_secs(30));
    assert_eq!(carol.len(), 1, "{}", local.log_text());
    assert!(read(&carol)[0].contains("Subject: fallback"));
    wait_until("an empty queue", Duration::from_secs(10), || {
        local.queue_entries().is_empty()
    });
}

#[test]
fn null_mx_and_unknown_domains_bounce_once() {
    let dns = DnsServer::start(&zones());
    let port = free_port();
    let local = sender(dns.addr, port, "");
    submit_as_alice(
        &local,
        &["someone@nullmx.test", "nobody@nxdomain.test"],
        "nowhere to go",
    );
    let files = local.wait_for_mail("example.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(files.len(), 1, "{}", local.log_text());
    // One DSN for both recipients, and no second one.
    std::thread::sleep(Duration::from_secs(2));
    let files = local.maildir_files("example.test", "alice");
    assert_eq!(files.len(), 1, "exactly one DSN");
    let dsn = &read(&files)[0];
    assert!(dsn.contains("Return-Path: <>"), "{dsn}");
    assert!(dsn.contains("multipart/report"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; someone@nullmx.test"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@nxdomain.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.1.10"), "null MX: {dsn}");
    assert!(dsn.contains("Status: 5.1.2"), "unknown domain: {dsn}");
    assert!(
        dsn.contains("Subject: nowhere to go"),
        "original headers: {dsn}"
    );
    wait_until("an empty queue", Duration::from_secs(10), || {
        local.queue_entries().is_empty()
    });
}

/// Rewrites the recorded arrival time of every queued entry (the state file
/// the server reads at start) — how a test makes a message old.
fn age_queue(server: &Server, by_secs: u64) {
    let dir = server.state().join("queue/state");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let t = v["received-at"].as_u64().unwrap();
        v["received-at"] = (t - by_secs).into();
        if let Some(ds) = v["deliveries"].as_array_mut() {
            for d in ds {
                d["next-attempt"] = 0.into();
            }
        }
        std::fs::write(e.path(), serde_json::to_vec(&v).unwrap()).unwrap();
        n += 1;
    }
    assert!(n > 0, "a queued entry has a state file");
}

#[test]
fn deferred_mail_survives_a_restart_warns_and_is_delivered_after_flush() {
    let dns = DnsServer::start(&zones());
    let port = free_port();
    // No MX running yet: the first attempt is refused and deferred.
    let mut local = sender(dns.addr, port, "");
    submit_as_alice(&local, &["carol@remote.test"], "later");
    wait_until("a deferred attempt", Duration::from_secs(20), || {
        local.queue_entries().iter().any(|e| {
            e["deliveries"][0]["attempts"].as_u64() == Some(1)
                && e["deliveries"][0]["last-error"].is_string()
        })
    });
    let show = mailc(&["queue", "list"], &local.config);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("carol@remote.test"),
        "{show:?}"
    );
    // Restart, five hours "later": the schedule is kept and the sender gets
    // a delay warning.
    local.stop();
    age_queue(&local, 5 * 3600);
    local.spawn();
    let files = local.wait_for_mail("example.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(files.len(), 1, "a delay warning: {}", local.log_text());
    let warning = &read(&files)[0];
    assert!(warning.contains("Action: delayed"), "{warning}");
    assert!(warning.contains("Will-Retry-Until:"), "{warning}");
    let entries = local.queue_entries();
    assert_eq!(entries.len(), 1, "still queued after the warning");
    // The MX comes up; a flush delivers at once.
    let remote = remote_mx(port);
    // Flushing another domain leaves it waiting; flushing its own sends it.
    let flush = |target: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
            .args(["queue", "flush"])
            .arg(&local.config)
            .arg(target)
            .output()
            .unwrap()
    };
    let out = flush("elsewhere.test");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 entries"),
        "{out:?}"
    );
    let out = flush("remote.test");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 entries"),
        "{out:?}"
    );
    let carol = remote.wait_for_mail("remote.test", "carol", 1, Duration::from_secs(20));
    assert_eq!(carol.len(), 1, "{}", local.log_text());
    wait_until("an empty queue", Duration::from_secs(10), || {
        local.queue_entries().is_empty()
    });
    // One warning, no bounce.
    assert_eq!(local.maildir_files("example.test", "alice").len(), 1);
}

#[test]
fn an_expired_message_bounces_with_one_dsn() {
    let dns = DnsServer::start(&zones());
    let port = free_port();
    let mut local = sender(dns.addr, port, "");
    submit_as_alice(&local, &["carol@remote.test"], "too late");
    wait_until("a deferred attempt", Duration::from_secs(20), || {
        local
            .queue_entries()
            .iter()
            .any(|e| e["deliveries"][0]["attempts"].as_u64() == Some(1))
    });
    local.stop();
    age_queue(&local, 6 * 86400);
    local.spawn();
    // Past its expiry a message gets no delay warning: the next failed
    // attempt bounces it, with exactly one DSN.
    wait_until("an empty queue", Duration::from_secs(30), || {
        local.queue_entries().is_empty()
    });
    let texts = read(&local.maildir_files("example.test", "alice"));
    let bounces: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("Action: failed"))
        .collect();
    assert_eq!(bounces.len(), 1, "one bounce: {texts:?}");
    assert_eq!(texts.len(), 1, "nothing else: {texts:?}");
    assert!(bounces[0].contains("Status: 4.4.7"), "{}", bounces[0]);
}

#[test]
fn forwarded_mail_gets_an_srs_sender_and_bounces_come_back() {
    let dns = DnsServer::start(&zones());
    let port = free_port();
    let remote = remote_mx(port);
    let local = sender(
        dns.addr,
        port,
        "domain \"fwd.test\" {\n    alias \"carol\" to=\"carol@remote.test\"\n    alias \"postmaster\" to=\"alice@example.test\"\n}\n",
    );
    let mut c = common::server::Raw::connect(local.addr("smtp"));
    assert_eq!(c.reply().unwrap().0, 220);
    assert_eq!(c.cmd("EHLO origin.example").unwrap().0, 250);
    let code = c
        .send_mail(
            "dave@remote.test",
            &["carol@fwd.test"],
            "From: dave@remote.test\r\nTo: carol@fwd.test\r\nSubject: forwarded\r\n\r\nhi\r\n",
        )
        .unwrap();
    assert_eq!(code, 250);
    let carol = remote.wait_for_mail("remote.test", "carol", 1, Duration::from_secs(20));
    assert_eq!(carol.len(), 1, "{}", local.log_text());
    let text = &read(&carol)[0];
    let rp = text
        .lines()
        .find(|l| l.starts_with("Return-Path:"))
        .unwrap()
        .to_string();
    assert!(rp.contains("SRS0="), "{rp}");
    assert!(rp.contains("@fwd.test>"), "{rp}");
    assert!(rp.contains("remote.test"), "{rp}");
    // Forwarded mail is not signed by us.
    assert!(!text.contains("DKIM-Signature:"), "{text}");
    // A bounce to the SRS address finds its way back to the original sender.
    let srs = rp
        .trim_start_matches("Return-Path:")
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    let mut c = common::server::Raw::connect(local.addr("smtp"));
    assert_eq!(c.reply().unwrap().0, 220);
    assert_eq!(c.cmd("EHLO mx.remote.test").unwrap().0, 250);
    let code = c
        .send_mail(
            "",
            &[&srs],
            "From: MAILER-DAEMON@remote.test\r\nSubject: bounce of forwarded\r\n\r\nno\r\n",
        )
        .unwrap();
    assert_eq!(code, 250);
    let dave = remote.wait_for_mail("remote.test", "dave", 1, Duration::from_secs(20));
    assert_eq!(dave.len(), 1, "{}", local.log_text());
    assert!(read(&dave)[0].contains("bounce of forwarded"));
    // A forged SRS address is refused.
    assert_eq!(c.cmd("MAIL FROM:<>").unwrap().0, 250);
    let forged = srs.replacen("SRS0=", "SRS0=AAAA", 1);
    assert_eq!(c.cmd(&format!("RCPT TO:<{forged}>")).unwrap().0, 550);
}

/// `outbound { dane #false; mta-sts #false }` turn the lookups off, each on
/// its own. The sender's resolver is a forwarder that records every query
/// and sets the AD bit (a validating resolver's "secure"), so that with
/// DANE on, the MX RRset counts as signed and the TLSA query is made.
#[test]
fn outbound_dane_and_mta_sts_switches_stop_their_lookups() {
    use common::dns_server::CountingProxy;
    use hickory_resolver::proto::rr::RecordType;
    // remote.test publishes an MTA-STS TXT record: with MTA-STS on, the
    // policy host is looked up for the fetch (it has no address: the
    // fetch fails and delivery goes on without a policy).
    let dns = DnsServer::start(&[(
        "remote.test.",
        "@ 300 IN MX 10 mx.remote.test.\nmx 300 IN A 127.0.0.2\n_mta-sts 300 IN TXT \"v=STSv1; id=20261203\"\n"
            .to_string(),
    )]);
    let port = free_port();
    let remote = remote_mx(port);
    let run = |switches: &str, n: usize| {
        let proxy = CountingProxy::start(dns.addr, true);
        let local = Server::start(&format!(
            "listen \"submissions\" \"127.0.0.1:0\"\nresolver \"{}\"\noutbound {{\n    port {port}\n{switches}}}\n{}",
            proxy.addr,
            standard_domain()
        ));
        submit_as_alice(&local, &["carol@remote.test"], "policy switches");
        let got = remote.wait_for_mail("remote.test", "carol", n, Duration::from_secs(20));
        assert_eq!(got.len(), n, "{}", local.log_text());
        assert!(
            proxy.asked("remote.test", RecordType::MX),
            "the MX is looked up"
        );
        (
            // The TLSA name carries the port delivery uses (`outbound { port }`).
            proxy.asked(&format!("_{port}._tcp.mx.remote.test"), RecordType::TLSA),
            proxy.asked("_mta-sts.remote.test", RecordType::TXT),
            proxy.queries().iter().any(|q| q.dnssec_ok),
            proxy.asked("mta-sts.remote.test", RecordType::A),
        )
    };
    // Defaults: both policies are looked for.
    let (tlsa, sts, dnssec, fetch) = run("", 1);
    assert!(tlsa, "DANE on: TLSA query");
    assert!(sts, "MTA-STS on: the policy's TXT record is asked for");
    assert!(fetch, "MTA-STS on: the policy host is looked up to fetch");
    assert!(dnssec);
    // DANE off: no DNSSEC query at all, no TLSA; MTA-STS still asked.
    let (tlsa, sts, dnssec, _) = run("    dane #false\n", 2);
    assert!(!tlsa && !dnssec, "DANE off: no TLSA, no DNSSEC query");
    assert!(sts);
    // MTA-STS off: no TXT lookup, no fetch (no address of mta-sts.); DANE
    // still looked up.
    let (tlsa, sts, _, fetch) = run("    mta-sts #false\n", 3);
    assert!(!sts && !fetch, "MTA-STS off: no policy lookup or fetch");
    assert!(tlsa);
}
