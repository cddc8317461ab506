//! `session`: protocol state machines without I/O. A session takes input
//! (command lines, body bytes) and returns replies plus effects for the
//! driver in `services` to perform; it never touches sockets or files.

pub mod smtp;
