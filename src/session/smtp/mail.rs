//! MAIL and RCPT: the sender's and each recipient's parameters (SIZE,
//! BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT), the policy checks, and
//! where each recipient goes.

use super::state::{MailParams, State, Transaction};
use super::{Env, Output, Session, policy};
use crate::envelope::{Notify, Recipient, Ret};
use crate::inbound::greylist::Verdict;
use crate::proto::smtp::command;
use crate::proto::smtp::reply::r;

impl<E: Env> Session<E> {
    pub(super) fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Output {
        match self.state {
            State::Ready => {}
            State::Mail(_) | State::Chunking { .. } => {
                return self.error(r::bad_sequence("nested MAIL command"));
            }
            _ => return self.error(r::bad_sequence("send EHLO/HELO first")),
        }
        if let Err(reply) = self.may_send() {
            return self.error(reply);
        }
        let max = self.max_size();
        if from.size as u64 > max {
            return self.error(r::size_exceeded_at_mail(max));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if command::needs_utf8(&from.address) && !smtputf8 {
            return self.error(r::smtputf8_needed());
        }
        if let Err(reply) = self.sender_allowed(&from.address) {
            return self.error(reply);
        }
        let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(Ret::Headers)
        } else {
            None
        };
        self.state = State::Mail(Box::new(Transaction {
            mail: MailParams {
                sender: from.address,
                body_8bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
                smtputf8,
                ret,
                envid: from.env_id,
            },
            rcpts: Vec::new(),
            envelope_deliveries: Vec::new(),
        }));
        Output::reply(r::sender_ok())
    }

    pub(super) fn rcpt(&mut self, mut to: smtp_proto::RcptTo<String>) -> Output {
        to.address =
            match policy::effective_recipient(&self.tables, std::mem::take(&mut to.address)) {
                Ok(a) => a,
                Err(reply) => return self.error(reply),
            };
        let State::Mail(tx) = &self.state else {
            return self.error(r::bad_sequence("send MAIL first"));
        };
        if tx.rcpts.len() >= self.max_recipients() {
            // 452 per RFC 5321 §4.5.3.1.10: the client sends the rest later.
            return Output::reply(r::too_many_recipients());
        }
        if command::needs_utf8(&to.address) && !tx.mail.smtputf8 {
            return self.error(r::smtputf8_needed());
        }
        let now = self.env.now();
        let destinations = match self.route_recipient(&to.address) {
            Ok(d) => d,
            Err(reply) => {
                return if reply.is_transient() {
                    Output::reply(reply)
                } else {
                    self.error(reply)
                };
            }
        };
        if let Some(out) = self.screen(&to.address) {
            return out;
        }
        let State::Mail(tx) = &mut self.state else {
            return Output::reply(r::local_error());
        };
        let mut indexes = Vec::new();
        for dest in destinations {
            let i = match tx
                .envelope_deliveries
                .iter()
                .position(|d| d.destination == dest)
            {
                Some(i) => i,
                None => {
                    tx.envelope_deliveries
                        .push(crate::envelope::Delivery::new(dest, now));
                    tx.envelope_deliveries.len() - 1
                }
            };
            indexes.push(i);
        }
        let notify = Notify {
            success: to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
            failure: to.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
            delay: to.flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
            never: to.flags & smtp_proto::RCPT_NOTIFY_NEVER != 0,
        };
        tx.rcpts.push(Recipient {
            address: to.address,
            orcpt: to.orcpt,
            notify,
            deliveries: indexes,
        });
        Output::reply(r::recipient_ok())
    }

    /// A valid recipient of mail from another server: refused when the
    /// client is on blocklists (except postmaster@ our domains), deferred
    /// when its triplet is greylisted.
    fn screen(&mut self, recipient: &str) -> Option<Output> {
        if !self.from_stranger() {
            return None;
        }
        if let Some(listing) = &self.listing
            && !policy::is_our_postmaster(&self.tables, recipient)
        {
            let reply = listing.reply(self.conn.peer.ip());
            return Some(self.error(reply));
        }
        let grey = self.tables.inbound.greylist?;
        let State::Mail(tx) = &self.state else {
            return None;
        };
        match self
            .env
            .greylist(&grey, self.conn.peer.ip(), &tx.mail.sender, recipient)
        {
            Verdict::Pass | Verdict::Whitelisted => None,
            Verdict::Greylisted { retry_in } => Some(Output::reply(r::greylisted(retry_in))),
        }
    }
}
