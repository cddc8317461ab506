//! `proto`: wire formats as pure functions over bytes. No tokio, no files, no
//! sockets: everything here can be unit-tested and fuzzed with plain values.
//!
//! Parsers keep "need more bytes" apart from "invalid", and cap every line.

pub mod header;
pub mod imap;
pub mod managesieve;
pub mod pop3;
pub mod sasl;
pub mod scan;
pub mod smtp;
