//! Binding listening sockets: `SO_REUSEADDR` (restart without waiting for
//! TIME_WAIT), and IPv6 sockets IPv6-only so `[::]:25` and `0.0.0.0:25` can
//! both be bound.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        let s = TcpSocket::new_v6()?;
        rustix::net::sockopt::set_ipv6_v6only(&s, true)?;
        s
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
