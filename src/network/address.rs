//! Envoy's `Address` config message, as listeners, clusters and sinks use it:
//! Courier binds and connects TCP socket addresses only, and says so at load.

use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address};

use crate::config::{ConfigError, FieldPath};

/// The `(address, port)` of an `Address` that must be a TCP socket address.
pub fn socket_address(addr: &Address, path: &FieldPath) -> Result<(String, u16), ConfigError> {
    match &addr.address {
        Some(address::Address::SocketAddress(sa)) => {
            if socket_address::Protocol::try_from(sa.protocol) != Ok(socket_address::Protocol::Tcp) {
                return Err(path.field_error("socket_address.protocol", "only TCP is supported by Courier"));
            }
            let port = match &sa.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(*p)
                    .map_err(|_| path.field_error("socket_address.port_value", format!("port {p} is out of range")))?,
                Some(socket_address::PortSpecifier::NamedPort(_)) => {
                    return Err(path.field_error("socket_address.named_port", "named ports are not supported"))
                }
                None => 0,
            };
            Ok((sa.address.clone(), port))
        }
        Some(_) => Err(path.error("only socket_address is supported by Courier")),
        None => Err(path.error("an address is required")),
    }
}

/// `socket_address.ipv4_compat` of an `Address` (false for any other kind).
pub fn ipv4_compat(addr: &Address) -> bool {
    matches!(&addr.address, Some(address::Address::SocketAddress(sa)) if sa.ipv4_compat)
}
