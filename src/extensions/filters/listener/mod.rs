//! Listener filters: they run on an accepted socket before its filter chain is
//! chosen, and find what the chain match reads (SNI, ALPN, the transport, the
//! client's address behind a proxy). Registered here by config type, as the
//! network and HTTP filters are.

pub mod http_inspector;
pub mod original_dst;
pub mod proxy_protocol;
pub mod tls_inspector;

use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use crate::config::{ConfigError, FieldPath};
use crate::network::ListenerFilterFactory;
use crate::stats::Store;

/// Builds a listener filter from its `typed_config`; the path points at it.
pub type ListenerFilterConstructor =
    fn(&Any, &FieldPath, &Store) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError>;

/// A listener filter: its canonical name, config type, and constructor.
pub struct ListenerFilterExtension {
    pub name: &'static str,
    pub config_type: &'static str,
    pub create: ListenerFilterConstructor,
}

/// Every listener filter Courier ships.
pub const LISTENER_FILTERS: &[ListenerFilterExtension] =
    &[tls_inspector::EXTENSION, http_inspector::EXTENSION, proxy_protocol::EXTENSION, original_dst::EXTENSION];

/// The fields of the listener filters' configs that Courier implements.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        &[
            "enable_ja3_fingerprinting",
            "enable_ja4_fingerprinting",
            "initial_read_buffer_size",
            "close_connection_on_client_hello_parsing_errors",
            "max_client_hello_size",
        ],
    ),
    ("envoy.extensions.filters.listener.http_inspector.v3.HttpInspector", &[]),
    ("envoy.extensions.filters.listener.original_dst.v3.OriginalDst", &[]),
    (
        "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
        &["allow_requests_without_proxy_protocol", "stat_prefix", "rules", "disallowed_versions", "pass_through_tlvs"],
    ),
    ("envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol.Rule", &["tlv_type", "on_tlv_present"]),
    ("envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol.KeyValuePair", &["metadata_namespace", "key"]),
];
