//! Every example config and every KDL block of the README compiles; the
//! compiled tables of the examples are pinned as snapshots.

mod common;

use common::*;

#[test]
fn examples_compile_and_match_snapshots() {
    let configs = example_configs();
    assert!(
        configs.len() >= 4,
        "expected at least 4 example configs, found {configs:?}"
    );
    for path in configs {
        let out = compile_path(&path, true);
        let Some(compiled) = out.compiled.as_ref() else {
            panic!("{} does not compile:\n{}", path.display(), render(&out));
        };
        let rel = path.strip_prefix(root().join("examples")).unwrap();
        let name = rel.display().to_string().replace(['/', '.'], "_");
        insta::assert_snapshot!(
            format!("tables_{name}"),
            normalize(&compiled.tables.to_json())
        );
    }
}

#[test]
fn quickstart_compiles_online_with_only_expected_warnings() {
    // The quickstart has its secrets inline, so it must pass the full check.
    let out = compile_path(&root().join("examples/quickstart.kdl"), false);
    assert!(out.compiled.is_some(), "{}", render(&out));
    for d in out.diags.iter() {
        let code = d.code.as_str();
        assert!(
            code == "mailc::tls::self-signed" || code == "mailc::dkim::key-not-generated",
            "unexpected diagnostic in the quickstart: {code}: {}",
            d.message
        );
    }
}

#[test]
fn readme_kdl_blocks_compile() {
    let blocks = readme_blocks();
    assert!(!blocks.is_empty(), "README.md has no ```kdl blocks");
    for (line, text) in blocks {
        let out = mailc::compile::compile_str(
            &format!("README.md:{line}"),
            &root(),
            &text,
            mailc::compile::Options { offline: true },
        );
        assert!(
            out.compiled.is_some(),
            "README.md block at line {line} does not compile:\n{}",
            render(&out)
        );
    }
}

#[test]
fn compiling_twice_gives_identical_json_and_hash() {
    for path in example_configs() {
        let a = compile_path(&path, true).compiled.unwrap().tables;
        let b = compile_path(&path, true).compiled.unwrap().tables;
        assert_eq!(a.to_json(), b.to_json());
        assert_eq!(a.content_hash, a.compute_hash(), "hash is over the content");
        let parsed: mailc::tables::Tables = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(parsed, a, "tables round-trip through JSON");
    }
}

#[test]
fn tables_contain_no_inline_secrets() {
    let out = compile_path(&root().join("examples/quickstart.kdl"), true);
    let compiled = out.compiled.unwrap();
    assert_eq!(compiled.secrets.inline_password_hashes.len(), 2);
    let json = compiled.tables.to_json();
    for hash in compiled.secrets.inline_password_hashes.values() {
        assert!(
            !json.contains(hash.as_str()),
            "password hash leaked into tables"
        );
        assert!(
            !json.contains("$argon2"),
            "password hash leaked into tables"
        );
    }
}

#[test]
fn example_sieve_scripts_compile() {
    let dir = root().join("examples/sieve");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "sieve") {
            let text = std::fs::read(&p).unwrap();
            if let Err(err) =
                mailc::filter::compile("example", &text, &mailc::filter::Limits::default())
            {
                panic!("{}: {err}", p.display());
            }
            n += 1;
        }
    }
    assert!(n >= 2, "expected the example scripts in {}", dir.display());
}
