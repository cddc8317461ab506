//! Inbound authentication, the part without I/O: what the results of SPF,
//! DKIM, DMARC, ARC and iprev for a message arriving at an MX mean under
//! the configured policy ([`decide`]), and the removal of
//! `Authentication-Results` fields that claim to be ours ([`strip_forged`],
//! RFC 8601 §5). The checks themselves (DNS) run in
//! `services::inbound`.

pub mod dmarc;
pub mod dnsbl;
pub mod greylist;
pub mod report;
pub mod scan;
pub mod spf;

use mail_auth::{DkimResult, SpfResult};

use self::dmarc::{Policy, Verdict};

use crate::proto::smtp::reply::{Reply, r};
use crate::tables::{Action, InboundPolicy};

/// The results [`decide`] looks at, taken from the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// SPF for MAIL FROM (for the null sender, of `postmaster@` the HELO
    /// name, RFC 7208 §2.4).
    pub spf: SpfResult,
    /// The MAIL FROM domain (or HELO name) SPF was checked for.
    pub spf_domain: String,
    /// Every DKIM signature's result.
    pub dkim: Vec<DkimResult>,
    /// DMARC of the author (From:) domain; `None` when it has no record.
    pub dmarc: Verdict,
    /// The policy DMARC asks to apply ([`dmarc::Evaluation::disposition`]:
    /// `p` or `sp`, weakened for a message outside the `pct` sample).
    pub dmarc_policy: Policy,
    /// The author domain DMARC was evaluated for.
    pub from_domain: String,
    /// That domain is one of ours (`inbound { dmarc own= }` applies).
    pub own_domain: bool,
}

/// What happens to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Delivered; `junk` puts it into the recipients' Junk folder.
    Deliver { junk: bool, reason: Option<String> },
    /// Refused at the end of DATA (5xx).
    Reject(Reply),
    /// Refused for now (4xx): a lookup failed and the sender retries.
    Defer(Reply),
}

/// The policy applied to the results. The strongest action wins: reject,
/// then defer (a DNS error that leaves the outcome open), then junk.
///
/// - DMARC fail: the author domain's policy (after `sp` and `pct`), mapped
///   through `dmarc reject=`/`quarantine=` (defaults: reject and Junk);
///   `p=none` accepts.
/// - SPF fail/softfail: `spf fail=`/`softfail=` (defaults: Junk, accept).
/// - A DKIM signature that fails (not one that is merely absent): `dkim
///   fail=` (default accept: mailing lists break signatures every day).
/// - A temporary DNS error on DMARC defers (451 4.4.3): the author
///   domain's policy is unknown and might have been a reject (an SPF or
///   DKIM temperror of an identifier aligned with the author domain makes
///   DMARC temperror too). An SPF temperror alone does not defer: without
///   DMARC depending on it, it could at most have turned a `junk` into an
///   `accept`.
pub fn decide(policy: &InboundPolicy, s: &Summary) -> Decision {
    let mut reject: Option<Reply> = None;
    let mut junk: Option<String> = None;
    let mut apply = |action: Action, reply: Reply, why: String| match action {
        Action::Accept => {}
        Action::Junk => {
            junk.get_or_insert(why);
        }
        Action::Reject => {
            reject.get_or_insert(reply);
        }
    };
    let own = if s.own_domain { policy.dmarc_own } else { None };
    if s.dmarc == Verdict::Fail
        && let Some(action) = own
    {
        let why = format!("DMARC fail of our own domain {}", s.from_domain);
        apply(action, r::dmarc_rejected(&s.from_domain), why);
    } else if s.dmarc == Verdict::Fail {
        let why = format!("DMARC policy of {}", s.from_domain);
        match s.dmarc_policy {
            Policy::Reject => apply(policy.dmarc_reject, r::dmarc_rejected(&s.from_domain), why),
            Policy::Quarantine => apply(
                policy.dmarc_quarantine,
                r::dmarc_rejected(&s.from_domain),
                why,
            ),
            Policy::None => {}
        }
    }
    match s.spf {
        SpfResult::Fail => apply(
            policy.spf_fail,
            r::spf_rejected(&s.spf_domain),
            format!("SPF fail for {}", s.spf_domain),
        ),
        SpfResult::SoftFail => apply(
            policy.spf_softfail,
            r::spf_rejected(&s.spf_domain),
            format!("SPF softfail for {}", s.spf_domain),
        ),
        _ => {}
    }
    if s.dkim.iter().any(|d| matches!(d, DkimResult::Fail(_))) {
        apply(
            policy.dkim_fail,
            r::dkim_rejected(),
            "a DKIM signature failed".into(),
        );
    }
    if let Some(reply) = reject {
        return Decision::Reject(reply);
    }
    if policy.defer_on_dns_error && s.dmarc == Verdict::TempError {
        return Decision::Defer(r::auth_dns_error("DMARC"));
    }
    Decision::Deliver {
        junk: junk.is_some(),
        reason: junk,
    }
}

/// The message without the `Authentication-Results` fields whose
/// authserv-id is ours (RFC 8601 §5: a receiver removes or renames those
/// before adding its own, so nothing upstream can forge our verdict).
/// Fields of other authserv-ids stay. Borrowed when there is nothing to
/// remove.
pub fn strip_forged<'a>(message: &'a [u8], authserv_id: &str) -> std::borrow::Cow<'a, [u8]> {
    remove_fields(message, |field| claims(field, authserv_id))
}

/// The message without the header fields (whole, with their folded lines)
/// for which `forged` is true; the body is not looked at. Borrowed when
/// nothing goes.
pub fn remove_fields(message: &[u8], forged: impl Fn(&[u8]) -> bool) -> std::borrow::Cow<'_, [u8]> {
    let end = header_end(message);
    let gone: Vec<(usize, usize)> = fields(&message[..end])
        .into_iter()
        .filter(|&(start, stop)| forged(&message[start..stop]))
        .collect();
    if gone.is_empty() {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for (start, stop) in gone {
        out.extend_from_slice(&message[at..start]);
        at = stop;
    }
    out.extend_from_slice(&message[at..]);
    std::borrow::Cow::Owned(out)
}

/// The message with its first `name` field (whole, with its folded lines)
/// replaced by `field` (CRLF-terminated) and any further `name` fields
/// removed; without one, `field` goes at the end of the header. The body
/// is not looked at.
pub fn replace_field(message: &[u8], name: &str, field: &[u8]) -> Vec<u8> {
    let end = header_end(message);
    let mut out = Vec::with_capacity(message.len() + field.len());
    let mut at = 0;
    let mut placed = false;
    for (start, stop) in fields(&message[..end]) {
        if !field_name(&message[start..stop]).eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        out.extend_from_slice(&message[at..start]);
        if !placed {
            out.extend_from_slice(field);
            placed = true;
        }
        at = stop;
    }
    if !placed {
        out.extend_from_slice(&message[..end]);
        out.extend_from_slice(field);
        at = end;
    }
    out.extend_from_slice(&message[at..]);
    out
}

/// A field's name: what comes before its colon, without surrounding
/// whitespace (empty without a colon).
fn field_name(field: &[u8]) -> &[u8] {
    let Some(colon) = memchr(b':', field) else {
        return b"";
    };
    field[..colon].trim_ascii()
}

/// Where the header ends: after the empty line, or the whole message when
/// there is none.
fn header_end(message: &[u8]) -> usize {
    let mut i = 0;
    while i < message.len() {
        let line_end = memchr(b'\n', &message[i..]).map_or(message.len(), |n| i + n + 1);
        let line = &message[i..line_end];
        if line == b"\r\n" || line == b"\n" {
            return i;
        }
        i = line_end;
    }
    message.len()
}

/// The fields of a header as (start, end) byte ranges, continuation lines
/// included.
fn fields(header: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < header.len() {
        let line_end = memchr(b'\n', &header[i..]).map_or(header.len(), |n| i + n + 1);
        let folded = matches!(header[i], b' ' | b'\t');
        match out.last_mut() {
            Some(last) if folded => last.1 = line_end,
            _ => out.push((i, line_end)),
        }
        i = line_end;
    }
    out
}

/// Whether a field is an `Authentication-Results` naming `authserv_id`.
fn claims(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = memchr(b':', field) else {
        return false;
    };
    if !field[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(b"Authentication-Results")
    {
        return false;
    }
    let value = strip_comments(&field[colon + 1..]);
    let id = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    id.eq_ignore_ascii_case(authserv_id.as_bytes())
}

/// A field value without its (possibly nested) comments, which may stand
/// before the authserv-id (RFC 8601 §2.2 allows CFWS there).
fn strip_comments(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut depth = 0usize;
    let mut escaped = false;
    for &b in value {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if depth > 0 => escaped = true,
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(b),
            _ => {}
        }
    }
    out
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_field_in_place_once() {
        let m = b"Received: x\r\nSubject: old\r\n folded\r\nTo: a@b\r\nsubject : again\r\n\r\nSubject: body\r\n";
        assert_eq!(
            replace_field(m, "Subject", b"Subject: new\r\n"),
            b"Received: x\r\nSubject: new\r\nTo: a@b\r\n\r\nSubject: body\r\n".to_vec()
        );
        // None there: at the end of the header.
        assert_eq!(
            replace_field(b"To: a@b\r\n\r\nbody\r\n", "Subject", b"Subject: new\r\n"),
            b"To: a@b\r\nSubject: new\r\n\r\nbody\r\n".to_vec()
        );
        // A field whose name only starts like it stays.
        assert_eq!(
            replace_field(b"Subjects: a\r\n\r\n", "Subject", b"Subject: n\r\n"),
            b"Subjects: a\r\nSubject: n\r\n\r\n".to_vec()
        );
    }

    /// The compiler's defaults (`compile::defaults`).
    fn policy() -> InboundPolicy {
        use crate::compile::defaults as def;
        InboundPolicy {
            checks: def::INBOUND_CHECKS,
            max_message_size: def::MAX_MESSAGE_SIZE,
            max_recipients: def::MAX_RECIPIENTS,
            spf_fail: def::SPF_FAIL,
            spf_softfail: def::SPF_SOFTFAIL,
            dkim_fail: def::DKIM_FAIL,
            dmarc_reject: def::DMARC_REJECT,
            dmarc_quarantine: def::DMARC_QUARANTINE,
            dmarc_own: None,
            defer_on_dns_error: def::DEFER_ON_DNS_ERROR,
            dmarc_reports: None,
            dnsbl: None,
            greylist: None,
        }
    }

    fn summary() -> Summary {
        Summary {
            spf: SpfResult::Pass,
            spf_domain: "sender.test".into(),
            dkim: vec![DkimResult::Pass],
            dmarc: Verdict::Pass,
            dmarc_policy: Policy::Reject,
            from_domain: "sender.test".into(),
            own_domain: false,
        }
    }

    #[test]
    fn default_policy() {
        let p = policy();
        assert_eq!(
            decide(&p, &summary()),
            Decision::Deliver {
                junk: false,
                reason: None
            }
        );
        // DMARC fail with p=reject: 550 5.7.1.
        let mut s = summary();
        s.dmarc = Verdict::Fail;
        match decide(&p, &s) {
            Decision::Reject(reply) => {
                assert_eq!(
                    (reply.code, reply.to_bytes()[4..9].to_vec()),
                    (550, b"5.7.1".to_vec())
                )
            }
            other => panic!("{other:?}"),
        }
        // p=quarantine: Junk.
        s.dmarc_policy = Policy::Quarantine;
        assert!(matches!(
            decide(&p, &s),
            Decision::Deliver { junk: true, .. }
        ));
        // p=none: delivered as is.
        s.dmarc_policy = Policy::None;
        assert_eq!(
            decide(&p, &s),
            Decision::Deliver {
                junk: false,
                reason: None
            }
        );
        // SPF fail alone: Junk; softfail: accepted.
        let mut s = summary();
        s.spf = SpfResult::Fail;
        assert!(matches!(
            decide(&p, &s),
            Decision::Deliver { junk: true, .. }
        ));
        s.spf = SpfResult::SoftFail;
        assert!(matches!(
            decide(&p, &s),
            Decision::Deliver { junk: false, .. }
        ));
        // A broken DKIM signature alone: accepted.
        let mut s = summary();
        s.dkim = vec![DkimResult::Fail(mail_auth::Error::Io("body hash".into()))];
        assert!(matches!(
            decide(&p, &s),
            Decision::Deliver { junk: false, .. }
        ));
        // DNS trouble: 451 4.4.3, unless something already rejects.
        let mut s = summary();
        s.dmarc = Verdict::TempError;
        match decide(&p, &s) {
            Decision::Defer(reply) => assert_eq!(&reply.to_bytes()[..9], b"451 4.4.3"),
            other => panic!("{other:?}"),
        }
        // An SPF temperror alone is recorded, not deferred.
        let mut t = summary();
        t.spf = SpfResult::TempError;
        t.dmarc = Verdict::None;
        assert!(matches!(
            decide(&p, &t),
            Decision::Deliver { junk: false, .. }
        ));
        s.spf = SpfResult::TempError;
        s.dmarc = Verdict::Fail;
        s.dmarc_policy = Policy::Reject;
        assert!(matches!(decide(&p, &s), Decision::Reject(_)));
    }

    #[test]
    fn configured_actions() {
        let mut p = policy();
        p.spf_fail = Action::Reject;
        p.dkim_fail = Action::Junk;
        p.dmarc_reject = Action::Junk;
        let mut s = summary();
        s.spf = SpfResult::Fail;
        match decide(&p, &s) {
            Decision::Reject(reply) => assert_eq!(&reply.to_bytes()[..10], b"550 5.7.23"),
            other => panic!("{other:?}"),
        }
        let mut s = summary();
        s.dkim = vec![
            DkimResult::Pass,
            DkimResult::Fail(mail_auth::Error::Io("signature".into())),
        ];
        assert!(matches!(
            decide(&p, &s),
            Decision::Deliver { junk: true, .. }
        ));
        let mut s = summary();
        s.dmarc = Verdict::Fail;
        assert!(matches!(
            decide(&p, &s),
            Decision::Deliver { junk: true, .. }
        ));
        // Our own domain: `dmarc own=` whatever it publishes (p=none here).
        p.dmarc_own = Some(Action::Reject);
        s.dmarc_policy = Policy::None;
        assert!(matches!(
            decide(&p, &s),
            Decision::Deliver { junk: false, .. }
        ));
        s.own_domain = true;
        assert!(matches!(decide(&p, &s), Decision::Reject(_)));
        // DNS errors accepted when configured so.
        let mut t = summary();
        t.dmarc = Verdict::TempError;
        assert!(matches!(decide(&p, &t), Decision::Defer(_)));
        p.defer_on_dns_error = false;
        assert!(matches!(
            decide(&p, &t),
            Decision::Deliver { junk: false, .. }
        ));
    }

    #[test]
    fn forged_results_are_removed_others_kept() {
        let msg = b"Received: from x\r\n\
Authentication-Results: MX.example.test; dkim=pass\r\n\
Authentication-Results: (comment) mx.example.test 1;\r\n\tspf=pass\r\n\
authentication-results:mx.example.test;dmarc=pass\r\n\
Authentication-Results: other.example; spf=fail\r\n\
Authentication-Results: mx.example.test.evil; spf=fail\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body\r\n";
        let out = strip_forged(msg, "mx.example.test");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Received: from x\r\n\
Authentication-Results: other.example; spf=fail\r\n\
Authentication-Results: mx.example.test.evil; spf=fail\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body\r\n"
        );
        // Nothing to remove: the same bytes, not a copy.
        let clean = b"Subject: x\n\nbody\n";
        assert!(matches!(
            strip_forged(clean, "mx.example.test"),
            std::borrow::Cow::Borrowed(_)
        ));
        // No header end, bare LF, a field without a colon: no panic.
        for odd in [
            &b"Authentication-Results: mx.example.test; x"[..],
            b"no colon here\n\tcontinued\n",
            b"\n\n",
            b"",
        ] {
            let _ = strip_forged(odd, "mx.example.test");
        }
        assert!(
            strip_forged(
                b"Authentication-Results: mx.example.test; x",
                "mx.example.test"
            )
            .is_empty()
        );
    }

    /// Header lines mixing our authserv-id (in any case, folded, behind
    /// comments), other ids, other fields and junk; any body.
    fn header_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("Authentication-Results: mx.example.test; spf=pass\r\n".to_string()),
            Just("authentication-results:(c) MX.Example.Test 1;\r\n\tdkim=pass\r\n".to_string()),
            Just("Authentication-Results: other.test; spf=fail\r\n".to_string()),
            Just("Authentication-Results:\r\n mx.example.test; x\r\n".to_string()),
            "[A-Za-z-]{1,12}: [ -~]{0,30}\r\n",
            "[ -~\t]{0,20}\n",
            Just("\tcontinued\r\n".to_string()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn stripping_is_bounded_and_leaves_no_forgery(
            lines in proptest::collection::vec(header_line(), 0..20),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut msg = lines.concat().into_bytes();
            msg.extend_from_slice(b"\r\n");
            msg.extend_from_slice(&body);
            let once = strip_forged(&msg, "mx.example.test").into_owned();
            proptest::prop_assert!(once.len() <= msg.len());
            // The body is untouched.
            proptest::prop_assert!(once.ends_with(&body));
            // Idempotent: nothing claiming our id is left in the header.
            let twice = strip_forged(&once, "mx.example.test").into_owned();
            proptest::prop_assert_eq!(&once, &twice);
            let end = header_end(&once);
            for (a, b) in fields(&once[..end]) {
                proptest::prop_assert!(!claims(&once[a..b], "mx.example.test"));
            }
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = strip_forged(&bytes, "mx.example.test");
        }
    }
}
