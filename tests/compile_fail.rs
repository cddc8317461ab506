//! The corpus of broken configs: each `tests/compile_fail/*.kdl` names the
//! diagnostic codes it must produce (`// expect: mailc::...`), must fail to
//! compile, and has its rendered diagnostics pinned as a snapshot.

mod common;

use common::*;

#[test]
fn broken_configs_fail_with_expected_diagnostics() {
    let dir = root().join("tests/compile_fail");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "the corpus needs at least 25 configs, has {}",
        files.len()
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("// expect: "))
            .map(str::trim)
            .collect();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(!expected.is_empty(), "{name}: no `// expect:` line");
        // Online: the corpus includes a missing secret file.
        let out = compile_path(&path, false);
        assert!(out.compiled.is_none(), "{name}: compiled, but should fail");
        let codes: Vec<&str> = out
            .diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code.as_str())
            .collect();
        for e in &expected {
            assert!(
                codes.contains(e),
                "{name}: expected {e}, got {codes:?}\n{}",
                render(&out)
            );
        }
        // Each file shows its own problem: a minimal listener keeps the
        // unrelated "no listeners" warning out of every snapshot.
        assert!(
            out.diags
                .iter()
                .all(|d| d.code.as_str() != "mailc::listener::none"),
            "{name}: add a minimal listener (`listen \"lmtp\" \"127.0.0.1:24\"`) at the end"
        );
        // Every error points somewhere in a file, has a label and help.
        for d in out.diags.iter() {
            assert!(!d.labels.is_empty(), "{name}: {} has no label", d.code);
            assert!(d.help.is_some(), "{name}: {} has no help", d.code);
        }
        insta::assert_snapshot!(format!("compile_fail_{name}"), render(&out));
    }
}

/// The compile fuzz target is seeded from `tests/compile_fail/` and
/// `examples/` directly (see `fuzz/fuzz_targets/compile.rs`); its own corpus
/// keeps only what the fuzzer found, never a copy of those files.
#[test]
fn fuzz_corpus_keeps_no_copy_of_the_seed_configs() {
    let root = root();
    let mut seeds = std::collections::HashSet::new();
    for dir in ["tests/compile_fail", "tests/compile_fail/inc", "examples"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if e.path().is_file() {
                seeds.insert(std::fs::read(e.path()).unwrap());
            }
        }
    }
    assert!(seeds.len() >= 25, "seed configs not found");
    let corpus = root.join("fuzz/corpus/compile");
    let Ok(entries) = std::fs::read_dir(&corpus) else {
        return; // no corpus committed: nothing can be a copy
    };
    for e in entries.flatten() {
        let data = std::fs::read(e.path()).unwrap();
        assert!(
            !seeds.contains(&data),
            "{} copies a seed config; the fuzz run reads tests/compile_fail and examples directly",
            e.path().display()
        );
    }
}
