//! Sending finished spans to the collector, as Envoy's Zipkin `ReporterImpl`:
//! each worker buffers its own spans (no lock) and posts them as one JSON array
//! when `tracing.zipkin.min_flush_spans` (runtime, default 5) have gathered, and
//! every `tracing.zipkin.flush_interval_ms` (default 5000) from the worker's first
//! span on. The POST goes to a host of `collector_cluster` over the worker's pool
//! of the cluster's protocol (HTTP/1 or HTTP/2), with Envoy's 5 s timeout; the collector's 202 counts as sent, any
//! other status as dropped, no answer as failed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;

use super::ZipkinDriver;
use crate::define_stats;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::router::upstream_request::ActiveRequest;
use crate::upstream::conn_pool::{ConnPool, Protocol};
use crate::upstream::http2_conn_pool::{self, Http2ResponseBody};

const DEFAULT_MIN_FLUSH_SPANS: u64 = 5;
const DEFAULT_FLUSH_INTERVAL_MS: u64 = 5000;
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

/// One provider's spans waiting on this worker.
#[derive(Default)]
struct Buffer {
    spans: RefCell<Vec<String>>,
}

thread_local! {
    /// This worker's buffers, by provider (`ZipkinDriver::index`).
    static BUFFERS: RefCell<Vec<Option<Rc<Buffer>>>> = const { RefCell::new(Vec::new()) };
}

fn runtime_integer(key: &str, default: u64) -> u64 {
    crate::runtime::snapshot().map_or(default, |s| s.get_integer(key, default))
}

/// Buffers a finished span (its JSON) and sends the buffer once it is full.
pub fn report(driver: &Arc<ZipkinDriver>, span: String) {
    let buffer = BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() <= driver.index {
            b.resize(driver.index + 1, None);
        }
        b[driver.index]
            .get_or_insert_with(|| {
                let buffer = Rc::new(Buffer::default());
                tokio::task::spawn_local(flush_timer(driver.clone(), Rc::downgrade(&buffer)));
                buffer
            })
            .clone()
    });
    buffer.spans.borrow_mut().push(span);
    let min = runtime_integer("tracing.zipkin.min_flush_spans", DEFAULT_MIN_FLUSH_SPANS);
    if buffer.spans.borrow().len() as u64 >= min {
        flush(driver, &buffer);
    }
}

async fn flush_timer(driver: Arc<ZipkinDriver>, buffer: std::rc::Weak<Buffer>) {
    loop {
        let ms = runtime_integer("tracing.zipkin.flush_interval_ms", DEFAULT_FLUSH_INTERVAL_MS);
        tokio::time::sleep(Duration::from_millis(ms.max(1))).await;
        let Some(buffer) = buffer.upgrade() else { return };
        driver.stats.timer_flushed.inc();
        flush(&driver, &buffer);
    }
}

fn flush(driver: &Arc<ZipkinDriver>, buffer: &Buffer) {
    let spans = std::mem::take(&mut *buffer.spans.borrow_mut());
    if spans.is_empty() {
        return;
    }
    driver.stats.spans_sent.add(spans.len() as u64);
    let body = format!("[{}]", spans.join(","));
    tokio::task::spawn_local(send(driver.clone(), body));
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
