//! Content scanning, the part without I/O: what the scanners' verdicts
//! (`services::scan` asks them) mean under `scan { }` ([`decide`]), the
//! header fields that record them in the conventional SpamAssassin and
//! clamav-milter formats — which Sieve's `spamtest`/`virustest` read back
//! (`services::filtering`) — and the removal of incoming copies of those
//! fields ([`strip_forged`]), which a sender could otherwise forge.
//!
//! Fields written, at the top of the message:
//! - `X-Spam-Flag: YES` when the message is spam by the policy;
//! - `X-Spam-Score: 6.3` and `X-Spam-Status: Yes, score=6.3 required=5.0
//!   tests=A,B scanner=spamd` (rspamd: also `action=`); `required` is the
//!   junk threshold, so `spamtest :percent` is 50 there;
//! - `X-Virus-Scanned: ClamAV at HOST` and `X-Virus-Status: Clean` or
//!   `Infected (NAME)`;
//! - `X-Spam-Scanned: skipped (...)` or `unscanned (...)` when a message was
//!   not scanned (too large; a scanner failed and `on-failure "accept"`).

use super::Decision;
use crate::proto::scan::{RspamdAction, SpamReport, VirusReport};
use crate::proto::smtp::reply::{Enhanced, Reply};
use crate::tables::{Action, ScanTable};

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

/// What the scanners concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    /// The fields to put on top of the message, CRLF-terminated.
    pub header: String,
    /// For the log: one line naming what each scanner said.
    pub summary: String,
}

fn spam_reply(why: String) -> Reply {
    Reply::new(550, Enhanced(5, 7, 1), why)
}

fn try_later(why: String) -> Reply {
    Reply::new(451, Enhanced(4, 7, 1), why)
}

fn fmt_score(s: f64) -> String {
    format!("{s:.1}")
}

/// The policy applied to the scanners' results.
pub fn decide(t: &ScanTable, r: &Results, hostname: &str) -> Verdict {
    let mut header = String::new();
    let mut summary = Vec::new();
    let mut decision = Decision::Deliver {
        junk: false,
        reason: None,
    };
    if let Some(size) = r.too_large {
        header.push_str(&format!(
            "X-Spam-Scanned: skipped (message of {size} bytes, over the {} byte limit) by {hostname}\r\n",
            t.max_size
        ));
        summary.push(format!("skipped ({size} bytes)"));
        return Verdict {
            decision,
            header,
            summary: summary.join("; "),
        };
    }
    let mut failures = Vec::new();
    let mut spam_fields_written = false;
    let mut flag = false;
    for (name, outcome) in [("spamd", &r.spamd), ("rspamd", &r.rspamd)] {
        let Some(outcome) = outcome else { continue };
        match outcome {
            Outcome::Done(rep) => {
                let (d, is_spam) = spam_decision(t, name, rep);
                summary.push(format!(
                    "{name} score={} action={}",
                    fmt_score(rep.score),
                    rep.action.map_or("-", RspamdAction::as_str)
                ));
                flag |= is_spam;
                decision = strongest(decision, d);
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
            let d = match t.virus {
                Action::Reject => Decision::Reject(Reply::new(
                    554,
                    Enhanced(5, 7, 1),
                    format!("message contains a virus ({name})"),
                )),
                Action::Junk => Decision::Deliver {
                    junk: true,
                    reason: Some(format!("virus {name}")),
                },
                Action::Accept => Decision::Deliver {
                    junk: false,
                    reason: None,
                },
            };
            decision = strongest(decision, d);
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
    if !failures.is_empty() {
        if t.fail_open {
            header.push_str(&format!(
                "X-Spam-Scanned: unscanned ({}) at {hostname}\r\n",
                one_line(&failures.join("; "))
            ));
        } else {
            decision = strongest(
                decision,
                Decision::Defer(Reply::new(
                    451,
                    Enhanced(4, 3, 0),
                    "content scanner unavailable, try again later",
                )),
            );
        }
    }
    Verdict {
        decision,
        header,
        summary: summary.join("; "),
    }
}

/// A reason in a header field: one line, printable, bounded.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .take(200)
        .collect()
}

/// What one spam scanner's report means, and whether it is spam.
fn spam_decision(t: &ScanTable, name: &str, rep: &SpamReport) -> (Decision, bool) {
    let score = fmt_score(rep.score);
    let junk = |reason: String| Decision::Deliver {
        junk: true,
        reason: Some(reason),
    };
    let deliver = Decision::Deliver {
        junk: false,
        reason: None,
    };
    match rep.action {
        // rspamd decides with its own actions (its thresholds are its own
        // config; `scan { spam }` is spamd's scale).
        Some(action) => match action {
            RspamdAction::NoAction => (deliver, false),
            RspamdAction::Greylist => (
                Decision::Defer(try_later(
                    "greylisted by the spam filter, try again later".into(),
                )),
                false,
            ),
            RspamdAction::SoftReject => (
                Decision::Defer(try_later(format!(
                    "message deferred by the spam filter (score {score}), try again later"
                ))),
                true,
            ),
            RspamdAction::AddHeader | RspamdAction::RewriteSubject => {
                (junk(format!("{name} {}", action.as_str())), true)
            }
            RspamdAction::Reject => (
                Decision::Reject(spam_reply(format!(
                    "message looks like spam (score {score})"
                ))),
                true,
            ),
        },
        None if rep.score >= t.spam_reject => (
            Decision::Reject(spam_reply(format!(
                "message looks like spam (score {score})"
            ))),
            true,
        ),
        None if rep.score >= t.spam_junk => (junk(format!("{name} score {score}")), true),
        None => (deliver, false),
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
        fmt_score(t.spam_junk),
    );
    format!(
        "X-Spam-Score: {}\r\n{}\r\n",
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

/// The stronger of two decisions: reject, then defer, then junk.
pub fn strongest(a: Decision, b: Decision) -> Decision {
    fn rank(d: &Decision) -> u8 {
        match d {
            Decision::Reject(_) => 3,
            Decision::Defer(_) => 2,
            Decision::Deliver { junk: true, .. } => 1,
            Decision::Deliver { junk: false, .. } => 0,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}

/// The message without incoming copies of the fields in [`FIELDS`] (in
/// its header only).
pub fn strip_forged(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let end = super::header_end(message);
    let forged: Vec<(usize, usize)> = super::fields(&message[..end])
        .into_iter()
        .filter(|&(start, stop)| {
            let field = &message[start..stop];
            let name_end = field.iter().position(|&b| b == b':').unwrap_or(0);
            let name = std::str::from_utf8(&field[..name_end]).unwrap_or("").trim();
            FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
                || name.to_ascii_lowercase().starts_with("x-rspamd-")
        })
        .collect();
    if forged.is_empty() {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for (start, stop) in forged {
        out.extend_from_slice(&message[at..start]);
        at = stop;
    }
    out.extend_from_slice(&message[at..]);
    std::borrow::Cow::Owned(out)
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
            spam_junk: 5.0,
            spam_reject: 15.0,
            virus: Action::Reject,
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
        }))
    }

    fn rspamd(action: RspamdAction) -> Option<Outcome<SpamReport>> {
        Some(Outcome::Done(SpamReport {
            is_spam: true,
            score: 7.0,
            threshold: 15.0,
            symbols: vec!["GTUBE".into()],
            action: Some(action),
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
            ham.decision,
            Decision::Deliver {
                junk: false,
                reason: None
            }
        );
        assert_eq!(
            ham.header.replace("\r\n\t", " "),
            "X-Spam-Score: 1.2\r\nX-Spam-Status: No, score=1.2 required=5.0 tests=MISSING_DATE,NO_RELAYS scanner=spamd\r\n"
        );
        let junk = decide(
            &t,
            &Results {
                spamd: spamd(6.0),
                ..Default::default()
            },
            "mx.test",
        );
        assert!(matches!(
            junk.decision,
            Decision::Deliver { junk: true, .. }
        ));
        assert!(
            junk.header.starts_with(
                "X-Spam-Flag: YES\r\nX-Spam-Score: 6.0\r\nX-Spam-Status: Yes, score=6.0"
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
        let Decision::Reject(reply) = reject.decision else {
            panic!()
        };
        assert_eq!(reply.code, 550);
        assert_eq!(reply.enhanced, Some(Enhanced(5, 7, 1)));
    }

    #[test]
    fn rspamd_actions() {
        let t = table();
        let d = |a| {
            decide(
                &t,
                &Results {
                    rspamd: rspamd(a),
                    ..Default::default()
                },
                "h",
            )
            .decision
        };
        assert!(matches!(d(RspamdAction::Reject), Decision::Reject(r) if r.code == 550));
        assert!(matches!(d(RspamdAction::SoftReject), Decision::Defer(r) if r.code == 451));
        assert!(matches!(d(RspamdAction::Greylist), Decision::Defer(r) if r.code == 451));
        assert!(matches!(
            d(RspamdAction::AddHeader),
            Decision::Deliver { junk: true, .. }
        ));
        assert!(matches!(
            d(RspamdAction::RewriteSubject),
            Decision::Deliver { junk: true, .. }
        ));
        assert!(matches!(
            d(RspamdAction::NoAction),
            Decision::Deliver { junk: false, .. }
        ));
        let v = decide(
            &t,
            &Results {
                rspamd: rspamd(RspamdAction::AddHeader),
                ..Default::default()
            },
            "h",
        );
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
        let Decision::Reject(reply) = &v.decision else {
            panic!()
        };
        assert_eq!(reply.code, 554);
        assert!(reply.lines[0].contains("Eicar-Test-Signature"));
        t.virus = Action::Junk;
        let v = decide(&t, &r, "mx.test");
        assert!(matches!(v.decision, Decision::Deliver { junk: true, .. }));
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
        assert!(matches!(&v.decision, Decision::Defer(r) if r.code == 451));
        t.fail_open = true;
        let v = decide(&t, &r, "mx.test");
        assert_eq!(
            v.decision,
            Decision::Deliver {
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
        assert!(matches!(decide(&t, &r, "h").decision, Decision::Reject(_)));
        t.fail_open = false;
        assert!(matches!(decide(&t, &r, "h").decision, Decision::Reject(_)));
        let big = Results {
            too_large: Some(60 << 20),
            ..Default::default()
        };
        let v = decide(&t, &big, "mx.test");
        assert_eq!(
            v.decision,
            Decision::Deliver {
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
}
