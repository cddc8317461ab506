//! The MIME structure of a message as IMAP FETCH needs it: byte ranges of
//! every part's header and body (for `BODY[1.2.HEADER]` and friends),
//! ENVELOPE and BODYSTRUCTURE built from the raw header values (IMAP sends
//! encoded words as they are), and decoded part content for BINARY.
//!
//! Works on the message with CRLF line ends (what IMAP sends); the caller
//! converts bare LF first.

use crate::proto::imap::encode::{nstring, string};

/// Deepest nesting of multiparts and message/rfc822 parts followed.
const MAX_DEPTH: usize = 20;
/// Most parts of one message followed.
const MAX_PARTS: usize = 2000;

#[derive(Debug, Clone)]
pub struct Part {
    /// Start of the part's header.
    pub header_start: usize,
    /// Start of the part's body (after the blank line).
    pub body_start: usize,
    pub end: usize,
    pub ctype: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub children: Vec<Part>,
    /// For message/rfc822: the embedded message as a part.
    pub message: Option<Box<Part>>,
}

/// Bare LF → CRLF (messages dropped into the Maildir by other programs).
pub fn to_crlf(data: Vec<u8>) -> Vec<u8> {
    let bare = data
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
    if !bare {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 30);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The end of the header section starting at `start` (just after the blank
/// line, or `end` when there is none).
fn header_end(data: &[u8], start: usize, end: usize) -> usize {
    let region = &data[start..end];
    if region.starts_with(b"\r\n") {
        return start + 2;
    }
    match region.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => start + p + 4,
        None => end,
    }
}

/// Header fields of a header block: (name, unfolded raw value).
pub fn fields(header: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
            let value = String::from_utf8_lossy(&line[colon + 1..])
                .trim()
                .to_string();
            out.push((name, value));
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splits `a; b="c"; d=e` into the first value and parameters (names
/// lower-cased). RFC 2231 continuations (`name*0=`) are joined.
pub fn split_params(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escape = false;
    for c in value.chars() {
        if escape {
            cur.push(c);
            escape = false;
            continue;
        }
        match c {
            '\\' if quoted => escape = true,
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let first = parts.remove(0).trim().to_string();
    let mut params: Vec<(String, String)> = Vec::new();
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v)
            .to_string();
        if k.is_empty() {
            continue;
        }
        // name*0, name*1 ... : join onto name (kept encoded, as sent).
        if let Some((base, idx)) = k.split_once('*')
            && (idx.is_empty()
                || idx
                    .trim_end_matches('*')
                    .chars()
                    .all(|c| c.is_ascii_digit()))
        {
            let base = format!("{base}{}", if k.ends_with('*') { "*" } else { "" });
            if let Some(e) = params.iter_mut().find(|(n, _)| *n == base) {
                e.1.push_str(&v);
                continue;
            }
            params.push((base, v));
            continue;
        }
        params.push((k, v));
    }
    (first, params)
}

fn content_type(
    fields: &[(String, String)],
    default_type: &str,
) -> (String, String, Vec<(String, String)>) {
    let (d_t, d_s) = default_type.split_once('/').unwrap_or(("text", "plain"));
    match field(fields, "Content-Type") {
        Some(v) => {
            let (t, params) = split_params(v);
            match t.split_once('/') {
                Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => (
                    a.trim().to_ascii_lowercase(),
                    b.trim().to_ascii_lowercase(),
                    params,
                ),
                _ => (d_t.into(), d_s.into(), params),
            }
        }
        None => {
            let params = if d_t == "text" {
                vec![("charset".into(), "us-ascii".into())]
            } else {
                Vec::new()
            };
            (d_t.into(), d_s.into(), params)
        }
    }
}

/// Parses the part in `data[start..end]`.
pub fn parse(data: &[u8]) -> Part {
    let mut count = 0;
    parse_part(data, 0, data.len(), "text/plain", 0, &mut count)
}

fn parse_part(
    data: &[u8],
    start: usize,
    end: usize,
    default_type: &str,
    depth: usize,
    count: &mut usize,
) -> Part {
    *count += 1;
    let body_start = header_end(data, start, end);
    let f = fields(&data[start..body_start]);
    let (ctype, subtype, params) = content_type(&f, default_type);
    let mut part = Part {
        header_start: start,
        body_start,
        end,
        ctype,
        subtype,
        params,
        children: Vec::new(),
        message: None,
    };
    if depth >= MAX_DEPTH || *count >= MAX_PARTS {
        return part;
    }
    if part.ctype == "multipart" {
        let boundary = part
            .params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone());
        if let Some(b) = boundary.filter(|b| !b.is_empty()) {
            let child_default = if part.subtype == "digest" {
                "message/rfc822"
            } else {
                "text/plain"
            };
            for (s, e) in split_multipart(data, body_start, end, b.as_bytes()) {
                if *count >= MAX_PARTS {
                    break;
                }
                let child = parse_part(data, s, e, child_default, depth + 1, count);
                part.children.push(child);
            }
        }
    } else if part.ctype == "message" && (part.subtype == "rfc822" || part.subtype == "global") {
        let inner = parse_part(data, body_start, end, "text/plain", depth + 1, count);
        part.message = Some(Box::new(inner));
    }
    part
}

/// Body ranges of the parts of a multipart body: each starts after a
/// delimiter line's CRLF and ends before the CRLF that precedes the next.
fn split_multipart(data: &[u8], start: usize, end: usize, boundary: &[u8]) -> Vec<(usize, usize)> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let mut out = Vec::new();
    let mut pos = start;
    let mut current: Option<usize> = None;
    while pos < end {
        let line_end = data[pos..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |p| pos + p + 1);
        let line = &data[pos..line_end];
        if line.starts_with(&delim) {
            let rest = &line[delim.len()..];
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(s) = current.take() {
                    // The CRLF before the delimiter belongs to it.
                    let e = if pos >= 2 && data[pos - 2..pos] == *b"\r\n" {
                        pos - 2
                    } else {
                        pos
                    };
                    out.push((s, e.max(s)));
                }
                if closing {
                    return out;
                }
                current = Some(line_end);
            }
        }
        pos = line_end;
    }
    if let Some(s) = current {
        out.push((s, end));
    }
    out
}

impl Part {
    fn fields(&self, data: &[u8]) -> Vec<(String, String)> {
        fields(&data[self.header_start..self.body_start])
    }

    /// The part at a section path (`1.2`); `[]` is the message itself.
    /// RFC 3501 section 6.4.5: the parts of a message are the parts of
    /// its multipart body, or part 1 alone (its body) when it is not
    /// multipart; the parts of a message/rfc822 part are those of the
    /// message it encapsulates, so `1.1` of a forwarded single-part
    /// message is that message's body and `1` of a message whose whole
    /// body is message/rfc822 is the encapsulated message.
    pub fn find(&self, path: &[u32]) -> Option<&Part> {
        let mut cur = self;
        let mut parts = self.message_parts();
        for &n in path {
            let idx = n.checked_sub(1)? as usize;
            cur = *parts.get(idx)?;
            parts = cur.sub_parts();
        }
        Some(cur)
    }

    /// The numbered parts of this part taken as a message.
    fn message_parts(&self) -> Vec<&Part> {
        if self.children.is_empty() {
            vec![self]
        } else {
            self.children.iter().collect()
        }
    }

    /// The numbered parts below this part: a multipart's children, the
    /// parts of an encapsulated message, none for other parts.
    fn sub_parts(&self) -> Vec<&Part> {
        match &self.message {
            Some(m) => m.message_parts(),
            None => self.children.iter().collect(),
        }
    }

    /// Decoded body (Content-Transfer-Encoding undone) for BINARY; `None`
    /// for an unknown encoding.
    pub fn decoded<'a>(&self, data: &'a [u8]) -> Option<std::borrow::Cow<'a, [u8]>> {
        let body = &data[self.body_start..self.end];
        let enc = transfer_encoding(&self.fields(data));
        match enc.as_str() {
            e if identity_encoding(e) => Some(std::borrow::Cow::Borrowed(body)),
            "base64" => Some(std::borrow::Cow::Owned(base64_lenient(body))),
            "quoted-printable" => Some(std::borrow::Cow::Owned(quoted_printable(body))),
            _ => None,
        }
    }
}

/// The Content-Transfer-Encoding of a part (lower case, `7bit` when none).
fn transfer_encoding(f: &[(String, String)]) -> String {
    field(f, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase()
}

/// Whether an encoding leaves the bytes as they are.
fn identity_encoding(enc: &str) -> bool {
    matches!(enc, "7bit" | "8bit" | "binary" | "")
}

/// A header with its Content-Transfer-Encoding field (and the lines
/// continuing it) replaced by `enc`, added when there is none.
fn with_encoding(header: &[u8], enc: &str) -> Vec<u8> {
    let line = format!("Content-Transfer-Encoding: {enc}\r\n");
    let mut out = Vec::with_capacity(header.len() + line.len());
    let mut skipping = false;
    let mut done = false;
    for l in header.split_inclusive(|&b| b == b'\n') {
        if l == b"\r\n" || l == b"\n" {
            if !done {
                out.extend_from_slice(line.as_bytes());
                done = true;
            }
            out.extend_from_slice(l);
            skipping = false;
            continue;
        }
        if skipping && (l[0] == b' ' || l[0] == b'\t') {
            continue;
        }
        skipping = false;
        let name = l.iter().position(|&b| b == b':').map(|c| &l[..c]);
        if name.is_some_and(|n| {
            n.trim_ascii()
                .eq_ignore_ascii_case(b"Content-Transfer-Encoding")
        }) {
            skipping = true;
            if !done {
                out.extend_from_slice(line.as_bytes());
                done = true;
            }
            continue;
        }
        out.extend_from_slice(l);
    }
    if !done {
        // A header without its blank line (a part with no body).
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// What [`rewrite`] does with a leaf part: `None` keeps it, `Some((body,
/// encoding))` replaces its body and declares the encoding; `Err` gives up.
type Leaf<'f> = &'f dyn Fn(&Part, &[u8]) -> Result<Option<(Vec<u8>, &'static str)>, ()>;

/// The message with every leaf part passed through `leaf`; boundaries,
/// preambles, epilogues and other headers kept byte for byte.
fn rewrite(data: &[u8], part: &Part, out: &mut Vec<u8>, leaf: Leaf) -> Result<(), ()> {
    if !part.children.is_empty() {
        out.extend_from_slice(&data[part.header_start..part.body_start]);
        let mut pos = part.body_start;
        for c in &part.children {
            out.extend_from_slice(&data[pos..c.header_start]);
            rewrite(data, c, out, leaf)?;
            pos = c.end;
        }
        out.extend_from_slice(&data[pos..part.end]);
    } else if let Some(m) = &part.message {
        out.extend_from_slice(&data[part.header_start..part.body_start]);
        rewrite(data, m, out, leaf)?;
    } else {
        match leaf(part, data)? {
            None => out.extend_from_slice(&data[part.header_start..part.end]),
            Some((body, enc)) => {
                out.extend_from_slice(&with_encoding(
                    &data[part.header_start..part.body_start],
                    enc,
                ));
                out.extend_from_slice(&body);
            }
        }
    }
    Ok(())
}

/// BINARY[] (RFC 3516): the whole message with the body of every part
/// decoded and declared `binary` (what Dovecot sends); `None` when a part
/// has an encoding we do not know.
pub fn decoded_message(data: &[u8], root: &Part) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    rewrite(data, root, &mut out, &decode_leaf).ok()?;
    Some(out)
}

/// BINARY[part]: the part's body decoded; for a multipart, its body with
/// every part in it decoded and declared binary, as for BINARY[] (what
/// Dovecot sends). `None` for an encoding we do not know.
pub fn decoded_part<'a>(data: &'a [u8], part: &Part) -> Option<std::borrow::Cow<'a, [u8]>> {
    if part.children.is_empty() {
        return part.decoded(data);
    }
    let mut out = Vec::with_capacity(part.end - part.body_start);
    let mut pos = part.body_start;
    for c in &part.children {
        out.extend_from_slice(&data[pos..c.header_start]);
        rewrite(data, c, &mut out, &decode_leaf).ok()?;
        pos = c.end;
    }
    out.extend_from_slice(&data[pos..part.end]);
    Some(std::borrow::Cow::Owned(out))
}

/// The [`Leaf`] of BINARY: decode what is encoded.
fn decode_leaf(p: &Part, data: &[u8]) -> Result<Option<(Vec<u8>, &'static str)>, ()> {
    let enc = transfer_encoding(&p.fields(data));
    if identity_encoding(&enc) {
        return Ok(None);
    }
    match p.decoded(data) {
        Some(body) => Ok(Some((body.into_owned(), "binary"))),
        None => Err(()),
    }
}

/// A message APPENDed with binary content (NUL bytes, or parts declared
/// `binary`, RFC 3516) with those parts' bodies re-encoded in base64, so
/// that `BODY[]` can always be sent as an ordinary literal (which cannot
/// carry NUL) and bare CR or LF in binary data is never taken for a line
/// end. `None` when nothing needs it.
pub fn binary_parts_to_base64(data: &[u8]) -> Option<Vec<u8>> {
    let root = parse(data);
    let changed = std::cell::Cell::new(false);
    let leaf = |p: &Part, data: &[u8]| {
        let body = &data[p.body_start..p.end];
        let enc = transfer_encoding(&p.fields(data));
        if enc == "binary" || body.contains(&0) {
            changed.set(true);
            return Ok(Some((base64_lines(body), "base64")));
        }
        Ok(None)
    };
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + 64);
    rewrite(data, &root, &mut out, &leaf).ok()?;
    changed.get().then_some(out)
}

/// Base64 in lines of 76 characters, each ending in CRLF (RFC 2045).
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + data.len() / 38 + 4);
    for (i, chunk) in data.chunks(57).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        for c in chunk.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            out.push(ALPHABET[(n >> 18) as usize & 63]);
            out.push(ALPHABET[(n >> 12) as usize & 63]);
            out.push(if c.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63]
            } else {
                b'='
            });
            out.push(if c.len() > 2 {
                ALPHABET[n as usize & 63]
            } else {
                b'='
            });
        }
    }
    out
}

pub fn base64_lenient(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut n = 0;
    for &c in data {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

pub fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16);
    while i < data.len() {
        let c = data[i];
        if c == b'=' {
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if data.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let (Some(a), Some(b)) = (
                data.get(i + 1).and_then(|&b| hex(b)),
                data.get(i + 2).and_then(|&b| hex(b)),
            ) {
                out.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

// ---- ENVELOPE and BODYSTRUCTURE ----

/// An address of an ENVELOPE: (name, adl, mailbox, host); a group start
/// has host NIL and the group name as mailbox, its end all NIL.
pub type Addr = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Marks a comment that [`strip_comments`] took out: `OPEN index CLOSE`.
const COMMENT_OPEN: char = '\u{E000}';
const COMMENT_CLOSE: char = '\u{E001}';

/// Takes the comments out of an address list: each becomes a marker with
/// its index in the returned list, so that commas, colons and quotes in
/// comments do not split addresses, and a comment can still serve as the
/// display name of an address that has none (`bob@example.com (Bob)`).
fn strip_comments(s: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut comments = Vec::new();
    let mut depth = 0;
    let mut quoted = false;
    let mut escape = false;
    let mut comment = String::new();
    for c in s.chars() {
        if c == COMMENT_OPEN || c == COMMENT_CLOSE {
            continue;
        }
        if escape {
            if depth == 0 {
                out.push(c);
            } else {
                comment.push(c);
            }
            escape = false;
            continue;
        }
        match c {
            '\\' => {
                escape = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => {
                if depth > 0 {
                    comment.push(c);
                }
                depth += 1;
            }
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(COMMENT_OPEN);
                    out.push_str(&comments.len().to_string());
                    out.push(COMMENT_CLOSE);
                    comments.push(std::mem::take(&mut comment));
                } else {
                    comment.push(c);
                }
            }
            _ if depth == 0 => out.push(c),
            _ => comment.push(c),
        }
    }
    (out, comments)
}

/// Removes the comment markers of `s`; the first non-empty comment.
fn take_comments(s: &str, comments: &[String]) -> (String, Option<String>) {
    let mut out = String::new();
    let mut first = None;
    let mut rest = s;
    while let Some(a) = rest.find(COMMENT_OPEN) {
        out.push_str(&rest[..a]);
        out.push(' ');
        let after = &rest[a + COMMENT_OPEN.len_utf8()..];
        let b = after.find(COMMENT_CLOSE).unwrap_or(after.len());
        if let Ok(i) = after[..b].parse::<usize>()
            && let Some(c) = comments.get(i)
        {
            let c = c.split_whitespace().collect::<Vec<_>>().join(" ");
            if first.is_none() && !c.is_empty() {
                first = Some(c);
            }
        }
        rest = after.get(b + COMMENT_CLOSE.len_utf8()..).unwrap_or("");
    }
    out.push_str(rest);
    (out, first)
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        let mut out = String::new();
        let mut escape = false;
        for c in inner.chars() {
            if escape {
                out.push(c);
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else {
                out.push(c);
            }
        }
        out
    } else {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Splits at `sep` outside quotes and angle brackets.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut angle = false;
    let mut escape = false;
    for c in s.chars() {
        if escape {
            cur.push(c);
            escape = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escape = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '<' if !quoted => {
                angle = true;
                cur.push(c);
            }
            '>' if !quoted => {
                angle = false;
                cur.push(c);
            }
            c if c == sep && !quoted && !angle => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn mailbox_addr(s: &str, comments: &[String]) -> Option<Addr> {
    let (s, comment) = take_comments(s, comments);
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (name, spec) = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            let name = unquote(&s[..a]);
            (
                (!name.is_empty()).then_some(name),
                s[a + 1..b].trim().to_string(),
            )
        }
        _ => (comment, s.to_string()),
    };
    // Source route `@a,@b:user@host`.
    let (adl, spec) = match spec.split_once(':') {
        Some((route, rest)) if route.starts_with('@') => {
            (Some(route.to_string()), rest.to_string())
        }
        _ => (None, spec),
    };
    let (mailbox, host) = match spec.rsplit_once('@') {
        Some((m, h)) => (unquote(m), Some(h.trim().to_string())),
        None => (unquote(&spec), Some("MISSING_DOMAIN".to_string())),
    };
    Some((name, adl, Some(mailbox), host))
}

pub fn address_list(value: &str) -> Vec<Addr> {
    let (value, comments) = strip_comments(value);
    let comments = &comments[..];
    let mut out = Vec::new();
    let mut rest = value.as_str();
    // Groups: `name: a, b;`
    loop {
        let colon = {
            let mut quoted = false;
            let mut angle = false;
            let mut found = None;
            for (i, c) in rest.char_indices() {
                match c {
                    '"' => quoted = !quoted,
                    '<' if !quoted => angle = true,
                    '>' if !quoted => angle = false,
                    ':' if !quoted && !angle => {
                        found = Some(i);
                        break;
                    }
                    ',' if !quoted && !angle => {}
                    _ => {}
                }
            }
            found
        };
        let Some(colon) = colon else {
            for a in split_top(rest, ',') {
                out.extend(mailbox_addr(&a, comments));
            }
            break;
        };
        // Mailboxes before the group (those end at the last comma before it).
        let before = &rest[..colon];
        let (plain, group_name) = match before.rfind(',') {
            Some(c) => (&before[..c], &before[c + 1..]),
            None => ("", before),
        };
        for a in split_top(plain, ',') {
            out.extend(mailbox_addr(&a, comments));
        }
        let after = &rest[colon + 1..];
        let (members, tail) = match after.find(';') {
            Some(sc) => (&after[..sc], &after[sc + 1..]),
            None => (after, ""),
        };
        let (group_name, _) = take_comments(group_name, comments);
        out.push((None, None, Some(unquote(&group_name)), None));
        for a in split_top(members, ',') {
            out.extend(mailbox_addr(&a, comments));
        }
        out.push((None, None, None, None));
        rest = tail.trim_start_matches([',', ' ']);
        if rest.trim().is_empty() {
            break;
        }
    }
    out
}

/// The addresses of every `name` field of a header, in order (a header
/// with two To fields lists both).
pub fn address_field(fields: &[(String, String)], name: &str) -> Vec<Addr> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| address_list(v))
        .collect()
}

fn write_addresses(out: &mut Vec<u8>, list: &[Addr], utf8: bool) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (name, adl, mailbox, host) in list {
        out.push(b'(');
        nstring(out, name.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, adl.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, mailbox.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, host.as_deref().map(str::as_bytes), utf8);
        out.push(b')');
    }
    out.push(b')');
}

/// The ENVELOPE of the message (or of an embedded message part).
pub fn envelope(out: &mut Vec<u8>, data: &[u8], part: &Part, utf8: bool) {
    let f = part.fields(data);
    let get = |n: &str| field(&f, n);
    out.push(b'(');
    nstring(out, get("Date").map(str::as_bytes), utf8);
    out.push(b' ');
    nstring(out, get("Subject").map(str::as_bytes), utf8);
    out.push(b' ');
    let from = address_field(&f, "From");
    write_addresses(out, &from, utf8);
    // RFC 3501 section 7.4.2: a Sender or Reply-To that is absent or
    // empty is the From.
    for h in ["Sender", "Reply-To"] {
        out.push(b' ');
        let list = address_field(&f, h);
        write_addresses(out, if list.is_empty() { &from } else { &list }, utf8);
    }
    for h in ["To", "Cc", "Bcc"] {
        out.push(b' ');
        write_addresses(out, &address_field(&f, h), utf8);
    }
    out.push(b' ');
    nstring(out, get("In-Reply-To").map(str::as_bytes), utf8);
    out.push(b' ');
    nstring(out, get("Message-ID").map(str::as_bytes), utf8);
    out.push(b')');
}

fn write_params(out: &mut Vec<u8>, params: &[(String, String)], utf8: bool) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.to_ascii_uppercase().as_bytes(), utf8);
        out.push(b' ');
        string(out, v.as_bytes(), utf8);
    }
    out.push(b')');
}

/// body-fld-lines: the line ends in the body. A last line without one
/// (the part's last line, whose CRLF belongs to the boundary that
/// follows, RFC 2046 section 5.1.1) is not counted, as Dovecot counts.
fn lines(data: &[u8]) -> usize {
    data.iter().filter(|&&b| b == b'\n').count()
}

fn disposition(out: &mut Vec<u8>, f: &[(String, String)], utf8: bool) {
    match field(f, "Content-Disposition") {
        Some(v) => {
            let (d, params) = split_params(v);
            out.push(b'(');
            string(out, d.to_ascii_uppercase().as_bytes(), utf8);
            out.push(b' ');
            write_params(out, &params, utf8);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

fn language(out: &mut Vec<u8>, f: &[(String, String)], utf8: bool) {
    match field(f, "Content-Language") {
        Some(v) => {
            let langs: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if langs.len() == 1 {
                string(out, langs[0].as_bytes(), utf8);
            } else if langs.is_empty() {
                out.extend_from_slice(b"NIL");
            } else {
                out.push(b'(');
                for (i, l) in langs.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    string(out, l.as_bytes(), utf8);
                }
                out.push(b')');
            }
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

/// BODY (`extended` false) or BODYSTRUCTURE (`extended` true).
pub fn body_structure(out: &mut Vec<u8>, data: &[u8], part: &Part, extended: bool, utf8: bool) {
    let f = part.fields(data);
    out.push(b'(');
    if part.ctype == "multipart" && !part.children.is_empty() {
        for c in &part.children {
            body_structure(out, data, c, extended, utf8);
        }
        out.push(b' ');
        string(out, part.subtype.to_ascii_uppercase().as_bytes(), utf8);
        if extended {
            out.push(b' ');
            write_params(out, &part.params, utf8);
            out.push(b' ');
            disposition(out, &f, utf8);
            out.push(b' ');
            language(out, &f, utf8);
            out.push(b' ');
            nstring(out, field(&f, "Content-Location").map(str::as_bytes), utf8);
        }
        out.push(b')');
        return;
    }
    // A multipart without parts is described as text/plain (nothing
    // else can be said of it).
    let (ctype, subtype) = if part.ctype == "multipart" {
        ("text".to_string(), "plain".to_string())
    } else {
        (part.ctype.clone(), part.subtype.clone())
    };
    string(out, ctype.to_ascii_uppercase().as_bytes(), utf8);
    out.push(b' ');
    string(out, subtype.to_ascii_uppercase().as_bytes(), utf8);
    out.push(b' ');
    // RFC 2045 section 5.2: text without a charset is US-ASCII; the
    // default is spelled out (as Dovecot does).
    if ctype == "text" && !part.params.iter().any(|(k, _)| k == "charset") {
        let mut params = vec![("charset".to_string(), "us-ascii".to_string())];
        params.extend(part.params.iter().cloned());
        write_params(out, &params, utf8);
    } else {
        write_params(out, &part.params, utf8);
    }
    out.push(b' ');
    nstring(out, field(&f, "Content-ID").map(str::as_bytes), utf8);
    out.push(b' ');
    nstring(
        out,
        field(&f, "Content-Description").map(str::as_bytes),
        utf8,
    );
    out.push(b' ');
    let enc = field(&f, "Content-Transfer-Encoding")
        .map(|e| e.trim().to_ascii_uppercase())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "7BIT".into());
    string(out, enc.as_bytes(), utf8);
    let body = &data[part.body_start..part.end];
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if let Some(m) = &part.message {
        out.push(b' ');
        envelope(out, data, m, utf8);
        out.push(b' ');
        body_structure(out, data, m, extended, utf8);
        out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
    } else if ctype == "text" {
        out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
    }
    if extended {
        out.push(b' ');
        nstring(out, field(&f, "Content-MD5").map(str::as_bytes), utf8);
        out.push(b' ');
        disposition(out, &f, utf8);
        out.push(b' ');
        language(out, &f, utf8);
        out.push(b' ');
        nstring(out, field(&f, "Content-Location").map(str::as_bytes), utf8);
    }
    out.push(b')');
}

/// The header lines of `header` whose names are (or with `not`, are not)
/// in `names`, followed by the blank line.
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if keep {
                out.extend_from_slice(line);
            }
            continue;
        }
        let name = line
            .iter()
            .position(|&b| b == b':')
            .map(|c| String::from_utf8_lossy(&line[..c]).trim().to_string());
        keep = match name {
            Some(n) => names.iter().any(|w| w.eq_ignore_ascii_case(&n)) != not,
            None => false,
        };
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: \"Alice A.\" <alice@example.org>\r\nTo: bob@example.com, undisclosed:;\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n\r\npreamble\r\n--xx\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--xx\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=yy\r\n\r\n--yy\r\n\r\nplain\r\n--yy\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--yy--\r\n\r\n--xx--\r\n";

    #[test]
    fn structure_and_sections() {
        let p = parse(MSG);
        assert_eq!(p.children.len(), 2);
        let one = p.find(&[1]).expect("1");
        assert_eq!(&MSG[one.body_start..one.end], b"hello");
        let inner = p.find(&[2, 1]).expect("2.1");
        assert_eq!(&MSG[inner.body_start..inner.end], b"plain");
        let html = p.find(&[2, 2]).expect("2.2");
        assert_eq!(&MSG[html.body_start..html.end], b"<b>x</b>");
        assert!(p.find(&[3]).is_none());
        let mut out = Vec::new();
        body_structure(&mut out, MSG, &p, true, false);
        let s = String::from_utf8(out).expect("utf8");
        assert!(s.starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 5 0 NIL NIL NIL NIL)(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" "), "{s}");
        assert!(
            s.ends_with(" \"MIXED\" (\"BOUNDARY\" \"xx\") NIL NIL NIL)"),
            "{s}"
        );
        let mut env = Vec::new();
        envelope(&mut env, MSG, &p, false);
        let env = String::from_utf8(env).expect("utf8");
        assert!(
            env.contains("((\"Alice A.\" NIL \"alice\" \"example.org\"))"),
            "{env}"
        );
        assert!(
            env.contains(
                "((NIL NIL \"bob\" \"example.com\")(NIL NIL \"undisclosed\" NIL)(NIL NIL NIL NIL))"
            ),
            "{env}"
        );
        let h = header_fields(&MSG[..p.body_start], &["subject".into()], false);
        assert_eq!(h, b"Subject: hi\r\n\r\n");
    }

    /// A message of the corpus (compiled in: the session layer reads no
    /// files).
    macro_rules! corpus {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/imap/",
                $name
            ))
            .to_vec()
        };
    }

    fn body_of<'a>(data: &'a [u8], p: &Part, path: &[u32]) -> Option<&'a [u8]> {
        p.find(path).map(|x| &data[x.body_start..x.end])
    }

    #[test]
    fn part_numbers_through_message_rfc822() {
        // Part 1 is a forwarded single-part message: 1.1 is its body.
        let d = corpus!("rfc822-part1.eml");
        let p = parse(&d);
        assert!(
            body_of(&d, &p, &[1])
                .unwrap()
                .starts_with(b"From: Original Author")
        );
        assert_eq!(
            body_of(&d, &p, &[1, 1]).unwrap(),
            b"Original body line one.\r\nOriginal body line two."
        );
        assert!(p.find(&[1, 2]).is_none());
        assert!(p.find(&[1, 1, 1]).is_none());
        assert!(p.find(&[0]).is_none());
        // Nested twice.
        let d = corpus!("rfc822-nested2.eml");
        let p = parse(&d);
        assert!(
            body_of(&d, &p, &[1, 1])
                .unwrap()
                .starts_with(b"From: Inner")
        );
        assert_eq!(body_of(&d, &p, &[1, 1, 1]).unwrap(), b"The innermost body.");
        assert_eq!(body_of(&d, &p, &[1, 2]).unwrap(), b"Middle note.");
        assert_eq!(body_of(&d, &p, &[2]).unwrap(), b"Outer note.");
        // The part ends at the inner close delimiter (RFC 2046 5.1.1).
        assert!(
            body_of(&d, &p, &[1])
                .unwrap()
                .ends_with(b"Middle note.\r\n--L1--")
        );
        // The whole message is message/rfc822: part 1 is the message.
        let d = corpus!("rfc822-toplevel.eml");
        let p = parse(&d);
        assert!(body_of(&d, &p, &[1]).unwrap().starts_with(b"From: Wrapped"));
        assert_eq!(body_of(&d, &p, &[1, 1]).unwrap(), b"Inside text.\r\n");
        assert!(p.find(&[2]).is_none());
        // A single-part message: part 1 is its body, nothing below.
        let d = corpus!("single-base64.eml");
        let p = parse(&d);
        assert_eq!(p.find(&[1]).map(|x| x.body_start), Some(p.body_start));
        assert!(p.find(&[1, 1]).is_none());
    }

    #[test]
    fn envelope_addresses() {
        let d = corpus!("odd-addresses.eml");
        let p = parse(&d);
        let mut env = Vec::new();
        envelope(&mut env, &d, &p, false);
        let env = String::from_utf8(env).unwrap();
        // A comment is the name; an empty Reply-To is the From; both To
        // fields; a route; no domain; an empty group.
        assert_eq!(
            env,
            "(\"Wed, 2 Dec 2026 12:00:00 +0000\" \"odd addresses\" ((\"Bob Comment\" NIL \"bob\" \"example.com\")) \
             ((\"Secretary, The\" NIL \"sec\" \"example.com\")) ((\"Bob Comment\" NIL \"bob\" \"example.com\")) \
             ((NIL NIL \"odd local\" \"example.test\")(NIL \"@route.example\" \"alice\" \"example.test\")\
             (NIL NIL \"root\" \"MISSING_DOMAIN\")(NIL NIL \"second-to\" \"example.test\")) \
             ((\"Last, First\" NIL \"first.last\" \"example.com\")(NIL NIL \"undisclosed\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)"
        );
        // Commas, colons and quotes in comments do not split addresses.
        let l = address_list("a@x (one, two: \"three\"), \"B (not a comment)\" <b@y>");
        assert_eq!(
            l,
            vec![
                (
                    Some("one, two: \"three\"".into()),
                    None,
                    Some("a".into()),
                    Some("x".into())
                ),
                (
                    Some("B (not a comment)".into()),
                    None,
                    Some("b".into()),
                    Some("y".into())
                ),
            ]
        );
        let g = address_list("Team: a@x.test, \"Bee\" <b@y.test>;, carol@z.test");
        assert_eq!(g.len(), 5);
        assert_eq!(g[0], (None, None, Some("Team".into()), None));
        assert_eq!(g[3], (None, None, None, None));
        assert_eq!(g[4].2.as_deref(), Some("carol"));
    }

    #[test]
    fn binary_of_the_whole_message() {
        let d = corpus!("multipart-b64-qp.eml");
        let p = parse(&d);
        let whole = decoded_message(&d, &p).unwrap();
        let w = parse(&whole);
        assert_eq!(w.children.len(), 3);
        // Every part decoded and declared binary; the rest kept.
        for (i, c) in w.children.iter().enumerate() {
            let f = c.fields(&whole);
            assert_eq!(field(&f, "Content-Transfer-Encoding"), Some("binary"));
            let orig = p.children[i].decoded(&d).unwrap();
            assert_eq!(&whole[c.body_start..c.end], &orig[..], "part {}", i + 1);
        }
        assert!(whole.starts_with(&d[..p.body_start]));
        assert!(whole.ends_with(b"--=_outer_1--\r\nThis is the epilogue.\r\n"));
        // A message without encoded parts is its own BINARY[].
        let d = corpus!("rfc822-nested2.eml");
        assert_eq!(decoded_message(&d, &parse(&d)).unwrap(), d);
        // An unknown encoding fails the whole.
        let d = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n";
        assert!(decoded_message(d, &parse(d)).is_none());
    }

    #[test]
    fn binary_of_a_multipart_part() {
        let d = corpus!("multipart-nested-encoded.eml");
        let p = parse(&d);
        let one = decoded_part(&d, p.find(&[1]).unwrap()).unwrap();
        assert_eq!(
            &one[..],
            &b"--a\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: binary\r\n\r\ncaf\xc3\xa9\r\n\
               --a\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: binary\r\n\r\n<b>x</b>\r\n--a--"[..]
        );
        assert_eq!(
            &decoded_part(&d, p.find(&[1, 2]).unwrap()).unwrap()[..],
            b"<b>x</b>"
        );
        assert_eq!(
            &decoded_part(&d, p.find(&[2]).unwrap()).unwrap()[..],
            b"end"
        );
    }

    #[test]
    fn binary_append_is_stored_base64() {
        let d = corpus!("body-binary.eml");
        let stored = binary_parts_to_base64(&d).unwrap();
        assert!(!stored.contains(&0));
        let p = parse(&stored);
        assert_eq!(
            field(&p.fields(&stored), "Content-Transfer-Encoding"),
            Some("base64")
        );
        // Decoding gives the octets back, bare CR and LF included.
        let orig = &d[parse(&d).body_start..];
        assert_eq!(&p.decoded(&stored).unwrap()[..], orig);
        // Text is left alone.
        assert!(binary_parts_to_base64(&corpus!("body-8bit.eml")).is_none());
        assert!(binary_parts_to_base64(&corpus!("multipart-b64-qp.eml")).is_none());
    }

    #[test]
    fn header_encoding_replaced() {
        let h = b"A: 1\r\nContent-Transfer-Encoding:\r\n base64\r\nB: 2\r\n\r\n";
        assert_eq!(
            with_encoding(h, "binary"),
            b"A: 1\r\nContent-Transfer-Encoding: binary\r\nB: 2\r\n\r\n"
        );
        assert_eq!(
            with_encoding(b"A: 1\r\n\r\n", "base64"),
            b"A: 1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        );
    }

    #[test]
    fn line_counts() {
        assert_eq!(lines(b""), 0);
        assert_eq!(lines(b"abc"), 0);
        assert_eq!(lines(b"abc\r\n"), 1);
        assert_eq!(lines(b"a\r\nb"), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// base64_lines decodes back to its input, in lines of at most 76.
        #[test]
        fn base64_round_trip(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let enc = base64_lines(&data);
            proptest::prop_assert!(enc.split(|&b| b == b'\n').all(|l| l.len() <= 77));
            proptest::prop_assert_eq!(base64_lenient(&enc), data);
        }

        /// Parsing and BINARY[] of arbitrary bytes never panic, and every
        /// part found lies inside the message.
        #[test]
        fn parse_any_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let p = parse(&data);
            for path in [&[][..], &[1], &[1, 1], &[2], &[1, 2, 1]] {
                if let Some(x) = p.find(path) {
                    proptest::prop_assert!(x.header_start <= x.body_start && x.body_start <= x.end && x.end <= data.len());
                }
            }
            let _ = decoded_message(&data, &p);
            let _ = binary_parts_to_base64(&data);
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(base64_lenient(b"aGVs\r\nbG8="), b"hello");
        assert_eq!(quoted_printable(b"caf=C3=A9 =\r\nx"), "café x".as_bytes());
        assert_eq!(to_crlf(b"a\nb\r\n".to_vec()), b"a\r\nb\r\n");
    }
}
