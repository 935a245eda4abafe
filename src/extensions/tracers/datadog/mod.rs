//! `envoy.tracers.datadog` (Envoy's `extensions/tracers/datadog`, built on
//! dd-trace-cpp): Datadog and W3C context in and out (`propagation`), one span
//! per request (`span`), sent every 2 s as MessagePack to the agent on the
//! collector cluster (`reporter`, `msgpack`). Of `DatadogConfig`, Courier acts on
//! `collector_cluster`, `service_name` (both required, as Envoy's validation
//! says) and `collector_hostname`; `remote_config` (polling the agent for
//! sampling rules) is refused by name.

pub mod msgpack;
pub mod propagation;
pub mod reporter;
pub mod span;

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use envoy_types::pb::envoy::config::trace::v3::DatadogConfig;
use http::HeaderValue;

use self::propagation::{extract, Context, DECISION_MAKER, TID};
use self::reporter::DatadogStats;
use self::span::DatadogSpan;
use crate::common::random;
use crate::config::{ConfigError, FieldPath};
use crate::extensions::tracers::zipkin::span_context::hex16;
use crate::extensions::FactoryContext;
use crate::thread_local::Slot;
use crate::tracing::{Driver, OperationName, Span, SpanStart};
use crate::upstream::ThreadLocalClusterManager;

pub const CONFIG_TYPE: &str = "envoy.config.trace.v3.DatadogConfig";

/// dd-trace-cpp's sampling priorities: what the agent is told to keep.
const USER_DROP: i32 = -1;
const AUTO_KEEP: i32 = 1;

#[derive(Debug)]
pub struct DatadogDriver {
    pub collector_cluster: String,
    /// `collector_hostname`, else the cluster's name: the POST's host.
    pub collector_host: HeaderValue,
    pub service_name: String,
    /// The spans' `version` meta (Envoy's is `envoy <its build>`).
    pub version: String,
    /// The spans' `runtime-id`: one per tracer.
    pub runtime_id: String,
    pub stats: DatadogStats,
    pub clusters: Slot<ThreadLocalClusterManager>,
    /// This provider's buffer on each worker (`tracers::batch`).
    pub index: usize,
}

impl DatadogDriver {
    /// `path` points at the `typed_config`.
    pub fn from_proto(
        c: &DatadogConfig,
        path: &FieldPath,
        ctx: &FactoryContext<'_>,
    ) -> Result<Arc<DatadogDriver>, ConfigError> {
        if c.collector_cluster.is_empty() {
            return Err(path.field_error("collector_cluster", "value length must be at least 1 characters"));
        }
        if c.service_name.is_empty() {
            return Err(path.field_error("service_name", "value length must be at least 1 characters"));
        }
        if !(ctx.cluster_exists)(&c.collector_cluster) {
            return Err(path.field_error("collector_cluster", format!("unknown cluster '{}'", c.collector_cluster)));
        }
        let host = if c.collector_hostname.is_empty() { &c.collector_cluster } else { &c.collector_hostname };
        let collector_host = HeaderValue::from_str(host)
            .map_err(|_| path.field_error("collector_hostname", "not a valid header value"))?;
        let runtime_id = crate::http::headers::uuid_v4().to_str().unwrap_or_default().to_owned();
        Ok(Arc::new(DatadogDriver {
            collector_cluster: c.collector_cluster.clone(),
            collector_host,
            service_name: c.service_name.clone(),
            version: format!("envoy courier/{}/Clean/RELEASE/rustls", env!("CARGO_PKG_VERSION")),
            runtime_id,
            stats: DatadogStats::new(ctx.store, "tracing.datadog."),
            clusters: ctx.clusters.clone(),
            index: crate::extensions::tracers::batch::next_index(),
        }))
    }
}

/// The driver as the connection manager holds it: spans keep a reference to it.
#[derive(Debug)]
pub struct Datadog(pub Arc<DatadogDriver>);

fn nonzero_random() -> u64 {
    loop {
        let v = random::next_u64();
        if v != 0 {
            return v;
        }
    }
}

impl Driver for Datadog {
    /// A caller's context makes the span its child, its sampling priority
    /// standing; otherwise the priority is decided here from the connection
    /// manager's decision: kept by the agent's (default) rate, marked `-0`, or
    /// dropped by the user (-1). A new trace has 128-bit ids, the upper half
    /// the start second then zeros, and its root span's id is the lower half.
    fn start_span(&self, s: &SpanStart<'_>) -> Option<Box<dyn Span>> {
        let (mut context, span_id) = match extract(s.request_headers) {
            Some(ctx) => (ctx, nonzero_random()),
            None => {
                let seconds = s.start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as u32;
                let high = u64::from(seconds) << 32;
                let id = nonzero_random();
                let tags = vec![(TID.to_owned(), hex16(high))];
                (Context { trace_id_high: high, trace_id: id, tags, ..Context::default() }, id)
            }
        };
        let (priority, agent_rate_decision) = match context.priority {
            Some(p) => (p, false),
            None if s.decision.traced => {
                context.tags.push((DECISION_MAKER.to_owned(), "-0".to_owned()));
                (AUTO_KEEP, true)
            }
            None => (USER_DROP, false),
        };
        let resource = match s.operation {
            OperationName::Ingress => "ingress".to_owned(),
            OperationName::Egress => format!("egress {}", s.host),
        };
        Some(Box::new(DatadogSpan {
            context,
            span_id,
            priority,
            agent_rate_decision,
            resource,
            start: s.start,
            started: Instant::now(),
            error: false,
            meta: Vec::new(),
            driver: self.0.clone(),
        }))
    }
}
