//! `mailc tls rollover CONFIG [--force] [--resolver ADDR] [--wait SECS]`:
//! the "switch" step of the DANE key rollover (RFC 7671 §8.1).
//!
//! Refuses unless `dane #true`, unless the next key's TLSA `3 1 1` record
//! is live at `_25._tcp.<hostname>` (asked of `--resolver`, else the
//! configuration's first `resolver`, else the system's), and unless it has
//! been seen live for the TTL (`--force` skips the wait, never the
//! publication). Then it records the request in `<state>/tls/` and:
//!
//! - with ACME, the running server (which polls for the request) orders a
//!   certificate on the next key, swaps it in, and makes a fresh next key;
//!   this command waits up to `--wait` seconds for it (exit 0 done, 1
//!   failed, 3 still pending: the server carries it out when it runs);
//! - with certificate files, it writes a CSR on the next key and says what
//!   the admin must do; it never touches the certificate files.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::compile::{self, Options};
use crate::dns::dane::{self, KeyPaths};
use crate::dns::live;
use crate::dns::rollover::{self, Readiness, Request};
use crate::tables::{CertSource, Tables};

/// Exit status when the server has not carried out the request in time.
pub const PENDING: i32 = 3;

pub fn run(config: &Path, resolver: Option<SocketAddr>, force: bool, wait_secs: u64) -> i32 {
    let out = compile::compile_file(config, Options { offline: true });
    let Some(c) = out.compiled else {
        super::report_failure(config, &out);
        return 1;
    };
    match rollover(&c.tables, config, resolver, force, wait_secs) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailc tls rollover: {e}");
            1
        }
    }
}

fn rollover(
    tables: &Tables,
    config: &Path,
    resolver: Option<SocketAddr>,
    force: bool,
    wait_secs: u64,
) -> Result<i32, String> {
    if !tables.dane {
        return Err(
            "the configuration does not say `dane #true`: there is no TLSA record to roll over"
                .into(),
        );
    }
    let Some(p) = dane::key_paths(tables) else {
        return Err("no certificate is configured for the host name".into());
    };
    super::dns::report_settled(
        "tls rollover",
        &p,
        rollover::settle(&p, crate::services::unix_now()),
    );
    let keys = dane::tlsa_keys(tables)?.ok_or("no DANE keys")?;
    let next = keys.next.clone().ok_or("no next key")?;
    let current = keys
        .current
        .clone()
        .ok_or_else(|| format!("no certificate on disk at {}", p.cert.display()))?;
    if let Some(r) = rollover::read_request(&p)
        && r.next == next
        && r.error.is_none()
    {
        println!(
            "a switch to the next key {} was already asked for at {}; asking again",
            short(&next),
            r.requested_at
        );
    }

    // What DNS says now.
    let server = resolver.or_else(|| tables.resolvers.first().copied());
    let name = server.map_or_else(|| "system".to_string(), |a| a.to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let live_tlsa = runtime
        .block_on(async {
            let r = live::resolver(server)?;
            live::live_tlsa(&r, &p.host).await
        })
        .map_err(|e| format!("looking up _25._tcp.{} (resolver {name}): {e}", p.host))?;
    let now = crate::services::unix_now();
    let seen = rollover::observe(&p, &next, live_tlsa.contains(&next), live_tlsa.ttl, now)?;
    // mailc's TTL, or the longer one the zone publishes the RRset with.
    let wait = rollover::wait_for(seen.as_ref().map_or(live_tlsa.ttl, |s| s.ttl));
    match rollover::readiness(seen.map(|s| s.first_seen), now, wait) {
        Readiness::NotPublished => {
            return Err(format!(
                "the next key's record `_25._tcp.{} TLSA 3 1 1 {next}` is not published (resolver {name} has {}); publish it (`mailc dns {}`), wait the TTL ({wait}s), then run this again",
                p.host,
                if live_tlsa.data.is_empty() {
                    "no TLSA 3 1 1 record there".to_string()
                } else {
                    live_tlsa
                        .data
                        .iter()
                        .map(|h| short(h))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                config.display()
            ));
        }
        Readiness::Waiting { since, left } if !force => {
            return Err(format!(
                "the next key's record has been seen published for {}s only; senders may still have the old RRset cached: wait {left}s more (the TTL is {wait}s), or pass --force if you know it has been live long enough",
                now.saturating_sub(since)
            ));
        }
        Readiness::Waiting { .. } => {
            println!("--force: not waiting for the TTL");
        }
        Readiness::Ready { .. } => {}
    }
    if !live_tlsa.contains(&current) {
        eprintln!(
            "mailc tls rollover: warning: the current key's record {} is not published either",
            short(&current)
        );
    }
    rollover::write_request(
        &p,
        &Request {
            next: next.clone(),
            from: Some(current.clone()),
            requested_at: now,
            error: None,
        },
    )?;
    let chosen = chosen_source(tables, &p);
    match chosen {
        Some(CertSource::Acme(_)) => acme(&p, config, &next, &current, wait_secs, wait),
        _ => files(&p, tables, config, &next),
    }
}

fn short(hex: &str) -> String {
    format!("{}…", &hex[..hex.len().min(12)])
}

/// The certificate source whose files `key_paths` chose.
fn chosen_source<'a>(tables: &'a Tables, p: &KeyPaths) -> Option<&'a CertSource> {
    tables.tls.iter().map(|c| &c.source).find(|s| match s {
        CertSource::Files { cert, .. } | CertSource::SelfSigned { cert, .. } => *cert == p.cert,
        CertSource::Acme(a) => a.cert == p.cert,
    })
}

/// ACME: the server carries the request out; wait for it.
fn acme(
    p: &KeyPaths,
    config: &Path,
    next: &str,
    current: &str,
    wait_secs: u64,
    ttl: u64,
) -> Result<i32, String> {
    println!(
        "asked the server to renew the certificate on the next key {} (request {})",
        short(next),
        rollover::tls_file(p, rollover::REQUEST_FILE).display()
    );
    let deadline = Instant::now() + Duration::from_secs(wait_secs);
    loop {
        if let Some(s) = rollover::read_switch(p).filter(|s| s.to == next)
            && rollover::read_request(p).is_none_or(|r| r.next != next)
        {
            let fresh = dane::key_spki_sha256(&p.next_key)?;
            println!(
                "switched: the server now serves a certificate on key {} (at {})",
                short(&s.to),
                s.at
            );
            println!("new next key {}: publish its record:", p.next_key.display());
            println!("  _25._tcp.{}. IN TLSA 3 1 1 {fresh}", p.host);
            println!(
                "retire the old record once senders' caches have expired (the TTL, {ttl}s):\n  _25._tcp.{}. IN TLSA 3 1 1 {current}",
                p.host
            );
            println!(
                "`mailc plan {}` shows where the rollover stands",
                config.display()
            );
            return Ok(0);
        }
        if let Some(r) = rollover::read_request(p)
            && r.next == next
            && let Some(e) = r.error
        {
            rollover::remove_request(p)?;
            return Err(format!(
                "the server could not get a certificate on the next key: {e}\n(the old certificate and key are still served; fix the cause and run this again)"
            ));
        }
        if Instant::now() >= deadline {
            println!(
                "the server has not carried out the switch within {wait_secs}s (is `mailc serve` running?); the request stays and is carried out when it runs: see `mailc tls status` and `mailc plan`"
            );
            return Ok(PENDING);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Certificate files: what the admin must do, with a CSR on the next key.
fn files(p: &KeyPaths, tables: &Tables, config: &Path, next: &str) -> Result<i32, String> {
    let names = crate::net::certinfo::read(&p.cert)
        .map(|i| i.names)
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| vec![tables.hostname.clone()]);
    let csr = rollover::next_key_csr(p, &names)?;
    let csr_path = rollover::tls_file(p, rollover::CSR_FILE);
    crate::store::fsutil::write_atomic_durable(&csr_path, csr.as_bytes())
        .map_err(|e| format!("{}: {e}", csr_path.display()))?;
    crate::store::fsutil::adopt_state_owner(&p.state, &csr_path)
        .map_err(|e| format!("{}: {e}", csr_path.display()))?;
    println!(
        "the next key {} has been published long enough: switch to it.",
        short(next)
    );
    println!(
        "mailc does not manage these certificate files; to switch:\n\
         1. have your CA issue a certificate for {} on the certificate signing request\n   {}\n   (on the key {}); it is printed below;\n\
         2. install the key and the certificate (keep the key private, mode 0600):\n   cp {} {}\n   cp NEW-CHAIN.pem {}\n\
         3. reload the server (SIGHUP) or restart it; it then makes a fresh next key;\n\
         4. `mailc dns {}` prints the new next record to publish, `mailc plan {}` the old one to retire.",
        names.join(", "),
        csr_path.display(),
        p.next_key.display(),
        p.next_key.display(),
        p.key.display(),
        p.cert.display(),
        config.display(),
        config.display(),
    );
    print!("{csr}");
    Ok(0)
}
