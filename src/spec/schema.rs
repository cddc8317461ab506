//! The configuration language, as data: one [`NodeSpec`] row per node, with its
//! arguments, properties and children.
//!
//! This table is the single definition of the grammar. The generic checker
//! (`spec::check`) validates any KDL document against it (unknown names with
//! "did you mean", types, arity, duplicates), `mailc schema config` turns it into
//! JSON Schema, and the mutation test walks it. Adding a property here is the
//! only way to make it legal.

/// The type of an argument or property value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Any string.
    Str,
    /// `#true` / `#false`.
    Bool,
    /// An integer in an inclusive range.
    Int { min: i64, max: i64 },
    /// A byte size: `25MiB`, `2GB`, or a plain integer of bytes.
    Size,
    /// A duration: `30s`, `5m`, `1h30m`, `7d`.
    Duration,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A file system path; relative paths resolve against the directory of the
    /// file that contains them.
    Path,
    /// `IP:PORT` (IPv6 as `[::1]:25`).
    SocketAddr,
    /// `IP/PREFIX` (a bare IP means a single host).
    Network,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A spam score: a number, decimals allowed (`5`, `6.5`, `-1`), within
    /// ±1000.
    Score,
}

impl Ty {
    /// How the type is named in diagnostics.
    pub fn describe(&self) -> String {
        match self {
            Ty::Str => "a string".into(),
            Ty::Bool => "#true or #false".into(),
            Ty::Int { min, max } if *max == i64::MAX => format!("an integer ≥ {min}"),
            Ty::Int { min, max } => format!("an integer from {min} to {max}"),
            Ty::Size => "a size such as \"25MiB\"".into(),
            Ty::Duration => "a duration such as \"5m\"".into(),
            Ty::Choice(words) => format!("one of {}", quoted_list(words)),
            Ty::Path => "a path".into(),
            Ty::SocketAddr => "an address such as \"127.0.0.1:25\"".into(),
            Ty::Network => "a network such as \"192.0.2.0/24\"".into(),
            Ty::Ip => "an IP address".into(),
            Ty::Score => "a score such as 5 or 6.5".into(),
        }
    }
}

pub fn quoted_list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A positional argument.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    /// Name used in messages and docs (`KIND`, `ADDRESS`).
    pub name: &'static str,
    pub ty: Ty,
    /// `#null` is accepted and means "off".
    pub nullable: bool,
    pub doc: &'static str,
}

/// The positional arguments of a node: fixed ones first, then an optional
/// repeated tail.
#[derive(Debug, Clone, Copy)]
pub struct Args {
    pub fixed: &'static [ArgSpec],
    /// How many of `fixed` are required (the rest are optional).
    pub required: usize,
    /// Further arguments of one type, with a minimum count.
    pub rest: Option<(ArgSpec, usize)>,
}

impl Args {
    pub const NONE: Args = Args {
        fixed: &[],
        required: 0,
        rest: None,
    };

    /// Spec of the argument at `index`, if any is allowed there.
    pub fn at(&self, index: usize) -> Option<&ArgSpec> {
        self.fixed.get(index).or(self.rest.as_ref().map(|(a, _)| a))
    }

    pub fn min(&self) -> usize {
        self.required + self.rest.map_or(0, |(_, n)| n)
    }

    pub fn max(&self) -> Option<usize> {
        match self.rest {
            Some(_) => None,
            None => Some(self.fixed.len()),
        }
    }
}

/// A property (`key=value`).
#[derive(Debug, Clone, Copy)]
pub struct PropSpec {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub doc: &'static str,
}

/// One node of the language at one place in the tree.
#[derive(Debug)]
pub struct NodeSpec {
    pub name: &'static str,
    pub doc: &'static str,
    pub args: Args,
    pub props: &'static [PropSpec],
    pub children: &'static [&'static NodeSpec],
    /// May appear more than once in its parent.
    pub repeat: bool,
    /// Must appear in its parent.
    pub required: bool,
}

impl NodeSpec {
    pub fn child(&self, name: &str) -> Option<&'static NodeSpec> {
        self.children.iter().copied().find(|c| c.name == name)
    }

    pub fn prop(&self, name: &str) -> Option<&'static PropSpec> {
        self.props.iter().find(|p| p.name == name)
    }
}
