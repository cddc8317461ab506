//! Login, the same for every protocol: the lockout after repeated failures
//! (`Shared::auth_limiter`), the verified-credentials cache
//! (`Snapshot::login_cache`), the password check on the bounded verifier
//! threads (`Shared::verifier`: hashing is slow on purpose), the pause
//! after a failure, and the log line.
//!
//! Order: a locked-out client or user is refused before the cache is
//! consulted, so a remembered password does not bypass the lockout; only
//! successes are cached, so every failure runs the full check, counts
//! toward the lockout and waits out [`FAILURE_DELAY`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::verifier::NotChecked;
use super::{Shared, Snapshot, unix_now};
use crate::auth::cache::Hit;
use crate::proto::sasl::Credentials;
use crate::session::AuthOutcome;

/// Pause after a failed login, to slow down password guessing.
pub const FAILURE_DELAY: Duration = Duration::from_millis(500);

/// Checks credentials for a session of protocol `proto` and returns what
/// the session is told. A failure returns only after [`FAILURE_DELAY`].
pub async fn login(
    shared: &Shared,
    snapshot: &Snapshot,
    peer: SocketAddr,
    proto: &'static str,
    credentials: Credentials,
) -> AuthOutcome {
    let outcome = check(shared, snapshot, peer, proto, credentials).await;
    if outcome == AuthOutcome::Failed {
        tokio::time::sleep(FAILURE_DELAY).await;
    }
    outcome
}

async fn check(
    shared: &Shared,
    snapshot: &Snapshot,
    peer: SocketAddr,
    proto: &'static str,
    credentials: Credentials,
) -> AuthOutcome {
    let limits = &snapshot.tables.limits;
    let client = peer.ip();
    if shared.auth_limiter.is_locked(
        client,
        &credentials.username,
        limits.auth_failures,
        limits.auth_lockout_secs,
        unix_now(),
    ) {
        tracing::warn!(%client, user = %credentials.username, proto, "login refused: too many failures");
        return AuthOutcome::Locked;
    }
    let cache = snapshot.login_cache.as_ref();
    let key = cache.map(|c| c.key(&credentials.username, &credentials.password));
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Some(hit) = cache.get(key, Instant::now())
    {
        // One stat of a small local file when the hash lives in one: cheap
        // next to the hash it saves, and it makes a rewritten password file
        // take effect at once.
        if hit.source.unchanged() {
            shared.auth_limiter.record_success(&credentials.username);
            tracing::info!(%client, user = %hit.mailbox, proto, cached = true, "login");
            return AuthOutcome::Ok(hit.mailbox);
        }
        cache.remove(key);
    }
    let user = credentials.username.clone();
    let result = shared
        .verifier
        .verify(
            Arc::clone(&snapshot.tables),
            Arc::clone(&snapshot.secrets),
            credentials,
        )
        .await;
    match result {
        Ok(Ok(verified)) => {
            shared.auth_limiter.record_success(&user);
            tracing::info!(%client, user = %verified.mailbox, proto, cached = false, "login");
            if let (Some(cache), Some(key)) = (cache, key) {
                cache.insert(
                    key,
                    Hit {
                        mailbox: verified.mailbox.clone(),
                        source: verified.source,
                    },
                    Instant::now(),
                );
            }
            AuthOutcome::Ok(verified.mailbox)
        }
        Ok(Err(crate::auth::LoginError::Invalid)) => {
            shared
                .auth_limiter
                .record_failure(client, &user, limits.auth_lockout_secs, unix_now());
            tracing::warn!(%client, user = %user, proto, "login failed");
            AuthOutcome::Failed
        }
        Ok(Err(crate::auth::LoginError::Unavailable(e))) => {
            tracing::error!(user = %user, error = %e, "password store unavailable");
            AuthOutcome::TempFail
        }
        Err(NotChecked::Busy) => {
            tracing::warn!(%client, user = %user, proto, "login deferred: too many password checks waiting");
            AuthOutcome::TempFail
        }
        Err(NotChecked::Lost) => {
            tracing::error!(user = %user, "password check did not finish");
            AuthOutcome::TempFail
        }
    }
}
