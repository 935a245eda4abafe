//! Sending finished spans to the collector, as Envoy's Zipkin `ReporterImpl`:
//! batched per worker (`tracers::batch`, runtime keys `tracing.zipkin.*`), each
//! batch posted as one JSON array. The POST goes to a host of `collector_cluster` over the worker's pool
//! of the cluster's protocol (HTTP/1 or HTTP/2), with Envoy's 5 s timeout; the collector's 202 counts as sent, any
//! other status as dropped, no answer as failed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;

use super::ZipkinDriver;
use crate::define_stats;
use crate::extensions::tracers::batch::Batched;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::router::upstream_request::ActiveRequest;
use crate::upstream::conn_pool::{ConnPool, Protocol};
use crate::upstream::http2_conn_pool::{self, Http2ResponseBody};

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
    const RUNTIME_PREFIX: &'static str = "tracing.zipkin";

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
    let Some(host) = cluster.choose_host() else {
        stats.reports_failed.inc();
        return;
    };
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(http::header::HOST, collector.host.clone());
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let request = RequestOut { method: &Method::POST, target: &collector.endpoint, headers: &headers, overrides: &[] };
    let body = BodyOut::Whole(Bytes::from(body));
    // The cluster's own protocol, as Envoy's async client uses it.
    let protocol = Protocol::from(cluster.info.protocol_for(http::Version::HTTP_11));
    // Counted as the cluster's active request while it lasts, as Envoy's async
    // client's is.
    let active = |breaker| {
        let gauge = cluster.info.stats.upstream_rq_active.clone();
        ActiveRequest::new(tokio::time::Instant::now(), breaker, gauge, host.clone())
    };
    let exchange = async {
        match cluster.http_pool(&host, protocol) {
            ConnPool::Http1(pool) => {
                let (mut client, breaker) = pool.acquire().await.ok()?;
                let _active = active(breaker);
                let head = client.send(&request, body).await.ok()?;
                // Read to its end, so the connection goes back to the pool.
                let mut response = client.into_response_body(&head);
                while let Some(frame) = response.frame().await {
                    frame.ok()?;
                }
                Some(head.parts.status.as_u16())
            }
            ConnPool::Http2(pool) => {
                let (mut stream, breaker) = pool.acquire().await.ok()?;
                let _active = active(breaker);
                let (response, tx) =
                    stream.send_request(http2_conn_pool::request_headers(&request, host.address), false)?;
                http2_conn_pool::upload(tx, body).await.ok()?;
                let (parts, recv) = response.await.ok()?.into_parts();
                let mut response = Http2ResponseBody::new(recv, None, stream);
                while let Some(frame) = response.frame().await {
                    frame.ok()?;
                }
                Some(parts.status.as_u16())
            }
        }
    };
    match tokio::time::timeout(COLLECTOR_TIMEOUT, exchange).await {
        Ok(Some(status)) => {
            cluster.count_response_code(status);
            if status == 202 {
                stats.reports_sent.inc();
            } else {
                stats.reports_dropped.inc();
            }
        }
        _ => stats.reports_failed.inc(),
    }
}
