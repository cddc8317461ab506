//! mailc's Sieve engine side by side with Pigeonhole (Dovecot's Sieve,
//! `sieve-test` from Debian's dovecot-sieve): every case under
//! `tests/sieve_diff/cases/` runs through both, and the actions each takes
//! are compared as a normalised, sorted list of lines:
//!
//! ```text
//! store Work flags=\flagged \seen create   fileinto/keep/implicit keep
//! redirect carol@example.net
//! reject no thanks                         reject (ereject: "ereject ...")
//! vacation to=alice@example.org from=bob@example.test subject=Away period=259200
//! notify mailto
//! runtime-error                            the script failed; mail kept
//! compile-error line=3                     the script does not compile
//! ```
//!
//! `discard` has no line of its own: a message neither stored nor sent on
//! shows as an empty list. Flags are lower-cased and sorted (Pigeonhole
//! prints `\seen`); `:copy` shows as the implicit keep's `store INBOX`.
//! A vacation reply's subject is compared decoded (both encode non-ASCII
//! text as RFC 2047 words, not always the same way).
//!
//! A case is one `.sieve` file whose leading `#` comments set the delivery:
//! `# from:` (envelope sender, `<>` for the null sender), `# to:`
//! (the envelope recipient), `# user:` (the mailbox's own address),
//! `# message:` (a file of `tests/sieve_diff/messages/`, `plain.eml` by
//! default) and `# folders:` (folders that exist, for `mailboxexists`).
//! Included scripts live in `tests/sieve_diff/include/{personal,global}/`.
//!
//! Spam and virus results: Pigeonhole reads them from headers configured in
//! its dovecot.conf (`X-Spam-Score`, a score out of 10; `X-Virus-Scan`,
//! `clean` or `infected`); mailc is given them by its caller, so this
//! harness reads the same headers and passes `SpamScore::Score(score / 10)`
//! and the `VirusResult` — the way `services::filtering` passes what the
//! scanners said.
//!
//! The null sender cannot be given to `sieve-test` (`-f ""` and `-f "<>"`
//! are refused, and `Return-Path: <>` in the message is ignored for the
//! From: field), so the RFC 5230 §5 null-sender rule is checked by the unit
//! tests of `src/filter/tests.rs` only.
//!
//! Vacation: `sieve-test` lists a vacation action without checking whether
//! it would be sent (lists, bulk, the null sender...); it checks only when
//! executing (`-e`). So a case whose result has a vacation runs a second
//! time with `-e`, and the reply counts only if Pigeonhole logs "sent
//! vacation response to <...>" (which also gives its recipient).
//!
//! Deliberate differences are listed in
//! `tests/sieve_diff/known-differences.txt` (`case: RFC §: why`). The test
//! fails on any other difference, and on a listed case that no longer
//! differs. Ignored in a plain `cargo test` (it needs `sieve-test`);
//! `.ci/run` runs it with `--ignored`, and a missing `sieve-test` is a
//! failure, never a skip.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mailc::filter::{self, Action, Delivery, Engine, Host, Limits, Script, SpamScore, VirusResult};

const DEFAULT_FROM: &str = "alice@example.org";
const DEFAULT_TO: &str = "bob+lists@example.test";
const DEFAULT_USER: &str = "bob@example.test";
const KNOWN_FILE: &str = "tests/sieve_diff/known-differences.txt";

fn data() -> PathBuf {
    common::root().join("tests/sieve_diff")
}

/// One script+message pair.
struct Case {
    name: String,
    script: Vec<u8>,
    message: Vec<u8>,
    from: String,
    to: String,
    user: String,
    folders: Vec<String>,
}

fn load_cases() -> Vec<Case> {
    let dir = data().join("cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sieve_diff/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sieve"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_case(p)).collect()
}

fn load_case(path: &Path) -> Case {
    let script = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&script).into_owned();
    let mut meta: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            break;
        };
        if let Some((k, v)) = rest.split_once(':') {
            meta.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let message_name = meta.get("message").map_or("plain.eml", |s| s.as_str());
    let message = std::fs::read(data().join("messages").join(message_name))
        .unwrap_or_else(|e| panic!("{}: message {message_name}: {e}", path.display()));
    let get = |k: &str, d: &str| meta.get(k).cloned().unwrap_or_else(|| d.to_string());
    Case {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        script,
        message: crlf(&message),
        from: get("from", DEFAULT_FROM),
        to: get("to", DEFAULT_TO),
        user: get("user", DEFAULT_USER),
        folders: get("folders", "")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    }
}

/// Messages are stored with LF line ends; mail arrives with CRLF.
fn crlf(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() + m.len() / 20);
    for (i, &b) in m.iter().enumerate() {
        if b == b'\n' && (i == 0 || m[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The value of the first header field `name` of a message (unfolded).
fn header(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut found: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(f) = found.as_mut() {
                f.push(' ');
                f.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            found = Some(v.trim().to_string());
        }
    }
    found
}

// ---------------------------------------------------------------- mailc

struct DirHost {
    folders: HashSet<String>,
    seen: HashSet<String>,
}

impl Host for DirHost {
    fn include(&mut self, name: &str, global: bool) -> Option<Arc<Script>> {
        let dir = data()
            .join("include")
            .join(if global { "global" } else { "personal" });
        let src = std::fs::read(dir.join(format!("{name}.sieve"))).ok()?;
        filter::compile(name, &src, &Limits::default())
            .ok()
            .map(Arc::new)
    }
    fn folder_exists(&mut self, name: &str) -> bool {
        name.eq_ignore_ascii_case("INBOX") || self.folders.contains(name)
    }
    fn special_use_exists(&mut self, _special_use: &str) -> bool {
        false
    }
    fn seen(&mut self, id: &str) -> bool {
        self.seen.contains(id)
    }
}

fn store_line(folder: &str, flags: &[String], create: bool) -> String {
    let mut line = format!("store {folder}");
    let mut flags: Vec<String> = flags.iter().map(|f| f.to_ascii_lowercase()).collect();
    flags.sort();
    flags.dedup();
    if !flags.is_empty() {
        line.push_str(" flags=");
        line.push_str(&flags.join(" "));
    }
    if create {
        line.push_str(" create");
    }
    line
}

fn mailc(case: &Case) -> Vec<String> {
    let limits = Limits::default();
    let script = match filter::compile(&case.name, &case.script, &limits) {
        Ok(s) => Arc::new(s),
        Err(e) => return vec![format!("compile-error line={}", e.line)],
    };
    let spam = header(&case.message, "X-Spam-Score")
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(SpamScore::Unknown, |s| SpamScore::Score(s / 10.0));
    let virus = match header(&case.message, "X-Virus-Scan").as_deref() {
        Some("clean") => VirusResult::Clean,
        Some("infected") => VirusResult::Infected,
        _ => VirusResult::Unknown,
    };
    let sender = if case.from == "<>" { "" } else { &case.from };
    let delivery = Delivery {
        sender,
        recipient: &case.to,
        mailbox: &case.user,
        spam,
        virus,
    };
    let mut host = DirHost {
        folders: case.folders.iter().cloned().collect(),
        seen: HashSet::new(),
    };
    let engine = Engine::new(limits, "mx.example.test");
    let outcome = engine.run(&[script], &case.message, &delivery, &mut host);
    let mut lines = Vec::new();
    if !outcome.errors.is_empty() {
        lines.push("runtime-error".to_string());
    }
    let period = outcome
        .seen
        .iter()
        .find(|(id, _)| id.starts_with("_v"))
        .map(|(_, p)| *p);
    for a in &outcome.actions {
        match a {
            Action::Store {
                folder,
                flags,
                create,
                ..
            } => lines.push(store_line(folder, flags, *create)),
            Action::Discard => {}
            Action::Redirect { address, .. } => lines.push(format!("redirect {address}")),
            Action::Reject { reason, extended } => lines.push(format!(
                "{} {}",
                if *extended { "ereject" } else { "reject" },
                reason.replace("\r\n", "\n").trim()
            )),
            Action::Reply { to, message } => {
                let subject = decoded(&header(message, "Subject").unwrap_or_default());
                let from = addr_spec(&header(message, "From").unwrap_or_default());
                lines.push(format!(
                    "vacation to={to} from={from} subject={subject} period={}",
                    period.unwrap_or(0)
                ));
            }
            Action::Notify { method, .. } => {
                let scheme = method.split(':').next().unwrap_or("");
                lines.push(format!("notify {scheme}"));
            }
        }
    }
    lines.sort();
    lines
}

// ----------------------------------------------------------- Pigeonhole

/// A private configuration for `sieve-test`: no Dovecot server, a Maildir
/// per case, the include directories and the spamtest/virustest headers.
struct Pigeonhole {
    dir: tempfile::TempDir,
}

const EXTENSIONS: &str = "+vacation-seconds +editheader +spamtest +spamtestplus +virustest \
     +foreverypart +mime +extracttext +special-use +duplicate +ihave +index +regex";

impl Pigeonhole {
    fn new() -> Pigeonhole {
        let found = Command::new("sieve-test").arg("-h").output();
        if found.is_err() {
            panic!(
                "sieve-test (Debian package dovecot-sieve) is not installed: this test compares mailc's Sieve with Pigeonhole's and cannot run without it"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mailc-sieve-diff")
            .tempdir()
            .unwrap();
        // Dovecot refuses to access mail as root: as root, run as nobody
        // (and make the work directory theirs to write in); otherwise as
        // ourselves.
        let uid = id("-u");
        let (uid, gid) = if uid == "0" {
            ("65534".to_string(), "65534".to_string())
        } else {
            (uid, id("-g"))
        };
        chmod(dir.path(), 0o777);
        // Included scripts are copied in: the checkout may not be readable
        // by the user sieve-test runs as (nobody, as root).
        let include = dir.path().join("include");
        for scope in ["personal", "global"] {
            std::fs::create_dir_all(include.join(scope)).unwrap();
            for e in std::fs::read_dir(data().join("include").join(scope)).unwrap() {
                let p = e.unwrap().path();
                std::fs::copy(&p, include.join(scope).join(p.file_name().unwrap())).unwrap();
            }
        }
        chmod_tree(&include);
        let conf = format!(
            "mail_uid = {uid}\nmail_gid = {gid}\nfirst_valid_uid = 0\nfirst_valid_gid = 0\n\
             mail_location = maildir:~/mail\n\
             plugin {{\n  \
               sieve = file:{personal}\n  \
               sieve_global = {global}\n  \
               sieve_extensions = {EXTENSIONS}\n  \
               sieve_spamtest_status_type = score\n  \
               sieve_spamtest_status_header = X-Spam-Score\n  \
               sieve_spamtest_max_value = 10\n  \
               sieve_virustest_status_type = text\n  \
               sieve_virustest_status_header = X-Virus-Scan\n  \
               sieve_virustest_text_value1 = clean\n  \
               sieve_virustest_text_value5 = infected\n\
             }}\n",
            personal = include.join("personal").display(),
            global = include.join("global").display(),
        );
        std::fs::write(dir.path().join("dovecot.conf"), conf).unwrap();
        Pigeonhole { dir }
    }

    /// Runs `sieve-test` (with `-e`: executes) in a fresh home for the case.
    /// `folders`: those to create besides the case's own (with `-e`, every
    /// folder the listed actions store into, so that storing succeeds and
    /// the vacation action runs).
    fn run(&self, case: &Case, execute: bool, folders: &[String]) -> (i32, String) {
        let home =
            self.dir
                .path()
                .join(format!("{}{}", case.name, if execute { "-e" } else { "" }));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join("mail")).unwrap();
        for f in case.folders.iter().chain(folders) {
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(home.join("mail").join(format!(".{f}")).join(sub)).unwrap();
            }
        }
        std::fs::write(home.join("script.sieve"), &case.script).unwrap();
        std::fs::write(home.join("message.eml"), &case.message).unwrap();
        chmod_tree(&home);
        let mut cmd = Command::new("sieve-test");
        cmd.env("HOME", &home)
            .env("USER", "sieve-diff")
            .current_dir(&home)
            .arg("-C")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .arg("-f")
            .arg(&case.from)
            .arg("-a")
            .arg(&case.to)
            .arg("-r")
            .arg(&case.user);
        if execute {
            cmd.arg("-e");
        }
        cmd.arg("script.sieve").arg("message.eml");
        let out = cmd.output().expect("sieve-test runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn actions(&self, case: &Case) -> (Vec<String>, String) {
        let (code, text) = self.run(case, false, &[]);
        if text.contains("failed to compile sieve script") {
            let line = text
                .lines()
                .find_map(|l| {
                    let rest = l.split_once(": line ")?.1;
                    let (n, rest) = rest.split_once(':')?;
                    rest.trim_start()
                        .starts_with("error")
                        .then(|| n.parse::<usize>().ok())?
                })
                .unwrap_or(0);
            return (vec![format!("compile-error line={line}")], text);
        }
        if text.contains("final result: failed") {
            let mut lines = vec!["runtime-error".to_string(), "store INBOX".to_string()];
            lines.sort();
            return (lines, text);
        }
        if code != 0 {
            return (vec![format!("sieve-test exited with {code}")], text);
        }
        let mut lines = parse_actions(&text);
        if lines.iter().any(|l| l.starts_with("vacation ")) {
            // Listed; was it sent?
            let stored: Vec<String> = lines
                .iter()
                .filter_map(|l| {
                    let folder = l.strip_prefix("store ")?.split(' ').next()?;
                    (folder != "INBOX").then(|| folder.to_string())
                })
                .collect();
            let (_, executed) = self.run(case, true, &stored);
            let to = executed.lines().find_map(|l| {
                let rest = l.split_once("sent vacation response to <")?.1;
                Some(rest.split_once('>')?.0.to_string())
            });
            // The subject the reply was sent with (the listing does not
            // show a default one); the sent message is on stdout, headed by
            // Pigeonhole's X-Sieve field.
            let sent = |name: &str| {
                executed
                    .lines()
                    .skip_while(|l| !l.starts_with("X-Sieve: "))
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or("")
                    .to_string()
            };
            let subject = decoded(&sent("Subject: "));
            let from = addr_spec(&sent("From: "));
            lines = lines
                .into_iter()
                .filter_map(|l| match l.strip_prefix("vacation ") {
                    Some(period) => to.as_ref().map(|to| {
                        format!("vacation to={to} from={from} subject={subject} {period}")
                    }),
                    None => Some(l),
                })
                .collect();
            let text = format!("{text}\n--- executed (-e):\n{executed}");
            lines.sort();
            return (lines, text);
        }
        lines.sort();
        (lines, text)
    }
}

/// A Subject with its RFC 2047 encoded words decoded.
fn decoded(subject: &str) -> String {
    let field = format!("Subject: {subject}\r\n\r\n");
    mail_parser::MessageParser::default()
        .parse(field.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// The address of a From field, without display name or brackets.
fn addr_spec(field: &str) -> String {
    let inner = match (field.rfind('<'), field.rfind('>')) {
        (Some(a), Some(b)) if a < b => &field[a + 1..b],
        _ => field,
    };
    inner.trim().to_ascii_lowercase()
}

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chmod_tree(path: &Path) {
    chmod(path, 0o777);
    for e in std::fs::read_dir(path).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            chmod_tree(&p);
        } else {
            chmod(&p, 0o666);
        }
    }
}

/// The "Performed actions" and "Implicit keep" sections of `sieve-test`'s
/// output as normalised lines. A vacation line here has no recipient yet.
fn parse_actions(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    // The action being read: its line and its sub-lines.
    let mut current: Option<(String, Vec<String>)> = None;
    let mut in_message = false;
    let finish = |cur: &mut Option<(String, Vec<String>)>, lines: &mut Vec<String>| {
        if let Some((head, subs)) = cur.take()
            && let Some(line) = normalise(&head, &subs)
        {
            lines.push(line);
        }
    };
    for raw in text.lines() {
        if in_message {
            if raw == "END MESSAGE" {
                in_message = false;
            }
            continue;
        }
        if raw == "START MESSAGE" {
            in_message = true;
            continue;
        }
        let t = raw.trim();
        if let Some(head) = t.strip_prefix("* ") {
            finish(&mut current, &mut lines);
            current = Some((head.to_string(), Vec::new()));
        } else if t.starts_with('+') || t.starts_with("=>") {
            if let Some((_, subs)) = current.as_mut() {
                subs.push(t.to_string());
            }
        } else if t == "Implicit keep:" || t.starts_with("sieve-test:") {
            finish(&mut current, &mut lines);
        }
    }
    finish(&mut current, &mut lines);
    lines
}

fn normalise(head: &str, subs: &[String]) -> Option<String> {
    if let Some(folder) = head.strip_prefix("store message in folder: ") {
        let mut flags: Vec<String> = Vec::new();
        let mut create = false;
        for s in subs {
            if let Some(f) = s.strip_prefix("+ add IMAP flags: ") {
                flags.extend(f.split_whitespace().map(str::to_string));
            } else if s.starts_with("+ create mailbox") {
                create = true;
            }
        }
        return Some(store_line(folder.trim(), &flags, create));
    }
    if let Some(to) = head.strip_prefix("redirect message to: ") {
        return Some(format!(
            "redirect {}",
            to.trim().trim_start_matches('<').trim_end_matches('>')
        ));
    }
    if let Some(reason) = head.strip_prefix("reject message with reason: ") {
        // sieve-test prints each byte of a line break as `?`.
        return Some(format!("reject {}", reason.replace("??", "\n").trim()));
    }
    if head.starts_with("send vacation message") {
        // Its subject comes from the reply as sent (`-e`).
        let period = subs
            .iter()
            .find_map(|s| s.strip_prefix("=> seconds : "))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        return Some(format!("vacation period={period}"));
    }
    if let Some(rest) = head.strip_prefix("send notification with method '") {
        let scheme = rest.split(':').next().unwrap_or("");
        return Some(format!("notify {scheme}"));
    }
    // `discard` shows as nothing stored; `duplicate` marking the id as
    // seen is bookkeeping, not an action on the message.
    if head == "discard" || head.starts_with("track duplicate") {
        return None;
    }
    Some(format!("unknown {head}"))
}

// ------------------------------------------------------------ the test

/// `case: reason` lines of the known differences.
fn known_differences() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(common::root().join(KNOWN_FILE)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, why) = l.split_once(':').expect("`case: reason`");
            (case.trim().to_string(), why.trim().to_string())
        })
        .collect()
}

#[test]
#[ignore = "needs sieve-test (dovecot-sieve): .ci/run runs it with --ignored"]
fn mailc_and_pigeonhole_take_the_same_actions() {
    let pigeonhole = Pigeonhole::new();
    let cases = load_cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let known = known_differences();
    for name in known.keys() {
        assert!(
            cases.iter().any(|c| &c.name == name),
            "{KNOWN_FILE} names {name}, which is not a case"
        );
    }
    let mut failures = Vec::new();
    let mut agree = 0;
    let mut differ_known = 0;
    for case in &cases {
        let ours = mailc(case);
        let (theirs, raw) = pigeonhole.actions(case);
        let same = ours == theirs;
        let listed = known.contains_key(&case.name);
        let verdict = match (same, listed) {
            (true, false) => {
                agree += 1;
                "agree"
            }
            (false, true) => {
                differ_known += 1;
                "known difference"
            }
            (false, false) => "DIFFERENT",
            (true, true) => "LISTED AS DIFFERENT BUT AGREES",
        };
        eprintln!("{:<32} {verdict}", case.name);
        if same == listed {
            failures.push(format!(
                "== {} ({verdict})\n   mailc:      {ours:?}\n   Pigeonhole: {theirs:?}\n--- sieve-test said:\n{raw}",
                case.name
            ));
        }
    }
    eprintln!(
        "\n{agree} of {} cases agree; {differ_known} known differences; {} failures",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The reading of `sieve-test`'s listing, on a listing it printed (runs in
/// a plain `cargo test`).
#[test]
fn sieve_test_listings_are_normalised() {
    let listing = "
Performed actions:

 * store message in folder: Work
        + preserve implicit keep
        + add IMAP flags: \\seen $Work
 * redirect message to: <carol@example.net>
 * send vacation message:
    => seconds : 259200
    => subject : Away
    => handle  : I am awayAway<default-from><NO-MIME>

START MESSAGE
 * store message in folder: NotAnAction
END MESSAGE
 * reject message with reason: Go away.??Really.??
 * store message in folder: New
        + create mailbox if it does not exist
 * send notification with method 'mailto:':
    => importance   : 2
 * track duplicate with handle: h
 * discard

Implicit keep:

 * store message in folder: INBOX
        + add IMAP flags: \\flagged

sieve-test: Info: final result: success
";
    let mut lines = parse_actions(listing);
    lines.sort();
    assert_eq!(
        lines,
        [
            "notify mailto",
            "redirect carol@example.net",
            "reject Go away.\nReally.",
            "store INBOX flags=\\flagged",
            "store New create",
            "store Work flags=$work \\seen",
            "vacation period=259200",
        ]
    );
    assert_eq!(addr_spec("\"Smith, A\" <A@Example.org>"), "a@example.org");
    assert_eq!(addr_spec("<bob@example.test>"), "bob@example.test");
}
