//! How storing a message in the spool fails, as the SMTP hand-off sees it.

/// The id the spool gave an accepted message (see [`super::new_id`]).
pub type QueueId = String;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The message could not be made durable; the client is told to retry.
    #[error("cannot write to the queue: {0}")]
    Write(#[from] std::io::Error),
}
