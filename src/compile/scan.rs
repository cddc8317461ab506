//! `scan { }`: the scanners' addresses parsed (IP:PORT or a Unix socket
//! path; `http://` for rspamd), the spam thresholds and the timeout checked
//! against each other. Defaults from [`def`].

use super::{Cx, defaults as def};
use crate::diag::{Code, Diag};
use crate::spec::ast::{self, Scan};
use crate::spec::source::Spanned;
use crate::tables::{ScanEndpoint, ScanLearn, ScanPolicy, ScanTable, VirusAction};

/// The compiled scanning; `None` when absent or broken (diagnosed).
pub(super) fn lower(s: Option<&Scan>, cx: &mut Cx<'_>) -> Option<ScanTable> {
    let s = s?;
    let before = cx.diags.error_count();
    let spamd = s.spamd.as_ref().and_then(|a| endpoint(a, false, cx));
    let rspamd = s.rspamd.as_ref().and_then(|a| endpoint(a, true, cx));
    let clamd = s.clamd.as_ref().and_then(|a| endpoint(a, false, cx));
    if s.spamd.is_none() && s.rspamd.is_none() && s.clamd.is_none() {
        cx.diags.push(
            Diag::error(Code::ScanPolicy, "`scan` names no scanner")
                .label(s.span, "nothing to ask")
                .help("add `spamd \"127.0.0.1:783\"`, `rspamd \"http://127.0.0.1:11333\"` or `clamd \"/run/clamav/clamd.ctl\"`"),
        );
    }
    let timeout = s
        .timeout
        .as_ref()
        .map_or(def::SCAN_TIMEOUT_SECS, |t| t.value);
    if let Some(t) = &s.timeout
        && (t.value == 0 || t.value > def::SCAN_TIMEOUT_MAX_SECS)
    {
        cx.diags.push(
            Diag::error(Code::ScanPolicy, "scan timeout out of range")
                .label(t.span, "the client waits for the DATA reply meanwhile")
                .help(format!(
                    "use 1s to {}s: past that SMTP clients may give up and send again",
                    def::SCAN_TIMEOUT_MAX_SECS
                )),
        );
    }
    let policy = policy(&s.policy, &defaults(), "default", cx);
    let learn = learning(s, rspamd.as_ref(), cx);
    if cx.diags.error_count() > before {
        return None;
    }
    Some(ScanTable {
        learn,
        spamd,
        rspamd,
        clamd,
        timeout_ms: timeout * 1000,
        max_size: s.max_size.as_ref().map_or(def::SCAN_MAX_SIZE, |v| v.value),
        fail_open: s
            .on_failure
            .as_ref()
            .map_or(def::SCAN_FAIL_OPEN, |v| v.value == "accept"),
        submission: s
            .submission
            .as_ref()
            .map_or(def::SCAN_SUBMISSION, |v| v.value),
        deliver: s.deliver.as_ref().map_or(def::SCAN_DELIVER, |v| v.value),
        policy: policy?,
    })
}

/// The policy when `scan { }` says nothing.
fn defaults() -> ScanPolicy {
    ScanPolicy {
        spam_junk: def::SCAN_SPAM_JUNK,
        spam_reject: def::SCAN_SPAM_REJECT,
        reject_spam: def::SCAN_REJECT_SPAM,
        virus: def::SCAN_VIRUS,
    }
}

/// A policy block over `base`: what it does not say is `base`'s.
fn policy(
    p: &ast::ScanPolicy,
    base: &ScanPolicy,
    base_name: &str,
    cx: &mut Cx<'_>,
) -> Option<ScanPolicy> {
    let junk = p.spam_junk.as_ref().map_or(base.spam_junk, |v| v.value);
    let reject = p.spam_reject.as_ref().map_or(base.spam_reject, |v| v.value);
    if junk > reject {
        let span = p
            .spam_junk
            .as_ref()
            .or(p.spam_reject.as_ref())
            .map_or(p.span, |v| v.span);
        cx.diags.push(
            Diag::error(
                Code::ScanPolicy,
                format!("the junk score ({junk}) is above the reject score ({reject})"),
            )
            .label(span, "no message would be junk")
            .help(format!(
                "junk= is the lower threshold ({base_name} {}), reject= the higher ({base_name} {})",
                base.spam_junk, base.spam_reject
            )),
        );
        return None;
    }
    Some(ScanPolicy {
        spam_junk: junk,
        spam_reject: reject,
        reject_spam: p.reject_spam.as_ref().map_or(base.reject_spam, |v| v.value),
        virus: p.virus.as_ref().map_or(base.virus, |v| match v.value {
            "accept" => VirusAction::Accept,
            "junk" => VirusAction::Junk,
            "discard" => VirusAction::Discard,
            _ => VirusAction::Reject,
        }),
    })
}

/// A domain's `scan { }`: its policy over the server's. Without the
/// server's `scan { }` nothing would be scanned: an error.
pub(super) fn lower_domain(
    p: &ast::ScanPolicy,
    server: Option<&ScanTable>,
    server_broken: bool,
    cx: &mut Cx<'_>,
) -> Option<ScanPolicy> {
    match server {
        Some(t) => policy(p, &t.policy, "the server's", cx),
        None => {
            if !server_broken {
                cx.diags.push(
                    Diag::error(Code::ScanPolicy, "a domain's scan policy, but no scanner")
                        .label(p.span, "nothing scans this domain's mail")
                        .help("name the scanners in the server's `scan { }` block (spamd, rspamd, clamd)"),
                );
            }
            None
        }
    }
}

/// `scan { learn }`: on by default when spamd or rspamd can learn; rspamd's
/// controller defaults to its address with port 11334.
fn learning(s: &Scan, rspamd: Option<&ScanEndpoint>, cx: &mut Cx<'_>) -> Option<ScanLearn> {
    if !s.learn.as_ref().map_or(def::SCAN_LEARN, |l| l.value) {
        return None;
    }
    let controller = match &s.learn_controller {
        Some(c) => endpoint(c, true, cx),
        None => match rspamd {
            Some(ScanEndpoint::Tcp(a)) => Some(ScanEndpoint::Tcp(std::net::SocketAddr::new(
                a.ip(),
                def::RSPAMD_CONTROLLER_PORT,
            ))),
            Some(ScanEndpoint::Unix(_)) => {
                if let Some(l) = &s.learn {
                    cx.diags.push(
                        Diag::error(
                            Code::ScanPolicy,
                            "rspamd listens on a Unix socket: where does its controller listen?",
                        )
                        .label(l.span, "learning needs rspamd's controller worker")
                        .help("add rspamd-controller=\"/run/rspamd/controller.sock\" (or an IP:PORT), or `learn #false`"),
                    );
                }
                None
            }
            None => None,
        },
    };
    if let Some(c) = &s.learn_controller
        && rspamd.is_none()
    {
        cx.diags.push(
            Diag::warning(Code::ScanPolicy, "rspamd-controller without rspamd")
                .label(c.span, "nothing scans with rspamd")
                .help("add `rspamd \"http://IP:11333\"` to `scan`, or drop rspamd-controller"),
        );
    }
    if let Some(p) = &s.learn_password_file {
        super::secrets::check_file(p, true, "rspamd controller password file", cx);
    }
    let spamd = s.spamd.is_some();
    if !spamd && controller.is_none() {
        return None;
    }
    Some(ScanLearn {
        spamd,
        spamd_per_user: s.learn_per_user.as_ref().is_some_and(|v| v.value),
        rspamd_controller: controller,
        password_file: s.learn_password_file.as_ref().map(|p| p.value.clone()),
    })
}

/// `IP:PORT`, an absolute path (or `unix:PATH`), and for rspamd
/// `http://IP:PORT`.
fn endpoint(a: &Spanned<String>, http: bool, cx: &mut Cx<'_>) -> Option<ScanEndpoint> {
    match parse_endpoint(&a.value, http) {
        Ok(e) => Some(e),
        Err(problem) => {
            cx.diags.push(
                Diag::error(Code::ScanAddress, format!("bad scanner address: {problem}"))
                    .label(a.span, "not a scanner address")
                    .help(if http {
                        "write \"http://127.0.0.1:11333\", \"127.0.0.1:11333\" or the absolute path of the Unix socket"
                    } else {
                        "write \"127.0.0.1:783\" (an IP address and a port: no DNS on the SMTP path) or the absolute path of the Unix socket"
                    }),
            );
            None
        }
    }
}

pub(crate) fn parse_endpoint(s: &str, http: bool) -> Result<ScanEndpoint, String> {
    let mut rest = s.trim();
    if let Some(p) = rest.strip_prefix("unix:") {
        rest = p;
    } else if http {
        if rest.starts_with("https://") {
            return Err(
                "mailc speaks plain HTTP to rspamd (run it on loopback or a Unix socket)".into(),
            );
        }
        if let Some(r) = rest.strip_prefix("http://") {
            rest = r.strip_suffix('/').unwrap_or(r);
            if rest.contains('/') {
                return Err(format!(
                    "{s:?} has a path; give only the address of the worker"
                ));
            }
        }
    }
    if rest.starts_with('/') {
        return Ok(ScanEndpoint::Unix(rest.into()));
    }
    match rest.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(ScanEndpoint::Tcp(a)),
        Ok(_) => Err(format!("{s:?} has port 0")),
        Err(_) => Err(format!(
            "{s:?} is neither IP:PORT nor an absolute socket path"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("127.0.0.1:783", false),
            Ok(ScanEndpoint::Tcp("127.0.0.1:783".parse().unwrap()))
        );
        assert_eq!(
            parse_endpoint("http://[::1]:11333/", true),
            Ok(ScanEndpoint::Tcp("[::1]:11333".parse().unwrap()))
        );
        assert_eq!(
            parse_endpoint("/run/clamav/clamd.ctl", false),
            Ok(ScanEndpoint::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            parse_endpoint("unix:/run/spamd.sock", false),
            Ok(ScanEndpoint::Unix("/run/spamd.sock".into()))
        );
        assert!(parse_endpoint("localhost:783", false).is_err());
        assert!(parse_endpoint("http://127.0.0.1:11333", false).is_err());
        assert!(parse_endpoint("https://127.0.0.1:11333", true).is_err());
        assert!(parse_endpoint("http://127.0.0.1:11333/checkv2", true).is_err());
        assert!(parse_endpoint("relative.sock", false).is_err());
        assert!(parse_endpoint("127.0.0.1:0", false).is_err());
    }
}
