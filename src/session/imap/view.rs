//! The session's view of the selected mailbox: sequence numbers → UIDs,
//! flags and MODSEQs as last reported to the client, and the compact flag
//! representation that keeps an idle connection small.

use std::collections::HashSet;

use super::backend::MsgMeta;
use super::fetch::PendingFetch;
use crate::proto::imap::SeqSet;
use crate::proto::imap::response::{Code, Response, r};

/// Keywords a client may introduce into a mailbox: PERMANENTFLAGS keeps
/// `\*` below this, and a STORE adding one more gets `NO [LIMIT]`.
pub(super) const MAX_KEYWORDS: usize = 64;

const SYSTEM_FLAGS: &[&str] = &["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// System flags kept as bits, in the order the store lists them.
const PACKED: [&str; 6] = [
    "\\Draft",
    "\\Flagged",
    "$Forwarded",
    "\\Answered",
    "\\Seen",
    "\\Deleted",
];

/// A message's flags, compact: a session holds these for every message of
/// the selected mailbox, so an idle connection stays small.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags {
    bits: u8,
    /// A thin pointer: most messages have no keywords.
    #[allow(clippy::box_collection)]
    keywords: Option<Box<Vec<String>>>,
}

impl Flags {
    pub fn from_list(list: &[String]) -> Flags {
        let mut bits = 0u8;
        let mut keywords = Vec::new();
        for f in list {
            match PACKED.iter().position(|p| p == f) {
                Some(i) => bits |= 1 << i,
                None => keywords.push(f.clone()),
            }
        }
        Flags {
            bits,
            keywords: (!keywords.is_empty()).then(|| Box::new(keywords)),
        }
    }

    /// The flags in the store's order: system flags, then keywords.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        PACKED
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, f)| *f)
            .chain(
                self.keywords
                    .iter()
                    .flat_map(|k| k.iter().map(String::as_str)),
            )
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }

    /// Case-insensitive, as IMAP flags are.
    pub fn has(&self, flag: &str) -> bool {
        self.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// What a session keeps of each message of the selected mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactMeta {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
    pub size: u64,
    pub internal_date: i64,
}

impl From<&MsgMeta> for CompactMeta {
    fn from(m: &MsgMeta) -> CompactMeta {
        CompactMeta {
            uid: m.uid,
            flags: Flags::from_list(&m.flags),
            modseq: m.modseq,
            size: m.size,
            internal_date: m.internal_date,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct ViewMsg {
    pub meta: CompactMeta,
    /// Expunged by someone else, not yet reported.
    pub gone: bool,
}

/// The selected mailbox as this session has reported it.
pub(super) struct Mailbox {
    pub name: String,
    pub read_only: bool,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub msgs: Vec<ViewMsg>,
    pub recent: HashSet<u32>,
    /// The RECENT count last sent to the client.
    pub announced_recent: std::cell::Cell<usize>,
    /// Keywords announced in FLAGS.
    pub keywords: Vec<String>,
    /// A long FETCH still producing output.
    pub pending: Option<PendingFetch>,
    /// The folder was recreated under us (UIDVALIDITY changed): BYE was
    /// sent and the session ends after this command.
    pub stale: bool,
}

impl Mailbox {
    /// The highest UID in the view (0 when empty).
    pub fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.meta.uid)
    }

    /// Indexes into the view for a set of sequence numbers or UIDs.
    pub fn resolve(&self, set: &SeqSet, uid: bool) -> Result<Vec<usize>, Response> {
        let n = self.msgs.len() as u32;
        if uid {
            let max = self.max_uid();
            // Ranges are walked by the view, never by the numbers in them.
            Ok(self
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| set.contains(m.meta.uid, max))
                .map(|(i, _)| i)
                .collect())
        } else {
            if n == 0 || set.exceeds(n) {
                return Err(r::invalid_sequence_number());
            }
            Ok((0..n as usize)
                .filter(|&i| set.contains(i as u32 + 1, n))
                .collect())
        }
    }

    /// A message's flags as FETCH shows them: `\Recent` added before
    /// IMAP4rev2.
    pub fn flags_text(&self, meta: &CompactMeta, rev2: bool) -> String {
        let mut f = meta.flags.to_vec();
        if !rev2 && self.recent.contains(&meta.uid) {
            f.push("\\Recent".into());
        }
        f.join(" ")
    }

    /// `* FLAGS (...)`: the system flags and the keywords in use.
    pub fn write_flags(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft {})\r\n",
                self.keywords.join(" ")
            )
            .as_bytes(),
        );
    }

    /// `* OK [PERMANENTFLAGS (...)]`: nothing in a read-only mailbox; `\*`
    /// (new keywords allowed) while the mailbox is below the keyword limit.
    pub fn write_permanent_flags(&self, out: &mut Vec<u8>) {
        let permanent = if self.read_only {
            Response::ok_code(Code::PermanentFlags(String::new()), "Read-only mailbox")
        } else {
            let mut flags = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
            for k in &self.keywords {
                flags.push(' ');
                flags.push_str(k);
            }
            // The view's keywords include every one in use: only a long
            // list needs the messages walked.
            if self.keywords.len() < MAX_KEYWORDS || self.keywords_in_use().len() < MAX_KEYWORDS {
                flags.push_str(" \\*");
            }
            Response::ok_code(Code::PermanentFlags(flags), "Flags permitted")
        };
        permanent.write_untagged(out);
    }

    /// The keywords messages of the view carry, lowercased (keywords
    /// compare without case). The keyword limit counts these: a keyword
    /// the folder defined once but no message carries any more does not
    /// use up a place (the store forgets such ones past its own bound).
    pub fn keywords_in_use(&self) -> HashSet<String> {
        self.msgs
            .iter()
            .filter(|m| !m.gone)
            .flat_map(|m| m.meta.flags.iter())
            .filter(|f| !f.starts_with('\\'))
            .map(|f| f.to_ascii_lowercase())
            .collect()
    }

    /// RECENT as the client may count it: recent messages still in the
    /// view (expunged ones leave the set when their EXPUNGE is sent).
    pub fn recent_count(&self) -> usize {
        self.msgs
            .iter()
            .filter(|m| self.recent.contains(&m.meta.uid))
            .count()
    }
}

pub(super) fn is_system(flag: &str) -> bool {
    SYSTEM_FLAGS.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Canonical spelling of a flag (`\seen` → `\Seen`).
pub(super) fn canonical_flag(flag: &str) -> String {
    SYSTEM_FLAGS
        .iter()
        .find(|f| f.eq_ignore_ascii_case(flag))
        .map_or_else(|| flag.to_string(), |f| f.to_string())
}

/// `\Recent` and `\*` are never set by a client.
pub(super) fn settable(flags: &[String]) -> bool {
    !flags
        .iter()
        .any(|f| f.eq_ignore_ascii_case("\\Recent") || f == "\\*")
}
