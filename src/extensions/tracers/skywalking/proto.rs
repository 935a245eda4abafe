//! The messages of SkyWalking's trace report (`skywalking.v3`, the
//! `language-agent/Tracing.proto` and `common/Common.proto` of Apache
//! SkyWalking's public data-collect-protocol), written here with prost's
//! derive because `envoy-types` does not carry them. Only what a proxy
//! reports is declared: a segment, its spans, their references to the caller
//! and their tags; the field numbers are the protocol's (and checked against
//! what Envoy 1.40 sends on the wire).

/// `SegmentObject`: one process's part of a trace, sent when all its spans ended.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentObject {
    #[prost(string, tag = "1")]
    pub trace_id: String,
    #[prost(string, tag = "2")]
    pub trace_segment_id: String,
    #[prost(message, repeated, tag = "3")]
    pub spans: Vec<SpanObject>,
    #[prost(string, tag = "4")]
    pub service: String,
    #[prost(string, tag = "5")]
    pub service_instance: String,
    #[prost(bool, tag = "6")]
    pub is_size_limited: bool,
}

/// `SpanObject`; times are milliseconds since the epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanObject {
    #[prost(int32, tag = "1")]
    pub span_id: i32,
    /// -1 for the segment's first span.
    #[prost(int32, tag = "2")]
    pub parent_span_id: i32,
    #[prost(int64, tag = "3")]
    pub start_time: i64,
    #[prost(int64, tag = "4")]
    pub end_time: i64,
    #[prost(message, repeated, tag = "5")]
    pub refs: Vec<SegmentReference>,
    #[prost(string, tag = "6")]
    pub operation_name: String,
    #[prost(string, tag = "7")]
    pub peer: String,
    #[prost(int32, tag = "8")]
    pub span_type: i32,
    #[prost(int32, tag = "9")]
    pub span_layer: i32,
    #[prost(int32, tag = "10")]
    pub component_id: i32,
    #[prost(bool, tag = "11")]
    pub is_error: bool,
    #[prost(message, repeated, tag = "12")]
    pub tags: Vec<KeyStringValuePair>,
    #[prost(bool, tag = "14")]
    pub skip_analysis: bool,
}

/// `SegmentReference`: the caller's span, as its `sw8` header named it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentReference {
    /// `RefType`: 0 is `CrossProcess`.
    #[prost(int32, tag = "1")]
    pub ref_type: i32,
    #[prost(string, tag = "2")]
    pub trace_id: String,
    #[prost(string, tag = "3")]
    pub parent_trace_segment_id: String,
    #[prost(int32, tag = "4")]
    pub parent_span_id: i32,
    #[prost(string, tag = "5")]
    pub parent_service: String,
    #[prost(string, tag = "6")]
    pub parent_service_instance: String,
    #[prost(string, tag = "7")]
    pub parent_endpoint: String,
    #[prost(string, tag = "8")]
    pub network_address_used_at_peer: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyStringValuePair {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `SpanType`.
pub const SPAN_TYPE_ENTRY: i32 = 0;
pub const SPAN_TYPE_EXIT: i32 = 1;
/// `SpanLayer.Http`.
pub const SPAN_LAYER_HTTP: i32 = 3;
/// The component id Envoy reports its spans under (SkyWalking's `Envoy`).
pub const COMPONENT_ENVOY: i32 = 9000;
