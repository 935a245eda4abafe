//! Envoy's checks of the management servers a config names against its static
//! clusters (the sources themselves are read in `config::config_source`).

pub use crate::config::config_source::{GrpcSource, Source, SubscriptionSource};

use crate::config::{ConfigError, FieldPath};

/// Envoy's check of a management server's cluster: one of `static_resources`
/// (`cluster` is `None` when none has the name). Courier speaks HTTP/2 to it,
/// in plaintext or over the cluster's TLS transport socket, so it needs
/// `http2_protocol_options`; the stream writes no PROXY protocol header, so
/// an `upstream_proxy_protocol` transport socket is refused.
pub fn check_cluster(
    grpc: &GrpcSource,
    cluster: Option<&crate::upstream::cluster::ClusterInfo>,
    path: &FieldPath,
) -> Result<(), ConfigError> {
    let name = &grpc.cluster;
    let Some(cluster) = cluster else {
        return Err(path.error(format!("Unknown gRPC client cluster '{name}'")));
    };
    if cluster.upstream_protocol != crate::upstream::cluster::UpstreamProtocol::Http2 {
        return Err(path.error(format!(
            "the management server's cluster '{name}' needs explicit_http_config.http2_protocol_options (gRPC is \
             HTTP/2)"
        )));
    }
    if cluster.proxy_protocol.is_some() {
        return Err(path.error(format!(
            "the management server's cluster '{name}' has an upstream_proxy_protocol transport_socket: Courier's \
             xDS stream does not write the PROXY protocol"
        )));
    }
    Ok(())
}

impl super::DynamicResourcesConfig {
    /// Envoy's checks of the management servers against the bootstrap: ADS
    /// needs a complete `node`, and each stream a cluster `check_cluster` accepts.
    pub fn check_management_clusters(
        &self,
        clusters: &[std::sync::Arc<crate::upstream::cluster::ClusterInfo>],
        node: Option<&envoy_types::pb::envoy::config::core::v3::Node>,
    ) -> Result<(), ConfigError> {
        let find = |name: &str| clusters.iter().find(|c| c.name == name).map(|c| c.as_ref());
        let target = |field: &str| {
            FieldPath::starting_at(&format!("dynamic_resources.{field}.grpc_services[0].envoy_grpc.cluster_name"))
        };
        if let Some(ads) = &self.ads {
            if node.is_none_or(|n| n.id.is_empty() || n.cluster.is_empty()) {
                return Err(ConfigError::new(
                    "node",
                    "ads: node 'id' and 'cluster' are required. Set it either in 'node' config or via \
                     --service-node and --service-cluster options.",
                ));
            }
            check_cluster(ads, find(&ads.cluster), &target("ads_config"))?;
        }
        for (field, source) in [("cds_config", &self.cds), ("lds_config", &self.lds)] {
            if let Some(SubscriptionSource { source: Source::Grpc(grpc), .. }) = source {
                check_cluster(grpc, find(&grpc.cluster), &target(&format!("{field}.api_config_source")))?;
            }
        }
        // Static EDS clusters' own sources.
        for (i, c) in clusters.iter().enumerate() {
            let Some(eds) = &c.eds else { continue };
            let path = FieldPath::starting_at(&format!("static_resources.clusters[{i}].eds_cluster_config.eds_config"));
            match &eds.source.source {
                Source::Ads if self.ads.is_none() => {
                    return Err(path.field_error("ads", "ADS must be configured to support an ADS config source"))
                }
                Source::Grpc(grpc) => check_cluster(
                    grpc,
                    find(&grpc.cluster),
                    &path.child("api_config_source.grpc_services[0].envoy_grpc.cluster_name"),
                )?,
                _ => {}
            }
        }
        Ok(())
    }
}
