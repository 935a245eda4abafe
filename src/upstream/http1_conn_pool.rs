//! The per-worker HTTP/1.1 connection pool of one upstream host (DESIGN.md §1).
//!
//! - `ready`: idle connected clients; a request takes the most recently used one.
//! - busy: clients with a request in flight (owned by that request's `PooledClient`).
//! - pending: as in Envoy, a request that finds no idle client is pending
//!   (`upstream_rq_pending_total`, the `max_pending_requests` breaker) until it has
//!   a connection: its own new one, or, when the cluster's `max_connections`
//!   breaker is open, the next client coming back (`pending`, oldest first).
//! - attach: a request given a connection takes a `max_requests` slot there
//!   (`upstream_rq_total`), or overflows (`upstream_rq_active_overflow`) and leaves
//!   the connection idle.
//!
//! A client returns to the pool only when its response was read to the end and
//! the connection may be reused (keep-alive, `max_requests_per_connection` not
//! reached); a client whose connection closed while idle is dropped on the next
//! look, without failing a request.
//!
//! How a connection ends decides its `upstream_cx_destroy_*` stats, as in Envoy: a
//! client dropped with its request in flight (per-try or route timeout, the
//! downstream gone, a response abandoned for a retry) closes its connection at
//! once, locally with an active request, and so does a request body failing on
//! the way up; a response saying `connection: close` (or an HTTP/1.0 one without
//! keep-alive) makes Courier close the connection after it, locally; the upstream
//! closing the connection is remote, with an active request when it closed
//! before or during a response. hyper ends the connection's I/O cleanly in most
//! of these cases, before the request sees its response or error, so the
//! request's outcome settles the accounting (`io_done`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::cluster::ClusterInfo;
use super::host::Host;
use super::resource_manager::{Resource, ResourceGuard};
use super::upstream_connection::{ConnectFailure, ConnectionAccounting, UpstreamConnection};

/// The request body type sent upstream.
/// Errors of a request body on its way upstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body sent upstream. Worker-local (not `Send`): a streamed body
/// reads from the downstream connection of the same worker.
pub type UpstreamBody = std::pin::Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = BoxError>>>;

/// Why no client could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolFailure {
    /// Connect refused or reset (`UF`).
    ConnectFailure,
    /// Connect timed out (`UF`, with `upstream_cx_connect_timeout`).
    ConnectTimeout,
    /// The `max_pending_requests` breaker is open (`UO`); no connection was
    /// involved, so no host is charged.
    PendingOverflow,
    /// The `max_requests` breaker was open when the request was to be attached to
    /// a connection (`UO`).
    ActiveOverflow,
}

impl PoolFailure {
    /// A circuit breaker overflow (Envoy's `PoolFailureReason::Overflow`).
    pub fn is_overflow(self) -> bool {
        matches!(self, PoolFailure::PendingOverflow | PoolFailure::ActiveOverflow)
    }
}

/// What a waiting request is handed: a client, or why none could be made.
type Handoff = Result<PooledClient, PoolFailure>;

/// An idle connection with its bookkeeping.
struct IdleClient {
    sender: SendRequest<UpstreamBody>,
    conn: Rc<ConnState>,
    idle_since: Instant,
}

/// What outlives a single request on a connection.
struct ConnState {
    /// Requests sent on this connection so far.
    requests: Cell<u32>,
    /// The connection stats, recorded as closed when the I/O task ends.
    accounting: RefCell<Option<ConnectionAccounting>>,
    /// The cluster's `max_connections` slot, freed when the connection is gone.
    breaker: Option<ResourceGuard>,
    pool: Weak<Http1ConnPool>,
    /// A request was sent and its response not read to the end yet.
    in_flight: Cell<bool>,
    /// The response asked for the connection to be closed after it.
    close_notified: Cell<bool>,
    /// The I/O ended cleanly with the request in flight: hyper either read the
    /// whole response and closed as it asked, or handed the request an error; the
    /// request's outcome tells which, and settles the accounting.
    io_done: Cell<bool>,
    /// Sending (or dropping) it closes the connection's I/O at once.
    close: RefCell<Option<oneshot::Sender<()>>>,
}

impl ConnState {
    /// Records how the connection ended; only the first call counts.
    fn settle(&self, local: bool, active_request: bool) {
        if let Some(mut a) = self.accounting.borrow_mut().take() {
            if local {
                a.mark_closed_locally();
            }
            if active_request {
                a.mark_active_request();
            }
        }
    }

    /// Closes the connection's I/O now.
    fn close_now(&self) {
        if let Some(close) = self.close.borrow_mut().take() {
            let _ = close.send(());
        }
    }
}

/// The connection of a busy client. Dropped while its request is in flight
/// (rather than given back with `PooledClient::release`), it abandons the
/// connection, as Envoy resets the stream and closes an HTTP/1 connection: closed
/// locally with an active request, right now.
struct BusyConn(Rc<ConnState>);

impl Drop for BusyConn {
    fn drop(&mut self) {
        let conn = &self.0;
        if conn.in_flight.replace(false) {
            if conn.io_done.get() {
                // hyper already closed the connection: after a whole response that
                // asked for it (Courier's close), or because the upstream closed it
                // in the middle of the response.
                let asked = conn.close_notified.get();
                conn.settle(asked, !asked);
            } else {
                conn.settle(true, true);
                conn.close_now();
            }
        }
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        // Not accounted yet: the connection was still open, and Courier lets it go
        // (dropping the close sender below ends its I/O).
        if let Some(a) = self.accounting.get_mut().as_mut() {
            a.mark_closed_locally();
        }
        self.accounting.get_mut().take();
        // Free the slot first, so a waiting request can get a new connection.
        self.breaker.take();
        if let Some(pool) = self.pool.upgrade() {
            pool.live.set(pool.live.get().saturating_sub(1));
            pool.serve_pending();
        }
    }
}

/// A request waiting for a connection: counted in `upstream_rq_pending_active`
/// (cluster and host) and holding its `max_pending_requests` slot until dropped,
/// however the wait ends.
struct PendingRequest {
    _slot: ResourceGuard,
    cluster: Arc<ClusterInfo>,
    host: Arc<Host>,
}

impl PendingRequest {
    fn new(slot: ResourceGuard, cluster: &Arc<ClusterInfo>, host: &Arc<Host>) -> PendingRequest {
        cluster.stats.upstream_rq_pending_total.inc();
        cluster.stats.upstream_rq_pending_active.inc();
        host.stats.rq_pending_active.fetch_add(1, Ordering::Relaxed);
        PendingRequest { _slot: slot, cluster: cluster.clone(), host: host.clone() }
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        self.cluster.stats.upstream_rq_pending_active.dec();
        self.host.stats.rq_pending_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client lent to one request; give it back with `release` when the response
/// was fully read, or drop it to discard the connection.
pub struct PooledClient {
    pub sender: SendRequest<UpstreamBody>,
    conn: BusyConn,
    pool: Weak<Http1ConnPool>,
    /// True when this connection served a request before (a failure on it may be
    /// a race with the upstream closing an idle connection).
    pub reused: bool,
}

impl PooledClient {
    /// Counts a request sent on this connection (in flight until the client is
    /// given back).
    pub fn on_request(&self) {
        self.conn.0.requests.set(self.conn.0.requests.get() + 1);
        self.conn.0.in_flight.set(true);
    }

    /// Notes the response's head: as Envoy's codec client, a response with
    /// `connection: close` (an HTTP/1.0 one unless `connection: keep-alive`) has
    /// Courier close the connection after it.
    pub fn on_response<B>(&self, response: &http::Response<B>) {
        let has_token = |token: &str| {
            response
                .headers()
                .get_all(http::header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        let close = match response.version() {
            http::Version::HTTP_10 => !has_token("keep-alive"),
            _ => has_token("close"),
        };
        if close {
            self.conn.0.close_notified.set(true);
        }
    }

    /// The request failed before its response: a failure of Courier's side (its
    /// request body) is a local close, any other the upstream's; either way with
    /// the request active, unless it never went out (the connection was already
    /// closing).
    pub fn on_request_failed(&self, e: &hyper::Error) {
        let conn = &self.conn.0;
        conn.in_flight.set(false);
        conn.settle(e.is_user(), !e.is_canceled());
        conn.close_now();
    }

    /// Hands the connection back for reuse (or closes it if it may not be reused).
    pub fn release(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.release(self);
        }
    }
}

/// The pool of one (worker, host).
pub struct Http1ConnPool {
    host: Arc<Host>,
    cluster: Arc<ClusterInfo>,
    ready: RefCell<Vec<IdleClient>>,
    pending: RefCell<VecDeque<oneshot::Sender<Handoff>>>,
    /// Connections of this pool, connecting or connected.
    live: Cell<usize>,
    /// A task closes idle connections past the idle timeout while any are idle.
    reaper_running: Cell<bool>,
    me: Weak<Http1ConnPool>,
}

impl Http1ConnPool {
    pub fn new(cluster: Arc<ClusterInfo>, host: Arc<Host>) -> Rc<Http1ConnPool> {
        Rc::new_cyclic(|me| Http1ConnPool {
            host,
            cluster,
            ready: RefCell::new(Vec::new()),
            pending: RefCell::new(VecDeque::new()),
            live: Cell::new(0),
            reaper_running: Cell::new(false),
            me: me.clone(),
        })
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// A client for one request, as Envoy's `newStream`: an idle one at once, else
    /// the request is pending until a connection is made for it (or, with the
    /// `max_connections` breaker open, until a client comes back); then it is
    /// attached with its `max_requests` slot, given back with the request.
    pub async fn acquire(&self) -> Result<(PooledClient, ResourceGuard), PoolFailure> {
        if let Some(c) = self.take_idle() {
            return self.attach(c);
        }
        let stats = &self.cluster.stats;
        let Some(slot) = self.cluster.resources.try_acquire(Resource::PendingRequests) else {
            stats.upstream_rq_pending_overflow.inc();
            return Err(PoolFailure::PendingOverflow);
        };
        let pending = PendingRequest::new(slot, &self.cluster, &self.host);
        let breaker = self.cluster.resources.try_acquire(Resource::Connections);
        if breaker.is_none() {
            stats.upstream_cx_overflow.inc();
        }
        // As Envoy, a pool without any connection makes one even past the breaker,
        // so its requests are not stuck behind other pools' connections.
        let got = if breaker.is_some() || self.live.get() == 0 {
            self.connect(breaker).await
        } else {
            let (tx, rx) = oneshot::channel();
            self.pending.borrow_mut().push_back(tx);
            rx.await.unwrap_or(Err(PoolFailure::ConnectFailure))
        };
        drop(pending);
        match got {
            Ok(client) => self.attach(client),
            Err(failure) => {
                stats.upstream_rq_pending_failure_eject.inc();
                Err(failure)
            }
        }
    }

    /// Envoy's `attachStreamToClient`: the request takes a `max_requests` slot and
    /// counts in `upstream_rq_total`, or overflows and the client stays idle.
    fn attach(&self, client: PooledClient) -> Result<(PooledClient, ResourceGuard), PoolFailure> {
        let stats = &self.cluster.stats;
        let Some(breaker) = self.cluster.resources.try_acquire(Resource::Requests) else {
            stats.upstream_rq_active_overflow.inc();
            self.release(client);
            return Err(PoolFailure::ActiveOverflow);
        };
        stats.upstream_rq_total.inc();
        self.host.stats.rq_total.fetch_add(1, Ordering::Relaxed);
        Ok((client, breaker))
    }

    /// The most recently used idle client that is still usable.
    fn take_idle(&self) -> Option<PooledClient> {
        let mut ready = self.ready.borrow_mut();
        while let Some(idle) = ready.pop() {
            if idle.sender.is_closed() || !idle.sender.is_ready() {
                continue; // closed while idle: drop it, nobody failed
            }
            if idle.idle_since.elapsed() >= self.cluster.idle_timeout {
                self.cluster.stats.upstream_cx_idle_timeout.inc();
                if let Some(a) = idle.conn.accounting.borrow_mut().as_mut() {
                    a.mark_closed_locally();
                }
                continue;
            }
            return Some(PooledClient {
                sender: idle.sender,
                conn: BusyConn(idle.conn),
                pool: self.me.clone(),
                reused: true,
            });
        }
        None
    }

    /// A new connection, holding its `max_connections` slot (`None` past the
    /// breaker) for as long as it lives.
    async fn connect(&self, breaker: Option<ResourceGuard>) -> Result<PooledClient, PoolFailure> {
        // Counted from the start, so the connection counts as this pool's while it
        // is being made; a failure gives it back.
        struct Connecting<'a>(&'a Cell<usize>, bool);
        impl Drop for Connecting<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.set(self.0.get().saturating_sub(1));
                }
            }
        }
        self.live.set(self.live.get() + 1);
        let mut connecting = Connecting(&self.live, false);
        let stats = &self.cluster.stats;
        let UpstreamConnection { stream, accounting } =
            UpstreamConnection::connect(&self.cluster, &self.host).await.map_err(|f| match f {
                ConnectFailure::Refused => PoolFailure::ConnectFailure,
                ConnectFailure::Timeout => PoolFailure::ConnectTimeout,
            })?;
        stats.upstream_cx_http1_total.inc();
        let (sender, connection) = match hyper::client::conn::http1::Builder::new()
            .max_buf_size(64 * 1024)
            .handshake::<_, UpstreamBody>(TokioIo::new(stream))
            .await
        {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(host = %self.host.address, "upstream handshake failed: {e}");
                return Err(PoolFailure::ConnectFailure);
            }
        };
        // From here the `ConnState` gives the count back when it goes.
        connecting.1 = true;
        let (close, closed) = oneshot::channel();
        let conn = Rc::new(ConnState {
            requests: Cell::new(0),
            accounting: RefCell::new(Some(accounting)),
            breaker,
            pool: self.me.clone(),
            in_flight: Cell::new(false),
            close_notified: Cell::new(false),
            io_done: Cell::new(false),
            close: RefCell::new(Some(close)),
        });
        let for_task = Rc::downgrade(&conn);
        tokio::task::spawn_local(async move {
            let result = tokio::select! {
                r = connection => r,
                // Courier closes it (the connection is abandoned or no longer
                // pooled): dropping the I/O closes the socket; the accounting was
                // settled by whoever closed it.
                _ = closed => return,
            };
            // Record the close as soon as the I/O is done, even if a request still
            // holds the (now useless) client.
            let Some(state) = for_task.upgrade() else { return };
            match result {
                // A clean end under a request: the request's outcome decides.
                Ok(()) if state.in_flight.get() => state.io_done.set(true),
                // Closed after a response that asked for it (Courier's own close),
                // or by the upstream while idle.
                Ok(()) => state.settle(state.close_notified.get(), false),
                // Failed during a response (or while idle).
                Err(e) => {
                    tracing::debug!("upstream connection ended: {e}");
                    state.settle(e.is_user(), state.in_flight.get());
                }
            }
        });
        Ok(PooledClient { sender, conn: BusyConn(conn), pool: self.me.clone(), reused: false })
    }

    fn release(&self, client: PooledClient) {
        // The response was read to the end: nothing is in flight any more. If hyper
        // already closed the connection, the response had asked for it or the
        // upstream closed it.
        let c = &client.conn.0;
        c.in_flight.set(false);
        if c.io_done.get() {
            c.settle(c.close_notified.get(), false);
        }
        let PooledClient { sender, conn, .. } = client;
        let conn = conn.0.clone();
        if sender.is_closed() {
            return;
        }
        if let Some(max) = self.cluster.max_requests_per_connection {
            if conn.requests.get() >= max {
                self.cluster.stats.upstream_cx_max_requests.inc();
                if let Some(c) = conn.accounting.borrow_mut().as_mut() {
                    c.mark_closed_locally();
                }
                return; // dropping the sender closes the connection
            }
        }
        // A waiter gets the client directly; skip waiters that gave up.
        let mut next = PooledClient { sender, conn: BusyConn(conn), pool: self.me.clone(), reused: true };
        loop {
            let Some(waiter) = self.pending.borrow_mut().pop_front() else { break };
            match waiter.send(Ok(next)) {
                Ok(()) => return,
                Err(Ok(back)) => next = back,
                Err(Err(_)) => return,
            }
        }
        let PooledClient { sender, conn, .. } = next;
        self.ready.borrow_mut().push(IdleClient { sender, conn: conn.0.clone(), idle_since: Instant::now() });
        if !self.reaper_running.replace(true) {
            tokio::task::spawn_local(reap_idle(self.me.clone()));
        }
    }

    /// Closes the idle connections that have waited `idle_timeout`; returns when
    /// the next one expires, or `None` when none is idle.
    fn close_expired(&self) -> Option<Instant> {
        let timeout = self.cluster.idle_timeout;
        let mut ready = self.ready.borrow_mut();
        ready.retain(|c| {
            if c.idle_since.elapsed() < timeout {
                return !c.sender.is_closed();
            }
            self.cluster.stats.upstream_cx_idle_timeout.inc();
            if let Some(a) = c.conn.accounting.borrow_mut().as_mut() {
                a.mark_closed_locally();
            }
            false // dropping the sender closes the connection
        });
        ready.iter().map(|c| c.idle_since + timeout).min()
    }

    /// Opens connections for waiting requests while the connection breaker allows.
    fn serve_pending(&self) {
        self.pending.borrow_mut().retain(|w| !w.is_closed());
        if self.pending.borrow().is_empty() {
            return;
        }
        let breaker = self.cluster.resources.try_acquire(Resource::Connections);
        if breaker.is_none() && self.live.get() > 0 {
            return;
        }
        let Some(pool) = self.me.upgrade() else { return };
        tokio::task::spawn_local(async move {
            match pool.connect(breaker).await {
                Ok(client) => pool.release(client),
                Err(failure) => {
                    // As Envoy purges its pending requests on a connect failure.
                    let waiters = std::mem::take(&mut *pool.pending.borrow_mut());
                    for w in waiters {
                        let _ = w.send(Err(failure));
                    }
                }
            }
        });
    }

    /// Idle connections right now (for tests and admin).
    pub fn idle_count(&self) -> usize {
        self.ready.borrow().len()
    }
}

/// The pool's idle timer (Envoy closes an upstream connection idle for
/// `idle_timeout`): one task per pool, alive only while connections are idle.
async fn reap_idle(pool: Weak<Http1ConnPool>) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let Some(next) = p.close_expired() else {
            p.reaper_running.set(false);
            return;
        };
        drop(p);
        tokio::time::sleep_until(next).await;
    }
}
