//! QUOTA (RFC 9208): one root, `""`, holding the user's STORAGE limit.
//! Limits come from the configuration, so SETQUOTA is refused.

use super::view::Mailbox;
use super::{Account, Handled};
use crate::proto::imap::encode;
use crate::proto::imap::response::{Code, Response, r};

fn quota_line(out: &mut Vec<u8>, used: u64, limit: u64) {
    out.extend_from_slice(
        format!(
            "* QUOTA \"\" (STORAGE {} {})\r\n",
            used.div_ceil(1024),
            limit / 1024
        )
        .as_bytes(),
    );
}

impl Account {
    pub(super) fn get_quota_root(
        &mut self,
        mb: Option<&mut Mailbox>,
        tag: &str,
        raw: &str,
    ) -> Handled {
        let name = self.ext.decode_name(raw)?;
        let mut out = b"* QUOTAROOT ".to_vec();
        encode::mailbox(&mut out, &self.ext.encode_name(&name), self.ext.utf8);
        match self.store.quota() {
            (used, Some(limit)) => {
                out.extend_from_slice(b" \"\"\r\n");
                quota_line(&mut out, used, limit);
            }
            (_, None) => out.extend_from_slice(b"\r\n"),
        }
        Ok(self.finish(out, mb, tag, r::completed("GETQUOTAROOT"), true))
    }

    pub(super) fn get_quota(&mut self, mb: Option<&mut Mailbox>, tag: &str, root: &str) -> Handled {
        match self.store.quota() {
            (used, Some(limit)) if root.is_empty() => {
                let mut out = Vec::new();
                quota_line(&mut out, used, limit);
                Ok(self.finish(out, mb, tag, r::completed("GETQUOTA"), true))
            }
            _ => Err(Response::no(Code::Nonexistent, "No such quota root").into()),
        }
    }
}
