//! ACME certificates (RFC 8555): the renewal task that orders a
//! certificate when none is on disk or the one there nears its end, and
//! swaps it into every listener ([`crate::net::tls::LiveCerts`]).
//!
//! Durability: the account, the new key and the new chain are written
//! (0600, fsynced, renamed) before the certificate is served; a restart
//! reuses them. The key is written before the chain: a crash between the
//! two leaves a pair that does not match, which start-up treats as "no
//! certificate" (a temporary one is served and a new order placed).
//!
//! Schedule: renew when less than `renew-before` (30 days) or a third of
//! the lifetime remains, whichever is shorter, minus a random jitter of up
//! to a twentieth of the lifetime (at most 6 hours) so that many servers do
//! not all ask at once. A failed attempt is retried after `retry-min`,
//! doubled each time up to `retry-max`; the failure count and the last
//! error are kept in the certificate's status file for `mailc tls status`
//! and survive a restart.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::net::certinfo::{self, CertInfo};
use crate::store::fsutil;
use crate::tables::AcmeCert;

/// What the status file of an ACME certificate records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RenewalStatus {
    /// Unix seconds of the last order attempt.
    pub last_attempt: Option<u64>,
    /// Unix seconds of the last certificate issued.
    pub last_success: Option<u64>,
    /// The error of the last attempt, `None` when it succeeded.
    pub last_error: Option<String>,
    /// Attempts failed in a row.
    pub failures: u32,
    /// Unix seconds before which no new attempt is made (after failures).
    pub retry_after: Option<u64>,
}

impl RenewalStatus {
    /// The status file, or an empty status when there is none (or it is
    /// unreadable: it only holds history).
    pub fn read(path: &Path) -> RenewalStatus {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            fsutil::create_private_dir(dir)?;
        }
        fsutil::write_atomic_durable(path, &json)
    }
}

/// When the certificate `info` is due for renewal (unix seconds), before
/// `jitter_unit` (a random number in 0..1) is applied.
pub fn renewal_due(info: &CertInfo, renew_before_secs: u64, jitter_unit: f64) -> i64 {
    let lifetime = (info.not_after - info.not_before).max(0);
    let before = (renew_before_secs as i64).min(lifetime / 3);
    let max_jitter = (lifetime / 20).min(6 * 3600);
    let jitter = (max_jitter as f64 * jitter_unit.clamp(0.0, 1.0)) as i64;
    info.not_after - before - jitter
}

/// Wait after `failures` failed attempts in a row.
pub fn backoff_secs(failures: u32, min: u64, max: u64) -> u64 {
    let shift = failures.saturating_sub(1).min(32);
    min.saturating_mul(1u64 << shift).min(max).max(min)
}

/// When the next order for `a` should be placed (unix seconds): now if
/// there is no usable certificate on disk or it does not cover every name
/// the configuration wants, else its renewal time; never before the
/// back-off of failed attempts.
pub fn next_attempt(a: &AcmeCert, now: i64, jitter_unit: f64) -> i64 {
    let on_disk = certinfo::read(&a.cert)
        .ok()
        .filter(|info| info.covers(&a.order_names))
        .filter(|_| crate::net::tls::load(&a.cert, &a.key).is_ok());
    let due = match on_disk {
        Some(info) => renewal_due(&info, a.renew_before_secs, jitter_unit),
        None => now,
    };
    let status = RenewalStatus::read(&a.status);
    match status.retry_after {
        Some(t) if status.failures > 0 => due.max(t as i64),
        _ => due,
    }
}

#[cfg(feature = "acme")]
pub use client::start;

#[cfg(feature = "acme")]
mod client {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use instant_acme::{
        Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
        NewOrder, OrderStatus, RetryPolicy,
    };

    use super::{RenewalStatus, backoff_secs, next_attempt};
    use crate::dns::rollover;
    use crate::net::challenges::Challenges;
    use crate::net::tls;
    use crate::services::Shared;
    use crate::services::acme_http::{self, BAD_NONCE};
    use crate::store::fsutil;
    use crate::tables::{AcmeCert, AcmeChallenge, CertSource};

    /// Longest sleep between looks at the configuration (a reload may add
    /// a certificate).
    const MAX_SLEEP: Duration = Duration::from_secs(60);
    /// instant-acme retries a request twice when the CA answers
    /// `badNonce` (RFC 8555 §6.5: retryable); after a third rejection in a
    /// row the order is placed again at once, this many times in all,
    /// before the error counts as a failure.
    const BAD_NONCE_ATTEMPTS: u32 = 5;
    /// How long one order may take, validation and issuance included.
    const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
    /// How often a DANE-pinned certificate's directory is looked at for a
    /// rollover request of `mailc tls rollover` (one `stat`).
    const REQUEST_POLL: Duration = Duration::from_secs(2);

    /// Starts the renewal task.
    pub fn start(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(shared.clone()))
    }

    async fn run(shared: Arc<Shared>) {
        let mut shutdown = shared.shutdown.clone();
        // Certificate path → the names it was planned for and the next
        // attempt (unix seconds). A reload that changes the names plans
        // again (the certificate on disk no longer covers them).
        let mut plans: HashMap<PathBuf, (Vec<String>, i64)> = HashMap::new();
        loop {
            let snapshot = shared.snapshot();
            let wanted: Vec<AcmeCert> = snapshot
                .tables
                .tls
                .iter()
                .filter_map(|c| match &c.source {
                    CertSource::Acme(a) => Some(a.clone()),
                    _ => None,
                })
                .collect();
            // The certificate whose key `dane #true` publishes, if ACME's.
            let dane = crate::dns::dane::key_paths(&snapshot.tables)
                .filter(|p| wanted.iter().any(|a| a.cert == p.cert));
            drop(snapshot);
            plans.retain(|k, _| wanted.iter().any(|a| &a.cert == k));
            let now = crate::services::unix_now() as i64;
            let mut wake = now + MAX_SLEEP.as_secs() as i64;
            if let Some(p) = &dane {
                wake = wake.min(now + REQUEST_POLL.as_secs() as i64);
                if let Some(req) = rollover::read_request(p).filter(|r| r.error.is_none())
                    && let Some(a) = wanted.iter().find(|a| a.cert == p.cert)
                {
                    switch_to_next_key(&shared, a, p, req).await;
                    plans.remove(&a.cert);
                }
            }
            for a in &wanted {
                let due = match plans.get(&a.cert) {
                    Some((names, due)) if *names == a.order_names => *due,
                    _ => {
                        let due = next_attempt(a, now, jitter());
                        plans.insert(a.cert.clone(), (a.order_names.clone(), due));
                        due
                    }
                };
                let due = if due <= now {
                    let _ = renew(&shared, a, None).await;
                    let now = crate::services::unix_now() as i64;
                    let due = next_attempt(a, now, jitter());
                    plans.insert(a.cert.clone(), (a.order_names.clone(), due));
                    due
                } else {
                    due
                };
                wake = wake.min(due);
            }
            let now = crate::services::unix_now() as i64;
            let sleep = Duration::from_secs(wake.saturating_sub(now).max(1) as u64);
            tokio::select! {
                _ = tokio::time::sleep(sleep.min(MAX_SLEEP)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// A random number in 0..1.
    fn jitter() -> f64 {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 4];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
    }

    /// The switch step of the DANE rollover, asked for by
    /// `mailc tls rollover`: a certificate on the next key, then a fresh
    /// next key ([`rollover::settle`]). The current key and certificate
    /// stay until the new ones are stored; a failure is written into the
    /// request for the command to report.
    async fn switch_to_next_key(
        shared: &Arc<Shared>,
        a: &AcmeCert,
        p: &crate::dns::dane::KeyPaths,
        mut req: rollover::Request,
    ) {
        use crate::dns::dane;
        let fail = |req: &mut rollover::Request, e: String| {
            tracing::error!(error = %e, "DANE rollover failed; the current certificate stays");
            req.error = Some(e);
            if let Err(e) = rollover::write_request(p, req) {
                tracing::warn!(error = %e, "DANE rollover: cannot write the request file");
            }
        };
        // Served already (a crash came before the request was removed).
        if dane::cert_spki_sha256(&a.cert).ok().as_deref() == Some(req.next.as_str()) {
            settled(p);
            return;
        }
        let next_pem = match std::fs::read_to_string(&p.next_key) {
            Ok(pem) => pem,
            Err(e) => return fail(&mut req, format!("{}: {e}", p.next_key.display())),
        };
        match dane::key_spki_sha256(&p.next_key) {
            Ok(h) if h == req.next => {}
            Ok(h) => {
                let e = format!(
                    "the next key is now {h}, not {} as asked: run `mailc tls rollover` again",
                    req.next
                );
                return fail(&mut req, e);
            }
            Err(e) => return fail(&mut req, e),
        }
        tracing::info!(next = %req.next, "DANE rollover: ordering a certificate on the next key");
        match renew(shared, a, Some(next_pem)).await {
            Ok(()) => settled(p),
            Err(e) => fail(&mut req, e),
        }
    }

    /// Completes the switch once the certificate on the next key is served.
    fn settled(p: &crate::dns::dane::KeyPaths) {
        match rollover::settle(p, crate::services::unix_now()) {
            Ok(rollover::Settled::Switched(s)) => {
                tracing::info!(key = %s.to, next_key = %p.next_key.display(), "DANE rollover: switched to the next key; made a fresh next key: publish its TLSA record, retire the old one (`mailc plan`)");
            }
            Ok(other) => {
                tracing::warn!(outcome = ?other, "DANE rollover: the certificate served is not on the next key");
            }
            Err(e) => {
                tracing::error!(error = %e, "DANE rollover: cannot make a fresh next key");
            }
        }
    }

    /// One attempt: order (on `key_pem` when given), store, swap in; the
    /// outcome goes to the log and the status file.
    async fn renew(
        shared: &Arc<Shared>,
        a: &AcmeCert,
        key_pem: Option<String>,
    ) -> Result<(), String> {
        let names = a.order_names.join(",");
        tracing::info!(names = %names, directory = %a.directory, "ACME: ordering a certificate");
        let mut status = RenewalStatus::read(&a.status);
        let now = crate::services::unix_now();
        status.last_attempt = Some(now);
        let mut outcome = Err(String::new());
        for attempt in 1..=BAD_NONCE_ATTEMPTS {
            outcome = match tokio::time::timeout(
                ORDER_TIMEOUT,
                order(a, &shared.certs.challenges, key_pem.as_deref()),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "the order took longer than {} s",
                    ORDER_TIMEOUT.as_secs()
                )),
            };
            match &outcome {
                Err(e) if e.contains(BAD_NONCE) && attempt < BAD_NONCE_ATTEMPTS => {
                    tracing::warn!(names = %names, error = %e, attempt, "ACME: the CA kept rejecting nonces; ordering again");
                }
                _ => break,
            }
        }
        let outcome = match outcome {
            Ok((chain, key)) => store_and_swap(shared, a, &chain, &key),
            Err(e) => Err(e),
        };
        let result = outcome.as_ref().map(|_| ()).map_err(Clone::clone);
        match outcome {
            Ok(serial) => {
                tracing::info!(names = %names, serial = %serial, "ACME: new certificate in service");
                status.last_success = Some(crate::services::unix_now());
                status.last_error = None;
                status.failures = 0;
                status.retry_after = None;
            }
            Err(e) => {
                status.failures = status.failures.saturating_add(1);
                let wait = backoff_secs(status.failures, a.retry_min_secs, a.retry_max_secs);
                status.retry_after = Some(crate::services::unix_now() + wait);
                tracing::error!(names = %names, error = %e, failures = status.failures, retry_in_secs = wait, "ACME: renewal failed");
                status.last_error = Some(e);
            }
        }
        if let Err(e) = status.write(&a.status) {
            tracing::warn!(path = %a.status.display(), error = %e, "ACME: cannot write the status file");
        }
        result
    }

    /// Writes the key, then the chain, durably; loads them back (which
    /// checks that they match) and swaps them in. Returns the serial.
    ///
    /// Under `dane #true` the order is the other way round: the key is
    /// either the one already stored (a renewal) or the DANE next key (a
    /// switch), which stays in its own file until the switch is settled;
    /// so after a crash between the two writes, start-up finds the chain's
    /// key there ([`tls::LiveCerts::acme_slot`]) and nothing is lost. A new
    /// key without DANE is written first: a crash then leaves a pair that
    /// does not match, and a new order is placed.
    fn store_and_swap(
        shared: &Shared,
        a: &AcmeCert,
        chain: &str,
        key: &str,
    ) -> Result<String, String> {
        if let Some(dir) = a.cert.parent() {
            fsutil::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let write_key = || {
            fsutil::write_atomic_durable(&a.key, key.as_bytes())
                .map_err(|e| format!("{}: {e}", a.key.display()))
        };
        let write_chain = || {
            fsutil::write_atomic_durable(&a.cert, chain.as_bytes())
                .map_err(|e| format!("{}: {e}", a.cert.display()))
        };
        if a.keep_key {
            write_chain()?;
            write_key()?;
        } else {
            write_key()?;
            write_chain()?;
        }
        let certified = tls::load(&a.cert, &a.key).map_err(|e| e.to_string())?;
        let serial = crate::net::certinfo::read(&a.cert)
            .map(|i| i.serial)
            .unwrap_or_default();
        shared.certs.install(&a.cert, Arc::new(certified));
        Ok(serial)
    }

    /// The account of this directory: from its credentials file, or
    /// created and saved.
    async fn account(a: &AcmeCert) -> Result<Account, String> {
        let builder = || -> Result<_, String> {
            let http = acme_http::Http::new(a.ca_file.as_deref())?;
            Ok(Account::builder_with_http(Box::new(http)))
        };
        if let Ok(bytes) = std::fs::read(&a.account) {
            let creds: AccountCredentials = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: {e}", a.account.display()))?;
            return builder()?
                .from_credentials(creds)
                .await
                .map_err(|e| format!("ACME account: {e}"));
        }
        let contact: Vec<&str> = a.contact.iter().map(String::as_str).collect();
        let (account, creds) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                a.directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("creating the ACME account: {e}"))?;
        let json = serde_json::to_vec(&creds).map_err(|e| e.to_string())?;
        if let Some(dir) = a.account.parent() {
            fsutil::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        fsutil::write_atomic_durable(&a.account, &json)
            .map_err(|e| format!("{}: {e}", a.account.display()))?;
        tracing::info!(account = %account.id(), directory = %a.directory, "ACME: account created");
        Ok(account)
    }

    /// Challenge responses put out for one order, taken back on drop.
    struct Published<'a> {
        challenges: &'a Challenges,
        alpn: Vec<String>,
        http: Vec<String>,
    }

    impl Drop for Published<'_> {
        fn drop(&mut self) {
            for d in &self.alpn {
                self.challenges.remove_alpn(d);
            }
            for t in &self.http {
                self.challenges.remove_http(t);
            }
        }
    }

    /// The current private key when renewals keep it (`keep_key`) and it
    /// can be read; else `None` (a new key is made).
    pub(super) fn reused_key(a: &AcmeCert) -> Option<rcgen::KeyPair> {
        if !a.keep_key {
            return None;
        }
        let pem = std::fs::read_to_string(&a.key).ok()?;
        match rcgen::KeyPair::from_pem(&pem) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(key = %a.key.display(), error = %e, "ACME: cannot reuse the key; making a new one (the TLSA records must follow)");
                None
            }
        }
    }

    /// Places an order for the names of `a`, answers its challenges, and
    /// returns the PEM chain and the PEM key.
    async fn order(
        a: &AcmeCert,
        challenges: &Challenges,
        key_pem: Option<&str>,
    ) -> Result<(String, String), String> {
        let account = account(a).await?;
        let identifiers: Vec<Identifier> = a
            .order_names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let mut published = Published {
            challenges,
            alpn: Vec::new(),
            http: Vec::new(),
        };
        let kind = match a.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    s => {
                        return Err(format!("authorization for {} is {s:?}", authz.identifier()));
                    }
                }
                let name = authz.identifier().to_string();
                let Some(mut challenge) = authz.challenge(kind.clone()) else {
                    return Err(format!("the CA offers no {kind:?} challenge for {name}"));
                };
                let key_auth = challenge.key_authorization();
                match a.challenge {
                    AcmeChallenge::TlsAlpn01 => {
                        let cert = tls::challenge_cert(&name, key_auth.digest().as_ref())
                            .map_err(|e| e.to_string())?;
                        challenges.set_alpn(&name, Arc::new(cert));
                        published.alpn.push(name.clone());
                    }
                    AcmeChallenge::Http01 => {
                        challenges.set_http(&challenge.token, key_auth.as_str());
                        published.http.push(challenge.token.clone());
                    }
                }
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("challenge for {name}: {e}"))?;
            }
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(120));
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| format!("validation: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(format!("the order is {status:?} after validation"));
        }
        drop(published);
        let key = match (key_pem, reused_key(a)) {
            (Some(pem), _) => {
                rcgen::KeyPair::from_pem(pem).map_err(|e| format!("the next key: {e}"))?
            }
            (None, Some(k)) => k,
            (None, None) => rcgen::KeyPair::generate().map_err(|e| format!("key: {e}"))?,
        };
        let mut params = rcgen::CertificateParams::new(a.order_names.clone())
            .map_err(|e| format!("CSR: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("CSR: {e}"))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        Ok((chain, key.serialize_pem()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "acme")]
    #[test]
    fn renewals_keep_the_key_only_when_dane_pins_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        let original = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, original.serialize_pem()).unwrap();
        let mut a = AcmeCert {
            directory: "https://acme.test/dir".into(),
            contact: Vec::new(),
            ca_file: None,
            challenge: crate::tables::AcmeChallenge::TlsAlpn01,
            order_names: vec!["mail.example.test".into()],
            account: dir.path().join("account.json"),
            cert: dir.path().join("k.pem"),
            key: key.clone(),
            status: dir.path().join("status.json"),
            renew_before_secs: 30 * 86_400,
            retry_min_secs: 60,
            retry_max_secs: 6 * 3600,
            keep_key: false,
            dane_next_key: None,
        };
        assert!(client::reused_key(&a).is_none(), "a new key without DANE");
        a.keep_key = true;
        let reused = client::reused_key(&a).expect("the key is kept");
        assert_eq!(reused.serialize_pem(), original.serialize_pem());
        std::fs::write(&key, "not a key").unwrap();
        assert!(client::reused_key(&a).is_none(), "garbage: a new key");
        std::fs::remove_file(&key).unwrap();
        assert!(client::reused_key(&a).is_none(), "missing: a new key");
    }

    fn info(not_before: i64, not_after: i64) -> CertInfo {
        CertInfo {
            names: vec!["mail.example.test".into()],
            issuer: "CN=x".into(),
            not_before,
            not_after,
            serial: "01".into(),
        }
    }

    #[test]
    fn ninety_day_certificates_renew_thirty_days_before_the_end() {
        let day = 86_400;
        let c = info(0, 90 * day);
        assert_eq!(renewal_due(&c, 30 * day as u64, 0.0), 60 * day);
        // The jitter moves it earlier by at most 6 hours.
        assert_eq!(renewal_due(&c, 30 * day as u64, 1.0), 60 * day - 6 * 3600);
    }

    #[test]
    fn short_lived_certificates_renew_at_a_third_of_their_lifetime() {
        let c = info(1000, 1090);
        // 90 s: renew with 30 s left, jitter at most 90/20 = 4 s.
        assert_eq!(renewal_due(&c, 30 * 86_400, 0.0), 1060);
        assert_eq!(renewal_due(&c, 30 * 86_400, 1.0), 1056);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(backoff_secs(1, 60, 3600), 60);
        assert_eq!(backoff_secs(2, 60, 3600), 120);
        assert_eq!(backoff_secs(3, 60, 3600), 240);
        assert_eq!(backoff_secs(10, 60, 3600), 3600);
        assert_eq!(backoff_secs(1000, 60, 3600), 3600);
    }

    #[test]
    fn status_round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        // The directory is made when missing (a first order that failed
        // before anything else was written).
        let p = dir.path().join("tls/acme/s.json");
        assert_eq!(RenewalStatus::read(&p), RenewalStatus::default());
        let s = RenewalStatus {
            last_attempt: Some(5),
            last_success: None,
            last_error: Some("validation: connection refused".into()),
            failures: 2,
            retry_after: Some(125),
        };
        s.write(&p).unwrap();
        assert_eq!(RenewalStatus::read(&p), s);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
