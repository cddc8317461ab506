//! `mailc dns`, `mailc plan` and `mailc dkim keygen`.

use std::net::SocketAddr;
use std::path::Path;

use crate::compile::{self, Compiled, Options};
use crate::dns::{self, Zone, keys, live, rollover};

fn load(config: &Path, offline: bool) -> Result<Compiled, i32> {
    let out = compile::compile_file(config, Options { offline });
    match out.compiled {
        Some(c) => Ok(c),
        None => {
            super::report_failure(config, &out);
            Err(1)
        }
    }
}

/// The compiled config and the zones it wants published (`command` names
/// the subcommand in error messages).
fn wanted_zones(config: &Path, command: &str) -> Result<(Compiled, Vec<Zone>), i32> {
    let c = load(config, true)?;
    let keys = keys::public_keys(&c.tables).map_err(|e| {
        eprintln!("mailc {command}: {e}");
        1
    })?;
    let tlsa = dane_keys(&c, command)?;
    let wanted = dns::wanted_with_tlsa(&c.tables, &keys, tlsa.as_ref());
    Ok((c, wanted))
}

/// With `dane #true`: the next key is put in order ([`rollover::settle`]:
/// made if missing, replaced after a switch; a state directory that cannot
/// be written is reported, the records are still printed without it),
/// then both keys' TLSA data.
fn dane_keys(c: &Compiled, command: &str) -> Result<Option<dns::dane::TlsaKeys>, i32> {
    if let Some(p) = dns::dane::key_paths(&c.tables) {
        report_settled(
            command,
            &p,
            rollover::settle(&p, crate::services::unix_now()),
        );
    }
    dns::dane::tlsa_keys(&c.tables).map_err(|e| {
        eprintln!("mailc {command}: {e}");
        1
    })
}

/// Tells the admin what [`rollover::settle`] did.
pub(super) fn report_settled(
    command: &str,
    p: &dns::dane::KeyPaths,
    settled: Result<rollover::Settled, String>,
) {
    match settled {
        Ok(rollover::Settled::Created) => eprintln!(
            "mailc {command}: created the next DANE key {}",
            p.next_key.display()
        ),
        Ok(rollover::Settled::Switched(s)) => eprintln!(
            "mailc {command}: the certificate served is on the former next DANE key ({}): made a fresh next key {}; publish its TLSA record",
            s.to,
            p.next_key.display()
        ),
        Ok(rollover::Settled::Unchanged) => {}
        Err(e) => eprintln!("mailc {command}: cannot put the next DANE key in order: {e}"),
    }
}

/// `mailc dns CONFIG [--domain D]`: zone snippets on stdout.
pub fn dns(config: &Path, domain: Option<&str>) -> i32 {
    let (c, wanted) = match wanted_zones(config, "dns") {
        Ok(w) => w,
        Err(code) => return code,
    };
    let wanted: Vec<_> = match domain {
        None => wanted,
        Some(d) => {
            let Some(t) = c.tables.domain(d) else {
                eprintln!("mailc dns: {d} is not a domain of this configuration");
                return 1;
            };
            wanted.into_iter().filter(|z| z.origin == t.name).collect()
        }
    };
    let mut out = String::new();
    for (i, z) in wanted.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&dns::zone::render(z, &c.tables.content_hash));
    }
    print!("{out}");
    0
}

/// `mailc dkim keygen CONFIG`.
pub fn keygen(config: &Path) -> i32 {
    let c = match load(config, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match keys::keygen(&c.tables) {
        Ok(results) => {
            let mut created = 0;
            for r in &results {
                let alg = match r.algorithm {
                    crate::tables::DkimAlgorithm::Rsa => "rsa-2048",
                    crate::tables::DkimAlgorithm::Ed25519 => "ed25519",
                };
                if r.created {
                    created += 1;
                    println!(
                        "created {alg} key for {}._domainkey.{}: {}",
                        r.selector,
                        r.domain,
                        r.path.display()
                    );
                } else {
                    println!(
                        "kept    {alg} key for {}._domainkey.{}: {} (exists)",
                        r.selector,
                        r.domain,
                        r.path.display()
                    );
                }
            }
            if created > 0 {
                println!("publish the new records: mailc dns {}", config.display());
            }
            0
        }
        Err(e) => {
            eprintln!("mailc dkim keygen: {e}");
            1
        }
    }
}

/// `mailc plan`: 0 in sync, 2 changes pending, 1 error.
pub fn plan(config: &Path, resolver: Option<SocketAddr>, json: bool, verbose: bool) -> i32 {
    let (c, wanted) = match wanted_zones(config, "plan") {
        Ok(w) => w,
        Err(code) => return code,
    };
    let retired = keys::retired_selectors(&c.tables);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mailc plan: {e}");
            return 1;
        }
    };
    // Like the server and `mailc tls rollover`: the configuration's
    // resolver unless told otherwise (the DANE rollover's sightings are
    // shared, so all three should ask the same server).
    let resolver = resolver.or_else(|| c.tables.resolvers.first().copied());
    let name = resolver.map_or_else(|| "system".to_string(), |a| a.to_string());
    let tlsa = match dns::dane::tlsa_keys(&c.tables) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mailc plan: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        let r = live::resolver(resolver)?;
        let mut plan = live::plan(&wanted, &retired, &r, &name).await?;
        if let Some(t) = &tlsa {
            let live_tlsa = live::live_tlsa(&r, &t.host).await?;
            plan.rollovers.push(live::dane_rollover(
                t,
                &live_tlsa.data,
                &dane_state(&c, t, &live_tlsa),
            ));
        }
        plan.rollovers.extend(live::dkim_rollovers(&plan));
        Ok::<_, dns::DnsError>(plan)
    });
    let plan = match result {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mailc plan: DNS query failed: {e}");
            eprintln!(
                "(is the resolver {name} reachable? every query is bounded to {}s)",
                live::QUERY_TIMEOUT.as_secs() + 1
            );
            return 1;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
    } else {
        print!("{}", live::render(&plan, verbose));
    }
    if plan.in_sync { 0 } else { 2 }
}

/// What the state directory knows of the DANE rollover, after recording
/// whether the next key is seen published now.
pub(super) fn dane_state(
    c: &Compiled,
    keys: &dns::dane::TlsaKeys,
    live_tlsa: &live::LiveTlsa,
) -> live::DaneState {
    let now = crate::services::unix_now();
    let Some(p) = dns::dane::key_paths(&c.tables) else {
        return live::DaneState {
            now,
            ..live::DaneState::default()
        };
    };
    let seen = keys.next.as_ref().and_then(|n| {
        rollover::observe(&p, n, live_tlsa.contains(n), live_tlsa.ttl, now).unwrap_or_else(|e| {
            eprintln!("mailc: cannot record when the next DANE key was seen: {e}");
            rollover::seen(&p, n).filter(|_| live_tlsa.contains(n))
        })
    });
    live::DaneState {
        first_seen: seen.as_ref().map(|s| s.first_seen),
        ttl_seen: seen.map_or(0, |s| s.ttl).max(live_tlsa.ttl),
        switch: rollover::read_switch(&p),
        now,
    }
}
