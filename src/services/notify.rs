//! Delivery status notifications: builds the DSN a queue entry owes its
//! sender (RFC 3464, built by [`crate::outbound::dsn`]) and queues it —
//! durably, like any accepted message — from the null sender to the
//! original sender. Nothing is ever sent to the null sender.

use std::sync::Arc;

use super::Shared;
use crate::envelope::{Accepted, Client, Destination, Envelope, Notify, Recipient, Status};
use crate::outbound::dsn::{self, Action, DsnKind, DsnRecipient};
use crate::queue::SpoolError;
use crate::tables::Tables;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("reading the original message: {0}")]
    Original(SpoolError),
    #[error("queueing the report: {0}")]
    Store(SpoolError),
}

/// Where a message from us to `address` goes: the routing `mailc sendmail`
/// uses (mailboxes or forwards of a local address, else the remote address;
/// quotas do not stop a report). Empty when the address is local but
/// unknown or disabled, or invalid.
pub fn destinations_for(tables: &Tables, address: &str) -> Vec<Destination> {
    super::submit::route(tables, address).unwrap_or_default()
}

/// The report lines for the deliveries `owed`, one per recipient that asked
/// for (or did not refuse) this kind of report.
fn report_recipients(
    tables: &Tables,
    env: &Envelope,
    kind: DsnKind,
    owed: &[usize],
    now: u64,
) -> Vec<DsnRecipient> {
    let mut out = Vec::new();
    for &i in owed {
        let Some(d) = env.deliveries.get(i) else {
            continue;
        };
        let remote = matches!(d.destination, Destination::Remote { .. });
        let action = match (kind, &d.status) {
            (DsnKind::Failure, _) => Action::Failed,
            (DsnKind::Delay, _) => Action::Delayed,
            // The next hop took the NOTIFY request over: it reports.
            (DsnKind::Success, Status::Delivered { .. }) if remote && d.remote_dsn => continue,
            (DsnKind::Success, _) if remote => Action::Relayed,
            (DsnKind::Success, _) => Action::Delivered,
        };
        let default_status = match kind {
            DsnKind::Failure => "5.0.0",
            DsnKind::Delay => "4.0.0",
            DsnKind::Success => "2.0.0",
        };
        for r in env.recipients.iter().filter(|r| r.deliveries.contains(&i)) {
            if !dsn::notify_allows(&r.notify, kind) {
                continue;
            }
            out.push(DsnRecipient {
                original: r.orcpt.clone().or_else(|| {
                    (!r.address.eq_ignore_ascii_case(d.destination.address()))
                        .then(|| r.address.clone())
                }),
                final_recipient: d.destination.address().to_string(),
                action,
                status: d
                    .status_code
                    .clone()
                    .filter(|s| s.starts_with(&default_status[..1]) || kind == DsnKind::Failure)
                    .unwrap_or_else(|| default_status.to_string()),
                remote_mta: d
                    .remote_mta
                    .as_ref()
                    .map(|m| m.split(" [").next().unwrap_or(m).to_string()),
                diagnostic: match (&d.status, &d.last_error) {
                    (Status::Failed { reason, .. }, _) => Some(diagnostic(reason, remote)),
                    (_, Some(e)) if kind == DsnKind::Delay => Some(diagnostic(e, remote)),
                    _ => None,
                },
                last_attempt: now,
                will_retry_until: (kind == DsnKind::Delay)
                    .then(|| env.received_at.saturating_add(tables.outbound.expire_secs)),
            });
        }
    }
    out
}

/// `smtp; 550 5.1.1 ...` for a remote server's words, `x-mailc; ...` for
/// ours.
fn diagnostic(text: &str, remote: bool) -> String {
    let starts_with_code = text.len() > 3 && text.as_bytes()[..3].iter().all(u8::is_ascii_digit);
    if remote && starts_with_code {
        format!("smtp; {text}")
    } else {
        format!("x-mailc; {text}")
    }
}

/// Builds and queues the report. `Ok` also when nothing is owed (null
/// sender, NOTIFY=NEVER, the sender is a local address that no longer
/// exists): the caller marks the deliveries reported either way.
pub async fn send(
    shared: &Arc<Shared>,
    env: &Envelope,
    kind: DsnKind,
    owed: &[usize],
    now: u64,
) -> Result<(), NotifyError> {
    if !dsn::is_bounce_allowed(env) {
        return Ok(());
    }
    let snapshot = shared.snapshot();
    let tables = &snapshot.tables;
    let rcpts = report_recipients(tables, env, kind, owed, now);
    if rcpts.is_empty() {
        return Ok(());
    }
    let destinations = destinations_for(tables, &env.sender);
    if destinations.is_empty() {
        tracing::warn!(id = %env.id, sender = %env.sender, "the sender is a local address that does not exist: no DSN");
        return Ok(());
    }
    let original = shared
        .spool
        .read_message(&env.id)
        .map_err(NotifyError::Original)?;
    let mut message = dsn::build(kind, &tables.hostname, env, &rcpts, &original, now);
    match snapshot.outbound.signer.sign(&message, now) {
        Ok(sig) if !sig.is_empty() => {
            let mut signed = sig;
            signed.extend_from_slice(&message);
            message = signed;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot DKIM-sign a DSN; sent unsigned"),
    }
    let id = crate::queue::new_id();
    let mut report = Envelope {
        id: id.clone(),
        sender: String::new(),
        recipients: Vec::new(),
        deliveries: Vec::new(),
        ret: None,
        envid: None,
        body_8bit: !message.is_ascii(),
        smtputf8: !env.sender.is_ascii(),
        client: Client {
            ip: "127.0.0.1".into(),
            helo: tables.hostname.clone(),
            tls: None,
            auth: None,
            listener: "dsn".into(),
        },
        received_at: now,
        size: message.len() as u64,
        junk: false,
        arc_seals: Default::default(),
    };
    let deliveries = destinations
        .into_iter()
        .map(|d| report.add_destination(d, now))
        .collect();
    report.recipients.push(Recipient {
        address: env.sender.clone(),
        orcpt: None,
        notify: Notify {
            never: true,
            ..Notify::default()
        },
        deliveries,
    });
    let entry = shared
        .spool
        .store(Accepted {
            envelope: report,
            message,
        })
        .await
        .map_err(NotifyError::Store)?;
    tracing::info!(id = %env.id, report = %id, kind = ?kind, to = %env.sender, "DSN queued");
    let _ = shared.delivery.send(entry);
    Ok(())
}
