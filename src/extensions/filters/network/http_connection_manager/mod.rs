//! `envoy.filters.network.http_connection_manager`: the terminal network filter
//! of an HTTP listener. It picks the connection's codec (`codec_type`: HTTP/1,
//! HTTP/2, or AUTO by the HTTP/2 connection preface), lets the codec's
//! connection loop turn bytes into streams, and runs each stream as an
//! `active_stream`, which sees no protocol.
//!
//! - `http1_connection` — requests one after another, pipelining kept
//! - `http2_connection` — multiplexed streams, each its own task
//! - `active_stream` — one request: header rules, route, filters, router

mod active_stream;
pub mod client_cert;
pub mod config;
mod delayed_close;
mod extended_connect;
mod filter_manager;
mod http1_connection;
mod http2_connection;
pub mod local_reply_config;
mod path_normalization;
pub mod rds;
pub mod response_body;
pub mod stats;
mod upgrade;

use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager as HcmProto;
use envoy_types::pb::google::protobuf::Any;
use tokio::time::Instant;

pub use self::active_stream::StreamTimeout;
use self::active_stream::StreamTimers;
use self::config::{CodecChoice, HcmConfig};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::event::Timer;
use crate::extensions::{FactoryContext, NetworkFilterExtension};
use crate::http::body::RequestBody;
use crate::http::http2::CodecIo;
use crate::network::filter::LocalBoxFuture;
use crate::network::read_filter::ClosedByFilter;
use crate::network::ConnectionInfo;
use crate::network::{DownstreamConnection, NetworkFilter, NetworkFilterFactory};
use crate::overload::{self, ScaledTimer};
use response_body::ResponseBody;

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

fn create(any: &Any, path: &FieldPath, ctx: &FactoryContext<'_>) -> Result<NetworkFilter, ConfigError> {
    let proto: HcmProto = decode_any(any, path)?;
    let config = HcmConfig::from_proto(&proto, path, ctx)?;
    Ok(NetworkFilter::Terminal(Arc::new(HttpConnectionManager { config: Arc::new(config) })))
}

impl NetworkFilterFactory for HttpConnectionManager {
    /// Counted as a connection that opened and closed, remotely by Envoy 1.40's
    /// account (compat `network_local_ratelimit`): the manager's own close
    /// handling never ran.
    /// A read filter (local_ratelimit, connection_limit) closed the connection
    /// as it started: a local close, as Envoy's filters close it themselves.
    fn on_refused_connection(&self) {
        let mut lifetime = ConnectionLifetime::new(&self.config.stats);
        lifetime.local_close = true;
    }

    /// The connection's future is the codec's loop itself (no wrapper around
    /// it): an idle HTTP/1 connection holds that future and nothing more.
    fn on_new_connection(&self, conn: DownstreamConnection) -> LocalBoxFuture {
        match self.config.codec {
            CodecChoice::Http2 => Box::pin(serve_http2(self.config.clone(), conn)),
            // TLS negotiated `h2` by ALPN: HTTP/2 from the first byte, as Envoy.
            CodecChoice::Auto if conn.stream.alpn_is(b"h2") => Box::pin(serve_http2(self.config.clone(), conn)),
            CodecChoice::Http1 | CodecChoice::Auto => Box::pin(http1_connection::serve(self.config.clone(), conn)),
        }
    }
}

/// A listener with `codec_type: HTTP2`: the HTTP/2 loop from the first byte.
/// As Envoy creates its codec on the connection's first bytes, once the read
/// filters before the manager passed them, the loop (and its SETTINGS) starts
/// then: a connection they refuse at its start (network RBAC,
/// `connection_limit`) had no codec, as in Envoy 1.40 (compat
/// `network_rbac_http2`): its bytes counted, closed locally, no HTTP/2 stat.
async fn serve_http2(cfg: Arc<HcmConfig>, mut conn: DownstreamConnection) {
    let mut lifetime = ConnectionLifetime::new(&cfg.stats);
    let stats = &cfg.stats;
    let (rx, tx) = (stats.downstream_cx_rx_bytes_total.clone(), stats.downstream_cx_tx_bytes_total.clone());
    let mut first = bytes::BytesMut::with_capacity(16 * 1024);
    let idle_at = cfg.idle_timeout.map(|d| overload::scaled_deadline(ScaledTimer::ConnectionIdle, Instant::now(), d));
    let mut drain = cfg.drain.clone();
    tokio::select! {
        read = tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut first) => match read {
            Ok(0) => return,
            Ok(n) => {
                rx.add(n as u64);
                // The codec is there from the first byte, as Envoy creates it.
                if let Some(report) = &conn.report {
                    report.protocol.set("HTTP/2");
                }
            }
            Err(e) if ClosedByFilter::is(&e) => {
                rx.add(ClosedByFilter::unread_of(&e) as u64);
                lifetime.local_close = true;
                return;
            }
            Err(_) => return,
        },
        () = tokio::time::sleep_until(idle_at.unwrap_or_else(Instant::now)), if idle_at.is_some() => {
            stats.downstream_cx_idle_timeout.inc();
            lifetime.local_close = true;
            return;
        }
        _ = drain.wait_for(|phase| phase.is_draining()) => {
            stats.downstream_cx_drain_close.inc();
            lifetime.local_close = true;
            return;
        }
    }
    let io = CodecIo::new(first, conn.stream, rx, tx);
    lifetime.local_close = http2_connection::serve(&cfg, conn.info, io).await;
}

/// Counts a downstream connection in `http.<prefix>.downstream_cx_*` from its
/// start to its end, exactly once, whichever codec served it and however it
/// ended. The codec-specific stats (`downstream_cx_http1_*`,
/// `downstream_cx_http2_*`) are the codec's, counted once it is known, as Envoy
/// creates its codec on the first bytes.
struct ConnectionLifetime<'a> {
    stats: &'a stats::HcmStats,
    opened: Instant,
    /// Courier closed the connection (not the client).
    local_close: bool,
}

impl ConnectionLifetime<'_> {
    fn new(stats: &stats::HcmStats) -> ConnectionLifetime<'_> {
        stats.downstream_cx_total.inc();
        stats.downstream_cx_active.inc();
        ConnectionLifetime { stats, opened: Instant::now(), local_close: false }
    }
}

impl Drop for ConnectionLifetime<'_> {
    fn drop(&mut self) {
        let stats = self.stats;
        if self.local_close {
            stats.downstream_cx_destroy_local.inc();
        } else {
            stats.downstream_cx_destroy_remote.inc();
        }
        stats.downstream_cx_length_ms.record(self.opened.elapsed().as_millis() as u64);
        stats.downstream_cx_destroy.inc();
        stats.downstream_cx_active.dec();
    }
}

/// What a stream's timers and the connection manager watch of the downstream
/// while the stream runs, whatever the codec.
trait DownstreamWatch {
    /// The request (body and trailers) arrived whole.
    fn request_done(&self) -> bool;
    /// When request bytes last arrived (the stream idle timer).
    fn last_rx(&self) -> Instant;
    /// Ready once the client gave the stream up (HTTP/1: it hung up; HTTP/2:
    /// RST_STREAM or the connection failed).
    fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Runs one stream until its response headers, under the stream's timers:
/// `request_timeout` (until the request is whole), the stream idle timeout (no
/// bytes either way) and `max_stream_duration`, the last two as the route may
/// have changed them. A timer that fires first gets Envoy's 408 or 504 (see
/// `timeout_reply`). `None`: the client gave the stream up first.
#[allow(clippy::too_many_arguments)]
async fn run_stream<W: DownstreamWatch>(
    cfg: &Arc<HcmConfig>,
    info: ConnectionInfo,
    request: http::Request<RequestBody>,
    body_bytes: std::rc::Rc<std::cell::Cell<u64>>,
    watch: &mut W,
    started: Instant,
    timers: &StreamTimers,
    timer: &mut Timer,
) -> Option<http::Response<ResponseBody>> {
    let version = request.version();
    let stream = active_stream::handle(cfg.clone(), info.clone(), request, body_bytes, timers);
    tokio::pin!(stream);
    // Polls the stream; `None` when it is pending and its route changed a timer,
    // so the timer is re-armed before waiting on.
    let mut step = std::future::poll_fn(|cx| match std::future::Future::poll(stream.as_mut(), cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending if timers.take_changed() => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    });
    let request_at = cfg.request_timeout.map(|d| started + d);
    // Scaled by the reduce_timeouts overload action (recomputed when it changes).
    let idle_deadline = |watch: &W| {
        timers.idle().map(|d| overload::scaled_deadline(ScaledTimer::StreamIdle, watch.last_rx().max(started), d))
    };
    loop {
        let done = watch.request_done();
        let idle_at = idle_deadline(watch);
        let max_at = timers.max_duration().map(|d| started + d);
        timer.set([max_at, request_at.filter(|_| !done), idle_at].into_iter().flatten().min());
        tokio::select! {
            biased;
            step = &mut step => match step {
                Some(response) => return Some(response),
                None => continue,
            },
            () = std::future::poll_fn(|cx| watch.poll_client_gone(cx)) => return None,
            () = overload::timers_rescaled(), if idle_at.is_some() => {}
            () = timer.fired() => {
                let now = Instant::now();
                let done = watch.request_done();
                let timeout = if max_at.is_some_and(|t| t <= now) {
                    Some(StreamTimeout::MaxDuration)
                } else if request_at.is_some_and(|t| t <= now) && !done {
                    Some(StreamTimeout::Request)
                } else if idle_deadline(watch).is_some_and(|t| t <= now) {
                    Some(StreamTimeout::Idle)
                } else {
                    None
                };
                if let Some(t) = timeout {
                    return Some(active_stream::timeout_reply(cfg, info, version, t, done));
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

    /// Every open HTTP/1 connection holds its loop's future, idle or not (an
    /// HTTP/2 hand-off is boxed): what a request needs is allocated per request,
    /// not in it (see `http1_connection::exchange`).
    #[test]
    fn a_connection_future_is_small() {
        let size = size_of_output(http1_connection::serve);
        println!("serve future: {size} bytes");
        // 632 bytes in debug builds (624 before the PROXY TLVs a listener kept,
        // 8); 800 before `serve` and `next_head` built their
        // state outside their `async` blocks (an async fn keeps its arguments next
        // to the locals made from them). Before that it grew from 688 with the
        // idle timer's start for reduce_timeouts (32) and its wake-up (16), the
        // idle drain (32), the restored-address flag (16) and the TLS inspector's
        // fingerprints (16).
        assert!(size <= 632, "the per-connection future grew to {size} bytes");
    }
}
