//! A user's Sieve scripts at rest (what ManageSieve manages and delivery
//! runs): `<state>/sieve/<domain>/<local-part>/`, one file
//! `<name>.sieve` per script, and the active one named by the symbolic
//! link `.active` (as Pigeonhole's `~/.dovecot.sieve` does). Every change is
//! atomic and durable: written to a temporary name, synced, renamed, and
//! the directory synced; activation replaces the link by a rename, so a
//! delivery sees the old script or the new one, never none.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::fsutil;

/// The link naming the active script.
const ACTIVE: &str = ".active";
const EXT: &str = ".sieve";
/// Longest script name (RFC 5804 §1.6 leaves it to the server).
pub const MAX_NAME: usize = 128;

#[derive(Debug, Clone)]
pub struct ScriptStore {
    dir: PathBuf,
}

/// Whether `name` may name a script: 1–128 characters, no control
/// characters, no `/`, not starting with `.` (RFC 5804 §1.6: any UTF-8
/// without CTLs; the rest keeps names one path component).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\' || c == '\u{2028}' || c == '\u{2029}')
}

impl ScriptStore {
    /// The scripts of the mailbox `address` under the state directory.
    pub fn for_mailbox(state_dir: &Path, address: &str) -> ScriptStore {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        // Addresses are validated by the compiler; belt and braces so no
        // part leaves the directory.
        let clean = |s: &str| s.replace(['/', '\\', '\0'], "_").replace("..", "__");
        ScriptStore {
            dir: state_dir
                .join("sieve")
                .join(clean(domain))
                .join(clean(local)),
        }
    }

    pub fn at(dir: impl Into<PathBuf>) -> ScriptStore {
        ScriptStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> std::io::Result<PathBuf> {
        if !valid_name(name) {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                "invalid script name",
            ));
        }
        Ok(self.dir.join(format!("{name}{EXT}")))
    }

    /// Scripts by name, each with whether it is active.
    pub fn list(&self) -> std::io::Result<Vec<(String, bool)>> {
        let active = self.active_name()?;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let n = e.file_name();
            let Some(n) = n.to_str() else { continue };
            if let Some(name) = n.strip_suffix(EXT)
                && valid_name(name)
            {
                out.push((name.to_string(), active.as_deref() == Some(name)));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The script's text, `None` if there is no such script.
    pub fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(name)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores (creates or replaces) a script, durably.
    pub fn put(&self, name: &str, text: &[u8]) -> std::io::Result<()> {
        let path = self.path(name)?;
        self.ensure_dir()?;
        fsutil::write_atomic_durable(&path, text)
    }

    /// Deletes a script; `Ok(false)` if there was none. The active script
    /// cannot be deleted (RFC 5804 §2.10): `ErrorKind::ResourceBusy`.
    pub fn delete(&self, name: &str) -> std::io::Result<bool> {
        let path = self.path(name)?;
        if self.active_name()?.as_deref() == Some(name) {
            return Err(std::io::Error::new(
                ErrorKind::ResourceBusy,
                "the active script cannot be deleted",
            ));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                fsutil::sync_dir(&self.dir)?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Renames a script (keeping it active if it was). `Ok(false)` if
    /// `from` does not exist; `ErrorKind::AlreadyExists` if `to` does.
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<bool> {
        let src = self.path(from)?;
        let dst = self.path(to)?;
        if !src.exists() {
            return Ok(false);
        }
        if dst.exists() {
            return Err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "a script with that name exists",
            ));
        }
        let was_active = self.active_name()?.as_deref() == Some(from);
        std::fs::rename(&src, &dst)?;
        fsutil::sync_dir(&self.dir)?;
        if was_active {
            self.set_active(Some(to))?;
        }
        Ok(true)
    }

    /// Makes `name` the active script (`None`: no script is active).
    /// `Ok(false)` if there is no such script.
    pub fn set_active(&self, name: Option<&str>) -> std::io::Result<bool> {
        let link = self.dir.join(ACTIVE);
        match name {
            None => match std::fs::remove_file(&link) {
                Ok(()) => {
                    fsutil::sync_dir(&self.dir)?;
                    Ok(true)
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
                Err(e) => Err(e),
            },
            Some(name) => {
                if !self.path(name)?.exists() {
                    return Ok(false);
                }
                let tmp = self.dir.join(format!(".active.{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(format!("{name}{EXT}"), &tmp)?;
                std::fs::rename(&tmp, &link)?;
                fsutil::sync_dir(&self.dir)?;
                Ok(true)
            }
        }
    }

    /// The active script's name, if any (a dangling link counts as none).
    pub fn active_name(&self) -> std::io::Result<Option<String>> {
        match std::fs::read_link(self.dir.join(ACTIVE)) {
            Ok(target) => {
                let Some(name) = target
                    .to_str()
                    .and_then(|t| t.strip_suffix(EXT))
                    .filter(|n| valid_name(n))
                else {
                    return Ok(None);
                };
                Ok(self.path(name)?.exists().then(|| name.to_string()))
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The active script: its name and text.
    pub fn active(&self) -> std::io::Result<Option<(String, Vec<u8>)>> {
        let Some(name) = self.active_name()? else {
            return Ok(None);
        };
        Ok(self.get(&name)?.map(|t| (name, t)))
    }

    /// Total bytes and number of scripts (quotas).
    pub fn usage(&self) -> std::io::Result<(u64, usize)> {
        let mut bytes = 0;
        let mut n = 0;
        for (name, _) in self.list()? {
            if let Ok(m) = std::fs::metadata(self.path(&name)?) {
                bytes += m.len();
                n += 1;
            }
        }
        Ok((bytes, n))
    }

    fn ensure_dir(&self) -> std::io::Result<()> {
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
            if let Some(parent) = self.dir.parent() {
                fsutil::sync_dir(parent)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_list_activate_rename_delete() {
        let d = tempfile::tempdir().unwrap();
        let s = ScriptStore::for_mailbox(d.path(), "bob@example.test");
        assert_eq!(s.dir(), d.path().join("sieve/example.test/bob"));
        assert!(s.list().unwrap().is_empty());
        assert!(s.active().unwrap().is_none());
        s.put("vacation", b"keep;").unwrap();
        s.put("work", b"discard;").unwrap();
        assert!(s.set_active(Some("vacation")).unwrap());
        assert!(!s.set_active(Some("nope")).unwrap());
        assert_eq!(
            s.list().unwrap(),
            [("vacation".to_string(), true), ("work".to_string(), false)]
        );
        assert_eq!(
            s.active().unwrap(),
            Some(("vacation".into(), b"keep;".to_vec()))
        );
        let busy = s.delete("vacation").unwrap_err();
        assert_eq!(busy.kind(), ErrorKind::ResourceBusy);
        assert!(s.rename("vacation", "away").unwrap());
        assert_eq!(s.active_name().unwrap().as_deref(), Some("away"));
        assert_eq!(
            s.rename("away", "work").unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert!(s.delete("work").unwrap());
        assert!(!s.delete("work").unwrap());
        assert!(s.set_active(None).unwrap());
        assert!(s.active().unwrap().is_none());
        assert_eq!(s.usage().unwrap(), (5, 1));
    }

    #[test]
    fn names_stay_one_path_component() {
        for bad in ["", ".active", "../x", "a/b", "a\u{7}", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("Ürlaub 2026"));
        let d = tempfile::tempdir().unwrap();
        let s = ScriptStore::for_mailbox(d.path(), "../../etc@x/..");
        assert!(s.dir().starts_with(d.path().join("sieve")));
        assert!(!s.dir().components().any(|c| c.as_os_str() == ".."));
        assert!(s.put("../x", b"").is_err());
    }
}
