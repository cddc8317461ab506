//! One mail transaction: the checks made before any byte is sent (SIZE,
//! 8BITMIME, SMTPUTF8), MAIL and RCPTs and DATA — in one write when the
//! server offers PIPELINING (RFC 2920 §3.1: DATA may end the group) — the
//! body, and an outcome per recipient. After a transaction that failed
//! before its final dot the session sends RSET, so the connection can carry
//! the next message; after the final dot's reply the transaction is over
//! whatever the reply said (RFC 5321 §4.1.1.4) and no RSET is needed.

use std::collections::VecDeque;

use crate::envelope;
use crate::proto::smtp::client::{self, Capabilities, MailParams, RcptParams};
use crate::proto::smtp::reply::{Enhanced, Reply};

use super::{Fault, OutMessage, RcptOutcome, ReplyInfo, Stage};

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStep {
    /// Write these bytes, then read one reply (timeout of
    /// [`Transaction::expecting`]).
    Send(Vec<u8>),
    /// Write the body, dot-stuffed, and the final dot (each block within
    /// the data-block timeout), then read the final reply.
    SendBody,
    /// The transaction is over.
    Done(TxResult),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxResult {
    /// One per recipient, in the message's order.
    pub outcomes: Vec<RcptOutcome>,
    /// The connection may carry another message.
    pub reusable: bool,
}

/// A reply the session is waiting for, in the order they will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    /// `abandoned`: a lone dot sent because DATA was accepted with no
    /// recipient (RFC 2920 §3.1); its reply decides nothing.
    DataEnd {
        abandoned: bool,
    },
    Rset,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) => Stage::Rcpt,
            Expect::Data => Stage::Data,
            Expect::DataEnd { .. } => Stage::DataEnd,
            Expect::Rset => Stage::Rset,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Transaction {
    pipelining: bool,
    /// Recipient commands not yet written (without pipelining), by index.
    unsent: VecDeque<(usize, Vec<u8>)>,
    expect: VecDeque<Expect>,
    outcomes: Vec<Option<RcptOutcome>>,
    /// Indexes of recipients a RCPT accepted.
    accepted: Vec<usize>,
    /// The reply that refused MAIL, if it did.
    mail_refused: Option<ReplyInfo>,
    mail_accepted: bool,
    /// Sending the body (between 354 and the final reply).
    in_body: bool,
}

/// Decides the checks before sending: the first that fails fails every
/// recipient, and nothing is sent.
fn precheck(m: &OutMessage<'_>, caps: &Capabilities) -> Option<ReplyInfo> {
    let size = m.body.len() as u64;
    if let Some(max) = caps.size
        && size > max
    {
        return Some(ReplyInfo::local(
            552,
            Enhanced(5, 3, 4),
            format!("message of {size} bytes exceeds the receiving server's limit of {max} bytes"),
            Stage::SizeCheck,
        ));
    }
    if (m.body_8bit || client::is_8bit(m.body)) && !caps.eightbitmime {
        return Some(ReplyInfo::local(
            554,
            Enhanced(5, 6, 3),
            "8-bit message and the receiving server does not offer 8BITMIME; \
             not converted, because conversion would break DKIM signatures",
            Stage::Local,
        ));
    }
    if utf8_envelope(m) && !caps.smtputf8 {
        return Some(ReplyInfo::local(
            553,
            Enhanced(5, 6, 7),
            "UTF-8 address and the receiving server does not offer SMTPUTF8 (RFC 6531)",
            Stage::Local,
        ));
    }
    None
}

fn utf8_envelope(m: &OutMessage<'_>) -> bool {
    !m.sender.is_ascii() || m.recipients.iter().any(|r| !r.address.is_ascii())
}

fn notify(n: envelope::Notify) -> client::Notify {
    client::Notify {
        never: n.never,
        success: n.success,
        failure: n.failure,
        delay: n.delay,
    }
}

impl Transaction {
    /// Plans the transaction and says what to write first. A message the
    /// server cannot take is refused here, with nothing written.
    pub fn start(m: &OutMessage<'_>, caps: &Capabilities) -> (Transaction, TxStep) {
        let mut tx = Transaction {
            pipelining: caps.pipelining,
            unsent: VecDeque::new(),
            expect: VecDeque::new(),
            outcomes: vec![None; m.recipients.len()],
            accepted: Vec::new(),
            mail_refused: None,
            mail_accepted: false,
            in_body: false,
        };
        if let Some(refusal) = precheck(m, caps) {
            let step = tx.finish_all(RcptOutcome::Failed(refusal), true);
            return (tx, step);
        }
        let utf8 = utf8_envelope(m) || m.smtputf8;
        let mail = client::mail_from(
            m.sender,
            &MailParams {
                size: caps.size_param.then_some(m.body.len() as u64),
                body: (caps.eightbitmime && (m.body_8bit || client::is_8bit(m.body)))
                    .then_some(client::Body::EightBitMime),
                smtputf8: utf8 && caps.smtputf8,
                ret: m.ret.filter(|_| caps.dsn).map(|r| match r {
                    envelope::Ret::Full => client::Ret::Full,
                    envelope::Ret::Headers => client::Ret::Headers,
                }),
                envid: m.envid.filter(|_| caps.dsn),
            },
        );
        let Ok(mail) = mail else {
            let info = ReplyInfo::local(
                553,
                Enhanced(5, 1, 7),
                format!("sender address {:?} cannot be sent", m.sender),
                Stage::Local,
            );
            let step = tx.finish_all(RcptOutcome::Failed(info), true);
            return (tx, step);
        };
        for (i, r) in m.recipients.iter().enumerate() {
            let params = RcptParams {
                notify: r.notify.filter(|_| caps.dsn).map(notify),
                orcpt: r.orcpt.as_deref().filter(|_| caps.dsn),
            };
            match client::rcpt_to(&r.address, &params) {
                Ok(line) => tx.unsent.push_back((i, line)),
                Err(_) => {
                    tx.outcomes[i] = Some(RcptOutcome::Failed(ReplyInfo::local(
                        553,
                        Enhanced(5, 1, 3),
                        format!("recipient address {:?} cannot be sent", r.address),
                        Stage::Local,
                    )));
                }
            }
        }
        if tx.unsent.is_empty() {
            let step = tx.done(true);
            return (tx, step);
        }
        let mut out = mail;
        tx.expect.push_back(Expect::Mail);
        if tx.pipelining {
            while let Some((i, line)) = tx.unsent.pop_front() {
                out.extend_from_slice(&line);
                tx.expect.push_back(Expect::Rcpt(i));
            }
            out.extend_from_slice(client::DATA);
            tx.expect.push_back(Expect::Data);
        }
        (tx, TxStep::Send(out))
    }

    /// The stage whose reply (or body write) is awaited.
    pub fn expecting(&self) -> Stage {
        if self.in_body {
            return Stage::DataBlock;
        }
        self.expect.front().map_or(Stage::Rset, |e| e.stage())
    }

    /// The body has been written; the final reply is awaited.
    pub fn body_sent(&mut self) {
        self.in_body = false;
    }

    /// The driver could not read or write: every recipient not yet decided
    /// is deferred, and the connection is not used again.
    pub fn fault(&mut self, fault: &Fault) -> TxResult {
        let info = fault.info(self.expecting());
        match self.finish_all(RcptOutcome::Deferred(info), false) {
            TxStep::Done(r) => r,
            _ => unreachable!("finish_all ends the transaction"),
        }
    }

    pub fn on_reply(&mut self, r: &Reply) -> TxStep {
        let Some(expect) = self.expect.pop_front() else {
            return self.protocol_error(r, Stage::Rset);
        };
        let stage = expect.stage();
        let info = ReplyInfo::from_reply(r, stage);
        // 421: the server is closing the connection (RFC 5321 §3.8); no
        // more replies will come.
        if r.code == 421 {
            return self.finish_all(RcptOutcome::Deferred(info), false);
        }
        let class = r.code / 100;
        match expect {
            Expect::Mail => match class {
                2 => {
                    self.mail_accepted = true;
                    self.next_command()
                }
                4 | 5 => {
                    self.mail_refused = Some(info);
                    if self.pipelining {
                        // The RCPT and DATA replies of the group still come.
                        TxStep::Send(Vec::new())
                    } else {
                        self.end_refused()
                    }
                }
                _ => self.protocol_error(r, stage),
            },
            Expect::Rcpt(i) => match class {
                _ if self.mail_refused.is_some() => {
                    if self.expect.is_empty() {
                        self.end_refused()
                    } else {
                        TxStep::Send(Vec::new())
                    }
                }
                2 => {
                    self.accepted.push(i);
                    self.next_command()
                }
                4 | 5 => {
                    self.outcomes[i] = Some(RcptOutcome::from_info(info));
                    self.next_command()
                }
                _ => self.protocol_error(r, stage),
            },
            Expect::Data => match r.code {
                354 if self.mail_refused.is_some() || self.accepted.is_empty() => {
                    // Pipelined, and the server took DATA with nobody to
                    // deliver to: end the data at once.
                    self.expect.push_back(Expect::DataEnd { abandoned: true });
                    TxStep::Send(b".\r\n".to_vec())
                }
                354 => {
                    self.expect.push_back(Expect::DataEnd { abandoned: false });
                    self.in_body = true;
                    TxStep::SendBody
                }
                _ if class == 4 || class == 5 => {
                    if self.mail_refused.is_some() {
                        return self.end_refused();
                    }
                    // Expected when no RCPT was accepted; otherwise the
                    // refusal applies to every accepted recipient.
                    for &i in &self.accepted {
                        self.outcomes[i] = Some(RcptOutcome::from_info(info.clone()));
                    }
                    self.accepted.clear();
                    self.rset()
                }
                // 250 to DATA before the data, or anything else.
                _ => self.protocol_error(r, stage),
            },
            Expect::DataEnd { abandoned: true } => {
                if self.mail_refused.is_some() {
                    self.end_refused()
                } else {
                    self.rset()
                }
            }
            Expect::DataEnd { abandoned: false } => match class {
                2 | 4 | 5 => {
                    for &i in &self.accepted {
                        self.outcomes[i] = Some(RcptOutcome::from_info(info.clone()));
                    }
                    self.done(true)
                }
                _ => self.protocol_error(r, stage),
            },
            Expect::Rset => self.done(class == 2),
        }
    }

    /// After a MAIL or RCPT reply without pipelining: the next RCPT, or
    /// DATA when they are all sent, or RSET when nobody was accepted.
    fn next_command(&mut self) -> TxStep {
        if self.pipelining {
            return TxStep::Send(Vec::new());
        }
        if let Some((i, line)) = self.unsent.pop_front() {
            self.expect.push_back(Expect::Rcpt(i));
            return TxStep::Send(line);
        }
        if self.accepted.is_empty() {
            return self.rset();
        }
        self.expect.push_back(Expect::Data);
        TxStep::Send(client::DATA.to_vec())
    }

    fn rset(&mut self) -> TxStep {
        self.expect.clear();
        self.expect.push_back(Expect::Rset);
        TxStep::Send(client::RSET.to_vec())
    }

    /// MAIL was refused: every recipient shares its fate. No transaction
    /// was opened, so no RSET.
    fn end_refused(&mut self) -> TxStep {
        let info = self.mail_refused.clone().unwrap_or_else(|| {
            ReplyInfo::local(451, Enhanced(4, 0, 0), "MAIL refused", Stage::Mail)
        });
        self.finish_all(RcptOutcome::from_info(info), true)
    }

    fn protocol_error(&mut self, r: &Reply, stage: Stage) -> TxStep {
        let fault = Fault::Protocol(format!("unexpected reply {} {}", r.code, r.lines.join(" ")));
        self.finish_all(RcptOutcome::Deferred(fault.info(stage)), false)
    }

    /// Gives `outcome` to every recipient not yet decided, and ends.
    fn finish_all(&mut self, outcome: RcptOutcome, reusable: bool) -> TxStep {
        for o in &mut self.outcomes {
            if o.is_none() {
                *o = Some(outcome.clone());
            }
        }
        self.done(reusable)
    }

    fn done(&mut self, reusable: bool) -> TxStep {
        self.expect.clear();
        self.in_body = false;
        let outcomes = self
            .outcomes
            .iter()
            .map(|o| {
                o.clone().unwrap_or_else(|| {
                    RcptOutcome::Deferred(ReplyInfo::local(
                        451,
                        Enhanced(4, 0, 0),
                        "no reply for this recipient",
                        Stage::Rcpt,
                    ))
                })
            })
            .collect();
        TxStep::Done(TxResult { outcomes, reusable })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::smtp::client::{Parsed, parse_reply};
    use crate::session::smtp_out::OutRcpt;

    fn reply(s: &str) -> Reply {
        match parse_reply(s.as_bytes()) {
            Ok(Parsed::Reply { reply, .. }) => reply,
            other => panic!("{other:?}"),
        }
    }

    fn rcpts(names: &[&str]) -> Vec<OutRcpt> {
        names
            .iter()
            .map(|n| OutRcpt {
                address: n.to_string(),
                notify: None,
                orcpt: None,
            })
            .collect()
    }

    fn msg<'a>(r: &'a [OutRcpt], body: &'a [u8]) -> OutMessage<'a> {
        OutMessage {
            sender: "s@a.example",
            recipients: r,
            body,
            body_8bit: false,
            smtputf8: false,
            ret: None,
            envid: None,
        }
    }

    fn caps(pipelining: bool) -> Capabilities {
        Capabilities {
            pipelining,
            eightbitmime: true,
            extended: true,
            ..Capabilities::default()
        }
    }

    fn text(step: &TxStep) -> String {
        match step {
            TxStep::Send(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn done(step: TxStep) -> TxResult {
        match step {
            TxStep::Done(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn codes(r: &TxResult) -> Vec<String> {
        r.outcomes
            .iter()
            .map(|o| {
                let kind = match o {
                    RcptOutcome::Delivered(_) => "delivered",
                    RcptOutcome::Deferred(_) => "deferred",
                    RcptOutcome::Failed(_) => "failed",
                };
                format!("{kind} {} {}", o.info().code, o.info().stage)
            })
            .collect()
    }

    #[test]
    fn pipelined_mixed_recipients() {
        let r = rcpts(&["a@b.example", "c@b.example", "d@b.example"]);
        let (mut tx, step) = Transaction::start(&msg(&r, b"hi\r\n"), &caps(true));
        assert_eq!(
            text(&step),
            "MAIL FROM:<s@a.example>\r\nRCPT TO:<a@b.example>\r\nRCPT TO:<c@b.example>\r\nRCPT TO:<d@b.example>\r\nDATA\r\n"
        );
        assert_eq!(tx.expecting(), Stage::Mail);
        assert_eq!(tx.on_reply(&reply("250 ok\r\n")), TxStep::Send(vec![]));
        assert_eq!(tx.expecting(), Stage::Rcpt);
        tx.on_reply(&reply("250 ok\r\n"));
        tx.on_reply(&reply("451 4.2.0 later\r\n"));
        tx.on_reply(&reply("550 5.1.1 no such user\r\n"));
        assert_eq!(tx.on_reply(&reply("354 go\r\n")), TxStep::SendBody);
        assert_eq!(tx.expecting(), Stage::DataBlock);
        tx.body_sent();
        assert_eq!(tx.expecting(), Stage::DataEnd);
        let r = done(tx.on_reply(&reply("250 2.0.0 queued\r\n")));
        assert_eq!(
            codes(&r),
            [
                "delivered 250 DATA-END",
                "deferred 451 RCPT",
                "failed 550 RCPT"
            ]
        );
        assert!(r.reusable);
        assert_eq!(
            r.outcomes[2].info().diagnostic_code(),
            "smtp; 550 5.1.1 no such user"
        );
    }

    #[test]
    fn unpipelined_all_refused_means_no_data_and_rset() {
        let r = rcpts(&["a@b.example", "c@b.example"]);
        let (mut tx, step) = Transaction::start(&msg(&r, b"hi\r\n"), &caps(false));
        assert_eq!(text(&step), "MAIL FROM:<s@a.example>\r\n");
        assert_eq!(
            text(&tx.on_reply(&reply("250 ok\r\n"))),
            "RCPT TO:<a@b.example>\r\n"
        );
        assert_eq!(
            text(&tx.on_reply(&reply("550 no\r\n"))),
            "RCPT TO:<c@b.example>\r\n"
        );
        assert_eq!(text(&tx.on_reply(&reply("450 busy\r\n"))), "RSET\r\n");
        let r = done(tx.on_reply(&reply("250 reset\r\n")));
        assert_eq!(codes(&r), ["failed 550 RCPT", "deferred 450 RCPT"]);
        assert!(r.reusable);
    }

    #[test]
    fn pipelined_all_refused_and_data_refused() {
        let r = rcpts(&["a@b.example"]);
        let (mut tx, _) = Transaction::start(&msg(&r, b"hi\r\n"), &caps(true));
        tx.on_reply(&reply("250 ok\r\n"));
        tx.on_reply(&reply("550 5.1.1 no\r\n"));
        assert_eq!(
            text(&tx.on_reply(&reply("554 5.5.1 no valid recipients\r\n"))),
            "RSET\r\n"
        );
        let r = done(tx.on_reply(&reply("250 ok\r\n")));
        assert_eq!(codes(&r), ["failed 550 RCPT"]);
    }

    #[test]
    fn data_refusal_applies_to_accepted() {
        let r = rcpts(&["a@b.example", "c@b.example"]);
        let (mut tx, _) = Transaction::start(&msg(&r, b"hi\r\n"), &caps(false));
        tx.on_reply(&reply("250 ok\r\n"));
        tx.on_reply(&reply("250 ok\r\n"));
        assert_eq!(text(&tx.on_reply(&reply("250 ok\r\n"))), "DATA\r\n");
        assert_eq!(text(&tx.on_reply(&reply("452 4.3.1 full\r\n"))), "RSET\r\n");
        let r = done(tx.on_reply(&reply("250 ok\r\n")));
        assert_eq!(codes(&r), ["deferred 452 DATA", "deferred 452 DATA"]);
    }

    #[test]
    fn mail_refused_pipelined() {
        let r = rcpts(&["a@b.example", "c@b.example"]);
        let (mut tx, _) = Transaction::start(&msg(&r, b"hi\r\n"), &caps(true));
        tx.on_reply(&reply("553 5.7.1 bad sender\r\n"));
        tx.on_reply(&reply("503 need MAIL\r\n"));
        tx.on_reply(&reply("503 need MAIL\r\n"));
        let r = done(tx.on_reply(&reply("503 need RCPT\r\n")));
        assert_eq!(codes(&r), ["failed 553 MAIL", "failed 553 MAIL"]);
        assert!(r.reusable);
    }

    #[test]
    fn nonsense_replies_defer_and_close() {
        let r = rcpts(&["a@b.example"]);
        let (mut tx, _) = Transaction::start(&msg(&r, b"hi\r\n"), &caps(false));
        tx.on_reply(&reply("250 ok\r\n"));
        tx.on_reply(&reply("250 ok\r\n"));
        let r = done(tx.on_reply(&reply("250 ok, I guess\r\n")));
        assert_eq!(codes(&r), ["deferred 451 DATA"]);
        assert!(!r.reusable);
        assert!(r.outcomes[0].info().text.contains("unexpected reply 250"));

        // 421 in the middle
        let r2 = rcpts(&["a@b.example", "c@b.example"]);
        let (mut tx, _) = Transaction::start(&msg(&r2, b"hi\r\n"), &caps(true));
        tx.on_reply(&reply("250 ok\r\n"));
        tx.on_reply(&reply("550 no\r\n"));
        let r = done(tx.on_reply(&reply("421 4.3.2 bye\r\n")));
        assert_eq!(codes(&r), ["failed 550 RCPT", "deferred 421 RCPT"]);
        assert!(!r.reusable);
    }

    #[test]
    fn fault_mid_data_defers_accepted_keeps_failures() {
        let r = rcpts(&["a@b.example", "c@b.example"]);
        let (mut tx, _) = Transaction::start(&msg(&r, b"hi\r\n"), &caps(true));
        tx.on_reply(&reply("250 ok\r\n"));
        tx.on_reply(&reply("250 ok\r\n"));
        tx.on_reply(&reply("550 no\r\n"));
        assert_eq!(tx.on_reply(&reply("354 go\r\n")), TxStep::SendBody);
        let r = tx.fault(&Fault::Io("reset by peer".into()));
        assert_eq!(codes(&r), ["deferred 451 DATA-BLOCK", "failed 550 RCPT"]);
        assert!(!r.reusable);
        assert_eq!(r.outcomes[0].info().enhanced, Enhanced(4, 4, 2));
    }

    #[test]
    fn prechecks_send_nothing() {
        let r = rcpts(&["a@b.example"]);
        let small = Capabilities {
            size: Some(3),
            ..caps(true)
        };
        let (_, step) = Transaction::start(&msg(&r, b"four\r\n"), &small);
        let res = done(step);
        assert_eq!(codes(&res), ["failed 552 SIZE-check"]);
        assert_eq!(res.outcomes[0].info().enhanced, Enhanced(5, 3, 4));
        assert!(!res.outcomes[0].info().remote);

        let seven = Capabilities {
            eightbitmime: false,
            ..caps(true)
        };
        let (_, step) = Transaction::start(&msg(&r, "caf\u{e9}\r\n".as_bytes()), &seven);
        assert_eq!(done(step).outcomes[0].info().enhanced, Enhanced(5, 6, 3));

        let u = rcpts(&["j\u{f6}rg@b.example"]);
        let (_, step) = Transaction::start(&msg(&u, b"hi\r\n"), &caps(true));
        assert_eq!(done(step).outcomes[0].info().enhanced, Enhanced(5, 6, 7));
    }

    #[test]
    fn parameters_follow_capabilities() {
        let mut r = rcpts(&["a@b.example"]);
        r[0].notify = Some(envelope::Notify {
            failure: true,
            ..envelope::Notify::default()
        });
        r[0].orcpt = Some("a@b.example".into());
        let m = OutMessage {
            ret: Some(envelope::Ret::Headers),
            envid: Some("E1"),
            body_8bit: true,
            ..msg(&r, "caf\u{e9}\r\n".as_bytes())
        };
        let (_, step) = Transaction::start(&m, &caps(true));
        assert_eq!(
            text(&step),
            "MAIL FROM:<s@a.example> BODY=8BITMIME\r\nRCPT TO:<a@b.example>\r\nDATA\r\n"
        );
        let full = Capabilities {
            dsn: true,
            smtputf8: true,
            size: Some(1000),
            size_param: true,
            ..caps(true)
        };
        let (_, step) = Transaction::start(&m, &full);
        assert_eq!(
            text(&step),
            "MAIL FROM:<s@a.example> SIZE=7 BODY=8BITMIME RET=HDRS ENVID=E1\r\n\
             RCPT TO:<a@b.example> NOTIFY=FAILURE ORCPT=rfc822;a@b.example\r\nDATA\r\n"
        );
        // SIZE offered without a limit: still declared, never refused here
        let unlimited = Capabilities {
            size_param: true,
            ..caps(true)
        };
        let (_, step) = Transaction::start(&m, &unlimited);
        assert!(text(&step).starts_with("MAIL FROM:<s@a.example> SIZE=7 BODY=8BITMIME\r\n"));
    }
}
