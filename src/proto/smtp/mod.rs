//! SMTP (RFC 5321) and LMTP (RFC 2033) on the wire: command lines, typed
//! replies with enhanced status codes (RFC 3463), the DATA and BDAT body
//! receivers, and the trace headers a server adds.

pub mod client;
pub mod command;
pub mod data;
pub mod headers;
pub mod line;
pub mod reply;
