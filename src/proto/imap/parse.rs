//! The IMAP command grammar (RFC 9051, RFC 3501 and the extensions mailc
//! offers) over one complete command as cut by the framer.

use super::date::{parse_date, parse_date_time};
use super::types::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when one could be read.
    pub tag: Option<String>,
    pub message: String,
}

type R<T> = Result<T, String>;

/// Deepest nesting of search keys accepted (NOT/OR/parentheses).
const MAX_DEPTH: usize = 32;

struct P<'a> {
    b: &'a [u8],
    i: usize,
}

fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){ %*\"\\]".contains(&b)
}

impl<'a> P<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        matches!(&self.b[self.i..], b"\r\n" | b"\n" | b"")
    }

    fn end(&mut self) -> R<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(format!(
                "unexpected characters at the end: {}",
                String::from_utf8_lossy(&self.b[self.i..self.b.len().min(self.i + 20)]).trim_end()
            ))
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}'", c as char))
        }
    }

    fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    /// Characters while `f` holds.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    fn atom(&mut self) -> R<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    fn keyword(&mut self) -> R<String> {
        Ok(self.atom()?.to_ascii_uppercase())
    }

    fn number64(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "number out of range".into())
    }

    fn number(&mut self) -> R<u32> {
        let n = self.number64()?;
        u32::try_from(n).map_err(|_| "number out of range".into())
    }

    fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err("zero is not a valid number here".into()),
            n => Ok(n),
        }
    }

    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.i += 1;
                        }
                        _ => return Err("bad escape in quoted string".into()),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `{N}`/`{N+}`/`{N-}` CRLF and the data (the framer made sure it is
    /// all there); `~{N}` too when `binary`.
    fn literal(&mut self, binary: bool) -> R<Vec<u8>> {
        if binary {
            self.eat(b'~');
        }
        self.expect(b'{')?;
        let n = self.number64()?;
        if !self.eat(b'+') {
            self.eat(b'-');
        }
        self.expect(b'}')?;
        self.eat(b'\r');
        self.expect(b'\n')?;
        let n = usize::try_from(n).map_err(|_| "literal too large".to_string())?;
        if self.b.len() - self.i < n {
            return Err("literal shorter than announced".into());
        }
        let data = self.b[self.i..self.i + n].to_vec();
        self.i += n;
        if !binary && data.contains(&0) {
            return Err("NUL in a literal (use literal8)".into());
        }
        Ok(data)
    }

    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(false),
            _ => Err("expected a string".into()),
        }
    }

    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b == b']');
                if a.is_empty() {
                    return Err("expected a string or atom".into());
                }
                Ok(a.to_vec())
            }
        }
    }

    fn astring_text(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "invalid UTF-8".into())
    }

    fn nstring_text(&mut self) -> R<Option<String>> {
        if self.peek_word_ci(b"NIL") {
            self.i += 3;
            return Ok(None);
        }
        let s = self.string()?;
        Ok(Some(String::from_utf8_lossy(&s).into_owned()))
    }

    fn peek_word_ci(&self, w: &[u8]) -> bool {
        let rest = &self.b[self.i..];
        rest.len() >= w.len()
            && rest[..w.len()].eq_ignore_ascii_case(w)
            && rest.get(w.len()).is_none_or(|&c| !is_atom_char(c))
    }

    fn mailbox(&mut self) -> R<String> {
        let raw = self.astring()?;
        let s = String::from_utf8(raw).map_err(|_| "mailbox name is not UTF-8".to_string())?;
        if s.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        Ok(s)
    }

    fn list_mailbox(&mut self) -> R<String> {
        match self.peek() {
            Some(b'"' | b'{') => {
                String::from_utf8(self.string()?).map_err(|_| "pattern is not UTF-8".into())
            }
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b == b']' || b == b'%' || b == b'*');
                if a.is_empty() {
                    return Err("expected a mailbox pattern".into());
                }
                Ok(String::from_utf8_lossy(a).into_owned())
            }
        }
    }

    fn seq_num(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            Ok(SeqNum::Num(self.nz_number()?))
        }
    }

    fn seq_set(&mut self) -> R<SeqSet> {
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_num()?;
            let b = if self.eat(b':') { self.seq_num()? } else { a };
            ranges.push((a, b));
            if ranges.len() > 10_000 {
                return Err("sequence set too long".into());
            }
            if !self.eat(b',') {
                break;
            }
        }
        Ok(SeqSet(ranges))
    }

    fn flag(&mut self) -> R<String> {
        if self.eat(b'\\') {
            if self.eat(b'*') {
                return Ok("\\*".into());
            }
            let a = self.atom()?;
            return Ok(format!("\\{a}"));
        }
        self.atom()
    }

    fn flag_list(&mut self) -> R<Vec<String>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    /// `(` items `)` separated by spaces, each read by `f`.
    fn paren_list<T>(&mut self, mut f: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        if self.eat(b')') {
            return Ok(items);
        }
        loop {
            items.push(f(self)?);
            if self.eat(b')') {
                return Ok(items);
            }
            self.sp()?;
        }
    }

    fn date(&mut self) -> R<i64> {
        let raw = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-')
                .to_vec()
        };
        let s = String::from_utf8_lossy(&raw);
        parse_date(&s).ok_or_else(|| format!("invalid date: {s}"))
    }

    fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.paren_list(|p| {
            let k = p.keyword()?;
            Ok(match k.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "DELETED" => StatusItem::Deleted,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                _ => return Err(format!("unknown status item {k}")),
            })
        })
    }

    fn search_return(&mut self) -> R<Option<Vec<SearchReturn>>> {
        if !self.peek_word_ci(b"RETURN") {
            return Ok(None);
        }
        self.i += 6;
        self.sp()?;
        let opts = self.paren_list(|p| {
            let k = p.keyword()?;
            Ok(match k.as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                _ => return Err(format!("unsupported search return option {k}")),
            })
        })?;
        self.sp()?;
        Ok(Some(opts))
    }

    /// Search keys up to the end of the command (an implicit AND).
    fn search_program(&mut self) -> R<SearchKey> {
        let mut keys = vec![self.search_key(0)?];
        while self.eat(b' ') {
            keys.push(self.search_key(0)?);
        }
        Ok(if keys.len() == 1 {
            keys.remove(0)
        } else {
            SearchKey::And(keys)
        })
    }

    fn search_key(&mut self, depth: usize) -> R<SearchKey> {
        if depth > MAX_DEPTH {
            return Err("search keys nested too deeply".into());
        }
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let mut keys = vec![self.search_key(depth + 1)?];
                while self.eat(b' ') {
                    keys.push(self.search_key(depth + 1)?);
                }
                self.expect(b')')?;
                return Ok(if keys.len() == 1 {
                    keys.remove(0)
                } else {
                    SearchKey::And(keys)
                });
            }
            Some(b'0'..=b'9' | b'*') => return Ok(SearchKey::Seq(self.seq_set()?)),
            _ => {}
        }
        let k = self.keyword()?;
        let text = |p: &mut Self| -> R<String> {
            p.sp()?;
            Ok(String::from_utf8_lossy(&p.astring()?).into_owned())
        };
        let date = |p: &mut Self| -> R<i64> {
            p.sp()?;
            p.date()
        };
        Ok(match k.as_str() {
            "ALL" => SearchKey::All,
            "ANSWERED" => SearchKey::Answered,
            "BCC" => SearchKey::Bcc(text(self)?),
            "BEFORE" => SearchKey::Before(date(self)?),
            "BODY" => SearchKey::Body(text(self)?),
            "CC" => SearchKey::Cc(text(self)?),
            "DELETED" => SearchKey::Deleted,
            "DRAFT" => SearchKey::Draft,
            "FLAGGED" => SearchKey::Flagged,
            "FROM" => SearchKey::From(text(self)?),
            "HEADER" => {
                let f = text(self)?;
                let v = text(self)?;
                SearchKey::Header(f, v)
            }
            "KEYWORD" => {
                self.sp()?;
                SearchKey::Keyword(self.flag()?)
            }
            "LARGER" => {
                self.sp()?;
                SearchKey::Larger(self.number64()?)
            }
            "NEW" => SearchKey::New,
            "NOT" => {
                self.sp()?;
                SearchKey::Not(Box::new(self.search_key(depth + 1)?))
            }
            "OLD" => SearchKey::Old,
            "ON" => SearchKey::On(date(self)?),
            "OR" => {
                self.sp()?;
                let a = self.search_key(depth + 1)?;
                self.sp()?;
                let b = self.search_key(depth + 1)?;
                SearchKey::Or(Box::new(a), Box::new(b))
            }
            "RECENT" => SearchKey::Recent,
            "SEEN" => SearchKey::Seen,
            "SENTBEFORE" => SearchKey::SentBefore(date(self)?),
            "SENTON" => SearchKey::SentOn(date(self)?),
            "SENTSINCE" => SearchKey::SentSince(date(self)?),
            "SINCE" => SearchKey::Since(date(self)?),
            "SMALLER" => {
                self.sp()?;
                SearchKey::Smaller(self.number64()?)
            }
            "SUBJECT" => SearchKey::Subject(text(self)?),
            "TEXT" => SearchKey::Text(text(self)?),
            "TO" => SearchKey::To(text(self)?),
            "UID" => {
                self.sp()?;
                SearchKey::Uid(self.seq_set()?)
            }
            "UNANSWERED" => SearchKey::Unanswered,
            "UNDELETED" => SearchKey::Undeleted,
            "UNDRAFT" => SearchKey::Undraft,
            "UNFLAGGED" => SearchKey::Unflagged,
            "UNKEYWORD" => {
                self.sp()?;
                SearchKey::Unkeyword(self.flag()?)
            }
            "UNSEEN" => SearchKey::Unseen,
            "MODSEQ" => {
                self.sp()?;
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    self.keyword()?;
                    self.sp()?;
                }
                SearchKey::ModSeq(self.number64()?)
            }
            "YOUNGER" => {
                self.sp()?;
                SearchKey::Younger(self.number64()?)
            }
            "OLDER" => {
                self.sp()?;
                SearchKey::Older(self.number64()?)
            }
            _ => return Err(format!("unknown search key {k}")),
        })
    }

    fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let start = self.number()?;
        self.expect(b'.')?;
        let len = self.nz_number()?;
        self.expect(b'>')?;
        Ok(Some((start, len)))
    }

    fn part_path(&mut self) -> R<Vec<u32>> {
        let mut part = Vec::new();
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            part.push(self.nz_number()?);
            if part.len() > 64 {
                return Err("section path too deep".into());
            }
            if !self.eat(b'.') {
                break;
            }
        }
        Ok(part)
    }

    fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let part = self.part_path()?;
        let text = if self.peek() == Some(b']') {
            None
        } else {
            let name = self.take_while(|b| b.is_ascii_alphabetic() || b == b'.');
            let name = String::from_utf8_lossy(name).to_ascii_uppercase();
            let fields = |p: &mut Self| -> R<Vec<String>> {
                p.sp()?;
                p.paren_list(|p| p.astring_text())
            };
            Some(match name.as_str() {
                "HEADER" => SectionText::Header,
                "HEADER.FIELDS" => SectionText::HeaderFields(fields(self)?),
                "HEADER.FIELDS.NOT" => SectionText::HeaderFieldsNot(fields(self)?),
                "TEXT" => SectionText::Text,
                "MIME" if !part.is_empty() => SectionText::Mime,
                _ => return Err(format!("invalid section {name}")),
            })
        };
        self.expect(b']')?;
        Ok(Section { part, text })
    }

    fn fetch_att(&mut self) -> R<Vec<FetchAtt>> {
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        Ok(vec![match name.as_str() {
            "ALL" => {
                return Ok(vec![
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                    FetchAtt::Envelope,
                ]);
            }
            "FAST" => {
                return Ok(vec![
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                ]);
            }
            "FULL" => {
                return Ok(vec![
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                    FetchAtt::Envelope,
                    FetchAtt::Body,
                ]);
            }
            "ENVELOPE" => FetchAtt::Envelope,
            "FLAGS" => FetchAtt::Flags,
            "INTERNALDATE" => FetchAtt::InternalDate,
            "RFC822.SIZE" => FetchAtt::Rfc822Size,
            "RFC822" => FetchAtt::Rfc822,
            "RFC822.HEADER" => FetchAtt::Rfc822Header,
            "RFC822.TEXT" => FetchAtt::Rfc822Text,
            "BODYSTRUCTURE" => FetchAtt::BodyStructure,
            "UID" => FetchAtt::Uid,
            "MODSEQ" => FetchAtt::ModSeq,
            "BODY" | "BODY.PEEK" if self.peek() == Some(b'[') => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchAtt::BodySection {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            "BODY" => FetchAtt::Body,
            "BINARY" | "BINARY.PEEK" | "BINARY.SIZE" => {
                self.expect(b'[')?;
                let part = self.part_path()?;
                self.expect(b']')?;
                if name == "BINARY.SIZE" {
                    FetchAtt::BinarySize(part)
                } else {
                    FetchAtt::Binary {
                        peek: name == "BINARY.PEEK",
                        part,
                        partial: self.partial()?,
                    }
                }
            }
            "" => return Err("expected a fetch item".into()),
            _ => return Err(format!("unknown fetch item {name}")),
        }])
    }

    fn fetch_items(&mut self) -> R<Vec<FetchAtt>> {
        if self.peek() == Some(b'(') {
            let lists = self.paren_list(|p| p.fetch_att())?;
            if lists.is_empty() {
                return Err("empty fetch item list".into());
            }
            Ok(lists.into_iter().flatten().collect())
        } else {
            self.fetch_att()
        }
    }

    fn sort_criteria(&mut self) -> R<Vec<(bool, SortKey)>> {
        let mut reverse = false;
        let mut out = Vec::new();
        let words = self.paren_list(|p| p.keyword())?;
        for w in words {
            let key = match w.as_str() {
                "REVERSE" => {
                    reverse = true;
                    continue;
                }
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                _ => return Err(format!("unknown sort criterion {w}")),
            };
            out.push((reverse, key));
            reverse = false;
        }
        if out.is_empty() || reverse {
            return Err("incomplete sort criteria".into());
        }
        Ok(out)
    }

    fn select_params(&mut self) -> R<(bool, Option<QresyncParams>)> {
        let mut condstore = false;
        let mut qresync = None;
        if !self.eat(b' ') {
            return Ok((condstore, qresync));
        }
        self.expect(b'(')?;
        loop {
            let k = self.keyword()?;
            match k.as_str() {
                "CONDSTORE" => condstore = true,
                "QRESYNC" => {
                    self.sp()?;
                    self.expect(b'(')?;
                    let uidvalidity = self.nz_number()?;
                    self.sp()?;
                    let modseq = self.number64()?;
                    let mut known_uids = None;
                    let mut seq_match = None;
                    if self.eat(b' ') {
                        if self.peek() != Some(b'(') {
                            known_uids = Some(self.seq_set()?);
                            self.eat(b' ');
                        }
                        if self.eat(b'(') {
                            let seqs = self.seq_set()?;
                            self.sp()?;
                            let uids = self.seq_set()?;
                            self.expect(b')')?;
                            seq_match = Some((seqs, uids));
                        }
                    }
                    self.expect(b')')?;
                    qresync = Some(QresyncParams {
                        uidvalidity,
                        modseq,
                        known_uids,
                        seq_match,
                    });
                }
                _ => return Err(format!("unknown select parameter {k}")),
            }
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        Ok((condstore, qresync))
    }

    fn list(&mut self) -> R<Body> {
        let mut options = ListOptions::default();
        if self.peek() == Some(b'(') {
            options.extended = true;
            for w in self.paren_list(|p| p.keyword())? {
                match w.as_str() {
                    "SUBSCRIBED" => options.subscribed = true,
                    "REMOTE" => options.remote = true,
                    "RECURSIVEMATCH" => options.recursive = true,
                    "SPECIAL-USE" => options.special_use = true,
                    _ => return Err(format!("unknown list selection option {w}")),
                }
            }
            if options.recursive && !options.subscribed && !options.special_use {
                return Err("RECURSIVEMATCH needs another selection option".into());
            }
            self.sp()?;
        }
        let reference = self.mailbox_raw()?;
        self.sp()?;
        let patterns = if self.peek() == Some(b'(') {
            options.extended = true;
            self.paren_list(|p| p.list_mailbox())?
        } else {
            vec![self.list_mailbox()?]
        };
        if self.eat(b' ') {
            if !self.peek_word_ci(b"RETURN") {
                return Err("expected RETURN".into());
            }
            options.extended = true;
            self.i += 6;
            self.sp()?;
            self.expect(b'(')?;
            if !self.eat(b')') {
                loop {
                    let w = self.keyword()?;
                    match w.as_str() {
                        "SUBSCRIBED" => options.ret_subscribed = true,
                        "CHILDREN" => options.ret_children = true,
                        "SPECIAL-USE" => options.ret_special_use = true,
                        "STATUS" => {
                            self.sp()?;
                            options.ret_status = Some(self.status_items()?);
                        }
                        _ => return Err(format!("unknown list return option {w}")),
                    }
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
            }
        }
        Ok(Body::List {
            reference,
            patterns,
            options,
        })
    }

    /// A mailbox name as sent, INBOX not folded (LIST's reference).
    fn mailbox_raw(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "mailbox name is not UTF-8".into())
    }

    fn append(&mut self) -> R<Body> {
        let mailbox = self.mailbox()?;
        let mut messages = Vec::new();
        while self.eat(b' ') {
            let mut flags = Vec::new();
            let mut date = None;
            if self.peek() == Some(b'(') {
                flags = self.flag_list()?;
                self.sp()?;
            }
            if self.peek() == Some(b'"') {
                let raw = self.quoted()?;
                let s = String::from_utf8_lossy(&raw);
                date = Some(parse_date_time(&s).ok_or_else(|| format!("invalid date-time: {s}"))?);
                self.sp()?;
            }
            let data = if self.peek_word_ci(b"UTF8") {
                self.i += 4;
                self.sp()?;
                self.expect(b'(')?;
                let d = self.literal(true)?;
                self.expect(b')')?;
                d
            } else {
                self.literal(true)?
            };
            messages.push(AppendMessage { flags, date, data });
        }
        if messages.is_empty() {
            return Err("APPEND needs a message".into());
        }
        Ok(Body::Append { mailbox, messages })
    }

    fn store(&mut self, uid: bool) -> R<Body> {
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchangedsince = None;
        if self.eat(b'(') {
            let k = self.keyword()?;
            if k != "UNCHANGEDSINCE" {
                return Err(format!("unknown store modifier {k}"));
            }
            self.sp()?;
            unchangedsince = Some(self.number64()?);
            self.expect(b')')?;
            self.sp()?;
        }
        let name =
            self.take_while(|b| b.is_ascii_alphabetic() || b == b'.' || b == b'+' || b == b'-');
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let (mode, rest) = match name.as_bytes().first() {
            Some(b'+') => (StoreMode::Add, &name[1..]),
            Some(b'-') => (StoreMode::Remove, &name[1..]),
            _ => (StoreMode::Replace, name.as_str()),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err(format!("unknown store item {name}")),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut f = vec![self.flag()?];
            while self.eat(b' ') {
                f.push(self.flag()?);
            }
            f
        };
        Ok(Body::Store {
            uid,
            set,
            mode,
            silent,
            flags,
            unchangedsince,
        })
    }

    fn fetch(&mut self, uid: bool) -> R<Body> {
        let set = self.seq_set()?;
        self.sp()?;
        let items = self.fetch_items()?;
        let mut changedsince = None;
        let mut vanished = false;
        if self.eat(b' ') {
            self.expect(b'(')?;
            loop {
                let k = self.keyword()?;
                match k.as_str() {
                    "CHANGEDSINCE" => {
                        self.sp()?;
                        changedsince = Some(self.number64()?);
                    }
                    "VANISHED" if uid => vanished = true,
                    _ => return Err(format!("unknown fetch modifier {k}")),
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            if vanished && changedsince.is_none() {
                return Err("VANISHED needs CHANGEDSINCE".into());
            }
        }
        Ok(Body::Fetch {
            uid,
            set,
            items,
            changedsince,
            vanished,
        })
    }

    fn search(&mut self, uid: bool) -> R<Body> {
        let ret = self.search_return()?;
        let mut charset = None;
        if self.peek_word_ci(b"CHARSET") {
            self.i += 7;
            self.sp()?;
            charset = Some(self.astring_text()?.to_ascii_uppercase());
            self.sp()?;
        }
        let key = self.search_program()?;
        Ok(Body::Search {
            uid,
            ret,
            charset,
            key,
        })
    }

    fn body(&mut self, name: &str) -> R<Body> {
        let arg = |p: &mut Self| -> R<String> {
            p.sp()?;
            p.mailbox()
        };
        Ok(match name {
            "CAPABILITY" => Body::Capability,
            "NOOP" => Body::Noop,
            "LOGOUT" => Body::Logout,
            "STARTTLS" => Body::StartTls,
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.keyword()?;
                let initial = if self.eat(b' ') {
                    let t = self.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
                    Some(String::from_utf8_lossy(t).into_owned())
                } else {
                    None
                };
                Body::Authenticate { mechanism, initial }
            }
            "LOGIN" => {
                self.sp()?;
                let user = self.astring_text()?;
                self.sp()?;
                let pass = self.astring_text()?;
                Body::Login { user, pass }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.keyword()?);
                }
                if caps.is_empty() {
                    return Err("ENABLE needs a capability".into());
                }
                Body::Enable(caps)
            }
            "SELECT" | "EXAMINE" => {
                let mailbox = arg(self)?;
                let (condstore, qresync) = self.select_params()?;
                Body::Select {
                    mailbox,
                    read_only: name == "EXAMINE",
                    condstore,
                    qresync,
                }
            }
            "CREATE" => {
                let m = arg(self)?;
                if self.eat(b' ') {
                    // CREATE-SPECIAL-USE and friends: parameters ignored.
                    self.paren_list(|p| p.astring())?;
                }
                Body::Create(m)
            }
            "DELETE" => Body::Delete(arg(self)?),
            "RENAME" => {
                let a = arg(self)?;
                let b = arg(self)?;
                Body::Rename(a, b)
            }
            "SUBSCRIBE" => Body::Subscribe(arg(self)?),
            "UNSUBSCRIBE" => Body::Unsubscribe(arg(self)?),
            "LIST" => {
                self.sp()?;
                self.list()?
            }
            "LSUB" => {
                self.sp()?;
                let reference = self.mailbox_raw()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                Body::Lsub { reference, pattern }
            }
            "NAMESPACE" => Body::Namespace,
            "STATUS" => {
                let mailbox = arg(self)?;
                self.sp()?;
                let items = self.status_items()?;
                if items.is_empty() {
                    return Err("STATUS needs items".into());
                }
                Body::Status { mailbox, items }
            }
            "APPEND" => {
                self.sp()?;
                self.append()?
            }
            "IDLE" => Body::Idle,
            "CHECK" => Body::Check,
            "CLOSE" => Body::Close,
            "UNSELECT" => Body::Unselect,
            "EXPUNGE" => Body::Expunge(None),
            "SEARCH" => {
                self.sp()?;
                self.search(false)?
            }
            "FETCH" => {
                self.sp()?;
                self.fetch(false)?
            }
            "STORE" => {
                self.sp()?;
                self.store(false)?
            }
            "COPY" | "MOVE" => {
                self.sp()?;
                let set = self.seq_set()?;
                let mailbox = arg(self)?;
                Body::Copy {
                    uid: false,
                    set,
                    mailbox,
                    is_move: name == "MOVE",
                }
            }
            "UID" => {
                self.sp()?;
                let sub = self.keyword()?;
                self.sp()?;
                match sub.as_str() {
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "SEARCH" => self.search(true)?,
                    "COPY" | "MOVE" => {
                        let set = self.seq_set()?;
                        let mailbox = arg(self)?;
                        Body::Copy {
                            uid: true,
                            set,
                            mailbox,
                            is_move: sub == "MOVE",
                        }
                    }
                    "EXPUNGE" => Body::Expunge(Some(self.seq_set()?)),
                    "SORT" => self.sort(true)?,
                    "THREAD" => self.thread(true)?,
                    _ => return Err(format!("unknown UID command {sub}")),
                }
            }
            "ID" => {
                self.sp()?;
                if self.peek_word_ci(b"NIL") {
                    self.i += 3;
                    Body::Id(Vec::new())
                } else {
                    let items = self.paren_list(|p| {
                        let s = p.string()?;
                        Ok((String::from_utf8_lossy(&s).into_owned(), p)).and_then(|(k, p)| {
                            p.sp()?;
                            Ok((k, p.nstring_text()?))
                        })
                    })?;
                    if items.len() > 30 {
                        return Err("too many ID fields".into());
                    }
                    Body::Id(items)
                }
            }
            "SORT" => {
                self.sp()?;
                self.sort(false)?
            }
            "THREAD" => {
                self.sp()?;
                self.thread(false)?
            }
            "GETQUOTA" => {
                self.sp()?;
                Body::GetQuota(self.astring_text()?)
            }
            "GETQUOTAROOT" => Body::GetQuotaRoot(arg(self)?),
            "SETQUOTA" => {
                // Refused whatever it says: quotas come from the config.
                self.i = self.b.len();
                Body::SetQuota
            }
            _ => return Err(format!("unknown command {name}")),
        })
    }

    fn sort(&mut self, uid: bool) -> R<Body> {
        let ret = self.search_return()?;
        let criteria = self.sort_criteria()?;
        self.sp()?;
        let charset = self.astring_text()?.to_ascii_uppercase();
        self.sp()?;
        let key = self.search_program()?;
        Ok(Body::Sort {
            uid,
            ret,
            criteria,
            charset,
            key,
        })
    }

    fn thread(&mut self, uid: bool) -> R<Body> {
        let alg = self.keyword()?;
        let algorithm = match alg.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            _ => return Err(format!("unknown thread algorithm {alg}")),
        };
        self.sp()?;
        let charset = self.astring_text()?.to_ascii_uppercase();
        self.sp()?;
        let key = self.search_program()?;
        Ok(Body::Thread {
            uid,
            algorithm,
            charset,
            key,
        })
    }
}

/// Parses one complete command.
pub fn command(bytes: &[u8]) -> Result<Command, ParseError> {
    let mut p = P { b: bytes, i: 0 };
    let tag = p.take_while(|b| is_atom_char(b) && b != b'+');
    if tag.is_empty() || p.peek() != Some(b' ') {
        return Err(ParseError {
            tag: None,
            message: "Missing or invalid tag".into(),
        });
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    p.i += 1;
    let result = p.keyword().and_then(|name| {
        let body = p.body(&name)?;
        p.end()?;
        Ok(body)
    });
    result
        .map(|body| Command {
            tag: tag.clone(),
            body,
        })
        .map_err(|message| ParseError {
            tag: Some(tag),
            message,
        })
}

/// The mechanism-independent part of reading an AUTHENTICATE response line:
/// `*` cancels.
pub fn is_cancel(line: &[u8]) -> bool {
    line == b"*"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Body {
        command(s.as_bytes())
            .unwrap_or_else(|e| panic!("{s}: {e:?}"))
            .body
    }

    #[test]
    fn commands() {
        assert_eq!(
            ok("a LOGIN \"bob\" {3}\r\npwd\r\n"),
            Body::Login {
                user: "bob".into(),
                pass: "pwd".into()
            }
        );
        assert!(matches!(
            ok(
                "a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>) (CHANGEDSINCE 5 VANISHED)\r\n"
            ),
            Body::Fetch {
                uid: true,
                changedsince: Some(5),
                vanished: true,
                ..
            }
        ));
        assert!(matches!(
            ok(
                "a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM x (SINCE 1-Jan-2020 NOT SEEN) 1:5\r\n"
            ),
            Body::Search { ret: Some(_), .. }
        ));
        assert!(matches!(
            ok("a APPEND Sent (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {3+}\r\nabc {2+}\r\nde\r\n"),
            Body::Append { messages, .. } if messages.len() == 2
        ));
        assert!(matches!(
            ok(
                "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1,3 5,7)))\r\n"
            ),
            Body::Select {
                qresync: Some(QresyncParams {
                    known_uids: Some(_),
                    seq_match: Some(_),
                    ..
                }),
                ..
            }
        ));
        assert!(matches!(
            ok("a LIST (SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (CHILDREN STATUS (MESSAGES))\r\n"),
            Body::List {
                options: ListOptions {
                    subscribed: true,
                    ret_children: true,
                    ret_status: Some(_),
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            ok("a UID STORE 1 (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Seen $Junk)\r\n"),
            Body::Store {
                uid: true,
                silent: true,
                unchangedsince: Some(3),
                mode: StoreMode::Add,
                ..
            }
        ));
        assert!(matches!(
            ok("a SORT (REVERSE DATE SUBJECT) UTF-8 ALL\r\n"),
            Body::Sort { .. }
        ));
        for bad in [
            "a FETCH\r\n",
            "a FETCH 0 FLAGS\r\n",
            "a SEARCH NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT ALL\r\n",
            "a LOGIN x\r\n",
            "a FROB\r\n",
            "a SELECT INBOX extra\r\n",
            "a APPEND x {5}\r\nab\r\n",
        ] {
            let e = command(bad.as_bytes()).expect_err(bad);
            assert_eq!(e.tag.as_deref(), Some("a"), "{bad}");
        }
        assert_eq!(command(b"\r\n").expect_err("empty").tag, None);
    }
}
