//! The per-worker HTTP/1.1 connection pool of one upstream host (DESIGN.md §1).
//!
//! - `ready`: idle connections; a request takes the most recently used one.
//! - busy: connections with a request in flight (owned by that request's
//!   `PooledClient`, then by its response body until the body was read whole).
//! - pending: as in Envoy, a request that finds no idle connection is pending
//!   (`upstream_rq_pending_total`, the `max_pending_requests` breaker) until it has
//!   a connection: its own new one, or, when the cluster's `max_connections`
//!   breaker is open, the next one coming back (`pending`, oldest first).
//! - attach: a request given a connection takes a `max_requests` slot there
//!   (`upstream_rq_total`), or overflows (`upstream_rq_active_overflow`) and leaves
//!   the connection idle.
//!
//! A connection returns to the pool only when its response was read to the end
//! and it may be reused (keep-alive, the request sent whole,
//! `max_requests_per_connection` not reached). Nothing reads an idle connection:
//! an upstream close while idle is seen from the readiness the reactor recorded,
//! when the connection is next taken or by the idle timer, and the connection is
//! dropped without failing a request.
//!
//! How a connection ends decides its `upstream_cx_destroy_*` stats, as in Envoy: a
//! connection dropped with its request in flight (per-try or route timeout, the
//! downstream gone, a response abandoned for a retry, a request body failing on
//! the way up, a malformed response) is closed locally with an active request; a
//! response saying `connection: close` (or an HTTP/1.0 one without keep-alive) is
//! closed locally after it; the upstream closing the connection is remote, with an
//! active request when it closed before the response was whole.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::cluster::ClusterInfo;
use super::host::Host;
use super::resource_manager::{Resource, ResourceGuard};
use super::upstream_connection::{ConnectFailure, ConnectionAccounting, UpstreamConnection};
use crate::http::http1::body_decoder::{BodyDecoder, BodyFraming};
use crate::http::http1::client_connection::{
    BodyFailure, BodyOut, ClientConnection, RequestFailure, RequestOut, ResponseHead,
};
use crate::network::tls::{AlpnFallback, TransportOptions};
use crate::network::TransportStream;
use crate::stream_info::UpstreamConnectionInfo;

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

/// An upstream connection of the pool with its bookkeeping. Dropping it closes
/// the socket; how it ended is counted by its `ConnectionAccounting`. Boxed once
/// when made (`Box<PoolConnection>` everywhere): it moves between the idle list,
/// the request and the response body on every request, and a pointer is cheaper
/// to move than its ~150 bytes (measured: memcpy was an eighth of a request).
struct PoolConnection {
    codec: ClientConnection,
    /// Requests sent on this connection so far.
    requests: u32,
    accounting: ConnectionAccounting,
    /// The upstream closed it (else Courier did).
    closed_by_peer: bool,
    /// The cluster's `max_connections` slot, freed when the connection is gone.
    breaker: Option<ResourceGuard>,
    pool: Weak<Http1ConnPool>,
    /// Its local address and TLS session, for its requests' log lines.
    info: UpstreamConnectionInfo,
}

// Taking the box is the point: the caller's connection ends here.
#[allow(clippy::boxed_local)]
impl PoolConnection {
    /// Ends the connection, counted as closed by the upstream or by Courier, with
    /// or without a request in flight: consumed here, so it closes now.
    fn close(mut self: Box<Self>, by_peer: bool, active_request: bool) {
        self.closed_by_peer = by_peer;
        if active_request {
            self.accounting.mark_active_request();
        }
    }
}

impl Drop for PoolConnection {
    fn drop(&mut self) {
        if !self.closed_by_peer {
            self.accounting.mark_closed_locally();
        }
        // Free the slot first, so a waiting request can get a new connection.
        self.breaker.take();
        if let Some(pool) = self.pool.upgrade() {
            pool.live.set(pool.live.get().saturating_sub(1));
            pool.serve_pending();
        }
    }
}

/// An idle connection.
struct IdleClient {
    conn: Box<PoolConnection>,
    idle_since: Instant,
}

/// A request waiting for a connection: counted in `upstream_rq_pending_active`
/// (cluster and host) and holding its `max_pending_requests` slot until dropped,
/// however the wait ends.
pub(super) struct PendingRequest {
    _slot: ResourceGuard,
    cluster: Arc<ClusterInfo>,
    host: Arc<Host>,
}

impl PendingRequest {
    /// A request that waits for a connection, within the `max_pending_requests`
    /// breaker (`upstream_rq_pending_overflow` when it is open); both pools'.
    pub(super) fn try_new(cluster: &Arc<ClusterInfo>, host: &Arc<Host>) -> Result<PendingRequest, PoolFailure> {
        let Some(slot) = cluster.resources.try_acquire(Resource::PendingRequests) else {
            cluster.stats.upstream_rq_pending_overflow.inc();
            return Err(PoolFailure::PendingOverflow);
        };
        cluster.stats.upstream_rq_pending_total.inc();
        cluster.stats.upstream_rq_pending_active.inc();
        host.stats.rq_pending_active.fetch_add(1, Ordering::Relaxed);
        Ok(PendingRequest { _slot: slot, cluster: cluster.clone(), host: host.clone() })
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        self.cluster.stats.upstream_rq_pending_active.dec();
        self.host.stats.rq_pending_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection lent to one request. After `send`, `into_response_body` hands it
/// to the response body, which gives it back when read whole; dropped with the
/// request in flight, the connection is closed locally with an active request,
/// as Envoy resets the stream and closes an HTTP/1 connection.
pub struct PooledClient {
    conn: Option<Box<PoolConnection>>,
    pool: Weak<Http1ConnPool>,
    /// True when this connection served a request before (a failure on it may be
    /// a race with the upstream closing an idle connection).
    pub reused: bool,
    in_flight: bool,
}

impl PooledClient {
    fn new(conn: Box<PoolConnection>, reused: bool) -> PooledClient {
        let pool = conn.pool.clone();
        PooledClient { conn: Some(conn), pool, reused, in_flight: false }
    }

    /// The connection lent, as the access log shows it.
    pub fn connection_info(&self) -> Option<&UpstreamConnectionInfo> {
        self.conn.as_ref().map(|c| &c.info)
    }

    /// Sends the request and reads the response head. On failure the connection
    /// is closed and counted: by the upstream when it closed or reset it, by
    /// Courier when the request body failed or the response was malformed.
    pub async fn send(&mut self, request: &RequestOut<'_>, body: BodyOut) -> Result<ResponseHead, RequestFailure> {
        let Some(conn) = self.conn.as_mut() else { return Err(RequestFailure::ClosedBeforeResponse) };
        conn.requests += 1;
        self.in_flight = true;
        let result = conn.codec.send(request, body).await;
        if let Err(failure) = result {
            self.in_flight = false;
            if let Some(conn) = self.conn.take() {
                let by_peer = matches!(failure, RequestFailure::ClosedBeforeResponse | RequestFailure::Reset);
                conn.close(by_peer, true);
            }
        }
        result
    }

    /// The body of the response whose head `send` returned; it owns the
    /// connection from now on.
    pub fn into_response_body(self, head: &ResponseHead) -> Http1ResponseBody {
        Http1ResponseBody {
            decoder: BodyDecoder::new(head.framing),
            reusable: head.reusable,
            until_close: head.framing == BodyFraming::UntilClose,
            client: Some(self),
        }
    }

    /// The response was read to the end: the connection goes back to the pool
    /// when `reusable`, else it is closed (by the upstream for a body that ran to
    /// its close, by Courier otherwise).
    fn finish(mut self, reusable: bool, closed_by_peer: bool) {
        self.in_flight = false;
        let Some(conn) = self.conn.take() else { return };
        if !reusable {
            return conn.close(closed_by_peer, false);
        }
        if let Some(pool) = self.pool.upgrade() {
            pool.release(conn);
        }
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close(false, self.in_flight);
        }
    }
}

/// An upstream response body, decoded from its connection as the downstream
/// writer polls it. Read whole, it gives the connection back to the pool.
pub struct Http1ResponseBody {
    client: Option<PooledClient>,
    decoder: BodyDecoder,
    reusable: bool,
    until_close: bool,
}

/// An upstream response body that ended early (reset or malformed).
#[derive(Debug)]
pub struct UpstreamBodyError(pub BodyFailure);

impl std::fmt::Display for UpstreamBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream response body failed: {:?}", self.0)
    }
}

impl std::error::Error for UpstreamBodyError {}

impl Http1ResponseBody {
    fn finish(&mut self) {
        if let Some(client) = self.client.take() {
            client.finish(self.reusable, self.until_close);
        }
    }
}

impl hyper::body::Body for Http1ResponseBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(conn) = this.client.as_mut().and_then(|c| c.conn.as_mut()) else { return Poll::Ready(None) };
        match conn.codec.poll_body(&mut this.decoder, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(failure))) => {
                if let Some(mut client) = this.client.take() {
                    client.in_flight = false;
                    if let Some(conn) = client.conn.take() {
                        conn.close(failure == BodyFailure::Reset, true);
                    }
                }
                Poll::Ready(Some(Err(UpstreamBodyError(failure))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// A connection the upstream switched to another protocol (a 101 to an
/// upgrade request): it leaves the pool for good, and Courier relays its bytes
/// both ways. Counted as the cluster's connection until dropped.
pub struct UpgradedUpstream {
    conn: Box<PoolConnection>,
}

impl UpgradedUpstream {
    /// The transport, and the bytes the upstream sent past its 101.
    pub fn parts(&mut self) -> (&mut TransportStream, BytesMut) {
        self.conn.codec.upgraded()
    }
}

impl Http1ResponseBody {
    /// After a 101: the connection, taken out of the pool for a tunnel.
    pub fn take_upgraded(&mut self) -> Option<UpgradedUpstream> {
        let client = self.client.as_mut()?;
        client.in_flight = false;
        client.conn.take().map(|conn| UpgradedUpstream { conn })
    }
}

impl Drop for Http1ResponseBody {
    fn drop(&mut self) {
        // A body with nothing to read (HEAD, 204) needs no polling: its
        // connection is reusable. Otherwise the client closes it, in flight.
        if self.decoder.is_done() {
            self.finish();
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
    /// The TLS options of this pool's requests (`auto_sni`): part of its key.
    options: TransportOptions,
    me: Weak<Http1ConnPool>,
}

impl Http1ConnPool {
    pub fn new(cluster: Arc<ClusterInfo>, host: Arc<Host>, options: TransportOptions) -> Rc<Http1ConnPool> {
        Rc::new_cyclic(|me| Http1ConnPool {
            host,
            cluster,
            ready: RefCell::new(Vec::new()),
            pending: RefCell::new(VecDeque::new()),
            live: Cell::new(0),
            reaper_running: Cell::new(false),
            options,
            me: me.clone(),
        })
    }

    /// Takes an `auto_config` connection that negotiated HTTP/1.1 or nothing
    /// (made by `mixed_conn_pool`), as if it had served a request: to a
    /// waiting request, else idle.
    pub fn adopt(&self, connection: UpstreamConnection, breaker: Option<ResourceGuard>) {
        self.live.set(self.live.get() + 1);
        let conn = self.established(connection, breaker);
        self.release(conn);
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
        let pending = PendingRequest::try_new(&self.cluster, &self.host)?;
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
    fn attach(&self, mut client: PooledClient) -> Result<(PooledClient, ResourceGuard), PoolFailure> {
        let stats = &self.cluster.stats;
        let Some(breaker) = self.cluster.resources.try_acquire(Resource::Requests) else {
            stats.upstream_rq_active_overflow.inc();
            if let Some(conn) = client.conn.take() {
                self.release(conn);
            }
            return Err(PoolFailure::ActiveOverflow);
        };
        stats.upstream_rq_total.inc();
        self.host.stats.rq_total.fetch_add(1, Ordering::Relaxed);
        Ok((client, breaker))
    }

    /// The most recently used idle connection that is still usable.
    fn take_idle(&self) -> Option<PooledClient> {
        loop {
            let mut idle = self.ready.borrow_mut().pop()?;
            if idle.conn.codec.closed_while_idle() {
                idle.conn.close(true, false); // the upstream closed it: nobody failed
                continue;
            }
            if idle.idle_since.elapsed() >= self.cluster.idle_timeout {
                self.cluster.stats.upstream_cx_idle_timeout.inc();
                continue; // dropped: closed locally
            }
            return Some(PooledClient::new(idle.conn, true));
        }
    }

    /// A new connection, holding its `max_connections` slot (`None` past the
    /// breaker) for as long as it lives.
    async fn connect(&self, breaker: Option<ResourceGuard>) -> Result<PooledClient, PoolFailure> {
        // Counted from the start, so the connection counts as this pool's while it
        // is being made; a failure gives it back, later the `PoolConnection` does.
        self.live.set(self.live.get() + 1);
        let connected =
            UpstreamConnection::connect_for(&self.cluster, &self.host, Some(AlpnFallback::Http11), &self.options).await;
        match connected {
            Ok(c) => Ok(PooledClient::new(self.established(c, breaker), false)),
            Err(f) => {
                self.live.set(self.live.get().saturating_sub(1));
                Err(match f {
                    ConnectFailure::Refused => PoolFailure::ConnectFailure,
                    ConnectFailure::Timeout => PoolFailure::ConnectTimeout,
                })
            }
        }
    }

    /// A connection made for this pool, counted as HTTP/1.
    fn established(&self, connection: UpstreamConnection, breaker: Option<ResourceGuard>) -> Box<PoolConnection> {
        let UpstreamConnection { stream, accounting, info } = connection;
        self.cluster.stats.upstream_cx_http1_total.inc();
        Box::new(PoolConnection {
            codec: ClientConnection::new(stream),
            requests: 0,
            accounting,
            closed_by_peer: false,
            breaker,
            pool: self.me.clone(),
            info,
        })
    }

    /// Takes back a connection whose response was read whole: to a waiting
    /// request, else to the idle list; closed instead when it served its
    /// `max_requests_per_connection`.
    fn release(&self, conn: Box<PoolConnection>) {
        if let Some(max) = self.cluster.max_requests_per_connection {
            if conn.requests >= max {
                self.cluster.stats.upstream_cx_max_requests.inc();
                return; // dropped: closed locally
            }
        }
        // A waiter gets the connection directly; skip waiters that gave up.
        let mut next = PooledClient::new(conn, true);
        loop {
            let Some(waiter) = self.pending.borrow_mut().pop_front() else { break };
            match waiter.send(Ok(next)) {
                Ok(()) => return,
                Err(Ok(back)) => next = back,
                Err(Err(_)) => return,
            }
        }
        let Some(conn) = next.conn.take() else { return };
        self.ready.borrow_mut().push(IdleClient { conn, idle_since: Instant::now() });
        super::conn_pool::start_reaper(self, &self.me);
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
                Ok(mut client) => {
                    if let Some(conn) = client.conn.take() {
                        pool.release(conn);
                    }
                }
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

impl super::conn_pool::IdleReaping for Http1ConnPool {
    /// Closes the idle connections that have waited `idle_timeout` (and drops
    /// those the upstream closed); returns when the next one expires, or `None`
    /// when none is idle.
    fn close_expired(&self) -> Option<Instant> {
        let timeout = self.cluster.idle_timeout;
        let mut ready = std::mem::take(&mut *self.ready.borrow_mut());
        ready.retain_mut(|c| {
            if c.conn.codec.closed_while_idle() {
                c.conn.closed_by_peer = true;
                return false;
            }
            if c.idle_since.elapsed() < timeout {
                return true;
            }
            self.cluster.stats.upstream_cx_idle_timeout.inc();
            false // dropped: closed locally
        });
        let next = ready.iter().map(|c| c.idle_since + timeout).min();
        // Connections released meanwhile (none: nothing above yields) stay first.
        let mut current = self.ready.borrow_mut();
        ready.append(&mut current);
        *current = ready;
        next
    }

    fn reaper_running(&self) -> &Cell<bool> {
        &self.reaper_running
    }
}
