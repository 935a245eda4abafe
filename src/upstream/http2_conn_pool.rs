//! The per-worker HTTP/2 connection pool of one upstream host (Envoy's
//! `Http2::ConnPoolImpl`), on the `h2` crate's client.
//!
//! One connection carries many streams. A request takes a stream slot on the
//! oldest connection with room: fewer active streams than the lower of the
//! cluster's `max_concurrent_streams` and the upstream's SETTINGS, and fewer
//! streams opened than `max_requests_per_connection` (which, once reached,
//! drains the connection: no new streams, closed when the last one ends). With
//! no room the request is pending (`upstream_rq_pending_*`, the
//! `max_pending_requests` breaker) until a slot frees or a new connection comes
//! up; a connection is opened only when the pending requests outnumber what the
//! connections being made will take, within `max_connections` (a pool with no
//! connection makes one past the breaker, as the HTTP/1 pool does). Each
//! connection's `h2::client::Connection` runs as a local task of its own (the
//! frames of all its streams go through it); requests and response bodies talk
//! to it through `h2`'s handles.
//!
//! An upstream GOAWAY, or a stream that cannot be opened, drains the
//! connection. A stream the upstream refused (REFUSED_STREAM: never processed)
//! is for the router to send again elsewhere; one a GOAWAY cut is answered as
//! refused, as Envoy does, and not resent.
//! Connections idle for the cluster's `idle_timeout` are closed (GOAWAY, then
//! the socket), as are drained ones once their last stream is done. How a
//! connection ended is counted by the same `ConnectionAccounting` as HTTP/1,
//! as Envoy counts it: closed locally when Courier's codec ended it (idle,
//! drained, after the upstream's GOAWAY, on a protocol error), remotely when
//! the upstream closed it. A stream Courier abandons (client gone, timeout)
//! is reset and counted (`upstream_rq_tx_reset`, `http2.tx_reset`) by its
//! slot, `Http2Stream`, when given back unended.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::header::{CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::HeaderName;
use hyper::body::{Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::cluster::ClusterInfo;
use super::host::Host;
use super::http1_conn_pool::{PendingRequest, PoolFailure, UpstreamBodyError};
use super::resource_manager::{Resource, ResourceGuard};
use super::upstream_connection::{ConnectFailure, ConnectionAccounting, UpstreamConnection};
use crate::http::http1::client_connection::{BodyFailure, BodyOut, RequestOut};
use crate::http::http1::CodecError;
use crate::http::http2::keepalive_pings::pings_timed_out;
use crate::http::http2::{Http2CodecStats, Keepalive, KeepalivePings};
use crate::network::tls::{AlpnFallback, TransportOptions};
use crate::network::TransportStream;
use crate::stream_info::UpstreamConnectionInfo;

/// How much request body `h2` may hold per stream beyond what the upstream's
/// window lets out (its default is 400 KiB): as the HTTP/1 path, one read at
/// a time.
const MAX_SEND_BUFFER: usize = 64 * 1024;

/// Envoy's default `max_response_headers_kb` (60 KiB), as for HTTP/1 upstreams.
const MAX_RESPONSE_HEADERS: u32 = 60 * 1024;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What a waiting request is handed: a stream slot, or why none could be had.
type Handoff = Result<Http2Stream, PoolFailure>;

/// A connection through its HTTP/2 handshake: the stream handle, the
/// connection to drive, its accounting and what the log shows of it.
type Handshaken =
    (SendRequest<Bytes>, h2::client::Connection<TransportStream, Bytes>, ConnectionAccounting, UpstreamConnectionInfo);

/// One upstream HTTP/2 connection, shared by its streams, its pool and its
/// driver task.
struct H2Connection {
    /// `None` once the connection is closing: `h2` sends GOAWAY and closes when
    /// the last handle and stream are gone.
    send: RefCell<Option<SendRequest<Bytes>>>,
    /// Stream slots taken (requests on it, from attach to the end of the response).
    active: Cell<u32>,
    /// Streams opened on it so far (`max_requests_per_connection`).
    opened: Cell<u32>,
    /// No new streams: the upstream sent GOAWAY or `max_requests_per_connection`
    /// was reached.
    draining: Cell<bool>,
    /// Courier closed it (idle, drained); else the upstream did.
    closing: Cell<bool>,
    idle_since: Cell<Instant>,
    /// The cluster's `max_concurrent_streams`.
    local_max: u32,
    /// Its local address and TLS session, for its requests' log lines.
    info: UpstreamConnectionInfo,
}

impl H2Connection {
    fn has_capacity(&self) -> bool {
        if self.draining.get() {
            return false;
        }
        let send = self.send.borrow();
        let Some(send) = send.as_ref() else { return false };
        (self.active.get() as usize) < (self.local_max as usize).min(send.current_max_send_streams())
    }

    /// Closes the connection gracefully once its streams are done: `h2` sends
    /// GOAWAY when the last handle is gone, and the driver task ends.
    fn shut(&self) {
        self.closing.set(true);
        self.send.borrow_mut().take();
    }

    /// No new streams; closed now if none is active.
    fn drain(&self) {
        self.draining.set(true);
        if self.active.get() == 0 {
            self.shut();
        }
    }
}

/// A stream slot on a connection, held by one request from the pool's attach to
/// the end of its response body (or its failure).
pub struct Http2Stream {
    conn: Rc<H2Connection>,
    pool: Weak<Http2ConnPool>,
    cluster: Arc<ClusterInfo>,
    /// A stream was opened with it (`http2.streams_active`).
    opened: bool,
    /// The stream ended, or the upstream ended it; dropped open, Courier
    /// resets it (`h2` sends RST_STREAM), counted as Envoy's
    /// `upstream_rq_tx_reset` and `http2.tx_reset`.
    ended: bool,
    /// `h2` closed the connection on a protocol error: Courier ended the
    /// stream (`upstream_rq_tx_reset`), but no RST_STREAM went out.
    codec_error: bool,
}

impl Http2Stream {
    /// Opens the stream with the request's headers; `None` when the connection
    /// takes no new stream (GOAWAY received, closed): nothing was sent, and the
    /// connection is drained.
    pub fn send_request(
        &mut self,
        request: http::Request<()>,
        end_of_stream: bool,
    ) -> Option<(ResponseFuture, SendStream<Bytes>)> {
        let mut send = self.conn.send.borrow().clone()?;
        match send.send_request(request, end_of_stream) {
            Ok(opened) => {
                self.opened = true;
                self.stats().streams_active.inc();
                Some(opened)
            }
            Err(e) => {
                tracing::debug!("upstream HTTP/2 connection takes no new stream: {e}");
                self.drain_connection();
                None
            }
        }
    }

    /// The upstream said GOAWAY: no new streams on this connection.
    pub fn drain_connection(&self) {
        self.conn.drain();
        if let Some(pool) = self.pool.upgrade() {
            pool.forget(&self.conn);
        }
    }

    /// The connection the stream is on, as the access log shows it.
    pub fn connection_info(&self) -> &UpstreamConnectionInfo {
        &self.conn.info
    }

    /// `cluster.<name>.http2.*`.
    pub fn stats(&self) -> &Http2CodecStats {
        self.cluster.http2_stats()
    }

    /// The stream is over (both ends closed) or the upstream reset it: no reset
    /// of Courier's when the slot is given back.
    pub fn mark_ended(&mut self) {
        self.ended = true;
    }

    /// `h2` found the upstream's frames malformed and closed the connection.
    pub fn mark_codec_error(&mut self) {
        self.codec_error = true;
    }
}

impl Drop for Http2Stream {
    fn drop(&mut self) {
        if self.opened {
            self.stats().streams_active.dec();
            if !self.ended {
                self.cluster.stats.upstream_rq_tx_reset.inc();
                if !self.codec_error {
                    self.stats().tx_reset.inc();
                }
            }
        }
        let conn = &self.conn;
        conn.active.set(conn.active.get().saturating_sub(1));
        match self.pool.upgrade() {
            Some(pool) => pool.stream_done(conn),
            None if conn.active.get() == 0 => conn.shut(),
            None => conn.draining.set(true),
        }
    }
}

/// The pool of one (worker, host).
pub struct Http2ConnPool {
    host: Arc<Host>,
    cluster: Arc<ClusterInfo>,
    /// Connections that may take new streams, oldest first.
    conns: RefCell<Vec<Rc<H2Connection>>>,
    waiters: RefCell<VecDeque<oneshot::Sender<Handoff>>>,
    /// Connections being made.
    connecting: Cell<usize>,
    /// Connections of this pool: connecting, open or draining.
    live: Cell<usize>,
    reaper_running: Cell<bool>,
    /// The TLS options of this pool's requests (`auto_sni`): part of its key.
    options: TransportOptions,
    me: Weak<Http2ConnPool>,
}

impl Http2ConnPool {
    pub fn new(cluster: Arc<ClusterInfo>, host: Arc<Host>, options: TransportOptions) -> Rc<Http2ConnPool> {
        Rc::new_cyclic(|me| Http2ConnPool {
            host,
            cluster,
            conns: RefCell::new(Vec::new()),
            waiters: RefCell::new(VecDeque::new()),
            connecting: Cell::new(0),
            live: Cell::new(0),
            reaper_running: Cell::new(false),
            options,
            me: me.clone(),
        })
    }

    /// Takes an `auto_config` connection that negotiated `h2` (made by
    /// `mixed_conn_pool`): its preface and SETTINGS run in a task of their
    /// own, as a connection this pool makes, and its slots go to the waiters.
    pub fn adopt(&self, connection: UpstreamConnection, breaker: Option<ResourceGuard>) {
        let Some(pool) = self.me.upgrade() else { return };
        self.live.set(self.live.get() + 1);
        self.connecting.set(self.connecting.get() + 1);
        tokio::task::spawn_local(async move { pool.start(Ok(connection), breaker).await });
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Connections that take new streams right now (for tests and admin).
    pub fn connection_count(&self) -> usize {
        self.conns.borrow().len()
    }

    /// A stream slot for one request, as Envoy's `newStream`: on a connection
    /// with room at once, else pending until one has room or a new one is up;
    /// then attached with its `max_requests` slot, given back with the request.
    pub async fn acquire(&self) -> Result<(Http2Stream, ResourceGuard), PoolFailure> {
        if let Some(s) = self.take_stream() {
            return self.attach(s);
        }
        let pending = PendingRequest::try_new(&self.cluster, &self.host)?;
        let stats = &self.cluster.stats;
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().push_back(tx);
        self.maybe_connect(true);
        let got = rx.await.unwrap_or(Err(PoolFailure::ConnectFailure));
        drop(pending);
        match got {
            Ok(s) => self.attach(s),
            Err(failure) => {
                stats.upstream_rq_pending_failure_eject.inc();
                Err(failure)
            }
        }
    }

    /// Envoy's `attachStreamToClient`: the `max_requests` breaker, `upstream_rq_total`.
    fn attach(&self, stream: Http2Stream) -> Result<(Http2Stream, ResourceGuard), PoolFailure> {
        let stats = &self.cluster.stats;
        let Some(breaker) = self.cluster.resources.try_acquire(Resource::Requests) else {
            stats.upstream_rq_active_overflow.inc();
            drop(stream);
            return Err(PoolFailure::ActiveOverflow);
        };
        stats.upstream_rq_total.inc();
        self.host.stats.rq_total.fetch_add(1, Ordering::Relaxed);
        Ok((stream, breaker))
    }

    /// A slot on the oldest connection with room.
    fn take_stream(&self) -> Option<Http2Stream> {
        let conn = self.conns.borrow().iter().find(|c| c.has_capacity()).cloned()?;
        conn.active.set(conn.active.get() + 1);
        conn.opened.set(conn.opened.get() + 1);
        if self.cluster.max_requests_per_connection.is_some_and(|max| conn.opened.get() >= max) {
            self.cluster.stats.upstream_cx_max_requests.inc();
            conn.draining.set(true);
            self.forget(&conn);
        }
        Some(Http2Stream {
            conn,
            pool: self.me.clone(),
            cluster: self.cluster.clone(),
            opened: false,
            ended: false,
            codec_error: false,
        })
    }

    /// Takes `conn` off the list of connections that take new streams.
    fn forget(&self, conn: &Rc<H2Connection>) {
        self.conns.borrow_mut().retain(|c| !Rc::ptr_eq(c, conn));
    }

    /// A stream slot was given back.
    fn stream_done(&self, conn: &Rc<H2Connection>) {
        if conn.active.get() == 0 {
            if conn.draining.get() {
                conn.shut();
                self.forget(conn);
            } else {
                conn.idle_since.set(Instant::now());
                self.start_reaper();
            }
        }
        self.serve_waiters();
    }

    /// Hands free slots to waiting requests, oldest first, then opens a
    /// connection if they still outnumber what is being made.
    fn serve_waiters(&self) {
        loop {
            self.waiters.borrow_mut().retain(|w| !w.is_closed());
            if self.waiters.borrow().is_empty() {
                return;
            }
            let Some(stream) = self.take_stream() else { break };
            let Some(waiter) = self.waiters.borrow_mut().pop_front() else { break };
            // Nothing ran since the check above, so the waiter is still there; a
            // slot coming back would only be given back again.
            let _ = waiter.send(Ok(stream));
        }
        self.maybe_connect(false);
    }

    /// The streams one new connection is expected to take.
    fn streams_per_connection(&self) -> usize {
        let local = self.cluster.http2_options.max_concurrent_streams;
        self.cluster.max_requests_per_connection.map_or(local, |m| m.min(local)).max(1) as usize
    }

    /// Opens a connection when the waiting requests outnumber what the
    /// connections being made will take, within `max_connections`.
    /// `new_request`: a request just started waiting (only then does a full
    /// breaker count as `upstream_cx_overflow`, once per request, as in the
    /// HTTP/1 pool).
    fn maybe_connect(&self, new_request: bool) {
        self.waiters.borrow_mut().retain(|w| !w.is_closed());
        let waiting = self.waiters.borrow().len();
        if waiting == 0 || waiting <= self.connecting.get() * self.streams_per_connection() {
            return;
        }
        let breaker = self.cluster.resources.try_acquire(Resource::Connections);
        if breaker.is_none() {
            if new_request {
                self.cluster.stats.upstream_cx_overflow.inc();
            }
            // As Envoy, a pool without any connection makes one even past the breaker.
            if self.live.get() > 0 {
                return;
            }
        }
        let Some(pool) = self.me.upgrade() else { return };
        self.live.set(self.live.get() + 1);
        self.connecting.set(self.connecting.get() + 1);
        tokio::task::spawn_local(async move { pool.connect(breaker).await });
    }

    /// Makes a connection (TCP, then the HTTP/2 preface and SETTINGS), starts
    /// its driver and gives its slots to the waiting requests.
    async fn connect(&self, breaker: Option<ResourceGuard>) {
        let connected =
            UpstreamConnection::connect_for(&self.cluster, &self.host, Some(AlpnFallback::Http2), &self.options).await;
        self.start(connected, breaker).await
    }

    /// The HTTP/2 handshake on a connection made (or its failure), then as `connect`.
    async fn start(&self, connected: Result<UpstreamConnection, ConnectFailure>, breaker: Option<ResourceGuard>) {
        let made = match connected {
            Ok(c) => self.handshake(c).await,
            Err(ConnectFailure::Refused) => Err(PoolFailure::ConnectFailure),
            Err(ConnectFailure::Timeout) => Err(PoolFailure::ConnectTimeout),
        };
        self.connecting.set(self.connecting.get().saturating_sub(1));
        match made {
            Ok((send, connection, accounting, info)) => {
                self.cluster.stats.upstream_cx_http2_total.inc();
                let conn = Rc::new(H2Connection {
                    send: RefCell::new(Some(send)),
                    active: Cell::new(0),
                    opened: Cell::new(0),
                    draining: Cell::new(false),
                    closing: Cell::new(false),
                    idle_since: Cell::new(Instant::now()),
                    local_max: self.cluster.http2_options.max_concurrent_streams,
                    info,
                });
                self.conns.borrow_mut().push(conn.clone());
                let keepalive = self.cluster.http2_options.keepalive.clone();
                let driven = (connection, keepalive);
                tokio::task::spawn_local(drive(self.me.clone(), conn.clone(), driven, accounting, breaker));
                self.serve_waiters();
                if conn.active.get() == 0 {
                    self.start_reaper();
                }
            }
            Err(failure) => {
                self.live.set(self.live.get().saturating_sub(1));
                drop(breaker);
                // As Envoy purges its pending requests on a connect failure, unless
                // another connection being made may still serve them.
                if self.connecting.get() == 0 {
                    let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
                    for w in waiters {
                        let _ = w.send(Err(failure));
                    }
                }
            }
        }
    }

    /// The client preface and SETTINGS, with the cluster's `Http2ProtocolOptions`.
    async fn handshake(&self, c: UpstreamConnection) -> Result<Handshaken, PoolFailure> {
        let o = &self.cluster.http2_options;
        let UpstreamConnection { stream, mut accounting, info } = c;
        let handshake = h2::client::Builder::new()
            .initial_window_size(o.initial_stream_window_size)
            .initial_connection_window_size(o.initial_connection_window_size)
            .max_concurrent_streams(o.max_concurrent_streams)
            // Until the upstream's SETTINGS say otherwise, streams up to the
            // cluster's limit (h2 holds those past the upstream's until then).
            .initial_max_send_streams(o.max_concurrent_streams as usize)
            .header_table_size(o.hpack_table_size)
            // Envoy's `max_response_headers_kb` default, advertised as
            // SETTINGS_MAX_HEADER_LIST_SIZE (and enforced on what arrives).
            .max_header_list_size(MAX_RESPONSE_HEADERS)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .handshake::<_, Bytes>(stream)
            .await;
        match handshake {
            Ok((send, connection)) => Ok((send, connection, accounting, info)),
            Err(e) => {
                tracing::debug!(host = %self.host.address, "upstream HTTP/2 handshake failed: {e}");
                if !e.is_io() {
                    accounting.mark_closed_locally();
                }
                Err(PoolFailure::ConnectFailure)
            }
        }
    }

    fn start_reaper(&self) {
        super::conn_pool::start_reaper(self, &self.me);
    }
}

impl Drop for Http2ConnPool {
    /// The host left the cluster: idle connections close now, busy ones when
    /// their last stream ends.
    fn drop(&mut self) {
        for c in self.conns.borrow().iter() {
            c.drain();
        }
    }
}

/// Runs one connection's frames until it ends, then counts how it ended.
/// With the cluster's `connection_keepalive`, a PING goes every (jittered)
/// interval, and one not answered within its timeout closes the connection
/// (`http2.keepalive_timeout`), as Envoy's.
async fn drive(
    pool: Weak<Http2ConnPool>,
    conn: Rc<H2Connection>,
    (mut connection, keepalive): (h2::client::Connection<TransportStream, Bytes>, Option<Keepalive>),
    mut accounting: ConnectionAccounting,
    breaker: Option<ResourceGuard>,
) {
    // A protocol error `h2` found ends the connection on Courier's side (GOAWAY).
    let mut closed_locally = false;
    let mut pings = KeepalivePings::new(connection.ping_pong(), keepalive);
    let ended = tokio::select! {
        ended = &mut connection => ended,
        () = pings_timed_out(&mut pings) => {
            if let Some(pool) = pool.upgrade() {
                pool.cluster.http2_stats().keepalive_timeout.inc();
            }
            tracing::debug!(host = %accounting.host.address, "upstream HTTP/2 PING timed out");
            closed_locally = true;
            Ok(())
        }
    };
    drop(connection);
    if let Err(e) = ended {
        tracing::debug!(host = %accounting.host.address, "upstream HTTP/2 connection ended: {e}");
        closed_locally = e.is_library();
    }
    conn.draining.set(true);
    // After the upstream's GOAWAY, `h2` closes the connection itself once its
    // streams are done: closed locally, as Envoy counts it.
    let after_goaway = conn.send.borrow_mut().take().is_some_and(|mut send| {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(send.poll_ready(&mut cx), Poll::Ready(Err(e)) if e.is_go_away() && e.is_remote())
    });
    if conn.closing.get() || after_goaway || closed_locally {
        accounting.mark_closed_locally();
    }
    if conn.active.get() > 0 {
        accounting.mark_active_request();
    }
    drop(accounting);
    drop(breaker);
    if let Some(pool) = pool.upgrade() {
        pool.forget(&conn);
        pool.live.set(pool.live.get().saturating_sub(1));
        pool.maybe_connect(false);
    }
}

/// The request as HTTP/2 headers: `host` becomes `:authority` (the host's
/// address when the request had none), the scheme is `http`, the
/// connection-specific headers go (`te` becomes `trailers` when it lists
/// trailers, else goes: the only value HTTP/2 allows), and the
/// try's overrides replace the router's headers of their names.
pub fn request_headers(request: &RequestOut<'_>, address: SocketAddr) -> http::Request<()> {
    let overridden = |name: &HeaderName| request.overrides.iter().flatten().any(|(n, _)| n == name);
    let authority = request
        .overrides
        .iter()
        .flatten()
        .find(|(n, _)| n == HOST)
        .map(|(_, v)| v)
        .or_else(|| request.headers.get(HOST))
        .and_then(|v| http::uri::Authority::try_from(v.as_bytes()).ok())
        .or_else(|| http::uri::Authority::try_from(address.to_string()).ok());
    let mut uri = http::uri::Builder::new().scheme(http::uri::Scheme::HTTP).path_and_query(request.target);
    if let Some(a) = authority {
        uri = uri.authority(a);
    }
    let mut headers = http::HeaderMap::with_capacity(request.headers.len() + 4);
    let mut te_trailers = false;
    for (name, value) in request.headers {
        if name == TE {
            // HTTP/2 allows `te: trailers` only: kept when the client accepts trailers.
            te_trailers |=
                value.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
            continue;
        }
        let hop = name == HOST
            || name == CONNECTION
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
            || name == TRANSFER_ENCODING
            || name == UPGRADE;
        if !hop && !overridden(name) {
            headers.append(name, value.clone());
        }
    }
    if te_trailers && !overridden(&TE) {
        headers.insert(TE, http::HeaderValue::from_static("trailers"));
    }
    for (name, value) in request.overrides.iter().flatten() {
        if name != HOST {
            headers.insert(name, value.clone());
        }
    }
    let mut out = http::Request::new(());
    *out.method_mut() = request.method.clone();
    // The target is the router's origin-form path: a valid URI part.
    *out.uri_mut() = uri.build().unwrap_or_default();
    *out.version_mut() = http::Version::HTTP_2;
    *out.headers_mut() = headers;
    out
}

/// Why a request body stopped going up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFailure {
    /// The downstream body was malformed (the codec's reason): the stream was reset.
    RequestBody(CodecError),
    /// The stream was reset or its connection closed: the response says how.
    Stream,
}

/// The request body still going up once its headers are sent.
pub type Upload = Pin<Box<dyn Future<Output = Result<(), UploadFailure>>>>;

/// Sends `body` on `tx` as the upstream's flow control allows, then its
/// trailers if any. A body that ended with the headers sends nothing; one
/// whose stream the upstream reset stops at once.
pub fn upload(mut tx: SendStream<Bytes>, body: BodyOut) -> Upload {
    Box::pin(async move {
        match body {
            BodyOut::Whole(b) if b.is_empty() => Ok(()),
            BodyOut::Whole(b) => send_data(&mut tx, b, true).await,
            BodyOut::Streaming(mut b) => {
                if b.is_end_stream() {
                    return Ok(());
                }
                loop {
                    // The upstream may end the stream while the body waits for
                    // more (a gRPC service ending a client stream): the upload
                    // stops then, not at the next frame.
                    let next = std::future::poll_fn(|cx| match tx.poll_reset(cx) {
                        Poll::Ready(_) => Poll::Ready(None),
                        Poll::Pending => hyper::body::Body::poll_frame(b.as_mut(), cx).map(Some),
                    });
                    let Some(frame) = next.await else { return Err(UploadFailure::Stream) };
                    match frame {
                        None => return tx.send_data(Bytes::new(), true).map_err(|_| UploadFailure::Stream),
                        Some(Err(e)) => {
                            tracing::debug!("request body failed on its way to an HTTP/2 upstream: {e}");
                            // Counted when the stream's slot is given back unended.
                            tx.send_reset(Reason::CANCEL);
                            return Err(UploadFailure::RequestBody(CodecError::of_body_error(&*e)));
                        }
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => {
                                let end = b.is_end_stream();
                                send_data(&mut tx, data, end).await?;
                                if end {
                                    return Ok(());
                                }
                            }
                            Err(frame) => {
                                if let Ok(trailers) = frame.into_trailers() {
                                    return tx.send_trailers(trailers).map_err(|_| UploadFailure::Stream);
                                }
                            }
                        },
                    }
                }
            }
        }
    })
}

/// Sends `data` in pieces as the stream's capacity allows.
async fn send_data(tx: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> Result<(), UploadFailure> {
    if data.is_empty() {
        return if end { tx.send_data(data, true).map_err(|_| UploadFailure::Stream) } else { Ok(()) };
    }
    while !data.is_empty() {
        tx.reserve_capacity(data.len());
        let mut capacity = tx.capacity();
        while capacity == 0 {
            capacity = match std::future::poll_fn(|cx| tx.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(_)) | None => return Err(UploadFailure::Stream),
            };
        }
        let piece = data.split_to(capacity.min(data.len()));
        tx.send_data(piece, end && data.is_empty()).map_err(|_| UploadFailure::Stream)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Data,
    Trailers,
    Done,
}

/// An HTTP/2 response body: DATA as the downstream writer polls it (its
/// flow-control credit given back as it is taken), then the trailers, if any.
/// It holds the stream's slot until the end, and keeps sending the request
/// body if the response came first.
pub struct Http2ResponseBody {
    recv: RecvStream,
    state: BodyState,
    upload: Option<Upload>,
    stream: Option<Http2Stream>,
}

impl Http2ResponseBody {
    pub fn new(recv: RecvStream, upload: Option<Upload>, stream: Http2Stream) -> Http2ResponseBody {
        let state = if recv.is_end_stream() { BodyState::Done } else { BodyState::Data };
        let mut body = Http2ResponseBody { recv, state, upload, stream: Some(stream) };
        if state == BodyState::Done {
            body.finish(true);
        }
        body
    }

    /// The stream is over: its slot goes back to the connection. `ended`: by
    /// its end or the upstream's reset (else Courier resets it).
    fn finish(&mut self, ended: bool) {
        self.state = BodyState::Done;
        self.upload = None;
        if let Some(mut s) = self.stream.take() {
            if ended {
                s.mark_ended();
            }
        }
    }

    fn fail(&mut self, e: &h2::Error) -> UpstreamBodyError {
        tracing::debug!("upstream HTTP/2 response body failed: {e}");
        if let Some(s) = &self.stream {
            if e.is_reset() && e.is_remote() {
                s.stats().rx_reset.inc();
            }
            if e.is_go_away() {
                s.drain_connection();
            }
        }
        self.finish(true);
        UpstreamBodyError(BodyFailure::Reset)
    }
}

impl hyper::body::Body for Http2ResponseBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(up) = this.upload.as_mut() {
            if let Poll::Ready(result) = up.as_mut().poll(cx) {
                this.upload = None;
                if matches!(result, Err(UploadFailure::RequestBody(_))) {
                    this.finish(false);
                    return Poll::Ready(Some(Err(UpstreamBodyError(BodyFailure::Reset))));
                }
            }
        }
        if this.state == BodyState::Data {
            match this.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => {
                    // Credit back what the downstream writer takes, so the
                    // upstream sends no faster than the client reads.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(this.fail(&e)))),
                Poll::Ready(None) => this.state = BodyState::Trailers,
            }
        }
        if this.state == BodyState::Trailers {
            return match this.recv.poll_trailers(cx) {
                Poll::Pending => Poll::Pending,
                // Not counted in `http2.trailers`: Envoy counts only the
                // trailers of requests from downstream there.
                Poll::Ready(Ok(Some(trailers))) => {
                    this.finish(true);
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Poll::Ready(Ok(None)) => {
                    this.finish(true);
                    Poll::Ready(None)
                }
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(this.fail(&e)))),
            };
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.state == BodyState::Done
    }

    fn size_hint(&self) -> SizeHint {
        if self.state == BodyState::Done {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

impl super::conn_pool::IdleReaping for Http2ConnPool {
    /// Closes the connections idle for `idle_timeout`; returns when the next
    /// idle one expires, or `None` when none is idle.
    fn close_expired(&self) -> Option<Instant> {
        let timeout = self.cluster.idle_timeout;
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        self.conns.borrow_mut().retain(|c| {
            if c.active.get() > 0 {
                return true;
            }
            let at = c.idle_since.get() + timeout;
            if at <= now {
                expired.push(c.clone());
                return false;
            }
            next = Some(next.map_or(at, |n| n.min(at)));
            true
        });
        for c in expired {
            self.cluster.stats.upstream_cx_idle_timeout.inc();
            c.shut();
        }
        next
    }

    fn reaper_running(&self) -> &Cell<bool> {
        &self.reaper_running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn translate(headers: &[(&str, &str)], overrides: &[Option<(HeaderName, HeaderValue)>]) -> http::Request<()> {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let request = RequestOut { method: &http::Method::POST, target: "/p?q=1", headers: &map, overrides };
        request_headers(&request, "127.0.0.1:9".parse().unwrap())
    }

    #[test]
    fn host_becomes_the_authority_and_connection_headers_go() {
        let r = translate(
            &[
                ("host", "example.com:8080"),
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "websocket"),
                ("content-length", "3"),
                ("x-a", "1"),
                ("x-a", "2"),
            ],
            &[],
        );
        assert_eq!(r.uri().to_string(), "http://example.com:8080/p?q=1");
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(r.version(), http::Version::HTTP_2);
        let names: Vec<_> = r.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length", "x-a"]);
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
    }

    #[test]
    fn te_is_trailers_or_nothing() {
        for (te, kept) in [("trailers", true), ("Trailers", true), ("gzip, trailers", true), ("gzip", false)] {
            let r = translate(&[("host", "h"), ("te", te)], &[]);
            assert_eq!(r.headers().get("te").is_some_and(|v| v == "trailers"), kept, "{te}");
            assert!(r.headers().get("te").is_none_or(|v| v == "trailers"), "{te}");
        }
    }

    #[test]
    fn overrides_replace_headers_and_a_rewritten_host_is_the_authority() {
        let overrides = [
            Some((HOST, HeaderValue::from_static("upstream.internal"))),
            Some((HeaderName::from_static("x-a"), HeaderValue::from_static("new"))),
            None,
        ];
        let r = translate(&[("host", "example.com"), ("x-a", "old")], &overrides);
        assert_eq!(r.uri().authority().map(|a| a.as_str()), Some("upstream.internal"));
        assert_eq!(r.headers().get("x-a").map(|v| v.as_bytes()), Some(&b"new"[..]));
        assert!(r.headers().get("host").is_none());
        // Without a Host, the host's address.
        let r = translate(&[], &[]);
        assert_eq!(r.uri().authority().map(|a| a.as_str()), Some("127.0.0.1:9"));
    }
}
