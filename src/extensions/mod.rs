//! The extension registry: every network filter (and later HTTP filter, access
//! logger, ...) is found here by its `typed_config` type, as in Envoy, so adding
//! one touches this table and its own module only.

pub mod common;
pub mod compression;
pub mod filters;
pub mod stat_sinks;
pub mod supported;
pub mod tracers;
pub mod transport_sockets;

use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use crate::config::{descriptor, ConfigError, FieldPath};
use crate::network::{ListenerFilterFactory, ListenerScope, NetworkFilter, NetworkFilterBuilder};
use crate::router::PerRouteConfig;
use crate::stats::Store;
use crate::thread_local::Slot;
use crate::upstream::ThreadLocalClusterManager;
use filters::http::filter::StreamFilterFactory;

/// What a filter factory may use while it is built from config (main thread).
pub struct FactoryContext<'a> {
    pub store: &'a std::sync::Arc<Store>,
    /// Set by the admin's `/healthcheck/fail` (read by the health_check filter).
    pub health_check_failed: &'a Arc<std::sync::atomic::AtomicBool>,
    /// The server's drain: connections finish what is in flight and close.
    pub drain: &'a crate::network::DrainWatch,
    /// Where each worker finds its clusters at connection time.
    pub clusters: &'a Slot<ThreadLocalClusterManager>,
    /// Whether the cluster manager has a cluster of this name (route tables'
    /// `validate_clusters`).
    pub cluster_exists: &'a dyn Fn(&str) -> bool,
    /// The service cluster (`node.cluster` / `--service-cluster`).
    pub service_cluster: &'a str,
    /// The node's name (`node.id` / `--service-node`).
    pub service_node: &'a str,
    /// The listener being built: its stat scope (`listener.<scope>.`).
    pub listener_stat_scope: &'a str,
    /// The listener's `per_connection_buffer_limit_bytes`: what a connection's
    /// filters may buffer (the router's retry buffer among them).
    pub listener_buffer_limit: u32,
    /// The listener's `bypass_overload_manager`.
    pub listener_bypasses_overload: bool,
    /// The listener's `traffic_direction` is OUTBOUND (its tracing is egress).
    pub listener_outbound: bool,
    /// `node.locality.zone`, which every tracing span carries.
    pub node_zone: &'a str,
    /// The secrets a TLS context may name.
    pub secrets: &'a transport_sockets::tls::SecretManager,
    /// The route configs connection managers fetch by RDS, shared by name.
    pub route_configs: &'a filters::network::http_connection_manager::rds::RouteConfigProviderManager,
}

/// Builds a network filter from its `typed_config`; the path points at it.
pub type NetworkFilterConstructor = fn(&Any, &FieldPath, &FactoryContext<'_>) -> Result<NetworkFilter, ConfigError>;

/// A network filter: its canonical name, config type, and factory constructor.
pub struct NetworkFilterExtension {
    pub name: &'static str,
    pub config_type: &'static str,
    pub create: NetworkFilterConstructor,
}

/// What an HTTP filter factory may use while it is built (main thread).
pub struct HttpFilterContext<'a> {
    pub store: &'a Arc<Store>,
    /// The connection manager's `stat_prefix` (`http.<prefix>.` stats).
    pub hcm_stat_prefix: &'a str,
    /// Set by the admin's `/healthcheck/fail`, cleared by `/healthcheck/ok`.
    pub health_check_failed: &'a Arc<std::sync::atomic::AtomicBool>,
    /// The service cluster (`node.cluster` / `--service-cluster`).
    pub service_cluster: &'a str,
    /// The filter's `name` in `http_filters`: routes' `typed_per_filter_config`
    /// entries for it are found under this name, as in Envoy.
    pub filter_name: &'a str,
    /// Where each worker finds its clusters (a filter that calls a service).
    pub clusters: &'a Slot<ThreadLocalClusterManager>,
    /// The chain's compressor filters, which register themselves as they are
    /// built (one per connection manager).
    pub compressor_chain: &'a Arc<filters::http::compressor::chain::CompressorChain>,
}

/// Builds an HTTP filter factory from its `typed_config`; the path points at it.
pub type HttpFilterConstructor =
    fn(&Any, &FieldPath, &HttpFilterContext<'_>) -> Result<Arc<dyn StreamFilterFactory>, ConfigError>;

/// Decodes a filter's per-route config; the path points at the `Any`. Stats it
/// declares live in `store`.
pub type PerRouteConstructor = fn(&Any, &FieldPath, &Store) -> Result<PerRouteConfig, ConfigError>;

/// An HTTP filter: canonical name, config type, and constructors.
pub struct HttpFilterExtension {
    pub name: &'static str,
    pub config_type: &'static str,
    pub create: HttpFilterConstructor,
    /// `(per-route config type, constructor)` when the filter has per-route config.
    pub per_route: Option<(&'static str, PerRouteConstructor)>,
}

/// Every network filter Courier ships: the terminal ones, then read filters.
pub const NETWORK_FILTERS: &[NetworkFilterExtension] = &[
    filters::network::tcp_proxy::EXTENSION,
    filters::network::http_connection_manager::EXTENSION,
    filters::network::rbac::EXTENSION,
    filters::network::connection_limit::EXTENSION,
    filters::network::local_ratelimit::EXTENSION,
];

/// The listener filters Courier ships.
pub use filters::listener::LISTENER_FILTERS;

/// The HTTP filters Courier ships, the router excepted (it is built into the
/// connection manager as its terminal stage).
pub use filters::http::HTTP_FILTERS;

/// Builds the HTTP filter whose config is `any`; `path` points at `typed_config`.
pub fn create_http_filter(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    let type_name = descriptor::type_name(&any.type_url);
    let ext = HTTP_FILTERS.iter().find(|e| e.config_type == type_name).ok_or_else(|| {
        path.field_error("@type", format!("unsupported extension '{}' (not an HTTP filter)", any.type_url))
    })?;
    (ext.create)(any, path, ctx)
}

/// Decodes `typed_per_filter_config[name]`. The filter is found by the config's
/// type; a type no filter declares as its per-route config is an error.
pub fn create_per_route_config(
    _name: &str,
    any: &Any,
    path: &FieldPath,
    store: &Store,
) -> Result<Option<PerRouteConfig>, ConfigError> {
    let type_name = descriptor::type_name(&any.type_url);
    match HTTP_FILTERS.iter().find_map(|e| e.per_route.filter(|(t, _)| *t == type_name)) {
        Some((_, build)) => build(any, path, store).map(Some),
        None => Err(path.field_error("@type", format!("unsupported per-route config '{}'", any.type_url))),
    }
}

/// Builds the network filter whose config is `any`; `path` points at `typed_config`.
pub fn create_network_filter(
    any: &Any,
    path: &FieldPath,
    ctx: &FactoryContext<'_>,
) -> Result<NetworkFilter, ConfigError> {
    let type_name = descriptor::type_name(&any.type_url);
    let ext = NETWORK_FILTERS.iter().find(|e| e.config_type == type_name).ok_or_else(|| {
        path.field_error("@type", format!("unsupported extension '{}' (not a network filter)", any.type_url))
    })?;
    (ext.create)(any, path, ctx)
}

/// Listeners build their filters through the registry, with the listener's own
/// stat scope and buffer limit in place of the context's.
impl NetworkFilterBuilder for FactoryContext<'_> {
    fn build(
        &self,
        typed_config: &Any,
        path: &FieldPath,
        listener: ListenerScope<'_>,
    ) -> Result<NetworkFilter, ConfigError> {
        let ctx = FactoryContext {
            listener_stat_scope: listener.stat_scope,
            listener_buffer_limit: listener.buffer_limit,
            listener_bypasses_overload: listener.bypass_overload_manager,
            listener_outbound: listener.outbound,
            ..*self
        };
        create_network_filter(typed_config, path, &ctx)
    }

    fn build_listener_filter(
        &self,
        typed_config: &Any,
        path: &FieldPath,
        _listener: ListenerScope<'_>,
    ) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError> {
        let type_name = descriptor::type_name(&typed_config.type_url);
        let ext = LISTENER_FILTERS.iter().find(|e| e.config_type == type_name).ok_or_else(|| {
            path.field_error(
                "@type",
                format!("unsupported extension '{}' (not a listener filter)", typed_config.type_url),
            )
        })?;
        (ext.create)(typed_config, path, self.store)
    }

    fn build_access_logs(
        &self,
        logs: &[envoy_types::pb::envoy::config::accesslog::v3::AccessLog],
        path: &FieldPath,
    ) -> Result<Vec<Arc<dyn crate::network::ListenerAccessLog>>, ConfigError> {
        crate::access_log::build_listener_access_logs(logs, path, self.store)
    }

    fn transport_sockets(&self) -> Option<&dyn crate::network::tls::TransportSocketBuilder> {
        Some(self)
    }
}
