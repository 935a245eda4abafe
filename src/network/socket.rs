//! Listen sockets, created on the main thread with the options Envoy sets, and
//! the connecting side's socket options (`connect`).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

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

/// The sockets for one listener when some come from elsewhere (a parent process
/// handing its listen sockets over): every inherited socket is kept, as closing
/// one would reset the connections waiting in its accept queue, and with
/// SO_REUSEPORT fresh ones join them until each worker has one. The result has
/// one list per worker; a worker accepts from each socket of its list.
pub fn sockets_for_workers(
    inherited: Vec<TcpListener>,
    addr: SocketAddr,
    reuse_port: bool,
    ipv6_only: bool,
    workers: usize,
) -> std::io::Result<Vec<Vec<TcpListener>>> {
    let workers = workers.max(1);
    let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    if inherited.is_empty() {
        for (w, s) in bind_for_workers(addr, reuse_port, ipv6_only, workers)?.into_iter().enumerate() {
            per_worker[w].push(s);
        }
        return Ok(per_worker);
    }
    let bound = inherited[0].local_addr()?;
    let have = inherited.len();
    let shared = if reuse_port { None } else { Some(inherited[0].try_clone()?) };
    for (i, s) in inherited.into_iter().enumerate() {
        per_worker[i % workers].push(s);
    }
    for list in per_worker.iter_mut().skip(have) {
        let next = match &shared {
            Some(s) => s.try_clone()?,
            None => bind_listener(bound, true, ipv6_only)?,
        };
        list.push(next);
    }
    Ok(per_worker)
}

/// Makes a listen socket refuse new connections while it still has some
/// queued: a socket filter that drops every packet, so no handshake completes
/// on it from now on (a client's SYN goes unanswered, and is refused once the
/// socket is closed). The connections already in its accept queue can then be
/// accepted and served before it closes; closing a socket with a queue resets
/// every connection in it.
pub fn refuse_new_connections(listener: &TcpListener) -> std::io::Result<()> {
    // BPF_RET | BPF_K with k = 0: keep 0 bytes of every packet, i.e. drop it.
    const DROP_ALL: [socket2::SockFilter; 1] = [socket2::SockFilter::new(0x06, 0, 0, 0)];
    socket2::SockRef::from(listener).attach_filter(&DROP_ALL)
}

/// The destination a connection had before a NAT redirect sent it here
/// (`SO_ORIGINAL_DST`, `IP6T_SO_ORIGINAL_DST` for IPv6), or the local address of
/// a transparent (`IP_TRANSPARENT`) socket, as Envoy's `getOriginalDst`. `None`
/// when the kernel knows of no redirect (no conntrack entry: plain loopback).
pub fn original_dst(stream: &tokio::net::TcpStream) -> Option<SocketAddr> {
    use std::os::fd::AsRawFd;
    const SO_ORIGINAL_DST: libc::c_int = 80;
    const IP6T_SO_ORIGINAL_DST: libc::c_int = 80;
    let local = stream.local_addr().ok()?;
    let (level, name, transparent) = match local {
        SocketAddr::V4(_) => (libc::SOL_IP, SO_ORIGINAL_DST, libc::IP_TRANSPARENT),
        SocketAddr::V6(_) => (libc::SOL_IPV6, IP6T_SO_ORIGINAL_DST, libc::IPV6_TRANSPARENT),
    };
    let fd = stream.as_raw_fd();
    // SAFETY: an all-zero `sockaddr_storage` is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes and `fd` is open while `stream` is borrowed.
    let status = unsafe { libc::getsockopt(fd, level, name, (&raw mut storage).cast(), &mut len) };
    if status == 0 {
        return socket_addr_of(&storage);
    }
    let mut on: libc::c_int = 0;
    let mut on_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `on` is writable for `on_len` bytes.
    let status = unsafe { libc::getsockopt(fd, level, transparent, (&raw mut on).cast(), &mut on_len) };
    (status == 0 && on != 0).then_some(local)
}

/// A `sockaddr_storage` the kernel filled, as a `SocketAddr` (`None` for a family
/// other than IPv4 and IPv6).
fn socket_addr_of(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`, which it is large and aligned enough for.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for a `sockaddr_in6`.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(ip, u16::from_be(a.sin6_port), 0, a.sin6_scope_id)))
        }
        _ => None,
    }
}

/// Envoy's `IPV6_V6ONLY` for a socket bound to `ip` from a `SocketAddress`: set on
/// an IPv6 address unless `ipv4_compat` asks it to accept IPv4 too.
pub fn ipv6_only(ip: std::net::IpAddr, ipv4_compat: bool) -> bool {
    ip.is_ipv6() && !ipv4_compat
}

/// `upstream_connection_options.tcp_keepalive`: `SO_KEEPALIVE` on, and each value
/// that is set overrides the system's (`TCP_KEEPCNT`, `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`), as Envoy sets them before connecting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

impl TcpKeepalive {
    fn apply(&self, socket: &Socket) -> std::io::Result<()> {
        let mut params = socket2::TcpKeepalive::new();
        if let Some(t) = self.time {
            params = params.with_time(t);
        }
        if let Some(i) = self.interval {
            params = params.with_interval(i);
        }
        if let Some(p) = self.probes {
            params = params.with_retries(p);
        }
        socket.set_tcp_keepalive(&params)
    }
}

/// Connects to `addr`. An IPv6 socket gets `IPV6_V6ONLY` set to `ipv6_only` first,
/// as Envoy's do (without it an IPv4-mapped address is unreachable), and any
/// socket the `keepalive` options.
pub async fn connect(
    addr: SocketAddr,
    ipv6_only: bool,
    keepalive: Option<&TcpKeepalive>,
) -> std::io::Result<tokio::net::TcpStream> {
    if !addr.is_ipv6() && keepalive.is_none() {
        return tokio::net::TcpStream::connect(addr).await;
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(ipv6_only)?;
    }
    if let Some(k) = keepalive {
        k.apply(&socket)?;
    }
    socket.set_nonblocking(true)?;
    tokio::net::TcpSocket::from_std_stream(socket.into()).connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port_of(lists: &[Vec<TcpListener>]) -> Vec<Vec<u16>> {
        lists.iter().map(|l| l.iter().map(|s| s.local_addr().unwrap().port()).collect()).collect()
    }

    #[test]
    fn inherited_sockets_are_all_kept_and_spread_over_fewer_workers() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let parent = bind_for_workers(addr, true, false, 3).unwrap();
        let port = parent[0].local_addr().unwrap().port();
        let lists = sockets_for_workers(parent, addr, true, false, 2).unwrap();
        assert_eq!(port_of(&lists), vec![vec![port, port], vec![port]]);
    }

    #[test]
    fn more_workers_than_inherited_sockets_bind_more_on_the_same_port() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let parent = bind_for_workers(addr, true, false, 1).unwrap();
        let port = parent[0].local_addr().unwrap().port();
        let lists = sockets_for_workers(parent, addr, true, false, 3).unwrap();
        assert_eq!(port_of(&lists), vec![vec![port]; 3]);
    }

    #[tokio::test]
    async fn original_dst_is_none_without_a_redirect_and_the_local_address_when_transparent() {
        let plain = bind_listener("127.0.0.1:0".parse().unwrap(), false, false).unwrap();
        let listener = tokio::net::TcpListener::from_std(plain).unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        // No NAT redirect on loopback: the kernel has no original destination.
        assert_eq!(original_dst(&accepted), None);

        let transparent = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        // IP_TRANSPARENT needs CAP_NET_ADMIN; without it there is nothing to check.
        if transparent.set_ip_transparent_v4(true).is_err() {
            return;
        }
        transparent.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
        transparent.listen(8).unwrap();
        transparent.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(transparent.into()).unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(original_dst(&accepted), Some(accepted.local_addr().unwrap()));
    }
}
