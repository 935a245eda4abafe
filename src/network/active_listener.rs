//! The worker side of a listener: accepts on this worker's socket and runs each
//! connection's filter chain as a task of this worker. A connection never leaves
//! the worker that accepted it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::connection::{ConnectionInfo, DownstreamConnection};
use super::listener::ListenerConfig;
use super::tls::HandshakeFailure;
use crate::stats::Gauge;

thread_local! {
    /// This worker's running listeners, by name.
    static ACTIVE: RefCell<HashMap<String, JoinHandle<()>>> = RefCell::new(HashMap::new());
}

/// Starts accepting on `socket` on the current worker. Must run on a dispatcher.
pub fn add_listener(
    config: Arc<ListenerConfig>,
    socket: std::net::TcpListener,
    worker: usize,
    total_connections: Arc<Gauge>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(socket)?;
    let name = config.name.clone();
    let task = tokio::task::spawn_local(accept_loop(config, listener, worker, total_connections));
    if let Some(old) = ACTIVE.with(|a| a.borrow_mut().insert(name, task)) {
        old.abort();
    }
    Ok(())
}

/// Stops accepting on every listener of this worker (open connections go on).
/// Dropping the accept task closes this worker's listen socket.
pub fn stop_listeners() {
    ACTIVE.with(|a| {
        for (_, task) in a.borrow_mut().drain() {
            task.abort();
        }
    });
}

async fn accept_loop(config: Arc<ListenerConfig>, listener: tokio::net::TcpListener, worker: usize, total: Arc<Gauge>) {
    // A connection's local address is the listener's, unless the listener is
    // bound to a wildcard address: only then is it asked of each socket.
    let bound = listener.local_addr().ok().filter(|a| !a.ip().is_unspecified());
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(listener = %config.name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let local = match bound {
            Some(bound) => bound,
            None => stream.local_addr().unwrap_or(config.address),
        };
        let _ = stream.set_nodelay(true);
        let info = ConnectionInfo { remote, local };
        let guard = ConnectionAccounting::open(config.clone(), worker, total.clone());
        if config.filter_chain.transport_socket.is_some() {
            tokio::task::spawn_local(handshake_then_serve(config.clone(), stream, info, guard));
            continue;
        }
        let conn = DownstreamConnection { stream: stream.into(), info, buffer_limit: config.buffer_limit };
        let run = config.filter_chain.terminal.on_new_connection(conn);
        tokio::task::spawn_local(async move {
            run.await;
            drop(guard);
        });
    }
}

/// A TLS chain's connection: the handshake on this worker, then the network
/// filters over the session. A failed or timed-out handshake closes the
/// connection before any filter sees it.
async fn handshake_then_serve(
    config: Arc<ListenerConfig>,
    stream: tokio::net::TcpStream,
    info: ConnectionInfo,
    guard: ConnectionAccounting,
) {
    let Some(tls) = &config.filter_chain.transport_socket else { return };
    match tls.accept(stream).await {
        Ok(stream) => {
            let conn = DownstreamConnection { stream, info, buffer_limit: config.buffer_limit };
            config.filter_chain.terminal.on_new_connection(conn).await;
        }
        Err(HandshakeFailure::Timeout) => config.stats.downstream_cx_transport_socket_connect_timeout.inc(),
        Err(HandshakeFailure::Failed) => {}
    }
    drop(guard);
}

/// Counts a connection in the listener, per-worker and server stats for as long
/// as it lives.
struct ConnectionAccounting {
    config: Arc<ListenerConfig>,
    worker: usize,
    total: Arc<Gauge>,
}

impl ConnectionAccounting {
    fn open(config: Arc<ListenerConfig>, worker: usize, total: Arc<Gauge>) -> Self {
        config.stats.downstream_cx_total.inc();
        config.stats.downstream_cx_active.inc();
        if let Some(w) = config.worker_stats.get(worker) {
            w.downstream_cx_total.inc();
            w.downstream_cx_active.inc();
        }
        total.inc();
        ConnectionAccounting { config, worker, total }
    }
}

impl Drop for ConnectionAccounting {
    fn drop(&mut self) {
        self.config.stats.downstream_cx_active.dec();
        self.config.stats.downstream_cx_destroy.inc();
        if let Some(w) = self.config.worker_stats.get(self.worker) {
            w.downstream_cx_active.dec();
        }
        self.total.dec();
    }
}
