//! The complete message: the last checks, the trace field, the envelope,
//! and the hand-off to the queue ([`Effect::Enqueue`]) and its answer.

use super::state::{State, Transaction};
use super::{Effect, Env, Output, QueueId, Role, Session, TlsInfo, policy};
use crate::envelope::{Accepted, Client, Envelope};
use crate::proto::smtp::headers;
use crate::proto::smtp::reply::r;

impl<E: Env> Session<E> {
    /// The complete message: final checks, trace fields, and the Enqueue effect.
    pub(super) fn finish_message(&mut self, tx: Transaction, mut message: Vec<u8>) -> Output {
        if self.role == Role::Submission
            && self.tables.submission.sender_must_own
            && let Some(user) = self.user.clone()
        {
            for from in headers::from_addresses(&message) {
                if !policy::owns(&self.tables, &user, &from) {
                    return self.error(r::from_not_owned());
                }
            }
        }
        let strip = self.role == Role::Submission && self.tables.submission.strip_client_ip;
        if strip {
            message =
                headers::remove_fields(&message, &["User-Agent", "X-Mailer", "X-Originating-IP"]);
        }
        let id = self.env.new_id();
        let now = self.env.now();
        let received = self.received_field(&tx, &id, now, strip);
        let mut full = Vec::with_capacity(received.len() + message.len());
        full.extend_from_slice(received.as_bytes());
        full.extend_from_slice(&message);
        let lmtp_rcpts = if self.role == Role::Lmtp {
            tx.rcpts.iter().map(|r| r.address.clone()).collect()
        } else {
            Vec::new()
        };
        let envelope = self.envelope(tx, id, now, full.len() as u64);
        self.state = State::WaitQueue { lmtp_rcpts };
        Output {
            replies: Vec::new(),
            effect: Some(Effect::Enqueue(Box::new(Accepted {
                envelope,
                message: full,
            }))),
            close: false,
        }
    }

    /// Our `Received:` field (without the client's name and address when
    /// the submission listener strips them).
    fn received_field(&self, tx: &Transaction, id: &str, now: u64, strip: bool) -> String {
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        let tls = self.tls.as_ref().map(TlsInfo::describe);
        let protocol = headers::protocol_keyword(
            self.role == Role::Lmtp,
            esmtp,
            self.tls.is_some(),
            self.user.is_some(),
        );
        let for_rcpt = if tx.rcpts.len() == 1 {
            Some(tx.rcpts[0].address.as_str())
        } else {
            None
        };
        headers::received(&headers::ReceivedInfo {
            helo: if strip { "" } else { &helo },
            client_ip: if strip {
                None
            } else {
                Some(self.conn.peer.ip())
            },
            by_host: &self.tables.hostname,
            protocol,
            tls: tls.as_deref(),
            id,
            for_rcpt,
            unix_time: now,
        })
    }

    /// The envelope the queue keeps for the transaction.
    fn envelope(&self, tx: Transaction, id: String, now: u64, size: u64) -> Envelope {
        let (helo, _) = self.helo.clone().unwrap_or_default();
        Envelope {
            id,
            sender: tx.mail.sender,
            recipients: tx.rcpts,
            deliveries: tx.envelope_deliveries,
            ret: tx.mail.ret,
            envid: tx.mail.envid,
            body_8bit: tx.mail.body_8bit,
            smtputf8: tx.mail.smtputf8,
            client: Client {
                ip: self.conn.peer.ip().to_string(),
                helo,
                tls: self.tls.as_ref().map(TlsInfo::describe),
                auth: self.user.clone(),
                listener: self.conn.listener.kind.as_str().to_string(),
            },
            received_at: now,
            size,
            junk: false,
            arc_seals: Default::default(),
        }
    }

    /// Whether the message just handed off gets the inbound checks (SPF,
    /// DKIM, DMARC, ARC, iprev): mail from another server at an MX
    /// listener; never authenticated submission, a trusted network or LMTP.
    pub fn checks_inbound(&self) -> bool {
        self.tables.inbound.checks && self.from_stranger()
    }

    /// The message handed off goes to the content scanners (`scan { }`):
    /// mail from other servers at an MX listener, and with `submission
    /// #true` mail from our users and trusted networks too (never LMTP: the
    /// MTA in front has scanned it).
    pub fn scans(&self) -> bool {
        match &self.tables.scan {
            None => false,
            Some(t) => self.from_stranger() || (t.submission && self.role != Role::Lmtp),
        }
    }

    /// Mail from another server at an MX listener: not logged in, not from
    /// `trusted-networks`, not LMTP or submission. The inbound checks,
    /// blocklists and greylisting apply only to it.
    pub fn from_stranger(&self) -> bool {
        self.role == Role::Mx && self.user.is_none() && !self.trusted()
    }

    /// The inbound checks refused the message handed off (a 5xx reject or
    /// a 4xx deferral): the transaction ends with `reply`, nothing is
    /// queued, the session goes on. (LMTP, which the checks never apply
    /// to, would get it once per recipient.)
    pub fn refused(&mut self, reply: crate::proto::smtp::reply::Reply) -> Output {
        let State::WaitQueue { lmtp_rcpts } = &self.state else {
            return Output::reply(r::local_error());
        };
        let replies = lmtp_rcpts.len().max(1);
        self.state = State::Ready;
        Output {
            replies: vec![reply; replies],
            effect: None,
            close: false,
        }
    }

    /// The queue stored the message durably (`Ok(id)`) or could not (the
    /// spool's error, `queue::error::SpoolError`: the session sits below
    /// the queue and only needs to know that it failed).
    pub fn enqueued<F: std::error::Error>(&mut self, result: Result<QueueId, F>) -> Output {
        if !matches!(self.state, State::WaitQueue { .. }) {
            return Output::reply(r::local_error());
        }
        let State::WaitQueue { lmtp_rcpts } = std::mem::replace(&mut self.state, State::Ready)
        else {
            return Output::reply(r::local_error());
        };
        if self.role == Role::Lmtp {
            // LMTP: one reply per accepted recipient (RFC 2033 §4.2).
            let replies = lmtp_rcpts
                .iter()
                .map(|rcpt| match &result {
                    Ok(id) => r::delivered_lmtp(rcpt, id),
                    Err(_) => r::local_error(),
                })
                .collect();
            return Output {
                replies,
                effect: None,
                close: false,
            };
        }
        Output::reply(match &result {
            Ok(id) => r::queued(id),
            Err(_) => r::local_error(),
        })
    }
}
