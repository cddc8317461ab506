//! The POP3 session as the connection driver sees it.

use std::convert::Infallible;
use std::time::Duration;

use super::{Effect, Env, Output, Session};
use crate::proto::pop3::MAX_LINE;
use crate::proto::smtp::line::LineFramer;
use crate::session::AuthOutcome;
use crate::session::protocol::{self, Protocol, Step, TlsInfo};

/// Read-buffer room: POP3 commands are short.
const READ_RESERVE: usize = 4 * 1024;

/// A session and its line framer, which lives as long as the connection.
pub struct Driven<E: Env> {
    pub session: Session<E>,
    framer: LineFramer,
}

impl<E: Env> Driven<E> {
    pub fn new(session: Session<E>) -> Driven<E> {
        Driven {
            session,
            framer: LineFramer::new(MAX_LINE),
        }
    }
}

fn step(out: Output) -> Step<Infallible> {
    Step {
        bytes: out.bytes,
        effect: out.effect.map(|e| match e {
            Effect::StartTls => protocol::Effect::StartTls,
            Effect::Authenticate { credentials, .. } => protocol::Effect::Authenticate(credentials),
        }),
        close: out.close,
    }
}

impl<E: Env> Protocol for Driven<E> {
    type Extra = Infallible;
    const NAME: &'static str = "pop3";
    /// RETR and TOP read whole messages; login opens the maildrop.
    const BLOCKING_STEPS: bool = true;

    fn greeting(&mut self) -> Vec<u8> {
        self.session.greeting().bytes
    }

    fn feed(&mut self, input: &mut Vec<u8>) -> Step<Infallible> {
        step(self.session.process(input, &mut self.framer))
    }

    fn tls_established(&mut self, _tls: TlsInfo) -> Step<Infallible> {
        step(self.session.tls_established())
    }

    fn auth_result(&mut self, outcome: AuthOutcome) -> Step<Infallible> {
        step(self.session.auth_result(outcome))
    }

    fn timeout(&mut self) -> Vec<u8> {
        self.session.timeout().bytes
    }

    fn shutdown(&mut self) -> Vec<u8> {
        self.session.shutdown().bytes
    }

    fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.session.tables.timeouts.pop3_secs)
    }

    fn read_reserve(&self) -> usize {
        READ_RESERVE
    }
}
