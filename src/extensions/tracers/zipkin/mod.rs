//! `envoy.tracers.zipkin` (Envoy's `extensions/tracers/zipkin`): B3 context in
//! and out (`span_context`), one span per request (`span`), sent in batches of
//! Zipkin v2 JSON to the collector cluster (`reporter`).

pub mod reporter;
pub mod span;
pub mod span_context;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::trace::v3::zipkin_config::{CollectorEndpointVersion, TraceContextOption};
use envoy_types::pb::envoy::config::trace::v3::ZipkinConfig;
use http::HeaderValue;

use self::reporter::ZipkinStats;
use self::span::{Kind, ZipkinSpan};
use self::span_context::{extract, extract_sampled, Extracted, SpanContext, B3};
use crate::common::random;
use crate::config::{ConfigError, FieldPath};
use crate::extensions::FactoryContext;
use crate::thread_local::Slot;
use crate::tracing::{Driver, OperationName, Span, SpanStart};
use crate::upstream::ThreadLocalClusterManager;

pub const CONFIG_TYPE: &str = "envoy.config.trace.v3.ZipkinConfig";

/// Where spans go.
#[derive(Debug)]
pub struct Collector {
    pub cluster: String,
    /// `collector_endpoint`: the path of the POST.
    pub endpoint: String,
    /// `collector_hostname`, else the cluster's name.
    pub host: HeaderValue,
}

#[derive(Debug)]
pub struct ZipkinDriver {
    pub collector: Collector,
    pub trace_id_128bit: bool,
    pub shared_span_context: bool,
    /// The node's service cluster: the spans' `localEndpoint.serviceName`.
    pub service_name: String,
    pub local_ip: IpAddr,
    pub stats: ZipkinStats,
    pub clusters: Slot<ThreadLocalClusterManager>,
    /// This provider's buffer on each worker (`tracers::batch`).
    pub index: usize,
}

impl ZipkinDriver {
    /// `path` points at the `typed_config`.
    pub fn from_proto(
        c: &ZipkinConfig,
        path: &FieldPath,
        ctx: &FactoryContext<'_>,
    ) -> Result<Arc<ZipkinDriver>, ConfigError> {
        match CollectorEndpointVersion::try_from(c.collector_endpoint_version) {
            Ok(CollectorEndpointVersion::HttpJson) => {}
            Ok(v) => {
                return Err(path.field_error(
                    "collector_endpoint_version",
                    format!("{} is not supported by Courier (only HTTP_JSON)", v.as_str_name()),
                ))
            }
            Err(_) => return Err(path.field_error("collector_endpoint_version", "unknown value")),
        }
        if TraceContextOption::try_from(c.trace_context_option) != Ok(TraceContextOption::UseB3) {
            return Err(path.field_error("trace_context_option", "only USE_B3 is supported by Courier"));
        }
        if c.collector_cluster.is_empty() {
            return Err(path.field_error("collector_cluster", "a collector cluster is required"));
        }
        if c.collector_endpoint.is_empty() || !c.collector_endpoint.starts_with('/') {
            return Err(path.field_error("collector_endpoint", "a path starting with '/' is required"));
        }
        if !(ctx.cluster_exists)(&c.collector_cluster) {
            return Err(path.field_error("collector_cluster", format!("unknown cluster '{}'", c.collector_cluster)));
        }
        let host = if c.collector_hostname.is_empty() { &c.collector_cluster } else { &c.collector_hostname };
        let host = HeaderValue::from_str(host)
            .map_err(|_| path.field_error("collector_hostname", "not a valid header value"))?;
        Ok(Arc::new(ZipkinDriver {
            collector: Collector { cluster: c.collector_cluster.clone(), endpoint: c.collector_endpoint.clone(), host },
            trace_id_128bit: c.trace_id_128bit,
            shared_span_context: c.shared_span_context.as_ref().is_none_or(|b| b.value),
            service_name: ctx.service_cluster.to_owned(),
            local_ip: crate::http::headers::local_address(),
            stats: ZipkinStats::new(ctx.store, "tracing.zipkin."),
            clusters: ctx.clusters.clone(),
            index: crate::extensions::tracers::batch::next_index(),
        }))
    }
}

/// The driver as the connection manager holds it: spans keep a reference to it.
#[derive(Debug)]
pub struct Zipkin(pub Arc<ZipkinDriver>);

impl Driver for Zipkin {
    /// Envoy's `Driver::startSpan` and `Tracer::startSpan`: the request's sampling
    /// flag wins over the local decision; a request with a context joins its
    /// trace (sharing the caller's span id on the ingress side when
    /// `shared_span_context`, else as its child), else a new trace starts.
    fn start_span(&self, s: &SpanStart<'_>) -> Option<Box<dyn Span>> {
        let d = &self.0;
        let h = s.request_headers;
        let sampled = extract_sampled(h).unwrap_or(s.decision.traced);
        let kind = match s.operation {
            OperationName::Ingress => Kind::Server,
            OperationName::Egress => Kind::Client,
        };
        let share = kind == Kind::Server && d.shared_span_context;
        let context = match extract(h, sampled) {
            Extracted::Invalid => return None,
            Extracted::None => {
                let trace_id = random::next_u64();
                let trace_id_high = if d.trace_id_128bit { random::next_u64() } else { 0 };
                SpanContext { trace_id_high, trace_id, id: trace_id, parent_id: 0, sampled }
            }
            Extracted::Context(previous) if share => previous,
            Extracted::Context(previous) => SpanContext { id: random::next_u64(), parent_id: previous.id, ..previous },
        };
        Some(Box::new(ZipkinSpan {
            context,
            kind,
            shared: share,
            name: s.host.to_owned(),
            start: s.start,
            started: Instant::now(),
            single_b3: h.contains_key(B3),
            tags: serde_json::Map::new(),
            driver: d.clone(),
        }))
    }
}
