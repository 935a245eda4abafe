//! Exporting finished spans, as Envoy's OpenTelemetry tracer: each worker
//! buffers its own (no lock) and sends one OTLP `ExportTraceServiceRequest`
//! when `tracing.opentelemetry.min_flush_spans` (runtime, default 5) have
//! gathered, and every `tracing.opentelemetry.flush_interval_ms` (default 5000)
//! from the worker's first span on. The request is a unary gRPC call on an
//! HTTP/2 stream of the collector cluster's pool; its answer is read and not
//! acted on, as Envoy's.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::opentelemetry::proto::common::v1::InstrumentationScope;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use prost::Message;

use super::otlp::{self, ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans};
use super::span::string_attribute;
use super::OtelDriver;
use crate::define_stats;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::router::upstream_request::ActiveRequest;
use crate::upstream::conn_pool::{ConnPool, Protocol};
use crate::upstream::http2_conn_pool::{self, Http2ResponseBody};

const DEFAULT_MIN_FLUSH_SPANS: u64 = 5;
const DEFAULT_FLUSH_INTERVAL_MS: u64 = 5000;
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

define_stats! {
    /// `tracing.opentelemetry.*`, shared by every OpenTelemetry provider.
    #[derive(Debug)]
    pub struct OtelStats {
        counter spans_sent,
        counter timer_flushed,
    }
}

#[derive(Default)]
struct Buffer {
    spans: RefCell<Vec<otlp::Span>>,
}

thread_local! {
    /// This worker's buffers, by provider (`OtelDriver::index`).
    static BUFFERS: RefCell<Vec<Option<Rc<Buffer>>>> = const { RefCell::new(Vec::new()) };
}

fn runtime_integer(key: &str, default: u64) -> u64 {
    crate::runtime::snapshot().map_or(default, |s| s.get_integer(key, default))
}

/// Buffers a finished span and exports the buffer once it is full.
pub fn report(driver: &Arc<OtelDriver>, span: otlp::Span) {
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
    let min = runtime_integer("tracing.opentelemetry.min_flush_spans", DEFAULT_MIN_FLUSH_SPANS);
    if buffer.spans.borrow().len() as u64 >= min {
        flush(driver, &buffer);
    }
}

async fn flush_timer(driver: Arc<OtelDriver>, buffer: std::rc::Weak<Buffer>) {
    loop {
        let ms = runtime_integer("tracing.opentelemetry.flush_interval_ms", DEFAULT_FLUSH_INTERVAL_MS);
        tokio::time::sleep(Duration::from_millis(ms.max(1))).await;
        let Some(buffer) = buffer.upgrade() else { return };
        driver.stats.timer_flushed.inc();
        flush(&driver, &buffer);
    }
}

fn flush(driver: &Arc<OtelDriver>, buffer: &Buffer) {
    let spans = std::mem::take(&mut *buffer.spans.borrow_mut());
    if spans.is_empty() {
        return;
    }
    driver.stats.spans_sent.add(spans.len() as u64);
    tokio::task::spawn_local(export(driver.clone(), request(driver, spans)));
}

/// Envoy's resource and scope: the SDK attributes, `service.name`, scope `envoy`.
fn request(driver: &OtelDriver, spans: Vec<otlp::Span>) -> ExportTraceServiceRequest {
    let version = concat!("courier/", env!("CARGO_PKG_VERSION"));
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string_attribute("telemetry.sdk.name", "envoy"),
                    string_attribute("service.name", &driver.service_name),
                    string_attribute("telemetry.sdk.language", "rust"),
                    string_attribute("telemetry.sdk.version", version),
                ],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "envoy".to_owned(),
                    version: version.to_owned(),
                    ..Default::default()
                }),
                spans,
            }],
        }],
    }
}

/// One unary gRPC call: the message with its 5-byte gRPC prefix.
async fn export(driver: Arc<OtelDriver>, message: ExportTraceServiceRequest) {
    let Some(cluster) = driver.clusters.get().and_then(|cm| cm.get(&driver.cluster)) else { return };
    let Some(host) = cluster.choose_host() else { return };
    let mut body = BytesMut::with_capacity(5 + message.encoded_len());
    body.put_u8(0);
    body.put_u32(message.encoded_len() as u32);
    message.encode(&mut body).ok();
    let mut headers = HeaderMap::with_capacity(4);
    // Envoy's gRPC client names the cluster as the authority.
    let Ok(authority) = HeaderValue::from_str(&driver.cluster) else { return };
    headers.insert(http::header::HOST, authority);
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("OTel-OTLP-Exporter-Courier/", env!("CARGO_PKG_VERSION"))),
    );
    let request = RequestOut { method: &Method::POST, target: EXPORT_PATH, headers: &headers, overrides: &[] };
    // gRPC needs HTTP/2: the cluster's HTTP/2 pool, whatever its configured protocol.
    let ConnPool::Http2(pool) = cluster.http_pool(&host, Protocol::Http2) else { return };
    let exchange = async {
        let (mut stream, breaker) = pool.acquire().await.ok()?;
        let gauge = cluster.info.stats.upstream_rq_active.clone();
        let _active = ActiveRequest::new(tokio::time::Instant::now(), breaker, gauge, host.clone());
        let (response, tx) = stream.send_request(http2_conn_pool::request_headers(&request, host.address), false)?;
        http2_conn_pool::upload(tx, BodyOut::Whole(Bytes::from(body))).await.ok()?;
        let (parts, recv) = response.await.ok()?.into_parts();
        let mut response = Http2ResponseBody::new(recv, None, stream);
        while let Some(frame) = response.frame().await {
            frame.ok()?;
        }
        Some(parts.status.as_u16())
    };
    let status = match driver.timeout {
        Some(t) => tokio::time::timeout(t, exchange).await.ok().flatten(),
        None => exchange.await,
    };
    if let Some(status) = status {
        cluster.count_response_code(status);
    }
}
