//! The SMTP/LMTP service: runs a [`Session`] on the connection driver
//! ([`super::conn`]) and performs its own effect, durable enqueueing before
//! any 250: the message goes to the spool, the spool's answer back to the
//! session, the stored entry on to delivery.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::conn::{self, Conn, Extras};
use super::{Shared, Snapshot, unix_now};
use crate::envelope::Accepted;
use crate::net::limits::Slot;
use crate::session::protocol::Step;
use crate::session::smtp::{ConnInfo, Driven, Env, Session};

struct LiveEnv {
    shared: Arc<Shared>,
}

impl Env for LiveEnv {
    fn now(&self) -> u64 {
        unix_now()
    }

    fn mailbox_usage(&self, mailbox: &str) -> u64 {
        // Loaded at startup for every mailbox with a quota, and kept current
        // by delivery; never a disk scan on this path.
        self.shared.usage.cached(mailbox).unwrap_or(0)
    }

    fn new_id(&self) -> String {
        crate::queue::new_id()
    }

    fn srs_reverse(&self, address: &str) -> Option<String> {
        self.shared.srs.reverse(address, unix_now()).ok()
    }
}

/// Stores accepted messages in the spool and hands them to delivery.
struct Spooler {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    peer: SocketAddr,
}

impl Extras<Driven<LiveEnv>> for Spooler {
    async fn perform(
        &mut self,
        session: &mut Driven<LiveEnv>,
        mut accepted: Box<Accepted>,
    ) -> Step<Box<Accepted>> {
        super::outbound::sign_submission(&self.snapshot, &mut accepted);
        let result = match self.shared.spool.store(*accepted).await {
            Ok(entry) => {
                tracing::info!(
                    id = %entry.envelope.id,
                    from = %entry.envelope.sender,
                    rcpts = entry.envelope.recipients.len(),
                    size = entry.envelope.size,
                    client = %self.peer.ip(),
                    "queued"
                );
                let id = entry.envelope.id.clone();
                let _ = self.shared.delivery.send(entry);
                Ok(id)
            }
            Err(e) => {
                tracing::error!(error = %e, "message not accepted");
                Err(e)
            }
        };
        session.enqueued(result)
    }
}

/// Handles one accepted connection until it closes.
pub fn handle(conn: Conn, tcp: TcpStream, slot: Slot) -> impl Future<Output = ()> + Send {
    conn::run(conn, tcp, slot, |conn, tls| {
        let info = ConnInfo {
            peer: conn.peer,
            listener: conn.listener,
            tls,
        };
        let env = LiveEnv {
            shared: conn.shared.clone(),
        };
        let session = Session::new(conn.snapshot.tables.clone(), info, env);
        (
            Driven::new(session),
            Spooler {
                shared: conn.shared.clone(),
                snapshot: conn.snapshot.clone(),
                peer: conn.peer,
            },
        )
    })
}
