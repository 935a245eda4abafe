//! `envoy.transport_sockets.upstream_proxy_protocol`: a cluster's connections
//! start with a PROXY protocol header naming the downstream client
//! (`network::proxy_protocol` writes it), then speak their inner
//! `transport_socket` (TLS or `raw_buffer`).
//!
//! `config.version`, `config.added_tlvs` (a `value`; a `format_string` is
//! refused) and `config.pass_through_tlvs` (the TLVs of the downstream's PROXY
//! header that the listener's PROXY filter kept) are read;
//! `allow_unspecified_address` and `tlv_as_pool_key` are refused.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::proxy_protocol_config::Version as PbVersion;
use envoy_types::pb::envoy::config::core::v3::proxy_protocol_pass_through_tl_vs::PassTlVsMatchType;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::core::v3::ProxyProtocolPassThroughTlVs;
use envoy_types::pb::envoy::extensions::transport_sockets::proxy_protocol::v3::ProxyProtocolUpstreamTransport;
use envoy_types::pb::google::protobuf::Any;

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::network::proxy_protocol::{PassThroughTlvs, UpstreamProxyProtocol, UpstreamProxyProtocolStats, Version};
use crate::network::tls::{TransportSocketBuilder, UpstreamTransport, RAW_BUFFER_TYPE};
use crate::stats::Store;

pub const CONFIG_TYPE: &str = "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport";

/// A cluster's transport socket of any kind: TLS through `sockets.upstream`,
/// this one wrapping another, or `raw_buffer`.
pub fn upstream_transport(
    sockets: &dyn TransportSocketBuilder,
    store: &Store,
    any: &Any,
    path: &FieldPath,
    stat_prefix: &str,
) -> Result<UpstreamTransport, ConfigError> {
    match crate::config::descriptor::type_name(&any.type_url) {
        RAW_BUFFER_TYPE => Ok(UpstreamTransport::default()),
        CONFIG_TYPE => {
            let proto: ProxyProtocolUpstreamTransport = decode_any(any, path)?;
            let config = proto.config.unwrap_or_default();
            let version = match PbVersion::try_from(config.version) {
                Ok(PbVersion::V2) => Version::V2,
                _ => Version::V1,
            };
            let mut added_tlvs = Vec::with_capacity(config.added_tlvs.len());
            for (i, tlv) in config.added_tlvs.iter().enumerate() {
                let mut at = path.child("config");
                at.push_field("added_tlvs");
                at.push_index(i);
                // The schema refuses a type above 255 before this.
                let kind =
                    u8::try_from(tlv.r#type).map_err(|_| at.field_error("type", "value must be less than 256"))?;
                if tlv.value.is_empty() {
                    // Envoy's words (a `format_string` is refused as unsupported before this).
                    return Err(at.error("Invalid TLV configuration: one of 'value' or 'format_string' must be set."));
                }
                added_tlvs.push((kind, tlv.value.clone()));
            }
            let pass_through_tlvs = pass_through_tlvs(config.pass_through_tlvs.as_ref());
            let inner = match &proto.transport_socket {
                None => UpstreamTransport::default(),
                Some(socket) => {
                    let mut at = path.child("transport_socket");
                    let Some(ConfigType::TypedConfig(inner)) = &socket.config_type else {
                        return Err(at.field_error("typed_config", "a transport socket needs a typed_config"));
                    };
                    at.push_field("typed_config");
                    sockets.upstream_transport(inner, &at, stat_prefix)?
                }
            };
            if inner.proxy_protocol.is_some() {
                return Err(path.field_error("transport_socket", "the PROXY protocol is written once"));
            }
            let stats = UpstreamProxyProtocolStats::new(store, &format!("{stat_prefix}upstream.proxyprotocol."));
            Ok(UpstreamTransport {
                tls: inner.tls,
                proxy_protocol: Some(Arc::new(UpstreamProxyProtocol { version, added_tlvs, pass_through_tlvs, stats })),
            })
        }
        _ => Ok(UpstreamTransport { tls: Some(sockets.upstream(any, path, stat_prefix)?), proxy_protocol: None }),
    }
}

/// A `ProxyProtocolPassThroughTLVs` (of this transport or of the listener
/// filter): unset passes none; `tlv_type`s count by their low byte, as Envoy's.
pub fn pass_through_tlvs(config: Option<&ProxyProtocolPassThroughTlVs>) -> PassThroughTlvs {
    match config {
        None => PassThroughTlvs::None,
        Some(c) if c.match_type == PassTlVsMatchType::IncludeAll as i32 => PassThroughTlvs::All,
        Some(c) => PassThroughTlvs::Only(c.tlv_type.iter().map(|t| (t & 0xff) as u8).collect()),
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (CONFIG_TYPE, &["config", "transport_socket"]),
    ("envoy.config.core.v3.ProxyProtocolConfig", &["version", "added_tlvs", "pass_through_tlvs"]),
    ("envoy.config.core.v3.ProxyProtocolPassThroughTLVs", &["match_type", "tlv_type"]),
    ("envoy.config.core.v3.TlvEntry", &["type", "value"]),
    (RAW_BUFFER_TYPE, &[]),
];
