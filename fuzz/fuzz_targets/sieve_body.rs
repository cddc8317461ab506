//! The body of the `sieve` fuzz target, shared with `tests/fuzz_sieve.rs`
//! (which runs it over the side-by-side corpus on every `cargo test`, so
//! the target keeps building where cargo-fuzz is not installed).

use std::sync::Arc;

use mailc::filter::{self, Delivery, Engine, Host, Limits, Script, SpamScore, VirusResult};

/// Includes are compiled from the same input's script; two folders exist;
/// ids containing "seen" were seen.
struct FuzzHost {
    include: Option<Arc<Script>>,
}

impl Host for FuzzHost {
    fn include(&mut self, name: &str, _global: bool) -> Option<Arc<Script>> {
        (name == "self").then(|| self.include.clone()).flatten()
    }
    fn folder_exists(&mut self, name: &str) -> bool {
        matches!(name, "INBOX" | "Work")
    }
    fn special_use_exists(&mut self, special_use: &str) -> bool {
        special_use.eq_ignore_ascii_case("\\Junk")
    }
    fn seen(&mut self, id: &str) -> bool {
        id.contains("seen")
    }
}

/// One input: the script, a NUL byte, the message.
pub fn run(data: &[u8]) {
    let (script, message) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (
            data,
            &b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"[..],
        ),
    };
    let limits = Limits {
        cpu: 5_000,
        ..Limits::default()
    };
    let compiled = match filter::compile("fuzz", script, &limits) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let mut host = FuzzHost {
        include: Some(compiled.clone()),
    };
    let engine = Engine::new(limits.clone(), "mx.example.test");
    for (sender, spam, virus) in [
        (
            "alice@example.org",
            SpamScore::Score(0.7),
            VirusResult::Clean,
        ),
        ("", SpamScore::Unknown, VirusResult::Infected),
    ] {
        let delivery = Delivery {
            sender,
            recipient: "bob+detail@example.test",
            mailbox: "bob@example.test",
            spam,
            virus,
        };
        let outcome = engine.run(
            &[compiled.clone(), compiled.clone()],
            message,
            &delivery,
            &mut host,
        );
        // Mail is never lost to a failing script.
        if !outcome.errors.is_empty() {
            assert!(outcome.stores(), "{:?}", outcome);
        }
        let redirects = outcome
            .actions
            .iter()
            .filter(|a| matches!(a, filter::Action::Redirect { .. }))
            .count();
        assert!(
            redirects <= 2 * limits.max_redirects,
            "{:?}",
            outcome.actions
        );
    }
}
