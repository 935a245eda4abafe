//! The bootstrap's `stats_sinks`, built by config type: the statsd ones
//! (`stats::sink`, UDP) and the ones that need a cluster, extensions here
//! (`open_telemetry`, `metrics_service`). `StatSinks` flushes them all at each stats flush.

pub mod metrics_service;
pub mod open_telemetry;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::metrics::v3::{stats_sink, StatsSink};

use crate::config::{ConfigError, FieldPath};
use crate::extensions::FactoryContext;
use crate::stats::sink::{self, Sink, StatSinks};

/// The stat sinks registered here: (extension name, config message full name).
pub const STAT_SINKS: &[(&str, &str)] = &[
    ("envoy.stat_sinks.open_telemetry", open_telemetry::CONFIG_TYPE),
    ("envoy.stat_sinks.metrics_service", metrics_service::CONFIG_TYPE),
];

/// The fields the sinks here act on. `custom_metric_conversions`,
/// `max_data_points_per_request` and the HTTP exporter (`http_service`) are
/// refused; the collector's `GrpcService` fields are in `config::supported`.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        open_telemetry::CONFIG_TYPE,
        &[
            "grpc_service",
            "resource_detectors",
            "report_counters_as_deltas",
            "report_histograms_as_deltas",
            "emit_tags_as_attributes",
            "use_tag_extracted_name",
            "prefix",
        ],
    ),
    (crate::extensions::common::otlp::resource::STATIC_CONFIG_TYPE, &["attributes"]),
    // `batch_size` is refused.
    (
        metrics_service::CONFIG_TYPE,
        &[
            "grpc_service",
            "transport_api_version",
            "report_counters_as_deltas",
            "emit_tags_as_labels",
            "histogram_emit_mode",
        ],
    ),
    (crate::extensions::common::otlp::resource::ENVIRONMENT_TYPE, &[]),
];

/// Builds the bootstrap's `stats_sinks`; a bad entry fails naming its field.
/// `node` is the one a metrics service stream identifies itself with.
pub fn from_bootstrap(list: &[StatsSink], node: &Node, ctx: &FactoryContext<'_>) -> Result<StatSinks, ConfigError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let mut path = FieldPath::starting_at("stats_sinks");
        path.push_index(i);
        let any_path = path.child("typed_config");
        let built: Box<dyn Sink> = match &entry.config_type {
            Some(stats_sink::ConfigType::TypedConfig(any)) => match any.type_url.rsplit('/').next() {
                Some(open_telemetry::CONFIG_TYPE) => Box::new(open_telemetry::OpenTelemetrySink::from_any(
                    any,
                    &any_path,
                    ctx.clusters,
                    ctx.cluster_exists,
                )?),
                Some(metrics_service::CONFIG_TYPE) => Box::new(metrics_service::MetricsServiceSink::from_any(
                    any,
                    &any_path,
                    node,
                    ctx.clusters,
                    ctx.cluster_exists,
                )?),
                _ => Box::new(sink::build(entry, &path)?),
            },
            None => Box::new(sink::build(entry, &path)?),
        };
        sinks.push(built);
    }
    Ok(StatSinks::new(sinks))
}
