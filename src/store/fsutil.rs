//! File system helpers with explicit durability: write-then-rename, fsync of
//! files and directories.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Creates `path` (which must not exist) with `bytes`, without syncing.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_private()
        .open(path)?;
    f.write_all(bytes)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync,
/// rename, fsync of the directory.
pub fn write_atomic_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_beside(path);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode_private()
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Writes `bytes` to `path` atomically (temporary file + rename) without
/// syncing: for state whose loss after a crash is harmless.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_beside(path);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode_private()
            .open(&tmp)?;
        f.write_all(bytes)?;
    }
    std::fs::rename(&tmp, path)
}

/// A temporary name beside `path`, unique to this call: two threads that
/// write the same file at once (the first logins of one user in parallel
/// sessions, say) must not share one, or the second rename finds nothing.
fn tmp_beside(path: &Path) -> std::path::PathBuf {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    /// Mail and queue files are readable by the server's user only.
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Creates a directory and its parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Flushes the whole file system holding `path` (data and metadata, one
/// journal commit): what a batch of new files needs, instead of one sync
/// per file. Reports write-back errors (Linux 5.8 and later).
pub fn sync_filesystem(path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    #[cfg(target_os = "linux")]
    {
        rustix::fs::syncfs(&f).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        f.sync_all()
    }
}

/// Gives `path`, and every directory between it and `state_dir`, the owner
/// and group of `state_dir` when this process runs as root and they
/// differ. `mailc dns`, `mailc plan`, `mailc tls rollover` and
/// `mailc dkim keygen` are often run as root by an admin while the server
/// runs as its own user, who must still read what they create (keys are
/// 0600). A process that is not root changes nothing: the files are
/// already its own, and it could not give them away anyway.
pub fn adopt_state_owner(state_dir: &Path, path: &Path) -> std::io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    give_to_owner_of(state_dir, path)
}

/// The work of [`adopt_state_owner`], whoever runs it (tests run it
/// unprivileged on files they own, where a chown to oneself is allowed).
/// Paths outside `state_dir` are left alone.
pub(crate) fn give_to_owner_of(state_dir: &Path, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(rel) = path.strip_prefix(state_dir) else {
        return Ok(());
    };
    let owner = std::fs::metadata(state_dir)?;
    let (uid, gid) = (owner.uid(), owner.gid());
    // Every component below the state directory, outermost first.
    let mut at = state_dir.to_path_buf();
    for part in rel.components() {
        at.push(part);
        let m = std::fs::symlink_metadata(&at)?;
        if m.file_type().is_symlink() {
            // Never follow a link out of the state directory.
            continue;
        }
        if m.uid() != uid || m.gid() != gid {
            std::os::unix::fs::lchown(&at, Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_atomic_writes_of_one_file_all_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("subscriptions");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || {
                        for j in 0..50 {
                            let text = format!("writer {i} round {j}\n");
                            write_atomic(path, text.as_bytes())?;
                            write_atomic_durable(path, text.as_bytes())?;
                        }
                        Ok::<(), std::io::Error>(())
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread").expect("every write succeeds");
            }
        });
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("writer ") && text.ends_with(" round 49\n"),
            "{text}"
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("subscriptions")]);
    }

    /// Unprivileged, a chown to one's own uid/gid is allowed: the walk
    /// from the state directory to the file runs, touches only what is
    /// under the state directory, and never follows a link out of it.
    #[test]
    fn files_under_the_state_dir_get_its_owner() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let file = state.join("tls/dane-next.key");
        create_private_dir(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"k").unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"o").unwrap();
        std::os::unix::fs::symlink(&outside, state.join("tls/link")).unwrap();
        give_to_owner_of(&state, &file).unwrap();
        give_to_owner_of(&state, &state.join("tls/link")).unwrap();
        give_to_owner_of(&state, &outside).unwrap();
        let want = std::fs::metadata(&state).unwrap();
        for p in [state.join("tls"), file.clone()] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (want.uid(), want.gid()),
                "{}",
                p.display()
            );
        }
        // A missing file is an error, not a silent success.
        assert!(give_to_owner_of(&state, &state.join("tls/missing")).is_err());
        // Not root here: nothing to do, and no error.
        if !rustix::process::geteuid().is_root() {
            adopt_state_owner(&state, &file).unwrap();
        }
    }
}
