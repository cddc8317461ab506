//! `mailc explain CONFIG ADDRESS`: how a recipient resolves and why. Uses the
//! same lookup the server uses ([`Tables::resolve`]), so what it prints is what
//! the server does.

use std::fmt::Write;
use std::path::Path;

use crate::compile::{self, Compiled, Options};
use crate::spec::source::Sources;
use crate::tables::resolve::{Delivery, Matched, Resolution};
use crate::tables::{
    AddressKind, DomainTable, LocalPartCase, OutboundTable, OutboundTls, Tables, Target, TargetKind,
};

/// Exit codes: 0 the address is accepted, 2 it is rejected (or not local),
/// 1 the config does not compile.
pub fn run(config: &Path, address: Option<&str>, retry: bool, offline: bool) -> i32 {
    let out = compile::compile_file(config, Options { offline });
    let Some(compiled) = &out.compiled else {
        super::report_failure(config, &out);
        return 1;
    };
    if retry {
        print!("{}", retry_timeline(&compiled.tables.outbound));
    }
    let Some(address) = address else {
        return if retry { 0 } else { 1 };
    };
    if retry {
        println!();
    }
    let (text, accepted) = explain(compiled, &out.sources, address);
    print!("{text}");
    if accepted { 0 } else { 2 }
}

/// `mailc explain CONFIG ADDRESS --message FILE`: the recipient's
/// resolution, then what each local mailbox's Sieve scripts would do with
/// the message (a dry run: nothing is delivered, no DNS is asked).
pub fn run_delivery(
    config: &Path,
    address: &str,
    message: &Path,
    sender: &str,
    offline: bool,
) -> i32 {
    let out = compile::compile_file(config, Options { offline });
    let Some(compiled) = &out.compiled else {
        super::report_failure(config, &out);
        return 1;
    };
    let data = match std::fs::read(message) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", message.display());
            return 1;
        }
    };
    let data = to_crlf(data);
    let (text, accepted) = explain(compiled, &out.sources, address);
    print!("{text}");
    if !accepted {
        return 2;
    }
    let t = &compiled.tables;
    let filters = match crate::services::filtering::Filters::load(t) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    if let Resolution::Deliver(d) = t.resolve(address) {
        for target in d.targets {
            if target.kind != TargetKind::Mailbox {
                continue;
            }
            let Some(m) = t.mailboxes.get(&target.address).filter(|m| !m.disabled) else {
                continue;
            };
            for line in filters.describe(t, m, &data, sender, address) {
                println!("{line}");
            }
        }
    }
    0
}

/// A file with LF line ends as it arrives over SMTP, with CRLF.
fn to_crlf(data: Vec<u8>) -> Vec<u8> {
    if data.contains(&b'\r') {
        return data;
    }
    let mut crlf = Vec::with_capacity(data.len() + data.len() / 40);
    for &b in &data {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    crlf
}

/// What `mailc explain --message` is given.
#[derive(Debug, Clone)]
pub struct MessageArgs {
    pub message: std::path::PathBuf,
    pub client_ip: std::net::IpAddr,
    pub helo: String,
    pub mail_from: String,
    pub resolver: Option<std::net::SocketAddr>,
}

/// `mailc explain CONFIG --message FILE ...`: the inbound checks of the MX
/// on a message, with live DNS, and what the policy does with it. Exit
/// codes: 0 delivered (INBOX or Junk), 2 refused (reject or deferral), 1
/// the config does not compile or the message cannot be read.
pub fn run_message(config: &Path, args: &MessageArgs, offline: bool) -> i32 {
    let out = compile::compile_file(config, Options { offline });
    let Some(compiled) = &out.compiled else {
        super::report_failure(config, &out);
        return 1;
    };
    let t = &compiled.tables;
    let limit = t.inbound.max_message_size;
    let data = match std::fs::File::open(&args.message).and_then(|f| {
        use std::io::Read;
        let mut data = Vec::new();
        f.take(limit.saturating_add(1)).read_to_end(&mut data)?;
        Ok(data)
    }) {
        Ok(d) if d.len() as u64 > limit => {
            eprintln!(
                "{}: larger than max-message-size ({limit} bytes): the MX refuses it before any check",
                args.message.display()
            );
            return 2;
        }
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", args.message.display());
            return 1;
        }
    };
    // A file with LF line ends arrives with CRLF over SMTP.
    let data = to_crlf(data);
    let servers: Vec<std::net::SocketAddr> = match args.resolver {
        Some(s) => vec![s],
        None => t.resolvers.clone(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("async runtime: {e}");
            return 1;
        }
    };
    let checked = rt.block_on(async {
        let resolver = crate::dns::resolver::build(&servers, std::time::Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let arrival = crate::services::inbound::Arrival {
            ip: args.client_ip,
            helo: &args.helo,
            sender: &args.mail_from,
            hostname: &t.hostname,
            own_domains: &t.domains,
        };
        Ok::<_, String>(
            crate::services::inbound::check(
                &resolver,
                &crate::services::inbound::Caches::default(),
                &t.inbound,
                arrival,
                &data,
            )
            .await,
        )
    });
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("DNS resolver: {e}");
            return 1;
        }
    };
    let listed = rt.block_on(dnsbl_lines(&servers, t, args.client_ip));
    if !t.inbound.checks {
        println!("note: `inbound {{ checks #false }}`: the server accepts without these checks");
    }
    let header = checked.header.replace("\r\n", "\n");
    if header.is_empty() {
        println!("the checks did not finish within their time bound");
    } else {
        print!("{header}");
    }
    use crate::inbound::Decision;
    use crate::inbound::scan::Fate;
    // With the checks off the server does not act on them: only the
    // scanners (below) decide.
    let checks = if t.inbound.checks {
        match checked.decision {
            Decision::Deliver { junk, reason } => Fate::Deliver { junk, reason },
            Decision::Reject(r) => Fate::Reject(r),
            Decision::Defer(r) => Fate::Defer(r),
        }
    } else {
        Fate::Deliver {
            junk: false,
            reason: None,
        }
    };
    let mut fate = checks.clone();
    if let Some(st) = &t.scan {
        // What the MX's scanners say, asked now (they must be reachable
        // from here), with the MX's policy for them.
        let env = crate::proto::scan::rspamd::Envelope {
            from: &args.mail_from,
            rcpts: &[],
            ip: Some(args.client_ip),
            helo: &args.helo,
            user: None,
            queue_id: None,
            mta: &t.hostname,
        };
        let stripped = crate::inbound::scan::strip_forged(&data);
        let results = rt.block_on(crate::services::scan::scan_message(st, &env, &stripped));
        let v = crate::inbound::scan::decide(st, &results, &t.hostname);
        println!("scanners: {}", v.summary);
        print!("{}", v.header.replace("\r\n", "\n"));
        if let Some(subject) = &v.subject {
            print!("(replaces the Subject) {}", subject.replace("\r\n", "\n"));
        }
        for d in t.domains.values() {
            if let Some(p) = &d.scan {
                let f = checks
                    .clone()
                    .strongest(crate::inbound::scan::fate(st, p, &results));
                println!("for {} (its own scan policy): {}", d.name, fate_line(&f).0);
            }
        }
        fate = fate.strongest(v.fate);
    }
    let (line, code) = fate_line(&fate);
    println!("verdict: {line}");
    if listed { 2 } else { code }
}

/// What a fate means, in words, and the exit code of `explain --message`.
fn fate_line(fate: &crate::inbound::scan::Fate) -> (String, i32) {
    use crate::inbound::scan::Fate;
    match fate {
        Fate::Deliver { junk: false, .. } => ("deliver to INBOX".to_string(), 0),
        Fate::Deliver { junk: true, reason } => (
            format!(
                "deliver into Junk ({})",
                reason.as_deref().unwrap_or("policy")
            ),
            0,
        ),
        Fate::Discard(why) => (format!("accept and discard ({why})"), 0),
        Fate::Reject(reply) => (
            format!(
                "reject at the end of DATA: {}",
                String::from_utf8_lossy(&reply.to_bytes()).trim_end()
            ),
            2,
        ),
        Fate::Defer(reply) => (
            format!(
                "defer (the sender retries): {}",
                String::from_utf8_lossy(&reply.to_bytes()).trim_end()
            ),
            2,
        ),
    }
}

/// `inbound { dnsbl }`: what the blocklists say about the client, printed;
/// whether it is refused. Greylisting depends on what the running server
/// remembers and is not explained.
async fn dnsbl_lines(servers: &[std::net::SocketAddr], t: &Tables, ip: std::net::IpAddr) -> bool {
    let Some(table) = &t.inbound.dnsbl else {
        return false;
    };
    let resolver = match crate::dns::resolver::build(servers, std::time::Duration::from_secs(10)) {
        Ok(r) => r,
        Err(e) => {
            println!("dnsbl: not looked up ({e})");
            return false;
        }
    };
    let warnings = crate::services::dnsbl::Warnings::default();
    match crate::services::dnsbl::lookup(&resolver, table, ip, &warnings).await {
        None => {
            println!(
                "dnsbl: {ip} not listed (or no usable answer) in {} zone(s)",
                table.zones.len()
            );
            false
        }
        Some(listing) => {
            println!(
                "dnsbl: {ip} listed, score {} of {}; every recipient but postmaster@ refused at RCPT: {}",
                listing.score,
                table.threshold,
                String::from_utf8_lossy(&listing.reply(ip).to_bytes()).trim_end()
            );
            true
        }
    }
}

/// The explanation text and whether the address is accepted.
pub fn explain(c: &Compiled, sources: &Sources, address: &str) -> (String, bool) {
    let t: &Tables = &c.tables;
    let mut o = String::new();
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let _ = writeln!(o, "address      {address}");
    let accepted = match t.resolve(address) {
        Resolution::Invalid { reason } => {
            let _ = writeln!(o, "verdict      rejected: not a valid address ({reason})");
            let _ = writeln!(o, "reply        501 5.1.3 bad recipient address syntax");
            false
        }
        Resolution::NotLocal { domain } => {
            explain_not_local(&mut o, t, &domain);
            false
        }
        Resolution::UnknownUser { domain, normalized } => {
            explain_unknown_user(&mut o, c, sources, domain, &normalized);
            false
        }
        Resolution::Deliver(d) => explain_delivery(&mut o, c, sources, &d),
    };
    (o, accepted)
}

/// Not one of our domains: who may relay there, and the route it would take.
fn explain_not_local(o: &mut String, t: &Tables, domain: &str) {
    let _ = writeln!(o, "domain       {domain} (not a domain of this server)");
    let trusted = if t.trusted_networks.is_empty() {
        String::new()
    } else {
        let nets: Vec<String> = t.trusted_networks.iter().map(|n| n.to_string()).collect();
        format!(" ({})", nets.join(", "))
    };
    let _ = writeln!(
        o,
        "verdict      relayed only for logged-in users (submission) and trusted networks{trusted}"
    );
    let _ = writeln!(
        o,
        "reply        554 5.7.1 relay access denied, for anyone else"
    );
    let _ = writeln!(o, "route        {}", route_text(t, domain));
    let _ = writeln!(o, "tls policy   {}", tls_policy_text(t, domain));
}

/// Which TLS policy decides at delivery time (the lookups happen then):
/// a relay route's own `tls`, or DANE / MTA-STS / the route's mode for MX
/// delivery.
pub fn tls_policy_text(t: &Tables, domain: &str) -> String {
    match t.outbound.route(&domain.to_ascii_lowercase()) {
        Some(r) if r.via.is_some() => {
            "the route's tls (a relay: DANE and MTA-STS of the recipient domain do not apply)"
                .to_string()
        }
        _ => "per MX host, when the delivery is tried: DANE if the MX and TLSA records are DNSSEC-secure (AD bit of the resolver), else the domain's MTA-STS policy (enforce/testing), else the route's tls (TLS when offered without a route)".to_string(),
    }
}

fn explain_unknown_user(
    o: &mut String,
    c: &Compiled,
    sources: &Sources,
    domain: &DomainTable,
    normalized: &str,
) {
    domain_lines(o, c, sources, domain);
    let _ = writeln!(o, "normalised   {normalized}");
    let tried = if domain.plus_separator.is_some() {
        ", plus address or catch-all"
    } else {
        " or catch-all"
    };
    let _ = writeln!(
        o,
        "verdict      rejected: no mailbox, alias{tried} for this address"
    );
    let _ = writeln!(o, "reply        550 5.1.1 no such user");
}

/// A local address that matched: how it matched, where it delivers, and
/// whether any target is left to accept it.
fn explain_delivery(o: &mut String, c: &Compiled, sources: &Sources, d: &Delivery) -> bool {
    domain_lines(o, c, sources, d.domain);
    let _ = writeln!(o, "normalised   {}", d.normalized);
    match_lines(o, c, sources, d);
    let _ = writeln!(o, "delivers to");
    let counts = target_lines(o, &c.tables, d.targets);
    counts.verdict(o)
}

/// How the address matched (plus detail, catch-all) and what it is.
fn match_lines(o: &mut String, c: &Compiled, sources: &Sources, d: &Delivery) {
    let defined_at = |s: Option<&crate::spec::source::Span>| {
        s.map(|s| format!(" (defined at {})", sources.location(*s)))
            .unwrap_or_default()
    };
    match d.matched {
        Matched::Exact => {}
        Matched::PlusDetail => {
            let _ = writeln!(
                o,
                "plus detail  \"{}\" removed (separator \"{}\") → {}",
                d.detail.as_deref().unwrap_or_default(),
                d.domain.plus_separator.as_deref().unwrap_or_default(),
                d.address
            );
        }
        Matched::CatchAll => {
            let at = defined_at(c.origins.catch_alls.get(&d.domain.name));
            let _ = writeln!(
                o,
                "catch-all    no address matched; the catch-all takes it → {}{at}",
                d.address
            );
        }
    }
    if let Some(kind) = d.kind {
        let what = match kind {
            AddressKind::Mailbox => "a mailbox",
            AddressKind::MailboxAlias => "an extra address of a mailbox",
            AddressKind::Alias => "an alias",
        };
        let at = defined_at(c.origins.addresses.get(&d.address));
        let _ = writeln!(o, "matched      {} is {what}{at}", d.address);
    }
}

/// How many targets of each sort a delivery has.
#[derive(Default)]
struct TargetCounts {
    local: usize,
    remote: usize,
    disabled: usize,
}

/// One line a target, its address padded to the longest.
fn target_lines(o: &mut String, t: &Tables, targets: &[Target]) -> TargetCounts {
    let mut counts = TargetCounts::default();
    let width = targets
        .iter()
        .map(|t| t.address.chars().count())
        .max()
        .unwrap_or(0);
    for target in targets {
        let mut line = format!("  {:width$}  ", target.address);
        match target.kind {
            TargetKind::Mailbox => {
                let m = t.mailboxes.get(&target.address);
                if m.is_some_and(|m| m.disabled) {
                    counts.disabled += 1;
                    line.push_str("mailbox, DISABLED (refused: 550 5.2.1)");
                } else {
                    counts.local += 1;
                    line.push_str("mailbox");
                    if let Some(m) = m {
                        let _ = write!(line, " {}", m.maildir.display());
                    }
                }
            }
            TargetKind::Remote => {
                counts.remote += 1;
                let domain = target.address.rsplit_once('@').map_or("", |(_, d)| d);
                let _ = write!(
                    line,
                    "remote: forwarded with SRS, {}",
                    route_text(t, domain)
                );
            }
        }
        if !target.via.is_empty() {
            let _ = write!(line, " (via {})", target.via.join(" → "));
        }
        let _ = writeln!(o, "{line}");
    }
    counts
}

impl TargetCounts {
    /// Accepted while one target can take the message; the verdict line says
    /// how many of each sort there are.
    fn verdict(&self, o: &mut String) -> bool {
        let (local, remote, disabled) = (self.local, self.remote, self.disabled);
        let ok = local + remote > 0;
        let mut parts = Vec::new();
        if local > 0 {
            parts.push(format!(
                "{local} local mailbox{}",
                if local == 1 { "" } else { "es" }
            ));
        }
        if remote > 0 {
            parts.push(format!(
                "{remote} forward{}",
                if remote == 1 { "" } else { "s" }
            ));
        }
        if disabled > 0 {
            parts.push(format!("{disabled} disabled"));
        }
        if ok {
            let _ = writeln!(o, "verdict      accepted: {}", parts.join(", "));
        } else {
            let _ = writeln!(o, "verdict      rejected: every target is disabled");
            let _ = writeln!(o, "reply        550 5.2.1 mailbox disabled");
        }
        ok
    }
}

/// How mail for a remote domain leaves: the route that serves it, or MX.
pub fn route_text(t: &Tables, domain: &str) -> String {
    let tls = |tls: OutboundTls| match tls {
        OutboundTls::Opportunistic => "TLS when offered",
        OutboundTls::Require => "TLS required",
        OutboundTls::RequireVerified => "verified TLS required",
        OutboundTls::Implicit => "implicit TLS, verified",
    };
    match t.outbound.route(&domain.to_ascii_lowercase()) {
        Some(r) => {
            let how = match &r.via {
                Some((host, port)) => format!("via {host}:{port}"),
                None => format!("MX of {domain} on port {}", t.outbound.port),
            };
            let login = r
                .user
                .as_ref()
                .map(|u| format!(", login as {u}"))
                .unwrap_or_default();
            format!("{how} ({}{login}; route \"{}\")", tls(r.tls), r.domain)
        }
        None => format!(
            "MX of {domain} on port {} ({})",
            t.outbound.port,
            tls(OutboundTls::Opportunistic)
        ),
    }
}

/// `mailc explain --retry`: the timeline a deferred message follows.
pub fn retry_timeline(t: &OutboundTable) -> String {
    let d = crate::spec::value::format_duration;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "A message that cannot be delivered at once (jitter of ±10% on every wait):"
    );
    let attempts = attempt_times(t);
    let warn = t.delay_warning_secs.filter(|w| *w < t.expire_secs);
    let mut warned = false;
    let mut i = 0;
    while i < attempts.len() {
        // Runs of attempts with the same wait print as one line.
        let (start, wait) = attempts[i];
        let j = same_wait_run_end(&attempts, i);
        if let Some(w) = warn
            && !warned
            && w <= attempts[j].0
            && w < start
        {
            // The warning falls inside this run: split it there.
            delay_warning_line(&mut o, w);
            warned = true;
        }
        if i == 0 {
            let _ = writeln!(o, "  {:>10}  attempt 1, on arrival", d(start));
        } else if j == i {
            let last = i == attempts.len() - 1;
            let _ = writeln!(
                o,
                "  {:>10}  attempt {}{}",
                d(start),
                i + 1,
                if last { ", the last one" } else { "" }
            );
        } else {
            let _ = writeln!(
                o,
                "  {:>10}  attempts {}-{}, every {} (until {})",
                d(start),
                i + 1,
                j + 1,
                d(wait),
                d(attempts[j].0)
            );
        }
        if let Some(w) = warn
            && !warned
            && w >= start
            && (j + 1 >= attempts.len() || w < attempts[j + 1].0)
        {
            delay_warning_line(&mut o, w);
            warned = true;
        }
        i = j + 1;
    }
    let _ = writeln!(
        o,
        "  {:>10}  if the last attempt fails too: bounced, one DSN to the sender (status 4.4.7)",
        d(t.expire_secs)
    );
    let _ = writeln!(
        o,
        "A permanent failure (5xx reply, null MX, unknown domain) bounces at once; a bounce is never sent to the null sender."
    );
    o
}

/// Every attempt as (time of the attempt, wait before it), the last one at
/// the expiry.
fn attempt_times(t: &OutboundTable) -> Vec<(u64, u64)> {
    let mut attempts: Vec<(u64, u64)> = vec![(0, 0)];
    let mut at = 0u64;
    let mut n = 1u32;
    while at < t.expire_secs && attempts.len() < 100_000 {
        let wait = t.retry_after(n);
        let next = (at + wait).min(t.expire_secs);
        attempts.push((next, next - at));
        at = next;
        n += 1;
    }
    attempts
}

/// The last attempt of the run that starts at `i` whose waits are equal;
/// the first and the last attempt stand alone.
fn same_wait_run_end(attempts: &[(u64, u64)], i: usize) -> usize {
    let wait = attempts[i].1;
    let mut j = i;
    while j + 1 < attempts.len() && attempts[j + 1].1 == wait && i > 0 && j + 2 < attempts.len() {
        j += 1;
    }
    j
}

fn delay_warning_line(o: &mut String, w: u64) {
    let _ = writeln!(
        o,
        "  {:>10}  delay warning to the sender (a DSN, unless the message asked NOTIFY=NEVER or without DELAY)",
        crate::spec::value::format_duration(w)
    );
}

fn domain_lines(o: &mut String, c: &Compiled, sources: &Sources, domain: &DomainTable) {
    let (ascii, unicode) = (domain.name.as_str(), domain.unicode.as_str());
    let at = c
        .origins
        .domains
        .get(ascii)
        .map(|s| format!(", defined at {}", sources.location(*s)))
        .unwrap_or_default();
    let shown = if ascii == unicode {
        ascii.to_string()
    } else {
        format!("{unicode} = {ascii}")
    };
    let _ = writeln!(
        o,
        "domain       {shown} (local{at}; local parts {})",
        match domain.local_part_case {
            LocalPartCase::Insensitive => "case-insensitive",
            LocalPartCase::Sensitive => "case-sensitive",
        }
    );
    if let Some(scan) = &c.tables.scan {
        let (whose, p) = match &domain.scan {
            Some(p) => ("the domain's own", p),
            None => ("the server's", &scan.policy),
        };
        let virus = match p.virus {
            crate::tables::VirusAction::Reject => "refused (554)",
            crate::tables::VirusAction::Discard => "discarded",
            crate::tables::VirusAction::Junk => "to Junk",
            crate::tables::VirusAction::Accept => "delivered, marked",
        };
        let refused = if p.reject_spam {
            format!("refused (550) from {:.1}", p.spam_reject)
        } else {
            "never refused".to_string()
        };
        let _ = writeln!(
            o,
            "scanning     {whose} policy: spam to Junk from {:.1}, {refused}; a virus {virus}",
            p.spam_junk,
        );
    }
}
