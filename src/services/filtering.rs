//! Sieve at local delivery: which scripts run for a mailbox (the server's
//! and its domain's `before` scripts, the mailbox's own — from the config
//! or activated with ManageSieve — then the `after` scripts), running them
//! over a message through [`crate::filter`], and turning the actions into
//! Maildir folders and flags, messages to send (redirects, vacation
//! replies) and refusals. Used by the delivery worker, `mailc deliver` and
//! `mailc explain --message`.
//!
//! Vacation replies and `duplicate` ids are remembered per mailbox in
//! `<state>/sieve/<domain>/<local>/.seen` (one line per id: the time it
//! expires and a SHA-256 of the id), written durably once the delivery is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::mailstore::MailStore;
use crate::filter::{self, Action, Engine, Outcome, Script};
use crate::session::imap::{SPECIAL_USE, Store};
use crate::store::folder::{Folder, FolderLocks};
use crate::store::fsutil;
use crate::store::sieve::ScriptStore;
use crate::store::usage::Usage;
use crate::tables::{MailboxTable, Tables};

/// Scripts in order.
type Scripts = Vec<Arc<Script>>;
/// A user's compiled script and the file stamp it was compiled from.
type Cached = (SystemTime, u64, Arc<Script>);

/// The scripts of one configuration, compiled once (at start and reload).
pub struct Filters {
    engine: Engine,
    before: Vec<Arc<Script>>,
    after: Vec<Arc<Script>>,
    domains: HashMap<String, (Scripts, Scripts)>,
    mailboxes: HashMap<String, Arc<Script>>,
    global: HashMap<String, Arc<Script>>,
    user_scripts: bool,
    state_dir: PathBuf,
    /// Users' scripts compiled, by file: (modified, length, script).
    user_cache: Mutex<HashMap<PathBuf, Cached>>,
}

fn compile_file(path: &Path, limits: &filter::Limits) -> Result<Arc<Script>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("Sieve script {}: {e}", path.display()))?;
    filter::compile(&path.display().to_string(), &bytes, limits)
        .map(Arc::new)
        .map_err(|e| format!("Sieve script {}: {e}", path.display()))
}

impl Filters {
    /// Compiles every script the tables name. An error (a script changed
    /// on disk since `mailc check`) fails the load: a reload keeps the old
    /// configuration.
    pub fn load(tables: &Tables) -> Result<Filters, String> {
        let t = &tables.sieve;
        let limits = crate::compile::sieve_limits(t);
        let all = |paths: &[PathBuf]| -> Result<Vec<Arc<Script>>, String> {
            paths.iter().map(|p| compile_file(p, &limits)).collect()
        };
        let mut domains = HashMap::new();
        for (name, d) in &tables.domains {
            if !d.sieve_before.is_empty() || !d.sieve_after.is_empty() {
                domains.insert(name.clone(), (all(&d.sieve_before)?, all(&d.sieve_after)?));
            }
        }
        let mut mailboxes = HashMap::new();
        for (address, m) in &tables.mailboxes {
            if let Some(p) = &m.sieve {
                mailboxes.insert(address.clone(), compile_file(p, &limits)?);
            }
        }
        let mut global = HashMap::new();
        if let Some(dir) = &t.global_dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| format!("Sieve global directory {}: {e}", dir.display()))?;
            for e in entries.flatten() {
                let p = e.path();
                if let Some(name) = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".sieve"))
                {
                    global.insert(name.to_string(), compile_file(&p, &limits)?);
                }
            }
        }
        let before = all(&t.before)?;
        let after = all(&t.after)?;
        Ok(Filters {
            engine: Engine::new(limits, &tables.hostname),
            before,
            after,
            domains,
            mailboxes,
            global,
            user_scripts: t.user_scripts,
            state_dir: tables.state_dir.clone(),
            user_cache: Mutex::new(HashMap::new()),
        })
    }

    /// The user's own script: the config's `sieve=`, else the one active
    /// in ManageSieve (when `user-scripts` is on). A script that does not
    /// compile any more is skipped (and logged): the others still run.
    fn user_script(&self, m: &MailboxTable, errors: &mut Vec<String>) -> Option<Arc<Script>> {
        if let Some(s) = self.mailboxes.get(&m.address) {
            return Some(s.clone());
        }
        if !self.user_scripts {
            return None;
        }
        let store = ScriptStore::for_mailbox(&self.state_dir, &m.address);
        let name = store.active_name().ok()??;
        let path = store.dir().join(format!("{name}.sieve"));
        let meta = std::fs::metadata(&path).ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        if let Ok(cache) = self.user_cache.lock()
            && let Some((t, l, s)) = cache.get(&path)
            && (*t, *l) == stamp
        {
            return Some(s.clone());
        }
        match compile_file(&path, self.engine.limits()) {
            Ok(s) => {
                if let Ok(mut cache) = self.user_cache.lock() {
                    if cache.len() > 10_000 {
                        cache.clear();
                    }
                    cache.insert(path, (stamp.0, stamp.1, s.clone()));
                }
                Some(s)
            }
            Err(e) => {
                tracing::warn!(mailbox = %m.address, error = %e, "the user's Sieve script does not compile; skipped");
                errors.push(e);
                None
            }
        }
    }

    /// The scripts for a mailbox, in the order they run.
    pub fn scripts_for(&self, m: &MailboxTable, errors: &mut Vec<String>) -> Vec<Arc<Script>> {
        let mut out = self.before.clone();
        let dom = self.domains.get(&m.domain);
        if let Some((b, _)) = dom {
            out.extend(b.iter().cloned());
        }
        out.extend(self.user_script(m, errors));
        if let Some((_, a)) = dom {
            out.extend(a.iter().cloned());
        }
        out.extend(self.after.iter().cloned());
        out
    }

    /// Whether a script of the mailbox can `reject` (then the SMTP service
    /// runs the scripts before its reply, for a message to that mailbox
    /// alone).
    pub fn may_reject(&self, m: &MailboxTable) -> bool {
        self.scripts_for(m, &mut Vec::new())
            .iter()
            .any(|s| s.can_reject)
    }

    /// The rejection the scripts give `message`, if they reject it without
    /// storing it anywhere (RFC 5429 §2.1: at SMTP time when possible).
    pub fn rejection(
        &self,
        tables: &Tables,
        m: &MailboxTable,
        message: &[u8],
        sender: &str,
        recipient: &str,
    ) -> Option<String> {
        let e = self.evaluate(tables, m, message, sender, recipient)?;
        if e.outcome.stores() {
            return None;
        }
        e.outcome.actions.iter().find_map(|a| match a {
            Action::Reject { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    /// Runs the mailbox's scripts over `message` (the message as queued,
    /// without the delivery's Return-Path/Delivered-To). `None` when no
    /// script applies: plain delivery to INBOX.
    pub fn evaluate(
        &self,
        tables: &Tables,
        m: &MailboxTable,
        message: &[u8],
        sender: &str,
        recipient: &str,
    ) -> Option<Evaluation> {
        let mut errors = Vec::new();
        let scripts = self.scripts_for(m, &mut errors);
        if scripts.is_empty() {
            return None;
        }
        let now = super::unix_now();
        let mut host = DeliveryHost {
            filters: self,
            store: store_of(m, FolderLocks::new(), Arc::new(Usage::new())),
            scripts: ScriptStore::for_mailbox(&tables.state_dir, &m.address),
            seen: Seen::load(&tables.state_dir, &m.address, now),
        };
        let delivery = filter::Delivery {
            sender,
            recipient,
            mailbox: &m.address,
            spam: spam_score(message),
            virus: virus_result(message),
        };
        let mut outcome = self.engine.run(&scripts, message, &delivery, &mut host);
        outcome.errors.splice(0..0, errors);
        // Loop protection: a message that already went through this
        // mailbox is not sent on again (Postfix's Delivered-To rule).
        let looped = delivered_to(message, &m.address);
        if looped {
            let before = outcome.actions.len();
            outcome
                .actions
                .retain(|a| !matches!(a, Action::Redirect { .. } | Action::Reply { .. }));
            if outcome.actions.len() != before {
                tracing::warn!(mailbox = %m.address, "mail loop: the message was delivered here before; not redirected again");
                if !outcome.stores() {
                    outcome.actions.push(Action::Store {
                        folder: "INBOX".into(),
                        flags: Vec::new(),
                        create: false,
                        special_use: None,
                        message: 0,
                    });
                }
            }
        }
        let original = outcome
            .actions
            .iter()
            .any(|a| matches!(a, Action::Redirect { .. }))
            .then(|| Arc::new(message.to_vec()));
        Some(Evaluation {
            outcome,
            looped,
            now,
            original,
        })
    }
}

impl Filters {
    /// What delivery would do with `message` for mailbox `m`, as lines for
    /// `mailc explain ADDRESS --message` (nothing is written: folders that
    /// `:create` would make are named, vacation state is only read).
    pub fn describe(
        &self,
        tables: &Tables,
        m: &MailboxTable,
        message: &[u8],
        sender: &str,
        recipient: &str,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let scripts = self.scripts_for(m, &mut errors);
        let mut out = Vec::new();
        if scripts.is_empty() {
            out.push(format!(
                "sieve        {}: no script; stored in INBOX",
                m.address
            ));
            return out;
        }
        let names: Vec<&str> = scripts.iter().map(|s| s.name.as_str()).collect();
        out.push(format!(
            "sieve        {}: runs {}",
            m.address,
            names.join(", ")
        ));
        let Some(e) = self.evaluate(tables, m, message, sender, recipient) else {
            return out;
        };
        for err in &e.outcome.errors {
            out.push(format!("  error      {err} (the message is kept in INBOX)"));
        }
        if e.looped {
            out.push("  loop       delivered to this mailbox before: no redirect or reply".into());
        }
        let store = store_of(m, FolderLocks::new(), Arc::new(Usage::new()));
        let mut stored = false;
        for a in &e.outcome.actions {
            match a {
                Action::Store {
                    folder,
                    flags,
                    create,
                    message,
                    ..
                } => {
                    stored = true;
                    let exists = folder == "INBOX"
                        || store
                            .folder_path(folder)
                            .is_some_and(|p| Folder::new(p).exists());
                    let note = match (exists, create) {
                        (true, _) => String::new(),
                        (false, true) => " (created)".into(),
                        (false, false) => " (does not exist, no :create: INBOX instead)".into(),
                    };
                    let flags = if flags.is_empty() {
                        String::new()
                    } else {
                        format!("  flags {}", flags.join(" "))
                    };
                    let edited = if *message == 0 {
                        ""
                    } else {
                        "  (edited by the script)"
                    };
                    out.push(format!("  store      {folder}{note}{flags}{edited}"));
                }
                Action::Discard => {}
                Action::Redirect { address, .. } => out.push(format!("  redirect   {address}")),
                Action::Reject { reason, extended } => out.push(format!(
                    "  {}    {reason:?} (a DSN to the sender, 5.7.1)",
                    if *extended { "ereject" } else { "reject " }
                )),
                Action::Reply { to, message } => {
                    out.push(format!("  vacation   reply from <> to {to}:"));
                    for line in String::from_utf8_lossy(message).lines().take(40) {
                        out.push(format!("             | {line}"));
                    }
                }
                Action::Notify { method, message } => out.push(format!(
                    "  notify     {method} {message:?} (logged; no notification method is offered)"
                )),
            }
        }
        if !stored {
            out.push("  discard    nothing is stored".into());
        }
        out
    }
}

/// The mailbox's Maildir++ store, for folder names and `:create`.
fn store_of(m: &MailboxTable, locks: Arc<FolderLocks>, usage: Arc<Usage>) -> MailStore {
    MailStore::new(
        &m.address,
        &m.maildir,
        None,
        locks,
        usage,
        Arc::new(|_: &str| {}),
    )
}

/// The scripts' decision for one copy.
#[derive(Debug)]
pub struct Evaluation {
    pub outcome: Outcome,
    /// The message had been delivered to this mailbox before.
    pub looped: bool,
    now: u64,
    /// The message as given, kept when a redirect needs it.
    original: Option<Arc<Vec<u8>>>,
}

/// A folder to write the copy into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The IMAP name (`INBOX`, `Lists/rust`).
    pub name: String,
    pub folder: PathBuf,
    /// Maildir flag letters, sorted (`FS`).
    pub flags: String,
    /// IMAP keywords (`$label1`, `Work`): kept in the folder's index.
    pub keywords: Vec<String>,
    /// Which message: 0 as received, else one the scripts edited.
    pub message: usize,
}

/// IMAP keywords among Sieve flags: valid atoms (RFC 9051 `flag-keyword`:
/// no `\\`, space, controls or `(){%*"]`), at most 64 of 100 characters.
fn keywords(flags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in flags {
        let ok = !f.is_empty()
            && f.len() <= 100
            && f.chars().all(|c| {
                c.is_ascii_graphic() && !matches!(c, '\\' | '(' | ')' | '{' | '%' | '*' | '"' | ']')
            });
        if ok && !out.iter().any(|k| k.eq_ignore_ascii_case(f)) && out.len() < 64 {
            out.push(f.clone());
        }
    }
    out
}

/// IMAP system flags as Maildir letters (RFC 9051 §2.3.2).
fn flag_letters(flags: &[String]) -> String {
    let mut out: Vec<char> = flags
        .iter()
        .filter_map(|f| match f.to_ascii_lowercase().as_str() {
            "\\seen" => Some('S'),
            "\\answered" => Some('R'),
            "\\flagged" => Some('F'),
            "\\deleted" => Some('T'),
            "\\draft" => Some('D'),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out.into_iter().collect()
}

/// The folders an evaluation stores into, made where `:create` asks (a
/// folder that does not exist and may not be made: INBOX instead, logged).
/// `junk`: the inbound checks judged the message junk; what would go to
/// INBOX goes to Junk.
pub fn targets(
    m: &MailboxTable,
    e: &Evaluation,
    junk: bool,
    locks: Arc<FolderLocks>,
    usage: Arc<Usage>,
) -> Vec<Target> {
    let mut store = store_of(m, locks, usage);
    let mut out: Vec<Target> = Vec::new();
    for a in &e.outcome.actions {
        let Action::Store {
            folder,
            flags,
            create,
            special_use,
            message,
        } = a
        else {
            continue;
        };
        let mut name = folder.clone();
        if let Some(su) = special_use
            && let Some((n, _)) = SPECIAL_USE.iter().find(|(_, u)| u.eq_ignore_ascii_case(su))
        {
            name = n.to_string();
        }
        if name == "INBOX" && junk {
            name = "Junk".into();
        }
        let path = if name == "INBOX" {
            Some(m.maildir.clone())
        } else {
            match store.folder_path(&name) {
                Some(p) if Folder::new(&p).exists() => Some(p),
                Some(p) if *create || name == "Junk" => match Folder::new(&m.maildir)
                    .create()
                    .map_err(|e| crate::session::imap::StoreError::Io(e.to_string()))
                    .and_then(|()| store.create(&name))
                {
                    Ok(()) => Some(p),
                    Err(crate::session::imap::StoreError::Exists) => Some(p),
                    Err(err) => {
                        tracing::warn!(mailbox = %m.address, folder = %name, error = ?err, "cannot create the Sieve folder; storing in INBOX");
                        None
                    }
                },
                Some(_) => {
                    tracing::warn!(mailbox = %m.address, folder = %name, "Sieve fileinto a folder that does not exist (no :create); storing in INBOX");
                    None
                }
                None => {
                    tracing::warn!(mailbox = %m.address, folder = %name, "Sieve fileinto an invalid folder name; storing in INBOX");
                    None
                }
            }
        };
        let (name, folder) = match path {
            Some(p) => (name, p),
            None => ("INBOX".to_string(), m.maildir.clone()),
        };
        let letters = flag_letters(flags);
        let kws = keywords(flags);
        match out
            .iter_mut()
            .find(|t| t.folder == folder && t.message == *message)
        {
            Some(t) => {
                let mut all: Vec<char> = t.flags.chars().chain(letters.chars()).collect();
                all.sort_unstable();
                all.dedup();
                t.flags = all.into_iter().collect();
                for k in kws {
                    if !t.keywords.iter().any(|x| x.eq_ignore_ascii_case(&k)) {
                        t.keywords.push(k);
                    }
                }
            }
            None => out.push(Target {
                name,
                folder,
                flags: letters,
                keywords: kws,
                message: *message,
            }),
        }
    }
    out
}

/// The messages an evaluation sends, as queue entries: each `redirect`
/// (the message with our `Delivered-To:` on top, from the original sender
/// — rewritten with SRS when it leaves, as alias forwarding is — for the
/// mailbox, so a loop comes back recognisable) and each vacation reply
/// (from the null sender, as the mailbox's own submission so it is
/// DKIM-signed). An address that cannot be routed is logged and skipped.
pub fn generated(
    tables: &Tables,
    e: &Evaluation,
    mailbox: &str,
    sender: &str,
    queue_id: &str,
    now: u64,
) -> Vec<crate::envelope::Accepted> {
    let mut out = Vec::new();
    for a in &e.outcome.actions {
        let (env_sender, to, body, auth) = match a {
            Action::Redirect { address, message } => {
                let Some(original) = e.original.as_ref() else {
                    continue;
                };
                let msg = if *message == 0 {
                    original.as_slice()
                } else {
                    e.outcome
                        .messages
                        .get(message)
                        .map_or(original.as_slice(), Vec::as_slice)
                };
                let mut body = format!("Delivered-To: {mailbox}\r\n").into_bytes();
                body.extend_from_slice(msg);
                (sender.to_string(), address, body, None)
            }
            Action::Reply { to, message } => {
                let mut body = message.clone();
                if !body.ends_with(b"\r\n") {
                    body.extend_from_slice(b"\r\n");
                }
                (String::new(), to, body, Some(mailbox.to_string()))
            }
            _ => continue,
        };
        let dests = match super::submit::route(tables, to) {
            Ok(d) => d,
            Err(r) => {
                tracing::warn!(id = queue_id, mailbox, to = %to, error = %r.message, "Sieve: cannot send to this address");
                continue;
            }
        };
        let mut envelope = crate::envelope::Envelope {
            id: crate::queue::new_id(),
            sender: env_sender,
            recipients: Vec::new(),
            deliveries: Vec::new(),
            ret: None,
            envid: None,
            body_8bit: body.iter().any(|b| *b >= 0x80),
            smtputf8: to.bytes().any(|b| b >= 0x80),
            client: crate::envelope::Client {
                ip: "127.0.0.1".into(),
                helo: String::new(),
                tls: None,
                auth,
                listener: LISTENER.into(),
            },
            received_at: now,
            size: body.len() as u64,
            junk: false,
            arc_seals: Default::default(),
        };
        let indexes = dests
            .into_iter()
            .map(|d| envelope.add_destination(d, now))
            .collect();
        // A redirect is recorded as for the mailbox (so it leaves with an
        // SRS sender); a reply as for its recipient.
        let record = if matches!(a, Action::Redirect { .. }) {
            mailbox.to_string()
        } else {
            to.clone()
        };
        envelope.recipients.push(crate::envelope::Recipient {
            address: record,
            orcpt: None,
            notify: crate::envelope::Notify::default(),
            deliveries: indexes,
        });
        tracing::info!(id = queue_id, mailbox, to = %to, kind = if matches!(a, Action::Redirect { .. }) { "redirect" } else { "vacation" }, "Sieve sends a message");
        out.push(crate::envelope::Accepted {
            envelope,
            message: body,
        });
    }
    out
}

/// The listener name queue entries made by Sieve carry.
pub const LISTENER: &str = "sieve";

/// Records the vacation and `duplicate` ids of a delivery that is done.
pub fn record_seen(state_dir: &Path, mailbox: &str, e: &Evaluation) {
    if e.outcome.seen.is_empty() {
        return;
    }
    let mut seen = Seen::load(state_dir, mailbox, e.now);
    for (id, secs) in &e.outcome.seen {
        seen.add(id, e.now.saturating_add(*secs));
    }
    if let Err(err) = seen.save() {
        tracing::warn!(mailbox, error = %err, "cannot record Sieve vacation/duplicate state");
    }
}

/// The spam score the message's SpamAssassin-style fields give, for
/// `spamtest` (RFC 5235): `X-Spam-Status: Yes, score=S required=R` maps S
/// onto 0..1 with R at 0.5 (so `spamtest :percent` is 50 at the
/// threshold and 100 at twice it); without it, `X-Spam-Flag: YES`/`NO` is
/// 1 or 0. No field: unknown (spamtest gives 0). The fields are trusted as
/// they are: whoever put them there (a scanner in front, or the sender)
/// only moves the message between INBOX and Junk.
fn spam_score(message: &[u8]) -> filter::SpamScore {
    let fields = filter::header_fields(message);
    let value_of = |name: &str| {
        fields
            .iter()
            .find_map(|(n, v)| n.eq_ignore_ascii_case(name).then(|| v.clone()))
    };
    if let Some(status) = value_of("X-Spam-Status") {
        let num = |key: &str| {
            status
                .split([' ', ',', '\t'])
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(score), Some(required)) = (num("score="), num("required="))
            && required > 0.0
            && score.is_finite()
        {
            return filter::SpamScore::Score((score / (2.0 * required)).clamp(0.0, 1.0));
        }
    }
    match value_of("X-Spam-Flag") {
        Some(v) if v.eq_ignore_ascii_case("yes") => filter::SpamScore::Score(1.0),
        Some(v) if v.eq_ignore_ascii_case("no") => filter::SpamScore::Score(0.0),
        _ => filter::SpamScore::Unknown,
    }
}

/// The virus scan result the message's fields give, for `virustest` (RFC
/// 5235): clamav-milter's `X-Virus-Status: Clean` / `Infected (NAME)`,
/// or `X-Virus-Scan: clean` / `infected`; none: unknown (virustest 0).
fn virus_result(message: &[u8]) -> filter::VirusResult {
    for (name, value) in filter::header_fields(message) {
        if name.eq_ignore_ascii_case("X-Virus-Status") || name.eq_ignore_ascii_case("X-Virus-Scan")
        {
            let v = value.to_ascii_lowercase();
            if v.starts_with("clean") {
                return filter::VirusResult::Clean;
            }
            if v.starts_with("infected") {
                return filter::VirusResult::Infected;
            }
        }
    }
    filter::VirusResult::Unknown
}

/// Whether the header already has `Delivered-To: <address>`.
fn delivered_to(message: &[u8], address: &str) -> bool {
    filter::header_fields(message)
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("Delivered-To") && v.eq_ignore_ascii_case(address))
}

/// What the scripts ask of the world, answered from the mailbox's Maildir
/// and script store.
struct DeliveryHost<'a> {
    filters: &'a Filters,
    store: MailStore,
    scripts: ScriptStore,
    seen: Seen,
}

impl filter::Host for DeliveryHost<'_> {
    fn include(&mut self, name: &str, global: bool) -> Option<Arc<Script>> {
        if global {
            return self.filters.global.get(name).cloned();
        }
        let text = self.scripts.get(name).ok()??;
        filter::compile(name, &text, self.filters.engine.limits())
            .ok()
            .map(Arc::new)
    }

    fn folder_exists(&mut self, name: &str) -> bool {
        name.eq_ignore_ascii_case("INBOX")
            || self
                .store
                .folder_path(name)
                .is_some_and(|p| Folder::new(p).exists())
    }

    fn special_use_exists(&mut self, special_use: &str) -> bool {
        SPECIAL_USE
            .iter()
            .find(|(_, u)| u.eq_ignore_ascii_case(special_use))
            .is_some_and(|(n, _)| self.folder_exists(n))
    }

    fn seen(&mut self, id: &str) -> bool {
        self.seen.contains(id)
    }
}

/// Ids remembered for a mailbox, with when they expire.
struct Seen {
    path: PathBuf,
    entries: Vec<(u64, String)>,
}

fn digest(id: &str) -> String {
    let d = Sha256::digest(id.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// At most this many ids per mailbox; the soonest to expire go first.
const MAX_SEEN: usize = 10_000;

impl Seen {
    fn load(state_dir: &Path, mailbox: &str, now: u64) -> Seen {
        let path = ScriptStore::for_mailbox(state_dir, mailbox)
            .dir()
            .join(".seen");
        let entries = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (t, h) = l.split_once(' ')?;
                let t: u64 = t.parse().ok()?;
                (t > now && h.len() == 64).then(|| (t, h.to_string()))
            })
            .collect();
        Seen { path, entries }
    }

    fn contains(&self, id: &str) -> bool {
        let h = digest(id);
        self.entries.iter().any(|(_, e)| *e == h)
    }

    fn add(&mut self, id: &str, expires: u64) {
        let h = digest(id);
        self.entries.retain(|(_, e)| *e != h);
        self.entries.push((expires, h));
        if self.entries.len() > MAX_SEEN {
            self.entries.sort_by_key(|e| std::cmp::Reverse(e.0));
            self.entries.truncate(MAX_SEEN);
        }
    }

    fn save(&self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent()
            && !dir.is_dir()
        {
            std::fs::create_dir_all(dir)?;
        }
        let text: String = self
            .entries
            .iter()
            .map(|(t, h)| format!("{t} {h}\n"))
            .collect();
        fsutil::write_atomic_durable(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_flags_become_maildir_letters() {
        let f = |v: &[&str]| flag_letters(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(f(&["\\Seen", "\\Flagged", "$Work", "\\SEEN"]), "FS");
        assert_eq!(f(&[]), "");
        assert_eq!(f(&["\\Answered", "\\Draft", "\\Deleted"]), "DRT");
        let k = |v: &[&str]| keywords(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            k(&["\\Seen", "$label1", "Work", "work", "bad word", "x(y", ""]),
            ["$label1", "Work"]
        );
    }

    #[test]
    fn seen_ids_survive_a_reload_until_they_expire() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Seen::load(d.path(), "bob@example.test", 100);
        assert!(!s.contains("_valice"));
        s.add("_valice", 200);
        s.save().unwrap();
        let s = Seen::load(d.path(), "bob@example.test", 150);
        assert!(s.contains("_valice"));
        let s = Seen::load(d.path(), "bob@example.test", 200);
        assert!(!s.contains("_valice"), "expired");
    }

    #[test]
    fn delivered_to_and_spam_flag_are_read_from_the_header_only() {
        let m = b"Delivered-To: Bob@Example.test\r\nX-Spam-Flag: YES\r\n\r\nDelivered-To: x@y\r\n";
        assert!(delivered_to(m, "bob@example.test"));
        assert!(!delivered_to(m, "x@y"));
        assert_eq!(spam_score(m), filter::SpamScore::Score(1.0));
        assert_eq!(
            spam_score(b"Subject: x\r\n\r\n"),
            filter::SpamScore::Unknown
        );
    }

    /// What `scan { }` writes is what spamtest/virustest read: the
    /// score against the junk threshold (50 % there), the virus status.
    #[test]
    fn scan_fields_are_what_spamtest_and_virustest_read() {
        use crate::inbound::scan::{Outcome, Results, decide};
        use crate::proto::scan::{SpamReport, VirusReport};
        let table = crate::tables::ScanTable {
            spamd: None,
            rspamd: None,
            clamd: None,
            timeout_ms: 1000,
            max_size: 1 << 20,
            fail_open: true,
            submission: false,
            deliver: true,
            policy: crate::tables::ScanPolicy {
                spam_junk: 5.0,
                spam_reject: 15.0,
                reject_spam: true,
                virus: crate::tables::VirusAction::Junk,
            },
            learn: None,
        };
        let fields = |score: f64, virus: VirusReport| {
            let r = Results {
                spamd: Some(Outcome::Done(SpamReport {
                    is_spam: score >= 5.0,
                    score,
                    threshold: 5.0,
                    // Enough rules that the status is folded.
                    symbols: (0..12).map(|i| format!("SOME_RULE_{i}")).collect(),
                    action: None,
                    subject: None,
                })),
                clamd: Some(Outcome::Done(virus)),
                ..Results::default()
            };
            let mut m = decide(&table, &r, "mx.test").header.into_bytes();
            m.extend_from_slice(b"Subject: x\r\n\r\nbody\r\n");
            m
        };
        let m = fields(5.0, VirusReport::Clean);
        assert_eq!(spam_score(&m), filter::SpamScore::Score(0.5));
        assert_eq!(virus_result(&m), filter::VirusResult::Clean);
        let m = fields(12.5, VirusReport::Infected("Eicar-Test-Signature".into()));
        assert_eq!(spam_score(&m), filter::SpamScore::Score(1.0));
        assert_eq!(virus_result(&m), filter::VirusResult::Infected);
        let m = fields(-2.0, VirusReport::Clean);
        assert_eq!(spam_score(&m), filter::SpamScore::Score(0.0));
        // Not scanned: spamtest and virustest say unknown, not clean.
        let skipped = Results {
            too_large: Some(2 << 20),
            ..Results::default()
        };
        let mut m = decide(&table, &skipped, "mx.test").header.into_bytes();
        m.extend_from_slice(b"Subject: x\r\n\r\n");
        assert_eq!(spam_score(&m), filter::SpamScore::Unknown);
        assert_eq!(virus_result(&m), filter::VirusResult::Unknown);
    }
}
