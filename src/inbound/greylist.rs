//! Greylisting, the part without I/O (RFC 6647): the triplet of a
//! delivery attempt — client network (/24 for IPv4, /64 for IPv6), envelope
//! sender, recipient — as a fixed-size [`Key`], the decision from what is
//! remembered about it ([`decide`]), and the bounded [`Table`] of
//! remembered triplets and client networks. Durable storage of the table
//! is `services::greylist`.
//!
//! A triplet's life: the first attempt is deferred and remembered
//! (`first`); a retry sooner than `delay` is deferred again (the clock is
//! not restarted); a retry between `delay` and `expire` after the first
//! attempt passes, and the triplet passes without delay while it is used
//! at least once every `keep`. A retry after `expire` starts over. With
//! `whitelist-after` N, a client network with N passed triplets passes
//! whole while it keeps sending within `keep`.

use std::collections::HashMap;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::tables::GreylistTable;

/// A stored time that is older than this is refreshed when the triplet
/// passes again; younger ones are not rewritten (one write per triplet and
/// hour at most, instead of one per message).
pub const REFRESH_SECS: u64 = 3600;

/// The first 128 bits of SHA-256 over a triplet or a network: fixed size
/// in memory and on disk whatever the addresses, and no address stored in
/// clear in the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 16]);

impl Key {
    fn of(parts: &[&str]) -> Key {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0u8]);
        }
        let digest = h.finalize();
        let mut k = [0u8; 16];
        k.copy_from_slice(&digest[..16]);
        Key(k)
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Key> {
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut k = [0u8; 16];
        for (i, byte) in k.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Key(k))
    }
}

/// The client's network as greylisting sees it: a big sender's pool of
/// outgoing servers in one /24 (or an IPv6 host's /64) retries from
/// another address of the same network.
pub fn client_network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The sender as the triplet holds it: lower-case, and without a BATV tag
/// (`prvs=1234abcd=user@example.org`, which changes with every message
/// but not between retries of one). The null sender stays empty: bounces
/// are greylisted too, and a real MTA retries them like any message.
pub fn sender_form(sender: &str) -> String {
    let s = sender.to_ascii_lowercase();
    if let Some(rest) = s.strip_prefix("prvs=")
        && let Some((tag, address)) = rest.split_once('=')
        && !tag.contains('@')
        && address.contains('@')
    {
        return address.to_string();
    }
    s
}

pub fn triplet_key(ip: IpAddr, sender: &str, recipient: &str) -> Key {
    Key::of(&[
        "triplet",
        &client_network(ip),
        &sender_form(sender),
        &recipient.to_ascii_lowercase(),
    ])
}

pub fn network_key(ip: IpAddr) -> Key {
    Key::of(&["network", &client_network(ip)])
}

/// What is remembered about a triplet or a client network. Times are Unix
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The first attempt of the current round.
    pub first: u64,
    /// When it last passed; 0: not yet.
    pub passed: u64,
    /// Triplets of a network that passed (network entries only).
    pub passes: u32,
}

impl Entry {
    /// Nothing left to remember: a pass older than `keep`, or a first
    /// attempt whose retry window closed.
    pub fn expired(&self, now: u64, t: &GreylistTable) -> bool {
        if self.passed > 0 {
            now > self.passed.saturating_add(t.keep_secs)
        } else {
            now > self.first.saturating_add(t.expire_secs)
        }
    }

    fn touched(&self) -> u64 {
        self.first.max(self.passed)
    }
}

/// What happens to the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted: the triplet passed greylisting now or before.
    Pass,
    /// Accepted: the client network is whitelisted by its passes.
    Whitelisted,
    /// Deferred (451); the earliest retry that can pass is this many
    /// seconds away.
    Greylisted { retry_in: u64 },
}

/// The verdict for a triplet remembered as `entry` (or not at all), and
/// what to remember now (`None`: unchanged).
pub fn decide(entry: Option<Entry>, now: u64, t: &GreylistTable) -> (Verdict, Option<Entry>) {
    let fresh = Entry {
        first: now,
        passed: 0,
        passes: 0,
    };
    let Some(e) = entry.filter(|e| !e.expired(now, t)) else {
        return (
            Verdict::Greylisted {
                retry_in: t.delay_secs,
            },
            Some(fresh),
        );
    };
    if e.passed > 0 {
        let refresh = now.saturating_sub(e.passed) >= REFRESH_SECS;
        return (Verdict::Pass, refresh.then_some(Entry { passed: now, ..e }));
    }
    let open = e.first.saturating_add(t.delay_secs);
    if now < open {
        return (
            Verdict::Greylisted {
                retry_in: open - now,
            },
            None,
        );
    }
    (Verdict::Pass, Some(Entry { passed: now, ..e }))
}

/// The result of [`Table::check`]: the verdict and the entries that
/// changed (to be stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub changed: Vec<(Key, Entry)>,
}

/// Remembered triplets and client networks, at most `max` entries: when a
/// new one would exceed it, expired entries go, then the tenth of the rest
/// touched longest ago.
#[derive(Debug, Default)]
pub struct Table {
    map: HashMap<Key, Entry>,
    max: usize,
}

impl Table {
    pub fn new(max: usize) -> Table {
        Table {
            map: HashMap::new(),
            max: max.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &Key) -> Option<Entry> {
        self.map.get(key).copied()
    }

    pub fn entries(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.map.iter()
    }

    /// An entry read back from storage, outside the bound (the next
    /// insert restores it).
    pub fn load(&mut self, key: Key, entry: Entry) {
        self.map.insert(key, entry);
    }

    /// A new bound (the configuration changed); applied at the next insert.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    /// Stores `entry` under `key`, making room first if it is new.
    pub fn insert(&mut self, key: Key, entry: Entry, now: u64, t: &GreylistTable) {
        if !self.map.contains_key(&key) && self.map.len() >= self.max {
            self.make_room(now, t);
        }
        self.map.insert(key, entry);
    }

    /// Drops expired entries.
    pub fn purge(&mut self, now: u64, t: &GreylistTable) {
        self.map.retain(|_, e| !e.expired(now, t));
    }

    /// Below the bound: expired entries first, then at least a tenth,
    /// oldest first (one pass, so a full table does not pay per insert).
    fn make_room(&mut self, now: u64, t: &GreylistTable) {
        self.purge(now, t);
        if self.map.len() < self.max {
            return;
        }
        let target = self.max - (self.max / 10).max(1);
        let mut ages: Vec<u64> = self.map.values().map(Entry::touched).collect();
        let drop = self.map.len() - target;
        let (_, cutoff, _) = ages.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        let mut left = drop;
        // Everything older than the cutoff, then entries at the cutoff
        // until enough are gone.
        self.map.retain(|_, e| {
            let t = e.touched();
            if t < cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
        if left > 0 {
            self.map.retain(|_, e| {
                if left > 0 && e.touched() == cutoff {
                    left -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Greylisting of one recipient: the client network's whitelisting
    /// first (if on), then the triplet.
    pub fn check(
        &mut self,
        ip: IpAddr,
        sender: &str,
        recipient: &str,
        now: u64,
        t: &GreylistTable,
    ) -> Outcome {
        let mut changed = Vec::new();
        let net_key = network_key(ip);
        let network = self.get(&net_key).filter(|n| !n.expired(now, t));
        if t.whitelist_after > 0
            && let Some(n) = network
            && n.passes >= t.whitelist_after
        {
            if now.saturating_sub(n.passed) >= REFRESH_SECS {
                let n = Entry { passed: now, ..n };
                self.insert(net_key, n, now, t);
                changed.push((net_key, n));
            }
            return Outcome {
                verdict: Verdict::Whitelisted,
                changed,
            };
        }
        let key = triplet_key(ip, sender, recipient);
        let before = self.get(&key);
        let (verdict, update) = decide(before, now, t);
        if let Some(e) = update {
            let newly_passed =
                e.passed > 0 && before.is_none_or(|b| b.passed == 0 || b.expired(now, t));
            self.insert(key, e, now, t);
            changed.push((key, e));
            if newly_passed && t.whitelist_after > 0 {
                let n = match network {
                    Some(n) => Entry {
                        passed: now,
                        passes: n.passes.saturating_add(1),
                        ..n
                    },
                    None => Entry {
                        first: now,
                        passed: now,
                        passes: 1,
                    },
                };
                self.insert(net_key, n, now, t);
                changed.push((net_key, n));
            }
        }
        Outcome { verdict, changed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GreylistTable {
        GreylistTable {
            delay_secs: 300,
            expire_secs: 86400,
            keep_secs: 36 * 86400,
            max_entries: 1000,
            whitelist_after: 0,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_are_the_slash_24_and_the_slash_64() {
        assert_eq!(client_network(ip("192.0.2.77")), "192.0.2.0/24");
        assert_eq!(client_network(ip("::ffff:192.0.2.77")), "192.0.2.0/24");
        assert_eq!(
            client_network(ip("2001:db8:a:b:1:2:3:4")),
            "2001:db8:a:b::/64"
        );
        assert_eq!(
            triplet_key(ip("192.0.2.1"), "A@X.example", "b@y.example"),
            triplet_key(ip("192.0.2.200"), "a@x.example", "B@Y.example")
        );
        assert_ne!(
            triplet_key(ip("192.0.3.1"), "a@x.example", "b@y.example"),
            triplet_key(ip("192.0.2.1"), "a@x.example", "b@y.example")
        );
        assert_ne!(
            triplet_key(ip("192.0.2.1"), "", "b@y.example"),
            triplet_key(ip("192.0.2.1"), "a@x.example", "b@y.example")
        );
        // No ambiguity between the fields.
        assert_ne!(
            triplet_key(ip("192.0.2.1"), "a@x", "yb@z"),
            triplet_key(ip("192.0.2.1"), "a@xy", "b@z")
        );
    }

    #[test]
    fn batv_tags_are_not_part_of_the_sender() {
        assert_eq!(
            sender_form("prvs=1234abcd=News@Example.org"),
            "news@example.org"
        );
        assert_eq!(sender_form("prvs@example.org"), "prvs@example.org");
        assert_eq!(sender_form(""), "");
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let k = triplet_key(ip("192.0.2.1"), "a@x", "b@y");
        assert_eq!(Key::from_hex(&k.hex()), Some(k));
        assert_eq!(Key::from_hex("zz"), None);
        assert_eq!(Key::from_hex(&"g".repeat(32)), None);
    }

    #[test]
    fn a_triplet_passes_after_the_delay_and_within_the_window() {
        let t = policy();
        let (v, e) = decide(None, 1000, &t);
        assert_eq!(v, Verdict::Greylisted { retry_in: 300 });
        let e = e.unwrap();
        // Too early: deferred, the clock is not restarted.
        assert_eq!(
            decide(Some(e), 1100, &t),
            (Verdict::Greylisted { retry_in: 200 }, None)
        );
        // In the window: passes, remembered.
        let (v, passed) = decide(Some(e), 1300, &t);
        assert_eq!(v, Verdict::Pass);
        let passed = passed.unwrap();
        assert_eq!(passed.passed, 1300);
        // Later messages pass; the pass time is refreshed at most hourly.
        assert_eq!(decide(Some(passed), 2000, &t), (Verdict::Pass, None));
        let (v, refreshed) = decide(Some(passed), 1300 + REFRESH_SECS, &t);
        assert_eq!(
            (v, refreshed.unwrap().passed),
            (Verdict::Pass, 1300 + REFRESH_SECS)
        );
        // A retry after the window starts over.
        let (v, again) = decide(Some(e), 1000 + 86400 + 1, &t);
        assert_eq!(v, Verdict::Greylisted { retry_in: 300 });
        assert_eq!(again.unwrap().first, 1000 + 86400 + 1);
        // A pass older than keep is forgotten.
        let late = 1300 + 36 * 86400 + 1;
        assert_eq!(
            decide(Some(passed), late, &t).0,
            Verdict::Greylisted { retry_in: 300 }
        );
    }

    #[test]
    fn networks_are_whitelisted_after_enough_passes() {
        let t = GreylistTable {
            whitelist_after: 2,
            ..policy()
        };
        let mut table = Table::new(100);
        let client = ip("192.0.2.10");
        for (i, rcpt) in ["a@x", "b@x"].iter().enumerate() {
            let now = 1000 + i as u64 * 1000;
            assert!(matches!(
                table.check(client, "s@y", rcpt, now, &t).verdict,
                Verdict::Greylisted { .. }
            ));
            let out = table.check(client, "s@y", rcpt, now + 300, &t);
            assert_eq!(out.verdict, Verdict::Pass);
            // The triplet and the network changed.
            assert_eq!(out.changed.len(), 2, "{out:?}");
            assert_eq!(out.changed[1].1.passes, i as u32 + 1);
        }
        // Passing the same triplet again does not count twice...
        let out = table.check(client, "s@y", "a@x", 5000, &t);
        assert_eq!(out.verdict, Verdict::Whitelisted);
        // ...and the network, another host of it, and a new sender pass.
        let out = table.check(ip("192.0.2.99"), "new@z", "c@x", 5001, &t);
        assert_eq!(out.verdict, Verdict::Whitelisted);
        // Another network does not.
        let out = table.check(ip("198.51.100.1"), "new@z", "c@x", 5002, &t);
        assert!(matches!(out.verdict, Verdict::Greylisted { .. }));
    }

    #[test]
    fn the_table_is_bounded() {
        let t = GreylistTable {
            max_entries: 100,
            ..policy()
        };
        let mut table = Table::new(100);
        for i in 0..1000u64 {
            let out = table.check(
                ip(&format!("10.{}.{}.1", i / 256, i % 256)),
                &format!("s{i}@spam.example"),
                "a@x",
                10_000 + i,
                &t,
            );
            assert!(matches!(out.verdict, Verdict::Greylisted { .. }));
            assert!(table.len() <= 100, "{} entries", table.len());
        }
        // The newest survive; the oldest went first.
        let newest = triplet_key(ip("10.3.231.1"), "s999@spam.example", "a@x");
        assert!(table.get(&newest).is_some());
        let oldest = triplet_key(ip("10.0.0.1"), "s0@spam.example", "a@x");
        assert!(table.get(&oldest).is_none());
        // Expired entries are purged.
        table.purge(10_000 + 1000 + 86400 + 1, &t);
        assert!(table.is_empty());
    }

    proptest::proptest! {
        /// Whatever the traffic and however the clock moves (backwards
        /// too), the table stays within its bound, never panics, and a
        /// triplet it just let pass passes again at once.
        #[test]
        fn bounded_under_any_traffic(
            max in 1usize..50,
            whitelist_after in 0u32..4,
            ops in proptest::collection::vec((0u8..8, 0u8..4, 0u8..4, -500i64..2000), 1..300),
        ) {
            let t = GreylistTable {
                delay_secs: 300,
                expire_secs: 3600,
                keep_secs: 86400,
                max_entries: max as u32,
                whitelist_after,
            };
            let mut table = Table::new(max);
            let mut now: u64 = 1_000_000;
            let mut monotonic = true;
            for (client, sender, rcpt, step) in ops {
                now = now.saturating_add_signed(step);
                monotonic &= step >= 0;
                let ip = IpAddr::from([192, 0, client, 1]);
                let (sender, rcpt) = (format!("s{sender}@x"), format!("r{rcpt}@y"));
                let out = table.check(ip, &sender, &rcpt, now, &t);
                let len = table.len();
                proptest::prop_assert!(len <= max, "{} entries, bound {}", len, max);
                let passed = !matches!(out.verdict, Verdict::Greylisted { .. });
                // While the clock only moves forward, what just passed is the
                // newest entry and survives any eviction (a bound of 1 or 2
                // cannot hold a triplet and its network).
                if passed && monotonic && max > 2 {
                    let again = table.check(ip, &sender, &rcpt, now, &t);
                    let deferred = matches!(again.verdict, Verdict::Greylisted { .. });
                    proptest::prop_assert!(!deferred, "passed, then deferred");
                }
            }
        }
    }
}
