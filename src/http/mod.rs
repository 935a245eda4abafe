//! The HTTP path: the connection manager (codec, streams, filter chain), the HTTP
//! filters' interface, bodies, header rules, and per-stream info.

pub mod body;
pub mod conn_manager;
pub mod filter;
pub mod grpc;
pub mod header_map_pool;
pub mod headers;
pub mod http1;
pub mod http2;
