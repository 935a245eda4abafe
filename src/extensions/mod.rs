//! The extension registry: every network filter (and later HTTP filter, access
//! logger, ...) is found here by its `typed_config` type, as in Envoy, so adding
//! one touches this table and its own module only.

pub mod filters;

use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use crate::config::{descriptor, ConfigError, FieldPath};
use crate::network::NetworkFilterFactory;
use crate::stats::Store;
use crate::thread_local::Slot;
use crate::upstream::ThreadLocalClusterManager;

/// What a filter factory may use while it is built from config (main thread).
pub struct FactoryContext<'a> {
    pub store: &'a Store,
    /// Where each worker finds its clusters at connection time.
    pub clusters: &'a Slot<ThreadLocalClusterManager>,
}

/// Builds a network filter from its `typed_config`; the path points at it.
pub type NetworkFilterConstructor =
    fn(&Any, &FieldPath, &FactoryContext<'_>) -> Result<Arc<dyn NetworkFilterFactory>, ConfigError>;

/// A network filter: its canonical name, config type, and factory constructor.
pub struct NetworkFilterExtension {
    pub name: &'static str,
    pub config_type: &'static str,
    pub create: NetworkFilterConstructor,
}

/// Every network filter Courier ships.
pub const NETWORK_FILTERS: &[NetworkFilterExtension] = &[filters::network::tcp_proxy::EXTENSION];

/// True when `type_name` (without the URL host) is the config type of a registered
/// extension; the config checker accepts no other `Any`.
pub fn is_registered(type_name: &str) -> bool {
    NETWORK_FILTERS.iter().any(|e| e.config_type == type_name)
}

/// Builds the network filter whose config is `any`; `path` points at `typed_config`.
pub fn create_network_filter(
    any: &Any,
    path: &FieldPath,
    ctx: &FactoryContext<'_>,
) -> Result<Arc<dyn NetworkFilterFactory>, ConfigError> {
    let type_name = descriptor::type_name(&any.type_url);
    let ext = NETWORK_FILTERS
        .iter()
        .find(|e| e.config_type == type_name)
        .ok_or_else(|| {
            path.field_error(
                "@type",
                format!(
                    "unsupported extension '{}' (not a network filter)",
                    any.type_url
                ),
            )
        })?;
    (ext.create)(any, path, ctx)
}
