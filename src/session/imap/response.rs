//! How the session words store failures and its other recurring
//! responses; the response type and its encoder are in
//! [`crate::proto::imap::response`].

use super::StoreError;
use crate::proto::imap::response::{Code, Response};

/// The tagged NO for a failed store operation.
pub(super) fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::NotFound => Response::no(Code::Nonexistent, "No such mailbox"),
        StoreError::Exists => Response::no(Code::AlreadyExists, "Mailbox already exists"),
        StoreError::Invalid(m) | StoreError::Refused(m) => Response::no(Code::Cannot, m.clone()),
        StoreError::OverQuota => Response::no(Code::OverQuota, "Quota exceeded"),
        StoreError::Io(m) => Response::no(Code::ServerBug, m.clone()),
    }
}

/// A store failure where the target mailbox must exist (APPEND, COPY,
/// MOVE): a missing one is TRYCREATE, so the client may create it.
pub(super) fn target_error(e: &StoreError) -> Response {
    match e {
        StoreError::NotFound | StoreError::Invalid(_) => {
            crate::proto::imap::response::r::try_create()
        }
        e => store_error(e),
    }
}
