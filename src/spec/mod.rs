//! `spec`: configuration text → spanned model.
//!
//! Loading (`load`, with includes) → KDL v2 parsing → the generic check against
//! the language table (`language`, `check`) → the typed model (`ast`). Every
//! problem is reported into a [`Diags`] list; nothing here stops at the first.

pub mod ast;
pub mod check;
pub mod json_schema;
pub mod language;
pub mod load;
pub mod schema;
pub mod source;
pub mod tree;
pub mod value;

use std::path::Path;

use crate::diag::Diags;
use source::Sources;

/// A configuration read and checked for shape, ready for the compiler.
pub struct Parsed {
    pub sources: Sources,
    pub config: ast::Config,
}

/// Reads, parses and shape-checks the configuration at `path`.
pub fn parse_file(path: &Path, diags: &mut Diags) -> Parsed {
    let loaded = load::load(path, diags);
    finish(loaded, diags)
}

/// Like [`parse_file`] for text in memory; relative paths resolve against `dir`.
pub fn parse_str(name: &str, dir: &Path, text: &str, diags: &mut Diags) -> Parsed {
    let loaded = load::load_str(name, dir, text, diags);
    finish(loaded, diags)
}

fn finish(loaded: load::Loaded, diags: &mut Diags) -> Parsed {
    // Only a file that parsed can be checked; when the main file did not parse
    // at all, "missing hostname" would be noise on top of the syntax errors.
    let root = if loaded.top_level().is_empty() && diags.has_errors() {
        Vec::new()
    } else {
        // Root-level "missing node" diagnostics point at the start of the main file.
        let start = source::Span::new(source::FileId(0), 0, 0);
        check::check_children(
            &language::ROOT,
            Some(start),
            &loaded.top_level(),
            &loaded.sources,
            diags,
        )
    };
    Parsed {
        config: ast::build(&root),
        sources: loaded.sources,
    }
}
