//! `auth`: verifying users. Password hashes in the formats admins migrate
//! from (argon2id, Dovecot's `{SHA512-CRYPT}` and `{BLF-CRYPT}`), the lookup
//! of a login in the tables, throttling of failed attempts, and the cache
//! of verified logins ([`cache`]).

pub mod cache;
pub mod limiter;
pub mod password;

use std::collections::BTreeMap;

use crate::tables::{PasswordRef, Tables};
use password::{Argon2Memory, PasswordHash};

/// Secrets that were written inline in the config, extracted by the
/// compiler. They are deliberately not part of [`Tables`] (which must be
/// safe to print and to commit). The compiler fills this type; `auth`
/// never depends on `compile`.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets {
    /// Mailbox address → password hash written with `password=`.
    pub inline_password_hashes: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("inline_password_hashes", &self.inline_password_hashes.len())
            .finish()
    }
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user, wrong password, disabled mailbox or no password: the
    /// client is told only "invalid credentials".
    Invalid,
    /// The password file could not be read or holds no valid hash.
    Unavailable(String),
}

/// The mailbox a login names: a full address, matched like a recipient
/// (case, IDNA), but only a mailbox's own address — never an alias.
pub fn mailbox_for_login<'t>(tables: &'t Tables, username: &str) -> Option<&'t str> {
    let (local, domain) = crate::addr::split(username)?;
    let d = tables.domain(domain)?;
    let key = format!(
        "{}@{}",
        crate::tables::resolve::normalize_local(local, d.local_part_case),
        d.name
    );
    tables
        .mailboxes
        .get_key_value(&key)
        .map(|(k, _)| k.as_str())
}

/// Where the hash a login was checked against came from. A cached login
/// is used only while its source is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    /// Written in the config: it changes only with a reload, which starts
    /// a new cache.
    Inline,
    /// A password file, as it was (stat) just before it was read.
    File {
        path: std::path::PathBuf,
        stamp: FileStamp,
    },
}

/// What identifies a version of a file: a rewrite or a replacement changes
/// at least the change time or the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    pub fn of(path: &std::path::Path) -> std::io::Result<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

impl HashSource {
    /// Whether the hash could have changed since it was checked.
    pub fn unchanged(&self) -> bool {
        match self {
            HashSource::Inline => true,
            HashSource::File { path, stamp } => FileStamp::of(path).is_ok_and(|s| s == *stamp),
        }
    }
}

/// A successful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The mailbox's address.
    pub mailbox: String,
    pub source: HashSource,
}

/// Checks a username and password. Blocking (password hashing is CPU work
/// and a password file may be read): call it off the async runtime.
pub fn verify_login(
    tables: &Tables,
    secrets: &Secrets,
    username: &str,
    password: &str,
) -> Result<String, LoginError> {
    verify_login_with(
        tables,
        secrets,
        username,
        password,
        &mut Argon2Memory::new(),
    )
    .map(|v| v.mailbox)
}

/// [`verify_login`] with argon2's working memory from `memory`, and the
/// source of the hash in the result.
pub fn verify_login_with(
    tables: &Tables,
    secrets: &Secrets,
    username: &str,
    password: &str,
    memory: &mut Argon2Memory,
) -> Result<Verified, LoginError> {
    let Some(address) = mailbox_for_login(tables, username) else {
        // Spend the time a real check would, so timing does not reveal
        // which users exist.
        if let Some(h) = dummy_hash() {
            let _ = h.verify_with(password.as_bytes(), memory);
        }
        return Err(LoginError::Invalid);
    };
    let Some(mailbox) = tables.mailboxes.get(address) else {
        return Err(LoginError::Invalid);
    };
    let (hash, source) = match &mailbox.password {
        PasswordRef::None => return Err(LoginError::Invalid),
        PasswordRef::Inline { .. } => match secrets.inline_password_hashes.get(address) {
            Some(h) => (
                PasswordHash::parse(h).map_err(|e| LoginError::Unavailable(e.to_string()))?,
                HashSource::Inline,
            ),
            None => return Err(LoginError::Unavailable("inline hash missing".into())),
        },
        PasswordRef::File { path } => {
            let unavailable = |e: &dyn std::fmt::Display| {
                LoginError::Unavailable(format!("{}: {e}", path.display()))
            };
            // Stamp first: a change after it makes the stamp stale, never
            // a stale hash look current.
            let stamp = FileStamp::of(path).map_err(|e| unavailable(&e))?;
            let text = read_small(path).map_err(|e| unavailable(&e))?;
            (
                PasswordHash::parse(&text).map_err(|e| unavailable(&e))?,
                HashSource::File {
                    path: path.clone(),
                    stamp,
                },
            )
        }
    };
    if !hash.verify_with(password.as_bytes(), memory) || mailbox.disabled {
        return Err(LoginError::Invalid);
    }
    Ok(Verified {
        mailbox: address.to_string(),
        source,
    })
}

fn read_small(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = String::new();
    std::fs::File::open(path)?
        .take(64 << 10)
        .read_to_string(&mut buf)?;
    Ok(buf)
}

/// A hash of the cost new hashes have, checked against when the user does
/// not exist so a miss takes as long as a hit.
fn dummy_hash() -> Option<&'static PasswordHash> {
    static DUMMY: std::sync::LazyLock<Option<PasswordHash>> = std::sync::LazyLock::new(|| {
        PasswordHash::parse(
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$14ukWqiThj4Xz77NYv01V28GbBZHY9AaZwsFswQFO0U",
        )
        .ok()
    });
    DUMMY.as_ref()
}
