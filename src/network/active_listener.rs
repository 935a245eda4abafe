//! The worker side of a listener: accepts on this worker's socket and runs each
//! connection's filter chain as a task of this worker. A connection never leaves
//! the worker that accepted it.
//!
//! Stopping a listener is where connections get lost if done bluntly: closing a
//! listen socket resets every connection waiting in its accept queue, which the
//! client already sees as established. So a socket that closes is first made to
//! refuse new handshakes and its queue is accepted and served; a socket handed
//! to a new Courier process (which keeps accepting from the same queue) is just
//! let go of.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::client_hello::InspectedHello;
use super::connection::{ConnectionInfo, DownstreamConnection};
use super::connection_log::{ConnectionLogCause, PendingConnectionLog};
use super::filter::{FilterChain, LocalBoxFuture};
use super::filter_chain_match::MatchInput;
use super::listener::ListenerConfig;
use super::listener_filter::{AcceptedSocket, ListenerFilterError};
use super::read_filter;
use super::socket;
use super::tls::{DownstreamTls, DownstreamTlsInfo, HandshakeFailure};
use super::transport::TransportStream;
use crate::event::spawn_isolated;
use crate::overload::{self, OverloadAction};
use crate::stats::Gauge;

/// How a listener stops on a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// The socket closes: its accept queue is served first (see the module doc).
    Close,
    /// A new process accepts from the socket now: this one only lets go of it.
    HandedOver,
}

/// One accept loop, and how to stop it.
struct AcceptTask {
    stop: oneshot::Sender<StopMode>,
}

thread_local! {
    /// This worker's running listeners, by name: one accept loop per socket.
    static ACTIVE: RefCell<HashMap<String, Vec<AcceptTask>>> = RefCell::new(HashMap::new());
}

/// Starts accepting on `sockets` on the current worker; a listener of the
/// same name this worker runs (an LDS update) stops as `replaced` says. Must
/// run on a dispatcher.
pub fn add_listener(
    config: Arc<ListenerConfig>,
    sockets: Vec<std::net::TcpListener>,
    worker: usize,
    total_connections: Arc<Gauge>,
    replaced: StopMode,
) -> std::io::Result<()> {
    let mut tasks = Vec::with_capacity(sockets.len());
    for socket in sockets {
        let listener = tokio::net::TcpListener::from_std(socket)?;
        let (stop, stopped) = oneshot::channel();
        tokio::task::spawn_local(accept_loop(config.clone(), listener, worker, total_connections.clone(), stopped));
        tasks.push(AcceptTask { stop });
    }
    // The new loops accept before the old ones stop, which they do at their
    // next turn: on the same socket (`HandedOver`) they let go of their
    // descriptor while the new loops accept from the same queue. (Aborting one
    // could drop a connection it had just accepted.)
    if let Some(old) = ACTIVE.with(|a| a.borrow_mut().insert(config.name.clone(), tasks)) {
        for t in old {
            let _ = t.stop.send(replaced);
        }
    }
    Ok(())
}

/// Stops accepting on one listener of this worker (an LDS removal); its
/// connections go on.
pub fn stop_listener(name: &str, mode: StopMode) {
    if let Some(tasks) = ACTIVE.with(|a| a.borrow_mut().remove(name)) {
        for t in tasks {
            let _ = t.stop.send(mode);
        }
    }
}

/// Stops accepting on every listener of this worker (open connections go on);
/// `mode` says, by listener name, whether its sockets close or were handed over.
pub fn stop_listeners(mode: impl Fn(&str) -> StopMode) {
    ACTIVE.with(|a| {
        for (name, tasks) in a.borrow_mut().drain() {
            let mode = mode(&name);
            for t in tasks {
                // An accept loop that already ended has nothing left to stop.
                let _ = t.stop.send(mode);
            }
        }
    });
}

async fn accept_loop(
    config: Arc<ListenerConfig>,
    listener: tokio::net::TcpListener,
    worker: usize,
    total: Arc<Gauge>,
    mut stop: oneshot::Receiver<StopMode>,
) {
    // A connection's local address is the listener's, unless the listener is
    // bound to a wildcard address: only then is it asked of each socket.
    let bound = listener.local_addr().ok().filter(|a| !a.ip().is_unspecified());
    loop {
        let accepted = tokio::select! {
            biased;
            mode = &mut stop => Err(mode),
            accepted = async {
                wait_while_overloaded(&config).await;
                listener.accept().await
            } => Ok(accepted),
        };
        match accepted {
            Ok(Ok((stream, remote))) => {
                // Accepted as the listener was stopped by the overload manager:
                // the connection waits as it would have in the backlog.
                wait_while_overloaded(&config).await;
                accept(&config, stream, remote, bound, worker, &total);
            }
            Err(mode) => {
                // A dropped sender (the worker exiting) lets the socket go too.
                if mode == Ok(StopMode::Close) {
                    close_serving_queue(&config, listener, bound, worker, &total);
                }
                return;
            }
            Ok(Err(e)) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(listener = %config.name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How often a listener stopped by the stop_accepting_connections overload
/// action looks whether it may accept again (a fraction of the overload
/// manager's usual refresh interval).
const STOPPED_RECHECK: Duration = Duration::from_millis(50);

/// Returns once the stop_accepting_connections overload action is not saturated
/// (at once on a listener that bypasses the overload manager).
async fn wait_while_overloaded(config: &ListenerConfig) {
    while !config.bypass_overload_manager && overload::is_saturated(OverloadAction::StopAcceptingConnections) {
        tokio::time::sleep(STOPPED_RECHECK).await;
    }
}

/// Closes a listen socket without resetting the connections in its accept
/// queue: no new handshake completes on it, the queued ones are accepted and
/// served (with the server draining, each gets `connection: close` on its
/// response), then it closes.
fn close_serving_queue(
    config: &Arc<ListenerConfig>,
    listener: tokio::net::TcpListener,
    bound: Option<std::net::SocketAddr>,
    worker: usize,
    total: &Arc<Gauge>,
) {
    let Ok(listener) = listener.into_std() else { return };
    if let Err(e) = socket::refuse_new_connections(&listener) {
        tracing::warn!(listener = %config.name, "cannot stop new connections before closing: {e}");
    }
    // The socket is non-blocking: this ends when the queue is empty.
    while let Ok((stream, remote)) = listener.accept() {
        let stream = stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream));
        if let Ok(stream) = stream {
            accept(config, stream, remote, bound, worker, total);
        }
    }
}

/// Takes an accepted connection through the listener filters (if any) to its
/// filter chain.
fn accept(
    config: &Arc<ListenerConfig>,
    stream: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
    bound: Option<std::net::SocketAddr>,
    worker: usize,
    total: &Arc<Gauge>,
) {
    // Envoy's overload checks at accept: reject_incoming_connections, then the
    // global connection limit, close the connection at once (a client whose
    // request had already arrived sees a reset, as from Envoy).
    if !config.bypass_overload_manager && overload::applies(OverloadAction::RejectIncomingConnections) {
        config.stats.downstream_cx_overload_reject.inc();
        return;
    }
    if overload::global_max_connections().is_some_and(|max| total.value() >= max as i64) {
        config.stats.downstream_global_cx_overflow.inc();
        return;
    }
    let local = match bound {
        Some(bound) => bound,
        None => stream.local_addr().unwrap_or(config.address),
    };
    let _ = stream.set_nodelay(true);
    let socket = AcceptedSocket {
        stream,
        remote,
        local,
        local_restored: false,
        direct_remote: remote,
        server_name: String::new(),
        transport_protocol: "",
        application_protocols: Vec::new(),
        tls_fingerprints: None,
        dynamic_metadata: Default::default(),
        proxy_protocol_tlvs: None,
        accepted: (!config.access_logs.is_empty()).then(|| (std::time::Instant::now(), std::time::SystemTime::now())),
    };
    if config.listener_filters.is_empty() {
        // No filter to wait for: the chain is chosen and started at once.
        serve_connection(config, socket, worker, total);
    } else {
        let (config, total) = (config.clone(), total.clone());
        spawn_isolated(async move {
            match run_listener_filters(&config, socket).await {
                Ok(socket) => serve_connection(&config, socket, worker, &total),
                Err(Some(log)) => log.write(ConnectionLogCause::ListenerFilterClosed, &config.access_logs),
                Err(None) => {}
            }
        });
    }
}

/// Runs the listener filters in order under `listener_filters_timeout`; an
/// error when the socket is to be closed (counted in the listener's stats),
/// with what the listener's access log writes of it, if it has one.
async fn run_listener_filters(
    config: &ListenerConfig,
    mut socket: AcceptedSocket,
) -> Result<AcceptedSocket, Option<Box<PendingConnectionLog>>> {
    let stats = &config.stats;
    stats.downstream_pre_cx_active.inc();
    let filters = async {
        for filter in &config.listener_filters {
            filter.on_accept(&mut socket).await?;
        }
        Ok(())
    };
    let outcome = match config.listener_filters_timeout {
        Some(limit) => tokio::time::timeout(limit, filters).await,
        None => Ok(filters.await),
    };
    stats.downstream_pre_cx_active.dec();
    match outcome {
        Ok(Ok(())) => return Ok(socket),
        Ok(Err(ListenerFilterError::RemoteClose)) => stats.downstream_listener_filter_remote_close.inc(),
        // The filter counts it in its own stats; Envoy's listener does not.
        Ok(Err(ListenerFilterError::Rejected)) => {}
        Err(_elapsed) => {
            stats.downstream_pre_cx_timeout.inc();
            if config.continue_on_listener_filters_timeout {
                return Ok(socket);
            }
        }
    }
    Err(pending_log(&socket, None))
}

/// What the listener's access log writes of `socket` when it ends, if the
/// listener has one; `hello` is what the TLS inspector found, when already
/// taken from the socket.
fn pending_log(socket: &AcceptedSocket, hello: Option<Rc<InspectedHello>>) -> Option<Box<PendingConnectionLog>> {
    let (accepted, accepted_at) = socket.accepted?;
    let hello = hello.or_else(|| InspectedHello::of(&socket.server_name, socket.tls_fingerprints.clone()));
    Some(Box::new(PendingConnectionLog {
        remote: socket.remote,
        direct_remote: socket.direct_remote,
        local: socket.local,
        accepted,
        accepted_at,
        tls: None,
        hello,
        dynamic_metadata: socket.dynamic_metadata.clone(),
        report: Rc::default(),
    }))
}

/// Chooses the socket's filter chain and runs the connection through it to its
/// end, as a task of this worker; a socket no chain matches is closed.
fn serve_connection(config: &Arc<ListenerConfig>, mut socket: AcceptedSocket, worker: usize, total: &Arc<Gauge>) {
    let input = MatchInput {
        local: socket.local,
        remote: socket.remote,
        direct_remote: socket.direct_remote,
        server_name: &socket.server_name,
        // Envoy's default when no listener filter detected a transport.
        transport_protocol: if socket.transport_protocol.is_empty() { "raw_buffer" } else { socket.transport_protocol },
        application_protocols: &socket.application_protocols,
    };
    let Some(chain) = config.filter_chains.find(&input) else {
        config.stats.no_filter_chain_match.inc();
        if let Some(log) = pending_log(&socket, None) {
            log.write(ConnectionLogCause::NoFilterChain, &config.access_logs);
        }
        return;
    };
    let info = ConnectionInfo {
        remote: socket.remote,
        local: socket.local,
        local_restored: socket.local_restored,
        tls: None,
        inspected_hello: InspectedHello::of(&socket.server_name, socket.tls_fingerprints.take()),
        proxy_protocol_tlvs: socket.proxy_protocol_tlvs.take(),
    };
    let log = pending_log(&socket, info.inspected_hello.clone());
    let metadata = std::mem::take(&mut socket.dynamic_metadata);
    let report = log.as_ref().map(|l| l.report.clone());
    let guard = ConnectionAccounting::open(config.clone(), worker, total.clone(), log);
    // A chain's transport socket (TLS termination) wraps the stream once the
    // chain is known, before its network filters see the connection.
    if let Some(tls) = &chain.transport_socket {
        let after =
            Box::new(AfterHandshake { config: config.clone(), chain: chain.clone(), info, dynamic_metadata: metadata });
        spawn_isolated(handshake_then_serve(tls.clone(), socket.stream, after, guard));
        return;
    }
    let conn = DownstreamConnection {
        stream: socket.stream.into(),
        info,
        buffer_limit: config.buffer_limit,
        dynamic_metadata: metadata,
        report,
    };
    let run = read_filter::start_chain(chain, conn);
    spawn_isolated(async move {
        run.await;
        drop(guard);
    });
}

/// What a TLS chain's connection goes on with once its handshake is done:
/// boxed while the handshake runs, so the connection's task (allocated for its
/// whole life) holds a pointer to it, not its fields.
struct AfterHandshake {
    config: Arc<ListenerConfig>,
    chain: Arc<FilterChain>,
    info: ConnectionInfo,
    dynamic_metadata: crate::common::dynamic_metadata::DynamicMetadata,
}

/// A TLS chain's connection: the handshake on this worker, then the network
/// filters over the session. A failed or timed-out handshake closes the
/// connection before any filter sees it.
async fn handshake_then_serve(
    tls: Arc<DownstreamTls>,
    stream: tokio::net::TcpStream,
    after: Box<AfterHandshake>,
    mut guard: ConnectionAccounting,
) {
    // Boxed: the handshake's state (a rustls session, the timeout) would
    // otherwise stay in the task's allocation for the connection's life; the
    // block ends the result's life before the filters run, so the session's
    // details (moved into the connection) take no room in the task either.
    let run = {
        let result = Box::pin(tls.accept(stream)).await;
        after.start_filters(result, &mut guard)
    };
    if let Some(run) = run {
        run.await;
    }
    drop(guard);
}

impl AfterHandshake {
    /// The connection's network filters over the session, or `None` (counted)
    /// when the handshake failed. Takes the box, so it is freed here, not when
    /// the connection ends (the task still holds `after`, moved from).
    #[allow(clippy::boxed_local)]
    fn start_filters(
        self: Box<Self>,
        result: Result<(TransportStream, DownstreamTlsInfo), HandshakeFailure>,
        guard: &mut ConnectionAccounting,
    ) -> Option<LocalBoxFuture> {
        let AfterHandshake { config, chain, info, dynamic_metadata } = *self;
        match result {
            Ok((stream, session)) => {
                let session = Rc::new(session);
                if let Some(log) = &mut guard.log {
                    log.tls = Some(session.clone());
                }
                let info = ConnectionInfo { tls: Some(session), ..info };
                let report = guard.log.as_ref().map(|l| l.report.clone());
                let buffer_limit = config.buffer_limit;
                let conn = DownstreamConnection { stream, info, buffer_limit, dynamic_metadata, report };
                Some(read_filter::start_chain(&chain, conn))
            }
            Err(HandshakeFailure::Timeout) => {
                config.stats.downstream_cx_transport_socket_connect_timeout.inc();
                None
            }
            Err(HandshakeFailure::Failed) => None,
        }
    }
}

/// Counts a connection in the listener, per-worker and server stats for as long
/// as it lives, and writes the listener's access log when it ends.
struct ConnectionAccounting {
    config: Arc<ListenerConfig>,
    worker: usize,
    total: Arc<Gauge>,
    log: Option<Box<PendingConnectionLog>>,
}

impl ConnectionAccounting {
    fn open(
        config: Arc<ListenerConfig>,
        worker: usize,
        total: Arc<Gauge>,
        log: Option<Box<PendingConnectionLog>>,
    ) -> Self {
        config.stats.downstream_cx_total.inc();
        config.stats.downstream_cx_active.inc();
        if let Some(w) = config.worker_stats.get(worker) {
            w.downstream_cx_total.inc();
            w.downstream_cx_active.inc();
        }
        total.inc();
        ConnectionAccounting { config, worker, total, log }
    }
}

impl Drop for ConnectionAccounting {
    fn drop(&mut self) {
        // The line first, as Envoy's connection writes it before it is
        // counted closed: once none is open, every line is buffered.
        if let Some(log) = &self.log {
            log.write(ConnectionLogCause::Closed, &self.config.access_logs);
        }
        self.config.stats.downstream_cx_active.dec();
        self.config.stats.downstream_cx_destroy.inc();
        if let Some(w) = self.config.worker_stats.get(self.worker) {
            w.downstream_cx_active.dec();
        }
        self.total.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_size<A, B, C, D, R>(_: fn(A, B, C, D) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// A TLS connection's task is allocated for the connection's life: the
    /// handshake's state must not be part of it (it was 3.5 KiB of the 13 KiB an
    /// idle TLS connection cost), nor the session's details once they moved
    /// into the connection (another 0.6 KiB).
    #[test]
    fn a_tls_connection_task_does_not_keep_the_handshake() {
        // Its arguments, and a pointer at each await (144 bytes when written).
        let size = output_size(handshake_then_serve);
        assert!(size <= 192, "handshake_then_serve's future is {size} bytes");
    }
}
