//! Every default of the configuration language, and nothing else. When a
//! setting is absent from the config, the compiler takes its value from here;
//! no other module may invent one. `tests/snapshots` pins the tables compiled
//! from a minimal config, so a changed default shows up in review.

use crate::tables::{Action, DkimAlgorithm, LocalPartCase};

pub const STATE_DIR: &str = "/var/lib/mailc";
pub const LOG_LEVEL: &str = "info";
pub const LOG_FORMAT: &str = "text";

/// MX preference of the implied MX (the server hostname).
pub const MX_PRIORITY: u16 = 10;
pub const PLUS_SEPARATOR: &str = "+";
pub const LOCAL_PART_CASE: LocalPartCase = LocalPartCase::Insensitive;

/// RSA is what every verifier understands; add an ed25519 selector beside it.
pub const DKIM_ALGORITHM: DkimAlgorithm = DkimAlgorithm::Rsa;
/// The published SPF record when a domain has no `spf` node: `v=spf1 mx -all`.
pub const SPF_TERMS: &[&str] = &["mx"];
pub const SPF_ALL: &str = "fail";
pub const DMARC_PCT: u8 = 100;
pub const DMARC_ALIGNMENT: &str = "relaxed";
/// A new MTA-STS policy starts in testing: enforcing a policy before the
/// certificate is right would make senders refuse to deliver.
pub const MTA_STS_MODE: &str = "testing";
pub const MTA_STS_MAX_AGE_SECS: u64 = 7 * 86400;

/// 25 MiB: what the large providers accept, so forwarding does not bounce.
pub const MAX_MESSAGE_SIZE: u64 = 25 << 20;
/// RFC 5321 §4.5.3.1.8: servers must accept at least 100 recipients.
pub const MAX_RECIPIENTS: u32 = 100;
/// Mail from other servers is authenticated (SPF, DKIM, DMARC, ARC, iprev).
pub const INBOUND_CHECKS: bool = true;
/// A DMARC policy that cannot be looked up for now defers (451 4.4.3): it
/// might have said reject.
pub const DEFER_ON_DNS_ERROR: bool = true;
/// SPF fail alone is not proof of forgery (forwarding breaks SPF): junk it.
pub const SPF_FAIL: Action = Action::Junk;
pub const SPF_SOFTFAIL: Action = Action::Accept;
/// RFC 6376 §6.1: a failed signature is treated like no signature.
pub const DKIM_FAIL: Action = Action::Accept;
/// Do what the sending domain asks for.
pub const DMARC_REJECT: Action = Action::Reject;
pub const DMARC_QUARANTINE: Action = Action::Junk;

pub const SUBMISSION_AUTH_REQUIRED: bool = true;
pub const SUBMISSION_SENDER_MUST_OWN: bool = true;
pub const SUBMISSION_STRIP_CLIENT_IP: bool = false;

pub const MAX_CONNECTIONS: u32 = 1000;
/// Generous enough for an office behind one NAT address running IMAP clients
/// with several connections each.
pub const MAX_CONNECTIONS_PER_IP: u32 = 50;
pub const MAX_ERRORS: u32 = 10;
/// IMAP clients probe extensions and get a few BADs in ordinary use: an
/// IMAP session is allowed at least this many errors whatever `max-errors`
/// says.
pub const IMAP_MIN_ERRORS: u32 = 3;
/// A POP3 session is allowed at least this many malformed commands (what
/// Dovecot allows); well-formed commands that fail never count.
pub const POP3_MIN_ERRORS: u32 = 20;
pub const AUTH_FAILURES: u32 = 5;
/// The verified-credentials cache is on: webmail logs in for every request,
/// and each miss costs one argon2id hash (19 MiB, tens of milliseconds).
pub const AUTH_CACHE_ENABLED: bool = true;
/// Long enough to cover a webmail session's bursts of requests, short
/// enough that a password that stops working (a change the server cannot
/// see: none, as reloads flush the cache and password files are checked on
/// every hit) is not remembered for long. Dovecot's `auth_cache_ttl` is 1h.
pub const AUTH_CACHE_TTL_SECS: u64 = 5 * 60;
/// A few hundred bytes each: 10,000 logins is a few MiB at most.
pub const AUTH_CACHE_SIZE: u32 = 10_000;
/// Longest `auth-cache ttl=` accepted.
pub const AUTH_CACHE_TTL_MAX_SECS: u64 = 3600;
pub const AUTH_LOCKOUT_SECS: u64 = 15 * 60;

/// RFC 5321 §4.5.3.2.7: at least 5 minutes awaiting the next command.
pub const SMTP_COMMAND_SECS: u64 = 5 * 60;
/// RFC 5321 §4.5.3.2.5 asks 3 minutes per data block of the client; the server
/// side is more generous.
pub const SMTP_DATA_SECS: u64 = 10 * 60;
/// RFC 9051 §5.4: the autologout timer is at least 30 minutes.
pub const IMAP_SECS: u64 = 30 * 60;
pub const IMAP_IDLE_SECS: u64 = 30 * 60;
/// RFC 1939 §3: at least 10 minutes.
pub const POP3_SECS: u64 = 10 * 60;
/// RFC 5804 sets no timeout; as long as POP3's (clients keep a session
/// open while the user edits a script).
pub const MANAGESIEVE_SECS: u64 = 10 * 60;
pub const SHUTDOWN_GRACE_SECS: u64 = 30;
/// An HTTP client gets this long to send one request (and its body), and
/// to start the next one on a kept-alive connection. Mail clients and ACME
/// validators send a request at once; a slowloris client trickling a byte
/// a second is cut off here (nginx's `client_header_timeout` is 60 s).
pub const HTTP_SECS: u64 = 10;

// ---- the HTTP(S) listeners (fixed bounds; the timeout is configurable)

/// Request line plus headers. Our requests are a Host, a short path and a
/// few headers; 8 KiB is hyper's smallest read buffer and Apache's
/// `LimitRequestLine`. Larger heads get 431.
pub const HTTP_MAX_HEAD_BYTES: usize = 8 << 10;
/// Header lines per request (Apache's `LimitRequestFields` is 100).
pub const HTTP_MAX_HEADERS: usize = 64;
/// The only body we read is an autodiscover POX request (a few hundred
/// bytes). Larger bodies get 413.
pub const HTTP_MAX_BODY_BYTES: usize = 16 << 10;
/// Requests on one kept-alive connection; the last answer says
/// `Connection: close`.
pub const HTTP_MAX_REQUESTS_PER_CONNECTION: u32 = 100;
/// No HTTP connection lives longer than this, however busy.
pub const HTTP_MAX_CONNECTION_SECS: u64 = 5 * 60;

/// Scripts one user may keep on the server (Pigeonhole's default is no
/// limit; a few dozen covers every real use and bounds a listing).
pub const MANAGESIEVE_MAX_SCRIPTS: u32 = 32;

/// Minimums the RFCs ask servers to allow; shorter values get a warning
/// (and IMAP timeouts are raised to theirs).
pub const RFC_MIN_SMTP_COMMAND_SECS: u64 = 5 * 60;
pub const RFC_MIN_SMTP_DATA_SECS: u64 = 3 * 60;
pub const RFC_MIN_IMAP_SECS: u64 = 30 * 60;
pub const RFC_MIN_POP3_SECS: u64 = 10 * 60;

/// Submission port of a relay host when none is given.
pub const RELAY_PORT_STARTTLS: u16 = 587;
pub const RELAY_PORT_IMPLICIT: u16 = 465;

/// Names a self-signed development certificate covers besides the hostname.
pub const SELF_SIGNED_EXTRA_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// ACME: renew a certificate when less than 30 days remain (Let's Encrypt's
/// advice for 90-day certificates); a shorter-lived one at a third of its
/// lifetime.
pub const ACME_RENEW_BEFORE_SECS: u64 = 30 * 86_400;
/// ACME: after a failed order wait a minute, then twice as long each time,
/// at most six hours (Let's Encrypt allows 5 failed validations per hour).
pub const ACME_RETRY_MIN_SECS: u64 = 60;
pub const ACME_RETRY_MAX_SECS: u64 = 6 * 3600;
/// ACME: TLS-ALPN-01 needs nothing but the implicit-TLS listener on port
/// 443 that serves the certificate anyway (https, or any `*s` listener).
pub const ACME_CHALLENGE: crate::tables::AcmeChallenge = crate::tables::AcmeChallenge::TlsAlpn01;
/// Subdirectory of `<state>/tls/` with ACME accounts, certificates and status.
pub const ACME_DIR: &str = "acme";

// ---- outbound delivery

/// Waits between delivery attempts: quick at first (greylisting answers
/// after a few minutes), then hourly-ish; the last repeats.
pub const OUTBOUND_RETRY_SECS: &[u64] = &[5 * 60, 15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600];
/// RFC 5321 §4.5.4.1: giving up "generally needs to be at least 4-5 days".
pub const OUTBOUND_EXPIRE_SECS: u64 = 5 * 86400;
/// Below this the compiler refuses the expiry (a weekend outage of the
/// destination would bounce mail).
pub const OUTBOUND_EXPIRE_MIN_SECS: u64 = 86400;
/// Below this the compiler warns (RFC 5321 §4.5.4.1).
pub const OUTBOUND_EXPIRE_RFC_SECS: u64 = 4 * 86400;
/// RFC 3461/Postfix habit: tell the sender after 4 hours.
pub const OUTBOUND_DELAY_WARNING_SECS: u64 = 4 * 3600;
pub const OUTBOUND_PORT: u16 = 25;
pub const OUTBOUND_MAX_CONNECTIONS: u32 = 100;
/// Postfix's default_destination_concurrency_limit is 20; big providers
/// throttle hosts that open many; 10 is polite and fast enough.
pub const OUTBOUND_MAX_PER_DESTINATION: u32 = 10;
pub const OUTBOUND_MAX_MESSAGES_PER_CONNECTION: u32 = 100;
/// MX hosts and addresses tried in one attempt (RFC 5321 §5.1 asks for a
/// bound; Postfix uses 5 and 10).
pub const OUTBOUND_MAX_MX_HOSTS: u32 = 5;
pub const OUTBOUND_MAX_ADDRESSES: u32 = 10;
/// Outbound DANE on: recipients who publish TLSA records in a signed zone
/// get the TLS they ask for (RFC 7672), as Postfix does with
/// `smtp_tls_security_level = dane`. Off is for hosts without a validating
/// resolver, where every lookup would come back insecure anyway.
pub const OUTBOUND_DANE: bool = true;
/// Outbound MTA-STS on: recipients who publish a policy get verified TLS
/// (RFC 8461).
pub const OUTBOUND_MTA_STS: bool = true;
/// A route through a relay host with a login: the password must not go to a
/// host whose certificate does not verify.
pub const ROUTE_TLS_WITH_LOGIN: crate::tables::OutboundTls =
    crate::tables::OutboundTls::RequireVerified;
/// A route without a login (MX delivery or an open relay host).
pub const ROUTE_TLS: crate::tables::OutboundTls = crate::tables::OutboundTls::Opportunistic;

/// DMARC aggregate reports cover one day, as RFC 7489 §7.2 expects
/// (`ri=` defaults to 86400) and receivers' tools assume.
pub const DMARC_REPORT_INTERVAL_SECS: u64 = 86_400;
/// 10 MiB: well above a day's report of a busy MX once gzip'd (a record
/// is about 40 bytes compressed), well below what report mailboxes accept.
pub const DMARC_REPORT_MAX_SIZE: u64 = 10 << 20;

/// TLS reports cover one UTC day: RFC 8460 §4.1 ("the report SHOULD cover
/// a full day, from 0000-2400 UTC").
pub const TLS_REPORT_INTERVAL_SECS: u64 = 86_400;
/// 10 MiB, as for DMARC reports: a TLS report holds one entry per policy
/// and failure kind, so a day's report is small.
pub const TLS_REPORT_MAX_SIZE: u64 = 10 << 20;

// ---- screening at the MX (both off unless configured)

/// A listing in one zone is enough (Postfix's `reject_rbl_client`).
pub const DNSBL_THRESHOLD: i32 = 1;
pub const DNSBL_WEIGHT: i32 = 1;
/// Lookups run while the client waits for the greeting; a blocklist that
/// does not answer within this is taken as "not listed". Postscreen waits
/// 6 s for its greeting.
pub const DNSBL_TIMEOUT_SECS: u64 = 5;
/// Longest `dnsbl timeout=` accepted: the greeting waits this long at most.
pub const DNSBL_TIMEOUT_MAX_SECS: u64 = 60;
/// Postgrey's and RFC 6647 §2.2's usual delay: long enough that a spam run
/// has moved on, short enough for a sender's first retry (ours: 5 min).
pub const GREYLIST_DELAY_SECS: u64 = 5 * 60;
/// A retry is accepted up to a day after the first attempt: senders that
/// back off to hours between attempts still get through (Postgrey allows
/// 2 days); spam engines rarely retry at all.
pub const GREYLIST_EXPIRE_SECS: u64 = 86400;
/// Postgrey's `--max-age`: a correspondent that writes monthly is not
/// greylisted again.
pub const GREYLIST_KEEP_SECS: u64 = 36 * 86400;
/// About 80 bytes each in memory and 60 on disk: 100,000 is a few MiB.
pub const GREYLIST_MAX_ENTRIES: u32 = 100_000;
/// Postgrey's `--auto-whitelist-clients`: a network that passed 5 times is
/// a real mail server.
pub const GREYLIST_WHITELIST_AFTER: u32 = 5;
/// RFC 5321 §4.5.4.1: retries should wait at least 30 minutes; a window
/// shorter than the delay plus this may shut out a compliant sender.
pub const GREYLIST_MIN_WINDOW_SECS: u64 = 30 * 60;

/// `scan { timeout }`: every scanner of one message together. spamd takes
/// 0.1-0.3 s and rspamd a few ms for ordinary mail on a quiet machine;
/// network tests (DNS blocklists, Razor) push spamd to seconds. The client
/// waits up to 10 minutes for the DATA reply (RFC 5321 §4.5.3.2.6).
pub const SCAN_TIMEOUT_SECS: u64 = 30;
/// Longest `scan { timeout }` accepted: past it an SMTP client may give up.
pub const SCAN_TIMEOUT_MAX_SECS: u64 = 300;
/// `scan { max-size }`: larger messages are not scanned (spam is small;
/// spamc's own default is 500 KB, clamd's StreamMaxLength 25 MB).
pub const SCAN_MAX_SIZE: u64 = 10 << 20;
/// `scan { on-failure }`: a scanner that is down defers mail (451, the
/// sender retries) instead of letting it in unscanned. Fail-closed is the
/// safe default; `on-failure "accept"` chooses availability.
pub const SCAN_FAIL_OPEN: bool = false;
/// Submissions are the users' own mail: not scanned unless asked for.
pub const SCAN_SUBMISSION: bool = false;
/// SpamAssassin's `required_score`: from 5 a message is spam.
pub const SCAN_SPAM_JUNK: f64 = 5.0;
/// A score this high is not a false positive worth delivering (rspamd's
/// `reject` action is at 15 too).
pub const SCAN_SPAM_REJECT: f64 = 15.0;
/// An infected message is refused: a reject is a reject, the sender learns.
pub const SCAN_VIRUS: crate::tables::VirusAction = crate::tables::VirusAction::Reject;
/// Spam over the reject threshold is refused, not delivered to Junk: the
/// sender learns, and nobody wades through certain spam.
pub const SCAN_REJECT_SPAM: bool = true;
/// With `scan { }`, messages entering through `mailc deliver` (the MDA
/// behind another MTA or fetchmail) are scanned too: mail is scanned
/// wherever it enters mailc. `deliver #false` when the MTA in front already
/// scans.
pub const SCAN_DELIVER: bool = true;
/// Moves into and out of Junk teach spamd / rspamd: what users of every
/// webmail expect from the Junk button.
pub const SCAN_LEARN: bool = true;
/// rspamd's controller port (its default), for learning.
pub const RSPAMD_CONTROLLER_PORT: u16 = 11334;

/// Sieve: scripts uploaded with ManageSieve run.
pub const SIEVE_USER_SCRIPTS: bool = true;
/// Instructions one script may run per message: far above what real
/// filters need (a 200-rule script runs a few thousand), low enough that a
/// runaway one costs milliseconds.
pub const SIEVE_CPU_LIMIT: u32 = 100_000;
/// `redirect`s per message (Pigeonhole's default too).
pub const SIEVE_MAX_REDIRECTS: u32 = 4;
pub const SIEVE_MAX_SCRIPT_SIZE: u64 = 256 << 10;
/// RFC 5230 §4.1: sites may refuse periods shorter than a day.
pub const SIEVE_VACATION_MIN_SECS: u64 = 86_400;
