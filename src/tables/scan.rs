//! Content scanning in the tables (`scan { }`): where the scanners listen
//! and what their verdicts mean. Off unless configured.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a scanner listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScanEndpoint {
    /// `IP:PORT`.
    Tcp(std::net::SocketAddr),
    /// The path of a Unix socket.
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScanTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spamd: Option<ScanEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rspamd: Option<ScanEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamd: Option<ScanEndpoint>,
    /// Bound on scanning one message, every scanner together.
    pub timeout_ms: u64,
    /// Messages larger than this are not scanned.
    pub max_size: u64,
    /// A scanner that fails: accept the message marked unscanned (`true`)
    /// or answer 451 (`false`).
    pub fail_open: bool,
    /// Submissions (logged in, or from trusted networks) are scanned too.
    pub submission: bool,
    /// Messages entering through `mailc deliver` are scanned.
    pub deliver: bool,
    /// The server-wide policy; a domain's own (`DomainTable::scan`)
    /// replaces it for that domain's recipients.
    pub policy: ScanPolicy,
    /// Learning from moves into and out of Junk; `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn: Option<ScanLearn>,
}

/// What the scanners' verdicts mean for a recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScanPolicy {
    /// spamd scores from which a message is junk / refused.
    pub spam_junk: f64,
    pub spam_reject: f64,
    /// Spam at the reject level (spamd's score, rspamd's `reject` and
    /// `soft reject` actions) is refused (`true`) or goes to Junk.
    pub reject_spam: bool,
    /// What an infected message gets.
    pub virus: VirusAction,
}

/// What an infected message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VirusAction {
    /// 554 5.7.1 at the end of DATA.
    Reject,
    /// Accepted and dropped (logged): the sender is not told.
    Discard,
    /// Delivered into the Junk folder (quarantine).
    Junk,
    /// Delivered with `X-Virus-Status: Infected`.
    Accept,
}

/// Who is taught when a user moves mail into or out of Junk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScanLearn {
    /// spamd (`TELL`), when spamd is configured.
    pub spamd: bool,
    /// Pass the mailbox address as spamd's user.
    pub spamd_per_user: bool,
    /// rspamd's controller (`/learnspam`, `/learnham`); `None`: rspamd is
    /// not taught.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rspamd_controller: Option<ScanEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}
