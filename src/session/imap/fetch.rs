//! FETCH (with BINARY, CONDSTORE's CHANGEDSINCE and QRESYNC's VANISHED).
//! A long FETCH is answered in chunks: the session keeps the UIDs still to
//! send ([`PendingFetch`]) and the driver asks for the next chunk once the
//! previous one is written.

use std::collections::VecDeque;

use super::mime;
use super::view::{CompactMeta, Mailbox};
use super::{Account, Env, Handled, Session, after_updates};
use crate::proto::imap::encode::{self, seq_set};
use crate::proto::imap::response::{Code, Response, r};
use crate::proto::imap::{FetchAtt, Section, SectionText, SeqSet, date};

/// Output gathered before a long FETCH yields to the driver.
const FETCH_CHUNK: usize = 1024 * 1024;

pub(super) struct PendingFetch {
    tag: String,
    uid: bool,
    items: Vec<FetchAtt>,
    /// UIDs still to send.
    uids: VecDeque<u32>,
    changedsince: Option<u64>,
}

/// A message's bytes as one FETCH needs them.
struct Loaded {
    /// The whole message, or only its header (`header_only`).
    data: Vec<u8>,
    parsed: mime::Part,
    header_only: bool,
}

impl<E: Env> Session<E> {
    /// The next chunk of a long FETCH.
    pub(super) fn continue_fetch(&mut self, out: &mut Vec<u8>) {
        if let Ok((a, mb)) = self.state.selected() {
            a.continue_fetch(mb, out);
        }
    }
}

impl Account {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fetch(
        &mut self,
        mb: &mut Mailbox,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        items: Vec<FetchAtt>,
        changedsince: Option<u64>,
        vanished: bool,
    ) -> Handled {
        let mut out = Vec::new();
        self.refresh(mb, &mut out, uid);
        let result = self.fetch_updated(mb, &mut out, tag, uid, set, items, changedsince, vanished);
        after_updates(out, result)
    }

    /// FETCH once the view is up to date: the first chunk.
    #[allow(clippy::too_many_arguments)]
    fn fetch_updated(
        &mut self,
        mb: &mut Mailbox,
        out: &mut Vec<u8>,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        mut items: Vec<FetchAtt>,
        changedsince: Option<u64>,
        vanished: bool,
    ) -> Result<(), Response> {
        if changedsince.is_some() {
            self.ext.condstore = true;
        }
        if vanished && !self.ext.qresync {
            return Err(Response::bad("VANISHED needs QRESYNC enabled"));
        }
        let idx = mb.resolve(set, uid)?;
        if (uid || self.ext.qresync) && !items.contains(&FetchAtt::Uid) {
            items.insert(0, FetchAtt::Uid);
        }
        if (changedsince.is_some() || self.ext.condstore)
            && !items.contains(&FetchAtt::ModSeq)
            && (changedsince.is_some() || items.contains(&FetchAtt::Flags))
        {
            items.push(FetchAtt::ModSeq);
        }
        if vanished && let Some(since) = changedsince {
            self.write_vanished(mb, out, set, since);
        }
        let uids = idx.iter().map(|&i| mb.msgs[i].meta.uid).collect();
        mb.pending = Some(PendingFetch {
            tag: tag.to_string(),
            uid,
            items,
            uids,
            changedsince,
        });
        self.continue_fetch(mb, out);
        Ok(())
    }

    /// UID FETCH (VANISHED): the UIDs of `set` expunged since `since`.
    fn write_vanished(&mut self, mb: &Mailbox, out: &mut Vec<u8>, set: &SeqSet, since: u64) {
        let max = mb.max_uid();
        let mut v: Vec<u32> = self
            .store
            .vanished_since(&mb.name, since)
            .unwrap_or_default()
            .into_iter()
            .filter(|&u| set.contains(u, max.max(u)))
            .collect();
        v.sort_unstable();
        v.dedup();
        if !v.is_empty() {
            out.extend_from_slice(format!("* VANISHED (EARLIER) {}\r\n", seq_set(&v)).as_bytes());
        }
    }

    fn continue_fetch(&mut self, mb: &mut Mailbox, out: &mut Vec<u8>) {
        let Some(mut p) = mb.pending.take() else {
            return;
        };
        let start = out.len();
        let mut failed = false;
        while let Some(uid) = p.uids.pop_front() {
            if let Err(()) = self.fetch_one(mb, out, uid, &p) {
                failed = true;
            }
            if out.len() - start >= FETCH_CHUNK {
                if !p.uids.is_empty() {
                    mb.pending = Some(p);
                    return;
                }
                break;
            }
        }
        if failed {
            Response::no(Code::UnknownCte, "Some parts could not be decoded")
                .write_tagged(out, &p.tag);
        } else {
            // Flags we set (\Seen) were reported in the FETCH lines.
            self.refresh(mb, out, p.uid);
            r::completed("FETCH").write_tagged(out, &p.tag);
        }
    }

    /// One message's FETCH response; `Err` for a BINARY of an unknown
    /// encoding.
    fn fetch_one(
        &mut self,
        mb: &mut Mailbox,
        out: &mut Vec<u8>,
        uid: u32,
        p: &PendingFetch,
    ) -> Result<(), ()> {
        let Some(pos) = mb.msgs.iter().position(|m| m.meta.uid == uid) else {
            return Ok(());
        };
        if mb.msgs[pos].gone {
            return Ok(());
        }
        let mut meta = mb.msgs[pos].meta.clone();
        if p.changedsince.is_some_and(|since| meta.modseq <= since) {
            return Ok(());
        }
        let loaded = if needs_data(&p.items) {
            let header_only = header_only(&p.items);
            let read = if header_only {
                self.store.read_header(&mb.name, uid).map(|h| h.to_vec())
            } else {
                self.store.read(&mb.name, uid).map(mime::to_crlf)
            };
            match read {
                Ok(data) => Some(Loaded {
                    parsed: mime::parse(&data),
                    data,
                    header_only,
                }),
                // Expunged by someone else meanwhile: nothing to send.
                Err(_) => return Ok(()),
            }
        } else {
            None
        };
        let flags_changed =
            sets_seen(&p.items, &meta, mb.read_only) && self.mark_seen(mb, pos, &mut meta);
        let recent = !self.ext.rev2 && mb.recent.contains(&uid);
        let extra_flags = flags_changed && !p.items.contains(&FetchAtt::Flags);
        let mut failed = false;
        out.extend_from_slice(format!("* {} FETCH (", pos + 1).as_bytes());
        let items = p
            .items
            .iter()
            .chain(extra_flags.then_some(&FetchAtt::Flags));
        for (n, item) in items.enumerate() {
            if n > 0 {
                out.push(b' ');
            }
            let cx = ItemContext {
                uid,
                meta: &meta,
                recent,
                utf8: self.ext.utf8,
                loaded: loaded.as_ref(),
            };
            failed |= write_item(out, item, &cx).is_err();
        }
        out.extend_from_slice(b")\r\n");
        if failed { Err(()) } else { Ok(()) }
    }

    /// Sets `\Seen` on a message a FETCH reads; whether it changed.
    fn mark_seen(&mut self, mb: &mut Mailbox, pos: usize, meta: &mut CompactMeta) -> bool {
        let mut f = meta.flags.to_vec();
        f.push("\\Seen".into());
        if let Ok(r) = self.store.set_flags(&mb.name, &[(meta.uid, f)], None)
            && let Some(m) = r.changed.into_iter().next()
        {
            *meta = CompactMeta::from(&m);
            mb.msgs[pos].meta = meta.clone();
            mb.highestmodseq = mb.highestmodseq.max(meta.modseq);
            return true;
        }
        false
    }
}

fn needs_data(items: &[FetchAtt]) -> bool {
    items.iter().any(|i| {
        matches!(
            i,
            FetchAtt::Envelope
                | FetchAtt::Body
                | FetchAtt::BodyStructure
                | FetchAtt::Rfc822
                | FetchAtt::Rfc822Header
                | FetchAtt::Rfc822Text
                | FetchAtt::BodySection { .. }
                | FetchAtt::Binary { .. }
                | FetchAtt::BinarySize(_)
        )
    })
}

/// ENVELOPE and the top-level header sections need the header only
/// (which the store may have cached).
fn header_only(items: &[FetchAtt]) -> bool {
    items.iter().all(|i| match i {
        FetchAtt::BodySection { section, .. } => {
            section.part.is_empty()
                && matches!(
                    section.text,
                    Some(
                        SectionText::Header
                            | SectionText::HeaderFields(_)
                            | SectionText::HeaderFieldsNot(_)
                    )
                )
        }
        other => !matches!(
            other,
            FetchAtt::Body
                | FetchAtt::BodyStructure
                | FetchAtt::Rfc822
                | FetchAtt::Rfc822Text
                | FetchAtt::Binary { .. }
                | FetchAtt::BinarySize(_)
        ),
    })
}

/// Whether the FETCH reads the body of an unseen message in a writable
/// mailbox (and so sets `\Seen`).
fn sets_seen(items: &[FetchAtt], meta: &CompactMeta, read_only: bool) -> bool {
    !read_only
        && !meta.flags.has("\\Seen")
        && items.iter().any(|i| {
            matches!(
                i,
                FetchAtt::Rfc822
                    | FetchAtt::Rfc822Text
                    | FetchAtt::BodySection { peek: false, .. }
                    | FetchAtt::Binary { peek: false, .. }
            )
        })
}

/// What writing one data item needs to know of its message.
struct ItemContext<'a> {
    uid: u32,
    meta: &'a CompactMeta,
    /// `\Recent` is shown.
    recent: bool,
    utf8: bool,
    loaded: Option<&'a Loaded>,
}

/// One data item of a FETCH response; `Err` for a BINARY of an unknown
/// encoding (written as NIL).
fn write_item(out: &mut Vec<u8>, item: &FetchAtt, cx: &ItemContext) -> Result<(), ()> {
    let data = cx.loaded.map_or(&[][..], |l| &l.data[..]);
    let parsed = cx.loaded.map(|l| &l.parsed);
    match item {
        FetchAtt::Uid => out.extend_from_slice(format!("UID {}", cx.uid).as_bytes()),
        FetchAtt::Flags => {
            let mut f = cx.meta.flags.to_vec();
            if cx.recent {
                f.push("\\Recent".into());
            }
            out.extend_from_slice(format!("FLAGS ({})", f.join(" ")).as_bytes());
        }
        FetchAtt::ModSeq => {
            out.extend_from_slice(format!("MODSEQ ({})", cx.meta.modseq).as_bytes())
        }
        FetchAtt::InternalDate => {
            out.extend_from_slice(b"INTERNALDATE ");
            out.extend_from_slice(date::format_date_time(cx.meta.internal_date).as_bytes());
        }
        FetchAtt::Rfc822Size => {
            let size = match cx.loaded {
                Some(l) if !l.header_only => l.data.len() as u64,
                _ => cx.meta.size,
            };
            out.extend_from_slice(format!("RFC822.SIZE {size}").as_bytes());
        }
        FetchAtt::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            if let Some(l) = cx.loaded {
                mime::envelope(out, &l.data, &l.parsed, cx.utf8);
            }
        }
        FetchAtt::Body | FetchAtt::BodyStructure => {
            let ext = matches!(item, FetchAtt::BodyStructure);
            out.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
            if let Some(l) = cx.loaded {
                mime::body_structure(out, &l.data, &l.parsed, ext, cx.utf8);
            }
        }
        FetchAtt::Rfc822 => {
            out.extend_from_slice(b"RFC822 ");
            encode::literal(out, data);
        }
        FetchAtt::Rfc822Header => {
            out.extend_from_slice(b"RFC822.HEADER ");
            let end = parsed.map_or(0, |p| p.body_start);
            encode::literal(out, &data[..end]);
        }
        FetchAtt::Rfc822Text => {
            out.extend_from_slice(b"RFC822.TEXT ");
            let start = parsed.map_or(0, |p| p.body_start);
            encode::literal(out, &data[start..]);
        }
        FetchAtt::BodySection {
            section, partial, ..
        } => {
            let content = parsed.and_then(|pt| section_bytes(data, pt, section));
            out.extend_from_slice(b"BODY[");
            out.extend_from_slice(section_name(section).as_bytes());
            out.push(b']');
            write_partial(out, content.as_deref(), *partial, false);
        }
        FetchAtt::Binary { part, partial, .. } => {
            return write_binary(out, data, parsed, part, Some(*partial), false);
        }
        FetchAtt::BinarySize(part) => {
            return write_binary(out, data, parsed, part, None, true);
        }
    }
    Ok(())
}

/// BINARY[part] (`partial` given) or BINARY.SIZE[part] (`size`).
fn write_binary(
    out: &mut Vec<u8>,
    data: &[u8],
    parsed: Option<&mime::Part>,
    part: &[u32],
    partial: Option<Option<(u32, u32)>>,
    size: bool,
) -> Result<(), ()> {
    let decoded = if part.is_empty() {
        // The whole message: every part decoded (RFC 3516 section 4.2).
        parsed.map(|pt| mime::decoded_message(data, pt).map(std::borrow::Cow::Owned))
    } else {
        parsed
            .and_then(|pt| pt.find(part))
            .map(|t| mime::decoded_part(data, t))
    };
    let label: Vec<String> = part.iter().map(u32::to_string).collect();
    let label = label.join(".");
    match decoded {
        Some(None) => {
            out.extend_from_slice(format!("BINARY[{label}] NIL").as_bytes());
            Err(())
        }
        other => {
            let bytes = other.flatten();
            if size {
                let len = bytes.as_ref().map_or(0, |b| b.len());
                out.extend_from_slice(format!("BINARY.SIZE[{label}] {len}").as_bytes());
            } else {
                out.extend_from_slice(format!("BINARY[{label}]").as_bytes());
                write_partial(out, bytes.as_deref(), partial.flatten(), true);
            }
            Ok(())
        }
    }
}

fn section_name(s: &Section) -> String {
    let mut parts: Vec<String> = s.part.iter().map(u32::to_string).collect();
    match &s.text {
        None => {}
        Some(SectionText::Header) => parts.push("HEADER".into()),
        Some(SectionText::Text) => parts.push("TEXT".into()),
        Some(SectionText::Mime) => parts.push("MIME".into()),
        Some(SectionText::HeaderFields(f)) | Some(SectionText::HeaderFieldsNot(f)) => {
            let not = matches!(s.text, Some(SectionText::HeaderFieldsNot(_)));
            let mut list = Vec::new();
            for x in f {
                let mut o = Vec::new();
                encode::mailbox(&mut o, &x.to_ascii_uppercase(), false);
                list.push(String::from_utf8_lossy(&o).into_owned());
            }
            parts.push(format!(
                "HEADER.FIELDS{} ({})",
                if not { ".NOT" } else { "" },
                list.join(" ")
            ));
        }
    }
    parts.join(".")
}

/// The bytes of a body section; `None` when the part does not exist.
fn section_bytes(data: &[u8], root: &mime::Part, s: &Section) -> Option<Vec<u8>> {
    let part = root.find(&s.part)?;
    // HEADER/TEXT/HEADER.FIELDS of a part path address its message.
    let msg = if s.part.is_empty() {
        Some(root)
    } else {
        part.message.as_deref()
    };
    Some(match &s.text {
        None if s.part.is_empty() => data.to_vec(),
        None => data[part.body_start..part.end].to_vec(),
        Some(SectionText::Mime) => data[part.header_start..part.body_start].to_vec(),
        Some(SectionText::Header) => {
            let m = msg?;
            data[m.header_start..m.body_start].to_vec()
        }
        Some(SectionText::Text) => {
            let m = msg?;
            data[m.body_start..m.end].to_vec()
        }
        Some(SectionText::HeaderFields(f)) => {
            let m = msg?;
            mime::header_fields(&data[m.header_start..m.body_start], f, false)
        }
        Some(SectionText::HeaderFieldsNot(f)) => {
            let m = msg?;
            mime::header_fields(&data[m.header_start..m.body_start], f, true)
        }
    })
}

fn write_partial(
    out: &mut Vec<u8>,
    content: Option<&[u8]>,
    partial: Option<(u32, u32)>,
    binary: bool,
) {
    let Some(content) = content else {
        if let Some((start, _)) = partial {
            out.extend_from_slice(format!("<{start}>").as_bytes());
        }
        // A part the message does not have: RFC 3501 section 6.4.5
        // leaves the answer open; an empty string (as Dovecot and most
        // servers send) keeps clients that expect a string working.
        out.extend_from_slice(b" \"\"");
        return;
    };
    let slice = match partial {
        Some((start, len)) => {
            out.extend_from_slice(format!("<{start}>").as_bytes());
            let s = (start as usize).min(content.len());
            let e = s.saturating_add(len as usize).min(content.len());
            &content[s..e]
        }
        None => content,
    };
    out.push(b' ');
    if binary && slice.contains(&0) {
        out.extend_from_slice(format!("~{{{}}}\r\n", slice.len()).as_bytes());
        out.extend_from_slice(slice);
    } else {
        encode::literal(out, slice);
    }
}
