//! The envelope of an accepted message: what the SMTP session decided and
//! the queue persists (sender, recipients with their DSN parameters, where
//! each goes, per-delivery status). Plain data, serialised as JSON in the
//! spool; no I/O here.

use serde::{Deserialize, Serialize};

/// DSN `NOTIFY` (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
    pub never: bool,
}

/// DSN `RET` (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ret {
    Full,
    Headers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Client {
    pub ip: String,
    pub helo: String,
    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384`, when TLS was used.
    pub tls: Option<String>,
    /// The mailbox that authenticated, if any.
    pub auth: Option<String>,
    /// The listener kind the message came in on.
    pub listener: String,
}

/// Where one copy goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Destination {
    /// A local mailbox (key of `Tables::mailboxes`).
    Mailbox { address: String },
    /// Another server: outbound SMTP.
    Remote { address: String },
}

impl Destination {
    pub fn address(&self) -> &str {
        match self {
            Destination::Mailbox { address } | Destination::Remote { address } => address,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Status {
    Pending,
    Delivered {
        at: u64,
    },
    /// Permanently failed (a bounce is due).
    Failed {
        at: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Delivery {
    pub destination: Destination,
    pub status: Status,
    pub attempts: u32,
    /// Unix time of the next attempt.
    pub next_attempt: u64,
    pub last_error: Option<String>,
    /// Enhanced status code of the last result (`4.4.1`, `5.1.1`, `2.0.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// The server that gave the last answer (`mx.example.org [192.0.2.1]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
    /// TLS of the last connection (`TLSv1.3, verified` / `none`), for
    /// `mailc queue show` and TLS reporting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// The next hop offered DSN and took the NOTIFY request over: no
    /// `relayed` notice from us.
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote_dsn: bool,
    /// A delay warning went out for this delivery.
    #[serde(default, skip_serializing_if = "is_false")]
    pub delay_warned: bool,
    /// The final DSN (failure, or success when asked) was queued.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dsn_sent: bool,
    /// This copy goes to the Junk folder (the content scan under its
    /// recipient's domain policy); `Envelope::junk` marks every copy.
    #[serde(default, skip_serializing_if = "is_false")]
    pub junk: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Delivery {
    pub fn new(destination: Destination, now: u64) -> Delivery {
        Delivery {
            destination,
            status: Status::Pending,
            attempts: 0,
            next_attempt: now,
            last_error: None,
            status_code: None,
            remote_mta: None,
            tls: None,
            remote_dsn: false,
            delay_warned: false,
            dsn_sent: false,
            junk: false,
        }
    }
}

/// One `RCPT TO` and what it expanded to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Recipient {
    /// The address as the client gave it.
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: Notify,
    /// Indexes into [`Envelope::deliveries`].
    pub deliveries: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Envelope {
    pub id: String,
    /// Empty for the null sender `<>` (bounces).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// One per distinct destination; several recipients may share one.
    pub deliveries: Vec<Delivery>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub body_8bit: bool,
    pub smtputf8: bool,
    pub client: Client,
    pub received_at: u64,
    /// Size of the stored message in bytes.
    pub size: u64,
    /// The inbound checks sent it to the Junk folder (local recipients).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub junk: bool,
    /// The ARC sets (RFC 8617) sealed at reception for the copies that are
    /// forwarded, per forwarding domain: put on top of the stored message
    /// when a forwarded copy is sent, never on local copies.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub arc_seals: std::collections::BTreeMap<String, String>,
}

impl Envelope {
    pub fn is_done(&self) -> bool {
        self.deliveries
            .iter()
            .all(|d| !matches!(d.status, Status::Pending))
    }

    /// Adds a destination once; returns its index.
    pub fn add_destination(&mut self, destination: Destination, now: u64) -> usize {
        if let Some(i) = self
            .deliveries
            .iter()
            .position(|d| d.destination == destination)
        {
            return i;
        }
        self.deliveries.push(Delivery::new(destination, now));
        self.deliveries.len() - 1
    }
}

/// An accepted message on its way into the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub envelope: Envelope,
    /// The message with the server's trace fields prepended.
    pub message: Vec<u8>,
}
