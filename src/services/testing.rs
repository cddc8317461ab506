//! What the services' unit tests run on: a [`Shared`] built from a
//! configuration text, with an in-memory queue ([`MemoryQueue`]), the
//! delivery and outbound channels held by the test, no listener, no TLS,
//! and a resolver pointed at a closed loopback port (nothing here looks a
//! name up).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::outbound::{Event, OutboundRuntime};
use super::{Shared, Snapshot};
use crate::compile::{Options, compile_str};
use crate::envelope::{Accepted, Client, Delivery, Destination, Envelope, Recipient};
use crate::queue::memory::MemoryQueue;
use crate::queue::{Entry, Queue};
use crate::store::usage::Usage;

pub(crate) struct Harness {
    pub shared: Arc<Shared>,
    pub queue: Arc<MemoryQueue>,
    /// What was handed to local delivery.
    pub delivery: UnboundedReceiver<Entry>,
    /// What the outbound manager was told.
    pub outbound: UnboundedReceiver<Event>,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

/// A server for `example.test` (mailboxes alice and bob, bob disabled) with
/// its state directory at `state` (it is only written to by deliveries).
pub(crate) fn harness(state: &Path) -> Harness {
    harness_with(state, "")
}

/// [`harness`] with more configuration appended.
pub(crate) fn harness_with(state: &Path, extra: &str) -> Harness {
    let text = format!(
        "hostname \"mail.example.test\"\nstate \"{}\"\ntls self-signed=#true\nlisten \"smtp\" \"127.0.0.1:25\"\n\
         domain \"example.test\" {{\n mailbox \"alice\"\n mailbox \"bob\" disabled=#true\n}}\n{extra}",
        state.display()
    );
    let out = compile_str("t.kdl", state, &text, Options { offline: true });
    let compiled = out.compiled.unwrap_or_else(|| {
        panic!(
            "test config compiles: {}",
            crate::diag::render_all(&out.diags, &out.sources, crate::diag::Style::Plain, 100)
        )
    });
    let tables = Arc::new(compiled.tables);
    let closed: std::net::SocketAddr = "127.0.0.1:9".parse().expect("address");
    let resolver =
        crate::dns::resolver::build(&[closed], Duration::from_secs(1)).expect("resolver");
    let roots = Arc::new(rustls::RootCertStore::empty());
    let outbound = OutboundRuntime {
        dnssec_servers: vec![closed],
        sts: crate::services::mta_sts::StsClient::new(
            &tables.state_dir,
            roots.clone(),
            resolver.clone(),
        ),
        tlsrpt: Arc::new(crate::outbound::tlsrpt::Discard),
        resolver,
        roots,
        passwords: Default::default(),
        signer: crate::outbound::dkim::Signer::load(&tables).expect("no DKIM keys to load"),
        timeouts: Default::default(),
        dane: tables.outbound.dane,
        mta_sts: tables.outbound.mta_sts,
    };
    let snapshot = Snapshot {
        filters: Arc::new(
            crate::services::filtering::Filters::load(&tables).expect("the test scripts compile"),
        ),
        tables,
        secrets: Arc::new(compiled.secrets),
        tls: None,
        https: None,
        outbound: Arc::new(outbound),
        login_cache: None,
    };
    let queue = Arc::new(MemoryQueue::new());
    let (delivery_tx, delivery) = tokio::sync::mpsc::unbounded_channel();
    let (outbound_tx, outbound) = tokio::sync::mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared::new(
        snapshot,
        queue.clone(),
        Arc::new(Usage::new()),
        delivery_tx,
        outbound_tx,
        crate::outbound::srs::Srs::from_secret(b"test secret"),
        shutdown_rx,
    ));
    Harness {
        shared,
        queue,
        delivery,
        outbound,
        _shutdown: shutdown,
    }
}

pub(crate) fn mailbox(a: &str) -> Destination {
    Destination::Mailbox { address: a.into() }
}

pub(crate) fn remote(a: &str) -> Destination {
    Destination::Remote { address: a.into() }
}

/// A message from `sender`, one recipient per destination (each its own
/// delivery, due at `received_at`).
pub(crate) fn message(id: &str, sender: &str, to: &[Destination], received_at: u64) -> Accepted {
    let recipients = to
        .iter()
        .enumerate()
        .map(|(i, d)| Recipient {
            address: d.address().to_string(),
            orcpt: None,
            notify: Default::default(),
            deliveries: vec![i],
        })
        .collect();
    let body = format!("From: <{sender}>\r\nSubject: test {id}\r\n\r\nbody\r\n");
    Accepted {
        envelope: Envelope {
            id: id.into(),
            sender: sender.into(),
            recipients,
            deliveries: to
                .iter()
                .map(|d| Delivery::new(d.clone(), received_at))
                .collect(),
            ret: None,
            envid: None,
            body_8bit: false,
            smtputf8: false,
            client: Client {
                ip: "192.0.2.1".into(),
                helo: "client.example".into(),
                tls: None,
                auth: None,
                listener: "smtp".into(),
            },
            received_at,
            size: body.len() as u64,
            junk: false,
            arc_seals: Default::default(),
        },
        message: body.into_bytes(),
    }
}

/// Stores a message in the harness's queue.
pub(crate) async fn queued(h: &Harness, accepted: Accepted) -> Entry {
    h.queue.store(accepted).await.expect("stored in memory")
}
