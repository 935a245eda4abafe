//! The HTTP/1 connection loop: requests are read one at a time (pipelined ones
//! wait in the read buffer), each runs as an active stream, and its response is
//! written before the next request is parsed. With `codec_type: AUTO`, a
//! connection whose first bytes are the HTTP/2 preface is handed back to be
//! served as HTTP/2.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::time::Instant;

use super::active_stream::{self, CloseConnection, RepliedAfterUpstream, StreamTimers};
use super::config::{CodecChoice, HcmConfig};
use super::response_body::TunnelEnd;
use super::upgrade::Upgraded;
use super::{ConnectionLifetime, DownstreamWatch};
use crate::event::Timer;
use crate::http::body::RequestBody;
use crate::http::http1::request_head::{self, HeadLimits, RequestHead};
use crate::http::http1::response_writer::{ConnectionHeader, ResponseWriter, WriteError, WriteLimits};
use crate::http::http1::{self, ConnReader};
use crate::http::http2::CodecIo;
use crate::http::local_reply::LocalReply;
use crate::network::read_filter::ClosedByFilter;
use crate::network::{
    ConnectionInfo, ConnectionReport, DownstreamConnection, DrainPhase, DrainWatch, Transport, TransportStream,
};
use crate::overload::{self, OverloadAction, ScaledTimer};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much of a pipelined next request is read ahead while a stream waits.
const MAX_PIPELINED_BYTES: usize = 64 * 1024;

/// How long a connection Courier closes keeps reading (and dropping) what the
/// client still sends, waiting for its FIN (nginx's `lingering_timeout`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves one downstream connection as HTTP/1 until it closes (or turns out to
/// be HTTP/2).
///
/// This future lives as long as the connection, so it holds only what waiting
/// for the next request needs; everything a request needs from its head to its
/// written response is one allocation made per request (`exchange`), which the
/// next request, on this connection or another, reuses. An idle keep-alive
/// connection costs this future, its socket and its write half, nothing more.
///
/// Not itself `async`: an async fn's future keeps its arguments for its whole
/// life besides the locals it moves them into (the `DownstreamConnection` would
/// cost 104 bytes more, the halves and the connection's details another 128).
/// So the connection's state is built here and the `async` block captures it:
/// a captured value lives once in the future and is used in place.
pub(super) fn serve(cfg: Arc<HcmConfig>, conn: DownstreamConnection) -> impl Future<Output = ()> {
    let (rd, wr) = conn.stream.into_split();
    let info = conn.info;
    let report = conn.report;
    let mut reader = ConnReader::new(rd, cfg.stats.downstream_cx_rx_bytes_total.clone());
    reader.keep_trailers = cfg.enable_trailers;
    let reader = Rc::new(RefCell::new(reader));
    let mut writer = ResponseWriter::new(wr, cfg.stats.downstream_cx_tx_bytes_total.clone());
    writer.trailers = cfg.enable_trailers;
    let limits = HeadLimits {
        max_bytes: cfg.max_request_headers_bytes,
        max_headers: cfg.max_headers_count,
        accept_http_10: cfg.accept_http_10,
        allow_custom_methods: cfg.allow_custom_methods,
        allow_chunked_length: cfg.allow_chunked_length,
        allow_absolute_url: cfg.allow_absolute_url,
    };
    let mut drain = cfg.drain.clone();
    // The connection's one timer: idle, request head, stream and write timeouts.
    let mut timer = Timer::new();
    async move {
        let cfg = &cfg;
        let mut lifetime = ConnectionLifetime::new(&cfg.stats);
        let stats = &cfg.stats;
        // When an idle connection that began to drain closes (`next_head`).
        let mut drain_at = None;
        let mut requests: u32 = 0;
        // The codec's stats count from the first byte, as Envoy creates its codec then.
        let mut counted = false;
        // The ends that await (a rejected head's reply, the hand-off to HTTP/2) come
        // after the loop, not in its `match`: an await there would keep the matched
        // value in this future for good.
        let ended = loop {
            let unused = requests == 0;
            let head = match next_head(cfg, &reader, &limits, unused, &mut drain, &mut drain_at, &mut timer).await {
                NextHead::Head(head) => {
                    count_http1(&mut counted, stats, report.as_deref());
                    // Envoy's codec says the version of the request it last read.
                    if let Some(report) = &report {
                        report.protocol.set(active_stream::protocol_name(head.version));
                    }
                    head
                }
                NextHead::Http2 => break Ended::Http2,
                NextHead::Closed => break Ended::Closed { local: false },
                NextHead::ClosedByFilter => break Ended::Closed { local: true },
                NextHead::ClosedMidHead => {
                    count_http1(&mut counted, stats, report.as_deref());
                    // Envoy has begun a stream at the first byte of a head: it is reset.
                    stats.downstream_rq_total.inc();
                    stats.downstream_rq_http1_total.inc();
                    stats.downstream_rq_rx_reset.inc();
                    stats.downstream_cx_destroy_active_rq.inc();
                    stats.downstream_cx_destroy_remote_active_rq.inc();
                    break Ended::Closed { local: false };
                }
                NextHead::Idle => {
                    stats.downstream_cx_idle_timeout.inc();
                    break Ended::Closed { local: true };
                }
                NextHead::IdleDrained => break Ended::Delayed,
                NextHead::Drained => {
                    stats.downstream_cx_drain_close.inc();
                    break Ended::Delayed;
                }
                NextHead::Rejected(reply) => {
                    count_http1(&mut counted, stats, report.as_deref());
                    break Ended::Rejected(Box::new(reply));
                }
            };
            // Envoy counts a request toward `max_requests_per_connection` as its stream
            // begins; the one that reaches the limit is answered with `connection: close`.
            requests = requests.saturating_add(1);
            let last = cfg.max_requests_per_connection.is_some_and(|max| requests >= max);
            if last {
                stats.downstream_cx_max_requests_reached.inc();
            }
            // A request that came while the connection drained after its idle
            // timeout is its last (not counted as a drain close, as in Envoy).
            let last = last || (drain_at.is_some() && !drain.borrow().is_draining());
            // Allocated before the call, so the future is built in place rather than
            // on the stack and then copied (it is several KiB).
            let mut slot = Box::new_uninit();
            slot.write(exchange(cfg, info.clone(), head, last, &reader, &mut writer, &drain, &mut timer));
            // SAFETY: written on the line above.
            let exchange = Box::into_pin(unsafe { slot.assume_init() });
            match exchange.await {
                Exchange::Next => {}
                Exchange::Close { local } => break Ended::Closed { local },
                Exchange::CloseDelayed => break Ended::Delayed,
                Exchange::Upgrade(up) => break Ended::Upgraded(up),
            }
        };
        // Every end but `Delayed` and a rejected head returns here.
        match ended {
            Ended::Closed { local } => {
                if local {
                    lingering_close(&reader, writer, &mut timer).await;
                } else {
                    // The FIN goes when `reader`, the transport's read half, drops at the end.
                    writer.close();
                }
                if counted {
                    stats.downstream_cx_http1_active.dec();
                }
                lifetime.local_close = local;
                return;
            }
            Ended::Delayed => {}
            Ended::Rejected(reply) => {
                let response = active_stream::codec_error(cfg, info, *reply);
                // Envoy counts the overload action on every response it encodes.
                if !cfg.bypass_overload && overload::applies(OverloadAction::DisableHttpKeepalive) {
                    stats.downstream_cx_overload_disable_keepalive.inc();
                }
                // Boxed as `exchange` is: writing a response is a large future.
                let _ = Box::pin(writer.write(
                    response,
                    false,
                    ConnectionHeader::Close,
                    WriteLimits::default(),
                    &mut timer,
                ))
                .await;
            }
            // The reader is the connection's alone again (the upgrade request had no
            // body); with its buffered bytes and the writer it is the tunnel's end.
            Ended::Upgraded(up) => {
                lifetime.local_close = true;
                // Something still holds the reader (it cannot, the request had no
                // body): the stream ends unrelayed.
                let unrelayed = |up: Upgraded| {
                    stats.downstream_rq_active.dec();
                    up.completion.finish(0, None, false);
                };
                let Ok(reader) = Rc::try_unwrap(reader) else { return unrelayed(*up) };
                let (rd, buf) = reader.into_inner().into_parts();
                let Some(stream) = TransportStream::reunite(rd, writer.into_inner()) else { return unrelayed(*up) };
                let up = *up;
                let idle = cfg.stream_idle_timeout;
                let end = Box::pin(super::upgrade::tunnel(stream, buf, up, idle, stats)).await;
                // As Envoy's: a client that ends the tunnel closes with its stream active.
                let client_first = end == TunnelEnd::Client;
                lifetime.local_close = !client_first;
                if client_first {
                    stats.downstream_cx_destroy_active_rq.inc();
                    stats.downstream_cx_destroy_remote_active_rq.inc();
                }
                if counted {
                    stats.downstream_cx_http1_active.dec();
                }
                return;
            }
            // `codec_type: AUTO` saw the HTTP/2 preface: the connection, with the bytes
            // read so far in front, goes to the HTTP/2 codec (boxed: its loop is large,
            // and most connections are HTTP/1). Nothing holds the reader between
            // requests; were it held, the connection would just close.
            Ended::Http2 => match Rc::try_unwrap(reader) {
                Err(_) => {
                    writer.close();
                    lifetime.local_close = true;
                    return;
                }
                Ok(reader) => {
                    // The HTTP/2 loop has timers of its own: this one's entry goes.
                    drop(std::mem::take(&mut timer));
                    let (rd, buf) = reader.into_inner().into_parts();
                    let Some(stream) = TransportStream::reunite(rd, writer.into_inner()) else {
                        lifetime.local_close = true;
                        return;
                    };
                    let (rx, tx) =
                        (stats.downstream_cx_rx_bytes_total.clone(), stats.downstream_cx_tx_bytes_total.clone());
                    let io = CodecIo::new(buf, stream, rx, tx);
                    if let Some(report) = &report {
                        report.protocol.set("HTTP/2");
                    }
                    lifetime.local_close = Box::pin(super::http2_connection::serve(cfg, info, io)).await;
                    return;
                }
            },
        };
        // Boxed: this rare end's timer would otherwise stay in every connection's future.
        lifetime.local_close = Box::pin(delayed_close(cfg, &reader, writer, &mut timer)).await;
        if counted {
            stats.downstream_cx_http1_active.dec();
        }
    }
}

/// Envoy's delayed close (see `delayed_close`): the reply is out; the client
/// has `delayed_close_timeout` to close first. False when it did (the
/// connection closed remotely, as Envoy counts it). With the timeout at 0, the
/// connection closes at once.
async fn delayed_close(
    cfg: &HcmConfig,
    reader: &Rc<RefCell<ConnReader>>,
    writer: ResponseWriter,
    timer: &mut Timer,
) -> bool {
    use tokio::io::AsyncWriteExt;
    let Some(timeout) = cfg.delayed_close_timeout else {
        lingering_close(reader, writer, timer).await;
        return true;
    };
    let discard = |cx: &mut Context<'_>| reader.borrow_mut().poll_discard(cx);
    if super::delayed_close::wait_for_client_close(discard, timeout, &cfg.stats).await {
        return false;
    }
    let _ = writer.into_inner().shutdown().await;
    true
}

/// Closes a connection Courier ends without resetting it. Closing a socket
/// with unread bytes makes the kernel send a reset, which can destroy the
/// response the client has not read yet (and a request it sent as the close
/// began, whose answer would be a clean EOF, turns into an error). So the FIN
/// goes first and what the client still sends is read and dropped until its own
/// FIN, or for `LINGER` at most.
async fn lingering_close(reader: &Rc<RefCell<ConnReader>>, writer: ResponseWriter, timer: &mut Timer) {
    use tokio::io::AsyncWriteExt;
    let mut io = writer.into_inner();
    if io.shutdown().await.is_err() {
        return;
    }
    timer.set(Some(Instant::now() + LINGER));
    loop {
        let read = std::future::poll_fn(|cx| reader.borrow_mut().poll_discard(cx));
        tokio::select! {
            biased;
            read = read => match read {
                Ok(n) if n > 0 => {}
                _ => return,
            },
            () = timer.fired() => return,
        }
    }
}

/// Counts the connection as HTTP/1 once its first bytes made the codec's choice.
/// The codec is there from the first byte: its stats count, and the
/// connection's protocol is HTTP/1.1 (the listener's `%PROTOCOL%`, as the
/// codec Envoy creates then says, whatever version requests then name).
fn count_http1(counted: &mut bool, stats: &super::stats::HcmStats, report: Option<&ConnectionReport>) {
    if !std::mem::replace(counted, true) {
        stats.downstream_cx_http1_total.inc();
        stats.downstream_cx_http1_active.inc();
        if let Some(report) = report {
            report.protocol.set("HTTP/1.1");
        }
    }
}

/// How the HTTP/1 loop ended.
enum Ended {
    /// The connection closes; `local` when Courier closes it (not the client),
    /// at once (Envoy's `FlushWrite`).
    Closed { local: bool },
    /// Courier closes the connection after `delayed_close_timeout` unless the
    /// client closes first (Envoy's `FlushWriteAndDelay`).
    Delayed,
    /// A malformed, too large or too slow head: answered, then closed. Boxed (on
    /// this rare path): unboxed, it would stay in the connection's future.
    Rejected(Box<LocalReply>),
    /// `codec_type: AUTO` saw the HTTP/2 preface.
    Http2,
    /// An upgrade's 101 was written: the connection is relayed to the upstream.
    Upgraded(Box<Upgraded>),
}

/// How a request/response exchange left the connection.
enum Exchange {
    /// Ready for the next request.
    Next,
    /// The connection ends; `local` when Courier closes it (not the client).
    Close { local: bool },
    /// Courier ends the connection after a reply that came before the request's
    /// end: it waits for the client to close first (`Ended::Delayed`).
    CloseDelayed,
    /// The upstream switched protocols: the connection becomes a tunnel to it.
    Upgrade(Box<Upgraded>),
}

/// Runs one request whose head was read: its stream, then its response.
/// `last`: the connection closes after this response.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    cfg: &Arc<HcmConfig>,
    info: ConnectionInfo,
    head: RequestHead,
    last: bool,
    reader: &Rc<RefCell<ConnReader>>,
    writer: &mut ResponseWriter,
    drain: &DrainWatch,
    timer: &mut Timer,
) -> Exchange {
    let stats = &cfg.stats;
    if head.expect_continue {
        if writer.write_continue().await.is_err() {
            return Exchange::Close { local: false };
        }
        stats.downstream_rq_1xx.inc();
    }
    reader.borrow_mut().start_body(head.framing);
    let head_only = head.method == http::Method::HEAD;
    // A CONNECT that is not tunnelled leaves the connection in no defined
    // state: Envoy closes it after the reply.
    let keep_alive = head.keep_alive && head.method != http::Method::CONNECT && !last;
    let http10 = head.version == http::Version::HTTP_10;
    let request = build_request(head, reader);
    stats.downstream_rq_active.inc();
    let started = Instant::now();
    let timers = StreamTimers::new(cfg.stream_idle_timeout, cfg.max_stream_duration);
    let body_bytes = reader.borrow().body_bytes.clone();
    let mut watch = Http1Watch { reader };
    let remote = info.remote;
    let response = super::run_stream(cfg, info, request, body_bytes, &mut watch, started, &timers, timer).await;
    // A client gone mid-body gets no response: the stream is reset, as Envoy does.
    let response = response.and_then(|r| {
        if reader.borrow().client_gone {
            r.into_body().downstream_reset();
            None
        } else {
            Some(r)
        }
    });
    let Some(mut response) = response else {
        // The client went away before its response: the stream (and its
        // upstream request) is dropped, as Envoy resets it.
        stats.downstream_rq_active.dec();
        stats.downstream_rq_rx_reset.inc();
        stats.downstream_cx_destroy_active_rq.inc();
        stats.downstream_cx_destroy_remote_active_rq.inc();
        return Exchange::Close { local: false };
    };
    // The upstream's 101 to an allowed upgrade: the head goes out, then the
    // connection is the upstream's tunnel.
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        if let Some((upstream, completion)) = response.body_mut().take_upgraded() {
            let limits = WriteLimits::default();
            let written = writer.write(response, false, ConnectionHeader::Upgrade, limits, timer).await;
            let body_bytes = reader.borrow().body_bytes.clone();
            let upgraded = Upgraded { upstream, completion, body_bytes };
            // The stream stays active for the tunnel's life (`upgrade::tunnel`).
            return match written {
                Ok(_) => Exchange::Upgrade(Box::new(upgraded)),
                Err(_) => {
                    stats.downstream_rq_active.dec();
                    upgraded.completion.finish(0, None, false);
                    Exchange::Close { local: true }
                }
            };
        }
    }
    // A failed server health check drains connections too, as in Envoy.
    let draining = drain.borrow().is_draining() || cfg.health_check_failed.load(std::sync::atomic::Ordering::Relaxed);
    if draining && keep_alive {
        stats.downstream_cx_drain_close.inc();
    }
    // The disable_http_keepalive overload action closes the connection after
    // this response (counted, as Envoy's, even where it would close anyway).
    let overloaded = !draining && !cfg.bypass_overload && overload::applies(OverloadAction::DisableHttpKeepalive);
    if overloaded {
        stats.downstream_cx_overload_disable_keepalive.inc();
    }
    // A request body the stream did not read (a local reply) closes the
    // connection, as in Envoy.
    let unread_body = !reader.borrow().body_done();
    let close = !keep_alive
        || draining
        || overloaded
        || unread_body
        || response.extensions().get::<CloseConnection>().is_some();
    let write_limits = WriteLimits { idle: timers.idle(), deadline: timers.max_duration().map(|d| started + d) };
    let connection = match (close, http10) {
        (true, _) => ConnectionHeader::Close,
        (false, true) => ConnectionHeader::KeepAlive,
        (false, false) => ConnectionHeader::None,
    };
    // The status line's version follows the request's, as in Envoy.
    *response.version_mut() = if http10 { http::Version::HTTP_10 } else { http::Version::HTTP_11 };
    // Made as the head was decoded (not after the request went upstream).
    let early_reply = response.body().is_local() && response.extensions().get::<RepliedAfterUpstream>().is_none();
    let written = writer.write(response, head_only, connection, write_limits, timer).await;
    stats.downstream_rq_active.dec();
    match written {
        // Envoy closes at once after the response to a request it had whole
        // (`connection: close`, the last of `max_requests_per_connection`, a
        // drain), and waits for the client first after a reply that came before
        // the request's end: a local reply made as the head arrived (a direct
        // response, no route or cluster), or a response while the body still
        // came. The router's reply to a failed upstream request is as an
        // upstream's response (checked against Envoy 1.40).
        Ok(_) if close && !early_reply && reader.borrow().body_done() => return Exchange::Close { local: true },
        Ok(_) if close => return Exchange::CloseDelayed,
        Ok(_) => {}
        Err(e) => {
            match e {
                WriteError::Timeout => stats.downstream_rq_idle_timeout.inc(),
                WriteError::Body => stats.rq_reset_after_downstream_response_started.inc(),
                WriteError::Io(_) => stats.downstream_rq_tx_reset.inc(),
            }
            tracing::debug!(remote = %remote, "response not written whole: {e:?}");
            return Exchange::Close { local: true };
        }
    }
    // A body the stream did not read must be skipped before the next request.
    if reader.borrow_mut().discard_buffered_body() {
        Exchange::Next
    } else {
        Exchange::Close { local: true }
    }
}

/// What waiting for the next request produced.
enum NextHead {
    Head(RequestHead),
    /// The client closed (or the socket failed) between requests.
    Closed,
    /// A read filter before the connection manager closed the connection.
    ClosedByFilter,
    /// The client closed in the middle of a request head.
    ClosedMidHead,
    /// `idle_timeout` passed with no request, before the codec knew its protocol.
    Idle,
    /// The connection drained after `idle_timeout` and stayed idle.
    IdleDrained,
    /// The connection drained as its listener or the server does, and stayed idle.
    Drained,
    /// The head is malformed, too large, or too slow: answer and close.
    Rejected(LocalReply),
    /// The first bytes are the HTTP/2 preface (only looked for with AUTO).
    Http2,
}

/// Reads until a whole request head is buffered. The connection's idle timeout
/// runs until the first byte; `request_headers_timeout` from the first byte.
///
/// An idle connection does not close the moment it times out or its listener
/// drains: as in Envoy's drain sequence it stays open for `drain_timeout`
/// (`drain_at`, kept by the connection), since its client may be writing a
/// request right now; that request is answered with `connection: close`.
///
/// A connection that never received a byte (`unused`: no request yet) is
/// the exception: Envoy has no codec for it yet, so at `idle_timeout` it
/// closes at once, neither draining nor waiting for the client to close
/// (checked against Envoy 1.40, `codec_type` HTTP1 and AUTO). With AUTO, only
/// such a connection may turn out to be HTTP/2.
///
/// Not itself `async`, for the reason `serve` gives: its future is part of every
/// idle connection's.
#[allow(clippy::manual_async_fn)]
fn next_head<'a>(
    cfg: &'a HcmConfig,
    reader: &'a Rc<RefCell<ConnReader>>,
    limits: &'a HeadLimits,
    unused: bool,
    drain: &'a mut DrainWatch,
    drain_at: &'a mut Option<Instant>,
    timer: &'a mut Timer,
) -> impl Future<Output = NextHead> + 'a {
    async move {
        // From the first byte: request_headers_timeout, and request_timeout (Envoy's
        // stream, and so its request timer, starts with the first byte of the head).
        let mut header_deadline = None;
        let mut request_deadline = None;
        let idle_start = Instant::now();
        let detect_http2 = unused && cfg.codec == CodecChoice::Auto;
        let mut preface;
        loop {
            {
                let mut r = reader.borrow_mut();
                // A strict prefix of the preface waits for more bytes (it could parse
                // as an HTTP/1 head, `PRI * HTTP/2.0`, before it is whole).
                preface = detect_http2 && {
                    let n = r.buf.len().min(HTTP2_PREFACE.len());
                    n > 0 && r.buf[..n] == HTTP2_PREFACE[..n]
                };
                if preface && r.buf.len() >= HTTP2_PREFACE.len() {
                    return NextHead::Http2;
                }
                if !r.buf.is_empty() && !preface {
                    match request_head::parse(&mut r.buf, limits) {
                        Ok(Some(head)) => return NextHead::Head(head),
                        Ok(None) => {}
                        Err(e) => {
                            cfg.stats.downstream_cx_protocol_error.inc();
                            return NextHead::Rejected(LocalReply::from_codec_error(e));
                        }
                    }
                    if header_deadline.is_none() && request_deadline.is_none() {
                        header_deadline = cfg.request_headers_timeout.map(|d| Instant::now() + d);
                        request_deadline = cfg.request_timeout.map(|d| Instant::now() + d);
                    }
                }
            }
            // The drain time bounds drain_timeout.
            if *drain.borrow() == DrainPhase::CloseIdle && reader.borrow().buf.is_empty() {
                return NextHead::Drained;
            }
            if drain_at.is_none() && drain.borrow().is_draining() {
                *drain_at = Some(Instant::now() + cfg.drain_timeout);
            }
            // Until the codec is known, the connection is idle (as Envoy's, whose
            // codec does not exist yet).
            let deadline = if reader.borrow().buf.is_empty() || preface {
                // Scaled by the reduce_timeouts overload action (recomputed when it changes).
                let idle =
                    || cfg.idle_timeout.map(|d| overload::scaled_deadline(ScaledTimer::ConnectionIdle, idle_start, d));
                drain_at.or_else(idle)
            } else {
                [header_deadline, request_deadline].into_iter().flatten().min()
            };
            timer.set(deadline);
            let fill = std::future::poll_fn(|cx| reader.borrow_mut().poll_next_request(cx));
            tokio::select! {
                biased;
                read = fill => match read {
                    Err(e) if ClosedByFilter::is(&e) => return NextHead::ClosedByFilter,
                    Ok(0) | Err(_) if reader.borrow().buf.is_empty() => return NextHead::Closed,
                    Ok(0) | Err(_) => return NextHead::ClosedMidHead,
                    Ok(_) => {}
                },
                changed = drain.changed(), if *drain.borrow() != DrainPhase::CloseIdle => {
                    if changed.is_err() {
                        // The server is gone; stop waiting on it.
                        return NextHead::Drained;
                    }
                }
                () = overload::timers_rescaled(), if cfg.idle_timeout.is_some() => {}
                () = timer.fired() => {
                    if preface {
                        return NextHead::Idle;
                    }
                    if reader.borrow().buf.is_empty() {
                        match *drain_at {
                            None if unused => return NextHead::Idle,
                            None => {
                                cfg.stats.downstream_cx_idle_timeout.inc();
                                *drain_at = Some(Instant::now() + cfg.drain_timeout);
                            }
                            Some(at) if at <= Instant::now() && drain.borrow().is_draining() => return NextHead::Drained,
                            Some(at) if at <= Instant::now() => return NextHead::IdleDrained,
                            Some(_) => {}
                        }
                        continue;
                    }
                    if header_deadline.is_some_and(|t| t <= Instant::now()) {
                        cfg.stats.downstream_rq_header_timeout.inc();
                        return NextHead::Rejected(LocalReply::new(
                            http::StatusCode::REQUEST_TIMEOUT,
                            "request header timeout",
                            "request_header_timeout",
                        ));
                    }
                    cfg.stats.downstream_rq_timeout.inc();
                    return NextHead::Rejected(LocalReply::new(
                        http::StatusCode::REQUEST_TIMEOUT,
                        "request timeout",
                        "request_overall_timeout",
                    ));
                }
            }
        }
    }
}

fn build_request(head: RequestHead, reader: &Rc<RefCell<ConnReader>>) -> http::Request<RequestBody> {
    let mut request = http::Request::new(RequestBody::Http1(http1::RequestBody::new(reader.clone())));
    *request.method_mut() = head.method;
    *request.uri_mut() = head.uri;
    *request.version_mut() = head.version;
    *request.headers_mut() = head.headers;
    if head.fragment {
        request.extensions_mut().insert(active_stream::PathFragment);
    }
    if let Some(target) = head.target_as_sent {
        request.extensions_mut().insert(active_stream::TargetAsSent(target));
    }
    request
}

/// What a stream watches of an HTTP/1 connection while it runs.
struct Http1Watch<'a> {
    reader: &'a Rc<RefCell<ConnReader>>,
}

impl DownstreamWatch for Http1Watch<'_> {
    fn request_done(&self) -> bool {
        self.reader.borrow().body_done()
    }

    fn last_rx(&self) -> Instant {
        self.reader.borrow().last_rx
    }

    /// Once the request is read whole, the socket is watched for the client
    /// hanging up (bytes that arrive are a pipelined request: kept, bounded).
    fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut r = self.reader.borrow_mut();
        while r.body_done() && r.buf.len() < MAX_PIPELINED_BYTES {
            match ready!(r.poll_fill(cx)) {
                Ok(n) if n > 0 => continue,
                _ => return Poll::Ready(()),
            }
        }
        Poll::Pending
    }
}
