//! The decisions of a session: who may send, which sender addresses a user
//! owns, and where each recipient goes (local mailboxes, relaying, or a
//! refusal). Pure lookups in the tables.

use super::{Env, Role, Session};
use crate::envelope::Destination;
use crate::proto::smtp::reply::{Reply, r};
use crate::tables::resolve::{Resolution, normalize_local};
use crate::tables::{Tables, TargetKind};

/// May this session start a transaction at all?
pub(super) fn may_send<E: Env>(s: &Session<E>) -> Result<(), Reply> {
    if s.role == Role::Submission
        && s.tables.submission.auth_required
        && s.user.is_none()
        && !s.trusted()
    {
        if s.tls.is_none() && s.can_starttls() {
            return Err(r::must_starttls());
        }
        return Err(r::auth_required());
    }
    Ok(())
}

/// Checks the envelope sender.
pub(super) fn sender_allowed<E: Env>(s: &Session<E>, sender: &str) -> Result<(), Reply> {
    if s.role != Role::Submission || !s.tables.submission.sender_must_own {
        return Ok(());
    }
    let Some(user) = &s.user else {
        // A trusted network host submitting without login: no ownership to check.
        return Ok(());
    };
    if sender.is_empty() || !owns(&s.tables, user, sender) {
        return Err(r::sender_not_owned());
    }
    Ok(())
}

/// Does the mailbox `user` own `address` (exactly, through a plus detail,
/// or through a `*@domain` send-as entry)?
pub fn owns(tables: &Tables, user: &str, address: &str) -> bool {
    let Some(mailbox) = tables.mailboxes.get(user) else {
        return false;
    };
    let Some((local, domain)) = crate::addr::split(address) else {
        return false;
    };
    let Ok(d) = crate::addr::normalize_domain(domain) else {
        return false;
    };
    let (local, plus) = match tables.domains.get(&d.ascii) {
        Some(t) => {
            let l = normalize_local(local, t.local_part_case);
            let base = t
                .plus_separator
                .as_deref()
                .and_then(|sep| l.split_once(sep).map(|(b, _)| b.to_string()));
            (l, base)
        }
        None => (local.to_string(), None),
    };
    let exact = format!("{local}@{}", d.ascii);
    let wildcard = format!("*@{}", d.ascii);
    let base = plus.map(|b| format!("{b}@{}", d.ascii));
    mailbox
        .send_as
        .iter()
        .any(|s| *s == exact || *s == wildcard || Some(s) == base.as_ref())
}

/// The address to work with: `RCPT TO:<Postmaster>` without a domain must
/// always work (RFC 5321 §4.5.1); smtp-proto gives it as an empty address.
pub(super) fn effective_recipient(tables: &Tables, address: String) -> Result<String, Reply> {
    if !address.is_empty() {
        return Ok(address);
    }
    match postmaster_domain(tables) {
        Some(domain) => Ok(format!("postmaster@{domain}")),
        None => Err(r::unknown_user()),
    }
}

/// Where a recipient goes, or the refusal.
pub(super) fn route_recipient<E: Env>(
    s: &Session<E>,
    address: &str,
) -> Result<Vec<Destination>, Reply> {
    // A bounce to an address we forwarded with SRS goes back to the
    // original sender. A forged or expired SRS address is an unknown user.
    if let Some((local, domain)) = crate::addr::split(address)
        && (local.len() > 5
            && (local[..5].eq_ignore_ascii_case("SRS0=")
                || local[..5].eq_ignore_ascii_case("SRS1=")))
        && s.tables.domain(domain).is_some()
    {
        return match s.env.srs_reverse(address) {
            Some(original) => Ok(vec![Destination::Remote { address: original }]),
            None => Err(r::unknown_user()),
        };
    }
    match s.tables.resolve(address) {
        Resolution::Deliver(d) => {
            let mut out = Vec::new();
            let mut disabled = 0;
            let mut full = 0;
            for t in d.targets {
                match t.kind {
                    TargetKind::Mailbox => {
                        let Some(m) = s.tables.mailboxes.get(&t.address) else {
                            continue;
                        };
                        if m.disabled {
                            disabled += 1;
                            continue;
                        }
                        if let Some(q) = m.quota
                            && s.env.mailbox_usage(&t.address) >= q
                        {
                            full += 1;
                            continue;
                        }
                        out.push(Destination::Mailbox {
                            address: t.address.clone(),
                        });
                    }
                    TargetKind::Remote => out.push(Destination::Remote {
                        address: t.address.clone(),
                    }),
                }
            }
            if out.is_empty() {
                return Err(if full > 0 {
                    r::mailbox_full()
                } else if disabled > 0 {
                    r::mailbox_disabled()
                } else {
                    r::unknown_user()
                });
            }
            Ok(out)
        }
        Resolution::UnknownUser { .. } => Err(r::unknown_user()),
        Resolution::Invalid { .. } => Err(r::bad_recipient_syntax()),
        Resolution::NotLocal { .. } => {
            let may_relay = match s.role {
                Role::Lmtp => false,
                Role::Submission | Role::Mx => s.user.is_some() || s.trusted(),
            };
            if !may_relay {
                return Err(r::relay_denied());
            }
            match crate::addr::split(address) {
                Some((local, domain)) if !local.is_empty() => {
                    let d = crate::addr::normalize_domain(domain)
                        .map_err(|_| r::bad_recipient_syntax())?;
                    Ok(vec![Destination::Remote {
                        address: format!("{local}@{}", d.ascii),
                    }])
                }
                _ => Err(r::bad_recipient_syntax()),
            }
        }
    }
}

/// The domain whose postmaster receives `RCPT TO:<Postmaster>`: the domain
/// of the hostname if it is local, else the first local domain.
fn postmaster_domain(tables: &Tables) -> Option<String> {
    let mut candidate = tables.hostname.as_str();
    loop {
        if tables.domains.contains_key(candidate) {
            return Some(candidate.to_string());
        }
        match candidate.split_once('.') {
            Some((_, rest)) if rest.contains('.') => candidate = rest,
            _ => break,
        }
    }
    tables.domains.keys().next().cloned()
}

/// `postmaster@` one of our domains (any case): mail to it is accepted
/// from clients on blocklists, so that a server listed by mistake can
/// still reach a human (RFC 5321 §4.5.1).
pub(super) fn is_our_postmaster(tables: &Tables, address: &str) -> bool {
    crate::addr::split(address).is_some_and(|(local, domain)| {
        local.eq_ignore_ascii_case("postmaster") && tables.domain(domain).is_some()
    })
}
