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
        format!("{name}: {}\r\n", fold_words(name.len() + 2, &clean))
    } else {
        format!("{name}: {}\r\n", encoded_words(&clean))
    }
}

/// ASCII words folded before 78 characters a line where a space allows.
fn fold_words(first: usize, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut line = first;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            if line + 1 + word.len() > 78 {
                out.push_str("\r\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
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
        assert!(unstructured_field("Subject", &"x".repeat(5000), 998).len() < 1010);
    }
}
