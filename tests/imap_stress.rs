//! Model-based concurrent IMAP stress: N clients on one mailbox doing a
//! seeded random mix (APPEND, STORE with keywords, EXPUNGE and UID EXPUNGE,
//! FETCH and UID FETCH, SEARCH, IDLE, NOOP, COPY, MOVE, SELECT/EXAMINE, and
//! files dropped into `new/` as a delivery agent would, and DELETE, CREATE
//! and APPEND of a mailbox of its own), over real sockets
//! against the real `mailc serve` binary.
//!
//! Every response is decoded by imap-codec, an independent parser (a
//! response it rejects is an error), and checked against the client's own
//! model of the mailbox:
//! - EXISTS never shrinks without EXPUNGE; RECENT ≤ EXISTS;
//! - EXPUNGE and FETCH name sequence numbers the client knows, never an
//!   EXPUNGE during FETCH, STORE or SEARCH by sequence number;
//! - the UID of a sequence number never changes, UIDs ascend with them;
//! - every keyword in FETCH FLAGS was announced in FLAGS before;
//! - a message's MODSEQ never goes down, and its flags never change
//!   without a new MODSEQ;
//! - a mailbox deleted and created again holds only its new messages and
//!   has a UIDVALIDITY it never had before;
//! - no BAD, no unexpected NO; at the end (all clients done, then NOOP)
//!   every client's view equals the server's `UID FETCH 1:*`.
//!
//! Each failure prints the client's transcript tail. `cargo test` runs a
//! fixed seed; `bench/imap_stress.sh` runs long ones (MAILC_STRESS_CLIENTS,
//! MAILC_STRESS_OPS, MAILC_STRESS_SEED). The `#[ignore]`d Dovecot variant
//! runs the same clients against Dovecot: a check of the checker (`.ci/run`
//! runs it in the interop step).

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use imap_codec::decode::{Decoder, GreetingDecodeError, ResponseDecodeError};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{FlagFetch, FlagPerm};
use imap_codec::imap_types::response::{Code, Data, Response, Status, StatusKind};
use imap_codec::imap_types::status::StatusDataItem;
use imap_codec::{GreetingCodec, ResponseCodec};

use common::server::{Server, standard_domain};

const MAILBOX: &str = "stress";
const SIDE: &str = "stress-side";
/// Keywords the clients use; a client introduces them at random.
const KEYWORDS: usize = 12;
/// Lines of transcript kept per client for failure reports.
const TAIL: usize = 40;
/// No single read waits longer than this (a hang is an error).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the run is pointed at.
struct Target {
    addr: SocketAddr,
    /// The `stress` folder's Maildir (files are dropped into its `new/`).
    maildir: PathBuf,
    user: String,
    pass: String,
    /// Dovecot sometimes answers CREATE right after a successful DELETE of
    /// the same name with `NO [ALREADYEXISTS]`; against it that is
    /// counted, not failed (never against mailc).
    tolerate_recreate_race: bool,
}

/// The parameters of a run.
#[derive(Clone, Copy)]
struct Params {
    clients: usize,
    ops: usize,
    seed: u64,
    /// Overall deadline.
    deadline: Duration,
}

fn params(clients: usize, ops: usize) -> Params {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    Params {
        clients: env("MAILC_STRESS_CLIENTS", clients as u64) as usize,
        ops: env("MAILC_STRESS_OPS", ops as u64) as usize,
        seed: env("MAILC_STRESS_SEED", 0x05ee_d1a9),
        deadline: Duration::from_secs(env("MAILC_STRESS_SECONDS", 300)),
    }
}

/// xorshift64*: deterministic per client, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One failure: its kind (for the summary), what happened, the tail.
#[derive(Debug, Clone)]
struct Failure {
    client: usize,
    kind: &'static str,
    what: String,
    tail: Vec<String>,
}

/// A message as one client knows it, by sequence number.
#[derive(Debug, Clone, Default)]
struct Known {
    uid: Option<u32>,
}

/// The client's model of the selected mailbox.
#[derive(Default)]
struct Model {
    msgs: Vec<Known>,
    /// Flags announced by `* FLAGS`, lower case.
    announced: HashSet<String>,
    /// Last MODSEQ and flags seen per UID.
    by_uid: HashMap<u32, (u64, Vec<String>)>,
    read_only: bool,
}

/// The command whose responses are being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// EXPUNGE may be sent.
    Free,
    /// FETCH, STORE or SEARCH by sequence number: no EXPUNGE.
    NoExpunge,
    /// LOGOUT: BYE expected.
    Logout,
}

struct Client {
    id: usize,
    stream: TcpStream,
    buf: Vec<u8>,
    tail: VecDeque<String>,
    model: Model,
    failures: Vec<Failure>,
    tags: u32,
    rng: Rng,
    maildir: PathBuf,
    /// Responses seen (for the summary).
    responses: u64,
    /// The last `* STATUS` items.
    status: Vec<StatusDataItem>,
    /// UIDVALIDITYs the client's private mailbox has had.
    private_validities: Vec<u32>,
    tolerate_recreate_race: bool,
    /// CREATE after DELETE refused where tolerated.
    recreate_races: u64,
}

/// A tagged completion.
struct Done {
    kind: StatusKind,
    text: String,
    /// Numbers from `* SEARCH`.
    search: Vec<u32>,
    /// Sequence numbers of FETCH responses.
    fetched: Vec<u32>,
}

impl Client {
    fn connect(id: usize, t: &Target, seed: u64) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&t.addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            id,
            stream,
            buf: Vec::new(),
            tail: VecDeque::new(),
            model: Model::default(),
            failures: Vec::new(),
            tags: 0,
            rng: Rng::new(seed ^ (id as u64).wrapping_add(1).wrapping_mul(0x1000_0001)),
            maildir: t.maildir.clone(),
            responses: 0,
            status: Vec::new(),
            private_validities: Vec::new(),
            tolerate_recreate_race: t.tolerate_recreate_race,
            recreate_races: 0,
        };
        let greeting = c.read_raw()?;
        if !matches!(GreetingCodec::default().decode(&greeting), Ok((rest, _)) if rest.is_empty())
            && !matches!(
                GreetingCodec::default().decode(&greeting),
                Err(GreetingDecodeError::Incomplete)
            )
        {
            c.fail("parse", format!("greeting rejected: {}", show(&greeting)));
        }
        let done = c.command(&format!("LOGIN {} {}", t.user, t.pass), Ctx::Free)?;
        if done.kind != StatusKind::Ok {
            c.fail("login", done.text);
        }
        Ok(c)
    }

    fn fail(&mut self, kind: &'static str, what: String) {
        self.failures.push(Failure {
            client: self.id,
            kind,
            what,
            tail: self.tail.iter().cloned().collect(),
        });
    }

    fn note(&mut self, line: String) {
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let shown = show(bytes);
        self.note(format!("C: {shown}"));
        self.stream.write_all(bytes)
    }

    /// One complete response (a line with its literals).
    fn read_raw(&mut self) -> std::io::Result<Vec<u8>> {
        let mut scan = 0;
        loop {
            if let Some(p) = self.buf[scan..].windows(2).position(|w| w == b"\r\n") {
                let end = scan + p + 2;
                match literal_len(&self.buf[..end - 2]) {
                    Some(n) if self.buf.len() >= end + n => {
                        scan = end + n;
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        let r: Vec<u8> = self.buf.drain(..end).collect();
                        self.note(format!("S: {}", show(&r)));
                        return Ok(r);
                    }
                }
            }
            let mut chunk = [0u8; 16384];
            // A stop and continue (SIGSTOP/SIGCONT, a frozen machine) ends a
            // read with a timeout with EINTR (signal(7)): read again.
            let n = loop {
                match self.stream.read(&mut chunk) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed by the server",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn next_tag(&mut self) -> String {
        self.tags += 1;
        format!("c{}t{}", self.id, self.tags)
    }

    /// Sends a command and reads to its completion.
    fn command(&mut self, cmd: &str, ctx: Ctx) -> std::io::Result<Done> {
        let tag = self.next_tag();
        self.send(format!("{tag} {cmd}\r\n").as_bytes())?;
        self.complete(&tag, ctx)
    }

    /// Reads responses until `tag` completes, checking each.
    fn complete(&mut self, tag: &str, ctx: Ctx) -> std::io::Result<Done> {
        let mut search = Vec::new();
        let mut fetched = Vec::new();
        loop {
            let raw = self.read_raw()?;
            self.responses += 1;
            let parsed = match ResponseCodec::default().decode(&raw) {
                Ok((b"", r)) => Some(r),
                Ok(_) | Err(ResponseDecodeError::Incomplete) => {
                    self.fail("parse", format!("incomplete or trailing: {}", show(&raw)));
                    None
                }
                Err(ResponseDecodeError::LiteralFound { .. }) => {
                    self.fail("parse", format!("literal not taken: {}", show(&raw)));
                    None
                }
                Err(e) => {
                    // ESEARCH has no grammar in this imap-codec; we never ask.
                    self.fail(
                        "parse",
                        format!("imap-codec rejects ({e:?}): {}", show(&raw)),
                    );
                    None
                }
            };
            let Some(resp) = parsed else {
                // Still find the tagged end so the run goes on.
                if raw.starts_with(format!("{tag} ").as_bytes()) {
                    return Ok(Done {
                        kind: StatusKind::Bad,
                        text: show(&raw),
                        search,
                        fetched,
                    });
                }
                continue;
            };
            match resp {
                Response::Status(Status::Tagged(t)) => {
                    if t.tag.inner() != tag {
                        self.fail("protocol", format!("unexpected tag: {}", show(&raw)));
                        continue;
                    }
                    if t.body.kind == StatusKind::Bad {
                        self.fail("bad", show(&raw));
                    }
                    return Ok(Done {
                        kind: t.body.kind,
                        text: show(&raw),
                        search,
                        fetched,
                    });
                }
                Response::Status(Status::Bye(_)) => {
                    if ctx != Ctx::Logout {
                        self.fail("bye", show(&raw));
                    }
                }
                Response::Status(Status::Untagged(body)) => {
                    if let Some(Code::PermanentFlags(list)) = &body.code {
                        self.check_permanent(list, &raw);
                    }
                    if body.kind != StatusKind::Ok {
                        self.fail("untagged-no", show(&raw));
                    }
                }
                Response::CommandContinuationRequest(_) => {
                    self.fail(
                        "protocol",
                        format!("unexpected continuation: {}", show(&raw)),
                    );
                }
                Response::Data(d) => {
                    self.observe(d, ctx, &raw, &mut search, &mut fetched);
                }
            }
        }
    }

    fn check_permanent(&mut self, list: &[FlagPerm], raw: &[u8]) {
        for f in list {
            if let FlagPerm::Flag(f) = f {
                let name = f.to_string().to_ascii_lowercase();
                if !name.starts_with('\\') && !self.model.announced.contains(&name) {
                    self.fail(
                        "flags-order",
                        format!("PERMANENTFLAGS names {name} not in FLAGS: {}", show(raw)),
                    );
                }
            }
        }
    }

    /// Checks one untagged data response against the model and applies it.
    fn observe(
        &mut self,
        d: Data,
        ctx: Ctx,
        raw: &[u8],
        search: &mut Vec<u32>,
        fetched: &mut Vec<u32>,
    ) {
        match d {
            Data::Flags(list) => {
                self.model.announced = list
                    .iter()
                    .map(|f| f.to_string().to_ascii_lowercase())
                    .collect();
            }
            Data::Exists(n) => {
                let have = self.model.msgs.len() as u32;
                if n < have {
                    self.fail(
                        "exists-shrank",
                        format!("EXISTS {n} after {have} without EXPUNGE"),
                    );
                    self.model.msgs.truncate(n as usize);
                }
                self.model.msgs.resize(n as usize, Known::default());
            }
            Data::Recent(n) => {
                let have = self.model.msgs.len() as u32;
                if n > have {
                    self.fail("recent>exists", format!("RECENT {n} with EXISTS {have}"));
                }
            }
            Data::Expunge(n) => {
                let n = n.get();
                if ctx == Ctx::NoExpunge {
                    self.fail(
                        "expunge-during",
                        format!("EXPUNGE {n} during a sequence-number command"),
                    );
                }
                let have = self.model.msgs.len() as u32;
                if n > have {
                    self.fail("expunge-unknown", format!("EXPUNGE {n} with EXISTS {have}"));
                } else {
                    self.model.msgs.remove(n as usize - 1);
                }
            }
            Data::Fetch { seq, items } => {
                let seq = seq.get();
                fetched.push(seq);
                self.observe_fetch(seq, items.as_ref(), raw);
            }
            Data::Status { items, .. } => {
                self.status = items.to_vec();
            }
            Data::Search(nums, _) => {
                search.extend(nums.iter().map(|n| n.get()));
            }
            Data::Vanished { .. } => {
                self.fail(
                    "protocol",
                    format!("VANISHED without QRESYNC: {}", show(raw)),
                );
            }
            _ => {}
        }
    }

    fn observe_fetch(&mut self, seq: u32, items: &[MessageDataItem], raw: &[u8]) {
        let have = self.model.msgs.len() as u32;
        if seq == 0 || seq > have {
            self.fail("fetch-unknown", format!("FETCH {seq} with EXISTS {have}"));
            return;
        }
        let mut uid = None;
        let mut flags: Option<Vec<String>> = None;
        let mut modseq = None;
        for it in items {
            match it {
                MessageDataItem::Uid(u) => uid = Some(u.get()),
                MessageDataItem::Flags(f) => {
                    flags = Some(
                        f.iter()
                            .filter_map(|x| match x {
                                FlagFetch::Flag(f) => Some(f.to_string()),
                                FlagFetch::Recent => None,
                            })
                            .collect(),
                    )
                }
                MessageDataItem::ModSeq(m) => modseq = Some(m.get()),
                _ => {}
            }
        }
        let i = seq as usize - 1;
        if let Some(u) = uid {
            match self.model.msgs[i].uid {
                Some(k) if k != u => {
                    self.fail(
                        "uid-changed",
                        format!("message {seq} was UID {k}, now UID {u}: {}", show(raw)),
                    );
                }
                _ => {
                    let below = self.model.msgs[..i].iter().filter_map(|m| m.uid).max();
                    let above = self.model.msgs[i + 1..].iter().filter_map(|m| m.uid).min();
                    if below.is_some_and(|b| b >= u) || above.is_some_and(|a| a <= u) {
                        self.fail(
                            "uid-order",
                            format!("UID {u} at {seq} out of order ({below:?}, {above:?})"),
                        );
                    }
                    self.model.msgs[i].uid = Some(u);
                }
            }
        }
        if let Some(fl) = &flags {
            for f in fl {
                let lower = f.to_ascii_lowercase();
                if !f.starts_with('\\') && !self.model.announced.contains(&lower) {
                    self.fail(
                        "flags-order",
                        format!("keyword {f} used before FLAGS announced it: {}", show(raw)),
                    );
                    // One report per keyword.
                    self.model.announced.insert(lower);
                }
            }
        }
        let Some(u) = uid.or(self.model.msgs[i].uid) else {
            return;
        };
        if let (Some(m), Some(fl)) = (modseq, &flags) {
            let mut sorted: Vec<String> = fl.iter().map(|f| f.to_ascii_lowercase()).collect();
            sorted.sort();
            if let Some((old_m, old_f)) = self.model.by_uid.get(&u) {
                if m < *old_m {
                    self.fail(
                        "modseq-down",
                        format!("UID {u} MODSEQ {m} after {old_m}: {}", show(raw)),
                    );
                } else if m == *old_m && *old_f != sorted {
                    self.fail(
                        "modseq-same",
                        format!("UID {u} flags changed, MODSEQ stayed {m}: {}", show(raw)),
                    );
                }
            }
            self.model.by_uid.insert(u, (m, sorted));
        } else if let Some(m) = modseq
            && let Some((old_m, _)) = self.model.by_uid.get(&u)
            && m < *old_m
        {
            self.fail("modseq-down", format!("UID {u} MODSEQ {m} after {old_m}"));
        }
    }

    /// Accepts OK; NO only when `no_ok` says so; BAD was reported already.
    fn expect_ok(&mut self, what: &str, done: &Done, no_ok: bool) {
        if done.kind == StatusKind::No && !no_ok {
            self.fail("unexpected-no", format!("{what}: {}", done.text));
        }
    }

    fn select(&mut self, read_only: bool) -> std::io::Result<()> {
        self.model = Model {
            read_only,
            ..Model::default()
        };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let done = self.command(&format!("{verb} {MAILBOX} (CONDSTORE)"), Ctx::Free)?;
        self.expect_ok(verb, &done, false);
        Ok(())
    }

    /// A random sequence set within what the client knows.
    fn seq_set(&mut self) -> Option<String> {
        let n = self.model.msgs.len() as u64;
        if n == 0 {
            return None;
        }
        let a = self.rng.below(n) + 1;
        Some(if self.rng.chance(30) {
            let b = (a + self.rng.below(5)).min(n);
            format!("{a}:{b}")
        } else {
            a.to_string()
        })
    }

    /// A random UID set: a known UID, or a range to `*`.
    fn uid_set(&mut self) -> String {
        let known: Vec<u32> = self.model.msgs.iter().filter_map(|m| m.uid).collect();
        if known.is_empty() || self.rng.chance(20) {
            return "1:*".into();
        }
        let u = known[self.rng.below(known.len() as u64) as usize];
        if self.rng.chance(30) {
            format!("{u}:*")
        } else {
            u.to_string()
        }
    }

    fn flags(&mut self) -> String {
        let mut f = Vec::new();
        for sys in ["\\Seen", "\\Flagged", "\\Answered", "\\Deleted"] {
            if self.rng.chance(if sys == "\\Deleted" { 15 } else { 25 }) {
                f.push(sys.to_string());
            }
        }
        if self.rng.chance(50) {
            f.push(format!("$Label{}", self.rng.below(KEYWORDS as u64)));
        }
        if f.is_empty() {
            f.push("\\Seen".into());
        }
        f.join(" ")
    }

    fn message(&mut self) -> Vec<u8> {
        let n = self.rng.next();
        let subjects = [
            "plain subject".to_string(),
            "with \"quotes\" and \\backslash\\".to_string(),
            "=?utf-8?q?caf=C3=A9_=22quoted=22?=".to_string(),
            "Grüße aus Köln".to_string(),
            format!("{{{}}}", n % 100),
            "tab\tand  spaces ".to_string(),
        ];
        let subject = &subjects[(n % subjects.len() as u64) as usize];
        format!(
            "From: \"Stress, Client {}\" <c{}@example.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nMessage-ID: <{n}@stress.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody {n}\r\n",
            self.id, self.id
        )
        .into_bytes()
    }

    fn append(&mut self, mailbox: &str) -> std::io::Result<()> {
        let data = self.message();
        let flags = self.flags().replace("\\Deleted", "\\Draft");
        let tag = self.next_tag();
        self.send(format!("{tag} APPEND {mailbox} ({flags}) {{{}}}\r\n", data.len()).as_bytes())?;
        // Untagged data may come before the continuation.
        loop {
            let raw = self.read_raw()?;
            if raw.starts_with(b"+") {
                break;
            }
            if raw.starts_with(format!("{tag} ").as_bytes()) {
                self.fail("unexpected-no", format!("APPEND refused: {}", show(&raw)));
                return Ok(());
            }
            let mut s = Vec::new();
            let mut f = Vec::new();
            if let Ok((_, Response::Data(d))) = ResponseCodec::default().decode(&raw) {
                self.observe(d, Ctx::Free, &raw, &mut s, &mut f);
            }
        }
        let mut body = data;
        body.extend_from_slice(b"\r\n");
        self.send(&body)?;
        let done = self.complete(&tag, Ctx::Free)?;
        self.expect_ok("APPEND", &done, false);
        Ok(())
    }

    /// A message dropped into `new/` as a delivery agent would (tmp,
    /// then rename): it is \Recent for exactly one session.
    fn deliver(&mut self) -> std::io::Result<()> {
        let data = self.message();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{}.M{}P{}Q{}c{}.stress,S={}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.rng.next() % 1_000_000,
            self.id,
            data.len()
        );
        let tmp = self.maildir.join("tmp").join(&name);
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, self.maildir.join("new").join(&name))?;
        self.note(format!("*: delivered {name}"));
        Ok(())
    }

    /// DELETE and CREATE of the client's own mailbox, a few APPENDs, then
    /// STATUS: only the new messages, and a UIDVALIDITY it never had.
    fn recreate_private(&mut self) -> std::io::Result<()> {
        let name = format!("stress-c{}", self.id);
        // NO when it does not exist yet.
        let _ = self.command(&format!("DELETE {name}"), Ctx::Free)?;
        let done = self.command(&format!("CREATE {name}"), Ctx::Free)?;
        if self.tolerate_recreate_race && done.text.contains("[ALREADYEXISTS]") {
            self.recreate_races += 1;
            return Ok(());
        }
        self.expect_ok("CREATE", &done, false);
        let k = 1 + self.rng.below(3) as u32;
        for _ in 0..k {
            self.append(&name)?;
        }
        self.status.clear();
        let done = self.command(&format!("STATUS {name} (MESSAGES UIDVALIDITY)"), Ctx::Free)?;
        self.expect_ok("STATUS", &done, false);
        let mut messages = None;
        let mut validity = None;
        for it in &self.status {
            match it {
                StatusDataItem::Messages(n) => messages = Some(*n),
                StatusDataItem::UidValidity(v) => validity = Some(v.get()),
                _ => {}
            }
        }
        if messages != Some(k) {
            self.fail(
                "recreated-has-old",
                format!("{name} recreated with {k} APPENDs holds {messages:?}"),
            );
        }
        match validity {
            Some(v) if self.private_validities.contains(&v) => self.fail(
                "recreated-same-uidvalidity",
                format!("{name} recreated with an old UIDVALIDITY {v}"),
            ),
            Some(v) => self.private_validities.push(v),
            None => self.fail("protocol", format!("STATUS {name} without UIDVALIDITY")),
        }
        Ok(())
    }

    /// One random operation.
    fn step(&mut self) -> std::io::Result<()> {
        let roll = self.rng.below(100);
        let writable = !self.model.read_only;
        match roll {
            0..15 => self.append(MAILBOX),
            15..20 => self.deliver(),
            20..40 if writable => {
                let flags = self.flags();
                let sign = if self.rng.chance(70) { "+" } else { "-" };
                let silent = if self.rng.chance(20) { ".SILENT" } else { "" };
                if self.rng.chance(50) {
                    let set = self.uid_set();
                    let done = self.command(
                        &format!("UID STORE {set} {sign}FLAGS{silent} ({flags})"),
                        Ctx::Free,
                    )?;
                    self.expect_ok("UID STORE", &done, false);
                } else if let Some(set) = self.seq_set() {
                    let done = self.command(
                        &format!("STORE {set} {sign}FLAGS{silent} ({flags})"),
                        Ctx::NoExpunge,
                    )?;
                    // A message expunged by another session may be refused.
                    self.expect_ok("STORE", &done, expunge_refusal(&done));
                }
                Ok(())
            }
            40..47 if writable => {
                let done = self.command("EXPUNGE", Ctx::Free)?;
                self.expect_ok("EXPUNGE", &done, false);
                Ok(())
            }
            47..50 if writable => {
                let set = self.uid_set();
                let done = self.command(&format!("UID EXPUNGE {set}"), Ctx::Free)?;
                self.expect_ok("UID EXPUNGE", &done, false);
                Ok(())
            }
            50..65 => {
                let items = if self.rng.chance(20) {
                    "(UID FLAGS MODSEQ RFC822.SIZE ENVELOPE)"
                } else {
                    "(UID FLAGS MODSEQ)"
                };
                if self.rng.chance(50) {
                    let set = self.uid_set();
                    let done = self.command(&format!("UID FETCH {set} {items}"), Ctx::Free)?;
                    self.expect_ok("UID FETCH", &done, false);
                } else if let Some(set) = self.seq_set() {
                    let done = self.command(&format!("FETCH {set} {items}"), Ctx::NoExpunge)?;
                    self.expect_ok("FETCH", &done, expunge_refusal(&done));
                }
                Ok(())
            }
            65..72 => {
                let key = match self.rng.below(3) {
                    0 => "UNSEEN".to_string(),
                    1 => format!("KEYWORD $Label{}", self.rng.below(KEYWORDS as u64)),
                    _ => "DELETED".to_string(),
                };
                let done = self.command(&format!("SEARCH {key}"), Ctx::NoExpunge)?;
                self.expect_ok("SEARCH", &done, false);
                let have = self.model.msgs.len() as u32;
                if let Some(&bad) = done.search.iter().find(|&&n| n == 0 || n > have) {
                    self.fail("search-unknown", format!("SEARCH names {bad} of {have}"));
                }
                Ok(())
            }
            72..77 => {
                let tag = self.next_tag();
                self.send(format!("{tag} IDLE\r\n").as_bytes())?;
                loop {
                    let raw = self.read_raw()?;
                    if raw.starts_with(b"+") {
                        break;
                    }
                    let (mut s, mut f) = (Vec::new(), Vec::new());
                    match ResponseCodec::default().decode(&raw) {
                        Ok((_, Response::Data(d))) => {
                            self.observe(d, Ctx::Free, &raw, &mut s, &mut f)
                        }
                        Ok(_) => {}
                        Err(e) => self.fail("parse", format!("{e:?}: {}", show(&raw))),
                    }
                }
                std::thread::sleep(Duration::from_millis(10 + self.rng.below(60)));
                self.send(b"DONE\r\n")?;
                let done = self.complete(&tag, Ctx::Free)?;
                self.expect_ok("IDLE", &done, false);
                Ok(())
            }
            77..85 => {
                let done = self.command("NOOP", Ctx::Free)?;
                self.expect_ok("NOOP", &done, false);
                Ok(())
            }
            85..91 => {
                let verb = if self.rng.chance(40) && writable {
                    "MOVE"
                } else {
                    "COPY"
                };
                if self.rng.chance(50) {
                    let set = self.uid_set();
                    let done = self.command(&format!("UID {verb} {set} {SIDE}"), Ctx::Free)?;
                    self.expect_ok(verb, &done, expunge_refusal(&done));
                } else if let Some(set) = self.seq_set() {
                    // MOVE by sequence number may expunge (its own messages).
                    let done = self.command(&format!("{verb} {set} {SIDE}"), Ctx::Free)?;
                    self.expect_ok(verb, &done, expunge_refusal(&done));
                }
                Ok(())
            }
            91..94 => {
                let ro = self.rng.chance(30);
                self.select(ro)
            }
            94..97 => {
                let done =
                    self.command(&format!("STATUS {MAILBOX} (MESSAGES UIDNEXT)"), Ctx::Free)?;
                self.expect_ok("STATUS", &done, false);
                Ok(())
            }
            _ => self.recreate_private(),
        }
    }

    /// After every client is done: the view must equal the server's.
    fn final_check(&mut self) -> std::io::Result<()> {
        let done = self.command("NOOP", Ctx::Free)?;
        self.expect_ok("NOOP", &done, false);
        let before: Vec<Option<u32>> = self.model.msgs.iter().map(|m| m.uid).collect();
        let done = self.command("UID FETCH 1:* (UID FLAGS)", Ctx::Free)?;
        self.expect_ok("final UID FETCH", &done, false);
        let n = self.model.msgs.len();
        let mut seen = done.fetched.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != n || before.len() != n {
            self.fail(
                "final-view",
                format!(
                    "view had {} messages, server lists {} (after NOOP, EXISTS {n})",
                    before.len(),
                    seen.len()
                ),
            );
        }
        for (i, (b, m)) in before.iter().zip(&self.model.msgs).enumerate() {
            if b.is_some() && b != &m.uid {
                self.fail(
                    "final-view",
                    format!("message {} was UID {b:?}, server says {:?}", i + 1, m.uid),
                );
                break;
            }
        }
        let _ = self.command("LOGOUT", Ctx::Logout);
        Ok(())
    }
}

/// A NO a client may get for a message another session expunged.
fn expunge_refusal(done: &Done) -> bool {
    done.kind == StatusKind::No
        && (done.text.contains("EXPUNGEISSUED")
            || done.text.to_ascii_lowercase().contains("expunged")
            || done.text.contains("no longer exist"))
}

/// `{n}` or `{n+}` at the end of a line: the literal's length.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 9 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Bytes shown in a transcript: printable, long ones cut.
fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim_end_matches("\r\n").replace("\r\n", "⏎");
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// The whole run: setup session, N clients, final checks. Returns the
/// failures and a summary line.
fn run(t: &Target, p: Params) -> (Vec<Failure>, String) {
    // Setup: the folders exist and start empty of our test's messages.
    let mut setup = Client::connect(usize::MAX, t, p.seed).expect("connect for setup");
    for m in [MAILBOX, SIDE] {
        let _ = setup.command(&format!("CREATE {m}"), Ctx::Free);
    }
    let _ = setup.command("LOGOUT", Ctx::Logout);
    let mut failures = setup.failures;

    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(p.clients));
    let all: Arc<Mutex<Vec<Failure>>> = Arc::new(Mutex::new(Vec::new()));
    let totals = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let mut handles = Vec::new();
    for id in 0..p.clients {
        let t = Target {
            addr: t.addr,
            maildir: t.maildir.clone(),
            user: t.user.clone(),
            pass: t.pass.clone(),
            tolerate_recreate_race: t.tolerate_recreate_race,
        };
        let barrier = barrier.clone();
        let all = all.clone();
        let totals = totals.clone();
        handles.push(std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut ops = 0u64;
            let mut responses = 0u64;
            let mut races = 0u64;
            let result = (|| -> std::io::Result<()> {
                let mut c = Client::connect(id, &t, p.seed)?;
                let r = (|| {
                    c.select(false)?;
                    for _ in 0..p.ops {
                        if started.elapsed() > p.deadline {
                            c.fail("deadline", format!("not done after {:?}", p.deadline));
                            break;
                        }
                        c.step()?;
                        ops += 1;
                    }
                    Ok(())
                })();
                // Every client waits for the others, even one that failed.
                barrier.wait();
                let r = r.and_then(|()| {
                    if c.model.read_only {
                        c.select(false)?;
                    }
                    c.final_check()
                });
                if let Err(e) = r {
                    c.fail("io", format!("{e}"));
                }
                responses = c.responses;
                races = c.recreate_races;
                failures.append(&mut c.failures);
                Ok(())
            })();
            if let Err(e) = result {
                failures.push(Failure {
                    client: id,
                    kind: "io",
                    what: format!("connect/login: {e}"),
                    tail: Vec::new(),
                });
                barrier.wait();
            }
            all.lock().unwrap().append(&mut failures);
            let mut tot = totals.lock().unwrap();
            tot.0 += ops;
            tot.1 += responses;
            tot.2 += races;
        }));
    }
    for h in handles {
        h.join().expect("client thread");
    }
    failures.append(&mut all.lock().unwrap());
    let (ops, responses, races) = *totals.lock().unwrap();
    let tolerated = if t.tolerate_recreate_race {
        format!(", {races} CREATE-after-DELETE refusals tolerated")
    } else {
        String::new()
    };
    let summary = format!(
        "{} clients, {ops} operations, {responses} responses in {:.1?} (seed {:#x}): {} failures{tolerated}",
        p.clients,
        started.elapsed(),
        p.seed,
        failures.len()
    );
    (failures, summary)
}

/// Prints the failures (counts by kind, then the first few with their
/// transcript tails) and fails the test if there are any.
fn report(name: &str, failures: &[Failure], summary: &str) {
    println!("{name}: {summary}");
    if failures.is_empty() {
        return;
    }
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for f in failures {
        match kinds.iter_mut().find(|k| k.0 == f.kind) {
            Some(k) => k.1 += 1,
            None => kinds.push((f.kind, 1)),
        }
    }
    let mut text = format!("{name}: {summary}\nby kind: {kinds:?}\n");
    let mut shown: HashSet<(usize, &str)> = HashSet::new();
    for f in failures {
        if shown.len() >= 6 || !shown.insert((f.client, f.kind)) {
            continue;
        }
        text.push_str(&format!(
            "\n--- client {} [{}] {}\n",
            f.client, f.kind, f.what
        ));
        for l in &f.tail {
            text.push_str(&format!("    {l}\n"));
        }
    }
    panic!("{text}");
}

fn mailc_target(server: &Server) -> Target {
    Target {
        addr: server.addr("imap"),
        maildir: server
            .state()
            .join("mail/example.test/alice")
            .join(format!(".{MAILBOX}")),
        user: "alice@example.test".into(),
        pass: "secret".into(),
        tolerate_recreate_race: false,
    }
}

fn start_mailc() -> Server {
    Server::start(&format!(
        "listen \"imap\" \"127.0.0.1:0\" insecure-plaintext-auth=#true\n{}",
        standard_domain()
    ))
}

#[test]
fn concurrent_clients_keep_a_consistent_view() {
    let server = start_mailc();
    let (failures, summary) = run(&mailc_target(&server), params(8, 300));
    report("mailc", &failures, &summary);
}

/// Dovecot on loopback with its own configuration, stopped on drop.
struct Dovecot {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

impl Dovecot {
    fn start() -> Dovecot {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let vmail = work.join("vmail");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(vmail.join(sub)).unwrap();
        }
        std::fs::write(work.join("passwd"), "alice:{PLAIN}secret\n").unwrap();
        let run = work.join("run");
        std::fs::create_dir_all(&run).unwrap();
        // As root (the CI), Dovecot serves the mail as its own user; as
        // anyone else, as that user.
        let root = rustix::process::geteuid().is_root();
        let owner = if root {
            "uid=dovecot gid=dovecot".to_string()
        } else {
            format!(
                "uid={} gid={}",
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw()
            )
        };
        if root {
            let ok = std::process::Command::new("chown")
                .args(["-R", "dovecot:dovecot"])
                .arg(&vmail)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown for dovecot");
        }
        let config = work.join("dovecot.conf");
        let w = work.display();
        let user_lines = if root {
            String::new()
        } else {
            format!(
                "default_internal_user = {u}\ndefault_login_user = {u}\ndefault_internal_group = {g}\n",
                u = std::env::var("USER").unwrap_or_else(|_| "nobody".into()),
                g = std::env::var("USER").unwrap_or_else(|_| "nogroup".into()),
            )
        };
        std::fs::write(
            &config,
            format!(
                "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {w}/run\nstate_dir = {w}/run\nlog_path = {w}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\nfirst_valid_uid = 1\nmail_location = maildir:{w}/vmail\nmaildir_very_dirty_syncs = no\nmail_max_userip_connections = 100\n{user_lines}passdb {{\n  driver = passwd-file\n  args = {w}/passwd\n}}\nuserdb {{\n  driver = static\n  args = {owner} home={w}/vmail\n}}\nservice imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let status = std::process::Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(&config)
            .status()
            .expect("/usr/sbin/dovecot runs (apt-get install dovecot-imapd)");
        assert!(status.success(), "dovecot failed to start");
        let d = Dovecot { dir, config, port };
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "dovecot does not listen: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn maildir(&self, folder: &str) -> PathBuf {
        self.dir.path().join("vmail").join(format!(".{folder}"))
    }

    fn stop(&self) {
        let _ = std::process::Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .status();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
#[ignore = "needs Dovecot (/usr/sbin/dovecot): run by .ci/run in the interop step"]
fn checker_holds_against_dovecot() {
    let d = Dovecot::start();
    let t = Target {
        addr: SocketAddr::from(([127, 0, 0, 1], d.port)),
        maildir: d.maildir(MAILBOX),
        user: "alice".into(),
        pass: "secret".into(),
        tolerate_recreate_race: true,
    };
    let (failures, summary) = run(&t, params(8, 300));
    if !failures.is_empty() {
        println!("--- dovecot log ---\n{}", d.log());
    }
    report("dovecot", &failures, &summary);
}
