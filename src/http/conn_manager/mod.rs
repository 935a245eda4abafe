//! `envoy.filters.network.http_connection_manager`: the terminal network filter
//! that speaks HTTP/1.1 to the downstream (hyper's server connection as the
//! codec) and runs each request as an `active_stream`.

mod active_stream;
pub mod config;
mod path_normalization;
pub mod stats;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager as HcmProto;
use envoy_types::pb::google::protobuf::Any;
use tokio::time::Instant;

use self::active_stream::CloseConnection;
pub use self::active_stream::StreamTimeout;
use self::active_stream::StreamTimers;
use self::config::HcmConfig;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::event::Timer;
use crate::extensions::{FactoryContext, NetworkFilterExtension};
use crate::http::body::ResponseBody;
use crate::http::filter::LocalReply;
use crate::http::http1::request_head::{self, HeadLimits, RequestHead};
use crate::http::http1::response_writer::{ConnectionHeader, ResponseWriter, WriteError, WriteLimits};
use crate::http::http1::{ConnReader, RequestBody};
use crate::network::filter::LocalBoxFuture;
use crate::network::ConnectionInfo;
use crate::network::{DownstreamConnection, NetworkFilterFactory};

pub const EXTENSION: NetworkFilterExtension = NetworkFilterExtension {
    name: "envoy.filters.network.http_connection_manager",
    config_type: "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    create,
};

/// The filter factory: the config shared by every worker.
#[derive(Debug)]
pub struct HttpConnectionManager {
    config: Arc<HcmConfig>,
}

fn create(any: &Any, path: &FieldPath, ctx: &FactoryContext<'_>) -> Result<Arc<dyn NetworkFilterFactory>, ConfigError> {
    let proto: HcmProto = decode_any(any, path)?;
    let config = HcmConfig::from_proto(&proto, path, ctx)?;
    Ok(Arc::new(HttpConnectionManager { config: Arc::new(config) }))
}

impl NetworkFilterFactory for HttpConnectionManager {
    fn on_new_connection(&self, conn: DownstreamConnection) -> LocalBoxFuture {
        Box::pin(serve(self.config.clone(), conn))
    }
}

/// How much of a pipelined next request is read ahead while a stream waits.
const MAX_PIPELINED_BYTES: usize = 64 * 1024;

/// Serves one downstream connection until it closes: requests are read one at
/// a time (pipelined ones wait in the read buffer), each runs as an active
/// stream, and its response is written before the next request is parsed.
///
/// This future lives as long as the connection, so it holds only what waiting
/// for the next request needs; everything a request needs from its head to its
/// written response is one allocation made per request (`exchange`), which the
/// next request, on this connection or another, reuses. An idle keep-alive
/// connection costs this future, its socket and its write half, nothing more.
async fn serve(cfg: Arc<HcmConfig>, conn: DownstreamConnection) {
    let stats = &cfg.stats;
    stats.downstream_cx_total.inc();
    stats.downstream_cx_http1_total.inc();
    stats.downstream_cx_active.inc();
    stats.downstream_cx_http1_active.inc();
    let opened = Instant::now();
    let info = conn.info;
    let (rd, wr) = conn.stream.into_split();
    let reader = Rc::new(RefCell::new(ConnReader::new(rd, stats.downstream_cx_rx_bytes_total.clone())));
    let mut writer = ResponseWriter::new(wr, stats.downstream_cx_tx_bytes_total.clone());
    let limits = HeadLimits {
        max_bytes: cfg.max_request_headers_bytes,
        max_headers: cfg.max_headers_count,
        accept_http_10: cfg.accept_http_10,
    };
    let mut drain = cfg.drain.clone();
    // The connection's one timer: idle, request head, stream and write timeouts.
    let mut timer = Timer::new();
    let mut requests: u32 = 0;
    // A malformed head is answered after the loop, not in its `match`: an await
    // there would keep the matched value in this future for good.
    let (local_close, rejected) = loop {
        let head = match next_head(&cfg, &reader, &limits, &mut drain, &mut timer).await {
            NextHead::Head(head) => head,
            NextHead::Closed => break (false, None),
            NextHead::ClosedMidHead => {
                // Envoy has begun a stream at the first byte of a head: it is reset.
                stats.downstream_rq_total.inc();
                stats.downstream_rq_http1_total.inc();
                stats.downstream_rq_rx_reset.inc();
                stats.downstream_cx_destroy_active_rq.inc();
                stats.downstream_cx_destroy_remote_active_rq.inc();
                break (false, None);
            }
            NextHead::Idle => {
                stats.downstream_cx_idle_timeout.inc();
                break (true, None);
            }
            NextHead::Drained => {
                stats.downstream_cx_drain_close.inc();
                break (true, None);
            }
            NextHead::Rejected(reply) => break (true, Some(reply)),
        };
        // Allocated before the call, so the future is built in place rather than
        // on the stack and then copied (it is several KiB).
        // Envoy counts a request toward `max_requests_per_connection` as its stream
        // begins; the one that reaches the limit is answered with `connection: close`.
        requests = requests.saturating_add(1);
        let last = cfg.max_requests_per_connection.is_some_and(|max| requests >= max);
        if last {
            stats.downstream_cx_max_requests_reached.inc();
        }
        let mut slot = Box::new_uninit();
        slot.write(exchange(&cfg, info, head, last, &reader, &mut writer, &drain, &mut timer));
        // SAFETY: written on the line above.
        let exchange = Box::into_pin(unsafe { slot.assume_init() });
        match exchange.await {
            Exchange::Next => {}
            Exchange::Close { local } => break (local, None),
        }
    };
    if let Some(reply) = rejected {
        let response = active_stream::codec_error(&cfg, info, reply);
        // Boxed as `exchange` is: writing a response is a large future.
        let _ =
            Box::pin(writer.write(response, false, ConnectionHeader::Close, WriteLimits::default(), &mut timer)).await;
    }
    // The FIN goes when `reader`, the socket's read half, drops at the end.
    writer.close();
    if local_close {
        stats.downstream_cx_destroy_local.inc();
    } else {
        stats.downstream_cx_destroy_remote.inc();
    }
    stats.downstream_cx_length_ms.record(opened.elapsed().as_millis() as u64);
    stats.downstream_cx_destroy.inc();
    stats.downstream_cx_active.dec();
    stats.downstream_cx_http1_active.dec();
}

/// How a request/response exchange left the connection.
enum Exchange {
    /// Ready for the next request.
    Next,
    /// The connection ends; `local` when Courier closes it (not the client).
    Close { local: bool },
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
    drain: &tokio::sync::watch::Receiver<bool>,
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
    let response = run_stream(cfg, info, request, reader, started, &timers, timer).await;
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
    // A failed server health check drains connections too, as in Envoy.
    let draining = *drain.borrow() || cfg.health_check_failed.load(std::sync::atomic::Ordering::Relaxed);
    if draining && keep_alive {
        stats.downstream_cx_drain_close.inc();
    }
    // A request body the stream did not read (a local reply) closes the
    // connection, as in Envoy.
    let unread_body = !reader.borrow().body_done();
    let close = !keep_alive || draining || unread_body || response.extensions().get::<CloseConnection>().is_some();
    let write_limits = WriteLimits { idle: timers.idle(), deadline: timers.max_duration().map(|d| started + d) };
    let connection = match (close, http10) {
        (true, _) => ConnectionHeader::Close,
        (false, true) => ConnectionHeader::KeepAlive,
        (false, false) => ConnectionHeader::None,
    };
    // The status line's version follows the request's, as in Envoy.
    *response.version_mut() = if http10 { http::Version::HTTP_10 } else { http::Version::HTTP_11 };
    let written = writer.write(response, head_only, connection, write_limits, timer).await;
    stats.downstream_rq_active.dec();
    match written {
        Ok(_) if close => return Exchange::Close { local: true },
        Ok(_) => {}
        Err(e) => {
            match e {
                WriteError::Timeout => stats.downstream_rq_idle_timeout.inc(),
                WriteError::Body => stats.rq_reset_after_downstream_response_started.inc(),
                WriteError::Io(_) => stats.downstream_rq_tx_reset.inc(),
            }
            tracing::debug!(remote = %info.remote, "response not written whole: {e:?}");
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
    /// The client closed in the middle of a request head.
    ClosedMidHead,
    /// `idle_timeout` passed with no request.
    Idle,
    /// The server is draining.
    Drained,
    /// The head is malformed, too large, or too slow: answer and close.
    Rejected(LocalReply),
}

/// Reads until a whole request head is buffered. The connection's idle timeout
/// runs until the first byte; `request_headers_timeout` from the first byte.
async fn next_head(
    cfg: &HcmConfig,
    reader: &Rc<RefCell<ConnReader>>,
    limits: &HeadLimits,
    drain: &mut tokio::sync::watch::Receiver<bool>,
    timer: &mut Timer,
) -> NextHead {
    // From the first byte: request_headers_timeout, and request_timeout (Envoy's
    // stream, and so its request timer, starts with the first byte of the head).
    let mut header_deadline = None;
    let mut request_deadline = None;
    let idle_deadline = cfg.idle_timeout.map(|d| Instant::now() + d);
    loop {
        {
            let mut r = reader.borrow_mut();
            if !r.buf.is_empty() {
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
        if *drain.borrow() && reader.borrow().buf.is_empty() {
            return NextHead::Drained;
        }
        let deadline = if reader.borrow().buf.is_empty() {
            idle_deadline
        } else {
            [header_deadline, request_deadline].into_iter().flatten().min()
        };
        timer.set(deadline);
        let fill = std::future::poll_fn(|cx| reader.borrow_mut().poll_next_request(cx));
        tokio::select! {
            biased;
            read = fill => match read {
                Ok(0) | Err(_) if reader.borrow().buf.is_empty() => return NextHead::Closed,
                Ok(0) | Err(_) => return NextHead::ClosedMidHead,
                Ok(_) => {}
            },
            changed = drain.changed(), if !*drain.borrow() => {
                if changed.is_err() {
                    // The server is gone; stop waiting on it.
                    return NextHead::Drained;
                }
            }
            () = timer.fired() => {
                if reader.borrow().buf.is_empty() {
                    return NextHead::Idle;
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

fn build_request(head: RequestHead, reader: &Rc<RefCell<ConnReader>>) -> http::Request<RequestBody> {
    let mut request = http::Request::new(RequestBody::new(reader.clone()));
    *request.method_mut() = head.method;
    *request.uri_mut() = head.uri;
    *request.version_mut() = head.version;
    *request.headers_mut() = head.headers;
    if head.fragment {
        request.extensions_mut().insert(active_stream::PathFragment);
    }
    request
}

/// Runs one stream until its response headers, under the stream's timers:
/// `request_timeout` (until the request is whole), the stream idle timeout (no
/// bytes either way) and `max_stream_duration`, the last two as the route may
/// have changed them. A timer that fires first gets Envoy's 408 or 504 (see
/// `timeout_reply`).
async fn run_stream(
    cfg: &Arc<HcmConfig>,
    info: ConnectionInfo,
    request: http::Request<RequestBody>,
    reader: &Rc<RefCell<ConnReader>>,
    started: Instant,
    timers: &StreamTimers,
    timer: &mut Timer,
) -> Option<http::Response<ResponseBody>> {
    let body_bytes = reader.borrow().body_bytes.clone();
    let stream = active_stream::handle(cfg.clone(), info, request, body_bytes, timers);
    tokio::pin!(stream);
    // Polls the stream; `None` when it is pending and its route changed a timer,
    // so the timer is re-armed before waiting on.
    let mut step = std::future::poll_fn(|cx| match std::future::Future::poll(stream.as_mut(), cx) {
        std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
        std::task::Poll::Pending if timers.take_changed() => std::task::Poll::Ready(None),
        std::task::Poll::Pending => std::task::Poll::Pending,
    });
    let request_at = cfg.request_timeout.map(|d| started + d);
    loop {
        let body_done = reader.borrow().body_done();
        // Once the request is read whole, the socket is watched for the client
        // hanging up (bytes that arrive are a pipelined request: kept, bounded).
        let watch_client = body_done && reader.borrow().buf.len() < MAX_PIPELINED_BYTES;
        let idle_at = timers.idle().map(|d| reader.borrow().last_rx.max(started) + d);
        let max_at = timers.max_duration().map(|d| started + d);
        timer.set([max_at, request_at.filter(|_| !body_done), idle_at].into_iter().flatten().min());
        tokio::select! {
            biased;
            step = &mut step => match step {
                Some(response) => return Some(response),
                None => continue,
            },
            read = std::future::poll_fn(|cx| reader.borrow_mut().poll_fill(cx)), if watch_client => {
                if !matches!(read, Ok(n) if n > 0) {
                    return None;
                }
            }
            () = timer.fired() => {
                let now = Instant::now();
                let timeout = if max_at.is_some_and(|t| t <= now) {
                    Some(StreamTimeout::MaxDuration)
                } else if request_at.is_some_and(|t| t <= now) && !reader.borrow().body_done() {
                    Some(StreamTimeout::Request)
                } else if timers.idle().is_some_and(|d| reader.borrow().last_rx.max(started) + d <= now) {
                    Some(StreamTimeout::Idle)
                } else {
                    None
                };
                if let Some(t) = timeout {
                    return Some(active_stream::timeout_reply(cfg, info, t, reader.borrow().body_done()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what a function's call returns, without calling it.
    fn size_of_output<A, B, F>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open connection holds its `serve` future, idle or not: what a request
    /// needs is allocated per request, not in it (see `exchange`).
    #[test]
    fn a_connection_future_is_small() {
        let size = size_of_output(serve);
        println!("serve future: {size} bytes");
        assert!(size <= 1280, "the per-connection future grew to {size} bytes");
    }
}
