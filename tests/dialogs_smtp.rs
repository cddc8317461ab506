//! SMTP dialogues as data: every `tests/dialogs/smtp/*.txt` is replayed
//! against the session state machine, without sockets, and the transcript
//! must match line for line.
//!
//! File format:
//! - `# listener: KIND [ADDRESS]`, `# peer: IP`, `# tls: implicit`,
//!   `# usage: MAILBOX BYTES`, `# auth: locked`, `# listed: ZONE [REASON]`
//!   (the client is on a DNS blocklist), `# greylist: defer` (every
//!   greylisting lookup says "greylisted") — set-up directives;
//! - `C: text` — the client sends `text` + CRLF;
//! - `C~ text` — the client sends `text` with `\r`, `\n`, `\t`, `\\`, `\xNN`
//!   escapes and nothing appended (bare line ends, pipelining in one write);
//! - `S: text` — a reply line the server must send;
//! - `*: text` — an effect the session asked for (`tls`, `auth USER`,
//!   `queued ...`, `close`);
//! - other `#` lines and blank lines are comments.
//!
//! `MAILC_BLESS=1 cargo test --test dialogs_smtp` rewrites the expected
//! transcripts (review the diff before committing!).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use mailc::compile::{Compiled, Options, compile_file};
use mailc::inbound::dnsbl::Listing;
use mailc::inbound::greylist::Verdict;
use mailc::proto::smtp::line::{LineFramer, MAX_COMMAND_LINE};
use mailc::session::smtp::{AuthOutcome, ConnInfo, Effect, Env, Session, TlsInfo};
use mailc::tables::ListenerKind;

struct TestEnv {
    usage: HashMap<String, u64>,
    next: std::cell::Cell<u32>,
    greylist_defers: bool,
}

impl Env for TestEnv {
    fn now(&self) -> u64 {
        1_795_558_435
    }
    fn mailbox_usage(&self, mailbox: &str) -> u64 {
        self.usage.get(mailbox).copied().unwrap_or(0)
    }
    fn new_id(&self) -> String {
        let n = self.next.get() + 1;
        self.next.set(n);
        format!("Q{n:04}")
    }
    fn greylist(
        &self,
        policy: &mailc::tables::GreylistTable,
        _client: std::net::IpAddr,
        _sender: &str,
        _recipient: &str,
    ) -> Verdict {
        if self.greylist_defers {
            Verdict::Greylisted {
                retry_in: policy.delay_secs,
            }
        } else {
            Verdict::Pass
        }
    }
}

struct Run {
    transcript: Vec<String>,
}

fn run_dialog(compiled: &Compiled, text: &str) -> Run {
    let tables = Arc::new(compiled.tables.clone());
    let mut kind = ListenerKind::Smtp;
    let mut local: Option<SocketAddr> = None;
    let mut peer: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let mut implicit_tls = false;
    let mut usage = HashMap::new();
    let mut locked = false;
    let mut listing = None;
    let mut greylist_defers = false;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("# listener: ") {
            let mut w = d.split_whitespace();
            kind = ListenerKind::parse(w.next().unwrap()).expect("listener kind");
            local = w.next().map(|a| a.parse().unwrap());
        } else if let Some(p) = line.strip_prefix("# peer: ") {
            peer = SocketAddr::new(p.trim().parse().unwrap(), 40000);
        } else if line.trim() == "# tls: implicit" {
            implicit_tls = true;
        } else if let Some(u) = line.strip_prefix("# usage: ") {
            let mut w = u.split_whitespace();
            usage.insert(
                w.next().unwrap().to_string(),
                w.next().unwrap().parse().unwrap(),
            );
        } else if line.trim() == "# auth: locked" {
            locked = true;
        } else if let Some(l) = line.strip_prefix("# listed: ") {
            let (zone, reason) = match l.trim().split_once(' ') {
                Some((z, r)) => (z, Some(r.to_string())),
                None => (l.trim(), None),
            };
            listing = Some(Listing {
                zones: vec![(zone.to_string(), std::net::Ipv4Addr::new(127, 0, 0, 2))],
                score: 1,
                reason,
            });
        } else if line.trim() == "# greylist: defer" {
            greylist_defers = true;
        }
    }
    let listener = *tables
        .listeners
        .iter()
        .find(|l| l.kind == kind && local.is_none_or(|a| a == l.address))
        .expect("a listener of this kind in config.kdl");
    let tls_info = TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
    };
    let conn = ConnInfo {
        peer,
        listener,
        tls: implicit_tls.then(|| tls_info.clone()),
    };
    let env = TestEnv {
        usage,
        next: std::cell::Cell::new(0),
        greylist_defers,
    };
    let mut session = Session::new(tables.clone(), conn, env).with_listing(listing);
    let mut transcript = Vec::new();
    let mut input: Vec<u8> = Vec::new();
    let mut framer = LineFramer::new(MAX_COMMAND_LINE);
    let mut closed = false;

    let record =
        |out: mailc::session::smtp::Output, transcript: &mut Vec<String>| -> Option<Effect> {
            for r in &out.replies {
                for l in String::from_utf8_lossy(&r.to_bytes())
                    .split("\r\n")
                    .filter(|l| !l.is_empty())
                {
                    transcript.push(format!("S: {l}"));
                }
            }
            out.effect
        };
    let greeting = session.greeting();
    record(greeting, &mut transcript);

    for line in text.lines() {
        let bytes = if let Some(c) = line.strip_prefix("C: ") {
            let mut b = c.as_bytes().to_vec();
            b.extend_from_slice(b"\r\n");
            b
        } else if line == "C:" {
            b"\r\n".to_vec()
        } else if let Some(c) = line.strip_prefix("C~ ") {
            common::dialog::unescape(c)
        } else {
            continue;
        };
        transcript.push(line.to_string());
        if closed {
            transcript.push("*: (connection already closed)".into());
            continue;
        }
        input.extend_from_slice(&bytes);
        loop {
            let out = session.process(&mut input, &mut framer);
            let close = out.close;
            let effect = record(out, &mut transcript);
            let Some(effect) = effect else {
                if close {
                    transcript.push("*: close".into());
                    closed = true;
                }
                break;
            };
            let next = match effect {
                Effect::StartTls => {
                    if !input.is_empty() {
                        transcript.push(format!("*: discarded {} pipelined bytes", input.len()));
                        input.clear();
                    }
                    transcript.push("*: tls".into());
                    session.tls_established(tls_info.clone())
                }
                Effect::Authenticate {
                    mechanism,
                    credentials,
                } => {
                    transcript.push(format!(
                        "*: auth {} {}",
                        mechanism.name(),
                        credentials.username
                    ));
                    let outcome = if locked {
                        AuthOutcome::Locked
                    } else {
                        match mailc::auth::verify_login(
                            &tables,
                            &compiled.secrets,
                            &credentials.username,
                            &credentials.password,
                        ) {
                            Ok(m) => AuthOutcome::Ok(m),
                            Err(_) => AuthOutcome::Failed,
                        }
                    };
                    session.auth_result(outcome)
                }
                Effect::Enqueue(accepted) => {
                    let env = &accepted.envelope;
                    let dests: Vec<String> = env
                        .deliveries
                        .iter()
                        .map(|d| match &d.destination {
                            mailc::envelope::Destination::Mailbox { address } => {
                                format!("mailbox:{address}")
                            }
                            mailc::envelope::Destination::Remote { address } => {
                                format!("remote:{address}")
                            }
                        })
                        .collect();
                    let mut dsn = String::new();
                    if let Some(ret) = env.ret {
                        dsn.push_str(&format!(" ret={ret:?}"));
                    }
                    if let Some(envid) = &env.envid {
                        dsn.push_str(&format!(" envid={envid}"));
                    }
                    transcript.push(format!(
                        "*: queued {} from=<{}> to=[{}] size={}{dsn}",
                        env.id,
                        env.sender,
                        dests.join(" "),
                        accepted.message.len()
                    ));
                    for r in &env.recipients {
                        let n = r.notify;
                        let mut notify = Vec::new();
                        for (on, name) in [
                            (n.success, "success"),
                            (n.failure, "failure"),
                            (n.delay, "delay"),
                            (n.never, "never"),
                        ] {
                            if on {
                                notify.push(name);
                            }
                        }
                        transcript.push(format!(
                            "*: rcpt <{}> -> {:?}{}{}",
                            r.address,
                            r.deliveries,
                            if notify.is_empty() {
                                String::new()
                            } else {
                                format!(" notify={}", notify.join(","))
                            },
                            r.orcpt
                                .as_ref()
                                .map(|o| format!(" orcpt={o}"))
                                .unwrap_or_default()
                        ));
                    }
                    let text = String::from_utf8_lossy(&accepted.message).into_owned();
                    for l in text.strip_suffix("\r\n").unwrap_or(&text).split("\r\n") {
                        transcript.push(format!(
                            "*| {}",
                            l.replace('\n', "\\n").replace('\r', "\\r")
                        ));
                    }
                    session.enqueued(Ok::<_, mailc::queue::error::SpoolError>(env.id.clone()))
                }
            };
            let close = next.close;
            record(next, &mut transcript);
            if close {
                transcript.push("*: close".into());
                closed = true;
                break;
            }
        }
    }
    Run { transcript }
}

fn expected(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            l.starts_with("C: ")
                || *l == "C:"
                || l.starts_with("C~ ")
                || l.starts_with("S: ")
                || l.starts_with("*: ")
                || l.starts_with("*| ")
        })
        .map(str::to_string)
        .collect()
}

/// Rewrites a dialogue file with the actual transcript, keeping its header
/// comments and directives.
fn bless(path: &std::path::Path, text: &str, run: &Run) {
    let mut out = String::new();
    for l in text.lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            out.push_str(l);
            out.push('\n');
        } else {
            break;
        }
    }
    for l in &run.transcript {
        out.push_str(l);
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn smtp_dialogues() {
    let dir = common::root().join("tests/dialogs/smtp");
    let out = compile_file(
        &common::root().join("tests/dialogs/config.kdl"),
        Options { offline: true },
    );
    let compiled = out.compiled.expect("tests/dialogs/config.kdl compiles");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected at least 20 SMTP dialogues, found {}",
        files.len()
    );
    let blessing = std::env::var_os("MAILC_BLESS").is_some();
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let run = run_dialog(&compiled, &text);
        let want = expected(&text);
        if run.transcript != want {
            if blessing {
                bless(&path, &text, &run);
                continue;
            }
            let mut report = format!("\n=== {} differs:\n", path.display());
            for (i, line) in run.transcript.iter().enumerate() {
                let mark = if want.get(i) == Some(line) {
                    "  "
                } else {
                    "! "
                };
                report.push_str(&format!("{mark}{line}\n"));
                if mark == "! " {
                    report.push_str(&format!(
                        "  expected: {}\n",
                        want.get(i).map_or("(end)", String::as_str)
                    ));
                    break;
                }
            }
            if run.transcript.len() < want.len()
                && run.transcript.iter().zip(&want).all(|(a, b)| a == b)
            {
                report.push_str(&format!("  missing: {}\n", want[run.transcript.len()]));
            }
            failures.push(report);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join(""));
}
