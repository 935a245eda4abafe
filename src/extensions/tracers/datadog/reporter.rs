//! Sending finished spans to the Datadog agent, as Envoy's Datadog tracer does:
//! every 2 s (dd-trace-cpp's `flush_interval_milliseconds`; no runtime keys, no
//! size trigger) each worker posts what it has gathered to `/v0.4/traces` on
//! `collector_cluster`, one MessagePack array of traces, each trace the array
//! of its one span, with dd-trace-cpp's headers (`Datadog-Meta-*`,
//! `X-Datadog-Trace-Count`) and its 2 s timeout. The agent's 200 counts
//! `reports_sent`, its `rate_by_service` then deciding the new traces, any other status `reports_dropped` (a 202 too, as Envoy), no
//! answer `reports_failed`; Envoy's Datadog stats have no `timer_flushed`.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{msgpack, DatadogDriver};
use crate::define_stats;
use crate::extensions::tracers::batch::Batched;
use crate::router::async_client;

pub const TRACES_PATH: &str = "/v0.4/traces";
const AGENT_TIMEOUT: Duration = Duration::from_secs(2);

define_stats! {
    /// `tracing.datadog.*`, shared by every Datadog provider of the process.
    #[derive(Debug)]
    pub struct DatadogStats {
        counter reports_skipped_no_cluster,
        counter reports_sent,
        counter reports_dropped,
        counter reports_failed,
    }
}

impl Batched for DatadogDriver {
    /// One span's msgpack map.
    type Span = Vec<u8>;
    const RUNTIME_PREFIX: Option<&'static str> = None;
    const DEFAULT_MIN_FLUSH_SPANS: u64 = u64::MAX;
    const DEFAULT_FLUSH_INTERVAL_MS: u64 = 2000;

    fn index(&self) -> usize {
        self.index
    }

    fn timer_flushed(&self) {}

    fn send(self: &Arc<Self>, spans: Vec<Vec<u8>>) {
        let count = spans.len();
        let mut body = Vec::with_capacity(spans.iter().map(|s| s.len() + 5).sum::<usize>() + 5);
        msgpack::array(&mut body, count);
        for span in spans {
            msgpack::array(&mut body, 1);
            body.extend_from_slice(&span);
        }
        tokio::task::spawn_local(send(self.clone(), body, count));
    }
}

/// Posts one batch; counts what became of it.
async fn send(driver: Arc<DatadogDriver>, body: Vec<u8>, traces: usize) {
    let stats = &driver.stats;
    let Some(cluster) = driver.clusters.get().and_then(|cm| cm.get(&driver.collector_cluster)) else {
        stats.reports_skipped_no_cluster.inc();
        return;
    };
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(http::header::HOST, driver.collector_host.clone());
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/msgpack"));
    headers.insert(HeaderName::from_static("datadog-meta-lang"), HeaderValue::from_static("cpp"));
    headers.insert(HeaderName::from_static("datadog-meta-lang-version"), HeaderValue::from_static("202002"));
    headers.insert(HeaderName::from_static("datadog-meta-tracer-version"), HeaderValue::from_static("v2.1.1"));
    headers.insert(HeaderName::from_static("x-datadog-trace-count"), HeaderValue::from(traces));
    let response = async_client::post_to_collector(&cluster, TRACES_PATH, &headers, body, AGENT_TIMEOUT).await;
    match response {
        Ok(r) if r.parts.status == http::StatusCode::OK => {
            // The agent's sampling rates, which decide the traces from now on.
            let answer: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
            if let Some(rates) = answer.as_ref().and_then(|a| a["rate_by_service"].as_object()) {
                *driver.agent_rates.write().unwrap_or_else(|e| e.into_inner()) = Some(rates.clone());
            }
            stats.reports_sent.inc();
        }
        Ok(_) => stats.reports_dropped.inc(),
        Err(_) => stats.reports_failed.inc(),
    }
}
