//! Any text through the whole config pipeline (KDL parsing, the language
//! check, the compiler, diagnostic rendering) must never panic or hang.
//! Run from the repository root:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run compile fuzz/corpus/compile tests/compile_fail examples`
//! — libFuzzer adds what it finds to the first directory and only reads the
//! others, so the broken-config corpus and the examples seed the run
//! without being copied into `fuzz/corpus/compile`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailc::compile::{Options, compile_str};
use mailc::diag::{Style, render_all};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory with no files: includes resolve to nothing, secrets are
    // not read (offline), so the run is pure.
    let out = compile_str("fuzz.kdl", std::path::Path::new("/nonexistent-mailc-fuzz"), text, Options { offline: true });
    let _ = render_all(&out.diags, &out.sources, Style::Plain, 80);
    if let Some(c) = out.compiled {
        let json = c.tables.to_json();
        assert_eq!(c.tables.content_hash, c.tables.compute_hash());
        for address in ["postmaster@example.test", "a+b@example.test", "x@y"] {
            let _ = c.tables.resolve(address);
        }
        assert!(!json.is_empty());
    }
});
