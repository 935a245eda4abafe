//! HTTP as a protocol, below everything that routes or forwards it: header rules,
//! request bodies, the HTTP/1 and HTTP/2 codecs (the server side the connection
//! manager drives, the client side the connection pools drive), gRPC's framing of
//! errors, and the replies Courier makes itself. The connection manager that turns
//! a connection into streams is a network filter (`extensions::filters::network::
//! http_connection_manager`), as in Envoy.

pub mod body;
pub mod grpc;
pub mod header_map_pool;
pub mod headers;
pub mod http1;
pub mod http2;
pub mod local_reply;
