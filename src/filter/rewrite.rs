//! A Sieve tokenizer just good enough to find commands: comments, quoted
//! strings, `text:` multi-line strings, tags and identifiers (RFC 5228
//! §2.2–2.4). Used to run explicit `keep` as `fileinto "INBOX"` and to read
//! the extensions a script requires. A script it cannot tokenize is left
//! as it is: the compiler reports its errors.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Tag,
    Str(String),
    Punct(u8),
    Number,
}

/// Tokens with their byte offsets.
fn tokens(src: &[u8]) -> Vec<(usize, usize, Tok)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < src.len() && src[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if src.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < src.len() && !(src[i] == b'*' && src.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(src.len());
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut s = Vec::new();
                while i < src.len() && src[i] != b'"' {
                    if src[i] == b'\\' && i + 1 < src.len() {
                        i += 1;
                    }
                    s.push(src[i]);
                    i += 1;
                }
                i = (i + 1).min(src.len());
                out.push((start, i, Tok::Str(String::from_utf8_lossy(&s).into_owned())));
            }
            b':' => {
                let start = i;
                i += 1;
                while i < src.len() && (src[i].is_ascii_alphanumeric() || src[i] == b'_') {
                    i += 1;
                }
                out.push((start, i, Tok::Tag));
            }
            b'0'..=b'9' => {
                let start = i;
                while i < src.len() && src[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                out.push((start, i, Tok::Number));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < src.len() && (src[i].is_ascii_alphanumeric() || src[i] == b'_') {
                    i += 1;
                }
                let word = String::from_utf8_lossy(&src[start..i]).to_ascii_lowercase();
                if word == "text" && src.get(i) == Some(&b':') {
                    // Multi-line string: to the line holding only ".".
                    i += 1;
                    while i < src.len() && src[i] != b'\n' {
                        i += 1;
                    }
                    i += 1;
                    loop {
                        if i >= src.len() {
                            break;
                        }
                        let end = src[i..]
                            .iter()
                            .position(|&b| b == b'\n')
                            .map_or(src.len(), |p| i + p);
                        let line = &src[i..end];
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        i = (end + 1).min(src.len());
                        if line == b"." {
                            break;
                        }
                    }
                    out.push((start, i, Tok::Str(String::new())));
                } else {
                    out.push((start, i, Tok::Ident(word)));
                }
            }
            _ => {
                out.push((i, i + 1, Tok::Punct(c)));
                i += 1;
            }
        }
    }
    out
}

/// Whether the token at `k` starts a command (after `;`, `{`, `}` or at
/// the start).
fn command_position(toks: &[(usize, usize, Tok)], k: usize) -> bool {
    k == 0 || matches!(toks[k - 1].2, Tok::Punct(b';' | b'{' | b'}'))
}

/// The script with every `keep` command written `fileinto ... "INBOX"`
/// (its tagged arguments kept, the folder added before the `;`).
pub fn keep_as_fileinto(src: &[u8]) -> Vec<u8> {
    let toks = tokens(src);
    let mut edits: Vec<(usize, usize, &[u8])> = Vec::new();
    for (k, (start, end, t)) in toks.iter().enumerate() {
        if !matches!(t, Tok::Ident(w) if w == "keep") || !command_position(&toks, k) {
            continue;
        }
        // The `;` ending this command (brackets hold no `;`).
        let Some((semi, _, _)) = toks[k + 1..]
            .iter()
            .find(|(_, _, t)| matches!(t, Tok::Punct(b';' | b'{' | b'}')))
            .filter(|(_, _, t)| *t == Tok::Punct(b';'))
        else {
            continue;
        };
        edits.push((*start, *end, b"fileinto"));
        edits.push((*semi, *semi, b" \"INBOX\""));
    }
    let mut out = Vec::with_capacity(src.len() + edits.len() * 8);
    let mut at = 0;
    for (start, end, with) in edits {
        out.extend_from_slice(&src[at..start]);
        out.extend_from_slice(with);
        at = end;
    }
    out.extend_from_slice(&src[at..]);
    out
}

/// The script with the keys of every `:regex` match that uses the default
/// comparator (or names `i;ascii-casemap`) prefixed with `(?i)`: the regex
/// draft (draft-ietf-sieve-regex-01 §3) and Pigeonhole match them without
/// case, sieve-rs with case. Multi-line (`text:`) keys are left as written.
pub fn regex_casemap(src: &[u8]) -> Vec<u8> {
    let toks = tokens(src);
    let tag = |k: usize| -> String {
        let (start, end, _) = &toks[k];
        String::from_utf8_lossy(&src[*start..*end]).to_ascii_lowercase()
    };
    let mut inserts: Vec<usize> = Vec::new();
    for k in 0..toks.len() {
        if toks[k].2 != Tok::Tag || tag(k) != ":regex" {
            continue;
        }
        // The test's arguments: back to its name, on to `{`, `;`, `)` or a
        // `,` outside a string list.
        let mut first = k;
        while first > 0 && !matches!(toks[first - 1].2, Tok::Ident(_)) {
            first -= 1;
        }
        let mut last = k;
        let mut depth = 0usize;
        while last + 1 < toks.len() {
            match toks[last + 1].2 {
                Tok::Punct(b'[') => depth += 1,
                Tok::Punct(b']') => depth = depth.saturating_sub(1),
                Tok::Punct(b'{' | b';' | b')' | b'(') => break,
                Tok::Punct(b',') if depth == 0 => break,
                Tok::Ident(_) => break,
                _ => {}
            }
            last += 1;
        }
        let args = first..=last;
        let caseless = !args.clone().any(|j| {
            toks[j].2 == Tok::Tag
                && tag(j) == ":comparator"
                && matches!(toks.get(j + 1), Some((_, _, Tok::Str(c))) if !c.eq_ignore_ascii_case("i;ascii-casemap"))
        });
        if !caseless {
            continue;
        }
        // The key list is the last argument: one string, or a list.
        let keys: Vec<usize> = if toks[last].2 == Tok::Punct(b']') {
            let open = (first..last)
                .rev()
                .find(|&j| toks[j].2 == Tok::Punct(b'['))
                .unwrap_or(last);
            (open..last).collect()
        } else {
            vec![last]
        };
        for j in keys {
            let (start, end, t) = &toks[j];
            if matches!(t, Tok::Str(_)) && src[*start] == b'"' && *end > *start + 1 {
                inserts.push(start + 1);
            }
        }
    }
    let mut out = Vec::with_capacity(src.len() + inserts.len() * 4);
    let mut at = 0;
    for i in inserts {
        out.extend_from_slice(&src[at..i]);
        out.extend_from_slice(b"(?i)");
        at = i;
    }
    out.extend_from_slice(&src[at..]);
    out
}

/// The script without the `deleteheader` commands that name `Received` or
/// `Auto-Submitted`: deleting them would hide a message's trace and its
/// automatic nature from loop detection (RFC 5293 §9). Pigeonhole denies
/// these deletions too (with a warning); sieve-rs performs them. A field
/// name given by a variable is left as written.
pub fn protect_fields(src: &[u8]) -> Vec<u8> {
    let toks = tokens(src);
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for (k, (start, _, t)) in toks.iter().enumerate() {
        if !matches!(t, Tok::Ident(w) if w == "deleteheader") || !command_position(&toks, k) {
            continue;
        }
        let mut j = k + 1;
        let mut field: Option<&str> = None;
        let mut semi: Option<usize> = None;
        while let Some((s, e, t)) = toks.get(j) {
            match t {
                Tok::Tag => {
                    let tag = String::from_utf8_lossy(&src[*s..*e]).to_ascii_lowercase();
                    if tag == ":comparator" || tag == ":index" {
                        j += 1;
                    }
                }
                Tok::Str(name) if field.is_none() => field = Some(name),
                Tok::Punct(b';') => {
                    semi = Some(*e);
                    break;
                }
                Tok::Punct(b'{' | b'}') => break,
                _ => {}
            }
            j += 1;
        }
        if let (Some(name), Some(end)) = (field, semi)
            && ["received", "auto-submitted"]
                .iter()
                .any(|p| name.trim().eq_ignore_ascii_case(p))
        {
            cuts.push((*start, end));
        }
    }
    let mut out = Vec::with_capacity(src.len());
    let mut at = 0;
    for (start, end) in cuts {
        out.extend_from_slice(&src[at..start]);
        at = end;
    }
    out.extend_from_slice(&src[at..]);
    out
}

/// The extensions named by `require` commands: (line, column, name), the
/// position 1-based.
pub fn required(src: &[u8]) -> Vec<(usize, usize, String)> {
    let toks = tokens(src);
    let mut out = Vec::new();
    for (k, (_, _, t)) in toks.iter().enumerate() {
        if !matches!(t, Tok::Ident(w) if w == "require") || !command_position(&toks, k) {
            continue;
        }
        for (start, _, t) in toks[k + 1..].iter() {
            match t {
                Tok::Str(s) => {
                    let (line, column) = line_col(src, *start);
                    out.push((line, column, s.clone()));
                }
                Tok::Punct(b'[' | b',' | b']') => {}
                _ => break,
            }
        }
    }
    out
}

/// The position (line, column, 1-based) of the first `require` that
/// follows another command: RFC 5228 §3.2 makes that an error.
pub fn late_require(src: &[u8]) -> Option<(usize, usize)> {
    let toks = tokens(src);
    let mut other = false;
    for (k, (start, _, t)) in toks.iter().enumerate() {
        let Tok::Ident(w) = t else { continue };
        if !command_position(&toks, k) {
            continue;
        }
        if w != "require" {
            other = true;
        } else if other {
            return Some(line_col(src, *start));
        }
    }
    None
}

/// The position (line, column, 1-based) of the first command named
/// `name` (compared without case).
pub fn command(src: &[u8], name: &str) -> Option<(usize, usize)> {
    let toks = tokens(src);
    toks.iter().enumerate().find_map(|(k, (start, _, t))| {
        (matches!(t, Tok::Ident(w) if w.eq_ignore_ascii_case(name)) && command_position(&toks, k))
            .then(|| line_col(src, *start))
    })
}

/// The first of the grammar errors sieve-rs lets through: an empty test
/// list (`allof ()`: RFC 5228 §8.3 wants at least one test), a `set` of
/// a name that is not an identifier (RFC 5229 §3; names with a `.` are
/// namespaces, which sieve-rs checks) and a `redirect` to a literal
/// string that is not an address (RFC 5228 §4.2; sieve-rs skips it at
/// run time). (line, column, message).
pub fn grammar_error(src: &[u8]) -> Option<(usize, usize, String)> {
    let toks = tokens(src);
    for (k, (start, _, t)) in toks.iter().enumerate() {
        let Tok::Ident(w) = t else { continue };
        match w.as_str() {
            "allof" | "anyof"
                if matches!(toks.get(k + 1), Some((_, _, Tok::Punct(b'('))))
                    && matches!(toks.get(k + 2), Some((_, _, Tok::Punct(b')')))) =>
            {
                let (line, column) = line_col(src, *start);
                return Some((line, column, format!("\"{w}\" needs at least one test")));
            }
            "set" if command_position(&toks, k) => {
                let name = toks[k + 1..]
                    .iter()
                    .take_while(|(_, _, t)| !matches!(t, Tok::Punct(b';' | b'{' | b'}')))
                    .find_map(|(s, _, t)| match t {
                        Tok::Str(n) => Some((*s, n)),
                        _ => None,
                    });
                if let Some((at, name)) = name
                    && !name.contains('.')
                    && !is_identifier(name)
                {
                    let (line, column) = line_col(src, at);
                    return Some((line, column, format!("invalid variable name \"{name}\"")));
                }
            }
            "redirect" if command_position(&toks, k) => {
                let args: Vec<&(usize, usize, Tok)> = toks[k + 1..]
                    .iter()
                    .take_while(|(_, _, t)| !matches!(t, Tok::Punct(b';' | b'{' | b'}')))
                    .collect();
                let list = args
                    .iter()
                    .any(|(s, e, t)| *t == Tok::Tag && src[*s..*e].eq_ignore_ascii_case(b":list"));
                if let Some((at, _, Tok::Str(address))) = args.last()
                    && !list
                    && !address.contains("${")
                    && !is_address(address)
                {
                    let (line, column) = line_col(src, *at);
                    return Some((
                        line,
                        column,
                        format!("invalid redirect address \"{address}\""),
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// A single mailbox (`local@domain.tld`, optionally `Name <...>`), as
/// RFC 5228 §4.2 wants for redirect; what sieve-rs would skip at run time
/// (no `@`, no dot in the domain, several addresses) is refused here.
fn is_address(text: &str) -> bool {
    let inner = match (text.rfind('<'), text.rfind('>')) {
        (Some(a), Some(b)) if a < b => &text[a + 1..b],
        (None, None) => text,
        _ => return false,
    };
    let inner = inner.trim();
    let Some((local, domain)) = inner.rsplit_once('@') else {
        return false;
    };
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    !local.is_empty()
        && (quoted || !local.contains(|c: char| c.is_whitespace() || ",<>@\"".contains(c)))
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains(|c: char| c.is_whitespace() || ",<>@\"".contains(c))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn line_col(src: &[u8], offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(s: &str) -> String {
        String::from_utf8(keep_as_fileinto(s.as_bytes())).unwrap()
    }

    #[test]
    fn keep_commands_are_rewritten_with_their_tags() {
        assert_eq!(rw("keep;"), "fileinto \"INBOX\";");
        assert_eq!(
            rw("if true { KEEP :flags \"\\\\Seen\" ; } discard;"),
            "if true { fileinto :flags \"\\\\Seen\"  \"INBOX\"; } discard;"
        );
    }

    #[test]
    fn keep_in_strings_comments_and_tags_is_left_alone() {
        for s in [
            "# keep;\nstop;",
            "/* keep; */ stop;",
            "fileinto \"keep\";",
            "vacation text:\nkeep;\n.\n;",
            "set \"x\" \"keep\"; stop;",
            "if header :is \"x\" \"y\" { stop; }",
        ] {
            assert_eq!(rw(s), s);
        }
    }

    #[test]
    fn a_require_after_another_command_is_found() {
        assert_eq!(late_require(b"require \"a\";\nrequire \"b\"; keep;"), None);
        assert_eq!(
            late_require(b"keep;\n  require \"fileinto\";"),
            Some((2, 3))
        );
        assert_eq!(late_require(b"if true { require \"x\"; }"), Some((1, 11)));
        assert_eq!(late_require(b"# keep;\nrequire \"x\";"), None);
    }

    #[test]
    fn regex_keys_match_without_case_unless_the_comparator_says_octet() {
        let rx = |s: &str| String::from_utf8(regex_casemap(s.as_bytes())).unwrap();
        assert_eq!(
            rx("if header :regex \"subject\" \"^a$\" { stop; }"),
            "if header :regex \"subject\" \"(?i)^a$\" { stop; }"
        );
        assert_eq!(
            rx("if header :regex [\"to\", \"cc\"] [\"a\", \"b\"] { stop; }"),
            "if header :regex [\"to\", \"cc\"] [\"(?i)a\", \"(?i)b\"] { stop; }"
        );
        assert_eq!(
            rx("if anyof (address :all :regex \"from\" \"x\", true) { stop; }"),
            "if anyof (address :all :regex \"from\" \"(?i)x\", true) { stop; }"
        );
        assert_eq!(
            rx("if header :comparator \"i;ascii-casemap\" :regex \"s\" \"x\" { stop; }"),
            "if header :comparator \"i;ascii-casemap\" :regex \"s\" \"(?i)x\" { stop; }"
        );
        for same in [
            "if header :regex :comparator \"i;octet\" \"subject\" \"^a$\" { stop; }",
            "if header :contains \"subject\" \"^a$\" { stop; }",
            "# :regex \"x\"\nstop;",
        ] {
            assert_eq!(rx(same), same);
        }
    }

    #[test]
    fn deleting_received_or_auto_submitted_is_left_out() {
        let pf = |s: &str| String::from_utf8(protect_fields(s.as_bytes())).unwrap();
        assert_eq!(pf("deleteheader \"Received\"; keep;"), " keep;");
        assert_eq!(
            pf("if true { deleteheader :index 1 :comparator \"i;octet\" \"auto-submitted\"; }"),
            "if true {  }"
        );
        for same in [
            "deleteheader \"x-received\";",
            "deleteheader :matches \"subject\" \"received\";",
            "addheader \"Received\" \"x\";",
            "deleteheader \"${name}\";",
        ] {
            assert_eq!(pf(same), same);
        }
    }

    #[test]
    fn empty_test_lists_and_bad_variable_names_are_found() {
        let at = |s: &str| grammar_error(s.as_bytes()).map(|(l, c, _)| (l, c));
        assert_eq!(at("if allof () { keep; }"), Some((1, 4)));
        assert_eq!(at("keep;\nif anyof ( ) { keep; }"), Some((2, 4)));
        assert_eq!(
            at("require \"variables\";\nset :lower \"a-b\" \"x\";"),
            Some((2, 12))
        );
        assert_eq!(
            at("require \"variables\";\nset \"9a\" \"x\";"),
            Some((2, 5))
        );
        assert_eq!(at("redirect \"not an address\";"), Some((1, 10)));
        assert_eq!(at("redirect :copy \"a@b.c, d@e.f\";"), Some((1, 16)));
        assert_eq!(at("redirect \"user\";"), Some((1, 10)));
        for fine in [
            "redirect \"a@b.c\";",
            "redirect :copy \"Carol <carol@example.net>\";",
            "redirect \"\\\"x y\\\"@example.net\";",
            "redirect \"${to}\";",
            "if allof (true) { keep; }",
            "require \"variables\"; set :lower \"a_b9\" \"x-y\"; set \"_\" \"\";",
            "require \"variables\"; set \"env.x\" \"y\";",
            "fileinto \"set\"; # set \"a-b\" \"x\"",
        ] {
            assert_eq!(at(fine), None, "{fine}");
        }
    }

    #[test]
    fn required_extensions_with_positions() {
        let got = required(b"require [\"fileinto\",\n \"vnd.x\"];\nrequire \"body\";");
        assert_eq!(
            got,
            [
                (1, 10, "fileinto".to_string()),
                (2, 2, "vnd.x".to_string()),
                (3, 9, "body".to_string())
            ]
        );
    }
}
