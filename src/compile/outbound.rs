//! Outbound delivery: the retry schedule (with the RFC 5321 expiry rules),
//! connection limits, the DNS servers, and the routes. `relay-host` is the
//! older spelling of a default route and becomes one here.

use std::collections::HashMap;

use super::{Cx, defaults as def, secrets};
use crate::addr;
use crate::diag::{Code, Diag};
use crate::spec::ast::{Config, Outbound, Route};
use crate::spec::source::{Span, Spanned};
use crate::tables::{OutboundTable, OutboundTls, RelayHostTable, RelayTls, RouteTable};

pub(super) fn lower(
    cfg: &Config,
    relay_host: Option<&RelayHostTable>,
    cx: &mut Cx<'_>,
) -> (OutboundTable, Vec<std::net::SocketAddr>) {
    let o = &cfg.outbound;
    let retry_secs = retry_waits(o, cx);
    let expire_secs = expiry(o, &retry_secs, cx);
    let delay_warning_secs = delay_warning(o, expire_secs, cx);
    let (ipv4, ipv6) = match o.ip_version.as_ref().map(|v| v.value) {
        Some("ipv4") => (true, false),
        Some("ipv6") => (false, true),
        _ => (true, true),
    };
    for f in &o.ca_files {
        secrets::check_file(f, false, "CA file", cx);
    }
    let routes = routes(cfg, relay_host, cx);
    let resolvers = resolvers(cfg, cx);
    let table = OutboundTable {
        retry_secs,
        expire_secs,
        delay_warning_secs,
        port: o.port.as_ref().map_or(def::OUTBOUND_PORT, |p| p.value),
        ipv4,
        ipv6,
        max_connections: o
            .max_connections
            .as_ref()
            .map_or(def::OUTBOUND_MAX_CONNECTIONS, |v| v.value),
        max_connections_per_destination: o
            .max_per_destination
            .as_ref()
            .map_or(def::OUTBOUND_MAX_PER_DESTINATION, |v| v.value),
        max_messages_per_connection: o
            .max_messages
            .as_ref()
            .map_or(def::OUTBOUND_MAX_MESSAGES_PER_CONNECTION, |v| v.value),
        max_mx_hosts: def::OUTBOUND_MAX_MX_HOSTS,
        max_addresses: def::OUTBOUND_MAX_ADDRESSES,
        ca_files: o.ca_files.iter().map(|f| f.value.clone()).collect(),
        routes,
        // Needs our domains: set by `server::tls_reports` once they are known.
        tls_reports: None,
        dane: o.dane.as_ref().map_or(def::OUTBOUND_DANE, |v| v.value),
        mta_sts: o
            .mta_sts
            .as_ref()
            .map_or(def::OUTBOUND_MTA_STS, |v| v.value),
    };
    (table, resolvers)
}

/// The waits between attempts (the default schedule unless `retry` is
/// given); a wait under a minute is an error.
fn retry_waits(o: &Outbound, cx: &mut Cx<'_>) -> Vec<u64> {
    for r in &o.retry {
        if r.value < 60 {
            cx.diags.push(
                Diag::error(Code::OutboundRetry, "a retry wait under one minute")
                    .label(r.span, "too short")
                    .help("remote servers that defer mail (greylisting, overload) need minutes, not seconds; use at least \"1m\""),
            );
        }
    }
    if o.retry.is_empty() {
        def::OUTBOUND_RETRY_SECS.to_vec()
    } else {
        o.retry.iter().map(|r| r.value).collect()
    }
}

/// When a message bounces: under a day is an error, under the 4 days of
/// RFC 5321 a warning, and it must come after the first retry.
fn expiry(o: &Outbound, retry_secs: &[u64], cx: &mut Cx<'_>) -> u64 {
    let Some(e) = &o.expire else {
        return def::OUTBOUND_EXPIRE_SECS;
    };
    if e.value < def::OUTBOUND_EXPIRE_MIN_SECS {
        cx.diags.push(
            Diag::error(Code::OutboundExpire, "messages would bounce after less than a day")
                .label(e.span, "shorter than one day")
                .help("a destination down for a weekend would get its mail bounced; RFC 5321 §4.5.4.1 asks for 4-5 days (the default is 5d)"),
        );
    } else if e.value < def::OUTBOUND_EXPIRE_RFC_SECS {
        cx.diags.push(
            Diag::warning(
                Code::OutboundExpire,
                "messages bounce after less than 4 days",
            )
            .label(e.span, "shorter than RFC 5321 asks")
            .help("RFC 5321 §4.5.4.1: giving up \"generally needs to be at least 4-5 days\""),
        );
    }
    if let Some(first) = retry_secs.first()
        && e.value <= *first
    {
        cx.diags.push(
            Diag::error(
                Code::OutboundRetry,
                "messages expire before their first retry",
            )
            .label(e.span, "expiry")
            .help("make the expiry longer than the first retry wait"),
        );
    }
    e.value
}

/// When the sender hears of a delay (`#null`: never); one set at or after
/// the expiry would never be sent.
fn delay_warning(o: &Outbound, expire_secs: u64, cx: &mut Cx<'_>) -> Option<u64> {
    let delay_warning_secs = match &o.delay_warning {
        None => Some(def::OUTBOUND_DELAY_WARNING_SECS),
        Some(d) => d.value,
    };
    if let (Some(d), Some(w)) = (&o.delay_warning, delay_warning_secs)
        && w >= expire_secs
    {
        cx.diags.push(
            Diag::warning(
                Code::OutboundRetry,
                "the delay warning comes after the expiry",
            )
            .label(d.span, "never sent")
            .help("make it shorter than `expire`, or write `delay-warning #null`"),
        );
    }
    delay_warning_secs
}

/// The routes, one per domain pattern, most specific first; `relay-host`
/// becomes the default route unless a `route "*"` already is.
fn routes(cfg: &Config, relay_host: Option<&RelayHostTable>, cx: &mut Cx<'_>) -> Vec<RouteTable> {
    let mut routes: Vec<RouteTable> = Vec::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for r in &cfg.routes {
        let Some(t) = route(r, cx) else { continue };
        if let Some(first) = seen.get(&t.domain) {
            cx.diags.push(
                Diag::error(
                    Code::RouteDuplicate,
                    format!("two routes for `{}`", t.domain),
                )
                .label(r.domain.span, "second route")
                .label(*first, "first route")
                .help("keep one `route` per domain pattern"),
            );
            continue;
        }
        seen.insert(t.domain.clone(), r.domain.span);
        routes.push(t);
    }
    if let Some(rh) = relay_host {
        if let Some(first) = seen.get("*") {
            cx.diags.push(
                Diag::error(
                    Code::RouteDuplicate,
                    "`relay-host` and `route \"*\"` both set the default route",
                )
                .label(*first, "default route")
                .help("remove `relay-host` and give the route `via=`"),
            );
        } else {
            routes.push(relay_host_route(rh));
        }
    }
    routes.sort_by(|a, b| {
        b.specificity()
            .cmp(&a.specificity())
            .then(a.domain.cmp(&b.domain))
    });
    routes
}

/// `relay-host`, the older spelling of a default route.
fn relay_host_route(rh: &RelayHostTable) -> RouteTable {
    RouteTable {
        domain: "*".into(),
        via: Some((rh.host.clone(), rh.port)),
        tls: match rh.tls {
            RelayTls::Implicit => OutboundTls::Implicit,
            RelayTls::Starttls if rh.user.is_some() => def::ROUTE_TLS_WITH_LOGIN,
            RelayTls::Starttls => OutboundTls::Require,
        },
        user: rh.user.clone(),
        password_file: rh.password_file.clone(),
        source: None,
    }
}

/// The DNS servers in the order given; one listed twice is a warning.
fn resolvers(cfg: &Config, cx: &mut Cx<'_>) -> Vec<std::net::SocketAddr> {
    let mut resolvers = Vec::new();
    let mut seen_resolvers: HashMap<std::net::SocketAddr, Span> = HashMap::new();
    for r in &cfg.resolvers {
        if let Some(first) = seen_resolvers.get(&r.value) {
            cx.diags.push(
                Diag::warning(
                    Code::ResolverDuplicate,
                    format!("DNS server {} is listed twice", r.value),
                )
                .label(r.span, "again")
                .label(*first, "first")
                .help("remove one"),
            );
            continue;
        }
        seen_resolvers.insert(r.value, r.span);
        resolvers.push(r.value);
    }
    resolvers
}

/// `HOST:PORT` with the host a domain name, an IP or `[IPv6]`.
pub(super) fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    if host.contains(':') && !host.starts_with('[') {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    Some((relay_host_name(host)?, port))
}

/// The host of a relay: an IP (`[IPv6]` kept in brackets) as written, or a
/// domain name in ASCII.
pub(super) fn relay_host_name(host: &str) -> Option<String> {
    if let Some(ip) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        ip.parse::<std::net::IpAddr>()
            .is_ok()
            .then(|| host.to_string())
    } else if host.parse::<std::net::IpAddr>().is_ok() {
        Some(host.to_string())
    } else {
        addr::normalize_domain(host).ok().map(|d| d.ascii)
    }
}

fn route(r: &Route, cx: &mut Cx<'_>) -> Option<RouteTable> {
    let domain = route_domain(r, cx)?;
    let via = match &r.via {
        None => None,
        Some(v) => Some(route_via(v, cx)?),
    };
    let tls = match r.tls.as_ref().map(|t| t.value) {
        Some("opportunistic") => OutboundTls::Opportunistic,
        Some("require") => OutboundTls::Require,
        Some("require-verified") => OutboundTls::RequireVerified,
        Some("implicit") => OutboundTls::Implicit,
        _ if r.user.is_some() => def::ROUTE_TLS_WITH_LOGIN,
        _ => def::ROUTE_TLS,
    };
    check_route_login(r, via.is_some(), tls, cx);
    Some(RouteTable {
        domain,
        via,
        tls,
        user: r.user.as_ref().map(|u| u.value.clone()),
        password_file: r.password_file.as_ref().map(|p| p.value.clone()),
        source: r.source.as_ref().map(|s| s.value),
    })
}

/// The route's domain pattern in ASCII: `*`, `*.domain` or a domain.
fn route_domain(r: &Route, cx: &mut Cx<'_>) -> Option<String> {
    let raw = r.domain.value.trim();
    let domain = if raw == "*" {
        Some("*".to_string())
    } else if let Some(parent) = raw.strip_prefix("*.") {
        addr::normalize_domain(parent)
            .ok()
            .map(|d| format!("*.{}", d.ascii))
    } else {
        addr::normalize_domain(raw).ok().map(|d| d.ascii)
    };
    if domain.is_none() {
        cx.diags.push(
            Diag::error(
                Code::RouteInvalid,
                format!("`{raw}` is not a domain pattern"),
            )
            .label(r.domain.span, "not a domain, `*.domain` or `*`")
            .help("write \"example.org\", \"*.example.org\" (its subdomains) or \"*\" (the default route)"),
        );
    }
    domain
}

/// The relay host of `via=`.
fn route_via(v: &Spanned<String>, cx: &mut Cx<'_>) -> Option<(String, u16)> {
    let hp = host_port(&v.value);
    if hp.is_none() {
        cx.diags.push(
            Diag::error(
                Code::RouteInvalid,
                format!("relay host `{}` is not HOST:PORT", v.value),
            )
            .label(v.span, "not HOST:PORT")
            .help("write it as \"smtp.provider.example:587\" (IPv6 as \"[2001:db8::1]:587\")"),
        );
    }
    hp
}

/// A login goes to a relay host only, needs its password file, and only
/// over TLS that verifies the server.
fn check_route_login(r: &Route, has_via: bool, tls: OutboundTls, cx: &mut Cx<'_>) {
    if r.user.is_some() && !has_via {
        cx.diags.push(
            Diag::error(Code::RouteInvalid, "a login without a relay host")
                .label(r.span, "`user` needs `via`")
                .help("MX hosts are not logged in to; add `via=\"HOST:PORT\"` or remove `user`"),
        );
    }
    if r.user.is_some() != r.password_file.is_some() {
        cx.diags.push(
            Diag::error(
                Code::PropertyMissing,
                "a route needs both `user` and `password-file`, or neither",
            )
            .label(r.span, "incomplete login")
            .help("add the missing one"),
        );
    }
    if let Some(p) = &r.password_file {
        secrets::check_file(p, true, "route password file", cx);
    }
    if r.user.is_some()
        && matches!(tls, OutboundTls::Opportunistic | OutboundTls::Require)
        && let Some(t) = &r.tls
    {
        cx.diags.push(
            Diag::error(
                Code::RouteInsecureLogin,
                "this route would send its password to a server it has not verified",
            )
            .label(t.span, "not verified")
            .help("use tls=\"require-verified\" (STARTTLS) or tls=\"implicit\" (port 465)"),
        );
    }
}
