//! The IMAP session (RFC 9051 and RFC 3501 with the extensions listed in
//! [`Session::capabilities`]) as a state machine without I/O. The mail
//! store is reached through the [`Store`] trait and credentials are
//! checked by the driver (an effect), so the session never opens a file or
//! a socket itself.
//!
//! The session keeps its own view of the selected mailbox (sequence
//! numbers → UIDs, flags, MODSEQs) and reports what others changed
//! (EXISTS, EXPUNGE or VANISHED, FETCH FLAGS) at the points the protocol
//! allows: expunges are never reported during FETCH, STORE or SEARCH by
//! sequence number, so numbers a client holds stay valid.
//!
//! Layout: this file holds the state, the driver's interface and the one
//! dispatch over the verb table ([`verbs`]); each command group has its
//! file (`auth.rs`, `mailbox.rs`, `select.rs`, `fetch.rs`, `store.rs`,
//! `append.rs`, `query.rs`, `quota.rs`, `idle.rs`), the selected
//! mailbox's view is in `view.rs` and the store interface in `backend.rs`.
//! Every status line is a typed
//! [`Response`](crate::proto::imap::response::Response).

mod append;
mod auth;
mod backend;
mod fetch;
mod idle;
mod mailbox;
pub mod mime;
mod protocol;
mod query;
mod quota;
mod response;
pub mod search;
mod select;
mod store;
#[cfg(test)]
mod tests;
pub mod verbs;
mod view;

use std::sync::Arc;

use crate::proto::imap::framer::{Framed, Framer};
use crate::proto::imap::parse::{self, ParseError};
use crate::proto::imap::response::{Code, Response, r};
use crate::proto::imap::{Body, Command};
use crate::proto::sasl::Credentials;
use crate::tables::{ListenerTable, Tables};

pub use backend::{Env, FlagResult, FolderState, MsgMeta, Peek, Recent, Store, StoreError};
pub use mailbox::{SPECIAL_USE, valid_name};
pub use view::{CompactMeta, Flags};

use view::Mailbox;

#[derive(Debug)]
pub enum Effect {
    /// Write the output, drop buffered input, handshake, then call
    /// [`Session::tls_established`].
    StartTls,
    /// Check credentials, then call [`Session::auth_result`].
    Authenticate { credentials: Credentials },
}

#[derive(Debug, Default)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub effect: Option<Effect>,
    pub close: bool,
}

impl Output {
    fn bytes(bytes: Vec<u8>) -> Output {
        Output {
            bytes,
            ..Output::default()
        }
    }
}

/// What a command handler returns: its output (tagged status included), or
/// the tagged refusal the dispatch writes and counts.
type Handled = Result<Output, Refused>;

/// A command refused, after the mailbox updates it had already taken from
/// the store (they are sent before the refusal, so the client's view and
/// the session's stay the same).
struct Refused {
    before: Vec<u8>,
    response: Response,
}

impl From<Response> for Refused {
    fn from(response: Response) -> Refused {
        Refused {
            before: Vec::new(),
            response,
        }
    }
}

/// The end of a command that brought the view up to date first: `out`
/// holds those updates, and on success everything else.
fn after_updates(out: Vec<u8>, result: Result<(), Response>) -> Handled {
    match result {
        Ok(()) => Ok(Output::bytes(out)),
        Err(response) => Err(Refused {
            before: out,
            response,
        }),
    }
}

/// Longest command line (literals excluded).
pub const MAX_LINE: usize = 64 * 1024;

/// The largest message APPEND accepts.
pub fn append_limit(tables: &Tables) -> u64 {
    tables
        .inbound
        .max_message_size
        .max(tables.submission.max_message_size)
}

/// Where the session is (RFC 9051 §3). Each state holds only what is valid
/// in it: the store exists once a user has logged in, the mailbox view
/// once one is selected.
enum State {
    NotAuthenticated(Login),
    Authenticated(Account),
    /// Boxed: a view is large, and most of a session's life is spent here.
    Selected(Account, Box<Mailbox>),
    Logout,
}

/// The steps of logging in.
enum Login {
    /// Waiting for a command.
    Ready,
    /// AUTHENTICATE PLAIN waits for the client's response line.
    AuthPlain { tag: String },
    /// AUTHENTICATE LOGIN waits for the user name.
    AuthLoginUser { tag: String },
    /// AUTHENTICATE LOGIN waits for the password.
    AuthLoginPass { tag: String, user: String },
    /// The driver is checking credentials ([`Effect::Authenticate`]).
    WaitAuth { tag: String },
    /// The driver is doing the TLS handshake ([`Effect::StartTls`]).
    WaitTls,
}

/// A logged-in user.
struct Account {
    user: String,
    store: Box<dyn Store>,
    ext: Enabled,
    /// The tag of an IDLE in progress.
    idle: Option<String>,
}

/// Extensions the client turned on (ENABLE, or implicitly by using them).
#[derive(Debug, Clone, Copy, Default)]
struct Enabled {
    utf8: bool,
    rev2: bool,
    condstore: bool,
    qresync: bool,
}

impl State {
    /// The logged-in user and, if one is selected, the mailbox view.
    fn logged_in(&mut self) -> Result<(&mut Account, Option<&mut Mailbox>), Response> {
        match self {
            State::Authenticated(a) => Ok((a, None)),
            State::Selected(a, m) => Ok((a, Some(&mut **m))),
            _ => Err(r::log_in_first()),
        }
    }

    fn selected(&mut self) -> Result<(&mut Account, &mut Mailbox), Response> {
        match self {
            State::Selected(a, m) => Ok((a, m)),
            _ => Err(r::no_mailbox_selected()),
        }
    }

    fn account(&self) -> Option<&Account> {
        match self {
            State::Authenticated(a) | State::Selected(a, _) => Some(a),
            _ => None,
        }
    }

    fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            State::Selected(_, m) => Some(m),
            _ => None,
        }
    }

    /// Leaves the selected mailbox, keeping the login.
    fn deselect(&mut self) -> Option<Mailbox> {
        match std::mem::replace(self, State::Logout) {
            State::Selected(a, m) => {
                *self = State::Authenticated(a);
                Some(*m)
            }
            other => {
                *self = other;
                None
            }
        }
    }
}

pub struct Session<E: Env> {
    tables: Arc<Tables>,
    listener: ListenerTable,
    env: E,
    state: State,
    tls: bool,
    /// Protocol errors (BAD) so far.
    errors: u32,
    framer: Framer,
    now: fn() -> i64,
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl<E: Env> Session<E> {
    pub fn new(tables: Arc<Tables>, listener: ListenerTable, tls: bool, env: E) -> Session<E> {
        let limit = append_limit(&tables);
        Session {
            framer: Framer::new(MAX_LINE, limit, limit as usize + MAX_LINE),
            tables,
            listener,
            env,
            state: State::NotAuthenticated(Login::Ready),
            tls,
            errors: 0,
            now: system_now,
        }
    }

    /// BAD responses tolerated before the connection is closed (decided
    /// per listener by the compiler).
    fn max_errors(&self) -> u32 {
        self.listener.max_errors
    }

    /// For tests: a fixed clock.
    pub fn set_clock(&mut self, now: fn() -> i64) {
        self.now = now;
    }

    pub fn user(&self) -> Option<&str> {
        self.state.account().map(|a| a.user.as_str())
    }

    /// The selected mailbox, for the driver's change notifications.
    pub fn selected(&self) -> Option<&str> {
        self.state.mailbox().map(|m| m.name.as_str())
    }

    pub fn greeting(&self) -> Output {
        let text = format!("{} IMAP mailc ready", self.tables.hostname);
        Output::bytes(Response::ok_code(Code::Capability(self.capabilities()), text).untagged())
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Logout)
    }

    pub fn is_idle(&self) -> bool {
        self.state.account().is_some_and(|a| a.idle.is_some())
    }

    /// Whether a long FETCH has more output to produce.
    pub fn has_pending(&self) -> bool {
        self.state.mailbox().is_some_and(|m| m.pending.is_some())
    }

    pub fn wants_input(&self) -> bool {
        !matches!(
            self.state,
            State::NotAuthenticated(Login::WaitAuth { .. } | Login::WaitTls) | State::Logout
        ) && !self.has_pending()
    }

    /// Whether input is a raw line (an AUTHENTICATE response, IDLE's DONE)
    /// rather than a command.
    fn reads_lines(&self) -> bool {
        match &self.state {
            State::NotAuthenticated(login) => matches!(
                login,
                Login::AuthPlain { .. } | Login::AuthLoginUser { .. } | Login::AuthLoginPass { .. }
            ),
            _ => self.is_idle(),
        }
    }

    pub fn timeout(&mut self) -> Output {
        self.fatal(r::timeout())
    }

    pub fn shutdown(&mut self) -> Output {
        self.fatal(r::shutting_down())
    }

    // ---- input ----

    /// Processes buffered input until more is needed, an effect must run,
    /// the session ends, or a long FETCH has a chunk ready.
    pub fn process(&mut self, input: &mut Vec<u8>) -> Output {
        let mut acc = Output::default();
        if self.has_pending() {
            self.continue_fetch(&mut acc.bytes);
            self.end_if_stale(&mut acc);
            if self.has_pending() || acc.close {
                return acc;
            }
        }
        while self.wants_input() {
            let mut step = if self.reads_lines() {
                match self.framer.next_line(input) {
                    None => break,
                    Some(Err(())) => self.fatal(Response::bye("Line too long")),
                    Some(Ok(line)) => self.raw_line(&line),
                }
            } else {
                match self.framer.next(input) {
                    None => break,
                    Some(Framed::Continue) => {
                        Output::bytes(b"+ Ready for literal data\r\n".to_vec())
                    }
                    Some(Framed::Reject {
                        tag,
                        toobig,
                        text,
                        close,
                    }) => self.reject(&tag, toobig, text, close),
                    Some(Framed::Command(bytes)) => self.command_bytes(&bytes),
                }
            };
            self.end_if_stale(&mut step);
            acc.bytes.extend_from_slice(&step.bytes);
            acc.close |= step.close;
            if step.effect.is_some() || step.close || self.has_pending() {
                acc.effect = step.effect;
                break;
            }
        }
        acc
    }

    /// A command the framer refused before it was complete.
    fn reject(&mut self, tag: &str, toobig: bool, text: &'static str, close: bool) -> Output {
        let response = if toobig {
            Response::no(Code::TooBig, text)
        } else {
            Response::bad(text)
        };
        let mut o = self.error_output(tag, response);
        if close {
            r::stream_lost().write_untagged(&mut o.bytes);
            o.close = true;
            self.state = State::Logout;
        }
        o
    }

    /// A folder recreated under the selected mailbox ends the session
    /// (its BYE is already written).
    fn end_if_stale(&mut self, out: &mut Output) {
        if self.state.mailbox().is_some_and(|m| m.stale) {
            self.state = State::Logout;
            out.close = true;
        }
    }

    fn fatal(&mut self, bye: Response) -> Output {
        self.state = State::Logout;
        Output {
            bytes: bye.untagged(),
            effect: None,
            close: true,
        }
    }

    /// A tagged failure. Only protocol errors (BAD) count towards the
    /// limit; NO is an ordinary answer.
    fn error_output(&mut self, tag: &str, response: Response) -> Output {
        if response.is_bad() {
            self.errors += 1;
        }
        let mut bytes = response.tagged(tag);
        let mut close = false;
        if self.errors > self.max_errors() {
            r::too_many_errors().write_untagged(&mut bytes);
            self.state = State::Logout;
            close = true;
        }
        Output {
            bytes,
            effect: None,
            close,
        }
    }

    fn command_bytes(&mut self, bytes: &[u8]) -> Output {
        match parse::command(bytes) {
            Ok(cmd) => self.command(cmd),
            Err(ParseError { tag, message }) => {
                let tag = tag.as_deref().unwrap_or("*");
                self.error_output(tag, Response::bad(format!("Syntax error: {message}")))
            }
        }
    }

    /// The one dispatch: the verb table says where a command is allowed,
    /// then the command's handler runs.
    fn command(&mut self, cmd: Command) -> Output {
        let Command { tag, body } = cmd;
        let row = verbs::row_of(verbs::verb_of(&body));
        let handled = match self.refusal(row) {
            Some(refusal) => Err(refusal.into()),
            None => self.run(&tag, body),
        };
        handled.unwrap_or_else(|refused| {
            let mut o = self.error_output(&tag, refused.response);
            if !refused.before.is_empty() {
                let mut bytes = refused.before;
                bytes.append(&mut o.bytes);
                o.bytes = bytes;
            }
            o
        })
    }

    /// Why a command is not allowed in the current state.
    fn refusal(&self, row: &verbs::Row) -> Option<Response> {
        match &self.state {
            State::NotAuthenticated(_) if !row.before_login => Some(r::log_in_first()),
            State::Authenticated(_) | State::Selected(..) if !row.after_login => {
                Some(r::already_authenticated())
            }
            State::Authenticated(_) if row.needs_selected => Some(r::no_mailbox_selected()),
            _ => None,
        }
    }

    fn run(&mut self, tag: &str, body: Body) -> Handled {
        match body {
            Body::Capability => Ok(self.capability(tag)),
            Body::Noop => Ok(self.finish(tag, r::completed("NOOP"))),
            Body::Logout => Ok(self.logout(tag)),
            Body::Id(_) => Ok(self.id(tag)),
            Body::StartTls => self.starttls(tag),
            Body::Login { user, pass } => self.login(tag, user, pass),
            Body::Authenticate { mechanism, initial } => {
                self.authenticate(tag, &mechanism, initial)
            }
            Body::Enable(caps) => {
                let (a, _) = self.state.logged_in()?;
                Ok(a.enable(tag, caps))
            }
            Body::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => self.select(tag, &mailbox, read_only, condstore, qresync),
            Body::Create(m) => {
                let (a, mb) = self.state.logged_in()?;
                a.mailbox_op(mb, tag, &m, "CREATE", |s, n| s.create(n))
            }
            Body::Delete(m) => self.delete(tag, &m),
            Body::Rename(from, to) => {
                let (a, mb) = self.state.logged_in()?;
                a.rename(mb, tag, &from, &to)
            }
            Body::Subscribe(m) => {
                let (a, mb) = self.state.logged_in()?;
                a.mailbox_op(mb, tag, &m, "SUBSCRIBE", |s, n| s.subscribe(n, true))
            }
            Body::Unsubscribe(m) => {
                let (a, mb) = self.state.logged_in()?;
                a.mailbox_op(mb, tag, &m, "UNSUBSCRIBE", |s, n| s.subscribe(n, false))
            }
            Body::List {
                reference,
                patterns,
                options,
            } => {
                let (a, mb) = self.state.logged_in()?;
                a.list(mb, tag, &reference, &patterns, &options, false)
            }
            Body::Lsub { reference, pattern } => {
                let options = crate::proto::imap::ListOptions {
                    subscribed: true,
                    ..Default::default()
                };
                let (a, mb) = self.state.logged_in()?;
                a.list(mb, tag, &reference, &[pattern], &options, true)
            }
            Body::Namespace => {
                let (a, mb) = self.state.logged_in()?;
                let out = b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n".to_vec();
                Ok(a.finish(out, mb, tag, r::completed("NAMESPACE"), true))
            }
            Body::Status { mailbox, items } => {
                let (a, mb) = self.state.logged_in()?;
                a.status(mb, tag, &mailbox, &items)
            }
            Body::Append { mailbox, messages } => {
                let limit = append_limit(&self.tables);
                let (a, mb) = self.state.logged_in()?;
                a.append(mb, tag, &mailbox, messages, limit)
            }
            Body::Idle => {
                let (a, mb) = self.state.logged_in()?;
                Ok(a.idle(mb, tag))
            }
            Body::GetQuotaRoot(m) => {
                let (a, mb) = self.state.logged_in()?;
                a.get_quota_root(mb, tag, &m)
            }
            Body::GetQuota(root) => {
                let (a, mb) = self.state.logged_in()?;
                a.get_quota(mb, tag, &root)
            }
            Body::SetQuota => {
                Err(Response::no(Code::NoPerm, "Quotas are set in the server configuration").into())
            }
            Body::Check => {
                let (a, mb) = self.state.selected()?;
                Ok(a.finish(Vec::new(), Some(mb), tag, r::completed("CHECK"), true))
            }
            Body::Close => self.close(tag, true),
            Body::Unselect => self.close(tag, false),
            Body::Expunge(uids) => {
                let (a, mb) = self.state.selected()?;
                a.expunge(mb, tag, uids.as_ref())
            }
            Body::Search {
                uid,
                ret,
                charset,
                key,
            } => {
                let now = (self.now)();
                let (a, mb) = self.state.selected()?;
                a.search(mb, tag, uid, ret, charset.as_deref(), &key, now)
            }
            Body::Sort {
                uid,
                ret,
                criteria,
                charset,
                key,
            } => {
                let now = (self.now)();
                let (a, mb) = self.state.selected()?;
                let order = query::Order::Sort(criteria, ret);
                a.sort_or_thread(mb, tag, uid, order, &charset, &key, now)
            }
            Body::Thread {
                uid,
                algorithm,
                charset,
                key,
            } => {
                let now = (self.now)();
                let (a, mb) = self.state.selected()?;
                let order = query::Order::Thread(algorithm);
                a.sort_or_thread(mb, tag, uid, order, &charset, &key, now)
            }
            Body::Fetch {
                uid,
                set,
                items,
                changedsince,
                vanished,
            } => {
                let (a, mb) = self.state.selected()?;
                a.fetch(mb, tag, uid, &set, items, changedsince, vanished)
            }
            Body::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchangedsince,
            } => {
                let (a, mb) = self.state.selected()?;
                let change = store::FlagChange {
                    mode,
                    silent,
                    flags: &flags,
                    unchangedsince,
                };
                a.store_flags(mb, tag, uid, &set, change)
            }
            Body::Copy {
                uid,
                set,
                mailbox,
                is_move,
            } => {
                let (a, mb) = self.state.selected()?;
                a.copy(mb, tag, uid, &set, &mailbox, is_move)
            }
        }
    }

    /// The tagged completion of a command valid in any state, preceded by
    /// the selected mailbox's updates.
    fn finish(&mut self, tag: &str, done: Response) -> Output {
        match self.state.logged_in() {
            Ok((a, mb)) => a.finish(Vec::new(), mb, tag, done, true),
            Err(_) => Output::bytes(done.tagged(tag)),
        }
    }

    fn logout(&mut self, tag: &str) -> Output {
        self.state = State::Logout;
        let mut bytes = r::logging_out().untagged();
        r::completed("LOGOUT").write_tagged(&mut bytes, tag);
        Output {
            bytes,
            effect: None,
            close: true,
        }
    }

    /// Updates for an IDLE client (the driver calls this when the mailbox
    /// may have changed, and on a timer).
    pub fn poll(&mut self) -> Output {
        let mut out = Output::default();
        if let Ok((a, Some(mb))) = self.state.logged_in()
            && a.idle.is_some()
        {
            a.refresh(mb, &mut out.bytes, true);
        }
        self.end_if_stale(&mut out);
        out
    }
}

impl Account {
    /// The tagged completion, preceded by mailbox updates when a mailbox is
    /// selected (`expunges`: whether EXPUNGE may be sent now).
    fn finish(
        &mut self,
        mut out: Vec<u8>,
        mb: Option<&mut Mailbox>,
        tag: &str,
        done: Response,
        expunges: bool,
    ) -> Output {
        if let Some(mb) = mb {
            self.refresh(mb, &mut out, expunges);
        }
        done.write_tagged(&mut out, tag);
        Output::bytes(out)
    }

    /// [`Account::finish`] for a selected-state command writing into `out`.
    fn complete(
        &mut self,
        mb: &mut Mailbox,
        out: &mut Vec<u8>,
        tag: &str,
        done: Response,
        expunges: bool,
    ) {
        self.refresh(mb, out, expunges);
        done.write_tagged(out, tag);
    }
}
