//! Any script over any message through mailc's Sieve engine (compile, then
//! run with a host that has folders, includes and remembered ids) must
//! never panic or hang, and a script that does not compile must say where.
//! The input is the script, a NUL byte, then the message. Run from the
//! repository root:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run sieve fuzz/corpus/sieve tests/sieve_diff/cases`
//! — the side-by-side cases (scripts without a message) seed the run.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "sieve_body.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::run(data));
