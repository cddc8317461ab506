//! The queue control socket, `<state>/control.sock` (mode 0600): how
//! `mailc queue list|show|remove|flush` talk to a running server. One
//! request line per connection, one JSON answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use crate::envelope::Envelope;
use crate::services::Shared;
use crate::services::submit::{self, Submission};

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Answer {
    List { entries: Vec<Envelope> },
    Show { entry: Envelope },
    Removed { entry: Envelope },
    Flushed { entries: usize },
    Bounced { entry: Envelope, deliveries: usize },
    Error { message: String },
}

/// Answers to `mailc sendmail`'s requests (`submit`, `pickup`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum SubmitAnswer {
    /// The message is durably queued.
    Submitted { id: String },
    /// Refused; `exit` is the sysexits code for `mailc sendmail`.
    Refused { exit: u8, message: String },
    /// Messages taken from `queue/incoming/`.
    PickedUp { entries: usize },
}

pub async fn start(shared: Arc<Shared>, state_dir: &Path) -> std::io::Result<JoinHandle<()>> {
    let path = socket_path(state_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = BufReader::new(read.take(4096));
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let mut json = match line.trim() {
                    "submit" => serde_json::to_vec(&submit(&shared, &mut reader).await),
                    "pickup" => serde_json::to_vec(&pickup(&shared).await),
                    request => serde_json::to_vec(&handle(&shared, request)),
                }
                .unwrap_or_default();
                json.push(b'\n');
                let _ = write.write_all(&json).await;
            });
        }
    }))
}

fn handle(shared: &Shared, request: &str) -> Answer {
    let mut words = request.split_whitespace();
    match (words.next(), words.next()) {
        (Some("list"), None) => Answer::List {
            entries: shared.spool.list(),
        },
        (Some("show"), Some(id)) => match shared.spool.get(id) {
            Some(entry) => Answer::Show { entry },
            None => Answer::Error {
                message: format!("{id}: no such queue entry"),
            },
        },
        (Some("remove"), Some(id)) => match shared.spool.remove(id) {
            Ok(entry) => {
                tracing::info!(id, "removed from the queue by the admin");
                Answer::Removed { entry }
            }
            Err(e) => Answer::Error {
                message: e.to_string(),
            },
        },
        (Some("flush"), target) => {
            let n = shared.spool.flush(target);
            crate::services::delivery::requeue_due(shared);
            let _ = shared
                .outbound
                .send(crate::services::outbound::Event::Flush);
            Answer::Flushed { entries: n }
        }
        (Some("bounce"), Some(id)) => {
            let now = crate::services::unix_now();
            let mut n = 0;
            let changed = shared.spool.modify(id, &mut |e| {
                for d in &mut e.deliveries {
                    if matches!(d.status, crate::envelope::Status::Pending) {
                        d.status = crate::envelope::Status::Failed {
                            at: now,
                            reason: "bounced by the administrator".into(),
                        };
                        d.status_code = Some("5.0.0".into());
                        n += 1;
                    }
                }
            });
            match changed {
                Some((entry, _)) => {
                    tracing::info!(id, deliveries = n, "bounced by the admin");
                    let _ = shared
                        .outbound
                        .send(crate::services::outbound::Event::Settle(id.to_string()));
                    Answer::Bounced {
                        entry,
                        deliveries: n,
                    }
                }
                None => Answer::Error {
                    message: format!("{id}: no such queue entry"),
                },
            }
        }
        _ => Answer::Error {
            message: format!("unknown request `{request}`"),
        },
    }
}

/// `submit` (from `mailc sendmail`): a JSON head line ([`Submission`]),
/// then exactly `size` message bytes; answered once the message is durable.
/// Both parts are bounded: the head by [`submit::MAX_HEAD`], the message by
/// the submission size limit.
async fn submit<R: tokio::io::AsyncRead + Unpin>(
    shared: &Shared,
    reader: &mut BufReader<tokio::io::Take<R>>,
) -> SubmitAnswer {
    let refused = |exit, message: String| SubmitAnswer::Refused { exit, message };
    reader.get_mut().set_limit(submit::MAX_HEAD as u64);
    let mut head = String::new();
    if reader.read_line(&mut head).await.is_err() || !head.ends_with('\n') {
        return refused(submit::exit::DATAERR, "no submission head".into());
    }
    let sub: Submission = match serde_json::from_str(head.trim_end()) {
        Ok(s) => s,
        Err(e) => return refused(submit::exit::DATAERR, format!("bad submission head: {e}")),
    };
    let limit = shared.snapshot().tables.submission.max_message_size;
    if sub.size > limit {
        return refused(
            submit::exit::DATAERR,
            format!("message too big ({} bytes, at most {limit})", sub.size),
        );
    }
    // Part of the message may already sit in the reader's buffer: the
    // socket is allowed `size` more bytes (an upper bound), the message is
    // exactly `size` bytes from the buffer on.
    reader.get_mut().set_limit(sub.size);
    let mut message = Vec::with_capacity(sub.size.min(1 << 20) as usize);
    let read = (&mut *reader)
        .take(sub.size)
        .read_to_end(&mut message)
        .await;
    if read.is_err() || message.len() as u64 != sub.size {
        return refused(submit::exit::DATAERR, "message truncated".into());
    }
    match submit::enqueue(shared, &sub, &message).await {
        Ok(id) => SubmitAnswer::Submitted { id },
        Err(r) => refused(r.exit, r.message),
    }
}

/// `pickup`: take what `mailc sendmail` left in `queue/incoming/` while no
/// server ran (or while this one was starting).
async fn pickup(shared: &Shared) -> SubmitAnswer {
    let state = shared.snapshot().tables.state_dir.clone();
    SubmitAnswer::PickedUp {
        entries: submit::pick_up(shared, &state).await,
    }
}
