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
const AUTO_DROP: i32 = 0;
const AUTO_KEEP: i32 = 1;
/// The tag giving the rate a kept-or-dropped decision was made at.
const KEEP_RATE: &str = "_dd.p.ksr";
/// dd-trace-cpp's hash of the trace id, compared with the rate's share of 2⁶⁴.
const KNUTH_FACTOR: u64 = 1_111_111_111_111_111_111;

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
    /// The agent's `rate_by_service` from its last answer, once it answered.
    pub agent_rates: std::sync::RwLock<Option<serde_json::Map<String, serde_json::Value>>>,
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
            agent_rates: std::sync::RwLock::new(None),
            stats: DatadogStats::new(ctx.store, "tracing.datadog."),
            clusters: ctx.clusters.clone(),
            index: crate::extensions::tracers::batch::next_index(),
        }))
    }
}

impl DatadogDriver {
    /// The agent's rate for this service (`service:<name>,env:`, else its
    /// default `service:,env:`); `None` until the agent has answered.
    fn agent_rate(&self) -> Option<f64> {
        let rates = self.agent_rates.read().unwrap_or_else(|e| e.into_inner());
        let rates = rates.as_ref()?;
        let own = format!("service:{},env:", self.service_name);
        rates.get(&own).or_else(|| rates.get("service:,env:")).and_then(serde_json::Value::as_f64)
    }

    /// dd-trace-cpp's decision without sampling rules: before the agent has
    /// answered, keep (decision maker `-0`, the default rate 1); after, keep
    /// by the agent's rate for the service on the trace id's Knuth hash
    /// (maker `-1`, the rate in `_dd.p.ksr`). The priority and the rate.
    fn decide(&self, context: &mut Context) -> (i32, f64) {
        let Some(rate) = self.agent_rate() else {
            context.tags.push((DECISION_MAKER.to_owned(), "-0".to_owned()));
            return (AUTO_KEEP, 1.0);
        };
        let threshold = if rate >= 1.0 { u64::MAX } else { (rate.max(0.0) * u64::MAX as f64) as u64 };
        let keep = context.trace_id.wrapping_mul(KNUTH_FACTOR) < threshold;
        if keep {
            context.tags.push((DECISION_MAKER.to_owned(), "-1".to_owned()));
        }
        context.tags.push((KEEP_RATE.to_owned(), format_rate(rate)));
        (if keep { AUTO_KEEP } else { AUTO_DROP }, rate)
    }
}

/// A rate as dd-trace-cpp writes it: at most 6 decimals, no trailing zeros.
fn format_rate(rate: f64) -> String {
    let s = format!("{rate:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
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
    /// standing; otherwise a request the connection manager traces is kept or
    /// dropped by the agent's rate (`decide`), another one dropped by the user
    /// (-1). A new trace has 128-bit ids, the upper half the start second then
    /// zeros, and its root span's id is the lower half.
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
        let (priority, agent_rate) = match context.priority {
            Some(p) => (p, None),
            None if s.decision.traced => {
                let (priority, rate) = self.0.decide(&mut context);
                (priority, Some(rate))
            }
            None => (USER_DROP, None),
        };
        let resource = match s.operation {
            OperationName::Ingress => "ingress".to_owned(),
            OperationName::Egress => format!("egress {}", s.host),
        };
        Some(Box::new(DatadogSpan {
            context,
            span_id,
            priority,
            agent_rate,
            resource,
            start: s.start,
            started: Instant::now(),
            error: false,
            meta: Vec::new(),
            driver: self.0.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envoy 1.40 with an agent answering a rate of 0.5 for the service: the
    /// trace ids it kept and dropped, and the tags it sent.
    #[test]
    fn the_agent_rate_decides_on_the_trace_id_hash() {
        let store = crate::stats::Store::new();
        let driver = DatadogDriver {
            collector_cluster: "agent".into(),
            collector_host: HeaderValue::from_static("agent"),
            service_name: "envoy-demo".into(),
            version: String::new(),
            runtime_id: String::new(),
            agent_rates: std::sync::RwLock::new(None),
            stats: DatadogStats::new(&store, "tracing.datadog."),
            clusters: crate::thread_local::ThreadLocalRegistry::new().allocate_slot(),
            index: 0,
        };
        let mut ctx = Context { trace_id: 6833184303105277991, ..Context::default() };
        assert_eq!(driver.decide(&mut ctx), (AUTO_KEEP, 1.0), "before the agent answers");
        assert_eq!(ctx.tags, vec![(DECISION_MAKER.to_owned(), "-0".to_owned())]);
        let rates = serde_json::json!({ "service:envoy-demo,env:": 0.5, "service:,env:": 1 });
        *driver.agent_rates.write().unwrap() = rates.as_object().cloned();
        for (id, kept) in [(6833184303105277991, false), (14556604174055570091, false), (4077230692942869235, true)] {
            let mut ctx = Context { trace_id: id, ..Context::default() };
            let priority = driver.decide(&mut ctx).0;
            assert_eq!(priority, i32::from(kept), "{id}");
            let tags: Vec<String> = ctx.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let expected = if kept { "_dd.p.dm=-1,_dd.p.ksr=0.5" } else { "_dd.p.ksr=0.5" };
            assert_eq!(tags.join(","), expected);
        }
        assert_eq!((format_rate(1.0), format_rate(0.25)), ("1".to_owned(), "0.25".to_owned()));
    }
}
