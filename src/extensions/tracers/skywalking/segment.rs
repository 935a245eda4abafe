//! A request's segment and its spans, as Envoy's SkyWalking tracer (on
//! cpp2sky) builds them: the connection manager's span is the segment's Entry
//! span (id 0, parent -1), named by the request's path and never renamed (a
//! decorator does not apply); the router's `start_child_span` adds an Exit span
//! per upstream request, the only kind that writes `sw8` — so without child
//! spans nothing is injected and a caller's `sw8` goes on untouched. The Exit
//! span is renamed to the upstream path as it is injected. Envoy's tag names
//! are mapped as cpp2sky does: `http.url` is `url`, `http.status_code` is
//! `status_code`, `error` also marks the span, `peer.address` is its `peer`.
//! The segment is reported once all its spans ended.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::proto::{self, KeyStringValuePair, SegmentObject, SegmentReference, SpanObject};
use super::sw8::{Sw8, SW8};
use super::SkyWalkingDriver;
use crate::tracing::{Span, UpstreamContext};

/// Milliseconds since the epoch, SkyWalking's times.
pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// One request's segment while its spans are open.
pub struct Segment {
    pub trace_id: String,
    pub segment_id: String,
    /// The spans so far, each at the index of its id.
    pub spans: Vec<SpanObject>,
    /// Spans not ended yet.
    pub open: usize,
    pub driver: Arc<SkyWalkingDriver>,
}

impl Segment {
    /// A new segment with its Entry span, a child of `parent` when the request
    /// carried one.
    pub fn start(driver: Arc<SkyWalkingDriver>, parent: Option<Sw8>, path: &str, start: SystemTime) -> SkyWalkingSpan {
        let trace_id = match &parent {
            Some(p) => p.trace_id.clone(),
            None => new_id(),
        };
        let refs = parent
            .map(|p| SegmentReference {
                ref_type: 0,
                trace_id: p.trace_id,
                parent_trace_segment_id: p.segment_id,
                parent_span_id: p.span_id,
                parent_service: p.service,
                parent_service_instance: p.instance,
                parent_endpoint: p.endpoint,
                network_address_used_at_peer: p.target_address,
            })
            .into_iter()
            .collect();
        let entry = SpanObject {
            span_id: 0,
            parent_span_id: -1,
            start_time: millis(start),
            refs,
            operation_name: path.to_owned(),
            span_type: proto::SPAN_TYPE_ENTRY,
            span_layer: proto::SPAN_LAYER_HTTP,
            component_id: proto::COMPONENT_ENVOY,
            ..Default::default()
        };
        let segment = Segment { trace_id, segment_id: new_id(), spans: vec![entry], open: 1, driver };
        SkyWalkingSpan { segment: Rc::new(RefCell::new(segment)), index: 0 }
    }

    fn take_proto(&mut self) -> SegmentObject {
        SegmentObject {
            trace_id: self.trace_id.clone(),
            trace_segment_id: self.segment_id.clone(),
            spans: std::mem::take(&mut self.spans),
            service: self.driver.service.clone(),
            service_instance: self.driver.instance.clone(),
            is_size_limited: false,
        }
    }
}

/// A random id in UUID form, as cpp2sky makes trace and segment ids.
fn new_id() -> String {
    let id = crate::http::headers::uuid_v4();
    String::from_utf8_lossy(id.as_bytes()).into_owned()
}

/// One span of a segment.
pub struct SkyWalkingSpan {
    pub segment: Rc<RefCell<Segment>>,
    pub index: usize,
}

impl Span for SkyWalkingSpan {
    /// Envoy's SkyWalking spans keep their name: the route's decorator is not used.
    fn set_operation(&mut self, _name: &str) {}

    fn set_tag(&mut self, name: &str, value: &str) {
        let mut segment = self.segment.borrow_mut();
        let Some(span) = segment.spans.get_mut(self.index) else { return };
        let key = match name {
            "http.url" => "url",
            "http.status_code" => "status_code",
            "peer.address" => {
                value.clone_into(&mut span.peer);
                return;
            }
            "error" => {
                span.is_error = true;
                name
            }
            other => other,
        };
        span.tags.push(KeyStringValuePair { key: key.to_owned(), value: value.to_owned() });
    }

    fn inject_context(&self, headers: &mut HeaderMap, upstream: &UpstreamContext<'_>) {
        let mut segment = self.segment.borrow_mut();
        let endpoint = segment.spans.first().map(|s| s.operation_name.clone()).unwrap_or_default();
        let Some(span) = segment.spans.get_mut(self.index) else { return };
        if span.span_type != proto::SPAN_TYPE_EXIT {
            return;
        }
        upstream.path.clone_into(&mut span.operation_name);
        let target_address = match upstream.address {
            Some(a) => a.to_string(),
            None => headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_owned(),
        };
        let sw8 = Sw8 {
            sampled: true,
            trace_id: segment.trace_id.clone(),
            segment_id: segment.segment_id.clone(),
            span_id: self.index as i32,
            service: segment.driver.service.clone(),
            instance: segment.driver.instance.clone(),
            endpoint,
            target_address,
        };
        if let Ok(v) = HeaderValue::from_str(&sw8.encode()) {
            headers.insert(SW8, v);
        }
    }

    /// An Exit span under this one, named as its parent until it is injected.
    fn spawn_child(&self, _name: &str, start: SystemTime) -> Option<Box<dyn Span>> {
        let mut segment = self.segment.borrow_mut();
        let parent = segment.spans.get(self.index)?;
        let child = SpanObject {
            span_id: segment.spans.len() as i32,
            parent_span_id: parent.span_id,
            start_time: millis(start),
            operation_name: parent.operation_name.clone(),
            span_type: proto::SPAN_TYPE_EXIT,
            span_layer: parent.span_layer,
            component_id: proto::COMPONENT_ENVOY,
            ..Default::default()
        };
        let index = segment.spans.len();
        segment.spans.push(child);
        segment.open += 1;
        Some(Box::new(SkyWalkingSpan { segment: self.segment.clone(), index }))
    }

    fn finish(self: Box<Self>) {
        let mut segment = self.segment.borrow_mut();
        if let Some(span) = segment.spans.get_mut(self.index) {
            span.end_time = millis(SystemTime::now());
        }
        segment.open = segment.open.saturating_sub(1);
        if segment.open == 0 && !segment.spans.is_empty() {
            let object = segment.take_proto();
            let driver = segment.driver.clone();
            drop(segment);
            super::reporter::report(&driver, object);
        }
    }
}
