//! SPF (RFC 7208): `check_host()` with the record syntax of §12 checked
//! before anything is evaluated (§4.6), macros (§7), the limits of §4.6.4
//! (10 lookups, 2 void lookups, 10 MX names, 10 PTR names) and the result
//! mapping of `include` (§5.2) and `redirect` (§6.1). DNS goes through the
//! [`Dns`] trait; `services::inbound` implements it with the server's
//! resolver, the unit tests with a table.
//!
//! Ours rather than mail-auth's: mail-auth 0.13.3 accepts records the RFC
//! calls syntax errors, gives `temperror` (which defers mail) for malformed
//! domain names, takes the first of two SPF records, has no void-lookup
//! limit and matches IPv4 clients against `ip6`/AAAA — each a case of the
//! RFC 7208 test suite (`tests/spf_suite.rs`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use mail_auth::SpfResult;

/// What one DNS query found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Records(Vec<T>),
    /// NXDOMAIN, or the name without records of that type (a "void
    /// lookup" of §4.6.4 either way).
    NotFound,
    /// SERVFAIL, timeout, anything else: `temperror`.
    Error,
}

/// The lookups SPF needs. Names come without the trailing dot.
pub trait Dns {
    /// Each TXT record's strings concatenated.
    fn txt(&self, name: &str) -> impl Future<Output = Answer<String>> + Send;
    fn a(&self, name: &str) -> impl Future<Output = Answer<Ipv4Addr>> + Send;
    fn aaaa(&self, name: &str) -> impl Future<Output = Answer<Ipv6Addr>> + Send;
    /// The exchanges' names, in preference order.
    fn mx(&self, name: &str) -> impl Future<Output = Answer<String>> + Send;
    fn ptr(&self, ip: IpAddr) -> impl Future<Output = Answer<String>> + Send;
}

/// Lookups of mechanisms and modifiers that query DNS (§4.6.4).
pub const MAX_LOOKUPS: u32 = 10;
/// Lookups that found nothing (§4.6.4).
pub const MAX_VOID: u32 = 2;
/// MX names looked at by one `mx`, PTR names by one `ptr` (§4.6.4).
const MAX_NAMES: usize = 10;
/// Bytes of a record we parse at all: what one DNS message can carry.
/// RFC 7208 sets no limit of its own; parsing is linear and evaluation is
/// bounded by the lookup limits, so a long record costs little.
const MAX_RECORD: usize = 65_535;

/// The outcome of `check_host()`, with a reason for the
/// `Authentication-Results` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: SpfResult,
    pub reason: String,
}

fn out(result: SpfResult, reason: impl Into<String>) -> Outcome {
    Outcome {
        result,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn result(self) -> SpfResult {
        match self {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mechanism {
    All,
    Include(String),
    A(Option<String>, u8, u8),
    Mx(Option<String>, u8, u8),
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Record {
    directives: Vec<(Qualifier, Mechanism)>,
    redirect: Option<String>,
}

/// Why a record is a syntax error (permerror).
fn syntax(what: impl std::fmt::Display) -> String {
    format!("syntax error in the SPF record: {what}")
}

/// Whether a TXT record is an SPF record (§4.5): `v=spf1` alone or
/// followed by a space.
fn is_spf(txt: &str) -> bool {
    let t = txt.as_bytes();
    t.len() >= 6 && t[..6].eq_ignore_ascii_case(b"v=spf1") && (t.len() == 6 || t[6] == b' ')
}

/// Parses a whole record (§12); any error is a permerror.
fn parse(txt: &str) -> Result<Record, String> {
    if txt.len() > MAX_RECORD {
        return Err(syntax(format!("longer than {MAX_RECORD} bytes")));
    }
    if !txt.is_ascii() || txt.bytes().any(|b| b.is_ascii_control()) {
        return Err(syntax("not 7-bit printable ASCII"));
    }
    let mut record = Record::default();
    let mut exp_seen = false;
    for term in txt[6..].split(' ').filter(|t| !t.is_empty()) {
        // A modifier: name "=" ...; the name starts with a letter.
        let name_end = term
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(term.len());
        if term[name_end..].starts_with('=') {
            let (name, value) = (&term[..name_end], &term[name_end + 1..]);
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return Err(syntax(format!("modifier name in {term:?}")));
            }
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    if record.redirect.is_some() {
                        return Err(syntax("two redirect= modifiers"));
                    }
                    domain_spec(value)?;
                    record.redirect = Some(value.to_string());
                }
                "exp" => {
                    if exp_seen {
                        return Err(syntax("two exp= modifiers"));
                    }
                    exp_seen = true;
                    domain_spec(value)?;
                }
                _ => macro_string(value, true)?,
            }
            continue;
        }
        let (q, rest) = match term.as_bytes()[0] {
            b'+' => (Qualifier::Pass, &term[1..]),
            b'-' => (Qualifier::Fail, &term[1..]),
            b'~' => (Qualifier::SoftFail, &term[1..]),
            b'?' => (Qualifier::Neutral, &term[1..]),
            _ => (Qualifier::Pass, term),
        };
        record.directives.push((q, mechanism(rest)?));
    }
    Ok(record)
}

fn mechanism(term: &str) -> Result<Mechanism, String> {
    let name_end = term.find([':', '/']).unwrap_or(term.len());
    let (name, rest) = (term[..name_end].to_ascii_lowercase(), &term[name_end..]);
    let arg = rest.strip_prefix(':');
    let required = |arg: Option<&str>| -> Result<String, String> {
        let a = arg.ok_or_else(|| syntax(format!("{name} needs a domain")))?;
        domain_spec(a)?;
        Ok(a.to_string())
    };
    Ok(match name.as_str() {
        "all" if rest.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(required(arg)?),
        "exists" => Mechanism::Exists(required(arg)?),
        "ptr" => match arg {
            None if rest.is_empty() => Mechanism::Ptr(None),
            Some(a) => {
                domain_spec(a)?;
                Mechanism::Ptr(Some(a.to_string()))
            }
            None => return Err(syntax(term)),
        },
        "a" | "mx" => {
            let (domain, cidr) = match arg {
                Some(a) => {
                    // The domain-spec ends where a cidr-length starts
                    // (a "/" followed by digits to the end).
                    let (d, c) = split_cidr(a);
                    domain_spec(d)?;
                    (Some(d.to_string()), c)
                }
                None => (None, rest),
            };
            let (v4, v6) = dual_cidr(cidr)?;
            if name == "a" {
                Mechanism::A(domain, v4, v6)
            } else {
                Mechanism::Mx(domain, v4, v6)
            }
        }
        "ip4" => {
            let a = arg.ok_or_else(|| syntax("ip4 needs an address"))?;
            let (addr, len) = match a.split_once('/') {
                Some((addr, len)) => (addr, cidr_len(len, 32)?),
                None => (a, 32),
            };
            let ip: Ipv4Addr = addr
                .parse()
                .map_err(|_| syntax(format!("ip4 address {addr:?}")))?;
            Mechanism::Ip4(ip, len)
        }
        "ip6" => {
            let a = arg.ok_or_else(|| syntax("ip6 needs an address"))?;
            let (addr, len) = match a.rsplit_once('/') {
                Some((addr, len)) => (addr, cidr_len(len, 128)?),
                None => (a, 128),
            };
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| syntax(format!("ip6 address {addr:?}")))?;
            Mechanism::Ip6(ip, len)
        }
        _ => return Err(syntax(format!("unknown mechanism {term:?}"))),
    })
}

/// `example.com/24//64` → (`example.com`, `/24//64`).
fn split_cidr(a: &str) -> (&str, &str) {
    let bytes = a.as_bytes();
    let mut end = a.len();
    // Walk back over the trailing "/digits" groups (at most two).
    for _ in 0..2 {
        let digits = bytes[..end]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || end < digits + 1 || bytes[end - digits - 1] != b'/' {
            break;
        }
        end -= digits + 1;
        if end > 0 && bytes[end - 1] == b'/' {
            end -= 1;
        }
    }
    (&a[..end], &a[end..])
}

/// `[ "/" ip4-len ] [ "//" ip6-len ]`.
fn dual_cidr(c: &str) -> Result<(u8, u8), String> {
    if c.is_empty() {
        return Ok((32, 128));
    }
    let (v4, v6) = match c.split_once("//") {
        Some((v4, v6)) => (v4, Some(v6)),
        None => (c, None),
    };
    let v4 = match v4 {
        "" => 32,
        s => cidr_len(
            s.strip_prefix('/')
                .ok_or_else(|| syntax(format!("cidr {c:?}")))?,
            32,
        )?,
    };
    let v6 = match v6 {
        None => 128,
        Some(s) => cidr_len(s, 128)?,
    };
    Ok((v4, v6))
}

/// A cidr-length: no leading zero, at most `max`.
fn cidr_len(s: &str, max: u8) -> Result<u8, String> {
    let bad = || syntax(format!("cidr length /{s}"));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad());
    }
    let n: u32 = s.parse().map_err(|_| bad())?;
    if n > u32::from(max) {
        return Err(bad());
    }
    Ok(n as u8)
}

/// A macro-string (§7.1); `exp` allows the `c`, `r`, `t` letters.
fn macro_string(s: &str, exp: bool) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => i += 2,
                Some(b'{') => {
                    let close = s[i..]
                        .find('}')
                        .ok_or_else(|| syntax(format!("unclosed macro in {s:?}")))?;
                    macro_expand_syntax(&s[i + 2..i + close], exp)?;
                    i += close + 1;
                }
                _ => return Err(syntax(format!("bad % in {s:?}"))),
            },
            0x21..=0x7e => i += 1,
            _ => return Err(syntax(format!("character in {s:?}"))),
        }
    }
    Ok(())
}

fn macro_expand_syntax(inner: &str, exp: bool) -> Result<(), String> {
    let mut chars = inner.chars();
    let letter = chars
        .next()
        .ok_or_else(|| syntax("empty macro"))?
        .to_ascii_lowercase();
    let ok = matches!(letter, 's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'v')
        || (exp && matches!(letter, 'c' | 'r' | 't'));
    if !ok {
        return Err(syntax(format!("macro letter {letter:?}")));
    }
    let rest: &str = chars.as_str();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut rest = &rest[digits..];
    if let Some(r) = rest.strip_prefix(['r', 'R']) {
        rest = r;
    }
    if !rest.chars().all(|c| ".-+,/_=".contains(c)) {
        return Err(syntax(format!("macro {inner:?}")));
    }
    Ok(())
}

/// A domain-spec (§7.1): a macro-string that ends in a macro or in `.`
/// and a valid toplabel.
fn domain_spec(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(syntax("empty domain"));
    }
    macro_string(s, false)?;
    if s.ends_with('}') {
        return Ok(());
    }
    let t = s.strip_suffix('.').unwrap_or(s);
    let Some((_, top)) = t.rsplit_once('.') else {
        return Err(syntax(format!("{s:?} is not a domain")));
    };
    if toplabel(top) || s.ends_with("%%") || s.ends_with("%_") || s.ends_with("%-") {
        Ok(())
    } else {
        Err(syntax(format!("top label of {s:?}")))
    }
}

/// `toplabel` of §7.1: alphanumerics with at least one letter, or with
/// inner hyphens.
fn toplabel(l: &str) -> bool {
    let b = l.as_bytes();
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return false;
    }
    if b.contains(&b'-') {
        b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric()
    } else {
        b.iter().any(u8::is_ascii_alphabetic)
    }
}

/// A name a DNS query can be made for (RFC 1035 lengths, no empty label).
fn queryable(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b > 0x20 && b < 0x7f))
}

/// Whether `domain` may be checked at all (§4.3): a multi-label FQDN with
/// no empty label, each label at most 63 octets of letters, digits, `-`
/// and `_` (so no address literal like `[192.0.2.1]`).
pub fn checkable(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    queryable(d)
        && d.contains('.')
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The identity, the client and the counters of one evaluation.
struct Ctx<'a, D> {
    dns: &'a D,
    ip: IpAddr,
    sender_local: String,
    sender_domain: String,
    helo: &'a str,
    lookups: u32,
    void: u32,
}

fn ipv4_of(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// `check_host(ip, domain, sender)` of §4 for MAIL FROM (`sender` as
/// given, or `postmaster@helo` for the null sender) — the caller chooses.
pub async fn check_host<D: Dns>(
    dns: &D,
    ip: IpAddr,
    domain: &str,
    sender: &str,
    helo: &str,
) -> Outcome {
    let (local, sdomain) = match sender.rsplit_once('@') {
        Some(("", d)) => ("postmaster".to_string(), d.to_string()),
        Some((l, d)) => (l.to_string(), d.to_string()),
        None => ("postmaster".to_string(), sender.to_string()),
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut ctx = Ctx {
        dns,
        ip,
        sender_local: local,
        sender_domain: sdomain,
        helo,
        lookups: 0,
        void: 0,
    };
    // An internationalised domain (SMTPUTF8) is looked up as its A-label.
    let domain = match domain.is_ascii() {
        true => domain.to_string(),
        false => idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_string()),
    };
    if !checkable(&domain) {
        return out(
            SpfResult::None,
            format!("{domain:?} is not a domain SPF can check"),
        );
    }
    Box::pin(ctx.check(domain.trim_end_matches('.').to_ascii_lowercase(), 0)).await
}

/// How deep include/redirect may nest; the lookup limit ends any loop
/// long before, this only bounds the stack.
const MAX_DEPTH: u32 = 12;

impl<D: Dns> Ctx<'_, D> {
    async fn check(&mut self, domain: String, depth: u32) -> Outcome {
        if depth > MAX_DEPTH {
            return out(SpfResult::PermError, "include/redirect nested too deep");
        }
        let txts = match self.dns.txt(&domain).await {
            Answer::Error => {
                return out(
                    SpfResult::TempError,
                    format!("DNS error looking up {domain}"),
                );
            }
            Answer::NotFound => return out(SpfResult::None, format!("no SPF record at {domain}")),
            Answer::Records(t) => t,
        };
        let spf: Vec<&String> = txts.iter().filter(|t| is_spf(t)).collect();
        let record = match spf[..] {
            [] => return out(SpfResult::None, format!("no SPF record at {domain}")),
            [one] => one,
            _ => {
                return out(
                    SpfResult::PermError,
                    format!("{domain} has more than one SPF record"),
                );
            }
        };
        let record = match parse(record) {
            Ok(r) => r,
            Err(e) => return out(SpfResult::PermError, format!("{domain}: {e}")),
        };
        for (q, m) in &record.directives {
            match self.matches(m, &domain, depth).await {
                Ok(true) => {
                    return out(q.result(), format!("{domain} matched {}", describe(m)));
                }
                Ok(false) => {}
                Err(o) => return o,
            }
        }
        if let Some(target) = &record.redirect {
            if let Err(o) = self.count() {
                return o;
            }
            let target = match self.expand(target, &domain).await {
                Ok(t) => t,
                Err(o) => return o,
            };
            if !queryable(&target) {
                return out(SpfResult::PermError, format!("redirect to {target:?}"));
            }
            let o = Box::pin(self.check(target.clone(), depth + 1)).await;
            return match o.result {
                SpfResult::None => out(
                    SpfResult::PermError,
                    format!("redirect to {target} without an SPF record"),
                ),
                _ => o,
            };
        }
        out(
            SpfResult::Neutral,
            format!("nothing in {domain}'s SPF record matched"),
        )
    }

    /// A lookup of §4.6.4.
    fn count(&mut self) -> Result<(), Outcome> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            Err(out(
                SpfResult::PermError,
                format!("more than {MAX_LOOKUPS} DNS lookups"),
            ))
        } else {
            Ok(())
        }
    }

    fn void(&mut self) -> Result<(), Outcome> {
        self.void += 1;
        if self.void > MAX_VOID {
            Err(out(
                SpfResult::PermError,
                format!("more than {MAX_VOID} void DNS lookups"),
            ))
        } else {
            Ok(())
        }
    }

    async fn matches(&mut self, m: &Mechanism, domain: &str, depth: u32) -> Result<bool, Outcome> {
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => {
                Ok(ipv4_of(self.ip).is_some_and(|ip| in_v4(ip, *net, *len)))
            }
            Mechanism::Ip6(net, len) => Ok(match self.ip {
                IpAddr::V6(ip) => in_v6(ip, *net, *len),
                IpAddr::V4(_) => false,
            }),
            Mechanism::Include(spec) => {
                self.count()?;
                let target = self.expand(spec, domain).await?;
                if !queryable(&target) {
                    return Err(out(SpfResult::PermError, format!("include of {target:?}")));
                }
                let o = Box::pin(self.check(target.clone(), depth + 1)).await;
                match o.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(o),
                    SpfResult::PermError => Err(o),
                    SpfResult::None => Err(out(
                        SpfResult::PermError,
                        format!("include of {target}, which has no SPF record"),
                    )),
                }
            }
            Mechanism::A(spec, v4, v6) => {
                self.count()?;
                let target = self.target(spec.as_deref(), domain).await?;
                let Some(target) = target else {
                    return Ok(false);
                };
                self.host_matches(&target, *v4, *v6, true).await
            }
            Mechanism::Mx(spec, v4, v6) => {
                self.count()?;
                let target = self.target(spec.as_deref(), domain).await?;
                let Some(target) = target else {
                    return Ok(false);
                };
                let names = match self.dns.mx(&target).await {
                    Answer::Error => {
                        return Err(out(
                            SpfResult::TempError,
                            format!("DNS error looking up MX of {target}"),
                        ));
                    }
                    Answer::NotFound => {
                        self.void()?;
                        return Ok(false);
                    }
                    Answer::Records(n) => n,
                };
                if names.len() > MAX_NAMES {
                    return Err(out(
                        SpfResult::PermError,
                        format!("{target} has more than {MAX_NAMES} MX records"),
                    ));
                }
                for name in names {
                    if self.host_matches(&name, *v4, *v6, false).await? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count()?;
                let target = self.target(spec.as_deref(), domain).await?;
                let Some(target) = target else {
                    return Ok(false);
                };
                Ok(self
                    .validated_names()
                    .await?
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&target) || ends_with_label(n, &target)))
            }
            Mechanism::Exists(spec) => {
                self.count()?;
                let target = self.expand(spec, domain).await?;
                if !queryable(&target) {
                    return Ok(false);
                }
                match self.dns.a(&target).await {
                    Answer::Records(r) if !r.is_empty() => Ok(true),
                    Answer::Records(_) | Answer::NotFound => {
                        self.void()?;
                        Ok(false)
                    }
                    Answer::Error => Err(out(
                        SpfResult::TempError,
                        format!("DNS error looking up {target}"),
                    )),
                }
            }
        }
    }

    /// The target name of a/mx/ptr: the expanded domain-spec or the
    /// current domain; `None` when it cannot be queried (no match, as for
    /// a name that does not exist).
    async fn target(
        &mut self,
        spec: Option<&str>,
        domain: &str,
    ) -> Result<Option<String>, Outcome> {
        let t = match spec {
            Some(s) => self.expand(s, domain).await?,
            None => domain.to_string(),
        };
        Ok(queryable(&t).then_some(t))
    }

    /// Whether an address of `name` (A for an IPv4 client, AAAA for IPv6)
    /// is within the cidr of the client. `count_void`: an empty answer
    /// counts as a void lookup (the `a` mechanism's own name; not the
    /// address lookups of each MX host, which §4.6.4 bounds separately).
    async fn host_matches(
        &mut self,
        name: &str,
        v4: u8,
        v6: u8,
        count_void: bool,
    ) -> Result<bool, Outcome> {
        let matched = match self.ip {
            IpAddr::V4(ip) => match self.dns.a(name).await {
                Answer::Records(addrs) => Some(addrs.iter().any(|a| in_v4(ip, *a, v4))),
                Answer::NotFound => None,
                Answer::Error => {
                    return Err(out(
                        SpfResult::TempError,
                        format!("DNS error looking up {name}"),
                    ));
                }
            },
            IpAddr::V6(ip) => match self.dns.aaaa(name).await {
                Answer::Records(addrs) => Some(addrs.iter().any(|a| in_v6(ip, *a, v6))),
                Answer::NotFound => None,
                Answer::Error => {
                    return Err(out(
                        SpfResult::TempError,
                        format!("DNS error looking up {name}"),
                    ));
                }
            },
        };
        match matched {
            Some(m) => Ok(m),
            None => {
                if count_void {
                    self.void()?;
                }
                Ok(false)
            }
        }
    }

    /// The client's PTR names whose addresses include the client (§5.5),
    /// at most [`MAX_NAMES`] looked at. A DNS error here is no match.
    async fn validated_names(&mut self) -> Result<Vec<String>, Outcome> {
        let names = match self.dns.ptr(self.ip).await {
            Answer::Records(n) => n,
            Answer::NotFound => {
                self.void()?;
                return Ok(Vec::new());
            }
            Answer::Error => return Ok(Vec::new()),
        };
        let mut valid = Vec::new();
        for name in names.into_iter().take(MAX_NAMES) {
            let name = name.trim_end_matches('.').to_string();
            if !queryable(&name) {
                continue;
            }
            let ok = match self.ip {
                IpAddr::V4(ip) => {
                    matches!(self.dns.a(&name).await, Answer::Records(a) if a.contains(&ip))
                }
                IpAddr::V6(ip) => {
                    matches!(self.dns.aaaa(&name).await, Answer::Records(a) if a.contains(&ip))
                }
            };
            if ok {
                valid.push(name);
            }
        }
        Ok(valid)
    }

    /// Expands a domain-spec (§7.3, §7.4): macros replaced, then labels
    /// dropped from the left until the name is at most 253 octets.
    async fn expand(&mut self, spec: &str, domain: &str) -> Result<String, Outcome> {
        let mut outs = String::new();
        let b = spec.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                outs.push(b[i] as char);
                i += 1;
                continue;
            }
            match b.get(i + 1) {
                Some(b'%') => outs.push('%'),
                Some(b'_') => outs.push(' '),
                Some(b'-') => outs.push_str("%20"),
                Some(b'{') => {
                    let close = spec[i..].find('}').unwrap_or(spec.len() - i);
                    let inner = &spec[i + 2..i + close];
                    let v = self.macro_value(inner, domain).await;
                    outs.push_str(&v);
                    i += close + 1;
                    continue;
                }
                _ => {}
            }
            i += 2;
        }
        let mut name = outs.trim_end_matches('.').to_string();
        while name.len() > 253 {
            match name.split_once('.') {
                Some((_, rest)) => name = rest.to_string(),
                None => break,
            }
        }
        Ok(name)
    }

    async fn macro_value(&mut self, inner: &str, domain: &str) -> String {
        let mut chars = inner.chars();
        let letter = chars.next().unwrap_or('d');
        let rest = chars.as_str();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let rest = &rest[digits.len()..];
        let (reverse, delims) = match rest.strip_prefix(['r', 'R']) {
            Some(d) => (true, d),
            None => (false, rest),
        };
        let value = match letter.to_ascii_lowercase() {
            's' => format!("{}@{}", self.sender_local, self.sender_domain),
            'l' => self.sender_local.clone(),
            'o' => self.sender_domain.clone(),
            'd' => domain.to_string(),
            'i' => match self.ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => v6
                    .octets()
                    .iter()
                    .flat_map(|o| [o >> 4, o & 15])
                    .map(|n| format!("{n:x}"))
                    .collect::<Vec<_>>()
                    .join("."),
            },
            'v' => match self.ip {
                IpAddr::V4(_) => "in-addr".into(),
                IpAddr::V6(_) => "ip6".into(),
            },
            'h' => self.helo.to_string(),
            'p' => {
                let names = self.validated_names().await.unwrap_or_default();
                names
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(domain))
                    .or_else(|| names.iter().find(|n| ends_with_label(n, domain)))
                    .or(names.first())
                    .cloned()
                    .unwrap_or_else(|| "unknown".into())
            }
            _ => String::new(),
        };
        let delims: &str = if delims.is_empty() { "." } else { delims };
        let mut parts: Vec<&str> = value.split(|c| delims.contains(c)).collect();
        if reverse {
            parts.reverse();
        }
        if let Ok(n) = digits.parse::<usize>()
            && n > 0
            && n < parts.len()
        {
            parts = parts.split_off(parts.len() - n);
        }
        let joined = parts.join(".");
        if letter.is_ascii_uppercase() {
            url_escape(&joined)
        } else {
            joined
        }
    }
}

fn ends_with_label(name: &str, domain: &str) -> bool {
    name.len() > domain.len()
        && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

fn describe(m: &Mechanism) -> String {
    match m {
        Mechanism::All => "all".into(),
        Mechanism::Include(d) => format!("include:{d}"),
        Mechanism::A(d, _, _) => format!(
            "a{}",
            d.as_deref().map(|d| format!(":{d}")).unwrap_or_default()
        ),
        Mechanism::Mx(d, _, _) => format!(
            "mx{}",
            d.as_deref().map(|d| format!(":{d}")).unwrap_or_default()
        ),
        Mechanism::Ptr(_) => "ptr".into(),
        Mechanism::Ip4(ip, l) => format!("ip4:{ip}/{l}"),
        Mechanism::Ip6(ip, l) => format!("ip6:{ip}/{l}"),
        Mechanism::Exists(d) => format!("exists:{d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Zone data for the pure evaluator; the real resolver path is tested
    /// by `tests/spf_suite.rs` against a DNS server.
    #[derive(Default)]
    struct Table {
        txt: HashMap<String, Vec<String>>,
        a: HashMap<String, Vec<Ipv4Addr>>,
        mx: HashMap<String, Vec<String>>,
        broken: Vec<String>,
    }

    impl Table {
        fn txt(mut self, name: &str, t: &str) -> Self {
            self.txt.entry(name.into()).or_default().push(t.into());
            self
        }
        fn a(mut self, name: &str, ip: &str) -> Self {
            self.a
                .entry(name.into())
                .or_default()
                .push(ip.parse().unwrap());
            self
        }
    }

    fn get<T: Clone>(t: &Table, m: &HashMap<String, Vec<T>>, name: &str) -> Answer<T> {
        if t.broken.iter().any(|b| b == name) {
            return Answer::Error;
        }
        match m.get(&name.to_ascii_lowercase()) {
            Some(v) => Answer::Records(v.clone()),
            None => Answer::NotFound,
        }
    }

    impl Dns for Table {
        async fn txt(&self, name: &str) -> Answer<String> {
            get(self, &self.txt, name)
        }
        async fn a(&self, name: &str) -> Answer<Ipv4Addr> {
            get(self, &self.a, name)
        }
        async fn aaaa(&self, _name: &str) -> Answer<Ipv6Addr> {
            Answer::NotFound
        }
        async fn mx(&self, name: &str) -> Answer<String> {
            get(self, &self.mx, name)
        }
        async fn ptr(&self, _ip: IpAddr) -> Answer<String> {
            Answer::NotFound
        }
    }

    /// The table answers at once: polling until ready needs no runtime
    /// (and this module stays free of one, tests/layering.rs).
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn run(t: &Table, ip: &str, sender: &str) -> SpfResult {
        let domain = sender.rsplit_once('@').unwrap().1;
        block_on(check_host(
            t,
            ip.parse().unwrap(),
            domain,
            sender,
            "helo.example",
        ))
        .result
    }

    #[test]
    fn mechanisms_and_qualifiers() {
        let t = Table::default()
            .txt(
                "example.org",
                "v=spf1 ip4:192.0.2.0/24 a:mail.example.org include:other.example ~all",
            )
            .a("mail.example.org", "198.51.100.7")
            .txt("other.example", "v=spf1 ip4:203.0.113.5 -all");
        assert_eq!(run(&t, "192.0.2.99", "a@example.org"), SpfResult::Pass);
        assert_eq!(run(&t, "198.51.100.7", "a@example.org"), SpfResult::Pass);
        assert_eq!(run(&t, "203.0.113.5", "a@example.org"), SpfResult::Pass);
        assert_eq!(run(&t, "203.0.113.6", "a@example.org"), SpfResult::SoftFail);
        // An IPv4 client never matches ip6; IPv4-mapped counts as IPv4.
        let t = Table::default().txt("v6.example", "v=spf1 ip6:::/0 -all");
        assert_eq!(run(&t, "192.0.2.1", "a@v6.example"), SpfResult::Fail);
        let t = Table::default().txt("v4.example", "v=spf1 ip4:192.0.2.1 -all");
        assert_eq!(run(&t, "::ffff:192.0.2.1", "a@v4.example"), SpfResult::Pass);
    }

    #[test]
    fn records_that_are_errors() {
        for rec in [
            "v=spf1 ip4:192.0.2.1/33 -all",
            "v=spf1 a/032 -all",
            "v=spf1 foo:bar -all",
            "v=spf1 =x -all",
            "v=spf1 a:1.2.3.4 -all",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 include -all",
            "v=spf1 exists:%{x}.example -all",
        ] {
            let t = Table::default().txt("bad.example", rec);
            assert_eq!(
                run(&t, "192.0.2.1", "a@bad.example"),
                SpfResult::PermError,
                "{rec}"
            );
        }
        // Two SPF records: permerror; other TXT records do not count.
        let t = Table::default()
            .txt("two.example", "v=spf1 -all")
            .txt("two.example", "v=spf1 +all");
        assert_eq!(run(&t, "192.0.2.1", "a@two.example"), SpfResult::PermError);
        let t = Table::default()
            .txt("one.example", "google-site-verification=x")
            .txt("one.example", "v=spf10 +all")
            .txt("one.example", "v=spf1 -all");
        assert_eq!(run(&t, "192.0.2.1", "a@one.example"), SpfResult::Fail);
    }

    #[test]
    fn limits_hold() {
        // 11 includes: more than 10 lookups.
        let mut t = Table::default();
        let incs: Vec<String> = (0..11).map(|i| format!("include:i{i}.example")).collect();
        t = t.txt("many.example", &format!("v=spf1 {} -all", incs.join(" ")));
        for i in 0..11 {
            t = t.txt(&format!("i{i}.example"), "v=spf1 -all");
        }
        assert_eq!(run(&t, "192.0.2.1", "a@many.example"), SpfResult::PermError);
        // A loop ends at the lookup limit.
        let t = Table::default()
            .txt("loop.example", "v=spf1 include:loop2.example -all")
            .txt("loop2.example", "v=spf1 include:loop.example -all");
        assert_eq!(run(&t, "192.0.2.1", "a@loop.example"), SpfResult::PermError);
        let t = Table::default().txt("self.example", "v=spf1 redirect=self.example");
        assert_eq!(run(&t, "192.0.2.1", "a@self.example"), SpfResult::PermError);
        // Three void lookups.
        let t = Table::default().txt(
            "void.example",
            "v=spf1 a:n1.example a:n2.example a:n3.example -all",
        );
        assert_eq!(run(&t, "192.0.2.1", "a@void.example"), SpfResult::PermError);
        let t = Table::default().txt("void2.example", "v=spf1 a:n1.example a:n2.example -all");
        assert_eq!(run(&t, "192.0.2.1", "a@void2.example"), SpfResult::Fail);
        // A record longer than a DNS message can carry is refused without
        // being parsed.
        let huge = format!("v=spf1 {}-all", "ip4:192.0.2.1 ".repeat(5000));
        let t = Table::default().txt("huge.example", &huge);
        assert_eq!(run(&t, "192.0.2.1", "a@huge.example"), SpfResult::PermError);
    }

    #[test]
    fn include_and_redirect_results() {
        let t = Table::default()
            .txt("inc.example", "v=spf1 include:none.example -all")
            .txt("red.example", "v=spf1 redirect=none.example");
        assert_eq!(run(&t, "192.0.2.1", "a@inc.example"), SpfResult::PermError);
        assert_eq!(run(&t, "192.0.2.1", "a@red.example"), SpfResult::PermError);
        let mut t = Table::default().txt("tmp.example", "v=spf1 include:broken.example -all");
        t.broken.push("broken.example".into());
        assert_eq!(run(&t, "192.0.2.1", "a@tmp.example"), SpfResult::TempError);
        // Unknown or malformed sender domains: none, not an error.
        let t = Table::default();
        assert_eq!(run(&t, "192.0.2.1", "a@[192.0.2.1]"), SpfResult::None);
        assert_eq!(run(&t, "192.0.2.1", "a@nodots"), SpfResult::None);
        assert_eq!(
            run(&t, "192.0.2.1", "a@empty..label.example"),
            SpfResult::None
        );
    }

    /// RFC 7208 §7.3: `%{l1r-}` of `joe-bob` is `joe` (split at `-`,
    /// reversed, the rightmost part kept); uppercase letters URL-escape.
    #[test]
    fn macros_expand() {
        let t = Table::default()
            .txt(
                "m.example",
                "v=spf1 exists:%{ir}.%{l1r-}.%{d2}.x.example exists:%{L}.u.example -all",
            )
            .a("1.2.0.192.joe.m.example.x.example", "127.0.0.2");
        assert_eq!(run(&t, "192.0.2.1", "joe-bob@m.example"), SpfResult::Pass);
        let t = Table::default()
            .txt("u.example", "v=spf1 exists:%{L}.u.example -all")
            .a("a%2bb.u.example", "127.0.0.2"); // (the table is keyed in lower case)
        assert_eq!(run(&t, "192.0.2.1", "a+b@u.example"), SpfResult::Pass);
    }

    proptest::proptest! {
        #[test]
        fn any_record_text_is_bounded(s in "v=spf1( [ -~]{0,40}){0,8}") {
            let t = Table::default().txt("p.example", &s);
            let _ = run(&t, "192.0.2.1", "a@p.example");
        }
    }
}
