//! # mailc
//!
//! A complete mail server — SMTP in and out, local delivery to Maildir, IMAP and
//! POP3 — whose whole behaviour is declared in one KDL file that a compiler
//! checks and turns into immutable runtime tables.
//!
//! ## Map of the crate
//!
//! ```text
//!  site.kdl ─spec─▶ spanned model ─compile─▶ Tables (immutable, hashed, no secrets)
//!
//!  SMTP/LMTP in ─▶ queue (durable spool) ─▶ local delivery ─▶ store (Maildir++)
//!                                          ─▶ SMTP out (being built)
//!  IMAP, POP3  ◀──────────────────────────────── store
//!  ManageSieve ◀──▶ users' Sieve scripts (store::sieve), run by delivery
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`spec`] | KDL text → spanned model: loading with includes, the language table, the generic shape check, size and duration values |
//! | [`compile`] | defaults (only there), name resolution, safety policy, secret-file checks, lowering to [`tables`] |
//! | [`tables`] | the compiled contract: serde + JSON Schema types, format version, content hash, recipient lookup |
//! | [`diag`] | diagnostics with stable codes and spans, rendered with miette |
//! | [`addr`] | address and domain syntax, IDNA normalisation |
//! | [`ipnet`] | IP networks |
//! | [`auth`] | password hashes (argon2id, Dovecot's `{SHA512-CRYPT}` and `{BLF-CRYPT}`), the inline [`auth::Secrets`], login lookup, failure limits, the verified-credentials cache |
//! | [`dns`] | the records each domain needs (pure), zone snippets, DKIM key files, `mailc plan` against live DNS, the one resolver and outbound MX routing |
//! | [`envelope`] | the envelope of an accepted message and its per-recipient delivery state (plain data) |
//! | [`inbound`] | inbound authentication's pure parts: the policy over SPF/DKIM/DMARC results, forged `Authentication-Results` removed (the DNS checks run in `services::inbound`); DNS blocklist answers and greylisting decisions (lookups in `services::dnsbl`, durable triplets in `services::greylist`) |
//! | [`proto`] | wire formats as pure functions over bytes: SMTP, IMAP, POP3, ManageSieve, SASL |
//! | [`session`] | protocol state machines without I/O: input in, typed replies and effects out; the storage traits they need |
//! | [`net`] | sockets only: listeners, connection limits, TLS configuration, the plain-or-TLS stream |
//! | [`services`] | the drivers: run sessions over sockets and perform their effects; local delivery; the outbound SMTP transport; `mailc sendmail` submissions; the mail-storage seam ([`services::storage`]) |
//! | [`outbound`] | outbound delivery's pure parts: DSN reports, DKIM signing, ARC sealing of forwards, SRS |
//! | [`queue`] | the spool seam ([`queue::Queue`]) and the durable spool behind it: group-committed segments, per-recipient progress, recovery; an in-memory queue for tests |
//! | [`store`] | mail at rest: Maildir++ folders and their index, quota usage, atomic file helpers |
//! | [`runtime`] | `mailc serve`: binding listeners, reload (validate, then swap), signals, logging |
//! | [`cli`] | the `mailc` subcommands; `main.rs` only wires them to clap |
//! | [`outbound`] | pure parts of outbound delivery: DSN messages, DKIM signing, ARC sealing, SRS
//!
//! `docs/architecture.md` describes the layers and the storage and spool
//! seams; `docs/flow.md` follows one message through these modules.
//!
//! Layering rule (checked by `tests/layering.rs`): `spec`, `compile`,
//! `tables`, `diag`, `addr` and `ipnet` never use sockets or an async
//! runtime; `proto` and `session` never touch sockets, files or tokio and
//! never reach up into `services`, `store`, `queue`, `net` or `runtime`;
//! `auth` never imports `compile`; `store` knows no protocol; `outbound`
//! has no sockets and no async runtime.

pub mod addr;
pub mod auth;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod dns;
pub mod envelope;
pub mod filter;
pub mod inbound;
pub mod ipnet;
pub mod net;
pub mod outbound;
pub mod proto;
pub mod queue;
pub mod runtime;
pub mod services;
pub mod session;
pub mod spec;
pub mod store;
pub mod tables;
