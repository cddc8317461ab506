//! AUTH PLAIN and LOGIN (RFC 4954): the SASL exchange up to the
//! credentials, which the driver checks ([`Effect::Authenticate`]).

use super::state::State;
use super::{AuthOutcome, Effect, Env, Output, Session};
use crate::proto::sasl::{self, Credentials, Mechanism, SaslError};
use crate::proto::smtp::line::trim_line_end;
use crate::proto::smtp::reply::r;
use crate::tables::AuthMode;

impl<E: Env> Session<E> {
    pub(super) fn unknown_auth_mechanism(&mut self, line: &[u8]) -> Option<Output> {
        let text = String::from_utf8_lossy(trim_line_end(line));
        let mut words = text.split_ascii_whitespace();
        if !words.next()?.eq_ignore_ascii_case("AUTH") {
            return None;
        }
        let mech = words.next()?;
        if Mechanism::parse(mech).is_some() || self.helo.is_none() {
            return None;
        }
        Some(self.error(r::auth_mechanism()))
    }

    pub(super) fn auth(&mut self, mechanism: u64, initial: String) -> Output {
        if self.listener_auth() == AuthMode::None {
            return self.error(r::auth_not_here());
        }
        if !self.auth_allowed_now() {
            return self.error(r::auth_needs_tls());
        }
        if self.user.is_some() {
            return self.error(r::auth_already());
        }
        if !matches!(self.state, State::Ready) {
            return self.error(r::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        let mech = if mechanism == smtp_proto::AUTH_PLAIN {
            Mechanism::Plain
        } else if mechanism == smtp_proto::AUTH_LOGIN {
            Mechanism::Login
        } else {
            return self.error(r::auth_mechanism());
        };
        match (mech, initial.is_empty()) {
            (Mechanism::Plain, true) => {
                self.state = State::AuthPlain;
                Output::reply(r::auth_challenge(""))
            }
            (Mechanism::Plain, false) => self.auth_plain_response(initial.as_bytes()),
            (Mechanism::Login, true) => {
                self.state = State::AuthLoginUser;
                Output::reply(r::auth_challenge(&sasl::base64_encode(b"Username:")))
            }
            (Mechanism::Login, false) => self.auth_login_user(initial.as_bytes()),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Output {
        self.state = State::Ready;
        match e {
            SaslError::Cancelled => self.error(r::auth_cancelled()),
            SaslError::BadEncoding => self.error(r::auth_bad_encoding()),
            SaslError::Authzid => self.error(r::auth_failed()),
        }
    }

    pub(super) fn auth_plain_response(&mut self, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(trim_line_end(line)).into_owned();
        match sasl::decode_plain(&text) {
            Ok(credentials) => self.authenticate(Mechanism::Plain, credentials),
            Err(e) => self.sasl_error(e),
        }
    }

    pub(super) fn auth_login_user(&mut self, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(trim_line_end(line)).into_owned();
        match sasl::decode_text(&text) {
            Ok(user) if !user.is_empty() => {
                self.state = State::AuthLoginPass { user };
                Output::reply(r::auth_challenge(&sasl::base64_encode(b"Password:")))
            }
            Ok(_) => self.sasl_error(SaslError::BadEncoding),
            Err(e) => self.sasl_error(e),
        }
    }

    pub(super) fn auth_login_pass(&mut self, user: String, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(trim_line_end(line)).into_owned();
        match sasl::decode_text(&text) {
            Ok(password) => self.authenticate(
                Mechanism::Login,
                Credentials {
                    username: user,
                    password,
                },
            ),
            Err(e) => self.sasl_error(e),
        }
    }

    fn authenticate(&mut self, mechanism: Mechanism, credentials: Credentials) -> Output {
        self.state = State::WaitAuth;
        Output {
            replies: Vec::new(),
            effect: Some(Effect::Authenticate {
                mechanism,
                credentials,
            }),
            close: false,
        }
    }

    pub fn auth_result(&mut self, outcome: AuthOutcome) -> Output {
        self.state = State::Ready;
        match outcome {
            AuthOutcome::Ok(mailbox) => {
                self.user = Some(mailbox);
                Output::reply(r::auth_ok())
            }
            AuthOutcome::Failed => self.error(r::auth_failed()),
            AuthOutcome::Locked => {
                self.state = State::Closed;
                Output::closing(r::auth_locked())
            }
            AuthOutcome::TempFail => Output::reply(r::auth_temp_fail()),
        }
    }
}
