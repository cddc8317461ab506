//! The ManageSieve service: runs a ManageSieve [`Session`] on the
//! connection driver ([`super::conn`]) and gives it the logged-in user's
//! scripts in the state directory ([`ScriptStore`]).

use std::future::Future;
use std::path::PathBuf;

use tokio::net::TcpStream;

use super::conn::{self, Conn, NoExtras};
use crate::net::limits::Slot;
use crate::session::managesieve::{Driven, Env, ScriptStorage, Session};
use crate::store::sieve::ScriptStore;

impl ScriptStorage for ScriptStore {
    fn list(&self) -> std::io::Result<Vec<(String, bool)>> {
        ScriptStore::list(self)
    }
    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        ScriptStore::get(self, name)
    }
    fn put(&self, name: &str, text: &[u8]) -> std::io::Result<()> {
        ScriptStore::put(self, name, text)
    }
    fn delete(&self, name: &str) -> std::io::Result<bool> {
        ScriptStore::delete(self, name)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<bool> {
        ScriptStore::rename(self, from, to)
    }
    fn set_active(&self, name: Option<&str>) -> std::io::Result<bool> {
        ScriptStore::set_active(self, name)
    }
}

struct LiveEnv {
    state_dir: PathBuf,
}

impl Env for LiveEnv {
    fn open(&self, mailbox: &str) -> Box<dyn ScriptStorage> {
        Box::new(ScriptStore::for_mailbox(&self.state_dir, mailbox))
    }
}

/// Handles one accepted connection until it closes.
pub fn handle(conn: Conn, tcp: TcpStream, slot: Slot) -> impl Future<Output = ()> + Send {
    conn::run(conn, tcp, slot, |conn, tls| {
        let env = LiveEnv {
            state_dir: conn.snapshot.tables.state_dir.clone(),
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
