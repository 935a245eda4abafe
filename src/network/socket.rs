//! Listen sockets, created on the main thread with the options Envoy sets, and
//! the connecting side's socket options (`connect`).

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Envoy's default listen backlog (`tcp_backlog_size`).
const BACKLOG: i32 = 1024;

/// Binds a non-blocking listening socket; `reuse_port` lets every worker bind its
/// own socket to the same address so the kernel spreads connections over them.
/// An IPv6 socket gets `IPV6_V6ONLY` set to `ipv6_only` either way, as Envoy does,
/// rather than the system's `bindv6only` default.
pub fn bind_listener(addr: SocketAddr, reuse_port: bool, ipv6_only: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(ipv6_only)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The sockets for one listener: one per worker with SO_REUSEPORT (the first one
/// fixes the port when the config says port 0), or one shared fd otherwise.
pub fn bind_for_workers(
    addr: SocketAddr,
    reuse_port: bool,
    ipv6_only: bool,
    workers: usize,
) -> std::io::Result<Vec<TcpListener>> {
    let first = bind_listener(addr, reuse_port, ipv6_only)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        let next = if reuse_port { bind_listener(bound, true, ipv6_only)? } else { sockets[0].try_clone()? };
        sockets.push(next);
    }
    Ok(sockets)
}

/// Envoy's `IPV6_V6ONLY` for a socket bound to `ip` from a `SocketAddress`: set on
/// an IPv6 address unless `ipv4_compat` asks it to accept IPv4 too.
pub fn ipv6_only(ip: std::net::IpAddr, ipv4_compat: bool) -> bool {
    ip.is_ipv6() && !ipv4_compat
}

/// Connects to `addr`. An IPv6 socket gets `IPV6_V6ONLY` set to `ipv6_only` first,
/// as Envoy's do (without it an IPv4-mapped address is unreachable).
pub async fn connect(addr: SocketAddr, ipv6_only: bool) -> std::io::Result<tokio::net::TcpStream> {
    if !addr.is_ipv6() {
        return tokio::net::TcpStream::connect(addr).await;
    }
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(ipv6_only)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpSocket::from_std_stream(socket.into()).connect(addr).await
}
