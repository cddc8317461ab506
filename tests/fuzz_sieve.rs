//! The `sieve` fuzz target's body (`fuzz/fuzz_targets/sieve_body.rs`) over
//! every case of `tests/sieve_diff/` with every message, the committed fuzz
//! corpus, and a fixed set of mutations of them: the target keeps building
//! and its checks keep holding in a plain `cargo test`, where cargo-fuzz
//! is not installed.

mod common;

#[path = "../fuzz/fuzz_targets/sieve_body.rs"]
mod body;

use std::path::Path;

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn the_sieve_fuzz_target_holds_over_the_corpus_and_mutations() {
    let root = common::root();
    let scripts = files(&root.join("tests/sieve_diff/cases"));
    let messages = files(&root.join("tests/sieve_diff/messages"));
    let mut seeds: Vec<Vec<u8>> = files(&root.join("fuzz/corpus/sieve"));
    for s in &scripts {
        for m in &messages {
            seeds.push([s.as_slice(), b"\0", m.as_slice()].concat());
        }
    }
    for s in &seeds {
        body::run(s);
    }
    // Mutations from a fixed xorshift sequence: the same inputs every run.
    let pieces: &[&[u8]] = &[
        b"keep;",
        b"discard;",
        b"redirect \"x@example.net\";",
        b"if true {",
        b"}",
        b"${1}",
        b":regex",
        b"\"",
        b"text:\n",
        b"\n.\n",
        b"include \"self\";",
        b"foreverypart {",
        b"deleteheader \"received\";",
        b"set \"a\" \"${a}${a}\";",
        b"\0",
        b"\r\n",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    for _ in 0..3000 {
        let mut v = seeds[next() % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = if v.is_empty() { 0 } else { next() % v.len() };
            match next() % 3 {
                0 => {
                    let p = pieces[next() % pieces.len()];
                    v.splice(at..at, p.iter().copied());
                }
                1 => {
                    let n = (next() % 16).min(v.len() - at);
                    v.drain(at..at + n);
                }
                _ => {
                    if let Some(b) = v.get_mut(at) {
                        *b = next() as u8;
                    }
                }
            }
        }
        body::run(&v);
    }
}
