//! `tables`: the compiled contract between the config compiler and everything
//! that runs. Immutable once built, serialisable to deterministic JSON (maps
//! sorted, no timestamps), versioned, and identified by a content hash.
//!
//! Tables never hold secrets: password hashes, DKIM keys and TLS keys are
//! referenced by path (an inline password hash appears only as a fingerprint;
//! the hash itself travels beside the tables in `compile::Secrets`).

pub mod outbound;
pub mod resolve;
pub mod scan;
pub mod screen;

pub use outbound::{OutboundTable, OutboundTls, RouteTable, TlsReportsTable};
pub use scan::{ScanEndpoint, ScanLearn, ScanPolicy, ScanTable, VirusAction};
pub use screen::{AnswerRange, DnsblTable, DnsblZone, GreylistTable};

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ipnet::Network;

/// sha256 of the compact JSON of tables whose `content_hash` is empty.
fn hash_with_empty_field(t: &Tables) -> String {
    // Serialising plain data into a Vec cannot fail.
    let bytes = serde_json::to_vec(t).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Bumped whenever the meaning or shape of the tables changes (4: ACME
/// certificates keep their key under `dane #true`; `outbound { dane
/// mta-sts }`; the per-domain scanning policy).
pub const FORMAT_VERSION: u32 = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Tables {
    pub format_version: u32,
    /// `sha256:<hex>` of the JSON of these tables with this field empty.
    pub content_hash: String,
    pub hostname: String,
    pub state_dir: PathBuf,
    pub public_ips: Vec<IpAddr>,
    pub log: LogTable,
    pub tls: Vec<Certificate>,
    /// `dane #true`: TLSA records for the certificate on port 25 (see
    /// `dns::dane`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dane: bool,
    /// Sorted by address, then kind.
    pub listeners: Vec<ListenerTable>,
    /// Keyed by the ASCII (A-label), lower-case domain name.
    pub domains: BTreeMap<String, DomainTable>,
    /// Keyed by the normalised address `local@domain`.
    pub mailboxes: BTreeMap<String, MailboxTable>,
    /// Every address written in the config (mailboxes, their aliases, domain
    /// aliases), normalised, with its final targets. Catch-alls and plus
    /// addresses are handled by [`Tables::resolve`] on top of this.
    pub addresses: BTreeMap<String, AddressEntry>,
    /// Clients that may relay without authentication.
    pub trusted_networks: Vec<Network>,
    pub inbound: InboundPolicy,
    /// Spam and virus scanners at the end of DATA (`scan { }`); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanTable>,
    pub submission: SubmissionPolicy,
    pub limits: Limits,
    pub auth_cache: AuthCacheTable,
    pub managesieve: ManageSieveTable,
    pub timeouts: Timeouts,
    pub relay_host: Option<RelayHostTable>,
    /// DNS servers for every lookup; empty: the system's resolvers.
    pub resolvers: Vec<std::net::SocketAddr>,
    pub outbound: OutboundTable,
    pub sieve: SieveTable,
}

/// Sieve at local delivery: the admin's scripts around each user's and the
/// interpreter's limits. Scripts are files (compiled by `mailc check` and
/// again when the server loads the tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SieveTable {
    /// Run before every user's script, in order.
    pub before: Vec<PathBuf>,
    /// Run after every user's script while the message is still kept.
    pub after: Vec<PathBuf>,
    /// Where `include :global` looks.
    pub global_dir: Option<PathBuf>,
    /// Whether scripts activated with ManageSieve run.
    pub user_scripts: bool,
    pub cpu_limit: u32,
    pub max_redirects: u32,
    pub max_script_size: u64,
    pub vacation_min_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogTable {
    pub level: String,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Certificate {
    /// SNI names that select this certificate (lower-case ASCII; `*.` wildcards).
    pub names: Vec<String>,
    /// Served when no name matches (and to clients without SNI).
    pub default: bool,
    pub source: CertSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum CertSource {
    /// PEM files provided by the admin (or ACME).
    Files { cert: PathBuf, key: PathBuf },
    /// Generated once at startup for development, with these subject names.
    SelfSigned {
        cert: PathBuf,
        key: PathBuf,
        subject_names: Vec<String>,
    },
    /// Ordered from an ACME CA (RFC 8555) and renewed by the server.
    Acme(AcmeCert),
}

/// How the CA validates the names of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AcmeChallenge {
    /// RFC 8737: a TLS handshake with ALPN `acme-tls/1` on port 443.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.3: `GET /.well-known/acme-challenge/TOKEN` on port 80.
    #[serde(rename = "http-01")]
    Http01,
}

/// One ACME certificate: where its order goes and where its files live
/// (all in `<state>/tls/acme/`, files 0600).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// No `deny_unknown_fields`: serde hands the enum's `kind` tag to it.
#[serde(rename_all = "kebab-case")]
pub struct AcmeCert {
    /// The ACME directory URL.
    pub directory: String,
    /// `mailto:` contacts of the account; may be empty.
    pub contact: Vec<String>,
    /// Root certificate the directory's HTTPS is checked against instead
    /// of the built-in roots.
    pub ca_file: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    /// The names the certificate covers (the first is its subject).
    pub order_names: Vec<String>,
    /// Account credentials (JSON), one per directory.
    pub account: PathBuf,
    /// PEM chain and PEM private key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Last renewal attempt and its error (JSON), for `mailc tls status`.
    pub status: PathBuf,
    /// Renew when less than this remains (or a third of the lifetime, if
    /// shorter).
    pub renew_before_secs: u64,
    /// First wait after a failed attempt; doubled each time up to `retry_max_secs`.
    pub retry_min_secs: u64,
    pub retry_max_secs: u64,
    /// Renewals reuse the current private key (`dane #true`: the TLSA
    /// records pin it); otherwise every certificate gets a new key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_key: bool,
    /// With `dane #true`, the DANE next key (`<state>/tls/dane-next.key`):
    /// a switch stores the chain on it before the key file, and a start
    /// after a crash between the two finds the chain's key here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dane_next_key: Option<PathBuf>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerKind {
    Smtp,
    Submission,
    Submissions,
    Imap,
    Imaps,
    Pop3,
    Pop3s,
    Lmtp,
    Managesieve,
    /// Plain HTTP: ACME HTTP-01 answers and a redirect to `https`.
    Http,
    /// HTTPS: the MTA-STS policy and client autoconfiguration.
    Https,
}

impl ListenerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
            ListenerKind::Imap => "imap",
            ListenerKind::Imaps => "imaps",
            ListenerKind::Pop3 => "pop3",
            ListenerKind::Pop3s => "pop3s",
            ListenerKind::Lmtp => "lmtp",
            ListenerKind::Managesieve => "managesieve",
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
        }
    }

    pub fn parse(s: &str) -> Option<ListenerKind> {
        [
            ListenerKind::Smtp,
            ListenerKind::Submission,
            ListenerKind::Submissions,
            ListenerKind::Imap,
            ListenerKind::Imaps,
            ListenerKind::Pop3,
            ListenerKind::Pop3s,
            ListenerKind::Lmtp,
            ListenerKind::Managesieve,
            ListenerKind::Http,
            ListenerKind::Https,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The standard port, used by DNS SRV records and in messages.
    pub fn standard_port(self) -> u16 {
        match self {
            ListenerKind::Smtp => 25,
            ListenerKind::Submission => 587,
            ListenerKind::Submissions => 465,
            ListenerKind::Imap => 143,
            ListenerKind::Imaps => 993,
            ListenerKind::Pop3 => 110,
            ListenerKind::Pop3s => 995,
            ListenerKind::Lmtp => 24,
            // RFC 5804 §1.8.
            ListenerKind::Managesieve => 4190,
            ListenerKind::Http => 80,
            ListenerKind::Https => 443,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// No TLS at all (LMTP, or STARTTLS turned off).
    None,
    /// Plain connection, upgraded with STARTTLS / STLS.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// No authentication offered.
    None,
    /// Offered only once the connection is encrypted.
    AfterTls,
    /// Offered on unencrypted connections too (explicit insecure override).
    Plaintext,
}

/// One listener, with every value a connection on it needs: a session
/// receives its row once, at accept, and never looks the listener up again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ListenerTable {
    pub kind: ListenerKind,
    pub address: SocketAddr,
    pub tls: TlsMode,
    pub auth: AuthMode,
    pub max_connections: u32,
    /// Already capped by the server-wide `max-connections-per-ip`.
    pub max_connections_per_ip: u32,
    /// Protocol errors a session may make before it is closed (the
    /// server-wide `max-errors`, raised for protocols that need more).
    pub max_errors: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LocalPartCase {
    /// `Alice@` and `alice@` are one recipient (local parts are lower-cased).
    Insensitive,
    /// Local parts are compared exactly (except `postmaster`, RFC 5321).
    Sensitive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DomainTable {
    /// ASCII form (A-labels), lower case.
    pub name: String,
    /// Unicode form (U-labels), for display.
    pub unicode: String,
    pub local_part_case: LocalPartCase,
    /// `None`: plus addressing off.
    pub plus_separator: Option<String>,
    pub catch_all: Option<CatchAll>,
    pub mx: Vec<MxTable>,
    pub dkim: Vec<DkimKey>,
    pub spf: SpfPolicy,
    pub dmarc: Option<DmarcPolicy>,
    pub mta_sts: Option<MtaStsPolicy>,
    /// TLS-RPT report URIs; empty: no TLS-RPT record.
    pub tls_rpt: Vec<String>,
    /// Sieve scripts for this domain's mailboxes, run inside the server's
    /// `before` and `after` scripts.
    pub sieve_before: Vec<PathBuf>,
    pub sieve_after: Vec<PathBuf>,
    /// This domain's own scanning policy (`domain { scan { } }`); `None`:
    /// the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CatchAll {
    /// The target as written, normalised.
    pub target: String,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MxTable {
    pub host: String,
    pub priority: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DkimKey {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub key: PathBuf,
    /// Created by `mailc serve` at startup when missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SpfPolicy {
    /// Mechanisms and modifiers between `v=spf1` and the final `all`.
    pub terms: Vec<String>,
    /// `-all`, `~all` or `?all`.
    pub all: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DmarcPolicy {
    pub policy: String,
    pub subdomain_policy: Option<String>,
    /// `mailto:` URIs.
    pub rua: Option<String>,
    pub ruf: Option<String>,
    pub pct: u8,
    pub adkim: String,
    pub aspf: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MtaStsPolicy {
    pub mode: String,
    pub max_age_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MailboxTable {
    pub address: String,
    pub domain: String,
    pub local_part: String,
    pub password: PasswordRef,
    /// Bytes; `None`: unlimited.
    pub quota: Option<u64>,
    pub disabled: bool,
    pub sieve: Option<PathBuf>,
    pub maildir: PathBuf,
    /// Envelope/From addresses this mailbox may send as: exact addresses or
    /// `*@domain`. Its own address and its aliases are always included.
    pub send_as: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum PasswordRef {
    /// No password: the mailbox receives mail but cannot log in.
    None,
    /// The hash is in the config; only a fingerprint is kept here.
    Inline { fingerprint: String },
    /// The hash is read from this file at runtime.
    File { path: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddressKind {
    /// The mailbox's own address.
    Mailbox,
    /// An extra address of one mailbox (`alias` inside `mailbox`).
    MailboxAlias,
    /// A domain-level alias (fan-out, forwarding).
    Alias,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AddressEntry {
    pub kind: AddressKind,
    /// Final targets after expanding every local alias, in a stable order,
    /// without duplicates. Disabled mailboxes are kept (delivery refuses them).
    pub targets: Vec<Target>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// A local mailbox (key of [`Tables::mailboxes`]).
    Mailbox,
    /// A remote address: the message is forwarded.
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Target {
    pub address: String,
    pub kind: TargetKind,
    /// Alias addresses passed through from the entry to this target.
    pub via: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Deliver; the result is recorded in Authentication-Results.
    Accept,
    /// Deliver into the Junk folder.
    Junk,
    /// Refuse with a 550 at the end of DATA.
    Reject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InboundPolicy {
    /// SPF, DKIM, DMARC, ARC and iprev run on mail from other servers.
    pub checks: bool,
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub spf_fail: Action,
    pub spf_softfail: Action,
    pub dkim_fail: Action,
    pub dmarc_reject: Action,
    pub dmarc_quarantine: Action,
    /// DMARC fail of mail from one of our own domains, whatever policy the
    /// domain publishes; `None`: its published policy decides.
    pub dmarc_own: Option<Action>,
    /// A DMARC lookup that fails for now defers the message (451).
    pub defer_on_dns_error: bool,
    /// DMARC aggregate reports we send (`dmarc { reports }`); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_reports: Option<DmarcReportsTable>,
    /// DNS blocklists asked at connect (`inbound { dnsbl }`); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnsbl: Option<DnsblTable>,
    /// Greylisting at RCPT (`inbound { greylist }`); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greylist: Option<GreylistTable>,
}

/// Sending DMARC aggregate reports (RFC 7489 §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DmarcReportsTable {
    /// From: and envelope sender of the reports, in one of our domains.
    pub from: String,
    /// `org_name` of the reports.
    pub org_name: String,
    /// Length of a reporting period; periods start at multiples of it
    /// since the epoch.
    pub interval_secs: u64,
    /// Largest report mail sent.
    pub max_size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SubmissionPolicy {
    pub auth_required: bool,
    pub sender_must_own: bool,
    pub strip_client_ip: bool,
    pub max_message_size: u64,
    pub max_recipients: u32,
}

/// Users' Sieve scripts as ManageSieve manages them (`managesieve`). The
/// largest script is the interpreter's (`sieve { max-script-size }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ManageSieveTable {
    /// Scripts one user may store.
    pub max_scripts: u32,
}

/// The verified-credentials cache of logins (`auth-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthCacheTable {
    pub enabled: bool,
    /// How long a verified login is remembered.
    pub ttl_secs: u64,
    /// Most logins remembered at once.
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub max_errors: u32,
    pub auth_failures: u32,
    pub auth_lockout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Timeouts {
    pub smtp_command_secs: u64,
    pub smtp_data_secs: u64,
    pub imap_secs: u64,
    pub imap_idle_secs: u64,
    pub pop3_secs: u64,
    pub managesieve_secs: u64,
    /// An HTTP client's time to send one request's head (and body), idle
    /// keep-alive time included: the slowloris bound.
    pub http_secs: u64,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RelayTls {
    Starttls,
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RelayHostTable {
    pub host: String,
    pub port: u16,
    pub tls: RelayTls,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl Tables {
    /// Fills in `content_hash` from the rest of the tables.
    pub fn seal(mut self) -> Tables {
        self.content_hash = String::new();
        self.content_hash = hash_with_empty_field(&self);
        self
    }

    /// The row of the listener of this kind on this (configured) address.
    pub fn listener(&self, kind: ListenerKind, address: SocketAddr) -> Option<&ListenerTable> {
        self.listeners
            .iter()
            .find(|l| l.kind == kind && l.address == address)
    }

    /// The names the server's certificate must cover: the hostname, and
    /// when an `https` listener serves them, `mta-sts.DOMAIN` for each
    /// domain with an MTA-STS policy and `autoconfig.DOMAIN` /
    /// `autodiscover.DOMAIN` for every domain. Sorted, without duplicates
    /// (what an ACME order asks for).
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names = vec![self.hostname.clone()];
        if self.listeners.iter().any(|l| l.kind == ListenerKind::Https) {
            for d in self.domains.values() {
                if d.mta_sts.is_some() {
                    names.push(format!("mta-sts.{}", d.name));
                }
                names.push(format!("autoconfig.{}", d.name));
                names.push(format!("autodiscover.{}", d.name));
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// The hash the tables should carry (for verifying a loaded file).
    pub fn compute_hash(&self) -> String {
        let mut copy = self.clone();
        copy.content_hash = String::new();
        hash_with_empty_field(&copy)
    }

    /// Deterministic, pretty JSON (what `mailc compile` prints).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The JSON Schema of the tables (`schema/tables.schema.json`).
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(Tables);
        let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
        s.push('\n');
        s
    }
}
