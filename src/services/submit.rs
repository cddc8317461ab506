//! `submit`: messages handed over by `mailc sendmail` rather than by SMTP.
//!
//! Two ways in, one path to the queue:
//! - the running server's control socket (`submit` request,
//!   `runtime::control`), answered once the message is durable;
//! - when no server runs, `<state>/queue/incoming/`: the command writes one
//!   file per message (temporary name, fsync, rename to `*.msg`, fsync of
//!   the directory) and the server takes them at start and when poked
//!   (`pickup` request) with [`take_incoming`] then [`pick_up`].
//!
//! Both are reachable only by root and the server's user (the socket is
//! 0600, the state directory 0700), so a submission is from a trusted local
//! user: the envelope sender it names is taken as given (`-f`), as for a
//! trusted network host on submission, and `sender-must-own` has no mailbox
//! login to check against. A file in `incoming/` is removed only after the
//! queue holds its message durably: a crash in between delivers it twice at
//! worst, never loses it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::envelope::{Accepted, Client, Destination, Envelope, Notify, Recipient};
use crate::proto::smtp::headers;
use crate::store::fsutil;
use crate::tables::resolve::Resolution;
use crate::tables::{Tables, TargetKind};

use super::Shared;

/// The listener name queue entries from `mailc sendmail` carry.
pub const LISTENER: &str = "sendmail";

/// Longest JSON head of a submission (before the message bytes).
pub const MAX_HEAD: usize = 256 * 1024;

/// What `mailc sendmail` hands over: the envelope it decided and the
/// message, already with its Date/Message-ID/From fields and CRLF lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Submission {
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<String>,
    /// The login name of the user who ran the command.
    pub user: String,
    /// Length of the message that follows the head.
    pub size: u64,
}

/// Why a submission was not queued, with the sysexits code the command
/// exits with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Refusal {
    pub exit: u8,
    pub message: String,
}

/// sysexits.h codes used here and by the command.
pub mod exit {
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const NOUSER: u8 = 67;
    pub const UNAVAILABLE: u8 = 69;
    pub const SOFTWARE: u8 = 70;
    pub const CANTCREAT: u8 = 73;
    pub const TEMPFAIL: u8 = 75;
    pub const NOPERM: u8 = 77;
    pub const CONFIG: u8 = 78;
}

fn refuse(exit: u8, message: impl Into<String>) -> Refusal {
    Refusal {
        exit,
        message: message.into(),
    }
}

/// The queue entry for a submission: recipients routed by the tables (local
/// mailboxes, aliases, remote addresses), a `Received:` field on top.
pub fn accept(
    tables: &Tables,
    sub: &Submission,
    message: &[u8],
    id: String,
    now: u64,
) -> Result<Accepted, Refusal> {
    if sub.recipients.is_empty() {
        return Err(refuse(exit::USAGE, "no recipients"));
    }
    if message.len() as u64 > tables.submission.max_message_size {
        return Err(refuse(
            exit::DATAERR,
            format!(
                "message too big ({} bytes, at most {})",
                message.len(),
                tables.submission.max_message_size
            ),
        ));
    }
    let mut envelope = Envelope {
        id,
        sender: sub.sender.clone(),
        recipients: Vec::new(),
        deliveries: Vec::new(),
        ret: None,
        envid: None,
        body_8bit: message.iter().any(|b| *b >= 0x80),
        smtputf8: sub.sender.bytes().any(|b| b >= 0x80)
            || sub.recipients.iter().any(|r| r.bytes().any(|b| b >= 0x80)),
        client: Client {
            ip: "127.0.0.1".into(),
            helo: String::new(),
            tls: None,
            auth: Some(sub.user.clone()),
            listener: LISTENER.into(),
        },
        received_at: now,
        size: 0,
        junk: false,
        arc_seals: Default::default(),
    };
    for address in &sub.recipients {
        let mut indexes = Vec::new();
        for dest in route(tables, address)? {
            indexes.push(envelope.add_destination(dest, now));
        }
        envelope.recipients.push(Recipient {
            address: address.clone(),
            orcpt: None,
            notify: Notify::default(),
            deliveries: indexes,
        });
    }
    let for_rcpt = (sub.recipients.len() == 1).then(|| sub.recipients[0].as_str());
    let received = headers::received(&headers::ReceivedInfo {
        helo: "",
        client_ip: None,
        by_host: &tables.hostname,
        protocol: "local",
        tls: None,
        id: &envelope.id,
        for_rcpt,
        unix_time: now,
    });
    let received = received.replacen(
        "Received: ",
        &format!(
            "Received: from {} (uid {})\r\n\t",
            sanitize(&sub.user),
            uid()
        ),
        1,
    );
    let mut full = Vec::with_capacity(received.len() + message.len());
    full.extend_from_slice(received.as_bytes());
    full.extend_from_slice(message);
    envelope.size = full.len() as u64;
    Ok(Accepted {
        envelope,
        message: full,
    })
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(64)
        .collect()
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Where one recipient goes. A local user may send anywhere (relaying is
/// what the command is for); an unknown local address is refused now
/// rather than bounced later. DSNs are routed the same way.
pub(crate) fn route(tables: &Tables, address: &str) -> Result<Vec<Destination>, Refusal> {
    match tables.resolve(address) {
        Resolution::Deliver(d) => {
            let mut out = Vec::new();
            for t in d.targets {
                match t.kind {
                    TargetKind::Mailbox => {
                        if tables
                            .mailboxes
                            .get(&t.address)
                            .is_some_and(|m| !m.disabled)
                        {
                            out.push(Destination::Mailbox {
                                address: t.address.clone(),
                            });
                        }
                    }
                    TargetKind::Remote => out.push(Destination::Remote {
                        address: t.address.clone(),
                    }),
                }
            }
            if out.is_empty() {
                return Err(refuse(exit::NOUSER, format!("{address}: mailbox disabled")));
            }
            Ok(out)
        }
        Resolution::UnknownUser { .. } => {
            Err(refuse(exit::NOUSER, format!("{address}: no such user")))
        }
        Resolution::Invalid { reason } => Err(refuse(
            exit::DATAERR,
            format!("{address}: bad address ({reason})"),
        )),
        Resolution::NotLocal { .. } => match crate::addr::split(address) {
            Some((local, domain)) if !local.is_empty() => {
                let d = crate::addr::normalize_domain(domain)
                    .map_err(|e| refuse(exit::DATAERR, format!("{address}: {e}")))?;
                Ok(vec![Destination::Remote {
                    address: format!("{local}@{}", d.ascii),
                }])
            }
            _ => Err(refuse(exit::DATAERR, format!("{address}: bad address"))),
        },
    }
}

/// Into the queue, as the SMTP services do: durable first, then handed to
/// delivery. `Ok(queue id)`.
pub async fn enqueue(shared: &Shared, sub: &Submission, message: &[u8]) -> Result<String, Refusal> {
    let tables = shared.snapshot().tables.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut accepted = accept(&tables, sub, message, crate::queue::new_id(), now)?;
    super::outbound::sign_submission(&shared.snapshot(), &mut accepted);
    let id = accepted.envelope.id.clone();
    match shared.spool.store(accepted).await {
        Ok(entry) => {
            tracing::info!(
                id = %entry.envelope.id,
                from = %entry.envelope.sender,
                rcpts = entry.envelope.recipients.len(),
                size = entry.envelope.size,
                user = %sub.user,
                "queued (sendmail)"
            );
            let _ = shared.delivery.send(entry);
            Ok(id)
        }
        Err(e) => {
            // `e` says "cannot write to the queue: ...".
            tracing::error!(error = %e, "cannot write to the queue");
            Err(refuse(exit::TEMPFAIL, e.to_string()))
        }
    }
}

/// `<state>/queue/incoming`.
pub fn incoming_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("queue").join("incoming")
}

/// One file of `incoming/`: the JSON head, a newline, the message.
pub fn encode(sub: &Submission, message: &[u8]) -> Vec<u8> {
    let mut out = serde_json::to_vec(sub).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(message);
    out
}

/// The head and message of one incoming file.
pub fn decode(bytes: &[u8]) -> Result<(Submission, &[u8]), String> {
    let nl = bytes
        .iter()
        .take(MAX_HEAD)
        .position(|b| *b == b'\n')
        .ok_or("no head line")?;
    let sub: Submission =
        serde_json::from_slice(&bytes[..nl]).map_err(|e| format!("bad head: {e}"))?;
    let message = &bytes[nl + 1..];
    if message.len() as u64 != sub.size {
        return Err(format!(
            "truncated: {} message bytes, the head says {}",
            message.len(),
            sub.size
        ));
    }
    Ok((sub, message))
}

/// Writes one submission into `incoming/` durably (temporary file, fsync,
/// rename, fsync of the directory). The state directory must exist; the
/// directories created and the file are given to its owner (when root runs
/// the command, the server's user must still be able to take the file).
pub fn write_incoming(
    state_dir: &Path,
    sub: &Submission,
    message: &[u8],
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(state_dir)?;
    let queue = state_dir.join("queue");
    let dir = incoming_dir(state_dir);
    for d in [&queue, &dir] {
        if !d.exists() {
            fsutil::create_private_dir(d)?;
            give_to(d, owner.uid(), owner.gid());
        }
    }
    let unique = format!(
        "{}.{}.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        std::process::id(),
        crate::queue::new_id()
    );
    let tmp = dir.join(format!(".{unique}.tmp"));
    let path = dir.join(format!("{unique}.msg"));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = f
            .write_all(&encode(sub, message))
            .and_then(|()| f.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    give_to(&tmp, owner.uid(), owner.gid());
    std::fs::rename(&tmp, &path)?;
    fsutil::sync_dir(&dir)?;
    Ok(path)
}

/// chown when we may (root); otherwise the file is already ours.
fn give_to(path: &Path, uid: u32, gid: u32) {
    if rustix::process::geteuid().is_root() {
        let _ = rustix::fs::chown(
            path,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
    }
}

/// One message waiting in `incoming/`.
#[derive(Debug)]
pub struct Incoming {
    pub path: PathBuf,
    pub submission: Submission,
    pub message: Vec<u8>,
}

/// The messages waiting in `incoming/`, oldest first (names start with the
/// time). Files that do not decode are renamed `*.bad` and logged, never
/// deleted; temporary files older than a day (a crashed writer) are removed.
/// The caller removes each file once its message is durably queued.
pub fn take_incoming(state_dir: &Path) -> Vec<Incoming> {
    let dir = incoming_dir(state_dir);
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for e in read.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".msg") {
            names.push(path);
        } else if name.starts_with('.')
            && name.ends_with(".tmp")
            && e.metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 86_400)
        {
            let _ = std::fs::remove_file(&path);
        }
    }
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read an incoming message");
                continue;
            }
        };
        match decode(&bytes) {
            Ok((submission, message)) => {
                let message = message.to_vec();
                out.push(Incoming {
                    path,
                    submission,
                    message,
                });
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "bad incoming message, renamed *.bad");
                let _ = std::fs::rename(&path, path.with_extension("bad"));
            }
        }
    }
    out
}

/// Queues every message waiting in `incoming/` and removes each file once
/// its message is durable. A refused one (unknown local recipient, too big)
/// is renamed `*.refused` and logged: nobody waits for an answer. Returns
/// how many were queued.
pub async fn pick_up(shared: &Shared, state_dir: &Path) -> usize {
    let state = state_dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || take_incoming(&state))
        .await
        .unwrap_or_default();
    let mut queued = 0;
    for inc in found {
        match enqueue(shared, &inc.submission, &inc.message).await {
            Ok(_) => {
                queued += 1;
                if let Err(e) = std::fs::remove_file(&inc.path) {
                    tracing::error!(file = %inc.path.display(), error = %e, "cannot remove a queued incoming message");
                }
            }
            Err(r) if r.exit == exit::TEMPFAIL => {
                // Left in place for the next pick-up.
                break;
            }
            Err(r) => {
                tracing::error!(file = %inc.path.display(), reason = %r.message, "incoming message refused, renamed *.refused");
                let _ = std::fs::rename(&inc.path, inc.path.with_extension("refused"));
            }
        }
    }
    if queued > 0 {
        let dir = incoming_dir(state_dir);
        let _ = tokio::task::spawn_blocking(move || fsutil::sync_dir(&dir)).await;
    }
    queued
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_files_round_trip_and_bad_ones_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let sub = Submission {
            sender: "root@mail.example.test".into(),
            recipients: vec!["alice@example.test".into()],
            user: "root".into(),
            size: 9,
        };
        let p1 = write_incoming(dir.path(), &sub, b"Subject: ").unwrap();
        let p2 = write_incoming(dir.path(), &sub, b"two\r\n\r\nxy").unwrap();
        assert!(p1 < p2);
        std::fs::write(incoming_dir(dir.path()).join("0.junk.msg"), b"{not json\n").unwrap();
        let got = take_incoming(dir.path());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].submission, sub);
        assert_eq!(got[0].message, b"Subject: ");
        assert!(incoming_dir(dir.path()).join("0.junk.bad").exists());
        // Nothing is removed by taking: only the caller removes.
        assert_eq!(take_incoming(dir.path()).len(), 2);
    }

    #[test]
    fn truncated_files_do_not_decode() {
        let sub = Submission {
            sender: String::new(),
            recipients: vec!["a@b.c".into()],
            user: "u".into(),
            size: 10,
        };
        let mut bytes = encode(&sub, b"0123456789");
        assert!(decode(&bytes).is_ok());
        bytes.pop();
        assert!(decode(&bytes).unwrap_err().contains("truncated"));
    }
}
