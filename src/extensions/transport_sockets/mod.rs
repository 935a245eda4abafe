//! Transport sockets (`transport_socket` on a listener's filter chain or a
//! cluster): Envoy's `envoy.transport_sockets.*`. Each reads its config here and
//! hands the network layer a ready-to-use transport (`network::tls`), as the
//! network filters are handed down through `NetworkFilterBuilder`.

pub mod proxy_protocol;
pub mod tls;
