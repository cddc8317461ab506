//! Bytes stored per mailbox, for quota checks at RCPT time. Computed once
//! per mailbox from the Maildir (file sizes, from the `,S=` part of the name
//! when present) and then kept up to date in memory by delivery.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Usage {
    bytes: Mutex<HashMap<String, u64>>,
}

impl Usage {
    pub fn new() -> Usage {
        Usage::default()
    }

    /// Current usage; scans the Maildir the first time a mailbox is asked for.
    pub fn get(&self, mailbox: &str, maildir: &Path) -> u64 {
        if let Ok(map) = self.bytes.lock()
            && let Some(v) = map.get(mailbox)
        {
            return *v;
        }
        let scanned = scan(maildir);
        if let Ok(mut map) = self.bytes.lock() {
            *map.entry(mailbox.to_string()).or_insert(scanned)
        } else {
            scanned
        }
    }

    /// Cached value only (never touches the disk): for the session's quota
    /// check, which must not block. Unknown mailboxes count as empty until
    /// the first delivery or login loads them.
    pub fn cached(&self, mailbox: &str) -> Option<u64> {
        self.bytes.lock().ok().and_then(|m| m.get(mailbox).copied())
    }

    pub fn add(&self, mailbox: &str, maildir: &Path, bytes: u64) {
        let current = self.get(mailbox, maildir);
        if let Ok(mut map) = self.bytes.lock() {
            map.insert(mailbox.to_string(), current.saturating_add(bytes));
        }
    }

    pub fn subtract(&self, mailbox: &str, bytes: u64) {
        if let Ok(mut map) = self.bytes.lock()
            && let Some(v) = map.get_mut(mailbox)
        {
            *v = v.saturating_sub(bytes);
        }
    }
}

/// Sum of message sizes in every folder of a Maildir++ (`cur`, `new` of the
/// root and of each `.Folder`).
pub fn scan(maildir: &Path) -> u64 {
    let mut total = 0;
    let mut folders = vec![maildir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(maildir) {
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') && e.path().is_dir() {
                folders.push(e.path());
            }
        }
    }
    for folder in folders {
        for sub in ["cur", "new"] {
            let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                total += size_from_name(&name)
                    .unwrap_or_else(|| e.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
    }
    total
}

/// The `S=` size in a Maildir file name (`...,S=1234[,W=...][:2,FLAGS]`).
pub fn size_from_name(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    base.split(',')
        .find_map(|p| p.strip_prefix("S="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_names() {
        assert_eq!(size_from_name("1.Q1_0.host,S=1234:2,S"), Some(1234));
        assert_eq!(size_from_name("1.M2P3.host,S=99,W=101"), Some(99));
        assert_eq!(size_from_name("1.M2P3.host"), None);
    }

    #[test]
    fn scans_and_tracks() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path();
        for sub in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new"] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
        std::fs::write(md.join("new/1.a.h,S=100"), b"x").unwrap();
        std::fs::write(md.join("cur/2.b.h,S=50:2,S"), b"x").unwrap();
        std::fs::write(md.join(".Sent/cur/3.c.h"), b"12345").unwrap();
        std::fs::write(md.join("tmp/4.d.h,S=1000"), b"x").unwrap();
        assert_eq!(scan(md), 155);
        let u = Usage::new();
        assert_eq!(u.cached("a@b"), None);
        assert_eq!(u.get("a@b", md), 155);
        u.add("a@b", md, 45);
        assert_eq!(u.cached("a@b"), Some(200));
        u.subtract("a@b", 500);
        assert_eq!(u.cached("a@b"), Some(0));
    }
}
