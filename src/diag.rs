//! Diagnostics of the config compiler: one [`Diag`] per problem, each with a stable
//! [`Code`], a severity, labelled spans (possibly in several files), and help.
//!
//! The compiler never stops at the first problem: `spec` and `compile` push into a
//! [`Diags`] list and the CLI renders all of them at the end with miette.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use crate::spec::source::{FileId, Sources, Span};

/// How bad a diagnostic is. Errors make `mailc check` exit 1; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

macro_rules! codes {
    ($($variant:ident = $text:literal, $doc:literal;)*) => {
        /// Stable diagnostic codes. The text (`mailc::alias::cycle`) is part of the
        /// public interface: scripts and docs refer to it, so never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $doc] $variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            pub fn describe(self) -> &'static str {
                match self {
                    $(Code::$variant => $doc,)*
                }
            }
        }
    };
}

codes! {
    Syntax = "mailc::syntax", "The file is not valid KDL v2.";
    Io = "mailc::io", "A configuration file could not be read.";
    NodeUnknown = "mailc::node::unknown", "A node name that is not part of the language at this place.";
    NodeDuplicate = "mailc::node::duplicate", "A node that may appear only once appears again.";
    NodeMissing = "mailc::node::missing", "A required node is absent.";
    NodeChildren = "mailc::node::children", "A node has a children block it does not take.";
    PropertyUnknown = "mailc::property::unknown", "A property this node does not take.";
    PropertyDuplicate = "mailc::property::duplicate", "The same property is given twice on one node.";
    PropertyMissing = "mailc::property::missing", "A required property is absent.";
    ArgumentMissing = "mailc::argument::missing", "A required argument is absent.";
    ArgumentUnexpected = "mailc::argument::unexpected", "More arguments than the node takes.";
    ValueType = "mailc::value::type", "A value of the wrong type (string, number, boolean).";
    ValueEnum = "mailc::value::choice", "A value that is not one of the allowed words.";
    ValueRange = "mailc::value::range", "A number outside its allowed range.";
    ValueSize = "mailc::value::size", "A size that does not parse (use units like `25MiB`).";
    ValueDuration = "mailc::value::duration", "A duration that does not parse (use units like `5m`).";
    ValueAddress = "mailc::value::socket-address", "A listener address that is not `IP:PORT`.";
    ValueNetwork = "mailc::value::network", "A network that is not `IP/PREFIX`.";
    ValueIp = "mailc::value::ip", "A value that is not an IP address.";
    ValueAnnotation = "mailc::value::annotation", "KDL type annotations are not used by mailc.";
    IncludeNotFound = "mailc::include::not-found", "An included file does not exist.";
    IncludeCycle = "mailc::include::cycle", "Files include each other in a loop.";
    IncludeEmpty = "mailc::include::empty", "An include pattern matches no file.";
    HostnameInvalid = "mailc::hostname::invalid", "The server hostname is not a fully qualified domain name.";
    DomainInvalid = "mailc::domain::invalid", "A domain name that is not valid (after IDNA mapping).";
    DomainDuplicate = "mailc::domain::duplicate", "The same domain is declared twice.";
    AddressInvalid = "mailc::address::invalid", "An address or local part that is not valid.";
    AddressDuplicate = "mailc::address::duplicate", "Two mailboxes or aliases claim the same address.";
    MailboxDuplicate = "mailc::mailbox::duplicate", "The same mailbox is declared twice in a domain.";
    AliasDuplicate = "mailc::alias::duplicate", "The same alias is declared twice.";
    AliasCycle = "mailc::alias::cycle", "Aliases expand into each other in a loop.";
    AliasUnknownTarget = "mailc::alias::unknown-target", "An alias points at a local address that does not exist.";
    AliasDisabledTarget = "mailc::alias::disabled-target", "An alias delivers to a disabled mailbox.";
    AliasEmpty = "mailc::alias::empty", "An alias has no target.";
    CatchAllTarget = "mailc::catch-all::unknown-target", "A catch-all points at a local address that does not exist.";
    ListenerDuplicate = "mailc::listener::duplicate", "Two listeners bind the same address and port.";
    ListenerOption = "mailc::listener::option", "A listener option that does not apply to its kind.";
    ListenerLmtpPublic = "mailc::listener::lmtp-public", "LMTP is unauthenticated and should listen on loopback only.";
    ListenerNone = "mailc::listener::none", "No listeners: `mailc serve` would do nothing.";
    TlsMissingCertificate = "mailc::tls::missing-certificate", "A listener needs TLS but no certificate is configured.";
    TlsConflict = "mailc::tls::conflict", "A `tls` node mixes a self-signed certificate with certificate files.";
    TlsIncomplete = "mailc::tls::incomplete", "A `tls` node has a certificate without a key or the other way round.";
    TlsDuplicateName = "mailc::tls::duplicate-name", "Two certificates are selected by the same SNI name.";
    TlsSelfSigned = "mailc::tls::self-signed", "A self-signed certificate is in use: clients will not trust it.";
    TlsAcme = "mailc::tls::acme", "An `acme` block with a bad directory URL or contact, or in a build without ACME.";
    TlsAcmeChallengePort = "mailc::tls::acme-challenge-port", "The ACME challenge needs a listener on the port the CA connects to (443 for TLS-ALPN-01, 80 for HTTP-01).";
    AuthPlaintext = "mailc::auth::plaintext", "A listener would accept passwords over an unencrypted connection.";
    RelayOpen = "mailc::relay::open", "The configuration would let strangers relay mail through this server.";
    RelayHostInvalid = "mailc::relay-host::invalid", "A relay host that is not `HOST:PORT`.";
    SecretMissing = "mailc::secret::missing", "A secret file named by the configuration does not exist.";
    SecretUnreadable = "mailc::secret::unreadable", "A secret file exists but cannot be read.";
    FileMissing = "mailc::file::missing", "A file named by the configuration (not a secret) does not exist.";
    SecretPermissions = "mailc::secret::permissions", "A secret file is readable by other users.";
    PasswordMalformed = "mailc::password::malformed", "A password hash that is not a supported, well-formed hash.";
    PasswordConflict = "mailc::password::conflict", "A mailbox has both `password` and `password-file`.";
    PasswordNone = "mailc::password::none", "A mailbox without a password cannot log in.";
    DkimMissing = "mailc::dkim::missing", "A domain signs no outgoing mail with DKIM.";
    DkimDuplicate = "mailc::dkim::duplicate", "The same DKIM selector is declared twice in a domain.";
    DkimSelector = "mailc::dkim::selector", "A DKIM selector that is not a valid DNS label.";
    DkimKeyNotGenerated = "mailc::dkim::key-not-generated", "A DKIM key has not been generated yet.";
    DmarcMissing = "mailc::dmarc::missing", "A domain publishes no DMARC policy.";
    DmarcReport = "mailc::dmarc::report-address", "A DMARC report address is not a valid `mailto:` URI or address.";
    DmarcReportsFrom = "mailc::dmarc::reports-from", "The sender of the DMARC aggregate reports we send is not an address in one of our domains.";
    SpfMechanism = "mailc::spf::mechanism", "An SPF term that is not valid SPF syntax.";
    TlsReportsFrom = "mailc::tls-reports::from", "The sender of the TLS reports we send is not an address in one of our domains.";
    TlsRptUri = "mailc::tls-rpt::uri", "A TLS-RPT report URI that is not `mailto:` or `https:`.";
    MxInvalid = "mailc::mx::invalid", "An MX host that is not a valid host name.";
    PostmasterMissing = "mailc::domain::no-postmaster", "A domain has no `postmaster` address (RFC 5321 §4.5.1 requires one).";
    PlusSeparator = "mailc::plus-separator::invalid", "A plus-address separator that cannot work.";
    SendAsInvalid = "mailc::send-as::invalid", "A send-as pattern that is not an address or `*@domain`.";
    StateRelative = "mailc::state::invalid", "The state directory is not usable.";
    AuthCacheTtl = "mailc::auth-cache::ttl", "An `auth-cache` lifetime outside 1s..1h.";
    TimeoutBelowRfc = "mailc::timeout::below-rfc", "A timeout shorter than the minimum its RFC asks servers to allow.";
    NetworkHostBits = "mailc::network::host-bits", "A network with bits set after the prefix.";
    OutboundExpire = "mailc::outbound::expire", "Messages would be bounced too soon (RFC 5321 §4.5.4.1 asks for 4-5 days).";
    OutboundRetry = "mailc::outbound::retry", "A retry schedule that cannot work.";
    RouteInvalid = "mailc::route::invalid", "A route whose domain pattern or relay host is not valid.";
    RouteDuplicate = "mailc::route::duplicate", "Two routes for the same domain pattern.";
    RouteInsecureLogin = "mailc::route::insecure-login", "A route would send a password without a verified TLS connection.";
    ResolverDuplicate = "mailc::resolver::duplicate", "The same DNS server is listed twice.";
    DnsblZone = "mailc::dnsbl::zone", "A DNS blocklist zone or its answer list that is not valid, or no zone at all.";
    DnsblThreshold = "mailc::dnsbl::threshold", "The blocklists' weights can never reach the threshold.";
    GreylistTimes = "mailc::greylist::times", "Greylisting times that let no retry pass, or shut out compliant senders.";
    ScanAddress = "mailc::scan::address", "A scanner address that is neither IP:PORT nor an absolute socket path.";
    ScanPolicy = "mailc::scan::policy", "Scanning settings that contradict each other or scan nothing.";
    SieveSyntax = "mailc::sieve::syntax", "A Sieve script that does not compile (RFC 5228 syntax or arguments).";
    SieveExtension = "mailc::sieve::extension", "A Sieve script uses an extension it does not `require`, or one mailc does not support.";
    SieveLimit = "mailc::sieve::limit", "A Sieve script exceeds a limit (size, nesting, string length).";
    SieveUnreadable = "mailc::sieve::unreadable", "A Sieve script file cannot be read or is not UTF-8.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span with a short text printed under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// The first label is the primary location.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diag {
    pub fn error(code: Code, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(code, message)
        }
    }

    pub fn label(mut self, span: Span, text: impl Into<String>) -> Diag {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

/// The list every stage pushes into.
#[derive(Debug, Default, Clone)]
pub struct Diags {
    list: Vec<Diag>,
}

impl Diags {
    pub fn new() -> Diags {
        Diags::default()
    }

    pub fn push(&mut self, diag: Diag) {
        self.list.push(diag);
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Diag::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.list.len() - self.error_count()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diag> {
        self.list.iter()
    }

    /// Diagnostics in a stable order: by file, then position, then code, so the
    /// output of `mailc check` does not depend on the order checks ran in.
    pub fn sorted(&self) -> Vec<&Diag> {
        let mut v: Vec<&Diag> = self.list.iter().collect();
        v.sort_by_key(|d| {
            let s = d.primary_span();
            (
                s.map(|s| s.file),
                s.map(|s| s.offset),
                std::cmp::Reverse(d.severity),
                d.code,
                d.message.clone(),
            )
        });
        v
    }

    pub fn into_vec(self) -> Vec<Diag> {
        self.list
    }
}

/// How diagnostics are drawn.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    /// Colours and unicode, for a terminal.
    Fancy,
    /// Unicode without colour at a fixed width: stable for snapshots and logs.
    Plain,
}

/// Renders every diagnostic, then a summary line (`2 errors, 1 warning`).
pub fn render_all(diags: &Diags, sources: &Sources, style: Style, width: usize) -> String {
    let mut out = String::new();
    for d in diags.sorted() {
        out.push_str(&render(d, sources, style, width));
    }
    out
}

/// The one-line summary printed after the diagnostics.
pub fn summary(diags: &Diags) -> String {
    fn plural(n: usize, word: &str) -> String {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    }
    format!(
        "{}, {}",
        plural(diags.error_count(), "error"),
        plural(diags.warning_count(), "warning")
    )
}

pub fn render(diag: &Diag, sources: &Sources, style: Style, width: usize) -> String {
    let theme = match style {
        Style::Fancy => GraphicalTheme::unicode(),
        Style::Plain => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false)
        .with_urls(false);
    let report = Rendered::new(diag, sources);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        // Rendering into a String cannot fail in practice; fall back to one line.
        out = format!("{}: {}\n", diag.code, diag.message);
    }
    out
}

/// The miette view of a [`Diag`]: labels in the primary file are drawn on its
/// source; labels in other files become related reports with their own source.
#[derive(Debug)]
struct Rendered {
    message: String,
    code: &'static str,
    severity: miette::Severity,
    help: Option<String>,
    source: Option<NamedSource<std::sync::Arc<String>>>,
    labels: Vec<LabeledSpan>,
    related: Vec<Rendered>,
}

impl Rendered {
    fn new(diag: &Diag, sources: &Sources) -> Rendered {
        let primary = diag.primary_span().map(|s| s.file);
        let mut related: Vec<Rendered> = Vec::new();
        let mut labels = Vec::new();
        for (i, l) in diag.labels.iter().enumerate() {
            let labeled = if i == 0 {
                LabeledSpan::new_primary_with_span(Some(l.text.clone()), l.span.to_miette())
            } else {
                LabeledSpan::new_with_span(Some(l.text.clone()), l.span.to_miette())
            };
            if Some(l.span.file) == primary {
                labels.push(labeled);
            } else {
                related.push(Rendered {
                    message: format!("see also {}", sources.location(l.span)),
                    code: diag.code.as_str(),
                    severity: miette::Severity::Advice,
                    help: None,
                    source: Some(named(sources, l.span.file)),
                    labels: vec![labeled],
                    related: Vec::new(),
                });
            }
        }
        Rendered {
            message: diag.message.clone(),
            code: diag.code.as_str(),
            severity: match diag.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            help: diag.help.clone(),
            source: primary.map(|f| named(sources, f)),
            labels,
            related,
        }
    }
}

fn named(sources: &Sources, file: FileId) -> NamedSource<std::sync::Arc<String>> {
    let f = sources.get(file);
    NamedSource::new(&f.name, f.text.clone())
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}
