//! The IMAP command grammar (RFC 9051, RFC 3501 and the extensions mailc
//! offers) over one complete command as cut by the framer: the lexical
//! primitives and the dispatch by command name here, the larger grammars
//! in `fetch.rs`, `search.rs`, `store.rs` and `mailbox.rs`.

mod fetch;
mod mailbox;
mod search;
mod store;

use super::date::{day_exists, parse_date, parse_date_time};
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

    fn body(&mut self, name: &str) -> R<Body> {
        if let Some(body) = self.session_command(name)? {
            return Ok(body);
        }
        if let Some(body) = self.mailbox_command(name)? {
            return Ok(body);
        }
        match self.message_command(name)? {
            Some(body) => Ok(body),
            None => Err(format!("unknown command {name}")),
        }
    }

    /// Commands about the session: capabilities, login, extensions.
    fn session_command(&mut self, name: &str) -> R<Option<Body>> {
        Ok(Some(match name {
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
            _ => return Ok(None),
        }))
    }

    /// Commands on mailboxes as a whole, quotas included.
    fn mailbox_command(&mut self, name: &str) -> R<Option<Body>> {
        let arg = |p: &mut Self| -> R<String> {
            p.sp()?;
            p.mailbox()
        };
        Ok(Some(match name {
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
            "GETQUOTA" => {
                self.sp()?;
                Body::GetQuota(self.astring_text()?)
            }
            "GETQUOTAROOT" => Body::GetQuotaRoot(arg(self)?),
            "SETQUOTA" => {
                // Checked against RFC 9208 §4.1.4 (`quota-root-name SP
                // setquota-list`) so a malformed one is BAD; a well-formed
                // one is still refused: quotas come from the config.
                self.sp()?;
                self.astring()?;
                self.sp()?;
                self.paren_list(|p| {
                    p.atom()?;
                    p.sp()?;
                    p.number64()
                })?;
                Body::SetQuota
            }
            _ => return Ok(None),
        }))
    }

    /// Commands on the messages of the selected mailbox.
    fn message_command(&mut self, name: &str) -> R<Option<Body>> {
        Ok(Some(match name {
            "CHECK" => Body::Check,
            "CLOSE" => Body::Close,
            "UNSELECT" => Body::Unselect,
            "EXPUNGE" => Body::Expunge(None),
            "UID" => {
                self.sp()?;
                let sub = self.keyword()?;
                self.sp()?;
                if sub == "EXPUNGE" {
                    Body::Expunge(Some(self.seq_set()?))
                } else {
                    self.set_command(&sub, true)?
                        .ok_or_else(|| format!("unknown UID command {sub}"))?
                }
            }
            "SEARCH" | "FETCH" | "STORE" | "COPY" | "MOVE" | "SORT" | "THREAD" => {
                self.sp()?;
                return self.set_command(name, false);
            }
            _ => return Ok(None),
        }))
    }

    /// The commands that address messages by sequence number or, after
    /// `UID`, by UID (RFC 3501 §6.4.8), from their first argument on.
    fn set_command(&mut self, name: &str, uid: bool) -> R<Option<Body>> {
        Ok(Some(match name {
            "SEARCH" => self.search(uid)?,
            "FETCH" => self.fetch(uid)?,
            "STORE" => self.store(uid)?,
            "SORT" => self.sort(uid)?,
            "THREAD" => self.thread(uid)?,
            "COPY" | "MOVE" => {
                let set = self.seq_set()?;
                self.sp()?;
                let mailbox = self.mailbox()?;
                Body::Copy {
                    uid,
                    set,
                    mailbox,
                    is_move: name == "MOVE",
                }
            }
            _ => return Ok(None),
        }))
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
mod tests;
