//! The SMTP/LMTP session as a state machine without I/O: it takes command
//! lines and body bytes, and returns typed replies plus at most one effect
//! (start TLS, check credentials, enqueue a message) for the driver to
//! perform. The driver reports the effect's result back. Everything a
//! decision needs comes from the tables snapshot the connection started with
//! and the [`Env`] trait (time, quota usage, ids).

mod policy;
mod protocol;
pub mod verbs;

pub use protocol::Driven;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::envelope::{Accepted, Client, Destination, Envelope, Notify, Recipient, Ret};
use crate::proto::sasl::{self, Credentials, Mechanism, SaslError};
use crate::proto::smtp::command::{self, Request};
use crate::proto::smtp::data::{BdatReceiver, DataReceiver, NewlineCheck};
use crate::proto::smtp::headers;
use crate::proto::smtp::line::{Framed, LineFramer, trim_line_end};
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

#[derive(Debug, Clone)]
struct MailParams {
    sender: String,
    body_8bit: bool,
    smtputf8: bool,
    ret: Option<Ret>,
    envid: Option<String>,
}

#[derive(Debug, Clone)]
struct Transaction {
    mail: MailParams,
    rcpts: Vec<Recipient>,
    envelope_deliveries: Vec<crate::envelope::Delivery>,
}

#[derive(Debug)]
enum Body {
    Data(DataReceiver),
    Bdat {
        receiver: BdatReceiver,
        /// This chunk's announced size.
        size: usize,
        last: bool,
        check: NewlineCheck,
        /// Set when the chunk cannot be accepted but must still be read and
        /// dropped, or its bytes would be taken as commands.
        discard: Option<Discard>,
    },
}

#[derive(Debug)]
enum Discard {
    /// MAIL was given but no recipient accepted.
    NoRecipients,
    /// No transaction at all; the state to return to.
    NoTransaction(Box<State>),
}

impl Transaction {
    fn empty() -> Transaction {
        Transaction {
            mail: MailParams {
                sender: String::new(),
                body_8bit: false,
                smtputf8: false,
                ret: None,
                envid: None,
            },
            rcpts: Vec::new(),
            envelope_deliveries: Vec::new(),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Before EHLO/HELO/LHLO (also right after STARTTLS).
    Start,
    Ready,
    Mail(Box<Transaction>),
    Receiving {
        tx: Box<Transaction>,
        body: Body,
        message: Vec<u8>,
    },
    /// Between BDAT chunks.
    Chunking {
        tx: Box<Transaction>,
        message: Vec<u8>,
        check: NewlineCheck,
    },
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass {
        user: String,
    },
    WaitAuth,
    WaitQueue {
        /// LMTP answers once per recipient, naming it (RFC 2033 §4.2);
        /// empty for SMTP.
        lmtp_rcpts: Vec<String>,
    },
    WaitTls,
    Closed,
}

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
        }
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

    fn trusted(&self) -> bool {
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

    fn hello(&mut self, host: String, esmtp: bool) -> Output {
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

    fn starttls(&mut self) -> Output {
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

    fn unknown_auth_mechanism(&mut self, line: &[u8]) -> Option<Output> {
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

    fn auth(&mut self, mechanism: u64, initial: String) -> Output {
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

    fn auth_plain_response(&mut self, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(trim_line_end(line)).into_owned();
        match sasl::decode_plain(&text) {
            Ok(credentials) => self.authenticate(Mechanism::Plain, credentials),
            Err(e) => self.sasl_error(e),
        }
    }

    fn auth_login_user(&mut self, line: &[u8]) -> Output {
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

    fn auth_login_pass(&mut self, user: String, line: &[u8]) -> Output {
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

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Output {
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

    fn rcpt(&mut self, mut to: smtp_proto::RcptTo<String>) -> Output {
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

    fn data(&mut self) -> Output {
        let tx = match std::mem::replace(&mut self.state, State::Closed) {
            State::Mail(tx) if !tx.rcpts.is_empty() => tx,
            State::Mail(tx) => {
                self.state = State::Mail(tx);
                return self.error(r::no_valid_recipients());
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

    fn bdat(&mut self, size: usize, last: bool) -> Output {
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
                    return self.error(r::bare_newline());
                }
                if rx.oversize() {
                    return self.error(r::size_exceeded());
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
                        return self.error(r::no_valid_recipients());
                    }
                    Some(Discard::NoTransaction(back)) => {
                        self.state = *back;
                        return self.error(r::bad_sequence("send MAIL and RCPT first"));
                    }
                    None => {}
                }
                if message.len() > limit {
                    self.state = State::Ready;
                    return self.error(r::size_exceeded());
                }
                if !last {
                    self.state = State::Chunking { tx, message, check };
                    return Output::reply(r::bdat_chunk(chunk));
                }
                check.finish();
                self.state = State::Ready;
                if !check.is_clean() {
                    return self.error(r::bare_newline());
                }
                self.finish_message(*tx, message)
            }
        }
    }

    /// The complete message: final checks, trace fields, and the Enqueue effect.
    fn finish_message(&mut self, tx: Transaction, mut message: Vec<u8>) -> Output {
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
        let received = headers::received(&headers::ReceivedInfo {
            helo: if strip { "" } else { &helo },
            client_ip: if strip {
                None
            } else {
                Some(self.conn.peer.ip())
            },
            by_host: &self.tables.hostname,
            protocol,
            tls: tls.as_deref(),
            id: &id,
            for_rcpt,
            unix_time: now,
        });
        let mut full = Vec::with_capacity(received.len() + message.len());
        full.extend_from_slice(received.as_bytes());
        full.extend_from_slice(&message);
        let lmtp_rcpts = if self.role == Role::Lmtp {
            tx.rcpts.iter().map(|r| r.address.clone()).collect()
        } else {
            Vec::new()
        };
        let envelope = Envelope {
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
                tls,
                auth: self.user.clone(),
                listener: self.conn.listener.kind.as_str().to_string(),
            },
            received_at: now,
            size: full.len() as u64,
        };
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
