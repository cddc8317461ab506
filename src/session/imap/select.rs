//! SELECT and EXAMINE (with CONDSTORE and QRESYNC), CLOSE and UNSELECT,
//! and [`Account::refresh`]: bringing the view of the selected mailbox up
//! to date and telling the client what others changed.

use std::collections::HashSet;

use super::response::store_error;
use super::view::{CompactMeta, Flags, Mailbox, ViewMsg};
use super::{
    Account, Env, FolderState, Handled, Output, Recent, Refused, Session, State, StoreError,
};
use crate::proto::imap::encode::{self, seq_set};
use crate::proto::imap::response::{Code, Response, r};
use crate::proto::imap::{QresyncParams, SeqSet};

/// Keywords every mailbox announces, so clients can set them from the start.
const DEFAULT_KEYWORDS: [&str; 4] = ["$Forwarded", "$Junk", "$NotJunk", "$MDNSent"];

impl<E: Env> Session<E> {
    pub(super) fn select(
        &mut self,
        tag: &str,
        raw: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<QresyncParams>,
    ) -> Handled {
        // A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
        let had = self.state.deselect().is_some();
        let State::Authenticated(a) = &mut self.state else {
            return Err(r::log_in_first().into());
        };
        let mut out = Vec::new();
        // [CLOSED]: RFC 7162 with QRESYNC, always in IMAP4rev2 (RFC 9051
        // section 6.3.2).
        if had && (a.ext.qresync || a.ext.rev2) {
            Response::ok_code(Code::Closed, "Previous mailbox closed").write_untagged(&mut out);
        }
        // A refusal still carries the CLOSED line: the previous mailbox is
        // closed either way.
        let view = match a.open_view(&mut out, tag, raw, read_only, condstore, qresync) {
            Ok(view) => view,
            Err(response) => {
                return Err(Refused {
                    before: out,
                    response,
                });
            }
        };
        if let State::Authenticated(a) = std::mem::replace(&mut self.state, State::Logout) {
            self.state = State::Selected(a, Box::new(view));
        }
        Ok(Output::bytes(out))
    }

    /// CLOSE (expunging `\Deleted` messages of a writable mailbox) and
    /// UNSELECT.
    pub(super) fn close(&mut self, tag: &str, expunge: bool) -> Handled {
        let Some(view) = self.state.deselect() else {
            return Err(r::no_mailbox_selected().into());
        };
        let (a, _) = self.state.logged_in()?;
        if expunge && !view.read_only {
            let deleted: Vec<u32> = view
                .msgs
                .iter()
                .filter(|m| m.meta.flags.has("\\Deleted"))
                .map(|m| m.meta.uid)
                .collect();
            if !deleted.is_empty() {
                a.store
                    .expunge(&view.name, &deleted)
                    .map_err(|e| store_error(&e))?;
            }
        }
        let what = if expunge { "CLOSE" } else { "UNSELECT" };
        Ok(Output::bytes(r::completed(what).tagged(tag)))
    }
}

impl Mailbox {
    fn new(name: String, read_only: bool, st: &FolderState) -> Mailbox {
        // Every keyword the folder defines and every one in use is
        // announced (a FETCH never shows one the client was not told
        // about), however many there are.
        let mut keywords: Vec<String> = st.keywords.clone();
        for m in &st.messages {
            for f in &m.flags {
                if !f.starts_with('\\') && !keywords.contains(f) {
                    keywords.push(f.clone());
                }
            }
        }
        for k in DEFAULT_KEYWORDS {
            if !keywords.iter().any(|x| x == k) {
                keywords.push(k.to_string());
            }
        }
        Mailbox {
            name,
            read_only,
            uidvalidity: st.uidvalidity,
            uidnext: st.uidnext,
            highestmodseq: st.highestmodseq,
            recent: st.recent.iter().copied().collect(),
            announced_recent: std::cell::Cell::new(0),
            msgs: st
                .messages
                .iter()
                .map(|m| ViewMsg {
                    meta: CompactMeta::from(m),
                    gone: false,
                })
                .collect(),
            keywords,
            pending: None,
            stale: false,
        }
    }

    /// Keywords seen for the first time in this mailbox: a new FLAGS and
    /// PERMANENTFLAGS (RFC 9051 §7.3.5), to be written before any FETCH
    /// that shows them.
    /// `defined` are the folder's defined keywords from a sync (another
    /// session may have introduced one).
    pub(super) fn announce_keywords(&mut self, defined: &[String], out: &mut Vec<u8>) {
        let mut new_kw = false;
        for k in defined {
            if !self.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                self.keywords.push(k.clone());
                new_kw = true;
            }
        }
        for m in &self.msgs {
            for f in m.meta.flags.iter() {
                if !f.starts_with('\\') && !self.keywords.iter().any(|k| k == f) {
                    self.keywords.push(f.to_string());
                    new_kw = true;
                }
            }
        }
        if new_kw {
            self.write_flags(out);
            self.write_permanent_flags(out);
        }
    }
}

impl Account {
    /// SELECT or EXAMINE: the folder synced, the answer written, the view.
    fn open_view(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        raw: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<QresyncParams>,
    ) -> Result<Mailbox, Response> {
        if qresync.is_some() && !self.ext.qresync {
            return Err(Response::bad("QRESYNC is not enabled"));
        }
        if condstore {
            self.ext.condstore = true;
        }
        let name = self.ext.decode_name(raw)?;
        let recent = if read_only {
            Recent::Look
        } else {
            Recent::Claim
        };
        let st = self
            .store
            .sync(&name, recent)
            .map_err(|e| store_error(&e))?;
        let view = Mailbox::new(name, read_only, &st);
        self.write_selected(out, &view);
        if let Some(q) = qresync
            && q.uidvalidity == view.uidvalidity
        {
            self.qresync_changes(out, &view, &q);
        }
        let (mode, what) = if read_only {
            (Code::ReadOnly, "EXAMINE")
        } else {
            (Code::ReadWrite, "SELECT")
        };
        Response::ok_code(mode, format!("{what} completed")).write_tagged(out, tag);
        Ok(view)
    }

    /// The untagged part of a SELECT's answer.
    fn write_selected(&self, out: &mut Vec<u8>, view: &Mailbox) {
        view.write_flags(out);
        view.write_permanent_flags(out);
        out.extend_from_slice(format!("* {} EXISTS\r\n", view.msgs.len()).as_bytes());
        if !self.ext.rev2 {
            out.extend_from_slice(format!("* {} RECENT\r\n", view.recent_count()).as_bytes());
            view.announced_recent.set(view.recent_count());
            if let Some(pos) = view.msgs.iter().position(|m| !m.meta.flags.has("\\Seen")) {
                Response::ok_code(Code::Unseen(pos as u32 + 1), "First unseen message")
                    .write_untagged(out);
            }
        }
        Response::ok_code(Code::UidValidity(view.uidvalidity), "UIDs valid").write_untagged(out);
        Response::ok_code(Code::UidNext(view.uidnext), "Predicted next UID").write_untagged(out);
        Response::ok_code(Code::HighestModSeq(view.highestmodseq.max(1)), "Highest")
            .write_untagged(out);
        if self.ext.rev2 {
            out.extend_from_slice(b"* LIST () \"/\" ");
            encode::mailbox(out, &self.ext.encode_name(&view.name), self.ext.utf8);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// QRESYNC (RFC 7162 §3.2.5): what changed since the client's MODSEQ.
    fn qresync_changes(&mut self, out: &mut Vec<u8>, view: &Mailbox, q: &QresyncParams) {
        let max_uid = view.max_uid();
        let in_known = |uid: u32| {
            q.known_uids
                .as_ref()
                .is_none_or(|k: &SeqSet| k.contains(uid, max_uid.max(uid)))
        };
        let mut vanished: Vec<u32> = self
            .store
            .vanished_since(&view.name, q.modseq)
            .unwrap_or_default()
            .into_iter()
            .filter(|&u| in_known(u))
            .collect();
        if !vanished.is_empty() {
            vanished.sort_unstable();
            vanished.dedup();
            out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", seq_set(&vanished)).as_bytes(),
            );
        }
        for (i, m) in view.msgs.iter().enumerate() {
            if m.meta.modseq > q.modseq && in_known(m.meta.uid) {
                out.extend_from_slice(
                    format!(
                        "* {} FETCH (UID {} FLAGS ({}) MODSEQ ({}))\r\n",
                        i + 1,
                        m.meta.uid,
                        view.flags_text(&m.meta, self.ext.rev2),
                        m.meta.modseq
                    )
                    .as_bytes(),
                );
            }
        }
    }

    /// Brings the view up to date and writes the updates (`expunges`:
    /// whether EXPUNGE/VANISHED may be sent now).
    pub(super) fn refresh(&mut self, view: &mut Mailbox, out: &mut Vec<u8>, expunges: bool) {
        if view.stale {
            return;
        }
        // Nothing changed (same MODSEQ, same count) and no expunge waiting
        // to be told: no message list needed.
        let recent = if view.read_only {
            Recent::Look
        } else {
            Recent::Claim
        };
        let pk = match self.store.peek(&view.name, recent) {
            Ok(pk) => pk,
            // Deleted under us (by another session): nothing of it can be
            // used any more, and a folder created under its name later is
            // another mailbox. The session ends, as on a UIDVALIDITY change.
            Err(StoreError::NotFound) => {
                r::mailbox_deleted().write_untagged(out);
                view.stale = true;
                return;
            }
            Err(_) => return,
        };
        view.recent.extend(pk.recent.iter().copied());
        let live = view.msgs.iter().filter(|m| !m.gone).count();
        let pending = expunges && live != view.msgs.len();
        if pk.uidvalidity == view.uidvalidity
            && pk.highestmodseq == view.highestmodseq
            && pk.count == live
            && !pending
        {
            view.announce_keywords(&[], out);
            return;
        }
        let Ok(st) = self.store.sync(&view.name, recent) else {
            return;
        };
        // Folder recreated under us: the session ends (BYE closes).
        if st.uidvalidity != view.uidvalidity {
            r::uidvalidity_changed().write_untagged(out);
            view.stale = true;
            return;
        }
        let (changed, added) = self.merge(view, &st);
        // Flag changes first, numbered as the client still counts, then
        // the expunges (the order Dovecot uses; RFC 3501 §7.4.1 only asks
        // that the numbers be right when each response is sent).
        let mut lines = Vec::new();
        for &i in &changed {
            let m = &view.msgs[i];
            if m.gone {
                continue;
            }
            let modseq = if self.ext.condstore {
                format!(" MODSEQ ({})", m.meta.modseq)
            } else {
                String::new()
            };
            // UID only where RFC 7162 §3.2.4 requires it (QRESYNC enabled).
            let uid = if self.ext.qresync {
                format!(" UID {}", m.meta.uid)
            } else {
                String::new()
            };
            lines.extend_from_slice(
                format!(
                    "* {} FETCH (FLAGS ({}){uid}{modseq})\r\n",
                    i + 1,
                    view.flags_text(&m.meta, self.ext.rev2)
                )
                .as_bytes(),
            );
        }
        if expunges && view.msgs.iter().any(|m| m.gone) {
            self.write_expunges(view, &mut lines, changed);
        }
        // VANISHED, like EXPUNGE, already lowers the count: no EXISTS
        // after it (RFC 9051 §7.4.1, RFC 7162 §3.2.10).
        if added > 0 {
            lines.extend_from_slice(format!("* {} EXISTS\r\n", view.msgs.len()).as_bytes());
        }
        // RECENT when the count the client holds changed (RFC 3501 §7.3.2):
        // new messages or expunged recent ones.
        if !self.ext.rev2 && view.recent_count() != view.announced_recent.get() {
            lines.extend_from_slice(format!("* {} RECENT\r\n", view.recent_count()).as_bytes());
            view.announced_recent.set(view.recent_count());
        }
        view.announce_keywords(&st.keywords, out);
        out.extend_from_slice(&lines);
    }

    /// Merges a sync into the view: flags and MODSEQs updated, messages
    /// gone marked, new ones appended. Returns the indexes whose change
    /// the client must be told, and how many messages are new.
    fn merge(&self, view: &mut Mailbox, st: &FolderState) -> (Vec<usize>, usize) {
        let condstore = self.ext.condstore;
        let mut new_iter = st.messages.iter().peekable();
        let mut changed: Vec<usize> = Vec::new();
        for (i, vm) in view.msgs.iter_mut().enumerate() {
            while new_iter.peek().is_some_and(|n| n.uid < vm.meta.uid) {
                new_iter.next();
            }
            match new_iter.peek() {
                Some(n) if n.uid == vm.meta.uid => {
                    let nf = Flags::from_list(&n.flags);
                    if n.modseq != vm.meta.modseq || nf != vm.meta.flags {
                        let flags_differ = nf != vm.meta.flags;
                        vm.meta = CompactMeta::from(*n);
                        if flags_differ || condstore {
                            changed.push(i);
                        }
                    }
                    new_iter.next();
                }
                _ => vm.gone = true,
            }
        }
        // Messages beyond the view's last UID are new.
        let last = view.max_uid();
        let before = view.msgs.len();
        for m in st.messages.iter().filter(|m| m.uid > last) {
            view.msgs.push(ViewMsg {
                meta: CompactMeta::from(m),
                gone: false,
            });
        }
        let added = view.msgs.len() - before;
        view.recent.extend(st.recent.iter().copied());
        view.uidnext = st.uidnext;
        view.highestmodseq = st.highestmodseq;
        (changed, added)
    }

    /// Reports and drops the messages gone from the view (VANISHED with
    /// QRESYNC, else EXPUNGE from the highest number down); returns the
    /// changed indexes renumbered.
    fn write_expunges(
        &self,
        view: &mut Mailbox,
        lines: &mut Vec<u8>,
        changed: Vec<usize>,
    ) -> Vec<usize> {
        if self.ext.qresync {
            let gone: Vec<u32> = view
                .msgs
                .iter()
                .filter(|m| m.gone)
                .map(|m| m.meta.uid)
                .collect();
            lines.extend_from_slice(format!("* VANISHED {}\r\n", seq_set(&gone)).as_bytes());
        } else {
            for i in (0..view.msgs.len()).rev() {
                if view.msgs[i].gone {
                    lines.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                }
            }
        }
        // Indexes in `changed` shift: recompute by UID.
        let changed_uids: Vec<u32> = changed.iter().map(|&i| view.msgs[i].meta.uid).collect();
        // An expunged message is no longer recent: RECENT never counts it.
        for m in view.msgs.iter().filter(|m| m.gone) {
            view.recent.remove(&m.meta.uid);
        }
        view.msgs.retain(|m| !m.gone);
        let uids: HashSet<u32> = changed_uids.into_iter().collect();
        view.msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| uids.contains(&m.meta.uid))
            .map(|(i, _)| i)
            .collect()
    }
}
