//! A downstream connection as the network filters receive it.

use std::net::SocketAddr;
use std::rc::Rc;

use super::client_hello::InspectedHello;
use super::proxy_protocol::Tlvs;
use super::tls::DownstreamTlsInfo;
use super::transport::TransportStream;

/// Envoy's default `per_connection_buffer_limit_bytes`, of listeners and clusters.
pub const DEFAULT_BUFFER_LIMIT: u32 = 1024 * 1024;

/// Addresses of a connection, for filters, logs and headers.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// `local` was restored by the `original_dst` listener filter: the
    /// destination the client asked for before a redirect.
    pub local_restored: bool,
    /// The session, when the filter chain's transport socket terminated TLS
    /// (worker-local: a connection never leaves its worker).
    pub tls: Option<Rc<DownstreamTlsInfo>>,
    /// The ClientHello's SNI and fingerprints from the TLS inspector: facts of
    /// the socket, so a passthrough chain has them too, and a chain that
    /// terminates TLS without an inspector has none (Envoy's session does not
    /// set the requested server name).
    pub inspected_hello: Option<Rc<InspectedHello>>,
    /// The TLVs of the downstream's PROXY v2 header that the listener's PROXY
    /// filter kept (its `pass_through_tlvs`), for an upstream PROXY header.
    pub proxy_protocol_tlvs: Option<Tlvs>,
}

impl ConnectionInfo {
    /// The connection is TLS: `x-forwarded-proto: https`, as Envoy sets it.
    pub fn secure(&self) -> bool {
        self.tls.is_some()
    }
}

/// An accepted connection on its worker.
#[derive(Debug)]
pub struct DownstreamConnection {
    /// The byte stream, whichever transport (TCP today) carries it.
    pub stream: TransportStream,
    pub info: ConnectionInfo,
    /// The listener's `per_connection_buffer_limit_bytes`.
    pub buffer_limit: u32,
    /// What listener filters attached to the connection (`%DYNAMIC_METADATA%` of
    /// a TCP access log; HTTP streams have their own, as in Envoy, so it is kept
    /// here rather than in the `ConnectionInfo` every stream copies).
    pub dynamic_metadata: crate::common::dynamic_metadata::DynamicMetadata,
    /// What the filters tell the listener's `access_log`, when it has one.
    pub report: Option<Rc<super::connection_log::ConnectionReport>>,
}
