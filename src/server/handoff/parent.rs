//! The old process's side of the handoff: a thread that answers the new
//! process's requests with copies of this process's listen sockets, passes its
//! drain request to the main thread, then tells it how many connections this
//! process still has (its `server.parent_connections`) until it exits.
//!
//! A thread rather than a task of the main dispatcher: the exchange is a few
//! blocking calls once per upgrade, and sending descriptors has no tokio API.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::Socket;
use tokio::sync::mpsc::UnboundedSender;

use super::{scm, DrainRequest};
use crate::network::listener_manager::SocketsByAddress;
use crate::stats::Gauge;

/// The listen sockets this process may hand over. Emptied when the process
/// drains on its own (a signal): a closing socket must not stay open in here.
pub type HandoffSockets = Arc<Mutex<SocketsByAddress>>;

/// Serves new processes on `listener` until one asks this one to drain, then
/// answers that one's questions about `connections` (this process's
/// `server.total_connections`).
pub fn spawn(
    listener: Socket,
    sockets: HandoffSockets,
    drain: UnboundedSender<DrainRequest>,
    connections: Arc<Gauge>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("handoff".into()).spawn(move || loop {
        let child = match listener.accept() {
            Ok((child, _)) => child,
            Err(e) => {
                tracing::warn!("handoff socket: accept failed: {e}");
                return;
            }
        };
        // An abstract socket has no file permissions: anyone on the host (in
        // this network namespace) could connect, take the listen sockets or
        // make this process drain. Only this user's processes are answered.
        if !scm::peer_is_same_user(&child) {
            tracing::warn!("handoff: a process of another user connected; ignored");
            continue;
        }
        // A new process that goes away mid-handoff leaves this one serving; a
        // later one may try again.
        match serve_child(&child, &sockets) {
            Ok(Some(request)) => {
                let _ = drain.send(request);
                if scm::send(&child, b"draining", &[]).is_ok() {
                    answer_connections(&child, &connections);
                }
                return;
            }
            Ok(None) => tracing::warn!("handoff: the new process left before asking this one to drain"),
            Err(e) => tracing::warn!("handoff with a new process failed: {e}"),
        }
    })
}

/// Tells the new process how many connections this one has, each time it
/// asks, until it goes (or this process exits).
fn answer_connections(child: &Socket, connections: &Gauge) {
    while let Ok(Some((msg, _))) = scm::recv(child) {
        let reply = if msg == b"connections" { format!("connections {}", connections.value()) } else { "error".into() };
        if scm::send(child, reply.as_bytes(), &[]).is_err() {
            return;
        }
    }
}

/// Answers one new process's requests; its drain request once it sends one.
fn serve_child(child: &Socket, sockets: &HandoffSockets) -> std::io::Result<Option<DrainRequest>> {
    child.set_read_timeout(Some(Duration::from_secs(600)))?;
    child.set_write_timeout(Some(super::IO_TIMEOUT))?;
    let mut handed_over = HashSet::new();
    while let Some((msg, _)) = scm::recv(child)? {
        let text = String::from_utf8_lossy(&msg);
        let mut words = text.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("sockets"), Some(addr), None) => {
                let Ok(addr) = addr.parse::<SocketAddr>() else {
                    scm::send(child, b"error bad address", &[])?;
                    continue;
                };
                let guard = sockets.lock().unwrap_or_else(|p| p.into_inner());
                let found = guard.get(&addr).map(Vec::as_slice).unwrap_or_default();
                let fds: Vec<_> = found.iter().map(AsFd::as_fd).collect();
                scm::send(child, format!("sockets {}", fds.len()).as_bytes(), &fds)?;
                if !fds.is_empty() {
                    tracing::info!("handoff: {} socket(s) of {addr} sent to the new process", fds.len());
                    handed_over.insert(addr);
                }
            }
            (Some("drain"), Some(drain), Some(shutdown)) => {
                let (Ok(drain), Ok(shutdown)) = (drain.parse::<u64>(), shutdown.parse::<u64>()) else {
                    scm::send(child, b"error bad drain times", &[])?;
                    continue;
                };
                // The sockets are the new process's now, or close with the drain.
                sockets.lock().unwrap_or_else(|p| p.into_inner()).clear();
                return Ok(Some(DrainRequest {
                    drain_time: Duration::from_secs(drain),
                    parent_shutdown_time: Duration::from_secs(shutdown),
                    handed_over,
                }));
            }
            _ => scm::send(child, b"error unknown request", &[])?,
        }
    }
    Ok(None)
}
