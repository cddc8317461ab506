//! Throttling of failed logins, per client IP and per user: after
//! `limits.auth-failures` failures within `limits.auth-lockout`, further
//! attempts are refused until the window passes. In memory, bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Most keys tracked; beyond this the oldest entries are dropped, so an
/// attacker rotating addresses cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Unix time of the first failure in the current window.
    since: u64,
}

#[derive(Debug, Default)]
pub struct Limiter {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter::default()
    }

    /// True when this client or user may not try now.
    pub fn is_locked(&self, ip: IpAddr, user: &str, max: u32, window: u64, now: u64) -> bool {
        let Ok(map) = self.entries.lock() else {
            return false;
        };
        [Key::Ip(ip), Key::User(user.to_ascii_lowercase())]
            .iter()
            .any(|k| {
                map.get(k)
                    .is_some_and(|e| now < e.since + window && e.failures >= max)
            })
    }

    pub fn record_failure(&self, ip: IpAddr, user: &str, window: u64, now: u64) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            map.retain(|_, e| now < e.since + window);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for k in [Key::Ip(ip), Key::User(user.to_ascii_lowercase())] {
            let e = map.entry(k).or_insert(Entry {
                failures: 0,
                since: now,
            });
            if now >= e.since + window {
                *e = Entry {
                    failures: 0,
                    since: now,
                };
            }
            e.failures += 1;
        }
    }

    /// A successful login clears the user's count (not the IP's: one good
    /// password must not reset a spraying attacker's budget).
    pub fn record_success(&self, user: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(&Key::User(user.to_ascii_lowercase()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_unlocks_after_window() {
        let l = Limiter::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..3 {
            assert!(!l.is_locked(ip, "alice", 3, 60, 100 + i));
            l.record_failure(ip, "alice", 60, 100 + i);
        }
        assert!(l.is_locked(ip, "alice", 3, 60, 103));
        // Another user from the same IP is locked too (per-IP count).
        assert!(l.is_locked(ip, "bob", 3, 60, 103));
        // The same user from another IP is locked too (per-user count).
        assert!(l.is_locked("192.0.2.2".parse().unwrap(), "ALICE", 3, 60, 103));
        assert!(!l.is_locked(ip, "alice", 3, 60, 161));
    }
}
