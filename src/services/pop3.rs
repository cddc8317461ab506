//! The POP3 service: runs a POP3 [`Session`] on the connection driver
//! ([`super::conn`]) and opens (and locks) maildrops for it.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::conn::{self, Conn, NoExtras};
use super::{Shared, Snapshot};
use crate::net::limits::Slot;
use crate::session::pop3::{Driven, Env, Maildrop, OpenError, Session};

struct LiveEnv {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
}

impl Env for LiveEnv {
    fn open(&self, mailbox: &str) -> Result<Box<dyn Maildrop>, OpenError> {
        let Some(m) = self.snapshot.tables.mailboxes.get(mailbox) else {
            return Err(OpenError::Unavailable("no such mailbox".into()));
        };
        self.shared.storage.open_maildrop(m)
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
        (Driven::new(session), NoExtras)
    })
}
