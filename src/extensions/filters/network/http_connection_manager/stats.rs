//! `http.<stat_prefix>.*`: the connection manager's stats (the router's are in
//! `extensions::filters::http::router`, under the same prefix).

use crate::define_stats;

define_stats! {
    /// Envoy's `ALL_HTTP_CONN_MAN_STATS` subset that Courier maintains, and the
    /// router's `rq_reset_after_downstream_response_started`, which the codec
    /// loops see (the response was already under way when its body failed).
    #[derive(Debug)]
    pub struct HcmStats {
        counter downstream_cx_total,
        counter downstream_cx_destroy,
        counter downstream_cx_destroy_remote,
        counter downstream_cx_destroy_local,
        counter downstream_cx_destroy_active_rq,
        counter downstream_cx_destroy_remote_active_rq,
        counter downstream_cx_http1_total,
        counter downstream_cx_http2_total,
        counter downstream_cx_protocol_error,
        counter downstream_cx_idle_timeout,
        counter downstream_cx_drain_close,
        counter downstream_cx_delayed_close_timeout,
        counter downstream_cx_max_requests_reached,
        counter downstream_cx_overload_disable_keepalive,
        counter downstream_cx_rx_bytes_total,
        counter downstream_cx_tx_bytes_total,
        counter downstream_rq_total,
        counter downstream_rq_http1_total,
        counter downstream_rq_http2_total,
        counter downstream_rq_too_many_premature_resets,
        counter downstream_rq_1xx,
        counter downstream_rq_2xx,
        counter downstream_rq_3xx,
        counter downstream_rq_4xx,
        counter downstream_rq_5xx,
        counter downstream_rq_completed,
        counter downstream_rq_timeout,
        counter downstream_rq_idle_timeout,
        counter downstream_rq_header_timeout,
        counter downstream_rq_max_duration_reached,
        counter downstream_rq_rx_reset,
        counter downstream_rq_tx_reset,
        counter downstream_rq_too_large,
        counter downstream_rq_overload_close,
        counter downstream_rq_ws_on_non_ws_route,
        counter downstream_cx_upgrades_total,
        counter downstream_rq_non_relative_path,
        counter downstream_rq_failed_path_normalization,
        counter downstream_rq_redirected_with_normalized_path,
        counter downstream_rq_response_before_rq_complete,
        counter rq_reset_after_downstream_response_started,
        counter rs_too_large,
        gauge downstream_cx_active,
        gauge downstream_cx_http1_active,
        gauge downstream_cx_http2_active,
        gauge downstream_rq_active,
        gauge downstream_cx_upgrades_active,
        histogram downstream_rq_time,
        histogram downstream_cx_length_ms,
    }
}

define_stats! {
    /// `listener.<scope>.http.<stat_prefix>.*`: the connection manager's
    /// per-listener response counts (Envoy's `CONN_MAN_LISTENER_STATS`).
    #[derive(Debug)]
    pub struct HcmListenerStats {
        counter downstream_rq_1xx,
        counter downstream_rq_2xx,
        counter downstream_rq_3xx,
        counter downstream_rq_4xx,
        counter downstream_rq_5xx,
        counter downstream_rq_completed,
    }
}

impl HcmListenerStats {
    /// Counts a finished response by status class.
    pub fn response_code(&self, status: u16) {
        self.downstream_rq_completed.inc();
        let classes = [
            &*self.downstream_rq_1xx,
            &self.downstream_rq_2xx,
            &self.downstream_rq_3xx,
            &self.downstream_rq_4xx,
            &self.downstream_rq_5xx,
        ];
        crate::stats::by_status_class(status, classes).inc();
    }
}

define_stats! {
    /// `http1.*`: Envoy's HTTP/1 codec stats (one set per process, shared by
    /// every connection manager).
    #[derive(Debug)]
    pub struct Http1CodecStats {
        counter dropped_headers_with_underscores,
        counter metadata_not_supported_error,
        counter requests_rejected_with_underscores_in_headers,
        counter response_flood,
    }
}

impl HcmStats {
    /// Counts a finished response by status class.
    pub fn response_code(&self, status: u16) {
        let classes = [
            &*self.downstream_rq_1xx,
            &self.downstream_rq_2xx,
            &self.downstream_rq_3xx,
            &self.downstream_rq_4xx,
            &self.downstream_rq_5xx,
        ];
        crate::stats::by_status_class(status, classes).inc();
    }
}
