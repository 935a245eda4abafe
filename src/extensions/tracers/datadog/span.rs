//! A Datadog span and its MessagePack, in the shape Envoy 1.40 sends to the
//! agent (checked by decoding what Envoy posted): `name` is always
//! `envoy.proxy`, the operation (`ingress`, `egress <host>`, or the decorator's)
//! is the `resource`, `type` is `web`; the connection manager's tags go in
//! `meta`, except `error`, which becomes the span's `error` field; the tracer
//! adds `language`, `runtime-id`, `version`, the trace's `_dd.p.*` tags (every
//! Envoy span is its trace segment's root), `_dd.origin` and, for a W3C
//! caller, `_dd.parent_id`, and the metrics `process_id`,
//! `_sampling_priority_v1` and, for a decision made here, `_dd.agent_psr` (the agent's rate).
//! Every span goes to the agent, kept or not: the agent counts the dropped ones.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::msgpack;
use super::propagation::{inject, Context};
use super::DatadogDriver;
use crate::extensions::tracers::batch;
use crate::tracing::Span;

pub const SPAN_NAME: &str = "envoy.proxy";
const SPAN_TYPE: &str = "web";

pub struct DatadogSpan {
    pub context: Context,
    pub span_id: u64,
    pub priority: i32,
    /// The priority was decided here, by the agent's rate: that rate.
    pub agent_rate: Option<f64>,
    pub resource: String,
    pub start: SystemTime,
    pub started: Instant,
    pub error: bool,
    pub meta: Vec<(String, String)>,
    pub driver: Arc<DatadogDriver>,
}

impl Span for DatadogSpan {
    fn set_operation(&mut self, name: &str) {
        name.clone_into(&mut self.resource);
    }

    fn set_tag(&mut self, name: &str, value: &str) {
        if name == "error" {
            self.error = value == "true";
            return;
        }
        match self.meta.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.meta.push((name.to_owned(), value.to_owned())),
        }
    }

    fn inject_context(&self, headers: &mut HeaderMap, _upstream: &crate::tracing::UpstreamContext<'_>) {
        inject(&self.context, self.span_id, self.priority, headers);
    }

    fn finish(self: Box<Self>) {
        let duration = self.started.elapsed().as_nanos() as u64;
        let encoded = self.encode(duration);
        batch::report(&self.driver, encoded);
    }
}

impl DatadogSpan {
    /// The span as a msgpack map (one trace of the body is an array of these).
    pub fn encode(&self, duration_ns: u64) -> Vec<u8> {
        let d = &self.driver;
        let start = self.start.duration_since(UNIX_EPOCH).map_or(0, |t| t.as_nanos() as u64);
        let mut out = Vec::with_capacity(1024);
        msgpack::map(&mut out, 12);
        let string = |out: &mut Vec<u8>, k: &str, v: &str| {
            msgpack::str(out, k);
            msgpack::str(out, v);
        };
        string(&mut out, "service", &d.service_name);
        string(&mut out, "name", SPAN_NAME);
        string(&mut out, "resource", &self.resource);
        for (k, v) in [
            ("trace_id", self.context.trace_id),
            ("span_id", self.span_id),
            ("parent_id", self.context.parent_id),
            ("start", start),
            ("duration", duration_ns),
        ] {
            msgpack::str(&mut out, k);
            msgpack::uint(&mut out, v);
        }
        msgpack::str(&mut out, "error");
        msgpack::int(&mut out, i64::from(self.error));

        let tracer_meta = [("language", "cpp"), ("runtime-id", d.runtime_id.as_str()), ("version", &d.version)];
        let origin = self.context.origin.as_deref().map(|o| ("_dd.origin", o));
        let last_parent = self.context.last_datadog_parent.as_deref().map(|p| ("_dd.parent_id", p));
        let trace_tags = self.context.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let own = self.meta.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let meta: Vec<(&str, &str)> =
            trace_tags.chain(origin).chain(last_parent).chain(tracer_meta).chain(own).collect();
        msgpack::str(&mut out, "meta");
        msgpack::map(&mut out, meta.len());
        for (k, v) in meta {
            string(&mut out, k, v);
        }

        msgpack::str(&mut out, "metrics");
        msgpack::map(&mut out, if self.agent_rate.is_some() { 3 } else { 2 });
        msgpack::str(&mut out, "process_id");
        msgpack::float(&mut out, f64::from(std::process::id()));
        if let Some(rate) = self.agent_rate {
            msgpack::str(&mut out, "_dd.agent_psr");
            msgpack::float(&mut out, rate);
        }
        msgpack::str(&mut out, "_sampling_priority_v1");
        msgpack::float(&mut out, f64::from(self.priority));
        string(&mut out, "type", SPAN_TYPE);
        out
    }
}
