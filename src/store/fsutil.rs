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
}
