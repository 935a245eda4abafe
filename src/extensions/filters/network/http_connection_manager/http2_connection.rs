//! The HTTP/2 connection loop: Courier's sans-IO codec (`http2::codec`) turns
//! the connection's bytes into streams; each stream runs as an active stream in
//! a task of its own on this worker, so streams of one connection proceed
//! independently, and the loop keeps driving the connection (reads, writes,
//! flow control) meanwhile. The loop owns the socket and the HPACK decoder;
//! streams reach the codec through `http2::server_stream` (request DATA and
//! trailers left in the stream's slot, responses queued straight into the
//! codec, which the loop then writes).
//!
//! What Envoy does beyond the codec's frame rules is here: the header limits
//! after decoding (`max_headers_count`, `max_request_headers_kb`: the stream is
//! reset and logged), the premature-reset rule against rapid reset, the
//! connection idle timeout (once no stream is open), the drain on a server or
//! listener drain, a failed health check and `max_requests_per_connection`,
//! keepalive PINGs, and the `http2.*` stats.
//!
//! The drain is Envoy 1.40's sequence (checked by running it): a GOAWAY with
//! the last stream id 2^31-1 first (no PING), streams the client opens meanwhile
//! still served; after `drain_timeout` (or at once when the server's drain time
//! is over) the final GOAWAY with the real last stream id; the connection closes
//! once the streams it names have ended.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, EXPECT, HOST};
use http::{HeaderValue, Method, StatusCode, Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::active_stream::{self, CloseConnection, StreamTimers};
use super::config::HcmConfig;
use super::extended_connect::{self, Ended};
use super::response_body::TunnelEnd;
use super::stats::HcmStats;
use super::DownstreamWatch;
use crate::common::buffer_pool;
use crate::event::{Isolated, Timer};
use crate::http::body::RequestBody;
use crate::http::http1::response_writer::{WriteError, WriteLimits};
use crate::http::http2::codec::{ConnectionError, ErrorCode, Event, ServerConnection};
use crate::http::http2::hpack::{DecodeError, Decoder, HeaderListLimit, ListOverLimit};
use crate::http::http2::request_head::{self, RequestHead};
use crate::http::http2::response_writer::Outbound;
use crate::http::http2::server_stream::{ConnShared, DataTaken, StreamHandle};
use crate::http::http2::{self, CodecIo, Http2CodecStats, StreamRx, Violation};
use crate::network::drain::DrainPhase;
use crate::network::transport::ReadReady;
use crate::network::ConnectionInfo;
use crate::overload::{self, OverloadAction, ScaledTimer};

/// The least a connection may have pending to write, whatever its buffer limit
/// (one full DATA frame), so a tiny limit still lets responses through.
const MIN_SEND_BUDGET: u64 = 16 * 1024;

/// Each read from the socket.
const READ_CHUNK: usize = buffer_pool::BUFFER_SIZE;

/// How long the last frames (a GOAWAY) may take to write before the close.
const FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

/// The last stream id of the drain's first GOAWAY: every stream the client may
/// be opening is still served.
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// The keepalive PING's payload.
const PING_PAYLOAD: [u8; 8] = *b"courier!";

/// Serves one HTTP/2 connection until it closes; true when Courier closed it.
pub(super) async fn serve<T>(cfg: &Arc<HcmConfig>, info: ConnectionInfo, io: CodecIo<T>) -> bool
where
    T: AsyncRead + AsyncWrite + ReadReady + Unpin + 'static,
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

/// What the socket did for the loop.
enum IoEvent {
    Read,
    Wrote,
    Closed,
}

/// How the loop ends.
enum End {
    /// The client closed, or the connection was done: nothing more to write.
    Quiet,
    /// Write what is queued (a GOAWAY), then close once the client did or
    /// `delayed_close_timeout` passed.
    Flush,
    /// Close at once (an outbound flood, the premature-reset rule).
    Abort,
}

/// Writes what the codec queued, then reads: whichever the socket allows.
fn drive_io<T: AsyncRead + AsyncWrite + ReadReady + Unpin>(
    cx: &mut Context<'_>,
    io: &mut CodecIo<T>,
    shared: &ConnShared,
    rbuf: &mut BytesMut,
    unflushed: &mut bool,
    reading: bool,
) -> Poll<IoEvent> {
    let mut wrote = false;
    loop {
        let polled = {
            let conn = shared.conn.borrow();
            let out = conn.pending_output();
            if out.is_empty() {
                break;
            }
            Pin::new(&mut *io).poll_write(cx, out)
        };
        match polled {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(IoEvent::Closed),
            Poll::Ready(Ok(n)) => {
                shared.written(n);
                wrote = true;
                *unflushed = true;
            }
            Poll::Pending => break,
        }
    }
    if *unflushed && shared.conn.borrow().pending_output().is_empty() {
        match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(_)) => return Poll::Ready(IoEvent::Closed),
            Poll::Pending => {}
        }
    }
    if wrote {
        shared.report_pending();
        return Poll::Ready(IoEvent::Wrote);
    }
    if !reading {
        return Poll::Pending;
    }
    if rbuf.capacity() == 0 {
        // Idle: no read buffer until the socket has something to read.
        match io.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => *rbuf = buffer_pool::take(),
            Poll::Ready(Err(_)) => return Poll::Ready(IoEvent::Closed),
            Poll::Pending => return Poll::Pending,
        }
    }
    rbuf.reserve(READ_CHUNK);
    let spare = rbuf.spare_capacity_mut();
    let mut buf = ReadBuf::uninit(spare);
    match Pin::new(&mut *io).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => {
            let n = buf.filled().len();
            if n == 0 {
                return Poll::Ready(IoEvent::Closed);
            }
            // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
            unsafe { rbuf.set_len(rbuf.len() + n) };
            Poll::Ready(IoEvent::Read)
        }
        Poll::Ready(Err(_)) => Poll::Ready(IoEvent::Closed),
        Poll::Pending => {
            // Nothing more to read: an emptied buffer goes back to the worker's
            // pool, so an idle connection holds none (a busy one keeps its own
            // from one read to the next).
            if rbuf.is_empty() {
                buffer_pool::give_back(std::mem::take(rbuf));
            }
            Poll::Pending
        }
    }
}

/// Writes what is queued (bounded in time), then closes the write side:
/// with `delayed_close_timeout`, only once the client has closed or that
/// much time has passed (Envoy's `FlushWriteAndDelay`, `delayed_close`).
/// False when the client closed first (closed remotely, as Envoy counts it).
async fn flush_and_close<T: AsyncRead + AsyncWrite + Unpin>(
    io: &mut CodecIo<T>,
    shared: &ConnShared,
    cfg: &HcmConfig,
) -> bool {
    let flush = async {
        loop {
            // A copy: the codec is not borrowed across the write (the last
            // frames, a GOAWAY mostly, are small).
            let out = Bytes::copy_from_slice(shared.conn.borrow().pending_output());
            if out.is_empty() {
                break;
            }
            match io.write(&out).await {
                Ok(0) | Err(_) => return,
                Ok(n) => shared.written(n),
            }
        }
        let _ = io.flush().await;
    };
    let _ = tokio::time::timeout(FLUSH_BOUND, flush).await;
    if let Some(timeout) = cfg.delayed_close_timeout {
        let mut scratch = vec![0u8; READ_CHUNK];
        let discard = |cx: &mut Context<'_>| {
            let mut buf = ReadBuf::new(&mut scratch);
            Pin::new(&mut *io).poll_read(cx, &mut buf).map_ok(|()| buf.filled().len())
        };
        if super::delayed_close::wait_for_client_close(discard, timeout, &cfg.stats).await {
            return false;
        }
    }
    let _ = tokio::time::timeout(FLUSH_BOUND, io.shutdown()).await;
    true
}

/// The loop's state beyond the socket.
struct Loop<'a> {
    cfg: &'a Arc<HcmConfig>,
    info: &'a ConnectionInfo,
    h2_stats: &'a Arc<Http2CodecStats>,
    shared: Rc<ConnShared>,
    state: Rc<ConnState>,
    decoder: Decoder,
    limit: HeaderListLimit,
    /// Set once the final GOAWAY went (or the client's came): no new streams.
    going_away: bool,
    /// When the drain's final GOAWAY is due (`None`: no drain started).
    drain_deadline: Option<Instant>,
    local: bool,
    streams: u32,
    /// When the PING in flight was sent (`None`: none is).
    ping_sent: Option<Instant>,
    ping_acked: bool,
}

impl Loop<'_> {
    /// A drain started or the connection is going away: no other drain starts.
    fn draining(&self) -> bool {
        self.going_away || self.drain_deadline.is_some()
    }

    /// Envoy's drain sequence (`startDrainSequence`): GOAWAY naming stream
    /// 2^31-1 now, the final one when `drain_timeout` has passed.
    fn start_drain(&mut self) {
        if self.draining() {
            return;
        }
        self.drain_deadline = Some(Instant::now() + self.cfg.drain_timeout);
        let _ = self.shared.conn.borrow_mut().go_away(MAX_STREAM_ID, ErrorCode::NO_ERROR, Bytes::new());
    }

    /// Sends the final GOAWAY once (streams in flight finish; no new ones start).
    fn go_away(&mut self) {
        self.local = true;
        if !std::mem::replace(&mut self.going_away, true) {
            self.h2_stats.goaway_sent.inc();
            let mut conn = self.shared.conn.borrow_mut();
            let last = conn.last_peer_stream();
            let _ = conn.go_away(last, ErrorCode::NO_ERROR, Bytes::new());
        }
    }

    /// The connection ended with `e`: Envoy's stats for it. A frame the RFC
    /// forbids counts `downstream_cx_protocol_error` only, GOAWAY or not:
    /// Envoy's codec library sends that GOAWAY itself, which
    /// `http2.goaway_sent` does not count, and `http2.rx_messaging_error` is
    /// for malformed requests (checked by running it).
    fn failed(&mut self, e: ConnectionError) -> End {
        tracing::debug!(remote = %self.info.remote, "HTTP/2 connection error: {e:?}");
        let stats = &self.cfg.stats;
        self.local = true;
        stats.downstream_cx_protocol_error.inc();
        if let ConnectionError::Limit(v) = e {
            v.count(self.h2_stats);
            if v.is_outbound() {
                return End::Abort;
            }
            if v.is_flood() {
                self.h2_stats.goaway_sent.inc();
            }
        }
        End::Flush
    }

    /// A header block that does not decode: GOAWAY COMPRESSION_ERROR, counted
    /// as the codec's other connection errors (`failed`).
    fn compression_error(&mut self) -> End {
        {
            let mut conn = self.shared.conn.borrow_mut();
            let last = conn.last_peer_stream();
            let _ = conn.go_away(last, ErrorCode::COMPRESSION_ERROR, Bytes::new());
        }
        self.local = true;
        self.cfg.stats.downstream_cx_protocol_error.inc();
        End::Flush
    }

    fn on_event(&mut self, event: Event) -> Option<End> {
        match event {
            Event::Headers { stream, block, end_stream } => return self.on_headers(stream, &block, end_stream),
            Event::Data { stream, data, end_stream } => {
                let n = data.len();
                let taken = self.shared.data(stream, data, end_stream);
                if taken != DataTaken::Yes && n > 0 {
                    // Nobody reads it (the stream's task is gone): its window goes back.
                    let _ = self.shared.conn.borrow_mut().release(stream, n);
                }
                if taken == DataTaken::Malformed {
                    tracing::debug!(remote = %self.info.remote, "HTTP/2 request body breaks its content-length");
                    self.h2_stats.rx_messaging_error.inc();
                    self.reset_served(stream, ErrorCode::PROTOCOL_ERROR);
                }
            }
            Event::Trailers { stream, block } => match self.decoder.decode(&block, self.limit) {
                Ok(fields) => match request_head::trailers(fields) {
                    Ok(t) => {
                        if !self.shared.trailers(stream, t) {
                            self.h2_stats.rx_messaging_error.inc();
                            self.reset_served(stream, ErrorCode::PROTOCOL_ERROR);
                        }
                    }
                    Err(m) => {
                        tracing::debug!(remote = %self.info.remote, "HTTP/2 malformed trailers: {m}");
                        if let Some(end) = self.malformed(stream, true) {
                            return Some(end);
                        }
                    }
                },
                Err(DecodeError::Compression(_)) => return Some(self.compression_error()),
                Err(DecodeError::ListOverLimit(which)) => {
                    self.count_over_limit(which);
                    self.reset_served(stream, ErrorCode::INTERNAL_ERROR);
                }
            },
            Event::DiscardHeaderBlock { block } => {
                if let Err(DecodeError::Compression(_)) = self.decoder.decode(&block, self.limit) {
                    return Some(self.compression_error());
                }
            }
            Event::Reset { stream, by_peer, .. } => self.shared.reset(stream, by_peer),
            Event::ResetSent { .. } => self.h2_stats.tx_reset.inc(),
            Event::SelfDependentStream { .. } => {
                // Envoy 1.40 closes the connection on it: neither RST_STREAM nor
                // GOAWAY, a protocol error (checked by running it).
                tracing::debug!(remote = %self.info.remote, "HTTP/2 stream depending on itself");
                self.local = true;
                self.cfg.stats.downstream_cx_protocol_error.inc();
                return Some(End::Flush);
            }
            Event::GoAway { .. } => {
                // The client's goodbye: streams in flight finish, then the connection closes.
                self.going_away = true;
            }
            Event::Settings(peer) => self.shared.peer_table_size(peer.header_table_size),
            Event::SettingsAcked => self.decoder.set_table_size_limit(self.cfg.http2.options.hpack_table_size as usize),
            Event::PingAck { .. } => self.ping_acked = true,
            Event::SendWindowOpened { stream } => self.shared.window_opened(stream),
        }
        None
    }

    /// A malformed request head or trailers on `stream` (`served`: a task
    /// serves it). Envoy 1.40 resets the stream with PROTOCOL_ERROR when
    /// `stream_error_on_invalid_http_message` is true; by default it closes
    /// the whole connection, sending neither RST_STREAM nor GOAWAY, and counts
    /// a protocol error (checked by running it; a request body that breaks its
    /// content-length resets its stream either way).
    fn malformed(&mut self, stream: u32, served: bool) -> Option<End> {
        self.h2_stats.rx_messaging_error.inc();
        if !self.cfg.http2.options.stream_error_on_invalid_http_message {
            self.local = true;
            self.cfg.stats.downstream_cx_protocol_error.inc();
            return Some(End::Flush);
        }
        if served {
            self.reset_served(stream, ErrorCode::PROTOCOL_ERROR);
        } else {
            self.shared.refuse(stream, ErrorCode::PROTOCOL_ERROR);
        }
        None
    }

    /// Resets a stream a task serves (the task sees the reset).
    fn reset_served(&mut self, stream: u32, code: ErrorCode) {
        let _ = self.shared.conn.borrow_mut().reset_stream(stream, code);
        self.shared.reset(stream, false);
    }

    fn count_over_limit(&self, which: ListOverLimit) {
        match which {
            ListOverLimit::Count => self.h2_stats.header_overflow.inc(),
            ListOverLimit::Bytes => self.h2_stats.header_list_size_too_large.inc(),
        }
    }

    fn on_headers(&mut self, stream: u32, block: &Bytes, end_stream: bool) -> Option<End> {
        let cfg = self.cfg;
        let stats = &cfg.stats;
        let fields = match self.decoder.decode(block, self.limit) {
            Ok(f) => f,
            Err(DecodeError::Compression(_)) => return Some(self.compression_error()),
            Err(DecodeError::ListOverLimit(which)) => {
                // Past a limit, Envoy's codec resets the stream and logs it.
                self.count_over_limit(which);
                self.shared.refuse(stream, ErrorCode::INTERNAL_ERROR);
                active_stream::reset_without_request(cfg, self.info.clone(), Version::HTTP_2);
                return None;
            }
        };
        let head = match request_head::request_head(fields, cfg.http2.options.allow_connect) {
            Ok(head) => head,
            Err(m) => {
                tracing::debug!(remote = %self.info.remote, "HTTP/2 malformed request: {m}");
                return self.malformed(stream, false);
            }
        };
        let length = match head.parts.headers.get(CONTENT_LENGTH).map(content_length) {
            None => None,
            Some(Some(n)) if !(end_stream && n > 0) => Some(n),
            // RFC 9113 §8.1.1: a content-length the request cannot have is malformed.
            Some(_) => {
                tracing::debug!(remote = %self.info.remote, "HTTP/2 request with a content-length it cannot have");
                return self.malformed(stream, false);
            }
        };
        let handle = self.shared.open(stream, end_stream, length);
        self.state.active.set(self.state.active.get() + 1);
        self.streams = self.streams.saturating_add(1);
        // The stream's future is several KiB: built in place on the heap,
        // the task holds a pointer, and spawning or finishing it copies
        // no more (copies were a fifth of the instructions per request).
        let mut slot = Box::new_uninit();
        slot.write(Isolated::new(serve_stream_task(cfg.clone(), self.info.clone(), head, handle, self.state.clone())));
        // SAFETY: written on the line above.
        let task = Box::into_pin(unsafe { slot.assume_init() });
        tokio::task::spawn_local(task);
        // The Nth stream is served, and the connection drains after it; Envoy
        // counts every stream from the Nth on that it still serves.
        if cfg.max_requests_per_connection.is_some_and(|max| self.streams >= max) {
            stats.downstream_cx_max_requests_reached.inc();
            self.start_drain();
        }
        // The disable_http_keepalive overload action drains the connection
        // with GOAWAY; this stream is still served.
        if !self.draining() && !cfg.bypass_overload && overload::applies(OverloadAction::DisableHttpKeepalive) {
            stats.downstream_cx_overload_disable_keepalive.inc();
            self.start_drain();
        }
        // A failed health check drains connections as their streams come,
        // as Envoy does on a response: this stream is still served.
        if !self.draining() && cfg.health_check_failed.load(Ordering::Relaxed) {
            stats.downstream_cx_drain_close.inc();
            self.start_drain();
        }
        None
    }
}

async fn run<T>(cfg: &Arc<HcmConfig>, info: ConnectionInfo, mut io: CodecIo<T>) -> bool
where
    T: AsyncRead + AsyncWrite + ReadReady + Unpin + 'static,
{
    let h2_stats = cfg.http2_stats.get();
    let shared = ConnShared::new(ServerConnection::new(&cfg.http2), h2_stats.clone());
    let state = Rc::new(ConnState {
        active: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
        changed: Notify::new(),
        close_requested: Cell::new(false),
    });
    let mut lp = Loop {
        cfg,
        info: &info,
        h2_stats,
        shared: shared.clone(),
        state: state.clone(),
        decoder: Decoder::default(),
        limit: HeaderListLimit { max_bytes: cfg.max_request_headers_bytes, max_count: cfg.max_headers_count },
        going_away: false,
        drain_deadline: None,
        local: false,
        streams: 0,
        ping_sent: None,
        ping_acked: false,
    };
    let end = drive(&mut lp, &mut io).await;
    shared.close();
    match end {
        End::Quiet => {}
        End::Flush => {
            let closed_here = flush_and_close(&mut io, &shared, cfg).await;
            // Whoever closed during the wait closed the connection.
            if cfg.delayed_close_timeout.is_some() {
                lp.local = closed_here;
            }
        }
        End::Abort => lp.local = true,
    }
    lp.local
}

async fn drive<T>(lp: &mut Loop<'_>, io: &mut CodecIo<T>) -> End
where
    T: AsyncRead + AsyncWrite + ReadReady + Unpin + 'static,
{
    let cfg = lp.cfg;
    let stats = &cfg.stats;
    let h2_stats = lp.h2_stats;
    let shared = lp.shared.clone();
    let state = lp.state.clone();
    let o = &cfg.http2.options;
    let mut drain = cfg.drain.clone();
    let mut timer = Timer::new();
    let mut drain_timer = Timer::new();
    let mut keepalive = o.keepalive.as_ref().filter(|k| k.interval.is_some());
    let mut ping_timer = Timer::new();
    if let Some(k) = keepalive {
        ping_timer.set(k.next_ping().map(|d| Instant::now() + d));
    }
    let mut rbuf = BytesMut::new();
    let mut events = Vec::new();
    let mut unflushed = false;
    let mut last_rx = Instant::now();
    loop {
        if let Some(v) = shared.take_violation() {
            if v == Violation::PrematureResets {
                stats.downstream_rq_too_many_premature_resets.inc();
                // Envoy aborts the connection: no GOAWAY, no waiting for streams.
                return End::Abort;
            }
        }
        let failed = shared.conn.borrow().error();
        if let Some(e) = failed {
            return lp.failed(e);
        }
        if !lp.going_away && state.close_requested.get() {
            lp.go_away();
        }
        if !lp.draining() && drain.borrow().is_draining() {
            stats.downstream_cx_drain_close.inc();
            lp.start_drain();
        }
        // The server's drain time bounds drain_timeout.
        if !lp.going_away && *drain.borrow() == DrainPhase::CloseIdle {
            lp.go_away();
        }
        if lp.going_away && state.active.get() == 0 {
            return End::Flush;
        }
        shared.report_pending();
        let idle = state.active.get() == 0 && !lp.draining();
        // Scaled by the reduce_timeouts overload action (recomputed when it changes).
        let idle_deadline = |d| overload::scaled_deadline(ScaledTimer::ConnectionIdle, state.idle_since.get(), d);
        timer.set(cfg.idle_timeout.filter(|_| idle).map(idle_deadline));
        drain_timer.set(lp.drain_deadline.filter(|_| !lp.going_away));
        tokio::select! {
            biased;
            ev = std::future::poll_fn(|cx| drive_io(cx, io, &shared, &mut rbuf, &mut unflushed, true)) => match ev {
                IoEvent::Read => {
                    last_rx = Instant::now();
                    let received = shared.conn.borrow_mut().recv(&mut rbuf, &mut events);
                    for event in events.drain(..) {
                        if let Some(end) = lp.on_event(event) {
                            return end;
                        }
                    }
                    if let Err(e) = received {
                        return lp.failed(e);
                    }
                    if std::mem::take(&mut lp.ping_acked) && lp.ping_sent.take().is_some() {
                        if let Some(k) = keepalive {
                            ping_timer.set(k.next_ping().map(|d| Instant::now() + d));
                        }
                    }
                }
                IoEvent::Wrote => {}
                IoEvent::Closed => return End::Quiet,
            },
            () = shared.output.notified() => {}
            () = state.changed.notified() => {}
            () = overload::timers_rescaled(), if idle && cfg.idle_timeout.is_some() => {}
            changed = drain.changed(), if !lp.going_away && *drain.borrow() != DrainPhase::CloseIdle => {
                if changed.is_err() {
                    // The server is gone; stop as if drained.
                    lp.go_away();
                }
            }
            () = ping_timer.fired(), if keepalive.is_some() => {
                let Some(k) = keepalive else { continue };
                match lp.ping_sent {
                    None => {
                        if shared.conn.borrow_mut().ping(PING_PAYLOAD).is_err() {
                            keepalive = None;
                            continue;
                        }
                        let now = Instant::now();
                        lp.ping_sent = Some(now);
                        ping_timer.set(Some(now + k.timeout));
                    }
                    Some(sent) => {
                        // Any frame from the client since the PING extends its
                        // timeout (its ACK may be queued behind data), as Envoy's.
                        if last_rx > sent && last_rx + k.timeout > Instant::now() {
                            ping_timer.set(Some(last_rx + k.timeout));
                        } else {
                            h2_stats.keepalive_timeout.inc();
                            lp.local = true;
                            return End::Abort;
                        }
                    }
                }
            }
            () = timer.fired() => {
                if state.active.get() == 0 && !lp.draining() {
                    stats.downstream_cx_idle_timeout.inc();
                    lp.start_drain();
                }
            }
            () = drain_timer.fired(), if !lp.going_away && lp.drain_deadline.is_some() => lp.go_away(),
        }
    }
}

/// A `content-length` value: digits only.
fn content_length(v: &HeaderValue) -> Option<u64> {
    let v = v.as_bytes();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
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

/// One stream, from its request headers to the end of its response.
async fn serve_stream_task(
    cfg: Arc<HcmConfig>,
    info: ConnectionInfo,
    head: RequestHead,
    stream: StreamHandle,
    conn: Rc<ConnState>,
) {
    let h2_stats = cfg.http2_stats.get();
    h2_stats.streams_active.inc();
    serve_stream(&cfg, info, head, &stream, Instant::now(), &conn).await;
    // The stream ends (reset if it did not end both ways) before the
    // connection hears that it did.
    drop(stream);
    h2_stats.streams_active.dec();
    conn.stream_ended();
}

async fn serve_stream(
    cfg: &Arc<HcmConfig>,
    info: ConnectionInfo,
    head: RequestHead,
    stream: &StreamHandle,
    started: Instant,
    conn: &ConnState,
) {
    let stats = &cfg.stats;
    let h2_stats = cfg.http2_stats.get();
    let RequestHead { mut parts, protocol } = head;
    // The header limits were applied as the block was decoded.
    record_header_sizes(h2_stats, &parts);
    join_cookie_crumbs(&mut parts.headers);
    // `:authority` is the request's host, as Envoy's codec makes it.
    if let Some(authority) = parts.uri.authority() {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(HOST, host);
        }
    }
    // An extended CONNECT is the upgrade it stands for; its DATA is the tunnel's.
    let tunnel = extended_connect::as_upgrade(&mut parts, protocol);
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
        if stream.send_head(StatusCode::CONTINUE, &http::HeaderMap::new(), false).is_ok() {
            stats.downstream_rq_1xx.inc();
        }
    }
    let head_only = parts.method == Method::HEAD;
    let length = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let rx = StreamRx::new(stream.is_end_stream());
    let body = if tunnel {
        http2::RequestBody::tunnel(rx.clone())
    } else {
        http2::RequestBody::new(stream.clone(), rx.clone(), length)
    };
    let body = RequestBody::Http2(Box::new(body));
    let request = http::Request::from_parts(parts, body);

    stats.downstream_rq_active.inc();
    let timers = StreamTimers::new(cfg.stream_idle_timeout, cfg.max_stream_duration);
    let mut timer = Timer::new();
    let response = {
        let mut watch = Http2Watch { rx: &rx, stream };
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
    let out = Outbound { limits, buffer_limit: u64::from(cfg.buffer_limit).max(MIN_SEND_BUDGET) };
    let unswitched = tunnel;
    if tunnel {
        // Envoy closes the connection after refusing an upgrade: GOAWAY first.
        if response.extensions().get::<CloseConnection>().is_some() {
            conn.close_requested.set(true);
            conn.changed.notify_one();
            // The connection's loop runs first and queues its GOAWAY.
            tokio::task::yield_now().await;
        }
        let received = rx.body_bytes.clone();
        match extended_connect::serve(response, stream, received, limits, out, stats).await {
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
        extended_connect::write_unswitched(response, stream, out, &mut timer).await
    } else {
        http2::response_writer::write(stream, response, head_only, out, &mut timer).await
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
            stream.send_reset(ErrorCode::INTERNAL_ERROR);
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
    stream: &'a StreamHandle,
}

impl DownstreamWatch for Http2Watch<'_> {
    fn request_done(&self) -> bool {
        self.rx.done.get()
    }

    fn last_rx(&self) -> Instant {
        self.rx.last_rx.get()
    }

    fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.stream.poll_reset(cx)
    }
}

/// Envoy's `http2.header_count`, `header_list_size` (RFC 9113's size: name,
/// value and 32 bytes per field), and for requests with cookies `cookie_count`
/// and `cookie_size`.
fn record_header_sizes(stats: &http2::Http2CodecStats, parts: &http::request::Parts) {
    let headers = &parts.headers;
    let mut size = 0usize;
    let (mut cookies, mut cookie_bytes) = (0u64, 0usize);
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 32;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::http2::hpack::Encoder;

    /// What an idle HTTP/2 connection holds beside its loop's future and its
    /// buffers: the codec (inside the shared state) and the HPACK decoder and
    /// encoder (their table entries are allocated as they fill). Printed for
    /// the record; the bound catches state that grows by accident.
    #[test]
    fn an_idle_connections_state_is_small() {
        let codec = std::mem::size_of::<ServerConnection>();
        let shared = std::mem::size_of::<ConnShared>();
        let decoder = std::mem::size_of::<Decoder>();
        let encoder = std::mem::size_of::<Encoder>();
        println!("ServerConnection {codec} B, ConnShared {shared} B (with it and the encoder), Decoder {decoder} B");
        assert!(shared + decoder < 1024, "an HTTP/2 connection's state grew to {} bytes", shared + decoder);
        assert!(encoder < shared);
    }

    /// The size of what a function's call returns, without calling it.
    fn size_of_output<A, B, C, F>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open HTTP/2 connection holds its loop's future (boxed, beside the
    /// HTTP/1 one that handed it over), idle or not.
    #[test]
    fn a_connections_future_is_small() {
        let size = size_of_output(serve::<crate::network::transport::TransportStream>);
        println!("HTTP/2 serve future: {size} bytes");
        // 1424 bytes in debug builds, with Envoy's two-GOAWAY drain state.
        assert!(size <= 1424, "the HTTP/2 connection's future grew to {size} bytes");
    }
}
