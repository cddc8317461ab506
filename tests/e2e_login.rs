//! Logins end to end with the real binary and real argon2id hashes (19 MiB,
//! t=2): many at once all finish and never more checks run at once than
//! there are verifier threads; a repeated login is answered from the
//! verified-credentials cache; a wrong password after a right one still
//! fails; a rewritten password file and a reload are never served from the
//! cache; `auth-cache enabled=#false` turns it off.
//!
//! The evidence is the server's own debug log: every password check logs
//! `password checked running=K peak=P` (K: checks in progress at that
//! moment), every login logs `cached=true|false`; and the thread names in
//! /proc show how many verifier threads exist. Nothing here measures time.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::server::{ALICE_HASH, Server, standard_domain};

fn imap_listener() -> &'static str {
    "listen \"imap\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\n\
     limits {\n    max-connections-per-ip 200\n}\n"
}

/// Logs in over plaintext IMAP and returns the tagged reply.
fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("* OK"), "{line}");
    s.write_all(format!("a LOGIN {user} \"{password}\"\r\n").as_bytes())
        .unwrap();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "connection closed");
        if line.starts_with("a ") {
            let _ = s.write_all(b"b LOGOUT\r\n");
            return line.trim_end().to_string();
        }
    }
}

/// Waits (bounded) until the log has at least `n` lines containing `needle`.
fn wait_count(server: &Server, needle: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = server.count_log(needle);
        if c >= n || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Numbers `running=K` of every "password checked" line.
fn running_values(server: &Server) -> Vec<usize> {
    server
        .log_lines_containing("password checked")
        .iter()
        .filter_map(|l| {
            l.split("running=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Threads named `mailc-verify`. A new thread names itself when it first
/// runs, so this waits (bounded) for `expected` before answering.
fn verifier_threads(pid: u32, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count_verifier_threads(pid);
        if n == expected || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count_verifier_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "mailc-verify")
        })
        .count()
}

#[test]
fn parallel_logins_are_bounded_then_cached() {
    let server = Server::start(&format!("{}{}", imap_listener(), standard_domain()));
    let addr = server.addr("imap");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One verifier thread per core: password checks run nowhere else.
    assert_eq!(verifier_threads(server.pid(), cores), cores);

    // First logins one by one: opening a mailbox for the first time from
    // many sessions at once is not what this test is about. Then a reload
    // (same config) empties the cache.
    for user in ["alice", "bob"] {
        let r = login(addr, &format!("{user}@example.test"), "secret");
        assert!(r.starts_with("a OK"), "{r}");
    }
    assert_eq!(wait_count(&server, "cached=false", 2), 2);
    server.signal("HUP");
    assert!(server.wait_log("reloaded", Duration::from_secs(30)));
    let primed = server.count_log("password checked");
    assert_eq!(primed, 2);

    // Many clients at once, each with a real argon2id check to do: every
    // one gets in (the queue holds 64 per core; these are far fewer).
    let clients = 4 * cores + 4;
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            std::thread::spawn(move || login(addr, &format!("{user}@example.test"), "secret"))
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert!(r.starts_with("a OK"), "{r}\n{}", server.log_text());
    }
    let clients = clients + 2; // with the two before
    assert_eq!(wait_count(&server, "cached=", clients), clients);
    let checks = server.count_log("password checked");
    // Every login either ran a check or found one that had finished.
    assert_eq!(
        checks + server.count_log("cached=true"),
        clients,
        "{}",
        server.log_text()
    );
    let running = running_values(&server);
    assert_eq!(running.len(), checks);
    assert!(
        running.iter().all(|&k| (1..=cores).contains(&k)),
        "checks at once {running:?} with {cores} verifier threads"
    );

    // Now alice is remembered: her next login runs no check.
    let r = login(addr, "alice@example.test", "secret");
    assert!(r.starts_with("a OK"), "{r}");
    assert_eq!(wait_count(&server, "cached=", clients + 1), clients + 1);
    let last = server.log_lines_containing("cached=").pop().unwrap();
    assert!(last.contains("cached=true"), "{last}");
    assert_eq!(server.count_log("password checked"), checks);

    // A wrong password after the right one is checked in full and fails.
    let r = login(addr, "alice@example.test", "Secret");
    assert!(r.starts_with("a NO"), "{r}");
    assert_eq!(wait_count(&server, "login failed", 1), 1);
    assert_eq!(server.count_log("password checked"), checks + 1);
    // And the right one still works, from the cache.
    assert!(login(addr, "alice@example.test", "secret").starts_with("a OK"));
    assert_eq!(wait_count(&server, "cached=", clients + 2), clients + 2);
    let last = server.log_lines_containing("cached=").pop().unwrap();
    assert!(last.contains("cached=true"), "{last}");
    assert_eq!(server.count_log("password checked"), checks + 1);
    // Still one thread per core after the flood.
    assert_eq!(count_verifier_threads(server.pid()), cores);
}

#[test]
fn a_new_password_is_never_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let carol = dir.path().join("carol.hash");
    let write_hash = |password: &str| {
        let tmp = dir.path().join("carol.hash.new");
        std::fs::write(
            &tmp,
            mailc::auth::password::hash_argon2id(password.as_bytes()),
        )
        .unwrap();
        std::fs::rename(&tmp, &carol).unwrap();
    };
    write_hash("one");
    let domain = |alice_hash: &str| {
        format!(
            "domain \"example.test\" {{\n    dkim selector=\"s1\" generate=#true\n    dmarc policy=\"none\"\n    \
             mailbox \"alice\" password=\"{alice_hash}\" {{\n        alias \"postmaster\"\n    }}\n    \
             mailbox \"carol\" password-file=\"{}\"\n}}\n",
            carol.display()
        )
    };
    let mut server = Server::start(&format!("{}{}", imap_listener(), domain(ALICE_HASH)));
    let addr = server.addr("imap");

    // A password file: cached after the first login...
    assert!(login(addr, "carol@example.test", "one").starts_with("a OK"));
    assert!(login(addr, "carol@example.test", "one").starts_with("a OK"));
    assert_eq!(wait_count(&server, "cached=", 2), 2);
    assert_eq!(server.count_log("cached=true"), 1);
    // ...and once the file is replaced, the old password fails at once
    // (well within the TTL) and the new one works.
    write_hash("two");
    assert!(login(addr, "carol@example.test", "one").starts_with("a NO"));
    assert!(login(addr, "carol@example.test", "two").starts_with("a OK"));
    assert_eq!(wait_count(&server, "cached=", 3), 3);
    assert_eq!(server.count_log("cached=true"), 1);

    // An inline hash: cached, then the config changes it and is reloaded.
    assert!(login(addr, "alice@example.test", "secret").starts_with("a OK"));
    assert!(login(addr, "alice@example.test", "secret").starts_with("a OK"));
    assert_eq!(wait_count(&server, "cached=", 5), 5);
    assert_eq!(server.count_log("cached=true"), 2);
    let fresh = mailc::auth::password::hash_argon2id(b"fresh");
    let config = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(&server.config, config.replace(ALICE_HASH, &fresh)).unwrap();
    server.signal("HUP");
    assert!(server.wait_log("reloaded", Duration::from_secs(30)));
    assert!(login(addr, "alice@example.test", "secret").starts_with("a NO"));
    assert!(login(addr, "alice@example.test", "fresh").starts_with("a OK"));
    assert_eq!(wait_count(&server, "cached=", 6), 6);
    assert_eq!(server.count_log("cached=true"), 2, "{}", server.log_text());
    server.stop();
}

#[test]
fn the_cache_can_be_turned_off() {
    let server = Server::start(&format!(
        "{}auth-cache enabled=#false\n{}",
        imap_listener(),
        standard_domain()
    ));
    let addr = server.addr("imap");
    for _ in 0..3 {
        assert!(login(addr, "alice@example.test", "secret").starts_with("a OK"));
    }
    assert_eq!(wait_count(&server, "password checked", 3), 3);
    assert_eq!(wait_count(&server, "cached=false", 3), 3);
    assert_eq!(server.count_log("cached=true"), 0);
}
