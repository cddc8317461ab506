//! `mailc queue list|show|remove|flush CONFIG`: queue administration. Talks
//! to the running server over its control socket; when no server runs,
//! `list` and `show` read the spool directly and `remove` edits it (safe
//! because the server's lock is not held).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use crate::compile::{self, Options};
use crate::envelope::{Destination, Envelope, Status};
use crate::queue::{RemoveError, Spool};
use crate::runtime::control::{Answer, socket_path};

/// Why `mailc queue` could not answer without the server.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("the server is running but its control socket does not answer")]
    NotAnswering,
    /// The spool directory could not be read.
    #[error("{0}")]
    Read(#[from] std::io::Error),
    #[error("{0}: no such queue entry")]
    NoSuchEntry(String),
    #[error(transparent)]
    Remove(#[from] RemoveError),
    #[error("the server is not running; queued mail is delivered when it starts")]
    FlushNeedsServer,
    #[error("the server is not running; start it to bounce (the DSN is queued by the server)")]
    BounceNeedsServer,
    #[error("this action needs a queue id")]
    NeedsId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Show,
    Remove,
    Flush,
    Bounce,
}

pub fn run(config: &Path, action: Action, id: Option<&str>, json: bool) -> i32 {
    let out = compile::compile_file(config, Options { offline: true });
    let Some(compiled) = out.compiled else {
        eprint!(
            "{}",
            crate::diag::render_all(&out.diags, &out.sources, crate::diag::Style::Plain, 100)
        );
        return 1;
    };
    let state = compiled.tables.state_dir.clone();
    let request = match (action, id) {
        (Action::List, _) => "list".to_string(),
        (Action::Flush, None) => "flush".to_string(),
        (Action::Flush, Some(target)) => format!("flush {target}"),
        (Action::Bounce, Some(id)) => format!("bounce {id}"),
        (Action::Show, Some(id)) => format!("show {id}"),
        (Action::Remove, Some(id)) => format!("remove {id}"),
        (_, None) => {
            eprintln!("mailc queue: this action needs a queue id");
            return 1;
        }
    };
    let answer = match ask(&state, &request) {
        Ok(a) => a,
        Err(_) => match offline(&state, action, id) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("mailc queue: {e}");
                return 1;
            }
        },
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return i32::from(matches!(answer, Answer::Error { .. }));
    }
    match answer {
        Answer::List { entries } => {
            print_list(&entries);
            0
        }
        Answer::Removed { entry } => {
            println!("removed {}", entry.id);
            0
        }
        Answer::Show { entry } => {
            print_entry(&entry);
            0
        }
        Answer::Flushed { entries } => {
            println!("{entries} entries due now");
            0
        }
        Answer::Bounced { entry, deliveries } => {
            println!(
                "{}: {deliveries} deliveries failed; a DSN goes to <{}>",
                entry.id, entry.sender
            );
            0
        }
        Answer::Error { message } => {
            eprintln!("mailc queue: {message}");
            1
        }
    }
}

fn ask(state: &Path, request: &str) -> std::io::Result<Answer> {
    let mut s = std::os::unix::net::UnixStream::connect(socket_path(state))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

/// The server is not running (its socket does not answer).
fn offline(state: &Path, action: Action, id: Option<&str>) -> Result<Answer, OfflineError> {
    let lock = state.join("mailc.lock");
    let free = match std::fs::OpenOptions::new().write(true).open(&lock) {
        Ok(f) => f.try_lock().is_ok(),
        Err(_) => true,
    };
    if !free {
        return Err(OfflineError::NotAnswering);
    }
    match (action, id) {
        (Action::List, _) => {
            let mut entries = Spool::list_offline(state)?;
            entries.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(Answer::List { entries })
        }
        (Action::Show, Some(id)) => Spool::list_offline(state)?
            .into_iter()
            .find(|e| e.id == id)
            .map(|entry| Answer::Show { entry })
            .ok_or_else(|| OfflineError::NoSuchEntry(id.to_string())),
        (Action::Remove, Some(id)) => Ok(Answer::Removed {
            entry: Spool::remove_offline(state, id)?,
        }),
        (Action::Flush, _) => Err(OfflineError::FlushNeedsServer),
        (Action::Bounce, _) => Err(OfflineError::BounceNeedsServer),
        _ => Err(OfflineError::NeedsId),
    }
}

fn status(d: &crate::envelope::Delivery) -> String {
    let date = crate::proto::smtp::headers::rfc5322_date;
    match &d.status {
        Status::Pending => match (&d.destination, &d.last_error) {
            (_, Some(e)) => format!(
                "deferred after {} attempt{}: {e}; next attempt {}",
                d.attempts,
                if d.attempts == 1 { "" } else { "s" },
                date(d.next_attempt)
            ),
            (Destination::Remote { .. }, None) => "waiting for outbound delivery".into(),
            (Destination::Mailbox { .. }, None) => "pending".into(),
        },
        Status::Delivered { at } => match &d.last_error {
            Some(reply) if matches!(d.destination, Destination::Remote { .. }) => {
                format!("delivered {}: {reply}", date(*at))
            }
            _ => format!("delivered {}", date(*at)),
        },
        Status::Failed { reason, at } => format!("failed {}: {reason}", date(*at)),
    }
}

fn print_list(entries: &[Envelope]) {
    if entries.is_empty() {
        println!("queue is empty");
        return;
    }
    let now = crate::services::unix_now();
    println!(
        "{:<24} {:>6} {:>8}  {:<30} DESTINATIONS",
        "ID", "AGE", "SIZE", "SENDER"
    );
    for e in entries {
        let age = crate::spec::value::format_duration(now.saturating_sub(e.received_at));
        let pending: Vec<String> = e
            .deliveries
            .iter()
            .filter(|d| matches!(d.status, Status::Pending))
            .map(|d| d.destination.address().to_string())
            .collect();
        let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
        println!(
            "{:<24} {:>6} {:>8}  {:<30} {}",
            e.id,
            age,
            e.size,
            sender,
            pending.join(", ")
        );
    }
    println!("{} entries", entries.len());
}

fn print_entry(e: &Envelope) {
    println!("id           {}", e.id);
    println!("sender       <{}>", e.sender);
    println!(
        "received     {} from {} ({}) via {}",
        crate::proto::smtp::headers::rfc5322_date(e.received_at),
        e.client.ip,
        e.client.helo,
        e.client.listener
    );
    if let Some(user) = &e.client.auth {
        println!("login        {user}");
    }
    println!("size         {}", e.size);
    for r in &e.recipients {
        println!("recipient    <{}>", r.address);
    }
    for d in &e.deliveries {
        println!("  -> {:<30} {}", d.destination.address(), status(d));
        if let Some(code) = &d.status_code {
            println!("     status {code}");
        }
        if let Some(mta) = &d.remote_mta {
            println!("     remote {mta}");
        }
        if let Some(tls) = &d.tls {
            println!("     tls    {tls}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Queue;

    fn error(r: Result<Answer, OfflineError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(a) => panic!("expected an error, got {a:?}"),
        }
    }

    #[tokio::test]
    async fn offline_list_show_remove_and_their_messages() {
        let state = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(state.path()).unwrap();
            let mut accepted = crate::queue::contract::accepted(
                "OFF1",
                "body",
                &[Destination::Remote {
                    address: "a@example.org".into(),
                }],
                0,
            );
            accepted.envelope.received_at = 7;
            spool.store(accepted).await.unwrap();
        }
        let s = state.path();
        match offline(s, Action::List, None).unwrap() {
            Answer::List { entries } => assert_eq!(entries.len(), 1),
            other => panic!("{other:?}"),
        }
        match offline(s, Action::Show, Some("OFF1")).unwrap() {
            Answer::Show { entry } => assert_eq!(entry.received_at, 7),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error(offline(s, Action::Show, Some("NOPE"))),
            "NOPE: no such queue entry"
        );
        assert!(matches!(
            offline(s, Action::Remove, Some("OFF1")).unwrap(),
            Answer::Removed { entry } if entry.id == "OFF1"
        ));
        assert_eq!(
            error(offline(s, Action::Remove, Some("OFF1"))),
            "OFF1: no such queue entry"
        );
        match offline(s, Action::List, None).unwrap() {
            Answer::List { entries } => assert!(entries.is_empty(), "removal is durable"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error(offline(s, Action::Flush, None)),
            "the server is not running; queued mail is delivered when it starts"
        );
        assert_eq!(
            error(offline(s, Action::Bounce, Some("OFF1"))),
            "the server is not running; start it to bounce (the DSN is queued by the server)"
        );
        assert_eq!(
            error(offline(s, Action::Remove, None)),
            "this action needs a queue id"
        );
    }

    #[test]
    fn a_held_lock_means_the_server_runs() {
        let state = tempfile::tempdir().unwrap();
        let lock = std::fs::File::create(state.path().join("mailc.lock")).unwrap();
        lock.lock().unwrap();
        assert_eq!(
            error(offline(state.path(), Action::List, None)),
            "the server is running but its control socket does not answer"
        );
    }
}
