//! The ManageSieve session as the connection driver sees it.

use std::convert::Infallible;
use std::time::Duration;

use super::{Env, Session};
use crate::proto::managesieve::Framer;
use crate::session::AuthOutcome;
use crate::session::protocol::{Protocol, Step, TlsInfo};

/// Read-buffer room for command lines.
const READ_RESERVE: usize = 4 * 1024;
/// Most room made at once while a literal (a script) arrives.
const LITERAL_RESERVE: usize = 64 * 1024;
/// SASL responses are literals too: the framer allows at least this much
/// whatever the script size limit.
const MIN_LITERAL: u64 = 8 * 1024;

/// A session and its framer, which lives as long as the connection.
pub struct Driven<E: Env> {
    pub session: Session<E>,
    framer: Framer,
}

impl<E: Env> Driven<E> {
    pub fn new(session: Session<E>) -> Driven<E> {
        let framer = Framer::new(session.max_script_size().max(MIN_LITERAL));
        Driven { session, framer }
    }
}

impl<E: Env> Protocol for Driven<E> {
    type Extra = Infallible;
    const NAME: &'static str = "managesieve";
    /// Script commands read and write small files (synced).
    const BLOCKING_STEPS: bool = true;

    fn greeting(&mut self) -> Vec<u8> {
        self.session.greeting()
    }

    fn feed(&mut self, input: &mut Vec<u8>) -> Step<Infallible> {
        self.session.process(input, &mut self.framer)
    }

    fn tls_established(&mut self, _tls: TlsInfo) -> Step<Infallible> {
        self.session.tls_established()
    }

    fn auth_result(&mut self, outcome: AuthOutcome) -> Step<Infallible> {
        self.session.auth_result(outcome)
    }

    fn timeout(&mut self) -> Vec<u8> {
        self.session.timeout()
    }

    fn shutdown(&mut self) -> Vec<u8> {
        self.session.shutdown()
    }

    fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.session.tables.timeouts.managesieve_secs)
    }

    fn read_reserve(&self) -> usize {
        self.framer.wanted(0).clamp(READ_RESERVE, LITERAL_RESERVE)
    }
}
