//! Recipients: mailboxes, their extra addresses, domain aliases and
//! catch-alls, resolved at compile time into final targets. Duplicates,
//! alias loops and aliases to local addresses that do not exist are errors.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::domains::Domains;
use super::server::Server;
use super::{Cx, Secrets, secrets};
use crate::addr::{self, AddrError};
use crate::auth::password::PasswordHash;
use crate::diag::{Code, Diag};
use crate::spec::ast::{Alias, Config, Mailbox};
use crate::spec::check::did_you_mean;
use crate::spec::source::{Span, Spanned};
use crate::tables::resolve::normalize_local;
use crate::tables::{
    AddressEntry, AddressKind, CatchAll, DomainTable, MailboxTable, PasswordRef, Target, TargetKind,
};

pub(super) struct Recipients {
    pub mailboxes: BTreeMap<String, MailboxTable>,
    pub addresses: BTreeMap<String, AddressEntry>,
    pub secrets: Secrets,
    pub origins: BTreeMap<String, Span>,
}

/// One address written in the config, before expansion.
struct Def {
    span: Span,
    kind: DefKind,
}

enum DefKind {
    Mailbox {
        disabled: bool,
    },
    MailboxAlias {
        mailbox: String,
    },
    Alias {
        domain: String,
        targets: Vec<Spanned<String>>,
    },
}

impl DefKind {
    fn what(&self) -> &'static str {
        match self {
            DefKind::Mailbox { .. } => "mailbox",
            DefKind::MailboxAlias { .. } => "mailbox alias",
            DefKind::Alias { .. } => "alias",
        }
    }
}

/// Where a written target points.
enum TargetRef {
    /// A local address that is defined (the key into `defs`).
    Local(String),
    Remote(String),
}

/// What pass 1 collects: every address the config defines, the mailbox
/// rows, inline secrets, and the `send-as` patterns still to resolve.
#[derive(Default)]
struct Defined {
    defs: BTreeMap<String, Def>,
    mailboxes: BTreeMap<String, MailboxTable>,
    secrets: Secrets,
    send_as: Vec<(String, Vec<Spanned<String>>)>,
}

/// Lowers every recipient of the config, in passes: define each address
/// (reporting duplicates), expand each into final targets, attach
/// catch-alls, warn about what works but looks wrong, resolve send-as.
/// The order of the passes is the order of the diagnostics.
pub(super) fn lower(
    cfg: &Config,
    server: &Server,
    doms: &mut Domains,
    cx: &mut Cx<'_>,
) -> Recipients {
    let mut defined = Defined::default();
    for (d, name) in cfg.domains.iter().zip(&doms.names) {
        let Some(table) = name.as_ref().and_then(|n| doms.tables.get(n)) else {
            continue;
        };
        for m in &d.mailboxes {
            define_mailbox(m, table, server, doms, &mut defined, cx);
        }
        for a in &d.aliases {
            define_alias(a, table, &mut defined.defs, cx);
        }
    }

    let mut ex = Expander {
        defs: &defined.defs,
        domains: &doms.tables,
        memo: HashMap::new(),
        stack: Vec::new(),
        reported_cycles: BTreeSet::new(),
        reported_targets: BTreeSet::new(),
    };
    let addresses = expand_addresses(&defined.defs, &mut ex, cx);
    let catch_alls = expand_catch_alls(cfg, doms, &addresses, &mut ex, cx);
    for (name, c) in catch_alls {
        if let Some(t) = doms.tables.get_mut(&name) {
            t.catch_all = Some(c);
        }
    }

    warn_disabled_targets(&defined.defs, &addresses, cx);
    warn_postmaster_missing(cfg, doms, &defined.defs, cx);
    resolve_send_as(&mut defined, &doms.tables, cx);

    let origins = defined
        .defs
        .iter()
        .map(|(a, d)| (a.clone(), d.span))
        .collect();
    Recipients {
        mailboxes: defined.mailboxes,
        addresses,
        secrets: defined.secrets,
        origins,
    }
}

/// Pass 1 for one `mailbox`: its address, its row, its extra addresses.
fn define_mailbox(
    m: &Mailbox,
    table: &DomainTable,
    server: &Server,
    doms: &Domains,
    out: &mut Defined,
    cx: &mut Cx<'_>,
) {
    let Some(address) = local_address(&m.local_part, table, cx) else {
        return;
    };
    let disabled = m.disabled.as_ref().is_some_and(|v| v.value);
    let kind = DefKind::Mailbox { disabled };
    if !define(&mut out.defs, &address, m.local_part.span, kind, cx) {
        return;
    }
    let password = password(m, &address, &mut out.secrets, cx);
    if let Some(s) = &m.sieve {
        secrets::check_file(s, false, "Sieve script", cx);
    }
    let local = address.split('@').next().unwrap_or_default().to_string();
    out.mailboxes.insert(
        address.clone(),
        MailboxTable {
            address: address.clone(),
            domain: table.name.clone(),
            maildir: server
                .state_dir
                .join("mail")
                .join(&table.name)
                .join(fs_safe(&local)),
            local_part: local,
            password,
            quota: m.quota.as_ref().map(|q| q.value),
            disabled,
            sieve: m.sieve.as_ref().map(|s| s.value.clone()),
            send_as: Vec::new(),
        },
    );
    for a in &m.aliases {
        let Some(alias) = address_in(a, table, doms, true, cx) else {
            continue;
        };
        let kind = DefKind::MailboxAlias {
            mailbox: address.clone(),
        };
        define(&mut out.defs, &alias, a.span, kind, cx);
    }
    out.send_as.push((address, m.send_as.clone()));
}

/// Pass 1 for one domain `alias`.
fn define_alias(a: &Alias, table: &DomainTable, defs: &mut BTreeMap<String, Def>, cx: &mut Cx<'_>) {
    let Some(address) = local_address(&a.local_part, table, cx) else {
        return;
    };
    if a.targets.is_empty() {
        cx.diags.push(
            Diag::error(Code::AliasEmpty, format!("alias `{address}` has no target"))
                .label(a.local_part.span, "forwards nowhere")
                .help("add `to=\"alice\"` or a block `{ to \"alice\" \"bob@example.net\" }`"),
        );
        return;
    }
    let kind = DefKind::Alias {
        domain: table.name.clone(),
        targets: a.targets.clone(),
    };
    define(defs, &address, a.local_part.span, kind, cx);
}

/// Pass 2: every definition expanded into final targets.
fn expand_addresses(
    defs: &BTreeMap<String, Def>,
    ex: &mut Expander<'_>,
    cx: &mut Cx<'_>,
) -> BTreeMap<String, AddressEntry> {
    let mailbox = |address: &str| Target {
        address: address.to_string(),
        kind: TargetKind::Mailbox,
        via: Vec::new(),
    };
    let mut addresses = BTreeMap::new();
    for (address, def) in defs {
        let (kind, targets) = match &def.kind {
            DefKind::Mailbox { .. } => (AddressKind::Mailbox, vec![mailbox(address)]),
            DefKind::MailboxAlias { mailbox: m } => (AddressKind::MailboxAlias, vec![mailbox(m)]),
            DefKind::Alias { .. } => (AddressKind::Alias, ex.expand(address, cx)),
        };
        addresses.insert(address.clone(), AddressEntry { kind, targets });
    }
    addresses
}

/// Catch-alls, expanded the same way: (domain, catch-all) pairs to attach.
fn expand_catch_alls(
    cfg: &Config,
    doms: &Domains,
    addresses: &BTreeMap<String, AddressEntry>,
    ex: &mut Expander<'_>,
    cx: &mut Cx<'_>,
) -> Vec<(String, CatchAll)> {
    let mut catch_alls = Vec::new();
    for (d, name) in cfg.domains.iter().zip(&doms.names) {
        let (Some(name), Some(c)) = (name, &d.catch_all) else {
            continue;
        };
        let Some(table) = doms.tables.get(name) else {
            continue;
        };
        let Some(target) = ex.target(c, table, Code::CatchAllTarget, cx) else {
            continue;
        };
        let (target, targets) = match target {
            TargetRef::Remote(r) => {
                let remote = Target {
                    address: r.clone(),
                    kind: TargetKind::Remote,
                    via: Vec::new(),
                };
                (r, vec![remote])
            }
            TargetRef::Local(key) => {
                let targets = addresses.get(&key).map_or_else(Vec::new, |e| {
                    let mut t = e.targets.clone();
                    if e.kind == AddressKind::Alias {
                        for x in &mut t {
                            x.via.insert(0, key.clone());
                        }
                    }
                    t
                });
                (key, targets)
            }
        };
        catch_alls.push((name.clone(), CatchAll { target, targets }));
    }
    catch_alls
}

/// Disabled mailboxes reached through aliases deserve a warning.
fn warn_disabled_targets(
    defs: &BTreeMap<String, Def>,
    addresses: &BTreeMap<String, AddressEntry>,
    cx: &mut Cx<'_>,
) {
    for (address, entry) in addresses {
        if entry.kind != AddressKind::Alias {
            continue;
        }
        for t in &entry.targets {
            if let Some(DefKind::Mailbox { disabled: true }) = defs.get(&t.address).map(|d| &d.kind)
                && let Some(def) = defs.get(address)
            {
                cx.diags.push(
                    Diag::warning(
                        Code::AliasDisabledTarget,
                        format!("alias `{address}` delivers to the disabled mailbox `{}`", t.address),
                    )
                    .label(def.span, "alias defined here")
                    .label(defs[&t.address].span, "disabled mailbox")
                    .help("mail for this target will be refused; remove it from the alias or enable the mailbox"),
                );
            }
        }
    }
}

/// RFC 5321 §4.5.1: every domain must accept mail for postmaster.
fn warn_postmaster_missing(
    cfg: &Config,
    doms: &Domains,
    defs: &BTreeMap<String, Def>,
    cx: &mut Cx<'_>,
) {
    for (d, name) in cfg.domains.iter().zip(&doms.names) {
        let Some(name) = name else { continue };
        let Some(table) = doms.tables.get(name) else {
            continue;
        };
        let pm = format!("postmaster@{name}");
        if defs.contains_key(&pm) || table.catch_all.is_some() {
            continue;
        }
        let first = cfg
            .domains
            .iter()
            .zip(&doms.names)
            .find(|(_, n)| n.as_deref() == Some(name))
            .and_then(|(d, _)| d.mailboxes.first())
            .map(|m| m.local_part.value.clone())
            .unwrap_or_else(|| "admin".into());
        cx.diags.push(
            Diag::warning(
                Code::PostmasterMissing,
                format!("domain `{}` has no postmaster address", table.unicode),
            )
            .label(d.name.span, "no postmaster@ here")
            .help(format!(
                "RFC 5321 requires one: add `alias \"postmaster\" to=\"{first}\"` to the domain"
            )),
        );
    }
}

/// Send-as: own address, own extra addresses, and explicit patterns.
fn resolve_send_as(
    defined: &mut Defined,
    domains: &BTreeMap<String, DomainTable>,
    cx: &mut Cx<'_>,
) {
    let mut extra_addresses: HashMap<&str, Vec<String>> = HashMap::new();
    for (a, def) in &defined.defs {
        if let DefKind::MailboxAlias { mailbox } = &def.kind {
            extra_addresses
                .entry(mailbox.as_str())
                .or_default()
                .push(a.clone());
        }
    }
    for (address, patterns) in std::mem::take(&mut defined.send_as) {
        let mut list: Vec<String> = vec![address.clone()];
        if let Some(own) = extra_addresses.get(address.as_str()) {
            list.extend(own.iter().cloned());
        }
        let domain = address.split('@').nth(1).unwrap_or_default().to_string();
        for p in patterns {
            match send_as_pattern(&p.value, &domain, domains) {
                Ok(s) => list.push(s),
                Err(e) => cx.diags.push(
                    Diag::error(Code::SendAsInvalid, format!("send-as `{}`: {e}", p.value))
                        .label(p.span, "not an address or *@domain")
                        .help("write a full address (\"sales@example.com\"), a local part of this domain, or \"*@example.com\""),
                ),
            }
        }
        list.sort();
        list.dedup();
        if let Some(m) = defined.mailboxes.get_mut(&address) {
            m.send_as = list;
        }
    }
}

/// Registers an address; reports a duplicate and returns false if taken.
fn define(
    defs: &mut BTreeMap<String, Def>,
    address: &str,
    span: Span,
    kind: DefKind,
    cx: &mut Cx<'_>,
) -> bool {
    if let Some(prev) = defs.get(address) {
        let (code, msg) = match (&prev.kind, &kind) {
            (DefKind::Mailbox { .. }, DefKind::Mailbox { .. }) => (
                Code::MailboxDuplicate,
                format!("mailbox `{address}` is declared twice"),
            ),
            (DefKind::Alias { .. }, DefKind::Alias { .. }) => (
                Code::AliasDuplicate,
                format!("alias `{address}` is declared twice"),
            ),
            (a, b) => (
                Code::AddressDuplicate,
                format!("`{address}` is both a {} and a {}", a.what(), b.what()),
            ),
        };
        cx.diags.push(
            Diag::error(code, msg)
                .label(span, "declared again here")
                .label(prev.span, "first declared here")
                .help("an address can belong to only one mailbox or alias; with case-insensitive local parts, `Bob` and `bob` are the same"),
        );
        return false;
    }
    defs.insert(address.to_string(), Def { span, kind });
    true
}

/// `local` of a mailbox/alias name in `table`'s domain, validated and
/// normalised.
fn local_address(lp: &Spanned<String>, table: &DomainTable, cx: &mut Cx<'_>) -> Option<String> {
    if lp.value.contains('@') {
        cx.diags.push(
            Diag::error(
                Code::AddressInvalid,
                format!("`{}` should be a local part, without @", lp.value),
            )
            .label(lp.span, "a full address")
            .help(format!(
                "inside `domain \"{}\"` write only the part before @",
                table.unicode
            )),
        );
        return None;
    }
    if let Err(e) = addr::validate_local_part(&lp.value) {
        cx.diags.push(
            Diag::error(Code::AddressInvalid, format!("local part `{}`: {e}", lp.value))
                .label(lp.span, "not a valid local part")
                .help("local parts may contain letters, digits and ! # $ % & ' * + - / = ? ^ _ ` { | } ~ and single dots"),
        );
        return None;
    }
    Some(format!(
        "{}@{}",
        normalize_local(&lp.value, table.local_part_case),
        table.name
    ))
}

/// An address written in `table`'s domain context: a local part (same
/// domain) or a full address. With `must_be_local`, the domain must be ours.
fn address_in(
    text: &Spanned<String>,
    table: &DomainTable,
    doms: &Domains,
    must_be_local: bool,
    cx: &mut Cx<'_>,
) -> Option<String> {
    let Some((local, domain)) = addr::split(&text.value) else {
        return local_address(text, table, cx);
    };
    let bad = |cx: &mut Cx<'_>, e: AddrError| {
        cx.diags.push(
            Diag::error(
                Code::AddressInvalid,
                format!("address `{}`: {e}", text.value),
            )
            .label(text.span, "not a valid address")
            .help("write a local part (\"sales\") or a full address (\"sales@example.com\")"),
        );
    };
    if let Err(e) = addr::validate_local_part(local) {
        bad(cx, e);
        return None;
    }
    let d = match addr::normalize_domain(domain) {
        Ok(d) => d,
        Err(e) => {
            bad(cx, e);
            return None;
        }
    };
    match doms.tables.get(&d.ascii) {
        Some(t) => Some(format!(
            "{}@{}",
            normalize_local(local, t.local_part_case),
            t.name
        )),
        None if must_be_local => {
            cx.diags.push(
                Diag::error(
                    Code::AddressInvalid,
                    format!("`{}` is not in a domain of this server", text.value),
                )
                .label(text.span, "not a local domain")
                .help("a mailbox can only receive at local domains; to forward, use a domain `alias` instead"),
            );
            None
        }
        None => Some(format!("{local}@{}", d.ascii)),
    }
}

fn send_as_pattern(
    p: &str,
    own_domain: &str,
    domains: &BTreeMap<String, DomainTable>,
) -> Result<String, AddrError> {
    if let Some(d) = p.strip_prefix("*@") {
        return addr::normalize_domain(d).map(|d| format!("*@{}", d.ascii));
    }
    let (local, domain) = addr::split(p).unwrap_or((p, own_domain));
    addr::validate_local_part(local)?;
    let d = addr::normalize_domain(domain)?;
    let local = match domains.get(&d.ascii) {
        Some(t) => normalize_local(local, t.local_part_case),
        None => local.to_string(),
    };
    Ok(format!("{local}@{}", d.ascii))
}

fn password(m: &Mailbox, address: &str, secrets_out: &mut Secrets, cx: &mut Cx<'_>) -> PasswordRef {
    match (&m.password, &m.password_file) {
        (Some(p), Some(f)) => {
            cx.diags.push(
                Diag::error(
                    Code::PasswordConflict,
                    format!("mailbox `{address}` has two passwords"),
                )
                .label(p.span, "inline hash")
                .label(f.span, "password file")
                .help("keep one: `password-file=` keeps the hash out of the config repository"),
            );
            PasswordRef::None
        }
        (Some(p), None) => match PasswordHash::parse(&p.value) {
            Ok(h) => {
                secrets_out
                    .inline_password_hashes
                    .insert(address.to_string(), h.as_str().to_string());
                let digest = Sha256::digest(p.value.trim().as_bytes());
                let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
                PasswordRef::Inline {
                    fingerprint: format!("sha256:{hex}"),
                }
            }
            Err(e) => {
                cx.diags.push(
                    Diag::error(
                        Code::PasswordMalformed,
                        format!("password of `{address}`: {e}"),
                    )
                    .label(p.span, "not a usable password hash")
                    .help(e.help()),
                );
                PasswordRef::None
            }
        },
        (None, Some(f)) => {
            if let Some(text) = secrets::read_secret(f, "password file", cx)
                && let Err(e) = PasswordHash::parse(&text)
            {
                cx.diags.push(
                    Diag::error(
                        Code::PasswordMalformed,
                        format!("password file {} of `{address}`: {e}", f.value.display()),
                    )
                    .label(f.span, "file does not hold a usable hash")
                    .help(e.help()),
                );
            }
            PasswordRef::File {
                path: f.value.clone(),
            }
        }
        (None, None) => {
            cx.diags.push(
                Diag::warning(
                    Code::PasswordNone,
                    format!("mailbox `{address}` has no password"),
                )
                .label(m.local_part.span, "receives mail, but nobody can log in")
                .help("add `password-file=\"...\"` with a hash from `mailc hash-password`"),
            );
            PasswordRef::None
        }
    }
}

/// A local part as a directory name: characters that mean something to a
/// file system or a shell are %-encoded, so `a/b` cannot make a subdirectory.
fn fs_safe(local: &str) -> String {
    let mut out = String::new();
    for c in local.chars() {
        if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '=') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

struct Expander<'a> {
    defs: &'a BTreeMap<String, Def>,
    domains: &'a BTreeMap<String, DomainTable>,
    memo: HashMap<String, Vec<Target>>,
    stack: Vec<String>,
    reported_cycles: BTreeSet<Vec<String>>,
    reported_targets: BTreeSet<(usize, usize)>,
}

impl Expander<'_> {
    /// Resolves one written target in the context of `table`'s domain.
    fn target(
        &mut self,
        text: &Spanned<String>,
        table: &DomainTable,
        code: Code,
        cx: &mut Cx<'_>,
    ) -> Option<TargetRef> {
        let (local, domain_ascii) = match addr::split(&text.value) {
            Some((l, d)) => match addr::normalize_domain(d) {
                Ok(d) => (l.to_string(), d.ascii),
                Err(e) => {
                    self.once(text.span, cx, || {
                        Diag::error(Code::AddressInvalid, format!("target `{}`: {e}", text.value))
                            .label(text.span, "bad domain")
                            .help("write a local part (\"alice\") or a full address (\"bob@example.net\")")
                    });
                    return None;
                }
            },
            None => (text.value.clone(), table.name.clone()),
        };
        if let Err(e) = addr::validate_local_part(&local) {
            self.once(text.span, cx, || {
                Diag::error(
                    Code::AddressInvalid,
                    format!("target `{}`: {e}", text.value),
                )
                .label(text.span, "bad local part")
                .help("write a local part (\"alice\") or a full address (\"bob@example.net\")")
            });
            return None;
        }
        let Some(dt) = self.domains.get(&domain_ascii) else {
            return Some(TargetRef::Remote(format!("{local}@{domain_ascii}")));
        };
        let norm = normalize_local(&local, dt.local_part_case);
        let key = format!("{norm}@{}", dt.name);
        if self.defs.contains_key(&key) {
            return Some(TargetRef::Local(key));
        }
        if let Some(sep) = &dt.plus_separator
            && let Some((base, _)) = norm.split_once(sep.as_str())
        {
            let base_key = format!("{base}@{}", dt.name);
            if self.defs.contains_key(&base_key) {
                return Some(TargetRef::Local(base_key));
            }
        }
        let candidates: Vec<&str> = self
            .defs
            .keys()
            .filter(|k| k.ends_with(&format!("@{}", dt.name)))
            .map(|k| k.split('@').next().unwrap_or_default())
            .collect();
        let help = match did_you_mean(&norm, &candidates) {
            Some(s) => format!("did you mean `{s}@{}`?", dt.name),
            None => format!(
                "{} is a local domain, so the target must be a mailbox or alias defined there",
                dt.unicode
            ),
        };
        self.once(text.span, cx, || {
            Diag::error(code, format!("`{key}` does not exist"))
                .label(text.span, "no mailbox or alias with this address")
                .help(help)
        });
        None
    }

    fn once(&mut self, span: Span, cx: &mut Cx<'_>, make: impl FnOnce() -> Diag) {
        if self
            .reported_targets
            .insert((span.file.0 as usize, span.offset))
        {
            cx.diags.push(make());
        }
    }

    /// Final targets of the alias `address`, deduplicated in first-seen order.
    fn expand(&mut self, address: &str, cx: &mut Cx<'_>) -> Vec<Target> {
        if let Some(done) = self.memo.get(address) {
            return done.clone();
        }
        let Some(def) = self.defs.get(address) else {
            return Vec::new();
        };
        let DefKind::Alias { domain, targets } = &def.kind else {
            return Vec::new();
        };
        let Some(table) = self.domains.get(domain) else {
            return Vec::new();
        };
        self.stack.push(address.to_string());
        let mut out: Vec<Target> = Vec::new();
        for t in targets {
            let Some(r) = self.target(t, table, Code::AliasUnknownTarget, cx) else {
                continue;
            };
            let found: Vec<Target> = match r {
                TargetRef::Remote(a) => vec![Target {
                    address: a,
                    kind: TargetKind::Remote,
                    via: Vec::new(),
                }],
                TargetRef::Local(key) => match self.defs.get(&key).map(|d| &d.kind) {
                    Some(DefKind::Mailbox { .. }) => vec![Target {
                        address: key,
                        kind: TargetKind::Mailbox,
                        via: Vec::new(),
                    }],
                    Some(DefKind::MailboxAlias { mailbox }) => vec![Target {
                        address: mailbox.clone(),
                        kind: TargetKind::Mailbox,
                        via: vec![key],
                    }],
                    Some(DefKind::Alias { .. }) => {
                        if let Some(pos) = self.stack.iter().position(|s| *s == key) {
                            self.report_cycle(pos, cx);
                            continue;
                        }
                        let mut sub = self.expand(&key, cx);
                        for s in &mut sub {
                            s.via.insert(0, key.clone());
                        }
                        sub
                    }
                    None => Vec::new(),
                },
            };
            for f in found {
                if !out.iter().any(|o| o.address == f.address) {
                    out.push(f);
                }
            }
        }
        self.stack.pop();
        self.memo.insert(address.to_string(), out.clone());
        out
    }

    fn report_cycle(&mut self, pos: usize, cx: &mut Cx<'_>) {
        let cycle: Vec<String> = self.stack[pos..].to_vec();
        let mut key = cycle.clone();
        key.sort();
        if !self.reported_cycles.insert(key) {
            return;
        }
        let chain = cycle
            .iter()
            .chain(std::iter::once(&cycle[0]))
            .cloned()
            .collect::<Vec<_>>()
            .join(" → ");
        let mut d = Diag::error(Code::AliasCycle, format!("aliases form a loop: {chain}"));
        for (i, a) in cycle.iter().enumerate() {
            if let Some(def) = self.defs.get(a) {
                d = d.label(
                    def.span,
                    if i == 0 {
                        "loop starts here"
                    } else {
                        "part of the loop"
                    },
                );
            }
        }
        cx.diags.push(
            d.help("mail would circle forever; make one of these aliases point at a mailbox"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fs_safe;

    #[test]
    fn fs_safe_names() {
        assert_eq!(fs_safe("alice"), "alice");
        assert_eq!(fs_safe("a/b"), "a%2Fb");
        assert_eq!(fs_safe("jörg"), "jörg");
        assert_eq!(fs_safe("x*y"), "x%2Ay");
    }
}
