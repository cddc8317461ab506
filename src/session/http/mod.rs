//! What the `http` and `https` listeners answer, as a pure function of the
//! tables and one request (method, host, path, query, body): no sockets,
//! no HTTP framing — `services::http` runs hyper and hands requests here.
//!
//! Routing is by host name (the `Host` header, else the TLS SNI name):
//! - `mta-sts.DOMAIN` (each domain with an MTA-STS policy) serves
//!   `/.well-known/mta-sts.txt`, the exact text `mailc dns` prints (its
//!   id is derived from that text).
//! - `autoconfig.DOMAIN`, `autodiscover.DOMAIN`, `DOMAIN` and the server's
//!   hostname serve the client autoconfiguration documents:
//!   `/mail/config-v1.1.xml` and `/.well-known/autoconfig/mail/config-v1.1.xml`
//!   (Thunderbird, `?emailaddress=`), `/autodiscover/autodiscover.xml`
//!   (Outlook, POST of a POX request or GET with `?email=`) and
//!   `/apple/mail.mobileconfig?email=ADDRESS` (Apple).
//! - `/.well-known/acme-challenge/TOKEN` on any host: the driver looks
//!   the token up in the ACME challenge store ([`Outcome::AcmeChallenge`]).
//!
//! Anything else is 404, a known path with another method 405. On the
//! plain `http` listener every other request to one of our names is a 301
//! to the same URL on `https` when an `https` listener exists, else 404.

pub mod autoconfig;

use crate::tables::{DomainTable, ListenerKind, Tables};
use autoconfig::Offers;

pub const MTA_STS_PATH: &str = "/.well-known/mta-sts.txt";
pub const THUNDERBIRD_PATHS: &[&str] = &[
    "/mail/config-v1.1.xml",
    "/.well-known/autoconfig/mail/config-v1.1.xml",
];
/// Outlook capitalises it; paths are compared without case.
pub const AUTODISCOVER_PATH: &str = "/autodiscover/autodiscover.xml";
pub const MOBILECONFIG_PATH: &str = "/apple/mail.mobileconfig";
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The longest address taken from a query or an autodiscover request
/// (RFC 5321's path limit).
const MAX_ADDRESS: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

impl Method {
    pub fn parse(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// One request as the router sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    /// The `Host` header (a port after it is ignored), else the SNI name.
    pub host: Option<&'a str>,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// Accepted on an `https` listener.
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Location` of a redirect, `Allow` of a 405.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// A short plain-text answer for an error status.
    pub fn error(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{text}\n"))
    }

    fn not_found() -> Response {
        Response::error(404, "not found")
    }

    fn method_not_allowed(allow: &str) -> Response {
        let mut r = Response::error(405, "method not allowed");
        r.headers.push(("allow", allow.to_string()));
        r
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Respond(Response),
    /// Answer with the key authorization stored for this token (RFC 8555
    /// §8.3), or 404 when there is none.
    AcmeChallenge(String),
}

/// Which of our sites a host name is.
#[derive(Debug, Clone, Copy)]
enum Site<'t> {
    MtaSts(&'t DomainTable),
    /// Autoconfiguration for a domain, or (the hostname) for all of them.
    Mail(Option<&'t DomainTable>),
}

fn normalize_host(host: &str) -> String {
    // `[::1]:443`, `name:443`, `name.`
    let host = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn site<'t>(tables: &'t Tables, host: &str) -> Option<Site<'t>> {
    if let Some(d) = tables.domains.get(host) {
        return Some(Site::Mail(Some(d)));
    }
    if let Some(d) = host
        .strip_prefix("mta-sts.")
        .and_then(|d| tables.domains.get(d))
        && d.mta_sts.is_some()
    {
        return Some(Site::MtaSts(d));
    }
    if let Some(d) = host
        .strip_prefix("autoconfig.")
        .or_else(|| host.strip_prefix("autodiscover."))
        .and_then(|d| tables.domains.get(d))
    {
        return Some(Site::Mail(Some(d)));
    }
    (host == tables.hostname).then_some(Site::Mail(None))
}

/// The answer to one request.
pub fn route(tables: &Tables, req: &Request<'_>) -> Outcome {
    let read_only = matches!(req.method, Method::Get | Method::Head);
    if let Some(token) = req.path.strip_prefix(ACME_CHALLENGE_PREFIX) {
        return if read_only {
            Outcome::AcmeChallenge(token.to_string())
        } else {
            Outcome::Respond(Response::method_not_allowed("GET, HEAD"))
        };
    }
    let Some(host) = req.host.map(normalize_host) else {
        return Outcome::Respond(Response::not_found());
    };
    let Some(site) = site(tables, &host) else {
        return Outcome::Respond(Response::not_found());
    };
    if !req.secure {
        return Outcome::Respond(redirect(tables, &host, req));
    }
    Outcome::Respond(match site {
        Site::MtaSts(d) => mta_sts(d, req),
        Site::Mail(d) => mail(tables, d, req),
    })
}

/// Plain HTTP: everything but ACME challenges moves to `https`.
fn redirect(tables: &Tables, host: &str, req: &Request<'_>) -> Response {
    let Some(https) = tables
        .listeners
        .iter()
        .find(|l| l.kind == ListenerKind::Https)
    else {
        return Response::not_found();
    };
    // Port 0 (tests) is not known until bound: leave it to the default.
    let port = match https.address.port() {
        443 | 0 => String::new(),
        p => format!(":{p}"),
    };
    let query = req.query.map(|q| format!("?{q}")).unwrap_or_default();
    let mut r = Response::error(301, "moved to https");
    r.headers.push((
        "location",
        format!("https://{host}{port}{}{query}", req.path),
    ));
    r
}

fn mta_sts(d: &DomainTable, req: &Request<'_>) -> Response {
    if req.path != MTA_STS_PATH {
        return Response::not_found();
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return Response::method_not_allowed("GET, HEAD");
    }
    match crate::dns::mta_sts_policy(d) {
        // RFC 8461 §3.2: text/plain; the policy is served as `mailc dns`
        // prints it, so the TXT record's id matches.
        Some(text) => Response::new(200, "text/plain; charset=utf-8", text),
        None => Response::not_found(),
    }
}

fn mail(tables: &Tables, domain: Option<&DomainTable>, req: &Request<'_>) -> Response {
    let path = req.path;
    let read_only = matches!(req.method, Method::Get | Method::Head);
    let offers = Offers::from_tables(tables);
    if THUNDERBIRD_PATHS.contains(&path) {
        if !read_only {
            return Response::method_not_allowed("GET, HEAD");
        }
        return thunderbird(tables, domain, &offers, req);
    }
    if path.eq_ignore_ascii_case(AUTODISCOVER_PATH) {
        if !read_only && req.method != Method::Post {
            return Response::method_not_allowed("GET, HEAD, POST");
        }
        return autodiscover(tables, &offers, req);
    }
    if path == MOBILECONFIG_PATH {
        if !read_only {
            return Response::method_not_allowed("GET, HEAD");
        }
        return mobileconfig(tables, &offers, req);
    }
    Response::not_found()
}

/// An address of one of our domains, normalised (`local@ascii-domain`).
enum Address {
    Ours(String),
    /// Well-formed, of a domain we do not serve.
    Foreign,
    Invalid,
}

fn address(tables: &Tables, raw: &str) -> Address {
    let raw = raw.trim();
    if raw.len() > MAX_ADDRESS {
        return Address::Invalid;
    }
    let Some((local, domain)) = crate::addr::split(raw) else {
        return Address::Invalid;
    };
    if crate::addr::validate_local_part(local).is_err() {
        return Address::Invalid;
    }
    let Ok(d) = crate::addr::normalize_domain(domain) else {
        return Address::Invalid;
    };
    if tables.domains.contains_key(&d.ascii) {
        Address::Ours(format!("{local}@{}", d.ascii))
    } else {
        Address::Foreign
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
/// `None` for malformed escapes or text that is not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The first value of one of `names` in the query; `Some(Err)` when it is
/// malformed.
fn query_param(query: Option<&str>, names: &[&str]) -> Option<Result<String, ()>> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        names
            .iter()
            .any(|n| k.eq_ignore_ascii_case(n))
            .then(|| form_decode(v).ok_or(()))
    })
}

fn no_offers() -> Response {
    Response::error(
        404,
        "this server has no mail listener to offer clients (IMAP or POP3, and submission, with TLS)",
    )
}

fn thunderbird(
    tables: &Tables,
    domain: Option<&DomainTable>,
    offers: &Offers,
    req: &Request<'_>,
) -> Response {
    if !offers.usable() {
        return no_offers();
    }
    let from_address = match query_param(req.query, &["emailaddress"]) {
        None => None,
        Some(Err(())) => return Response::error(400, "malformed emailaddress"),
        Some(Ok(a)) => match address(tables, &a) {
            Address::Ours(a) => a.rsplit_once('@').map(|(_, d)| d.to_string()),
            Address::Foreign => return Response::not_found(),
            Address::Invalid => return Response::error(400, "malformed emailaddress"),
        },
    };
    let domains: Vec<&str> = match (&from_address, domain) {
        (Some(d), _) => vec![d.as_str()],
        (None, Some(d)) => vec![d.name.as_str()],
        (None, None) => tables.domains.keys().map(String::as_str).collect(),
    };
    Response::new(
        200,
        "application/xml; charset=utf-8",
        autoconfig::thunderbird(offers, &domains),
    )
}

/// The `<EMailAddress>` of a POX autodiscover request.
fn pox_address(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<EMailAddress>")? + "<EMailAddress>".len();
    let len = text[start..].find("</EMailAddress>")?;
    let raw = &text[start..start + len];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn autodiscover(tables: &Tables, offers: &Offers, req: &Request<'_>) -> Response {
    if !offers.usable() {
        return no_offers();
    }
    let raw = if req.method == Method::Post {
        match pox_address(req.body) {
            Some(a) => Some(a),
            None => {
                return Response::error(400, "the request has no <EMailAddress>");
            }
        }
    } else {
        match query_param(req.query, &["email", "emailaddress"]) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(())) => return Response::error(400, "malformed email"),
        }
    };
    let login = match raw.as_deref().map(|a| address(tables, a)) {
        None => None,
        Some(Address::Ours(a)) => Some(a),
        Some(Address::Foreign) => return Response::not_found(),
        Some(Address::Invalid) => return Response::error(400, "malformed address"),
    };
    Response::new(
        200,
        "application/xml; charset=utf-8",
        autoconfig::autodiscover(offers, login.as_deref()),
    )
}

fn mobileconfig(tables: &Tables, offers: &Offers, req: &Request<'_>) -> Response {
    let a = match query_param(req.query, &["email"]) {
        None => return Response::error(400, "add ?email=ADDRESS"),
        Some(Err(())) => return Response::error(400, "malformed email"),
        Some(Ok(a)) => match address(tables, &a) {
            Address::Ours(a) => a,
            Address::Foreign => return Response::not_found(),
            Address::Invalid => return Response::error(400, "malformed email"),
        },
    };
    match autoconfig::mobileconfig(offers, &tables.hostname, &a) {
        Some(p) => Response::new(200, "application/x-apple-aspen-config", p),
        None => no_offers(),
    }
}

#[cfg(test)]
mod tests;
