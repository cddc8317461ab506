//! IMAP dialogues as data: every `tests/dialogs/imap/*.txt` is replayed
//! against the IMAP session without sockets, over real Maildirs in a
//! temporary directory (the store the server uses). Same format as the
//! other dialogues (`C:`, `C~` with escapes, `S:`, `*:` events), plus:
//! - `# message: MAILBOX TEXT` — delivered into INBOX before the session;
//! - `# folder: MAILBOX NAME` — an extra folder;
//! - `*: maildir ...` — what is left in each folder at the end.
//!
//! Every byte the server sends is also decoded by imap-codec, an
//! independent IMAP parser; a response it rejects shows in the transcript
//! as `*: imap-codec rejects ...`, so the dialogue fails. (ESEARCH
//! responses are not checked: imap-codec 2.0.0-alpha.10 has no grammar for
//! them.)
//!
//! UIDVALIDITYs the store makes during a dialogue (from the clock) show as
//! `V1`, `V2`, ... in order of appearance.
//!
//! `MAILC_BLESS=1 cargo test --test dialogs_imap` rewrites the transcripts.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use imap_codec::decode::{Decoder, GreetingDecodeError, ResponseDecodeError};
use imap_codec::{GreetingCodec, ResponseCodec};
use mailc::compile::{Options, compile_str};
use mailc::services::mailstore::MailStore;
use mailc::session::AuthOutcome;
use mailc::session::imap::{Effect, Env, Session, Store};
use mailc::store::folder::{Folder, FolderLocks};
use mailc::store::usage::Usage;
use mailc::tables::{ListenerKind, Tables};

/// The fixed clock of the dialogues: 2026-12-02 12:00:00 UTC.
const NOW: i64 = 1_796_212_800;
/// INTERNALDATE of delivered messages: 2026-11-30 08:00:00 UTC.
const DELIVERED: i64 = 1_796_025_600;
const UIDVALIDITY: &str = "305419896\n";

struct TestEnv {
    tables: Arc<Tables>,
    folders: Arc<FolderLocks>,
}

impl Env for TestEnv {
    fn open(&self, mailbox: &str) -> Result<Box<dyn Store>, String> {
        let m = self.tables.mailboxes.get(mailbox).expect("mailbox");
        let mut s = MailStore::new(
            mailbox,
            &m.maildir,
            m.quota,
            self.folders.clone(),
            Arc::new(Usage::new()),
            Arc::new(|_| {}),
        );
        s.prepare().map_err(|e| format!("{e:?}"))?;
        Ok(Box::new(s))
    }
}

/// A folder with the fixed UIDVALIDITY (so transcripts are stable).
fn make_folder(path: &std::path::Path) {
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(path.join(d)).unwrap();
    }
    std::fs::write(path.join("mailc.uidvalidity"), UIDVALIDITY).unwrap();
}

fn summarize(tables: &Tables) -> Vec<String> {
    let mut out = Vec::new();
    for (address, m) in &tables.mailboxes {
        if !Folder::new(&m.maildir).exists() {
            continue;
        }
        let mut dirs = vec![("INBOX".to_string(), m.maildir.clone())];
        let mut subs: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(&m.maildir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                mailc::services::mailstore::folder_name(&n).map(|name| (name, e.path()))
            })
            .collect();
        subs.sort();
        dirs.extend(subs);
        for (name, path) in dirs {
            let mut files: Vec<String> = ["new", "cur"]
                .iter()
                .flat_map(|d| {
                    std::fs::read_dir(path.join(d))
                        .into_iter()
                        .flatten()
                        .flatten()
                })
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    format!("[{}]", n.split_once(":2,").map(|(_, f)| f).unwrap_or(""))
                })
                .collect();
            if files.is_empty() {
                continue;
            }
            files.sort();
            out.push(format!(
                "*: maildir {address} {name} {} messages {}",
                files.len(),
                files.join("")
            ));
        }
    }
    out
}

/// Decodes what the server sent with imap-codec; returns complaints.
struct Checker {
    buf: Vec<u8>,
    greeted: bool,
}

impl Checker {
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut complaints = Vec::new();
        loop {
            if self.buf.is_empty() {
                return complaints;
            }
            let line_end = self
                .buf
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(self.buf.len(), |p| p + 2);
            let first = String::from_utf8_lossy(&self.buf[..line_end])
                .trim_end()
                .to_string();
            if !self.greeted {
                self.greeted = true;
                match GreetingCodec::default().decode(&self.buf) {
                    Ok((rest, _)) => {
                        let n = self.buf.len() - rest.len();
                        self.buf.drain(..n);
                    }
                    Err(GreetingDecodeError::Incomplete) => return complaints,
                    Err(_) => {
                        complaints.push(format!("*: imap-codec rejects greeting {first}"));
                        self.buf.drain(..line_end);
                    }
                }
                continue;
            }
            if first.starts_with("* ESEARCH") {
                self.buf.drain(..line_end);
                continue;
            }
            match ResponseCodec::default().decode(&self.buf) {
                Ok((rest, _)) => {
                    let n = self.buf.len() - rest.len();
                    self.buf.drain(..n);
                }
                Err(ResponseDecodeError::Incomplete)
                | Err(ResponseDecodeError::LiteralFound { .. })
                    if line_end == self.buf.len() && !self.buf.ends_with(b"\r\n") =>
                {
                    return complaints;
                }
                Err(ResponseDecodeError::LiteralFound { .. })
                | Err(ResponseDecodeError::Incomplete) => {
                    return complaints;
                }
                Err(_) => {
                    complaints.push(format!("*: imap-codec rejects {first}"));
                    self.buf.drain(..line_end);
                }
            }
        }
    }
}

/// UIDVALIDITYs the store made during the dialogue come from the clock:
/// they are written `V1`, `V2`, ... in order of appearance, so a transcript
/// stays stable and still shows when a folder got a new one.
fn name_uidvalidities(text: &str, seen: &mut Vec<String>) -> String {
    let fixed = UIDVALIDITY.trim();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["UIDVALIDITY ", "APPENDUID ", "COPYUID "]
        .iter()
        .filter_map(|k| rest.find(k).map(|i| i + k.len()))
        .min()
    {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let v = &rest[..end];
        if v.is_empty() || v == fixed {
            out.push_str(v);
        } else {
            let n = match seen.iter().position(|s| s == v) {
                Some(n) => n,
                None => {
                    seen.push(v.to_string());
                    seen.len() - 1
                }
            };
            out.push_str(&format!("V{}", n + 1));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
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

    let mut kind = ListenerKind::Imap;
    let mut local: Option<SocketAddr> = None;
    let mut tls = false;
    // Every mailbox's INBOX and special-use folders exist with a fixed
    // UIDVALIDITY before the session.
    for m in tables.mailboxes.values() {
        make_folder(&m.maildir);
        for (name, _) in mailc::session::imap::SPECIAL_USE {
            make_folder(&m.maildir.join(mailc::services::mailstore::dir_name(name)));
        }
    }
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("# listener: ") {
            let mut w = d.split_whitespace();
            kind = ListenerKind::parse(w.next().unwrap()).unwrap();
            local = w.next().map(|a| a.parse().unwrap());
        } else if line.trim() == "# tls: implicit" {
            tls = true;
        } else if let Some(m) = line.strip_prefix("# folder: ") {
            let (mailbox, name) = m.split_once(' ').unwrap();
            let mb = &tables.mailboxes[mailbox];
            make_folder(
                &mb.maildir
                    .join(mailc::services::mailstore::dir_name(name.trim())),
            );
        } else if let Some(m) = line.strip_prefix("# message: ") {
            let (mailbox, body) = m.split_once(' ').unwrap();
            let mb = &tables.mailboxes[mailbox];
            let data = common::dialog::unescape(body);
            let n = std::fs::read_dir(mb.maildir.join("new"))
                .map(|r| r.count())
                .unwrap_or(0);
            let name = mailc::store::maildir::file_name(
                DELIVERED as u64 + n as u64,
                "T",
                n,
                "mail.example.test",
                data.len() as u64,
            );
            mailc::store::maildir::deliver(&mb.maildir, &name, &[&data], false, "").unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(mb.maildir.join("new").join(&name))
                .unwrap();
            f.set_modified(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(DELIVERED as u64),
            )
            .unwrap();
        }
    }
    let listener = *tables
        .listeners
        .iter()
        .find(|l| l.kind == kind && local.is_none_or(|a| a == l.address))
        .expect("a listener of this kind in config.kdl");
    let env = TestEnv {
        tables: tables.clone(),
        folders: FolderLocks::new(),
    };
    let mut session = Session::new(tables.clone(), listener, tls, env);
    session.set_clock(|| NOW);
    let mut checker = Checker {
        buf: Vec::new(),
        greeted: false,
    };
    let mut transcript = Vec::new();
    let mut validities: Vec<String> = Vec::new();
    let mut record = |bytes: &[u8], t: &mut Vec<String>| {
        for c in checker.feed(bytes) {
            t.push(c);
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.strip_suffix("\r\n").unwrap_or(&text);
        let text = name_uidvalidities(text, &mut validities);
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
            let mut out = session.process(&mut input);
            record(&out.bytes, &mut transcript);
            let Some(effect) = out.effect.take() else {
                if out.close {
                    transcript.push("*: close".into());
                    closed = true;
                    break;
                }
                if session.has_pending() {
                    continue;
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
                Effect::Authenticate { credentials } => {
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
    transcript.extend(summarize(&tables));
    transcript
}

#[test]
fn imap_dialogues() {
    common::dialog::check_all(&common::root().join("tests/dialogs/imap"), 20, run, |got| {
        let rejected: Vec<&String> = got
            .iter()
            .filter(|l| l.contains("imap-codec rejects"))
            .collect();
        (!rejected.is_empty()).then(|| format!("{rejected:?}"))
    });
}

/// Every response parses (issue #14): random mailbox names (quotes,
/// backslashes, wildcards, brackets, `&`, non-ASCII), keywords and messages
/// (header values with quotes, backslashes, encoded words, 8-bit and
/// invalid UTF-8 bytes, MIME parameters) go through CREATE, APPEND, LIST,
/// LSUB, STATUS, SELECT, FETCH (ENVELOPE, BODYSTRUCTURE, header fields),
/// SEARCH and STORE, with and without UTF8=ACCEPT; imap-codec must decode
/// every response.
mod every_response_parses {
    use proptest::prelude::*;

    const NAME_PIECES: &[&str] = &[
        "a", "B", "z9", " ", "\"", "\\", "%", "*", "(", ")", "{", "}", "{3}", "[", "]", "&", "&-",
        "-", "+", ",", ".", "/", "~", "é", "日本", "😀", "'", "!", "#", ":", "NIL", "INBOX",
    ];
    const VALUE_PIECES: &[&[u8]] = &[
        b"plain",
        b" ",
        b"\"",
        b"\\",
        b"\\\"",
        b"(",
        b")",
        b"<",
        b">",
        b"@",
        b",",
        b";",
        b":",
        b"=?utf-8?q?caf=C3=A9_=22q=22?=",
        b"=?iso-8859-1?b?5+T8?=",
        b"=?utf-8?b?IlwiXCI=?=",
        "é".as_bytes(),
        "日本".as_bytes(),
        b"\xff\xfe",
        b"\xe9t\xe9",
        b"{5}",
        b"\t",
        b"*",
        b"%",
        b"]",
        b"NIL",
        b"''",
        b"\x7f",
    ];
    const KEYWORDS: &[&str] = &[
        "$Label1",
        "Junk",
        "a.b",
        "x_y",
        "$MDNSent",
        "k'q",
        "a+b",
        "a!b",
        "\\Seen",
        "\\Flagged",
        "\\Draft",
        "\\Answered",
        "NonJunk",
        "$Forwarded",
    ];

    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(NAME_PIECES), 1..8).prop_map(|v| v.concat())
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(VALUE_PIECES), 0..8).prop_map(|v| v.concat())
    }

    fn flags() -> impl Strategy<Value = Vec<&'static str>> {
        prop::collection::vec(prop::sample::select(KEYWORDS), 0..4)
    }

    /// Bytes as a `C~` line: `\` doubled, anything not printable ASCII as
    /// `\xNN`.
    fn esc(bytes: &[u8]) -> String {
        let mut s = String::new();
        for &b in bytes {
            match b {
                b'\\' => s.push_str("\\\\"),
                0x20..=0x7e => s.push(b as char),
                _ => s.push_str(&format!("\\x{b:02x}")),
            }
        }
        s
    }

    fn message(v: &[Vec<u8>; 5], multipart: bool) -> Vec<u8> {
        let mut m = Vec::new();
        let header = |m: &mut Vec<u8>, name: &str, val: &[u8]| {
            m.extend_from_slice(name.as_bytes());
            m.extend_from_slice(b": ");
            m.extend_from_slice(val);
            m.extend_from_slice(b"\r\n");
        };
        let mut from = v[0].clone();
        from.extend_from_slice(b" <a@example.test>");
        header(&mut m, "From", &from);
        let mut to = b"\"".to_vec();
        to.extend_from_slice(&v[1]);
        to.extend_from_slice(b"\" <b@example.test>, undisclosed-recipients:;");
        header(&mut m, "To", &to);
        header(&mut m, "Subject", &v[2]);
        let mut id = b"<".to_vec();
        id.extend_from_slice(&v[3]);
        id.extend_from_slice(b"@x>");
        header(&mut m, "Message-ID", &id);
        header(&mut m, "In-Reply-To", &v[3]);
        if multipart {
            header(&mut m, "MIME-Version", b"1.0");
            header(&mut m, "Content-Type", b"multipart/mixed; boundary=\"b1\"");
            m.extend_from_slice(b"\r\n--b1\r\n");
            let mut ct = b"text/plain; charset=\"utf-8\"; name=\"".to_vec();
            ct.extend_from_slice(&v[4]);
            ct.extend_from_slice(b"\"");
            header(&mut m, "Content-Type", &ct);
            let mut cd = b"attachment; filename=\"".to_vec();
            cd.extend_from_slice(&v[4]);
            cd.extend_from_slice(b"\"");
            header(&mut m, "Content-Disposition", &cd);
            header(&mut m, "Content-Description", &v[4]);
            m.extend_from_slice(b"\r\nbody\r\n--b1--\r\n");
        } else {
            m.extend_from_slice(b"\r\nbody\r\n");
        }
        m
    }

    /// `{n+}` and the bytes, for a `C~` line.
    fn lit(bytes: &[u8]) -> String {
        format!("{{{}+}}\\r\\n{}", bytes.len(), esc(bytes))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn responses_decode(
            name in name(),
            values in [value(), value(), value(), value(), value()],
            kw in flags(),
            kw2 in prop::sample::select(KEYWORDS),
            multipart in any::<bool>(),
            utf8 in any::<bool>(),
        ) {
            let wire: Vec<u8> = if utf8 {
                name.as_bytes().to_vec()
            } else {
                mailc::proto::imap::mutf7::encode(&name).into_bytes()
            };
            let n = lit(&wire);
            let msg = lit(&message(&values, multipart));
            let enable = if utf8 { "C: a0 ENABLE UTF8=ACCEPT\n" } else { "" };
            let flags = esc(kw.join(" ").as_bytes());
            let text = format!(
                "# listener: imaps 127.0.0.1:993\n# tls: implicit\n\
                 C: a1 LOGIN alice@example.test secret\n{enable}\
                 C~ a2 CREATE {n}\\r\\n\n\
                 C~ a3 SUBSCRIBE {n}\\r\\n\n\
                 C~ a4 APPEND {n} ({flags}) {msg}\\r\\n\n\
                 C~ a5 APPEND INBOX ({flags}) {msg}\\r\\n\n\
                 C: a6 LIST \"\" *\n\
                 C: a7 LSUB \"\" *\n\
                 C: a8 LIST (SUBSCRIBED) \"\" * RETURN (CHILDREN STATUS (MESSAGES UNSEEN SIZE))\n\
                 C~ a9 STATUS {n} (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ)\\r\\n\n\
                 C: b1 SELECT INBOX (CONDSTORE)\n\
                 C: b2 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY MODSEQ BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[1.MIME])\n\
                 C: b3 SEARCH ALL\n\
                 C: b4 UID SEARCH KEYWORD {kw2}\n\
                 C: b5 STORE 1:* +FLAGS ({kw2})\n\
                 C~ b6 SELECT {n}\\r\\n\n\
                 C: b7 UID FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)\n\
                 C: b8 LOGOUT\n"
            );
            let got = super::run(&text);
            let rejected: Vec<&String> =
                got.iter().filter(|l| l.contains("imap-codec rejects")).collect();
            prop_assert!(rejected.is_empty(), "{rejected:?}\n{}", got.join("\n"));
            // Not vacuous: the message reached INBOX and was fetched.
            prop_assert!(
                got.iter().any(|l| l.starts_with("S: * 1 FETCH (UID 1 FLAGS")),
                "no FETCH answer:\n{}",
                got.join("\n")
            );
        }
    }
}
