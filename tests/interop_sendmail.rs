//! Interop of `mailc sendmail` with real programs that call a sendmail:
//! neomutt (`set sendmail=`) and `git send-email` (`--sendmail-cmd`).
//! Ignored in a plain `cargo test`; `.ci/run` installs the Debian packages
//! `neomutt` and `git-email` (and git) and runs them with `--ignored`, where
//! a missing tool is a failure, never a skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::server::{Server, standard_domain};

fn start() -> Server {
    let s = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    assert!(
        s.wait_log("mailc ready", Duration::from_secs(30)),
        "{}",
        s.log_text()
    );
    s
}

/// `DIR/sendmail`: a one-path program for tools that take no arguments in
/// their sendmail setting.
fn wrapper(dir: &Path, config: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("sendmail");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nexec '{}' sendmail -C '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_mailc"),
            config.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn one_mail(s: &Server, local: &str) -> String {
    let files = s.wait_for_mail("example.test", local, 1, Duration::from_secs(15));
    assert_eq!(files.len(), 1, "{files:?}\n{}", s.log_text());
    std::fs::read_to_string(&files[0]).unwrap()
}

#[test]
#[ignore = "needs neomutt; run by .ci/run"]
fn neomutt_sends_through_mailc_sendmail() {
    let s = start();
    let home = tempfile::tempdir().unwrap();
    let sendmail = wrapper(home.path(), &s.config);
    let muttrc = home.path().join("muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set sendmail=\"{} -oi\"\nset from=\"alice@example.test\"\nset realname=\"Alice Example\"\nset use_from=yes\nset use_envelope_from=yes\nset record=\"\"\nset copy=no\nset sendmail_wait=0\nset charset=\"utf-8\"\nset send_charset=\"utf-8\"\n",
            sendmail.display()
        ),
    )
    .unwrap();
    let mut child = common::tool("neomutt")
        .env("HOME", home.path())
        .env("TERM", "dumb")
        .arg("-n")
        .arg("-F")
        .arg(&muttrc)
        .arg("-s")
        .arg("neomutt via sendmail")
        .arg("-c")
        .arg("alice@example.test")
        .arg("--")
        .arg("bob@example.test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"Hello from neomutt.\n.\nA line after a lone dot.\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "neomutt failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for local in ["bob", "alice"] {
        let m = one_mail(&s, local);
        assert!(m.contains("Subject: neomutt via sendmail"), "{m}");
        assert!(m.contains("Alice Example <alice@example.test>"), "{m}");
        assert!(m.contains("Return-Path: <alice@example.test>"), "{m}");
        // neomutt passes -oi: the lone dot line is kept.
        assert!(m.contains("\r\n.\r\nA line after a lone dot."), "{m}");
        assert!(m.contains("Received: from "), "{m}");
    }
}

#[test]
#[ignore = "needs git send-email (Debian git-email); run by .ci/run"]
fn git_send_email_sends_a_patch_through_mailc_sendmail() {
    let s = start();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let out = common::tool("git")
            .current_dir(&repo)
            .env("HOME", work.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Alice Example")
            .env("GIT_AUTHOR_EMAIL", "alice@example.test")
            .env("GIT_COMMITTER_NAME", "Alice Example")
            .env("GIT_COMMITTER_EMAIL", "alice@example.test")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    git(&["add", "README"]);
    git(&[
        "commit",
        "-q",
        "-m",
        "Add a README for the sendmail interop",
    ]);
    let patch = git(&["format-patch", "-1", "-o", "../patches"]);
    let sendmail = wrapper(work.path(), &s.config);
    git(&[
        "send-email",
        "--quiet",
        "--confirm=never",
        "--suppress-cc=all",
        "--from=Alice Example <alice@example.test>",
        "--to=bob@example.test",
        "--envelope-sender=auto",
        &format!("--sendmail-cmd={}", sendmail.display()),
        patch.trim(),
    ]);
    let m = one_mail(&s, "bob");
    assert!(
        m.contains("Subject: [PATCH] Add a README for the sendmail interop"),
        "{m}"
    );
    assert!(m.contains("Return-Path: <alice@example.test>"), "{m}");
    assert!(m.contains("+hello"), "{m}");
}
