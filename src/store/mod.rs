//! `store`: mail at rest. Maildir++ folders (delivery now; the per-folder
//! index for IMAP later), mailbox usage for quotas, and the atomic file
//! helpers the queue uses too.

pub mod folder;
pub mod fsutil;
pub mod maildir;
pub mod usage;
