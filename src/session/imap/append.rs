//! APPEND, with MULTIAPPEND (RFC 3502), UIDPLUS's APPENDUID and binary
//! content (RFC 3516 literal8: binary parts are stored base64-encoded).

use super::response::{store_error, target_error};
use super::view::{Mailbox, canonical_flag, is_system, settable};
use super::{Account, Handled, Recent, mime};
use crate::proto::imap::AppendMessage;
use crate::proto::imap::response::{Code, Response, r};

impl Account {
    /// `limit`: the largest message accepted.
    pub(super) fn append(
        &mut self,
        mb: Option<&mut Mailbox>,
        tag: &str,
        raw: &str,
        messages: Vec<AppendMessage>,
        limit: u64,
    ) -> Handled {
        let name = self.ext.decode_name(raw)?;
        for m in &messages {
            if m.data.len() as u64 > limit {
                return Err(Response::no(Code::TooBig, "Message too large").into());
            }
            if !settable(&m.flags) {
                return Err(Response::bad("\\Recent and \\* cannot be set").into());
            }
            // RFC 3501 §9 flag-extension: "\" atom is reserved for future
            // system flags; one this server does not know is a syntax error.
            if m.flags.iter().any(|f| f.starts_with('\\') && !is_system(f)) {
                return Err(Response::bad("Unknown system flag").into());
            }
            if m.data.is_empty() {
                return Err(Response::no_plain("Empty message").into());
            }
        }
        self.store
            .peek(&name, Recent::Look)
            .map_err(|e| target_error(&e))?;
        let (used, quota) = self.store.quota();
        let total: u64 = messages.iter().map(|m| m.data.len() as u64).sum();
        if quota.is_some_and(|q| used + total > q) {
            return Err(r::over_quota().into());
        }
        let mut uids = Vec::with_capacity(messages.len());
        let mut validity = 0;
        for m in &messages {
            let flags: Vec<String> = m.flags.iter().map(|f| canonical_flag(f)).collect();
            // Binary content (a literal8, RFC 3516) is stored in base64.
            let converted = mime::binary_parts_to_base64(&m.data);
            let data = converted.as_deref().unwrap_or(&m.data);
            let (v, uid) = self
                .store
                .append(&name, data, &flags, m.date)
                .map_err(|e| store_error(&e))?;
            validity = v;
            uids.push(uid);
        }
        let done = Response::ok_code(Code::AppendUid(validity, uids), "APPEND completed");
        Ok(self.finish(Vec::new(), mb, tag, done, true))
    }
}
