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
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`spec`] | KDL text → spanned model: loading with includes, the language table, the generic shape check |
//! | [`compile`] | defaults (only there), name resolution, safety policy, secret-file checks, lowering to [`tables`] |
//! | [`tables`] | the compiled contract: serde + JSON Schema types, format version, content hash, recipient lookup |
//! | [`diag`] | diagnostics with stable codes and spans, rendered with miette |
//! | [`addr`] | address and domain syntax, IDNA normalisation |
//! | [`ipnet`] | IP networks |
//! | [`auth`] | password hashes (argon2id, Dovecot's `{SHA512-CRYPT}` and `{BLF-CRYPT}`) |
//! | [`cli`] | the `mailc` subcommands; `main.rs` only wires them to clap |
//! | [`outbound`] | pure parts of outbound delivery: DSN messages, DKIM signing, SRS
//!
//! Layering rule (checked by `tests/layering.rs`): `spec`, `compile`, `tables`,
//! `diag`, `addr` and `ipnet` never use sockets or an async runtime; the
//! protocol layers (`proto`, `session`, added with the server) never touch
//! sockets or files.

pub mod addr;
pub mod auth;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod dns;
pub mod envelope;
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
