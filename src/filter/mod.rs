//! Sieve (RFC 5228 and extensions) at delivery, over the `sieve-rs`
//! interpreter: scripts compiled with their error positions, and one
//! delivery's scripts run into a list of [`Action`]s. Pure: no files, no
//! sockets, no clock of its own — everything the scripts ask of the world
//! (included scripts, whether a folder exists, whether a vacation reply or
//! a `duplicate` id was seen) goes through the [`Host`] the caller passes.
//! The caller (`services::filtering`) performs the actions.
//!
//! Semantics chosen where the RFCs leave room, as Pigeonhole does:
//! - Several scripts (the admin's `before` scripts, the user's, the
//!   admin's `after` scripts) run in order; the next runs only while the
//!   implicit keep is still in effect, and actions accumulate.
//! - A script that fails at runtime (CPU limit, a missing include, an
//!   unsupported extension) has its own actions dropped and the message is
//!   kept in INBOX: mail is never lost to a bad script.
//! - An explicit `keep` is "file into INBOX" (RFC 5228 §4.3); a later
//!   `discard` cancels only the implicit keep (§4.5), so `keep; discard;`
//!   still stores the message. sieve-rs 0.7 lets `discard` replace an
//!   explicit keep, so scripts are run with every `keep` command rewritten
//!   to `fileinto "INBOX"` (same flags); diagnostics always come from the
//!   script as written.
//! - `:regex` follows its comparator as the regex draft and Pigeonhole do:
//!   without case under `i;ascii-casemap` (the default), with case under
//!   `i;octet`; sieve-rs always matches with case, so the keys of the
//!   script that runs get a `(?i)` prefix.
//! - `deleteheader` leaves `Received` and `Auto-Submitted` alone, as
//!   Pigeonhole does: a redirected copy keeps its trace for loop
//!   detection, and automatic mail stays recognisable as such.

mod rewrite;

use std::collections::HashMap;
use std::sync::Arc;

use sieve::compiler::ErrorType;
use sieve::{Compiler, Envelope as SieveEnvelope, Event, Input, Recipient, Runtime, Sieve};

/// Limits of the interpreter, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest script, bytes.
    pub max_script_size: usize,
    /// Instructions one script may execute.
    pub cpu: usize,
    /// `redirect`s per message.
    pub max_redirects: usize,
    /// Messages a script may send (vacation and notify replies).
    pub max_replies: usize,
    /// Nested `include`s.
    pub max_includes: usize,
    /// Nested blocks.
    pub max_nesting: usize,
    /// Default `:days` of vacation, seconds (RFC 5230: 7 days).
    pub vacation_default: u64,
    /// Shortest vacation period a script may ask for, seconds.
    pub vacation_min: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_script_size: 512 * 1024,
            cpu: 100_000,
            max_redirects: 4,
            max_replies: 2,
            max_includes: 3,
            max_nesting: 32,
            vacation_default: 7 * 86_400,
            vacation_min: 86_400,
        }
    }
}

/// A script compiled twice: as written (its diagnostics) and with `keep`
/// rewritten (what runs).
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    run: Arc<Sieve>,
    /// It requires `reject` or `ereject`: worth running at SMTP time, so a
    /// rejection is a reply rather than a bounce.
    pub can_reject: bool,
}

/// Why a script does not compile, with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Syntax or argument errors.
    Syntax,
    /// An extension not declared with `require`, or not supported.
    Extension,
    /// The script exceeds a limit (size, nesting, string length).
    Limit,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

/// Extensions scripts may `require` (sieve-rs also has vendor extensions
/// — expressions, `while`, `vnd.stalwart.*` — that mailc does not offer).
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "comparator-i;ascii-numeric",
    "comparator-i;ascii-casemap",
    "comparator-i;octet",
    "body",
    "copy",
    "relational",
    "date",
    "index",
    "duplicate",
    "variables",
    "editheader",
    "foreverypart",
    "mime",
    "extracttext",
    "enotify",
    "environment",
    "subaddress",
    "vacation",
    "vacation-seconds",
    "mailbox",
    "special-use",
    "imap4flags",
    "ihave",
    "include",
    "regex",
    "spamtest",
    "spamtestplus",
    "virustest",
];

/// Compiles a script. `source` is the script as written.
pub fn compile(name: &str, source: &[u8], limits: &Limits) -> Result<Script, ScriptError> {
    let compiler = compiler(limits);
    check_requires(source)?;
    compiler.compile(source).map_err(|e| {
        let mut error = script_error(&e);
        locate_unknown_command(&mut error, source);
        error
    })?;
    // What runs: `keep` as `fileinto "INBOX"`. The rewritten script needs
    // `fileinto` whether or not the original required it, so the capability
    // check (already done above, on the original) is off for it.
    // And `:regex` without case under the default comparator.
    // And no deletion of the trace fields.
    let rewritten =
        rewrite::protect_fields(&rewrite::regex_casemap(&rewrite::keep_as_fileinto(source)));
    let run = compiler
        .with_no_capability_check(true)
        .compile(&rewritten)
        .map_err(|e| script_error(&e))?;
    let can_reject = rewrite::required(source)
        .iter()
        .any(|(_, _, n)| n.eq_ignore_ascii_case("reject") || n.eq_ignore_ascii_case("ereject"));
    Ok(Script {
        name: name.to_string(),
        run: Arc::new(run),
        can_reject,
    })
}

fn compiler(limits: &Limits) -> Compiler {
    Compiler::new()
        .with_max_script_size(limits.max_script_size)
        .with_max_includes(limits.max_includes)
        .with_max_nested_blocks(limits.max_nesting)
        .with_max_nested_tests(limits.max_nesting)
        .with_max_nested_foreverypart(limits.max_nesting.min(8))
}

/// Extensions outside [`EXTENSIONS`] are refused at compile time (sieve-rs
/// would accept its vendor ones), and so are a `require` after another
/// command (RFC 5228 §3.2), an empty test list and a `set` of an invalid
/// name, which sieve-rs accepts.
fn check_requires(source: &[u8]) -> Result<(), ScriptError> {
    if let Some((line, column, message)) = rewrite::grammar_error(source) {
        return Err(ScriptError {
            line,
            column,
            kind: ErrorKind::Syntax,
            message,
        });
    }
    if let Some((line, column)) = rewrite::late_require(source) {
        return Err(ScriptError {
            line,
            column,
            kind: ErrorKind::Syntax,
            message: "\"require\" must come before any other command".into(),
        });
    }
    for (line, column, name) in rewrite::required(source) {
        if !EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(&name)) {
            return Err(ScriptError {
                line,
                column,
                kind: ErrorKind::Extension,
                message: format!("extension \"{name}\" is not supported by mailc"),
            });
        }
    }
    Ok(())
}

fn script_error(e: &sieve::compiler::CompileError) -> ScriptError {
    let kind = match e.error_type() {
        ErrorType::UndeclaredCapability(_) | ErrorType::InvalidNamespace(_) => ErrorKind::Extension,
        ErrorType::ScriptTooLong
        | ErrorType::StringTooLong
        | ErrorType::VariableTooLong
        | ErrorType::HeaderTooLong
        | ErrorType::TooManyNestedBlocks
        | ErrorType::TooManyNestedTests
        | ErrorType::TooManyNestedForEveryParts
        | ErrorType::TooManyIncludes => ErrorKind::Limit,
        ErrorType::UnexpectedToken { found, .. } if found.contains("Capability") => {
            ErrorKind::Extension
        }
        _ => ErrorKind::Syntax,
    };
    // sieve-rs counts lines from 1; its position is the byte offset in the
    // line after the token's first byte, i.e. the 1-based column of ASCII
    // text.
    let line = e.line_num();
    let column = if line == 0 { 0 } else { e.line_pos().max(1) };
    let text = e.to_string();
    // Its Display appends " at line N, column M"; the position is ours.
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    ScriptError {
        line,
        column,
        kind,
        message,
    }
}

/// sieve-rs gives no position for an unknown command ("Expected token
/// "command" but found "x""): it is the first command of that name.
fn locate_unknown_command(error: &mut ScriptError, source: &[u8]) {
    if error.line != 0 {
        return;
    }
    let Some(found) = error
        .message
        .strip_prefix("Expected token \"command\" but found \"")
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return;
    };
    if let Some((line, column)) = rewrite::command(source, found) {
        error.line = line;
        error.column = column;
    }
}

/// What the scripts decided for one recipient's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store in a folder (`INBOX` for keep and the implicit keep), with
    /// these IMAP flags; `create` when `:create` asked for a missing one.
    Store {
        folder: String,
        flags: Vec<String>,
        create: bool,
        /// `:specialuse` (RFC 8579): the folder with this use, if any.
        special_use: Option<String>,
        /// Which version of the message (0: as received; else edited).
        message: usize,
    },
    /// `discard`: nothing stored (the implicit keep was cancelled).
    Discard,
    /// `redirect`; `copy` is implied by a Store action beside it.
    Redirect { address: String, message: usize },
    /// `reject`/`ereject` with the reason.
    Reject { reason: String, extended: bool },
    /// A vacation reply (RFC 5230): the whole message to send with the null
    /// sender to `to`.
    Reply { to: String, message: Vec<u8> },
    /// `notify` (RFC 5435): recorded, not sent (no notification method is
    /// offered).
    Notify { method: String, message: String },
}

/// The result of one delivery's scripts.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// Messages produced by editheader and friends, by id (`Store` and
    /// `Redirect` name one; 0 is the message as received).
    pub messages: HashMap<usize, Vec<u8>>,
    /// Scripts that failed at runtime, with why: their actions were
    /// dropped and the message kept.
    pub errors: Vec<String>,
    /// `duplicate` and vacation ids the scripts tested, to be recorded by
    /// the caller once the delivery is done: (id, seconds to remember).
    pub seen: Vec<(String, u64)>,
}

impl Outcome {
    /// Whether the message is stored somewhere or sent on (a script
    /// that discards everything and sends nothing has `false`).
    pub fn stores(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Store { .. }))
    }
}

/// What the scripts ask of the world.
pub trait Host {
    /// A script named by `include` (`global`: `:global`), compiled.
    /// `None` if there is no such script or it does not compile.
    fn include(&mut self, name: &str, global: bool) -> Option<Arc<Script>>;
    /// Whether the folder exists (mailbox extension, RFC 5490).
    fn folder_exists(&mut self, name: &str) -> bool;
    /// The folder with this special use (`\Junk`...), if any.
    fn special_use_exists(&mut self, special_use: &str) -> bool;
    /// Whether `id` was seen within its period (vacation and `duplicate`).
    fn seen(&mut self, id: &str) -> bool;
}

/// The envelope and the environment of one delivery.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// The envelope sender; empty for the null sender.
    pub sender: &'a str,
    /// The recipient as the envelope named it (what `envelope :to` sees).
    pub recipient: &'a str,
    /// The mailbox the copy is for (the user's address; vacation does not
    /// answer mail sent from it).
    pub mailbox: &'a str,
    /// `X-Spam-*` results for spamtest, if the message carries them.
    pub spam: SpamScore,
    pub virus: VirusResult,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpamScore {
    Unknown,
    /// 0.0 (ham) to 1.0 (spam).
    Score(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirusResult {
    Unknown,
    Clean,
    Infected,
}

/// The interpreter's settings, built once per configuration.
#[derive(Debug, Clone)]
pub struct Engine {
    runtime: Runtime,
    limits: Limits,
}

impl Engine {
    pub fn new(limits: Limits, hostname: &str) -> Engine {
        let mut runtime = Runtime::new()
            .without_capabilities([
                sieve::compiler::grammar::Capability::Expressions,
                sieve::compiler::grammar::Capability::While,
            ])
            .with_cpu_limit(limits.cpu)
            // sieve-rs drops redirects past its limits without a word, and
            // counts redirects among its "out messages": its limits are set
            // one past ours so that `run_one` sees the first excess one and
            // fails the script (the message is kept, as Pigeonhole does).
            .with_max_redirects(limits.max_redirects.saturating_add(1))
            .with_max_out_messages(
                limits
                    .max_redirects
                    .saturating_add(limits.max_replies)
                    .saturating_add(1),
            )
            .with_max_nested_includes(limits.max_includes)
            .with_default_vacation_expiry(limits.vacation_default)
            .with_default_duplicate_expiry(7 * 86_400)
            .with_local_hostname(hostname.to_string())
            .with_vacation_default_subject("Automated reply")
            .with_vacation_subject_prefix("Auto: ");
        runtime.set_env_variable("name", "mailc");
        runtime.set_env_variable("version", env!("CARGO_PKG_VERSION"));
        runtime.set_env_variable("host", hostname.to_string());
        runtime.set_env_variable("domain", hostname.to_string());
        runtime.set_env_variable("phase", "during");
        Engine { runtime, limits }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `scripts` in order over `message` for one recipient.
    pub fn run(
        &self,
        scripts: &[Arc<Script>],
        message: &[u8],
        delivery: &Delivery<'_>,
        host: &mut dyn Host,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let mut keep = Some((Vec::new(), 0));
        for (i, script) in scripts.iter().enumerate() {
            let last = i + 1 == scripts.len();
            match self.run_one(script, message, delivery, host, &mut outcome) {
                Ok(run) => {
                    outcome.actions.extend(run.actions);
                    match run.implicit_keep {
                        Some(k) if !last => {
                            // The next script decides.
                            keep = Some(k);
                        }
                        k => {
                            keep = k;
                            break;
                        }
                    }
                }
                Err(why) => {
                    tracing::warn!(script = %script.name, error = %why, "Sieve script failed; keeping the message");
                    outcome.errors.push(format!("{}: {why}", script.name));
                    keep = Some((Vec::new(), 0));
                    break;
                }
            }
        }
        if let Some((flags, message)) = keep {
            outcome.actions.push(Action::Store {
                folder: "INBOX".into(),
                flags,
                create: false,
                special_use: None,
                message,
            });
        }
        dedup_stores(&mut outcome.actions);
        outcome
    }

    fn run_one(
        &self,
        script: &Script,
        message: &[u8],
        delivery: &Delivery<'_>,
        host: &mut dyn Host,
        outcome: &mut Outcome,
    ) -> Result<Run, String> {
        let mut ctx = self
            .runtime
            .filter(message)
            .with_envelope(SieveEnvelope::From, delivery.sender)
            .with_envelope(SieveEnvelope::To, delivery.recipient)
            .with_user_address(delivery.mailbox);
        ctx.set_spam_status(match delivery.spam {
            SpamScore::Unknown => sieve::SpamStatus::Unknown,
            SpamScore::Score(s) if s <= 0.0 => sieve::SpamStatus::Ham,
            SpamScore::Score(s) if s >= 1.0 => sieve::SpamStatus::Spam,
            SpamScore::Score(s) => sieve::SpamStatus::MaybeSpam(s),
        });
        ctx.set_virus_status(match delivery.virus {
            VirusResult::Unknown => sieve::VirusStatus::Unknown,
            VirusResult::Clean => sieve::VirusStatus::Clean,
            VirusResult::Infected => sieve::VirusStatus::Virus,
        });

        let automatic = is_automatic(message, delivery.sender);
        let mut run = Run::default();
        let mut created: HashMap<usize, Vec<u8>> = HashMap::new();
        let mut vacation_pending: Option<String> = None;
        let mut input = Input::script(script.name.clone(), script.run.clone());
        let mut steps = 0usize;
        while let Some(event) = ctx.run(input) {
            steps += 1;
            if steps > self.limits.cpu.saturating_add(1000) {
                return Err("too many events".into());
            }
            input = Input::True;
            let event = event.map_err(runtime_error)?;
            match event {
                Event::IncludeScript { name, optional } => {
                    let (n, global) = match &name {
                        sieve::Script::Personal(n) => (n.as_str(), false),
                        sieve::Script::Global(n) => (n.as_str(), true),
                    };
                    match host.include(n, global) {
                        Some(s) => input = Input::script(name, s.run.clone()),
                        None if optional => input = Input::False,
                        None => return Err(format!("included script \"{n}\" not found")),
                    }
                }
                Event::MailboxExists {
                    mailboxes,
                    special_use,
                } => {
                    let all = mailboxes.iter().all(|m| match m {
                        sieve::Mailbox::Name(n) => host.folder_exists(n),
                        sieve::Mailbox::Id(_) => false,
                    }) && special_use.iter().all(|s| host.special_use_exists(s));
                    input = all.into();
                }
                Event::ListContains { .. } => input = Input::False,
                Event::DuplicateId { id, expiry, last } => {
                    let _ = last;
                    let is_vacation = id.starts_with("_v");
                    let expiry = if is_vacation {
                        expiry.max(self.limits.vacation_min)
                    } else {
                        expiry
                    };
                    // RFC 3834 §2: no automatic reply to automatic mail,
                    // whatever the interpreter decided (it misses
                    // `Auto-Submitted` values and `Precedence: list`).
                    let seen = (is_vacation && automatic)
                        || host.seen(&id)
                        || outcome.seen.iter().any(|(s, _)| s == &id);
                    if !seen {
                        if is_vacation {
                            vacation_pending = Some(id.clone());
                        }
                        outcome.seen.push((id, expiry));
                    }
                    input = seen.into();
                }
                Event::SetEnvelope { .. } => {}
                Event::Function { .. } => {
                    input = Input::result(sieve::runtime::Variable::default())
                }
                Event::Keep { flags, message_id } => {
                    // Only the implicit keep arrives as Keep (explicit
                    // ones run as fileinto "INBOX").
                    run.implicit_keep = Some((flags, message_id));
                }
                Event::Discard => {}
                Event::Reject { extended, reason } => {
                    run.actions.push(Action::Reject { reason, extended });
                }
                Event::FileInto {
                    folder,
                    flags,
                    create,
                    special_use,
                    message_id,
                    ..
                } => {
                    run.actions.push(Action::Store {
                        folder: if folder.eq_ignore_ascii_case("INBOX") {
                            "INBOX".into()
                        } else {
                            folder
                        },
                        flags,
                        create,
                        special_use,
                        message: message_id,
                    });
                }
                Event::SendMessage {
                    recipient,
                    message_id,
                    ..
                } => {
                    let to = match recipient {
                        Recipient::Address(a) => a,
                        Recipient::List(a) => a,
                        Recipient::Group(g) => g.join(", "),
                    };
                    match created.remove(&message_id) {
                        Some(reply) if vacation_pending.is_some() => {
                            vacation_pending = None;
                            run.actions.push(Action::Reply {
                                to,
                                message: mime_reply(&reply),
                            });
                        }
                        Some(edited) => {
                            outcome.messages.insert(message_id, edited);
                            run.actions.push(Action::Redirect {
                                address: to,
                                message: message_id,
                            });
                        }
                        None => run.actions.push(Action::Redirect {
                            address: to,
                            message: message_id,
                        }),
                    }
                }
                Event::Notify {
                    method, message, ..
                } => run.actions.push(Action::Notify { method, message }),
                Event::CreatedMessage {
                    message_id,
                    message,
                } => {
                    outcome.messages.insert(message_id, message.clone());
                    created.insert(message_id, message);
                }
            }
        }
        // RFC 5429 §2: a rejected message is not also delivered, and the
        // sender gets one answer, not a rejection and a vacation reply
        // (RFC 5230 §4.7). sieve-rs lets both through; like Pigeonhole,
        // that fails the script.
        if run
            .actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }))
            && run.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Store { .. } | Action::Redirect { .. } | Action::Reply { .. }
                )
            })
        {
            return Err("reject conflicts with keep, fileinto, redirect or vacation".into());
        }
        let redirects = run
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Redirect { .. }))
            .count();
        if redirects > self.limits.max_redirects {
            return Err(format!("more than {} redirects", self.limits.max_redirects));
        }
        let replies = run
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Reply { .. }))
            .count();
        if replies > self.limits.max_replies {
            return Err(format!("more than {} replies", self.limits.max_replies));
        }
        Ok(run)
    }
}

/// Whether a message must not be answered automatically (RFC 3834 §2,
/// RFC 5230 §5): the null sender, a mailer-daemon or list address,
/// `Auto-Submitted` other than `no`, list headers, `Precedence` bulk, list
/// or junk.
pub fn is_automatic(message: &[u8], sender: &str) -> bool {
    let local = sender
        .rsplit_once('@')
        .map_or(sender, |(l, _)| l)
        .to_ascii_lowercase();
    if sender.is_empty()
        || local == "mailer-daemon"
        || local == "postmaster"
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-bounces")
        || local == "listserv"
        || local == "majordomo"
    {
        return true;
    }
    header_fields(message).iter().any(|(name, value)| {
        let name = name.to_ascii_lowercase();
        let value = value.to_ascii_lowercase();
        match name.as_str() {
            "auto-submitted" => value.split(';').next().is_some_and(|v| v.trim() != "no"),
            "precedence" => ["bulk", "list", "junk"].contains(&value.as_str()),
            "x-auto-response-suppress" => value
                .split(',')
                .any(|v| ["all", "oof", "autoreply"].contains(&v.trim())),
            n => n.starts_with("list-"),
        }
    })
}

/// The header fields of a message (up to the first empty line, CRLF or
/// LF), unfolded: (name, value), both trimmed.
pub fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| message.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut fields: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => fields.push(line.to_string()),
        }
    }
    fields
        .iter()
        .filter_map(|f| {
            let (n, v) = f.split_once(':')?;
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The vacation reply sieve-rs built, made a proper MIME message: header
/// fields with non-ASCII text as RFC 2047 encoded words (sieve-rs writes
/// `Subject: Auto: Résumé` as raw UTF-8, which RFC 5322 does not allow),
/// `MIME-Version: 1.0` beside its Content-Type (RFC 2045 §4), and
/// `Content-Transfer-Encoding: 8bit` for a non-ASCII body. Pigeonhole's
/// replies have all three.
fn mime_reply(message: &[u8]) -> Vec<u8> {
    let split = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or((message, &b""[..]), |i| (&message[..i], &message[i + 4..]));
    let (head, body) = split;
    let head = String::from_utf8_lossy(head);
    // Unfolded fields.
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim_start());
            }
            _ => fields.push(line.to_string()),
        }
    }
    let has = |name: &str| {
        fields.iter().any(|f| {
            f.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
    };
    let mut out = String::new();
    for field in &fields {
        match field.split_once(':') {
            Some((name, value)) if !value.is_ascii() => {
                out.push_str(name);
                out.push(':');
                out.push_str(&encode_value(name, value.trim_start()));
            }
            _ => out.push_str(field),
        }
        out.push_str("\r\n");
    }
    if !has("MIME-Version") {
        out.push_str("MIME-Version: 1.0\r\n");
    }
    if !body.is_ascii() && !has("Content-Transfer-Encoding") {
        out.push_str("Content-Transfer-Encoding: 8bit\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A header value with non-ASCII text as encoded words: the whole value
/// of unstructured fields, the display name of address fields.
fn encode_value(name: &str, value: &str) -> String {
    let address = ["from", "to", "cc", "reply-to", "sender"]
        .iter()
        .any(|n| name.trim().eq_ignore_ascii_case(n));
    if address {
        return match value.rfind('<') {
            Some(i) if !value[..i].is_ascii() => {
                let display = value[..i].trim().trim_matches('"');
                format!(
                    " {} {}",
                    crate::proto::header::encoded_words(display),
                    &value[i..]
                )
            }
            _ => format!(" {value}"),
        };
    }
    format!(" {}", crate::proto::header::encoded_words(value))
}

/// Per-script results.
#[derive(Default)]
struct Run {
    actions: Vec<Action>,
    implicit_keep: Option<(Vec<String>, usize)>,
}

fn runtime_error(e: sieve::runtime::RuntimeError) -> String {
    use sieve::runtime::RuntimeError as E;
    match e {
        E::TooManyIncludes => "too many nested includes".into(),
        E::InvalidInstruction(_) => "invalid instruction".into(),
        E::ScriptErrorMessage(m) => m,
        E::CapabilityNotAllowed(c) => format!("extension {c:?} is not allowed"),
        E::CapabilityNotSupported(c) => format!("extension {c} is not supported"),
        E::CPULimitReached => "CPU limit reached".into(),
    }
}

/// The same folder named twice is stored once (RFC 5228 §2.10.3), with
/// the flags of both.
fn dedup_stores(actions: &mut Vec<Action>) {
    let mut out: Vec<Action> = Vec::with_capacity(actions.len());
    for a in actions.drain(..) {
        if let Action::Store {
            folder,
            flags,
            create,
            special_use,
            message,
        } = &a
            && let Some(Action::Store {
                flags: f0,
                create: c0,
                special_use: s0,
                ..
            }) = out.iter_mut().find(|b| {
                matches!(b, Action::Store { folder: f, message: m, .. } if f.eq_ignore_ascii_case(folder) && m == message)
            })
        {
            for f in flags {
                if !f0.iter().any(|g| g.eq_ignore_ascii_case(f)) {
                    f0.push(f.clone());
                }
            }
            *c0 |= *create;
            if s0.is_none() {
                s0.clone_from(special_use);
            }
            continue;
        }
        if matches!(a, Action::Redirect { .. }) && out.contains(&a) {
            continue;
        }
        out.push(a);
    }
    *actions = out;
}

#[cfg(test)]
mod tests;
