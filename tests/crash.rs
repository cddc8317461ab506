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

use common::server::{Raw, Server, standard_domain};

const CLIENTS: usize = 8;
const CRASHES: usize = 5;

struct Outcome {
    acked: Vec<String>,
    unacked: Vec<String>,
}

fn client(n: usize, addr: Arc<Mutex<SocketAddr>>, stop: Arc<AtomicBool>) -> Outcome {
    let mut out = Outcome {
        acked: Vec::new(),
        unacked: Vec::new(),
    };
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let target = *addr.lock().unwrap();
        let Ok(mut c) = Raw::try_connect(target) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        // Hammering a dead server's port (from the ephemeral range) can make
        // Linux connect the socket to itself; that is not a server.
        if c.stream.local_addr().ok() == c.stream.peer_addr().ok() {
            continue;
        }
        // A connection that was still in the backlog of a server killed a
        // moment later can sit without a reset; a real client times out too.
        let _ = c.stream.set_read_timeout(Some(Duration::from_secs(3)));
        let greeted = c.reply().map(|r| r.0 == 220).unwrap_or(false)
            && c.cmd("EHLO crash").map(|r| r.0 == 250).unwrap_or(false);
        if !greeted {
            continue;
        }
        // Several messages per connection, until something breaks.
        while !stop.load(Ordering::Relaxed) {
            seq += 1;
            let tag = format!("crash-{n}-{seq}");
            let body = format!(
                "Subject: {tag}\r\nMessage-ID: <{tag}@test>\r\n\r\n{}\r\n",
                "line of text ".repeat(40)
            );
            match c.send_mail(
                "sender@remote.example",
                &["alice@example.test", "bob@example.test"],
                &body,
            ) {
                Ok(250) => out.acked.push(tag),
                Ok(_) => out.unacked.push(tag),
                Err(_) => {
                    out.unacked.push(tag);
                    break;
                }
            }
        }
    }
    out
}

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
            std::thread::spawn(move || client(n, addr, stop))
        })
        .collect();

    let mut rng: u64 = Instant::now().elapsed().as_nanos() as u64
        ^ 0x9E37_79B9_7F4A_7C15
        ^ std::process::id() as u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..CRASHES {
        std::thread::sleep(Duration::from_millis(300 + next() % 700));
        server.crash();
        std::thread::sleep(Duration::from_millis(next() % 100));
        server.spawn();
        *addr.lock().unwrap() = server.addr("smtp");
    }
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
