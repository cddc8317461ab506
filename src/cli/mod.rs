//! The `mailc` subcommands. Each returns the process exit code; `main.rs`
//! only parses arguments and calls these.

pub mod deliver;
pub mod dns;
pub mod explain;
pub mod queue;
pub mod reports;
pub mod rollover;
pub mod sendmail;
pub mod tls;

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::compile::{self, Options, Output};
use crate::diag::{self, Style};

/// Width diagnostics are wrapped at.
const WIDTH: usize = 100;

fn style() -> Style {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        Style::Fancy
    } else {
        Style::Plain
    }
}

/// Prints every diagnostic of a compile run to stderr.
fn report(out: &Output) {
    if out.diags.is_empty() {
        return;
    }
    let text = diag::render_all(&out.diags, &out.sources, style(), WIDTH);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
}

/// A compile that failed, for the commands that need the tables: every
/// diagnostic (plain, as scripts read it) and the one-line summary.
fn report_failure(config: &Path, out: &Output) {
    eprint!(
        "{}",
        diag::render_all(&out.diags, &out.sources, Style::Plain, WIDTH)
    );
    eprintln!(
        "{}: failed ({})",
        config.display(),
        diag::summary(&out.diags)
    );
}

/// `mailc check [--offline] CONFIG`: 0 when clean or warnings only, 1 on errors.
pub fn check(config: &Path, offline: bool) -> i32 {
    let out = compile::compile_file(config, Options { offline });
    report(&out);
    let summary = diag::summary(&out.diags);
    match &out.compiled {
        Some(c) => {
            eprintln!(
                "{}: ok ({summary}), {} domains, {} mailboxes, {} listeners, tables {}",
                config.display(),
                c.tables.domains.len(),
                c.tables.mailboxes.len(),
                c.tables.listeners.len(),
                c.tables.content_hash
            );
            0
        }
        None => {
            eprintln!("{}: failed ({summary})", config.display());
            1
        }
    }
}

/// `mailc compile CONFIG [-o FILE]`: deterministic JSON tables.
pub fn compile(config: &Path, output: Option<&Path>, offline: bool) -> i32 {
    let out = compile::compile_file(config, Options { offline });
    report(&out);
    let Some(c) = out.compiled else {
        eprintln!(
            "{}: failed ({})",
            config.display(),
            diag::summary(&out.diags)
        );
        return 1;
    };
    let json = c.tables.to_json();
    match output {
        None => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(json.as_bytes()).is_err() {
                return 1;
            }
        }
        Some(path) => {
            if let Err(e) = write_atomically(path, json.as_bytes()) {
                eprintln!("cannot write {}: {e}", path.display());
                return 1;
            }
        }
    }
    0
}

/// Writes via a temporary file in the same directory and a rename, so a
/// reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Which schema `mailc schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// The configuration language, in its JSON form (the Nix `settings` shape).
    Config,
    /// The compiled tables printed by `mailc compile`.
    Tables,
}

/// The text of a schema, as committed under `schema/`.
pub fn schema_text(kind: SchemaKind) -> String {
    match kind {
        SchemaKind::Config => crate::spec::json_schema::config_schema(),
        SchemaKind::Tables => crate::tables::Tables::json_schema(),
    }
}

pub fn schema(kind: SchemaKind) -> i32 {
    let mut stdout = std::io::stdout().lock();
    i32::from(stdout.write_all(schema_text(kind).as_bytes()).is_err())
}

/// `mailc hash-password`: argon2id hash of a password read from the terminal
/// (no echo, asked twice) or from one line of stdin.
pub fn hash_password() -> i32 {
    match crate::auth::password::read_password_interactive() {
        Ok(pw) => {
            println!("{}", crate::auth::password::hash_argon2id(pw.as_bytes()));
            0
        }
        Err(e) => {
            eprintln!("mailc hash-password: {e}");
            1
        }
    }
}

/// The tables of `config` for a command an MTA or a script runs (`mailc
/// sendmail`, `mailc deliver`): secrets are not read, and a config that
/// does not compile prints its diagnostics and gives EX_CONFIG (78).
pub(crate) fn tables_for_command(
    config: &std::path::Path,
    command: &str,
) -> Result<crate::tables::Tables, i32> {
    let out = crate::compile::compile_file(config, crate::compile::Options { offline: true });
    match out.compiled {
        Some(c) => Ok(c.tables),
        None => {
            eprint!(
                "{}",
                crate::diag::render_all(&out.diags, &out.sources, crate::diag::Style::Plain, 100)
            );
            eprintln!(
                "mailc {command}: the config {} does not compile",
                config.display()
            );
            Err(i32::from(crate::services::submit::exit::CONFIG))
        }
    }
}
