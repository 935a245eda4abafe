//! Exporting finished spans, as Envoy's OpenTelemetry tracer: batched per worker
//! (`tracers::batch`, runtime keys `tracing.opentelemetry.*`), each batch one OTLP
//! `ExportTraceServiceRequest`. The request is a unary gRPC call on an
//! HTTP/2 stream of the collector cluster's pool; its answer is read and not
//! acted on, as Envoy's.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::opentelemetry::proto::common::v1::InstrumentationScope;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use prost::Message;

use super::otlp::{self, ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans};
use super::span::string_attribute;
use super::OtelDriver;
use crate::define_stats;
use crate::extensions::tracers::batch::Batched;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::router::upstream_request::ActiveRequest;
use crate::upstream::conn_pool::{ConnPool, Protocol};
use crate::upstream::http2_conn_pool::{self, Http2ResponseBody};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

define_stats! {
    /// `tracing.opentelemetry.*`, shared by every OpenTelemetry provider.
    #[derive(Debug)]
    pub struct OtelStats {
        counter spans_sent,
        counter timer_flushed,
    }
}

impl Batched for OtelDriver {
    type Span = otlp::Span;
    const RUNTIME_PREFIX: &'static str = "tracing.opentelemetry";

    fn index(&self) -> usize {
        self.index
    }

    fn timer_flushed(&self) {
        self.stats.timer_flushed.inc();
    }

    fn send(self: &Arc<Self>, spans: Vec<otlp::Span>) {
        self.stats.spans_sent.add(spans.len() as u64);
        tokio::task::spawn_local(export(self.clone(), request(self, spans)));
    }
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
