//! mailc's scanner clients side by side with the scanners' own clients:
//! each message of a small corpus goes through `mailc serve` over SMTP
//! (spamd + clamd on one server, rspamd on another, a policy that
//! delivers everything so the fields can be read), and the very bytes
//! mailc scanned (the delivered message without the delivery's and the
//! scan's own fields) go through `spamc -c` / `spamc -y` (SpamAssassin's
//! client), `rspamc symbols` (rspamd's, with the same envelope) and
//! `clamscan` on clamd's database. Scores, rule/symbol names, rspamd's
//! action and the virus names must be the same. (rspamd runs without its
//! `greylist` action, a 451 under any policy, so that every message is
//! delivered and can be read.) Run by `.ci/run` with
//! `--ignored` (packages spamc, rspamd, clamav).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::scanners::{Clamd, Rspamd, Spamd, base64, eicar, gtube};
use common::server::{Raw, Server, standard_domain};
use common::tool;

const FROM: &str = "s@sender.test";
const RCPT: &str = "alice@example.test";
const HELO: &str = "mx.sender.test";

/// Messages that exercise different rules and MIME shapes.
fn corpus() -> Vec<(&'static str, String)> {
    let d = common::scanners::date_now();
    let head = |subject: &str, id: &str| {
        format!(
            "From: Sender <s@sender.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: {d}\r\nMessage-ID: <{id}@sender.test>\r\n"
        )
    };
    let b64 = |s: &str| base64(s.as_bytes());
    vec![
        (
            "ham",
            format!(
                "{}\r\nHi Alice,\r\n\r\nare we still on for lunch tomorrow at noon? The usual place.\r\n\r\nBob\r\n",
                head("lunch", "ham")
            ),
        ),
        ("gtube", format!("{}\r\n{}\r\n", head("test", "gtube"), gtube())),
        (
            "spammy-html",
            format!(
                "{}MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"a1\"\r\n\r\n--a1\r\n\
                 Content-Type: text/plain\r\n\r\nBUY CHEAP VIAGRA NOW!!! 100% FREE, CLICK HERE, LIMITED OFFER, ACT NOW\r\n--a1\r\n\
                 Content-Type: text/html\r\n\r\n<html><body><font color=\"#ff0000\" size=\"7\">BUY CHEAP VIAGRA NOW!!!</font>\
                 <a href=\"http://cheap-pills.invalid/buy\">CLICK HERE</a><img src=\"http://cheap-pills.invalid/x.gif\"></body></html>\r\n--a1--\r\n",
                head("URGENT: Your account winner $$$ FREE", "spammy")
            ),
        ),
        (
            "no-date-no-id",
            "From: someone@sender.test\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\nhello there\r\n".to_string(),
        ),
        (
            "utf8",
            format!(
                "From: =?UTF-8?Q?J=C3=BCrgen?= <j@sender.test>\r\nTo: alice@example.test\r\nSubject: =?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=\r\n\
                 Date: {d}\r\nMessage-ID: <utf8@sender.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus München, bis bald! — Jürgen\r\n"
            ),
        ),
        (
            "eicar-attachment",
            format!(
                "{}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
                 The file.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"x.com\"\r\nContent-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"x.com\"\r\n\r\n{}\r\n--b1--\r\n",
                head("file", "att"),
                b64(&eicar())
            ),
        ),
        (
            "eicar-forwarded",
            format!(
                "{}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"f1\"\r\n\r\n--f1\r\nContent-Type: text/plain\r\n\r\n\
                 Forwarded.\r\n--f1\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.test\r\nSubject: inner\r\n\r\n{}\r\n--f1--\r\n",
                head("Fwd: inner", "fwd"),
                eicar()
            ),
        ),
    ]
}

/// One message over SMTP; the final reply's code.
fn send(s: &Server, body: &str) -> u16 {
    let mut c = Raw::connect(s.addr("smtp"));
    c.stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    c.reply().unwrap();
    assert_eq!(c.cmd(&format!("EHLO {HELO}")).unwrap().0, 250);
    let code = c.send_mail(FROM, &[RCPT], body).unwrap();
    let _ = c.cmd("QUIT");
    code
}

/// Every delivered message of alice, INBOX and Junk, by Message-ID
/// subject order of arrival does not matter: waits for `n`.
fn delivered(s: &Server, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = Vec::new();
        for sub in ["", ".Junk"] {
            let dir = s
                .state()
                .join("mail/example.test/alice")
                .join(sub)
                .join("new");
            if let Ok(rd) = std::fs::read_dir(dir) {
                all.extend(
                    rd.flatten()
                        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()),
                );
            }
        }
        if all.len() >= n || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A header field's value, unfolded; `None` when absent.
fn field(m: &str, name: &str) -> Option<String> {
    let head = m.split("\r\n\r\n").next().unwrap();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The corpus message whose body `m` has (the bodies differ).
fn original<'a>(corpus: &'a [(&'static str, String)], m: &str) -> &'a str {
    let body = |s: &str| s.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    corpus
        .iter()
        .find(|(_, c)| body(c) == body(m))
        .map(|(_, c)| c.as_str())
        .unwrap_or_else(|| panic!("not from the corpus: {m}"))
}

/// The bytes mailc gave the scanners: the delivered message without the
/// fields delivery put on top (Return-Path, Delivered-To) and the scan's,
/// with the Subject it had when it came (rspamd's `rewrite subject`
/// replaces it after the scan).
fn scanned_bytes(m: &str, corpus: &[(&'static str, String)]) -> Vec<u8> {
    let subject = original(corpus, m)
        .split("\r\n")
        .find(|l| l.starts_with("Subject:"))
        .map(|l| format!("{l}\r\n"))
        .expect("the corpus has subjects");
    let m = mailc::inbound::replace_field(m.as_bytes(), "Subject", subject.as_bytes());
    let stripped = mailc::inbound::scan::strip_forged(&m).into_owned();
    let text = String::from_utf8(stripped).unwrap();
    let mut rest = text.as_str();
    for name in ["Return-Path:", "Delivered-To:"] {
        if rest.starts_with(name) {
            rest = &rest[rest.find("\r\n").unwrap() + 2..];
        }
    }
    rest.as_bytes().to_vec()
}

/// Runs a client with `input` on its standard input; its standard output.
fn run(cmd: &mut std::process::Command, input: &[u8]) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client starts");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tests=A,B,C scanner=…` of our X-Spam-Status (folded after commas as
/// SpamAssassin folds it: unfolding leaves whitespace after a comma).
fn our_tests(status: &str) -> BTreeSet<String> {
    let after = status.split_once("tests=").map_or("", |(_, t)| t);
    let tests = after.split_once(" scanner=").map_or(after, |(t, _)| t);
    tests
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "none")
        .map(str::to_string)
        .collect()
}

fn subject_of(m: &str) -> String {
    field(m, "Message-ID")
        .or_else(|| field(m, "Subject"))
        .unwrap_or_default()
}

#[test]
#[ignore = "needs Debian's spamd, spamc, rspamd and clamav; run by .ci/run"]
fn scanners_own_clients_agree_with_mailc() {
    let t0 = Instant::now();
    let rspamd = std::thread::spawn(Rspamd::start_without_greylist);
    let spamd = std::thread::spawn(Spamd::start);
    let clamd = Clamd::start("25M");
    let spamd = spamd.join().expect("spamd started");
    let rspamd = rspamd.join().expect("rspamd started");
    eprintln!("scanners ready after {:?}", t0.elapsed());
    let corpus = corpus();

    // --- spamd and clamd: a policy that delivers everything.
    let s = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nscan {{\n    spamd \"{}\"\n    clamd \"{}\"\n    \
         spam junk=5 reject=10000\n    virus \"accept\"\n}}\n{}",
        spamd.addr,
        clamd.socket.display(),
        standard_domain()
    ));
    for (what, m) in &corpus {
        assert_eq!(send(&s, m), 250, "{what}: the policy delivers everything");
    }
    let got = delivered(&s, corpus.len());
    assert_eq!(got.len(), corpus.len());
    let (host, port) = spamd.addr.rsplit_once(':').unwrap();
    let db = clamd.daemon.dir.path().join("db");
    let mut infected = 0;
    for m in &got {
        let what = subject_of(m);
        let bytes = scanned_bytes(m, &corpus);
        // spamc -c: "SCORE/THRESHOLD"; -y: the rule names.
        let c = run(tool("spamc").args(["-d", host, "-p", port, "-c"]), &bytes);
        let (score, _) = c.trim().split_once('/').expect("spamc -c answers");
        let theirs: f64 = score.parse().unwrap();
        let ours: f64 = field(m, "X-Spam-Score")
            .unwrap_or_else(|| panic!("{what}: no X-Spam-Score\n{m}"))
            .parse()
            .unwrap();
        assert!(
            (ours - theirs).abs() < 0.051,
            "{what}: mailc wrote {ours}, spamc says {theirs}"
        );
        let y = run(tool("spamc").args(["-d", host, "-p", port, "-y"]), &bytes);
        let rules: BTreeSet<String> = y
            .trim()
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        let status = field(m, "X-Spam-Status").expect("X-Spam-Status");
        assert_eq!(our_tests(&status), rules, "{what}: rules of {status}");
        assert_eq!(
            status.starts_with("Yes"),
            theirs >= 5.0,
            "{what}: {status} against spamc's {theirs}"
        );
        // clamscan on clamd's database.
        let scan = run(
            tool("clamscan")
                .arg("--no-summary")
                .arg("-d")
                .arg(&db)
                .arg("-"),
            &bytes,
        );
        let virus = field(m, "X-Virus-Status").expect("X-Virus-Status");
        match scan.trim().strip_suffix(" FOUND") {
            Some(found) => {
                let name = found.rsplit_once(": ").map_or(found, |(_, n)| n);
                assert_eq!(virus, format!("Infected ({name})"), "{what}");
                infected += 1;
            }
            None => {
                assert!(
                    scan.trim().ends_with(": OK"),
                    "{what}: clamscan said {scan}"
                );
                assert_eq!(virus, "Clean", "{what}");
            }
        }
    }
    assert_eq!(infected, 2, "both EICAR messages found by both");
    drop(s);

    // --- rspamd, with the envelope mailc passes given to rspamc too.
    let s = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nscan {{\n    rspamd \"http://{}\"\n    reject-spam #false\n}}\n{}",
        rspamd.addr,
        standard_domain()
    ));
    for (what, m) in &corpus {
        assert_eq!(send(&s, m), 250, "{what}: the policy delivers everything");
    }
    let mut actions = BTreeSet::new();
    let mut rewritten = 0;
    let taken = corpus.len();
    let got = delivered(&s, taken);
    assert_eq!(got.len(), taken);
    for m in &got {
        let what = subject_of(m);
        let bytes = scanned_bytes(m, &corpus);
        let status = field(m, "X-Spam-Status").expect("X-Spam-Status");
        let ours: f64 = field(m, "X-Spam-Score")
            .expect("X-Spam-Score")
            .parse()
            .unwrap();
        // rspamd was not quite deterministic on the same bytes while its
        // DNS pointed at a closed port (one run in six had other symbols);
        // with a server answering NXDOMAIN, five runs in five matched at
        // the first answer. rspamc is still asked up to three times, and one
        // of its answers must equal what mailc wrote: score, action and
        // symbols.
        let mut answers = Vec::new();
        let mut action = String::new();
        let mut subject = None;
        let matched = (0..3).any(|_| {
            let out = run(
                tool("rspamc")
                    .args(["-h", &rspamd.addr, "--json", "-F", FROM, "-r", RCPT])
                    .args(["-i", "127.0.0.1", "--helo", HELO, "symbols"]),
                &bytes,
            );
            let json: serde_json::Value = serde_json::from_str(out.trim())
                .unwrap_or_else(|e| panic!("{what}: rspamc --json: {e}: {out}"));
            let theirs = json["score"].as_f64().expect("score");
            action = json["action"].as_str().expect("action").to_string();
            subject = json["subject"].as_str().map(str::to_string);
            let symbols: BTreeSet<String> = json["symbols"]
                .as_object()
                .expect("symbols")
                .keys()
                .cloned()
                .collect();
            let same = (ours - theirs).abs() < 0.051
                && status.contains(&format!("action=\"{action}\""))
                && our_tests(&status) == symbols;
            answers.push((theirs, action.clone(), symbols));
            same
        });
        assert!(
            matched,
            "{what}: mailc wrote {ours} {status}; rspamc said {answers:?}"
        );
        // The Subject: rspamd's new one with `rewrite subject`, else the
        // sender's, byte for byte.
        let delivered_subject = field(m, "Subject").expect("a Subject");
        if action == "rewrite subject" {
            let theirs = subject.unwrap_or_else(|| panic!("{what}: rspamc gave no subject"));
            // rspamd gives the field's value, in encoded words when the
            // text is not ASCII: the same text once decoded.
            let decoded = |m: &[u8]| {
                mail_parser::MessageParser::default()
                    .parse(m)
                    .and_then(|p| p.subject().map(str::to_string))
            };
            let ours = decoded(m.as_bytes());
            assert_eq!(
                ours,
                decoded(format!("Subject: {theirs}\r\n\r\n").as_bytes()),
                "{what}: {delivered_subject} against rspamd's {theirs}"
            );
            assert!(
                ours.as_deref()
                    .is_some_and(|s| s.starts_with("***SPAM*** ")),
                "{what}: {ours:?}"
            );
            rewritten += 1;
        } else {
            let sent = field(original(&corpus, m), "Subject").unwrap();
            assert_eq!(delivered_subject, sent, "{what}");
        }
        actions.insert(action);
    }
    assert!(
        actions.contains("reject") && actions.contains("no action"),
        "the corpus reaches both ends of rspamd's scale: {actions:?}"
    );
    assert!(
        rewritten > 0,
        "a message between 3 and rspamd's `add header` gets `rewrite subject`: {actions:?}"
    );
    eprintln!("scan_diff took {:?}", t0.elapsed());
}
