//! Tracing providers (Envoy's `extensions/tracers`), built from a connection
//! manager's `tracing.provider`: Zipkin, OpenTelemetry, SkyWalking and Datadog; any other provider
//! is refused at start-up by name.

pub mod batch;
pub mod datadog;
pub mod opentelemetry;
pub mod skywalking;
pub mod zipkin;

use std::sync::Arc;

use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::tracing::Http as Provider;
use envoy_types::pb::envoy::config::trace::v3::{DatadogConfig, OpenTelemetryConfig, SkyWalkingConfig, ZipkinConfig};
use prost::Message;

use crate::config::{descriptor, ConfigError, FieldPath};
use crate::extensions::FactoryContext;
use crate::tracing::Driver;

/// The provider config types Courier accepts.
pub const CONFIG_TYPES: &[&str] =
    &[zipkin::CONFIG_TYPE, opentelemetry::CONFIG_TYPE, skywalking::CONFIG_TYPE, datadog::CONFIG_TYPE];

/// The fields of the providers' configs that Courier implements.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        zipkin::CONFIG_TYPE,
        &[
            "collector_cluster",
            "collector_endpoint",
            "trace_id_128bit",
            "shared_span_context",
            "collector_endpoint_version",
            "collector_hostname",
        ],
    ),
    // The collector: `GrpcService`, whose fields are in `config::supported`.
    (opentelemetry::CONFIG_TYPE, &["grpc_service", "service_name"]),
    (skywalking::CONFIG_TYPE, &["grpc_service", "client_config"]),
    ("envoy.config.trace.v3.ClientConfig", &["service_name", "instance_name", "backend_token", "max_cache_size"]),
    (datadog::CONFIG_TYPE, &["collector_cluster", "service_name", "collector_hostname"]),
];

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
    if !CONFIG_TYPES.contains(&type_name) {
        return Err(tp.field_error(
            "@type",
            format!(
                "tracer '{}' ({type_name}) is not supported by Courier (only envoy.tracers.zipkin, \
                 envoy.tracers.opentelemetry, envoy.tracers.skywalking and envoy.tracers.datadog)",
                provider.name
            ),
        ));
    }
    crate::extensions::filters::http::common::check_supported(any, &tp)?;
    // Envoy's TracerManager: connection managers with the same provider config
    // share one driver, so their spans go out in the same batches.
    let mut cache = DRIVERS.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(_, _, d)| d.strong_count() > 0);
    if let Some(d) =
        cache.iter().find(|(t, v, _)| *t == any.type_url && *v == any.value).and_then(|(_, _, d)| d.upgrade())
    {
        return Ok(d);
    }
    let driver = build_driver(any, type_name, &tp, ctx)?;
    cache.push((any.type_url.clone(), any.value.clone(), Arc::downgrade(&driver)));
    Ok(driver)
}

/// The drivers built so far, by their config: shared while alive.
type DriverCache = Vec<(String, Vec<u8>, std::sync::Weak<dyn Driver>)>;
static DRIVERS: std::sync::Mutex<DriverCache> = std::sync::Mutex::new(Vec::new());

fn build_driver(
    any: &envoy_types::pb::google::protobuf::Any,
    type_name: &str,
    tp: &FieldPath,
    ctx: &FactoryContext<'_>,
) -> Result<Arc<dyn Driver>, ConfigError> {
    let decode_error = |e: prost::DecodeError| tp.error(format!("cannot decode '{}': {e}", any.type_url));
    if type_name == skywalking::CONFIG_TYPE {
        let config = SkyWalkingConfig::decode(any.value.as_slice()).map_err(decode_error)?;
        return Ok(Arc::new(skywalking::SkyWalking(skywalking::SkyWalkingDriver::from_proto(&config, tp, ctx)?)));
    }
    if type_name == opentelemetry::CONFIG_TYPE {
        let config = OpenTelemetryConfig::decode(any.value.as_slice()).map_err(decode_error)?;
        return Ok(Arc::new(opentelemetry::OpenTelemetry(opentelemetry::OtelDriver::from_proto(&config, tp, ctx)?)));
    }
    if type_name == datadog::CONFIG_TYPE {
        let config = DatadogConfig::decode(any.value.as_slice()).map_err(decode_error)?;
        return Ok(Arc::new(datadog::Datadog(datadog::DatadogDriver::from_proto(&config, tp, ctx)?)));
    }
    let config = ZipkinConfig::decode(any.value.as_slice()).map_err(decode_error)?;
    Ok(Arc::new(zipkin::Zipkin(zipkin::ZipkinDriver::from_proto(&config, tp, ctx)?)))
}
