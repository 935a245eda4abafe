//! The HTTP/2 connection loop: the codec (`h2`) turns the connection into
//! streams; each stream runs as an active stream in a task of its own on this
//! worker, so streams of one connection proceed independently, and the loop
//! keeps driving the connection (reads, writes, flow control) meanwhile.
//!
//! What `h2` does not do and Envoy does is here or in the connection's
//! `FrameGuard` (flood limits, the premature-reset rule against rapid reset,
//! the pending-send bound), whose verdict this loop carries out: the
//! connection idle timeout (GOAWAY once no stream is open), GOAWAY on drain, a
//! failed health check and `max_requests_per_connection`, keepalive PINGs, the
//! header limits after decoding (`max_headers_count`, `max_request_headers_kb`:
//! the stream is reset and logged), and the `http2.*` stats.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::Reason;
use http::header::{CONTENT_LENGTH, EXPECT, HOST};
use http::{HeaderValue, Method, Response, StatusCode, Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::active_stream::{self, CloseConnection, StreamTimers};
use super::config::HcmConfig;
use super::extended_connect::{self, Ended};
use super::response_body::TunnelEnd;
use super::stats::HcmStats;
use super::DownstreamWatch;
use crate::event::{Isolated, Timer};
use crate::http::body::RequestBody;
use crate::http::http1::response_writer::{WriteError, WriteLimits};
use crate::http::http2::response_writer::Outbound;
use crate::http::http2::{self, CodecIo, FrameGuard, Http2CodecStats, StreamRx, Violation};
use crate::network::ConnectionInfo;
use crate::overload::{self, OverloadAction, ScaledTimer};

/// h2's limits on streams reset before they were accepted and on streams it
/// reset for the client's errors: above the 250 premature resets of Envoy's rule.
const H2_RESET_STREAM_BOUND: usize = 1000;

/// The least a connection may have pending to write, whatever its buffer limit
/// (one full DATA frame), so a tiny limit still lets responses through.
const MIN_SEND_BUDGET: u64 = 16 * 1024;

/// Serves one HTTP/2 connection until it closes; true when Courier closed it.
pub(super) async fn serve<T>(cfg: &Arc<HcmConfig>, info: ConnectionInfo, io: CodecIo<T>) -> bool
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let stats = &cfg.stats;
    stats.downstream_cx_http2_total.inc();
    stats.downstream_cx_http2_active.inc();
    let local = run(cfg, info, io).await;
    stats.downstream_cx_http2_active.dec();
    local
}

/// What the connection loop and its streams share.
struct ConnState {
    active: Cell<usize>,
    /// When the last stream ended (the connection idle timer runs from it).
    idle_since: Cell<Instant>,
    /// Wakes the loop when a stream ends (or asks for the connection's close).
    changed: Notify,
    /// A stream's response closes the connection (a refused upgrade): GOAWAY.
    close_requested: Cell<bool>,
}

impl ConnState {
    fn stream_ended(&self) {
        self.active.set(self.active.get().saturating_sub(1));
        self.idle_since.set(Instant::now());
        self.changed.notify_one();
    }
}

async fn run<T>(cfg: &Arc<HcmConfig>, info: ConnectionInfo, mut io: CodecIo<T>) -> bool
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let stats = &cfg.stats;
    let h2_stats = cfg.http2_stats.get();
    let o = &cfg.http2;
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(o.initial_stream_window_size)
        .initial_connection_window_size(o.initial_connection_window_size)
        .max_concurrent_streams(o.max_concurrent_streams)
        .header_table_size(o.hpack_table_size)
        // The codec's own bound (it answers 431 past it) sits above Courier's
        // check of max_request_headers_kb and max_headers_count, which resets the
        // stream as Envoy's codec does; it still bounds what one stream decodes.
        .max_header_list_size(header_list_bound(cfg))
        // What a stream may queue for a slow reader: the connection's buffer limit.
        .max_send_buffer_size((cfg.buffer_limit as usize).max(16 * 1024))
        // Streams the client makes Courier reset (MadeYouReset, CVE-2025-8671) and
        // streams reset before they were accepted are bounded; past it, GOAWAY.
        // h2's own bounds on reset streams sit above Envoy's premature-reset rule
        // (FrameGuard), which is to act first; they still bound h2's memory.
        .max_local_error_reset_streams(Some(H2_RESET_STREAM_BOUND))
        .max_pending_accept_reset_streams(H2_RESET_STREAM_BOUND);
    if o.allow_connect {
        builder.enable_connect_protocol();
    }
    let guard = Rc::new(FrameGuard::new(o, cfg.max_request_headers_bytes, h2_stats.clone()));
    io.set_guard(guard.clone());
    let mut timer = Timer::new();
    let started = Instant::now();
    timer.set(cfg.idle_timeout.map(|d| overload::scaled_deadline(ScaledTimer::ConnectionIdle, started, d)));
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = tokio::select! {
        biased;
        c = handshake => match c {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(remote = %info.remote, "HTTP/2 handshake failed: {e}");
                stats.downstream_cx_protocol_error.inc();
                return !e.is_io();
            }
        },
        () = timer.fired() => {
            stats.downstream_cx_idle_timeout.inc();
            return true;
        }
    };
    let state = Rc::new(ConnState {
        active: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
        changed: Notify::new(),
        close_requested: Cell::new(false),
    });
    let mut drain = cfg.drain.clone();
    // Set once a GOAWAY went (or the connection must end): no new streams.
    let mut going_away = false;
    let mut local = false;
    let mut streams: u32 = 0;
    let mut keepalive = o.keepalive.as_ref().and_then(|k| Some((k, k.interval?, conn.ping_pong()?)));
    let mut ping_timer = Timer::new();
    // When the PING in flight was sent (`None`: none is).
    let mut ping_sent: Option<Instant> = None;
    if let Some((k, _, _)) = &keepalive {
        ping_timer.set(k.next_ping().map(|d| Instant::now() + d));
    }
    loop {
        if !going_away && state.close_requested.get() {
            local |= go_away(&mut conn, h2_stats, &mut going_away);
        }
        if !going_away && drain.borrow().is_draining() {
            stats.downstream_cx_drain_close.inc();
            local |= go_away(&mut conn, h2_stats, &mut going_away);
        }
        let idle = state.active.get() == 0 && !going_away;
        // Scaled by the reduce_timeouts overload action (recomputed when it changes).
        let idle_deadline = |d| overload::scaled_deadline(ScaledTimer::ConnectionIdle, state.idle_since.get(), d);
        timer.set(cfg.idle_timeout.filter(|_| idle).map(idle_deadline));
        tokio::select! {
            biased;
            accepted = std::future::poll_fn(|cx| conn.poll_accept(cx)) => match accepted {
                Some(Ok((request, respond))) => {
                    state.active.set(state.active.get() + 1);
                    streams = streams.saturating_add(1);
                    // The stream's future is several KiB: built in place on the heap,
                    // the task holds a pointer, and spawning or finishing it copies
                    // no more (copies were a fifth of the instructions per request).
                    let mut slot = Box::new_uninit();
                    slot.write(Isolated::new(stream(cfg.clone(), info.clone(), request, respond, state.clone(), guard.clone())));
                    // SAFETY: written on the line above.
                    let task = Box::into_pin(unsafe { slot.assume_init() });
                    tokio::task::spawn_local(task);
                    // The Nth stream is served, and the connection drains after it.
                    if !going_away && cfg.max_requests_per_connection.is_some_and(|max| streams >= max) {
                        stats.downstream_cx_max_requests_reached.inc();
                        local |= go_away(&mut conn, h2_stats, &mut going_away);
                    }
                    // The disable_http_keepalive overload action drains the connection
                    // with GOAWAY; this stream is still served.
                    if !going_away && !cfg.bypass_overload && overload::applies(OverloadAction::DisableHttpKeepalive) {
                        stats.downstream_cx_overload_disable_keepalive.inc();
                        local |= go_away(&mut conn, h2_stats, &mut going_away);
                    }
                    // A failed health check drains connections as their streams come,
                    // as Envoy does on a response: this stream is still served.
                    if !going_away && cfg.health_check_failed.load(Ordering::Relaxed) {
                        stats.downstream_cx_drain_close.inc();
                        local |= go_away(&mut conn, h2_stats, &mut going_away);
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(remote = %info.remote, "HTTP/2 connection failed: {e}");
                    if e.is_go_away() && e.is_remote() {
                        // The client said goodbye; not an error of ours.
                    } else if !e.is_io() {
                        stats.downstream_cx_protocol_error.inc();
                        h2_stats.rx_messaging_error.inc();
                        h2_stats.goaway_sent.inc();
                        local = true;
                    }
                    break;
                }
                None => break,
            },
            () = state.changed.notified() => {}
            () = overload::timers_rescaled(), if idle && cfg.idle_timeout.is_some() => {}
            () = guard.violated.notified(), if !going_away => {
                // A flood or a malformed frame ends the connection: GOAWAY, then close.
                let Some(violation) = guard.violation() else { continue };
                tracing::debug!(remote = %info.remote, "HTTP/2 connection error: {violation:?}");
                if violation == Violation::PrematureResets {
                    stats.downstream_rq_too_many_premature_resets.inc();
                    // Envoy aborts the connection: no GOAWAY, no waiting for streams.
                    return true;
                }
                stats.downstream_cx_protocol_error.inc();
                if !violation.is_flood() {
                    h2_stats.rx_messaging_error.inc();
                }
                h2_stats.goaway_sent.inc();
                conn.abrupt_shutdown(violation.reason());
                going_away = true;
                local = true;
            }
            changed = drain.changed(), if !going_away && !drain.borrow().is_draining() => {
                if changed.is_err() {
                    // The server is gone; stop as if drained.
                    local |= go_away(&mut conn, h2_stats, &mut going_away);
                }
            }
            pong = std::future::poll_fn(|cx| match &mut keepalive {
                Some((_, _, pp)) => pp.poll_pong(cx),
                None => Poll::Pending,
            }), if ping_sent.is_some() => {
                if pong.is_err() {
                    break;
                }
                ping_sent = None;
                if let Some((k, _, _)) = &keepalive {
                    ping_timer.set(k.next_ping().map(|d| Instant::now() + d));
                }
            }
            () = ping_timer.fired(), if keepalive.is_some() => {
                let Some((k, _, pp)) = &mut keepalive else { continue };
                match ping_sent {
                    None => {
                        if pp.send_ping(h2::Ping::opaque()).is_err() {
                            break;
                        }
                        let now = Instant::now();
                        ping_sent = Some(now);
                        ping_timer.set(Some(now + k.timeout));
                    }
                    Some(sent) => {
                        // Any frame from the client since the PING extends its
                        // timeout (its ACK may be queued behind data), as Envoy's.
                        let heard = guard.last_rx();
                        if heard > sent && heard + k.timeout > Instant::now() {
                            ping_timer.set(Some(heard + k.timeout));
                        } else {
                            h2_stats.keepalive_timeout.inc();
                            return true;
                        }
                    }
                }
            }
            () = timer.fired() => {
                if state.active.get() == 0 && !going_away {
                    stats.downstream_cx_idle_timeout.inc();
                    local |= go_away(&mut conn, h2_stats, &mut going_away);
                }
            }
        }
    }
    local
}

/// Sends GOAWAY once (streams in flight finish; no new ones start). Returns
/// true: Courier is the side closing.
fn go_away<T>(conn: &mut h2::server::Connection<T, Bytes>, h2_stats: &Http2CodecStats, going_away: &mut bool) -> bool
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if !std::mem::replace(going_away, true) {
        h2_stats.goaway_sent.inc();
        conn.graceful_shutdown();
    }
    true
}

/// HTTP/2 may split `cookie` into crumbs, one field each; they are one header
/// joined with "; " again before the request goes on (RFC 9113 §8.2.3), as
/// Envoy's codec does.
fn join_cookie_crumbs(headers: &mut http::HeaderMap) {
    let mut crumbs = headers.get_all(http::header::COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for crumb in headers.get_all(http::header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(http::header::COOKIE, v);
    }
}

/// What `h2` may decode of one header block: the byte limit plus RFC 9113's 32
/// bytes for each field allowed, twice over.
fn header_list_bound(cfg: &HcmConfig) -> u32 {
    let bound = 2 * (cfg.max_request_headers_bytes + 32 * (cfg.max_headers_count + 8));
    u32::try_from(bound).unwrap_or(u32::MAX)
}

/// One stream, from its request headers to the end of its response.
async fn stream(
    cfg: Arc<HcmConfig>,
    info: ConnectionInfo,
    request: http::Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    conn: Rc<ConnState>,
    guard: Rc<FrameGuard>,
) {
    let h2_stats = cfg.http2_stats.get();
    h2_stats.streams_active.inc();
    serve_stream(&cfg, info, request, &mut respond, Instant::now(), &guard, &conn).await;
    h2_stats.streams_active.dec();
    conn.stream_ended();
}

async fn serve_stream(
    cfg: &Arc<HcmConfig>,
    info: ConnectionInfo,
    request: http::Request<h2::RecvStream>,
    respond: &mut SendResponse<Bytes>,
    started: Instant,
    guard: &FrameGuard,
    conn: &ConnState,
) {
    let stats = &cfg.stats;
    let h2_stats = cfg.http2_stats.get();
    let (mut parts, recv) = request.into_parts();
    let size = record_header_sizes(h2_stats, &parts);
    // Every header field counts, pseudo-headers and each cookie crumb included
    // (HPACK sends them apart): with max_headers_count 100, Envoy 1.40 serves 96
    // regular fields after the 4 pseudo-headers and resets the stream at 97.
    // Past a limit, Envoy's codec resets the stream and logs it.
    let too_many = parts.headers.len() + pseudo_header_count(&parts) > cfg.max_headers_count;
    if too_many || size > cfg.max_request_headers_bytes {
        if too_many {
            h2_stats.header_overflow.inc();
        } else {
            h2_stats.header_list_size_too_large.inc();
        }
        respond.send_reset(Reason::INTERNAL_ERROR);
        active_stream::reset_without_request(cfg, info, Version::HTTP_2);
        return;
    }
    join_cookie_crumbs(&mut parts.headers);
    // `:authority` is the request's host, as Envoy's codec makes it.
    if let Some(authority) = parts.uri.authority() {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(HOST, host);
        }
    }
    // An extended CONNECT is the upgrade it stands for; its DATA is the tunnel's.
    let tunnel = extended_connect::as_upgrade(&mut parts);
    if parts.method != Method::CONNECT {
        // The origin form the rest of the path expects, without parsing again.
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = None;
        uri.authority = None;
        parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
    }
    parts.version = Version::HTTP_2;
    if parts.headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
        parts.headers.remove(EXPECT);
        if respond
            .send_informational(Response::builder().status(StatusCode::CONTINUE).body(()).unwrap_or_default())
            .is_ok()
        {
            stats.downstream_rq_1xx.inc();
        }
    }
    let head_only = parts.method == Method::HEAD;
    let length = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let rx = StreamRx::new(recv.is_end_stream());
    let (body, tunnel_recv) = if tunnel {
        (http2::RequestBody::tunnel(rx.clone()), Some(recv))
    } else {
        (http2::RequestBody::new(recv, rx.clone(), length), None)
    };
    let body = RequestBody::Http2(Box::new(body));
    let request = http::Request::from_parts(parts, body);

    stats.downstream_rq_active.inc();
    let timers = StreamTimers::new(cfg.stream_idle_timeout, cfg.max_stream_duration);
    let mut timer = Timer::new();
    let response = {
        let mut watch = Http2Watch { rx: &rx, respond: &mut *respond };
        super::run_stream(cfg, info, request, rx.body_bytes.clone(), &mut watch, started, &timers, &mut timer).await
    };
    if rx.trailers.get() {
        h2_stats.trailers.inc();
    }
    let Some(mut response) = response else {
        // The client reset the stream before its response: the stream (and its
        // upstream request) is dropped.
        stats.downstream_rq_active.dec();
        stats.downstream_rq_rx_reset.inc();
        return;
    };
    let limits = WriteLimits { idle: timers.idle(), deadline: timers.max_duration().map(|d| started + d) };
    let out = Outbound { limits, guard, buffer_limit: u64::from(cfg.buffer_limit).max(MIN_SEND_BUDGET) };
    let unswitched = tunnel_recv.is_some();
    if let Some(recv) = tunnel_recv {
        // Envoy closes the connection after refusing an upgrade: GOAWAY first.
        if response.extensions().get::<CloseConnection>().is_some() {
            conn.close_requested.set(true);
            conn.changed.notify_one();
            // The connection's loop runs first and queues its GOAWAY.
            tokio::task::yield_now().await;
        }
        let received = rx.body_bytes.clone();
        match extended_connect::serve(response, recv, respond, received, limits, out, stats).await {
            Ok(ended) => {
                stats.downstream_rq_active.dec();
                tunnel_ended(stats, &ended);
                return;
            }
            Err(r) => {
                // Not a tunnel: the response ends the stream the client left open,
                // which the codec then resets (NO_ERROR); Envoy counts both.
                stats.downstream_rq_response_before_rq_complete.inc();
                stats.downstream_rq_rx_reset.inc();
                response = r;
            }
        }
    }
    let written = if unswitched {
        extended_connect::write_unswitched(response, respond, out, &mut timer).await
    } else {
        http2::response_writer::write(respond, response, head_only, out, &mut timer).await
    };
    stats.downstream_rq_active.dec();
    match written {
        Ok(_) => {}
        // The client reset the stream (or the connection went) mid-response.
        Err(WriteError::Io(_)) => stats.downstream_rq_rx_reset.inc(),
        Err(e) => {
            if matches!(e, WriteError::Timeout) {
                stats.downstream_rq_idle_timeout.inc();
            } else {
                stats.rq_reset_after_downstream_response_started.inc();
            }
            stats.downstream_rq_tx_reset.inc();
            respond.send_reset(Reason::INTERNAL_ERROR);
        }
    }
}

/// Envoy's counters for how an extended CONNECT's tunnel ended, beyond what
/// the stream's completion counts (`finish_tunnel`): a reset Courier sent
/// because the upstream went counts as received too, and a tunnel the client
/// reset or left idle never completed its request (checked against Envoy 1.40).
fn tunnel_ended(stats: &HcmStats, ended: &Ended) {
    match ended {
        Ended::Closed => {}
        Ended::ClientReset | Ended::Reset(TunnelEnd::Idle) => stats.downstream_rq_response_before_rq_complete.inc(),
        Ended::Reset(_) => {
            stats.downstream_rq_tx_reset.inc();
            stats.downstream_rq_rx_reset.inc();
        }
    }
}

/// What a stream watches of its HTTP/2 stream while it runs.
struct Http2Watch<'a> {
    rx: &'a StreamRx,
    respond: &'a mut SendResponse<Bytes>,
}

impl DownstreamWatch for Http2Watch<'_> {
    fn request_done(&self) -> bool {
        self.rx.done.get()
    }

    fn last_rx(&self) -> Instant {
        self.rx.last_rx.get()
    }

    fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.respond.poll_reset(cx).map(|_| ())
    }
}

/// The pseudo-headers the request came with: `:method`, and `:scheme`,
/// `:authority`, `:path` and `:protocol` where present (h2 put them in the URI
/// and the extensions).
fn pseudo_header_count(parts: &http::request::Parts) -> usize {
    1 + usize::from(parts.uri.scheme().is_some())
        + usize::from(parts.uri.authority().is_some())
        + usize::from(parts.uri.path_and_query().is_some())
        + usize::from(parts.extensions.get::<h2::ext::Protocol>().is_some())
}

/// Envoy's `http2.header_count`, `header_list_size` (RFC 9113's size: name,
/// value and 32 bytes per field), and for requests with cookies `cookie_count`
/// and `cookie_size`. Returns the bytes of names and values, pseudo-headers
/// included (what `max_request_headers_kb` bounds).
fn record_header_sizes(stats: &http2::Http2CodecStats, parts: &http::request::Parts) -> usize {
    let headers = &parts.headers;
    let pseudo = ":method".len()
        + parts.method.as_str().len()
        + ":path".len()
        + parts.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + parts.uri.authority().map_or(0, |a| ":authority".len() + a.as_str().len())
        + parts.uri.scheme_str().map_or(0, |s| ":scheme".len() + s.len());
    let mut bytes = pseudo;
    let mut size = 0usize;
    let (mut cookies, mut cookie_bytes) = (0u64, 0usize);
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 32;
        bytes += name.as_str().len() + value.len();
        if name == http::header::COOKIE {
            cookies += 1;
            cookie_bytes += value.len();
        }
    }
    stats.header_count.record(headers.len() as u64);
    stats.header_list_size.record(size as u64);
    if cookies > 0 {
        stats.cookie_count.record(cookies);
        stats.cookie_size.record(cookie_bytes as u64);
    }
    bytes
}
