//! Maildir++ delivery (<https://cr.yp.to/proto/maildir.html>): the message is
//! written into `tmp/` and its data synced, then renamed into `new/`, and
//! the `new/` directory synced (by the caller, once per directory for a
//! whole batch). File names are derived from the queue entry, so a delivery
//! retried after a crash finds the copy it already made instead of making a
//! second one.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::fsutil;

/// The three directories of a Maildir folder.
pub const SUBDIRS: [&str; 3] = ["cur", "new", "tmp"];

/// Creates `cur`, `new` and `tmp` under `folder` if missing.
pub fn ensure(folder: &Path) -> std::io::Result<()> {
    for sub in SUBDIRS {
        let d = folder.join(sub);
        if !d.is_dir() {
            fsutil::create_private_dir(&d)?;
        }
    }
    Ok(())
}

/// The unique, deterministic file name of one delivery:
/// `<received>.Q<queue-id>_<n>.<host>,S=<size>` — unique because queue ids
/// are, stable across retries, and with the size in it as Dovecot writes it.
pub fn file_name(received_at: u64, queue_id: &str, index: usize, host: &str, size: u64) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c == '/' || c == ':' || c == ',' {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{received_at}.Q{queue_id}_{index}.{host},S={size}")
}

/// Whether a message with this base name is already in the folder (in
/// `new/`, or moved to `cur/` by a reader with flags appended).
pub fn already_delivered(folder: &Path, name: &str) -> bool {
    if folder.join("new").join(name).exists() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(folder.join("cur")) else {
        return false;
    };
    // A reader moved it to cur/ with flags (`NAME:2,S`), or it was
    // delivered with keywords and a UID (`NAME,S=…,U=…:2,`).
    let (flagged, indexed) = (format!("{name}:"), format!("{name},"));
    entries.flatten().any(|e| {
        let n = e.file_name();
        let n = n.to_string_lossy();
        n == name || n.starts_with(&flagged) || n.starts_with(&indexed)
    })
}

/// Outcome of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Written now; durable after the next group commit.
    New(PathBuf),
    /// Found from an earlier attempt.
    Existing,
}

/// Where a delivered copy goes: `new/<name>`, or with IMAP flags set at
/// delivery (Sieve imap4flags) `cur/<name>:2,<flags>` (Maildir's
/// info, flag letters sorted).
pub fn final_path(folder: &Path, name: &str, flags: &str) -> PathBuf {
    if flags.is_empty() {
        folder.join("new").join(name)
    } else {
        folder.join("cur").join(format!("{name}:2,{flags}"))
    }
}

/// Delivers `parts` (written one after another: trace fields, then the
/// message) into `folder/new/<name>` (see [`final_path`] for flagged
/// copies), file data synced; the caller syncs the directory before it
/// relies on the delivery. `check_existing` makes the delivery idempotent
/// at the price of a directory scan: use it when retrying.
pub fn deliver(
    folder: &Path,
    name: &str,
    parts: &[&[u8]],
    check_existing: bool,
    flags: &str,
) -> std::io::Result<Delivered> {
    if check_existing && already_delivered(folder, name) {
        return Ok(Delivered::Existing);
    }
    let tmp = folder.join("tmp").join(name);
    let new = final_path(folder, name, flags);
    let write = |tmp: &Path| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_data()
    };
    match write(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure(folder)?;
            write(&tmp)?;
        }
        Err(e) => return Err(e),
    }
    std::fs::rename(&tmp, &new)?;
    Ok(Delivered::New(new))
}

/// The first half of a batch delivery: the copy written into
/// `folder/tmp/<name>` without a sync. `None` when `check_existing` finds it
/// delivered already. Sync the file system, then [`publish`].
pub fn stage(
    folder: &Path,
    name: &str,
    parts: &[&[u8]],
    check_existing: bool,
) -> std::io::Result<Option<PathBuf>> {
    if check_existing && already_delivered(folder, name) {
        return Ok(None);
    }
    let tmp = folder.join("tmp").join(name);
    let write = |tmp: &Path| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        Ok(())
    };
    match write(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure(folder)?;
            write(&tmp)?;
        }
        Err(e) => return Err(e),
    }
    Ok(Some(tmp))
}

/// The second half: a staged copy (its data synced) moved into `new/`
/// (or `cur/` with flags). Durable after the next sync of the file system
/// or of that directory.
pub fn publish(folder: &Path, name: &str, flags: &str) -> std::io::Result<PathBuf> {
    let new = final_path(folder, name, flags);
    std::fs::rename(folder.join("tmp").join(name), &new)?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_once_even_when_retried() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("alice");
        let name = file_name(1000, "ABC", 0, "mail.example.test", 11);
        let r = deliver(
            &folder,
            &name,
            &[b"Return-Path: <>\r\n", b"hello world"],
            false,
            "",
        )
        .unwrap();
        assert!(matches!(r, Delivered::New(_)));
        for sub in SUBDIRS {
            assert!(folder.join(sub).is_dir());
        }
        let text = std::fs::read(folder.join("new").join(&name)).unwrap();
        assert_eq!(text, b"Return-Path: <>\r\nhello world");
        assert_eq!(
            deliver(&folder, &name, &[b"x"], true, "").unwrap(),
            Delivered::Existing
        );
        // A reader moved it to cur/ with flags: still found.
        std::fs::rename(
            folder.join("new").join(&name),
            folder.join("cur").join(format!("{name}:2,S")),
        )
        .unwrap();
        assert_eq!(
            deliver(&folder, &name, &[b"x"], true, "").unwrap(),
            Delivered::Existing
        );
        assert!(
            std::fs::read_dir(folder.join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn flagged_copies_go_to_cur_and_are_found_on_retry() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("f");
        let r = deliver(&folder, "n1", &[b"x"], false, "FS").unwrap();
        assert_eq!(r, Delivered::New(folder.join("cur/n1:2,FS")));
        assert_eq!(
            deliver(&folder, "n1", &[b"x"], true, "FS").unwrap(),
            Delivered::Existing
        );
    }

    #[test]
    fn names_are_safe() {
        assert_eq!(file_name(1, "Q", 2, "a/b:c,d", 3), "1.QQ_2.a_b_c_d,S=3");
    }
}
