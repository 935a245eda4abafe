//! Tracing providers (Envoy's `extensions/tracers`), built from a connection
//! manager's `tracing.provider`. Zipkin is the one Courier has; any other
//! provider is refused at start-up by name.

pub mod zipkin;

use std::sync::Arc;

use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::tracing::Http as Provider;
use envoy_types::pb::envoy::config::trace::v3::ZipkinConfig;
use prost::Message;

use crate::config::{descriptor, ConfigError, FieldPath};
use crate::extensions::FactoryContext;
use crate::tracing::Driver;

/// The provider config types Courier accepts.
pub const CONFIG_TYPES: &[&str] = &[zipkin::CONFIG_TYPE];

/// The fields of the providers' configs that Courier implements.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[(
    zipkin::CONFIG_TYPE,
    &[
        "collector_cluster",
        "collector_endpoint",
        "trace_id_128bit",
        "shared_span_context",
        "collector_endpoint_version",
        "collector_hostname",
    ],
)];

/// The driver of `provider`; `path` points at it.
pub fn create_driver(
    provider: &Provider,
    path: &FieldPath,
    ctx: &FactoryContext<'_>,
) -> Result<Arc<dyn Driver>, ConfigError> {
    let Some(ConfigType::TypedConfig(any)) = &provider.config_type else {
        return Err(path.field_error("typed_config", format!("tracer '{}' needs a typed_config", provider.name)));
    };
    let mut tp = path.clone();
    tp.push_field("typed_config");
    let type_name = descriptor::type_name(&any.type_url);
    if type_name != zipkin::CONFIG_TYPE {
        return Err(tp.field_error(
            "@type",
            format!("tracer '{}' ({type_name}) is not supported by Courier (only envoy.tracers.zipkin)", provider.name),
        ));
    }
    crate::extensions::filters::http::common::check_supported(any, &tp)?;
    let config = ZipkinConfig::decode(any.value.as_slice())
        .map_err(|e| tp.error(format!("cannot decode '{}': {e}", any.type_url)))?;
    Ok(Arc::new(zipkin::Zipkin(zipkin::ZipkinDriver::from_proto(&config, &tp, ctx)?)))
}
