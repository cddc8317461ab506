//! Recipient lookup over the precomputed tables: normalise, exact match,
//! plus-address match, catch-all. No config is interpreted here; every
//! decision was made by the compiler and is only looked up.

use super::{AddressKind, DomainTable, LocalPartCase, Tables, Target};
use crate::addr;

/// How a local address matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// The address is written in the config.
    Exact,
    /// The address with its plus detail removed is written in the config.
    PlusDetail,
    /// Nothing matched; the domain's catch-all took it.
    CatchAll,
}

/// Where a recipient goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution<'a> {
    Deliver(Delivery<'a>),
    /// One of our domains, but nobody by that name (550 5.1.1).
    UnknownUser {
        domain: &'a DomainTable,
        normalized: String,
    },
    /// Not one of our domains: relaying rules apply.
    NotLocal {
        domain: String,
    },
    /// Not an address we can work with.
    Invalid {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<'a> {
    pub domain: &'a DomainTable,
    /// The recipient after case and IDNA normalisation, detail included.
    pub normalized: String,
    /// The config address that matched (detail removed), or the catch-all's
    /// own address for [`Matched::CatchAll`].
    pub address: String,
    /// Plus detail (`news` in `alice+news@`).
    pub detail: Option<String>,
    pub matched: Matched,
    /// `None` for a catch-all match.
    pub kind: Option<AddressKind>,
    pub targets: &'a [Target],
}

impl Tables {
    /// Finds a local domain by any spelling (case, U-labels, trailing dot).
    pub fn domain(&self, name: &str) -> Option<&DomainTable> {
        if let Some(d) = self.domains.get(name) {
            return Some(d);
        }
        let norm = addr::normalize_domain(name).ok()?;
        self.domains.get(&norm.ascii)
    }

    /// Resolves a recipient address (`local@domain`, no angle brackets).
    pub fn resolve(&self, address: &str) -> Resolution<'_> {
        let Some((local, domain)) = addr::split(address) else {
            return Resolution::Invalid {
                reason: "no @domain".into(),
            };
        };
        if local.is_empty() {
            return Resolution::Invalid {
                reason: "empty local part".into(),
            };
        }
        if local.len() > addr::MAX_LOCAL_PART {
            return Resolution::Invalid {
                reason: "local part longer than 64 octets".into(),
            };
        }
        let dom = match addr::normalize_domain(domain) {
            Ok(d) => d,
            Err(e) => {
                return Resolution::Invalid {
                    reason: format!("bad domain: {e}"),
                };
            }
        };
        let Some(table) = self.domains.get(&dom.ascii) else {
            return Resolution::NotLocal { domain: dom.ascii };
        };
        let local = normalize_local(local, table.local_part_case);
        let normalized = format!("{local}@{}", table.name);

        if let Some(entry) = self.addresses.get(&normalized) {
            return Resolution::Deliver(Delivery {
                domain: table,
                address: normalized.clone(),
                normalized,
                detail: None,
                matched: Matched::Exact,
                kind: Some(entry.kind),
                targets: &entry.targets,
            });
        }
        if let Some(sep) = table.plus_separator.as_deref()
            && let Some((base, detail)) = local.split_once(sep)
            && !base.is_empty()
        {
            let base_addr = format!("{base}@{}", table.name);
            if let Some(entry) = self.addresses.get(&base_addr) {
                return Resolution::Deliver(Delivery {
                    domain: table,
                    normalized,
                    address: base_addr,
                    detail: Some(detail.to_string()),
                    matched: Matched::PlusDetail,
                    kind: Some(entry.kind),
                    targets: &entry.targets,
                });
            }
        }
        if let Some(c) = &table.catch_all {
            return Resolution::Deliver(Delivery {
                domain: table,
                normalized,
                address: c.target.clone(),
                detail: None,
                matched: Matched::CatchAll,
                kind: None,
                targets: &c.targets,
            });
        }
        Resolution::UnknownUser {
            domain: table,
            normalized,
        }
    }
}

/// Applies a domain's case policy. `postmaster` is case-insensitive whatever
/// the policy (RFC 5321 §4.5.1).
pub fn normalize_local(local: &str, case: LocalPartCase) -> String {
    match case {
        LocalPartCase::Insensitive => local.to_lowercase(),
        LocalPartCase::Sensitive if local.eq_ignore_ascii_case("postmaster") => {
            "postmaster".to_string()
        }
        LocalPartCase::Sensitive => local.to_string(),
    }
}
