//! A Zipkin span and its JSON (Zipkin's v2 API, `HTTP_JSON`), in the shape
//! Envoy 1.40 sends: the span's kind (SERVER for the ingress side, CLIENT for
//! egress), `shared` for a server span that shares the caller's span id, the
//! local endpoint (the node's service cluster and address), the closing
//! annotation (`ss` or `cr`) and the tags. A span is encoded when it ends, on
//! its worker, and only if it is sampled.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde_json::{json, Map, Value};

use super::span_context::{hex16, inject, trace_id_hex, SpanContext};
use super::ZipkinDriver;
use crate::extensions::tracers::batch;
use crate::tracing::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

pub struct ZipkinSpan {
    pub context: SpanContext,
    pub kind: Kind,
    /// A server span that shares its caller's id (`shared_span_context`).
    pub shared: bool,
    pub name: String,
    pub start: SystemTime,
    pub started: Instant,
    /// The request came with a single `b3` header: the context goes on in one.
    pub single_b3: bool,
    pub tags: Map<String, Value>,
    pub driver: Arc<ZipkinDriver>,
}

impl Span for ZipkinSpan {
    fn set_operation(&mut self, name: &str) {
        name.clone_into(&mut self.name);
    }

    fn set_tag(&mut self, name: &str, value: &str) {
        self.tags.insert(name.to_owned(), Value::String(value.to_owned()));
    }

    fn inject_context(&self, headers: &mut HeaderMap, _upstream: &crate::tracing::UpstreamContext<'_>) {
        inject(&self.context, headers, self.single_b3);
    }

    fn finish(self: Box<Self>) {
        if !self.context.sampled {
            return;
        }
        let duration = self.started.elapsed().as_micros() as u64;
        let json = self.to_json(duration);
        batch::report(&self.driver, json);
    }
}

impl ZipkinSpan {
    /// The span as one element of the collector's JSON array.
    pub fn to_json(&self, duration_us: u64) -> String {
        let timestamp = self.start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let (kind, closing) = match self.kind {
            Kind::Server => ("SERVER", "ss"),
            Kind::Client => ("CLIENT", "cr"),
        };
        let ip = self.driver.local_ip;
        let mut endpoint = json!({ "serviceName": self.driver.service_name, "port": 0 });
        endpoint[if ip.is_ipv4() { "ipv4" } else { "ipv6" }] = Value::String(ip.to_string());
        let mut span = json!({
            "traceId": trace_id_hex(&self.context),
            "name": self.name,
            "id": hex16(self.context.id),
            "kind": kind,
            "timestamp": timestamp,
            "duration": duration_us,
            "localEndpoint": endpoint,
            "annotations": [{ "timestamp": timestamp + duration_us, "value": closing }],
            "tags": self.tags,
        });
        if self.context.parent_id != 0 {
            span["parentId"] = Value::String(hex16(self.context.parent_id));
        }
        if self.shared {
            span["shared"] = Value::Bool(true);
        }
        span.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread_local::ThreadLocalRegistry;

    fn driver() -> Arc<ZipkinDriver> {
        Arc::new(ZipkinDriver {
            collector: super::super::Collector {
                cluster: "zipkin".into(),
                endpoint: "/api/v2/spans".into(),
                host: http::HeaderValue::from_static("zipkin"),
            },
            trace_id_128bit: false,
            shared_span_context: true,
            service_name: "front".into(),
            local_ip: "192.0.2.2".parse().unwrap(),
            stats: super::super::reporter::ZipkinStats::new(&crate::stats::Store::new(), "tracing.zipkin."),
            clusters: ThreadLocalRegistry::new().allocate_slot(),
            index: 0,
        })
    }

    /// The shape Envoy 1.40 sends for a server span joining a caller's trace.
    #[test]
    fn server_span_json() {
        let mut span = ZipkinSpan {
            context: SpanContext { trace_id_high: 0, trace_id: 1, id: 2, parent_id: 3, sampled: true },
            kind: Kind::Server,
            shared: true,
            name: "example.com".into(),
            start: UNIX_EPOCH + std::time::Duration::from_micros(1_000),
            started: Instant::now(),
            single_b3: false,
            tags: Map::new(),
            driver: driver(),
        };
        span.set_operation("myOp");
        span.set_tag("http.status_code", "200");
        let v: Value = serde_json::from_str(&span.to_json(500)).unwrap();
        assert_eq!(
            v,
            json!({
                "traceId": "0000000000000001",
                "id": "0000000000000002",
                "parentId": "0000000000000003",
                "name": "myOp",
                "kind": "SERVER",
                "shared": true,
                "timestamp": 1000,
                "duration": 500,
                "localEndpoint": { "serviceName": "front", "ipv4": "192.0.2.2", "port": 0 },
                "annotations": [{ "timestamp": 1500, "value": "ss" }],
                "tags": { "http.status_code": "200" },
            })
        );
    }
}
