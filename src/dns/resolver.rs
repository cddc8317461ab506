//! `resolver`: the one DNS resolver mailc uses for every lookup it makes, and
//! the routing of outbound mail (RFC 5321 §5.1) built on it.
//!
//! [`build`] makes the resolver: the servers of the top-level `resolver
//! "IP:PORT"` nodes (UDP and TCP to each, the port honoured), or the
//! system's (`/etc/resolv.conf`) when there are none. Its cache is hickory's,
//! bounded by the records' TTLs and here also in size ([`CACHE_ENTRIES`]).
//! `/etc/hosts` is never consulted: MX routing is a DNS matter (Postfix's
//! `smtp_host_lookup = dns` default), and tests must not depend on the
//! machine's hosts file.
//!
//! [`mx_route`] turns a recipient domain into the hosts to try, in order;
//! [`host_addrs`] resolves one host (a smarthost, a route's `via=`). Both map
//! DNS outcomes onto delivery outcomes: a definite "this does not exist" is a
//! [`RouteError::Permanent`] with its RFC 3463 status, anything that may heal
//! (SERVFAIL, REFUSED, a timeout, a host with no address yet) is
//! [`RouteError::Temporary`]. Every query is bounded in time; the number of
//! MX records looked at ([`MAX_MX_RECORDS`]) and of hosts and addresses
//! returned ([`MxPolicy`]) is bounded.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver as HickoryResolver, TokioResolver};

/// Entries (name and type) the resolver caches at most; each also expires
/// with its TTL. 8,192 is hickory's default: a busy outbound queue touches a
/// few thousand domains, and each entry is small.
pub const CACHE_ENTRIES: u64 = 8_192;

/// MX records of one domain looked at, at most. Real domains publish a
/// handful; a zone with hundreds must not make one delivery attempt resolve
/// hundreds of hosts.
pub const MAX_MX_RECORDS: usize = 32;

/// The resolver, with the per-query time bound it was built with.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    timeout: Duration,
    /// What it asks, for messages ("127.0.0.1:5353" or "system").
    servers: String,
}

impl Resolver {
    /// The hickory resolver, for lookups this module does not wrap (TXT for
    /// SPF/DKIM/DMARC, TLSA, PTR).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The bound on one query.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The servers asked, as a user reads them.
    pub fn servers(&self) -> &str {
        &self.servers
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("cannot read the system resolver configuration (/etc/resolv.conf): {0}")]
    System(String),
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

/// One resolver for every lookup mailc makes: the servers given (several
/// allowed; UDP and TCP to each, port honoured) or the system's when the
/// list is empty. `timeout` bounds one query to one server.
pub fn build(servers: &[SocketAddr], timeout: Duration) -> Result<Resolver, ResolverError> {
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    // One try per server; the caller's retry schedule is the retry.
    opts.attempts = 1;
    opts.cache_size = CACHE_ENTRIES;
    opts.ndots = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    let builder = if servers.is_empty() {
        HickoryResolver::builder_tokio().map_err(|e| ResolverError::System(e.to_string()))?
    } else {
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        HickoryResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        )
    };
    let inner = builder
        .with_options(opts)
        .build()
        .map_err(|e| ResolverError::Build(e.to_string()))?;
    let servers = if servers.is_empty() {
        "system".to_string()
    } else {
        servers
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(Resolver {
        inner,
        timeout,
        servers,
    })
}

/// What outbound routing may use, from the config and the listeners.
#[derive(Debug, Clone)]
pub struct MxPolicy {
    pub ipv4: bool,
    pub ipv6: bool,
    /// Hosts returned at most (after the loop rule).
    pub max_mx: usize,
    /// Addresses returned at most, over all hosts.
    pub max_addrs: usize,
    /// The port every address gets (`outbound { port }`, 25).
    pub port: u16,
    /// Our own host names (the configured hostname, lower case, no final
    /// dot): an MX of that name is this server.
    pub me: Vec<String>,
    /// The addresses of our own listeners on `port`: an MX host with one of
    /// them is this server. Only listeners on the outbound port count — a
    /// peer on 127.0.0.1:2526 is not us when we listen on 127.0.0.1:2525,
    /// which is how every loopback test runs. An unspecified address
    /// (`0.0.0.0`, `::`) stands for a listener on every address: the caller
    /// should add the machine's interface addresses; this module counts the
    /// loopback range of that family as ours.
    pub my_ips: Vec<IpAddr>,
}

/// One host to try, with its addresses in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The MX host name (no final dot), or the domain itself for an
    /// implicit MX, or the address literal (`[192.0.2.1]`).
    pub host: String,
    pub preference: u16,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// May heal: try again later.
    #[error("{0}")]
    Temporary(String),
    /// Will not heal: fail the recipient with this RFC 3463 status.
    #[error("{status} {text}")]
    Permanent { status: &'static str, text: String },
}

impl RouteError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, RouteError::Permanent { .. })
    }
}

fn permanent(status: &'static str, text: impl Into<String>) -> RouteError {
    RouteError::Permanent {
        status,
        text: text.into(),
    }
}

/// What one query found.
enum Answer<T> {
    Records(Vec<T>),
    /// The name exists, without records of that type (NODATA).
    NoData,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
}

/// One query, bounded in time; errors that may heal become `Temporary`.
async fn query(r: &Resolver, name: &str, rtype: RecordType) -> Result<Answer<RData>, RouteError> {
    // Each server gets `timeout` (UDP, then TCP on truncation); allow for the
    // pool trying more than one.
    let bound = r.timeout * 2 + Duration::from_millis(500);
    let lookup = tokio::time::timeout(bound, r.inner.lookup(name, rtype)).await;
    match lookup {
        Err(_) => Err(RouteError::Temporary(format!(
            "DNS: no answer for {name} {rtype} within {} ms (servers: {})",
            bound.as_millis(),
            r.servers
        ))),
        Ok(Ok(l)) => {
            let records: Vec<RData> = l
                .answers()
                .iter()
                .filter(|rec| rec.record_type() == rtype)
                .map(|rec| rec.data.clone())
                .collect();
            if records.is_empty() {
                Ok(Answer::NoData)
            } else {
                Ok(Answer::Records(records))
            }
        }
        Ok(Err(e)) => classify(name, rtype, &e),
    }
}

fn classify<T>(name: &str, rtype: RecordType, e: &NetError) -> Result<Answer<T>, RouteError> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => match no.response_code {
            ResponseCode::NXDomain => Ok(Answer::NxDomain),
            ResponseCode::NoError => Ok(Answer::NoData),
            code => Err(RouteError::Temporary(format!(
                "DNS: {name} {rtype}: {code}"
            ))),
        },
        e => Err(RouteError::Temporary(format!("DNS: {name} {rtype}: {e}"))),
    }
}

/// The records of one type at `name`: `Ok(None)` for NXDOMAIN and NODATA,
/// `Err` for a failure that may heal (SERVFAIL, timeout). Bounded in time.
pub async fn records(
    r: &Resolver,
    name: &str,
    rtype: RecordType,
) -> Result<Option<Vec<RData>>, RouteError> {
    match query(r, &fqdn(name), rtype).await? {
        Answer::Records(records) => Ok(Some(records)),
        Answer::NoData | Answer::NxDomain => Ok(None),
    }
}

/// The TXT records at `name`, each one's strings concatenated (RFC 7208
/// §3.3, RFC 7489 §6.6.3); none for NXDOMAIN and NODATA. Bounded in time
/// like every query here; answers are cached by hickory within their TTL.
pub async fn txt(r: &Resolver, name: &str) -> Result<Vec<String>, RouteError> {
    match query(r, &fqdn(name), RecordType::TXT).await? {
        Answer::Records(records) => Ok(records
            .iter()
            .filter_map(|rd| match rd {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Answer::NoData | Answer::NxDomain => Ok(Vec::new()),
    }
}

/// `example.org` / `Example.ORG.` → `example.org.` (no search list applies).
fn fqdn(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

fn bare(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `[192.0.2.1]`, `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
fn address_literal(domain: &str) -> Option<Result<IpAddr, RouteError>> {
    let inner = domain.trim().strip_prefix('[')?.strip_suffix(']')?;
    let parsed = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    };
    Some(
        parsed
            .ok_or_else(|| permanent("5.1.2", format!("{domain} is not a valid address literal"))),
    )
}

fn family_allowed(ip: &IpAddr, p: &MxPolicy) -> bool {
    match ip {
        IpAddr::V4(_) => p.ipv4,
        IpAddr::V6(_) => p.ipv6,
    }
}

/// Is `ip` an address of ours (see [`MxPolicy::my_ips`])?
fn is_mine(ip: &IpAddr, p: &MxPolicy) -> bool {
    let ip = ip.to_canonical();
    p.my_ips.iter().any(|mine| {
        let mine = mine.to_canonical();
        mine == ip
            || (mine.is_unspecified() && ip.is_loopback() && mine.is_ipv4() == ip.is_ipv4())
            || (mine.is_unspecified() && ip.is_unspecified())
    })
}

fn is_my_name(host: &str, p: &MxPolicy) -> bool {
    let h = bare(host);
    p.me.iter().any(|m| bare(m) == h)
}

/// A small random source: std's per-process random hash keys, stirred with
/// a counter. Shuffling MX hosts of one preference needs spread, not
/// cryptographic quality.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = (random_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// What the A and AAAA queries of one host found.
enum HostAddrs {
    Found(Vec<IpAddr>),
    /// Neither family has an address (NODATA or NXDOMAIN for both).
    None {
        nxdomain: bool,
    },
}

/// A and AAAA of `host` (the families the policy allows), IPv6 and IPv4
/// interleaved so that a broken IPv6 path does not starve IPv4 when
/// `max_addrs` cuts the list.
async fn resolve_host(r: &Resolver, host: &str, p: &MxPolicy) -> Result<HostAddrs, RouteError> {
    let name = fqdn(host);
    let (v4, v6) = tokio::join!(
        async {
            if p.ipv4 {
                Some(query(r, &name, RecordType::A).await)
            } else {
                None
            }
        },
        async {
            if p.ipv6 {
                Some(query(r, &name, RecordType::AAAA).await)
            } else {
                None
            }
        },
    );
    let mut v4_addrs = Vec::new();
    let mut v6_addrs = Vec::new();
    let mut nx = 0;
    let mut asked = 0;
    let mut temporary = None;
    for (answer, out) in [(v4, &mut v4_addrs), (v6, &mut v6_addrs)] {
        let Some(answer) = answer else { continue };
        asked += 1;
        match answer {
            Ok(Answer::Records(rs)) => out.extend(rs.into_iter().filter_map(|d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Ok(Answer::NoData) => {}
            Ok(Answer::NxDomain) => nx += 1,
            Err(e) => temporary = Some(e),
        }
    }
    let mut addrs = Vec::with_capacity(v4_addrs.len() + v6_addrs.len());
    let (mut a, mut b) = (v6_addrs.into_iter(), v4_addrs.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => addrs.extend(x.into_iter().chain(y)),
        }
    }
    addrs.dedup();
    if !addrs.is_empty() {
        // One family answered: use it even if the other failed.
        return Ok(HostAddrs::Found(addrs));
    }
    if let Some(e) = temporary {
        return Err(e);
    }
    if asked == 0 {
        return Err(permanent(
            "5.4.4",
            "neither IPv4 nor IPv6 is allowed for outbound delivery",
        ));
    }
    Ok(HostAddrs::None {
        nxdomain: nx == asked,
    })
}

fn with_port(addrs: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect()
}

fn loop_error(host: &str) -> RouteError {
    permanent(
        "5.4.6",
        format!("mail loops back to myself (MX {host} is this server)"),
    )
}

/// The hosts to try for `domain`, in order: MX records by preference,
/// shuffled within one preference; the domain itself (implicit MX) when it
/// has no MX. See the module doc for the outcomes.
///
/// - null MX (RFC 7505: one MX of `.`): `Permanent 5.1.10`;
/// - NXDOMAIN: `Permanent 5.1.2`; no MX and no address: `Permanent 5.1.2`;
/// - SERVFAIL, REFUSED, timeouts: `Temporary`;
/// - an MX that is this server (a name in `me`, an address in `my_ips`):
///   the MX records of its preference and above are dropped (RFC 5321 §5.1);
///   when none remains, `Permanent 5.4.6`;
/// - an MX host without address is skipped; when none remains, `Temporary`;
/// - at most `max_mx` hosts and `max_addrs` addresses in all.
pub async fn mx_route(r: &Resolver, domain: &str, p: &MxPolicy) -> Result<Vec<Hop>, RouteError> {
    if let Some(literal) = address_literal(domain) {
        return literal_route(domain, literal?, p);
    }
    let name = fqdn(domain);
    let domain = bare(domain);
    if domain.is_empty() {
        return Err(permanent("5.1.2", "empty domain"));
    }
    let mut mxs = mx_records(r, &name, &domain).await?;
    if mxs.is_empty() {
        return implicit_mx(r, domain, p).await;
    }
    // Preference order, shuffled within one preference (shuffle, then a
    // stable sort by preference).
    shuffle(&mut mxs);
    mxs.sort_by_key(|(pref, _)| *pref);
    mxs.truncate(MAX_MX_RECORDS);
    for (_, h) in &mut mxs {
        *h = bare(h);
    }
    let resolved = resolve_all(r, &mxs, p).await?;
    let our_pref = our_preference(&mxs, &resolved, p);
    choose_hops(&domain, &mxs, resolved, our_pref, p)
}

/// An address literal (`[192.0.2.1]`) is its own single hop.
fn literal_route(domain: &str, ip: IpAddr, p: &MxPolicy) -> Result<Vec<Hop>, RouteError> {
    if !family_allowed(&ip, p) {
        return Err(permanent(
            "5.4.4",
            format!("{domain}: this address family is disabled for outbound delivery"),
        ));
    }
    if is_mine(&ip, p) {
        return Err(loop_error(domain));
    }
    Ok(vec![Hop {
        host: domain.trim().to_string(),
        preference: 0,
        addrs: vec![SocketAddr::new(ip, p.port)],
    }])
}

/// The domain's MX records (preference, host), null MX left out; a domain
/// that does not exist or has only a null MX accepts no mail.
async fn mx_records(
    r: &Resolver,
    name: &str,
    domain: &str,
) -> Result<Vec<(u16, String)>, RouteError> {
    let mut mxs: Vec<(u16, String)> = match query(r, name, RecordType::MX).await? {
        Answer::NxDomain => {
            return Err(permanent(
                "5.1.2",
                format!("domain {domain} does not exist (DNS NXDOMAIN)"),
            ));
        }
        Answer::NoData => Vec::new(),
        Answer::Records(rs) => rs
            .into_iter()
            .filter_map(|d| match d {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect(),
    };
    // RFC 7505: a null MX is the domain's only MX. Mixed with real ones it
    // is a broken zone: ignore the null one and use the others.
    let nulls = mxs.iter().filter(|(_, h)| bare(h).is_empty()).count();
    if nulls > 0 && nulls == mxs.len() {
        return Err(permanent(
            "5.1.10",
            format!("domain {domain} accepts no mail (null MX, RFC 7505)"),
        ));
    }
    mxs.retain(|(_, h)| !bare(h).is_empty());
    Ok(mxs)
}

/// Implicit MX (RFC 5321 §5.1): without MX records, the domain's own
/// addresses.
async fn implicit_mx(r: &Resolver, domain: String, p: &MxPolicy) -> Result<Vec<Hop>, RouteError> {
    match resolve_host(r, &domain, p).await? {
        HostAddrs::None { .. } => Err(permanent(
            "5.1.2",
            format!("domain {domain} has no MX and no address record"),
        )),
        HostAddrs::Found(ips) => {
            if ips.iter().any(|ip| is_mine(ip, p)) || is_my_name(&domain, p) {
                return Err(loop_error(&domain));
            }
            let ips: Vec<IpAddr> = ips.into_iter().take(p.max_addrs).collect();
            if ips.is_empty() {
                return Err(RouteError::Temporary(format!(
                    "{domain}: no address allowed by the policy"
                )));
            }
            Ok(vec![Hop {
                host: domain,
                preference: 0,
                addrs: with_port(&ips, p.port),
            }])
        }
    }
}

/// Each MX host's addresses, in the order of `mxs`.
type Resolved = Vec<Option<Result<HostAddrs, RouteError>>>;

/// Resolves every host (concurrently): the loop rule needs to know which
/// preferences are ours before any host is chosen.
async fn resolve_all(
    r: &Resolver,
    mxs: &[(u16, String)],
    p: &MxPolicy,
) -> Result<Resolved, RouteError> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (_, host)) in mxs.iter().enumerate() {
        let (r, host, p) = (r.clone(), host.clone(), p.clone());
        set.spawn(async move { (i, resolve_host(&r, &host, &p).await) });
    }
    let mut resolved: Resolved = (0..mxs.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, res)) => resolved[i] = Some(res),
            Err(e) => {
                return Err(RouteError::Temporary(format!(
                    "DNS: a lookup task failed: {e}"
                )));
            }
        }
    }
    Ok(resolved)
}

/// The lowest preference at which this server is an MX host (by name or
/// address), if it is one.
fn our_preference(mxs: &[(u16, String)], resolved: &Resolved, p: &MxPolicy) -> Option<u16> {
    mxs.iter()
        .zip(resolved)
        .filter(|((_, host), res)| {
            is_my_name(host, p)
                || matches!(res, Some(Ok(HostAddrs::Found(ips))) if ips.iter().any(|ip| is_mine(ip, p)))
        })
        .map(|((pref, _), _)| *pref)
        .min()
}

/// The hops to try, within the policy's host and address budgets. RFC 5321
/// §5.1: if we are one of the MX hosts, every record of our preference and
/// above is dropped; when that leaves nothing, the mail loops.
fn choose_hops(
    domain: &str,
    mxs: &[(u16, String)],
    resolved: Resolved,
    our_pref: Option<u16>,
    p: &MxPolicy,
) -> Result<Vec<Hop>, RouteError> {
    let mut hops = Vec::new();
    let mut budget = p.max_addrs;
    let mut skipped: Vec<String> = Vec::new();
    for ((pref, host), res) in mxs.iter().zip(resolved) {
        if our_pref.is_some_and(|ours| *pref >= ours) {
            continue;
        }
        match res {
            Some(Ok(HostAddrs::Found(ips))) => {
                if hops.len() >= p.max_mx || budget == 0 {
                    break;
                }
                let take: Vec<IpAddr> = ips.into_iter().take(budget).collect();
                budget -= take.len();
                hops.push(Hop {
                    host: host.clone(),
                    preference: *pref,
                    addrs: with_port(&take, p.port),
                });
            }
            Some(Ok(HostAddrs::None { nxdomain })) => skipped.push(format!(
                "{host}: {}",
                if nxdomain {
                    "host does not exist"
                } else {
                    "no address record"
                }
            )),
            Some(Err(e)) => skipped.push(format!("{host}: {e}")),
            None => skipped.push(format!("{host}: not resolved")),
        }
    }
    if !hops.is_empty() {
        return Ok(hops);
    }
    if let Some(ours) = our_pref
        && mxs.iter().all(|(pref, _)| *pref >= ours)
    {
        let me = mxs
            .iter()
            .find(|(pref, _)| *pref == ours)
            .map_or(domain, |(_, h)| h.as_str());
        return Err(loop_error(me));
    }
    Err(RouteError::Temporary(format!(
        "no MX host of {domain} has a usable address ({})",
        skipped.join("; ")
    )))
}

/// A and AAAA of a host name (smarthost, a route's `via=`), or an address
/// (`192.0.2.1`, `[192.0.2.1]`, `::1`): the same outcomes as [`mx_route`] —
/// NXDOMAIN or no address is `Permanent 5.4.4` (the route cannot be used;
/// it names the host, not the recipient's domain), DNS failures are
/// `Temporary`, a host that is this server is `Permanent 5.4.6`.
pub async fn host_addrs(
    r: &Resolver,
    host: &str,
    port: u16,
    p: &MxPolicy,
) -> Result<Vec<SocketAddr>, RouteError> {
    let literal = match address_literal(host) {
        Some(lit) => Some(lit?),
        None => host.trim().parse::<IpAddr>().ok(),
    };
    let ips = match literal {
        Some(ip) => {
            if !family_allowed(&ip, p) {
                return Err(permanent(
                    "5.4.4",
                    format!("{host}: this address family is disabled for outbound delivery"),
                ));
            }
            vec![ip]
        }
        None => match resolve_host(r, host, p).await? {
            HostAddrs::Found(ips) => ips,
            HostAddrs::None { nxdomain: true } => {
                return Err(permanent(
                    "5.4.4",
                    format!("host {} does not exist (DNS NXDOMAIN)", bare(host)),
                ));
            }
            HostAddrs::None { nxdomain: false } => {
                return Err(permanent(
                    "5.4.4",
                    format!("host {} has no address record", bare(host)),
                ));
            }
        },
    };
    // Our own listeners only count on the port the route uses.
    if (port == p.port && ips.iter().any(|ip| is_mine(ip, p))) || is_my_name(host, p) {
        return Err(loop_error(host.trim()));
    }
    Ok(ips
        .into_iter()
        .take(p.max_addrs.max(1))
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> MxPolicy {
        MxPolicy {
            ipv4: true,
            ipv6: true,
            max_mx: 5,
            max_addrs: 10,
            port: 25,
            me: vec!["mx.example.net".into()],
            my_ips: vec!["192.0.2.25".parse().unwrap(), "::".parse().unwrap()],
        }
    }

    #[test]
    fn address_literals() {
        assert_eq!(
            address_literal("[192.0.2.1]").unwrap().unwrap(),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            address_literal("[IPv6:2001:db8::1]").unwrap().unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert!(address_literal("[2001:db8::1]").unwrap().is_err());
        assert!(address_literal("[nonsense]").unwrap().is_err());
        assert!(address_literal("example.org").is_none());
    }

    #[test]
    fn who_is_me() {
        let p = policy();
        assert!(is_mine(&"192.0.2.25".parse().unwrap(), &p));
        assert!(is_mine(&"::ffff:192.0.2.25".parse().unwrap(), &p));
        // `::` covers the IPv6 loopback, not the IPv4 one.
        assert!(is_mine(&"::1".parse().unwrap(), &p));
        assert!(!is_mine(&"127.0.0.1".parse().unwrap(), &p));
        assert!(!is_mine(&"192.0.2.26".parse().unwrap(), &p));
        assert!(is_my_name("MX.Example.NET.", &p));
        assert!(!is_my_name("mx2.example.net", &p));
    }

    #[test]
    fn shuffle_keeps_elements_and_moves_them() {
        let mut seen_first = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut v = [1, 2, 3];
            shuffle(&mut v);
            let mut sorted = v;
            sorted.sort();
            assert_eq!(sorted, [1, 2, 3]);
            seen_first.insert(v[0]);
        }
        assert_eq!(seen_first.len(), 3);
    }
}
