//! The IMAP service: runs an IMAP [`Session`] on the connection driver
//! ([`super::conn`], which also wakes IDLE sessions when their mail
//! changes) and opens the user's mail store for it.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::conn::{self, Conn, NoExtras};
use super::{Shared, Snapshot};
use crate::net::limits::Slot;
use crate::session::imap::{Env, Session, Store};

struct LiveEnv {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
}

impl Env for LiveEnv {
    fn open(&self, mailbox: &str) -> Result<Box<dyn Store>, String> {
        let Some(m) = self.snapshot.tables.mailboxes.get(mailbox) else {
            return Err("no such mailbox".into());
        };
        self.shared
            .storage
            .open_folders(m)
            .map_err(|e| format!("{e:?}"))
    }
}

/// Handles one accepted connection until it closes.
pub fn handle(conn: Conn, tcp: TcpStream, slot: Slot) -> impl Future<Output = ()> + Send {
    conn::run(conn, tcp, slot, |conn, tls| {
        let env = LiveEnv {
            shared: conn.shared.clone(),
            snapshot: conn.snapshot.clone(),
        };
        let session = Session::new(
            conn.snapshot.tables.clone(),
            conn.listener,
            tls.is_some(),
            env,
        );
        (session, NoExtras)
    })
}
