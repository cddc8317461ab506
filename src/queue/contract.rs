//! The [`Queue`] contract: the same checks, run against every
//! implementation ([`Spool`] in a temporary directory, [`MemoryQueue`]),
//! so that the in-memory queue the service tests use cannot drift from the
//! spool the server runs on.

use std::sync::Arc;

use super::memory::MemoryQueue;
use super::{Queue, RemoveError, Spool, SpoolError};
use crate::envelope::{Accepted, Client, Delivery, Destination, Envelope, Status};

/// An accepted message with one delivery per destination, all pending and
/// due at `next`.
pub(crate) fn accepted(id: &str, body: &str, to: &[Destination], next: u64) -> Accepted {
    Accepted {
        envelope: Envelope {
            id: id.into(),
            sender: "a@remote.example".into(),
            recipients: Vec::new(),
            deliveries: to.iter().map(|d| Delivery::new(d.clone(), next)).collect(),
            ret: None,
            envid: None,
            body_8bit: false,
            smtputf8: false,
            client: Client {
                ip: "192.0.2.1".into(),
                helo: "h".into(),
                tls: None,
                auth: None,
                listener: "smtp".into(),
            },
            received_at: 1,
            size: body.len() as u64,
            junk: false,
            arc_seals: Default::default(),
        },
        message: body.as_bytes().to_vec(),
    }
}

fn mailbox(a: &str) -> Destination {
    Destination::Mailbox { address: a.into() }
}

fn remote(a: &str) -> Destination {
    Destination::Remote { address: a.into() }
}

fn ids(envs: &[Envelope]) -> Vec<&str> {
    envs.iter().map(|e| e.id.as_str()).collect()
}

fn deliver(d: &mut Delivery) {
    d.status = Status::Delivered { at: 5 };
}

async fn commit_list_modify_finish(q: &dyn Queue) {
    for (id, body) in [("C3", "third"), ("A1", "first"), ("B2", "second")] {
        let entry = q
            .store(accepted(
                id,
                body,
                &[mailbox("alice@example.test"), remote("bob@example.org")],
                0,
            ))
            .await
            .unwrap();
        assert_eq!(entry.envelope.id, id);
        assert_eq!(
            entry.message.as_deref().map(Vec::as_slice),
            Some(body.as_bytes())
        );
        assert!(!entry.retried);
    }
    assert_eq!(ids(&q.list()), ["A1", "B2", "C3"], "listed in id order");
    assert_eq!(q.read_message("B2").unwrap(), b"second");
    assert_eq!(q.get("A1").unwrap().deliveries.len(), 2);

    // One delivery done: still pending, not finished.
    let (env, finished) = q
        .modify("A1", &mut |e| deliver(&mut e.deliveries[0]))
        .unwrap();
    assert!(!finished);
    assert!(matches!(env.deliveries[0].status, Status::Delivered { .. }));
    // Two writers changing different deliveries keep each other's work.
    let (env, finished) = q
        .modify("A1", &mut |e| {
            e.deliveries[1].attempts = 3;
            deliver(&mut e.deliveries[1]);
        })
        .unwrap();
    assert!(
        finished,
        "the change that ends the last pending delivery finishes it"
    );
    assert!(matches!(env.deliveries[0].status, Status::Delivered { .. }));
    assert_eq!(q.get("A1").unwrap().deliveries[1].attempts, 3);
    // Only one caller hears "finished".
    let (_, again) = q
        .modify("A1", &mut |e| e.deliveries[1].attempts = 4)
        .unwrap();
    assert!(!again);

    q.finish("A1").unwrap();
    assert!(q.get("A1").is_none());
    assert_eq!(ids(&q.list()), ["B2", "C3"]);
    assert!(matches!(q.read_message("A1"), Err(SpoolError::NotQueued(id)) if id == "A1"));
    assert!(
        q.modify("A1", &mut |_| panic!("no entry to change"))
            .is_none()
    );
    q.finish("A1").expect("finishing twice is harmless");
    assert_eq!(q.read_message("C3").unwrap(), b"third");
}

async fn invalid_ids_are_refused(q: &dyn Queue) {
    for bad in ["", "../x", "a b", &"A".repeat(65)] {
        let r = q
            .store(accepted(bad, "x", &[mailbox("a@example.test")], 0))
            .await;
        assert!(matches!(r, Err(SpoolError::InvalidId)), "{bad:?}");
    }
    assert!(q.list().is_empty());
}

async fn many_concurrent_stores(q: Arc<dyn Queue>) {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("M{i:03}");
            let body = format!("message {i}");
            q.store(accepted(&id, &body, &[mailbox("a@example.test")], 0))
                .await
                .map(|e| e.envelope.id)
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let listed = q.list();
    assert_eq!(listed.len(), 40);
    for i in [0, 17, 39] {
        assert_eq!(
            q.read_message(&format!("M{i:03}")).unwrap(),
            format!("message {i}").as_bytes()
        );
    }
}

async fn due_by_time_and_kind(q: &dyn Queue) {
    q.store(accepted("L100", "x", &[mailbox("a@example.test")], 100))
        .await
        .unwrap();
    q.store(accepted("L200", "x", &[mailbox("b@example.test")], 200))
        .await
        .unwrap();
    q.store(accepted("R150", "x", &[remote("c@example.org")], 150))
        .await
        .unwrap();
    q.store(accepted(
        "M050",
        "x",
        &[mailbox("d@example.test"), remote("e@example.org")],
        50,
    ))
    .await
    .unwrap();
    assert!(ids(&q.due(49, true)).is_empty());
    assert_eq!(ids(&q.due(50, true)), ["M050"]);
    assert_eq!(ids(&q.due(100, true)), ["L100", "M050"]);
    assert_eq!(ids(&q.due(1000, true)), ["L100", "L200", "M050"]);
    assert_eq!(ids(&q.due(149, false)), ["M050"]);
    assert_eq!(ids(&q.due(150, false)), ["M050", "R150"]);
    // A delivery that is no longer pending is never due.
    q.modify("L100", &mut |e| deliver(&mut e.deliveries[0]));
    q.modify("M050", &mut |e| {
        e.deliveries[0].status = Status::Failed {
            at: 60,
            reason: "no".into(),
        }
    });
    assert_eq!(ids(&q.due(1000, true)), ["L200"]);
    assert_eq!(ids(&q.due(1000, false)), ["M050", "R150"]);
    // A retry pushed later stops being due until then.
    q.modify("R150", &mut |e| e.deliveries[0].next_attempt = 900);
    assert_eq!(ids(&q.due(899, false)), ["M050"]);
    assert_eq!(ids(&q.due(900, false)), ["M050", "R150"]);
}

async fn flush_by_id_by_domain_and_all(q: &dyn Queue) {
    q.store(accepted(
        "F1",
        "x",
        &[remote("a@example.org"), remote("b@Example.NET")],
        500,
    ))
    .await
    .unwrap();
    q.store(accepted("F2", "x", &[remote("c@example.net")], 500))
        .await
        .unwrap();
    q.store(accepted("F3", "x", &[mailbox("d@example.test")], 500))
        .await
        .unwrap();
    q.store(accepted("F4", "x", &[remote("e@example.net")], 0))
        .await
        .unwrap();
    q.modify("F2", &mut |e| deliver(&mut e.deliveries[0]));
    let next = |id: &str| -> Vec<u64> {
        q.get(id)
            .unwrap()
            .deliveries
            .iter()
            .map(|d| d.next_attempt)
            .collect()
    };

    // By id: that entry only.
    assert_eq!(q.flush(Some("F3")), 1);
    assert_eq!(next("F3"), [0]);
    assert_eq!(next("F1"), [500, 500]);
    // By domain, any case: F1's second delivery only (F2's is delivered,
    // F4's is due already and does not count).
    assert_eq!(q.flush(Some("example.net")), 1);
    assert_eq!(next("F1"), [500, 0]);
    assert_eq!(next("F2"), [500], "a finished delivery is left alone");
    // Nothing matches.
    assert_eq!(q.flush(Some("nowhere.example")), 0);
    // Everything.
    assert_eq!(q.flush(None), 1);
    assert_eq!(next("F1"), [0, 0]);
    assert_eq!(q.flush(None), 0, "nothing left to make due");
    assert_eq!(ids(&q.due(0, false)), ["F1", "F4"]);
}

async fn begin_end_exclusive(q: &dyn Queue) {
    assert!(q.begin("X1"));
    assert!(!q.begin("X1"), "a second begin is refused");
    assert!(q.begin("X2"), "other ids are independent");
    q.end("X1");
    assert!(q.begin("X1"), "free again after end");
    q.end("X1");
    q.end("X2");
}

async fn remove_checks_and_removes(q: &dyn Queue) {
    q.store(accepted("R1", "x", &[mailbox("a@example.test")], 0))
        .await
        .unwrap();
    assert!(matches!(q.remove("../R1"), Err(RemoveError::NotAnId(_))));
    assert!(matches!(q.remove("NOPE"), Err(RemoveError::NoSuchEntry(id)) if id == "NOPE"));
    assert!(q.begin("R1"));
    let busy = q.remove("R1").unwrap_err();
    assert!(matches!(busy, RemoveError::Busy(_)));
    assert_eq!(busy.to_string(), "R1: being delivered right now, try again");
    assert!(q.get("R1").is_some(), "a refused remove leaves the entry");
    q.end("R1");
    let env = q.remove("R1").unwrap();
    assert_eq!(env.id, "R1");
    assert!(q.get("R1").is_none());
    assert!(q.list().is_empty());
    assert!(q.begin("R1"), "remove does not leave the entry marked busy");
    q.end("R1");
    assert!(matches!(q.remove("R1"), Err(RemoveError::NoSuchEntry(_))));
}

/// Runs one check against a fresh queue of each implementation.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod spool {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let (spool, _) = super::Spool::open(dir.path()).unwrap();
                    let q: std::sync::Arc<dyn super::Queue> = spool;
                    super::$name(&*q).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let q: std::sync::Arc<dyn super::Queue> =
                        std::sync::Arc::new(super::MemoryQueue::new());
                    super::$name(&*q).await;
                }
            )*
        }
    };
}

contract!(
    commit_list_modify_finish,
    invalid_ids_are_refused,
    due_by_time_and_kind,
    flush_by_id_by_domain_and_all,
    begin_end_exclusive,
    remove_checks_and_removes,
);

/// The check that needs the `Arc` itself (tasks share the queue).
mod concurrent {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spool_many_concurrent_stores() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        many_concurrent_stores(spool).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_many_concurrent_stores() {
        many_concurrent_stores(Arc::new(MemoryQueue::new())).await;
    }
}
