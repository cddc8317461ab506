//! Outbound delivery's pure parts: what the scheduler and the SMTP client
//! call to build and transform messages, with no sockets and no async
//! runtime (a layering rule in `tests/layering.rs` keeps it so).
//!
//! | module | owns |
//! |---|---|
//! | [`dsn`] | delivery status notifications (RFC 3464 bounces, delay warnings, success reports) and who gets one (RFC 3461 `NOTIFY`) |
//! | [`arc`] | ARC sealing of forwarded mail (RFC 8617): the results of the MX's checks, sealed with the forwarding domain's DKIM key |
//! | [`dkim`] | DKIM signing of mail that leaves (RFC 6376): keys loaded once at start, one signature per selector of the From domain |
//! | [`srs`] | the Sender Rewriting Scheme for forwarded mail, and its reversal for bounces |
//! | [`tls_report`] | TLS reports (RFC 8460): stored attempts, aggregation per domain and policy, the JSON report and its mail, the `_smtp._tls` record |
//! | [`tlsrpt`] | what one outbound TLS attempt tells TLS-RPT (RFC 8460): policy type, result type |
//!
//! File access is limited to loading secrets: DKIM private keys
//! ([`dkim::Signer::load`]) and the SRS key ([`srs::Srs::load_or_create`]).

pub mod arc;
pub mod dkim;
pub mod dsn;
pub mod srs;
pub mod tls_report;
pub mod tlsrpt;
