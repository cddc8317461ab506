//! Sieve: the `sieve` blocks lowered to [`SieveTable`] and every script the
//! config names compiled, so a script error fails `mailc check` with a
//! diagnostic pointing into the script at its line and column (the script
//! joins the sources the diagnostics render).

use std::path::{Path, PathBuf};

use super::defaults;
use super::secrets;
use super::{Compiled, Cx};
use crate::diag::{Code, Diag, Diags};
use crate::filter::{self, ErrorKind};
use crate::spec::ast::Config;
use crate::spec::source::{Sources, Span, Spanned};
use crate::tables::SieveTable;

pub(super) fn lower(cfg: &Config, cx: &mut Cx<'_>) -> SieveTable {
    let s = &cfg.sieve;
    for p in s.before.iter().chain(&s.after) {
        secrets::check_file(p, false, "Sieve script", cx);
    }
    for d in &cfg.domains {
        for p in d.sieve_before.iter().chain(&d.sieve_after) {
            secrets::check_file(p, false, "Sieve script", cx);
        }
    }
    SieveTable {
        before: s.before.iter().map(|p| p.value.clone()).collect(),
        after: s.after.iter().map(|p| p.value.clone()).collect(),
        global_dir: s.global_dir.as_ref().map(|p| p.value.clone()),
        user_scripts: s
            .user_scripts
            .as_ref()
            .map_or(defaults::SIEVE_USER_SCRIPTS, |v| v.value),
        cpu_limit: s
            .cpu_limit
            .as_ref()
            .map_or(defaults::SIEVE_CPU_LIMIT, |v| v.value),
        max_redirects: s
            .max_redirects
            .as_ref()
            .map_or(defaults::SIEVE_MAX_REDIRECTS, |v| v.value),
        max_script_size: s
            .max_script_size
            .as_ref()
            .map_or(defaults::SIEVE_MAX_SCRIPT_SIZE, |v| v.value),
        vacation_min_secs: s
            .vacation_min
            .as_ref()
            .map_or(defaults::SIEVE_VACATION_MIN_SECS, |v| v.value),
    }
}

/// The interpreter limits of the tables.
pub fn limits(t: &SieveTable) -> filter::Limits {
    filter::Limits {
        max_script_size: usize::try_from(t.max_script_size).unwrap_or(usize::MAX),
        cpu: t.cpu_limit as usize,
        max_redirects: t.max_redirects as usize,
        vacation_min: t.vacation_min_secs,
        ..filter::Limits::default()
    }
}

/// Compiles every script the config names (server, domain and mailbox
/// scripts, and the `global-dir` scripts). Scripts that do not exist were
/// reported by [`lower`] or the mailbox check already.
pub(super) fn check(
    cfg: &Config,
    compiled: &Compiled,
    offline: bool,
    sources: &mut Sources,
    diags: &mut Diags,
) {
    let limits = limits(&compiled.tables.sieve);
    let mut named: Vec<&Spanned<PathBuf>> = Vec::new();
    named.extend(cfg.sieve.before.iter().chain(&cfg.sieve.after));
    for d in &cfg.domains {
        named.extend(d.sieve_before.iter().chain(&d.sieve_after));
        named.extend(d.mailboxes.iter().filter_map(|m| m.sieve.as_ref()));
    }
    for p in named {
        check_one(&p.value, Some(p.span), &limits, sources, diags);
    }
    if let Some(dir) = &cfg.sieve.global_dir {
        match std::fs::read_dir(&dir.value) {
            Ok(entries) => {
                let mut paths: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "sieve"))
                    .collect();
                paths.sort();
                for p in paths {
                    check_one(&p, Some(dir.span), &limits, sources, diags);
                }
            }
            // Offline (a Nix build), the directory need not exist yet.
            Err(e) if offline && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => diags.push(
                Diag::error(
                    Code::SieveUnreadable,
                    format!(
                        "the Sieve global directory {} cannot be read: {e}",
                        dir.value.display()
                    ),
                )
                .label(dir.span, "named here"),
            ),
        }
    }
}

fn check_one(
    path: &Path,
    named_at: Option<Span>,
    limits: &filter::Limits,
    sources: &mut Sources,
    diags: &mut Diags,
) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        // Missing files are reported where the config names them.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            let mut d = Diag::error(
                Code::SieveUnreadable,
                format!("the Sieve script {} cannot be read: {e}", path.display()),
            );
            if let Some(s) = named_at {
                d = d.label(s, "named here");
            }
            diags.push(d);
            return;
        }
    };
    let Err(e) = filter::compile(&path.display().to_string(), &bytes, limits) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let offset = offset_of(&text, e.line, e.column);
    let name = path.display().to_string();
    let id = match sources.find(path) {
        Some(id) => id,
        None => sources.add(path.to_path_buf(), name, text.clone()),
    };
    let len = text[offset..]
        .chars()
        .next()
        .map_or(0, |c| c.len_utf8())
        .max(usize::from(offset < text.len()));
    let (code, help) = match e.kind {
        ErrorKind::Syntax => (
            Code::SieveSyntax,
            "see RFC 5228 for the grammar; `mailc check` compiles every script the config names",
        ),
        ErrorKind::Extension => (
            Code::SieveExtension,
            "declare it with `require \"NAME\";` at the top of the script; mailc supports the extensions listed in the README",
        ),
        ErrorKind::Limit => (
            Code::SieveLimit,
            "simplify the script, or raise `sieve { max-script-size }` for size",
        ),
    };
    let mut d = Diag::error(code, format!("Sieve: {}", e.message))
        .label(Span::new(id, offset, len), e.message.clone())
        .help(help);
    if let Some(s) = named_at {
        d = d.label(s, "the script is named here");
    }
    diags.push(d);
}

/// Byte offset of a 1-based line and column (columns in characters);
/// line 0 (a whole-script error) is the start.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = l
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(l.trim_end_matches(['\r', '\n']).len(), |(b, _)| b);
            return offset + col;
        }
        offset += l.len();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::offset_of;

    #[test]
    fn offsets_of_lines_and_columns() {
        let t = "ab\ncdé\nf";
        assert_eq!(offset_of(t, 1, 1), 0);
        assert_eq!(offset_of(t, 2, 3), 5);
        assert_eq!(offset_of(t, 3, 1), 8);
        assert_eq!(offset_of(t, 2, 99), 7, "past the end of a line: its end");
        assert_eq!(offset_of(t, 9, 1), t.len());
        assert_eq!(offset_of(t, 0, 0), 0);
    }
}
