//! Login, the same for every protocol: the lockout after repeated failures
//! (`Shared::auth_limiter`), the password check off the async runtime
//! (hashing is slow on purpose), the pause after a failure, and the log
//! line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Shared, Snapshot, unix_now};
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
    let tables = Arc::clone(&snapshot.tables);
    let secrets = Arc::clone(&snapshot.secrets);
    let user = credentials.username.clone();
    let result = tokio::task::spawn_blocking(move || {
        crate::auth::verify_login(
            &tables,
            &secrets,
            &credentials.username,
            &credentials.password,
        )
    })
    .await;
    match result {
        Ok(Ok(mailbox)) => {
            shared.auth_limiter.record_success(&user);
            tracing::info!(%client, user = %mailbox, proto, "login");
            AuthOutcome::Ok(mailbox)
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
        Err(e) => {
            tracing::error!(user = %user, error = %e, "password check did not finish");
            AuthOutcome::TempFail
        }
    }
}
