//! The typed, spanned model of a configuration, built from the checked tree.
//! Optional settings stay `None` here: defaults are applied by the compiler.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::source::{Span, Spanned};
use super::tree::{SNode, SVal, Value};
use crate::ipnet::Network;

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub hostname: Option<Spanned<String>>,
    pub state: Option<Spanned<PathBuf>>,
    pub public_ips: Vec<Spanned<IpAddr>>,
    pub log: Log,
    pub tls: Vec<TlsCert>,
    pub listeners: Vec<Listener>,
    pub domains: Vec<Domain>,
    pub trusted_networks: Vec<Spanned<Network>>,
    pub insecure_open_relay: Option<Spanned<bool>>,
    /// `dane #true`: TLSA records for port 25.
    pub dane: Option<Spanned<bool>>,
    pub inbound: Inbound,
    pub scan: Option<Scan>,
    pub submission: Submission,
    pub limits: Limits,
    pub auth_cache: AuthCache,
    pub managesieve: ManageSieve,
    pub timeouts: Timeouts,
    pub relay_host: Option<RelayHost>,
    pub resolvers: Vec<Spanned<SocketAddr>>,
    pub outbound: Outbound,
    pub routes: Vec<Route>,
    pub sieve: Sieve,
}

#[derive(Debug, Clone, Default)]
pub struct Log {
    pub level: Option<Spanned<&'static str>>,
    pub format: Option<Spanned<&'static str>>,
}

#[derive(Debug, Clone, Default)]
pub struct AuthCache {
    pub enabled: Option<Spanned<bool>>,
    pub ttl: Option<Spanned<u64>>,
    pub size: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Default)]
pub struct ManageSieve {
    pub max_scripts: Option<Spanned<u32>>,
}

#[derive(Debug, Clone)]
pub struct TlsCert {
    pub span: Span,
    pub names: Vec<Spanned<String>>,
    pub cert: Option<Spanned<PathBuf>>,
    pub key: Option<Spanned<PathBuf>>,
    pub self_signed: Option<Spanned<bool>>,
    pub acme: Option<Acme>,
}

/// `tls { acme directory="…" contact="mailto:…" ca-file="…" }`.
#[derive(Debug, Clone)]
pub struct Acme {
    pub span: Span,
    pub directory: Option<Spanned<String>>,
    pub contact: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<PathBuf>>,
    pub challenge: Option<Spanned<&'static str>>,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub span: Span,
    pub kind: Spanned<&'static str>,
    pub addr: Spanned<SocketAddr>,
    pub max_connections: Option<Spanned<u32>>,
    pub max_connections_per_ip: Option<Spanned<u32>>,
    pub starttls: Option<Spanned<bool>>,
    pub auth: Option<Spanned<bool>>,
    pub insecure_plaintext_auth: Option<Spanned<bool>>,
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub span: Span,
    pub name: Spanned<String>,
    pub mx: Vec<Mx>,
    pub catch_all: Option<Spanned<String>>,
    /// `Some(None)` is an explicit `#null`: plus addressing off.
    pub plus_separator: Option<Spanned<Option<String>>>,
    pub local_part_case: Option<Spanned<&'static str>>,
    pub dkim: Vec<Dkim>,
    pub spf: Option<Spf>,
    pub dmarc: Option<Dmarc>,
    pub mta_sts: Option<MtaSts>,
    pub tls_rpt: Option<TlsRpt>,
    pub mailboxes: Vec<Mailbox>,
    pub aliases: Vec<Alias>,
    pub sieve_before: Vec<Spanned<PathBuf>>,
    pub sieve_after: Vec<Spanned<PathBuf>>,
    pub scan: Option<ScanPolicy>,
}

#[derive(Debug, Clone)]
pub struct Mx {
    pub host: Spanned<String>,
    pub priority: Option<Spanned<u16>>,
}

#[derive(Debug, Clone)]
pub struct Dkim {
    pub span: Span,
    pub selector: Spanned<String>,
    pub algorithm: Option<Spanned<&'static str>>,
    pub key: Option<Spanned<PathBuf>>,
    pub generate: Option<Spanned<bool>>,
}

#[derive(Debug, Clone)]
pub struct Spf {
    pub span: Span,
    pub terms: Vec<Spanned<String>>,
    pub all: Option<Spanned<&'static str>>,
}

#[derive(Debug, Clone)]
pub struct Dmarc {
    pub span: Span,
    pub policy: Spanned<&'static str>,
    pub subdomain_policy: Option<Spanned<&'static str>>,
    pub rua: Option<Spanned<String>>,
    pub ruf: Option<Spanned<String>>,
    pub pct: Option<Spanned<u8>>,
    pub adkim: Option<Spanned<&'static str>>,
    pub aspf: Option<Spanned<&'static str>>,
}

#[derive(Debug, Clone)]
pub struct MtaSts {
    pub span: Span,
    pub mode: Option<Spanned<&'static str>>,
    pub max_age: Option<Spanned<u64>>,
}

#[derive(Debug, Clone)]
pub struct TlsRpt {
    pub span: Span,
    pub rua: Vec<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Mailbox {
    pub span: Span,
    pub local_part: Spanned<String>,
    pub password: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub quota: Option<Spanned<u64>>,
    pub disabled: Option<Spanned<bool>>,
    pub sieve: Option<Spanned<PathBuf>>,
    pub aliases: Vec<Spanned<String>>,
    pub send_as: Vec<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Alias {
    pub span: Span,
    pub local_part: Spanned<String>,
    pub targets: Vec<Spanned<String>>,
}

/// `sieve { ... }` at the top level.
#[derive(Debug, Clone, Default)]
pub struct Sieve {
    pub before: Vec<Spanned<PathBuf>>,
    pub after: Vec<Spanned<PathBuf>>,
    pub global_dir: Option<Spanned<PathBuf>>,
    pub user_scripts: Option<Spanned<bool>>,
    pub cpu_limit: Option<Spanned<u32>>,
    pub max_redirects: Option<Spanned<u32>>,
    pub max_script_size: Option<Spanned<u64>>,
    pub vacation_min: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Default)]
pub struct Inbound {
    pub checks: Option<Spanned<bool>>,
    pub max_message_size: Option<Spanned<u64>>,
    pub max_recipients: Option<Spanned<u32>>,
    pub spf_fail: Option<Spanned<&'static str>>,
    pub spf_softfail: Option<Spanned<&'static str>>,
    pub dkim_fail: Option<Spanned<&'static str>>,
    pub dmarc_reject: Option<Spanned<&'static str>>,
    pub dmarc_quarantine: Option<Spanned<&'static str>>,
    pub dmarc_own: Option<Spanned<&'static str>>,
    pub dns_error: Option<Spanned<&'static str>>,
    pub dmarc_reports: Option<DmarcReports>,
    pub dnsbl: Option<Dnsbl>,
    pub greylist: Option<Greylist>,
}

/// `inbound { dmarc { reports from= interval= max-size= org-name= } }`.
#[derive(Debug, Clone)]
pub struct DmarcReports {
    pub span: Span,
    pub from: Option<Spanned<String>>,
    pub interval: Option<Spanned<u64>>,
    pub max_size: Option<Spanned<u64>>,
    pub org_name: Option<Spanned<String>>,
}

/// `inbound { dnsbl }`.
#[derive(Debug, Clone)]
pub struct Dnsbl {
    pub span: Span,
    pub threshold: Option<Spanned<i32>>,
    pub timeout: Option<Spanned<u64>>,
    pub zones: Vec<DnsblZone>,
}

#[derive(Debug, Clone)]
pub struct DnsblZone {
    pub span: Span,
    pub name: Spanned<String>,
    pub weight: Option<Spanned<i32>>,
    pub answer: Option<Spanned<String>>,
}

/// `inbound { greylist }`.
#[derive(Debug, Clone)]
pub struct Greylist {
    pub span: Span,
    pub delay: Option<Spanned<u64>>,
    pub expire: Option<Spanned<u64>>,
    pub keep: Option<Spanned<u64>>,
    pub max_entries: Option<Spanned<u32>>,
    pub whitelist_after: Option<Spanned<u32>>,
}

/// The policy part of `scan { }`, also `domain { scan { } }`.
#[derive(Debug, Clone)]
pub struct ScanPolicy {
    pub span: Span,
    pub spam_junk: Option<Spanned<f64>>,
    pub spam_reject: Option<Spanned<f64>>,
    pub reject_spam: Option<Spanned<bool>>,
    pub virus: Option<Spanned<&'static str>>,
}

/// `scan { }`.
#[derive(Debug, Clone)]
pub struct Scan {
    pub span: Span,
    pub spamd: Option<Spanned<String>>,
    pub rspamd: Option<Spanned<String>>,
    pub clamd: Option<Spanned<String>>,
    pub timeout: Option<Spanned<u64>>,
    pub max_size: Option<Spanned<u64>>,
    pub on_failure: Option<Spanned<&'static str>>,
    pub submission: Option<Spanned<bool>>,
    pub deliver: Option<Spanned<bool>>,
    pub policy: ScanPolicy,
    pub learn: Option<Spanned<bool>>,
    pub learn_controller: Option<Spanned<String>>,
    pub learn_password_file: Option<Spanned<PathBuf>>,
    pub learn_per_user: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub auth_required: Option<Spanned<bool>>,
    pub sender_must_own: Option<Spanned<bool>>,
    pub strip_client_ip: Option<Spanned<bool>>,
    pub max_message_size: Option<Spanned<u64>>,
    pub max_recipients: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub max_connections: Option<Spanned<u32>>,
    pub max_connections_per_ip: Option<Spanned<u32>>,
    pub max_errors: Option<Spanned<u32>>,
    pub auth_failures: Option<Spanned<u32>>,
    pub auth_lockout: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    pub smtp_command: Option<Spanned<u64>>,
    pub smtp_data: Option<Spanned<u64>>,
    pub imap: Option<Spanned<u64>>,
    pub imap_idle: Option<Spanned<u64>>,
    pub pop3: Option<Spanned<u64>>,
    pub managesieve: Option<Spanned<u64>>,
    pub http: Option<Spanned<u64>>,
    pub shutdown_grace: Option<Spanned<u64>>,
}

#[derive(Debug, Clone)]
pub struct RelayHost {
    pub span: Span,
    pub host: Spanned<String>,
    pub tls: Option<Spanned<&'static str>>,
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Clone, Default)]
pub struct Outbound {
    pub span: Option<Span>,
    pub retry: Vec<Spanned<u64>>,
    pub retry_span: Option<Span>,
    pub expire: Option<Spanned<u64>>,
    /// `Some(None)`: `delay-warning #null` (never).
    pub delay_warning: Option<Spanned<Option<u64>>>,
    pub port: Option<Spanned<u16>>,
    pub ip_version: Option<Spanned<&'static str>>,
    pub max_connections: Option<Spanned<u32>>,
    pub max_per_destination: Option<Spanned<u32>>,
    pub max_messages: Option<Spanned<u32>>,
    pub ca_files: Vec<Spanned<PathBuf>>,
    pub tls_reports: Option<TlsReports>,
    /// `dane #false`: no TLSA lookups for outbound mail.
    pub dane: Option<Spanned<bool>>,
    /// `mta-sts #false`: no MTA-STS policy fetches.
    pub mta_sts: Option<Spanned<bool>>,
}

/// `outbound { tls-reports from= interval= max-size= org-name= }`.
#[derive(Debug, Clone)]
pub struct TlsReports {
    pub span: Span,
    pub from: Option<Spanned<String>>,
    pub interval: Option<Spanned<u64>>,
    pub max_size: Option<Spanned<u64>>,
    pub org_name: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub span: Span,
    pub domain: Spanned<String>,
    pub via: Option<Spanned<String>>,
    pub tls: Option<Spanned<&'static str>>,
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub source: Option<Spanned<IpAddr>>,
}

// ---- extraction helpers: the checked tree guarantees the types, so a value
// of another type cannot occur; `None` is returned rather than panicking.

/// One extractor a value type: `fn s_str(v) -> Option<Spanned<String>>`
/// and so on, `Some` when the value is of that variant.
macro_rules! extractors {
    ($($name:ident: $variant:ident => $ty:ty),* $(,)?) => {$(
        fn $name(v: &SVal) -> Option<Spanned<$ty>> {
            match &v.value {
                Value::$variant(x) => Some(Spanned::new(ToOwned::to_owned(x), v.span)),
                _ => None,
            }
        }
    )*};
}

extractors! {
    s_str: Str => String,
    s_bool: Bool => bool,
    s_choice: Choice => &'static str,
    s_size: Size => u64,
    s_duration: Duration => u64,
    s_path: Path => PathBuf,
    s_ip: Ip => IpAddr,
    s_socket_addr: SocketAddr => SocketAddr,
    s_network: Network => Network,
    s_score: Score => f64,
}

fn s_int<T: TryFrom<i64>>(v: &SVal) -> Option<Spanned<T>> {
    match v.value {
        Value::Int(n) => T::try_from(n).ok().map(|n| Spanned::new(n, v.span)),
        _ => None,
    }
}

impl SNode {
    fn p<T>(&self, name: &str, f: fn(&SVal) -> Option<Spanned<T>>) -> Option<Spanned<T>> {
        self.prop(name).and_then(f)
    }

    fn a<T>(&self, i: usize, f: fn(&SVal) -> Option<Spanned<T>>) -> Option<Spanned<T>> {
        self.arg(i).and_then(f)
    }

    fn all_args<T>(&self, f: fn(&SVal) -> Option<Spanned<T>>) -> Vec<Spanned<T>> {
        self.args.iter().filter_map(f).collect()
    }

    /// The single argument of a child setting node such as `max-recipients 100`.
    fn setting<T>(&self, name: &str, f: fn(&SVal) -> Option<Spanned<T>>) -> Option<Spanned<T>> {
        self.child(name).and_then(|c| c.a(0, f))
    }
}

/// Builds the typed model from the checked top-level nodes.
pub fn build(root: &[SNode]) -> Config {
    let mut c = Config::default();
    for n in root {
        match n.spec.name {
            "hostname" => c.hostname = n.a(0, s_str),
            "state" => c.state = n.a(0, s_path),
            "public-ip" => c.public_ips = n.all_args(s_ip),
            "log" => {
                c.log = Log {
                    level: n.p("level", s_choice),
                    format: n.p("format", s_choice),
                }
            }
            "tls" => c.tls.push(tls_cert(n)),
            "listen" => c.listeners.extend(listener(n)),
            "domain" => c.domains.extend(domain(n)),
            "trusted-networks" => c.trusted_networks = n.all_args(s_network),
            "insecure-open-relay" => c.insecure_open_relay = n.a(0, s_bool),
            "dane" => c.dane = n.a(0, s_bool),
            "inbound" => c.inbound = inbound(n),
            "scan" => c.scan = Some(scan(n)),
            "submission" => c.submission = submission(n),
            "limits" => c.limits = limits(n),
            "auth-cache" => c.auth_cache = auth_cache(n),
            "managesieve" => {
                c.managesieve = ManageSieve {
                    max_scripts: n.p("max-scripts", s_int),
                }
            }
            "timeouts" => c.timeouts = timeouts(n),
            "relay-host" => {
                if let Some(r) = relay_host(n) {
                    c.relay_host = Some(r);
                }
            }
            "resolver" => c.resolvers.extend(n.a(0, s_socket_addr)),
            "outbound" => c.outbound = outbound(n),
            "route" => c.routes.extend(route(n)),
            "sieve" => {
                let (before, after) = sieve_scripts(n);
                c.sieve = Sieve {
                    before,
                    after,
                    global_dir: n.setting("global-dir", s_path),
                    user_scripts: n.setting("user-scripts", s_bool),
                    cpu_limit: n.setting("cpu-limit", s_int),
                    max_redirects: n.setting("max-redirects", s_int),
                    max_script_size: n.setting("max-script-size", s_size),
                    vacation_min: n.setting("vacation-min-period", s_duration),
                }
            }
            _ => {}
        }
    }
    c
}

fn tls_cert(n: &SNode) -> TlsCert {
    TlsCert {
        span: n.span,
        names: n.all_args(s_str),
        cert: n.p("cert", s_path),
        key: n.p("key", s_path),
        self_signed: n.p("self-signed", s_bool),
        acme: n.children_named("acme").next().map(|c| Acme {
            span: c.span,
            directory: c.p("directory", s_str),
            contact: c.p("contact", s_str),
            ca_file: c.p("ca-file", s_path),
            challenge: c.p("challenge", s_choice),
        }),
    }
}

fn listener(n: &SNode) -> Option<Listener> {
    Some(Listener {
        span: n.span,
        kind: n.a(0, s_choice)?,
        addr: n.a(1, s_socket_addr)?,
        max_connections: n.p("max-connections", s_int),
        max_connections_per_ip: n.p("max-connections-per-ip", s_int),
        starttls: n.p("starttls", s_bool),
        auth: n.p("auth", s_bool),
        insecure_plaintext_auth: n.p("insecure-plaintext-auth", s_bool),
    })
}

fn inbound(n: &SNode) -> Inbound {
    let policy = |child: &str, prop: &str| n.child(child).and_then(|s| s.p(prop, s_choice));
    Inbound {
        checks: n.setting("checks", s_bool),
        max_message_size: n.setting("max-message-size", s_size),
        max_recipients: n.setting("max-recipients", s_int),
        spf_fail: policy("spf", "fail"),
        spf_softfail: policy("spf", "softfail"),
        dkim_fail: policy("dkim", "fail"),
        dmarc_reject: policy("dmarc", "reject"),
        dmarc_quarantine: policy("dmarc", "quarantine"),
        dmarc_own: policy("dmarc", "own"),
        dns_error: n.setting("dns-error", s_choice),
        dmarc_reports: n
            .child("dmarc")
            .and_then(|d| d.child("reports"))
            .map(|r| DmarcReports {
                span: r.span,
                from: r.p("from", s_str),
                interval: r.p("interval", s_duration),
                max_size: r.p("max-size", s_size),
                org_name: r.p("org-name", s_str),
            }),
        dnsbl: n.child("dnsbl").map(dnsbl),
        greylist: n.child("greylist").map(greylist),
    }
}

fn dnsbl(n: &SNode) -> Dnsbl {
    Dnsbl {
        span: n.span,
        threshold: n.p("threshold", s_int),
        timeout: n.p("timeout", s_duration),
        zones: n
            .children_named("zone")
            .filter_map(|z| {
                Some(DnsblZone {
                    span: z.span,
                    name: z.a(0, s_str)?,
                    weight: z.p("weight", s_int),
                    answer: z.p("answer", s_str),
                })
            })
            .collect(),
    }
}

fn greylist(n: &SNode) -> Greylist {
    Greylist {
        span: n.span,
        delay: n.p("delay", s_duration),
        expire: n.p("expire", s_duration),
        keep: n.p("keep", s_duration),
        max_entries: n.p("max-entries", s_int),
        whitelist_after: n.p("whitelist-after", s_int),
    }
}

fn scan(n: &SNode) -> Scan {
    let learn = n.child("learn");
    Scan {
        learn: learn.and_then(|l| l.a(0, s_bool)),
        learn_controller: learn.and_then(|l| l.p("rspamd-controller", s_str)),
        learn_password_file: learn.and_then(|l| l.p("password-file", s_path)),
        learn_per_user: learn.and_then(|l| l.p("spamd-per-user", s_bool)),
        span: n.span,
        spamd: n.setting("spamd", s_str),
        rspamd: n.setting("rspamd", s_str),
        clamd: n.setting("clamd", s_str),
        timeout: n.setting("timeout", s_duration),
        max_size: n.setting("max-size", s_size),
        on_failure: n.setting("on-failure", s_choice),
        submission: n.setting("submission", s_bool),
        deliver: n.setting("deliver", s_bool),
        policy: scan_policy(n),
    }
}

fn scan_policy(n: &SNode) -> ScanPolicy {
    let spam = n.child("spam");
    ScanPolicy {
        span: n.span,
        spam_junk: spam.and_then(|s| s.p("junk", s_score)),
        spam_reject: spam.and_then(|s| s.p("reject", s_score)),
        reject_spam: n.setting("reject-spam", s_bool),
        virus: n.setting("virus", s_choice),
    }
}

fn submission(n: &SNode) -> Submission {
    Submission {
        auth_required: n.setting("auth-required", s_bool),
        sender_must_own: n.setting("sender-must-own", s_bool),
        strip_client_ip: n.setting("strip-client-ip", s_bool),
        max_message_size: n.setting("max-message-size", s_size),
        max_recipients: n.setting("max-recipients", s_int),
    }
}

fn limits(n: &SNode) -> Limits {
    Limits {
        max_connections: n.setting("max-connections", s_int),
        max_connections_per_ip: n.setting("max-connections-per-ip", s_int),
        max_errors: n.setting("max-errors", s_int),
        auth_failures: n.setting("auth-failures", s_int),
        auth_lockout: n.setting("auth-lockout", s_duration),
    }
}

fn auth_cache(n: &SNode) -> AuthCache {
    AuthCache {
        enabled: n.p("enabled", s_bool),
        ttl: n.p("ttl", s_duration),
        size: n.p("size", s_int),
    }
}

fn timeouts(n: &SNode) -> Timeouts {
    Timeouts {
        smtp_command: n.setting("smtp-command", s_duration),
        smtp_data: n.setting("smtp-data", s_duration),
        imap: n.setting("imap", s_duration),
        imap_idle: n.setting("imap-idle", s_duration),
        pop3: n.setting("pop3", s_duration),
        managesieve: n.setting("managesieve", s_duration),
        http: n.setting("http", s_duration),
        shutdown_grace: n.setting("shutdown-grace", s_duration),
    }
}

fn relay_host(n: &SNode) -> Option<RelayHost> {
    Some(RelayHost {
        span: n.span,
        host: n.a(0, s_str)?,
        tls: n.p("tls", s_choice),
        user: n.p("user", s_str),
        password_file: n.p("password-file", s_path),
    })
}

fn route(n: &SNode) -> Option<Route> {
    Some(Route {
        span: n.span,
        domain: n.a(0, s_str)?,
        via: n.p("via", s_str),
        tls: n.p("tls", s_choice),
        user: n.p("user", s_str),
        password_file: n.p("password-file", s_path),
        source: n.p("source", s_ip),
    })
}

fn outbound(n: &SNode) -> Outbound {
    let retry = n.child("retry");
    Outbound {
        span: Some(n.span),
        retry: retry.map(|r| r.all_args(s_duration)).unwrap_or_default(),
        retry_span: retry.map(|r| r.span),
        expire: n.setting("expire", s_duration),
        delay_warning: n.child("delay-warning").and_then(|c| {
            let v = c.arg(0)?;
            match v.value {
                Value::Null => Some(Spanned::new(None, v.span)),
                Value::Duration(d) => Some(Spanned::new(Some(d), v.span)),
                _ => None,
            }
        }),
        port: n.setting("port", s_int),
        ip_version: n.setting("ip-version", s_choice),
        max_connections: n.setting("max-connections", s_int),
        max_per_destination: n.setting("max-connections-per-destination", s_int),
        max_messages: n.setting("max-messages-per-connection", s_int),
        dane: n.setting("dane", s_bool),
        mta_sts: n.setting("mta-sts", s_bool),
        ca_files: n
            .children_named("ca-file")
            .filter_map(|c| c.a(0, s_path))
            .collect(),
        tls_reports: n.child("tls-reports").map(|r| TlsReports {
            span: r.span,
            from: r.p("from", s_str),
            interval: r.p("interval", s_duration),
            max_size: r.p("max-size", s_size),
            org_name: r.p("org-name", s_str),
        }),
    }
}

fn domain(n: &SNode) -> Option<Domain> {
    let mut d = Domain {
        span: n.span,
        name: n.a(0, s_str)?,
        mx: Vec::new(),
        catch_all: None,
        plus_separator: None,
        local_part_case: None,
        dkim: Vec::new(),
        spf: None,
        dmarc: None,
        mta_sts: None,
        tls_rpt: None,
        mailboxes: Vec::new(),
        aliases: Vec::new(),
        sieve_before: Vec::new(),
        sieve_after: Vec::new(),
        scan: None,
    };
    for c in &n.children {
        match c.spec.name {
            "mx" => d.mx.extend(mx(c)),
            "catch-all" => d.catch_all = c.a(0, s_str),
            "plus-separator" => {
                d.plus_separator = c.arg(0).map(|v| match &v.value {
                    Value::Str(s) => Spanned::new(Some(s.clone()), v.span),
                    _ => Spanned::new(None, v.span),
                })
            }
            "local-part-case" => d.local_part_case = c.a(0, s_choice),
            "dkim" => d.dkim.extend(dkim(c)),
            "spf" => {
                d.spf = Some(Spf {
                    span: c.span,
                    terms: c.all_args(s_str),
                    all: c.p("all", s_choice),
                })
            }
            "dmarc" => {
                if let Some(dmarc) = dmarc(c) {
                    d.dmarc = Some(dmarc);
                }
            }
            "mta-sts" => {
                d.mta_sts = Some(MtaSts {
                    span: c.span,
                    mode: c.p("mode", s_choice),
                    max_age: c.p("max-age", s_duration),
                })
            }
            "tls-rpt" => {
                d.tls_rpt = Some(TlsRpt {
                    span: c.span,
                    rua: c.all_args(s_str),
                })
            }
            "mailbox" => d.mailboxes.extend(mailbox(c)),
            "alias" => d.aliases.extend(alias(c)),
            "sieve" => (d.sieve_before, d.sieve_after) = sieve_scripts(c),
            "scan" => d.scan = Some(scan_policy(c)),
            _ => {}
        }
    }
    Some(d)
}

/// The `before` and `after` scripts of a `sieve` block.
type SieveScripts = (Vec<Spanned<PathBuf>>, Vec<Spanned<PathBuf>>);

fn sieve_scripts(n: &SNode) -> SieveScripts {
    let paths = |name: &str| -> Vec<Spanned<PathBuf>> {
        n.children_named(name)
            .filter_map(|c| c.a(0, s_path))
            .collect()
    };
    (paths("before"), paths("after"))
}

fn mx(c: &SNode) -> Option<Mx> {
    Some(Mx {
        host: c.a(0, s_str)?,
        priority: c.p("priority", s_int),
    })
}

fn dkim(c: &SNode) -> Option<Dkim> {
    Some(Dkim {
        span: c.span,
        selector: c.p("selector", s_str)?,
        algorithm: c.p("algorithm", s_choice),
        key: c.p("key", s_path),
        generate: c.p("generate", s_bool),
    })
}

fn dmarc(c: &SNode) -> Option<Dmarc> {
    Some(Dmarc {
        span: c.span,
        policy: c.p("policy", s_choice)?,
        subdomain_policy: c.p("subdomain-policy", s_choice),
        rua: c.p("rua", s_str),
        ruf: c.p("ruf", s_str),
        pct: c.p("pct", s_int),
        adkim: c.p("adkim", s_choice),
        aspf: c.p("aspf", s_choice),
    })
}

/// Every argument of the children called `name`, in order
/// (`alias "a" "b"` and `send-as "c"` under a mailbox).
fn child_args(c: &SNode, name: &str) -> Vec<Spanned<String>> {
    c.children_named(name)
        .flat_map(|a| a.all_args(s_str))
        .collect()
}

fn mailbox(c: &SNode) -> Option<Mailbox> {
    Some(Mailbox {
        span: c.span,
        local_part: c.a(0, s_str)?,
        password: c.p("password", s_str),
        password_file: c.p("password-file", s_path),
        quota: c.p("quota", s_size),
        disabled: c.p("disabled", s_bool),
        sieve: c.p("sieve", s_path),
        aliases: child_args(c, "alias"),
        send_as: child_args(c, "send-as"),
    })
}

/// An alias's targets: its `to=` property, then its `to` children.
fn alias(c: &SNode) -> Option<Alias> {
    let local_part = c.a(0, s_str)?;
    let mut targets: Vec<Spanned<String>> = c.p("to", s_str).into_iter().collect();
    targets.extend(child_args(c, "to"));
    Some(Alias {
        span: c.span,
        local_part,
        targets,
    })
}
