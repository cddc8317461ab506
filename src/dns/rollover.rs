//! The state of the DANE key rollover (RFC 7671 §8.1), kept in
//! `<state>/tls/` beside the next key, so that `mailc plan`,
//! `mailc tls rollover` and `mailc serve` agree on where it stands:
//!
//! - `dane-next.seen`: the next key's TLSA data and when it was first
//!   seen published (by `mailc plan`, `mailc tls rollover`, or
//!   `mailc serve` every 15 minutes: `services::dane_watch`). The switch
//!   waits until it has been live for the TTL; a record that disappears
//!   starts the wait again.
//! - `dane-rollover.request`: the switch asked for by `mailc tls rollover`
//!   (which key is to be served next, which one it replaces). With ACME
//!   the running server carries it out and removes it, or writes the error
//!   into it; with certificate files the admin does, and the next
//!   [`settle`] notices.
//! - `dane-switch.json`: the last switch done (from which key to which,
//!   when), for `mailc plan` to show the switch done and the old record to
//!   retire.
//!
//! [`settle`] is the one place a switch is completed: when the certificate
//! served is on the next key, it records the switch, then replaces the
//! next key by a fresh one (temporary file, fsync, rename, fsync of the
//! directory). A crash between the two leaves the next key equal to the
//! current one, which the next [`settle`] (server start, `mailc dns`,
//! `mailc plan`) completes; the served key is never touched here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dane::{self, KeyPaths};
use crate::store::fsutil;

pub const SEEN_FILE: &str = "dane-next.seen";
pub const REQUEST_FILE: &str = "dane-rollover.request";
pub const SWITCH_FILE: &str = "dane-switch.json";
pub const CSR_FILE: &str = "dane-next.csr";

/// `<state>/tls/<file>`.
pub fn tls_file(p: &KeyPaths, file: &str) -> PathBuf {
    p.state.join("tls").join(file)
}

/// When the next key (`key`, TLSA data) was first seen published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Seen {
    pub key: String,
    /// Unix seconds.
    pub first_seen: u64,
    /// The longest TTL of the TLSA RRset seen since (0 in files written
    /// before it was recorded).
    #[serde(default)]
    pub ttl: u32,
}

impl Seen {
    /// How long the record must have been live before the switch: the
    /// TTL of the records mailc writes, or the longer one seen live (an
    /// admin's zone may publish the RRset with another TTL, and a cache
    /// keeps the RRset without the next key that long).
    pub fn wait(&self) -> u64 {
        wait_for(self.ttl)
    }
}

/// The wait before a switch when the RRset was seen with TTL `ttl_seen`
/// (0: not seen): that TTL or mailc's own, whichever is longer.
pub fn wait_for(ttl_seen: u32) -> u64 {
    u64::from(ttl_seen.max(super::TTL))
}

/// A switch asked for by `mailc tls rollover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Request {
    /// TLSA data of the key to serve (the next key when asked).
    pub next: String,
    /// TLSA data of the key served when asked.
    pub from: Option<String>,
    pub requested_at: u64,
    /// Set by the server when the switch failed; the request is then over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last switch done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Switch {
    /// TLSA data of the key served before, when known.
    pub from: Option<String>,
    /// TLSA data of the key served since.
    pub to: String,
    pub at: u64,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `value` durably and gives it the state directory's owner.
fn write_json<T: Serialize>(p: &KeyPaths, path: &Path, value: &T) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let json = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        fsutil::create_private_dir(dir).map_err(err)?;
    }
    fsutil::write_atomic_durable(path, &json).map_err(err)?;
    fsutil::adopt_state_owner(&p.state, path).map_err(err)
}

fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                let _ = fsutil::sync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Records what a lookup saw of the next key `next` at `now`: published
/// (`live`, in an RRset with TTL `ttl`) or not. Returns when it was first
/// seen published and the longest TTL seen, `None` when it is not
/// published (the wait starts again next time it is).
pub fn observe(
    p: &KeyPaths,
    next: &str,
    live: bool,
    ttl: u32,
    now: u64,
) -> Result<Option<Seen>, String> {
    let path = tls_file(p, SEEN_FILE);
    let known = read_json::<Seen>(&path).filter(|s| s.key == next);
    if !live {
        remove(&path)?;
        return Ok(None);
    }
    let seen = match known {
        Some(s) if s.ttl >= ttl && s.first_seen <= now => return Ok(Some(s)),
        Some(s) => Seen {
            first_seen: s.first_seen.min(now),
            ttl: s.ttl.max(ttl),
            ..s
        },
        None => Seen {
            key: next.to_string(),
            first_seen: now,
            ttl,
        },
    };
    write_json(p, &path, &seen)?;
    Ok(Some(seen))
}

/// What the file says of the next key `next`: when it was first seen
/// published, and the longest TTL seen.
pub fn seen(p: &KeyPaths, next: &str) -> Option<Seen> {
    read_json::<Seen>(&tls_file(p, SEEN_FILE)).filter(|s| s.key == next)
}

/// Whether the switch may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The next key's record is not live.
    NotPublished,
    /// Live, but for less than the TTL: this many seconds are left.
    Waiting { since: u64, left: u64 },
    /// Live for at least the TTL.
    Ready { since: u64 },
}

pub fn readiness(first_seen: Option<u64>, now: u64, ttl: u64) -> Readiness {
    match first_seen {
        None => Readiness::NotPublished,
        Some(since) => {
            let waited = now.saturating_sub(since);
            if waited >= ttl {
                Readiness::Ready { since }
            } else {
                Readiness::Waiting {
                    since,
                    left: ttl - waited,
                }
            }
        }
    }
}

pub fn read_request(p: &KeyPaths) -> Option<Request> {
    read_json(&tls_file(p, REQUEST_FILE))
}

pub fn write_request(p: &KeyPaths, r: &Request) -> Result<(), String> {
    write_json(p, &tls_file(p, REQUEST_FILE), r)
}

pub fn remove_request(p: &KeyPaths) -> Result<(), String> {
    remove(&tls_file(p, REQUEST_FILE))
}

pub fn read_switch(p: &KeyPaths) -> Option<Switch> {
    read_json(&tls_file(p, SWITCH_FILE))
}

/// What [`settle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Unchanged,
    /// There was no next key; one was made.
    Created,
    /// The certificate served is on the (former) next key: the switch is
    /// recorded and a fresh next key made.
    Switched(Switch),
}

/// Puts the next key in order (see the module documentation): makes it
/// when missing; completes a switch when the certificate served is on it.
/// A certificate file that is missing or unreadable changes nothing here
/// (the server reports it).
pub fn settle(p: &KeyPaths, now: u64) -> Result<Settled, String> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| format!("{}: {e}", path.display())
    };
    if dane::ensure_next_key(&p.next_key).map_err(err(&p.next_key))? {
        adopt_tls_dir(p)?;
        return Ok(Settled::Created);
    }
    let Ok(current) = dane::cert_spki_sha256(&p.cert) else {
        return Ok(Settled::Unchanged);
    };
    let next = dane::key_spki_sha256(&p.next_key)?;
    if current != next {
        return Ok(Settled::Unchanged);
    }
    // The key file must hold the key too before the next key may go (a
    // switch interrupted between the chain and the key: start-up restores
    // the key from the next key first).
    if dane::key_spki_sha256(&p.key).ok().as_deref() != Some(current.as_str()) {
        return Ok(Settled::Unchanged);
    }
    let switch = match read_switch(p) {
        // Recorded already (a crash came before the new next key).
        Some(s) if s.to == current => s,
        _ => {
            let from = read_request(p)
                .filter(|r| r.next == current)
                .and_then(|r| r.from);
            let s = Switch {
                from,
                to: current.clone(),
                at: now,
            };
            write_json(p, &tls_file(p, SWITCH_FILE), &s)?;
            s
        }
    };
    let fresh = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    fsutil::write_atomic_durable(&p.next_key, fresh.serialize_pem().as_bytes())
        .map_err(err(&p.next_key))?;
    adopt_tls_dir(p)?;
    remove(&tls_file(p, SEEN_FILE))?;
    if read_request(p).is_some_and(|r| r.next == current) {
        remove_request(p)?;
    }
    Ok(Settled::Switched(switch))
}

fn adopt_tls_dir(p: &KeyPaths) -> Result<(), String> {
    fsutil::adopt_state_owner(&p.state, &p.next_key)
        .map_err(|e| format!("{}: {e}", p.next_key.display()))
}

/// A PEM certificate signing request for `names` on the next key, for a
/// CA that issues the certificate of the switch (certificate files).
pub fn next_key_csr(p: &KeyPaths, names: &[String]) -> Result<String, String> {
    let pem = std::fs::read_to_string(&p.next_key)
        .map_err(|e| format!("{}: {e}", p.next_key.display()))?;
    let key =
        rcgen::KeyPair::from_pem(&pem).map_err(|e| format!("{}: {e}", p.next_key.display()))?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| format!("CSR: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
    }
    params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| format!("CSR: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> KeyPaths {
        KeyPaths {
            host: "mail.example.test".into(),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            next_key: dir.join("tls/dane-next.key"),
            state: dir.to_path_buf(),
        }
    }

    /// A certificate on the key in `key_file`, written as the served one.
    fn serve_cert_on(p: &KeyPaths, key_file: &Path) {
        let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(key_file).unwrap()).unwrap();
        let cert = rcgen::CertificateParams::new(vec![p.host.clone()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&p.cert, cert.pem()).unwrap();
        std::fs::write(&p.key, key.serialize_pem()).unwrap();
    }

    #[test]
    fn the_wait_starts_when_first_seen_and_again_after_a_disappearance() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        let since = |s: Option<Seen>| s.map(|s| s.first_seen);
        assert_eq!(observe(&p, "n1", false, 0, 100).unwrap(), None);
        assert_eq!(since(observe(&p, "n1", true, 300, 100).unwrap()), Some(100));
        // Seen again later: still since 100.
        assert_eq!(since(observe(&p, "n1", true, 300, 500).unwrap()), Some(100));
        assert_eq!(since(seen(&p, "n1")), Some(100));
        // A TTL shorter than mailc's own: the wait is mailc's TTL.
        assert_eq!(seen(&p, "n1").unwrap().wait(), 3600);
        assert_eq!(
            readiness(Some(100), 500, 3600),
            Readiness::Waiting {
                since: 100,
                left: 3200
            }
        );
        assert_eq!(
            readiness(Some(100), 3700, 3600),
            Readiness::Ready { since: 100 }
        );
        assert_eq!(readiness(None, 3700, 3600), Readiness::NotPublished);
        // Gone from DNS: forgotten; back: the wait starts again.
        assert_eq!(observe(&p, "n1", false, 0, 600).unwrap(), None);
        assert_eq!(seen(&p, "n1"), None);
        assert_eq!(since(observe(&p, "n1", true, 300, 700).unwrap()), Some(700));
        // Another next key: its own wait.
        assert_eq!(seen(&p, "n2"), None);
        assert_eq!(since(observe(&p, "n2", true, 300, 800).unwrap()), Some(800));
        assert_eq!(seen(&p, "n1"), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tls_file(&p, SEEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_garbled_seen_file_restarts_the_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        fsutil::create_private_dir(&tmp.path().join("tls")).unwrap();
        std::fs::write(tls_file(&p, SEEN_FILE), b"{not json").unwrap();
        assert_eq!(seen(&p, "n"), None);
        assert_eq!(
            observe(&p, "n", true, 60, 9).unwrap().map(|s| s.first_seen),
            Some(9)
        );
    }

    /// A zone publishing the RRset with a longer TTL than mailc's: the
    /// longest TTL seen is kept and is the wait; a resolver's cache
    /// counting it down does not shorten it; an older file without it
    /// means mailc's TTL.
    #[test]
    fn the_wait_is_the_longest_ttl_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        let s = observe(&p, "n", true, 86_400, 1_000).unwrap().unwrap();
        assert_eq!((s.first_seen, s.wait()), (1_000, 86_400));
        let s = observe(&p, "n", true, 80_000, 5_000).unwrap().unwrap();
        assert_eq!((s.first_seen, s.wait()), (1_000, 86_400));
        assert_eq!(seen(&p, "n").unwrap().ttl, 86_400);
        assert_eq!(
            readiness(Some(s.first_seen), 80_000, s.wait()),
            Readiness::Waiting {
                since: 1_000,
                left: 7_400
            }
        );
        std::fs::write(tls_file(&p, SEEN_FILE), br#"{"key":"n","first-seen":7}"#).unwrap();
        assert_eq!(seen(&p, "n").unwrap().wait(), 3600);
    }

    #[test]
    fn settle_makes_the_next_key_then_completes_a_switch_once() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        assert_eq!(settle(&p, 1).unwrap(), Settled::Created);
        // The served certificate is on another key: nothing to do.
        let old = tmp.path().join("old.key");
        std::fs::write(&old, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        serve_cert_on(&p, &old);
        assert_eq!(settle(&p, 2).unwrap(), Settled::Unchanged);
        let old_hash = dane::cert_spki_sha256(&p.cert).unwrap();
        let next_hash = dane::key_spki_sha256(&p.next_key).unwrap();
        observe(&p, &next_hash, true, 3600, 2).unwrap();
        write_request(
            &p,
            &Request {
                next: next_hash.clone(),
                from: Some(old_hash.clone()),
                requested_at: 3,
                error: None,
            },
        )
        .unwrap();
        // A certificate on the next key is served: the switch is recorded,
        // the request and the wait are over, a fresh next key is made.
        serve_cert_on(&p, &p.next_key.clone());
        let Settled::Switched(s) = settle(&p, 4).unwrap() else {
            panic!("no switch")
        };
        assert_eq!(
            s,
            Switch {
                from: Some(old_hash.clone()),
                to: next_hash.clone(),
                at: 4
            }
        );
        assert_eq!(read_switch(&p), Some(s.clone()));
        assert!(read_request(&p).is_none());
        assert_eq!(seen(&p, &next_hash), None);
        let fresh = dane::key_spki_sha256(&p.next_key).unwrap();
        assert_ne!(fresh, next_hash);
        assert_ne!(fresh, old_hash);
        assert_eq!(dane::cert_spki_sha256(&p.cert).unwrap(), next_hash);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p.next_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Once only.
        assert_eq!(settle(&p, 5).unwrap(), Settled::Unchanged);
        assert_eq!(read_switch(&p), Some(s));
    }

    /// A crash after the switch was recorded and before the fresh next
    /// key: the next settle keeps the record (its `from` and time) and
    /// makes the key.
    #[test]
    fn settle_finishes_a_switch_interrupted_by_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        settle(&p, 1).unwrap();
        let next_hash = dane::key_spki_sha256(&p.next_key).unwrap();
        serve_cert_on(&p, &p.next_key.clone());
        let recorded = Switch {
            from: Some("old".into()),
            to: next_hash.clone(),
            at: 7,
        };
        write_json(&p, &tls_file(&p, SWITCH_FILE), &recorded).unwrap();
        assert_eq!(settle(&p, 9).unwrap(), Settled::Switched(recorded));
        assert_ne!(dane::key_spki_sha256(&p.next_key).unwrap(), next_hash);
    }

    /// The chain is on the next key but the key file still holds the old
    /// key (a crash between the two writes): nothing is settled, the next
    /// key stays for start-up to restore the key from.
    #[test]
    fn settle_waits_for_the_key_file_to_match() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        settle(&p, 1).unwrap();
        let old = tmp.path().join("old.key");
        std::fs::write(&old, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        serve_cert_on(&p, &p.next_key.clone());
        std::fs::copy(&old, &p.key).unwrap();
        let next = std::fs::read(&p.next_key).unwrap();
        assert_eq!(settle(&p, 2).unwrap(), Settled::Unchanged);
        assert_eq!(std::fs::read(&p.next_key).unwrap(), next);
        assert!(read_switch(&p).is_none());
    }

    #[test]
    fn the_csr_is_on_the_next_key() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        settle(&p, 1).unwrap();
        let pem = next_key_csr(&p, &["mail.example.test".into()]).unwrap();
        assert!(
            pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
            "{pem}"
        );
        use x509_parser::prelude::FromDer;
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der.contents)
                .unwrap();
        use sha2::Digest;
        let spki = csr.certification_request_info.subject_pki.raw;
        let hash: String = sha2::Sha256::digest(spki)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash, dane::key_spki_sha256(&p.next_key).unwrap());
    }
}
