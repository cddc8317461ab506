//! `store`: mail at rest. Maildir++ delivery ([`maildir`]), folders with
//! their per-folder index of UIDs, flags and MODSEQs ([`folder`]), mailbox
//! usage for quotas ([`usage`]), users' Sieve scripts ([`sieve`]), and the atomic file helpers the queue uses
//! too ([`fsutil`]). It knows no protocol: the IMAP and POP3 views over it
//! are in `services::mailstore` and `services::maildrop`, opened through
//! the storage seam `services::storage`.

pub mod folder;
pub mod fsutil;
pub mod maildir;
pub mod sieve;
pub mod usage;
