//! Mailbox names and the commands over whole mailboxes: CREATE, DELETE,
//! RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with LIST-EXTENDED, LIST-STATUS,
//! SPECIAL-USE), LSUB and STATUS.

use std::collections::{BTreeSet, HashSet};

use super::response::store_error;
use super::view::Mailbox;
use super::{Account, Enabled, Env, Handled, MsgMeta, Recent, Session, Store, StoreError};
use crate::proto::imap::response::{Code, Response, r};
use crate::proto::imap::{ListOptions, StatusItem, encode, mutf7};

pub const SPECIAL_USE: &[(&str, &str)] = &[
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// Whether a mailbox name is acceptable: components not empty, not `.` or
/// `..`, no control characters, bounded lengths. A backslash is an
/// ordinary character (RFC 3501 section 5.1 does not reserve it; it is
/// quoted as `\\` in a quoted string, section 4.3). The store checks again.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 1024
        && name.split('/').count() <= 16
        && name.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.len() <= 255
                && !c.chars().any(char::is_control)
                && !c.starts_with('.')
        })
}

fn special_use(name: &str) -> Option<&'static str> {
    SPECIAL_USE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, u)| *u)
}

/// `%` matches within one level, `*` across levels; INBOX case-insensitive.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some(('%', rest)) => {
                let stop = n.iter().position(|&c| c == '/').unwrap_or(n.len());
                (0..=stop).any(|i| rec(rest, &n[i..]))
            }
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    let fold = |s: &str| -> String {
        let b = s.as_bytes();
        if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"INBOX") && (b.len() == 5 || b[5] == b'/') {
            format!("INBOX{}", &s[5..])
        } else {
            s.to_string()
        }
    };
    let p: Vec<char> = fold(pattern).chars().collect();
    let n: Vec<char> = fold(name).chars().collect();
    if p.len() > 1000 {
        return false;
    }
    // Bound the backtracking of many wildcards.
    if p.iter().filter(|c| **c == '*' || **c == '%').count() > 10 {
        return false;
    }
    rec(&p, &n)
}

impl Enabled {
    /// A mailbox name as the client sent it → the store's name (UTF-8,
    /// INBOX folded).
    pub(super) fn decode_name(&self, raw: &str) -> Result<String, Response> {
        let name = if self.utf8 {
            raw.to_string()
        } else {
            // A name spelled wrong for IMAP4rev1 gets NO, not BAD: BAD
            // counts towards the error limit that ends the session.
            mutf7::decode(raw).ok_or_else(|| {
                Response::no(Code::Cannot, "Mailbox name is not valid modified UTF-7")
            })?
        };
        let name = name.trim_end_matches('/').to_string();
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        if name.len() > 5 && name.as_bytes()[..6].eq_ignore_ascii_case(b"INBOX/") {
            return Ok(format!("INBOX{}", &name[5..]));
        }
        Ok(name)
    }

    pub(super) fn encode_name(&self, name: &str) -> String {
        if self.utf8 {
            name.to_string()
        } else {
            mutf7::encode(name)
        }
    }

    /// A LIST pattern or reference in UTF-8 (left as sent when it is not
    /// valid modified UTF-7).
    fn decode_pattern(&self, p: &str) -> String {
        if self.utf8 {
            p.to_string()
        } else {
            mutf7::decode(p).unwrap_or_else(|| p.to_string())
        }
    }
}

impl<E: Env> Session<E> {
    /// DELETE; deleting the selected mailbox leaves it first.
    pub(super) fn delete(&mut self, tag: &str, raw: &str) -> Handled {
        let (a, mb) = self.state.logged_in()?;
        let name = a.ext.decode_name(raw)?;
        if mb.is_some_and(|m| m.name == name) {
            self.state.deselect();
        }
        let (a, mb) = self.state.logged_in()?;
        a.mailbox_op(mb, tag, raw, "DELETE", |s, n| s.delete(n))
    }
}

/// One LIST line to send.
struct ListLine {
    name: String,
    attrs: Vec<&'static str>,
    /// Listed only because a child is subscribed (CHILDINFO).
    child_only: bool,
}

impl Account {
    /// CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE: one store call on a name.
    pub(super) fn mailbox_op(
        &mut self,
        mb: Option<&mut Mailbox>,
        tag: &str,
        raw: &str,
        what: &'static str,
        op: impl FnOnce(&mut dyn Store, &str) -> Result<(), StoreError>,
    ) -> Handled {
        let name = self.ext.decode_name(raw)?;
        if name != "INBOX" && !valid_name(&name) {
            return Err(r::invalid_mailbox_name().into());
        }
        op(self.store.as_mut(), &name).map_err(|e| store_error(&e))?;
        Ok(self.finish(Vec::new(), mb, tag, r::completed(what), true))
    }

    pub(super) fn rename(
        &mut self,
        mb: Option<&mut Mailbox>,
        tag: &str,
        from: &str,
        to: &str,
    ) -> Handled {
        let from = self.ext.decode_name(from)?;
        let to = self.ext.decode_name(to)?;
        if !valid_name(&to) || (from != "INBOX" && !valid_name(&from)) {
            return Err(r::invalid_mailbox_name().into());
        }
        self.store.rename(&from, &to).map_err(|e| store_error(&e))?;
        Ok(self.finish(Vec::new(), mb, tag, r::completed("RENAME"), true))
    }

    pub(super) fn list(
        &mut self,
        mb: Option<&mut Mailbox>,
        tag: &str,
        reference: &str,
        patterns: &[String],
        options: &ListOptions,
        lsub: bool,
    ) -> Handled {
        let what = if lsub { "LSUB" } else { "LIST" };
        let mut out = Vec::new();
        if !options.extended && patterns.len() == 1 && patterns[0].is_empty() {
            out.extend_from_slice(format!("* {what} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            return Ok(self.finish(out, mb, tag, r::completed(what), true));
        }
        let folders = self.store.folders().map_err(|e| store_error(&e))?;
        let subs: HashSet<String> = self.store.subscriptions().into_iter().collect();
        let reference = self.ext.decode_pattern(reference);
        let patterns: Vec<String> = patterns
            .iter()
            .map(|p| {
                let p = self.ext.decode_pattern(p);
                if reference.is_empty() || p.starts_with('/') {
                    p
                } else if reference.ends_with('/') {
                    format!("{reference}{p}")
                } else {
                    format!("{reference}/{p}")
                }
            })
            .collect();
        let lines = list_lines(&folders, &subs, &patterns, options, lsub);
        let exists: HashSet<&str> = folders.iter().map(String::as_str).collect();
        for line in lines {
            out.extend_from_slice(format!("* {what} ({}) \"/\" ", line.attrs.join(" ")).as_bytes());
            encode::mailbox(&mut out, &self.ext.encode_name(&line.name), self.ext.utf8);
            if line.child_only {
                // An atom, as Dovecot and imap-codec have it (an astring).
                out.extend_from_slice(b" (CHILDINFO (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            if let Some(items) = &options.ret_status
                && exists.contains(line.name.as_str())
            {
                // Errors here (a folder deleted meanwhile) just skip STATUS.
                let _ = self.status_line(&mut out, &line.name, items, None);
            }
        }
        Ok(self.finish(out, mb, tag, r::completed(what), true))
    }

    pub(super) fn status(
        &mut self,
        mb: Option<&mut Mailbox>,
        tag: &str,
        raw: &str,
        items: &[StatusItem],
    ) -> Handled {
        let name = self.ext.decode_name(raw)?;
        let mut out = Vec::new();
        // STATUS of the selected mailbox: its updates (EXPUNGE, EXISTS)
        // first, so that the counts agree with what the client was told.
        let mut mb = mb;
        // RECENT of the mailbox this session holds read-write: the messages
        // recent to this session (RFC 3501 §2.3.2: \Recent is per session),
        // which the store no longer counts as recent for anyone else.
        let mut own_recent = None;
        if let Some(m) = mb.as_deref_mut()
            && m.name == name
        {
            self.refresh(m, &mut out, true);
            if !m.read_only {
                own_recent = Some(m.recent_count() as u64);
            }
        }
        self.status_line(&mut out, &name, items, own_recent)
            .map_err(|e| store_error(&e))?;
        Ok(self.finish(out, mb, tag, r::completed("STATUS"), true))
    }

    fn status_line(
        &mut self,
        out: &mut Vec<u8>,
        name: &str,
        items: &[StatusItem],
        own_recent: Option<u64>,
    ) -> Result<(), StoreError> {
        let st = self.store.sync(name, Recent::Look)?;
        let count = |f: &dyn Fn(&MsgMeta) -> bool| st.messages.iter().filter(|m| f(m)).count();
        let mut parts = Vec::new();
        for item in items {
            let v: u64 = match item {
                StatusItem::Messages => st.messages.len() as u64,
                StatusItem::Recent => own_recent.unwrap_or(st.recent.len() as u64),
                StatusItem::UidNext => u64::from(st.uidnext),
                StatusItem::UidValidity => u64::from(st.uidvalidity),
                StatusItem::Unseen => count(&|m| !m.flags.iter().any(|f| f == "\\Seen")) as u64,
                StatusItem::Deleted => count(&|m| m.flags.iter().any(|f| f == "\\Deleted")) as u64,
                StatusItem::Size => st.messages.iter().map(|m| m.size).sum(),
                StatusItem::HighestModSeq => st.highestmodseq,
            };
            parts.push(format!("{} {v}", item.name()));
        }
        out.extend_from_slice(b"* STATUS ");
        encode::mailbox(out, &self.ext.encode_name(name), self.ext.utf8);
        out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        // The selected mailbox's own updates are reported by refresh.
        Ok(())
    }
}

/// The LIST or LSUB lines for `patterns` (already in UTF-8, reference
/// applied) over the folders and subscriptions.
fn list_lines(
    folders: &[String],
    subs: &HashSet<String>,
    patterns: &[String],
    options: &ListOptions,
    lsub: bool,
) -> Vec<ListLine> {
    let exists: HashSet<&str> = folders.iter().map(String::as_str).collect();
    // Every name: the folders, their implied parents, and subscribed
    // names (which may not exist).
    let mut names: BTreeSet<String> = folders.iter().cloned().collect();
    for f in folders {
        let mut p = f.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            names.insert(parent.to_string());
            p = parent;
        }
    }
    // Subscribed names that do not exist only when the subscriptions
    // select (RFC 5258 section 3: RETURN (SUBSCRIBED) marks what LIST
    // lists, it lists nothing more).
    if options.subscribed || lsub {
        names.extend(subs.iter().cloned());
    }
    let has_children = |n: &str| {
        let prefix = format!("{n}/");
        folders.iter().any(|f| f.starts_with(&prefix))
    };
    let mut lines = Vec::new();
    for name in &names {
        let matched = patterns.iter().any(|p| pattern_matches(p, name));
        let subscribed = subs.contains(name);
        // RECURSIVEMATCH: a parent whose child matches the selection.
        let child_selected = options.recursive
            && names.iter().any(|c| {
                c.starts_with(&format!("{name}/"))
                    && (!options.subscribed || subs.contains(c))
                    && (!options.special_use || special_use(c).is_some())
            });
        // RFC 3501 section 6.3.9: when `%` stops LSUB short of a
        // subscribed "foo/bar", LSUB lists "foo" flagged \Noselect.
        let lsub_parent = lsub
            && !subscribed
            && subs.iter().any(|c| {
                c.starts_with(&format!("{name}/"))
                    && !patterns.iter().any(|p| pattern_matches(p, c))
            });
        if !matched
            || (options.subscribed && !subscribed && !child_selected && !lsub_parent)
            || (options.special_use && special_use(name).is_none() && !child_selected)
            || (lsub && !subscribed && !lsub_parent)
        {
            continue;
        }
        let mut attrs: Vec<&'static str> = Vec::new();
        if lsub_parent || !exists.contains(name.as_str()) {
            if (options.extended || options.subscribed) && !lsub {
                attrs.push("\\NonExistent");
            } else {
                attrs.push("\\Noselect");
            }
        }
        if !lsub {
            attrs.push(if has_children(name) {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
        }
        // LSUB (RFC 3501) has no \Subscribed: every name it lists is.
        if (options.ret_subscribed || options.subscribed) && subscribed && !lsub {
            attrs.push("\\Subscribed");
        }
        if (!options.extended || options.ret_special_use || options.special_use)
            && let Some(u) = special_use(name)
        {
            attrs.push(u);
        }
        lines.push(ListLine {
            name: name.clone(),
            attrs,
            child_only: child_selected && !subscribed && options.subscribed,
        });
    }
    lines
}
