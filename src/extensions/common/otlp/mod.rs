//! OTLP (OpenTelemetry protocol) messages, declared with prost from the public
//! `opentelemetry-proto` definitions: envoy-types carries only
//! `opentelemetry.proto.common.v1` (attributes, scope). The resource is here,
//! shared by the trace messages (`trace`, the tracer's) and the metric ones
//! (`metrics`, the stat sink's). Only the fields Envoy fills are declared.

pub mod metrics;
pub mod resource;
pub mod trace;

use envoy_types::pb::opentelemetry::proto::common::v1::{any_value, AnyValue, KeyValue};

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// A string-valued attribute, the only kind Envoy sends.
pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..Default::default()
    }
}
