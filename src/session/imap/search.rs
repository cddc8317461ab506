//! SEARCH keys (every key of RFC 3501 plus MODSEQ and WITHIN), SORT
//! (RFC 5256 with DISPLAYFROM/DISPLAYTO of RFC 5957) and THREAD
//! (ORDEREDSUBJECT and REFERENCES). Text keys match case-insensitively
//! against the raw and the decoded (RFC 2047, charsets, transfer
//! encodings) text, as mail-parser decodes it.

use mail_parser::{Address, HeaderValue, Message, MessageParser};

use super::CompactMeta;
use crate::proto::imap::{SearchKey, SortKey};

/// What a key is evaluated against.
pub struct Item<'a> {
    pub seq: u32,
    pub meta: &'a CompactMeta,
    pub recent: bool,
}

pub struct Context {
    pub max_seq: u32,
    pub max_uid: u32,
    pub now: i64,
}

/// Whether evaluating the key needs the message content.
pub fn needs_content(key: &SearchKey) -> bool {
    use SearchKey::*;
    match key {
        Bcc(_) | Body(_) | Cc(_) | From(_) | Header(..) | Subject(_) | Text(_) | To(_)
        | SentBefore(_) | SentOn(_) | SentSince(_) => true,
        Not(k) => needs_content(k),
        Or(a, b) => needs_content(a) || needs_content(b),
        And(ks) => ks.iter().any(needs_content),
        _ => false,
    }
}

/// Whether the key looks at the body (BODY, TEXT); the others need the
/// header only.
pub fn needs_body(key: &SearchKey) -> bool {
    use SearchKey::*;
    match key {
        Body(_) | Text(_) => true,
        Not(k) => needs_body(k),
        Or(a, b) => needs_body(a) || needs_body(b),
        And(ks) => ks.iter().any(needs_body),
        _ => false,
    }
}

/// The header section of a message (up to and including the blank line).
pub fn header_part(data: &[u8]) -> &[u8] {
    if data.starts_with(b"\r\n") {
        return &data[..2];
    }
    match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &data[..p + 4],
        None => data,
    }
}

fn has_flag(meta: &CompactMeta, flag: &str) -> bool {
    meta.flags.has(flag)
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn value_text(v: &HeaderValue) -> String {
    fn addr_text(out: &mut String, a: &mail_parser::Addr) {
        if let Some(n) = &a.name {
            out.push_str(n);
            out.push(' ');
        }
        if let Some(x) = &a.address {
            out.push('<');
            out.push_str(x);
            out.push_str("> ");
        }
    }
    match v {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(" "),
        HeaderValue::Address(Address::List(l)) => {
            let mut s = String::new();
            for a in l {
                addr_text(&mut s, a);
            }
            s
        }
        HeaderValue::Address(Address::Group(gs)) => {
            let mut s = String::new();
            for g in gs {
                if let Some(n) = &g.name {
                    s.push_str(n);
                    s.push(' ');
                }
                for a in &g.addresses {
                    addr_text(&mut s, a);
                }
            }
            s
        }
        HeaderValue::DateTime(d) => d.to_rfc822(),
        _ => String::new(),
    }
}

/// A message for the content keys: header fields are matched on the raw
/// text first; mail-parser (decoding encoded words, charsets and transfer
/// encodings) runs only when that cannot decide.
pub struct Content<'x> {
    raw: &'x [u8],
    msg: std::cell::OnceCell<Option<Message<'x>>>,
}

impl<'x> Content<'x> {
    pub fn new(raw: &'x [u8]) -> Content<'x> {
        Content {
            raw,
            msg: std::cell::OnceCell::new(),
        }
    }

    fn parsed(&self) -> Option<&Message<'x>> {
        self.msg
            .get_or_init(|| MessageParser::default().parse(self.raw))
            .as_ref()
    }

    fn header_matches(&self, name: &str, needle: &str) -> bool {
        // Raw first: a plain match, or no field that could decode into one.
        let header = header_part(self.raw);
        let mut any = false;
        let mut encoded = false;
        for (n, v) in super::mime::fields(header) {
            if !n.eq_ignore_ascii_case(name) {
                continue;
            }
            any = true;
            if contains_ci(&v, needle) {
                return true;
            }
            encoded |= v.contains("=?") || !v.is_ascii();
        }
        if !any {
            return false;
        }
        if needle.is_empty() {
            return true;
        }
        if !encoded {
            return false;
        }
        let Some(msg) = self.parsed() else {
            return false;
        };
        msg.headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .any(|h| contains_ci(&value_text(&h.value), needle))
    }

    fn body_matches(&self, needle: &str) -> bool {
        let Some(msg) = self.parsed() else {
            return false;
        };
        let mut parts = msg.text_bodies().chain(msg.html_bodies());
        if parts.any(|p| p.text_contents().is_some_and(|t| contains_ci(t, needle))) {
            return true;
        }
        let start = msg.root_part().offset_body as usize;
        self.raw
            .get(start..)
            .is_some_and(|b| contains_ci(&String::from_utf8_lossy(b), needle))
    }

    fn text_matches(&self, needle: &str) -> bool {
        let header = String::from_utf8_lossy(header_part(self.raw));
        if contains_ci(&header, needle) {
            return true;
        }
        if let Some(msg) = self.parsed()
            && msg
                .headers()
                .iter()
                .any(|h| contains_ci(&value_text(&h.value), needle))
        {
            return true;
        }
        self.body_matches(needle)
    }

    /// The first Date field, parsed (RFC 5322 with its obsolete forms).
    pub fn sent(&self) -> Option<SentDate> {
        super::mime::fields(header_part(self.raw))
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Date"))
            .and_then(|(_, v)| parse_sent_date(&v))
    }

    /// A header field's addresses, as ENVELOPE gives them.
    fn addresses(&self, name: &str) -> Vec<super::mime::Addr> {
        super::mime::address_field(&super::mime::fields(header_part(self.raw)), name)
    }

    pub fn subject(&self) -> String {
        self.parsed()
            .and_then(|m| m.subject())
            .unwrap_or("")
            .to_string()
    }

    /// The sort keys of the first address of From, To or Cc: its
    /// addr-mailbox (RFC 5256; for a group, the group name, which is the
    /// mailbox of ENVELOPE's group start) and its display name (RFC 5957:
    /// the decoded display name, else the addr-spec), both as collation
    /// keys.
    fn first_addr(&self, which: SortKey) -> (String, String) {
        let name = match which {
            SortKey::From | SortKey::DisplayFrom => "From",
            SortKey::To | SortKey::DisplayTo => "To",
            _ => "Cc",
        };
        let Some((display, _, mailbox, host)) = self.addresses(name).into_iter().next() else {
            return (String::new(), String::new());
        };
        let mailbox = mailbox.unwrap_or_default();
        let display = match display.filter(|d| !d.trim().is_empty()) {
            Some(d) => decode_words(&d),
            None => match host {
                Some(h) => format!("{mailbox}@{h}"),
                None => mailbox.clone(),
            },
        };
        (collation_key(&mailbox), collation_key(&display))
    }

    pub fn message_id(&self) -> Option<String> {
        self.parsed()?.message_id().map(str::to_string)
    }

    /// References then In-Reply-To message IDs.
    pub fn references(&self) -> Vec<String> {
        let Some(msg) = self.parsed() else {
            return Vec::new();
        };
        let list = |v: &HeaderValue| -> Vec<String> {
            match v {
                HeaderValue::Text(t) => vec![t.to_string()],
                HeaderValue::TextList(l) => l.iter().map(|s| s.to_string()).collect(),
                _ => Vec::new(),
            }
        };
        let mut refs = list(msg.references());
        if refs.is_empty() {
            refs = list(msg.in_reply_to());
        }
        refs
    }
}

fn day(t: i64) -> i64 {
    t.div_euclid(86400)
}

/// Evaluates a key. `content` is `Some` when [`needs_content`] said so.
pub fn matches(key: &SearchKey, it: &Item, content: Option<&Content>, cx: &Context) -> bool {
    use SearchKey::*;
    let m = it.meta;
    // SENT* compare the date as written in the Date field, its zone
    // disregarded (RFC 3501 section 6.4.4). Without a usable Date field
    // the sent date is the epoch, as Dovecot 2.3 takes it (RFC 3501 does
    // not say; SORT uses INTERNALDATE instead, RFC 5256).
    let sent = || content.and_then(Content::sent).map_or(0, |d| d.day);
    match key {
        All => true,
        Answered => has_flag(m, "\\Answered"),
        Unanswered => !has_flag(m, "\\Answered"),
        Deleted => has_flag(m, "\\Deleted"),
        Undeleted => !has_flag(m, "\\Deleted"),
        Draft => has_flag(m, "\\Draft"),
        Undraft => !has_flag(m, "\\Draft"),
        Flagged => has_flag(m, "\\Flagged"),
        Unflagged => !has_flag(m, "\\Flagged"),
        Seen => has_flag(m, "\\Seen"),
        Unseen => !has_flag(m, "\\Seen"),
        Keyword(k) => has_flag(m, k),
        Unkeyword(k) => !has_flag(m, k),
        Recent => it.recent,
        New => it.recent && !has_flag(m, "\\Seen"),
        Old => !it.recent,
        Before(d) => day(m.internal_date) < *d,
        On(d) => day(m.internal_date) == *d,
        Since(d) => day(m.internal_date) >= *d,
        SentBefore(d) => sent() < *d,
        SentOn(d) => sent() == *d,
        SentSince(d) => sent() >= *d,
        Larger(n) => m.size > *n,
        Smaller(n) => m.size < *n,
        Uid(set) => set.contains(m.uid, cx.max_uid),
        Seq(set) => set.contains(it.seq, cx.max_seq),
        ModSeq(n) => m.modseq >= *n,
        Younger(s) => m.internal_date >= cx.now - *s as i64,
        Older(s) => m.internal_date <= cx.now - *s as i64,
        Not(k) => !matches(k, it, content, cx),
        Or(a, b) => matches(a, it, content, cx) || matches(b, it, content, cx),
        And(ks) => ks.iter().all(|k| matches(k, it, content, cx)),
        Bcc(s) => content.is_some_and(|c| c.header_matches("Bcc", s)),
        Cc(s) => content.is_some_and(|c| c.header_matches("Cc", s)),
        From(s) => content.is_some_and(|c| c.header_matches("From", s)),
        To(s) => content.is_some_and(|c| c.header_matches("To", s)),
        Subject(s) => content.is_some_and(|c| c.header_matches("Subject", s)),
        Header(f, s) => content.is_some_and(|c| c.header_matches(f, s)),
        Body(s) => content.is_some_and(|c| c.body_matches(s)),
        Text(s) => content.is_some_and(|c| c.text_matches(s)),
    }
}

/// The base subject of RFC 5256 section 2.1, in its own case (compare
/// [`collation_key`]s of it). `s` has its encoded words decoded already.
pub fn base_subject(s: &str) -> String {
    // (1) Runs of whitespace become one space.
    let mut s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        // (2) Trailers: "(fwd)" and whitespace.
        loop {
            let t = s.trim_end();
            let cut = t.len().checked_sub(5).filter(|&c| t.is_char_boundary(c));
            match cut {
                Some(c) if t[c..].eq_ignore_ascii_case("(fwd)") => s = t[..c].to_string(),
                _ => {
                    s.truncate(t.len());
                    break;
                }
            }
        }
        // (3) Leaders, (4) a blob that leaves something, (5) repeated.
        loop {
            let before = s.len();
            loop {
                let t = s.trim_start();
                match strip_leader(t) {
                    Some(rest) => s = rest.to_string(),
                    None => {
                        s = t.to_string();
                        break;
                    }
                }
            }
            if let Some(rest) = strip_blob(&s)
                && !rest.is_empty()
            {
                s = rest.to_string();
            }
            if s.len() == before {
                break;
            }
        }
        // (6) "[fwd: ...]" around the whole subject: unwrap, again from (2).
        let wrapped = s.len() >= 6
            && s.is_char_boundary(5)
            && s[..5].eq_ignore_ascii_case("[fwd:")
            && s.ends_with(']');
        if !wrapped {
            return s;
        }
        s = s[5..s.len() - 1].to_string();
    }
}

/// subj-blob (`[` no brackets `]` then whitespace): what follows it.
fn strip_blob(t: &str) -> Option<&str> {
    let inner = t.strip_prefix('[')?;
    let end = inner.find([']', '['])?;
    if inner.as_bytes()[end] != b']' {
        return None;
    }
    Some(inner[end + 1..].trim_start())
}

/// subj-leader without the whitespace alternative: blobs, then `re`,
/// `fw` or `fwd`, whitespace, an optional blob and a colon.
fn strip_leader(t: &str) -> Option<&str> {
    let mut p = t;
    while let Some(r) = strip_blob(p) {
        p = r;
    }
    for word in ["re", "fwd", "fw"] {
        let Some(head) = p.get(..word.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(word) {
            continue;
        }
        let mut rest = p[word.len()..].trim_start();
        if let Some(r) = strip_blob(rest) {
            rest = r;
        }
        if let Some(r) = rest.strip_prefix(':') {
            return Some(r);
        }
    }
    None
}

/// A string as the i;unicode-casemap collation compares it (RFC 5051,
/// the collation of SORT per RFC 5256 section 3 with I18NLEVEL): upper
/// case (for titlecase), then compatibility decomposition; such keys
/// compare as their UTF-8 octets. So `é` sorts with `E`, and `[` after
/// the letters.
pub fn collation_key(s: &str) -> String {
    let upper: String = s.chars().flat_map(char::to_uppercase).collect();
    icu_normalizer::DecomposingNormalizerBorrowed::new_nfkd()
        .normalize(&upper)
        .into_owned()
}

/// RFC 2047 encoded words of a display name decoded.
fn decode_words(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    let header = format!("Subject: {s}\r\n\r\n");
    MessageParser::default()
        .parse(header.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| s.to_string())
}

/// A parsed Date field: the day it names (days since 1970-01-01, the
/// zone disregarded) and the instant (Unix time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentDate {
    pub day: i64,
    pub unix: i64,
}

/// The offset of a zone, in minutes: `+hhmm`/`-hhmm` or an obsolete
/// name (RFC 5322 section 4.3; military letters and unknown names are
/// `-0000`, "no information").
fn zone_minutes(z: &str) -> Option<i64> {
    let z = z.trim();
    if let Some(sign) = z.chars().next().filter(|c| *c == '+' || *c == '-') {
        let digits = &z[1..];
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let h: i64 = digits[..2].parse().ok()?;
        let m: i64 = digits[2..].parse().ok()?;
        if m > 59 {
            return None;
        }
        let v = h * 60 + m;
        return Some(if sign == '-' { -v } else { v });
    }
    if !z.chars().all(|c| c.is_ascii_alphabetic()) || z.is_empty() {
        return None;
    }
    Some(match z.to_ascii_uppercase().as_str() {
        "UT" | "GMT" | "Z" => 0,
        "EDT" => -4 * 60,
        "EST" | "CDT" => -5 * 60,
        "CST" | "MDT" => -6 * 60,
        "MST" | "PDT" => -7 * 60,
        "PST" => -8 * 60,
        _ => 0,
    })
}

/// Parses a Date field: `[dow ","] day month year hh:mm[:ss] [zone]`,
/// with comments, two- and three-digit years (RFC 5322 section 4.3:
/// 00-49 are 2000-2049, 50-999 add 1900) and obsolete zone names. A
/// missing zone is taken as `-0000`. `None` when it is not a date.
pub fn parse_sent_date(value: &str) -> Option<SentDate> {
    // Comments out (no nesting needed for dates), commas as spaces.
    let mut text = String::with_capacity(value.len());
    let mut depth = 0u32;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => text.push(' '),
            _ if depth == 0 => text.push(c),
            _ => {}
        }
    }
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
    {
        // Day of week (not checked against the date, RFC 5322 3.3).
        words.remove(0);
    }
    let [day, month, year, time, rest @ ..] = &words[..] else {
        return None;
    };
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = month.to_ascii_lowercase();
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| month.len() >= 3 && month.starts_with(m))? as u32
        + 1;
    if !year.bytes().all(|b| b.is_ascii_digit()) || year.is_empty() || year.len() > 4 {
        return None;
    }
    let digits = year.len();
    let mut year: i64 = year.parse().ok()?;
    match digits {
        2 if year < 50 => year += 2000,
        2 | 3 => year += 1900,
        _ => {}
    }
    let mut hms = time.split(':');
    let h: i64 = hms.next()?.parse().ok().filter(|h| (0..=23).contains(h))?;
    let m: i64 = hms.next()?.parse().ok().filter(|m| (0..=59).contains(m))?;
    let sec: i64 = match hms.next() {
        Some(x) => x.parse().ok().filter(|x| (0..=60).contains(x))?,
        None => 0,
    };
    if hms.next().is_some() {
        return None;
    }
    let zone = match rest.first() {
        Some(z) => zone_minutes(z)?,
        None => 0,
    };
    let days = crate::proto::imap::date::days_from_civil(year, month, day);
    let unix = days * 86400 + h * 3600 + m * 60 + sec - zone * 60;
    Some(SentDate { day: days, unix })
}

/// Whether extracting the base subject removed a reply or forward marker.
pub fn is_reply(subject: &str) -> bool {
    let plain = subject
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let base = base_subject(subject).to_lowercase();
    base != plain
        && (plain.starts_with("re")
            || plain.starts_with("fw")
            || plain.ends_with("(fwd)")
            || plain.starts_with("[fwd:"))
}

/// A message's sort values.
pub struct SortValues {
    pub seq: u32,
    pub uid: u32,
    pub arrival: i64,
    pub date: i64,
    pub size: u64,
    pub subject: String,
    pub from: (String, String),
    pub to: (String, String),
    pub cc: (String, String),
    pub message_id: Option<String>,
    pub references: Vec<String>,
    /// The subject had a reply or forward marker (`Re:`, `Fwd:`).
    pub reply: bool,
}

impl SortValues {
    pub fn new(seq: u32, meta: &CompactMeta, content: &Content) -> SortValues {
        SortValues {
            seq,
            uid: meta.uid,
            arrival: meta.internal_date,
            date: content.sent().map_or(meta.internal_date, |d| d.unix),
            size: meta.size,
            subject: collation_key(&base_subject(&content.subject())),
            reply: is_reply(&content.subject()),
            from: content.first_addr(SortKey::From),
            to: content.first_addr(SortKey::To),
            cc: content.first_addr(SortKey::Cc),
            message_id: content.message_id(),
            references: content.references(),
        }
    }
}

pub fn sort(items: &mut [SortValues], criteria: &[(bool, SortKey)]) {
    items.sort_by(|a, b| {
        for &(reverse, key) in criteria {
            let o = match key {
                SortKey::Arrival => a.arrival.cmp(&b.arrival),
                SortKey::Date => a.date.cmp(&b.date),
                SortKey::Size => a.size.cmp(&b.size),
                SortKey::Subject => a.subject.cmp(&b.subject),
                SortKey::From => a.from.0.cmp(&b.from.0),
                SortKey::To => a.to.0.cmp(&b.to.0),
                SortKey::Cc => a.cc.0.cmp(&b.cc.0),
                SortKey::DisplayFrom => a.from.1.cmp(&b.from.1),
                SortKey::DisplayTo => a.to.1.cmp(&b.to.1),
            };
            let o = if reverse { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        a.seq.cmp(&b.seq)
    });
}

/// A thread tree node: a message (index into the items) or an empty
/// container, with children.
struct Node {
    item: Option<usize>,
    children: Vec<usize>,
    parent: Option<usize>,
}

fn render(nodes: &[Node], id: usize, items: &[SortValues], uid: bool, out: &mut String) {
    let n = &nodes[id];
    let mut first = true;
    if let Some(i) = n.item {
        let v = if uid { items[i].uid } else { items[i].seq };
        out.push_str(&v.to_string());
        first = false;
    }
    match n.children.len() {
        0 => {}
        1 if n.item.is_some() => {
            out.push(' ');
            render(nodes, n.children[0], items, uid, out);
        }
        _ => {
            if !first {
                out.push(' ');
            }
            for &c in &n.children {
                out.push('(');
                render(nodes, c, items, uid, out);
                out.push(')');
            }
        }
    }
}

fn earliest(nodes: &[Node], id: usize, items: &[SortValues]) -> (i64, u32) {
    let n = &nodes[id];
    if let Some(i) = n.item {
        return (items[i].date, items[i].seq);
    }
    n.children
        .iter()
        .map(|&c| earliest(nodes, c, items))
        .min()
        .unwrap_or((i64::MAX, u32::MAX))
}

/// THREAD=ORDEREDSUBJECT.
pub fn thread_ordered_subject(items: &[SortValues], uid: bool) -> String {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        items[a]
            .subject
            .cmp(&items[b].subject)
            .then(items[a].date.cmp(&items[b].date))
            .then(items[a].seq.cmp(&items[b].seq))
    });
    let mut threads: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match threads.last_mut() {
            Some(t) if items[t[0]].subject == items[i].subject => t.push(i),
            _ => threads.push(vec![i]),
        }
    }
    threads.sort_by_key(|t| (items[t[0]].date, items[t[0]].seq));
    let num = |i: usize| if uid { items[i].uid } else { items[i].seq };
    let mut out = String::new();
    for t in threads {
        out.push('(');
        out.push_str(&num(t[0]).to_string());
        match t.len() {
            1 => {}
            2 => out.push_str(&format!(" {}", num(t[1]))),
            _ => {
                out.push(' ');
                for &c in &t[1..] {
                    out.push_str(&format!("({})", num(c)));
                }
            }
        }
        out.push(')');
    }
    out
}

/// Step 5 of RFC 5256 REFERENCES: threads of the root set whose base
/// subjects are equal are gathered under one parent.
fn merge_by_subject(nodes: &mut Vec<Node>, top: Vec<usize>, items: &[SortValues]) -> Vec<usize> {
    use std::collections::HashMap;
    let subject = |nodes: &Vec<Node>, n: usize| -> Option<String> {
        let i = nodes[n]
            .item
            .or_else(|| nodes[n].children.iter().find_map(|&c| nodes[c].item))?;
        (!items[i].subject.is_empty()).then(|| items[i].subject.clone())
    };
    let dummy = |nodes: &Vec<Node>, n: usize| nodes[n].item.is_none();
    let reply = |nodes: &Vec<Node>, n: usize| nodes[n].item.is_some_and(|i| items[i].reply);
    // 5.B/5.C: the preferred container per subject: a dummy, else a
    // non-reply.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &top {
        let Some(subj) = subject(nodes, r) else {
            continue;
        };
        match table.get(&subj) {
            None => {
                table.insert(subj, r);
            }
            Some(&old) => {
                if (!dummy(nodes, old) && dummy(nodes, r))
                    || (reply(nodes, old) && !reply(nodes, r) && !dummy(nodes, r))
                {
                    table.insert(subj, r);
                }
            }
        }
    }
    // 5.E: merge.
    let mut out: Vec<usize> = Vec::new();
    let mut replaced: HashMap<usize, usize> = HashMap::new();
    for &r in &top {
        let Some(subj) = subject(nodes, r) else {
            out.push(r);
            continue;
        };
        let t = table[&subj];
        if t == r {
            out.push(r);
            continue;
        }
        let adopt = |nodes: &mut Vec<Node>, parent: usize, child: usize| {
            nodes[child].parent = Some(parent);
            nodes[parent].children.push(child);
        };
        if dummy(nodes, t) && dummy(nodes, r) {
            let children = std::mem::take(&mut nodes[r].children);
            for c in children {
                adopt(nodes, t, c);
            }
        } else if dummy(nodes, t) || (!reply(nodes, t) && reply(nodes, r)) {
            adopt(nodes, t, r);
        } else {
            // Neither is a dummy and neither is a reply of the other: a new
            // dummy holds both, in the table message's place.
            nodes.push(Node {
                item: None,
                children: Vec::new(),
                parent: None,
            });
            let d = nodes.len() - 1;
            adopt(nodes, d, t);
            adopt(nodes, d, r);
            replaced.insert(t, d);
            table.insert(subj, d);
        }
    }
    out.into_iter()
        .map(|n| replaced.get(&n).copied().unwrap_or(n))
        .collect()
}

/// The containers of REFERENCES threading (RFC 5256 §2.2 steps 1–2): one
/// per Message-ID seen, linked by the References of each message.
fn link_references(items: &[SortValues]) -> Vec<Node> {
    use std::collections::HashMap;
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut container = |id: &str, nodes: &mut Vec<Node>| -> usize {
        *by_id.entry(id.to_string()).or_insert_with(|| {
            nodes.push(Node {
                item: None,
                children: Vec::new(),
                parent: None,
            });
            nodes.len() - 1
        })
    };
    let is_ancestor = |nodes: &[Node], anc: usize, mut n: usize| -> bool {
        let mut steps = 0;
        loop {
            if n == anc {
                return true;
            }
            match nodes[n].parent {
                Some(p) if steps < 10_000 => {
                    n = p;
                    steps += 1;
                }
                _ => return false,
            }
        }
    };
    let link = |nodes: &mut Vec<Node>, parent: usize, child: usize| {
        if nodes[child].parent.is_some() || is_ancestor(nodes, child, parent) {
            return;
        }
        nodes[child].parent = Some(parent);
        nodes[parent].children.push(child);
    };
    for (i, it) in items.iter().enumerate() {
        let me = match &it.message_id {
            Some(id) => {
                let c = container(id, &mut nodes);
                if nodes[c].item.is_some() {
                    // A duplicate Message-ID: a message of its own.
                    nodes.push(Node {
                        item: None,
                        children: Vec::new(),
                        parent: None,
                    });
                    nodes.len() - 1
                } else {
                    c
                }
            }
            None => {
                nodes.push(Node {
                    item: None,
                    children: Vec::new(),
                    parent: None,
                });
                nodes.len() - 1
            }
        };
        nodes[me].item = Some(i);
        let refs: Vec<usize> = it
            .references
            .iter()
            .map(|r| container(r, &mut nodes))
            .collect();
        for w in refs.windows(2) {
            link(&mut nodes, w[0], w[1]);
        }
        if let Some(&last) = refs.last()
            && last != me
        {
            // The message's own parent is the last reference, replacing a
            // guessed one.
            if let Some(old) = nodes[me].parent.take() {
                nodes[old].children.retain(|&c| c != me);
            }
            link(&mut nodes, last, me);
        }
    }
    nodes
}

/// Prunes empty containers, promoting their children (step 4).
fn prune(nodes: &mut Vec<Node>, id: usize, root: bool) -> Vec<usize> {
    let children = std::mem::take(&mut nodes[id].children);
    let mut kept = Vec::new();
    for c in children {
        kept.extend(prune(nodes, c, false));
    }
    if nodes[id].item.is_none() {
        if kept.is_empty() {
            return Vec::new();
        }
        if !root || kept.len() == 1 {
            return kept;
        }
    }
    nodes[id].children = kept;
    vec![id]
}

/// THREAD=REFERENCES (RFC 5256 section 2.2).
pub fn thread_references(items: &[SortValues], uid: bool) -> String {
    let mut nodes = link_references(items);
    let roots: Vec<usize> = (0..nodes.len())
        .filter(|&n| nodes[n].parent.is_none())
        .collect();
    let mut top = Vec::new();
    for r in roots {
        top.extend(prune(&mut nodes, r, true));
    }
    let mut top = merge_by_subject(&mut nodes, top, items);
    // Siblings by date.
    for id in 0..nodes.len() {
        let mut ch = std::mem::take(&mut nodes[id].children);
        ch.sort_by_key(|&c| earliest(&nodes, c, items));
        nodes[id].children = ch;
    }
    top.sort_by_key(|&c| earliest(&nodes, c, items));
    let mut out = String::new();
    for t in top {
        out.push('(');
        render(&nodes, t, items, uid, &mut out);
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (subject, base) in [
            ("Re: RE: [list] Fwd: Hello  World (fwd)", "Hello World"),
            ("[fwd: x]", "x"),
            ("Re[2]: y", "y"),
            ("Re: [tag] Fwd: x (fwd)", "x"),
            ("RE: re: Re[2]: x", "x"),
            ("[Fwd: x]", "x"),
            ("  Fwd:   x   (fwd) (FWD)  ", "x"),
            // Blobs alone: the last one stays (step 4 needs a rest).
            ("[a] [b]", "[b]"),
            ("[a] [b] c", "c"),
            // A blob before a Re: goes with it (subj-leader).
            ("[list] Re: x", "x"),
            // Nested [fwd: ...] after leaders, and its own leaders.
            ("Re: [Fwd: Re: x (fwd)]", "x"),
            // Not leaders: no colon, or a word that only starts alike.
            ("Re x", "Re x"),
            ("Really: x", "Really: x"),
            ("Fwdx: y", "Fwdx: y"),
            ("re:", ""),
            ("", ""),
            ("(fwd)", ""),
            // An unclosed blob is text.
            ("[unclosed Re: x", "[unclosed Re: x"),
            ("été", "été"),
        ] {
            assert_eq!(base_subject(subject), base, "{subject:?}");
        }
    }

    #[test]
    fn collation_keys() {
        // i;unicode-casemap: case folded to upper, accents decomposed.
        assert_eq!(collation_key("été"), "E\u{301}TE\u{301}");
        assert!(collation_key("été") < collation_key("GROUP"));
        assert!(collation_key("display") < collation_key("été"));
        assert!(collation_key("x") < collation_key("[b]"));
        assert_eq!(collation_key("Straße"), "STRASSE");
        assert_eq!(collation_key("ﬁle"), "FILE");
    }

    fn sent(s: &str) -> Option<(i64, i64)> {
        parse_sent_date(s).map(|d| (d.day, d.unix))
    }

    #[test]
    fn sent_dates() {
        let day = crate::proto::imap::date::days_from_civil;
        // The day as written; the instant in UTC.
        assert_eq!(
            sent("Thu, 3 Dec 2026 01:00:00 +1400"),
            Some((day(2026, 12, 3), day(2026, 12, 2) * 86400 + 11 * 3600))
        );
        assert_eq!(
            sent("Tue, 1 Dec 2026 23:00:00 -1200"),
            Some((day(2026, 12, 1), day(2026, 12, 2) * 86400 + 11 * 3600))
        );
        // Obsolete zone, no seconds, no day of week.
        assert_eq!(
            sent("1 Dec 2026 21:30 EST"),
            Some((
                day(2026, 12, 1),
                day(2026, 12, 2) * 86400 + 2 * 3600 + 30 * 60
            ))
        );
        assert_eq!(
            sent("1 Dec 2026 21:30 PDT").map(|d| d.1 % 86400),
            Some(4 * 3600 + 30 * 60)
        );
        // Two- and three-digit years; a comment; a missing zone is -0000.
        assert_eq!(
            sent("Fri, 13 Nov 98 23:59:59 GMT (Greenwich)"),
            Some((day(1998, 11, 13), day(1998, 11, 13) * 86400 + 86399))
        );
        assert_eq!(
            sent("1 Jan 49 00:00 +0000").map(|d| d.0),
            Some(day(2049, 1, 1))
        );
        assert_eq!(
            sent("1 Jan 50 00:00 +0000").map(|d| d.0),
            Some(day(1950, 1, 1))
        );
        assert_eq!(
            sent("1 Jan 104 00:00 +0000").map(|d| d.0),
            Some(day(2004, 1, 1))
        );
        assert_eq!(sent("1 Jan 2004 00:00").map(|d| d.0), Some(day(2004, 1, 1)));
        // Military zones and unknown names say nothing: -0000.
        assert_eq!(sent("1 Jan 2004 10:00 Z").map(|d| d.1 % 86400), Some(36000));
        assert_eq!(sent("1 Jan 2004 10:00 Q").map(|d| d.1 % 86400), Some(36000));
        // Full month names, a comma after the day, lower case.
        assert_eq!(
            sent("Monday, 30 november 2026 08:00:00 +0000").map(|d| d.0),
            Some(day(2026, 11, 30))
        );
        for bad in [
            "yesterday at noon",
            "",
            "32 Jan 2026 10:00 +0000",
            "1 Foo 2026 10:00 +0000",
            "1 Jan 2026 24:00 +0000",
            "1 Jan 2026 10:60 +0000",
            "1 Jan 2026 10:00 +01",
            "1 Jan 2026 10:00 +0199",
            "1 Jan 20260 10:00 +0000",
            "1 Jan 2026",
            "1 Jan 2026 10:00:00:00 +0000",
        ] {
            assert_eq!(sent(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// RFC 5256: the base subject has no leader, trailer or wrapper
        /// left, so extracting it again changes nothing.
        #[test]
        fn base_subject_is_idempotent(s in "(( |Re|RE|re|Fwd|FW|fw|:|\\[|\\]|\\(fwd\\)|x|y|é|\\[tag\\]|\\[fwd:)){0,12}") {
            let once = base_subject(&s);
            proptest::prop_assert_eq!(base_subject(&once), once.clone(), "{:?}", s);
            proptest::prop_assert!(!once.starts_with(' ') && !once.ends_with(' '));
        }

        /// Any text: no panic, the result is a substring of the
        /// whitespace-normalised subject, and idempotent.
        #[test]
        fn base_subject_any_text(s in "\\PC{0,40}") {
            let once = base_subject(&s);
            let norm = s.split_whitespace().collect::<Vec<_>>().join(" ");
            proptest::prop_assert!(norm.contains(&once), "{:?} -> {:?}", s, once);
            proptest::prop_assert_eq!(base_subject(&once), once);
        }

        /// A date written in RFC 5322 form parses back to its day and,
        /// with its zone, to its instant.
        #[test]
        fn sent_date_round_trip(
            y in 1970i64..2100, mo in 1u32..=12, d in 1u32..=28,
            h in 0i64..24, mi in 0i64..60, s in 0i64..60,
            zh in 0i64..15, zm in proptest::sample::select(vec![0i64, 30, 45]), neg: bool,
        ) {
            const M: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let sign = if neg { '-' } else { '+' };
            let text = format!("Mon, {d} {} {y} {h:02}:{mi:02}:{s:02} {sign}{zh:02}{zm:02}", M[mo as usize - 1]);
            let day = crate::proto::imap::date::days_from_civil(y, mo, d);
            let zone = (zh * 60 + zm) * if neg { -1 } else { 1 };
            let want = SentDate { day, unix: day * 86400 + h * 3600 + mi * 60 + s - zone * 60 };
            proptest::prop_assert_eq!(parse_sent_date(&text), Some(want));
        }

        /// Arbitrary text never panics the date parser.
        #[test]
        fn sent_date_any_text(s in "\\PC{0,60}") {
            let _ = parse_sent_date(&s);
        }
    }

    fn sv(seq: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> SortValues {
        SortValues {
            seq,
            uid: seq + 100,
            arrival: date,
            date,
            size: 0,
            subject: base_subject(subject),
            from: Default::default(),
            to: Default::default(),
            cc: Default::default(),
            message_id: Some(id.into()),
            references: refs.iter().map(|s| s.to_string()).collect(),
            reply: is_reply(subject),
        }
    }

    #[test]
    fn threads() {
        let items = vec![
            sv(1, 10, "a", "m1", &[]),
            sv(2, 20, "Re: a", "m2", &["m1"]),
            sv(3, 30, "Re: a", "m3", &["m1"]),
            sv(4, 5, "b", "m4", &[]),
            sv(5, 40, "Re: a", "m5", &["m1", "m2"]),
        ];
        assert_eq!(thread_references(&items, false), "(4)(1 (2 5)(3))");
        // Step 5: a reply whose references are lost joins its thread by
        // subject.
        let mut more: Vec<SortValues> = vec![
            sv(1, 10, "a", "m1", &[]),
            sv(2, 20, "Re: a", "m2", &["m1"]),
            sv(4, 5, "b", "m4", &[]),
        ];
        more.push(sv(6, 50, "Re: b", "m6", &[]));
        assert_eq!(thread_references(&more, false), "(4 6)(1 2)");
        // Two non-replies with one subject: a dummy parent holds both.
        let same = vec![sv(1, 10, "x", "n1", &[]), sv(2, 20, "x", "n2", &[])];
        assert_eq!(thread_references(&same, false), "((1)(2))");
        assert_eq!(thread_ordered_subject(&items, false), "(4)(1 (2)(3)(5))");
        assert_eq!(thread_references(&items, true), "(104)(101 (102 105)(103))");
    }
}
