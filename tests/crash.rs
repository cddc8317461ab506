//! Crash test: concurrent clients send messages while the server is killed
//! with SIGKILL at random moments and restarted. Every message that got a
//! 250 must end up in each recipient's Maildir exactly once; a message
//! without a 250 may be there at most once.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::crash_client::{Outcome, client};
use common::server::{Server, standard_domain};

const CLIENTS: usize = 8;
const CRASHES: usize = 5;

fn count_by_subject(server: &Server, local: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for f in server.maildir_files("example.test", local) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        if let Some(subject) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
            *counts.entry(subject.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Kills the server with SIGKILL `crashes` times at random moments,
/// restarting it each time and pointing the clients at its new port.
fn crash_repeatedly(server: &mut Server, addr: &Arc<Mutex<SocketAddr>>, crashes: usize) {
    let mut rng: u64 = Instant::now().elapsed().as_nanos() as u64
        ^ 0x9E37_79B9_7F4A_7C15
        ^ std::process::id() as u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..crashes {
        std::thread::sleep(Duration::from_millis(300 + next() % 700));
        server.crash();
        std::thread::sleep(Duration::from_millis(next() % 100));
        server.spawn();
        *addr.lock().unwrap() = server.addr("smtp");
    }
}

#[test]
fn kill_9_never_loses_or_duplicates_acknowledged_mail() {
    let mut server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain().replace(" quota=\"1MiB\"", "")
    ));
    let addr = Arc::new(Mutex::new(server.addr("smtp")));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                client(n, addr, stop, &["alice@example.test", "bob@example.test"])
            })
        })
        .collect();

    crash_repeatedly(&mut server, &addr, CRASHES);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let acked: Vec<&String> = outcomes.iter().flat_map(|o| &o.acked).collect();
    let unacked: Vec<&String> = outcomes.iter().flat_map(|o| &o.unacked).collect();
    assert!(
        acked.len() >= 200,
        "only {} messages acknowledged: the test exercised too little",
        acked.len()
    );

    // Let the last server deliver everything still queued.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !server.queue_entries().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.queue_entries().is_empty(), "the queue did not drain");
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));

    for local in ["alice", "bob"] {
        let counts = count_by_subject(&server, local);
        for tag in &acked {
            assert_eq!(
                counts.get(*tag).copied().unwrap_or(0),
                1,
                "acknowledged {tag} in {local}'s Maildir {} times",
                counts.get(*tag).copied().unwrap_or(0)
            );
        }
        for tag in &unacked {
            assert!(
                counts.get(*tag).copied().unwrap_or(0) <= 1,
                "unacknowledged {tag} delivered twice to {local}"
            );
        }
        let known: usize = acked.len() + unacked.len();
        assert!(counts.len() <= known, "messages nobody sent appeared");
    }
    eprintln!(
        "crash test: {} acknowledged, {} unacknowledged, {} crashes, every acknowledged message delivered exactly once",
        acked.len(),
        unacked.len(),
        CRASHES
    );
}

/// Outbound under kill -9: clients on a trusted network relay through the
/// server to a remote MX (a second mailc on 127.0.0.2, found by MX records
/// from a DNS server on loopback) while the server is killed and restarted.
/// Every acknowledged message reaches the remote mailbox at least once;
/// SMTP's at-least-once rule allows duplicates (a crash between the remote
/// 250 and recording it), which are counted and reported.
#[test]
fn kill_9_during_outbound_delivery_loses_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let remote = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.2:{port}\"\ndomain \"remote.test\" {{\n    mailbox \"carol\"\n    alias \"postmaster\" to=\"carol@remote.test\"\n}}\n"
    ));
    let dns = common::dns_server::DnsServer::start(&[(
        "remote.test.",
        "@ 300 IN MX 10 mx.remote.test.\nmx 300 IN A 127.0.0.2\n".to_string(),
    )]);
    let mut server = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\ntrusted-networks \"127.0.0.1/32\"\nresolver \"{}\"\noutbound {{\n    port {port}\n}}\n{}",
        dns.addr,
        standard_domain()
    ));
    let addr = Arc::new(Mutex::new(server.addr("smtp")));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..CLIENTS / 2)
        .map(|n| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || client(n, addr, stop, &["carol@remote.test"]))
        })
        .collect();
    crash_repeatedly(&mut server, &addr, CRASHES);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let acked: Vec<&String> = outcomes.iter().flat_map(|o| &o.acked).collect();
    assert!(acked.len() >= 100, "only {} acknowledged", acked.len());
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !server.queue_entries().is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        server.queue_entries().is_empty(),
        "the queue did not drain: {:?}",
        server.queue_entries().first()
    );
    while Instant::now() < deadline && !remote.queue_entries().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for f in remote.maildir_files("remote.test", "carol") {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        if let Some(subject) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
            *counts.entry(subject.to_string()).or_insert(0) += 1;
        }
    }
    let missing: Vec<&&String> = acked.iter().filter(|t| !counts.contains_key(**t)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never arrived: {missing:?}"
    );
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "outbound crash test: {} acknowledged, {} crashes, all arrived, {duplicates} duplicate deliveries",
        acked.len(),
        CRASHES
    );
}
