//! Property tests of the compiler: generated configs (valid and broken, from
//! the language's own vocabulary) never panic, and whenever one compiles, its
//! tables keep their invariants: a content hash over the content, a JSON
//! round trip, every written address resolving to itself, and alias
//! expansion ending only at mailboxes or remote addresses.

use mailc::compile::{Options, compile_str};
use mailc::diag::{Style, render_all};
use mailc::tables::TargetKind;
use mailc::tables::resolve::{Matched, Resolution};
use proptest::prelude::*;

const LOCALS: &[&str] = &[
    "alice",
    "bob",
    "Alice",
    "postmaster",
    "a..b",
    "carol",
    "team",
    "x+y",
];
const DOMAINS: &[&str] = &[
    "example.test",
    "Example.TEST",
    "bücher.example",
    "x_y.test",
    "example.org",
    "xn--bcher-kva.example",
];
const REMOTES: &[&str] = &["dana@partner.example", "office@verlag.example", "bad@@x"];
const KINDS: &[&str] = &[
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "lmtp",
    "managesieve",
    "http",
    "https",
    "smtps",
];
const ADDRS: &[&str] = &[
    "127.0.0.1:25",
    "0.0.0.0:25",
    "127.0.0.1:587",
    "[::1]:993",
    "localhost:25",
];
const NETS: &[&str] = &["127.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "192.0.2.1/24"];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(list)
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        pick(LOCALS).prop_map(str::to_string),
        pick(REMOTES).prop_map(str::to_string),
        (pick(LOCALS), pick(DOMAINS)).prop_map(|(l, d)| format!("{l}@{d}")),
    ]
}

fn mailbox() -> impl Strategy<Value = String> {
    (
        pick(LOCALS),
        any::<bool>(),
        prop::collection::vec(pick(LOCALS), 0..3),
    )
        .prop_map(|(name, disabled, aliases)| {
            let mut s = format!("    mailbox \"{name}\"");
            if disabled {
                s.push_str(" disabled=#true");
            }
            if aliases.is_empty() {
                s.push('\n');
            } else {
                let list: Vec<String> = aliases.iter().map(|a| format!("\"{a}\"")).collect();
                s.push_str(&format!(" {{\n        alias {}\n    }}\n", list.join(" ")));
            }
            s
        })
}

fn alias() -> impl Strategy<Value = String> {
    (pick(LOCALS), prop::collection::vec(target(), 0..3)).prop_map(|(name, targets)| {
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        if list.is_empty() {
            format!("    alias \"{name}\"\n")
        } else {
            format!(
                "    alias \"{name}\" {{\n        to {}\n    }}\n",
                list.join(" ")
            )
        }
    })
}

fn domain() -> impl Strategy<Value = String> {
    (
        pick(DOMAINS),
        prop::collection::vec(mailbox(), 0..4),
        prop::collection::vec(alias(), 0..4),
        prop::option::of(target()),
        prop::option::of(pick(&["+", "-", "++"])),
    )
        .prop_map(|(name, mailboxes, aliases, catch_all, sep)| {
            let mut s = format!("domain \"{name}\" {{\n");
            for m in mailboxes {
                s.push_str(&m);
            }
            for a in aliases {
                s.push_str(&a);
            }
            if let Some(c) = catch_all {
                s.push_str(&format!("    catch-all \"{c}\"\n"));
            }
            if let Some(p) = sep {
                s.push_str(&format!("    plus-separator \"{p}\"\n"));
            }
            s.push_str("}\n");
            s
        })
}

fn config() -> impl Strategy<Value = String> {
    (
        prop::option::of(pick(&["mail.example.test", "mail", "MX.Example.Org."])),
        any::<bool>(),
        prop::collection::vec((pick(KINDS), pick(ADDRS)), 0..4),
        prop::collection::vec(domain(), 0..4),
        prop::collection::vec(pick(NETS), 0..3),
    )
        .prop_map(|(host, tls, listeners, domains, nets)| {
            let mut s = String::new();
            if let Some(h) = host {
                s.push_str(&format!("hostname \"{h}\"\n"));
            }
            if tls {
                s.push_str("tls self-signed=#true\n");
            }
            for (k, a) in listeners {
                s.push_str(&format!("listen \"{k}\" \"{a}\"\n"));
            }
            if !nets.is_empty() {
                let list: Vec<String> = nets.iter().map(|n| format!("\"{n}\"")).collect();
                s.push_str(&format!("trusted-networks {}\n", list.join(" ")));
            }
            for d in domains {
                s.push_str(&d);
            }
            s
        })
}

const GOOD_DOMAINS: &[&str] = &["example.test", "bücher.example", "example.org"];
const BOXES: &[&str] = &["alice", "bob", "carol", "postmaster"];
const ALIASES: &[&str] = &["team", "sales", "info", "all"];

/// Mostly valid configs: distinct names from separate pools, so that a fair
/// share compiles and the table invariants are really exercised.
fn good_config() -> impl Strategy<Value = String> {
    let domain = (
        prop::sample::subsequence(BOXES, 0..=4),
        prop::collection::vec(
            (
                pick(ALIASES),
                prop::collection::vec(
                    prop_oneof![
                        3 => pick(BOXES).prop_map(str::to_string),
                        2 => pick(ALIASES).prop_map(str::to_string),
                        1 => pick(REMOTES[..2].as_ref()).prop_map(str::to_string),
                        1 => (pick(BOXES), pick(GOOD_DOMAINS)).prop_map(|(l, d)| format!("{l}@{d}")),
                    ],
                    1..3,
                ),
            ),
            0..3,
        ),
        prop::option::of(pick(BOXES)),
        any::<bool>(),
    );
    (prop::sample::subsequence(GOOD_DOMAINS, 1..=3), prop::collection::vec(domain, 3))
        .prop_map(|(names, bodies)| {
            let mut s = String::from("hostname \"mail.example.test\"\ntls self-signed=#true\nlisten \"smtp\" \"127.0.0.1:25\"\n");
            for (name, (boxes, aliases, catch_all, sensitive)) in names.iter().zip(bodies) {
                s.push_str(&format!("domain \"{name}\" {{\n"));
                if sensitive {
                    s.push_str("    local-part-case \"sensitive\"\n");
                }
                for b in &boxes {
                    s.push_str(&format!("    mailbox \"{b}\" {{\n        alias \"{b}.x\"\n    }}\n"));
                }
                let mut seen = Vec::new();
                for (a, targets) in aliases {
                    if seen.contains(&a) {
                        continue;
                    }
                    seen.push(a);
                    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
                    s.push_str(&format!("    alias \"{a}\" {{\n        to {}\n    }}\n", list.join(" ")));
                }
                if let Some(c) = catch_all {
                    s.push_str(&format!("    catch-all \"{c}\"\n"));
                }
                s.push_str("}\n");
            }
            s
        })
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let out = compile_str(
        "p.kdl",
        std::path::Path::new("/nonexistent"),
        text,
        Options { offline: true },
    );
    let rendered = render_all(&out.diags, &out.sources, Style::Plain, 80);
    prop_assert!(
        out.diags.iter().all(|d| !d.is_error()) == out.compiled.is_some(),
        "{rendered}"
    );
    let Some(c) = out.compiled else {
        return Ok(());
    };
    let t = &c.tables;
    prop_assert_eq!(&t.content_hash, &t.compute_hash());
    let back: mailc::tables::Tables = serde_json::from_str(&t.to_json()).unwrap();
    prop_assert_eq!(&back, t);
    for (address, entry) in &t.addresses {
        match t.resolve(address) {
            Resolution::Deliver(d) => {
                prop_assert_eq!(d.matched, Matched::Exact, "{}", address);
                prop_assert_eq!(d.targets, entry.targets.as_slice());
            }
            other => prop_assert!(false, "{address} does not resolve to itself: {other:?}"),
        }
        for target in &entry.targets {
            match target.kind {
                TargetKind::Mailbox => prop_assert!(t.mailboxes.contains_key(&target.address)),
                TargetKind::Remote => {
                    let domain = target.address.rsplit('@').next().unwrap();
                    prop_assert!(
                        !t.domains.contains_key(domain),
                        "remote target in a local domain"
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn generated_configs_compile_or_fail_cleanly(text in config()) {
        check(&text)?;
    }

    #[test]
    fn mostly_valid_configs_keep_table_invariants(text in good_config()) {
        check(&text)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        check(&text)?;
    }

    #[test]
    fn configs_with_a_byte_cut_or_changed_never_panic(text in config(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = text.into_bytes();
        if !bytes.is_empty() {
            let i = cut.index(bytes.len());
            bytes[i] = byte;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        check(&text)?;
    }
}

/// The invariants above only mean something if generated configs often
/// compile: make sure a fair share of them do.
#[test]
fn a_fair_share_of_generated_configs_compile() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = good_config();
    let mut compiled = 0;
    let total = 300;
    for _ in 0..total {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        let out = compile_str(
            "p.kdl",
            std::path::Path::new("/nonexistent"),
            &text,
            Options { offline: true },
        );
        if out.compiled.is_some_and(|c| !c.tables.addresses.is_empty()) {
            compiled += 1;
        }
    }
    eprintln!("{compiled} of {total} generated configs compiled with addresses");
    assert!(
        compiled * 10 >= total,
        "only {compiled} of {total} generated configs compiled with addresses"
    );
}
