//! ManageSieve dialogues as data: every `tests/dialogs/managesieve/*.txt`
//! is replayed against the ManageSieve session without sockets, over the
//! real script store (`store::sieve`) in a temporary directory. Same file
//! format as the SMTP and POP3 dialogues (`C:` lines get CRLF, `C~` lines
//! are sent as escaped), plus:
//! - `# listener: managesieve ADDR` — which listener (see below);
//! - `*: scripts ...` — what is left in the store at the end.
//!
//! The listeners are added to `tests/dialogs/config.kdl` here:
//! `127.0.0.1:4190` (STARTTLS) and `127.0.0.3:4190` (plaintext login
//! allowed), with small quotas (3 scripts of at most 1 KiB).
//!
//! `MAILC_BLESS=1 cargo test --test dialogs_managesieve` rewrites the
//! transcripts.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mailc::compile::{Options, compile_str};
use mailc::proto::managesieve::Framer;
use mailc::session::AuthOutcome;
use mailc::session::managesieve::{Env, ScriptStorage, Session};
use mailc::session::protocol::Effect;
use mailc::store::sieve::ScriptStore;
use mailc::tables::ListenerKind;

const EXTRA: &str = "
listen \"managesieve\" \"127.0.0.1:4190\"
listen \"managesieve\" \"127.0.0.3:4190\" insecure-plaintext-auth=#true
managesieve max-scripts=3
sieve {
    max-script-size \"1KiB\"
}
";

/// A stand-in for `services::managesieve`'s environment (its adapter of
/// `ScriptStore` to `ScriptStorage` is the one used here).
struct TestEnv {
    state: PathBuf,
}

impl Env for TestEnv {
    fn open(&self, mailbox: &str) -> Box<dyn ScriptStorage> {
        Box::new(ScriptStore::for_mailbox(&self.state, mailbox))
    }
}

fn summarize(state: &std::path::Path, mailboxes: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for m in mailboxes {
        let store = ScriptStore::for_mailbox(state, m);
        let list = store.list().unwrap();
        if list.is_empty() {
            continue;
        }
        let names: Vec<String> = list
            .iter()
            .map(|(n, active)| {
                let size = store.get(n).unwrap().map_or(0, |t| t.len());
                format!("{n}({size}){}", if *active { "*" } else { "" })
            })
            .collect();
        out.push(format!("*: scripts {m} {}", names.join(" ")));
    }
    out
}

fn run(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(common::root().join("tests/dialogs/config.kdl")).unwrap();
    let config = config.replace(
        "state \"/nonexistent/mailc-dialogs\"",
        &format!("state \"{}\"", dir.path().display()),
    ) + EXTRA;
    let out = compile_str(
        "config.kdl",
        &common::root().join("tests/dialogs"),
        &config,
        Options { offline: true },
    );
    let compiled = out.compiled.expect("config compiles");
    let tables = Arc::new(compiled.tables.clone());

    let mut local: Option<SocketAddr> = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("# listener: managesieve ") {
            local = Some(d.trim().parse().unwrap());
        }
    }
    let listener = *tables
        .listeners
        .iter()
        .find(|l| l.kind == ListenerKind::Managesieve && local.is_none_or(|a| a == l.address))
        .expect("a managesieve listener");
    let env = TestEnv {
        state: dir.path().to_path_buf(),
    };
    let mut session = Session::new(tables.clone(), listener, false, env);
    let mut transcript = Vec::new();
    let record = |bytes: &[u8], t: &mut Vec<String>| {
        let text = String::from_utf8_lossy(bytes);
        let text = text.strip_suffix("\r\n").unwrap_or(&text);
        if text.is_empty() {
            return;
        }
        for l in text.split("\r\n") {
            t.push(if l.is_empty() {
                "S:".to_string()
            } else {
                format!("S: {l}")
            });
        }
    };
    record(&session.greeting(), &mut transcript);
    let mut input = Vec::new();
    let mut framer = Framer::new(tables.sieve.max_script_size.max(8 * 1024));
    let mut closed = false;
    for line in text.lines() {
        let bytes = if let Some(c) = line.strip_prefix("C: ") {
            let mut b = c.as_bytes().to_vec();
            b.extend_from_slice(b"\r\n");
            b
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
            let mut out = session.process(&mut input, &mut framer);
            record(&out.bytes, &mut transcript);
            let Some(effect) = out.effect.take() else {
                if out.close {
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
                    session.tls_established()
                }
                Effect::Authenticate(credentials) => {
                    transcript.push(format!("*: auth {}", credentials.username));
                    match mailc::auth::verify_login(
                        &tables,
                        &compiled.secrets,
                        &credentials.username,
                        &credentials.password,
                    ) {
                        Ok(m) => session.auth_result(AuthOutcome::Ok(m)),
                        Err(_) => session.auth_result(AuthOutcome::Failed),
                    }
                }
                Effect::Other(never) => match never {},
            };
            record(&next.bytes, &mut transcript);
            if next.close {
                transcript.push("*: close".into());
                closed = true;
                break;
            }
        }
    }
    drop(session);
    let mailboxes: Vec<&str> = tables.mailboxes.keys().map(String::as_str).collect();
    transcript.extend(summarize(dir.path(), &mailboxes));
    transcript
}

#[test]
fn managesieve_dialogues() {
    common::dialog::check_all(
        &common::root().join("tests/dialogs/managesieve"),
        5,
        run,
        |_| None,
    );
}
