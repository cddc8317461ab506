//! The SMTP/LMTP session as a state machine without I/O: it takes command
//! lines and body bytes, and returns typed replies plus at most one effect
//! (start TLS, check credentials, enqueue a message) for the driver to
//! perform. The driver reports the effect's result back. Everything a
//! decision needs comes from the tables snapshot the connection started with
//! and the [`Env`] trait (time, quota usage, ids).
//!
//! This file holds the session's outside (its types, the read loop, the
//! command dispatch through the verb table); each concern has a file:
//! [`state`] the states, `hello` EHLO and STARTTLS, `auth` AUTH, `mail`
//! MAIL/RCPT and their parameters, `body` DATA/BDAT, `handoff` the finished
//! message and the queue's answer, `policy` who may send what to whom.

mod auth;
mod body;
mod handoff;
mod hello;
mod mail;
mod policy;
mod protocol;
mod state;
pub mod verbs;

pub use protocol::Driven;

use std::net::SocketAddr;
use std::sync::Arc;

use state::State;

use crate::envelope::{Accepted, Destination};
use crate::proto::sasl::{Credentials, Mechanism};
use crate::proto::smtp::command::{self, Request};
use crate::proto::smtp::line::{Framed, LineFramer};
use crate::proto::smtp::reply::{Reply, r};
use crate::tables::{AuthMode, ListenerKind, ListenerTable, Tables, TlsMode};

/// What a listener does with mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: mail from other servers for our domains.
    Mx,
    /// Ports 587/465: mail from our users, to anywhere.
    Submission,
    /// Local delivery protocol (RFC 2033).
    Lmtp,
}

impl Role {
    pub fn of(kind: ListenerKind) -> Role {
        match kind {
            ListenerKind::Submission | ListenerKind::Submissions => Role::Submission,
            ListenerKind::Lmtp => Role::Lmtp,
            _ => Role::Mx,
        }
    }
}

pub use super::protocol::TlsInfo;

/// The id the spool gave an accepted message.
pub type QueueId = String;

/// Facts about the connection fixed when it was accepted.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The row of the listener the connection came in on.
    pub listener: ListenerTable,
    /// Set from the start on implicit-TLS listeners.
    pub tls: Option<TlsInfo>,
}

/// What the session needs from outside, answered from memory.
pub trait Env {
    /// Unix time in seconds.
    fn now(&self) -> u64;
    /// Bytes stored in a mailbox, for the quota check at RCPT.
    fn mailbox_usage(&self, mailbox: &str) -> u64;
    /// A new, unique queue id.
    fn new_id(&self) -> String;
    /// The original address behind an SRS address of ours (a bounce of
    /// mail we forwarded), when its hash and age check out.
    fn srs_reverse(&self, _address: &str) -> Option<String> {
        None
    }
    /// Greylisting of one recipient (`inbound { greylist }`): the verdict
    /// for the triplet, remembered by the environment. Without a store,
    /// everything passes.
    fn greylist(
        &self,
        _policy: &crate::tables::GreylistTable,
        _client: std::net::IpAddr,
        _sender: &str,
        _recipient: &str,
    ) -> crate::inbound::greylist::Verdict {
        crate::inbound::greylist::Verdict::Pass
    }
}

/// Work the driver must do before the session can go on.
#[derive(Debug)]
pub enum Effect {
    /// Write the replies, drop any input already buffered (RFC 3207 §5,
    /// CVE-2011-0411), run the TLS handshake, then call
    /// [`Session::tls_established`].
    StartTls,
    /// Check credentials, then call [`Session::auth_result`].
    Authenticate {
        mechanism: Mechanism,
        credentials: Credentials,
    },
    /// Store the message durably, then call [`Session::enqueued`].
    Enqueue(Box<Accepted>),
}

/// The result of one step.
#[derive(Debug, Default)]
pub struct Output {
    pub replies: Vec<Reply>,
    pub effect: Option<Effect>,
    /// Close the connection after writing the replies.
    pub close: bool,
}

impl Output {
    fn reply(r: Reply) -> Output {
        Output {
            replies: vec![r],
            ..Output::default()
        }
    }

    fn closing(r: Reply) -> Output {
        Output {
            replies: vec![r],
            effect: None,
            close: true,
        }
    }
}

/// How the driver should read the next input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A command line (or a SASL continuation line).
    Line,
    /// Message body bytes: call [`Session::body`].
    Body,
    /// Nothing: an effect is pending or the session is closed.
    Nothing,
}

pub use super::AuthOutcome;

pub struct Session<E: Env> {
    tables: Arc<Tables>,
    conn: ConnInfo,
    env: E,
    role: Role,
    state: State,
    /// EHLO/HELO argument and whether it was EHLO.
    helo: Option<(String, bool)>,
    tls: Option<TlsInfo>,
    user: Option<String>,
    errors: u32,
    /// The client is on DNS blocklists (looked up at connect, refused at
    /// RCPT: see [`Session::with_listing`]).
    listing: Option<crate::inbound::dnsbl::Listing>,
}

impl<E: Env> Session<E> {
    pub fn new(tables: Arc<Tables>, conn: ConnInfo, env: E) -> Session<E> {
        let tls = conn.tls.clone();
        Session {
            role: Role::of(conn.listener.kind),
            tables,
            conn,
            env,
            state: State::Start,
            helo: None,
            tls,
            user: None,
            errors: 0,
            listing: None,
        }
    }

    /// The client's DNS blocklist listing, looked up by the driver before
    /// the greeting. It is refused at RCPT, not at the banner (Postfix's
    /// `smtpd_delay_reject`): mail to postmaster@ our domains still gets
    /// through (RFC 5321 §4.5.1), a user who logs in is not refused, and
    /// the sender gets a bounce naming the zone (a 554 greeting is often
    /// taken for a connection failure and retried).
    pub fn with_listing(mut self, listing: Option<crate::inbound::dnsbl::Listing>) -> Session<E> {
        self.listing = listing;
        self
    }

    pub fn greeting(&mut self) -> Output {
        let host = &self.tables.hostname;
        Output::reply(if self.role == Role::Lmtp {
            r::lmtp_greeting(host)
        } else {
            r::greeting(host)
        })
    }

    pub fn expect(&self) -> Expect {
        match self.state {
            State::Receiving { .. } => Expect::Body,
            State::WaitAuth | State::WaitQueue { .. } | State::WaitTls | State::Closed => {
                Expect::Nothing
            }
            _ => Expect::Line,
        }
    }

    /// Processes buffered input until more input is needed, an effect has to
    /// be performed, or the session closes. Consumed bytes are removed from
    /// `input`. This is the whole read loop of a driver, minus the I/O.
    pub fn process(&mut self, input: &mut Vec<u8>, framer: &mut LineFramer) -> Output {
        let mut acc = Output::default();
        loop {
            let step = match self.expect() {
                Expect::Nothing => break,
                Expect::Line => match framer.next(input) {
                    Framed::Incomplete => break,
                    Framed::Line { len } => {
                        let line: Vec<u8> = input.drain(..len).collect();
                        self.command(&line)
                    }
                    Framed::Discard { len, finished } => {
                        input.drain(..len);
                        if !finished {
                            break;
                        }
                        self.line_too_long()
                    }
                },
                Expect::Body => {
                    if input.is_empty() {
                        break;
                    }
                    let (n, out) = self.body(input);
                    input.drain(..n);
                    match out {
                        Some(o) => o,
                        None => break,
                    }
                }
            };
            acc.replies.extend(step.replies);
            acc.close |= step.close;
            if step.effect.is_some() || step.close {
                acc.effect = step.effect;
                break;
            }
        }
        acc
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub fn authenticated_user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn listener_auth(&self) -> AuthMode {
        self.conn.listener.auth
    }

    fn listener_tls(&self) -> TlsMode {
        self.conn.listener.tls
    }

    fn can_starttls(&self) -> bool {
        self.tls.is_none() && self.listener_tls() == TlsMode::Starttls
    }

    fn auth_allowed_now(&self) -> bool {
        match self.listener_auth() {
            AuthMode::None => false,
            AuthMode::AfterTls => self.tls.is_some(),
            AuthMode::Plaintext => true,
        }
    }

    pub(super) fn trusted(&self) -> bool {
        self.tables
            .trusted_networks
            .iter()
            .any(|n| n.contains(self.conn.peer.ip()))
    }

    fn max_size(&self) -> u64 {
        match self.role {
            Role::Submission => self.tables.submission.max_message_size,
            _ => self.tables.inbound.max_message_size,
        }
    }

    fn max_recipients(&self) -> usize {
        match self.role {
            Role::Submission => self.tables.submission.max_recipients as usize,
            _ => self.tables.inbound.max_recipients as usize,
        }
    }

    /// A client error: counted, and the session ends when there are too many.
    fn error(&mut self, reply: Reply) -> Output {
        self.errors += 1;
        if self.errors > self.conn.listener.max_errors {
            self.state = State::Closed;
            return Output {
                replies: vec![reply, r::too_many_errors()],
                effect: None,
                close: true,
            };
        }
        Output::reply(reply)
    }

    /// The inactivity timer fired.
    pub fn timeout(&mut self) -> Output {
        self.state = State::Closed;
        Output::closing(r::timeout())
    }

    /// The server is shutting down.
    pub fn shutdown(&mut self) -> Output {
        self.state = State::Closed;
        Output::closing(r::shutting_down(&self.tables.hostname))
    }

    /// A command line longer than the framing limit was discarded.
    pub fn line_too_long(&mut self) -> Output {
        self.error(r::line_too_long())
    }

    /// One command line (or SASL continuation line), line end included.
    pub fn command(&mut self, line: &[u8]) -> Output {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::AuthPlain => return self.auth_plain_response(line),
            State::AuthLoginUser => return self.auth_login_user(line),
            State::AuthLoginPass { user } => return self.auth_login_pass(user, line),
            other => self.state = other,
        }
        if let Some(out) = self.unknown_auth_mechanism(line) {
            return out;
        }
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(reply) => return self.error(reply),
        };
        let verb = verbs::verb_of(&cmd);
        let row = verbs::row_of(verb);
        let allowed_here = if self.role == Role::Lmtp {
            row.lmtp
        } else {
            row.smtp
        };
        if !allowed_here {
            return self.error(r::unknown_command());
        }
        if !row.implemented {
            return self.error(r::not_implemented(row.name));
        }
        if row.needs_greeting && self.helo.is_none() {
            let hello = if self.role == Role::Lmtp {
                "LHLO"
            } else {
                "EHLO/HELO"
            };
            return self.error(r::bad_sequence(&format!("send {hello} first")));
        }
        match cmd {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Lhlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.reset_transaction();
                Output::reply(r::reset())
            }
            Request::Noop { .. } => Output::reply(r::noop()),
            Request::Quit => {
                self.state = State::Closed;
                Output::closing(r::bye(&self.tables.hostname))
            }
            Request::Vrfy { .. } => Output::reply(r::vrfy()),
            Request::Help { .. } => Output::reply(r::help()),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            _ => self.error(r::not_implemented(row.name)),
        }
    }

    fn reset_transaction(&mut self) {
        if matches!(
            self.state,
            State::Mail(_) | State::Chunking { .. } | State::Receiving { .. }
        ) {
            self.state = State::Ready;
        }
    }

    fn may_send(&self) -> Result<(), Reply> {
        policy::may_send(self)
    }

    fn sender_allowed(&self, sender: &str) -> Result<(), Reply> {
        policy::sender_allowed(self, sender)
    }

    fn route_recipient(&self, address: &str) -> Result<Vec<Destination>, Reply> {
        policy::route_recipient(self, address)
    }
}
