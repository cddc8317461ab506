//! Server-wide settings: hostname, state directory, TLS certificates,
//! listeners (TLS and AUTH modes, the plaintext-AUTH rule), relay safety,
//! policies, limits, the login cache, timeouts and the relay host.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::{Cx, defaults as def, secrets};
use crate::addr;
use crate::diag::{Code, Diag};
use crate::ipnet::Network;
use crate::spec::ast::{Config, Listener, TlsCert};
use crate::spec::source::{Span, Spanned};
use crate::tables::{
    Action, AuthCacheTable, AuthMode, CertSource, Certificate, InboundPolicy, Limits, ListenerKind,
    ListenerTable, LogTable, ManageSieveTable, RelayHostTable, RelayTls, SubmissionPolicy,
    Timeouts, TlsMode,
};

pub(super) struct Server {
    pub hostname: Option<String>,
    pub state_dir: PathBuf,
    pub public_ips: Vec<IpAddr>,
    pub log: LogTable,
    pub certificates: Vec<Certificate>,
    pub listeners: Vec<ListenerTable>,
    pub trusted_networks: Vec<Network>,
    pub inbound: InboundPolicy,
    pub submission: SubmissionPolicy,
    pub limits: Limits,
    pub auth_cache: AuthCacheTable,
    pub managesieve: ManageSieveTable,
    pub timeouts: Timeouts,
    pub relay_host: Option<RelayHostTable>,
}

fn or<T: Clone>(v: &Option<Spanned<T>>, default: T) -> T {
    v.as_ref().map_or(default, |s| s.value.clone())
}

fn action(v: &Option<Spanned<&'static str>>, default: Action) -> Action {
    match v.as_ref().map(|s| s.value) {
        Some("accept") => Action::Accept,
        Some("junk") => Action::Junk,
        Some("reject") => Action::Reject,
        _ => default,
    }
}

pub(super) fn lower(cfg: &Config, cx: &mut Cx<'_>) -> Server {
    let hostname = hostname(cfg, cx);
    let state_dir = cfg
        .state
        .as_ref()
        .map_or_else(|| PathBuf::from(def::STATE_DIR), |s| s.value.clone());
    let limits = Limits {
        max_connections: or(&cfg.limits.max_connections, def::MAX_CONNECTIONS),
        max_connections_per_ip: or(
            &cfg.limits.max_connections_per_ip,
            def::MAX_CONNECTIONS_PER_IP,
        ),
        max_errors: or(&cfg.limits.max_errors, def::MAX_ERRORS),
        auth_failures: or(&cfg.limits.auth_failures, def::AUTH_FAILURES),
        auth_lockout_secs: or(&cfg.limits.auth_lockout, def::AUTH_LOCKOUT_SECS),
    };
    let auth_cache = auth_cache(cfg, cx);
    let certificates = certificates(cfg, hostname.as_deref(), &state_dir, cx);
    let listeners = listeners(cfg, !certificates.is_empty(), &limits, cx);
    let timeouts = timeouts(&cfg.timeouts, cx);
    Server {
        hostname,
        state_dir,
        public_ips: cfg.public_ips.iter().map(|s| s.value).collect(),
        log: LogTable {
            level: or(&cfg.log.level, def::LOG_LEVEL).to_string(),
            format: or(&cfg.log.format, def::LOG_FORMAT).to_string(),
        },
        certificates,
        listeners,
        trusted_networks: cfg.trusted_networks.iter().map(|s| s.value).collect(),
        inbound: InboundPolicy {
            dnsbl: super::screen::dnsbl(cfg.inbound.dnsbl.as_ref(), cx),
            greylist: super::screen::greylist(cfg.inbound.greylist.as_ref(), cx),
            ..inbound_policy(&cfg.inbound)
        },
        submission: submission_policy(&cfg.submission),
        limits,
        auth_cache,
        managesieve: managesieve(cfg),
        timeouts,
        relay_host: relay_host(cfg, cx),
    }
}

/// The server's own name, in ASCII; it must be fully qualified.
fn hostname(cfg: &Config, cx: &mut Cx<'_>) -> Option<String> {
    let h = cfg.hostname.as_ref()?;
    match addr::normalize_domain(&h.value) {
        Ok(d) if addr::is_fqdn(&d.ascii) => Some(d.ascii),
        Ok(d) => {
            cx.diags.push(
                Diag::error(
                    Code::HostnameInvalid,
                    format!("hostname `{}` is not fully qualified", h.value),
                )
                .label(h.span, "needs a domain part")
                .help(format!(
                    "use the full name other servers reach this host by, e.g. \"mail.{}.example\"",
                    d.ascii
                )),
            );
            None
        }
        Err(e) => {
            cx.diags.push(
                Diag::error(
                    Code::HostnameInvalid,
                    format!("hostname `{}`: {e}", h.value),
                )
                .label(h.span, "not a valid host name")
                .help("the hostname is a DNS name such as \"mail.example.com\""),
            );
            None
        }
    }
}

/// The protocol timeouts. IMAP sessions are never cut before the RFC
/// minimum (clients re-issue IDLE every 29 minutes and expect to stay
/// connected): shorter values are raised here, with a warning. The others
/// are used as written.
fn timeouts(t: &crate::spec::ast::Timeouts, cx: &mut Cx<'_>) -> Timeouts {
    for (v, min, rfc, raised) in [
        (
            &t.smtp_command,
            def::RFC_MIN_SMTP_COMMAND_SECS,
            "RFC 5321 §4.5.3.2.7",
            false,
        ),
        (
            &t.smtp_data,
            def::RFC_MIN_SMTP_DATA_SECS,
            "RFC 5321 §4.5.3.2.5",
            false,
        ),
        (&t.imap, def::RFC_MIN_IMAP_SECS, "RFC 9051 §5.4", true),
        (&t.imap_idle, def::RFC_MIN_IMAP_SECS, "RFC 9051 §5.4", true),
        (&t.pop3, def::RFC_MIN_POP3_SECS, "RFC 1939 §3", false),
    ] {
        if let Some(v) = v
            && v.value < min
        {
            cx.diags.push(timeout_below_rfc(v, min, rfc, raised));
        }
    }
    Timeouts {
        smtp_command_secs: or(&t.smtp_command, def::SMTP_COMMAND_SECS),
        smtp_data_secs: or(&t.smtp_data, def::SMTP_DATA_SECS),
        imap_secs: or(&t.imap, def::IMAP_SECS).max(def::RFC_MIN_IMAP_SECS),
        imap_idle_secs: or(&t.imap_idle, def::IMAP_IDLE_SECS).max(def::RFC_MIN_IMAP_SECS),
        pop3_secs: or(&t.pop3, def::POP3_SECS),
        managesieve_secs: or(&t.managesieve, def::MANAGESIEVE_SECS),
        http_secs: or(&t.http, def::HTTP_SECS),
        shutdown_grace_secs: or(&t.shutdown_grace, def::SHUTDOWN_GRACE_SECS),
    }
}

fn timeout_below_rfc(v: &Spanned<u64>, min: u64, rfc: &str, raised: bool) -> Diag {
    let min_text = crate::spec::value::format_duration(min);
    let d = Diag::warning(
        Code::TimeoutBelowRfc,
        format!(
            "timeout of {} is below the {min_text} that {rfc} asks servers to allow",
            crate::spec::value::format_duration(v.value),
        ),
    )
    .label(v.span, "shorter than the RFC minimum");
    if raised {
        d.help(format!(
            "IMAP sessions always get at least {min_text}: {min_text} is used"
        ))
    } else {
        d.help("slow but legitimate clients will be cut off; raise it unless you know why")
    }
}

fn inbound_policy(i: &crate::spec::ast::Inbound) -> InboundPolicy {
    InboundPolicy {
        checks: or(&i.checks, def::INBOUND_CHECKS),
        max_message_size: or(&i.max_message_size, def::MAX_MESSAGE_SIZE),
        max_recipients: or(&i.max_recipients, def::MAX_RECIPIENTS),
        spf_fail: action(&i.spf_fail, def::SPF_FAIL),
        spf_softfail: action(&i.spf_softfail, def::SPF_SOFTFAIL),
        dkim_fail: action(&i.dkim_fail, def::DKIM_FAIL),
        dmarc_reject: action(&i.dmarc_reject, def::DMARC_REJECT),
        dmarc_quarantine: action(&i.dmarc_quarantine, def::DMARC_QUARANTINE),
        dmarc_own: i
            .dmarc_own
            .as_ref()
            .map(|_| action(&i.dmarc_own, Action::Accept)),
        defer_on_dns_error: i
            .dns_error
            .as_ref()
            .map_or(def::DEFER_ON_DNS_ERROR, |v| v.value == "tempfail"),
        // Needs our domains: set by [`dmarc_reports`] once they are known.
        dmarc_reports: None,
        dnsbl: None,
        greylist: None,
    }
}

/// `inbound { dmarc { reports } }`: the sender must be an address in one
/// of our domains (the reports are DKIM-signed with its key, and bounces
/// of them come back to it).
/// An address in one of our domains, lower-cased domain: `(address,
/// domain)`; else a diagnostic.
fn own_sender(
    from: &Spanned<String>,
    domains: &std::collections::BTreeMap<String, crate::tables::DomainTable>,
    what: &str,
    code: Code,
    local: &str,
    cx: &mut Cx<'_>,
) -> Option<(String, String)> {
    let parsed = addr::split(&from.value).and_then(|(l, domain)| {
        let d = addr::normalize_domain(domain).ok()?;
        (!l.is_empty() && domains.contains_key(&d.ascii))
            .then(|| (format!("{l}@{}", d.ascii), d.ascii))
    });
    if parsed.is_none() {
        let mut ours: Vec<&str> = domains.keys().map(String::as_str).collect();
        ours.truncate(3);
        cx.diags.push(
            Diag::error(
                code,
                format!(
                    "{what} would be sent from `{}`, which is not an address in one of our domains",
                    from.value
                ),
            )
            .label(from.span, "not one of our addresses")
            .help(format!(
                "reports are DKIM-signed with the sender's domain key: use an address such as `{local}@{}`",
                ours.first().copied().unwrap_or("example.org")
            )),
        );
    }
    parsed
}

/// `inbound { dmarc { reports } }`: the sender must be an address in one
/// of our domains (the reports are DKIM-signed with its key, and bounces
/// of them come back to it).
pub(crate) fn dmarc_reports(
    cfg: &Config,
    domains: &std::collections::BTreeMap<String, crate::tables::DomainTable>,
    cx: &mut Cx<'_>,
) -> Option<crate::tables::DmarcReportsTable> {
    let r = cfg.inbound.dmarc_reports.as_ref()?;
    let from = r.from.as_ref()?;
    let (address, domain) = own_sender(
        from,
        domains,
        "DMARC reports",
        Code::DmarcReportsFrom,
        "dmarc-reports",
        cx,
    )?;
    Some(crate::tables::DmarcReportsTable {
        from: address,
        org_name: r.org_name.as_ref().map_or(domain, |o| o.value.clone()),
        interval_secs: or(&r.interval, def::DMARC_REPORT_INTERVAL_SECS).max(1),
        max_size: or(&r.max_size, def::DMARC_REPORT_MAX_SIZE),
    })
}

/// `outbound { tls-reports }`: as for DMARC reports, the sender is one of
/// our addresses (RFC 8460 §5.3 asks for a DKIM signature of the
/// submitter's domain).
pub(crate) fn tls_reports(
    cfg: &Config,
    domains: &std::collections::BTreeMap<String, crate::tables::DomainTable>,
    cx: &mut Cx<'_>,
) -> Option<crate::tables::TlsReportsTable> {
    let r = cfg.outbound.tls_reports.as_ref()?;
    let from = r.from.as_ref()?;
    let (address, domain) = own_sender(
        from,
        domains,
        "TLS reports",
        Code::TlsReportsFrom,
        "tls-reports",
        cx,
    )?;
    Some(crate::tables::TlsReportsTable {
        from: address,
        org_name: r.org_name.as_ref().map_or(domain, |o| o.value.clone()),
        interval_secs: or(&r.interval, def::TLS_REPORT_INTERVAL_SECS).max(1),
        max_size: or(&r.max_size, def::TLS_REPORT_MAX_SIZE),
    })
}

fn submission_policy(s: &crate::spec::ast::Submission) -> SubmissionPolicy {
    SubmissionPolicy {
        auth_required: or(&s.auth_required, def::SUBMISSION_AUTH_REQUIRED),
        sender_must_own: or(&s.sender_must_own, def::SUBMISSION_SENDER_MUST_OWN),
        strip_client_ip: or(&s.strip_client_ip, def::SUBMISSION_STRIP_CLIENT_IP),
        max_message_size: or(&s.max_message_size, def::MAX_MESSAGE_SIZE),
        max_recipients: or(&s.max_recipients, def::MAX_RECIPIENTS),
    }
}

fn auth_cache(cfg: &Config, cx: &mut Cx<'_>) -> AuthCacheTable {
    let c = &cfg.auth_cache;
    if let Some(ttl) = &c.ttl
        && !(1..=def::AUTH_CACHE_TTL_MAX_SECS).contains(&ttl.value)
    {
        let (label, help) = if ttl.value == 0 {
            (
                "a lifetime of zero",
                "to turn the cache off write `auth-cache enabled=#false`",
            )
        } else {
            (
                "longer than one hour",
                "a verified login is remembered without checking its password again: keep it short (the default is 5m, at most 1h)",
            )
        };
        cx.diags.push(
            Diag::error(
                Code::AuthCacheTtl,
                "the auth-cache ttl must be between 1s and 1h",
            )
            .label(ttl.span, label)
            .help(help),
        );
    }
    AuthCacheTable {
        enabled: or(&c.enabled, def::AUTH_CACHE_ENABLED),
        ttl_secs: or(&c.ttl, def::AUTH_CACHE_TTL_SECS),
        size: or(&c.size, def::AUTH_CACHE_SIZE),
    }
}

/// Script quotas (`max-scripts` is at least 1 by its type; the size
/// limit is the interpreter's, in `sieve`).
fn managesieve(cfg: &Config) -> ManageSieveTable {
    ManageSieveTable {
        max_scripts: or(&cfg.managesieve.max_scripts, def::MANAGESIEVE_MAX_SCRIPTS),
    }
}

fn certificates(
    cfg: &Config,
    hostname: Option<&str>,
    state_dir: &std::path::Path,
    cx: &mut Cx<'_>,
) -> Vec<Certificate> {
    let mut out: Vec<Certificate> = Vec::new();
    let mut names_seen: Vec<Spanned<String>> = Vec::new();
    let mut self_signed_seen: Option<Span> = None;
    let mut default_seen = false;
    for t in &cfg.tls {
        let names = sni_names(t, &mut names_seen, cx);
        let source = if let Some(a) = &t.acme {
            super::acme::acme_source(cfg, t, a, &names, hostname, state_dir, cx)
        } else if t.self_signed.as_ref().is_some_and(|s| s.value) {
            self_signed_source(t, &names, hostname, state_dir, &mut self_signed_seen, cx)
        } else {
            file_source(t, cx)
        };
        let Some(source) = source else { continue };
        let is_default = names.is_empty() && !default_seen;
        // An ACME certificate is selected by every name it covers.
        let names = match &source {
            CertSource::Acme(a) => a.order_names.clone(),
            _ => names,
        };
        default_seen |= is_default;
        out.push(Certificate {
            names,
            default: is_default,
            source,
        });
    }
    // Without an explicit default, the first certificate serves clients whose
    // SNI matches nothing.
    if !default_seen && let Some(first) = out.first_mut() {
        first.default = true;
    }
    out
}

/// The SNI names of one certificate in ASCII (`*.` kept); a name that
/// already selects another certificate is an error.
fn sni_names(t: &TlsCert, names_seen: &mut Vec<Spanned<String>>, cx: &mut Cx<'_>) -> Vec<String> {
    let mut names = Vec::new();
    for n in &t.names {
        let (wild, rest) = match n.value.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, n.value.as_str()),
        };
        let d = match addr::normalize_domain(rest) {
            Ok(d) => d,
            Err(e) => {
                cx.diags.push(
                    Diag::error(Code::DomainInvalid, format!("SNI name `{}`: {e}", n.value))
                        .label(n.span, "not a host name")
                        .help("SNI names are host names, optionally starting with `*.`"),
                );
                continue;
            }
        };
        let name = if wild {
            format!("*.{}", d.ascii)
        } else {
            d.ascii
        };
        if let Some(prev) = names_seen.iter().find(|p| p.value == name) {
            cx.diags.push(
                Diag::error(
                    Code::TlsDuplicateName,
                    format!("two certificates are selected by `{name}`"),
                )
                .label(n.span, "named again here")
                .label(prev.span, "first named here")
                .help("each SNI name selects exactly one certificate"),
            );
        } else {
            names_seen.push(Spanned::new(name.clone(), n.span));
            names.push(name);
        }
    }
    names
}

/// A development certificate made at start-up for the hostname, the SNI
/// names and the local names. Only one, and never mixed with files.
fn self_signed_source(
    t: &TlsCert,
    names: &[String],
    hostname: Option<&str>,
    state_dir: &std::path::Path,
    self_signed_seen: &mut Option<Span>,
    cx: &mut Cx<'_>,
) -> Option<CertSource> {
    let self_signed_at = t.self_signed.as_ref().map_or(t.span, |s| s.span);
    if let Some(f) = t.cert.as_ref().or(t.key.as_ref()) {
        cx.diags.push(
            Diag::error(
                Code::TlsConflict,
                "a certificate cannot be both self-signed and read from files",
            )
            .label(f.span, "certificate file given")
            .label(self_signed_at, "self-signed requested")
            .help("drop `self-signed=#true` for a real certificate, or drop `cert=`/`key=`"),
        );
        return None;
    }
    if let Some(prev) = *self_signed_seen {
        cx.diags.push(
            Diag::error(Code::TlsConflict, "more than one self-signed certificate")
                .label(t.span, "second self-signed certificate")
                .label(prev, "first one")
                .help("one development certificate covers every name; remove the second"),
        );
        return None;
    }
    *self_signed_seen = Some(t.span);
    cx.diags.push(
        Diag::warning(
            Code::TlsSelfSigned,
            "TLS uses a self-signed certificate: for development only",
        )
        .label(self_signed_at, "self-signed")
        .help("clients and other servers will not trust it; use a real certificate (e.g. from ACME) in production"),
    );
    let dir = state_dir.join("tls");
    let mut subject_names: Vec<String> = hostname.into_iter().map(str::to_string).collect();
    subject_names.extend(names.iter().cloned());
    subject_names.extend(def::SELF_SIGNED_EXTRA_NAMES.iter().map(|s| s.to_string()));
    subject_names.dedup();
    Some(CertSource::SelfSigned {
        cert: dir.join("selfsigned.pem"),
        key: dir.join("selfsigned.key"),
        subject_names,
    })
}

/// A certificate read from `cert=` and `key=`, which come together.
fn file_source(t: &TlsCert, cx: &mut Cx<'_>) -> Option<CertSource> {
    match (&t.cert, &t.key) {
        (Some(c), Some(k)) => {
            secrets::check_file(c, false, "certificate", cx);
            secrets::check_file(k, true, "TLS private key", cx);
            Some(CertSource::Files {
                cert: c.value.clone(),
                key: k.value.clone(),
            })
        }
        (Some(only), None) | (None, Some(only)) => {
            let missing = if t.cert.is_some() { "key" } else { "cert" };
            cx.diags.push(
                Diag::error(
                    Code::TlsIncomplete,
                    format!("`tls` is missing `{missing}=`"),
                )
                .label(only.span, format!("needs a matching `{missing}=`"))
                .help("a certificate needs both `cert=` (PEM chain) and `key=` (PEM private key)"),
            );
            None
        }
        (None, None) => {
            cx.diags.push(
                Diag::error(Code::TlsIncomplete, "`tls` names no certificate")
                    .label(t.span, "no cert=, key= or self-signed=#true")
                    .help("write `tls cert=\"fullchain.pem\" key=\"key.pem\"`, or `tls self-signed=#true` for development"),
            );
            None
        }
    }
}

fn listeners(
    cfg: &Config,
    have_certs: bool,
    limits: &Limits,
    cx: &mut Cx<'_>,
) -> Vec<ListenerTable> {
    let mut out: Vec<(ListenerTable, Span)> = Vec::new();
    for l in &cfg.listeners {
        let Some(kind) = ListenerKind::parse(l.kind.value) else {
            continue;
        };
        if let Some(prev) = bound_already(&out, l.addr.value, kind) {
            cx.diags.push(listener_conflict(cfg, l, prev));
            continue;
        }
        check_listener_options(l, kind, cx);
        let tls = tls_mode(l, kind);
        let auth = auth_mode(l, kind, tls, cx);
        if tls != TlsMode::None && !have_certs {
            cx.diags.push(
                Diag::error(
                    Code::TlsMissingCertificate,
                    format!("{} listener on {} needs a TLS certificate", kind.as_str(), l.addr.value),
                )
                .label(l.kind.span, "needs TLS")
                .help("add `tls cert=\"/path/fullchain.pem\" key=\"/path/key.pem\"`, or `tls self-signed=#true` for development"),
            );
        }
        if kind == ListenerKind::Lmtp && !l.addr.value.ip().is_loopback() {
            cx.diags.push(
                Diag::warning(
                    Code::ListenerLmtpPublic,
                    format!("LMTP listens on {}, which is not loopback", l.addr.value),
                )
                .label(l.addr.span, "reachable from the network")
                .help("LMTP has no authentication: anyone who can connect can deliver local mail; bind it to 127.0.0.1"),
            );
        }
        out.push((listener_table(l, kind, tls, auth, limits), l.span));
    }
    if cfg.listeners.is_empty() {
        let at = cfg
            .hostname
            .as_ref()
            .map_or(Span::new(crate::spec::source::FileId(0), 0, 0), |h| h.span);
        let d = Diag::warning(Code::ListenerNone, "no listeners configured")
            .label(at, "this server listens nowhere");
        cx.diags.push(
            d.help("add e.g. `listen \"smtp\" \"0.0.0.0:25\"`; without listeners `mailc serve` accepts nothing"),
        );
    }
    let mut tables: Vec<ListenerTable> = out.into_iter().map(|(t, _)| t).collect();
    tables.sort_by(|a, b| {
        (a.address.ip(), a.address.port(), a.kind).cmp(&(b.address.ip(), b.address.port(), b.kind))
    });
    tables
}

/// The listener already bound where this one would bind, if any.
fn bound_already(
    out: &[(ListenerTable, Span)],
    addr: SocketAddr,
    kind: ListenerKind,
) -> Option<Span> {
    out.iter()
        .find(|(o, _)| {
            // Port 0 (tests) binds a free port each time; only the same
            // kind on the same IP would be ambiguous.
            if addr.port() == 0 {
                o.address == addr && o.kind == kind
            } else {
                conflicts(o.address, addr)
            }
        })
        .map(|(_, span)| *span)
}

fn listener_conflict(cfg: &Config, l: &Listener, prev: Span) -> Diag {
    let addr = l.addr.value;
    let same = cfg
        .listeners
        .iter()
        .find(|x| x.span == prev)
        .is_some_and(|x| x.addr.value == addr);
    Diag::error(
        Code::ListenerDuplicate,
        if same {
            format!("two listeners on {addr}")
        } else {
            format!("{addr} overlaps another listener on the same port")
        },
    )
    .label(l.addr.span, "bound again here")
    .label(prev, "already bound here")
    .help("every listener needs its own IP:PORT; a wildcard address (0.0.0.0 or [::]) covers all addresses of its family")
}

/// `starttls=` only on kinds that can upgrade, `auth=` only on smtp (the
/// others decide authentication by their kind).
fn check_listener_options(l: &Listener, kind: ListenerKind, cx: &mut Cx<'_>) {
    let starttls_capable = matches!(
        kind,
        ListenerKind::Smtp
            | ListenerKind::Submission
            | ListenerKind::Imap
            | ListenerKind::Pop3
            | ListenerKind::Managesieve
    );
    if let Some(s) = &l.starttls
        && !starttls_capable
    {
        cx.diags.push(not_applicable(
            "starttls",
            kind,
            s.span,
            "LMTP is plain; keep it on loopback",
            "this kind is TLS from the first byte",
        ));
    }
    if let Some(a) = &l.auth
        && kind != ListenerKind::Smtp
    {
        cx.diags.push(not_applicable(
            "auth",
            kind,
            a.span,
            "LMTP never authenticates",
            "this kind always offers authentication (after TLS)",
        ));
    }
}

/// A listener option given to a kind it does not apply to; the help for
/// LMTP differs from the one for the implicit-TLS kinds.
fn not_applicable(
    option: &str,
    kind: ListenerKind,
    at: Span,
    lmtp_help: &'static str,
    help: &'static str,
) -> Diag {
    Diag::error(
        Code::ListenerOption,
        format!("`{option}` does not apply to a {} listener", kind.as_str()),
    )
    .label(at, "not applicable")
    .help(match kind {
        ListenerKind::Lmtp => lmtp_help,
        ListenerKind::Http | ListenerKind::Https => {
            "HTTP listeners take no logins and no STARTTLS: https is TLS from the first byte, http is plain"
        }
        _ => help,
    })
}

/// Implicit TLS for the `-s` kinds, none for LMTP, STARTTLS for the others
/// unless turned off.
fn tls_mode(l: &Listener, kind: ListenerKind) -> TlsMode {
    match kind {
        ListenerKind::Submissions
        | ListenerKind::Imaps
        | ListenerKind::Pop3s
        | ListenerKind::Https => TlsMode::Implicit,
        ListenerKind::Lmtp | ListenerKind::Http => TlsMode::None,
        _ => {
            if l.starttls.as_ref().is_none_or(|s| s.value) {
                TlsMode::Starttls
            } else {
                TlsMode::None
            }
        }
    }
}

/// Passwords travel only inside TLS: a listener that would take them in
/// the clear is an error, unless the loudly named override allows it.
fn auth_mode(l: &Listener, kind: ListenerKind, tls: TlsMode, cx: &mut Cx<'_>) -> AuthMode {
    let addr = l.addr.value;
    let offers_auth = match kind {
        ListenerKind::Lmtp | ListenerKind::Http | ListenerKind::Https => false,
        ListenerKind::Smtp => l.auth.as_ref().is_some_and(|a| a.value),
        _ => true,
    };
    let insecure = l.insecure_plaintext_auth.as_ref().is_some_and(|v| v.value);
    if !offers_auth {
        AuthMode::None
    } else if insecure && tls != TlsMode::Implicit {
        cx.diags.push(
            Diag::warning(
                Code::AuthPlaintext,
                format!("{} listener on {addr} accepts passwords without TLS", kind.as_str()),
            )
            .label(
                l.insecure_plaintext_auth.as_ref().map_or(l.span, |s| s.span),
                "insecure override",
            )
            .help("anyone on the network path can read these passwords; use only on loopback behind a local proxy"),
        );
        AuthMode::Plaintext
    } else if tls == TlsMode::None {
        let at = l.starttls.as_ref().map_or(l.kind.span, |s| s.span);
        cx.diags.push(
            Diag::error(
                Code::AuthPlaintext,
                format!(
                    "{} listener on {addr} would accept passwords over an unencrypted connection",
                    kind.as_str()
                ),
            )
            .label(at, "no TLS on this listener")
            .label(l.kind.span, "this kind authenticates users")
            .help("keep STARTTLS on (remove `starttls=#false`), or use the implicit-TLS kind (submissions, imaps, pop3s)"),
        );
        AuthMode::None
    } else {
        AuthMode::AfterTls
    }
}

fn listener_table(
    l: &Listener,
    kind: ListenerKind,
    tls: TlsMode,
    auth: AuthMode,
    limits: &Limits,
) -> ListenerTable {
    ListenerTable {
        kind,
        address: l.addr.value,
        tls,
        auth,
        max_connections: l
            .max_connections
            .as_ref()
            .map_or(limits.max_connections, |v| v.value),
        // The server-wide cap per client holds on every listener.
        max_connections_per_ip: l
            .max_connections_per_ip
            .as_ref()
            .map_or(limits.max_connections_per_ip, |v| v.value)
            .min(limits.max_connections_per_ip),
        max_errors: max_errors(kind, limits.max_errors),
    }
}

/// Errors a session on a listener of this kind may make before it is closed.
fn max_errors(kind: ListenerKind, configured: u32) -> u32 {
    match kind {
        ListenerKind::Imap | ListenerKind::Imaps => configured.max(def::IMAP_MIN_ERRORS),
        ListenerKind::Pop3 | ListenerKind::Pop3s => configured.max(def::POP3_MIN_ERRORS),
        _ => configured,
    }
}

/// Two socket addresses cannot both be bound: same port, same family, and
/// equal IPs or one of them the wildcard.
fn conflicts(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn relay_host(cfg: &Config, cx: &mut Cx<'_>) -> Option<RelayHostTable> {
    let r = cfg.relay_host.as_ref()?;
    let tls = match r.tls.as_ref().map(|t| t.value) {
        Some("implicit") => RelayTls::Implicit,
        _ => RelayTls::Starttls,
    };
    let text = r.host.value.as_str();
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h, Some(p)),
        _ => (text, None),
    };
    let port = match port.map(str::parse::<u16>) {
        None => Some(match tls {
            RelayTls::Starttls => def::RELAY_PORT_STARTTLS,
            RelayTls::Implicit => def::RELAY_PORT_IMPLICIT,
        }),
        Some(Ok(p)) if p > 0 => Some(p),
        Some(_) => None,
    };
    let (Some(host), Some(port)) = (super::outbound::relay_host_name(host), port) else {
        cx.diags.push(
            Diag::error(
                Code::RelayHostInvalid,
                format!("relay host `{text}` is not HOST:PORT"),
            )
            .label(r.host.span, "not HOST:PORT")
            .help("write it as \"smtp.provider.example:587\" (IPv6 as \"[2001:db8::1]:587\")"),
        );
        return None;
    };
    if let Some(p) = &r.password_file {
        secrets::check_file(p, true, "relay host password file", cx);
        if r.user.is_none() {
            cx.diags.push(
                Diag::error(
                    Code::PropertyMissing,
                    "`relay-host` has a password but no user",
                )
                .label(p.span, "password without user")
                .help("add `user=\"...\"`"),
            );
        }
    } else if let Some(u) = &r.user {
        cx.diags.push(
            Diag::error(
                Code::PropertyMissing,
                "`relay-host` has a user but no password file",
            )
            .label(u.span, "user without password")
            .help("add `password-file=\"/run/credentials/relay-password\"`"),
        );
    }
    Some(RelayHostTable {
        host,
        port,
        tls,
        user: r.user.as_ref().map(|u| u.value.clone()),
        password_file: r.password_file.as_ref().map(|p| p.value.clone()),
    })
}

/// The open-relay rules: trusting broad public networks, or submission
/// without authentication, lets strangers send mail anywhere through us.
pub(super) fn check_relay_safety(cfg: &Config, cx: &mut Cx<'_>) {
    let overridden = cfg.insecure_open_relay.as_ref().is_some_and(|o| o.value);
    let mut found = false;
    for n in &cfg.trusted_networks {
        if n.value.is_broad_public() {
            found = true;
            let mut d = if overridden {
                Diag::warning(
                    Code::RelayOpen,
                    format!(
                        "trusting {} makes this server an open relay (overridden)",
                        n.value
                    ),
                )
            } else {
                Diag::error(
                    Code::RelayOpen,
                    format!("trusting {} makes this server an open relay", n.value),
                )
            };
            d = d
                .label(n.span, "public address space trusted to relay without login")
                .help("list only the hosts that must relay without a login (a /24 or narrower for IPv4, /48 for IPv6), and let everyone else use submission with AUTH");
            cx.diags.push(d);
        }
    }
    if let Some(a) = &cfg.submission.auth_required
        && !a.value
    {
        found = true;
        let d = if overridden {
            Diag::warning(
                Code::RelayOpen,
                "submission without authentication is an open relay (overridden)",
            )
        } else {
            Diag::error(
                Code::RelayOpen,
                "submission without authentication would make an open relay",
            )
        };
        cx.diags.push(
            d.label(a.span, "anyone reaching the submission port could send anywhere")
                .help("keep `auth-required #true`; hosts that cannot log in can be listed in `trusted-networks`"),
        );
    }
    if overridden
        && !found
        && let Some(o) = &cfg.insecure_open_relay
    {
        cx.diags.push(
            Diag::warning(
                Code::RelayOpen,
                "`insecure-open-relay` is set but nothing needs it",
            )
            .label(o.span, "unneeded override")
            .help("remove it, so that a future open-relay mistake is caught"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::compile::{Options, compile_str};
    use crate::diag::Code;
    use crate::tables::ListenerKind;

    fn compile(extra: &str) -> crate::compile::Output {
        let text = format!(
            "hostname \"mail.example.test\"\nstate \"/nonexistent-mailc\"\n\
             tls self-signed=#true\n\
             listen \"smtp\" \"127.0.0.1:25\"\n\
             listen \"imap\" \"127.0.0.1:143\" max-connections-per-ip=500\n\
             listen \"pop3\" \"127.0.0.1:110\"\n{extra}"
        );
        compile_str(
            "t.kdl",
            std::path::Path::new("/nonexistent-mailc"),
            &text,
            Options { offline: true },
        )
    }

    #[test]
    fn runtime_values_are_final_in_the_tables() {
        let out = compile(
            "limits {\n max-errors 1\n max-connections-per-ip 40\n}\n\
             timeouts {\n imap \"1m\"\n imap-idle \"2m\"\n pop3 \"1m\"\n}\n",
        );
        let below: Vec<_> = out
            .diags
            .iter()
            .filter(|d| d.code == Code::TimeoutBelowRfc)
            .collect();
        assert_eq!(below.len(), 3, "imap, imap-idle and pop3 are warned about");
        let t = out.compiled.expect("compiles").tables;
        // IMAP is never cut before the RFC minimum; POP3 takes what it says.
        assert_eq!(t.timeouts.imap_secs, 30 * 60);
        assert_eq!(t.timeouts.imap_idle_secs, 30 * 60);
        assert_eq!(t.timeouts.pop3_secs, 60);
        let row = |kind| {
            t.listeners
                .iter()
                .find(|l| l.kind == kind)
                .copied()
                .expect("listener")
        };
        assert_eq!(row(ListenerKind::Smtp).max_errors, 1);
        assert_eq!(row(ListenerKind::Pop3).max_errors, 20);
        assert_eq!(row(ListenerKind::Imap).max_errors, 3);
        // The server-wide cap per client holds on every listener.
        assert_eq!(row(ListenerKind::Imap).max_connections_per_ip, 40);
        assert_eq!(row(ListenerKind::Pop3).max_connections_per_ip, 40);
    }

    #[test]
    fn generous_values_are_kept() {
        let out = compile("limits {\n max-errors 20\n}\ntimeouts {\n imap \"2h\"\n}\n");
        let t = out.compiled.expect("compiles").tables;
        assert_eq!(t.timeouts.imap_secs, 2 * 3600);
        assert!(t.listeners.iter().all(|l| l.max_errors == 20));
        // A listener cannot allow more per client than the server does (its
        // default included).
        let imap = t.listeners.iter().find(|l| l.kind == ListenerKind::Imap);
        assert_eq!(
            imap.map(|l| l.max_connections_per_ip),
            Some(super::def::MAX_CONNECTIONS_PER_IP)
        );
    }
}
