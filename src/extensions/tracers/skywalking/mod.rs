//! `envoy.tracers.skywalking` (Envoy's `extensions/tracers/skywalking`): the
//! caller's `sw8` read (`sw8`), a segment per request whose Entry span is the
//! connection manager's and whose Exit spans are the router's child spans
//! (`segment`), reported over a client stream of gRPC to the `grpc_service`'s
//! cluster (`reporter`), in SkyWalking's own messages (`proto`, written here).
//! `client_config` names the service and instance (else the node's cluster
//! and id), sends `backend_token` as `authentication`, and bounds the queue
//! kept while the collector is away (`max_cache_size`, default 1024).

pub mod proto;
pub mod reporter;
pub mod segment;
pub mod sw8;

use std::sync::Arc;

use envoy_types::pb::envoy::config::trace::v3::client_config::BackendTokenSpecifier;
use envoy_types::pb::envoy::config::trace::v3::SkyWalkingConfig;
use http::{HeaderName, HeaderValue};

use self::reporter::SkyWalkingStats;
use self::segment::Segment;
use self::sw8::{Sw8, SW8};
use crate::config::{ConfigError, FieldPath};
use crate::extensions::common::grpc_client::GrpcClient;
use crate::extensions::FactoryContext;
use crate::thread_local::Slot;
use crate::tracing::{Driver, Span, SpanStart};
use crate::upstream::ThreadLocalClusterManager;

pub const CONFIG_TYPE: &str = "envoy.config.trace.v3.SkyWalkingConfig";

const DEFAULT_MAX_CACHE_SIZE: usize = 1024;

#[derive(Debug)]
pub struct SkyWalkingDriver {
    /// `grpc_service`: the collector's cluster and authority, with the token.
    pub grpc: GrpcClient,
    /// `client_config.service_name`, else the node's cluster.
    pub service: String,
    /// `client_config.instance_name`, else the node's id.
    pub instance: String,
    /// `client_config.max_cache_size`.
    pub max_cache_size: usize,
    pub stats: SkyWalkingStats,
    pub clusters: Slot<ThreadLocalClusterManager>,
    /// This provider's reporter on each worker.
    pub index: usize,
}

impl SkyWalkingDriver {
    /// `path` points at the `typed_config`.
    pub fn from_proto(
        c: &SkyWalkingConfig,
        path: &FieldPath,
        ctx: &FactoryContext<'_>,
    ) -> Result<Arc<SkyWalkingDriver>, ConfigError> {
        let Some(grpc) = &c.grpc_service else {
            return Err(path.field_error("grpc_service", "value is required"));
        };
        let mut grpc = GrpcClient::from_proto(grpc, &path.child("grpc_service"), ctx.cluster_exists)?;
        let client = c.client_config.clone().unwrap_or_default();
        if let Some(BackendTokenSpecifier::BackendToken(token)) = &client.backend_token_specifier {
            if !token.is_empty() {
                let value = HeaderValue::from_str(token).map_err(|_| {
                    path.child("client_config").field_error("backend_token", "not a valid header value")
                })?;
                grpc = grpc.with_metadata(HeaderName::from_static("authentication"), value);
            }
        }
        Self::build(grpc, client, ctx)
    }

    fn build(
        grpc: GrpcClient,
        client: envoy_types::pb::envoy::config::trace::v3::ClientConfig,
        ctx: &FactoryContext<'_>,
    ) -> Result<Arc<SkyWalkingDriver>, ConfigError> {
        let or = |v: String, default: &str| if v.is_empty() { default.to_owned() } else { v };
        Ok(Arc::new(SkyWalkingDriver {
            grpc,
            service: or(client.service_name, ctx.service_cluster),
            instance: or(client.instance_name, ctx.service_node),
            max_cache_size: client.max_cache_size.map_or(DEFAULT_MAX_CACHE_SIZE, |v| v.value as usize),
            stats: SkyWalkingStats::new(ctx.store, "tracing.skywalking."),
            clusters: ctx.clusters.clone(),
            index: crate::extensions::tracers::batch::next_index(),
        }))
    }
}

/// The driver as the connection manager holds it: spans keep a reference to it.
#[derive(Debug)]
pub struct SkyWalking(pub Arc<SkyWalkingDriver>);

impl Driver for SkyWalking {
    /// As Envoy 1.40: a caller's `sw8` makes a span whatever the decision (its
    /// sample flag is not read); a request without one is traced by the
    /// decision; an `sw8` that does not parse is as none.
    fn start_span(&self, s: &SpanStart<'_>) -> Option<Box<dyn Span>> {
        let parent = s.request_headers.get(SW8).and_then(|v| v.to_str().ok()).and_then(Sw8::parse);
        if parent.is_none() && !s.decision.traced {
            return None;
        }
        Some(Box::new(Segment::start(self.0.clone(), parent, s.path, s.start)))
    }

    fn spawns_children(&self) -> bool {
        true
    }
}
