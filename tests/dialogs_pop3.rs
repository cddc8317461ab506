//! POP3 dialogues as data: every `tests/dialogs/pop3/*.txt` is replayed
//! against the POP3 session without sockets, over a real Maildir in a
//! temporary directory. Same file format as the SMTP dialogues, plus:
//! - `# message: MAILBOX TEXT` — delivered before the session (escapes as in
//!   `C~` lines);
//! - `# locked: MAILBOX` — another POP3 session holds the maildrop;
//! - `!drop` — the connection drops (no QUIT);
//! - `*: maildir ...` — what is left in each mailbox at the end.
//!
//! `MAILC_BLESS=1 cargo test --test dialogs_pop3` rewrites the transcripts.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use mailc::compile::{Options, compile_str};
use mailc::proto::pop3::MAX_LINE;
use mailc::proto::smtp::line::LineFramer;
use mailc::services::maildrop::{FolderMaildrop, PopLocks};
use mailc::session::AuthOutcome;
use mailc::session::pop3::{Effect, Env, Maildrop, OpenError, Session};
use mailc::store::folder::{Folder, FolderLocks};
use mailc::store::usage::Usage;
use mailc::tables::{ListenerKind, Tables};

struct TestEnv {
    tables: Arc<Tables>,
    folders: Arc<FolderLocks>,
    pops: Arc<PopLocks>,
}

impl Env for TestEnv {
    fn open(&self, mailbox: &str) -> Result<Box<dyn Maildrop>, OpenError> {
        let m = self.tables.mailboxes.get(mailbox).expect("mailbox");
        FolderMaildrop::open(
            mailbox,
            &m.maildir,
            &self.folders,
            &self.pops,
            Arc::new(Usage::new()),
        )
        .map(|d| Box::new(d) as Box<dyn Maildrop>)
    }
}

fn summarize(tables: &Tables) -> Vec<String> {
    let mut out = Vec::new();
    for (address, m) in &tables.mailboxes {
        let f = Folder::new(&m.maildir);
        if !f.exists() {
            continue;
        }
        let mut files: Vec<String> = ["new", "cur"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(m.maildir.join(d))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let flags = name
                    .split_once(":2,")
                    .map(|(_, f)| f.to_string())
                    .unwrap_or_default();
                format!("[{flags}]")
            })
            .collect();
        files.sort();
        out.push(format!(
            "*: maildir {address} {} messages {}",
            files.len(),
            files.join("")
        ));
    }
    out
}

fn run(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(common::root().join("tests/dialogs/config.kdl")).unwrap();
    let config = config.replace(
        "state \"/nonexistent/mailc-dialogs\"",
        &format!("state \"{}\"", dir.path().display()),
    );
    let out = compile_str(
        "config.kdl",
        &common::root().join("tests/dialogs"),
        &config,
        Options { offline: true },
    );
    let compiled = out.compiled.expect("config compiles");
    let tables = Arc::new(compiled.tables.clone());

    let mut kind = ListenerKind::Pop3;
    let mut local: Option<SocketAddr> = None;
    let mut tls = false;
    let pops = PopLocks::new();
    let folders = FolderLocks::new();
    let mut held = Vec::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("# listener: ") {
            let mut w = d.split_whitespace();
            kind = ListenerKind::parse(w.next().unwrap()).unwrap();
            local = w.next().map(|a| a.parse().unwrap());
        } else if line.trim() == "# tls: implicit" {
            tls = true;
        } else if let Some(m) = line.strip_prefix("# message: ") {
            let (mailbox, body) = m.split_once(' ').unwrap();
            let mb = &tables.mailboxes[mailbox];
            let data = common::dialog::unescape(body);
            // A fixed UIDVALIDITY keeps the UIDL lines of the transcripts stable.
            std::fs::create_dir_all(&mb.maildir).unwrap();
            std::fs::write(mb.maildir.join("mailc.uidvalidity"), "305419896\n").unwrap();
            let n = std::fs::read_dir(mb.maildir.join("new"))
                .map(|r| r.count())
                .unwrap_or(0);
            let name = mailc::store::maildir::file_name(
                1_795_558_435 + n as u64,
                "T",
                n,
                "mail.example.test",
                data.len() as u64,
            );
            mailc::store::maildir::deliver(&mb.maildir, &name, &[&data], false, "").unwrap();
        } else if let Some(m) = line.strip_prefix("# locked: ") {
            let mb = &tables.mailboxes[m.trim()];
            held.push(
                FolderMaildrop::open(
                    m.trim(),
                    &mb.maildir,
                    &folders,
                    &pops,
                    Arc::new(Usage::new()),
                )
                .expect("lock"),
            );
        }
    }
    let listener = *tables
        .listeners
        .iter()
        .find(|l| l.kind == kind && local.is_none_or(|a| a == l.address))
        .expect("a listener of this kind in config.kdl");
    let env = TestEnv {
        tables: tables.clone(),
        folders,
        pops,
    };
    let mut session = Session::new(tables.clone(), listener, tls, env);
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
    record(&session.greeting().bytes, &mut transcript);
    let mut input = Vec::new();
    let mut framer = LineFramer::new(MAX_LINE);
    let mut closed = false;
    for line in text.lines() {
        let bytes = if let Some(c) = line.strip_prefix("C: ") {
            let mut b = c.as_bytes().to_vec();
            b.extend_from_slice(b"\r\n");
            b
        } else if let Some(c) = line.strip_prefix("C~ ") {
            common::dialog::unescape(c)
        } else if line == "!drop" {
            transcript.push("!drop".into());
            break;
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
                Effect::Authenticate { credentials, .. } => {
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
    drop(held);
    transcript.extend(summarize(&tables));
    transcript
}

#[test]
fn pop3_dialogues() {
    common::dialog::check_all(&common::root().join("tests/dialogs/pop3"), 8, run, |_| None);
}
