//! Exporting finished spans, as Envoy's OpenTelemetry tracer: batched per worker
//! (`tracers::batch`, runtime keys `tracing.opentelemetry.*`), each batch one OTLP
//! `ExportTraceServiceRequest`. The request is a unary gRPC call on an
//! HTTP/2 stream of the collector cluster's pool; its answer is read and not
//! acted on, as Envoy's.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use envoy_types::pb::opentelemetry::proto::common::v1::InstrumentationScope;
use http::{HeaderMap, HeaderValue, Method};
use prost::Message;

use super::otlp::{self, ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans};
use super::span::string_attribute;
use super::OtelDriver;
use crate::define_stats;
use crate::extensions::tracers::batch::Batched;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::router::async_client;
use crate::upstream::conn_pool::Protocol;

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
    let _ = async_client::send(
        &cluster,
        &request,
        BodyOut::Whole(body.freeze()),
        Protocol::Http2,
        driver.timeout,
        async_client::MAX_COLLECTOR_ANSWER,
    )
    .await;
}
