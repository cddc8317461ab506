use std::collections::{HashMap, HashSet};

use super::*;

#[derive(Default)]
struct TestHost {
    folders: HashSet<String>,
    seen: HashSet<String>,
    includes: HashMap<String, Arc<Script>>,
}

impl Host for TestHost {
    fn include(&mut self, name: &str, _global: bool) -> Option<Arc<Script>> {
        self.includes.get(name).cloned()
    }
    fn folder_exists(&mut self, name: &str) -> bool {
        name == "INBOX" || self.folders.contains(name)
    }
    fn special_use_exists(&mut self, special_use: &str) -> bool {
        special_use.eq_ignore_ascii_case("\\Junk")
    }
    fn seen(&mut self, id: &str) -> bool {
        self.seen.contains(id)
    }
}

const MSG: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.test\r\nSubject: Hello there\r\nMessage-ID: <m1@example.org>\r\n\r\nHi Bob, the report is attached.\r\n";

fn delivery() -> Delivery<'static> {
    Delivery {
        sender: "alice@example.org",
        recipient: "bob+lists@example.test",
        mailbox: "bob@example.test",
        spam: SpamScore::Unknown,
        virus: VirusResult::Unknown,
    }
}

fn script(src: &str) -> Arc<Script> {
    Arc::new(compile("test", src.as_bytes(), &Limits::default()).expect("compiles"))
}

fn run_with(host: &mut TestHost, scripts: &[&str], msg: &[u8]) -> Outcome {
    let engine = Engine::new(Limits::default(), "mx.example.test");
    let scripts: Vec<_> = scripts.iter().map(|s| script(s)).collect();
    engine.run(&scripts, msg, &delivery(), host)
}

fn run(src: &str) -> Outcome {
    run_with(&mut TestHost::default(), &[src], MSG)
}

fn store(folder: &str, flags: &[&str]) -> Action {
    Action::Store {
        folder: folder.into(),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        create: false,
        special_use: None,
        message: 0,
    }
}

#[test]
fn an_empty_script_keeps() {
    assert_eq!(run("").actions, [store("INBOX", &[])]);
}

#[test]
fn fileinto_cancels_the_implicit_keep_and_copy_does_not() {
    let o = run(
        "require \"fileinto\"; if header :contains \"subject\" \"hello\" { fileinto \"Greetings\"; }",
    );
    assert_eq!(o.actions, [store("Greetings", &[])]);
    let o = run("require [\"fileinto\", \"copy\"]; fileinto :copy \"Archive\";");
    assert_eq!(o.actions, [store("Archive", &[]), store("INBOX", &[])]);
}

#[test]
fn discard_after_an_explicit_keep_still_stores() {
    // RFC 5228 §4.5: discard cancels only the implicit keep.
    assert_eq!(run("keep; discard;").actions, [store("INBOX", &[])]);
    assert!(run("discard;").actions.is_empty());
    assert!(!run("discard;").stores());
}

#[test]
fn keep_and_fileinto_inbox_store_once_with_both_flags() {
    let o = run(
        "require [\"fileinto\", \"imap4flags\"]; keep :flags \"\\\\Seen\"; fileinto :flags \"\\\\Flagged\" \"INBOX\";",
    );
    assert_eq!(o.actions, [store("INBOX", &["\\Seen", "\\Flagged"])]);
}

#[test]
fn imap4flags_set_the_flags_of_the_implicit_keep() {
    let o = run("require \"imap4flags\"; addflag \"\\\\Flagged\"; addflag \"$Work\";");
    assert_eq!(o.actions, [store("INBOX", &["\\Flagged", "$Work"])]);
}

#[test]
fn envelope_and_subaddress() {
    let o = run(
        "require [\"envelope\", \"subaddress\", \"fileinto\"]; if envelope :detail \"to\" \"lists\" { fileinto \"Lists\"; }",
    );
    assert_eq!(o.actions, [store("Lists", &[])]);
}

#[test]
fn redirect_and_reject() {
    let o = run("redirect \"carol@example.net\";");
    assert_eq!(
        o.actions,
        [Action::Redirect {
            address: "carol@example.net".into(),
            message: 0
        }]
    );
    let o = run("require \"reject\"; reject \"no thanks\";");
    assert_eq!(
        o.actions,
        [Action::Reject {
            reason: "no thanks".into(),
            extended: false
        }]
    );
}

#[test]
fn vacation_replies_once_per_sender_and_period() {
    let src = "require \"vacation\"; vacation :days 3 :subject \"Away\" \"I am away.\";";
    let mut host = TestHost::default();
    let o = run_with(&mut host, &[src], MSG);
    let reply = o
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Reply { to, message } => Some((to.clone(), message.clone())),
            _ => None,
        })
        .expect("a reply");
    assert_eq!(reply.0, "alice@example.org");
    let text = String::from_utf8(reply.1).unwrap();
    assert!(text.contains("Subject: Away\r\n"), "{text}");
    assert!(text.contains("Auto-Submitted: auto-replied\r\n"), "{text}");
    assert!(text.contains("In-Reply-To: <m1@example.org>"), "{text}");
    assert!(text.ends_with("I am away."), "{text}");
    assert!(o.actions.contains(&store("INBOX", &[])));
    assert_eq!(o.seen.len(), 1);
    assert_eq!(o.seen[0].1, 3 * 86_400);
    // Recorded: no second reply.
    host.seen.insert(o.seen[0].0.clone());
    let o = run_with(&mut host, &[src], MSG);
    assert!(!o.actions.iter().any(|a| matches!(a, Action::Reply { .. })));
}

#[test]
fn vacation_never_answers_lists_bulk_or_auto_submitted_mail() {
    let src = "require \"vacation\"; vacation \"away\";";
    for extra in [
        "List-Id: <list.example.org>\r\n",
        "Precedence: bulk\r\n",
        "Auto-Submitted: auto-generated\r\n",
    ] {
        let msg = [extra.as_bytes(), MSG].concat();
        let o = run_with(&mut TestHost::default(), &[src], &msg);
        assert!(
            !o.actions.iter().any(|a| matches!(a, Action::Reply { .. })),
            "{extra}"
        );
    }
    // The null sender.
    let engine = Engine::new(Limits::default(), "mx.example.test");
    let mut d = delivery();
    d.sender = "";
    let o = engine.run(&[script(src)], MSG, &d, &mut TestHost::default());
    assert!(!o.actions.iter().any(|a| matches!(a, Action::Reply { .. })));
}

#[test]
fn vacation_periods_shorter_than_the_minimum_are_raised() {
    let src = "require [\"vacation\", \"vacation-seconds\"]; vacation :seconds 5 \"away\";";
    let o = run(src);
    assert_eq!(o.seen[0].1, Limits::default().vacation_min);
}

#[test]
fn mailbox_exists_asks_the_host() {
    let mut host = TestHost::default();
    host.folders.insert("Work".into());
    let src = "require [\"mailbox\", \"fileinto\"]; if mailboxexists \"Work\" { fileinto \"Work\"; } elsif mailboxexists \"Play\" { fileinto \"Play\"; }";
    assert_eq!(
        run_with(&mut host, &[src], MSG).actions,
        [store("Work", &[])]
    );
    host.folders.clear();
    assert_eq!(
        run_with(&mut host, &[src], MSG).actions,
        [store("INBOX", &[])]
    );
}

#[test]
fn include_runs_the_hosts_script_and_a_missing_one_keeps() {
    let mut host = TestHost::default();
    host.includes.insert(
        "common".into(),
        script("require \"fileinto\"; fileinto \"Common\";"),
    );
    let o = run_with(
        &mut host,
        &["require \"include\"; include \"common\";"],
        MSG,
    );
    assert_eq!(o.actions, [store("Common", &[])]);
    let o = run_with(
        &mut TestHost::default(),
        &["require [\"include\", \"fileinto\"]; fileinto \"A\"; include \"missing\";"],
        MSG,
    );
    assert_eq!(
        o.actions,
        [store("INBOX", &[])],
        "error: actions dropped, kept"
    );
    assert_eq!(o.errors.len(), 1);
    let o = run_with(
        &mut TestHost::default(),
        &["require \"include\"; include :optional \"missing\";"],
        MSG,
    );
    assert!(o.errors.is_empty());
}

#[test]
fn scripts_run_in_order_while_the_implicit_keep_holds() {
    let before = "require \"imap4flags\"; addflag \"$Seen-by-admin\";";
    let user = "require \"fileinto\"; fileinto \"Mine\";";
    let after = "require \"fileinto\"; fileinto \"After\";";
    let o = run_with(&mut TestHost::default(), &[before, user, after], MSG);
    assert_eq!(
        o.actions,
        [store("Mine", &[])],
        "the user's fileinto ends it"
    );
    let spam =
        "require \"fileinto\"; if header :contains \"subject\" \"hello\" { fileinto \"Junk\"; }";
    let o = run_with(&mut TestHost::default(), &[spam, user], MSG);
    assert_eq!(
        o.actions,
        [store("Junk", &[])],
        "the user script does not run"
    );
}

#[test]
fn runaway_scripts_hit_the_cpu_limit_and_keep() {
    // A regex over a long body, many times: bounded by the CPU limit.
    let body = "a".repeat(200_000);
    let msg = format!("Subject: x\r\n\r\n{body}\r\n");
    let mut src = String::from("require [\"body\", \"fileinto\", \"variables\"];\n");
    for i in 0..2000 {
        src.push_str(&format!(
            "if body :contains \"zz{i}\" {{ fileinto \"F{i}\"; }}\n"
        ));
    }
    let engine = Engine::new(
        Limits {
            cpu: 500,
            ..Limits::default()
        },
        "mx.example.test",
    );
    let o = engine.run(
        &[script(&src)],
        msg.as_bytes(),
        &delivery(),
        &mut TestHost::default(),
    );
    assert_eq!(o.actions, [store("INBOX", &[])]);
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    assert!(o.errors[0].contains("CPU limit"), "{:?}", o.errors);
}

#[test]
fn compile_errors_carry_positions_and_kinds() {
    let e = compile(
        "t",
        b"require \"fileinto\";\n\nfileinto \"a\"\nstop;",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!((e.line, e.column), (4, 1), "{e}");
    let e = compile("t", b"if true {\n  stop\n  }", &Limits::default()).unwrap_err();
    assert_eq!((e.line, e.column), (3, 3), "{e}");
    let e = compile("t", b"fileinto \"a\";", &Limits::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Extension, "{e}");
    assert_eq!(e.line, 1);
    let e = compile(
        "t",
        b"\nrequire \"vnd.stalwart.expressions\";",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind, e.line, e.column),
        (ErrorKind::Extension, 2, 9),
        "{e}"
    );
    let deep = format!("{}stop;{}", "if true {".repeat(100), "}".repeat(100));
    let e = compile("t", deep.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
}

#[test]
fn require_after_another_command_does_not_compile() {
    // RFC 5228 §3.2 (Pigeonhole agrees: tests/sieve_diff error-require-late).
    let e = compile("t", b"keep;\nrequire \"fileinto\";", &Limits::default()).unwrap_err();
    assert_eq!((e.kind, e.line, e.column), (ErrorKind::Syntax, 2, 1), "{e}");
    assert!(
        compile(
            "t",
            b"require \"fileinto\";\nrequire \"copy\"; keep;",
            &Limits::default()
        )
        .is_ok()
    );
}

#[test]
fn redirects_up_to_the_limit_are_sent_and_more_fail_the_script() {
    // sieve-rs counted redirects against the reply limit (2) and dropped
    // the rest silently; Pigeonhole fails the script and keeps the message
    // (tests/sieve_diff redirect-too-many).
    let limit = Limits::default().max_redirects;
    let src = |n: usize| {
        (0..n)
            .map(|i| format!("redirect \"a{i}@example.net\";\n"))
            .collect::<String>()
    };
    let o = run(&src(limit));
    assert_eq!(o.actions.len(), limit, "{:?}", o.actions);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    let o = run(&src(limit + 1));
    assert_eq!(o.actions, [store("INBOX", &[])]);
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
}

#[test]
fn reject_with_a_delivery_fails_the_script_and_keeps() {
    // tests/sieve_diff reject-and-fileinto: Pigeonhole fails such a
    // script; mailc returned both a Reject and a Store.
    for src in [
        "require [\"reject\", \"fileinto\"]; fileinto \"Kept\"; reject \"no\";",
        "require \"reject\"; keep; reject \"no\";",
        "require [\"reject\", \"copy\"]; redirect :copy \"c@example.net\"; reject \"no\";",
        "require [\"reject\", \"vacation\"]; vacation \"away\"; reject \"no\";",
    ] {
        let o = run(src);
        assert_eq!(o.actions, [store("INBOX", &[])], "{src}");
        assert_eq!(o.errors.len(), 1, "{src}");
    }
}

#[test]
fn an_unknown_command_is_reported_where_it_is() {
    // sieve-rs gave line 0; Pigeonhole names line 2
    // (tests/sieve_diff error-unknown-command).
    let e = compile("t", b"keep;\n  frobnicate \"x\";", &Limits::default()).unwrap_err();
    assert_eq!((e.line, e.column), (2, 3), "{e}");
}

#[test]
fn regex_matches_without_case_under_the_default_comparator() {
    // Pigeonhole files this into "re-Hello" (tests/sieve_diff header-regex).
    let o = run(
        "require [\"regex\", \"fileinto\", \"variables\"]; if header :regex \"subject\" \"^([a-z]+) there$\" { fileinto \"re-${1}\"; }",
    );
    assert_eq!(o.actions, [store("re-Hello", &[])]);
    let o = run(
        "require [\"regex\", \"fileinto\"]; if header :regex :comparator \"i;octet\" \"subject\" \"^hello\" { fileinto \"X\"; }",
    );
    assert_eq!(o.actions, [store("INBOX", &[])]);
}

#[test]
fn a_match_variable_inside_its_own_regex_key_does_not_panic() {
    // Found by fuzz/fuzz_targets/sieve.rs: sieve-rs debug-asserted here
    // (Cargo.toml turns its debug assertions off, as in release).
    for src in [
        "require \"regex\";\nif header :regex \"subject\" \"${1}([a-z\" { keep; }\n",
        "require [\"regex\", \"variables\"];\nif header :regex \"subject\" \"^(a)${1}$\" { keep; }\n",
        "require \"variables\";\nif header :matches \"subject\" \"*${1}\" { keep; }\n",
    ] {
        if let Ok(s) = compile("t", src.as_bytes(), &Limits::default()) {
            let engine = Engine::new(Limits::default(), "mx.example.test");
            let o = engine.run(&[Arc::new(s)], MSG, &delivery(), &mut TestHost::default());
            assert!(o.stores(), "{src}: {:?}", o.actions);
        }
    }
}

#[test]
fn deleteheader_keeps_the_trace_and_auto_submitted_fields() {
    // tests/sieve_diff editheader-protected: Pigeonhole denies these.
    let msg = b"Received: from a by b; Tue, 1 Dec 2026 10:00:00 +0000\r\nAuto-Submitted: auto-replied\r\nSubject: x\r\n\r\nbody\r\n";
    let o = run_with(
        &mut TestHost::default(),
        &[
            "require [\"editheader\", \"fileinto\"]; deleteheader \"received\"; deleteheader \"Auto-Submitted\"; deleteheader \"subject\"; if allof (exists \"received\", exists \"auto-submitted\", not exists \"subject\") { fileinto \"Kept\"; }",
        ],
        msg,
    );
    let Action::Store { folder, .. } = &o.actions[0] else {
        panic!("{:?}", o.actions)
    };
    assert_eq!(folder, "Kept");
}

#[test]
fn empty_test_lists_and_invalid_variable_names_do_not_compile() {
    // Pigeonhole refuses both (tests/sieve_diff error-empty-allof,
    // error-bad-variable-name); sieve-rs compiled them.
    let e = compile("t", b"if allof () { keep; }", &Limits::default()).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Syntax, 1), "{e}");
    let e = compile(
        "t",
        b"require \"variables\";\nset \"a-b\" \"x\";",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Syntax, 2), "{e}");
}

#[test]
fn a_redirect_to_a_literal_non_address_does_not_compile() {
    // Pigeonhole refuses it (tests/sieve_diff redirect-invalid); sieve-rs
    // compiled it and skipped the redirect when it ran.
    let e = compile(
        "t",
        b"keep;\nredirect \"not an address\";",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Syntax, 2), "{e}");
    assert!(
        compile(
            "t",
            b"redirect \"Carol <carol@example.net>\";",
            &Limits::default()
        )
        .is_ok()
    );
}

#[test]
fn vacation_replies_encode_non_ascii_headers_and_declare_mime() {
    // sieve-rs wrote the Subject as raw UTF-8 and no MIME-Version
    // (tests/sieve_diff vacation-encoded-subject).
    let msg = "From: Zoë <alice@example.org>\r\nTo: bob@example.test\r\nSubject: =?ISO-8859-1?Q?R=E9sum=E9?= attached and a long tail of words to need folding\r\nMessage-ID: <r1@example.org>\r\n\r\nx\r\n";
    let o = run_with(
        &mut TestHost::default(),
        &["require \"vacation\"; vacation :from \"Bjørn <bob@example.test>\" \"Away: café.\";"],
        msg.as_bytes(),
    );
    let reply = o
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Reply { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("a reply");
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        reply[..end].is_ascii(),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let text = String::from_utf8(reply.clone()).unwrap();
    assert!(text.contains("MIME-Version: 1.0\r\n"), "{text}");
    assert!(
        text.contains("Content-Transfer-Encoding: 8bit\r\n"),
        "{text}"
    );
    assert!(text.ends_with("Away: café."), "{text}");
    let parsed = mail_parser::MessageParser::default().parse(&reply).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Auto: Résumé attached and a long tail of words to need folding")
    );
    let from = parsed.from().and_then(|f| f.first()).unwrap();
    assert_eq!(from.name(), Some("Bjørn"));
    assert_eq!(from.address(), Some("bob@example.test"));
}

#[test]
fn spamtest_reads_the_score() {
    let src = "require [\"spamtest\", \"relational\", \"comparator-i;ascii-numeric\", \"fileinto\"]; if spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"5\" { fileinto \"Junk\"; }";
    let engine = Engine::new(Limits::default(), "mx.example.test");
    let mut d = delivery();
    d.spam = SpamScore::Score(0.9);
    let o = engine.run(&[script(src)], MSG, &d, &mut TestHost::default());
    assert_eq!(o.actions, [store("Junk", &[])]);
    d.spam = SpamScore::Score(0.1);
    let o = engine.run(&[script(src)], MSG, &d, &mut TestHost::default());
    assert_eq!(o.actions, [store("INBOX", &[])]);
}

#[test]
fn editheader_changes_what_is_stored() {
    let src = "require \"editheader\"; addheader \"X-Filtered\" \"yes\";";
    let o = run(src);
    let Action::Store { message, .. } = &o.actions[0] else {
        panic!("{:?}", o.actions)
    };
    assert_ne!(*message, 0);
    let edited = String::from_utf8(o.messages[message].clone()).unwrap();
    assert!(edited.starts_with("X-Filtered: yes\r\n"), "{edited}");
}

#[test]
fn automatic_mail_is_recognised() {
    let plain = b"Subject: x\r\n\r\nbody\r\n";
    assert!(!is_automatic(plain, "alice@example.org"));
    assert!(is_automatic(plain, ""));
    assert!(is_automatic(plain, "MAILER-DAEMON@example.org"));
    assert!(is_automatic(plain, "rust-users-request@example.org"));
    for h in [
        "Auto-Submitted: auto-replied; owner-email=x@y\r\n",
        "Precedence: list\r\n",
        "List-Unsubscribe:\r\n <mailto:x@y>\r\n",
        "X-Auto-Response-Suppress: OOF, DR\r\n",
    ] {
        let m = [h.as_bytes(), plain].concat();
        assert!(is_automatic(&m, "alice@example.org"), "{h}");
    }
    let m = [b"Auto-Submitted: no\r\n".as_slice(), plain].concat();
    assert!(!is_automatic(&m, "alice@example.org"));
    // A header in the body is not a header.
    assert!(!is_automatic(
        b"Subject: x\r\n\r\nPrecedence: bulk\r\n",
        "a@b.c"
    ));
}

#[test]
fn an_include_loop_ends_and_keeps() {
    let mut host = TestHost::default();
    host.includes
        .insert("me".into(), script("require \"include\"; include \"me\";"));
    let o = run_with(&mut host, &["require \"include\"; include \"me\";"], MSG);
    assert_eq!(o.actions, [store("INBOX", &[])]);
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
}

#[test]
fn a_backtracking_regex_is_bounded() {
    let long = "a".repeat(5000);
    let msg = format!("Subject: {long}!\r\n\r\nx\r\n");
    let src = "require [\"regex\", \"fileinto\"]; if header :regex \"subject\" \"^(a+)+$\" { fileinto \"Never\"; }";
    let started = std::time::Instant::now();
    let o = run_with(&mut TestHost::default(), &[src], msg.as_bytes());
    assert!(!o.actions.contains(&store("Never", &[])), "{:?}", o.actions);
    assert!(o.actions.contains(&store("INBOX", &[])), "{:?}", o.actions);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn huge_string_lists_compile_within_the_size_limit_or_are_refused() {
    let list: Vec<String> = (0..20_000).map(|i| format!("\"s{i}\"")).collect();
    let src = format!(
        "require \"fileinto\"; if header :is \"subject\" [{}] {{ fileinto \"L\"; }}",
        list.join(",")
    );
    // 20,000 strings are under the 512 KiB script limit: they compile and
    // run (no match here).
    let o = run(&src);
    assert_eq!(o.actions, [store("INBOX", &[])]);
    let bigger = format!("{}{}", src, " ".repeat(600 * 1024));
    let e = compile("t", bigger.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
}

#[test]
fn a_50_mb_message_through_body_tests_is_bounded() {
    let mut msg = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    let line = b"the quick brown fox jumps over the lazy dog 0123456789\r\n";
    while msg.len() < 50 << 20 {
        msg.extend_from_slice(line);
    }
    let src = "require [\"body\", \"fileinto\"]; if body :text :contains \"needle\" { fileinto \"Found\"; } elsif body :raw :contains \"lazy dog\" { fileinto \"Raw\"; }";
    let started = std::time::Instant::now();
    let o = run_with(&mut TestHost::default(), &[src], &msg);
    assert_eq!(o.actions, [store("Raw", &[])], "{:?}", o.errors);
    eprintln!("50 MB through body tests: {:?}", started.elapsed());
}
