//! Content scanning, the part without I/O: what the scanners' verdicts
//! (`services::scan` asks them) mean under `scan { }` ([`decide`]), the
//! header fields that record them in the conventional SpamAssassin and
//! clamav-milter formats — which Sieve's `spamtest`/`virustest` read back
//! (`services::filtering`) — and the removal of incoming copies of those
//! fields ([`strip_forged`]), which a sender could otherwise forge.
//!
//! Fields written, at the top of the message:
//! - `X-Spam-Flag: YES` when the message is spam by the policy;
//! - `X-Spam-Score: 6.3`, `X-Spam-Level: ******` (a star per whole point,
//!   at most 50, none under 1) and `X-Spam-Status: Yes, score=6.3 required=5.0
//!   tests=A,B scanner=spamd` (rspamd: also `action=`); `required` is the
//!   junk threshold, so `spamtest :percent` is 50 there;
//! - `X-Virus-Scanned: ClamAV at HOST` and `X-Virus-Status: Clean` or
//!   `Infected (NAME)`;
//! - `X-Spam-Scanned: skipped (...)` or `unscanned (...)` when a message was
//!   not scanned (too large; a scanner failed and `on-failure "accept"`).
//!
//! With rspamd's action `rewrite subject`, the Subject rspamd gives
//! replaces the message's own, in place ([`Verdict::message`]).

use crate::envelope::Envelope;
use crate::proto::scan::{RspamdAction, SpamReport, VirusReport};
use crate::proto::smtp::reply::{Enhanced, Reply};
use crate::tables::{ScanPolicy, ScanTable, VirusAction};

/// The fields this module writes; incoming copies are removed.
pub const FIELDS: &[&str] = &[
    "X-Spam-Flag",
    "X-Spam-Score",
    "X-Spam-Status",
    "X-Spam-Level",
    "X-Spam-Scanned",
    "X-Virus-Scanned",
    "X-Virus-Status",
    "X-Virus-Scan",
];

/// What one scanner gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Done(T),
    /// The scanner could not scan this message (clamd: over its
    /// `StreamMaxLength`); not a failure.
    Skipped(String),
    /// Down, slow, or an answer that made no sense.
    Failed(String),
}

/// Every configured scanner's outcome; `None`: not configured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Results {
    pub spamd: Option<Outcome<SpamReport>>,
    pub rspamd: Option<Outcome<SpamReport>>,
    pub clamd: Option<Outcome<VirusReport>>,
    /// The message was over `max-size` and not scanned at all: its size.
    pub too_large: Option<u64>,
}

/// What a message gets under one recipient's policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Delivered; `junk` puts it into the Junk folder.
    Deliver { junk: bool, reason: Option<String> },
    /// Accepted and dropped (`virus "discard"`): the reason, for the log.
    Discard(String),
    /// Refused at the end of DATA (5xx).
    Reject(Reply),
    /// Refused for now (4xx).
    Defer(Reply),
}

impl Fate {
    const DELIVER: Fate = Fate::Deliver {
        junk: false,
        reason: None,
    };

    fn rank(&self) -> u8 {
        match self {
            Fate::Reject(_) => 4,
            Fate::Discard(_) => 3,
            Fate::Defer(_) => 2,
            Fate::Deliver { junk: true, .. } => 1,
            Fate::Deliver { junk: false, .. } => 0,
        }
    }

    /// The stronger of two fates: reject, discard (both final: a virus
    /// found stays found when another scanner failed), defer, junk.
    pub fn strongest(self, other: Fate) -> Fate {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// What the scanners concluded, under the server's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub fate: Fate,
    /// The fields to put on top of the message, CRLF-terminated.
    pub header: String,
    /// For the log: one line naming what each scanner said.
    pub summary: String,
    /// The Subject field rspamd asked for (its action `rewrite subject`),
    /// CRLF-terminated; it replaces the message's own.
    pub subject: Option<String>,
}

impl Verdict {
    /// The message to keep: the fields on top of `stripped` (the message
    /// without forged copies, [`strip_forged`]), its Subject rewritten
    /// when rspamd asked.
    pub fn message(&self, stripped: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header.len() + stripped.len() + 64);
        out.extend_from_slice(self.header.as_bytes());
        match &self.subject {
            Some(field) => {
                out.extend_from_slice(&super::replace_field(stripped, "Subject", field.as_bytes()))
            }
            None => out.extend_from_slice(stripped),
        }
        out
    }
}

/// The longest Subject text taken from rspamd (characters).
const MAX_SUBJECT: usize = 998;

fn spam_reply(why: String) -> Reply {
    Reply::new(550, Enhanced(5, 7, 1), why)
}

fn try_later(why: String) -> Reply {
    Reply::new(451, Enhanced(4, 7, 1), why)
}

fn fmt_score(s: f64) -> String {
    format!("{s:.1}")
}

/// The server's policy applied to the scanners' results, with the header
/// fields that record them.
pub fn decide(t: &ScanTable, r: &Results, hostname: &str) -> Verdict {
    let (header, summary) = fields(t, r, hostname);
    let subject = match &r.rspamd {
        Some(Outcome::Done(rep)) if r.too_large.is_none() => rep.subject.as_deref(),
        _ => None,
    }
    .map(|s| crate::proto::header::unstructured_field("Subject", s, MAX_SUBJECT));
    Verdict {
        fate: fate(t, &t.policy, r),
        header,
        summary,
        subject,
    }
}

/// What the message gets under `policy` (the server's, or a recipient's
/// domain's).
pub fn fate(t: &ScanTable, policy: &ScanPolicy, r: &Results) -> Fate {
    if r.too_large.is_some() {
        return Fate::DELIVER;
    }
    let mut fate = Fate::DELIVER;
    let mut failed = false;
    for (name, outcome) in [("spamd", &r.spamd), ("rspamd", &r.rspamd)] {
        match outcome {
            Some(Outcome::Done(rep)) => fate = fate.strongest(spam_fate(policy, name, rep)),
            Some(Outcome::Failed(_)) => failed = true,
            Some(Outcome::Skipped(_)) | None => {}
        }
    }
    match &r.clamd {
        Some(Outcome::Done(VirusReport::Infected(name))) => {
            let f = match policy.virus {
                VirusAction::Reject => Fate::Reject(Reply::new(
                    554,
                    Enhanced(5, 7, 1),
                    format!("message contains a virus ({name})"),
                )),
                VirusAction::Discard => Fate::Discard(format!("virus {name}")),
                VirusAction::Junk => Fate::Deliver {
                    junk: true,
                    reason: Some(format!("virus {name}")),
                },
                VirusAction::Accept => Fate::DELIVER,
            };
            fate = fate.strongest(f);
        }
        Some(Outcome::Failed(_)) => failed = true,
        _ => {}
    }
    if failed && !t.fail_open {
        fate = fate.strongest(Fate::Defer(Reply::new(
            451,
            Enhanced(4, 3, 0),
            "content scanner unavailable, try again later",
        )));
    }
    fate
}

/// The header fields and the log line for the results; `required=` and
/// the spam flag follow the server's policy.
fn fields(t: &ScanTable, r: &Results, hostname: &str) -> (String, String) {
    let mut header = String::new();
    let mut summary = Vec::new();
    if let Some(size) = r.too_large {
        header.push_str(&format!(
            "X-Spam-Scanned: skipped (message of {size} bytes, over the {} byte limit) by {hostname}\r\n",
            t.max_size
        ));
        summary.push(format!("skipped ({size} bytes)"));
        return (header, summary.join("; "));
    }
    let mut failures = Vec::new();
    let mut spam_fields_written = false;
    let mut flag = false;
    for (name, outcome) in [("spamd", &r.spamd), ("rspamd", &r.rspamd)] {
        let Some(outcome) = outcome else { continue };
        match outcome {
            Outcome::Done(rep) => {
                let is_spam = is_spam(&t.policy, rep);
                summary.push(format!(
                    "{name} score={} action={}",
                    fmt_score(rep.score),
                    rep.action.map_or("-", RspamdAction::as_str)
                ));
                flag |= is_spam;
                if !spam_fields_written {
                    spam_fields_written = true;
                    header.push_str(&spam_fields(t, name, rep, is_spam));
                }
            }
            Outcome::Skipped(why) => summary.push(format!("{name} skipped: {why}")),
            Outcome::Failed(why) => {
                summary.push(format!("{name} failed: {why}"));
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    if flag {
        // Readers look at the first field: the flag goes before the status.
        header.insert_str(0, "X-Spam-Flag: YES\r\n");
    }
    match &r.clamd {
        None => {}
        Some(Outcome::Done(VirusReport::Clean)) => {
            header.push_str(&format!(
                "X-Virus-Scanned: ClamAV at {hostname}\r\nX-Virus-Status: Clean\r\n"
            ));
            summary.push("clamd clean".into());
        }
        Some(Outcome::Done(VirusReport::Infected(name))) => {
            header.push_str(&format!(
                "X-Virus-Scanned: ClamAV at {hostname}\r\nX-Virus-Status: Infected ({name})\r\n"
            ));
            summary.push(format!("clamd infected: {name}"));
        }
        Some(Outcome::Skipped(why)) => {
            header.push_str(&format!(
                "X-Spam-Scanned: skipped by clamd ({why}) at {hostname}\r\n"
            ));
            summary.push(format!("clamd skipped: {why}"));
        }
        Some(Outcome::Failed(why)) => {
            summary.push(format!("clamd failed: {why}"));
            failures.push(format!("clamd: {why}"));
        }
    }
    if !failures.is_empty() && t.fail_open {
        header.push_str(&format!(
            "X-Spam-Scanned: unscanned ({}) at {hostname}\r\n",
            one_line(&failures.join("; "))
        ));
    }
    (header, summary.join("; "))
}

/// What one recipient's copy gets when the message is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptFate {
    Deliver,
    Junk(String),
    Discard(String),
}

/// One SMTP reply for recipients whose policies may disagree (domains
/// with their own `scan { }`): deferred when any fate defers; refused
/// when no recipient's copy would be delivered and one policy refuses;
/// else taken, a refusing policy's copy going to Junk (the message is
/// not lost and other recipients get theirs; nothing bounces).
pub fn combine(fates: &[Fate]) -> Result<Vec<RcptFate>, Reply> {
    if let Some(Fate::Defer(r)) = fates.iter().find(|f| matches!(f, Fate::Defer(_))) {
        return Err(r.clone());
    }
    let delivered = fates.iter().any(|f| matches!(f, Fate::Deliver { .. }));
    if !delivered && let Some(Fate::Reject(r)) = fates.iter().find(|f| matches!(f, Fate::Reject(_)))
    {
        return Err(r.clone());
    }
    Ok(fates
        .iter()
        .map(|f| match f {
            Fate::Deliver { junk: false, .. } => RcptFate::Deliver,
            Fate::Deliver { junk: true, reason } => {
                RcptFate::Junk(reason.clone().unwrap_or_else(|| "scan".into()))
            }
            Fate::Reject(r) => RcptFate::Junk(format!(
                "its policy refuses ({}), other recipients take it",
                r.lines.first().map_or("", String::as_str)
            )),
            Fate::Discard(why) => RcptFate::Discard(why.clone()),
            Fate::Defer(_) => RcptFate::Deliver,
        })
        .collect())
}

/// Marks the envelope after [`combine`] (`fates` per recipient, in
/// order): a copy goes to Junk when any of its recipients' fates says so;
/// a recipient whose copy is discarded is removed with the deliveries
/// that serve only discarded recipients. Returns the discarded
/// recipients' addresses; when every recipient is discarded nothing is
/// left to queue.
pub fn apply(env: &mut Envelope, fates: &[RcptFate]) -> Vec<String> {
    let n = env.deliveries.len();
    let mut junk = vec![false; n];
    let mut kept = vec![false; n];
    for (r, f) in env.recipients.iter().zip(fates) {
        for &d in &r.deliveries {
            if d < n {
                junk[d] |= matches!(f, RcptFate::Junk(_));
                kept[d] |= !matches!(f, RcptFate::Discard(_));
            }
        }
    }
    let discarded: Vec<String> = env
        .recipients
        .iter()
        .zip(fates)
        .filter(|(_, f)| matches!(f, RcptFate::Discard(_)))
        .map(|(r, _)| r.address.clone())
        .collect();
    for (d, j) in env.deliveries.iter_mut().zip(&junk) {
        d.junk |= *j;
    }
    if discarded.is_empty() {
        return discarded;
    }
    // New indexes for the deliveries kept.
    let mut map = vec![None; n];
    let mut next = 0;
    for (i, k) in kept.iter().enumerate() {
        if *k {
            map[i] = Some(next);
            next += 1;
        }
    }
    let mut i = 0;
    env.deliveries.retain(|_| {
        i += 1;
        kept[i - 1]
    });
    let mut fates = fates.iter();
    env.recipients
        .retain(|_| !matches!(fates.next(), Some(RcptFate::Discard(_))));
    for r in &mut env.recipients {
        r.deliveries = r
            .deliveries
            .iter()
            .filter_map(|&d| map.get(d).copied().flatten())
            .collect();
    }
    discarded
}

/// The policy for a recipient: its domain's own, else the server's.
pub fn policy_for<'a>(
    tables: &'a crate::tables::Tables,
    t: &'a ScanTable,
    rcpt: &str,
) -> &'a ScanPolicy {
    rcpt.rsplit_once('@')
        .and_then(|(_, d)| tables.domains.get(&d.to_ascii_lowercase()))
        .and_then(|d| d.scan.as_ref())
        .unwrap_or(&t.policy)
}

/// A reason in a header field: one line, printable, bounded.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .take(200)
        .collect()
}

/// Whether a report is spam (the header's flag): spamd's score from the
/// junk threshold, rspamd's actions from `add header`.
fn is_spam(policy: &ScanPolicy, rep: &SpamReport) -> bool {
    match rep.action {
        Some(a) => !matches!(a, RspamdAction::NoAction | RspamdAction::Greylist),
        None => rep.score >= policy.spam_junk,
    }
}

/// What one spam scanner's report means under `policy`.
fn spam_fate(policy: &ScanPolicy, name: &str, rep: &SpamReport) -> Fate {
    let score = fmt_score(rep.score);
    let junk = |reason: String| Fate::Deliver {
        junk: true,
        reason: Some(reason),
    };
    let refuse = |reply: Reply, reason: String| {
        if policy.reject_spam {
            Fate::Reject(reply)
        } else {
            junk(reason)
        }
    };
    match rep.action {
        // rspamd decides with its own actions (its thresholds are its own
        // config; `scan { spam }` is spamd's scale).
        Some(action) => match action {
            RspamdAction::NoAction => Fate::DELIVER,
            RspamdAction::Greylist => Fate::Defer(try_later(
                "greylisted by the spam filter, try again later".into(),
            )),
            RspamdAction::SoftReject if policy.reject_spam => Fate::Defer(try_later(format!(
                "message deferred by the spam filter (score {score}), try again later"
            ))),
            RspamdAction::AddHeader | RspamdAction::RewriteSubject | RspamdAction::SoftReject => {
                junk(format!("{name} {}", action.as_str()))
            }
            RspamdAction::Reject => refuse(
                spam_reply(format!("message looks like spam (score {score})")),
                format!("{name} reject"),
            ),
        },
        None if rep.score >= policy.spam_reject => refuse(
            spam_reply(format!("message looks like spam (score {score})")),
            format!("{name} score {score}"),
        ),
        None if rep.score >= policy.spam_junk => junk(format!("{name} score {score}")),
        None => Fate::DELIVER,
    }
}

fn spam_fields(t: &ScanTable, name: &str, rep: &SpamReport, is_spam: bool) -> String {
    let tests = if rep.symbols.is_empty() {
        "none".to_string()
    } else {
        rep.symbols.join(",")
    };
    let action = rep
        .action
        .map(|a| format!(" action=\"{}\"", a.as_str()))
        .unwrap_or_default();
    // SpamAssassin folds its tests list; so do we, at commas, to stay
    // under 78 columns where the names allow.
    let status = format!(
        "X-Spam-Status: {}, score={} required={} tests={tests} scanner={name}{action}",
        if is_spam { "Yes" } else { "No" },
        fmt_score(rep.score),
        fmt_score(t.policy.spam_junk),
    );
    // SpamAssassin's stars, one per whole point (at most 50), which
    // procmail and Sieve rules match with `X-Spam-Level: \*\*\*\*\*`.
    let stars = if rep.score >= 1.0 {
        format!(
            "X-Spam-Level: {}\r\n",
            "*".repeat((rep.score.min(50.0)) as usize)
        )
    } else {
        String::new()
    };
    format!(
        "X-Spam-Score: {}\r\n{stars}{}\r\n",
        fmt_score(rep.score),
        fold(&status)
    )
}

/// Folds a field at commas and spaces so no line passes 78 columns where
/// a break is possible.
fn fold(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 16);
    let mut line_len = 0;
    for (i, word) in field.split_inclusive([',', ' ']).enumerate() {
        if i > 0 && line_len + word.len() > 76 {
            // Trailing spaces move to the fold.
            while out.ends_with(' ') {
                out.pop();
            }
            out.push_str("\r\n\t");
            line_len = 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

/// The message without incoming copies of the fields in [`FIELDS`] (in
/// its header only).
pub fn strip_forged(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    super::remove_fields(message, |field| {
        let name_end = field.iter().position(|&b| b == b':').unwrap_or(0);
        let name = std::str::from_utf8(&field[..name_end]).unwrap_or("").trim();
        FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
            || name.to_ascii_lowercase().starts_with("x-rspamd-")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ScanTable {
        ScanTable {
            spamd: None,
            rspamd: None,
            clamd: None,
            timeout_ms: 30_000,
            max_size: 10 << 20,
            fail_open: false,
            submission: false,
            deliver: true,
            policy: ScanPolicy {
                spam_junk: 5.0,
                spam_reject: 15.0,
                reject_spam: true,
                virus: VirusAction::Reject,
            },
            learn: None,
        }
    }

    fn spamd(score: f64) -> Option<Outcome<SpamReport>> {
        Some(Outcome::Done(SpamReport {
            is_spam: score >= 5.0,
            score,
            threshold: 5.0,
            symbols: vec!["MISSING_DATE".into(), "NO_RELAYS".into()],
            action: None,
            subject: None,
        }))
    }

    fn rspamd(action: RspamdAction) -> Option<Outcome<SpamReport>> {
        Some(Outcome::Done(SpamReport {
            is_spam: true,
            score: 7.0,
            threshold: 15.0,
            symbols: vec!["GTUBE".into()],
            action: Some(action),
            subject: None,
        }))
    }

    #[test]
    fn spamd_thresholds() {
        let t = table();
        let ham = decide(
            &t,
            &Results {
                spamd: spamd(1.2),
                ..Default::default()
            },
            "mx.test",
        );
        assert_eq!(
            ham.fate,
            Fate::Deliver {
                junk: false,
                reason: None
            }
        );
        assert_eq!(
            ham.header.replace("\r\n\t", " "),
            "X-Spam-Score: 1.2\r\nX-Spam-Level: *\r\nX-Spam-Status: No, score=1.2 required=5.0 tests=MISSING_DATE,NO_RELAYS scanner=spamd\r\n"
        );
        let junk = decide(
            &t,
            &Results {
                spamd: spamd(6.0),
                ..Default::default()
            },
            "mx.test",
        );
        assert!(matches!(junk.fate, Fate::Deliver { junk: true, .. }));
        assert!(
            junk.header.starts_with(
                "X-Spam-Flag: YES\r\nX-Spam-Score: 6.0\r\nX-Spam-Level: ******\r\nX-Spam-Status: Yes, score=6.0"
            )
        );
        let reject = decide(
            &t,
            &Results {
                spamd: spamd(1000.0),
                ..Default::default()
            },
            "mx.test",
        );
        let Fate::Reject(reply) = reject.fate else {
            panic!()
        };
        assert_eq!(reply.code, 550);
        assert_eq!(reply.enhanced, Some(Enhanced(5, 7, 1)));
    }

    /// The server's verdict on rspamd's outcome alone.
    fn decide_rspamd(t: &ScanTable, outcome: Option<Outcome<SpamReport>>) -> Verdict {
        decide(
            t,
            &Results {
                rspamd: outcome,
                ..Default::default()
            },
            "h",
        )
    }

    /// rspamd's `rewrite subject`: its Subject replaces the message's in
    /// place, as one clean field (no line break from rspamd gets through);
    /// without it the message is untouched under the fields.
    #[test]
    fn rspamd_rewrites_the_subject() {
        let t = table();
        let mut rep = rspamd(RspamdAction::RewriteSubject);
        if let Some(Outcome::Done(r)) = &mut rep {
            r.subject = Some("***SPAM*** cheap\r\nBcc: victim@example.test".into());
        }
        let v = decide_rspamd(&t, rep);
        assert!(matches!(v.fate, Fate::Deliver { junk: true, .. }));
        let m = v.message(b"To: a@b\r\nSubject: cheap\r\nX: y\r\n\r\nSubject: body\r\n");
        let text = String::from_utf8(m).unwrap();
        assert!(
            text.ends_with(
                "To: a@b\r\nSubject: ***SPAM*** cheap Bcc: victim@example.test\r\nX: y\r\n\r\nSubject: body\r\n"
            ),
            "{text}"
        );
        assert!(text.starts_with(&v.header));
        let v = decide_rspamd(&t, rspamd(RspamdAction::AddHeader));
        assert_eq!(v.subject, None);
        let m = b"Subject: cheap\r\n\r\nbody\r\n";
        assert_eq!(v.message(m), [v.header.as_bytes(), m].concat());
    }

    #[test]
    fn rspamd_actions() {
        let t = table();
        let d = |a| decide_rspamd(&t, rspamd(a)).fate;
        assert!(matches!(d(RspamdAction::Reject), Fate::Reject(r) if r.code == 550));
        assert!(matches!(d(RspamdAction::SoftReject), Fate::Defer(r) if r.code == 451));
        assert!(matches!(d(RspamdAction::Greylist), Fate::Defer(r) if r.code == 451));
        assert!(matches!(
            d(RspamdAction::AddHeader),
            Fate::Deliver { junk: true, .. }
        ));
        assert!(matches!(
            d(RspamdAction::RewriteSubject),
            Fate::Deliver { junk: true, .. }
        ));
        assert!(matches!(
            d(RspamdAction::NoAction),
            Fate::Deliver { junk: false, .. }
        ));
        let v = decide_rspamd(&t, rspamd(RspamdAction::AddHeader));
        assert!(
            v.header
                .replace("\r\n\t", " ")
                .contains("scanner=rspamd action=\"add header\""),
            "{}",
            v.header
        );
    }

    #[test]
    fn viruses() {
        let mut t = table();
        let r = Results {
            clamd: Some(Outcome::Done(VirusReport::Infected(
                "Eicar-Test-Signature".into(),
            ))),
            spamd: spamd(0.0),
            ..Default::default()
        };
        let v = decide(&t, &r, "mx.test");
        let Fate::Reject(reply) = &v.fate else {
            panic!()
        };
        assert_eq!(reply.code, 554);
        assert!(reply.lines[0].contains("Eicar-Test-Signature"));
        t.policy.virus = VirusAction::Junk;
        let v = decide(&t, &r, "mx.test");
        assert!(matches!(v.fate, Fate::Deliver { junk: true, .. }));
        assert!(v.header.ends_with("X-Virus-Scanned: ClamAV at mx.test\r\nX-Virus-Status: Infected (Eicar-Test-Signature)\r\n"), "{}", v.header);
        let clean = Results {
            clamd: Some(Outcome::Done(VirusReport::Clean)),
            ..Default::default()
        };
        assert_eq!(
            decide(&t, &clean, "mx.test").header,
            "X-Virus-Scanned: ClamAV at mx.test\r\nX-Virus-Status: Clean\r\n"
        );
    }

    #[test]
    fn failures() {
        let mut t = table();
        let r = Results {
            spamd: Some(Outcome::Failed("timeout".into())),
            clamd: Some(Outcome::Done(VirusReport::Clean)),
            ..Default::default()
        };
        let v = decide(&t, &r, "mx.test");
        assert!(matches!(&v.fate, Fate::Defer(r) if r.code == 451));
        t.fail_open = true;
        let v = decide(&t, &r, "mx.test");
        assert_eq!(
            v.fate,
            Fate::Deliver {
                junk: false,
                reason: None
            }
        );
        assert!(
            v.header
                .contains("X-Spam-Scanned: unscanned (spamd: timeout) at mx.test\r\n")
        );
        // A virus found still rejects when another scanner failed.
        let r = Results {
            spamd: Some(Outcome::Failed("down".into())),
            clamd: Some(Outcome::Done(VirusReport::Infected("X".into()))),
            ..Default::default()
        };
        assert!(matches!(decide(&t, &r, "h").fate, Fate::Reject(_)));
        t.fail_open = false;
        assert!(matches!(decide(&t, &r, "h").fate, Fate::Reject(_)));
        let big = Results {
            too_large: Some(60 << 20),
            ..Default::default()
        };
        let v = decide(&t, &big, "mx.test");
        assert_eq!(
            v.fate,
            Fate::Deliver {
                junk: false,
                reason: None
            }
        );
        assert!(
            v.header
                .starts_with("X-Spam-Scanned: skipped (message of 62914560 bytes")
        );
    }

    #[test]
    fn folding() {
        let rep = SpamReport {
            is_spam: false,
            score: 0.0,
            threshold: 5.0,
            symbols: (0..30).map(|i| format!("RULE_NUMBER_{i}")).collect(),
            action: None,
            subject: None,
        };
        let h = spam_fields(&table(), "spamd", &rep, false);
        for line in h.split("\r\n") {
            assert!(line.len() <= 78, "{line}");
        }
        assert!(h.contains("\r\n\t"));
        // Unfolded, it is the same field.
        assert!(
            h.replace("\r\n\t", "")
                .contains("RULE_NUMBER_0,RULE_NUMBER_1,")
        );
    }

    #[test]
    fn forged_fields_go() {
        let m = b"X-Spam-Flag: YES\r\nSubject: hi\r\nx-spam-status: No,\r\n score=-100\r\nX-Virus-Status: Clean\r\nX-Rspamd-Score: 1\r\n\r\nX-Spam-Flag: body\r\n";
        assert_eq!(
            strip_forged(m).as_ref(),
            b"Subject: hi\r\n\r\nX-Spam-Flag: body\r\n"
        );
        let clean = b"Subject: hi\r\n\r\nbody";
        assert!(matches!(strip_forged(clean), std::borrow::Cow::Borrowed(_)));
    }

    fn rcpt(address: &str, deliveries: Vec<usize>) -> crate::envelope::Recipient {
        crate::envelope::Recipient {
            address: address.into(),
            orcpt: None,
            notify: Default::default(),
            deliveries,
        }
    }

    #[test]
    fn domain_policies_replace_the_servers() {
        let mut t = table();
        let lenient = ScanPolicy {
            spam_junk: 3.0,
            spam_reject: 10.0,
            reject_spam: false,
            virus: VirusAction::Discard,
        };
        let spam = Results {
            spamd: spamd(12.0),
            ..Default::default()
        };
        assert!(matches!(
            fate(&t, &t.policy, &spam),
            Fate::Deliver { junk: true, .. }
        ));
        assert!(matches!(
            fate(&t, &lenient, &spam),
            Fate::Deliver { junk: true, .. }
        ));
        let spammier = Results {
            spamd: spamd(20.0),
            ..Default::default()
        };
        assert!(matches!(fate(&t, &t.policy, &spammier), Fate::Reject(_)));
        // reject-spam #false: Junk instead, for spamd's score and for
        // rspamd's reject and soft reject.
        assert!(matches!(
            fate(&t, &lenient, &spammier),
            Fate::Deliver { junk: true, .. }
        ));
        for a in [RspamdAction::Reject, RspamdAction::SoftReject] {
            let r = Results {
                rspamd: rspamd(a),
                ..Default::default()
            };
            assert!(
                matches!(fate(&t, &lenient, &r), Fate::Deliver { junk: true, .. }),
                "{a:?}"
            );
        }
        let ham = Results {
            spamd: spamd(4.0),
            ..Default::default()
        };
        assert!(
            matches!(fate(&t, &lenient, &ham), Fate::Deliver { junk: true, .. }),
            "junk from 3"
        );
        assert!(matches!(
            fate(&t, &t.policy, &ham),
            Fate::Deliver { junk: false, .. }
        ));
        let virus = Results {
            clamd: Some(Outcome::Done(VirusReport::Infected("EICAR".into()))),
            spamd: Some(Outcome::Failed("down".into())),
            ..Default::default()
        };
        assert_eq!(
            fate(&t, &lenient, &virus),
            Fate::Discard("virus EICAR".into())
        );
        assert!(matches!(fate(&t, &t.policy, &virus), Fate::Reject(r) if r.code == 554));
        // The header follows the server's policy whatever the domains say.
        t.policy.spam_junk = 6.0;
        assert!(decide(&t, &ham, "h").header.contains("required=6.0"));
    }

    #[test]
    fn recipients_that_disagree() {
        let reject = Fate::Reject(spam_reply("spam".into()));
        let defer = Fate::Defer(try_later("later".into()));
        let junk = Fate::Deliver {
            junk: true,
            reason: Some("score".into()),
        };
        let discard = Fate::Discard("virus X".into());
        // All refuse: refused.
        assert!(matches!(combine(&[reject.clone(), reject.clone()]), Err(r) if r.code == 550));
        // Refused and discarded: nobody would get it, the sender is told.
        assert!(matches!(combine(&[discard.clone(), reject.clone()]), Err(r) if r.code == 550));
        // Any deferral defers the message.
        assert!(matches!(combine(&[Fate::DELIVER, defer.clone()]), Err(r) if r.code == 451));
        // One takes it: the refusing policy's copy goes to Junk.
        let f = combine(&[reject.clone(), Fate::DELIVER, junk.clone(), discard.clone()]).unwrap();
        assert!(matches!(&f[0], RcptFate::Junk(why) if why.contains("its policy refuses")));
        assert_eq!(f[1], RcptFate::Deliver);
        assert_eq!(f[2], RcptFate::Junk("score".into()));
        assert_eq!(f[3], RcptFate::Discard("virus X".into()));
        // All discarded: taken.
        assert_eq!(
            combine(std::slice::from_ref(&discard)).unwrap(),
            [RcptFate::Discard("virus X".into())]
        );
    }

    #[test]
    fn fates_marked_on_the_envelope() {
        use crate::envelope::{Destination, Envelope};
        let mut env: Envelope = serde_json::from_str(
            r#"{"id":"q1","sender":"s@x","recipients":[],"deliveries":[],"ret":null,"envid":null,
            "body-8bit":false,"smtputf8":false,"client":{"ip":"127.0.0.1","helo":"h","tls":null,
            "auth":null,"listener":"smtp"},"received-at":0,"size":1}"#,
        )
        .unwrap();
        for a in ["a@x", "b@y", "c@y"] {
            env.add_destination(Destination::Mailbox { address: a.into() }, 0);
        }
        // a → 0; b → 1 and 2 (an alias); c → 2.
        env.recipients = vec![
            rcpt("a@x", vec![0]),
            rcpt("b@y", vec![1, 2]),
            rcpt("c@y", vec![2]),
        ];
        let mut e = env.clone();
        assert!(
            apply(
                &mut e,
                &[
                    RcptFate::Deliver,
                    RcptFate::Junk("j".into()),
                    RcptFate::Deliver
                ]
            )
            .is_empty()
        );
        assert_eq!(
            e.deliveries.iter().map(|d| d.junk).collect::<Vec<_>>(),
            [false, true, true]
        );
        // b discarded: delivery 1 goes, 2 stays for c; indexes renumbered.
        let mut e = env.clone();
        let gone = apply(
            &mut e,
            &[
                RcptFate::Junk("j".into()),
                RcptFate::Discard("v".into()),
                RcptFate::Deliver,
            ],
        );
        assert_eq!(gone, ["b@y"]);
        assert_eq!(e.recipients.len(), 2);
        assert_eq!(e.deliveries.len(), 2);
        assert_eq!(e.deliveries[1].destination.address(), "c@y");
        assert_eq!(e.recipients[1].deliveries, [1]);
        assert!(e.deliveries[0].junk && !e.deliveries[1].junk);
        // All discarded: nothing left to queue.
        let mut e = env.clone();
        let all = vec![RcptFate::Discard("v".into()); 3];
        assert_eq!(apply(&mut e, &all).len(), 3);
        assert!(e.recipients.is_empty() && e.deliveries.is_empty());
    }
}
