//! A downstream connection as the network filters receive it.

use std::net::SocketAddr;

use super::transport::TransportStream;

/// Envoy's default `per_connection_buffer_limit_bytes`, of listeners and clusters.
pub const DEFAULT_BUFFER_LIMIT: u32 = 1024 * 1024;

/// Addresses of a connection, for filters, logs and headers.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The connection is TLS (its filter chain's transport socket terminated it):
    /// `x-forwarded-proto: https`, as Envoy sets it.
    pub secure: bool,
}

/// An accepted connection on its worker.
#[derive(Debug)]
pub struct DownstreamConnection {
    /// The byte stream, whichever transport (TCP today) carries it.
    pub stream: TransportStream,
    pub info: ConnectionInfo,
    /// The listener's `per_connection_buffer_limit_bytes`.
    pub buffer_limit: u32,
}
