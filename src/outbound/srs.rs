//! Sender Rewriting Scheme for forwarded mail (Shevek's scheme, the one
//! libsrs2 and postsrsd use), so that SPF passes at the next hop and a
//! bounce finds its way back.
//!
//! ```text
//! forward  alice@origin.example          → SRS0=HHHH=TT=origin.example=alice@our.example
//! forward  SRS0=HHHH=TT=origin.example=alice@hop1.example
//!                                        → SRS1=GGGG=hop1.example==HHHH=TT=origin.example=alice@our.example
//! reverse  SRS0=...@our.example          → alice@origin.example   (hash and age checked)
//! reverse  SRS1=...@our.example          → SRS0=HHHH=TT=origin.example=alice@hop1.example
//! ```
//!
//! `HHHH` is the first four base64 characters of HMAC-SHA256 over the
//! lower-cased data (timestamp, domain, local part), keyed by 32 random
//! bytes in `<state>/srs.key`; the comparison on the way back ignores case,
//! because relays may change the case of a local part. `TT` is the day
//! number modulo 1024 in base32; an address older than [`MAX_AGE_DAYS`] is
//! refused, so stolen addresses cannot be used as a relay for ever.
//!
//! The key file is the only I/O here (read, or created with mode 0600 on
//! first use).

use std::io::{Read, Write};
use std::path::Path;

use ring::hmac;

/// Bounces arriving later than this after the forward are refused
/// (postsrsd's default is 21 days too; a delivery attempt gives up after 5).
pub const MAX_AGE_DAYS: u64 = 21;
/// Length of the HMAC part (libsrs2's default).
const HASH_LEN: usize = 4;
const KEY_LEN: usize = 32;
const KEY_FILE: &str = "srs.key";
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrsError {
    #[error("not an SRS address")]
    NotSrs,
    #[error("malformed SRS address")]
    Malformed,
    #[error("SRS hash does not match")]
    BadHash,
    #[error("SRS address has expired")]
    Expired,
}

/// The SRS rewriter with its secret key.
pub struct Srs {
    key: hmac::Key,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Srs { key: [secret] }")
    }
}

impl Srs {
    /// A rewriter with a given secret (tests, or a key kept elsewhere).
    pub fn from_secret(secret: &[u8]) -> Srs {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Reads `<state>/srs.key`, or creates it (32 random bytes, mode 0600,
    /// synced) when it does not exist. A key file of the wrong size is an
    /// error, never silently replaced: forwarded mail in flight depends on it.
    pub fn load_or_create(state_dir: &Path) -> std::io::Result<Srs> {
        let path = state_dir.join(KEY_FILE);
        match read_key(&path) {
            Ok(key) => return Ok(Srs::from_secret(&key)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut secret = [0u8; KEY_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| std::io::Error::other("no random bytes for the SRS key"))?;
        crate::store::fsutil::create_private_dir(state_dir)?;
        let created = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
        };
        match created {
            Ok(mut f) => {
                f.write_all(&secret)?;
                f.sync_all()?;
                crate::store::fsutil::sync_dir(state_dir)?;
                Ok(Srs::from_secret(&secret))
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(Srs::from_secret(&read_key(&path)?))
            }
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            )),
        }
    }

    /// The envelope sender to use when forwarding `sender`'s mail from
    /// `our_domain`. The null sender stays null; a sender of our own domain
    /// (SPF passes already) and a sender without a domain are kept.
    pub fn forward(&self, sender: &str, our_domain: &str, now: u64) -> String {
        let Some((local, domain)) = crate::addr::split(sender) else {
            return sender.to_string();
        };
        if sender.is_empty() || local.is_empty() || domain.eq_ignore_ascii_case(our_domain) {
            return sender.to_string();
        }
        if let Some(rest) = strip_prefix_ci(local, "SRS0")
            && let Some(sep) = rest.chars().next().filter(|c| is_separator(*c))
        {
            // SRS1: keep the first hop, so the chain stays one level deep.
            let tail = &rest[sep.len_utf8()..];
            let hash = self.hash(&[domain, tail]);
            return format!("SRS1={hash}={domain}={sep}{tail}@{our_domain}");
        }
        if let Some(rest) = strip_prefix_ci(local, "SRS1")
            && rest.starts_with(is_separator)
        {
            // Already SRS1 at the previous hop: re-sign the same first hop.
            if let Some((first_hop, tail)) = rest[1..]
                .split_once('=')
                .and_then(|(_old_hash, rest)| split_srs1(rest))
            {
                let hash = self.hash(&[first_hop, tail]);
                return format!("SRS1={hash}={first_hop}=={tail}@{our_domain}");
            }
        }
        let tt = timestamp(now);
        let hash = self.hash(&[&tt, domain, local]);
        format!("SRS0={hash}={tt}={domain}={local}@{our_domain}")
    }

    /// The address an SRS address stands for: the original sender for SRS0,
    /// the first hop's SRS0 address for SRS1. The hash (case-insensitively)
    /// and, for SRS0, the age are checked.
    pub fn reverse(&self, address: &str, now: u64) -> Result<String, SrsError> {
        let (local, _our_domain) = crate::addr::split(address).ok_or(SrsError::NotSrs)?;
        if let Some(rest) = strip_prefix_ci(local, "SRS0") {
            let rest = rest.strip_prefix(is_separator).ok_or(SrsError::NotSrs)?;
            // HHHH=TT=domain=local; the local part may itself contain `=`.
            let mut parts = rest.splitn(4, '=');
            let (Some(hash), Some(tt), Some(domain), Some(orig_local)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SrsError::Malformed);
            };
            if domain.is_empty() || orig_local.is_empty() || tt.len() != 2 {
                return Err(SrsError::Malformed);
            }
            if !self.hash_matches(hash, &[tt, domain, orig_local]) {
                return Err(SrsError::BadHash);
            }
            let then = decode_timestamp(tt).ok_or(SrsError::Malformed)?;
            let today = (now / 86_400) % 1024;
            if (today + 1024 - then) % 1024 > MAX_AGE_DAYS {
                return Err(SrsError::Expired);
            }
            return Ok(format!("{orig_local}@{domain}"));
        }
        if let Some(rest) = strip_prefix_ci(local, "SRS1") {
            let rest = rest.strip_prefix(is_separator).ok_or(SrsError::NotSrs)?;
            let (hash, rest) = rest.split_once('=').ok_or(SrsError::Malformed)?;
            let (first_hop, tail) = split_srs1(rest).ok_or(SrsError::Malformed)?;
            if !self.hash_matches(hash, &[first_hop, tail]) {
                return Err(SrsError::BadHash);
            }
            // The first hop checks the SRS0 part's own hash and age.
            return Ok(format!("SRS0={tail}@{first_hop}"));
        }
        Err(SrsError::NotSrs)
    }

    fn hash(&self, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p.to_lowercase().as_bytes());
            // A separator no part can contain keeps ("ab","c") and ("a","bc") apart.
            ctx.update(b"\0");
        }
        let tag = ctx.sign();
        crate::proto::sasl::base64_encode(tag.as_ref())[..HASH_LEN].to_string()
    }

    fn hash_matches(&self, given: &str, parts: &[&str]) -> bool {
        // Not constant-time: the hash is short and case-folded by design;
        // its strength is the key, not timing.
        given.len() == HASH_LEN && given.eq_ignore_ascii_case(&self.hash(parts))
    }
}

fn read_key(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut key = Vec::with_capacity(KEY_LEN);
    f.take(KEY_LEN as u64 + 1).read_to_end(&mut key)?;
    if key.len() != KEY_LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: an SRS key is {KEY_LEN} bytes, this file has {}{}",
                path.display(),
                key.len(),
                if key.len() > KEY_LEN { " or more" } else { "" }
            ),
        ));
    }
    Ok(key)
}

/// SRS separators after `SRS0`/`SRS1` (libsrs2 accepts `=`, `+` and `-`).
fn is_separator(c: char) -> bool {
    matches!(c, '=' | '+' | '-')
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `first_hop=<sep>rest` (the part of an SRS1 local part after its hash).
fn split_srs1(s: &str) -> Option<(&str, &str)> {
    let (first_hop, rest) = s.split_once('=')?;
    let tail = rest.strip_prefix(is_separator)?;
    (!first_hop.is_empty() && !tail.is_empty()).then_some((first_hop, tail))
}

fn timestamp(now: u64) -> String {
    let day = (now / 86_400) % 1024;
    let mut s = String::with_capacity(2);
    s.push(BASE32[(day >> 5) as usize] as char);
    s.push(BASE32[(day & 31) as usize] as char);
    s
}

fn decode_timestamp(tt: &str) -> Option<u64> {
    let val = |c: u8| {
        BASE32
            .iter()
            .position(|&b| b == c.to_ascii_uppercase())
            .map(|v| v as u64)
    };
    let b = tt.as_bytes();
    Some((val(b[0])? << 5) | val(b[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_558_435; // 2026-11-24
    const DAY: u64 = 86_400;

    fn srs() -> Srs {
        Srs::from_secret(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn srs0_round_trip() {
        let s = srs();
        let fwd = s.forward("alice@origin.example", "fwd.example", NOW);
        assert!(fwd.starts_with("SRS0="), "{fwd}");
        assert!(fwd.ends_with("=origin.example=alice@fwd.example"), "{fwd}");
        assert_eq!(fwd.split('=').nth(2).unwrap(), timestamp(NOW));
        assert_eq!(s.reverse(&fwd, NOW).unwrap(), "alice@origin.example");
        assert_eq!(
            s.reverse(&fwd, NOW + 3 * DAY).unwrap(),
            "alice@origin.example"
        );
    }

    #[test]
    fn null_own_and_domainless_senders_are_kept() {
        let s = srs();
        assert_eq!(s.forward("", "fwd.example", NOW), "");
        assert_eq!(
            s.forward("bob@FWD.example", "fwd.example", NOW),
            "bob@FWD.example"
        );
        assert_eq!(s.forward("postmaster", "fwd.example", NOW), "postmaster");
    }

    #[test]
    fn srs1_of_srs0_and_back() {
        let first = srs();
        let second = Srs::from_secret(b"another key, another forwarder!!");
        let hop1 = first.forward("alice@origin.example", "hop1.example", NOW);
        let hop2 = second.forward(&hop1, "hop2.example", NOW);
        assert!(hop2.starts_with("SRS1="), "{hop2}");
        assert!(hop2.contains("=hop1.example=="), "{hop2}");
        assert!(hop2.ends_with("@hop2.example"));
        // A third forwarder keeps the first hop and re-signs.
        let third = Srs::from_secret(b"yet another forwarding secret!!!");
        let hop3 = third.forward(&hop2, "hop3.example", NOW);
        assert!(hop3.starts_with("SRS1="), "{hop3}");
        assert!(hop3.contains("=hop1.example=="), "{hop3}");
        assert!(hop3.ends_with("@hop3.example"));
        // Back: hop3 → hop1's SRS0 address → the original sender.
        let back = third.reverse(&hop3, NOW).unwrap();
        assert_eq!(back, hop1);
        assert_eq!(second.reverse(&hop2, NOW).unwrap(), hop1);
        assert_eq!(first.reverse(&back, NOW).unwrap(), "alice@origin.example");
        // Another forwarder's key does not verify.
        assert_eq!(first.reverse(&hop2, NOW), Err(SrsError::BadHash));
    }

    #[test]
    fn tampered_hash_domain_or_local_part_is_refused() {
        let s = srs();
        let fwd = s.forward("alice@origin.example", "fwd.example", NOW);
        let hash = fwd.split('=').nth(1).unwrap().to_string();
        let other = if hash.starts_with('A') { "B" } else { "A" };
        let bad = fwd.replacen(&hash, &format!("{other}{}", &hash[1..]), 1);
        assert_eq!(s.reverse(&bad, NOW), Err(SrsError::BadHash));
        let bad = fwd.replace("alice", "mallory");
        assert_eq!(s.reverse(&bad, NOW), Err(SrsError::BadHash));
        let bad = fwd.replace("origin.example", "evil.example");
        assert_eq!(s.reverse(&bad, NOW), Err(SrsError::BadHash));
        // The timestamp is covered by the hash too.
        let tt = timestamp(NOW);
        let bad = fwd.replace(&format!("={tt}="), &format!("={}=", timestamp(NOW + DAY)));
        assert_eq!(s.reverse(&bad, NOW), Err(SrsError::BadHash));
    }

    #[test]
    fn expired_timestamps_are_refused() {
        let s = srs();
        let fwd = s.forward("alice@origin.example", "fwd.example", NOW);
        assert!(s.reverse(&fwd, NOW + MAX_AGE_DAYS * DAY).is_ok());
        assert_eq!(
            s.reverse(&fwd, NOW + (MAX_AGE_DAYS + 1) * DAY),
            Err(SrsError::Expired)
        );
        // A timestamp from the future (a forged or wrapped one) is refused.
        let future = s.forward("alice@origin.example", "fwd.example", NOW + 2 * DAY);
        assert_eq!(s.reverse(&future, NOW), Err(SrsError::Expired));
        // The day counter wraps every 1024 days: age is counted modulo 1024.
        let day = NOW / DAY;
        let wrap_start = (day / 1024 + 1) * 1024 * DAY; // day 0 of the next cycle
        let before_wrap = s.forward("alice@origin.example", "fwd.example", wrap_start - 2 * DAY);
        assert!(s.reverse(&before_wrap, wrap_start + 3 * DAY).is_ok());
        assert_eq!(
            s.reverse(&before_wrap, wrap_start + 30 * DAY),
            Err(SrsError::Expired)
        );
    }

    #[test]
    fn case_folding() {
        let s = srs();
        let fwd = s.forward("Alice@Origin.Example", "fwd.example", NOW);
        // A relay that upper- or lower-cases the whole address.
        assert_eq!(
            s.reverse(&fwd.to_lowercase(), NOW).unwrap(),
            "alice@origin.example"
        );
        assert_eq!(
            s.reverse(&fwd.to_uppercase(), NOW).unwrap(),
            "ALICE@ORIGIN.EXAMPLE"
        );
        assert_eq!(s.reverse(&fwd, NOW).unwrap(), "Alice@Origin.Example");
    }

    #[test]
    fn local_parts_with_equals_and_plus() {
        let s = srs();
        for sender in [
            "a=b@origin.example",
            "list+bounces=x=y@origin.example",
            "=lead@origin.example",
            "trail=@origin.example",
            "srs0x@origin.example",
        ] {
            let fwd = s.forward(sender, "fwd.example", NOW);
            assert!(fwd.starts_with("SRS0="), "{fwd}");
            assert_eq!(s.reverse(&fwd, NOW).unwrap(), sender, "{fwd}");
        }
        // Separators `+` and `-` after SRS0 (other implementations) work too.
        let fwd = s.forward("alice@origin.example", "hop1.example", NOW);
        let plus = fwd.replacen("SRS0=", "SRS0+", 1);
        let hop2 = s.forward(&plus, "hop2.example", NOW);
        assert!(hop2.contains("=hop1.example=+"), "{hop2}");
        assert_eq!(s.reverse(&hop2, NOW).unwrap(), fwd);
    }

    #[test]
    fn malformed_and_foreign_addresses() {
        let s = srs();
        assert_eq!(s.reverse("alice@fwd.example", NOW), Err(SrsError::NotSrs));
        assert_eq!(s.reverse("no-at-sign", NOW), Err(SrsError::NotSrs));
        assert_eq!(
            s.reverse("SRS0=abcd@fwd.example", NOW),
            Err(SrsError::Malformed)
        );
        assert_eq!(
            s.reverse("SRS0=abcd=TTT=d=l@fwd.example", NOW),
            Err(SrsError::Malformed)
        );
        assert_eq!(
            s.reverse("SRS0=abcd=T!=d=l@fwd.example", NOW),
            Err(SrsError::BadHash)
        );
        assert_eq!(
            s.reverse("SRS1=abcd@fwd.example", NOW),
            Err(SrsError::Malformed)
        );
        assert_eq!(
            s.reverse("SRS1=abcd=hop=x@fwd.example", NOW),
            Err(SrsError::Malformed)
        );
        assert_eq!(
            s.reverse("SRSX=a=b@fwd.example", NOW),
            Err(SrsError::NotSrs)
        );
        assert_eq!(s.reverse("SRS@fwd.example", NOW), Err(SrsError::NotSrs));
        assert_eq!(s.reverse("é@fwd.example", NOW), Err(SrsError::NotSrs));
    }

    #[test]
    fn key_file_is_created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let a = Srs::load_or_create(&state).unwrap();
        let path = state.join(KEY_FILE);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = std::fs::read(&path).unwrap();
        assert_eq!(key.len(), KEY_LEN);
        let b = Srs::load_or_create(&state).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), key, "never replaced");
        let fwd = a.forward("alice@origin.example", "fwd.example", NOW);
        assert_eq!(b.reverse(&fwd, NOW).unwrap(), "alice@origin.example");
        std::fs::write(&path, b"short").unwrap();
        let err = Srs::load_or_create(&state).unwrap_err();
        assert!(err.to_string().contains("srs.key"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"short", "not replaced");
    }
}
