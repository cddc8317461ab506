//! The line of a script error that sieve-rs 0.7 reports without one: an
//! unknown command is reported at the enclosing block's position (line 0
//! at the top level). Clients show the line, so it is found here: the
//! first place the unknown word stands where a command starts (the start
//! of the script, or after `;`, `{` or `}`), outside strings and comments.

use crate::filter::ScriptError;

/// The 1-based line to report, if known.
pub fn error_line(source: &[u8], e: &ScriptError) -> Option<usize> {
    if e.line > 0 {
        return Some(e.line);
    }
    let word = e
        .message
        .strip_prefix("Expected token \"command\" but found \"")?
        .strip_suffix('"')?;
    command_line(source, word.as_bytes())
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn command_line(src: &[u8], word: &[u8]) -> Option<usize> {
    let mut line = 1;
    let mut at_command = true;
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'#' => {
                while i < src.len() && src[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if src.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < src.len() && !(src[i] == b'*' && src.get(i + 1) == Some(&b'/')) {
                    line += usize::from(src[i] == b'\n');
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < src.len() && src[i] != b'"' {
                    line += usize::from(src[i] == b'\n');
                    i += if src[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                at_command = false;
            }
            b';' | b'{' | b'}' => {
                at_command = true;
                i += 1;
            }
            _ if is_ident(b) => {
                let start = i;
                while i < src.len() && is_ident(src[i]) {
                    i += 1;
                }
                if at_command && src[start..i].eq_ignore_ascii_case(word) {
                    return Some(line);
                }
                at_command = false;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(word: &str) -> ScriptError {
        ScriptError {
            line: 0,
            column: 0,
            kind: crate::filter::ErrorKind::Syntax,
            message: format!("Expected token \"command\" but found \"{word}\""),
        }
    }

    #[test]
    fn finds_the_unknown_command() {
        let src =
            b"# foo here is a comment\nrequire \"foo\";\nif true {\n  keep; /* foo\n */ foo;\n}\n";
        assert_eq!(error_line(src, &unknown("foo")), Some(5));
        assert_eq!(
            error_line(b"fileinto \"x\";\nfoo bar;", &unknown("foo")),
            Some(2)
        );
        assert_eq!(error_line(b"keep;", &unknown("foo")), None);
        let known = ScriptError {
            line: 3,
            ..unknown("x")
        };
        assert_eq!(error_line(b"", &known), Some(3));
    }

    #[test]
    fn through_the_compiler() {
        let src = b"require \"fileinto\";\nkeep;\n\nfileinot \"Junk\";\n";
        let e = crate::filter::compile("t", src, &crate::filter::Limits::default()).unwrap_err();
        assert_eq!(error_line(src, &e), Some(4), "{e:?}");
    }
}
