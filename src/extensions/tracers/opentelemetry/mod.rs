//! `envoy.tracers.opentelemetry` (Envoy's `extensions/tracers/opentelemetry`):
//! W3C trace context in and out (`traceparent`), one span per request (`span`),
//! exported in OTLP batches over gRPC to the `grpc_service`'s cluster
//! (`exporter`, messages in `extensions::common::otlp`). The HTTP exporter, resource detectors,
//! samplers and the resource/scope switches are refused by name.

pub mod exporter;
pub mod span;
pub mod traceparent;

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::trace::v3::OpenTelemetryConfig;

use self::exporter::OtelStats;
use self::span::OtelSpan;
use self::traceparent::{extract, Extracted};
use crate::common::random;
use crate::config::{ConfigError, FieldPath};
use crate::extensions::common::grpc_client::GrpcClient;
use crate::extensions::common::otlp::trace as otlp;
use crate::extensions::FactoryContext;
use crate::thread_local::Slot;
use crate::tracing::{Driver, OperationName, Span, SpanStart};
use crate::upstream::ThreadLocalClusterManager;

pub const CONFIG_TYPE: &str = "envoy.config.trace.v3.OpenTelemetryConfig";

#[derive(Debug)]
pub struct OtelDriver {
    /// `grpc_service`: the collector's cluster, authority, metadata, timeout.
    pub grpc: GrpcClient,
    /// `service_name`, the resource's `service.name` (Envoy's default
    /// `unknown_service:envoy`).
    pub service_name: String,
    pub stats: OtelStats,
    pub clusters: Slot<ThreadLocalClusterManager>,
    /// This provider's buffer on each worker (`tracers::batch`).
    pub index: usize,
}

impl OtelDriver {
    /// `path` points at the `typed_config`.
    pub fn from_proto(
        c: &OpenTelemetryConfig,
        path: &FieldPath,
        ctx: &FactoryContext<'_>,
    ) -> Result<Arc<OtelDriver>, ConfigError> {
        let Some(grpc) = &c.grpc_service else {
            return Err(path.field_error("grpc_service", "Courier exports over gRPC only: grpc_service is required"));
        };
        let grpc = GrpcClient::from_proto(grpc, &path.child("grpc_service"), ctx.cluster_exists)?;
        Ok(Arc::new(OtelDriver {
            grpc,
            service_name: if c.service_name.is_empty() {
                "unknown_service:envoy".to_owned()
            } else {
                c.service_name.clone()
            },
            stats: OtelStats::new(ctx.store, "tracing.opentelemetry."),
            clusters: ctx.clusters.clone(),
            index: crate::extensions::tracers::batch::next_index(),
        }))
    }
}

/// The driver as the connection manager holds it: spans keep a reference to it.
#[derive(Debug)]
pub struct OpenTelemetry(pub Arc<OtelDriver>);

impl Driver for OpenTelemetry {
    /// A caller's `traceparent` makes the span its child (and its sampling flag
    /// wins); without one a trace starts with the connection manager's decision.
    fn start_span(&self, s: &SpanStart<'_>) -> Option<Box<dyn Span>> {
        let (trace_id, parent_span_id, sampled, trace_state, remote_parent) = match extract(s.request_headers) {
            Extracted::Invalid => return None,
            Extracted::None => {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&random::next_u64().to_be_bytes());
                id[8..].copy_from_slice(&random::next_u64().to_be_bytes());
                (id, [0u8; 8], s.decision.traced, String::new(), false)
            }
            Extracted::Parent(p) => (p.trace_id, p.span_id, p.sampled, p.trace_state, true),
        };
        let (name, kind) = match s.operation {
            OperationName::Ingress => ("ingress".to_owned(), otlp::KIND_SERVER),
            OperationName::Egress => (format!("egress {}", s.host), otlp::KIND_CLIENT),
        };
        Some(Box::new(OtelSpan {
            trace_id,
            span_id: random::next_u64().to_be_bytes(),
            parent_span_id,
            remote_parent,
            sampled,
            trace_state,
            name,
            kind,
            start: s.start,
            started: Instant::now(),
            attributes: Vec::new(),
            error: false,
            driver: self.0.clone(),
        }))
    }
}
