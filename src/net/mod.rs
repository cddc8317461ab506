//! `net`: sockets only. Listening sockets, connection limits, TLS (rustls
//! with ring), the STARTTLS upgrade, and a stream type that is plain or TLS.

pub mod certinfo;
pub mod challenges;
pub mod limits;
pub mod listen;
pub mod stream;
pub mod tls;
