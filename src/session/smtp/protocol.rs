//! The SMTP/LMTP session as the connection driver sees it.

use std::time::Duration;

use super::{Effect, Env, Expect, Output, QueueId, Session};
use crate::envelope::Accepted;
use crate::proto::smtp::line::{LineFramer, MAX_COMMAND_LINE};
use crate::session::AuthOutcome;
use crate::session::protocol::{self, Protocol, Step, TlsInfo};

/// Read-buffer room for command lines (pipelined commands fit).
const LINE_RESERVE: usize = 4 * 1024;
/// Read-buffer room while receiving message data.
const BODY_RESERVE: usize = 64 * 1024;

/// A session and its line framer, which lives as long as the connection.
pub struct Driven<E: Env> {
    pub session: Session<E>,
    framer: LineFramer,
}

impl<E: Env> Driven<E> {
    pub fn new(session: Session<E>) -> Driven<E> {
        Driven {
            session,
            framer: LineFramer::new(MAX_COMMAND_LINE),
        }
    }

    /// The spool's answer to [`protocol::Effect::Other`]: see
    /// [`Session::enqueued`].
    pub fn enqueued<F: std::error::Error>(
        &mut self,
        result: Result<QueueId, F>,
    ) -> Step<Box<Accepted>> {
        step(self.session.enqueued(result))
    }

    /// The inbound checks refused the message: see [`Session::refused`].
    pub fn refused(&mut self, reply: crate::proto::smtp::reply::Reply) -> Step<Box<Accepted>> {
        step(self.session.refused(reply))
    }
}

fn step(out: Output) -> Step<Box<Accepted>> {
    let mut bytes = Vec::with_capacity(64 * out.replies.len());
    for r in &out.replies {
        r.write_to(&mut bytes);
    }
    Step {
        bytes,
        effect: out.effect.map(|e| match e {
            Effect::StartTls => protocol::Effect::StartTls,
            Effect::Authenticate { credentials, .. } => protocol::Effect::Authenticate(credentials),
            Effect::Enqueue(accepted) => protocol::Effect::Other(accepted),
        }),
        close: out.close,
    }
}

impl<E: Env> Protocol for Driven<E> {
    /// The message to store durably; the result goes to
    /// [`Session::enqueued`].
    type Extra = Box<Accepted>;
    const NAME: &'static str = "smtp";

    fn greeting(&mut self) -> Vec<u8> {
        step(self.session.greeting()).bytes
    }

    fn feed(&mut self, input: &mut Vec<u8>) -> Step<Self::Extra> {
        step(self.session.process(input, &mut self.framer))
    }

    fn tls_established(&mut self, tls: TlsInfo) -> Step<Self::Extra> {
        step(self.session.tls_established(tls))
    }

    fn auth_result(&mut self, outcome: AuthOutcome) -> Step<Self::Extra> {
        step(self.session.auth_result(outcome))
    }

    fn timeout(&mut self) -> Vec<u8> {
        step(self.session.timeout()).bytes
    }

    fn shutdown(&mut self) -> Vec<u8> {
        step(self.session.shutdown()).bytes
    }

    fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    fn read_timeout(&self) -> Duration {
        let t = &self.session.tables.timeouts;
        Duration::from_secs(match self.session.expect() {
            Expect::Body => t.smtp_data_secs,
            _ => t.smtp_command_secs,
        })
    }

    fn read_reserve(&self) -> usize {
        match self.session.expect() {
            Expect::Body => BODY_RESERVE,
            _ => LINE_RESERVE,
        }
    }
}
