//! With `dane #true`, the server looks now and then whether the next key's
//! TLSA record is live at `_25._tcp.<hostname>` (through the configured
//! resolver) and records the first sighting in `<state>/tls/dane-next.seen`
//! ([`crate::dns::rollover::observe`]), so that the wait before
//! `mailc tls rollover` counts from when the record appeared even if
//! nobody ran `mailc plan` meanwhile. A failed lookup changes nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::dns::{dane, live, rollover};
use crate::services::Shared;

/// Between looks: a quarter of the TTL mailc publishes its records with,
/// so the recorded first sighting is late by at most that.
const EVERY: Duration = Duration::from_secs(crate::dns::TTL as u64 / 4);

pub fn start(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(shared.clone()))
}

async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        look(&shared).await;
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One look (nothing without `dane #true` or a next key).
async fn look(shared: &Shared) {
    let tables = shared.snapshot().tables.clone();
    let Some(p) = dane::key_paths(&tables) else {
        return;
    };
    let Ok(next) = dane::key_spki_sha256(&p.next_key) else {
        return;
    };
    let found = async {
        let r = live::resolver(tables.resolvers.first().copied())?;
        live::live_tlsa(&r, &p.host).await
    }
    .await;
    match found {
        Ok(records) => {
            let now = crate::services::unix_now();
            match rollover::observe(&p, &next, records.contains(&next), records.ttl, now) {
                Ok(Some(seen)) if seen.first_seen == now => {
                    tracing::info!(host = %p.host, "DANE: the next key's TLSA record is published; `mailc tls rollover` can switch to it after the TTL");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "DANE: cannot record the next key's sighting"),
            }
        }
        Err(e) => {
            tracing::debug!(host = %p.host, error = %e, "DANE: TLSA lookup of our own name failed")
        }
    }
}
