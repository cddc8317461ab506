//! Checks of files the configuration names: existence, readability, and for
//! secrets, that other users cannot read them. Skipped with `--offline`
//! (inside a Nix build sandbox the files do not exist yet).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::Cx;
use crate::diag::{Code, Diag};
use crate::spec::source::Spanned;

/// Largest secret file read (a hash or a key is a few KiB at most).
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// Checks that a file exists and can be opened. Returns false when it
/// definitely cannot be used; true when fine or not checked (offline).
pub(super) fn check_file(
    path: &Spanned<PathBuf>,
    secret: bool,
    what: &str,
    cx: &mut Cx<'_>,
) -> bool {
    if cx.options.offline {
        return true;
    }
    match std::fs::metadata(&path.value) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (code, help) = if secret {
                (
                    Code::SecretMissing,
                    "secrets are read at runtime; create the file, or run `mailc check --offline` where secrets are not available (e.g. a Nix build)",
                )
            } else {
                (
                    Code::FileMissing,
                    "check the path; relative paths are relative to the file that names them",
                )
            };
            cx.diags.push(
                Diag::error(
                    code,
                    format!("{what} {} does not exist", path.value.display()),
                )
                .label(path.span, "no such file")
                .help(help),
            );
            false
        }
        Err(e) => {
            cx.diags.push(unreadable(path, what, &e));
            false
        }
        Ok(meta) if !meta.is_file() => {
            cx.diags.push(
                Diag::error(
                    Code::SecretUnreadable,
                    format!("{what} {} is not a regular file", path.value.display()),
                )
                .label(path.span, "not a file"),
            );
            false
        }
        Ok(meta) => {
            if let Err(e) = std::fs::File::open(&path.value) {
                cx.diags.push(unreadable(path, what, &e));
                return false;
            }
            if secret && meta.permissions().mode() & 0o004 != 0 {
                cx.diags.push(
                    Diag::warning(
                        Code::SecretPermissions,
                        format!("{what} {} is readable by every user", path.value.display()),
                    )
                    .label(path.span, "world-readable secret")
                    .help(format!("run `chmod o-rwx {}`", path.value.display())),
                );
            }
            true
        }
    }
}

/// Checks a secret file and returns its text (bounded). `None` when offline
/// or when it could not be read (a diagnostic was reported).
pub(super) fn read_secret(path: &Spanned<PathBuf>, what: &str, cx: &mut Cx<'_>) -> Option<String> {
    if cx.options.offline || !check_file(path, true, what, cx) {
        return None;
    }
    let result = std::fs::File::open(&path.value).and_then(|f| {
        let mut buf = Vec::new();
        f.take(MAX_SECRET_BYTES + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_SECRET_BYTES {
            return Err(std::io::Error::other("larger than 64 KiB"));
        }
        String::from_utf8(buf).map_err(|_| std::io::Error::other("not UTF-8 text"))
    });
    match result {
        Ok(text) => Some(text),
        Err(e) => {
            cx.diags.push(unreadable(path, what, &e));
            None
        }
    }
}

fn unreadable(path: &Spanned<PathBuf>, what: &str, e: &std::io::Error) -> Diag {
    Diag::error(
        Code::SecretUnreadable,
        format!("cannot read {what} {}: {e}", path.value.display()),
    )
    .label(path.span, "unreadable")
    .help(
        "`mailc check` must run as a user that can read the file (the user `mailc serve` runs as)",
    )
}
