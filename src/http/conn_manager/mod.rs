//! `envoy.filters.network.http_connection_manager`: the terminal network filter
//! that speaks HTTP/1.1 to the downstream (hyper's server connection as the
//! codec) and runs each request as an `active_stream`.

mod active_stream;
pub mod config;
mod io;
pub mod stats;

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager as HcmProto;
use envoy_types::pb::google::protobuf::Any;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::time::Instant;

use self::config::HcmConfig;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::extensions::{FactoryContext, NetworkFilterExtension};
use crate::network::filter::LocalBoxFuture;
use crate::network::{DownstreamConnection, NetworkFilterFactory};

pub const EXTENSION: NetworkFilterExtension = NetworkFilterExtension {
    name: "envoy.filters.network.http_connection_manager",
    config_type: "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    create,
};

/// Smallest read buffer hyper accepts.
const MIN_BUF: usize = 8192;

/// The filter factory: the config shared by every worker.
#[derive(Debug)]
pub struct HttpConnectionManager {
    config: Arc<HcmConfig>,
}

fn create(any: &Any, path: &FieldPath, ctx: &FactoryContext<'_>) -> Result<Arc<dyn NetworkFilterFactory>, ConfigError> {
    let proto: HcmProto = decode_any(any, path)?;
    let config = HcmConfig::from_proto(&proto, path, ctx.store, ctx.clusters, ctx.health_check_failed, ctx.drain)?;
    Ok(Arc::new(HttpConnectionManager { config: Arc::new(config) }))
}

impl NetworkFilterFactory for HttpConnectionManager {
    fn on_new_connection(&self, conn: DownstreamConnection) -> LocalBoxFuture {
        Box::pin(serve(self.config.clone(), conn))
    }
}

/// Serves one downstream connection until it closes.
async fn serve(cfg: Arc<HcmConfig>, conn: DownstreamConnection) {
    let stats = &cfg.stats;
    stats.downstream_cx_total.inc();
    stats.downstream_cx_http1_total.inc();
    stats.downstream_cx_active.inc();
    stats.downstream_cx_http1_active.inc();
    let info = conn.info;
    // Streams in flight and when the last one ended, for the idle timeout.
    let activity = Rc::new(Activity { active: Cell::new(0), last: Cell::new(Instant::now()) });
    let service = {
        let (cfg, activity) = (cfg.clone(), activity.clone());
        hyper::service::service_fn(move |req| {
            let (cfg, activity) = (cfg.clone(), activity.clone());
            activity.begin();
            async move {
                let response = active_stream::handle(cfg, info, req).await;
                activity.end();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let io = io::CountingIo::new(
        conn.stream,
        stats.downstream_cx_rx_bytes_total.clone(),
        stats.downstream_cx_tx_bytes_total.clone(),
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_headers(cfg.max_headers_count)
        .max_buf_size(cfg.max_request_headers_bytes.max(MIN_BUF))
        .header_read_timeout(cfg.request_headers_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut drain = cfg.drain.clone();
    // Far enough to never fire when the idle timeout is disabled.
    let idle = cfg.idle_timeout.unwrap_or(std::time::Duration::from_secs(86_400 * 365));
    let result = loop {
        if *drain.borrow() {
            // Draining: finish the request in flight (if any), then close.
            stats.downstream_cx_drain_close.inc();
            connection.as_mut().graceful_shutdown();
            break connection.await;
        }
        let wake = activity.last.get() + idle;
        tokio::select! {
            r = &mut connection => break r,
            changed = drain.changed() => {
                if changed.is_err() {
                    // The server is gone; serve until the peer closes.
                    break connection.await;
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if activity.active.get() == 0 && activity.last.get() + idle <= Instant::now() {
                    stats.downstream_cx_idle_timeout.inc();
                    connection.as_mut().graceful_shutdown();
                    break connection.await;
                }
            }
        }
    };
    match result {
        Ok(()) => stats.downstream_cx_destroy_remote.inc(),
        Err(e) => {
            if e.is_parse() || e.is_parse_too_large() || e.is_parse_status() {
                stats.downstream_cx_protocol_error.inc();
                if e.is_parse_too_large() {
                    stats.downstream_rq_too_large.inc();
                }
            } else if e.is_timeout() {
                stats.downstream_rq_header_timeout.inc();
            }
            tracing::debug!(remote = %info.remote, "downstream connection error: {e}");
            stats.downstream_cx_destroy_local.inc();
        }
    }
    stats.downstream_cx_destroy.inc();
    stats.downstream_cx_active.dec();
    stats.downstream_cx_http1_active.dec();
}

struct Activity {
    active: Cell<usize>,
    last: Cell<Instant>,
}

impl Activity {
    fn begin(&self) {
        self.active.set(self.active.get() + 1);
    }

    fn end(&self) {
        self.active.set(self.active.get().saturating_sub(1));
        self.last.set(Instant::now());
    }
}
