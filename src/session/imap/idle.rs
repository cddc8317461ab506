//! IDLE (RFC 2177): the session waits for DONE while the driver calls
//! [`Session::poll`] when the mailbox may have changed.

use super::view::Mailbox;
use super::{Account, Env, Output, Session};
use crate::proto::imap::response::Response;

impl<E: Env> Session<E> {
    /// The line that ends an IDLE.
    pub(super) fn idle_line(&mut self, line: &[u8]) -> Output {
        let Ok((a, mb)) = self.state.logged_in() else {
            return Output::default();
        };
        let Some(tag) = a.idle.take() else {
            return Output::default();
        };
        if line.eq_ignore_ascii_case(b"DONE") {
            a.finish(Vec::new(), mb, &tag, Response::ok("IDLE terminated"), true)
        } else {
            self.error_output(&tag, Response::bad("Expected DONE"))
        }
    }
}

impl Account {
    pub(super) fn idle(&mut self, mb: Option<&mut Mailbox>, tag: &str) -> Output {
        let mut out = Vec::new();
        if let Some(mb) = mb {
            self.refresh(mb, &mut out, true);
        }
        out.extend_from_slice(b"+ idling\r\n");
        self.idle = Some(tag.to_string());
        Output::bytes(out)
    }
}
