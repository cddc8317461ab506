//! DATA and BDAT (RFC 3030): receiving the message, its size limit, and
//! the bare CR/LF check (SMTP smuggling).

use super::state::{Body, Discard, State, Transaction};
use super::{Env, Output, Role, Session};
use crate::proto::smtp::data::{BdatReceiver, DataReceiver, NewlineCheck};
use crate::proto::smtp::reply::{Reply, r};

impl<E: Env> Session<E> {
    pub(super) fn data(&mut self) -> Output {
        let tx = match std::mem::replace(&mut self.state, State::Closed) {
            State::Mail(tx) if !tx.rcpts.is_empty() => tx,
            State::Mail(tx) => {
                self.state = State::Mail(tx);
                return self.no_recipients();
            }
            State::Chunking { tx, message, check } => {
                self.state = State::Chunking { tx, message, check };
                return self.error(r::bad_sequence("DATA not allowed after BDAT"));
            }
            other => {
                self.state = other;
                return self.error(r::bad_sequence("send MAIL and RCPT first"));
            }
        };
        let limit = self.max_size() as usize;
        self.state = State::Receiving {
            tx,
            body: Body::Data(DataReceiver::new(limit)),
            message: Vec::new(),
        };
        Output::reply(r::start_data())
    }

    pub(super) fn bdat(&mut self, size: usize, last: bool) -> Output {
        let (tx, message, check, discard) = match std::mem::replace(&mut self.state, State::Closed)
        {
            State::Mail(tx) => {
                let discard = tx.rcpts.is_empty().then_some(Discard::NoRecipients);
                (tx, Vec::new(), NewlineCheck::default(), discard)
            }
            State::Chunking { tx, message, check } => (tx, message, check, None),
            other => (
                Box::new(Transaction::empty()),
                Vec::new(),
                NewlineCheck::default(),
                Some(Discard::NoTransaction(Box::new(other))),
            ),
        };
        self.state = State::Receiving {
            tx,
            body: Body::Bdat {
                receiver: BdatReceiver::new(size),
                size,
                last,
                check,
                discard,
            },
            message,
        };
        self.after_body_if_empty()
    }

    /// `BDAT 0` completes at once.
    fn after_body_if_empty(&mut self) -> Output {
        if let State::Receiving {
            body: Body::Bdat { receiver, .. },
            ..
        } = &self.state
            && receiver.remaining() == 0
        {
            return self.body_complete();
        }
        Output::default()
    }

    /// Message body bytes. Returns how many were consumed (the rest belongs
    /// to the next command) and, when the body or chunk is complete, the
    /// output of that step.
    pub fn body(&mut self, input: &[u8]) -> (usize, Option<Output>) {
        let limit = self.max_size() as usize;
        let State::Receiving { body, message, .. } = &mut self.state else {
            return (0, None);
        };
        let (n, done) = match body {
            Body::Data(rx) => rx.feed(input, message),
            Body::Bdat {
                receiver,
                check,
                discard,
                ..
            } => {
                let keep = if discard.is_some() { 0 } else { limit + 1 };
                receiver.feed(input, message, keep, check)
            }
        };
        if done {
            (n, Some(self.body_complete()))
        } else {
            (n, None)
        }
    }

    fn body_complete(&mut self) -> Output {
        let State::Receiving { tx, body, message } =
            std::mem::replace(&mut self.state, State::Closed)
        else {
            return Output::reply(r::local_error());
        };
        let limit = self.max_size() as usize;
        match body {
            Body::Data(rx) => {
                self.state = State::Ready;
                if rx.bare_cr || rx.bare_lf {
                    return self.refuse_message(&tx, r::bare_newline());
                }
                if rx.oversize() {
                    return self.refuse_message(&tx, r::size_exceeded());
                }
                self.finish_message(*tx, message)
            }
            Body::Bdat {
                size: chunk,
                last,
                mut check,
                discard,
                ..
            } => {
                match discard {
                    Some(Discard::NoRecipients) => {
                        self.state = State::Mail(tx);
                        return self.no_recipients();
                    }
                    Some(Discard::NoTransaction(back)) => {
                        self.state = *back;
                        return self.error(r::bad_sequence("send MAIL and RCPT first"));
                    }
                    None => {}
                }
                if message.len() > limit {
                    self.state = State::Ready;
                    // A chunk before the last one gets its own reply; the
                    // last one ends the message (per recipient in LMTP).
                    return if last {
                        self.refuse_message(&tx, r::size_exceeded())
                    } else {
                        self.error(r::size_exceeded())
                    };
                }
                if !last {
                    self.state = State::Chunking { tx, message, check };
                    return Output::reply(r::bdat_chunk(chunk));
                }
                check.finish();
                self.state = State::Ready;
                if !check.is_clean() {
                    return self.refuse_message(&tx, r::bare_newline());
                }
                self.finish_message(*tx, message)
            }
        }
    }

    /// DATA or BDAT when no RCPT succeeded: 554 in SMTP, 503 in LMTP.
    fn no_recipients(&mut self) -> Output {
        self.error(if self.role == Role::Lmtp {
            r::no_valid_recipients_lmtp()
        } else {
            r::no_valid_recipients()
        })
    }

    /// The complete message is refused (bare newlines, too big): SMTP
    /// answers once; LMTP once per accepted recipient, as after any end of
    /// data (RFC 2033 §4.2), or the client waits for the replies it counts
    /// on. One protocol error all the same.
    fn refuse_message(&mut self, tx: &Transaction, reply: Reply) -> Output {
        let copies = if self.role == Role::Lmtp {
            tx.rcpts.len().saturating_sub(1)
        } else {
            0
        };
        let mut out = self.error(reply.clone());
        out.replies.splice(0..0, std::iter::repeat_n(reply, copies));
        out
    }
}
