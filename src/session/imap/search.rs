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

    /// The Date header as Unix time.
    pub fn sent(&self) -> Option<i64> {
        self.parsed()?.date().map(|d| d.to_timestamp())
    }

    pub fn subject(&self) -> String {
        self.parsed()
            .and_then(|m| m.subject())
            .unwrap_or("")
            .to_string()
    }

    fn first_addr(&self, which: SortKey) -> (String, String) {
        let Some(msg) = self.parsed() else {
            return (String::new(), String::new());
        };
        let a = match which {
            SortKey::From | SortKey::DisplayFrom => msg.from(),
            SortKey::To | SortKey::DisplayTo => msg.to(),
            _ => msg.cc(),
        };
        let first = a.and_then(|a| a.first());
        let mailbox = first
            .and_then(|a| a.address.as_deref())
            .map(|x| x.split('@').next().unwrap_or("").to_lowercase())
            .unwrap_or_default();
        let display = first
            .and_then(|a| a.name.as_deref().or(a.address.as_deref()))
            .unwrap_or("")
            .to_lowercase();
        (mailbox, display)
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
    let sent = || content.and_then(Content::sent).unwrap_or(m.internal_date);
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
        SentBefore(d) => day(sent()) < *d,
        SentOn(d) => day(sent()) == *d,
        SentSince(d) => day(sent()) >= *d,
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

/// The base subject of RFC 5256 section 2.1 (lower-cased).
pub fn base_subject(s: &str) -> String {
    let mut s = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    loop {
        let before = s.clone();
        // Trailing "(fwd)".
        while let Some(t) = s.strip_suffix("(fwd)") {
            s = t.trim_end().to_string();
        }
        // Leading "re:", "fw:", "fwd:", "[blob]" sequences.
        loop {
            let t = s.trim_start();
            let mut done = true;
            for p in ["re", "fwd", "fw"] {
                if let Some(rest) = t.strip_prefix(p) {
                    let rest = rest.trim_start();
                    // Optional [blob] before the colon.
                    let rest = if rest.starts_with('[') {
                        match rest.find(']') {
                            Some(e) => rest[e + 1..].trim_start(),
                            None => rest,
                        }
                    } else {
                        rest
                    };
                    if let Some(r) = rest.strip_prefix(':') {
                        s = r.trim_start().to_string();
                        done = false;
                        break;
                    }
                }
            }
            if done {
                let t = s.trim_start();
                if t.starts_with('[')
                    && let Some(e) = t.find(']')
                {
                    let rest = t[e + 1..].trim_start();
                    if !rest.is_empty() {
                        s = rest.to_string();
                        continue;
                    }
                }
                break;
            }
        }
        if let Some(inner) = s.strip_prefix("[fwd:").and_then(|t| t.strip_suffix(']')) {
            s = inner.trim().to_string();
        }
        if s == before {
            return s;
        }
    }
}

/// Whether extracting the base subject removed a reply or forward marker.
pub fn is_reply(subject: &str) -> bool {
    let plain = subject
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let base = base_subject(subject);
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
            date: content.sent().unwrap_or(meta.internal_date),
            size: meta.size,
            subject: base_subject(&content.subject()),
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
        assert_eq!(
            base_subject("Re: RE: [list] Fwd: Hello  World (fwd)"),
            "hello world"
        );
        assert_eq!(base_subject("[fwd: x]"), "x");
        assert_eq!(base_subject("Re[2]: y"), "y");
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
