//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod crash_client;
pub mod dialog;
pub mod dns_server;
pub mod http;
pub mod imap_client;
pub mod inbound;
pub mod postfix;
pub mod scanners;
pub mod scripted_peer;
pub mod server;
pub mod tls;

use std::path::{Path, PathBuf};

use mailc::compile::{self, Options, Output};
use mailc::diag::{self, Style};

/// `mailc tls status CONFIG`: its standard output; it must succeed.
pub fn mailc_tls_status(config: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(["tls", "status"])
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs `mailc deliver -C CONFIG ARGS...` with `message` on standard
/// input: the exit code (-1 for a signal) and standard error.
pub fn mailc_deliver(config: &Path, args: &[&str], message: &str) -> (i32, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailc"))
        .arg("deliver")
        .arg("-C")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces machine-specific parts (the checkout's path, and the content hash
/// that depends on it) so snapshots are the same on every machine.
pub fn normalize(text: &str) -> String {
    let root = root().display().to_string();
    let mut out = text.replace(&root, "[ROOT]");
    while let Some(i) = out.find("sha256:") {
        let end = out[i + 7..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .map_or(out.len(), |e| i + 7 + e);
        if end - i - 7 < 16 {
            // short fingerprints of inline password hashes are stable: keep,
            // but mark so the loop moves on
            out.replace_range(i..i + 7, "sha256~");
            continue;
        }
        out.replace_range(i..end, "[HASH]");
    }
    out.replace("sha256~", "sha256:")
}

pub fn compile_path(path: &Path, offline: bool) -> Output {
    compile::compile_file(path, Options { offline })
}

/// Diagnostics as a user sees them without colours, at a fixed width.
pub fn render(out: &Output) -> String {
    let mut text = diag::render_all(&out.diags, &out.sources, Style::Plain, 100);
    text.push_str(&diag::summary(&out.diags));
    text.push('\n');
    normalize(&text)
}

/// The entry files of the examples (files under `domains/` are included by
/// `gitops/main.kdl`, not configs of their own).
pub fn example_configs() -> Vec<PathBuf> {
    let dir = root().join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .collect();
    for sub in std::fs::read_dir(&dir).expect("examples/ exists").flatten() {
        let main = sub.path().join("main.kdl");
        if main.is_file() {
            v.push(main);
        }
    }
    v.sort();
    v
}

/// Every ```kdl block of README.md.
pub fn readme_blocks() -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md exists");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```kdl") => {
                current = Some((n + 1, String::new()))
            }
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                if let Some(b) = current.take() {
                    blocks.push(b);
                }
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

/// A command-line tool an interop test drives. A missing tool fails the
/// test: `.ci/run` installs it, and the interop tests never skip.
pub fn tool(name: &str) -> std::process::Command {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed: .ci/run installs it; the interop tests never skip"
    );
    std::process::Command::new(name)
}
