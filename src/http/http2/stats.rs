//! `http2.*` (downstream, one set per process as in Envoy) and
//! `cluster.<name>.http2.*` (upstream): Envoy's HTTP/2 codec stats.

use crate::define_stats;

define_stats! {
    /// Envoy's `ALL_HTTP2_CODEC_STATS`.
    #[derive(Debug)]
    pub struct Http2CodecStats {
        counter dropped_headers_with_underscores,
        counter goaway_sent,
        counter header_overflow,
        counter headers_cb_no_stream,
        counter inbound_empty_frames_flood,
        counter inbound_priority_frames_flood,
        counter inbound_window_update_frames_flood,
        counter keepalive_timeout,
        counter metadata_empty_frames,
        counter outbound_control_flood,
        counter outbound_flood,
        counter requests_rejected_with_underscores_in_headers,
        counter rx_messaging_error,
        counter rx_reset,
        counter stream_refused_errors,
        counter too_many_header_frames,
        counter trailers,
        counter tx_flush_timeout,
        counter tx_reset,
        gauge deferred_stream_close,
        gauge outbound_control_frames_active,
        gauge outbound_frames_active,
        gauge pending_send_bytes,
        gauge streams_active,
    }
}
