//! The POP3 session (RFC 1939, CAPA of RFC 2449, STLS of RFC 2595, AUTH of
//! RFC 5034, response codes of RFC 3206) as a state machine without I/O.
//! Credentials are checked by the driver (an effect); the maildrop is reached
//! through the [`Maildrop`] trait, so the session never opens a file itself.
//! Deletions happen only in the UPDATE state after QUIT: a dropped
//! connection deletes nothing.

use std::sync::Arc;

use crate::proto::pop3::{self, Command, err, ok};
use crate::proto::sasl::{self, Credentials, Mechanism, SaslError};
use crate::proto::smtp::line::{Framed, LineFramer, trim_line_end};
use crate::session::smtp::AuthOutcome;
use crate::tables::{ListenerKind, Tables};

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
    kind: ListenerKind,
    local: std::net::SocketAddr,
    env: E,
    state: State,
    tls: bool,
    errors: u32,
}

impl<E: Env> Session<E> {
    pub fn new(
        tables: Arc<Tables>,
        kind: ListenerKind,
        local: std::net::SocketAddr,
        tls: bool,
        env: E,
    ) -> Session<E> {
        Session {
            tables,
            kind,
            local,
            env,
            state: State::Authorization { user: None },
            tls,
            errors: 0,
        }
    }

    pub fn greeting(&self) -> Output {
        Output {
            bytes: ok(&format!("{} POP3 mailc ready", self.tables.hostname)),
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
        crate::session::can_starttls(&self.tables, self.kind, self.local, self.tls)
    }

    fn login_allowed(&self) -> bool {
        crate::session::login_allowed(&self.tables, self.kind, self.local, self.tls)
    }

    fn error(&mut self, text: &str) -> Output {
        self.errors += 1;
        let mut bytes = err(text);
        if self.errors > self.tables.limits.max_errors {
            bytes.extend_from_slice(&err("too many errors, closing connection"));
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

    pub fn timeout(&mut self) -> Output {
        // A dropped session deletes nothing: no UPDATE state.
        self.state = State::Closed;
        Output {
            bytes: err("[SYS/TEMP] autologout: idle too long"),
            effect: None,
            close: true,
        }
    }

    pub fn shutdown(&mut self) -> Output {
        self.state = State::Closed;
        Output {
            bytes: err("[SYS/TEMP] server shutting down, try again later"),
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
                    self.error("line too long")
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
            return self.error("empty command");
        };
        match &self.state {
            State::Authorization { .. } => self.authorization(cmd),
            State::Transaction(_) => self.transaction(cmd),
            _ => self.error("unexpected input"),
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
        let mut bytes = ok("capability list follows");
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

    fn authorization(&mut self, cmd: Command) -> Output {
        match cmd.verb.as_str() {
            "CAPA" => self.capa(),
            "QUIT" => {
                self.state = State::Closed;
                Output {
                    bytes: ok(&format!("{} signing off", self.tables.hostname)),
                    effect: None,
                    close: true,
                }
            }
            "NOOP" => Output {
                bytes: ok(""),
                ..Output::default()
            },
            "STLS" => {
                if self.tls {
                    return self.error("TLS already active");
                }
                if !self.can_stls() {
                    return self.error("STLS not available here");
                }
                self.state = State::WaitTls;
                Output {
                    bytes: ok("begin TLS negotiation"),
                    effect: Some(Effect::StartTls),
                    close: false,
                }
            }
            "USER" | "PASS" | "AUTH" if !self.login_allowed() => {
                if self.can_stls() {
                    self.error("[AUTH] plaintext login is disabled: use STLS first")
                } else {
                    self.error("[AUTH] login is not offered here")
                }
            }
            "USER" => match cmd.args.as_slice() {
                [user] => {
                    self.state = State::Authorization {
                        user: Some(user.clone()),
                    };
                    Output {
                        bytes: ok("send PASS"),
                        ..Output::default()
                    }
                }
                _ => self.error("usage: USER name"),
            },
            "PASS" => {
                let State::Authorization { user: Some(user) } = &self.state else {
                    return self.error("send USER first");
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
            "AUTH" => match cmd.args.as_slice() {
                [] => {
                    let mut bytes = ok("SASL mechanisms follow");
                    bytes.extend_from_slice(b"PLAIN\r\nLOGIN\r\n.\r\n");
                    Output {
                        bytes,
                        ..Output::default()
                    }
                }
                [mech, rest @ ..] => match (Mechanism::parse(mech), rest) {
                    (Some(Mechanism::Plain), []) => {
                        self.state = State::AuthPlain;
                        Output {
                            bytes: b"+ \r\n".to_vec(),
                            ..Output::default()
                        }
                    }
                    (Some(Mechanism::Plain), [ir]) => self.sasl_plain(ir.as_bytes()),
                    (Some(Mechanism::Login), []) => {
                        self.state = State::AuthLoginUser;
                        Output {
                            bytes: format!("+ {}\r\n", sasl::base64_encode(b"Username:"))
                                .into_bytes(),
                            ..Output::default()
                        }
                    }
                    (Some(Mechanism::Login), [ir]) => self.sasl_login_user(ir.as_bytes()),
                    _ => self.error("unrecognized authentication mechanism"),
                },
            },
            "APOP" => self.error("APOP is not supported: use USER/PASS or AUTH over TLS"),
            "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET" => {
                self.error("log in first")
            }
            _ => self.error("unknown command"),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Output {
        self.state = State::Authorization { user: None };
        match e {
            SaslError::Cancelled => self.error("authentication cancelled"),
            SaslError::BadEncoding => self.error("cannot decode the authentication data"),
            SaslError::Authzid => self.error("[AUTH] authentication failed"),
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
                    Output {
                        bytes: ok(&format!("logged in, {n} messages ({size} octets)")),
                        ..Output::default()
                    }
                }
                Err(OpenError::InUse) => {
                    self.error("[IN-USE] the maildrop is already in use by another POP3 session")
                }
                Err(OpenError::Unavailable(_)) => {
                    self.error("[SYS/TEMP] the maildrop cannot be opened now, try again later")
                }
            },
            AuthOutcome::Failed => self.error("[AUTH] authentication failed"),
            AuthOutcome::Locked => {
                self.state = State::Closed;
                Output {
                    bytes: err("[LOGIN-DELAY] too many failed logins, try again later"),
                    effect: None,
                    close: true,
                }
            }
            AuthOutcome::TempFail => self.error("[SYS/TEMP] temporary authentication failure"),
        }
    }

    pub fn tls_established(&mut self) -> Output {
        self.tls = true;
        self.state = State::Authorization { user: None };
        Output::default()
    }

    fn transaction(&mut self, cmd: Command) -> Output {
        let State::Transaction(tx) = &mut self.state else {
            return Output::default();
        };
        // Message number argument → index, for commands that take one.
        let pick = |tx: &Transaction, arg: Option<&String>| -> Result<usize, &'static str> {
            let n: usize = arg
                .and_then(|a| a.parse().ok())
                .ok_or("invalid message number")?;
            if n == 0 || n > tx.deleted.len() {
                return Err("no such message");
            }
            if tx.deleted[n - 1] {
                return Err("message is deleted");
            }
            Ok(n - 1)
        };
        let simple = |bytes: Vec<u8>| Output {
            bytes,
            ..Output::default()
        };
        match cmd.verb.as_str() {
            "CAPA" => self.capa(),
            "NOOP" => simple(ok("")),
            "STAT" => {
                let msgs = tx.drop.messages();
                let (n, size) = msgs
                    .iter()
                    .zip(&tx.deleted)
                    .filter(|(_, d)| !**d)
                    .fold((0, 0u64), |(n, s), (m, _)| (n + 1, s + m.size));
                simple(ok(&format!("{n} {size}")))
            }
            "LIST" | "UIDL" => {
                let uidl = cmd.verb == "UIDL";
                let validity = tx.drop.uidvalidity();
                let item = |i: usize, m: &DropMessage| {
                    if uidl {
                        format!("{} {validity:08x}{:08x}", i + 1, m.uid)
                    } else {
                        format!("{} {}", i + 1, m.size)
                    }
                };
                match cmd.args.first() {
                    Some(_) => match pick(tx, cmd.args.first()) {
                        Ok(i) => simple(ok(&item(i, &tx.drop.messages()[i]))),
                        Err(e) => self.error(e),
                    },
                    None => {
                        let mut bytes = ok("listing follows");
                        for (i, m) in tx.drop.messages().iter().enumerate() {
                            if !tx.deleted[i] {
                                bytes.extend_from_slice(item(i, m).as_bytes());
                                bytes.extend_from_slice(b"\r\n");
                            }
                        }
                        bytes.extend_from_slice(b".\r\n");
                        simple(bytes)
                    }
                }
            }
            "RETR" | "TOP" => {
                let i = match pick(tx, cmd.args.first()) {
                    Ok(i) => i,
                    Err(e) => return self.error(e),
                };
                let top = if cmd.verb == "TOP" {
                    match cmd.args.get(1).and_then(|a| a.parse::<usize>().ok()) {
                        Some(n) if cmd.args.len() == 2 => Some(n),
                        _ => return self.error("usage: TOP msg lines"),
                    }
                } else if cmd.args.len() != 1 {
                    return self.error("usage: RETR msg");
                } else {
                    None
                };
                let m = tx.drop.messages()[i];
                match tx.drop.read(m.uid) {
                    Ok(data) => {
                        let mut bytes = ok(&format!("{} octets", m.size));
                        pop3::multiline(&mut bytes, &data, top);
                        if top.is_none() {
                            tx.retrieved[i] = true;
                        }
                        simple(bytes)
                    }
                    Err(_) => self.error("[SYS/TEMP] cannot read the message now"),
                }
            }
            "DELE" => match pick(tx, cmd.args.first()) {
                Ok(i) => {
                    tx.deleted[i] = true;
                    simple(ok(&format!("message {} deleted", i + 1)))
                }
                Err(e) => self.error(e),
            },
            "RSET" => {
                tx.deleted.iter_mut().for_each(|d| *d = false);
                let n = tx.deleted.len();
                simple(ok(&format!("maildrop has {n} messages")))
            }
            "QUIT" => {
                let State::Transaction(tx) = std::mem::replace(&mut self.state, State::Closed)
                else {
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
                    Ok(()) => ok(&format!(
                        "{} signing off ({} messages deleted)",
                        self.tables.hostname,
                        delete.len()
                    )),
                    Err(_) => err("[SYS/TEMP] some deleted messages were not removed"),
                };
                tracing::info!(mailbox = %tx.mailbox, deleted = delete.len(), "POP3 session committed");
                Output {
                    bytes,
                    effect: None,
                    close: true,
                }
            }
            "USER" | "PASS" | "AUTH" | "STLS" | "APOP" => self.error("already logged in"),
            _ => self.error("unknown command"),
        }
    }
}
