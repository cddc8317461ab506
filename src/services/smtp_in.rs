//! The SMTP/LMTP service: runs a [`Session`] on the connection driver
//! ([`super::conn`]) and performs its own effect, durable enqueueing before
//! any 250: the message goes to the spool, the spool's answer back to the
//! session, the stored entry on to delivery.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpStream;

use super::conn::{self, Conn, Extras};
use super::{Shared, Snapshot, unix_now};
use super::{dnsbl, inbound};
use crate::envelope::Accepted;
use crate::inbound::Decision;
use crate::inbound::dnsbl::Listing;
use crate::inbound::greylist::Verdict;
use crate::net::limits::Slot;
use crate::session::protocol::Step;
use crate::session::smtp::{ConnInfo, Driven, Env, Role, Session};

struct LiveEnv {
    shared: Arc<Shared>,
}

impl Env for LiveEnv {
    fn now(&self) -> u64 {
        unix_now()
    }

    fn mailbox_usage(&self, mailbox: &str) -> u64 {
        // Loaded at startup for every mailbox with a quota, and kept current
        // by delivery; never a disk scan on this path.
        self.shared.usage.cached(mailbox).unwrap_or(0)
    }

    fn new_id(&self) -> String {
        crate::queue::new_id()
    }

    fn srs_reverse(&self, address: &str) -> Option<String> {
        self.shared.srs.reverse(address, unix_now()).ok()
    }

    fn greylist(
        &self,
        policy: &crate::tables::GreylistTable,
        client: IpAddr,
        sender: &str,
        recipient: &str,
    ) -> Verdict {
        let verdict = self
            .shared
            .greylist
            .check(policy, client, sender, recipient, unix_now());
        match verdict {
            Verdict::Greylisted { retry_in } => {
                tracing::info!(%client, from = %sender, to = %recipient, retry_in, "greylisted");
            }
            Verdict::Pass | Verdict::Whitelisted => {
                tracing::debug!(%client, from = %sender, to = %recipient, ?verdict, "greylisting passed");
            }
        }
        verdict
    }
}

/// Stores accepted messages in the spool and hands them to delivery.
struct Spooler {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    peer: SocketAddr,
}

impl Extras<Driven<LiveEnv>> for Spooler {
    async fn perform(
        &mut self,
        session: &mut Driven<LiveEnv>,
        mut accepted: Box<Accepted>,
    ) -> Step<Box<Accepted>> {
        if session.session.checks_inbound() {
            match self.authenticate(&mut accepted).await {
                Ok(()) => {}
                Err(reply) => return session.refused(reply),
            }
            super::outbound::seal_forwards(&self.snapshot, &mut accepted);
        }
        if session.session.scans() {
            match self.scan(&mut accepted).await {
                Ok(()) => {}
                Err(reply) => return session.refused(reply),
            }
            if accepted.envelope.recipients.is_empty() {
                // Every copy discarded (`virus "discard"`): taken, and
                // nothing to queue.
                return session.enqueued(Ok::<_, std::io::Error>(accepted.envelope.id.clone()));
            }
        }
        if let Some(reply) = self.sieve_rejection(&accepted).await {
            return session.refused(reply);
        }
        super::outbound::sign_submission(&self.snapshot, &mut accepted);
        let result = match self.shared.spool.store(*accepted).await {
            Ok(entry) => {
                tracing::info!(
                    id = %entry.envelope.id,
                    from = %entry.envelope.sender,
                    rcpts = entry.envelope.recipients.len(),
                    size = entry.envelope.size,
                    client = %self.peer.ip(),
                    "queued"
                );
                let id = entry.envelope.id.clone();
                let _ = self.shared.delivery.send(entry);
                Ok(id)
            }
            Err(e) => {
                tracing::error!(error = %e, "message not accepted");
                Err(e)
            }
        };
        session.enqueued(result)
    }
}

impl Spooler {
    /// A message for one local mailbox alone whose Sieve scripts can
    /// `reject`: run them now, so a rejection is a 550 at the end of DATA
    /// (RFC 5429 §2.1) and not a bounce later. Mail for several recipients
    /// is filtered at delivery (a rejection becomes a DSN).
    async fn sieve_rejection(
        &self,
        accepted: &Accepted,
    ) -> Option<crate::proto::smtp::reply::Reply> {
        let env = &accepted.envelope;
        let [d] = env.deliveries.as_slice() else {
            return None;
        };
        let crate::envelope::Destination::Mailbox { address } = &d.destination else {
            return None;
        };
        let tables = self.snapshot.tables.clone();
        let m = tables.mailboxes.get(address)?.clone();
        let filters = self.snapshot.filters.clone();
        if !filters.may_reject(&m) {
            return None;
        }
        let message = accepted.message.clone();
        let sender = env.sender.clone();
        let rcpt = env
            .recipients
            .first()
            .map_or_else(|| address.clone(), |r| r.address.clone());
        let reason = tokio::task::spawn_blocking(move || {
            filters.rejection(&tables, &m, &message, &sender, &rcpt)
        })
        .await
        .ok()??;
        tracing::info!(from = %env.sender, to = %address, %reason, "rejected by Sieve at SMTP time");
        Some(crate::proto::smtp::reply::Reply::new(
            550,
            crate::proto::smtp::reply::Enhanced(5, 7, 1),
            format!("rejected by the recipient's filter: {reason}"),
        ))
    }

    /// The content scanners' verdict (`scan { }`), after the inbound
    /// checks: their fields on top (incoming copies removed first), Junk
    /// marked, or the reply that refuses the message.
    async fn scan(&self, accepted: &mut Accepted) -> Result<(), crate::proto::smtp::reply::Reply> {
        let tables = &self.snapshot.tables;
        let Some(table) = &tables.scan else {
            return Ok(());
        };
        let env = &accepted.envelope;
        let rcpts: Vec<String> = env.recipients.iter().map(|r| r.address.clone()).collect();
        let scan_env = crate::proto::scan::rspamd::Envelope {
            from: &env.sender,
            rcpts: &rcpts,
            ip: Some(self.peer.ip()),
            helo: &env.client.helo,
            user: env.client.auth.as_deref(),
            queue_id: Some(&env.id),
            mta: &tables.hostname,
        };
        let stripped = crate::inbound::scan::strip_forged(&accepted.message).into_owned();
        let started = std::time::Instant::now();
        let results = super::scan::scan_message(table, &scan_env, &stripped).await;
        use crate::inbound::scan::Fate;
        let verdict = crate::inbound::scan::decide(table, &results, &tables.hostname);
        // Each recipient under its domain's policy (or the server's).
        let fates: Vec<Fate> = env
            .recipients
            .iter()
            .map(|r| {
                let policy = crate::inbound::scan::policy_for(tables, table, &r.address);
                if std::ptr::eq(policy, &table.policy) {
                    verdict.fate.clone()
                } else {
                    crate::inbound::scan::fate(table, policy, &results)
                }
            })
            .collect();
        let combined = crate::inbound::scan::combine(&fates);
        tracing::info!(
            client = %self.peer.ip(),
            from = %env.sender,
            ms = started.elapsed().as_millis() as u64,
            scanners = %verdict.summary,
            verdict = %match &combined {
                Ok(f) => summarize(f),
                Err(r) => String::from_utf8_lossy(&r.to_bytes()).trim_end().to_string(),
            },
            "content scan"
        );
        let fates = combined?;
        accepted.message = verdict.message(&stripped);
        drop(stripped);
        accepted.envelope.size = accepted.message.len() as u64;
        let discarded = crate::inbound::scan::apply(&mut accepted.envelope, &fates);
        if !discarded.is_empty() {
            tracing::warn!(
                id = %accepted.envelope.id,
                from = %accepted.envelope.sender,
                rcpts = %discarded.join(" "),
                scanners = %verdict.summary,
                "discarded by the content scan policy"
            );
        }
        Ok(())
    }

    /// The inbound checks of a message from another server: our
    /// `Authentication-Results` on top (forged ones of our authserv-id
    /// removed first), Junk marked, or the reply that refuses it.
    async fn authenticate(
        &self,
        accepted: &mut Accepted,
    ) -> Result<(), crate::proto::smtp::reply::Reply> {
        let tables = &self.snapshot.tables;
        let hostname = tables.hostname.as_str();
        let env = &accepted.envelope;
        let arrival = inbound::Arrival {
            ip: self.peer.ip(),
            helo: &env.client.helo,
            sender: &env.sender,
            hostname,
            own_domains: &tables.domains,
        };
        let mut checked = inbound::check(
            &self.snapshot.outbound.resolver,
            &self.shared.inbound_caches,
            &tables.inbound,
            arrival,
            &accepted.message,
        )
        .await;
        let verdict = match &checked.decision {
            Decision::Deliver { junk: false, .. } => "deliver".to_string(),
            Decision::Deliver { junk: true, reason } => {
                format!("junk ({})", reason.as_deref().unwrap_or(""))
            }
            Decision::Reject(reply) | Decision::Defer(reply) => {
                String::from_utf8_lossy(&reply.to_bytes())
                    .trim_end()
                    .to_string()
            }
        };
        tracing::info!(
            client = %self.peer.ip(),
            from = %env.sender,
            results = %checked.header.trim_end().replace("\r\n\t", " "),
            verdict,
            "inbound checks"
        );
        if let Some(row) = checked.report.take()
            && tables.inbound.dmarc_reports.is_some()
        {
            self.shared.dmarc_rows.record(row);
        }
        match checked.decision {
            Decision::Reject(reply) | Decision::Defer(reply) => Err(reply),
            Decision::Deliver { junk, .. } => {
                let stripped = crate::inbound::strip_forged(&accepted.message, hostname);
                let mut message = Vec::with_capacity(checked.header.len() + stripped.len());
                message.extend_from_slice(checked.header.as_bytes());
                message.extend_from_slice(&stripped);
                drop(stripped);
                accepted.message = message;
                accepted.envelope.size = accepted.message.len() as u64;
                accepted.envelope.junk = junk;
                Ok(())
            }
        }
    }
}

/// The recipients' fates for the log: `deliver` when all are delivered to
/// their inboxes, else each distinct fate with its count.
fn summarize(fates: &[crate::inbound::scan::RcptFate]) -> String {
    use crate::inbound::scan::RcptFate;
    let mut parts: Vec<String> = Vec::new();
    for f in fates {
        let p = match f {
            RcptFate::Deliver => "deliver".to_string(),
            RcptFate::Junk(why) => format!("junk ({why})"),
            RcptFate::Discard(why) => format!("discard ({why})"),
        };
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
    parts.join(", ")
}

/// The client's DNS blocklist listing, for a client of an MX listener
/// outside `trusted-networks` when `inbound { dnsbl }` is on; looked up
/// before the greeting, within the configured bound.
async fn screen_client(conn: &Conn) -> Option<Listing> {
    let tables = &conn.snapshot.tables;
    let table = tables.inbound.dnsbl.as_ref()?;
    let ip = conn.peer.ip();
    if Role::of(conn.listener.kind) != Role::Mx
        || tables.trusted_networks.iter().any(|n| n.contains(ip))
    {
        return None;
    }
    let listing = dnsbl::lookup(
        &conn.snapshot.outbound.resolver,
        table,
        ip,
        &conn.shared.dnsbl_warnings,
    )
    .await?;
    let zones: Vec<String> = listing
        .zones
        .iter()
        .map(|(z, code)| format!("{z}={code}"))
        .collect();
    tracing::info!(client = %ip, zones = %zones.join(" "), score = listing.score, "client on DNS blocklists; mail refused at RCPT (postmaster excepted)");
    Some(listing)
}

/// Handles one accepted connection until it closes.
pub async fn handle(conn: Conn, tcp: TcpStream, slot: Slot) {
    let listing = screen_client(&conn).await;
    serve(conn, tcp, slot, listing).await;
}

fn serve(
    conn: Conn,
    tcp: TcpStream,
    slot: Slot,
    listing: Option<Listing>,
) -> impl Future<Output = ()> + Send {
    conn::run(conn, tcp, slot, move |conn, tls| {
        let info = ConnInfo {
            peer: conn.peer,
            listener: conn.listener,
            tls,
        };
        let env = LiveEnv {
            shared: conn.shared.clone(),
        };
        let session = Session::new(conn.snapshot.tables.clone(), info, env).with_listing(listing);
        (
            Driven::new(session),
            Spooler {
                shared: conn.shared.clone(),
                snapshot: conn.snapshot.clone(),
                peer: conn.peer,
            },
        )
    })
}
