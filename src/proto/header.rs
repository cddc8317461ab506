//! Header field text (RFC 5322, RFC 2047) as pure functions.

/// `=?utf-8?b?...?=` words of at most 75 characters (RFC 2047 §2),
/// folded, each holding whole characters.
pub fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?utf-8?b?{}?=", super::sasl::base64_encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// An unstructured field (`Subject`) from text that may come from anywhere:
/// control characters (CR and LF among them) become spaces, runs of
/// whitespace one space, at most `max` characters are kept, and non-ASCII
/// text is written as encoded words. CRLF-terminated.
pub fn unstructured_field(name: &str, text: &str, max: usize) -> String {
    let mut clean = String::with_capacity(text.len().min(max * 4));
    let mut space = false;
    for c in text.chars().take(max) {
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !clean.is_empty() {
            clean.push(' ');
        }
        space = false;
        clean.push(c);
    }
    if clean.is_ascii() {
        let mut field = String::with_capacity(clean.len() + name.len() + 8);
        folded_field(&mut field, name, &clean);
        field
    } else {
        format!("{name}: {}\r\n", encoded_words(&clean))
    }
}

/// A field whose value may be long (a DSN's diagnostic, a subject): folded
/// at spaces so no line passes 78 characters where it can be helped.
pub fn folded_field(out: &mut String, name: &str, value: &str) {
    let mut line_len = name.len() + 1;
    out.push_str(name);
    out.push(':');
    for word in value.split(' ').filter(|w| !w.is_empty()).flat_map(chunks) {
        if line_len + 1 + word.len() > 78 && line_len > name.len() + 1 {
            out.push_str("\r\n   ");
            line_len = 3;
        } else {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out.push_str("\r\n");
}

/// A word cut into pieces of at most 72 characters, so that no line passes
/// the 998-octet limit whatever the text (a remote server's reply).
pub fn chunks(word: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = word;
    while rest.chars().count() > 72 {
        let cut = rest.char_indices().nth(72).map_or(rest.len(), |(i, _)| i);
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_hold_whole_characters() {
        assert_eq!(encoded_words("Zoë"), "=?utf-8?b?Wm/Dqw==?=");
        let long = "é".repeat(40);
        let words = encoded_words(&long);
        assert_eq!(words.matches("=?utf-8?b?").count(), 2);
        assert!(words.lines().all(|l| l.trim_end().len() <= 76), "{words}");
    }

    #[test]
    fn unstructured_fields_are_one_clean_folded_field() {
        assert_eq!(
            unstructured_field("Subject", "***SPAM*** cheap\r\nBcc: x@y\tnow", 100),
            "Subject: ***SPAM*** cheap Bcc: x@y now\r\n"
        );
        assert_eq!(
            unstructured_field("Subject", "[SPAM] Zoë", 100),
            "Subject: =?utf-8?b?W1NQQU1dIFpvw6s=?=\r\n"
        );
        let long = unstructured_field("Subject", &"word ".repeat(300), 1000);
        assert!(long.lines().all(|l| l.len() <= 78), "{long}");
        assert_eq!(long.matches("word").count(), 200);
        // At most `max` characters kept, and no line too long even for
        // one long word.
        let huge = unstructured_field("Subject", &"x".repeat(5000), 998);
        assert_eq!(huge.matches('x').count(), 998);
        assert!(huge.lines().all(|l| l.len() <= 100), "{huge}");
    }

    #[test]
    fn folding_keeps_words() {
        let mut s = String::new();
        folded_field(
            &mut s,
            "Diagnostic-Code",
            &format!("smtp; 550 {}", "word ".repeat(30)),
        );
        assert!(s.lines().all(|l| l.len() <= 78), "{s}");
        assert_eq!(s.matches("word").count(), 30);
        assert!(s.lines().skip(1).all(|l| l.starts_with("   ")));
        let mut s = String::new();
        folded_field(&mut s, "Diagnostic-Code", &"x".repeat(1500));
        assert!(s.lines().all(|l| l.len() <= 100), "{s}");
        assert_eq!(s.matches('x').count(), 1500);
    }
}
