//! Session-level checks the dialogue files cannot express: the state a
//! command is refused in, the error limit, and a folder recreated or
//! deleted under the selected mailbox. The dialogues in
//! `tests/dialogs/imap/` cover the commands themselves.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use super::*;
use crate::compile::{Options, compile_str};
use crate::session::AuthOutcome;
use crate::tables::ListenerKind;

static TABLES: LazyLock<Arc<Tables>> = LazyLock::new(|| {
    let text = "hostname \"mail.example.test\"\nstate \"/nonexistent-mailc-test\"\ntls self-signed=#true\nlisten \"imap\" \"127.0.0.1:143\" insecure-plaintext-auth=#true\ndomain \"example.test\" {\n dkim selector=\"s\"\n dmarc policy=\"none\"\n mailbox \"alice\" {\n alias \"postmaster\"\n }\n}\n";
    let out = compile_str(
        "t.kdl",
        std::path::Path::new("/nonexistent-mailc-test"),
        text,
        Options { offline: true },
    );
    Arc::new(out.compiled.expect("test config compiles").tables)
});

/// What the test changes behind the session's back: the folder's
/// UIDVALIDITY ("recreated") and its messages ("expunged elsewhere").
struct Shared {
    uidvalidity: AtomicU32,
    uids: Mutex<Vec<u32>>,
    /// The folder was deleted by another session.
    deleted: AtomicBool,
}

/// One folder, INBOX.
struct OneFolder {
    shared: Arc<Shared>,
}

impl Store for OneFolder {
    fn folders(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(vec!["INBOX".into()])
    }
    fn create(&mut self, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Exists)
    }
    fn delete(&mut self, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Refused("no".into()))
    }
    fn rename(&mut self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Refused("no".into()))
    }
    fn subscriptions(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn subscribe(&mut self, _: &str, _: bool) -> Result<(), StoreError> {
        Ok(())
    }
    fn sync(&mut self, name: &str, _: Recent) -> Result<FolderState, StoreError> {
        if name != "INBOX" || self.shared.deleted.load(Ordering::SeqCst) {
            return Err(StoreError::NotFound);
        }
        let uids = self.shared.uids.lock().expect("lock").clone();
        Ok(FolderState {
            uidvalidity: self.shared.uidvalidity.load(Ordering::SeqCst),
            uidnext: 3,
            highestmodseq: 1,
            messages: uids
                .into_iter()
                .map(|uid| MsgMeta {
                    uid,
                    flags: Vec::new(),
                    modseq: 1,
                    size: 4,
                    internal_date: 0,
                })
                .collect(),
            recent: Vec::new(),
            keywords: Vec::new(),
        })
    }
    fn read(&mut self, _: &str, _: u32) -> Result<Vec<u8>, StoreError> {
        Ok(b"\r\nx\r\n".to_vec())
    }
    fn set_flags(
        &mut self,
        _: &str,
        _: &[(u32, Vec<String>)],
        _: Option<u64>,
    ) -> Result<FlagResult, StoreError> {
        Ok(FlagResult::default())
    }
    fn expunge(&mut self, _: &str, _: &[u32]) -> Result<Vec<u32>, StoreError> {
        Ok(Vec::new())
    }
    fn append(
        &mut self,
        _: &str,
        _: &[u8],
        _: &[String],
        _: Option<i64>,
    ) -> Result<(u32, u32), StoreError> {
        Err(StoreError::OverQuota)
    }
    fn copy(&mut self, _: &str, _: &[u32], _: &str) -> Result<(u32, Vec<(u32, u32)>), StoreError> {
        Err(StoreError::NotFound)
    }
    fn vanished_since(&mut self, _: &str, _: u64) -> Result<Vec<u32>, StoreError> {
        Ok(Vec::new())
    }
    fn quota(&mut self) -> (u64, Option<u64>) {
        (0, None)
    }
}

struct TestEnv(Arc<Shared>);

impl Env for TestEnv {
    fn open(&self, _: &str) -> Result<Box<dyn Store>, String> {
        Ok(Box::new(OneFolder {
            shared: self.0.clone(),
        }))
    }
}

fn session() -> (Session<TestEnv>, Arc<Shared>) {
    let shared = Arc::new(Shared {
        uidvalidity: AtomicU32::new(7),
        uids: Mutex::new(vec![1, 2]),
        deleted: AtomicBool::new(false),
    });
    let local = "127.0.0.1:143".parse().expect("addr");
    let listener = *TABLES
        .listener(ListenerKind::Imap, local)
        .expect("an IMAP listener");
    let s = Session::new(TABLES.clone(), listener, false, TestEnv(shared.clone()));
    (s, shared)
}

fn send(s: &mut Session<TestEnv>, line: &str) -> Output {
    let mut input = line.as_bytes().to_vec();
    s.process(&mut input)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.bytes).into_owned()
}

fn log_in(s: &mut Session<TestEnv>) {
    let o = send(s, "l LOGIN alice@example.test pw\r\n");
    assert!(matches!(o.effect, Some(Effect::Authenticate { .. })));
    let o = s.auth_result(AuthOutcome::Ok("alice@example.test".into()));
    assert!(text(&o).starts_with("l OK [CAPABILITY "), "{}", text(&o));
    assert_eq!(s.user(), Some("alice@example.test"));
}

#[test]
fn the_verb_table_decides_where_a_command_runs() {
    let (mut s, _) = session();
    assert_eq!(
        text(&send(&mut s, "a FETCH 1 FLAGS\r\n")),
        "a BAD Log in first\r\n"
    );
    assert_eq!(
        text(&send(&mut s, "b LIST \"\" *\r\n")),
        "b BAD Log in first\r\n"
    );
    log_in(&mut s);
    assert_eq!(
        text(&send(&mut s, "c FETCH 1 FLAGS\r\n")),
        "c BAD No mailbox selected\r\n"
    );
    assert_eq!(
        text(&send(&mut s, "d LOGIN a b\r\n")),
        "d BAD Already authenticated\r\n"
    );
    let o = text(&send(&mut s, "e SELECT INBOX\r\n"));
    assert!(o.ends_with("e OK [READ-WRITE] SELECT completed\r\n"), "{o}");
    assert_eq!(s.selected(), Some("INBOX"));
    assert_eq!(
        text(&send(&mut s, "f UNSELECT\r\n")),
        "f OK UNSELECT completed\r\n"
    );
    assert_eq!(s.selected(), None);
    assert_eq!(
        text(&send(&mut s, "g CLOSE\r\n")),
        "g BAD No mailbox selected\r\n"
    );
}

#[test]
fn too_many_protocol_errors_end_the_session() {
    let (mut s, _) = session();
    let limit = s.max_errors();
    for i in 0..limit {
        let o = send(&mut s, &format!("t{i} BOGUS\r\n"));
        assert!(!o.close, "closed after {} errors", i + 1);
    }
    // NO is an ordinary answer and does not count.
    let o = send(&mut s, "n AUTHENTICATE CRAM-MD5\r\n");
    assert_eq!(text(&o), "n NO [CANNOT] Unsupported mechanism\r\n");
    let o = send(&mut s, "x BOGUS\r\n");
    assert!(o.close);
    assert!(
        text(&o).ends_with("* BYE Too many errors\r\n"),
        "{}",
        text(&o)
    );
    assert!(s.is_closed());
}

#[test]
fn a_recreated_folder_ends_the_session() {
    let (mut s, shared) = session();
    log_in(&mut s);
    let o = text(&send(&mut s, "s SELECT INBOX\r\n"));
    assert!(o.contains("* OK [UIDVALIDITY 7] UIDs valid\r\n"), "{o}");
    let o = send(&mut s, "n1 NOOP\r\n");
    assert_eq!(text(&o), "n1 OK NOOP completed\r\n");
    shared.uidvalidity.store(8, Ordering::SeqCst);
    let o = send(&mut s, "n2 NOOP\r\n");
    assert!(o.close);
    assert_eq!(
        text(&o),
        "* BYE Mailbox UIDVALIDITY changed, reselect\r\nn2 OK NOOP completed\r\n"
    );
    assert!(s.is_closed());
}

/// Issue #14: a selected mailbox deleted by another session ends the
/// session (nothing of it may be used, and a folder created under its
/// name later is another mailbox).
#[test]
fn a_deleted_folder_ends_the_session() {
    let (mut s, shared) = session();
    log_in(&mut s);
    let o = text(&send(&mut s, "s SELECT INBOX\r\n"));
    assert!(o.contains("* 2 EXISTS\r\n"), "{o}");
    shared.deleted.store(true, Ordering::SeqCst);
    let o = send(&mut s, "n NOOP\r\n");
    assert!(o.close);
    assert_eq!(
        text(&o),
        "* BYE Selected mailbox was deleted\r\nn OK NOOP completed\r\n"
    );
    assert!(s.is_closed());
}

#[test]
fn updates_taken_before_a_refusal_are_sent() {
    let (mut s, shared) = session();
    log_in(&mut s);
    let o = text(&send(&mut s, "s SELECT INBOX\r\n"));
    assert!(o.contains("* 2 EXISTS\r\n"), "{o}");
    // Another session expunges UID 1; a UID command may report it, and
    // does so even when the command itself is refused.
    shared.uids.lock().expect("lock").retain(|&u| u != 1);
    let o = send(&mut s, "u UID STORE 2 +FLAGS (\\Recent)\r\n");
    assert_eq!(
        text(&o),
        "* 1 EXPUNGE\r\nu BAD \\Recent and \\* cannot be stored\r\n"
    );
    // The view and the client agree: one message left, nothing to repeat.
    assert_eq!(text(&send(&mut s, "n NOOP\r\n")), "n OK NOOP completed\r\n");
    let o = text(&send(&mut s, "f FETCH 1 UID\r\n"));
    assert_eq!(o, "* 1 FETCH (UID 2)\r\nf OK FETCH completed\r\n");
}
