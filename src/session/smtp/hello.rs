//! EHLO/HELO/LHLO and the capabilities they announce; STARTTLS.

use super::state::State;
use super::{Effect, Env, Output, Session, TlsInfo};
use crate::proto::smtp::reply::{Reply, r};

impl<E: Env> Session<E> {
    pub(super) fn hello(&mut self, host: String, esmtp: bool) -> Output {
        if matches!(self.state, State::Receiving { .. }) {
            return self.error(r::bad_sequence("not during a message"));
        }
        // RFC 5321 §4.1.4: EHLO/HELO resets the transaction.
        self.state = State::Ready;
        let client = format!("[{}]", self.conn.peer.ip());
        self.helo = Some((host, esmtp));
        if !esmtp {
            return Output::reply(r::helo(&self.tables.hostname, &client));
        }
        let mut lines = vec![format!("{} greets {client}", self.tables.hostname)];
        lines.push("PIPELINING".into());
        lines.push(format!("SIZE {}", self.max_size()));
        lines.push("8BITMIME".into());
        lines.push("SMTPUTF8".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        lines.push("CHUNKING".into());
        lines.push("DSN".into());
        if self.can_starttls() {
            lines.push("STARTTLS".into());
        }
        if self.auth_allowed_now() && self.user.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("HELP".into());
        Output::reply(Reply::multi(250, lines))
    }

    pub(super) fn starttls(&mut self) -> Output {
        if self.tls.is_some() {
            return self.error(r::tls_already());
        }
        if !self.can_starttls() {
            return self.error(r::tls_not_available());
        }
        if !matches!(self.state, State::Ready | State::Start) {
            return self.error(r::bad_sequence(
                "STARTTLS not allowed during a mail transaction",
            ));
        }
        self.state = State::WaitTls;
        Output {
            replies: vec![r::ready_tls()],
            effect: Some(Effect::StartTls),
            close: false,
        }
    }

    /// The TLS handshake after STARTTLS finished; the client must greet again
    /// and everything learned before is forgotten (RFC 3207 §4.2).
    pub fn tls_established(&mut self, info: TlsInfo) -> Output {
        self.tls = Some(info);
        self.helo = None;
        self.user = None;
        self.state = State::Start;
        Output::default()
    }
}
