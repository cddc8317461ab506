//! IMAP wire format (RFC 9051 and RFC 3501 with the extensions mailc
//! offers): framing of commands with literals ([`framer`]), the command
//! grammar ([`parse`]), typed status responses ([`response`]) and response
//! encoding helpers ([`encode`]), plus
//! modified UTF-7 mailbox names ([`mutf7`]) and IMAP dates ([`date`]).
//!
//! The command parser is our own rather than imap-codec's: imap-codec
//! 2.0.0-alpha.10 has no MULTIAPPEND, no ESEARCH `RETURN` options, no
//! LIST-EXTENDED selection options and no way to hand an APPEND literal to
//! the store as it arrives. imap-codec is used by the tests as an
//! independent parser of every response we send.

pub mod date;
pub mod encode;
pub mod framer;
pub mod mutf7;
pub mod parse;
pub mod response;
pub mod types;

pub use types::*;
