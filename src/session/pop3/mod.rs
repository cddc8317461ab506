//! The POP3 session (RFC 1939, CAPA of RFC 2449, STLS of RFC 2595, AUTH of
//! RFC 5034, response codes of RFC 3206) as a state machine without I/O.
//! Credentials are checked by the driver (an effect); the maildrop is reached
//! through the [`Maildrop`] trait, so the session never opens a file itself.
//! Deletions happen only in the UPDATE state after QUIT: a dropped
//! connection deletes nothing. Where each verb is allowed is one row of
//! [`verbs::TABLE`]; replies come from the catalogue in `proto::pop3`.

use std::sync::Arc;

mod protocol;
pub mod verbs;

pub use protocol::Driven;

use crate::proto::pop3::{self, Command, Reply, r};
use crate::proto::sasl::{self, Credentials, Mechanism, SaslError};
use crate::proto::smtp::line::{Framed, LineFramer, trim_line_end};
use crate::session::smtp::AuthOutcome;
use crate::tables::{ListenerTable, Tables};
use verbs::Verb;

/// A message as POP3 sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropMessage {
    pub uid: u32,
    /// Octets as sent by RETR (CRLF line ends).
    pub size: u64,
}

/// A locked maildrop (one POP3 session at a time per mailbox).
pub trait Maildrop: Send {
    fn uidvalidity(&self) -> u32;
    /// Messages at the time the maildrop was opened, in order.
    fn messages(&self) -> &[DropMessage];
    fn read(&mut self, uid: u32) -> std::io::Result<Vec<u8>>;
    /// The UPDATE state: delete and mark seen.
    fn commit(&mut self, delete: &[u32], seen: &[u32]) -> std::io::Result<()>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Another POP3 session has the maildrop.
    InUse,
    Unavailable(String),
}

/// What the session needs from outside.
pub trait Env {
    fn open(&self, mailbox: &str) -> Result<Box<dyn Maildrop>, OpenError>;
}

#[derive(Debug)]
pub enum Effect {
    /// Write the output, drop buffered input, handshake, then call
    /// [`Session::tls_established`].
    StartTls,
    /// Check credentials, then call [`Session::auth_result`].
    Authenticate {
        mechanism: Option<Mechanism>,
        credentials: Credentials,
    },
}

#[derive(Debug, Default)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub effect: Option<Effect>,
    pub close: bool,
}

struct Transaction {
    mailbox: String,
    drop: Box<dyn Maildrop>,
    deleted: Vec<bool>,
    retrieved: Vec<bool>,
}

enum State {
    Authorization { user: Option<String> },
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass { user: String },
    WaitAuth,
    WaitTls,
    Transaction(Box<Transaction>),
    Closed,
}

pub struct Session<E: Env> {
    tables: Arc<Tables>,
    listener: ListenerTable,
    env: E,
    state: State,
    tls: bool,
    errors: u32,
}

impl<E: Env> Session<E> {
    pub fn new(tables: Arc<Tables>, listener: ListenerTable, tls: bool, env: E) -> Session<E> {
        Session {
            tables,
            listener,
            env,
            state: State::Authorization { user: None },
            tls,
            errors: 0,
        }
    }

    pub fn greeting(&self) -> Output {
        Output {
            bytes: Reply::ok(format!("{} POP3 mailc ready", self.tables.hostname)).to_bytes(),
            ..Output::default()
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether input should be read now (no effect pending).
    pub fn wants_input(&self) -> bool {
        !matches!(self.state, State::WaitAuth | State::WaitTls | State::Closed)
    }

    fn can_stls(&self) -> bool {
        crate::session::can_starttls(&self.listener, self.tls)
    }

    fn login_allowed(&self) -> bool {
        crate::session::login_allowed(&self.listener, self.tls)
    }

    /// A malformed command or a protocol violation: counts toward the
    /// listener's error limit, which closes the session when exceeded.
    fn error(&mut self, reply: Reply) -> Output {
        self.errors += 1;
        let mut bytes = reply.to_bytes();
        if self.errors > self.listener.max_errors {
            r::too_many_errors().write_to(&mut bytes);
            self.state = State::Closed;
            return Output {
                bytes,
                effect: None,
                close: true,
            };
        }
        Output {
            bytes,
            ..Output::default()
        }
    }

    /// A well-formed command that cannot be carried out (no such message,
    /// a mechanism not offered, the maildrop in use): the client did
    /// nothing wrong, so it does not count toward the error limit. Clients
    /// probe and race (a message number from an older listing), and an
    /// authenticated session must not be cut for that.
    fn refuse(&mut self, reply: Reply) -> Output {
        simple(reply.to_bytes())
    }

    pub fn timeout(&mut self) -> Output {
        // A dropped session deletes nothing: no UPDATE state.
        self.state = State::Closed;
        Output {
            bytes: r::timeout().to_bytes(),
            effect: None,
            close: true,
        }
    }

    pub fn shutdown(&mut self) -> Output {
        self.state = State::Closed;
        Output {
            bytes: r::shutting_down().to_bytes(),
            effect: None,
            close: true,
        }
    }

    /// Processes buffered input until more is needed, an effect must run, or
    /// the session ends. Consumed bytes are removed from `input`.
    pub fn process(&mut self, input: &mut Vec<u8>, framer: &mut LineFramer) -> Output {
        let mut acc = Output::default();
        while self.wants_input() {
            let step = match framer.next(input) {
                Framed::Incomplete => break,
                Framed::Line { len } => {
                    let line: Vec<u8> = input.drain(..len).collect();
                    self.line(&line)
                }
                Framed::Discard { len, finished } => {
                    input.drain(..len);
                    if !finished {
                        break;
                    }
                    self.error(r::line_too_long())
                }
            };
            acc.bytes.extend_from_slice(&step.bytes);
            acc.close |= step.close;
            if step.effect.is_some() || step.close {
                acc.effect = step.effect;
                break;
            }
        }
        acc
    }

    pub fn line(&mut self, line: &[u8]) -> Output {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::AuthPlain => return self.sasl_plain(line),
            State::AuthLoginUser => return self.sasl_login_user(line),
            State::AuthLoginPass { user } => return self.sasl_login_pass(user, line),
            other => self.state = other,
        }
        let Some(cmd) = pop3::parse(line) else {
            return self.error(r::empty_command());
        };
        match &self.state {
            State::Authorization { .. } | State::Transaction(_) => self.command(cmd),
            _ => self.error(r::unexpected_input()),
        }
    }

    fn capa(&self) -> Output {
        let mut lines = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        let authorizing = matches!(self.state, State::Authorization { .. });
        if authorizing && self.login_allowed() {
            lines.push("USER".into());
            lines.push("SASL PLAIN LOGIN".into());
        }
        if authorizing && self.can_stls() {
            lines.push("STLS".into());
        }
        lines.push("IMPLEMENTATION mailc".into());
        let mut bytes = r::capabilities().to_bytes();
        for l in lines {
            bytes.extend_from_slice(l.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b".\r\n");
        Output {
            bytes,
            ..Output::default()
        }
    }

    /// The verb table decides where a command is allowed; the handlers
    /// below only see commands valid in their state.
    fn command(&mut self, cmd: Command) -> Output {
        let Some(row) = verbs::row_of(&cmd.verb) else {
            return self.error(r::unknown_command());
        };
        let authorizing = matches!(self.state, State::Authorization { .. });
        if authorizing && !row.authorization {
            return self.error(r::log_in_first());
        }
        if !authorizing && !row.transaction {
            return self.error(r::already_logged_in());
        }
        if row.login && !self.login_allowed() {
            return self.refuse(if self.can_stls() {
                r::login_needs_tls()
            } else {
                r::login_not_offered()
            });
        }
        if authorizing {
            self.authorization(row.verb, cmd)
        } else {
            self.transaction(row.verb, cmd)
        }
    }

    fn authorization(&mut self, verb: Verb, cmd: Command) -> Output {
        match verb {
            Verb::Capa => self.capa(),
            Verb::Quit => {
                self.state = State::Closed;
                Output {
                    bytes: Reply::ok(format!("{} signing off", self.tables.hostname)).to_bytes(),
                    effect: None,
                    close: true,
                }
            }
            Verb::Noop => simple(r::ok().to_bytes()),
            Verb::Stls => {
                if self.tls {
                    return self.refuse(r::tls_active());
                }
                if !self.can_stls() {
                    return self.refuse(r::stls_unavailable());
                }
                self.state = State::WaitTls;
                Output {
                    bytes: r::begin_tls().to_bytes(),
                    effect: Some(Effect::StartTls),
                    close: false,
                }
            }
            Verb::User => match cmd.args.as_slice() {
                [user] => {
                    self.state = State::Authorization {
                        user: Some(user.clone()),
                    };
                    simple(r::send_pass().to_bytes())
                }
                _ => self.error(r::usage("usage: USER name")),
            },
            Verb::Pass => {
                let State::Authorization { user: Some(user) } = &self.state else {
                    return self.error(r::user_first());
                };
                // The password is the rest of the line (it may hold spaces).
                let password = cmd.args.join(" ");
                let user = user.clone();
                self.state = State::WaitAuth;
                Output {
                    bytes: Vec::new(),
                    effect: Some(Effect::Authenticate {
                        mechanism: None,
                        credentials: Credentials {
                            username: user,
                            password,
                        },
                    }),
                    close: false,
                }
            }
            Verb::Auth => match cmd.args.as_slice() {
                [] => {
                    let mut bytes = r::sasl_mechanisms().to_bytes();
                    bytes.extend_from_slice(b"PLAIN\r\nLOGIN\r\n.\r\n");
                    simple(bytes)
                }
                [mech, rest @ ..] => match (Mechanism::parse(mech), rest) {
                    (Some(Mechanism::Plain), []) => {
                        self.state = State::AuthPlain;
                        simple(b"+ \r\n".to_vec())
                    }
                    (Some(Mechanism::Plain), [ir]) => self.sasl_plain(ir.as_bytes()),
                    (Some(Mechanism::Login), []) => {
                        self.state = State::AuthLoginUser;
                        simple(format!("+ {}\r\n", sasl::base64_encode(b"Username:")).into_bytes())
                    }
                    (Some(Mechanism::Login), [ir]) => self.sasl_login_user(ir.as_bytes()),
                    _ => self.refuse(r::mechanism_unknown()),
                },
            },
            Verb::Apop => self.refuse(r::apop()),
            // The verb table lets no other verb through before login.
            _ => self.error(r::log_in_first()),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Output {
        self.state = State::Authorization { user: None };
        match e {
            SaslError::Cancelled => self.refuse(r::auth_cancelled()),
            SaslError::BadEncoding => self.error(r::auth_undecodable()),
            SaslError::Authzid => self.error(r::auth_failed()),
        }
    }

    fn sasl_plain(&mut self, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(trim_line_end(line)).into_owned();
        match sasl::decode_plain(&text) {
            Ok(credentials) => {
                self.state = State::WaitAuth;
                Output {
                    bytes: Vec::new(),
                    effect: Some(Effect::Authenticate {
                        mechanism: Some(Mechanism::Plain),
                        credentials,
                    }),
                    close: false,
                }
            }
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_login_user(&mut self, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(trim_line_end(line)).into_owned();
        match sasl::decode_text(&text) {
            Ok(user) if !user.is_empty() => {
                self.state = State::AuthLoginPass { user };
                Output {
                    bytes: format!("+ {}\r\n", sasl::base64_encode(b"Password:")).into_bytes(),
                    ..Output::default()
                }
            }
            Ok(_) => self.sasl_error(SaslError::BadEncoding),
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_login_pass(&mut self, user: String, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(trim_line_end(line)).into_owned();
        match sasl::decode_text(&text) {
            Ok(password) => {
                self.state = State::WaitAuth;
                Output {
                    bytes: Vec::new(),
                    effect: Some(Effect::Authenticate {
                        mechanism: Some(Mechanism::Login),
                        credentials: Credentials {
                            username: user,
                            password,
                        },
                    }),
                    close: false,
                }
            }
            Err(e) => self.sasl_error(e),
        }
    }

    /// The result of checking credentials; on success the maildrop is
    /// opened (and locked) through the environment.
    pub fn auth_result(&mut self, outcome: AuthOutcome) -> Output {
        self.state = State::Authorization { user: None };
        match outcome {
            AuthOutcome::Ok(mailbox) => match self.env.open(&mailbox) {
                Ok(drop) => {
                    let n = drop.messages().len();
                    let size: u64 = drop.messages().iter().map(|m| m.size).sum();
                    self.state = State::Transaction(Box::new(Transaction {
                        mailbox,
                        drop,
                        deleted: vec![false; n],
                        retrieved: vec![false; n],
                    }));
                    simple(Reply::ok(format!("logged in, {n} messages ({size} octets)")).to_bytes())
                }
                Err(OpenError::InUse) => self.refuse(r::in_use()),
                Err(OpenError::Unavailable(_)) => self.refuse(r::maildrop_unavailable()),
            },
            // A failed login counts: it bounds the guesses one connection
            // makes, beside the lockout and the pause after each failure.
            AuthOutcome::Failed => self.error(r::auth_failed()),
            AuthOutcome::Locked => {
                self.state = State::Closed;
                Output {
                    bytes: r::login_delay().to_bytes(),
                    effect: None,
                    close: true,
                }
            }
            AuthOutcome::TempFail => self.refuse(r::auth_tempfail()),
        }
    }

    pub fn tls_established(&mut self) -> Output {
        self.tls = true;
        self.state = State::Authorization { user: None };
        Output::default()
    }

    fn transaction(&mut self, verb: Verb, cmd: Command) -> Output {
        let State::Transaction(tx) = &mut self.state else {
            return Output::default();
        };
        match verb {
            Verb::Capa => self.capa(),
            Verb::Noop => simple(r::ok().to_bytes()),
            Verb::Stat => {
                let msgs = tx.drop.messages();
                let (n, size) = msgs
                    .iter()
                    .zip(&tx.deleted)
                    .filter(|(_, d)| !**d)
                    .fold((0, 0u64), |(n, s), (m, _)| (n + 1, s + m.size));
                simple(Reply::ok(format!("{n} {size}")).to_bytes())
            }
            Verb::List | Verb::Uidl => self.list(verb == Verb::Uidl, &cmd),
            Verb::Retr | Verb::Top => self.retrieve(verb == Verb::Top, &cmd),
            Verb::Dele => match pick(tx, cmd.args.first()) {
                Ok(i) => {
                    tx.deleted[i] = true;
                    simple(Reply::ok(format!("message {} deleted", i + 1)).to_bytes())
                }
                Err(e) => self.fail(e),
            },
            Verb::Rset => {
                tx.deleted.iter_mut().for_each(|d| *d = false);
                let n = tx.deleted.len();
                simple(Reply::ok(format!("maildrop has {n} messages")).to_bytes())
            }
            Verb::Quit => self.update(),
            // The verb table lets no other verb through after login.
            _ => self.error(r::already_logged_in()),
        }
    }

    /// LIST or UIDL: one message's line, or the listing of all that are
    /// not deleted.
    fn list(&mut self, uidl: bool, cmd: &Command) -> Output {
        let State::Transaction(tx) = &mut self.state else {
            return Output::default();
        };
        let validity = tx.drop.uidvalidity();
        let item = |i: usize, m: &DropMessage| {
            if uidl {
                format!("{} {validity:08x}{:08x}", i + 1, m.uid)
            } else {
                format!("{} {}", i + 1, m.size)
            }
        };
        if !cmd.args.is_empty() {
            return match pick(tx, cmd.args.first()) {
                Ok(i) => simple(Reply::ok(item(i, &tx.drop.messages()[i])).to_bytes()),
                Err(e) => self.fail(e),
            };
        }
        let mut bytes = r::listing().to_bytes();
        for (i, m) in tx.drop.messages().iter().enumerate() {
            if !tx.deleted[i] {
                bytes.extend_from_slice(item(i, m).as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
        }
        bytes.extend_from_slice(b".\r\n");
        simple(bytes)
    }

    /// RETR, or TOP with its line count.
    fn retrieve(&mut self, top: bool, cmd: &Command) -> Output {
        // The shape of the command first: a wrong argument count is
        // malformed whatever the message number names.
        let top = if top {
            match cmd.args.get(1).and_then(|a| a.parse::<usize>().ok()) {
                Some(n) if cmd.args.len() == 2 => Some(n),
                _ => return self.error(r::usage("usage: TOP msg lines")),
            }
        } else if cmd.args.len() != 1 {
            return self.error(r::usage("usage: RETR msg"));
        } else {
            None
        };
        let State::Transaction(tx) = &mut self.state else {
            return Output::default();
        };
        let i = match pick(tx, cmd.args.first()) {
            Ok(i) => i,
            Err(e) => return self.fail(e),
        };
        let m = tx.drop.messages()[i];
        match tx.drop.read(m.uid) {
            Ok(data) => {
                let mut bytes = Reply::ok(format!("{} octets", m.size)).to_bytes();
                pop3::multiline(&mut bytes, &data, top);
                if top.is_none() {
                    tx.retrieved[i] = true;
                }
                simple(bytes)
            }
            Err(_) => self.refuse(r::cannot_read()),
        }
    }

    /// QUIT in TRANSACTION: the UPDATE state, then close.
    fn update(&mut self) -> Output {
        let State::Transaction(tx) = std::mem::replace(&mut self.state, State::Closed) else {
            return Output::default();
        };
        let mut tx = *tx;
        let msgs = tx.drop.messages().to_vec();
        let delete: Vec<u32> = msgs
            .iter()
            .zip(&tx.deleted)
            .filter(|(_, d)| **d)
            .map(|(m, _)| m.uid)
            .collect();
        let seen: Vec<u32> = msgs
            .iter()
            .zip(tx.retrieved.iter().zip(&tx.deleted))
            .filter(|(_, (r, d))| **r && !**d)
            .map(|(m, _)| m.uid)
            .collect();
        let bytes = match tx.drop.commit(&delete, &seen) {
            Ok(()) => Reply::ok(format!(
                "{} signing off ({} messages deleted)",
                self.tables.hostname,
                delete.len()
            ))
            .to_bytes(),
            Err(_) => r::commit_failed().to_bytes(),
        };
        tracing::info!(mailbox = %tx.mailbox, deleted = delete.len(), "POP3 session committed");
        Output {
            bytes,
            effect: None,
            close: true,
        }
    }
}

/// Why a command failed, which decides whether it counts as an error.
enum Failure {
    Malformed(Reply),
    Refused(Reply),
}

impl<E: Env> Session<E> {
    fn fail(&mut self, f: Failure) -> Output {
        match f {
            Failure::Malformed(reply) => self.error(reply),
            Failure::Refused(reply) => self.refuse(reply),
        }
    }
}

/// A message number argument → index into the maildrop. Only a missing
/// or non-numeric argument is malformed; a number naming no message
/// (however large) is a well-formed request that fails.
fn pick(tx: &Transaction, arg: Option<&String>) -> Result<usize, Failure> {
    let Some(a) = arg.filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit())) else {
        return Err(Failure::Malformed(r::invalid_number()));
    };
    let n: usize = a.parse().unwrap_or(usize::MAX);
    if n == 0 || n > tx.deleted.len() {
        return Err(Failure::Refused(r::no_such_message()));
    }
    if tx.deleted[n - 1] {
        return Err(Failure::Refused(r::message_deleted()));
    }
    Ok(n - 1)
}

fn simple(bytes: Vec<u8>) -> Output {
    Output {
        bytes,
        ..Output::default()
    }
}
