//! The generic check of KDL nodes against the language table: node and
//! property names (with "did you mean"), arity, value types, duplicates of
//! single nodes, required nodes and properties. It reports every problem and
//! keeps going; what it cannot make sense of is left out of the checked tree.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use kdl::{KdlEntry, KdlNode, KdlValue};

use super::schema::{ArgSpec, NodeSpec, PropSpec, Ty, quoted_list};
use super::source::{FileId, Sources, Span};
use super::tree::{SNode, SVal, Value};
use super::value::{parse_duration, parse_size};
use crate::diag::{Code, Diag, Diags};
use crate::ipnet::{Network, NetworkError};

/// Checks the children of `parent` (the nodes given, each with the file it
/// came from) and returns those that passed.
pub fn check_children(
    parent: &'static NodeSpec,
    parent_name_span: Option<Span>,
    nodes: &[(FileId, &KdlNode)],
    sources: &Sources,
    diags: &mut Diags,
) -> Vec<SNode> {
    let mut out = Vec::new();
    // First occurrence of each single node, for duplicate diagnostics.
    let mut seen: HashMap<&'static str, Span> = HashMap::new();
    // Nodes that were written but dropped as invalid: not "missing".
    let mut attempted: Vec<&'static str> = Vec::new();
    for &(file, node) in nodes {
        let name = node.name().value();
        let name_span = Span::from_miette(file, node.name().span());
        let Some(spec) = parent.child(name) else {
            diags.push(unknown_node(parent, name, name_span));
            continue;
        };
        attempted.push(spec.name);
        if !spec.repeat {
            if let Some(first) = seen.get(spec.name) {
                diags.push(
                    Diag::error(
                        Code::NodeDuplicate,
                        format!("`{}` is given more than once", spec.name),
                    )
                    .label(name_span, "given again here")
                    .label(*first, "first given here")
                    .help(format!(
                        "`{}` may appear only once{}; remove one of them",
                        spec.name,
                        in_parent(parent)
                    )),
                );
                continue;
            }
            seen.insert(spec.name, name_span);
        }
        if let Some(n) = check_node(spec, file, node, sources, diags) {
            out.push(n);
        }
    }
    for spec in parent.children.iter().filter(|c| c.required) {
        if !attempted.contains(&spec.name) {
            let mut d = Diag::error(
                Code::NodeMissing,
                format!("missing `{}`{}", spec.name, in_parent(parent)),
            )
            .help(format!("add `{} ...`: {}", spec.name, spec.doc));
            if let Some(span) = parent_name_span {
                d = d.label(span, format!("needs a `{}` node", spec.name));
            }
            diags.push(d);
        }
    }
    out
}

fn in_parent(parent: &NodeSpec) -> String {
    if parent.name.starts_with('(') {
        " at the top level".into()
    } else {
        format!(" in `{}`", parent.name)
    }
}

fn unknown_node(parent: &'static NodeSpec, name: &str, span: Span) -> Diag {
    let names: Vec<&str> = parent.children.iter().map(|c| c.name).collect();
    let mut d = Diag::error(
        Code::NodeUnknown,
        format!("unknown node `{name}`{}", in_parent(parent)),
    )
    .label(span, "not known here");
    // A node that exists elsewhere in the language deserves a pointer there.
    let mut elsewhere = Vec::new();
    parents_of(&super::language::ROOT, name, &mut elsewhere);
    d = match did_you_mean(name, &names) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None if !elsewhere.is_empty() => d.help(format!(
            "`{name}` belongs in {}",
            elsewhere
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )),
        None if names.is_empty() => d.help(format!("`{}` takes no children", parent.name)),
        None => d.help(format!("expected one of: {}", names.join(", "))),
    };
    d
}

/// Names of the nodes (other than the document) that take a child `name`.
fn parents_of(spec: &'static NodeSpec, name: &str, out: &mut Vec<&'static str>) {
    for c in spec.children {
        if c.name == name && !spec.name.starts_with('(') && !out.contains(&spec.name) {
            out.push(spec.name);
        }
        parents_of(c, name, out);
    }
}

fn check_node(
    spec: &'static NodeSpec,
    file: FileId,
    node: &KdlNode,
    sources: &Sources,
    diags: &mut Diags,
) -> Option<SNode> {
    let span = Span::from_miette(file, node.span());
    let name_span = Span::from_miette(file, node.name().span());
    if let Some(ty) = node.ty() {
        diags.push(annotation(file, ty.span(), ty.value()));
    }
    let entries = check_entries(spec, file, node, sources, diags);
    let complete = check_required(spec, name_span, &entries, diags);
    let children = check_block(spec, file, node, name_span, sources, diags);
    (entries.ok && complete).then_some(SNode {
        spec,
        span,
        name_span,
        args: entries.args,
        props: entries.props,
        children,
    })
}

/// The arguments and properties of one node as checked so far.
#[derive(Default)]
struct Entries {
    args: Vec<SVal>,
    props: Vec<(&'static str, SVal)>,
    /// Where each property was first given, bad values included.
    prop_spans: HashMap<&'static str, Span>,
    /// Arguments given, bad values and extra ones included.
    arg_count: usize,
    /// False once a fixed argument or a required property is unusable.
    ok: bool,
}

/// Checks each argument and property against the node's spec, in order.
fn check_entries(
    spec: &'static NodeSpec,
    file: FileId,
    node: &KdlNode,
    sources: &Sources,
    diags: &mut Diags,
) -> Entries {
    let mut e = Entries {
        ok: true,
        ..Entries::default()
    };
    for entry in node.entries() {
        if let Some(ty) = entry.ty() {
            diags.push(annotation(file, ty.span(), ty.value()));
        }
        match entry.name() {
            None => e.argument(spec, entry, file, sources, diags),
            Some(key) => e.property(spec, key.value(), entry, file, sources, diags),
        }
    }
    e
}

impl Entries {
    /// A positional argument: too many is an error; a bad value in a fixed
    /// position makes the node unusable, one in the rest is only reported.
    fn argument(
        &mut self,
        spec: &'static NodeSpec,
        entry: &KdlEntry,
        file: FileId,
        sources: &Sources,
        diags: &mut Diags,
    ) {
        let entry_span = Span::from_miette(file, entry.span());
        let index = self.arg_count;
        self.arg_count += 1;
        let Some(arg) = spec.args.at(index) else {
            diags.push(too_many_args(spec, entry_span));
            return;
        };
        let fixed = index < spec.args.fixed.len();
        match check_arg(spec, arg, entry, entry_span, file, sources) {
            Ok(v) => self.args.push(v),
            Err(d) => {
                diags.push(d);
                if fixed {
                    self.ok = false;
                }
            }
        }
    }

    /// A `key=value` property: unknown and repeated keys are errors (a
    /// repeated one is dropped altogether rather than silently keeping one).
    fn property(
        &mut self,
        spec: &'static NodeSpec,
        key_name: &str,
        entry: &KdlEntry,
        file: FileId,
        sources: &Sources,
        diags: &mut Diags,
    ) {
        let entry_span = Span::from_miette(file, entry.span());
        let Some(prop) = spec.prop(key_name) else {
            diags.push(unknown_prop(spec, key_name, entry_span));
            return;
        };
        if let Some(first) = self.prop_spans.get(prop.name) {
            diags.push(
                Diag::error(
                    Code::PropertyDuplicate,
                    format!("property `{key_name}` is given twice on `{}`", spec.name),
                )
                .label(entry_span, "given again here")
                .label(*first, "first given here")
                .help("KDL would silently keep the last one; remove one of them"),
            );
            self.props.retain(|(n, _)| *n != prop.name);
            self.ok &= !prop.required;
            return;
        }
        self.prop_spans.insert(prop.name, entry_span);
        match check_prop(spec, prop, entry, entry_span, file, sources) {
            Ok(v) => self.props.push((prop.name, v)),
            Err(d) => {
                diags.push(d);
                self.ok &= !prop.required;
            }
        }
    }
}

/// Reports missing required arguments and properties; true if none is missing.
fn check_required(
    spec: &'static NodeSpec,
    name_span: Span,
    entries: &Entries,
    diags: &mut Diags,
) -> bool {
    let mut complete = true;
    if entries.arg_count < spec.args.min() {
        diags.push(missing_args(spec, name_span, entries.arg_count));
        complete = false;
    }
    for prop in spec.props.iter().filter(|p| p.required) {
        if !entries.prop_spans.contains_key(prop.name) {
            diags.push(
                Diag::error(
                    Code::PropertyMissing,
                    format!("`{}` needs the property `{}`", spec.name, prop.name),
                )
                .label(name_span, format!("`{}=` is missing", prop.name))
                .help(format!("add {}=... ({})", prop.name, prop.doc)),
            );
            complete = false;
        }
    }
    complete
}

fn missing_args(spec: &NodeSpec, name_span: Span, given: usize) -> Diag {
    let missing: Vec<&str> = (given..spec.args.min())
        .filter_map(|i| spec.args.at(i).map(|a| a.name))
        .collect();
    let usage = usage(spec);
    Diag::error(
        Code::ArgumentMissing,
        format!(
            "`{}` is missing {} {}",
            spec.name,
            if missing.len() == 1 {
                "argument"
            } else {
                "arguments"
            },
            missing.join(" ")
        ),
    )
    .label(name_span, format!("expects {usage}"))
    .help(format!("write it as `{}`", usage))
}

/// The node's `{ ... }` block: checked against the spec's children, refused
/// where the node takes none, and checked as empty when it is absent but
/// has required children (so that they are reported missing).
fn check_block(
    spec: &'static NodeSpec,
    file: FileId,
    node: &KdlNode,
    name_span: Span,
    sources: &Sources,
    diags: &mut Diags,
) -> Vec<SNode> {
    let Some(doc) = node.children() else {
        if spec.children.iter().any(|c| c.required) {
            return check_children(spec, Some(name_span), &[], sources, diags);
        }
        return Vec::new();
    };
    if spec.children.is_empty() {
        if !doc.nodes().is_empty() {
            diags.push(
                Diag::error(
                    Code::NodeChildren,
                    format!("`{}` takes no children block", spec.name),
                )
                .label(Span::from_miette(file, doc.span()), "unexpected block")
                .help("remove the braces and what is inside them"),
            );
        }
        return Vec::new();
    }
    let kids: Vec<(FileId, &KdlNode)> = doc.nodes().iter().map(|n| (file, n)).collect();
    check_children(spec, Some(name_span), &kids, sources, diags)
}

fn usage(spec: &NodeSpec) -> String {
    let mut parts = vec![spec.name.to_string()];
    for (i, a) in spec.args.fixed.iter().enumerate() {
        if i < spec.args.required {
            parts.push(a.name.to_string());
        } else {
            parts.push(format!("[{}]", a.name));
        }
    }
    if let Some((a, min)) = spec.args.rest {
        if min > 0 {
            parts.push(format!("{}...", a.name));
        } else {
            parts.push(format!("[{}...]", a.name));
        }
    }
    for p in spec.props.iter().filter(|p| p.required) {
        parts.push(format!("{}=...", p.name));
    }
    parts.join(" ")
}

fn annotation(file: FileId, span: miette::SourceSpan, ty: &str) -> Diag {
    Diag::error(
        Code::ValueAnnotation,
        format!("type annotation `({ty})` is not used by mailc"),
    )
    .label(Span::from_miette(file, span), "remove this annotation")
    .help("mailc infers every type from the node; write the plain value")
}

fn too_many_args(spec: &NodeSpec, span: Span) -> Diag {
    let max = spec.args.max().unwrap_or(0);
    let mut d = Diag::error(
        Code::ArgumentUnexpected,
        format!(
            "`{}` takes {} argument{}",
            spec.name,
            if max == 0 {
                "no".to_string()
            } else {
                format!("at most {max}")
            },
            if max == 1 { "" } else { "s" }
        ),
    )
    .label(span, "unexpected argument");
    if !spec.props.is_empty() {
        d = d.help(format!(
            "write it as `{}`; properties: {}",
            usage(spec),
            spec.props
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        d = d.help(format!("write it as `{}`", usage(spec)));
    }
    d
}

fn unknown_prop(spec: &NodeSpec, name: &str, span: Span) -> Diag {
    let names: Vec<&str> = spec.props.iter().map(|p| p.name).collect();
    let d = Diag::error(
        Code::PropertyUnknown,
        format!("unknown property `{name}` on `{}`", spec.name),
    )
    .label(span, "not a property of this node");
    match (did_you_mean(name, &names), names.is_empty()) {
        (Some(s), _) => d.help(format!("did you mean `{s}`?")),
        (None, true) if spec.child(name).is_some() => d.help(format!(
            "`{name}` is a child node: write `{} ... {{ {name} ... }}`",
            spec.name
        )),
        (None, true) => d.help(format!("`{}` takes no properties", spec.name)),
        (None, false) => d.help(format!("`{}` takes: {}", spec.name, names.join(", "))),
    }
}

fn check_arg(
    spec: &NodeSpec,
    arg: &ArgSpec,
    entry: &KdlEntry,
    span: Span,
    file: FileId,
    sources: &Sources,
) -> Result<SVal, Diag> {
    if arg.nullable && entry.value().is_null() {
        return Ok(SVal {
            value: Value::Null,
            span,
        });
    }
    let single = spec.args.fixed.len() == 1 && spec.args.rest.is_none() && spec.props.is_empty();
    convert(arg.ty, entry.value(), span, file, sources).map_err(|d| {
        let what = if single {
            format!("`{}`", spec.name)
        } else {
            format!("`{}` argument {}", spec.name, arg.name)
        };
        d.with_subject(&what)
    })
}

fn check_prop(
    spec: &NodeSpec,
    prop: &PropSpec,
    entry: &KdlEntry,
    span: Span,
    file: FileId,
    sources: &Sources,
) -> Result<SVal, Diag> {
    convert(prop.ty, entry.value(), span, file, sources)
        .map_err(|d| d.with_subject(&format!("`{}` property `{}`", spec.name, prop.name)))
}

/// A diagnostic whose message still needs the name of what was wrong.
struct Pending {
    code: Code,
    problem: String,
    label: String,
    help: String,
    span: Span,
}

impl Pending {
    fn with_subject(self, subject: &str) -> Diag {
        Diag::error(self.code, format!("{subject}: {}", self.problem))
            .label(self.span, self.label)
            .help(self.help)
    }
}

fn convert(
    ty: Ty,
    value: &KdlValue,
    span: Span,
    file: FileId,
    sources: &Sources,
) -> Result<SVal, Pending> {
    let text = || -> Result<&str, Pending> {
        value.as_string().ok_or_else(|| wrong_type(ty, value, span))
    };
    let v = match ty {
        Ty::Str => Value::Str(text()?.to_string()),
        Ty::Bool => Value::Bool(value.as_bool().ok_or_else(|| wrong_type(ty, value, span))?),
        Ty::Int { min, max } => Value::Int(int_in_range(ty, min, max, value, span)?),
        Ty::Size => Value::Size(size(ty, value, span)?),
        Ty::Duration => Value::Duration(duration(ty, value, span)?),
        Ty::Choice(words) => Value::Choice(choice(words, text()?, span)?),
        Ty::Path => Value::Path(path(text()?, span, file, sources)?),
        Ty::SocketAddr => Value::SocketAddr(socket_addr(text()?, span)?),
        Ty::Network => Value::Network(network(text()?, span)?),
        Ty::Ip => Value::Ip(ip(text()?, span)?),
        Ty::Score => Value::Score(score(ty, value, span)?),
    };
    Ok(SVal { value: v, span })
}

fn wrong_type(ty: Ty, value: &KdlValue, span: Span) -> Pending {
    let expected = ty.describe();
    Pending {
        code: Code::ValueType,
        problem: format!("expected {expected}, found {}", kind_of(value)),
        label: format!("expected {expected}"),
        help: type_help(ty, value),
        span,
    }
}

fn int_in_range(ty: Ty, min: i64, max: i64, value: &KdlValue, span: Span) -> Result<i64, Pending> {
    let n = value
        .as_integer()
        .ok_or_else(|| wrong_type(ty, value, span))?;
    if n < min as i128 || n > max as i128 {
        return Err(Pending {
            code: Code::ValueRange,
            problem: format!("{n} is out of range"),
            label: format!("expected {}", ty.describe()),
            help: format!("use {}", ty.describe()),
            span,
        });
    }
    Ok(n as i64)
}

/// A score: an integer or a decimal number within ±1000.
fn score(ty: Ty, value: &KdlValue, span: Span) -> Result<f64, Pending> {
    let n = match value {
        KdlValue::Integer(n) if n.unsigned_abs() <= 1000 => *n as f64,
        KdlValue::Float(f) => *f,
        KdlValue::Integer(_) => f64::INFINITY,
        _ => return Err(wrong_type(ty, value, span)),
    };
    if !n.is_finite() || n.abs() > 1000.0 {
        return Err(Pending {
            code: Code::ValueRange,
            problem: format!("{value} is out of range"),
            label: "expected a score from -1000 to 1000".into(),
            help: "spam scores are small numbers: SpamAssassin flags at 5, rspamd rejects at 15"
                .into(),
            span,
        });
    }
    Ok(n)
}

/// A size: a byte count, or a string with a unit.
fn size(ty: Ty, value: &KdlValue, span: Span) -> Result<u64, Pending> {
    match value {
        KdlValue::Integer(n) if *n >= 0 && *n <= u64::MAX as i128 => Ok(*n as u64),
        KdlValue::String(s) => parse_size(s).map_err(|e| Pending {
            code: Code::ValueSize,
            problem: format!("bad size: {e}"),
            label: "not a size".into(),
            help: "write a size as \"25MiB\": units B, KB, KiB, MB, MiB, GB, GiB, TB, TiB (KiB = 1024 bytes, KB = 1000)".into(),
            span,
        }),
        _ => Err(wrong_type(ty, value, span)),
    }
}

/// A duration: a string with a unit; a bare number gets its own diagnostic.
fn duration(ty: Ty, value: &KdlValue, span: Span) -> Result<u64, Pending> {
    match value {
        KdlValue::String(s) => parse_duration(s).map_err(|e| Pending {
            code: Code::ValueDuration,
            problem: format!("bad duration: {e}"),
            label: "not a duration".into(),
            help: "write a duration as \"30s\", \"5m\", \"1h30m\" or \"7d\" (units s, m, h, d, w)"
                .into(),
            span,
        }),
        KdlValue::Integer(_) => Err(Pending {
            code: Code::ValueDuration,
            problem: "a duration needs a unit".into(),
            label: "no unit".into(),
            help: format!("write it as a string with a unit, e.g. \"{value}s\" or \"{value}m\""),
            span,
        }),
        _ => Err(wrong_type(ty, value, span)),
    }
}

fn choice(words: &'static [&'static str], s: &str, span: Span) -> Result<&'static str, Pending> {
    if let Some(w) = words.iter().find(|w| **w == s) {
        return Ok(w);
    }
    let help = match did_you_mean(s, words) {
        Some(w) => format!("did you mean \"{w}\"?"),
        None => format!("use one of {}", quoted_list(words)),
    };
    Err(Pending {
        code: Code::ValueEnum,
        problem: format!("\"{s}\" is not one of {}", quoted_list(words)),
        label: "unknown choice".into(),
        help,
        span,
    })
}

/// A path, relative to the directory of the file it is written in.
fn path(
    s: &str,
    span: Span,
    file: FileId,
    sources: &Sources,
) -> Result<std::path::PathBuf, Pending> {
    if s.is_empty() {
        return Err(Pending {
            code: Code::ValueType,
            problem: "empty path".into(),
            label: "empty".into(),
            help: "give a file or directory path".into(),
            span,
        });
    }
    Ok(normalize(&sources.dir(file).join(s)))
}

fn socket_addr(s: &str, span: Span) -> Result<SocketAddr, Pending> {
    SocketAddr::from_str(s).map_err(|_| Pending {
        code: Code::ValueAddress,
        problem: format!("\"{s}\" is not IP:PORT"),
        label: "not IP:PORT".into(),
        help: "write an IPv4 address as \"127.0.0.1:25\" and IPv6 as \"[::1]:25\"; host names are not resolved".into(),
        span,
    })
}

fn network(s: &str, span: Span) -> Result<Network, Pending> {
    Network::parse(s).map_err(|e| match e {
        NetworkError::Syntax(m) => Pending {
            code: Code::ValueNetwork,
            problem: m,
            label: "not a network".into(),
            help: "write a network as \"192.0.2.0/24\" or \"2001:db8::/48\", or a single host as \"192.0.2.1\"".into(),
            span,
        },
        NetworkError::HostBits(n) => Pending {
            code: Code::NetworkHostBits,
            problem: format!("\"{s}\" has bits set after the prefix"),
            label: "host bits set".into(),
            help: format!("did you mean \"{n}\"?"),
            span,
        },
    })
}

fn ip(s: &str, span: Span) -> Result<IpAddr, Pending> {
    IpAddr::from_str(s).map_err(|_| Pending {
        code: Code::ValueIp,
        problem: format!("\"{s}\" is not an IP address"),
        label: "not an IP address".into(),
        help: "write an address such as \"192.0.2.10\" or \"2001:db8::10\"".into(),
        span,
    })
}

/// Removes `.` components and resolves `..` lexically, so that paths in the
/// tables are stable whatever way the config was reached.
pub fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn kind_of(v: &KdlValue) -> String {
    match v {
        KdlValue::String(s) => format!("the string \"{s}\""),
        KdlValue::Integer(n) => format!("the number {n}"),
        KdlValue::Float(f) => format!("the number {f}"),
        KdlValue::Bool(b) => format!("#{b}"),
        KdlValue::Null => "#null".into(),
    }
}

fn type_help(ty: Ty, v: &KdlValue) -> String {
    match (ty, v) {
        (Ty::Bool, KdlValue::String(s)) if s == "true" || s == "false" => {
            format!("KDL v2 writes booleans as #{s}, without quotes")
        }
        (Ty::Str | Ty::Path | Ty::Choice(_), KdlValue::Integer(n)) => {
            format!("quote it: \"{n}\"")
        }
        (Ty::Score, KdlValue::String(s)) if s.parse::<f64>().is_ok() => {
            format!("remove the quotes: {s}")
        }
        (Ty::Int { .. }, KdlValue::String(s)) if s.parse::<i64>().is_ok() => {
            format!("remove the quotes: {s}")
        }
        (_, KdlValue::Null) => "#null is not allowed here".into(),
        _ => format!("use {}", ty.describe()),
    }
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (levenshtein(&word.to_lowercase(), c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("mailbx", &["mailbox", "alias"]),
            Some("mailbox")
        );
        assert_eq!(did_you_mean("quot", &["quota", "sieve"]), Some("quota"));
        assert_eq!(did_you_mean("zzzzzz", &["quota", "sieve"]), None);
        assert_eq!(did_you_mean("Hostname", &["hostname"]), Some("hostname"));
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(
            normalize(std::path::Path::new("/a/b/./c/../d")),
            std::path::PathBuf::from("/a/b/d")
        );
        assert_eq!(
            normalize(std::path::Path::new("a/../../x")),
            std::path::PathBuf::from("../x")
        );
    }
}
