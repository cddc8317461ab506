//! `compile`: the spanned model → checked, immutable [`Tables`].
//!
//! Name resolution (domains, addresses, aliases), the safety policy (open relay,
//! plaintext AUTH, TLS without certificates), secret-file checks and lowering.
//! Defaults come from [`defaults`] only. Every problem is reported; tables are
//! produced only when there is no error.

mod acme;
pub mod defaults;
mod domains;
mod error;
mod outbound;
mod recipients;
mod scan;
mod screen;
mod secrets;
mod server;
pub(crate) mod sieve;

pub use sieve::limits as sieve_limits;

use std::collections::BTreeMap;
use std::path::Path;

use crate::diag::Diags;
use crate::spec::{self, Parsed, source::Sources, source::Span};
use crate::tables::{FORMAT_VERSION, Tables};

/// What the compiler may look at besides the config text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Do not read secret files (password files, keys): for builds in a
    /// sandbox where they do not exist yet (`mailc check --offline`).
    pub offline: bool,
}

/// The inline password hashes the compiler extracted; the type belongs to
/// [`crate::auth`], which consumes it (the dependency goes compile → auth,
/// never back).
pub use crate::auth::Secrets;

/// Where things were defined, for `mailc explain` (not part of the tables, so
/// moving a line does not change the content hash).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    pub addresses: BTreeMap<String, Span>,
    pub domains: BTreeMap<String, Span>,
    pub catch_alls: BTreeMap<String, Span>,
}

/// A successful compilation.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub tables: Tables,
    pub secrets: Secrets,
    pub origins: Origins,
}

/// Everything a compile run produced: the sources (for rendering
/// diagnostics), the diagnostics, and the result when there was no error.
pub struct Output {
    pub sources: Sources,
    pub diags: Diags,
    pub compiled: Option<Compiled>,
}

/// Reads and compiles the configuration at `path`.
pub fn compile_file(path: &Path, options: Options) -> Output {
    let mut diags = Diags::new();
    let parsed = spec::parse_file(path, &mut diags);
    finish(parsed, options, diags)
}

/// Compiles text held in memory; relative paths resolve against `dir`.
pub fn compile_str(name: &str, dir: &Path, text: &str, options: Options) -> Output {
    let mut diags = Diags::new();
    let parsed = spec::parse_str(name, dir, text, &mut diags);
    finish(parsed, options, diags)
}

fn finish(mut parsed: Parsed, options: Options, mut diags: Diags) -> Output {
    let mut compiled = compile(&parsed, options, &mut diags);
    if let Some(c) = &compiled {
        // Sieve scripts join the sources: their diagnostics point into them.
        sieve::check(
            &parsed.config,
            c,
            options.offline,
            &mut parsed.sources,
            &mut diags,
        );
        if diags.has_errors() {
            compiled = None;
        }
    }
    Output {
        sources: parsed.sources,
        diags,
        compiled,
    }
}

/// Lowers a parsed config. Returns `None` when any error was reported (by the
/// spec stage before, or here).
pub fn compile(parsed: &Parsed, options: Options, diags: &mut Diags) -> Option<Compiled> {
    if parsed.sources.is_empty() || diags.iter().any(|d| d.code == crate::diag::Code::Syntax) {
        // The main file could not be read, or some file is not KDL: checking
        // the meaning of a partial config would only add noise.
        return None;
    }
    let cfg = &parsed.config;
    let mut cx = Cx { options, diags };
    let server = server::lower(cfg, &mut cx);
    let mut doms = domains::lower(cfg, &server, &mut cx);
    let recips = recipients::lower(cfg, &server, &mut doms, &mut cx);
    server::check_relay_safety(cfg, &mut cx);
    let (outbound, resolvers) = outbound::lower(cfg, server.relay_host.as_ref(), &mut cx);
    let sieve = sieve::lower(cfg, &mut cx);
    let scan_errors = cx.diags.error_count();
    let scan = scan::lower(cfg.scan.as_ref(), &mut cx);
    let scan_broken = cfg.scan.is_some() && cx.diags.error_count() > scan_errors;
    for (d, name) in cfg.domains.iter().zip(&doms.names) {
        if let (Some(p), Some(name)) = (&d.scan, name) {
            let policy = scan::lower_domain(p, scan.as_ref(), scan_broken, &mut cx);
            if let Some(t) = doms.tables.get_mut(name) {
                t.scan = policy;
            }
        }
    }
    let mut server = server;
    server.inbound.dmarc_reports = server::dmarc_reports(cfg, &doms.tables, &mut cx);
    let mut outbound = outbound;
    outbound.tls_reports = server::tls_reports(cfg, &doms.tables, &mut cx);

    if cx.diags.has_errors() {
        return None;
    }
    let hostname = server.hostname?;
    let mut tables = Tables {
        format_version: FORMAT_VERSION,
        content_hash: String::new(),
        hostname,
        state_dir: server.state_dir,
        public_ips: server.public_ips,
        dane: cfg.dane.as_ref().is_some_and(|d| d.value),
        log: server.log,
        tls: server.certificates,
        listeners: server.listeners,
        domains: doms.tables,
        mailboxes: recips.mailboxes,
        addresses: recips.addresses,
        trusted_networks: server.trusted_networks,
        inbound: server.inbound,
        scan,
        submission: server.submission,
        limits: server.limits,
        auth_cache: server.auth_cache,
        managesieve: server.managesieve,
        timeouts: server.timeouts,
        relay_host: server.relay_host,
        resolvers,
        outbound,
        sieve,
    };
    // A development certificate also covers the names the `https`
    // listener serves (mta-sts., autoconfig., autodiscover.).
    let served = tables.certificate_names();
    for c in &mut tables.tls {
        if let crate::tables::CertSource::SelfSigned { subject_names, .. } = &mut c.source {
            for n in &served {
                if !subject_names.contains(n) {
                    subject_names.push(n.clone());
                }
            }
        }
    }
    let tables = tables.seal();
    Some(Compiled {
        tables,
        secrets: recips.secrets,
        origins: Origins {
            addresses: recips.origins,
            domains: doms.origins,
            catch_alls: doms.catch_all_origins,
        },
    })
}

/// State shared by the lowering passes.
pub(crate) struct Cx<'a> {
    pub options: Options,
    pub diags: &'a mut Diags,
}
