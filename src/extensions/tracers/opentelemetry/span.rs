//! An OpenTelemetry span as Envoy 1.40's tracer makes it: named by the route's
//! decorator, else `ingress` or `egress <host>`; SERVER on the ingress side,
//! CLIENT on egress; always a new span id, the caller's as its parent; the tags
//! as string attributes (`error: true` also makes the status ERROR); flags saying
//! whether the parent is remote. A sampled
//! span goes to its worker's exporter when it ends.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::opentelemetry::proto::common::v1::KeyValue;
use http::HeaderMap;

use super::traceparent::inject;
use super::OtelDriver;
use crate::extensions::common::otlp::string_attribute;
use crate::extensions::common::otlp::trace as otlp;
use crate::tracing::Span;

pub struct OtelSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Zero for a root span.
    pub parent_span_id: [u8; 8],
    pub remote_parent: bool,
    pub sampled: bool,
    pub trace_state: String,
    pub name: String,
    pub kind: i32,
    pub start: SystemTime,
    pub started: Instant,
    pub attributes: Vec<KeyValue>,
    /// Tagged `error: true` (a 5xx or no response): the span's status is ERROR.
    pub error: bool,
    pub driver: Arc<OtelDriver>,
}

impl Span for OtelSpan {
    fn set_operation(&mut self, name: &str) {
        name.clone_into(&mut self.name);
    }

    fn set_tag(&mut self, name: &str, value: &str) {
        if name == "error" {
            self.error = value == "true";
        }
        match self.attributes.iter_mut().find(|kv| kv.key == name) {
            Some(kv) => *kv = string_attribute(name, value),
            None => self.attributes.push(string_attribute(name, value)),
        }
    }

    fn inject_context(&self, headers: &mut HeaderMap, _upstream: &crate::tracing::UpstreamContext<'_>) {
        inject(headers, &self.trace_id, &self.span_id, self.sampled, &self.trace_state);
    }

    fn finish(self: Box<Self>) {
        if !self.sampled {
            return;
        }
        let span = self.to_proto(self.started.elapsed().as_nanos() as u64);
        crate::extensions::tracers::batch::report(&self.driver, span);
    }
}

impl OtelSpan {
    pub fn to_proto(&self, duration_ns: u64) -> otlp::Span {
        // Microseconds, in nanoseconds, as Envoy's clock gives them.
        let start = self.start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64 * 1000);
        let duration_ns = duration_ns / 1000 * 1000;
        let remote = if self.remote_parent { otlp::FLAGS_IS_REMOTE } else { 0 };
        otlp::Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            trace_state: self.trace_state.clone(),
            parent_span_id: if self.parent_span_id == [0; 8] { Vec::new() } else { self.parent_span_id.to_vec() },
            name: self.name.clone(),
            kind: self.kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration_ns,
            attributes: self.attributes.clone(),
            status: self.error.then(|| otlp::Status { message: String::new(), code: otlp::STATUS_CODE_ERROR }),
            flags: otlp::FLAGS_HAS_IS_REMOTE | remote | u32::from(self.sampled),
        }
    }
}
