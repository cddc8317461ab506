//! The outbound queue manager: takes remote deliveries out of the queue and
//! hands them to SMTP connections, one destination at a time.
//!
//! A *destination* is what a connection can serve: the MX hosts of one
//! recipient domain, or one relay host of a route. Every due remote delivery
//! becomes part of a *job* (one message, the recipients it has for that
//! destination); jobs wait in their destination's queue, and workers —
//! at most `max-connections` in all and `max-connections-per-destination`
//! for one destination — each open a connection and send job after job over
//! it (up to `max-messages-per-connection`).
//!
//! Results are written per delivery with [`Queue::modify`], so local
//! delivery and several workers never overwrite each other. The manager
//! task alone *settles* entries: it queues the DSNs a message owes
//! (failures, delay warnings, successes asked for with NOTIFY), durably,
//! before the original leaves the queue with [`Queue::finish`]. Because only
//! one task settles, a message whose recipients all fail produces one DSN.
//!
//! [`Queue::modify`]: crate::queue::Queue::modify
//! [`Queue::finish`]: crate::queue::Queue::finish

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Shared, Snapshot, unix_now};
use crate::dns::resolver::{self, Hop, MxPolicy, RouteError};
use crate::envelope::{Delivery, Destination, Envelope, Status};
use crate::outbound::tls_policy::{self, DaneLookup, HostPolicy};
use crate::outbound::tlsrpt::{FailureType, Outcome, PolicyType, TlsAttempt};
use crate::queue::Queue;
use crate::services::smtp_out::{
    CertCheck, ClientSettings, ClientTimeouts, ConnError, Connection, OutMessage, OutRcpt,
    RcptOutcome, ReplyInfo, TlsPolicy,
};
use crate::tables::{ListenerKind, OutboundTls, RouteTable, Tables};

/// How often the queue is scanned for retries that came due, delay
/// warnings and entries left to settle.
const SWEEP: Duration = Duration::from_secs(5);
/// Most recipients in one SMTP transaction (RFC 5321 §4.5.3.1.8 asks
/// servers to take at least 100).
const MAX_RCPTS_PER_TRANSACTION: usize = 100;

/// What the manager is told.
#[derive(Debug)]
pub enum Event {
    /// A new entry with remote deliveries is queued.
    Queued(String),
    /// An entry changed in a way that may owe a DSN or let it leave the queue.
    Settle(String),
    /// Deliveries were made due now (`mailc queue flush`): look at once.
    Flush,
    /// A worker of this destination ended.
    WorkerDone(DestKey),
}

/// A destination: what one connection can serve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DestKey {
    /// The route pattern that matched, `""` for plain MX delivery.
    route: String,
    /// `mx example.org` or `via smtp.example.net:587`.
    target: String,
    /// The envelope sender is rewritten with SRS for these (forwarded mail).
    forward_domain: Option<String>,
}

/// One message's recipients for one destination.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    deliveries: Vec<usize>,
}

#[derive(Default)]
struct DestQueue {
    jobs: VecDeque<Job>,
    active: u32,
}

/// The manager's shared view: destination queues and what is in flight.
#[derive(Default)]
struct Board {
    queues: HashMap<DestKey, DestQueue>,
    /// `(queue id, delivery index)` handed to a worker and not yet recorded.
    in_flight: HashSet<(String, usize)>,
    active: u32,
}

type SharedBoard = Arc<Mutex<Board>>;

/// Runs until the server shuts down.
pub async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<Event>) {
    let board: SharedBoard = Arc::new(Mutex::new(Board::default()));
    let mut shutdown = shared.shutdown.clone();
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                None => return,
                Some(Event::Queued(id)) => {
                    if let Some(env) = shared.spool.get(&id) {
                        plan(&shared.snapshot().tables, &board, &env, unix_now());
                    }
                    dispatch(&shared, &board);
                }
                Some(Event::Settle(id)) => settle(&shared, &id).await,
                Some(Event::Flush) => scan(&shared, &board).await,
                Some(Event::WorkerDone(key)) => {
                    if let Ok(mut b) = board.lock() {
                        b.active = b.active.saturating_sub(1);
                        if let Some(q) = b.queues.get_mut(&key) {
                            q.active = q.active.saturating_sub(1);
                            if q.jobs.is_empty() && q.active == 0 {
                                b.queues.remove(&key);
                            }
                        }
                    }
                    dispatch(&shared, &board);
                }
            },
            _ = sweep.tick() => scan(&shared, &board).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// The periodic pass: due retries, delay warnings, entries to settle.
async fn scan(shared: &Arc<Shared>, board: &SharedBoard) {
    let now = unix_now();
    let snapshot = shared.snapshot();
    for env in shared.spool.list() {
        if env.is_done() || owes_failure_dsn(&env) {
            settle(shared, &env.id).await;
            continue;
        }
        delay_warnings(shared, &env, now).await;
        plan(&snapshot.tables, board, &env, now);
    }
    dispatch(shared, board);
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
}

/// Whether delivery `di` of the envelope is a forward: it came from a local
/// alias expanding to a remote address (not a relay of the address the
/// client gave). Returns the local domain of that alias.
fn forward_domain(tables: &Tables, env: &Envelope, di: usize) -> Option<String> {
    let target = env
        .deliveries
        .get(di)?
        .destination
        .address()
        .to_ascii_lowercase();
    env.recipients
        .iter()
        .filter(|r| r.deliveries.contains(&di))
        .find_map(|r| {
            let d = domain_of(&r.address);
            (r.address.to_ascii_lowercase() != target && tables.domain(&d).is_some()).then_some(d)
        })
}

fn dest_key(tables: &Tables, env: &Envelope, di: usize) -> DestKey {
    let domain = domain_of(env.deliveries[di].destination.address());
    let route = tables.outbound.route(&domain);
    let target = match route.and_then(|r| r.via.as_ref()) {
        Some((host, port)) => format!("via {host}:{port}"),
        None => format!("mx {domain}"),
    };
    DestKey {
        route: route.map_or(String::new(), |r| r.domain.clone()),
        target,
        forward_domain: if env.sender.is_empty() {
            None
        } else {
            forward_domain(tables, env, di)
        },
    }
}

/// Puts the due remote deliveries of an entry into their destination queues.
fn plan(tables: &Tables, board: &SharedBoard, env: &Envelope, now: u64) {
    let Ok(mut b) = board.lock() else { return };
    let mut jobs: HashMap<DestKey, Vec<usize>> = HashMap::new();
    for (i, d) in env.deliveries.iter().enumerate() {
        if !matches!(d.destination, Destination::Remote { .. })
            || !matches!(d.status, Status::Pending)
            || d.next_attempt > now
            || b.in_flight.contains(&(env.id.clone(), i))
        {
            continue;
        }
        jobs.entry(dest_key(tables, env, i)).or_default().push(i);
    }
    for (key, deliveries) in jobs {
        for chunk in deliveries.chunks(MAX_RCPTS_PER_TRANSACTION) {
            for i in chunk {
                b.in_flight.insert((env.id.clone(), *i));
            }
            b.queues
                .entry(key.clone())
                .or_default()
                .jobs
                .push_back(Job {
                    id: env.id.clone(),
                    deliveries: chunk.to_vec(),
                });
        }
    }
}

/// Starts workers where jobs wait and the limits allow.
fn dispatch(shared: &Arc<Shared>, board: &SharedBoard) {
    let snapshot = shared.snapshot();
    let limits = &snapshot.tables.outbound;
    let mut start = Vec::new();
    if let Ok(mut b) = board.lock() {
        let mut active = b.active;
        for (key, q) in b.queues.iter_mut() {
            // One connection per job waiting, up to the limits.
            while active < limits.max_connections
                && q.active < limits.max_connections_per_destination
                && q.jobs.len() > q.active as usize
            {
                q.active += 1;
                active += 1;
                start.push(key.clone());
            }
        }
        b.active = active;
    }
    for key in start {
        let shared = shared.clone();
        let board = board.clone();
        tokio::spawn(async move {
            let snapshot = shared.snapshot();
            worker(&shared, &snapshot, &board, &key).await;
            let _ = shared.outbound.send(Event::WorkerDone(key));
        });
    }
}

fn next_job(board: &SharedBoard, key: &DestKey) -> Option<Job> {
    board.lock().ok()?.queues.get_mut(key)?.jobs.pop_front()
}

fn release(board: &SharedBoard, job: &Job) {
    if let Ok(mut b) = board.lock() {
        for i in &job.deliveries {
            b.in_flight.remove(&(job.id.clone(), *i));
        }
    }
}

/// The result of one delivery in one attempt.
enum Result3 {
    Delivered(ReplyInfo),
    Deferred(String, Option<String>),
    Failed(String, String),
}

/// What the connection was, for the records.
#[derive(Clone, Default)]
struct Hopinfo {
    remote_mta: Option<String>,
    tls: Option<String>,
    remote_dsn: bool,
}

/// One worker: a connection to the destination, jobs sent over it until
/// none is left or the per-connection limit is reached.
async fn worker(
    shared: &Arc<Shared>,
    snapshot: &Arc<Snapshot>,
    board: &SharedBoard,
    key: &DestKey,
) {
    let Some(first) = next_job(board, key) else {
        return;
    };
    let tables = &snapshot.tables;
    let Some(env) = shared.spool.get(&first.id) else {
        release(board, &first);
        return;
    };
    let domain = domain_of(env.deliveries[first.deliveries[0]].destination.address());
    let route = tables.outbound.route(&domain).cloned();
    let rt = &snapshot.outbound;

    let hops = match route_hops(tables, rt, route.as_ref(), &domain).await {
        Ok(h) => h,
        Err(e) => {
            let r = match e {
                RouteError::Temporary(t) => {
                    Result3::Deferred(format!("DNS: {t}"), Some("4.4.3".into()))
                }
                RouteError::Permanent { status, text } => Result3::Failed(text, status.to_string()),
            };
            settle_destination(shared, tables, board, key, first, &r);
            return;
        }
    };
    // A route through a relay of its own is outside DANE and MTA-STS: its
    // `tls` mode decides. MX delivery looks up the domain's policies.
    let via_relay = route.as_ref().is_some_and(|r| r.via.is_some());
    let domain_tls = if via_relay {
        None
    } else {
        Some(DomainTls::lookup(rt, &domain).await)
    };
    let conn = match connect(
        tables,
        rt,
        route.as_ref(),
        &hops,
        &domain,
        domain_tls.as_ref(),
    )
    .await
    {
        Ok(c) => c,
        Err(r) => {
            settle_destination(shared, tables, board, key, first, &r);
            return;
        }
    };
    send_jobs(shared, tables, board, key, first, conn).await;
}

/// Every job of this destination waiting now shares the fate of the first:
/// the route or every connection failed.
fn settle_destination(
    shared: &Arc<Shared>,
    tables: &Tables,
    board: &SharedBoard,
    key: &DestKey,
    first: Job,
    r: &Result3,
) {
    let mut job = Some(first);
    while let Some(j) = job.take().or_else(|| next_job(board, key)) {
        record_all(shared, tables, &j, r, &Hopinfo::default());
        release(board, &j);
    }
}

/// A connection to the first hop address that accepts one, in order; else
/// what the jobs become: failed if every refusal was permanent, deferred
/// otherwise.
async fn connect(
    tables: &Tables,
    rt: &OutboundRuntime,
    route: Option<&RouteTable>,
    hops: &[Hop],
    domain: &str,
    domain_tls: Option<&DomainTls>,
) -> Result<Connection, Result3> {
    let mut last_error = String::from("no address to connect to");
    let mut all_permanent = true;
    let mut permanent: Option<ReplyInfo> = None;
    'hops: for hop in hops {
        let mut settings = match client_settings(tables, rt, route, &hop.host) {
            Ok(s) => s,
            Err(e) => {
                last_error = e;
                all_permanent = false;
                break 'hops;
            }
        };
        let (host_policy, dane_names) = match domain_tls {
            Some(d) => d.for_host(rt, hop).await,
            None => (HostPolicy::None, Vec::new()),
        };
        // One TLS-RPT result for this host (`local`, `peer`: the addresses
        // of a connection, when one was made).
        let attempt =
            |local: Option<std::net::SocketAddr>, peer: Option<std::net::IpAddr>, outcome| {
                if let Some(d) = domain_tls {
                    record_tls(
                        rt,
                        d.attempt(
                            domain,
                            &host_policy,
                            &hop.host,
                            local.map(|a| a.ip()),
                            peer,
                            outcome,
                        ),
                    );
                }
            };
        match &host_policy {
            HostPolicy::Skip { kind, reason, .. } => {
                tracing::info!(host = %hop.host, %reason, "outbound TLS policy: host skipped");
                attempt(
                    None,
                    None,
                    Outcome::Failure {
                        kind: *kind,
                        reason: Some(reason.clone()),
                    },
                );
                last_error = reason.clone();
                all_permanent = false;
                continue 'hops;
            }
            HostPolicy::Dane(records) => {
                settings.tls = TlsPolicy::RequireVerified;
                settings.implicit_tls = false;
                settings.cert_check = CertCheck::Dane {
                    records: Arc::new(records.clone()),
                    names: dane_names.clone(),
                };
            }
            HostPolicy::DaneEncryptOnly(_) => {
                // At least encryption; a route asking for more keeps it.
                if settings.tls == TlsPolicy::Opportunistic {
                    settings.tls = TlsPolicy::Require;
                }
                settings.implicit_tls = false;
            }
            HostPolicy::StsEnforce => {
                settings.tls = TlsPolicy::RequireVerified;
                settings.implicit_tls = false;
            }
            HostPolicy::StsTesting | HostPolicy::None => {}
        }
        for addr in &hop.addrs {
            match Connection::open_reporting(*addr, &settings).await {
                Ok(c) => {
                    let outcome = match (c.tls(), &host_policy) {
                        (None, _) => Outcome::Failure {
                            kind: FailureType::StarttlsNotSupported,
                            reason: Some("the server does not offer STARTTLS".into()),
                        },
                        // Encrypt-only DANE asks for no certificate check.
                        // Without a policy the mail went (opportunistic
                        // TLS), but the domain's operator still learns
                        // why the certificate did not verify.
                        (Some(_), HostPolicy::DaneEncryptOnly(_)) => Outcome::Success,
                        (Some(t), _) => match &t.failure {
                            None => Outcome::Success,
                            Some((kind, why)) => Outcome::Failure {
                                kind: *kind,
                                reason: Some(why.clone()),
                            },
                        },
                    };
                    attempt(c.local_addr(), Some(addr.ip()), outcome);
                    return Ok(c);
                }
                Err((e, tls_failure, local)) => {
                    if let Some((kind, why)) = tls_failure {
                        attempt(
                            local,
                            Some(addr.ip()),
                            Outcome::Failure {
                                kind,
                                reason: Some(why),
                            },
                        );
                    }
                    match e {
                        ConnError::Temporary(t) => {
                            tracing::debug!(host = %hop.host, %addr, error = %t, "outbound connection failed");
                            last_error = format!("{} [{}]: {t}", hop.host, addr.ip());
                            all_permanent = false;
                        }
                        ConnError::Permanent(info) => {
                            last_error = format!(
                                "{} [{}]: {} {}",
                                hop.host,
                                addr.ip(),
                                info.code,
                                info.text
                            );
                            permanent = Some(info);
                        }
                    }
                }
            }
        }
    }
    Err(match permanent {
        Some(info) if all_permanent => Result3::Failed(last_error, info.enhanced.to_string()),
        _ => Result3::Deferred(last_error, Some("4.4.1".into())),
    })
}

/// What the DSNs and `mailc queue show` say about the connection.
fn hop_info(conn: &Connection) -> Hopinfo {
    Hopinfo {
        remote_mta: Some(format!("{} [{}]", conn.peer_name(), conn.peer_addr().ip())),
        tls: Some(match conn.tls() {
            Some(t) if t.verified => format!("{} {}, verified", t.version, t.cipher),
            Some(t) => format!(
                "{} {}, not verified ({})",
                t.version,
                t.cipher,
                t.verify_error.as_deref().unwrap_or("unknown")
            ),
            None => "none".into(),
        }),
        remote_dsn: conn.capabilities().dsn,
    }
}

/// Sends the first job and then further jobs of the destination over the
/// same connection, up to the per-connection limit.
async fn send_jobs(
    shared: &Arc<Shared>,
    tables: &Tables,
    board: &SharedBoard,
    key: &DestKey,
    first: Job,
    mut conn: Connection,
) {
    let info = hop_info(&conn);
    let mut sent = 0u32;
    let mut job = Some(first);
    while let Some(j) = job.take().or_else(|| {
        if sent < tables.outbound.max_messages_per_connection && conn.is_usable() {
            next_job(board, key)
        } else {
            None
        }
    }) {
        if let Some(results) = send_one(shared, tables, key, &mut conn, &j).await {
            sent += 1;
            record(shared, tables, &j.id, results, &info);
        }
        release(board, &j);
    }
    conn.quit().await;
}

/// One message to its recipients of this job: the result of each delivery,
/// or `None` when the entry is gone or unreadable (nothing was sent).
async fn send_one(
    shared: &Arc<Shared>,
    tables: &Tables,
    key: &DestKey,
    conn: &mut Connection,
    j: &Job,
) -> Option<Vec<(usize, Result3)>> {
    let env = shared.spool.get(&j.id)?;
    let mut body = match shared.spool.read_message(&j.id) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(id = %j.id, error = %e, "cannot read queued message");
            return None;
        }
    };
    // A forwarded copy carries the ARC set sealed at reception.
    let forwarder = key.forward_domain.clone().or_else(|| {
        j.deliveries
            .first()
            .and_then(|di| forward_domain(tables, &env, *di))
    });
    if let Some(seal) = forwarder.and_then(|d| env.arc_seals.get(&d)) {
        let mut sealed = Vec::with_capacity(seal.len() + body.len());
        sealed.extend_from_slice(seal.as_bytes());
        sealed.extend_from_slice(&body);
        body = sealed;
    }
    let rcpts: Vec<OutRcpt> = j.deliveries.iter().map(|i| out_rcpt(&env, *i)).collect();
    // Forwarded mail goes out with an SRS sender, so that SPF passes.
    let sender = match (&key.forward_domain, env.sender.is_empty()) {
        (Some(d), false) => shared.srs.forward(&env.sender, d, unix_now()),
        _ => env.sender.clone(),
    };
    let msg = OutMessage {
        sender: &sender,
        recipients: &rcpts,
        body: &body,
        body_8bit: env.body_8bit,
        smtputf8: env.smtputf8,
        ret: env.ret,
        envid: env.envid.as_deref(),
    };
    Some(match conn.send(&msg).await {
        Ok(outcomes) => j
            .deliveries
            .iter()
            .zip(outcomes)
            .map(|(i, o)| (*i, outcome(o)))
            .collect(),
        Err(e) => {
            let r = match e {
                ConnError::Temporary(t) => Result3::Deferred(t, Some("4.4.2".into())),
                ConnError::Permanent(info) => Result3::Failed(
                    format!("{} {}", info.code, info.text),
                    info.enhanced.to_string(),
                ),
            };
            j.deliveries.iter().map(|i| (*i, clone3(&r))).collect()
        }
    })
}

fn clone3(r: &Result3) -> Result3 {
    match r {
        Result3::Delivered(i) => Result3::Delivered(i.clone()),
        Result3::Deferred(t, s) => Result3::Deferred(t.clone(), s.clone()),
        Result3::Failed(t, s) => Result3::Failed(t.clone(), s.clone()),
    }
}

fn outcome(o: RcptOutcome) -> Result3 {
    match o {
        RcptOutcome::Delivered(i) => Result3::Delivered(i),
        RcptOutcome::Deferred(i) => Result3::Deferred(
            format!("{} {} {}", i.code, i.enhanced, i.text),
            Some(i.enhanced.to_string()),
        ),
        RcptOutcome::Failed(i) => Result3::Failed(
            format!("{} {} {}", i.code, i.enhanced, i.text),
            i.enhanced.to_string(),
        ),
    }
}

fn out_rcpt(env: &Envelope, di: usize) -> OutRcpt {
    let r = env.recipients.iter().find(|r| r.deliveries.contains(&di));
    let address = env.deliveries[di].destination.address().to_string();
    // NOTIFY and ORCPT are passed on for the client's own recipient; a
    // forward is a new delivery of ours (RFC 3461 §5.2.7: "expanded").
    let own = r.is_some_and(|r| r.address.eq_ignore_ascii_case(&address));
    OutRcpt {
        notify: r.filter(|_| own).map(|r| r.notify),
        orcpt: r
            .filter(|_| own)
            .map(|r| r.orcpt.clone().unwrap_or_else(|| r.address.clone())),
        address,
    }
}

fn record_all(shared: &Arc<Shared>, tables: &Tables, job: &Job, r: &Result3, info: &Hopinfo) {
    let results = job.deliveries.iter().map(|i| (*i, clone3(r))).collect();
    record(shared, tables, &job.id, results, info);
}

/// Writes the results of one attempt into the queue entry, and asks the
/// manager to settle it when that may be due.
fn record(
    shared: &Arc<Shared>,
    tables: &Tables,
    id: &str,
    results: Vec<(usize, Result3)>,
    info: &Hopinfo,
) {
    if apply_results(&*shared.spool, tables, id, &results, info, unix_now()) {
        let _ = shared.outbound.send(Event::Settle(id.to_string()));
    }
}

/// The decisions behind [`record`]: each pending delivery's result, a
/// retry time (with jitter, never past the expiry) for a deferral, a
/// failure (4.4.7) for a deferral past the expiry. Returns whether the
/// entry must be settled: it finished, something failed, or a success
/// report is wanted.
fn apply_results(
    queue: &dyn Queue,
    tables: &Tables,
    id: &str,
    results: &[(usize, Result3)],
    info: &Hopinfo,
    now: u64,
) -> bool {
    let o = &tables.outbound;
    let mut failed = false;
    let changed = queue.modify(id, &mut |env| {
        let received = env.received_at;
        let eid = env.id.clone();
        for (i, r) in results {
            let Some(d) = env.deliveries.get_mut(*i) else {
                continue;
            };
            if !matches!(d.status, Status::Pending) {
                continue;
            }
            d.attempts += 1;
            d.remote_mta = info.remote_mta.clone();
            d.tls = info.tls.clone();
            match r {
                Result3::Delivered(reply) => {
                    d.status = Status::Delivered { at: now };
                    d.status_code = Some(reply.enhanced.to_string());
                    d.last_error = Some(format!("{} {}", reply.code, reply.text));
                    d.remote_dsn = info.remote_dsn;
                    tracing::info!(id = %eid, to = %d.destination.address(), relay = info.remote_mta.as_deref().unwrap_or(""), "delivered remotely");
                }
                Result3::Failed(text, status) => {
                    failed = true;
                    fail(d, text.clone(), status.clone(), now);
                    tracing::warn!(id = %eid, to = %d.destination.address(), error = %text, "delivery failed permanently");
                }
                Result3::Deferred(text, status) => {
                    if now >= received.saturating_add(o.expire_secs) {
                        failed = true;
                        fail(
                            d,
                            format!("delivery time expired; last error: {text}"),
                            "4.4.7".into(),
                            now,
                        );
                        tracing::warn!(id = %eid, to = %d.destination.address(), "delivery expired");
                    } else {
                        let wait = o.retry_after_jittered(d.attempts, &eid);
                        d.next_attempt = (now + wait).min(received.saturating_add(o.expire_secs));
                        d.status_code = status.clone();
                        d.last_error = Some(text.clone());
                        tracing::info!(id = %eid, to = %d.destination.address(), error = %text, attempts = d.attempts, retry_in = wait, "delivery deferred");
                    }
                }
            }
        }
    });
    changed.is_some_and(|(env, finished)| finished || failed || wants_success_dsn(&env))
}

fn fail(d: &mut Delivery, text: String, status: String, now: u64) {
    d.status = Status::Failed {
        at: now,
        reason: text.clone(),
    };
    d.status_code = Some(status);
    d.last_error = Some(text);
}

/// Where a connection for this route and domain goes.
async fn route_hops(
    tables: &Tables,
    rt: &OutboundRuntime,
    route: Option<&RouteTable>,
    domain: &str,
) -> Result<Vec<Hop>, RouteError> {
    let policy = mx_policy(tables);
    match route.and_then(|r| r.via.as_ref()) {
        Some((host, port)) => {
            // A relay host that does not resolve is our configuration's
            // problem: mail waits for the fix instead of bouncing.
            let addrs = resolver::host_addrs(&rt.resolver, host, *port, &policy)
                .await
                .map_err(|e| match e {
                    RouteError::Permanent { text, .. } => {
                        RouteError::Temporary(format!("relay host {host}: {text}"))
                    }
                    t => t,
                })?;
            Ok(vec![Hop {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                preference: 0,
                addrs,
            }])
        }
        None => resolver::mx_route(&rt.resolver, domain, &policy).await,
    }
}

fn mx_policy(tables: &Tables) -> MxPolicy {
    let o = &tables.outbound;
    let mut my_ips: Vec<std::net::IpAddr> = tables
        .listeners
        .iter()
        .filter(|l| l.kind == ListenerKind::Smtp && l.address.port() == o.port)
        .map(|l| l.address.ip())
        .collect();
    if o.port == 25 {
        my_ips.extend(tables.public_ips.iter().copied());
    }
    MxPolicy {
        ipv4: o.ipv4,
        ipv6: o.ipv6,
        max_mx: o.max_mx_hosts as usize,
        max_addrs: o.max_addresses as usize,
        port: o.port,
        me: vec![tables.hostname.clone()],
        my_ips,
    }
}

fn client_settings(
    tables: &Tables,
    rt: &OutboundRuntime,
    route: Option<&RouteTable>,
    host: &str,
) -> Result<ClientSettings, String> {
    let (tls, implicit_tls) =
        TlsPolicy::from_route(route.map_or(OutboundTls::Opportunistic, |r| r.tls));
    let auth = match route {
        Some(r) if r.user.is_some() => {
            let user = r.user.clone().unwrap_or_default();
            let password = rt
                .passwords
                .get(&r.domain)
                .cloned()
                .ok_or_else(|| format!("no password for route {}", r.domain))?;
            Some((user, password))
        }
        _ => None,
    };
    Ok(ClientSettings {
        helo: tables.hostname.clone(),
        tls,
        implicit_tls,
        server_name: host.to_string(),
        auth,
        source: route.and_then(|r| r.source),
        timeouts: rt.timeouts,
        roots: rt.roots.clone(),
        cert_check: Default::default(),
    })
}

/// Hands one TLS attempt to the TLS-RPT sink, and logs it (debug).
fn record_tls(rt: &OutboundRuntime, a: TlsAttempt) {
    let result = match &a.outcome {
        Outcome::Success => "success",
        Outcome::Failure { kind, .. } => kind.as_str(),
    };
    tracing::debug!(
        domain = %a.domain,
        policy = %a.policy.as_str(),
        mx = %a.mx_host.as_deref().unwrap_or("-"),
        result = %result,
        "tls-rpt attempt"
    );
    rt.tlsrpt.record(a);
}

/// The TLS policies a recipient domain publishes, looked up once per
/// delivery attempt: its MTA-STS policy and whether its MX RRset is
/// DNSSEC-secure (the condition for DANE on its MX hosts).
pub struct DomainTls {
    pub sts: Option<crate::outbound::mta_sts::Policy>,
    pub mx_secure: bool,
}

impl DomainTls {
    /// The MTA-STS policy (cache or fetch; a failed fetch is recorded for
    /// TLS-RPT) and the MX RRset's DNSSEC status.
    pub async fn lookup(rt: &OutboundRuntime, domain: &str) -> DomainTls {
        let timeout = rt.resolver.timeout();
        // `outbound { mta-sts #false }` / `{ dane #false }`: not asked at
        // all (no TXT lookup or fetch; no DNSSEC MX or TLSA query).
        let (sts, mx_secure) = tokio::join!(
            async {
                if rt.mta_sts {
                    rt.sts.lookup(domain).await
                } else {
                    crate::services::mta_sts::StsLookup::default()
                }
            },
            async {
                rt.dane && crate::dns::secure::mx_secure(&rt.dnssec_servers, domain, timeout).await
            }
        );
        if let Some((kind, reason)) = &sts.failure {
            record_tls(
                rt,
                TlsAttempt {
                    domain: domain.to_string(),
                    policy: PolicyType::Sts,
                    policy_strings: sts
                        .policy
                        .as_ref()
                        .map(|p| p.policy_strings())
                        .unwrap_or_default(),
                    mx_patterns: sts
                        .policy
                        .as_ref()
                        .map(|p| p.mx.clone())
                        .unwrap_or_default(),
                    mx_host: None,
                    sending_ip: None,
                    receiving_ip: None,
                    outcome: Outcome::Failure {
                        kind: *kind,
                        reason: Some(reason.clone()),
                    },
                },
            );
        }
        DomainTls {
            sts: sts.policy,
            mx_secure,
        }
    }

    /// The policy for one MX host: its TLSA records when the MX RRset is
    /// secure, then [`tls_policy::decide`]; and the names its certificate
    /// may carry under DANE-TA (the host, and its secure CNAME expansion).
    pub async fn for_host(&self, rt: &OutboundRuntime, hop: &Hop) -> (HostPolicy, Vec<String>) {
        let host = hop.host.trim_end_matches('.').to_string();
        let (lookup, names) = if self.mx_secure {
            let port = hop.addrs.first().map_or(25, |a| a.port());
            crate::dns::secure::tlsa_expanded(
                &rt.dnssec_servers,
                &host,
                port,
                rt.resolver.timeout(),
            )
            .await
        } else {
            (DaneLookup::NotApplicable, vec![host])
        };
        (
            tls_policy::decide(&hop.host, &lookup, self.sts.as_ref()),
            names,
        )
    }

    /// The TLS-RPT record of one attempt under `policy`.
    pub fn attempt(
        &self,
        domain: &str,
        policy: &HostPolicy,
        mx_host: &str,
        sending_ip: Option<std::net::IpAddr>,
        receiving_ip: Option<std::net::IpAddr>,
        outcome: Outcome,
    ) -> TlsAttempt {
        let policy_type = policy.policy_type();
        let (policy_strings, mx_patterns) = match (policy_type, &self.sts) {
            (PolicyType::Sts, Some(p)) => (p.policy_strings(), p.mx.clone()),
            (PolicyType::Tlsa, _) => match policy {
                HostPolicy::Dane(r) | HostPolicy::DaneEncryptOnly(r) => {
                    (r.iter().map(|t| t.presentation()).collect(), Vec::new())
                }
                _ => (Vec::new(), Vec::new()),
            },
            _ => (Vec::new(), Vec::new()),
        };
        TlsAttempt {
            domain: domain.to_string(),
            policy: policy_type,
            policy_strings,
            mx_patterns,
            mx_host: Some(mx_host.trim_end_matches('.').to_string()),
            sending_ip,
            receiving_ip,
            outcome,
        }
    }
}

/// What outbound delivery needs besides the tables, built when the
/// configuration is loaded: the resolver, the trust anchors, the route
/// passwords, the DKIM keys, the MTA-STS client and where TLS attempts go.
pub struct OutboundRuntime {
    pub resolver: resolver::Resolver,
    /// The validating resolvers DANE's lookups ask (the configured
    /// `resolver`s, else the system's); their AD bit is trusted.
    pub dnssec_servers: Vec<std::net::SocketAddr>,
    /// MTA-STS policies: fetch and cache (`<state>/mta-sts/`).
    pub sts: crate::services::mta_sts::StsClient,
    /// Every outbound TLS attempt (and every policy failure before one)
    /// goes here for TLS-RPT. [`crate::outbound::tlsrpt::Discard`] until
    /// the report store is plugged in.
    pub tlsrpt: Arc<dyn crate::outbound::tlsrpt::TlsRptSink>,
    pub roots: Arc<rustls::RootCertStore>,
    /// Route pattern → password (read from its file at load time).
    pub passwords: HashMap<String, String>,
    pub signer: crate::outbound::dkim::Signer,
    pub timeouts: ClientTimeouts,
    /// `outbound { dane }`: TLSA lookups for recipients' MX hosts.
    pub dane: bool,
    /// `outbound { mta-sts }`: MTA-STS policies fetched and honoured.
    pub mta_sts: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundSetupError {
    #[error("DNS resolver: {0}")]
    Resolver(String),
    #[error("{path}: {error}")]
    File { path: String, error: String },
    #[error("DKIM: {0}")]
    Dkim(String),
}

impl OutboundRuntime {
    pub fn load(tables: &Tables) -> Result<OutboundRuntime, OutboundSetupError> {
        let resolver = resolver::build(&tables.resolvers, Duration::from_secs(10))
            .map_err(|e| OutboundSetupError::Resolver(e.to_string()))?;
        let roots = crate::services::smtp_out::trust_anchors(&tables.outbound.ca_files, true)
            .map_err(|e| OutboundSetupError::File {
                path: "outbound ca-file".into(),
                error: e,
            })?;
        let mut passwords = HashMap::new();
        for r in &tables.outbound.routes {
            if let Some(p) = &r.password_file {
                let text = std::fs::read_to_string(p).map_err(|e| OutboundSetupError::File {
                    path: p.display().to_string(),
                    error: e.to_string(),
                })?;
                passwords.insert(
                    r.domain.clone(),
                    text.trim_end_matches(['\r', '\n']).to_string(),
                );
            }
        }
        let signer = crate::outbound::dkim::Signer::load(tables)
            .map_err(|e| OutboundSetupError::Dkim(e.to_string()))?;
        let roots = Arc::new(roots);
        let sts = crate::services::mta_sts::StsClient::new(
            &tables.state_dir,
            roots.clone(),
            resolver.clone(),
        );
        Ok(OutboundRuntime {
            dnssec_servers: crate::dns::secure::servers(&tables.resolvers),
            sts,
            tlsrpt: Arc::new(crate::outbound::tlsrpt::Discard),
            resolver,
            roots,
            passwords,
            signer,
            timeouts: ClientTimeouts::default(),
            dane: tables.outbound.dane,
            mta_sts: tables.outbound.mta_sts,
        })
    }
}

// ---- settling: DSNs, then the entry leaves the queue

fn owes_failure_dsn(env: &Envelope) -> bool {
    env.deliveries
        .iter()
        .any(|d| matches!(d.status, Status::Failed { .. }) && !d.dsn_sent)
}

fn wants_success_dsn(env: &Envelope) -> bool {
    env.recipients.iter().any(|r| {
        r.notify.success
            && r.deliveries.iter().any(|i| {
                env.deliveries
                    .get(*i)
                    .is_some_and(|d| matches!(d.status, Status::Delivered { .. }) && !d.dsn_sent)
            })
    })
}

/// Queues what the entry owes its sender, then lets it leave the queue if
/// nothing is pending. Only the manager task calls this.
async fn settle(shared: &Arc<Shared>, id: &str) {
    let Some(env) = shared.spool.get(id) else {
        return;
    };
    let now = unix_now();
    for kind in [
        crate::outbound::dsn::DsnKind::Failure,
        crate::outbound::dsn::DsnKind::Success,
    ] {
        let owed: Vec<usize> = env
            .deliveries
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.dsn_sent)
            .filter(|(_, d)| match kind {
                crate::outbound::dsn::DsnKind::Failure => matches!(d.status, Status::Failed { .. }),
                _ => matches!(d.status, Status::Delivered { .. }),
            })
            .map(|(i, _)| i)
            .collect();
        if owed.is_empty() {
            continue;
        }
        // A failure report waits until every delivery had its first
        // attempt, so that recipients failing together (one message to
        // several bad domains) are reported in one DSN. Later failures,
        // after retries, get a report of their own.
        if kind == crate::outbound::dsn::DsnKind::Failure
            && env
                .deliveries
                .iter()
                .any(|d| matches!(d.status, Status::Pending) && d.attempts == 0)
        {
            continue;
        }
        if let Err(e) = super::notify::send(shared, &env, kind, &owed, now).await {
            tracing::error!(id, error = %e, "cannot queue a DSN; trying again later");
            return;
        }
        shared.spool.modify(id, &mut |e| {
            for i in &owed {
                if let Some(d) = e.deliveries.get_mut(*i) {
                    d.dsn_sent = true;
                }
            }
        });
    }
    if let Some(env) = shared.spool.get(id)
        && env.is_done()
    {
        if let Err(e) = shared.spool.finish(id) {
            tracing::error!(id, error = %e, "cannot mark a queue entry done");
        } else {
            tracing::debug!(id, "left the queue");
        }
    }
}

/// Delay warnings for deliveries pending longer than `delay-warning`.
async fn delay_warnings(shared: &Arc<Shared>, env: &Envelope, now: u64) {
    let snapshot = shared.snapshot();
    let Some(after) = snapshot.tables.outbound.delay_warning_secs else {
        return;
    };
    // Past the expiry the next failed attempt bounces: no warning first.
    if now < env.received_at.saturating_add(after)
        || now
            >= env
                .received_at
                .saturating_add(snapshot.tables.outbound.expire_secs)
    {
        return;
    }
    let owed: Vec<usize> = env
        .deliveries
        .iter()
        .enumerate()
        .filter(|(_, d)| matches!(d.status, Status::Pending) && !d.delay_warned && d.attempts > 0)
        .map(|(i, _)| i)
        .collect();
    if owed.is_empty() {
        return;
    }
    if let Err(e) = super::notify::send(
        shared,
        env,
        crate::outbound::dsn::DsnKind::Delay,
        &owed,
        now,
    )
    .await
    {
        tracing::error!(id = %env.id, error = %e, "cannot queue a delay warning");
        return;
    }
    shared.spool.modify(&env.id, &mut |e| {
        for i in &owed {
            if let Some(d) = e.deliveries.get_mut(*i) {
                d.delay_warned = true;
            }
        }
    });
}

/// Whether a message came from our own users (a login, `mailc sendmail`,
/// or a trusted network), so that it is DKIM-signed: mail arriving at the
/// MX from strangers is never signed, whatever its From says.
pub fn is_own_submission(tables: &Tables, env: &Envelope) -> bool {
    env.client.auth.is_some()
        || env.client.listener == crate::services::submit::LISTENER
        || env
            .client
            .ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| tables.trusted_networks.iter().any(|n| n.contains(ip)))
}

/// DKIM-signs a message our users submit, before it is queued (the queue
/// holds the signed message). A signing failure is logged and the message
/// goes unsigned rather than being refused: the keys were checked at
/// start, so this only happens for a message the signer cannot parse.
pub fn sign_submission(snapshot: &Snapshot, accepted: &mut crate::envelope::Accepted) {
    if !is_own_submission(&snapshot.tables, &accepted.envelope) {
        return;
    }
    match snapshot
        .outbound
        .signer
        .sign(&accepted.message, accepted.envelope.received_at)
    {
        Ok(sig) if !sig.is_empty() => {
            let mut signed = sig;
            signed.extend_from_slice(&accepted.message);
            accepted.envelope.size = signed.len() as u64;
            accepted.message = signed;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(id = %accepted.envelope.id, error = %e, "cannot DKIM-sign; queued unsigned")
        }
    }
}

/// The ARC sets (RFC 8617) of a message that arrived at the MX and is
/// forwarded to a remote address by one of our aliases: one per
/// forwarding domain with an RSA DKIM key, sealing the results our checks
/// put on top of it, kept in the envelope so that the seal is made once,
/// stored durably with the message before the 250, and sent unchanged with
/// every attempt (the message itself is stored once for local and remote
/// copies; local copies get no seal). Nothing is sealed without our
/// results (inbound checks off) — see [`crate::outbound::arc`].
pub fn seal_forwards(snapshot: &Snapshot, accepted: &mut crate::envelope::Accepted) {
    let tables = &snapshot.tables;
    let env = &accepted.envelope;
    let domains: std::collections::BTreeSet<String> = (0..env.deliveries.len())
        .filter(|&di| matches!(env.deliveries[di].destination, Destination::Remote { .. }))
        .filter_map(|di| forward_domain(tables, env, di))
        .collect();
    for domain in domains {
        match snapshot
            .outbound
            .signer
            .arc_seal(&domain, &accepted.message, &tables.hostname)
        {
            Ok(set) => {
                accepted.envelope.arc_seals.insert(domain, set);
            }
            Err(why) => {
                tracing::info!(id = %accepted.envelope.id, domain, reason = %why, "forwarded without an ARC seal")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::testing::{Harness, harness, mailbox, message, queued, remote};

    #[test]
    fn domains_are_lower_case() {
        assert_eq!(domain_of("a@Example.ORG"), "example.org");
        assert_eq!(domain_of("nodomain"), "");
    }

    const SENDER: &str = "sender@remote.example";

    fn deferred() -> Result3 {
        Result3::Deferred("451 4.4.1 try later".into(), Some("4.4.1".into()))
    }

    fn failed() -> Result3 {
        Result3::Failed("550 5.1.1 no such user".into(), "5.1.1".into())
    }

    fn delivered() -> Result3 {
        Result3::Delivered(ReplyInfo::local(
            250,
            crate::proto::smtp::reply::Enhanced(2, 0, 0),
            "ok",
            crate::session::smtp_out::Stage::DataEnd,
        ))
    }

    fn apply(h: &Harness, id: &str, results: Vec<(usize, Result3)>, now: u64) -> bool {
        let tables = h.shared.snapshot().tables.clone();
        apply_results(&*h.queue, &tables, id, &results, &Hopinfo::default(), now)
    }

    #[tokio::test]
    async fn a_deferral_is_retried_later_and_fails_at_the_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        let o = h.shared.snapshot().tables.outbound.clone();
        let t0 = 1_000_000;
        queued(&h, message("D1", SENDER, &[remote("a@example.org")], t0)).await;

        let now = t0 + 10;
        assert!(
            !apply(&h, "D1", vec![(0, deferred())], now),
            "nothing to settle yet"
        );
        let d = &h.queue.get("D1").unwrap().deliveries[0];
        assert!(matches!(d.status, Status::Pending));
        assert_eq!(d.attempts, 1);
        assert_eq!(d.next_attempt, now + o.retry_after_jittered(1, "D1"));
        assert!(d.next_attempt > now);
        assert_eq!(d.status_code.as_deref(), Some("4.4.1"));
        assert_eq!(d.last_error.as_deref(), Some("451 4.4.1 try later"));

        // The second deferral waits longer (back-off).
        let now2 = d.next_attempt;
        apply(&h, "D1", vec![(0, deferred())], now2);
        let d2 = &h.queue.get("D1").unwrap().deliveries[0];
        assert_eq!(d2.attempts, 2);
        assert_eq!(d2.next_attempt, now2 + o.retry_after_jittered(2, "D1"));
        assert!(d2.next_attempt - now2 >= d.next_attempt - now);

        // A retry is never scheduled past the expiry...
        let late = t0 + o.expire_secs - 1;
        apply(&h, "D1", vec![(0, deferred())], late);
        let d3 = &h.queue.get("D1").unwrap().deliveries[0];
        assert!(matches!(d3.status, Status::Pending));
        assert_eq!(d3.next_attempt, t0 + o.expire_secs);
        // ...and a deferral at the expiry fails it, to be settled (a DSN).
        assert!(apply(&h, "D1", vec![(0, deferred())], t0 + o.expire_secs));
        let d4 = &h.queue.get("D1").unwrap().deliveries[0];
        assert!(
            matches!(&d4.status, Status::Failed { reason, .. } if reason == "delivery time expired; last error: 451 4.4.1 try later"),
            "{:?}",
            d4.status
        );
        assert_eq!(d4.status_code.as_deref(), Some("4.4.7"));
        assert_eq!(d4.attempts, 4);
    }

    #[tokio::test]
    async fn failures_and_the_last_result_ask_for_settling() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        let to = [
            remote("a@example.org"),
            remote("b@example.org"),
            remote("c@example.net"),
        ];
        queued(&h, message("S1", SENDER, &to, 100)).await;
        // A success with others still pending and no NOTIFY=SUCCESS: no.
        assert!(!apply(&h, "S1", vec![(0, delivered())], 200));
        // A permanent failure: a DSN is owed.
        assert!(apply(&h, "S1", vec![(1, failed())], 200));
        let env = h.queue.get("S1").unwrap();
        assert!(matches!(env.deliveries[1].status, Status::Failed { .. }));
        assert_eq!(env.deliveries[1].status_code.as_deref(), Some("5.1.1"));
        // The last pending delivery succeeding finishes the entry: settle.
        assert!(apply(&h, "S1", vec![(2, delivered())], 200));
        assert!(h.queue.get("S1").unwrap().is_done());
    }

    #[tokio::test]
    async fn a_success_report_asked_for_is_settled_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        let mut m = message(
            "N1",
            SENDER,
            &[remote("a@example.org"), remote("b@example.org")],
            100,
        );
        m.envelope.recipients[0].notify.success = true;
        queued(&h, m).await;
        assert!(apply(&h, "N1", vec![(0, delivered())], 200));
    }

    #[tokio::test]
    async fn results_for_finished_deliveries_and_unknown_entries_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        queued(
            &h,
            message(
                "F1",
                SENDER,
                &[remote("a@example.org"), remote("b@example.org")],
                100,
            ),
        )
        .await;
        apply(&h, "F1", vec![(0, delivered())], 200);
        let before = h.queue.get("F1").unwrap();
        // A late result for a delivery another attempt already finished,
        // and an index that does not exist.
        assert!(!apply(&h, "F1", vec![(0, failed()), (7, failed())], 300));
        assert_eq!(h.queue.get("F1").unwrap(), before);
        assert!(!apply(&h, "GONE", vec![(0, failed())], 300));
    }

    #[tokio::test]
    async fn plan_queues_due_remote_deliveries_once_per_destination() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        let tables = h.shared.snapshot().tables.clone();
        let mut to = vec![
            mailbox("alice@example.test"),
            remote("a@example.org"),
            remote("b@Example.org"),
            remote("c@example.net"),
            remote("later@example.com"),
        ];
        for i in 0..150 {
            to.push(remote(&format!("r{i}@many.example")));
        }
        let mut m = message("P1", SENDER, &to, 100);
        m.envelope.deliveries[4].next_attempt = 500;
        queued(&h, m).await;
        let env = h.queue.get("P1").unwrap();
        let board: SharedBoard = Default::default();
        plan(&tables, &board, &env, 200);
        let jobs = |b: &Board, target: &str| -> Vec<Vec<usize>> {
            b.queues
                .iter()
                .filter(|(k, _)| k.target == target)
                .flat_map(|(_, q)| q.jobs.iter().map(|j| j.deliveries.clone()))
                .collect()
        };
        {
            let b = board.lock().unwrap();
            assert_eq!(jobs(&b, "mx example.org"), [vec![1, 2]]);
            assert_eq!(jobs(&b, "mx example.net"), [vec![3]]);
            assert!(jobs(&b, "mx example.com").is_empty(), "not due yet");
            let many = jobs(&b, "mx many.example");
            assert_eq!(
                many.iter().map(Vec::len).collect::<Vec<_>>(),
                [MAX_RCPTS_PER_TRANSACTION, 50],
                "one transaction holds at most {MAX_RCPTS_PER_TRANSACTION} recipients"
            );
            assert_eq!(b.queues.len(), 3, "the local delivery is not outbound's");
            assert_eq!(b.in_flight.len(), 153);
        }
        // Planned again (a sweep, a flush): nothing in flight is queued twice.
        plan(&tables, &board, &env, 200);
        assert_eq!(board.lock().unwrap().in_flight.len(), 153);
        let total: usize = board
            .lock()
            .unwrap()
            .queues
            .values()
            .map(|q| q.jobs.len())
            .sum();
        assert_eq!(total, 4);
        // Once due, the later one joins.
        plan(&tables, &board, &env, 500);
        assert_eq!(jobs(&board.lock().unwrap(), "mx example.com"), [vec![4]]);
    }

    fn dsns(h: &Harness) -> Vec<Envelope> {
        h.queue
            .list()
            .into_iter()
            .filter(|e| e.sender.is_empty())
            .collect()
    }

    #[tokio::test]
    async fn one_dsn_for_recipients_failing_together_then_the_entry_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = harness(dir.path());
        let to = [remote("a@bad-one.example"), remote("b@bad-two.example")];
        queued(&h, message("B1", SENDER, &to, 100)).await;
        apply(&h, "B1", vec![(0, failed())], 200);
        // The other recipient has not been tried yet: the report waits.
        settle(&h.shared, "B1").await;
        assert!(dsns(&h).is_empty());
        assert!(!h.queue.get("B1").unwrap().deliveries[0].dsn_sent);

        apply(&h, "B1", vec![(1, failed())], 210);
        settle(&h.shared, "B1").await;
        let reports = dsns(&h);
        assert_eq!(reports.len(), 1, "one DSN for both");
        assert!(h.queue.get("B1").is_none(), "the original left the queue");
        let dsn = &reports[0];
        assert_eq!(dsn.deliveries.len(), 1);
        assert_eq!(dsn.deliveries[0].destination, remote(SENDER));
        let text = String::from_utf8(h.queue.read_message(&dsn.id).unwrap()).unwrap();
        assert!(text.contains("a@bad-one.example") && text.contains("b@bad-two.example"));
        // Handed to delivery, which passes remote entries to the manager.
        let handed = h.delivery.try_recv().expect("the DSN went to delivery");
        assert_eq!(handed.envelope.id, dsn.id);
        // Settling again owes nothing.
        settle(&h.shared, "B1").await;
        assert_eq!(dsns(&h).len(), 1);
    }

    #[tokio::test]
    async fn a_failure_with_retries_pending_is_reported_and_the_entry_stays() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        let to = [remote("a@example.org"), remote("b@example.net")];
        queued(&h, message("K1", SENDER, &to, 100)).await;
        apply(&h, "K1", vec![(0, failed()), (1, deferred())], 200);
        settle(&h.shared, "K1").await;
        assert_eq!(dsns(&h).len(), 1);
        let env = h.queue.get("K1").expect("still queued for the retry");
        assert!(env.deliveries[0].dsn_sent);
        assert!(!env.deliveries[1].dsn_sent);
        settle(&h.shared, "K1").await;
        assert_eq!(dsns(&h).len(), 1, "reported once");
    }

    #[tokio::test]
    async fn a_bounce_is_never_bounced() {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(dir.path());
        queued(&h, message("Z1", "", &[remote("a@example.org")], 100)).await;
        assert!(apply(&h, "Z1", vec![(0, failed())], 200));
        settle(&h.shared, "Z1").await;
        assert!(h.queue.list().is_empty(), "gone, and no report to <>");
    }
}
