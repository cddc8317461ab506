//! Reading configuration files: the main file, KDL v2 parsing with every syntax
//! error reported, and `include` expansion (globs, cycles, bounds).

use std::path::{Path, PathBuf};

use kdl::{KdlDocument, KdlNode};

use super::source::{FileId, Sources, Span};
use crate::diag::{Code, Diag, Diags};

/// Largest configuration file read (a config is text written by people).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most files one configuration may consist of.
pub const MAX_FILES: usize = 10_000;
/// Deepest chain of includes.
pub const MAX_DEPTH: usize = 16;

/// All files of a configuration, parsed, and the top-level nodes in order with
/// includes spliced in where they were written.
pub struct Loaded {
    pub sources: Sources,
    docs: Vec<(FileId, KdlDocument)>,
    /// (index into `docs`, index of the node in that document).
    order: Vec<(usize, usize)>,
}

impl Loaded {
    /// The top-level nodes (after include expansion) with their files.
    pub fn top_level(&self) -> Vec<(FileId, &KdlNode)> {
        self.order
            .iter()
            .map(|&(d, n)| (self.docs[d].0, &self.docs[d].1.nodes()[n]))
            .collect()
    }
}

/// Reads `path` and everything it includes. Problems go to `diags`; whatever
/// could be read is returned so the checker can still report on it.
pub fn load(path: &Path, diags: &mut Diags) -> Loaded {
    let mut loaded = Loaded {
        sources: Sources::new(),
        docs: Vec::new(),
        order: Vec::new(),
    };
    let path = absolute(path);
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut stack = Vec::new();
    load_file(&path, &base, None, &mut stack, &mut loaded, diags);
    loaded
}

/// Loads text that does not come from a file (tests, fuzzing): `name` is shown
/// in diagnostics and relative paths resolve against `dir`. Includes work
/// relative to `dir` too.
pub fn load_str(name: &str, dir: &Path, text: &str, diags: &mut Diags) -> Loaded {
    let mut loaded = Loaded {
        sources: Sources::new(),
        docs: Vec::new(),
        order: Vec::new(),
    };
    let path = absolute(&dir.join(name));
    let id = loaded
        .sources
        .add(path.clone(), name.to_string(), text.to_string());
    let mut stack = vec![path];
    if let Some(doc) = parse(id, &loaded.sources, diags) {
        expand(id, doc, dir, &mut stack, &mut loaded, diags);
    }
    loaded
}

fn absolute(path: &Path) -> PathBuf {
    let p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    super::check::normalize(&p)
}

fn display_name(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

fn load_file(
    path: &Path,
    base: &Path,
    from: Option<Span>,
    stack: &mut Vec<PathBuf>,
    loaded: &mut Loaded,
    diags: &mut Diags,
) {
    if loaded.docs.len() >= MAX_FILES {
        let mut d = Diag::error(
            Code::Io,
            format!("more than {MAX_FILES} configuration files"),
        );
        if let Some(s) = from {
            d = d.label(s, "this include goes over the limit");
        }
        diags.push(d);
        return;
    }
    let text = match read_bounded(path) {
        Ok(t) => t,
        Err(e) => {
            let mut d = Diag::error(Code::Io, format!("cannot read {}: {e}", path.display()));
            if let Some(s) = from {
                d = d.label(s, "included here");
            }
            diags.push(d.help("check the path and the file's permissions"));
            return;
        }
    };
    let id = loaded
        .sources
        .add(path.to_path_buf(), display_name(path, base), text);
    stack.push(path.to_path_buf());
    if let Some(doc) = parse(id, &loaded.sources, diags) {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        expand(id, doc, &dir, stack, loaded, diags);
    }
    stack.pop();
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    String::from_utf8(buf).map_err(|e| {
        std::io::Error::other(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()))
    })
}

fn parse(id: FileId, sources: &Sources, diags: &mut Diags) -> Option<KdlDocument> {
    let text = sources.get(id).text.clone();
    match KdlDocument::parse_v2(&text) {
        Ok(doc) => Some(doc),
        Err(err) => {
            for d in err.diagnostics {
                let message = d.message.unwrap_or_else(|| "invalid KDL".into());
                let span = Span::from_miette(id, d.span);
                let found = text.get(span.offset..span.offset + span.len).unwrap_or("");
                let help = match found {
                    "true" | "false" | "null" => {
                        format!(
                            "KDL v2 writes `{found}` as #{found} (KDL v1 syntax is not accepted)"
                        )
                    }
                    _ => d.help.unwrap_or_else(|| {
                        "mailc configurations are KDL v2 (https://kdl.dev)".into()
                    }),
                };
                diags.push(
                    Diag::error(Code::Syntax, message)
                        .label(span, d.label.unwrap_or_else(|| "here".into()))
                        .help(help),
                );
            }
            None
        }
    }
}

/// Appends the document's top-level nodes to the load order, replacing each
/// well-formed `include` node by the nodes of the files it names.
fn expand(
    id: FileId,
    doc: KdlDocument,
    dir: &Path,
    stack: &mut Vec<PathBuf>,
    loaded: &mut Loaded,
    diags: &mut Diags,
) {
    let doc_index = loaded.docs.len();
    let includes: Vec<(usize, String, Span)> = doc
        .nodes()
        .iter()
        .enumerate()
        .filter_map(|(i, n)| include_pattern(n).map(|p| (i, p, Span::from_miette(id, n.span()))))
        .collect();
    let count = doc.nodes().len();
    loaded.docs.push((id, doc));
    let base = loaded.sources.dir(FileId(0)).to_path_buf();
    let mut inc = includes.into_iter().peekable();
    for i in 0..count {
        match inc.peek() {
            Some((at, _, _)) if *at == i => {
                let Some((_, pattern, span)) = inc.next() else {
                    continue;
                };
                if stack.len() > MAX_DEPTH {
                    diags.push(
                        Diag::error(
                            Code::IncludeCycle,
                            format!("includes nested deeper than {MAX_DEPTH}"),
                        )
                        .label(span, "too deep")
                        .help("flatten the include structure"),
                    );
                    continue;
                }
                for file in resolve(&pattern, dir, span, diags) {
                    if stack.contains(&file) {
                        diags.push(
                            Diag::error(
                                Code::IncludeCycle,
                                format!("{} includes itself", display_name(&file, &base)),
                            )
                            .label(span, "this include closes a loop")
                            .help(format!(
                                "include chain: {}",
                                stack
                                    .iter()
                                    .chain(std::iter::once(&file))
                                    .map(|p| display_name(p, &base))
                                    .collect::<Vec<_>>()
                                    .join(" → ")
                            )),
                        );
                        continue;
                    }
                    if let Some(prev) = loaded.sources.find(&file) {
                        // Included twice (not a loop): the second copy would only
                        // produce duplicate errors, so say it plainly instead.
                        diags.push(
                            Diag::error(
                                Code::IncludeCycle,
                                format!("{} is included twice", loaded.sources.get(prev).name),
                            )
                            .label(span, "included again here")
                            .help("include each file once"),
                        );
                        continue;
                    }
                    load_file(&file, &base, Some(span), stack, loaded, diags);
                }
            }
            _ => loaded.order.push((doc_index, i)),
        }
    }
}

/// `include "pattern"` with exactly one string argument, no properties and no
/// children. Anything else is left to the generic checker to complain about.
fn include_pattern(node: &KdlNode) -> Option<String> {
    if node.name().value() != "include" || node.children().is_some() || node.ty().is_some() {
        return None;
    }
    match node.entries() {
        [e] if e.name().is_none() && e.ty().is_none() => e.value().as_string().map(str::to_string),
        _ => None,
    }
}

/// Expands a pattern relative to `dir`. `*` and `?` match within one path
/// component; names starting with `.` only match a pattern starting with `.`.
fn resolve(pattern: &str, dir: &Path, span: Span, diags: &mut Diags) -> Vec<PathBuf> {
    let full = super::check::normalize(&dir.join(pattern));
    if !pattern.contains(['*', '?']) {
        if !full.is_file() {
            diags.push(
                Diag::error(
                    Code::IncludeNotFound,
                    format!("included file {} not found", full.display()),
                )
                .label(span, "no such file")
                .help("paths are relative to the file that contains the include"),
            );
            return Vec::new();
        }
        return vec![full];
    }
    let mut current = vec![PathBuf::new()];
    let components: Vec<_> = full.components().collect();
    for (i, comp) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let part = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &current {
            if part.contains(['*', '?']) {
                let Ok(entries) = std::fs::read_dir(if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base
                }) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        wildcard(&part, n) && (part.starts_with('.') || !n.starts_with('.'))
                    })
                    .collect();
                names.sort();
                for n in names {
                    let p = base.join(&n);
                    if (last && p.is_file()) || (!last && p.is_dir()) {
                        next.push(p);
                    }
                }
            } else {
                next.push(base.join(comp.as_os_str()));
            }
        }
        current = next;
    }
    if current.is_empty() {
        diags.push(
            Diag::warning(Code::IncludeEmpty, format!("`{pattern}` matches no file"))
                .label(span, "matches nothing")
                .help("nothing is included; check the pattern if files were expected"),
        );
    }
    current
}

/// `*` matches any run of characters, `?` exactly one.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.kdl", "a.kdl"));
        assert!(wildcard("*.kdl", ".kdl"));
        assert!(!wildcard("*.kdl", "a.kdl.bak"));
        assert!(wildcard("d?.kdl", "d1.kdl"));
        assert!(!wildcard("d?.kdl", "d12.kdl"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
    }
}
