//! Commands that change messages of the selected mailbox: STORE (with
//! UNCHANGEDSINCE), COPY and MOVE (UIDPLUS codes), EXPUNGE and UID EXPUNGE.

use std::collections::{HashMap, HashSet};

use super::response::{store_error, target_error};
use super::view::{CompactMeta, MAX_KEYWORDS, Mailbox, canonical_flag, is_system, settable};
use super::{Account, FlagResult, Handled, MsgMeta, Recent, after_updates};
use crate::proto::imap::response::{Code, Response, Status, r};
use crate::proto::imap::{SeqSet, StoreMode};

/// What a STORE asks for.
pub(super) struct FlagChange<'a> {
    pub mode: StoreMode,
    pub silent: bool,
    pub flags: &'a [String],
    pub unchangedsince: Option<u64>,
}

impl Account {
    pub(super) fn store_flags(
        &mut self,
        mb: &mut Mailbox,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        change: FlagChange,
    ) -> Handled {
        let mut out = Vec::new();
        self.refresh(mb, &mut out, uid);
        let result = self.store_updated(mb, &mut out, tag, uid, set, change);
        after_updates(out, result)
    }

    /// STORE once the view is up to date.
    fn store_updated(
        &mut self,
        mb: &mut Mailbox,
        out: &mut Vec<u8>,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        change: FlagChange,
    ) -> Result<(), Response> {
        if !settable(change.flags) {
            return Err(Response::bad("\\Recent and \\* cannot be stored"));
        }
        if change
            .flags
            .iter()
            .any(|f| f.starts_with('\\') && !is_system(f))
        {
            return Err(Response::bad("Unknown system flag"));
        }
        if change.unchangedsince.is_some() {
            self.ext.condstore = true;
        }
        let idx = mb.resolve(set, uid)?;
        if mb.read_only {
            return Err(r::read_only());
        }
        let updates = new_flags(mb, &idx, &change)?;
        let result = self
            .store
            .set_flags(&mb.name, &updates, change.unchangedsince)
            .map_err(|e| store_error(&e))?;
        self.apply_flags(mb, &idx, &result, uid, change.silent, out);
        let done = if result.modified.is_empty() {
            r::completed("STORE")
        } else {
            let mut m: Vec<u32> = if uid {
                result.modified.clone()
            } else {
                result
                    .modified
                    .iter()
                    .filter_map(|u| {
                        mb.msgs
                            .iter()
                            .position(|v| v.meta.uid == *u)
                            .map(|p| p as u32 + 1)
                    })
                    .collect()
            };
            m.sort_unstable();
            Response::ok_code(Code::Modified(m), "Conditional STORE failed for some")
        };
        self.complete(mb, out, tag, done, uid);
        Ok(())
    }

    /// Updates the view with what the store changed and writes the FETCH
    /// lines the client is owed.
    fn apply_flags(
        &self,
        mb: &mut Mailbox,
        idx: &[usize],
        result: &FlagResult,
        uid: bool,
        silent: bool,
        out: &mut Vec<u8>,
    ) {
        let condstore = self.ext.condstore;
        let changed: HashMap<u32, &MsgMeta> = result.changed.iter().map(|m| (m.uid, m)).collect();
        for vm in mb.msgs.iter_mut() {
            if let Some(m) = changed.get(&vm.meta.uid) {
                vm.meta = CompactMeta::from(*m);
                if m.modseq > mb.highestmodseq {
                    mb.highestmodseq = m.modseq;
                }
            }
        }
        // A keyword this STORE introduced is announced before the FETCH
        // lines that show it (RFC 9051 §7.3.5).
        mb.announce_keywords(&[], out);
        for &i in idx {
            let vm = &mb.msgs[i];
            if vm.gone || result.modified.contains(&vm.meta.uid) {
                continue;
            }
            // .SILENT: no FETCH, except that CONDSTORE clients learn the new
            // MODSEQ of what changed (RFC 7162 3.1.3).
            let was_changed = changed.contains_key(&vm.meta.uid);
            if silent && !(condstore && was_changed) {
                continue;
            }
            // A STORE that left a message's flags as they were owes no FETCH
            // for it (RFC 3501 §6.4.6 returns "the updated value"; nothing
            // was updated). CONDSTORE clients keep theirs (RFC 7162 §3.1.3).
            if !was_changed && !condstore {
                continue;
            }
            let mut parts = Vec::new();
            // Once QRESYNC is enabled every untagged FETCH carries the UID
            // (RFC 7162 §3.2.4), so VANISHED can be related to it.
            if uid || self.ext.qresync {
                parts.push(format!("UID {}", vm.meta.uid));
            }
            if !silent {
                parts.push(format!(
                    "FLAGS ({})",
                    mb.flags_text(&vm.meta, self.ext.rev2)
                ));
            }
            if condstore {
                parts.push(format!("MODSEQ ({})", vm.meta.modseq));
            }
            out.extend_from_slice(
                format!("* {} FETCH ({})\r\n", i + 1, parts.join(" ")).as_bytes(),
            );
        }
    }

    pub(super) fn copy(
        &mut self,
        mb: &mut Mailbox,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        raw: &str,
        is_move: bool,
    ) -> Handled {
        let mut out = Vec::new();
        self.refresh(mb, &mut out, uid);
        let result = self.copy_updated(mb, &mut out, tag, uid, set, raw, is_move);
        after_updates(out, result)
    }

    /// COPY and MOVE once the view is up to date.
    #[allow(clippy::too_many_arguments)]
    fn copy_updated(
        &mut self,
        mb: &mut Mailbox,
        out: &mut Vec<u8>,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        raw: &str,
        is_move: bool,
    ) -> Result<(), Response> {
        let target = self.ext.decode_name(raw)?;
        let idx = mb.resolve(set, uid)?;
        if is_move && mb.read_only {
            return Err(r::read_only());
        }
        // A message expunged by another session but not yet announced
        // cannot be copied: copy nothing and say so (RFC 9051 section
        // 7.1, EXPUNGEISSUED), rather than an OK without COPYUID for
        // messages that were not copied.
        if idx.iter().any(|&i| mb.msgs[i].gone) {
            return Err(Response::no(
                Code::ExpungeIssued,
                "Some of the requested messages no longer exist",
            ));
        }
        let uids: Vec<u32> = idx.iter().map(|&i| mb.msgs[i].meta.uid).collect();
        let size: u64 = idx.iter().map(|&i| mb.msgs[i].meta.size).sum();
        let what = if is_move { "MOVE" } else { "COPY" };
        if uids.is_empty() {
            Response::ok(format!("{what} completed (no messages)")).write_tagged(out, tag);
            return Ok(());
        }
        self.store
            .peek(&target, Recent::Look)
            .map_err(|e| target_error(&e))?;
        if !is_move {
            let (used, quota) = self.store.quota();
            if quota.is_some_and(|q| used + size > q) {
                return Err(r::over_quota());
            }
        }
        let (validity, pairs) = self
            .store
            .copy(&mb.name, &uids, &target)
            .map_err(|e| store_error(&e))?;
        let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        // Source UIDs in the order of the destination ones (both ascending).
        let code = (!pairs.is_empty())
            .then(|| Code::CopyUid(validity, src.clone(), pairs.iter().map(|p| p.1).collect()));
        if is_move {
            self.store
                .expunge(&mb.name, &src)
                .map_err(|e| store_error(&e))?;
            Response::new(Status::Ok, code, "Moved").write_untagged(out);
            self.complete(mb, out, tag, r::completed("MOVE"), true);
        } else {
            let done = Response::new(Status::Ok, code, "COPY completed");
            self.complete(mb, out, tag, done, uid);
        }
        Ok(())
    }

    pub(super) fn expunge(
        &mut self,
        mb: &mut Mailbox,
        tag: &str,
        uids: Option<&SeqSet>,
    ) -> Handled {
        let mut out = Vec::new();
        self.refresh(mb, &mut out, true);
        let result = self.expunge_updated(mb, &mut out, tag, uids);
        after_updates(out, result)
    }

    /// EXPUNGE once the view is up to date.
    fn expunge_updated(
        &mut self,
        mb: &mut Mailbox,
        out: &mut Vec<u8>,
        tag: &str,
        uids: Option<&SeqSet>,
    ) -> Result<(), Response> {
        if mb.read_only {
            return Err(r::read_only());
        }
        let max = mb.max_uid();
        let targets: Vec<u32> = mb
            .msgs
            .iter()
            .filter(|m| m.meta.flags.has("\\Deleted"))
            .filter(|m| uids.is_none_or(|s| s.contains(m.meta.uid, max)))
            .map(|m| m.meta.uid)
            .collect();
        if !targets.is_empty() {
            self.store
                .expunge(&mb.name, &targets)
                .map_err(|e| store_error(&e))?;
        }
        self.refresh(mb, out, true);
        // With QRESYNC the tagged OK tells the mod-sequence the expunges
        // reached (RFC 7162 §3.2.7), so a client can resume from it; when
        // nothing was expunged the mod-sequence did not move (as Dovecot).
        let done = if self.ext.qresync && !targets.is_empty() {
            Response::ok_code(
                Code::HighestModSeq(mb.highestmodseq.max(1)),
                "Expunge completed",
            )
        } else {
            r::completed("EXPUNGE")
        };
        done.write_tagged(out, tag);
        Ok(())
    }
}

/// The keywords the view's messages carry once `updates` are applied,
/// lowercased.
fn keywords_after(mb: &Mailbox, updates: &[(u32, Vec<String>)]) -> HashSet<String> {
    let updated: HashSet<u32> = updates.iter().map(|(uid, _)| *uid).collect();
    mb.msgs
        .iter()
        .filter(|m| !m.gone && !updated.contains(&m.meta.uid))
        .flat_map(|m| m.meta.flags.iter().map(|f| f.to_string()))
        .chain(updates.iter().flat_map(|(_, f)| f.iter().cloned()))
        .filter(|f| !f.starts_with('\\'))
        .map(|f| f.to_ascii_lowercase())
        .collect()
}

/// The flags each addressed message gets; `[LIMIT]` past the keyword limit.
fn new_flags(
    mb: &Mailbox,
    idx: &[usize],
    change: &FlagChange,
) -> Result<Vec<(u32, Vec<String>)>, Response> {
    // Keywords are case-insensitive (RFC 3501 §2.3.2, §9 atom): one the
    // mailbox already knows keeps the spelling it was defined with.
    let mut flags: Vec<String> = Vec::new();
    for f in change.flags {
        let mut f = canonical_flag(f);
        if !f.starts_with('\\')
            && let Some(k) = mb.keywords.iter().find(|k| k.eq_ignore_ascii_case(&f))
        {
            f = k.to_string();
        }
        if !flags.iter().any(|x| x.eq_ignore_ascii_case(&f)) {
            flags.push(f);
        }
    }
    let mut updates = Vec::new();
    for &i in idx {
        let m = &mb.msgs[i];
        if m.gone {
            continue;
        }
        let mut f = m.meta.flags.to_vec();
        match change.mode {
            StoreMode::Replace => f = flags.clone(),
            StoreMode::Add => {
                for x in &flags {
                    if !f.iter().any(|y| y.eq_ignore_ascii_case(x)) {
                        f.push(x.clone());
                    }
                }
            }
            StoreMode::Remove => f.retain(|x| !flags.iter().any(|y| y.eq_ignore_ascii_case(x))),
        }
        if f.iter().filter(|x| !x.starts_with('\\')).count() > MAX_KEYWORDS {
            return Err(Response::no(Code::Limit, "Too many keywords"));
        }
        updates.push((m.meta.uid, f));
    }
    // Keywords new to the mailbox's messages: only up to the limit
    // PERMANENTFLAGS announces (its \* goes once the messages carry that
    // many).
    // The view's keywords include every one in use: when those and the
    // ones this STORE names stay within the limit, the count cannot pass it
    // and the messages need not be walked (the usual case).
    let unknown = flags
        .iter()
        .filter(|f| !f.starts_with('\\') && !mb.keywords.iter().any(|k| k.eq_ignore_ascii_case(f)))
        .count();
    if change.mode == StoreMode::Remove || mb.keywords.len() + unknown <= MAX_KEYWORDS {
        return Ok(updates);
    }
    let before = mb.keywords_in_use();
    let after = keywords_after(mb, &updates);
    if after.len() > MAX_KEYWORDS && after.iter().any(|k| !before.contains(k)) {
        return Err(Response::no(
            Code::Limit,
            "Too many keywords in this mailbox",
        ));
    }
    Ok(updates)
}
