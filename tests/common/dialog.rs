//! What the dialogue tests (`tests/dialogs/{smtp,pop3,imap}/*.txt`) share:
//! the escapes of `C~` lines and the loop that replays every file, compares
//! the transcript and, with `MAILC_BLESS=1`, rewrites it.

use std::path::Path;

/// `\r`, `\n`, `\t`, `\\` and `\xHH` (any byte) in a `C~` line.
pub fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                // `\xNN`: any byte (8-bit and invalid UTF-8 content).
                b'x' if b.len() >= i + 4 => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex escape");
                    out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                    i += 4;
                    continue;
                }
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The transcript lines of a dialogue file (comments and blank lines left
/// out).
pub fn expected(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            l.starts_with("C: ")
                || l.starts_with("C~ ")
                || l.starts_with("S: ")
                || *l == "S:"
                || l.starts_with("*: ")
                || *l == "!drop"
        })
        .map(str::to_string)
        .collect()
}

/// Replays every `*.txt` of `dir` with `run` (at least `min` files) and
/// fails listing the first differing line of each; with `MAILC_BLESS` set
/// rewrites the files instead. `check` may add failures of its own for a
/// transcript (a response an independent parser rejects, say).
pub fn check_all(
    dir: &Path,
    min: usize,
    run: impl Fn(&str) -> Vec<String>,
    check: impl Fn(&[String]) -> Option<String>,
) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "expected at least {min} dialogues in {}, found {}",
        dir.display(),
        files.len()
    );
    let bless = std::env::var_os("MAILC_BLESS").is_some();
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let got = run(&text);
        let want = expected(&text);
        if let Some(problem) = check(&got) {
            failures.push(format!("\n=== {}: {problem}", path.display()));
        }
        if got == want {
            continue;
        }
        if bless {
            let header: String = text
                .lines()
                .take_while(|l| l.starts_with('#') || l.is_empty())
                .map(|l| format!("{l}\n"))
                .collect();
            let body: String = got.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(&path, header + &body).unwrap();
            continue;
        }
        let first = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        failures.push(format!(
            "\n=== {} differs at line {}:\n  got:      {}\n  expected: {}\n",
            path.display(),
            first,
            got.get(first).map_or("(end)", String::as_str),
            want.get(first).map_or("(end)", String::as_str)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join(""));
}
