//! Response encoding helpers: strings as quoted or literal, NIL, lists.

/// Appends `s` as a quoted string when it can be one, else as a literal.
/// With `utf8` (IMAP4rev2 or UTF8=ACCEPT), UTF-8 text may be quoted.
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let quotable = s.len() <= 1024
        && s.iter()
            .all(|&b| b >= 0x20 && b != 0x7f && (b < 0x80 || utf8))
        && (!utf8 || std::str::from_utf8(s).is_ok());
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// A string or NIL.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, utf8: bool) {
    match s {
        Some(s) => string(out, s, utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name (already in the client's encoding): an atom when it is
/// one, else a string. INBOX is always sent as such.
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    let atom = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b) && b != b'{');
    if atom {
        out.extend_from_slice(name.as_bytes());
    } else {
        string(out, name.as_bytes(), utf8);
    }
}

/// A line of text for a status response: printable ASCII only (what
/// every client can take).
pub fn text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                ' '
            } else if c.is_ascii() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Numbers as a compact sequence set (`1:3,5`), sorted input.
pub fn seq_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end + 1 {
            i += 1;
            end = nums[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let mut o = Vec::new();
        string(&mut o, b"a \"b\"", false);
        assert_eq!(o, b"\"a \\\"b\\\"\"");
        o.clear();
        string(&mut o, b"x\r\ny", false);
        assert_eq!(o, b"{4}\r\nx\r\ny");
        o.clear();
        string(&mut o, "ü".as_bytes(), false);
        assert_eq!(o, b"{2}\r\n\xc3\xbc");
        o.clear();
        string(&mut o, "ü".as_bytes(), true);
        assert_eq!(o, "\"ü\"".as_bytes());
        assert_eq!(seq_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    }
}
