//! Content scanning in the tables (`scan { }`): where the scanners listen
//! and what their verdicts mean. Off unless configured.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Action;

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
    /// spamd scores from which a message is junk / refused.
    pub spam_junk: f64,
    pub spam_reject: f64,
    /// What an infected message gets.
    pub virus: Action,
    /// Learning from moves into and out of Junk; `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn: Option<ScanLearn>,
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
