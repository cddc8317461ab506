//! Sending TLS reports (RFC 8460) about our outbound TLS sessions, when
//! `outbound { tls-reports }` is configured. The same shape as
//! [`super::dmarc_reports`]:
//!
//! - The SMTP client hands each [`TlsAttempt`] to [`AttemptLog`] (the
//!   [`TlsRptSink`]: never blocking; a bounded channel, an attempt that
//!   does not fit is dropped and counted in the log). One writer task
//!   appends them as JSON lines to `<state>/tls-reports/<begin>-<end>.rows`,
//!   one file per period, and fsyncs once per batch it drained (group
//!   commit): a crash loses at most the attempts of the batch being
//!   written (at most 1024, under a second's worth), never mail.
//! - A runner task wakes at each period's end (plus a short grace) and, for
//!   every closed period, aggregates its rows per recipient domain and
//!   policy ([`crate::outbound::tls_report::Aggregator`]), looks up the
//!   domain's `_smtp._tls` TXT record through our resolver, and sends the
//!   report to at most [`MAX_DESTINATIONS_PER_DOMAIN`] of its `rua` URIs:
//!   `mailto:` through `submit::enqueue` (DKIM-signed with the `from`
//!   domain's key, delivered by the outbound queue with its retries);
//!   `https:` as a POST of `application/tlsrpt+gzip` (RFC 8460 §5.4) over
//!   TLS verified with WebPKI against the outbound trust anchors (the
//!   system's plus `outbound { ca-file }`), bounded in time and in what is
//!   read back. A failed POST is retried on the next runs (every minute)
//!   for [`HTTPS_RETRY_SECS`], then given up (logged).
//! - No loss, no double send: every destination done is appended to
//!   `<begin>-<end>.sent` and fsynced once the report is durably queued or
//!   accepted (2xx); a period's files are removed when every destination
//!   of every domain is done. A crash between the two sends that one report
//!   twice, with the same report-id.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Shared;
use super::report_periods::{self as periods, RowQueue, Timed};
use super::submit::{self, Submission};
use crate::outbound::tls_report::{
    self as tr, Aggregator, Destination, MAX_DESTINATIONS_PER_DOMAIN, Reporter, Row,
};
use crate::outbound::tlsrpt::{TlsAttempt, TlsRptSink};

/// Attempts waiting for the writer; beyond this they are dropped.
pub const ATTEMPT_QUEUE: usize = 10_000;
/// A period's file stops growing here.
pub const MAX_ROWS_FILE: u64 = 256 << 20;
/// Reports sent per run (every minute at most).
pub const MAX_REPORTS_PER_RUN: usize = 200;
pub const MAX_PERIODS_PER_RUN: usize = 16;
/// A whole https POST (connect, TLS, request, status line).
pub const HTTPS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the period's end an https destination is retried.
pub const HTTPS_RETRY_SECS: u64 = 86_400;
/// Most of the response read (only the status line matters).
const MAX_RESPONSE: usize = 16 << 10;

/// The SMTP client's sink: the sending half of the writer's channel.
pub struct AttemptLog(RowQueue<Row>);

impl Default for AttemptLog {
    fn default() -> Self {
        AttemptLog(RowQueue::new(ATTEMPT_QUEUE, "TLS report attempts"))
    }
}

impl TlsRptSink for AttemptLog {
    fn record(&self, attempt: TlsAttempt) {
        self.0.push(Row::new(super::unix_now(), &attempt));
    }
}

impl Timed for Row {
    fn at(&self) -> u64 {
        self.at
    }
}

/// `<state>/tls-reports`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("tls-reports")
}

/// The writer and the runner, for the life of the server.
pub fn start(shared: &std::sync::Arc<Shared>) {
    periods::start(
        shared,
        &shared.tls_attempts.0,
        periods::Service {
            what: "TLS report attempts",
            max_file: MAX_ROWS_FILE,
            dir,
            interval: |t| t.outbound.tls_reports.as_ref().map(|c| c.interval_secs),
        },
        |s, now| async move {
            run_once(&s, now).await;
        },
    );
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Reports queued as mail or accepted by an https endpoint.
    pub sent: usize,
    /// Destinations given up (unsupported URI, too big, refused).
    pub skipped: usize,
    pub periods_done: usize,
}

/// Reports every period closed at `now`.
pub async fn run_once(shared: &Shared, now: u64) -> RunSummary {
    let snapshot = shared.snapshot();
    let mut summary = RunSummary::default();
    let Some(cfg) = snapshot.tables.outbound.tls_reports.clone() else {
        return summary;
    };
    let submitter = cfg
        .from
        .rsplit_once('@')
        .map_or(snapshot.tables.hostname.clone(), |(_, d)| d.to_string());
    let reporter = Reporter {
        org_name: cfg.org_name.clone(),
        contact: cfg.from.clone(),
        submitter,
    };
    let dir = dir(&snapshot.tables.state_dir);
    let closed = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || periods::closed_periods(&dir, now))
            .await
            .unwrap_or_default()
    };
    let mut budget = MAX_REPORTS_PER_RUN;
    for (begin, end) in closed.into_iter().take(MAX_PERIODS_PER_RUN) {
        let loaded = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || load(&dir, begin, end))
                .await
                .ok()
                .and_then(Result::ok)
        };
        let Some((agg, mut done, bad_lines)) = loaded else {
            tracing::error!(period = begin, "cannot read TLS report attempts");
            continue;
        };
        if bad_lines > 0 || agg.dropped > 0 {
            tracing::warn!(
                period = begin,
                unreadable = bad_lines,
                dropped = agg.dropped,
                "TLS report attempts not counted"
            );
        }
        let mut complete = true;
        let domains: Vec<String> = agg.domains().map(str::to_string).collect();
        'domains: for domain in domains {
            let done_key = format!("{domain} *");
            if done.contains(&done_key) {
                continue;
            }
            let rua = match lookup_rua(&snapshot, &domain).await {
                Ok(rua) => rua,
                Err(e) => {
                    // A DNS failure may heal: try again next run, for as
                    // long as https destinations are retried.
                    if now < end + HTTPS_RETRY_SECS {
                        tracing::info!(domain = %domain, error = %e, "TLS report: cannot look up _smtp._tls now");
                        complete = false;
                        continue;
                    }
                    tracing::warn!(domain = %domain, error = %e, "TLS report not sent: _smtp._tls lookup failed");
                    Vec::new()
                }
            };
            if rua.is_empty() {
                tracing::debug!(domain = %domain, "no TLS-RPT record: no report");
            }
            let Some(report) = agg.report(&reporter, &domain, begin, end) else {
                continue;
            };
            let gz = match tr::gzip_json(&report) {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(domain = %domain, error = %e, "cannot build a TLS report");
                    continue;
                }
            };
            let mut all_done = true;
            for uri in rua.iter().take(MAX_DESTINATIONS_PER_DOMAIN) {
                let key = format!("{domain} {uri}");
                if done.contains(&key) {
                    continue;
                }
                if budget == 0 {
                    complete = false;
                    break 'domains;
                }
                let r = send_one(
                    shared, &snapshot, &cfg, &reporter, &domain, begin, end, &gz, uri, now,
                )
                .await;
                match r {
                    Sent::Done => {
                        budget -= 1;
                        summary.sent += 1;
                    }
                    Sent::Skipped => summary.skipped += 1,
                    Sent::Later => {
                        all_done = false;
                        complete = false;
                        continue;
                    }
                }
                if !journal(&dir, begin, end, &key).await {
                    return summary;
                }
                done.insert(key);
            }
            if all_done {
                // Not strictly needed (each destination is journalled), but
                // spares the TXT lookup on later runs.
                if !journal(&dir, begin, end, &done_key).await {
                    return summary;
                }
                done.insert(done_key);
            }
        }
        if complete {
            let dir = dir.clone();
            let _ =
                tokio::task::spawn_blocking(move || periods::remove_period(&dir, begin, end)).await;
            summary.periods_done += 1;
        }
    }
    summary
}

async fn journal(dir: &Path, begin: u64, end: u64, line: &str) -> bool {
    let journal = periods::journal_file(dir, begin, end);
    let line = line.to_string();
    let noted = tokio::task::spawn_blocking(move || periods::note(&journal, &line)).await;
    if !matches!(noted, Ok(Ok(()))) {
        tracing::error!(period = begin, "cannot write the TLS report journal");
        return false;
    }
    true
}

/// The `rua` URIs `domain` publishes at `_smtp._tls.<domain>`.
async fn lookup_rua(snapshot: &super::Snapshot, domain: &str) -> Result<Vec<String>, String> {
    let name = format!("_smtp._tls.{domain}");
    crate::dns::resolver::txt(&snapshot.outbound.resolver, &name)
        .await
        .map(|records| tr::rua_from_txt(&records))
        .map_err(|e| e.to_string())
}

enum Sent {
    /// Durably queued, or accepted by the https endpoint.
    Done,
    /// Will never be sent (logged why).
    Skipped,
    /// Not now: the next run tries again.
    Later,
}

#[allow(clippy::too_many_arguments)]
async fn send_one(
    shared: &Shared,
    snapshot: &super::Snapshot,
    cfg: &crate::tables::TlsReportsTable,
    reporter: &Reporter,
    domain: &str,
    begin: u64,
    end: u64,
    gz: &[u8],
    uri: &str,
    now: u64,
) -> Sent {
    match tr::destination(uri) {
        Destination::Unsupported(u) => {
            tracing::info!(domain = %domain, rua = %u, "TLS report destination not supported (mailto: and https: only)");
            Sent::Skipped
        }
        Destination::Mail(address) => {
            let message = tr::message(reporter, domain, begin, end, gz, &address, now);
            let size = message.len() as u64;
            if size > cfg.max_size {
                tracing::warn!(domain = %domain, rua = %address, size, limit = cfg.max_size, "TLS report not sent: larger than max-size");
                return Sent::Skipped;
            }
            let sub = Submission {
                sender: cfg.from.clone(),
                recipients: vec![address.clone()],
                user: "tls-reports".into(),
                size,
            };
            match submit::enqueue(shared, &sub, &message).await {
                Ok(id) => {
                    tracing::info!(id = %id, domain = %domain, rua = %address, "TLS report queued");
                    Sent::Done
                }
                Err(r) if r.exit == submit::exit::TEMPFAIL => Sent::Later,
                Err(r) => {
                    tracing::warn!(domain = %domain, rua = %address, reason = %r.message, "TLS report refused");
                    Sent::Skipped
                }
            }
        }
        Destination::Https { host, port, path } => {
            if gz.len() as u64 > cfg.max_size {
                tracing::warn!(domain = %domain, rua = %uri, size = gz.len(), limit = cfg.max_size, "TLS report not sent: larger than max-size");
                return Sent::Skipped;
            }
            let posted =
                tokio::time::timeout(HTTPS_TIMEOUT, post(snapshot, &host, port, &path, gz))
                    .await
                    .unwrap_or_else(|_| Err(PostError::Temporary("timed out".into())));
            match posted {
                Ok(status) => {
                    tracing::info!(domain = %domain, rua = %uri, status, "TLS report posted");
                    Sent::Done
                }
                Err(PostError::Permanent(e)) => {
                    tracing::warn!(domain = %domain, rua = %uri, error = %e, "TLS report refused by the https destination");
                    Sent::Skipped
                }
                Err(PostError::Temporary(e)) if now < end + HTTPS_RETRY_SECS => {
                    tracing::info!(domain = %domain, rua = %uri, error = %e, "TLS report post failed; will retry");
                    Sent::Later
                }
                Err(PostError::Temporary(e)) => {
                    tracing::warn!(domain = %domain, rua = %uri, error = %e, "TLS report post failed; given up");
                    Sent::Skipped
                }
            }
        }
    }
}

enum PostError {
    /// A 4xx answer other than 408/429: sending again would not help.
    Permanent(String),
    Temporary(String),
}

/// POSTs the gzip'd report over TLS verified for `host` (WebPKI, the
/// outbound trust anchors); `Ok(status)` on a 2xx.
async fn post(
    snapshot: &super::Snapshot,
    host: &str,
    port: u16,
    path: &str,
    body: &[u8],
) -> Result<u16, PostError> {
    let t = |e: String| PostError::Temporary(e);
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let policy = crate::dns::resolver::MxPolicy {
                ipv4: true,
                ipv6: true,
                max_mx: 1,
                max_addrs: 4,
                port,
                me: Vec::new(),
                my_ips: Vec::new(),
            };
            crate::dns::resolver::host_addrs(&snapshot.outbound.resolver, host, port, &policy)
                .await
                .map_err(|e| t(e.to_string()))?
        }
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| t(e.to_string()))?
        .with_root_certificates(snapshot.outbound.roots.clone())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| PostError::Permanent(format!("{host}: {e}")))?;
    let mut last = String::from("no address");
    let mut tcp = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    let tcp = tcp.ok_or_else(|| t(last))?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| t(format!("TLS with {host}: {e}")))?;
    let head = tr::https_request_head(host, port, path, body.len());
    tls.write_all(head.as_bytes())
        .await
        .map_err(|e| t(e.to_string()))?;
    tls.write_all(body).await.map_err(|e| t(e.to_string()))?;
    tls.flush().await.map_err(|e| t(e.to_string()))?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while response.len() < MAX_RESPONSE && !response.contains(&b'\n') {
        let n = tls.read(&mut chunk).await.map_err(|e| t(e.to_string()))?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let _ = tls.shutdown().await;
    match tr::http_status(&response) {
        Some(s @ 200..=299) => Ok(s),
        Some(s @ (408 | 429)) => Err(t(format!("HTTP {s}"))),
        Some(s @ 400..=499) => Err(PostError::Permanent(format!("HTTP {s}"))),
        Some(s) => Err(t(format!("HTTP {s}"))),
        None => Err(t("no HTTP status line in the answer".into())),
    }
}

type Loaded = (Aggregator, HashSet<String>, usize);

/// A period's rows, aggregated line by line, and the destinations done.
fn load(dir: &Path, begin: u64, end: u64) -> std::io::Result<Loaded> {
    let mut agg = Aggregator::default();
    let (done, bad) = periods::load(dir, begin, end, |row| agg.add(row))?;
    Ok((agg, done, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::report_periods::{closed_periods, journal_file, note, rows_file};
    use std::io::Write;

    fn append(d: &Path, rows: &[Row], interval: u64) -> std::io::Result<()> {
        periods::append(d, rows, interval, MAX_ROWS_FILE, "TLS report attempts")
    }
    use crate::outbound::tlsrpt::{FailureType, Outcome, PolicyType};
    use crate::queue::Queue;

    fn row(at: u64, ok: bool) -> Row {
        Row::new(
            at,
            &TlsAttempt {
                domain: "rcpt.test".into(),
                policy: PolicyType::NoPolicyFound,
                policy_strings: vec![],
                mx_patterns: vec![],
                mx_host: Some("mx.rcpt.test".into()),
                sending_ip: None,
                receiving_ip: Some("192.0.2.7".parse().unwrap()),
                outcome: if ok {
                    Outcome::Success
                } else {
                    Outcome::Failure {
                        kind: FailureType::StarttlsNotSupported,
                        reason: None,
                    }
                },
            },
        )
    }

    #[test]
    fn attempts_go_to_their_period_and_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir(tmp.path());
        append(&d, &[row(5, true), row(12, true), row(7, false)], 10).unwrap();
        append(&d, &[row(8, true)], 10).unwrap();
        // A torn line (crash mid-write) is skipped, the rest counted.
        std::fs::OpenOptions::new()
            .append(true)
            .open(rows_file(&d, 0, 10))
            .unwrap()
            .write_all(b"{\"at\":9,\"dom")
            .unwrap();
        assert_eq!(closed_periods(&d, 10), Vec::<(u64, u64)>::new());
        assert_eq!(closed_periods(&d, 12), vec![(0, 10)]);
        assert_eq!(closed_periods(&d, 100), vec![(0, 10), (10, 20)]);
        note(&journal_file(&d, 0, 10), "rcpt.test mailto:a@rcpt.test").unwrap();
        let (agg, done, bad) = load(&d, 0, 10).unwrap();
        assert_eq!(bad, 1);
        assert!(done.contains("rcpt.test mailto:a@rcpt.test"));
        assert_eq!(agg.totals("rcpt.test"), (2, 1));
    }

    /// The sink never blocks: past the queue's capacity, attempts are
    /// dropped and counted.
    #[test]
    fn a_full_queue_drops_instead_of_blocking() {
        let log = AttemptLog::default();
        let a = TlsAttempt {
            domain: "rcpt.test".into(),
            policy: PolicyType::NoPolicyFound,
            policy_strings: vec![],
            mx_patterns: vec![],
            mx_host: None,
            sending_ip: None,
            receiving_ip: None,
            outcome: Outcome::Success,
        };
        for _ in 0..ATTEMPT_QUEUE + 5 {
            log.record(a.clone());
        }
        assert_eq!(log.0.dropped(), 5);
    }

    /// No TXT record can be found (the harness's resolver answers
    /// nothing): the period stays for a later run, within the retry
    /// window; after it, the period is done and its files are removed.
    #[tokio::test]
    async fn a_domain_whose_record_cannot_be_read_waits_then_is_given_up() {
        let tmp = tempfile::tempdir().unwrap();
        let h = crate::services::testing::harness_with(
            tmp.path(),
            "outbound {\n tls-reports from=\"tls-reports@example.test\" interval=\"10s\"\n}\n",
        );
        let d = dir(tmp.path());
        append(&d, &[row(5, true), row(6, false)], 10).unwrap();
        let s = run_once(&h.shared, 100).await;
        assert_eq!(s.periods_done, 0, "{s:?}");
        assert!(rows_file(&d, 0, 10).exists());
        let s = run_once(&h.shared, 10 + HTTPS_RETRY_SECS + 1).await;
        assert_eq!(s.periods_done, 1, "{s:?}");
        assert!(!rows_file(&d, 0, 10).exists());
        assert!(h.queue.list().is_empty());
    }
}
