//! How the spool's operations fail. The SMTP hand-off only needs to know
//! that storing failed ([`SpoolError`]); the admin's `remove` says why it
//! refused ([`RemoveError`]).

/// The id the spool gave an accepted message (see [`super::new_id`]).
pub type QueueId = String;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The message could not be made durable; the client is told to retry.
    #[error("cannot write to the queue: {0}")]
    Write(#[from] std::io::Error),
    /// An id the spool does not hand out (empty, too long, not alphanumeric).
    #[error("cannot write to the queue: invalid queue id")]
    InvalidId,
    /// No entry with this id is queued.
    #[error("{0}: not queued")]
    NotQueued(QueueId),
    /// The entry is queued but its message cannot be read back.
    #[error("{id}: {source}")]
    Read {
        id: QueueId,
        #[source]
        source: std::io::Error,
    },
    /// The entry could not be marked done.
    #[error("{id}: cannot record it done: {source}")]
    Finish {
        id: QueueId,
        #[source]
        source: std::io::Error,
    },
}

/// Why an entry was not removed by the admin (`mailc queue remove`).
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("{0}: not a queue id")]
    NotAnId(QueueId),
    #[error("{0}: being delivered right now, try again")]
    Busy(QueueId),
    #[error("{0}: no such queue entry")]
    NoSuchEntry(QueueId),
    /// Removing it could not be made durable.
    #[error("{id}: {source}")]
    Io {
        id: QueueId,
        #[source]
        source: std::io::Error,
    },
    /// The spool directory could not be read (offline removal).
    #[error("{0}")]
    Scan(std::io::Error),
}
