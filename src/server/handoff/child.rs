//! The new process's side of the handoff: asks the old process for its listen
//! sockets while starting, tells it to drain once this one accepts, then
//! follows its connection count (`server.parent_connections`) until it exits.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use super::scm;
use crate::stats::Gauge;

/// A connection to the old process (the previous epoch).
pub struct ParentLink {
    sock: Socket,
}

impl ParentLink {
    /// Connects to the old process's handoff socket `name`.
    pub fn connect(name: &str) -> std::io::Result<ParentLink> {
        Ok(ParentLink { sock: super::connect(name)? })
    }

    /// The old process's listen sockets for `addr` (none if it has none). Each
    /// must be a TCP socket listening on `addr` (any port when `addr`'s is 0);
    /// anything else is refused, and the caller binds fresh sockets.
    pub fn sockets(&self, addr: SocketAddr) -> std::io::Result<Vec<TcpListener>> {
        scm::send(&self.sock, format!("sockets {addr}").as_bytes(), &[])?;
        let Some((reply, fds)) = scm::recv(&self.sock)? else {
            return Err(std::io::Error::other("the old process closed the handoff socket"));
        };
        let reply = String::from_utf8_lossy(&reply);
        let expected = reply.strip_prefix("sockets ").and_then(|n| n.parse::<usize>().ok());
        if expected != Some(fds.len()) {
            return Err(std::io::Error::other(format!(
                "unexpected handoff reply '{reply}' with {} socket(s)",
                fds.len()
            )));
        }
        let sockets: Vec<TcpListener> = fds.into_iter().map(TcpListener::from).collect();
        for s in &sockets {
            let listening = socket2::SockRef::from(s).is_listener().unwrap_or(false);
            let bound = s.local_addr().ok();
            if !listening || bound.is_none_or(|b| b.ip() != addr.ip() || (addr.port() != 0 && b.port() != addr.port()))
            {
                return Err(std::io::Error::other(format!(
                    "the old process sent a socket that is not listening on {addr}"
                )));
            }
            s.set_nonblocking(true)?;
            // An old process stopping a socket as it handed it over (a signal
            // at that moment) leaves its drop-all filter on it; this process
            // accepts on it, so it goes. Most sockets have none to detach.
            let _ = socket2::SockRef::from(s).detach_filter();
        }
        Ok(sockets)
    }

    /// Tells the old process to drain its connections for `drain_time` and exit
    /// within `parent_shutdown_time`; this process accepts on every socket now.
    pub fn drain(&self, drain_time: Duration, parent_shutdown_time: Duration) -> std::io::Result<()> {
        let msg = format!("drain {} {}", drain_time.as_secs(), parent_shutdown_time.as_secs());
        scm::send(&self.sock, msg.as_bytes(), &[])?;
        match scm::recv(&self.sock)? {
            Some((reply, _)) if reply == b"draining" => Ok(()),
            _ => Err(std::io::Error::other("the old process did not confirm its drain")),
        }
    }

    /// Keeps `parent_connections` at the old process's connection count, asked
    /// every `interval`, until it exits (then 0). Envoy's child learns it from
    /// its parent's stats the same way, at each stats flush.
    pub fn follow_connections(
        self,
        parent_connections: Arc<Gauge>,
        interval: Duration,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("handoff".into()).spawn(move || {
            while let Ok(n) = self.connections() {
                parent_connections.set(n);
                std::thread::sleep(interval);
            }
            parent_connections.set(0);
        })
    }

    fn connections(&self) -> std::io::Result<i64> {
        scm::send(&self.sock, b"connections", &[])?;
        let reply = scm::recv(&self.sock)?.ok_or_else(|| std::io::Error::other("the old process exited"))?.0;
        String::from_utf8_lossy(&reply)
            .strip_prefix("connections ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| std::io::Error::other("unexpected handoff reply"))
    }
}
