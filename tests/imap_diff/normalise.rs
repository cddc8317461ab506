//! Normalisation of server responses before mailc's and Dovecot's are
//! compared. Each rule removes something the protocol leaves to the
//! server; nothing else is touched. The rules, with their reasons:
//!
//! 1. Tags are dropped from tagged responses (the client chose them), and
//!    an ESEARCH `(TAG "…")` correlator becomes `(TAG <tag>)` for the same
//!    reason (RFC 4731 §3.1).
//! 2. The human-readable text after `OK`/`NO`/`BAD`/`BYE`/`PREAUTH` and
//!    after a continuation `+` is dropped; the status and the `[CODE]` are
//!    kept (RFC 3501 §7.1: the text is for humans; RFC 9051 §7.1).
//! 3. UIDVALIDITY values (`[UIDVALIDITY n]`, `STATUS (UIDVALIDITY n)`,
//!    the first number of `[APPENDUID]`/`[COPYUID]`) become `<uidvalidity>`:
//!    the server picks them (RFC 3501 §2.3.1.1).
//! 4. MODSEQ values (`[HIGHESTMODSEQ]`, `MODSEQ (n)`, `STATUS
//!    (HIGHESTMODSEQ n)`, SEARCH/ESEARCH `MODSEQ n`) become `<modseq>`:
//!    values are server-assigned, and a server may give one mod-sequence to
//!    a whole STORE or APPEND batch or one per message (RFC 7162 §3.1.1), so
//!    neither values nor ranks compare. What RFC 7162 does guarantee is
//!    checked on each server's own transcript first ([`check_modseqs`]); a
//!    broken guarantee becomes an extra `<modseq rule: …>` line in that
//!    step, so it shows as a difference. Which messages CHANGEDSINCE and
//!    SEARCH MODSEQ select stays compared as is.
//! 5. An INTERNALDATE within 30 minutes of the test run becomes `<now>`:
//!    APPEND without a date lets the server use the time of the append
//!    (RFC 3501 §6.3.11).
//! 6. Unordered lists are sorted: capabilities (RFC 3501 §7.2.1 gives no
//!    order), flags and keywords in `FLAGS`/`PERMANENTFLAGS` and FETCH
//!    `FLAGS` (a flag list is a set, §2.3.2), mailbox attributes in LIST
//!    (§7.2.2), the items of one FETCH response (§7.4.2: any order) and of
//!    one STATUS response (§7.2.4).
//! 7. The capabilities only Dovecot 2.3 has ([`DOVECOT_ONLY`]) and the
//!    extensions only mailc has ([`MAILC_ONLY`]) are removed from capability
//!    lists: each server advertises what it implements, and the scripts only
//!    use the extensions both advertise. So is STARTTLS ([`CONFIG_ONLY`]):
//!    Dovecot runs without TLS here.
//! 8. A string is compared by its contents, whether sent quoted or as a
//!    literal (RFC 3501 §4.3: the forms are interchangeable); a string whose
//!    contents would be a valid atom (and is not NIL) compares equal to that
//!    atom, since astring positions take either (§9, `astring`).
//! 9. The contents of `* ID (...)` become `<server's own>` (RFC 2971
//!    §3.1: the server describes itself; only NIL versus a list counts).
//! 10. After LOGIN and AUTHENTICATE, a `[CAPABILITY ...]` code in the
//!     tagged OK becomes an untagged `* CAPABILITY ...` before it (done by
//!     the runner): RFC 3501 §6.2.2/§6.2.3 let the server send the new
//!     capabilities either way.
//! 11. In BODY and BODYSTRUCTURE, the media type, subtype, parameter names,
//!     transfer encoding and disposition type are compared without case:
//!     MIME defines them case-insensitive (RFC 2045 §5.1, §6.1; RFC 2183 §2);
//!     parameter values and everything else keep their case.
//! 12. The registered keywords mailc declares for every mailbox
//!     ([`PREDECLARED`]) are dropped from `* FLAGS` and `[PERMANENTFLAGS]`:
//!     RFC 9051 §2.3.2 asks servers to support them, and which flags a
//!     FLAGS response lists beyond those in use is the server's choice
//!     (RFC 3501 §7.2.6). A message's own FLAGS keep them.
//! 13. Continuation requests (`+`) are not compared: whether a server
//!     refuses a command before or after the client sends a literal is its
//!     choice (RFC 3501 §7.5); the final answer is compared.
//! 14. The advisory codes only Dovecot sends ([`DOVECOT_ONLY_CODES`]) are
//!     dropped from status responses.
//!
//! Order matters elsewhere and is compared as sent, except where the RFC
//! leaves it open for a whole command's untagged responses, which the
//! runner sorts: SELECT/EXAMINE (RFC 3501 §6.3.1 lists them without
//! order) and LIST/LSUB (§6.3.8 gives none).

/// Capabilities Dovecot 2.3 advertises that mailc does not implement (and
/// the scripts do not use).
pub const DOVECOT_ONLY: &[&str] = &[
    "LOGIN-REFERRALS", // RFC 2221
    "THREAD=REFS",     // draft, Dovecot's own
    "URL-PARTIAL",     // RFC 5550
    "CATENATE",        // RFC 4469
    "I18NLEVEL=1",     // RFC 5255
    "ESORT",           // RFC 5267
    "SEARCHRES",       // RFC 5182
    "CONTEXT=SEARCH",  // RFC 5267
    "SNIPPET=FUZZY",   // draft (pre-RFC 8970)
    "PREVIEW=FUZZY",   // draft
    "PREVIEW",         // RFC 8970
    "SAVEDATE",        // RFC 8514
    "NOTIFY",          // RFC 5465
];

/// Capabilities that differ because of the test's configuration, not the
/// servers: Dovecot runs with `ssl = no` (no certificate to set up), mailc's
/// listener has its self-signed certificate and offers STARTTLS.
pub const CONFIG_ONLY: &[&str] = &["STARTTLS"];

/// Response codes only Dovecot sends, dropped from its status responses
/// (the status stays): advisory codes RFC 9051 §7.1 makes optional.
pub const DOVECOT_ONLY_CODES: &[&str] = &[
    "CLIENTBUG", // RFC 9051 §7.1: "the server has detected a client bug"
];

/// Extensions mailc advertises beyond Dovecot 2.3, each an RFC mailc
/// implements; the scripts do not use them (Dovecot could not answer).
pub const MAILC_ONLY: &[&str] = &[
    "IMAP4rev2",         // RFC 9051 (Dovecot 2.3 is IMAP4rev1 only)
    "UTF8=ACCEPT",       // RFC 6855
    "QUOTA=RES-STORAGE", // RFC 9208 §4.1 (Dovecot 2.3 implements RFC 2087)
    "APPENDLIMIT",       // RFC 7889 (APPENDLIMIT=n; the number is mailc's limit)
];

/// Keywords mailc declares in every mailbox's FLAGS (rule 12).
pub const PREDECLARED: &[&str] = &["$Forwarded", "$MDNSent", "$Junk", "$NotJunk"];

#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<V>),
    /// A mod-sequence, kept as a placeholder for the second pass
    /// ([`check_modseqs`]), which checks and then masks it.
    ModSeq(u64),
}

/// Values of one response, tokenised. An atom runs to a space, paren or
/// quote, and takes a `[...]` section (with spaces and parens inside, as in
/// `BODY[HEADER.FIELDS (SUBJECT)]`) and a following `<n>` along.
pub fn tokens(input: &[u8]) -> Vec<V> {
    let mut pos = 0;
    values(input, &mut pos, false)
}

fn values(s: &[u8], pos: &mut usize, in_list: bool) -> Vec<V> {
    let mut out = Vec::new();
    while *pos < s.len() {
        match s[*pos] {
            b' ' | b'\r' | b'\n' => *pos += 1,
            b'(' => {
                *pos += 1;
                out.push(V::List(values(s, pos, true)));
            }
            b')' => {
                *pos += 1;
                if in_list {
                    return out;
                }
                out.push(V::Atom(")".into()));
            }
            b'"' => out.push(V::Str(quoted(s, pos))),
            b'{' => match literal(s, pos) {
                Some(v) => out.push(V::Str(v)),
                None => out.push(atom(s, pos)),
            },
            b'~' if s.get(*pos + 1) == Some(&b'{') => {
                let save = *pos;
                *pos += 1;
                match literal(s, pos) {
                    Some(v) => out.push(V::Str(v)),
                    None => {
                        *pos = save;
                        out.push(atom(s, pos));
                    }
                }
            }
            _ => out.push(atom(s, pos)),
        }
    }
    out
}

fn quoted(s: &[u8], pos: &mut usize) -> Vec<u8> {
    let mut out = Vec::new();
    *pos += 1;
    while *pos < s.len() {
        match s[*pos] {
            b'\\' if *pos + 1 < s.len() => {
                out.push(s[*pos + 1]);
                *pos += 2;
            }
            b'"' => {
                *pos += 1;
                return out;
            }
            b => {
                out.push(b);
                *pos += 1;
            }
        }
    }
    out
}

fn literal(s: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let start = *pos;
    let close = s[start..].iter().position(|&b| b == b'}')? + start;
    let n: usize = std::str::from_utf8(&s[start + 1..close])
        .ok()?
        .parse()
        .ok()?;
    if s.get(close + 1..close + 3) != Some(b"\r\n") || s.len() < close + 3 + n {
        return None;
    }
    *pos = close + 3 + n;
    Some(s[close + 3..close + 3 + n].to_vec())
}

fn atom(s: &[u8], pos: &mut usize) -> V {
    let start = *pos;
    let mut depth = 0usize;
    while *pos < s.len() {
        let b = s[*pos];
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b' ' | b'(' | b')' | b'"' | b'\r' | b'\n' if depth == 0 => break,
            _ => {}
        }
        *pos += 1;
    }
    if *pos == start {
        *pos += 1;
    }
    V::Atom(String::from_utf8_lossy(&s[start..*pos]).into_owned())
}

/// Contents that could have been sent as an atom (rule 8).
fn atom_like(b: &[u8]) -> bool {
    !b.is_empty()
        && !b.eq_ignore_ascii_case(b"NIL")
        && b.iter()
            .all(|&c| c.is_ascii_graphic() && !b"(){%*\"\\]".contains(&c))
}

/// Rule 11: the case-insensitive parts of a body structure, uppercased.
fn body_structure(v: &mut V) {
    let V::List(items) = v else { return };
    if matches!(items.first(), Some(V::List(_))) {
        // multipart: parts, then subtype, then extension data
        let mut i = 0;
        while i < items.len() && matches!(items[i], V::List(_)) {
            body_structure(&mut items[i]);
            i += 1;
        }
        if let Some(sub) = items.get_mut(i) {
            upper_str(sub);
        }
        if let Some(params) = items.get_mut(i + 1) {
            param_names(params);
        }
        if let Some(disp) = items.get_mut(i + 2) {
            disposition(disp);
        }
        return;
    }
    let is_message = matches!(
        (items.first(), items.get(1)),
        (Some(V::Str(t)), Some(V::Str(s)))
            if t.eq_ignore_ascii_case(b"message") && s.eq_ignore_ascii_case(b"rfc822")
    );
    let is_text = matches!(items.first(), Some(V::Str(t)) if t.eq_ignore_ascii_case(b"text"));
    for i in [0, 1, 5] {
        if let Some(x) = items.get_mut(i) {
            upper_str(x);
        }
    }
    if let Some(params) = items.get_mut(2) {
        param_names(params);
    }
    // Extension data starts after the basic fields (7), plus lines for
    // text (8), plus envelope, body and lines for message/rfc822 (10);
    // then md5, disposition.
    let ext = if is_message {
        if let Some(inner) = items.get_mut(8) {
            body_structure(inner);
        }
        10
    } else if is_text {
        8
    } else {
        7
    };
    if let Some(disp) = items.get_mut(ext + 1) {
        disposition(disp);
    }
}

fn upper_str(v: &mut V) {
    if let V::Str(b) = v {
        b.make_ascii_uppercase();
    }
}

fn param_names(v: &mut V) {
    if let V::List(p) = v {
        for (i, x) in p.iter_mut().enumerate() {
            if i % 2 == 0 {
                upper_str(x);
            }
        }
    }
}

fn disposition(v: &mut V) {
    if let V::List(d) = v {
        if let Some(t) = d.get_mut(0) {
            upper_str(t);
        }
        if let Some(p) = d.get_mut(1) {
            param_names(p);
        }
    }
}

/// Rule 12: the predeclared keywords out of a FLAGS or PERMANENTFLAGS list.
fn drop_predeclared(v: &mut V) {
    if let V::List(items) = v {
        items.retain(
            |x| !matches!(x, V::Atom(a) if PREDECLARED.iter().any(|p| p.eq_ignore_ascii_case(a))),
        );
    }
}

pub fn render(v: &[V]) -> String {
    let mut out = String::new();
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        render_one(x, &mut out);
    }
    out
}

fn render_one(v: &V, out: &mut String) {
    match v {
        V::Atom(a) => out.push_str(a),
        V::Str(b) if atom_like(b) => out.push_str(&String::from_utf8_lossy(b)),
        V::Str(b) => {
            out.push('"');
            for &c in b {
                match c {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    b'\r' => out.push_str("\\r"),
                    b'\n' => out.push_str("\\n"),
                    b'\t' => out.push_str("\\t"),
                    0x20..=0x7e => out.push(c as char),
                    _ => out.push_str(&format!("\\x{c:02x}")),
                }
            }
            out.push('"');
        }
        V::List(items) => {
            out.push('(');
            out.push_str(&render(items));
            out.push(')');
        }
        V::ModSeq(n) => out.push_str(&format!("\u{1}{n}\u{1}")),
    }
}

/// What the normaliser needs to know about the run.
pub struct Context {
    /// Unix time of the run (rule 5).
    pub now: i64,
}

fn upper(v: &V) -> Option<String> {
    match v {
        V::Atom(a) => Some(a.to_ascii_uppercase()),
        _ => None,
    }
}

fn number(v: &V) -> Option<u64> {
    match v {
        V::Atom(a) => a.parse().ok(),
        _ => None,
    }
}

fn sort_list(v: &mut V) {
    if let V::List(items) = v {
        items.sort_by_key(|x| render(std::slice::from_ref(x)).to_ascii_lowercase());
    }
}

fn modseq(v: &mut V) {
    if let Some(n) = number(v) {
        *v = V::ModSeq(n);
    }
}

/// Capability atoms: Dovecot-only and mailc-only ones removed (rule 7),
/// sorted (rule 6).
fn capabilities(items: &[V]) -> Vec<V> {
    let mut caps: Vec<V> = items
        .iter()
        .filter(|c| {
            let Some(name) = upper(c) else { return true };
            let name = name.split('=').next().unwrap_or("").to_string();
            let full = upper(c).unwrap();
            !DOVECOT_ONLY.iter().any(|d| d.eq_ignore_ascii_case(&full))
                && !CONFIG_ONLY.iter().any(|d| d.eq_ignore_ascii_case(&full))
                && !MAILC_ONLY
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&full) || m.eq_ignore_ascii_case(&name))
        })
        .cloned()
        .collect();
    caps.sort_by_key(|c| render(std::slice::from_ref(c)).to_ascii_uppercase());
    caps
}

/// A response code's contents (inside `[...]`).
fn code(content: &[u8], ctx: &Context) -> String {
    let mut v = tokens(content);
    let name = v.first().and_then(upper).unwrap_or_default();
    match name.as_str() {
        "CAPABILITY" => {
            let caps = capabilities(&v[1..]);
            v.truncate(1);
            v.extend(caps);
        }
        "UIDVALIDITY" | "APPENDUID" | "COPYUID" if v.len() > 1 => {
            v[1] = V::Atom("<uidvalidity>".into());
        }
        "HIGHESTMODSEQ" if v.len() > 1 => modseq(&mut v[1]),
        "PERMANENTFLAGS" => {
            if let Some(l) = v.get_mut(1) {
                drop_predeclared(l);
                sort_list(l);
            }
        }
        _ => {}
    }
    let _ = ctx;
    render(&v)
}

/// Splits `[CODE ...] text` into the code's contents; text is dropped.
fn split_code(rest: &[u8]) -> Option<&[u8]> {
    if rest.first() != Some(&b'[') {
        return None;
    }
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut i = 0;
    while i < rest.len() {
        let b = rest[i];
        if in_quote {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_quote = false;
            }
        } else {
            match b {
                b'"' => in_quote = true,
                b'[' => depth += 1,
                b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&rest[1..i]);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn status_line(status: &str, rest: &[u8], ctx: &Context) -> String {
    match split_code(rest).filter(|c| {
        let name = String::from_utf8_lossy(c).to_ascii_uppercase();
        !DOVECOT_ONLY_CODES.contains(&name.as_str())
    }) {
        Some(c) => format!("{status} [{}]", code(c, ctx)),
        None => status.to_string(),
    }
}

fn word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s.strip_suffix(b"\r\n").unwrap_or(s), b""),
    }
}

const STATUSES: [&str; 5] = ["OK", "NO", "BAD", "BYE", "PREAUTH"];

/// One response, normalised. `tag` is the tag of the command it answers.
pub fn response(raw: &[u8], tag: &str, ctx: &Context) -> String {
    if raw.starts_with(b"+") {
        return "+".into();
    }
    let (first, rest) = word(raw);
    let untagged = first == b"*";
    if !untagged && first != tag.as_bytes() {
        return format!("?? {}", render(&tokens(raw)));
    }
    let (second, after) = word(rest);
    let second_u = String::from_utf8_lossy(second).to_ascii_uppercase();
    let prefix = if untagged { "* " } else { "" };
    if STATUSES.contains(&second_u.as_str()) {
        return format!("{prefix}{}", status_line(&second_u, after, ctx));
    }
    if !untagged {
        return format!("?? {}", render(&tokens(raw)));
    }
    let mut v = tokens(rest);
    untagged_data(&mut v, tag, ctx);
    format!("* {}", render(&v))
}

fn untagged_data(v: &mut Vec<V>, tag: &str, ctx: &Context) {
    let name = v.first().and_then(upper).unwrap_or_default();
    match name.as_str() {
        "CAPABILITY" => {
            let caps = capabilities(&v[1..]);
            v.truncate(1);
            v.extend(caps);
        }
        "FLAGS" => {
            if let Some(l) = v.get_mut(1) {
                drop_predeclared(l);
                sort_list(l);
            }
        }
        "ID" => {
            if let Some(l @ V::List(_)) = v.get_mut(1) {
                *l = V::Atom("<server's own>".into());
            }
        }
        "LIST" | "LSUB" => {
            if let Some(l) = v.get_mut(1) {
                sort_list(l);
            }
        }
        "STATUS" => {
            if let Some(V::List(items)) = v.get_mut(2) {
                status_items(items);
            }
        }
        "SEARCH" | "SORT" => {
            // `(MODSEQ n)` at the end (RFC 7162 §3.1.5).
            if let Some(V::List(items)) = v.last_mut()
                && items.len() == 2
                && upper(&items[0]).as_deref() == Some("MODSEQ")
            {
                modseq(&mut items[1]);
            }
        }
        "ESEARCH" => {
            let mut i = 1;
            while i < v.len() {
                if let V::List(items) = &mut v[i]
                    && upper(&items[0]).as_deref() == Some("TAG")
                    && items.len() == 2
                {
                    let same = matches!(&items[1], V::Str(t) if t == tag.as_bytes());
                    items[1] = V::Atom(if same { "<tag>" } else { "<other tag>" }.into());
                }
                if upper(&v[i]).as_deref() == Some("MODSEQ") && i + 1 < v.len() {
                    modseq(&mut v[i + 1]);
                    i += 1;
                }
                i += 1;
            }
        }
        _ => {
            // `n FETCH (...)`
            if v.len() >= 3
                && number(&v[0]).is_some()
                && upper(&v[1]).as_deref() == Some("FETCH")
                && let V::List(items) = &mut v[2]
            {
                fetch_items(items, ctx);
            }
        }
    }
}

fn status_items(items: &mut Vec<V>) {
    let mut pairs: Vec<(V, V)> = Vec::new();
    let mut it = std::mem::take(items).into_iter();
    while let Some(k) = it.next() {
        let mut val = it.next().unwrap_or(V::Atom(String::new()));
        match upper(&k).as_deref() {
            Some("UIDVALIDITY") => val = V::Atom("<uidvalidity>".into()),
            Some("HIGHESTMODSEQ") => modseq(&mut val),
            _ => {}
        }
        pairs.push((k, val));
    }
    pairs.sort_by_key(|(k, _)| upper(k).unwrap_or_default());
    for (k, val) in pairs {
        items.push(k);
        items.push(val);
    }
}

fn fetch_items(items: &mut Vec<V>, ctx: &Context) {
    let mut pairs: Vec<(V, V)> = Vec::new();
    let mut it = std::mem::take(items).into_iter();
    while let Some(k) = it.next() {
        let mut val = it.next().unwrap_or(V::Atom(String::new()));
        match upper(&k).as_deref() {
            Some("FLAGS") => sort_list(&mut val),
            Some("BODY") | Some("BODYSTRUCTURE") => body_structure(&mut val),
            Some("MODSEQ") => {
                if let V::List(m) = &mut val
                    && let Some(x) = m.first_mut()
                {
                    modseq(x);
                }
            }
            Some("INTERNALDATE") => {
                if let V::Str(d) = &val
                    && let Some(t) = internaldate(d)
                    && (t - ctx.now).abs() < 30 * 60
                {
                    val = V::Atom("<now>".into());
                }
            }
            _ => {}
        }
        pairs.push((k, val));
    }
    pairs.sort_by_key(|(k, _)| upper(k).unwrap_or_default());
    for (k, val) in pairs {
        items.push(k);
        items.push(val);
    }
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` as Unix time.
pub fn internaldate(d: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(d).ok()?.trim();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let mut dp = date.split('-');
    let day: i64 = dp.next()?.trim().parse().ok()?;
    let mon = dp.next()?;
    let year: i64 = dp.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as i64 + 1;
    let mut tp = time.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let m: i64 = tp.next()?.parse().ok()?;
    let sec: i64 = tp.next()?.parse().ok()?;
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let z: i64 = zone.get(1..)?.parse().ok()?;
    let offset = sign * ((z / 100) * 3600 + (z % 100) * 60);
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn placeholders(l: &str) -> Vec<u64> {
    l.split('\u{1}')
        .skip(1)
        .step_by(2)
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Rule 4: checks, on one server's answers in script order (each with its
/// command text), what RFC 7162 guarantees about mod-sequences, per
/// mailbox: HIGHESTMODSEQ never goes down (§3.1.2.1, §3.1.4); a message a
/// STORE changed gets a MODSEQ above every one the mailbox had before that
/// STORE (§3.1.1: it grows with each change); a per-message MODSEQ never
/// exceeds a HIGHESTMODSEQ reported later without a change in between
/// (§3.1.2.1); FETCH (CHANGEDSINCE n) returns only messages whose MODSEQ is
/// above n (§3.1.4.1). A broken rule adds a `<modseq rule: …>` line to the
/// step; then every mod-sequence becomes `<modseq>`.
pub fn check_modseqs(steps: &mut [(&str, &mut Vec<String>)]) {
    use std::collections::HashMap;
    let mut high: HashMap<String, u64> = HashMap::new();
    let mut current = String::new();
    // Per-message MODSEQs seen since the last change, per mailbox.
    let mut since_change: HashMap<String, u64> = HashMap::new();
    for (text, lines) in steps.iter_mut() {
        let words: Vec<&str> = text.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let verb_at = usize::from(upper.first().map(String::as_str) == Some("UID"));
        let verb = upper.get(verb_at).cloned().unwrap_or_default();
        if matches!(verb.as_str(), "SELECT" | "EXAMINE") {
            current = mailbox_key(words.get(verb_at + 1).copied().unwrap_or(""));
        }
        let changes = matches!(
            verb.as_str(),
            "STORE" | "APPEND" | "EXPUNGE" | "MOVE" | "COPY"
        );
        let changedsince: Option<u64> = upper
            .iter()
            .position(|w| w.trim_start_matches('(') == "CHANGEDSINCE")
            .and_then(|i| upper.get(i + 1))
            .and_then(|w| w.trim_end_matches(')').parse().ok());
        let before = high.get(&current).copied().unwrap_or(0);
        let mut broken: Vec<String> = Vec::new();
        for l in lines.iter() {
            let mut vals = placeholders(l).into_iter();
            if l.starts_with("* STATUS ") {
                let mb = mailbox_key(l.split_whitespace().nth(2).unwrap_or(""));
                if let Some(n) = vals.next() {
                    let h = high.entry(mb.clone()).or_insert(0);
                    if n < *h {
                        broken.push(format!("HIGHESTMODSEQ of {mb} went down"));
                    }
                    if since_change.get(&mb).is_some_and(|&m| m > n) {
                        broken.push("a message MODSEQ above HIGHESTMODSEQ".into());
                    }
                    *h = (*h).max(n);
                }
            } else if l.contains("[HIGHESTMODSEQ ") {
                if let Some(n) = vals.next() {
                    let h = high.entry(current.clone()).or_insert(0);
                    if n < *h {
                        broken.push("HIGHESTMODSEQ went down".into());
                    }
                    if since_change.get(&current).is_some_and(|&m| m > n) {
                        broken.push("a message MODSEQ above HIGHESTMODSEQ".into());
                    }
                    *h = (*h).max(n);
                }
            } else if l.starts_with("* ")
                && l.contains(" FETCH ")
                && let Some(n) = vals.next()
            {
                if verb == "STORE" && n <= before {
                    broken.push("a STORE did not raise MODSEQ".into());
                }
                if changedsince.is_some_and(|c| n <= c) {
                    broken.push("CHANGEDSINCE returned an unchanged message".into());
                }
                let m = since_change.entry(current.clone()).or_insert(0);
                *m = (*m).max(n);
                if verb == "STORE" {
                    let h = high.entry(current.clone()).or_insert(0);
                    *h = (*h).max(n);
                }
            }
        }
        if changes {
            since_change.remove(&current);
        }
        broken.dedup();
        for b in broken {
            lines.push(format!("<modseq rule: {b}>"));
        }
    }
    for (_, lines) in steps.iter_mut() {
        for l in lines.iter_mut() {
            *l = mask_modseqs(l);
        }
    }
}

fn mailbox_key(name: &str) -> String {
    let n = name.trim_matches('"');
    if n.eq_ignore_ascii_case("INBOX") {
        "INBOX".into()
    } else {
        n.into()
    }
}

fn mask_modseqs(l: &str) -> String {
    let mut out = String::new();
    for (i, p) in l.split('\u{1}').enumerate() {
        if i % 2 == 1 {
            out.push_str("<modseq>");
        } else {
            out.push_str(p);
        }
    }
    out
}

/// The last UIDVALIDITY and mod-sequences a server sent, for `$UIDVALIDITY`,
/// `$HIGHESTMODSEQ` and `$MODSEQ` in later commands.
pub fn learn(raw: &[u8], vars: &mut std::collections::HashMap<&'static str, String>) {
    let text = String::from_utf8_lossy(raw);
    let find_num = |key: &str| -> Option<String> {
        let i = text.find(key)? + key.len();
        let n: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        (!n.is_empty()).then_some(n)
    };
    if let Some(n) = find_num("[UIDVALIDITY ").or_else(|| find_num("UIDVALIDITY ")) {
        vars.insert("UIDVALIDITY", n);
    }
    if let Some(n) = find_num("HIGHESTMODSEQ ") {
        vars.insert("HIGHESTMODSEQ", n);
    }
    // `$MODSEQ`: the smallest per-message MODSEQ of the answer, i.e. the
    // state before any change that answer reports, whether the server gave
    // the batch one mod-sequence or one per message (rule 4).
    let smallest = text
        .match_indices("MODSEQ (")
        .filter_map(|(i, k)| {
            let n: String = text[i + k.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            n.parse::<u64>().ok()
        })
        .min();
    if let Some(n) = smallest {
        vars.insert("MODSEQ", n.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> String {
        let ctx = Context { now: 1_800_000_000 };
        let mut l = vec![response(raw.as_bytes(), "a7", &ctx)];
        check_modseqs(&mut [("NOOP", &mut l)]);
        l.pop().unwrap()
    }

    #[test]
    fn status_text_goes_code_stays() {
        assert_eq!(
            n("a7 OK [READ-WRITE] Select completed (0.001 secs).\r\n"),
            "OK [READ-WRITE]"
        );
        assert_eq!(n("a7 NO Mailbox doesn't exist: x\r\n"), "NO");
        assert_ne!(n("a7 NO x\r\n"), n("a7 BAD x\r\n"));
        assert_ne!(n("a7 NO [TRYCREATE] x\r\n"), n("a7 NO x\r\n"));
        assert_eq!(
            n("* OK [UIDVALIDITY 1796276104] UIDs valid\r\n"),
            "* OK [UIDVALIDITY <uidvalidity>]"
        );
        assert_eq!(
            n("a7 OK [COPYUID 38 1:3 7:9] done\r\n"),
            "OK [COPYUID <uidvalidity> 1:3 7:9]"
        );
        // Only the value of UIDVALIDITY goes; the UIDs stay.
        assert_ne!(
            n("a7 OK [COPYUID 38 1:3 7:9] x\r\n"),
            n("a7 OK [COPYUID 38 1:3 7:10] x\r\n")
        );
    }

    #[test]
    fn capabilities_are_a_set_minus_the_listed_ones() {
        assert_eq!(
            n("* CAPABILITY IMAP4rev1 NOTIFY IDLE IMAP4rev2 APPENDLIMIT=4096 ENABLE\r\n"),
            n("* CAPABILITY ENABLE IDLE IMAP4rev1\r\n")
        );
        assert_ne!(n("* CAPABILITY IDLE MOVE\r\n"), n("* CAPABILITY IDLE\r\n"));
    }

    #[test]
    fn fetch_items_and_flags_are_sets_but_values_count() {
        assert_eq!(
            n("* 1 FETCH (UID 4 FLAGS (\\Seen \\Answered))\r\n"),
            n("* 1 FETCH (FLAGS (\\Answered \\Seen) UID 4)\r\n")
        );
        assert_ne!(
            n("* 1 FETCH (UID 4 FLAGS (\\Seen))\r\n"),
            n("* 1 FETCH (UID 5 FLAGS (\\Seen))\r\n")
        );
        // quoted or literal: the same string
        assert_eq!(
            n("* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {2}\r\nab)\r\n"),
            n("* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] \"ab\")\r\n")
        );
        assert_ne!(
            n("* 1 FETCH (BODY[] {3}\r\nabc)\r\n"),
            n("* 1 FETCH (BODY[] {3}\r\nabd)\r\n")
        );
    }

    /// One server's transcript of script 11's opening, `(command, raw
    /// answer lines)`, checked by rule 4; the answers come back normalised.
    fn checked(steps: &[(&str, &[&str])]) -> Vec<Vec<String>> {
        let ctx = Context { now: 0 };
        let mut ls: Vec<Vec<String>> = steps
            .iter()
            .map(|(_, a)| {
                a.iter()
                    .map(|r| response(format!("{r}\r\n").as_bytes(), "a", &ctx))
                    .collect()
            })
            .collect();
        let mut v: Vec<(&str, &mut Vec<String>)> =
            steps.iter().map(|(t, _)| *t).zip(ls.iter_mut()).collect();
        check_modseqs(&mut v);
        ls
    }

    fn flagged(ls: &[Vec<String>]) -> Vec<String> {
        ls.iter()
            .flatten()
            .filter(|l| l.starts_with("<modseq rule"))
            .cloned()
            .collect()
    }

    #[test]
    fn modseqs_masked_batch_or_per_message_alike() {
        // Dovecot: one mod-sequence per STORE batch; mailc: one per message.
        let batch = checked(&[
            ("SELECT INBOX (CONDSTORE)", &["* OK [HIGHESTMODSEQ 2] x"]),
            (
                "STORE 1:2 +FLAGS (\\Seen)",
                &[
                    "* 1 FETCH (FLAGS (\\Seen) MODSEQ (3))",
                    "* 2 FETCH (FLAGS (\\Seen) MODSEQ (3))",
                ],
            ),
            (
                "STATUS INBOX (HIGHESTMODSEQ)",
                &["* STATUS INBOX (HIGHESTMODSEQ 3)"],
            ),
        ]);
        let each = checked(&[
            ("SELECT INBOX (CONDSTORE)", &["* OK [HIGHESTMODSEQ 5] x"]),
            (
                "STORE 1:2 +FLAGS (\\Seen)",
                &[
                    "* 1 FETCH (FLAGS (\\Seen) MODSEQ (6))",
                    "* 2 FETCH (FLAGS (\\Seen) MODSEQ (7))",
                ],
            ),
            (
                "STATUS INBOX (HIGHESTMODSEQ)",
                &["* STATUS INBOX (HIGHESTMODSEQ 7)"],
            ),
        ]);
        assert!(flagged(&batch).is_empty(), "{batch:?}");
        assert_eq!(batch, each);
        assert_eq!(batch[1][0], "* 1 FETCH (FLAGS (\\Seen) MODSEQ (<modseq>))");
        assert_eq!(batch[0][0], "* OK [HIGHESTMODSEQ <modseq>]");
    }

    #[test]
    fn modseq_rules_still_catch_order_and_selection_errors() {
        // A STORE whose MODSEQ does not exceed the mailbox's earlier value.
        let stale = checked(&[
            ("SELECT INBOX (CONDSTORE)", &["* OK [HIGHESTMODSEQ 5] x"]),
            (
                "STORE 1 +FLAGS (\\Seen)",
                &["* 1 FETCH (FLAGS (\\Seen) MODSEQ (5))"],
            ),
        ]);
        assert_eq!(
            flagged(&stale),
            ["<modseq rule: a STORE did not raise MODSEQ>"]
        );
        // HIGHESTMODSEQ going down.
        let down = checked(&[
            (
                "STATUS INBOX (HIGHESTMODSEQ)",
                &["* STATUS INBOX (HIGHESTMODSEQ 9)"],
            ),
            ("SELECT INBOX (CONDSTORE)", &["* OK [HIGHESTMODSEQ 8] x"]),
        ]);
        assert_eq!(flagged(&down), ["<modseq rule: HIGHESTMODSEQ went down>"]);
        // A message MODSEQ above the HIGHESTMODSEQ reported after it.
        let above = checked(&[
            ("SELECT INBOX (CONDSTORE)", &["* OK [HIGHESTMODSEQ 10] x"]),
            ("FETCH 1:* (MODSEQ)", &["* 1 FETCH (MODSEQ (12))"]),
            (
                "STATUS INBOX (HIGHESTMODSEQ)",
                &["* STATUS INBOX (HIGHESTMODSEQ 10)"],
            ),
        ]);
        assert_eq!(
            flagged(&above),
            ["<modseq rule: a message MODSEQ above HIGHESTMODSEQ>"]
        );
        // CHANGEDSINCE selecting a message not changed after the value.
        let sel = checked(&[(
            "FETCH 1:* (FLAGS) (CHANGEDSINCE 4)",
            &[
                "* 1 FETCH (FLAGS () MODSEQ (4))",
                "* 2 FETCH (FLAGS () MODSEQ (6))",
            ],
        )]);
        assert_eq!(
            flagged(&sel),
            ["<modseq rule: CHANGEDSINCE returned an unchanged message>"]
        );
        // Per-mailbox: a lower HIGHESTMODSEQ in another mailbox is fine.
        let other = checked(&[
            ("SELECT INBOX (CONDSTORE)", &["* OK [HIGHESTMODSEQ 9] x"]),
            ("SELECT Drafts (CONDSTORE)", &["* OK [HIGHESTMODSEQ 1] x"]),
        ]);
        assert!(flagged(&other).is_empty());
        // Selection differences between servers stay visible.
        let one = checked(&[(
            "FETCH 1:* (FLAGS) (CHANGEDSINCE 4)",
            &["* 2 FETCH (FLAGS () MODSEQ (6))"],
        )]);
        let two = checked(&[(
            "FETCH 1:* (FLAGS) (CHANGEDSINCE 4)",
            &[
                "* 1 FETCH (FLAGS () MODSEQ (5))",
                "* 2 FETCH (FLAGS () MODSEQ (6))",
            ],
        )]);
        assert_ne!(one, two);
    }

    #[test]
    fn internaldate_near_now_only() {
        let now = internaldate(b"03-Dec-2026 05:40:00 +0000").unwrap();
        let ctx = Context { now };
        assert_eq!(
            response(
                b"* 1 FETCH (INTERNALDATE \"03-Dec-2026 06:45:00 +0100\")\r\n",
                "a",
                &ctx
            ),
            "* 1 FETCH (INTERNALDATE <now>)"
        );
        assert_eq!(
            response(
                b"* 1 FETCH (INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")\r\n",
                "a",
                &ctx
            ),
            "* 1 FETCH (INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")"
        );
        assert_eq!(internaldate(b" 1-Jan-1970 00:00:00 +0000"), Some(0));
    }

    #[test]
    fn esearch_tag() {
        assert_eq!(
            n("* ESEARCH (TAG \"a7\") UID COUNT 3 MODSEQ 55\r\n"),
            "* ESEARCH (TAG <tag>) UID COUNT 3 MODSEQ <modseq>"
        );
    }
}
