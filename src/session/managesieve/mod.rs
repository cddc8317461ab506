//! The ManageSieve session (RFC 5804) as a state machine without I/O:
//! capabilities, STARTTLS, SASL PLAIN and LOGIN, and the script commands.
//! Credentials are checked by the driver (an effect); scripts are reached
//! through the [`ScriptStorage`] trait, so the session never opens a file
//! itself. A script is compiled ([`crate::filter::compile`]) before it is
//! stored, and refused with its line number when it has an error. Quotas
//! (number of scripts, script size) come from the tables. Where each
//! command is allowed is one row of [`verbs::TABLE`]; responses come from
//! the catalogue in `proto::managesieve`.

use std::convert::Infallible;
use std::io::ErrorKind;
use std::sync::Arc;

mod protocol;
pub mod verbs;

pub use protocol::Driven;

use crate::proto::managesieve::{self as wire, Arg, Framed, Framer, Response, r};
use crate::proto::sasl::{self, Credentials, SaslError};
use crate::session::AuthOutcome;
use crate::session::protocol::{Effect, Step};
use crate::tables::{ListenerTable, Tables};
use verbs::Verb;

/// One user's scripts (implemented over `store::sieve::ScriptStore`).
/// Errors follow `std::io` kinds: `InvalidInput` for a name the store
/// refuses, `ResourceBusy` for deleting the active script,
/// `AlreadyExists` for renaming onto an existing one.
pub trait ScriptStorage: Send {
    /// Scripts by name, each with whether it is active.
    fn list(&self) -> std::io::Result<Vec<(String, bool)>>;
    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Creates or replaces a script, durably.
    fn put(&self, name: &str, text: &[u8]) -> std::io::Result<()>;
    /// `Ok(false)`: no such script.
    fn delete(&self, name: &str) -> std::io::Result<bool>;
    /// `Ok(false)`: no script `from`.
    fn rename(&self, from: &str, to: &str) -> std::io::Result<bool>;
    /// `None` deactivates; `Ok(false)`: no such script.
    fn set_active(&self, name: Option<&str>) -> std::io::Result<bool>;
}

/// What the session needs from outside.
pub trait Env {
    /// The scripts of a mailbox that has logged in.
    fn open(&self, mailbox: &str) -> Box<dyn ScriptStorage>;
}

/// Where a SASL exchange stands.
enum Sasl {
    Plain,
    LoginUser,
    LoginPass { user: String },
}

struct Authed {
    mailbox: String,
    scripts: Box<dyn ScriptStorage>,
}

enum State {
    NonAuth,
    Sasl(Sasl),
    WaitAuth,
    WaitTls,
    Auth(Box<Authed>),
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

type Out = Step<Infallible>;

fn out(bytes: Vec<u8>) -> Out {
    Step::bytes(bytes)
}

fn reply(resp: Response) -> Out {
    out(resp.to_bytes())
}

fn closing(bytes: Vec<u8>) -> Out {
    Step {
        bytes,
        effect: None,
        close: true,
    }
}

/// A script name argument: a string of 1–128 UTF-8 characters without
/// control characters (RFC 5804 §1.6); the store refuses the rest of what
/// cannot be one file name.
fn script_name(arg: Option<&Arg>) -> Result<String, Response> {
    let Some(bytes) = arg.and_then(Arg::as_str) else {
        return Err(r::usage("a script name (a string) is expected"));
    };
    match std::str::from_utf8(bytes) {
        Ok(s)
            if !s.is_empty()
                && s.chars().count() <= 128
                && !s
                    .chars()
                    .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') =>
        {
            Ok(s.to_string())
        }
        _ => Err(r::bad_name()),
    }
}

impl<E: Env> Session<E> {
    pub fn new(tables: Arc<Tables>, listener: ListenerTable, tls: bool, env: E) -> Session<E> {
        Session {
            tables,
            listener,
            env,
            state: State::NonAuth,
            tls,
            errors: 0,
        }
    }

    /// The capabilities, then `OK` (RFC 5804 §1.7).
    pub fn greeting(&self) -> Vec<u8> {
        let mut bytes = self.capabilities();
        Response::ok(format!("{} ManageSieve ready", self.tables.hostname)).write_to(&mut bytes);
        bytes
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn wants_input(&self) -> bool {
        !matches!(self.state, State::WaitAuth | State::WaitTls | State::Closed)
    }

    fn can_starttls(&self) -> bool {
        crate::session::can_starttls(&self.listener, self.tls)
    }

    fn login_allowed(&self) -> bool {
        crate::session::login_allowed(&self.listener, self.tls)
    }

    /// The largest script, bytes (the framer's literal limit too): the
    /// interpreter's, so a script accepted here is one delivery runs.
    pub fn max_script_size(&self) -> u64 {
        self.tables.sieve.max_script_size
    }

    fn capabilities(&self) -> Vec<u8> {
        let mut b = Vec::new();
        wire::capability(&mut b, "IMPLEMENTATION", Some("mailc"));
        let mechanisms = if self.login_allowed() {
            "PLAIN LOGIN"
        } else {
            ""
        };
        wire::capability(&mut b, "SASL", Some(mechanisms));
        wire::capability(&mut b, "SIEVE", Some(&crate::filter::EXTENSIONS.join(" ")));
        if self.can_starttls() && matches!(self.state, State::NonAuth) {
            wire::capability(&mut b, "STARTTLS", None);
        }
        wire::capability(
            &mut b,
            "MAXREDIRECTS",
            Some(&self.tables.sieve.max_redirects.to_string()),
        );
        wire::capability(&mut b, "NOTIFY", Some("mailto"));
        if let State::Auth(a) = &self.state {
            wire::capability(&mut b, "OWNER", Some(&a.mailbox));
        }
        wire::capability(&mut b, "UNAUTHENTICATE", None);
        wire::capability(&mut b, "VERSION", Some("1.0"));
        b
    }

    /// A malformed command or a protocol violation: counts toward the
    /// listener's error limit, which closes the session when exceeded.
    fn error(&mut self, resp: Response) -> Out {
        self.errors += 1;
        let mut bytes = resp.to_bytes();
        if self.errors > self.listener.max_errors {
            r::too_many_errors().write_to(&mut bytes);
            self.state = State::Closed;
            return closing(bytes);
        }
        out(bytes)
    }

    pub fn timeout(&mut self) -> Vec<u8> {
        self.state = State::Closed;
        r::timeout().to_bytes()
    }

    pub fn shutdown(&mut self) -> Vec<u8> {
        self.state = State::Closed;
        r::shutting_down().to_bytes()
    }

    /// Processes buffered input until more is needed, an effect must run, or
    /// the session ends. Consumed bytes are removed from `input`.
    pub fn process(&mut self, input: &mut Vec<u8>, framer: &mut Framer) -> Out {
        let mut acc = out(Vec::new());
        while self.wants_input() {
            let step = match framer.next(input) {
                Framed::Incomplete => break,
                Framed::Command(args) => self.input(args),
                Framed::Empty => self.malformed("empty command"),
                Framed::Invalid(why) => self.malformed(why),
                Framed::LineTooLong => {
                    self.abort_sasl();
                    self.error(r::line_too_long())
                }
                Framed::TooBig { verb } => self.too_big(verb.as_deref()),
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

    fn abort_sasl(&mut self) {
        if matches!(self.state, State::Sasl(_)) {
            self.state = State::NonAuth;
        }
    }

    fn malformed(&mut self, why: &'static str) -> Out {
        if matches!(self.state, State::Sasl(_)) {
            self.state = State::NonAuth;
            return self.error(r::auth_undecodable());
        }
        self.error(r::malformed(why))
    }

    /// A literal over the limit was skipped: for a script, the quota
    /// answer (the client did nothing wrong); otherwise an error.
    fn too_big(&mut self, verb: Option<&str>) -> Out {
        let script = verb
            .and_then(verbs::row_of)
            .is_some_and(|row| matches!(row.verb, Verb::PutScript | Verb::CheckScript));
        if script && matches!(self.state, State::Auth(_)) {
            return reply(r::script_too_big(self.max_script_size()));
        }
        self.abort_sasl();
        self.error(r::literal_too_big())
    }

    fn input(&mut self, args: Vec<Arg>) -> Out {
        if let State::Sasl(_) = self.state {
            let State::Sasl(step) = std::mem::replace(&mut self.state, State::NonAuth) else {
                return out(Vec::new());
            };
            return match args.as_slice() {
                [Arg::Str(s)] => self.sasl_response(step, s),
                _ => self.error(r::auth_undecodable()),
            };
        }
        let Some(Arg::Atom(name)) = args.first() else {
            return self.error(r::malformed("a command name is expected"));
        };
        let Some(row) = verbs::row_of(name) else {
            return self.error(r::unknown_command());
        };
        let authed = matches!(self.state, State::Auth(_));
        if !authed && !row.before {
            return self.error(r::log_in_first());
        }
        if authed && !row.after {
            return self.error(r::already_logged_in());
        }
        if row.login && !self.login_allowed() {
            return reply(if self.can_starttls() {
                r::login_needs_tls()
            } else {
                r::login_not_offered()
            });
        }
        let args = &args[1..];
        match row.verb {
            Verb::Capability => {
                let mut bytes = self.capabilities();
                r::ok().write_to(&mut bytes);
                out(bytes)
            }
            Verb::Logout => {
                self.state = State::Closed;
                closing(r::logout().to_bytes())
            }
            Verb::Noop => match args {
                [] => reply(r::done()),
                [Arg::Str(tag)] => {
                    let mut resp = r::done();
                    resp.tag = Some(tag.clone());
                    reply(resp)
                }
                _ => self.error(r::usage("usage: NOOP [tag]")),
            },
            Verb::StartTls => self.starttls(),
            Verb::Authenticate => self.authenticate(args),
            Verb::Unauthenticate => {
                self.state = State::NonAuth;
                reply(r::unauthenticated())
            }
            _ => self.script_command(row.verb, args),
        }
    }

    fn starttls(&mut self) -> Out {
        if self.tls {
            return reply(r::tls_active());
        }
        if !self.can_starttls() {
            return reply(r::starttls_unavailable());
        }
        self.state = State::WaitTls;
        Step {
            bytes: r::begin_tls().to_bytes(),
            effect: Some(Effect::StartTls),
            close: false,
        }
    }

    /// The TLS layer is up: capabilities again, then OK (RFC 5804 §2.2).
    pub fn tls_established(&mut self) -> Out {
        self.tls = true;
        self.state = State::NonAuth;
        let mut bytes = self.capabilities();
        Response::ok("TLS negotiation successful").write_to(&mut bytes);
        out(bytes)
    }

    fn authenticate(&mut self, args: &[Arg]) -> Out {
        let mechanism = match args.first() {
            Some(Arg::Str(m)) => String::from_utf8_lossy(m).into_owned(),
            Some(Arg::Atom(m)) => m.clone(),
            None => return self.error(r::usage("usage: AUTHENTICATE mechanism [response]")),
        };
        let initial = match args.get(1..) {
            Some([]) | None => None,
            Some([Arg::Str(s)]) => Some(s.clone()),
            Some(_) => return self.error(r::usage("usage: AUTHENTICATE mechanism [response]")),
        };
        match (sasl::Mechanism::parse(&mechanism), initial) {
            (Some(sasl::Mechanism::Plain), None) => {
                self.state = State::Sasl(Sasl::Plain);
                // An empty challenge (RFC 4616: the client starts).
                out(b"\"\"\r\n".to_vec())
            }
            (Some(sasl::Mechanism::Plain), Some(ir)) => self.sasl_response(Sasl::Plain, &ir),
            (Some(sasl::Mechanism::Login), None) => {
                self.state = State::Sasl(Sasl::LoginUser);
                challenge(b"Username:")
            }
            (Some(sasl::Mechanism::Login), Some(ir)) => self.sasl_response(Sasl::LoginUser, &ir),
            _ => reply(r::mechanism_unknown()),
        }
    }

    /// One client response of a SASL exchange (a string; `"*"` cancels).
    fn sasl_response(&mut self, step: Sasl, data: &[u8]) -> Out {
        self.state = State::NonAuth;
        if data == b"*" {
            return reply(r::auth_cancelled());
        }
        let text = String::from_utf8_lossy(data).into_owned();
        let credentials = match step {
            Sasl::Plain => sasl::decode_plain(&text),
            Sasl::LoginUser => {
                return match sasl::decode_text(&text) {
                    Ok(user) if !user.is_empty() => {
                        self.state = State::Sasl(Sasl::LoginPass { user });
                        challenge(b"Password:")
                    }
                    Ok(_) => self.sasl_error(SaslError::BadEncoding),
                    Err(e) => self.sasl_error(e),
                };
            }
            Sasl::LoginPass { user } => sasl::decode_text(&text).map(|password| Credentials {
                username: user,
                password,
            }),
        };
        match credentials {
            Ok(credentials) => {
                self.state = State::WaitAuth;
                Step {
                    bytes: Vec::new(),
                    effect: Some(Effect::Authenticate(credentials)),
                    close: false,
                }
            }
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Out {
        self.state = State::NonAuth;
        match e {
            SaslError::Cancelled => reply(r::auth_cancelled()),
            SaslError::BadEncoding => self.error(r::auth_undecodable()),
            SaslError::Authzid => self.error(r::auth_failed()),
        }
    }

    /// The result of checking credentials.
    pub fn auth_result(&mut self, outcome: AuthOutcome) -> Out {
        self.state = State::NonAuth;
        match outcome {
            AuthOutcome::Ok(mailbox) => {
                let scripts = self.env.open(&mailbox);
                self.state = State::Auth(Box::new(Authed { mailbox, scripts }));
                reply(r::logged_in())
            }
            // A failed login counts: it bounds the guesses one connection
            // makes, beside the lockout and the pause after each failure.
            AuthOutcome::Failed => self.error(r::auth_failed()),
            AuthOutcome::Locked => {
                self.state = State::Closed;
                closing(r::login_delay().to_bytes())
            }
            AuthOutcome::TempFail => reply(r::auth_tempfail()),
        }
    }
}

fn challenge(text: &[u8]) -> Out {
    let mut bytes = Vec::new();
    wire::write_string(&mut bytes, sasl::base64_encode(text).as_bytes());
    bytes.extend_from_slice(b"\r\n");
    out(bytes)
}

/// Why a script command failed, which decides whether it counts as an
/// error.
enum Failure {
    /// Not well-formed: counts toward the error limit.
    Malformed(Response),
    /// Well-formed but refused (quota, no such script, storage down).
    Refused(Response),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Refused(match e.kind() {
            ErrorKind::InvalidInput => r::bad_name(),
            ErrorKind::ResourceBusy => r::script_active(),
            ErrorKind::AlreadyExists => r::script_exists(),
            _ => {
                tracing::warn!(error = %e, "ManageSieve: script storage failed");
                r::storage_unavailable()
            }
        })
    }
}

fn name_arg(arg: Option<&Arg>) -> Result<String, Failure> {
    script_name(arg).map_err(Failure::Malformed)
}

impl<E: Env> Session<E> {
    fn script_command(&mut self, verb: Verb, args: &[Arg]) -> Out {
        let State::Auth(a) = &self.state else {
            return self.error(r::log_in_first());
        };
        let quota = Quota {
            max_scripts: self.tables.managesieve.max_scripts,
            max_script_size: self.tables.sieve.max_script_size,
        };
        // Compiled exactly as delivery compiles it.
        let compile = crate::compile::sieve::limits(&self.tables.sieve);
        let result = run_script_command(a.scripts.as_ref(), quota, &compile, verb, args);
        match result {
            Ok(bytes) => {
                if matches!(
                    verb,
                    Verb::PutScript | Verb::SetActive | Verb::DeleteScript | Verb::RenameScript
                ) {
                    let name = args.first().and_then(Arg::as_str).unwrap_or_default();
                    tracing::info!(
                        mailbox = %a.mailbox,
                        command = ?verb,
                        script = %String::from_utf8_lossy(name),
                        "ManageSieve: scripts changed"
                    );
                }
                out(bytes)
            }
            Err(Failure::Malformed(resp)) => self.error(resp),
            Err(Failure::Refused(resp)) => reply(resp),
        }
    }
}

/// The limits on one user's scripts.
#[derive(Debug, Clone, Copy)]
struct Quota {
    max_scripts: u32,
    max_script_size: u64,
}

/// Checks the arguments' count before anything else.
fn arity(args: &[Arg], n: usize, usage: &'static str) -> Result<(), Failure> {
    if args.len() == n {
        Ok(())
    } else {
        Err(Failure::Malformed(r::usage(usage)))
    }
}

/// Compiles a script as delivery will; the error names its line.
fn check(
    name: &str,
    text: &[u8],
    limits: Quota,
    compile: &crate::filter::Limits,
) -> Result<(), Failure> {
    if text.len() as u64 > limits.max_script_size {
        return Err(Failure::Refused(r::script_too_big(limits.max_script_size)));
    }
    if std::str::from_utf8(text).is_err() {
        return Err(Failure::Refused(r::not_utf8()));
    }
    crate::filter::compile(name, text, compile).map_err(|e| {
        // Clients show the text: the line first (0 when the engine knows
        // none).
        Failure::Refused(Response::no(if e.line > 0 {
            format!("line {}: {}", e.line, e.message)
        } else {
            e.message
        }))
    })?;
    Ok(())
}

/// Whether a script may be added under `name` (a new name counts toward
/// the number of scripts; replacing one does not).
fn room_for(scripts: &dyn ScriptStorage, name: &str, limits: Quota) -> Result<(), Failure> {
    let list = scripts.list()?;
    let exists = list.iter().any(|(n, _)| n == name);
    if !exists && list.len() >= limits.max_scripts as usize {
        return Err(Failure::Refused(r::too_many_scripts(limits.max_scripts)));
    }
    Ok(())
}

fn script_text(arg: Option<&Arg>) -> Result<&[u8], Failure> {
    arg.and_then(Arg::as_str)
        .ok_or_else(|| Failure::Malformed(r::usage("the script (a string) is expected")))
}

fn run_script_command(
    scripts: &dyn ScriptStorage,
    limits: Quota,
    compile: &crate::filter::Limits,
    verb: Verb,
    args: &[Arg],
) -> Result<Vec<u8>, Failure> {
    let done = || Ok(r::done().to_bytes());
    match verb {
        Verb::HaveSpace => {
            arity(args, 2, "usage: HAVESPACE name size")?;
            let name = name_arg(args.first())?;
            let size = match args.get(1) {
                Some(Arg::Atom(n)) => n.parse::<u64>().ok(),
                _ => None,
            }
            .ok_or(Failure::Malformed(r::bad_number()))?;
            if size > limits.max_script_size {
                return Err(Failure::Refused(r::script_too_big(limits.max_script_size)));
            }
            room_for(scripts, &name, limits)?;
            done()
        }
        Verb::PutScript => {
            arity(args, 2, "usage: PUTSCRIPT name script")?;
            let name = name_arg(args.first())?;
            let text = script_text(args.get(1))?;
            check(&name, text, limits, compile)?;
            room_for(scripts, &name, limits)?;
            scripts.put(&name, text)?;
            done()
        }
        Verb::CheckScript => {
            arity(args, 1, "usage: CHECKSCRIPT script")?;
            check("checkscript", script_text(args.first())?, limits, compile)?;
            done()
        }
        Verb::ListScripts => {
            arity(args, 0, "usage: LISTSCRIPTS")?;
            let mut bytes = Vec::new();
            for (name, active) in scripts.list()? {
                wire::write_string(&mut bytes, name.as_bytes());
                if active {
                    bytes.extend_from_slice(b" ACTIVE");
                }
                bytes.extend_from_slice(b"\r\n");
            }
            r::done().write_to(&mut bytes);
            Ok(bytes)
        }
        Verb::GetScript => {
            arity(args, 1, "usage: GETSCRIPT name")?;
            let name = name_arg(args.first())?;
            let text = scripts
                .get(&name)?
                .ok_or(Failure::Refused(r::no_such_script()))?;
            // Always a literal: a script has line ends.
            let mut bytes = format!("{{{}}}\r\n", text.len()).into_bytes();
            bytes.extend_from_slice(&text);
            bytes.extend_from_slice(b"\r\n");
            r::done().write_to(&mut bytes);
            Ok(bytes)
        }
        Verb::SetActive => {
            arity(args, 1, "usage: SETACTIVE name")?;
            // The empty name deactivates (RFC 5804 §2.8).
            if args.first().and_then(Arg::as_str) == Some(b"") {
                scripts.set_active(None)?;
                return done();
            }
            let name = name_arg(args.first())?;
            if !scripts.set_active(Some(&name))? {
                return Err(Failure::Refused(r::no_such_script()));
            }
            done()
        }
        Verb::DeleteScript => {
            arity(args, 1, "usage: DELETESCRIPT name")?;
            let name = name_arg(args.first())?;
            if !scripts.delete(&name)? {
                return Err(Failure::Refused(r::no_such_script()));
            }
            done()
        }
        Verb::RenameScript => {
            arity(args, 2, "usage: RENAMESCRIPT old new")?;
            let from = name_arg(args.first())?;
            let to = name_arg(args.get(1))?;
            if !scripts.rename(&from, &to)? {
                return Err(Failure::Refused(r::no_such_script()));
            }
            done()
        }
        // The other verbs are handled before.
        _ => Err(Failure::Malformed(r::unknown_command())),
    }
}

#[cfg(test)]
mod tests;
