//! The Nix side (nix/): every .nix file parses, the builtins-only KDL
//! renderer matches its golden files, and the Nix settings of the README
//! example and of a multi-domain example render to KDL that `mailc check
//! --offline` accepts. Needs `nix-instantiate` (Debian's nix-bin); `.ci/run`
//! installs it and runs these with `--ignored`. What needs nixpkgs (package
//! build, module evaluation, the VM test) is in flake.nix's `checks`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn nix_instantiate(args: &[&str]) -> String {
    let found = Command::new("sh")
        .arg("-c")
        .arg("command -v nix-instantiate")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "nix-instantiate is not installed: .ci/run installs nix-bin; these tests never skip"
    );
    let out = Command::new("nix-instantiate")
        .arg("--store")
        .arg("dummy://")
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix-instantiate {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            nix_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
}

#[test]
#[ignore = "needs nix-instantiate; run by .ci/run"]
fn every_nix_file_parses() {
    let mut files = vec![common::root().join("flake.nix")];
    nix_files(&common::root().join("nix"), &mut files);
    assert!(files.len() >= 7, "{files:?}");
    for f in files {
        nix_instantiate(&["--parse", f.to_str().unwrap()]);
    }
}

#[test]
#[ignore = "needs nix-instantiate; run by .ci/run"]
fn renderer_matches_its_goldens() {
    let json = nix_instantiate(&["--eval", "--strict", "--json", "nix/tests/renderer.nix"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["failures"], serde_json::json!([]), "{json}");
    assert!(v["passed"].as_u64().unwrap() >= 4);
}

/// Renders `services.mailc` values (a Nix expression) to KDL, and checks it.
fn render_and_check(options_expr: &str, what: &str) -> String {
    let expr = format!(
        "let k = import ./nix/kdl.nix; c = import ./nix/config.nix ({options_expr}); in k.toKDL c.settings"
    );
    let json = nix_instantiate(&["--eval", "--strict", "--json", "-E", &expr]);
    let kdl: String = serde_json::from_str(&json).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.kdl");
    std::fs::write(&file, &kdl).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(["check", "--offline"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: mailc check --offline rejects the rendered config:\n{}\n{kdl}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !kdl.contains("$argon2"),
        "{what}: a password hash ended up in the config"
    );
    kdl
}

#[test]
#[ignore = "needs nix-instantiate; run by .ci/run"]
fn multi_domain_settings_render_to_a_valid_config() {
    let kdl = render_and_check(
        "import ./nix/tests/examples/multi-domain.nix",
        "multi-domain example",
    );
    assert!(
        kdl.contains("tls cert=\"/run/credentials/mailc.service/tls-cert\""),
        "{kdl}"
    );
    assert!(
        kdl.contains("password-file=\"/run/credentials/mailc.service/mailbox-alice@example.org\""),
        "{kdl}"
    );
    let creds = nix_instantiate(&[
        "--eval",
        "--strict",
        "--json",
        "-E",
        "(import ./nix/config.nix (import ./nix/tests/examples/multi-domain.nix)).credentials",
    ]);
    let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
    assert_eq!(creds.as_array().unwrap().len(), 5, "{creds}");
    assert_eq!(
        creds[0]["path"],
        "/var/lib/acme/mx1.example.org/fullchain.pem"
    );
    let ports = nix_instantiate(&[
        "--eval",
        "--strict",
        "--json",
        "-E",
        "(import ./nix/config.nix (import ./nix/tests/examples/multi-domain.nix)).ports",
    ]);
    assert_eq!(ports.trim(), "[25,25,465,993,995]");
}

/// The `services.mailc = { ... };` block of the README's NixOS example.
fn readme_services_block() -> String {
    let text = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let start = text
        .find("services.mailc = {")
        .expect("README has a services.mailc example");
    let body = &text[start + "services.mailc = ".len()..];
    let mut depth = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return body[..=i].to_string();
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces in the README example");
}

#[test]
#[ignore = "needs nix-instantiate; run by .ci/run"]
fn readme_nixos_example_renders_to_a_valid_config() {
    let block = readme_services_block();
    let kdl = render_and_check(&block, "README NixOS example");
    assert!(kdl.contains("hostname \"mail.example.com\""), "{kdl}");
}

#[test]
fn renderer_goldens_are_valid_kdl_v2() {
    for e in std::fs::read_dir(common::root().join("nix/tests/golden"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap();
        kdl::KdlDocument::parse_v2(&text)
            .unwrap_or_else(|err| panic!("{}: {err:?}", e.path().display()));
    }
}
