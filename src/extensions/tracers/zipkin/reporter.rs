//! Sending finished spans to the collector, as Envoy's Zipkin `ReporterImpl`:
//! batched per worker (`tracers::batch`, runtime keys `tracing.zipkin.*`), each
//! batch posted as one JSON array. The POST goes to a host of `collector_cluster` over the worker's pool
//! of the cluster's protocol (HTTP/1 or HTTP/2), with Envoy's 5 s timeout; the collector's 202 counts as sent, any
//! other status as dropped, no answer as failed.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::ZipkinDriver;
use crate::define_stats;
use crate::extensions::tracers::batch::Batched;
use crate::router::async_client;

const COLLECTOR_TIMEOUT: Duration = Duration::from_secs(5);

define_stats! {
    /// `tracing.zipkin.*`, shared by every Zipkin provider of the process.
    #[derive(Debug)]
    pub struct ZipkinStats {
        counter reports_skipped_no_cluster,
        counter reports_sent,
        counter reports_dropped,
        counter reports_failed,
        counter spans_sent,
        counter timer_flushed,
    }
}

impl Batched for ZipkinDriver {
    type Span = String;
    const RUNTIME_PREFIX: Option<&'static str> = Some("tracing.zipkin");

    fn index(&self) -> usize {
        self.index
    }

    fn timer_flushed(&self) {
        self.stats.timer_flushed.inc();
    }

    /// The spans' JSON as one array.
    fn send(self: &Arc<Self>, spans: Vec<String>) {
        self.stats.spans_sent.add(spans.len() as u64);
        let body = format!("[{}]", spans.join(","));
        tokio::task::spawn_local(send(self.clone(), body));
    }
}

/// Posts one batch; counts what became of it.
async fn send(driver: Arc<ZipkinDriver>, body: String) {
    let stats = &driver.stats;
    let collector = &driver.collector;
    let cluster = driver.clusters.get().and_then(|cm| cm.get(&collector.cluster));
    let Some(cluster) = cluster else {
        stats.reports_skipped_no_cluster.inc();
        return;
    };
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(http::header::HOST, collector.host.clone());
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response =
        async_client::post_to_collector(&cluster, &collector.endpoint, &headers, body, COLLECTOR_TIMEOUT).await;
    match response {
        Ok(r) if r.parts.status == http::StatusCode::ACCEPTED => stats.reports_sent.inc(),
        Ok(_) => stats.reports_dropped.inc(),
        Err(_) => stats.reports_failed.inc(),
    }
}
