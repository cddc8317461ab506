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
    Error { message: String },
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
                let answer = handle(&shared, line.trim());
                let mut json = serde_json::to_vec(&answer).unwrap_or_default();
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
            Err(message) => Answer::Error { message },
        },
        (Some("flush"), None) => {
            let n = shared.spool.flush();
            crate::services::delivery::requeue_due(shared);
            Answer::Flushed { entries: n }
        }
        _ => Answer::Error {
            message: format!("unknown request `{request}`"),
        },
    }
}
