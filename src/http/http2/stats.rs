//! `http2.*` (downstream, one set per process as in Envoy) and
//! `cluster.<name>.http2.*` (upstream): Envoy's HTTP/2 codec stats.

use crate::define_stats;

define_stats! {
    /// Envoy 1.40's `ALL_HTTP2_CODEC_STATS`. The `nghttp2_*`/`oghttp2_*`
    /// counters say which of Envoy's codec libraries served a connection; Courier
    /// uses neither, so they stay 0 (they exist so the names are Envoy's).
    #[derive(Debug)]
    pub struct Http2CodecStats {
        counter cookies_total_bytes_too_large,
        counter dropped_headers_with_underscores,
        counter goaway_sent,
        counter header_overflow,
        counter header_list_size_too_large,
        counter headers_cb_no_stream,
        counter inbound_empty_frames_flood,
        counter inbound_priority_frames_flood,
        counter inbound_window_update_frames_flood,
        counter keepalive_timeout,
        counter metadata_empty_frames,
        counter nghttp2_downstream_connections,
        counter nghttp2_upstream_connections,
        counter oghttp2_downstream_connections,
        counter oghttp2_upstream_connections,
        counter outbound_control_flood,
        counter outbound_flood,
        counter requests_rejected_with_underscores_in_headers,
        counter rx_messaging_error,
        counter rx_reset,
        counter stream_refused_errors,
        counter trailers,
        counter tx_flush_timeout,
        counter tx_reset,
        gauge deferred_stream_close,
        gauge outbound_control_frames_active,
        gauge outbound_frames_active,
        gauge pending_send_bytes,
        gauge streams_active,
        histogram cookie_count,
        histogram cookie_size,
        histogram header_count,
        histogram header_list_size,
    }
}

/// The `http2.*` stats, made when the first HTTP/2 connection starts: Envoy
/// creates them with its first HTTP/2 codec, so a proxy that never spoke
/// HTTP/2 shows none.
#[derive(Debug)]
pub struct LazyHttp2Stats {
    store: std::sync::Arc<crate::stats::Store>,
    prefix: String,
    stats: std::sync::OnceLock<std::sync::Arc<Http2CodecStats>>,
}

impl LazyHttp2Stats {
    pub fn new(store: &std::sync::Arc<crate::stats::Store>, prefix: &str) -> LazyHttp2Stats {
        LazyHttp2Stats { store: store.clone(), prefix: prefix.to_string(), stats: std::sync::OnceLock::new() }
    }

    /// The stats, made on the first call.
    pub fn get(&self) -> &std::sync::Arc<Http2CodecStats> {
        self.stats.get_or_init(|| std::sync::Arc::new(Http2CodecStats::new(&self.store, &self.prefix)))
    }
}
