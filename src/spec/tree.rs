//! The checked tree: KDL nodes that passed the generic check against the
//! language table, with typed, spanned values. The typed AST (`spec::ast`) is
//! built from it without further validation of shapes or types.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::schema::NodeSpec;
use super::source::Span;
use crate::ipnet::Network;

/// A value after its type was checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    /// Bytes.
    Size(u64),
    /// Seconds.
    Duration(u64),
    Choice(&'static str),
    /// Already resolved against the directory of the file it was written in.
    Path(PathBuf),
    SocketAddr(SocketAddr),
    Network(Network),
    Ip(IpAddr),
    Score(f64),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SVal {
    pub value: Value,
    pub span: Span,
}

impl SVal {
    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A node that matched a row of the language table.
#[derive(Debug, Clone)]
pub struct SNode {
    pub spec: &'static NodeSpec,
    /// The whole node, children included.
    pub span: Span,
    pub name_span: Span,
    /// Arguments that type-checked, in order. A bad argument of a fixed
    /// position drops the whole node, so fixed positions are never shifted.
    pub args: Vec<SVal>,
    /// Properties that type-checked, in source order.
    pub props: Vec<(&'static str, SVal)>,
    pub children: Vec<SNode>,
}

impl SNode {
    pub fn prop(&self, name: &str) -> Option<&SVal> {
        self.props.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn arg(&self, index: usize) -> Option<&SVal> {
        self.args.get(index)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a SNode> + 'a {
        self.children.iter().filter(move |c| c.spec.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&SNode> {
        self.children.iter().find(|c| c.spec.name == name)
    }
}
