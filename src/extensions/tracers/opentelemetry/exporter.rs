//! Exporting finished spans, as Envoy's OpenTelemetry tracer: batched per worker
//! (`tracers::batch`, runtime keys `tracing.opentelemetry.*`), each batch one OTLP
//! `ExportTraceServiceRequest`. The request is a unary gRPC call
//! (`extensions::common::grpc_client`); its answer is read and not acted on, as
//! Envoy's.

use std::sync::Arc;

use envoy_types::pb::opentelemetry::proto::common::v1::InstrumentationScope;
use http::HeaderValue;

use super::OtelDriver;
use crate::define_stats;
use crate::extensions::common::otlp::trace::{self as otlp, ExportTraceServiceRequest, ResourceSpans, ScopeSpans};
use crate::extensions::common::otlp::{string_attribute, Resource};
use crate::extensions::tracers::batch::Batched;

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
    const RUNTIME_PREFIX: Option<&'static str> = Some("tracing.opentelemetry");

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

/// One unary gRPC call with the OTLP exporter's user agent.
async fn export(driver: Arc<OtelDriver>, message: ExportTraceServiceRequest) {
    let agent = HeaderValue::from_static(concat!("OTel-OTLP-Exporter-Courier/", env!("CARGO_PKG_VERSION")));
    let headers = [(http::header::USER_AGENT, agent)];
    let _ = driver.grpc.call(&driver.clusters, EXPORT_PATH, &message, &headers).await;
}
