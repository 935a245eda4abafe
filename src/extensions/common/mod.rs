//! What several extensions share (Envoy's `extensions/common`): the OTLP
//! messages the OpenTelemetry tracer and stat sink send, and the unary gRPC
//! call both make to their collector.

pub mod grpc_client;
pub mod otlp;
