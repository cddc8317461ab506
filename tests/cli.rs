//! The `mailc` binary's compiler commands: exit codes, output files, the
//! committed JSON Schemas, `explain`, and `hash-password`.

mod common;

use assert_cmd::Command;
use common::*;

fn mailc() -> Command {
    Command::cargo_bin("mailc").unwrap()
}

#[test]
fn check_exit_codes() {
    let ok = mailc()
        .args(["check", "--offline"])
        .arg(root().join("examples/multi-domain.kdl"))
        .assert()
        .code(0);
    let stderr = String::from_utf8_lossy(&ok.get_output().stderr).into_owned();
    assert!(stderr.contains("ok (0 errors"), "{stderr}");

    let bad = mailc()
        .arg("check")
        .arg(root().join("tests/compile_fail/alias-cycle.kdl"))
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&bad.get_output().stderr).into_owned();
    assert!(stderr.contains("mailc::alias::cycle"), "{stderr}");
    assert!(stderr.contains("failed (1 error"), "{stderr}");

    mailc()
        .arg("check")
        .arg(root().join("examples/does-not-exist.kdl"))
        .assert()
        .code(1);
}

#[test]
fn check_reads_secrets_unless_offline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.kdl");
    std::fs::write(
        &cfg,
        "hostname \"mail.example.test\"\ndomain \"example.test\" {\n    mailbox \"alice\" password-file=\"alice.hash\"\n}\n",
    )
    .unwrap();
    let out = mailc().arg("check").arg(&cfg).assert().code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("mailc::secret::missing"));
    mailc()
        .args(["check", "--offline"])
        .arg(&cfg)
        .assert()
        .code(0);

    // A file with a malformed hash is caught online.
    std::fs::write(dir.path().join("alice.hash"), "hunter2\n").unwrap();
    let out = mailc().arg("check").arg(&cfg).assert().code(1);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("mailc::password::malformed")
    );

    // A good hash, world-readable: a warning, not an error.
    let hash = mailc::auth::password::hash_argon2id(b"pw");
    std::fs::write(dir.path().join("alice.hash"), format!("{hash}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("alice.hash"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = mailc().arg("check").arg(&cfg).assert().code(0);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("mailc::secret::permissions")
    );
}

#[test]
fn compile_writes_the_same_json_to_a_file_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tables.json");
    let cfg = root().join("examples/single-domain.kdl");
    let stdout = mailc()
        .args(["compile", "--offline"])
        .arg(&cfg)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    mailc()
        .args(["compile", "--offline", "-o"])
        .arg(&file)
        .arg(&cfg)
        .assert()
        .code(0);
    let written = std::fs::read(&file).unwrap();
    assert_eq!(stdout, written);
    let tables: mailc::tables::Tables = serde_json::from_slice(&written).unwrap();
    assert_eq!(tables.content_hash, tables.compute_hash());
    assert_eq!(tables.format_version, mailc::tables::FORMAT_VERSION);
}

#[test]
fn committed_schemas_are_fresh() {
    for (kind, file) in [
        ("config", "schema/config.schema.json"),
        ("tables", "schema/tables.schema.json"),
    ] {
        let out = mailc()
            .args(["schema", kind])
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        let path = root().join(file);
        if std::env::var_os("MAILC_BLESS").is_some() {
            std::fs::write(&path, &out).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == out,
            "{file} is stale: regenerate with `cargo run -- schema {kind} > {file}` (or MAILC_BLESS=1 cargo test)"
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("properties").is_some() || v.get("$defs").is_some());
    }
}

#[test]
fn explain_outputs() {
    let cfg = root().join("examples/multi-domain.kdl");
    let mut all = String::new();
    for (address, code) in [
        ("Info@Example.ORG", 0),
        ("alice+news@example.org", 0),
        ("anything-at-all@example.net", 0),
        ("Jörg@bücher.example", 0),
        ("jörg@bücher.example", 2),
        ("nobody@example.org", 2),
        ("carol@example.org", 2),
        ("someone@elsewhere.example", 2),
        ("not-an-address", 2),
    ] {
        let out = mailc()
            .args(["explain", "--offline"])
            .arg(&cfg)
            .arg(address)
            .assert()
            .code(code);
        all.push_str(&String::from_utf8_lossy(&out.get_output().stdout));
        all.push('\n');
    }
    insta::assert_snapshot!("explain_multi_domain", normalize(&all));
}

/// With `scan { }`, an address's explanation names the scanning policy
/// that applies to it: its domain's own or the server's.
#[test]
fn explain_names_the_scanning_policy() {
    let cfg = root().join("examples/filtering.kdl");
    let line = |address: &str| {
        let out = mailc()
            .args(["explain", "--offline"])
            .arg(&cfg)
            .arg(address)
            .assert()
            .code(0);
        String::from_utf8_lossy(&out.get_output().stdout)
            .lines()
            .find(|l| l.starts_with("scanning"))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        line("carol@example.net"),
        "scanning     the domain's own policy: spam to Junk from 4.0, never refused; a virus to Junk"
    );
    assert_eq!(
        line("alice@example.org"),
        "scanning     the server's policy: spam to Junk from 5.0, refused (550) from 15.0; a virus refused (554)"
    );
}

#[test]
fn hash_password_from_stdin_verifies() {
    let out = mailc()
        .arg("hash-password")
        .write_stdin("correct horse\n")
        .assert()
        .code(0);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let hash = mailc::auth::password::PasswordHash::parse(text.trim()).unwrap();
    assert!(text.starts_with("$argon2id$"), "{text}");
    assert!(hash.verify(b"correct horse"));
    assert!(!hash.verify(b"correct horse\n"));
    assert!(!hash.verify(b"wrong"));
    // Empty input is refused.
    mailc()
        .arg("hash-password")
        .write_stdin("\n")
        .assert()
        .code(1);
}

#[test]
fn explain_retry_timeline_and_routes() {
    let cfg = root().join("examples/smarthost.kdl");
    let mut all = String::new();
    let out = mailc()
        .args(["explain", "--offline", "--retry"])
        .arg(&cfg)
        .assert()
        .code(0);
    all.push_str(&String::from_utf8_lossy(&out.get_output().stdout));
    for (address, code) in [
        ("someone@partner.example", 2),
        ("someone@sub.partner.example", 2),
        ("me@home.example", 0),
    ] {
        let out = mailc()
            .args(["explain", "--offline"])
            .arg(&cfg)
            .arg(address)
            .assert()
            .code(code);
        all.push('\n');
        all.push_str(&String::from_utf8_lossy(&out.get_output().stdout));
    }
    // Without an address, --retry is required.
    mailc()
        .args(["explain", "--offline"])
        .arg(&cfg)
        .assert()
        .code(2);
    insta::assert_snapshot!("explain_smarthost", normalize(&all));
}

/// `mailc check` warns (exit 0) when the ACME challenge has no listener on
/// the port the CA connects to, pointing at the `challenge=` of the line.
#[cfg(feature = "acme")]
#[test]
fn check_warns_about_an_acme_challenge_without_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("site.kdl");
    std::fs::write(
        &cfg,
        format!(
            "hostname \"mail.example.test\"\nstate \"{}\"\nlisten \"imaps\" \"0.0.0.0:993\"\nlisten \"https\" \"0.0.0.0:443\"\ntls {{\n    acme directory=\"https://acme.test/dir\" challenge=\"http-01\"\n}}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let out = mailc().arg("check").arg(&cfg).assert().code(0);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("mailc::tls::acme-challenge-port"), "{err}");
    assert!(
        err.contains("ACME http-01: no `http` listener on port 80"),
        "{err}"
    );
    assert!(
        err.contains("site.kdl:6:"),
        "points at the challenge line: {err}"
    );
    assert!(err.contains("http-01 is validated on port 80"), "{err}");
    assert!(
        err.contains("listen \"http\" \"0.0.0.0:80\""),
        "help: {err}"
    );

    // With the listener: no warning.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "listen \"https\"",
        "listen \"http\" \"0.0.0.0:80\"\nlisten \"https\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = mailc().arg("check").arg(&cfg).assert().code(0);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!err.contains("acme-challenge-port"), "{err}");
}
