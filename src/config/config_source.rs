//! Where an xDS subscription gets its resources (`ConfigSource`): a file, the
//! ADS stream (`ads: {}`, with `dynamic_resources.ads_config`), or a gRPC
//! stream of its own (`api_config_source`). Checked as Envoy 1.40 checks them
//! (its messages where it has one), so a config that names a management server
//! Courier cannot reach fails at start-up by its field path. Read here, with the
//! config, because clusters name one too (an EDS cluster's `eds_config`); the
//! subscriptions themselves run in `server::xds`.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::{ApiConfigSource, ApiVersion, ConfigSource};

use super::path_source::PathSource;
use super::{duration, ConfigError, FieldPath};

/// Envoy's default `initial_fetch_timeout`: how long start-up waits for a
/// management server's first answer.
const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// A management server: the static cluster the gRPC stream goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcSource {
    /// `grpc_services[0].envoy_grpc.cluster_name`, also the stream's `:authority`.
    pub cluster: String,
    /// Only the stream's first request carries `node`.
    pub set_node_on_first_message_only: bool,
    /// Incremental xDS (`DELTA_GRPC`, `AGGREGATED_DELTA_GRPC`): the stream is
    /// the `Delta*` method of its service.
    pub delta: bool,
}

/// How a subscription gets its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(PathSource),
    /// The ADS stream of `dynamic_resources.ads_config`.
    Ads,
    /// A stream of the subscription's own (`StreamClusters`, `StreamListeners`).
    Grpc(GrpcSource),
}

/// `dynamic_resources.<cds|lds>_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSource {
    pub source: Source,
    /// For a gRPC source: how long start-up waits for the first response
    /// (`None`: for ever, `initial_fetch_timeout: 0s`).
    pub initial_fetch_timeout: Option<Duration>,
}

impl SubscriptionSource {
    pub fn from_proto(c: &ConfigSource, path: &FieldPath) -> Result<SubscriptionSource, ConfigError> {
        let source = match &c.config_source_specifier {
            Some(ConfigSourceSpecifier::Ads(_)) => Source::Ads,
            Some(ConfigSourceSpecifier::ApiConfigSource(a)) => {
                Source::Grpc(GrpcSource::from_proto(a, &path.child("api_config_source"))?)
            }
            _ => Source::Path(PathSource::from_proto(c, path)?),
        };
        let initial_fetch_timeout = match &c.initial_fetch_timeout {
            Some(d) => Some(duration(d)).filter(|d| !d.is_zero()),
            None => Some(DEFAULT_INITIAL_FETCH_TIMEOUT),
        };
        Ok(SubscriptionSource { source, initial_fetch_timeout })
    }
}

impl GrpcSource {
    /// An `ApiConfigSource` of a gRPC `api_type` (state of the world or
    /// delta) with one `envoy_grpc` service.
    pub fn from_proto(a: &ApiConfigSource, path: &FieldPath) -> Result<GrpcSource, ConfigError> {
        let delta = match ApiType::try_from(a.api_type) {
            Ok(ApiType::Grpc | ApiType::AggregatedGrpc) => false,
            Ok(ApiType::DeltaGrpc | ApiType::AggregatedDeltaGrpc) => true,
            _ if !a.grpc_services.is_empty() => {
                return Err(path.error(
                    "envoy.config.core.v3.ApiConfigSource, if not a gRPC type, must not have a gRPC service specified",
                ));
            }
            _ => return Err(path.field_error("api_type", "Courier reads xDS over gRPC only: set GRPC or DELTA_GRPC")),
        };
        #[allow(deprecated)]
        let v2 = ApiVersion::V2 as i32;
        if a.transport_api_version == v2 {
            return Err(path.field_error(
                "transport_api_version",
                "V2 xDS transport protocol version is deprecated; the v2 xDS major version has been removed",
            ));
        }
        let service =
            match a.grpc_services.as_slice() {
                [one] => one,
                [] => return Err(path.field_error("grpc_services", "a gRPC ApiConfigSource needs one gRPC service")),
                _ => return Err(path.error(
                    "envoy.config.core.v3.ApiConfigSource::(AGGREGATED_)(DELTA_)GRPC must have no more than 1 gRPC \
                     services specified",
                )),
            };
        let service_path = path.child("grpc_services[0]");
        let Some(TargetSpecifier::EnvoyGrpc(target)) = &service.target_specifier else {
            // The supported-fields check refused `google_grpc`.
            return Err(service_path.error("envoy_grpc must be set"));
        };
        if target.cluster_name.is_empty() {
            return Err(service_path
                .child("envoy_grpc")
                .field_error("cluster_name", "value length must be at least 1 characters"));
        }
        if !target.authority.is_empty() {
            return Err(service_path
                .child("envoy_grpc")
                .field_error("authority", "not supported by Courier for a management server"));
        }
        Ok(GrpcSource {
            cluster: target.cluster_name.clone(),
            set_node_on_first_message_only: a.set_node_on_first_message_only,
            delta,
        })
    }
}
