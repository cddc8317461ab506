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

pub mod mime;
pub mod search;

use std::collections::HashSet;
use std::sync::Arc;

use crate::proto::imap::encode::{self, seq_set, string};
use crate::proto::imap::framer::{Framed, Framer};
use crate::proto::imap::parse::{self, ParseError};
use crate::proto::imap::{
    AppendMessage, Body, Command, FetchAtt, ListOptions, QresyncParams, SearchKey, SearchReturn,
    Section, SectionText, SeqSet, StatusItem, StoreMode, ThreadAlgorithm, date, mutf7,
};
use crate::proto::sasl::{self, Credentials, SaslError};
use crate::session::AuthOutcome;
use crate::tables::{ListenerKind, Tables};

/// A message as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgMeta {
    pub uid: u32,
    /// System flags (`\Seen`) and keywords.
    pub flags: Vec<String>,
    pub modseq: u64,
    /// RFC822.SIZE: octets with CRLF line ends.
    pub size: u64,
    /// Unix time.
    pub internal_date: i64,
}

/// A folder brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// Sorted by UID.
    pub messages: Vec<MsgMeta>,
    /// UIDs this sync found in `new/` (the \Recent flag).
    pub recent: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    Exists,
    /// The name cannot be a mailbox (path escape, bad characters, INBOX).
    Invalid(String),
    OverQuota,
    /// The operation is refused (deleting INBOX, say).
    Refused(String),
    Io(String),
}

/// A folder's counters after a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    pub uidvalidity: u32,
    pub highestmodseq: u64,
    pub count: usize,
    pub recent: Vec<u32>,
}

/// Result of a flag change: messages changed, and UIDs left alone because
/// they were modified after UNCHANGEDSINCE.
#[derive(Debug, Clone, Default)]
pub struct FlagResult {
    pub changed: Vec<MsgMeta>,
    pub modified: Vec<u32>,
}

/// One user's mailboxes. Names are UTF-8 with `/` as the hierarchy
/// separator; `INBOX` is the inbox.
pub trait Store: Send {
    fn folders(&mut self) -> Result<Vec<String>, StoreError>;
    fn create(&mut self, name: &str) -> Result<(), StoreError>;
    fn delete(&mut self, name: &str) -> Result<(), StoreError>;
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StoreError>;
    fn subscriptions(&mut self) -> Vec<String>;
    fn subscribe(&mut self, name: &str, on: bool) -> Result<(), StoreError>;
    fn sync(&mut self, name: &str) -> Result<FolderState, StoreError>;
    /// What [`Store::sync`] would say, without the message list: enough to
    /// tell that nothing changed.
    fn peek(&mut self, name: &str) -> Result<Peek, StoreError> {
        let st = self.sync(name)?;
        Ok(Peek {
            uidvalidity: st.uidvalidity,
            highestmodseq: st.highestmodseq,
            count: st.messages.len(),
            recent: st.recent,
        })
    }
    fn read(&mut self, name: &str, uid: u32) -> Result<Vec<u8>, StoreError>;
    /// The header section of a message (through the blank line), CRLF line
    /// ends. Message contents never change, so a store may cache these.
    fn read_header(&mut self, name: &str, uid: u32) -> Result<Arc<[u8]>, StoreError> {
        let data = mime::to_crlf(self.read(name, uid)?);
        Ok(Arc::from(search::header_part(&data)))
    }
    fn set_flags(
        &mut self,
        name: &str,
        updates: &[(u32, Vec<String>)],
        unchangedsince: Option<u64>,
    ) -> Result<FlagResult, StoreError>;
    fn expunge(&mut self, name: &str, uids: &[u32]) -> Result<Vec<u32>, StoreError>;
    /// Returns (UIDVALIDITY, UID).
    fn append(
        &mut self,
        name: &str,
        data: &[u8],
        flags: &[String],
        date: Option<i64>,
    ) -> Result<(u32, u32), StoreError>;
    /// Returns the target's UIDVALIDITY and (source UID, new UID) pairs.
    fn copy(
        &mut self,
        from: &str,
        uids: &[u32],
        to: &str,
    ) -> Result<(u32, Vec<(u32, u32)>), StoreError>;
    /// UIDs expunged after `modseq`, as far as history goes.
    fn vanished_since(&mut self, name: &str, modseq: u64) -> Result<Vec<u32>, StoreError>;
    /// (bytes used, limit).
    fn quota(&mut self) -> (u64, Option<u64>);
}

/// What the session needs from outside.
pub trait Env {
    /// The mailboxes of a user who logged in.
    fn open(&self, mailbox: &str) -> Result<Box<dyn Store>, String>;
}

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

/// Longest command line (literals excluded).
pub const MAX_LINE: usize = 64 * 1024;
/// Output gathered before a long FETCH yields to the driver.
const FETCH_CHUNK: usize = 1024 * 1024;
/// Keywords a mailbox may use (PERMANENTFLAGS keeps `\*` below this).
const MAX_KEYWORDS: usize = 64;

const SYSTEM_FLAGS: &[&str] = &["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];
pub const SPECIAL_USE: &[(&str, &str)] = &[
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// System flags kept as bits, in the order the store lists them.
const PACKED: [&str; 6] = [
    "\\Draft",
    "\\Flagged",
    "$Forwarded",
    "\\Answered",
    "\\Seen",
    "\\Deleted",
];

/// A message's flags, compact: a session holds these for every message of
/// the selected mailbox, so an idle connection stays small.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags {
    bits: u8,
    /// A thin pointer: most messages have no keywords.
    #[allow(clippy::box_collection)]
    keywords: Option<Box<Vec<String>>>,
}

impl Flags {
    pub fn from_list(list: &[String]) -> Flags {
        let mut bits = 0u8;
        let mut keywords = Vec::new();
        for f in list {
            match PACKED.iter().position(|p| p == f) {
                Some(i) => bits |= 1 << i,
                None => keywords.push(f.clone()),
            }
        }
        Flags {
            bits,
            keywords: (!keywords.is_empty()).then(|| Box::new(keywords)),
        }
    }

    /// The flags in the store's order: system flags, then keywords.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        PACKED
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, f)| *f)
            .chain(
                self.keywords
                    .iter()
                    .flat_map(|k| k.iter().map(String::as_str)),
            )
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }

    /// Case-insensitive, as IMAP flags are.
    pub fn has(&self, flag: &str) -> bool {
        self.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// What a session keeps of each message of the selected mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactMeta {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
    pub size: u64,
    pub internal_date: i64,
}

impl From<&MsgMeta> for CompactMeta {
    fn from(m: &MsgMeta) -> CompactMeta {
        CompactMeta {
            uid: m.uid,
            flags: Flags::from_list(&m.flags),
            modseq: m.modseq,
            size: m.size,
            internal_date: m.internal_date,
        }
    }
}

#[derive(Debug, Clone)]
struct ViewMsg {
    meta: CompactMeta,
    /// Expunged by someone else, not yet reported.
    gone: bool,
}

struct Selected {
    name: String,
    read_only: bool,
    uidvalidity: u32,
    uidnext: u32,
    highestmodseq: u64,
    msgs: Vec<ViewMsg>,
    recent: HashSet<u32>,
    /// Keywords announced in FLAGS.
    keywords: Vec<String>,
}

/// SORT criteria and ESORT return options.
type SortRequest = (
    Vec<(bool, crate::proto::imap::SortKey)>,
    Option<Vec<SearchReturn>>,
);

struct PendingFetch {
    tag: String,
    uid: bool,
    items: Vec<FetchAtt>,
    /// UIDs still to send.
    uids: std::collections::VecDeque<u32>,
    changedsince: Option<u64>,
}

enum State {
    NotAuthenticated,
    AuthPlain { tag: String },
    AuthLoginUser { tag: String },
    AuthLoginPass { tag: String, user: String },
    WaitAuth { tag: String },
    WaitTls,
    Authenticated,
    Idle { tag: String },
    Logout,
}

pub struct Session<E: Env> {
    tables: Arc<Tables>,
    kind: ListenerKind,
    local: std::net::SocketAddr,
    env: E,
    state: State,
    tls: bool,
    errors: u32,
    framer: Framer,
    user: Option<String>,
    store: Option<Box<dyn Store>>,
    selected: Option<Selected>,
    pending: Option<PendingFetch>,
    utf8: bool,
    rev2: bool,
    condstore: bool,
    qresync: bool,
    now: fn() -> i64,
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The largest message APPEND accepts.
pub fn append_limit(tables: &Tables) -> u64 {
    tables
        .inbound
        .max_message_size
        .max(tables.submission.max_message_size)
}

/// Whether a mailbox name is acceptable: components not empty, not `.` or
/// `..`, no control characters, bounded lengths. The store checks again.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 1024
        && name.split('/').count() <= 16
        && name.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.len() <= 255
                && !c.chars().any(|ch| ch.is_control() || ch == '\\')
                && !c.starts_with('.')
        })
}

fn special_use(name: &str) -> Option<&'static str> {
    SPECIAL_USE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, u)| *u)
}

/// `%` matches within one level, `*` across levels; INBOX case-insensitive.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some(('%', rest)) => {
                let stop = n.iter().position(|&c| c == '/').unwrap_or(n.len());
                (0..=stop).any(|i| rec(rest, &n[i..]))
            }
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    let fold = |s: &str| -> String {
        let b = s.as_bytes();
        if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"INBOX") && (b.len() == 5 || b[5] == b'/') {
            format!("INBOX{}", &s[5..])
        } else {
            s.to_string()
        }
    };
    let p: Vec<char> = fold(pattern).chars().collect();
    let n: Vec<char> = fold(name).chars().collect();
    if p.len() > 1000 {
        return false;
    }
    // Bound the backtracking of many wildcards.
    if p.iter().filter(|c| **c == '*' || **c == '%').count() > 10 {
        return false;
    }
    rec(&p, &n)
}

fn store_err(e: &StoreError) -> String {
    match e {
        StoreError::NotFound => "[NONEXISTENT] No such mailbox".into(),
        StoreError::Exists => "[ALREADYEXISTS] Mailbox already exists".into(),
        StoreError::Invalid(m) => format!("[CANNOT] {}", encode::text(m)),
        StoreError::OverQuota => "[OVERQUOTA] Quota exceeded".into(),
        StoreError::Refused(m) => format!("[CANNOT] {}", encode::text(m)),
        StoreError::Io(m) => format!("[SERVERBUG] {}", encode::text(m)),
    }
}

fn is_system(flag: &str) -> bool {
    SYSTEM_FLAGS.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Canonical spelling of a flag (`\seen` → `\Seen`).
fn canonical_flag(flag: &str) -> String {
    SYSTEM_FLAGS
        .iter()
        .find(|f| f.eq_ignore_ascii_case(flag))
        .map_or_else(|| flag.to_string(), |f| f.to_string())
}

impl<E: Env> Session<E> {
    pub fn new(
        tables: Arc<Tables>,
        kind: ListenerKind,
        local: std::net::SocketAddr,
        tls: bool,
        env: E,
    ) -> Session<E> {
        let limit = append_limit(&tables);
        Session {
            framer: Framer::new(MAX_LINE, limit, limit as usize + MAX_LINE),
            tables,
            kind,
            local,
            env,
            state: State::NotAuthenticated,
            tls,
            errors: 0,
            user: None,
            store: None,
            selected: None,
            pending: None,
            utf8: false,
            rev2: false,
            condstore: false,
            qresync: false,
            now: system_now,
        }
    }

    /// For tests: a fixed clock.
    pub fn set_clock(&mut self, now: fn() -> i64) {
        self.now = now;
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The selected mailbox, for the driver's change notifications.
    pub fn selected(&self) -> Option<&str> {
        self.selected.as_ref().map(|s| s.name.as_str())
    }

    pub fn greeting(&self) -> Output {
        Output {
            bytes: format!(
                "* OK [CAPABILITY {}] {} IMAP mailc ready\r\n",
                self.capabilities(),
                self.tables.hostname
            )
            .into_bytes(),
            ..Output::default()
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Logout)
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle { .. })
    }

    /// Whether a long FETCH has more output to produce.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    pub fn wants_input(&self) -> bool {
        !matches!(
            self.state,
            State::WaitAuth { .. } | State::WaitTls | State::Logout
        ) && self.pending.is_none()
    }

    fn can_starttls(&self) -> bool {
        crate::session::can_starttls(&self.tables, self.kind, self.local, self.tls)
    }

    fn login_allowed(&self) -> bool {
        crate::session::login_allowed(&self.tables, self.kind, self.local, self.tls)
    }

    pub fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "IDLE",
        ];
        let authed = self.store.is_some();
        if !authed {
            if self.can_starttls() {
                caps.push("STARTTLS");
            }
            if self.login_allowed() {
                caps.push("AUTH=PLAIN");
                caps.push("AUTH=LOGIN");
            } else {
                caps.push("LOGINDISABLED");
            }
            return caps.join(" ");
        }
        caps.extend([
            "NAMESPACE",
            "UIDPLUS",
            "MOVE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "STATUS=SIZE",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SEARCHRES-NOT",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "UTF8=ACCEPT",
            "MULTIAPPEND",
            "BINARY",
            "WITHIN",
        ]);
        caps.retain(|c| *c != "SEARCHRES-NOT");
        let mut s = caps.join(" ");
        s.push_str(&format!(" APPENDLIMIT={}", append_limit(&self.tables)));
        s
    }

    // ---- input ----

    /// Processes buffered input until more is needed, an effect must run,
    /// the session ends, or a long FETCH has a chunk ready.
    pub fn process(&mut self, input: &mut Vec<u8>) -> Output {
        let mut acc = Output::default();
        if self.pending.is_some() {
            self.continue_fetch(&mut acc.bytes);
            if self.pending.is_some() {
                return acc;
            }
        }
        while self.wants_input() {
            let step = match &self.state {
                State::AuthPlain { .. }
                | State::AuthLoginUser { .. }
                | State::AuthLoginPass { .. }
                | State::Idle { .. } => match self.framer.next_line(input) {
                    None => break,
                    Some(Err(())) => self.fatal("Line too long"),
                    Some(Ok(line)) => self.raw_line(&line),
                },
                _ => match self.framer.next(input) {
                    None => break,
                    Some(Framed::Continue) => Output {
                        bytes: b"+ Ready for literal data\r\n".to_vec(),
                        ..Output::default()
                    },
                    Some(Framed::Reject {
                        tag,
                        toobig,
                        text,
                        close,
                    }) => {
                        let code = if toobig { "[TOOBIG] " } else { "" };
                        let status = if toobig { "NO" } else { "BAD" };
                        let mut o = self.error_output(&tag, status, &format!("{code}{text}"));
                        if close {
                            o.bytes.extend_from_slice(
                                b"* BYE Cannot continue this command stream\r\n",
                            );
                            o.close = true;
                            self.state = State::Logout;
                        }
                        o
                    }
                    Some(Framed::Command(bytes)) => self.command_bytes(&bytes),
                },
            };
            acc.bytes.extend_from_slice(&step.bytes);
            acc.close |= step.close;
            if step.effect.is_some() || step.close || self.pending.is_some() {
                acc.effect = step.effect;
                break;
            }
        }
        acc
    }

    fn fatal(&mut self, text: &str) -> Output {
        self.state = State::Logout;
        Output {
            bytes: format!("* BYE {text}\r\n").into_bytes(),
            effect: None,
            close: true,
        }
    }

    fn error_output(&mut self, tag: &str, status: &str, text: &str) -> Output {
        // Only protocol errors (BAD) count towards the limit; NO is an
        // ordinary answer.
        if status == "BAD" {
            self.errors += 1;
        }
        let mut bytes = format!("{tag} {status} {}\r\n", encode::text(text)).into_bytes();
        let mut close = false;
        if self.errors > self.tables.limits.max_errors.max(3) {
            bytes.extend_from_slice(b"* BYE Too many errors\r\n");
            self.state = State::Logout;
            close = true;
        }
        Output {
            bytes,
            effect: None,
            close,
        }
    }

    pub fn timeout(&mut self) -> Output {
        self.fatal("Autologout; idle for too long")
    }

    pub fn shutdown(&mut self) -> Output {
        self.fatal("Server shutting down")
    }

    fn raw_line(&mut self, line: &[u8]) -> Output {
        match std::mem::replace(&mut self.state, State::Logout) {
            State::Idle { tag } => {
                if line.eq_ignore_ascii_case(b"DONE") {
                    self.state = if self.store.is_some() {
                        State::Authenticated
                    } else {
                        State::NotAuthenticated
                    };
                    let mut out = Vec::new();
                    self.refresh(&mut out, true);
                    out.extend_from_slice(format!("{tag} OK IDLE terminated\r\n").as_bytes());
                    Output {
                        bytes: out,
                        ..Output::default()
                    }
                } else {
                    self.state = State::Authenticated;
                    self.error_output(&tag, "BAD", "Expected DONE")
                }
            }
            State::AuthPlain { tag } => {
                if parse::is_cancel(line) {
                    self.state = State::NotAuthenticated;
                    return self.error_output(&tag, "BAD", "Authentication cancelled");
                }
                let text = String::from_utf8_lossy(line).into_owned();
                self.sasl_plain(tag, &text)
            }
            State::AuthLoginUser { tag } => {
                if parse::is_cancel(line) {
                    self.state = State::NotAuthenticated;
                    return self.error_output(&tag, "BAD", "Authentication cancelled");
                }
                match sasl::decode_text(&String::from_utf8_lossy(line)) {
                    Ok(user) => {
                        self.state = State::AuthLoginPass { tag, user };
                        Output {
                            bytes: b"+ UGFzc3dvcmQ6\r\n".to_vec(),
                            ..Output::default()
                        }
                    }
                    Err(_) => {
                        self.state = State::NotAuthenticated;
                        self.error_output(&tag, "BAD", "Invalid base64")
                    }
                }
            }
            State::AuthLoginPass { tag, user } => {
                if parse::is_cancel(line) {
                    self.state = State::NotAuthenticated;
                    return self.error_output(&tag, "BAD", "Authentication cancelled");
                }
                match sasl::decode_text(&String::from_utf8_lossy(line)) {
                    Ok(password) => self.authenticate(
                        tag,
                        Credentials {
                            username: user,
                            password,
                        },
                    ),
                    Err(_) => {
                        self.state = State::NotAuthenticated;
                        self.error_output(&tag, "BAD", "Invalid base64")
                    }
                }
            }
            other => {
                self.state = other;
                Output::default()
            }
        }
    }

    fn sasl_plain(&mut self, tag: String, b64: &str) -> Output {
        match sasl::decode_plain(b64) {
            Ok(c) => self.authenticate(tag, c),
            Err(SaslError::Authzid) => {
                self.state = State::NotAuthenticated;
                self.error_output(
                    &tag,
                    "NO",
                    "[AUTHORIZATIONFAILED] Proxy login is not allowed",
                )
            }
            Err(_) => {
                self.state = State::NotAuthenticated;
                self.error_output(&tag, "BAD", "Invalid SASL PLAIN message")
            }
        }
    }

    fn authenticate(&mut self, tag: String, credentials: Credentials) -> Output {
        self.state = State::WaitAuth { tag };
        Output {
            bytes: Vec::new(),
            effect: Some(Effect::Authenticate { credentials }),
            close: false,
        }
    }

    /// The result of the credential check asked for by
    /// [`Effect::Authenticate`].
    pub fn auth_result(&mut self, outcome: AuthOutcome) -> Output {
        let State::WaitAuth { tag } = std::mem::replace(&mut self.state, State::NotAuthenticated)
        else {
            return Output::default();
        };
        match outcome {
            AuthOutcome::Ok(mailbox) => match self.env.open(&mailbox) {
                Ok(store) => {
                    self.store = Some(store);
                    self.user = Some(mailbox);
                    self.state = State::Authenticated;
                    self.errors = 0;
                    Output {
                        bytes: format!(
                            "{tag} OK [CAPABILITY {}] Logged in\r\n",
                            self.capabilities()
                        )
                        .into_bytes(),
                        ..Output::default()
                    }
                }
                Err(e) => self.error_output(
                    &tag,
                    "NO",
                    &format!("[UNAVAILABLE] Mailbox unavailable: {e}"),
                ),
            },
            AuthOutcome::Failed => {
                self.error_output(&tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed")
            }
            AuthOutcome::Locked => self.error_output(
                &tag,
                "NO",
                "[UNAVAILABLE] Too many failed logins, try again later",
            ),
            AuthOutcome::TempFail => self.error_output(
                &tag,
                "NO",
                "[UNAVAILABLE] Authentication temporarily unavailable",
            ),
        }
    }

    /// TLS is up after [`Effect::StartTls`].
    pub fn tls_established(&mut self) -> Output {
        self.tls = true;
        self.state = State::NotAuthenticated;
        Output::default()
    }

    fn command_bytes(&mut self, bytes: &[u8]) -> Output {
        match parse::command(bytes) {
            Ok(cmd) => self.command(cmd),
            Err(ParseError { tag, message }) => {
                let tag = tag.unwrap_or_else(|| "*".into());
                self.error_output(&tag, "BAD", &format!("Syntax error: {message}"))
            }
        }
    }

    /// Updates for an IDLE client (the driver calls this when the mailbox
    /// may have changed, and on a timer).
    pub fn poll(&mut self) -> Output {
        let mut out = Vec::new();
        if matches!(self.state, State::Idle { .. }) {
            self.refresh(&mut out, true);
        }
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    fn ok(tag: &str, text: &str) -> Output {
        Output {
            bytes: format!("{tag} OK {text}\r\n").into_bytes(),
            ..Output::default()
        }
    }

    fn with(mut out: Vec<u8>, tail: Output) -> Output {
        out.extend_from_slice(&tail.bytes);
        Output {
            bytes: out,
            effect: tail.effect,
            close: tail.close,
        }
    }

    fn command(&mut self, cmd: Command) -> Output {
        let Command { tag, body } = cmd;
        let authed = self.store.is_some();
        // Commands valid in any state.
        match body {
            Body::Capability => {
                return Self::with(
                    format!("* CAPABILITY {}\r\n", self.capabilities()).into_bytes(),
                    self.finish(&tag, "OK CAPABILITY completed", true),
                );
            }
            Body::Noop => return self.finish(&tag, "OK NOOP completed", true),
            Body::Logout => {
                self.state = State::Logout;
                return Output {
                    bytes: format!("* BYE Logging out\r\n{tag} OK LOGOUT completed\r\n")
                        .into_bytes(),
                    effect: None,
                    close: true,
                };
            }
            Body::Id(_) => {
                let mut out = b"* ID (\"name\" \"mailc\" \"version\" ".to_vec();
                string(&mut out, env!("CARGO_PKG_VERSION").as_bytes(), false);
                out.extend_from_slice(b")\r\n");
                return Self::with(out, self.finish(&tag, "OK ID completed", true));
            }
            _ => {}
        }
        if !authed {
            return self.not_authenticated(tag, body);
        }
        match body {
            Body::StartTls | Body::Authenticate { .. } | Body::Login { .. } => {
                self.error_output(&tag, "BAD", "Already authenticated")
            }
            Body::Enable(caps) => {
                let mut enabled = Vec::new();
                for c in caps {
                    match c.as_str() {
                        "CONDSTORE" => {
                            self.condstore = true;
                            enabled.push(c);
                        }
                        "QRESYNC" => {
                            self.condstore = true;
                            self.qresync = true;
                            enabled.push(c);
                        }
                        "UTF8=ACCEPT" => {
                            self.utf8 = true;
                            enabled.push(c);
                        }
                        "IMAP4REV2" => {
                            self.rev2 = true;
                            self.utf8 = true;
                            enabled.push("IMAP4rev2".into());
                        }
                        _ => {}
                    }
                }
                let mut out = b"* ENABLED".to_vec();
                for c in enabled {
                    out.push(b' ');
                    out.extend_from_slice(c.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                Self::with(out, Self::ok(&tag, "ENABLE completed"))
            }
            Body::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => self.select(&tag, &mailbox, read_only, condstore, qresync),
            Body::Create(m) => self.simple_mailbox_op(&tag, &m, "CREATE", |s, n| s.create(n)),
            Body::Delete(m) => {
                let name = match self.decode_name(&m) {
                    Ok(n) => n,
                    Err(o) => return self.error_output(&tag, "BAD", &o),
                };
                if self.selected.as_ref().is_some_and(|s| s.name == name) {
                    self.selected = None;
                }
                self.simple_mailbox_op(&tag, &m, "DELETE", |s, n| s.delete(n))
            }
            Body::Rename(a, b) => {
                let (from, to) = match (self.decode_name(&a), self.decode_name(&b)) {
                    (Ok(f), Ok(t)) => (f, t),
                    (Err(e), _) | (_, Err(e)) => return self.error_output(&tag, "BAD", &e),
                };
                if !valid_name(&to) || (from != "INBOX" && !valid_name(&from)) {
                    return self.error_output(&tag, "NO", "[CANNOT] Invalid mailbox name");
                }
                let Some(store) = self.store.as_mut() else {
                    return self.error_output(&tag, "BAD", "Not authenticated");
                };
                match store.rename(&from, &to) {
                    Ok(()) => self.finish(&tag, "OK RENAME completed", true),
                    Err(e) => self.error_output(&tag, "NO", &store_err(&e)),
                }
            }
            Body::Subscribe(m) => {
                self.simple_mailbox_op(&tag, &m, "SUBSCRIBE", |s, n| s.subscribe(n, true))
            }
            Body::Unsubscribe(m) => {
                self.simple_mailbox_op(&tag, &m, "UNSUBSCRIBE", |s, n| s.subscribe(n, false))
            }
            Body::List {
                reference,
                patterns,
                options,
            } => self.list(&tag, &reference, &patterns, &options, false),
            Body::Lsub { reference, pattern } => {
                let options = ListOptions {
                    subscribed: true,
                    ..ListOptions::default()
                };
                self.list(&tag, &reference, &[pattern], &options, true)
            }
            Body::Namespace => Self::with(
                b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n".to_vec(),
                self.finish(&tag, "OK NAMESPACE completed", true),
            ),
            Body::Status { mailbox, items } => {
                let name = match self.decode_name(&mailbox) {
                    Ok(n) => n,
                    Err(e) => return self.error_output(&tag, "BAD", &e),
                };
                let mut out = Vec::new();
                match self.status_line(&mut out, &name, &items) {
                    Ok(()) => Self::with(out, self.finish(&tag, "OK STATUS completed", true)),
                    Err(e) => self.error_output(&tag, "NO", &store_err(&e)),
                }
            }
            Body::Append { mailbox, messages } => self.append(&tag, &mailbox, messages),
            Body::Idle => {
                let mut out = Vec::new();
                self.refresh(&mut out, true);
                out.extend_from_slice(b"+ idling\r\n");
                self.state = State::Idle { tag };
                Output {
                    bytes: out,
                    ..Output::default()
                }
            }
            Body::GetQuotaRoot(m) => {
                let name = match self.decode_name(&m) {
                    Ok(n) => n,
                    Err(e) => return self.error_output(&tag, "BAD", &e),
                };
                let mut out = Vec::new();
                out.extend_from_slice(b"* QUOTAROOT ");
                encode::mailbox(&mut out, &self.encode_name(&name), self.utf8);
                let Some(store) = self.store.as_mut() else {
                    return self.error_output(&tag, "BAD", "Not authenticated");
                };
                let (used, limit) = store.quota();
                if let Some(limit) = limit {
                    out.extend_from_slice(b" \"\"\r\n");
                    out.extend_from_slice(
                        format!(
                            "* QUOTA \"\" (STORAGE {} {})\r\n",
                            used / 1024,
                            limit / 1024
                        )
                        .as_bytes(),
                    );
                } else {
                    out.extend_from_slice(b"\r\n");
                }
                Self::with(out, self.finish(&tag, "OK GETQUOTAROOT completed", true))
            }
            Body::GetQuota(root) => {
                let Some(store) = self.store.as_mut() else {
                    return self.error_output(&tag, "BAD", "Not authenticated");
                };
                let (used, limit) = store.quota();
                match limit {
                    Some(limit) if root.is_empty() => Self::with(
                        format!(
                            "* QUOTA \"\" (STORAGE {} {})\r\n",
                            used / 1024,
                            limit / 1024
                        )
                        .into_bytes(),
                        self.finish(&tag, "OK GETQUOTA completed", true),
                    ),
                    _ => self.error_output(&tag, "NO", "[NONEXISTENT] No such quota root"),
                }
            }
            Body::SetQuota => self.error_output(
                &tag,
                "NO",
                "[NOPERM] Quotas are set in the server configuration",
            ),
            other => {
                if self.selected.is_none() {
                    return self.error_output(&tag, "BAD", "No mailbox selected");
                }
                self.selected_command(tag, other)
            }
        }
    }

    fn not_authenticated(&mut self, tag: String, body: Body) -> Output {
        match body {
            Body::StartTls => {
                if self.tls {
                    return self.error_output(&tag, "BAD", "TLS is already active");
                }
                if !self.can_starttls() {
                    return self.error_output(&tag, "BAD", "STARTTLS is not offered here");
                }
                self.state = State::WaitTls;
                Output {
                    bytes: format!("{tag} OK Begin TLS negotiation now\r\n").into_bytes(),
                    effect: Some(Effect::StartTls),
                    close: false,
                }
            }
            Body::Login { .. } | Body::Authenticate { .. } if !self.login_allowed() => {
                if self.can_starttls() {
                    self.error_output(&tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first")
                } else {
                    self.error_output(&tag, "NO", "[CANNOT] Login is not offered here")
                }
            }
            Body::Login { user, pass } => self.authenticate(
                tag,
                Credentials {
                    username: user,
                    password: pass,
                },
            ),
            Body::Authenticate { mechanism, initial } => match mechanism.as_str() {
                "PLAIN" => match initial {
                    Some(i) if i == "=" => self.sasl_plain(tag, ""),
                    Some(i) => self.sasl_plain(tag, &i),
                    None => {
                        self.state = State::AuthPlain { tag };
                        Output {
                            bytes: b"+ \r\n".to_vec(),
                            ..Output::default()
                        }
                    }
                },
                "LOGIN" => match initial {
                    Some(i) => match sasl::decode_text(&i) {
                        Ok(user) => {
                            self.state = State::AuthLoginPass { tag, user };
                            Output {
                                bytes: b"+ UGFzc3dvcmQ6\r\n".to_vec(),
                                ..Output::default()
                            }
                        }
                        Err(_) => self.error_output(&tag, "BAD", "Invalid base64"),
                    },
                    None => {
                        self.state = State::AuthLoginUser { tag };
                        Output {
                            bytes: b"+ VXNlcm5hbWU6\r\n".to_vec(),
                            ..Output::default()
                        }
                    }
                },
                _ => self.error_output(&tag, "NO", "[CANNOT] Unsupported mechanism"),
            },
            _ => self.error_output(&tag, "BAD", "Log in first"),
        }
    }

    /// The tagged completion, preceded by mailbox updates when a mailbox is
    /// selected (`expunges`: whether EXPUNGE may be sent now).
    fn finish(&mut self, tag: &str, text: &str, expunges: bool) -> Output {
        let mut out = Vec::new();
        self.refresh(&mut out, expunges);
        out.extend_from_slice(format!("{tag} {text}\r\n").as_bytes());
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    // ---- names ----

    fn decode_name(&self, raw: &str) -> Result<String, String> {
        let name = if self.utf8 {
            raw.to_string()
        } else {
            mutf7::decode(raw)
                .ok_or_else(|| "Mailbox name is not valid modified UTF-7".to_string())?
        };
        let name = name.trim_end_matches('/').to_string();
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        if name.len() > 5 && name.as_bytes()[..6].eq_ignore_ascii_case(b"INBOX/") {
            return Ok(format!("INBOX{}", &name[5..]));
        }
        Ok(name)
    }

    fn encode_name(&self, name: &str) -> String {
        if self.utf8 {
            name.to_string()
        } else {
            mutf7::encode(name)
        }
    }

    fn simple_mailbox_op(
        &mut self,
        tag: &str,
        raw: &str,
        what: &str,
        op: impl FnOnce(&mut dyn Store, &str) -> Result<(), StoreError>,
    ) -> Output {
        let name = match self.decode_name(raw) {
            Ok(n) => n,
            Err(e) => return self.error_output(tag, "BAD", &e),
        };
        if name != "INBOX" && !valid_name(&name) {
            return self.error_output(tag, "NO", "[CANNOT] Invalid mailbox name");
        }
        let Some(store) = self.store.as_mut() else {
            return self.error_output(tag, "BAD", "Not authenticated");
        };
        match op(store.as_mut(), &name) {
            Ok(()) => self.finish(tag, &format!("OK {what} completed"), true),
            Err(e) => self.error_output(tag, "NO", &store_err(&e)),
        }
    }

    // ---- LIST / STATUS ----

    fn list(
        &mut self,
        tag: &str,
        reference: &str,
        patterns: &[String],
        options: &ListOptions,
        lsub: bool,
    ) -> Output {
        let what = if lsub { "LSUB" } else { "LIST" };
        let Some(store) = self.store.as_mut() else {
            return self.error_output(tag, "BAD", "Not authenticated");
        };
        let mut out = Vec::new();
        if !options.extended && patterns.len() == 1 && patterns[0].is_empty() {
            out.extend_from_slice(format!("* {what} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            return Self::with(out, self.finish(tag, &format!("OK {what} completed"), true));
        }
        let folders = match store.folders() {
            Ok(f) => f,
            Err(e) => return self.error_output(tag, "NO", &store_err(&e)),
        };
        let subs: HashSet<String> = store.subscriptions().into_iter().collect();
        let exists: HashSet<&str> = folders.iter().map(String::as_str).collect();
        // Every name: the folders, their implied parents, and subscribed
        // names (which may not exist).
        let mut names: std::collections::BTreeSet<String> = folders.iter().cloned().collect();
        for f in &folders {
            let mut p = f.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                names.insert(parent.to_string());
                p = parent;
            }
        }
        if options.subscribed || options.ret_subscribed || lsub {
            names.extend(subs.iter().cloned());
        }
        let has_children = |n: &str| {
            let prefix = format!("{n}/");
            folders.iter().any(|f| f.starts_with(&prefix))
        };
        let decoded: Vec<String> = patterns
            .iter()
            .map(|p| {
                let p = if self.utf8 {
                    p.clone()
                } else {
                    mutf7::decode(p).unwrap_or_else(|| p.clone())
                };
                let r = if self.utf8 {
                    reference.to_string()
                } else {
                    mutf7::decode(reference).unwrap_or_else(|| reference.to_string())
                };
                if r.is_empty() || p.starts_with('/') {
                    p
                } else if r.ends_with('/') {
                    format!("{r}{p}")
                } else {
                    format!("{r}/{p}")
                }
            })
            .collect();
        let mut lines: Vec<(String, Vec<&'static str>, bool)> = Vec::new();
        for name in &names {
            let matched = decoded.iter().any(|p| pattern_matches(p, name));
            let exists_here = exists.contains(name.as_str());
            let subscribed = subs.contains(name);
            // RECURSIVEMATCH: a parent whose child matches the selection.
            let child_selected = options.recursive
                && names.iter().any(|c| {
                    c.starts_with(&format!("{name}/"))
                        && (!options.subscribed || subs.contains(c))
                        && (!options.special_use || special_use(c).is_some())
                });
            if !matched {
                continue;
            }
            if options.subscribed && !subscribed && !child_selected {
                continue;
            }
            if options.special_use && special_use(name).is_none() && !child_selected {
                continue;
            }
            if lsub && !subscribed {
                continue;
            }
            let mut attrs: Vec<&'static str> = Vec::new();
            if !exists_here {
                if options.extended || options.subscribed {
                    attrs.push("\\NonExistent");
                } else {
                    attrs.push("\\Noselect");
                }
            }
            if !lsub {
                attrs.push(if has_children(name) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if (options.ret_subscribed || options.subscribed) && subscribed {
                attrs.push("\\Subscribed");
            }
            if (!options.extended || options.ret_special_use || options.special_use)
                && let Some(u) = special_use(name)
            {
                attrs.push(u);
            }
            lines.push((
                name.clone(),
                attrs,
                child_selected && !subscribed && options.subscribed,
            ));
        }
        for (name, attrs, child_only) in lines {
            out.extend_from_slice(format!("* {what} ({}) \"/\" ", attrs.join(" ")).as_bytes());
            encode::mailbox(&mut out, &self.encode_name(&name), self.utf8);
            if child_only {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            if let Some(items) = &options.ret_status
                && exists.contains(name.as_str())
            {
                // Errors here (a folder deleted meanwhile) just skip STATUS.
                let _ = self.status_line(&mut out, &name, items);
            }
        }
        Self::with(out, self.finish(tag, &format!("OK {what} completed"), true))
    }

    fn status_line(
        &mut self,
        out: &mut Vec<u8>,
        name: &str,
        items: &[StatusItem],
    ) -> Result<(), StoreError> {
        let store = self.store.as_mut().ok_or(StoreError::NotFound)?;
        let st = store.sync(name)?;
        let count = |f: &dyn Fn(&MsgMeta) -> bool| st.messages.iter().filter(|m| f(m)).count();
        let mut parts = Vec::new();
        for item in items {
            let v: u64 = match item {
                StatusItem::Messages => st.messages.len() as u64,
                StatusItem::Recent => st.recent.len() as u64,
                StatusItem::UidNext => u64::from(st.uidnext),
                StatusItem::UidValidity => u64::from(st.uidvalidity),
                StatusItem::Unseen => count(&|m| !m.flags.iter().any(|f| f == "\\Seen")) as u64,
                StatusItem::Deleted => count(&|m| m.flags.iter().any(|f| f == "\\Deleted")) as u64,
                StatusItem::Size => st.messages.iter().map(|m| m.size).sum(),
                StatusItem::HighestModSeq => st.highestmodseq,
            };
            parts.push(format!("{} {v}", item.name()));
        }
        out.extend_from_slice(b"* STATUS ");
        encode::mailbox(out, &self.encode_name(name), self.utf8);
        out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        // The selected mailbox's own updates are reported by refresh.
        Ok(())
    }

    // ---- APPEND ----

    fn append(&mut self, tag: &str, raw: &str, messages: Vec<AppendMessage>) -> Output {
        let name = match self.decode_name(raw) {
            Ok(n) => n,
            Err(e) => return self.error_output(tag, "BAD", &e),
        };
        let limit = append_limit(&self.tables);
        for m in &messages {
            if m.data.len() as u64 > limit {
                return self.error_output(tag, "NO", "[TOOBIG] Message too large");
            }
            if m.flags
                .iter()
                .any(|f| f.eq_ignore_ascii_case("\\Recent") || f == "\\*")
            {
                return self.error_output(tag, "BAD", "\\Recent and \\* cannot be set");
            }
            if m.data.is_empty() {
                return self.error_output(tag, "NO", "Empty message");
            }
        }
        let Some(store) = self.store.as_mut() else {
            return self.error_output(tag, "BAD", "Not authenticated");
        };
        match store.peek(&name) {
            Ok(_) => {}
            Err(StoreError::NotFound | StoreError::Invalid(_)) => {
                return self.error_output(tag, "NO", "[TRYCREATE] No such mailbox");
            }
            Err(e) => return self.error_output(tag, "NO", &store_err(&e)),
        }
        let (used, quota) = store.quota();
        let total: u64 = messages.iter().map(|m| m.data.len() as u64).sum();
        if quota.is_some_and(|q| used + total > q) {
            return self.error_output(tag, "NO", "[OVERQUOTA] Quota exceeded");
        }
        let mut uids = Vec::new();
        let mut validity = 0;
        for m in &messages {
            let flags: Vec<String> = m.flags.iter().map(|f| canonical_flag(f)).collect();
            match store.append(&name, &m.data, &flags, m.date) {
                Ok((v, uid)) => {
                    validity = v;
                    uids.push(uid);
                }
                Err(e) => {
                    let text = store_err(&e);
                    return self.error_output(tag, "NO", &text);
                }
            }
        }
        self.finish(
            tag,
            &format!(
                "OK [APPENDUID {validity} {}] APPEND completed",
                seq_set(&uids)
            ),
            true,
        )
    }

    // ---- SELECT ----

    fn select(
        &mut self,
        tag: &str,
        raw: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<QresyncParams>,
    ) -> Output {
        // A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
        let had = self.selected.take().is_some();
        let mut out = Vec::new();
        if had && self.qresync {
            out.extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        if qresync.is_some() && !self.qresync {
            return self.error_output(tag, "BAD", "QRESYNC is not enabled");
        }
        if condstore {
            self.condstore = true;
        }
        let name = match self.decode_name(raw) {
            Ok(n) => n,
            Err(e) => return self.error_output(tag, "BAD", &e),
        };
        let Some(store) = self.store.as_mut() else {
            return self.error_output(tag, "BAD", "Not authenticated");
        };
        let st = match store.sync(&name) {
            Ok(s) => s,
            Err(e) => {
                let text = store_err(&e);
                let mut o = self.error_output(tag, "NO", &text);
                out.append(&mut o.bytes);
                o.bytes = out;
                return o;
            }
        };
        let mut keywords: Vec<String> = Vec::new();
        for m in &st.messages {
            for f in &m.flags {
                if !f.starts_with('\\') && !keywords.contains(f) && keywords.len() < MAX_KEYWORDS {
                    keywords.push(f.clone());
                }
            }
        }
        for k in ["$Forwarded", "$Junk", "$NotJunk", "$MDNSent"] {
            if !keywords.iter().any(|x| x == k) {
                keywords.push(k.to_string());
            }
        }
        let sel = Selected {
            name: name.clone(),
            read_only,
            uidvalidity: st.uidvalidity,
            uidnext: st.uidnext,
            highestmodseq: st.highestmodseq,
            recent: st.recent.iter().copied().collect(),
            msgs: st
                .messages
                .iter()
                .map(|m| ViewMsg {
                    meta: CompactMeta::from(m),
                    gone: false,
                })
                .collect(),
            keywords,
        };
        out.extend_from_slice(
            format!(
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft {})\r\n",
                sel.keywords.join(" ")
            )
            .as_bytes(),
        );
        out.extend_from_slice(
            format!(
                "* OK [PERMANENTFLAGS ({}\\Answered \\Flagged \\Deleted \\Seen \\Draft {} \\*)] Flags permitted\r\n",
                "",
                sel.keywords.join(" ")
            )
            .replace(" )", ")")
            .as_bytes(),
        );
        if read_only {
            // Nothing can be changed: no flag is permanent.
            let line = b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n";
            let start = out
                .windows(19)
                .position(|w| w == b"* OK [PERMANENTFLAG")
                .unwrap_or(out.len());
            out.truncate(start);
            out.extend_from_slice(line);
        }
        out.extend_from_slice(format!("* {} EXISTS\r\n", sel.msgs.len()).as_bytes());
        if !self.rev2 {
            out.extend_from_slice(format!("* {} RECENT\r\n", sel.recent.len()).as_bytes());
            if let Some(pos) = sel.msgs.iter().position(|m| !m.meta.flags.has("\\Seen")) {
                out.extend_from_slice(
                    format!("* OK [UNSEEN {}] First unseen message\r\n", pos + 1).as_bytes(),
                );
            }
        }
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n* OK [HIGHESTMODSEQ {}] Highest\r\n",
                sel.uidvalidity, sel.uidnext, sel.highestmodseq.max(1)
            )
            .as_bytes(),
        );
        if self.rev2 {
            out.extend_from_slice(b"* LIST () \"/\" ");
            encode::mailbox(&mut out, &self.encode_name(&name), self.utf8);
            out.extend_from_slice(b"\r\n");
        }
        // QRESYNC: what changed since the client's MODSEQ.
        if let Some(q) = qresync
            && q.uidvalidity == sel.uidvalidity
        {
            let max_uid = sel.msgs.last().map_or(0, |m| m.meta.uid);
            let in_known = |uid: u32| {
                q.known_uids
                    .as_ref()
                    .is_none_or(|k| k.contains(uid, max_uid.max(uid)))
            };
            let Some(store) = self.store.as_mut() else {
                return self.error_output(tag, "BAD", "Not authenticated");
            };
            let vanished: Vec<u32> = store
                .vanished_since(&name, q.modseq)
                .unwrap_or_default()
                .into_iter()
                .filter(|&u| in_known(u))
                .collect();
            if !vanished.is_empty() {
                let mut v = vanished;
                v.sort_unstable();
                v.dedup();
                out.extend_from_slice(
                    format!("* VANISHED (EARLIER) {}\r\n", seq_set(&v)).as_bytes(),
                );
            }
            for (i, m) in sel.msgs.iter().enumerate() {
                if m.meta.modseq > q.modseq && in_known(m.meta.uid) {
                    out.extend_from_slice(
                        format!(
                            "* {} FETCH (UID {} FLAGS ({}) MODSEQ ({}))\r\n",
                            i + 1,
                            m.meta.uid,
                            self.flags_text(&m.meta, &sel.recent),
                            m.meta.modseq
                        )
                        .as_bytes(),
                    );
                }
            }
        }
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let what = if read_only { "EXAMINE" } else { "SELECT" };
        out.extend_from_slice(format!("{tag} OK [{mode}] {what} completed\r\n").as_bytes());
        self.selected = Some(sel);
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    fn flags_text(&self, meta: &CompactMeta, recent: &HashSet<u32>) -> String {
        let mut f = meta.flags.to_vec();
        if !self.rev2 && recent.contains(&meta.uid) {
            f.push("\\Recent".into());
        }
        f.join(" ")
    }

    /// Brings the view up to date and writes the updates.
    fn refresh(&mut self, out: &mut Vec<u8>, expunges: bool) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let Some(store) = self.store.as_mut() else {
            return;
        };
        // Nothing changed (same MODSEQ, same count) and no expunge waiting
        // to be told: no message list needed.
        let Ok(pk) = store.peek(&sel.name) else {
            return;
        };
        sel.recent.extend(pk.recent.iter().copied());
        let live = sel.msgs.iter().filter(|m| !m.gone).count();
        let pending = expunges && live != sel.msgs.len();
        if pk.uidvalidity == sel.uidvalidity
            && pk.highestmodseq == sel.highestmodseq
            && pk.count == live
            && !pending
        {
            Self::announce_keywords(sel, out);
            return;
        }
        let Ok(st) = store.sync(&sel.name) else {
            return;
        };
        // Folder recreated under us: the client must reselect.
        if st.uidvalidity != sel.uidvalidity {
            out.extend_from_slice(b"* BYE Mailbox UIDVALIDITY changed, reselect\r\n");
            self.selected = None;
            return;
        }
        let rev2 = self.rev2;
        let condstore = self.condstore;
        let mut new_iter = st.messages.iter().peekable();
        let mut changed: Vec<usize> = Vec::new();
        for (i, vm) in sel.msgs.iter_mut().enumerate() {
            while new_iter.peek().is_some_and(|n| n.uid < vm.meta.uid) {
                new_iter.next();
            }
            match new_iter.peek() {
                Some(n) if n.uid == vm.meta.uid => {
                    let nf = Flags::from_list(&n.flags);
                    if n.modseq != vm.meta.modseq || nf != vm.meta.flags {
                        let flags_differ = nf != vm.meta.flags;
                        vm.meta = CompactMeta::from(*n);
                        if flags_differ || condstore {
                            changed.push(i);
                        }
                    }
                    new_iter.next();
                }
                _ => vm.gone = true,
            }
        }
        // Messages beyond the view's last UID are new.
        let last = sel.msgs.last().map_or(0, |m| m.meta.uid);
        let before = sel.msgs.len();
        for m in st.messages.iter().filter(|m| m.uid > last) {
            sel.msgs.push(ViewMsg {
                meta: CompactMeta::from(m),
                gone: false,
            });
        }
        let added = sel.msgs.len() - before;
        for u in &st.recent {
            sel.recent.insert(*u);
        }
        sel.uidnext = st.uidnext;
        sel.highestmodseq = st.highestmodseq;
        let mut lines = Vec::new();
        if expunges && sel.msgs.iter().any(|m| m.gone) {
            if self.qresync {
                let gone: Vec<u32> = sel
                    .msgs
                    .iter()
                    .filter(|m| m.gone)
                    .map(|m| m.meta.uid)
                    .collect();
                lines.extend_from_slice(format!("* VANISHED {}\r\n", seq_set(&gone)).as_bytes());
            } else {
                for i in (0..sel.msgs.len()).rev() {
                    if sel.msgs[i].gone {
                        lines.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                    }
                }
            }
            // Indexes in `changed` shift: recompute by UID.
            let changed_uids: Vec<u32> = changed.iter().map(|&i| sel.msgs[i].meta.uid).collect();
            sel.msgs.retain(|m| !m.gone);
            changed = changed_uids
                .iter()
                .filter_map(|u| sel.msgs.iter().position(|m| m.meta.uid == *u))
                .collect();
        }
        for &i in &changed {
            let m = &sel.msgs[i];
            if m.gone {
                continue;
            }
            let mut f = m.meta.flags.to_vec();
            if !rev2 && sel.recent.contains(&m.meta.uid) {
                f.push("\\Recent".into());
            }
            let modseq = if condstore {
                format!(" MODSEQ ({})", m.meta.modseq)
            } else {
                String::new()
            };
            lines.extend_from_slice(
                format!(
                    "* {} FETCH (UID {} FLAGS ({}){modseq})\r\n",
                    i + 1,
                    m.meta.uid,
                    f.join(" ")
                )
                .as_bytes(),
            );
        }
        if added > 0 || (expunges && lines.starts_with(b"* VANISHED")) {
            lines.extend_from_slice(format!("* {} EXISTS\r\n", sel.msgs.len()).as_bytes());
            if !rev2 && added > 0 {
                lines.extend_from_slice(format!("* {} RECENT\r\n", sel.recent.len()).as_bytes());
            }
        }
        Self::announce_keywords(sel, out);
        out.extend_from_slice(&lines);
    }

    /// Keywords seen for the first time in this mailbox: a new FLAGS.
    fn announce_keywords(sel: &mut Selected, out: &mut Vec<u8>) {
        let mut new_kw = false;
        for m in &sel.msgs {
            for f in m.meta.flags.iter() {
                if !f.starts_with('\\')
                    && !sel.keywords.iter().any(|k| k == f)
                    && sel.keywords.len() < MAX_KEYWORDS
                {
                    sel.keywords.push(f.to_string());
                    new_kw = true;
                }
            }
        }
        if new_kw {
            out.extend_from_slice(
                format!(
                    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft {})\r\n",
                    sel.keywords.join(" ")
                )
                .as_bytes(),
            );
        }
    }

    // ---- selected state ----

    /// Indexes into the view for a set of sequence numbers or UIDs.
    fn resolve(&self, set: &SeqSet, uid: bool) -> Result<Vec<usize>, String> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let n = sel.msgs.len() as u32;
        if uid {
            let max = sel.msgs.last().map_or(0, |m| m.meta.uid);
            // Ranges are walked by the view, never by the numbers in them.
            Ok(sel
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| set.contains(m.meta.uid, max))
                .map(|(i, _)| i)
                .collect())
        } else {
            if n == 0 || set.exceeds(n) {
                return Err("Invalid message sequence number".into());
            }
            Ok((0..n as usize)
                .filter(|&i| set.contains(i as u32 + 1, n))
                .collect())
        }
    }

    fn selected_command(&mut self, tag: String, body: Body) -> Output {
        match body {
            Body::Check => self.finish(&tag, "OK CHECK completed", true),
            Body::Close | Body::Unselect => {
                let close = matches!(body, Body::Close);
                if let Some(sel) = self.selected.take()
                    && close
                    && !sel.read_only
                {
                    let deleted: Vec<u32> = sel
                        .msgs
                        .iter()
                        .filter(|m| m.meta.flags.has("\\Deleted"))
                        .map(|m| m.meta.uid)
                        .collect();
                    if !deleted.is_empty()
                        && let Some(store) = self.store.as_mut()
                        && let Err(e) = store.expunge(&sel.name, &deleted)
                    {
                        return self.error_output(&tag, "NO", &store_err(&e));
                    }
                }
                let what = if close { "CLOSE" } else { "UNSELECT" };
                Self::ok(&tag, &format!("{what} completed"))
            }
            Body::Expunge(uids) => self.expunge(&tag, uids.as_ref()),
            Body::Search {
                uid,
                ret,
                charset,
                key,
            } => self.search(&tag, uid, ret, charset.as_deref(), &key),
            Body::Fetch {
                uid,
                set,
                items,
                changedsince,
                vanished,
            } => self.fetch(tag, uid, &set, items, changedsince, vanished),
            Body::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchangedsince,
            } => self.store(&tag, uid, &set, mode, silent, &flags, unchangedsince),
            Body::Copy {
                uid,
                set,
                mailbox,
                is_move,
            } => self.copy(&tag, uid, &set, &mailbox, is_move),
            Body::Sort {
                uid,
                ret,
                criteria,
                charset,
                key,
            } => self.sort_or_thread(&tag, uid, Some((criteria, ret)), None, &charset, &key),
            Body::Thread {
                uid,
                algorithm,
                charset,
                key,
            } => self.sort_or_thread(&tag, uid, None, Some(algorithm), &charset, &key),
            _ => self.error_output(&tag, "BAD", "Command not valid in this state"),
        }
    }

    fn expunge(&mut self, tag: &str, uids: Option<&SeqSet>) -> Output {
        let mut out = Vec::new();
        self.refresh(&mut out, true);
        let Some(sel) = self.selected.as_ref() else {
            return self.error_output(tag, "BAD", "No mailbox selected");
        };
        if sel.read_only {
            return self.error_output(tag, "NO", "[READ-ONLY] Mailbox is read-only");
        }
        let max = sel.msgs.last().map_or(0, |m| m.meta.uid);
        let targets: Vec<u32> = sel
            .msgs
            .iter()
            .filter(|m| m.meta.flags.has("\\Deleted"))
            .filter(|m| uids.is_none_or(|s| s.contains(m.meta.uid, max)))
            .map(|m| m.meta.uid)
            .collect();
        let name = sel.name.clone();
        if !targets.is_empty() {
            let Some(store) = self.store.as_mut() else {
                return self.error_output(tag, "BAD", "Not authenticated");
            };
            if let Err(e) = store.expunge(&name, &targets) {
                return self.error_output(tag, "NO", &store_err(&e));
            }
        }
        self.refresh(&mut out, true);
        out.extend_from_slice(format!("{tag} OK EXPUNGE completed\r\n").as_bytes());
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    fn charset_ok(charset: Option<&str>) -> bool {
        charset.is_none_or(|c| {
            let c = c.to_ascii_uppercase();
            c == "UTF-8" || c == "US-ASCII"
        })
    }

    /// Matching view indexes.
    fn evaluate(&mut self, key: &SearchKey) -> Vec<usize> {
        let now = (self.now)();
        let Some(sel) = self.selected.as_ref() else {
            return Vec::new();
        };
        let cx = search::Context {
            max_seq: sel.msgs.len() as u32,
            max_uid: sel.msgs.last().map_or(0, |m| m.meta.uid),
            now,
        };
        let content = search::needs_content(key);
        let body = search::needs_body(key);
        let name = sel.name.clone();
        let mut hits = Vec::new();
        for (i, vm) in sel.msgs.iter().enumerate() {
            let item = search::Item {
                seq: i as u32 + 1,
                meta: &vm.meta,
                recent: sel.recent.contains(&vm.meta.uid),
            };
            let ok = if content && !body {
                let header = match self
                    .store
                    .as_mut()
                    .map(|s| s.read_header(&name, vm.meta.uid))
                {
                    Some(Ok(h)) => h,
                    _ => continue,
                };
                let c = search::Content::new(&header);
                search::matches(key, &item, Some(&c), &cx)
            } else if content {
                let data = match self.store.as_mut().map(|s| s.read(&name, vm.meta.uid)) {
                    Some(Ok(d)) => mime::to_crlf(d),
                    _ => continue,
                };
                let c = search::Content::new(&data);
                search::matches(key, &item, Some(&c), &cx)
            } else {
                search::matches(key, &item, None, &cx)
            };
            if ok {
                hits.push(i);
            }
        }
        hits
    }

    /// What SEARCH, SORT and THREAD start with: the charset checked, the
    /// view brought up to date (expunges reported only for UID commands),
    /// the matching view indexes.
    fn search_prologue(
        &mut self,
        tag: &str,
        uid: bool,
        charset: Option<&str>,
        key: &SearchKey,
    ) -> Result<(Vec<u8>, Vec<usize>), Output> {
        if !Self::charset_ok(charset) {
            return Err(self.error_output(
                tag,
                "NO",
                "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset",
            ));
        }
        let mut out = Vec::new();
        self.refresh(&mut out, uid);
        let hits = self.evaluate(key);
        Ok((out, hits))
    }

    fn search(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        charset: Option<&str>,
        key: &SearchKey,
    ) -> Output {
        let (mut out, hits) = match self.search_prologue(tag, uid, charset, key) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let Some(sel) = self.selected.as_ref() else {
            return self.error_output(tag, "BAD", "No mailbox selected");
        };
        let nums: Vec<u32> = hits
            .iter()
            .map(|&i| {
                if uid {
                    sel.msgs[i].meta.uid
                } else {
                    i as u32 + 1
                }
            })
            .collect();
        let modseq_key = uses_modseq(key);
        let max_modseq = hits.iter().map(|&i| sel.msgs[i].meta.modseq).max();
        match ret {
            None => {
                out.extend_from_slice(b"* SEARCH");
                for n in &nums {
                    out.extend_from_slice(format!(" {n}").as_bytes());
                }
                if modseq_key && let Some(m) = max_modseq {
                    out.extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
            Some(opts) => {
                let mut sorted = nums.clone();
                sorted.sort_unstable();
                esearch(&mut out, tag, uid, &opts, &sorted, false);
                // MODSEQ goes on the same line.
                out.truncate(out.len() - 2);
                if modseq_key && let Some(m) = max_modseq {
                    out.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        if modseq_key {
            self.condstore = true;
        }
        out.extend_from_slice(format!("{tag} OK SEARCH completed\r\n").as_bytes());
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    fn sort_or_thread(
        &mut self,
        tag: &str,
        uid: bool,
        sort: Option<SortRequest>,
        thread: Option<ThreadAlgorithm>,
        charset: &str,
        key: &SearchKey,
    ) -> Output {
        let (mut out, hits) = match self.search_prologue(tag, uid, Some(charset), key) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let Some(sel) = self.selected.as_ref() else {
            return self.error_output(tag, "BAD", "No mailbox selected");
        };
        let name = sel.name.clone();
        let metas: Vec<(u32, CompactMeta)> = hits
            .iter()
            .map(|&i| (i as u32 + 1, sel.msgs[i].meta.clone()))
            .collect();
        let mut values = Vec::new();
        for (seq, meta) in &metas {
            let header = match self.store.as_mut().map(|s| s.read_header(&name, meta.uid)) {
                Some(Ok(h)) => h,
                _ => continue,
            };
            let c = search::Content::new(&header);
            values.push(search::SortValues::new(*seq, meta, &c));
        }
        let what = if let Some((criteria, ret)) = sort {
            search::sort(&mut values, &criteria);
            let nums: Vec<u32> = values
                .iter()
                .map(|v| if uid { v.uid } else { v.seq })
                .collect();
            match ret {
                Some(opts) => esearch(&mut out, tag, uid, &opts, &nums, true),
                None => {
                    out.extend_from_slice(b"* SORT");
                    for n in nums {
                        out.extend_from_slice(format!(" {n}").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
            "SORT"
        } else {
            let text = match thread {
                Some(ThreadAlgorithm::References) => search::thread_references(&values, uid),
                _ => search::thread_ordered_subject(&values, uid),
            };
            out.extend_from_slice(b"* THREAD ");
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
            "THREAD"
        };
        out.extend_from_slice(format!("{tag} OK {what} completed\r\n").as_bytes());
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        mode: StoreMode,
        silent: bool,
        flags: &[String],
        unchangedsince: Option<u64>,
    ) -> Output {
        let mut out = Vec::new();
        self.refresh(&mut out, uid);
        if flags
            .iter()
            .any(|f| f.eq_ignore_ascii_case("\\Recent") || f == "\\*")
        {
            return self.error_output(tag, "BAD", "\\Recent and \\* cannot be stored");
        }
        if flags.iter().any(|f| f.starts_with('\\') && !is_system(f)) {
            return self.error_output(tag, "BAD", "Unknown system flag");
        }
        if unchangedsince.is_some() {
            self.condstore = true;
        }
        let idx = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return self.error_output(tag, "BAD", &e),
        };
        let Some(sel) = self.selected.as_ref() else {
            return self.error_output(tag, "BAD", "No mailbox selected");
        };
        if sel.read_only {
            return self.error_output(tag, "NO", "[READ-ONLY] Mailbox is read-only");
        }
        let flags: Vec<String> = flags.iter().map(|f| canonical_flag(f)).collect();
        let mut updates = Vec::new();
        for &i in &idx {
            let m = &sel.msgs[i];
            if m.gone {
                continue;
            }
            let mut f = m.meta.flags.to_vec();
            match mode {
                StoreMode::Replace => f = flags.clone(),
                StoreMode::Add => {
                    for x in &flags {
                        if !f.contains(x) {
                            f.push(x.clone());
                        }
                    }
                }
                StoreMode::Remove => f.retain(|x| !flags.contains(x)),
            }
            if f.iter().filter(|x| !x.starts_with('\\')).count() > MAX_KEYWORDS {
                return self.error_output(tag, "NO", "[LIMIT] Too many keywords");
            }
            updates.push((m.meta.uid, f));
        }
        let name = sel.name.clone();
        let Some(store) = self.store.as_mut() else {
            return self.error_output(tag, "BAD", "Not authenticated");
        };
        let result = match store.set_flags(&name, &updates, unchangedsince) {
            Ok(r) => r,
            Err(e) => return self.error_output(tag, "NO", &store_err(&e)),
        };
        let condstore = self.condstore;
        let rev2 = self.rev2;
        let Some(sel) = self.selected.as_mut() else {
            return self.error_output(tag, "BAD", "No mailbox selected");
        };
        let changed: std::collections::HashMap<u32, &MsgMeta> =
            result.changed.iter().map(|m| (m.uid, m)).collect();
        for vm in sel.msgs.iter_mut() {
            if let Some(m) = changed.get(&vm.meta.uid) {
                vm.meta = CompactMeta::from(*m);
                if m.modseq > sel.highestmodseq {
                    sel.highestmodseq = m.modseq;
                }
            }
        }
        for &i in &idx {
            let vm = &sel.msgs[i];
            if vm.gone || result.modified.contains(&vm.meta.uid) {
                continue;
            }
            // .SILENT: no FETCH, except that CONDSTORE clients learn the new
            // MODSEQ of what changed (RFC 7162 3.1.3).
            let was_changed = changed.contains_key(&vm.meta.uid);
            if silent && !(condstore && was_changed) {
                continue;
            }
            let mut parts = Vec::new();
            if uid {
                parts.push(format!("UID {}", vm.meta.uid));
            }
            if !silent {
                let mut f = vm.meta.flags.to_vec();
                if !rev2 && sel.recent.contains(&vm.meta.uid) {
                    f.push("\\Recent".into());
                }
                parts.push(format!("FLAGS ({})", f.join(" ")));
            }
            if condstore {
                parts.push(format!("MODSEQ ({})", vm.meta.modseq));
            }
            out.extend_from_slice(
                format!("* {} FETCH ({})\r\n", i + 1, parts.join(" ")).as_bytes(),
            );
        }
        let text = if result.modified.is_empty() {
            "OK STORE completed".to_string()
        } else {
            let mut m: Vec<u32> = if uid {
                result.modified.clone()
            } else {
                result
                    .modified
                    .iter()
                    .filter_map(|u| {
                        sel.msgs
                            .iter()
                            .position(|v| v.meta.uid == *u)
                            .map(|p| p as u32 + 1)
                    })
                    .collect()
            };
            m.sort_unstable();
            format!(
                "OK [MODIFIED {}] Conditional STORE failed for some",
                seq_set(&m)
            )
        };
        self.refresh(&mut out, uid);
        out.extend_from_slice(format!("{tag} {text}\r\n").as_bytes());
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    fn copy(&mut self, tag: &str, uid: bool, set: &SeqSet, raw: &str, is_move: bool) -> Output {
        let mut out = Vec::new();
        self.refresh(&mut out, uid);
        let target = match self.decode_name(raw) {
            Ok(n) => n,
            Err(e) => return self.error_output(tag, "BAD", &e),
        };
        let idx = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return self.error_output(tag, "BAD", &e),
        };
        let Some(sel) = self.selected.as_ref() else {
            return self.error_output(tag, "BAD", "No mailbox selected");
        };
        if is_move && sel.read_only {
            return self.error_output(tag, "NO", "[READ-ONLY] Mailbox is read-only");
        }
        let uids: Vec<u32> = idx
            .iter()
            .filter(|&&i| !sel.msgs[i].gone)
            .map(|&i| sel.msgs[i].meta.uid)
            .collect();
        let size: u64 = idx.iter().map(|&i| sel.msgs[i].meta.size).sum();
        let name = sel.name.clone();
        let what = if is_move { "MOVE" } else { "COPY" };
        if uids.is_empty() {
            out.extend_from_slice(
                format!("{tag} OK {what} completed (no messages)\r\n").as_bytes(),
            );
            return Output {
                bytes: out,
                ..Output::default()
            };
        }
        let Some(store) = self.store.as_mut() else {
            return self.error_output(tag, "BAD", "Not authenticated");
        };
        match store.peek(&target) {
            Ok(_) => {}
            Err(StoreError::NotFound | StoreError::Invalid(_)) => {
                return self.error_output(tag, "NO", "[TRYCREATE] No such mailbox");
            }
            Err(e) => return self.error_output(tag, "NO", &store_err(&e)),
        }
        if !is_move || target != name {
            let (used, quota) = store.quota();
            if !is_move && quota.is_some_and(|q| used + size > q) {
                return self.error_output(tag, "NO", "[OVERQUOTA] Quota exceeded");
            }
        }
        let (validity, pairs) = match store.copy(&name, &uids, &target) {
            Ok(r) => r,
            Err(e) => return self.error_output(tag, "NO", &store_err(&e)),
        };
        let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        // Source UIDs in the order of the destination ones (both ascending).
        let code = if pairs.is_empty() {
            String::new()
        } else {
            format!("[COPYUID {validity} {} {}] ", seq_set(&src), seq_set(&dst))
        };
        if is_move {
            if let Err(e) = store.expunge(&name, &src) {
                return self.error_output(tag, "NO", &store_err(&e));
            }
            out.extend_from_slice(format!("* OK {code}Moved\r\n").as_bytes());
            self.refresh(&mut out, true);
            out.extend_from_slice(format!("{tag} OK MOVE completed\r\n").as_bytes());
        } else {
            self.refresh(&mut out, uid);
            out.extend_from_slice(format!("{tag} OK {code}COPY completed\r\n").as_bytes());
        }
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    // ---- FETCH ----

    fn fetch(
        &mut self,
        tag: String,
        uid: bool,
        set: &SeqSet,
        mut items: Vec<FetchAtt>,
        changedsince: Option<u64>,
        vanished: bool,
    ) -> Output {
        let mut out = Vec::new();
        self.refresh(&mut out, uid);
        if changedsince.is_some() {
            self.condstore = true;
        }
        if vanished && !self.qresync {
            return self.error_output(&tag, "BAD", "VANISHED needs QRESYNC enabled");
        }
        let idx = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return self.error_output(&tag, "BAD", &e),
        };
        if uid && !items.contains(&FetchAtt::Uid) {
            items.insert(0, FetchAtt::Uid);
        }
        if (changedsince.is_some() || self.condstore)
            && !items.contains(&FetchAtt::ModSeq)
            && (changedsince.is_some() || items.contains(&FetchAtt::Flags))
        {
            items.push(FetchAtt::ModSeq);
        }
        let Some(sel) = self.selected.as_ref() else {
            return self.error_output(&tag, "BAD", "No mailbox selected");
        };
        if vanished && let Some(since) = changedsince {
            let max = sel.msgs.last().map_or(0, |m| m.meta.uid);
            let name = sel.name.clone();
            if let Some(store) = self.store.as_mut() {
                let mut v: Vec<u32> = store
                    .vanished_since(&name, since)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|&u| set.contains(u, max.max(u)))
                    .collect();
                v.sort_unstable();
                v.dedup();
                if !v.is_empty() {
                    out.extend_from_slice(
                        format!("* VANISHED (EARLIER) {}\r\n", seq_set(&v)).as_bytes(),
                    );
                }
            }
        }
        let Some(sel) = self.selected.as_ref() else {
            return self.error_output(&tag, "BAD", "No mailbox selected");
        };
        let uids = idx.iter().map(|&i| sel.msgs[i].meta.uid).collect();
        self.pending = Some(PendingFetch {
            tag,
            uid,
            items,
            uids,
            changedsince,
        });
        self.continue_fetch(&mut out);
        Output {
            bytes: out,
            ..Output::default()
        }
    }

    fn continue_fetch(&mut self, out: &mut Vec<u8>) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let start = out.len();
        let mut failed = false;
        while let Some(uid) = p.uids.pop_front() {
            if let Err(()) = self.fetch_one(out, uid, &p) {
                failed = true;
            }
            if out.len() - start >= FETCH_CHUNK {
                if !p.uids.is_empty() {
                    self.pending = Some(p);
                    return;
                }
                break;
            }
        }
        if failed {
            out.extend_from_slice(
                format!(
                    "{} NO [UNKNOWN-CTE] Some parts could not be decoded\r\n",
                    p.tag
                )
                .as_bytes(),
            );
        } else {
            // Flags we set (\Seen) were reported in the FETCH lines.
            let mut tail = Vec::new();
            self.refresh(&mut tail, p.uid);
            out.extend_from_slice(&tail);
            out.extend_from_slice(format!("{} OK FETCH completed\r\n", p.tag).as_bytes());
        }
    }

    /// One message's FETCH response; `Err` for a BINARY of an unknown
    /// encoding.
    fn fetch_one(&mut self, out: &mut Vec<u8>, uid: u32, p: &PendingFetch) -> Result<(), ()> {
        let utf8 = self.utf8;
        let rev2 = self.rev2;
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let Some(pos) = sel.msgs.iter().position(|m| m.meta.uid == uid) else {
            return Ok(());
        };
        if sel.msgs[pos].gone {
            return Ok(());
        }
        let meta = sel.msgs[pos].meta.clone();
        if let Some(since) = p.changedsince
            && meta.modseq <= since
        {
            return Ok(());
        }
        let name = sel.name.clone();
        let read_only = sel.read_only;
        let recent = sel.recent.contains(&uid);
        let needs_data = p.items.iter().any(|i| {
            matches!(
                i,
                FetchAtt::Envelope
                    | FetchAtt::Body
                    | FetchAtt::BodyStructure
                    | FetchAtt::Rfc822
                    | FetchAtt::Rfc822Header
                    | FetchAtt::Rfc822Text
                    | FetchAtt::BodySection { .. }
                    | FetchAtt::Binary { .. }
                    | FetchAtt::BinarySize(_)
            )
        });
        // ENVELOPE and the top-level header sections need the header only
        // (which the store may have cached).
        let header_only = p.items.iter().all(|i| match i {
            FetchAtt::BodySection { section, .. } => {
                section.part.is_empty()
                    && matches!(
                        section.text,
                        Some(
                            SectionText::Header
                                | SectionText::HeaderFields(_)
                                | SectionText::HeaderFieldsNot(_)
                        )
                    )
            }
            other => !matches!(
                other,
                FetchAtt::Body
                    | FetchAtt::BodyStructure
                    | FetchAtt::Rfc822
                    | FetchAtt::Rfc822Text
                    | FetchAtt::Binary { .. }
                    | FetchAtt::BinarySize(_)
            ),
        });
        let data = if needs_data {
            let Some(store) = self.store.as_mut() else {
                return Ok(());
            };
            let read = if header_only {
                store.read_header(&name, uid).map(|h| h.to_vec())
            } else {
                store.read(&name, uid).map(mime::to_crlf)
            };
            match read {
                Ok(d) => Some(d),
                // Expunged by someone else meanwhile: nothing to send.
                Err(_) => return Ok(()),
            }
        } else {
            None
        };
        let parsed = data.as_ref().map(|d| mime::parse(d));
        let sets_seen = !read_only
            && !meta.flags.has("\\Seen")
            && p.items.iter().any(|i| {
                matches!(
                    i,
                    FetchAtt::Rfc822
                        | FetchAtt::Rfc822Text
                        | FetchAtt::BodySection { peek: false, .. }
                        | FetchAtt::Binary { peek: false, .. }
                )
            });
        let mut meta = meta;
        let mut flags_changed = false;
        if sets_seen {
            let mut f = meta.flags.to_vec();
            f.push("\\Seen".into());
            if let Some(store) = self.store.as_mut()
                && let Ok(r) = store.set_flags(&name, &[(uid, f)], None)
                && let Some(m) = r.changed.into_iter().next()
            {
                meta = CompactMeta::from(&m);
                flags_changed = true;
                if let Some(sel) = self.selected.as_mut() {
                    sel.msgs[pos].meta = meta.clone();
                    sel.highestmodseq = sel.highestmodseq.max(meta.modseq);
                }
            }
        }
        let mut items: Vec<FetchAtt> = p.items.clone();
        if flags_changed && !items.contains(&FetchAtt::Flags) {
            items.push(FetchAtt::Flags);
        }
        let mut failed = false;
        out.extend_from_slice(format!("* {} FETCH (", pos + 1).as_bytes());
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                out.push(b' ');
            }
            match item {
                FetchAtt::Uid => out.extend_from_slice(format!("UID {uid}").as_bytes()),
                FetchAtt::Flags => {
                    let mut f = meta.flags.to_vec();
                    if !rev2 && recent {
                        f.push("\\Recent".into());
                    }
                    out.extend_from_slice(format!("FLAGS ({})", f.join(" ")).as_bytes());
                }
                FetchAtt::ModSeq => {
                    out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes())
                }
                FetchAtt::InternalDate => {
                    out.extend_from_slice(b"INTERNALDATE ");
                    out.extend_from_slice(date::format_date_time(meta.internal_date).as_bytes());
                }
                FetchAtt::Rfc822Size => {
                    let size = match &data {
                        Some(d) if !header_only => d.len() as u64,
                        _ => meta.size,
                    };
                    out.extend_from_slice(format!("RFC822.SIZE {size}").as_bytes());
                }
                FetchAtt::Envelope => {
                    out.extend_from_slice(b"ENVELOPE ");
                    if let (Some(d), Some(pt)) = (&data, &parsed) {
                        mime::envelope(out, d, pt, utf8);
                    }
                }
                FetchAtt::Body | FetchAtt::BodyStructure => {
                    let ext = matches!(item, FetchAtt::BodyStructure);
                    out.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
                    if let (Some(d), Some(pt)) = (&data, &parsed) {
                        mime::body_structure(out, d, pt, ext, utf8);
                    }
                }
                FetchAtt::Rfc822 => {
                    out.extend_from_slice(b"RFC822 ");
                    encode::literal(out, data.as_deref().unwrap_or_default());
                }
                FetchAtt::Rfc822Header => {
                    out.extend_from_slice(b"RFC822.HEADER ");
                    let (d, pt) = (data.as_deref().unwrap_or_default(), parsed.as_ref());
                    let end = pt.map_or(0, |p| p.body_start);
                    encode::literal(out, &d[..end]);
                }
                FetchAtt::Rfc822Text => {
                    out.extend_from_slice(b"RFC822.TEXT ");
                    let (d, pt) = (data.as_deref().unwrap_or_default(), parsed.as_ref());
                    let start = pt.map_or(0, |p| p.body_start);
                    encode::literal(out, &d[start..]);
                }
                FetchAtt::BodySection {
                    section, partial, ..
                } => {
                    let d = data.as_deref().unwrap_or_default();
                    let content = parsed.as_ref().and_then(|pt| section_bytes(d, pt, section));
                    out.extend_from_slice(b"BODY[");
                    out.extend_from_slice(section_name(section).as_bytes());
                    out.push(b']');
                    write_partial(out, content.as_deref(), *partial, false);
                }
                FetchAtt::Binary { part, .. } | FetchAtt::BinarySize(part) => {
                    let partial = match item {
                        FetchAtt::Binary { partial, .. } => *partial,
                        _ => None,
                    };
                    let d = data.as_deref().unwrap_or_default();
                    let target = parsed.as_ref().and_then(|pt| pt.find(part));
                    let decoded = target.map(|t| t.decoded(d));
                    let label: Vec<String> = part.iter().map(u32::to_string).collect();
                    match decoded {
                        Some(None) => {
                            failed = true;
                            out.extend_from_slice(
                                format!("BINARY[{}] NIL", label.join(".")).as_bytes(),
                            );
                        }
                        other => {
                            let bytes = other.flatten();
                            if let FetchAtt::BinarySize(_) = item {
                                out.extend_from_slice(
                                    format!(
                                        "BINARY.SIZE[{}] {}",
                                        label.join("."),
                                        bytes.as_ref().map_or(0, |b| b.len())
                                    )
                                    .as_bytes(),
                                );
                            } else {
                                out.extend_from_slice(
                                    format!("BINARY[{}]", label.join(".")).as_bytes(),
                                );
                                write_partial(out, bytes.as_deref(), partial, true);
                            }
                        }
                    }
                }
            }
        }
        out.extend_from_slice(b")\r\n");
        if failed { Err(()) } else { Ok(()) }
    }
}

/// An ESEARCH response (RFC 4731; RFC 5267 for SORT). `nums` are in
/// ascending order for SEARCH, in sort order for SORT (`ordered`): then MIN
/// and MAX are the first and last in that order and ALL keeps the order.
fn esearch(
    out: &mut Vec<u8>,
    tag: &str,
    uid: bool,
    opts: &[SearchReturn],
    nums: &[u32],
    ordered: bool,
) {
    out.extend_from_slice(b"* ESEARCH (TAG ");
    string(out, tag.as_bytes(), false);
    out.push(b')');
    if uid {
        out.extend_from_slice(b" UID");
    }
    let all = [SearchReturn::All];
    let opts = if opts.is_empty() { &all[..] } else { opts };
    for o in opts {
        match o {
            SearchReturn::Min => {
                if let Some(m) = nums.first() {
                    out.extend_from_slice(format!(" MIN {m}").as_bytes());
                }
            }
            SearchReturn::Max => {
                if let Some(m) = nums.last() {
                    out.extend_from_slice(format!(" MAX {m}").as_bytes());
                }
            }
            SearchReturn::Count => {
                out.extend_from_slice(format!(" COUNT {}", nums.len()).as_bytes())
            }
            SearchReturn::All if nums.is_empty() => {}
            SearchReturn::All if ordered => {
                let list: Vec<String> = nums.iter().map(u32::to_string).collect();
                out.extend_from_slice(format!(" ALL {}", list.join(",")).as_bytes());
            }
            SearchReturn::All => {
                out.extend_from_slice(format!(" ALL {}", seq_set(nums)).as_bytes())
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(ks) => ks.iter().any(uses_modseq),
        _ => false,
    }
}

fn section_name(s: &Section) -> String {
    let mut parts: Vec<String> = s.part.iter().map(u32::to_string).collect();
    match &s.text {
        None => {}
        Some(SectionText::Header) => parts.push("HEADER".into()),
        Some(SectionText::Text) => parts.push("TEXT".into()),
        Some(SectionText::Mime) => parts.push("MIME".into()),
        Some(SectionText::HeaderFields(f)) | Some(SectionText::HeaderFieldsNot(f)) => {
            let not = matches!(s.text, Some(SectionText::HeaderFieldsNot(_)));
            let mut list = Vec::new();
            for x in f {
                let mut o = Vec::new();
                encode::mailbox(&mut o, &x.to_ascii_uppercase(), false);
                list.push(String::from_utf8_lossy(&o).into_owned());
            }
            parts.push(format!(
                "HEADER.FIELDS{} ({})",
                if not { ".NOT" } else { "" },
                list.join(" ")
            ));
        }
    }
    parts.join(".")
}

/// The bytes of a body section; `None` when the part does not exist.
fn section_bytes(data: &[u8], root: &mime::Part, s: &Section) -> Option<Vec<u8>> {
    let part = root.find(&s.part)?;
    // HEADER/TEXT/HEADER.FIELDS of a part path address its message.
    let msg = if s.part.is_empty() {
        Some(root)
    } else {
        part.message.as_deref()
    };
    Some(match &s.text {
        None if s.part.is_empty() => data.to_vec(),
        None => data[part.body_start..part.end].to_vec(),
        Some(SectionText::Mime) => data[part.header_start..part.body_start].to_vec(),
        Some(SectionText::Header) => {
            let m = msg?;
            data[m.header_start..m.body_start].to_vec()
        }
        Some(SectionText::Text) => {
            let m = msg?;
            data[m.body_start..m.end].to_vec()
        }
        Some(SectionText::HeaderFields(f)) => {
            let m = msg?;
            mime::header_fields(&data[m.header_start..m.body_start], f, false)
        }
        Some(SectionText::HeaderFieldsNot(f)) => {
            let m = msg?;
            mime::header_fields(&data[m.header_start..m.body_start], f, true)
        }
    })
}

fn write_partial(
    out: &mut Vec<u8>,
    content: Option<&[u8]>,
    partial: Option<(u32, u32)>,
    binary: bool,
) {
    let Some(content) = content else {
        if let Some((start, _)) = partial {
            out.extend_from_slice(format!("<{start}>").as_bytes());
        }
        out.extend_from_slice(b" NIL");
        return;
    };
    let slice = match partial {
        Some((start, len)) => {
            out.extend_from_slice(format!("<{start}>").as_bytes());
            let s = (start as usize).min(content.len());
            let e = s.saturating_add(len as usize).min(content.len());
            &content[s..e]
        }
        None => content,
    };
    out.push(b' ');
    if binary && slice.contains(&0) {
        out.extend_from_slice(format!("~{{{}}}\r\n", slice.len()).as_bytes());
        out.extend_from_slice(slice);
    } else {
        encode::literal(out, slice);
    }
}
