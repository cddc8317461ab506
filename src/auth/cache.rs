//! The verified-credentials cache (what Dovecot calls `auth_cache`): a login
//! that succeeded is remembered for a short while, so that a client logging
//! in for every request (webmail) pays one password hash per TTL instead of
//! one per request.
//!
//! What it promises:
//! - It never holds a password, nor anything a password can be read back
//!   from cheaply: entries are keyed by HMAC-SHA256 of user and password
//!   under a random key made when the cache is, and that key never leaves
//!   the process. The table maps that digest to a mailbox address.
//! - Only successes are stored: a failed login always runs the full check
//!   (and the caller's lockout and failure pause), and a password that was
//!   just changed is never refused from the cache.
//! - An entry lives at most `ttl`, and is used only while the hash it was
//!   checked against is unchanged ([`HashSource::unchanged`]: a password
//!   file rewritten or replaced invalidates it). A reload gives the new
//!   configuration a new, empty cache ([`CredentialCache::flush`] empties
//!   the old one), so a password changed in the config is never served
//!   from the cache.
//! - At most `size` entries; the oldest go first.
//!
//! Time is passed in (`now`), so the behaviour is testable without waiting.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::HashSource;
use crate::tables::AuthCacheTable;

/// HMAC-SHA256 of the user and the password under the cache's key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

/// A remembered login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub mailbox: String,
    pub source: HashSource,
}

struct Entry {
    hit: Hit,
    expires: Instant,
    /// Insertion number, to tell a live entry from a replaced one in `order`.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    /// Keys in insertion order (= expiry order: one TTL for all).
    order: VecDeque<(CacheKey, u64)>,
    seq: u64,
}

pub struct CredentialCache {
    key: ring::hmac::Key,
    ttl: Duration,
    size: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("ttl", &self.ttl)
            .field("size", &self.size)
            .field("len", &self.len())
            .finish()
    }
}

impl CredentialCache {
    /// A cache as the tables ask for; `None` when it is turned off, or when
    /// the system cannot produce a random key (then logins are simply not
    /// cached).
    pub fn from_table(t: &AuthCacheTable) -> Option<CredentialCache> {
        if !t.enabled || t.size == 0 || t.ttl_secs == 0 {
            return None;
        }
        CredentialCache::new(Duration::from_secs(t.ttl_secs), t.size as usize)
    }

    pub fn new(ttl: Duration, size: usize) -> Option<CredentialCache> {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).ok()?;
        Some(CredentialCache {
            key,
            ttl,
            size: size.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The digest that stands for this user and password. The user's length
    /// comes first, so no two (user, password) pairs share an input.
    pub fn key(&self, user: &str, password: &str) -> CacheKey {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        CacheKey(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every
        // update is a single insert or remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered login for `key`, if it has not expired. The caller
    /// still checks [`HashSource::unchanged`] (it may read the file
    /// system) and calls [`CredentialCache::remove`] when it has changed.
    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<Hit> {
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(e) if now < e.expires => Some(e.hit.clone()),
            Some(_) => {
                inner.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers a successful login until `now + ttl`.
    pub fn insert(&self, key: CacheKey, hit: Hit, now: Instant) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.seq += 1;
        let seq = inner.seq;
        let replaced = inner
            .entries
            .insert(
                key,
                Entry {
                    hit,
                    expires: now + self.ttl,
                    seq,
                },
            )
            .is_some();
        inner.order.push_back((key, seq));
        if !replaced {
            // Drop what has expired, then the oldest, until within size.
            while let Some(&(k, s)) = inner.order.front() {
                let live = inner.entries.get(&k).filter(|e| e.seq == s);
                let drop = match live {
                    None => {
                        inner.order.pop_front();
                        continue;
                    }
                    Some(e) => now >= e.expires || inner.entries.len() > self.size,
                };
                if !drop {
                    break;
                }
                inner.order.pop_front();
                inner.entries.remove(&k);
            }
        }
        // Replaced keys leave stale positions behind; keep `order` within
        // a constant factor of the map.
        if inner.order.len() > 2 * inner.entries.len() + 64 {
            let entries = &inner.entries;
            inner
                .order
                .retain(|(k, s)| entries.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    /// Forgets one login (its password file changed).
    pub fn remove(&self, key: &CacheKey) {
        self.lock().entries.remove(key);
    }

    /// Forgets everything (the configuration was reloaded).
    pub fn flush(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.order.clear();
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(mailbox: &str) -> Hit {
        Hit {
            mailbox: mailbox.to_string(),
            source: HashSource::Inline,
        }
    }

    fn cache(ttl_secs: u64, size: usize) -> CredentialCache {
        CredentialCache::new(Duration::from_secs(ttl_secs), size).expect("random key")
    }

    #[test]
    fn a_login_is_remembered_until_its_ttl() {
        let c = cache(300, 10);
        let t0 = Instant::now();
        let k = c.key("alice@example.test", "secret");
        assert_eq!(c.get(&k, t0), None);
        c.insert(k, hit("alice@example.test"), t0);
        assert_eq!(
            c.get(&k, t0 + Duration::from_secs(299)),
            Some(hit("alice@example.test"))
        );
        assert_eq!(c.get(&k, t0 + Duration::from_secs(300)), None);
        // An expired entry is gone, not just hidden.
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn only_the_same_user_and_password_hit() {
        let c = cache(300, 10);
        let now = Instant::now();
        c.insert(c.key("alice@example.test", "secret"), hit("a"), now);
        for (user, password) in [
            ("alice@example.test", "Secret"),
            ("alice@example.test", "secret "),
            ("alice@example.test", ""),
            ("bob@example.test", "secret"),
            // The same bytes split differently between user and password.
            ("alice@example.tes", "tsecret"),
            ("alice@example.testsecret", ""),
        ] {
            assert_eq!(
                c.get(&c.key(user, password), now),
                None,
                "{user} {password}"
            );
        }
        assert!(c.get(&c.key("alice@example.test", "secret"), now).is_some());
    }

    #[test]
    fn the_key_never_contains_the_password() {
        let a = cache(300, 10);
        let b = cache(300, 10);
        let password = "correct horse battery staple";
        let ka = a.key("alice@example.test", password);
        let kb = b.key("alice@example.test", password);
        // Keyed: another cache (another process) derives another digest, so
        // a digest seen in memory cannot be checked against guesses offline.
        assert_ne!(ka, kb);
        assert_eq!(ka, a.key("alice@example.test", password));
        let bytes = ka.as_bytes();
        for needle in [password.as_bytes(), b"alice", b"horse"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "digest contains {needle:?}"
            );
        }
        assert!(!format!("{ka:?}{a:?}").contains("horse"));
    }

    #[test]
    fn flush_forgets_everything() {
        let c = cache(300, 10);
        let now = Instant::now();
        let keys: Vec<_> = (0..5)
            .map(|i| c.key(&format!("u{i}@example.test"), "pw"))
            .collect();
        for k in &keys {
            c.insert(*k, hit("x"), now);
        }
        assert_eq!(c.len(), 5);
        c.flush();
        assert!(c.is_empty());
        assert!(keys.iter().all(|k| c.get(k, now).is_none()));
    }

    #[test]
    fn size_is_bounded_and_the_oldest_go_first() {
        let c = cache(300, 100);
        let t0 = Instant::now();
        let key = |i: usize| c.key(&format!("u{i}@example.test"), "pw");
        for i in 0..1000 {
            c.insert(
                key(i),
                hit(&format!("u{i}")),
                t0 + Duration::from_millis(i as u64),
            );
            assert!(c.len() <= 100);
        }
        assert_eq!(c.len(), 100);
        let now = t0 + Duration::from_secs(1);
        assert!(c.get(&key(899), now).is_none());
        assert_eq!(c.get(&key(900), now), Some(hit("u900")));
        assert_eq!(c.get(&key(999), now), Some(hit("u999")));
        // Re-inserting the same keys does not grow the bookkeeping.
        for round in 0..50 {
            for i in 900..1000 {
                c.insert(key(i), hit("again"), now + Duration::from_millis(round));
            }
        }
        assert_eq!(c.len(), 100);
        assert!(c.lock().order.len() <= 2 * 100 + 64 + 1);
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_evicted() {
        let c = cache(10, 3);
        let t0 = Instant::now();
        let (a, b, d, e) = (
            c.key("a", "1"),
            c.key("b", "1"),
            c.key("d", "1"),
            c.key("e", "1"),
        );
        c.insert(a, hit("a"), t0);
        c.insert(b, hit("b"), t0 + Duration::from_secs(5));
        c.insert(d, hit("d"), t0 + Duration::from_secs(6));
        // `a` has expired at 11 s: inserting `e` drops it, keeps `b` and `d`.
        let now = t0 + Duration::from_secs(11);
        c.insert(e, hit("e"), now);
        assert_eq!(c.len(), 3);
        assert!(c.get(&b, now).is_some() && c.get(&d, now).is_some());
        assert!(c.get(&a, now).is_none());
    }

    #[test]
    fn a_changed_password_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.hash");
        std::fs::write(&path, "old hash\n").unwrap();
        let source = HashSource::File {
            path: path.clone(),
            stamp: super::super::FileStamp::of(&path).unwrap(),
        };
        assert!(source.unchanged());
        // Replaced the way admins and tools do it: a new file renamed over.
        let tmp = dir.path().join("alice.hash.new");
        std::fs::write(&tmp, "new hash\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(!source.unchanged());
        std::fs::remove_file(&path).unwrap();
        assert!(!source.unchanged(), "a missing file is a change");
        assert!(HashSource::Inline.unchanged());
    }

    #[test]
    fn turned_off_by_the_tables() {
        let mut t = AuthCacheTable {
            enabled: true,
            ttl_secs: 300,
            size: 10,
        };
        assert!(CredentialCache::from_table(&t).is_some());
        t.enabled = false;
        assert!(CredentialCache::from_table(&t).is_none());
    }
}
