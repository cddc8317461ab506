//! The IMAP session as the connection driver sees it.

use std::convert::Infallible;
use std::time::Duration;

use super::{Effect, Env, Output, Session};
use crate::session::AuthOutcome;
use crate::session::protocol::{self, Protocol, Step, TlsInfo};

/// Read-buffer room for commands and the start of APPEND literals.
const READ_RESERVE: usize = 16 * 1024;
/// While idling only `DONE` is expected.
const IDLE_RESERVE: usize = 64;

fn step(out: Output) -> Step<Infallible> {
    Step {
        bytes: out.bytes,
        effect: out.effect.map(|e| match e {
            Effect::StartTls => protocol::Effect::StartTls,
            Effect::Authenticate { credentials } => protocol::Effect::Authenticate(credentials),
        }),
        close: out.close,
    }
}

impl<E: Env> Protocol for Session<E> {
    type Extra = Infallible;
    const NAME: &'static str = "imap";
    const WAKES_ON_MAIL: bool = true;
    const QUICKACK: bool = true;

    fn greeting(&mut self) -> Vec<u8> {
        Session::greeting(self).bytes
    }

    fn feed(&mut self, input: &mut Vec<u8>) -> Step<Infallible> {
        step(self.process(input))
    }

    fn has_pending(&self) -> bool {
        Session::has_pending(self)
    }

    fn tls_established(&mut self, _tls: TlsInfo) -> Step<Infallible> {
        step(Session::tls_established(self))
    }

    fn auth_result(&mut self, outcome: AuthOutcome) -> Step<Infallible> {
        step(Session::auth_result(self, outcome))
    }

    fn timeout(&mut self) -> Vec<u8> {
        Session::timeout(self).bytes
    }

    fn shutdown(&mut self) -> Vec<u8> {
        Session::shutdown(self).bytes
    }

    fn is_closed(&self) -> bool {
        Session::is_closed(self)
    }

    fn read_timeout(&self) -> Duration {
        let t = &self.tables.timeouts;
        Duration::from_secs(if self.is_idle() {
            t.imap_idle_secs
        } else {
            t.imap_secs
        })
    }

    fn read_reserve(&self) -> usize {
        if self.is_idle() {
            IDLE_RESERVE
        } else {
            READ_RESERVE
        }
    }

    fn idling(&self) -> bool {
        self.is_idle()
    }

    fn mail_owner(&self) -> Option<&str> {
        self.user()
    }

    fn poll(&mut self) -> Vec<u8> {
        Session::poll(self).bytes
    }
}
