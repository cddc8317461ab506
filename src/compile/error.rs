//! Why one written value (an SPF term, a report URI, a send-as pattern) is
//! not valid. The compiler turns these into diagnostics with a span and a
//! code; the text here is the sentence after `...: `.

use crate::addr::AddrError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Address(#[from] AddrError),
    /// The host of an `https:` report URI.
    #[error("host: {0}")]
    Host(AddrError),
    #[error("write the final `all` as all=\"fail\" on the `spf` node")]
    SpfAll,
    #[error("`v=spf1` is added automatically")]
    SpfVersion,
    #[error("`ptr` is deprecated (RFC 7208 §5.5); use `a`, `mx` or `ip4:`")]
    SpfPtr,
    #[error("unknown mechanism")]
    SpfUnknown,
    #[error("`{0}` is not an IPv4 address")]
    NotIpv4(String),
    #[error("`{0}` is not an IPv4 network")]
    NotIpv4Network(String),
    #[error("`{0}` is not an IPv6 address")]
    NotIpv6(String),
    #[error("`{0}` is not an IPv6 network")]
    NotIpv6Network(String),
    #[error("bad prefix `/{0}`")]
    Prefix(String),
    #[error("only mailto: is allowed here")]
    MailtoOnly,
    #[error("URI contains a separator character")]
    UriSeparator,
    #[error("unsupported URI scheme")]
    UriScheme,
    #[error("not an address")]
    NotAnAddress,
}
