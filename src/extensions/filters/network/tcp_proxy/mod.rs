//! `envoy.filters.network.tcp_proxy`: L4 forwarding of a downstream connection to
//! a host of a cluster, with Envoy's stats, connect attempts and idle timeout, and
//! its `access_log`: one line per connection when it ends (its bytes, duration,
//! upstream host, `UH`/`UF`/`NC` flags, the connection's dynamic metadata).
//! What it records is the connection's, as in Envoy (whose filter writes the
//! connection's `StreamInfo`): the listener's own `access_log` prints it too
//! (`ConnectionReport`).

mod relay;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy::ClusterSpecifier, TcpProxy};
use envoy_types::pb::google::protobuf::Any;

use crate::access_log::{self, AccessLogger};
use crate::config::{self, bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{FactoryContext, NetworkFilterExtension};
use crate::formatter::FormatContext;
use crate::network::filter::LocalBoxFuture;
use crate::network::proxy_protocol::Downstream;
use crate::network::tls::TransportOptions;
use crate::network::transport::ReadFiltersHandle;
use crate::network::{ConnectionReport, DownstreamConnection, NetworkFilter, NetworkFilterFactory};
use crate::stream_info::{ResponseFlag, StreamInfo};
use crate::thread_local::Slot;
use crate::upstream::original_dst::LbContext;
use crate::upstream::upstream_connection::UpstreamConnection;
use crate::upstream::ThreadLocalClusterManager;

pub const EXTENSION: NetworkFilterExtension = NetworkFilterExtension {
    name: "envoy.filters.network.tcp_proxy",
    config_type: "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    create,
};

/// Envoy's default `idle_timeout` for tcp_proxy.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

define_stats! {
    /// `tcp.<stat_prefix>.*`
    #[derive(Debug)]
    pub struct TcpProxyStats {
        counter downstream_cx_total,
        counter downstream_cx_no_route,
        counter downstream_cx_tx_bytes_total,
        counter downstream_cx_rx_bytes_total,
        counter downstream_flow_control_paused_reading_total,
        counter downstream_flow_control_resumed_reading_total,
        counter idle_timeout,
        counter max_downstream_connection_duration,
        counter upstream_flush_total,
        counter downstream_cx_drain_close,
        counter downstream_cx_overload_close,
        counter early_data_received_count_total,
        counter route_delayed_total,
        gauge downstream_cx_tx_bytes_buffered,
        gauge downstream_cx_rx_bytes_buffered,
        gauge upstream_flush_active,
    }
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct TcpProxyFilter {
    cluster: String,
    access_logs: Arc<[Arc<dyn AccessLogger>]>,
    /// `None` when `idle_timeout: 0s` disables it.
    idle_timeout: Option<Duration>,
    max_connect_attempts: u32,
    stats: Arc<TcpProxyStats>,
    clusters: Slot<ThreadLocalClusterManager>,
}

fn create(any: &Any, path: &FieldPath, ctx: &FactoryContext<'_>) -> Result<NetworkFilter, ConfigError> {
    let cfg: TcpProxy = decode_any(any, path)?;
    let cluster = match cfg.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c,
        Some(ClusterSpecifier::WeightedClusters(_)) => {
            return Err(
                path.field_error("weighted_clusters", "weighted clusters are not supported by Courier's tcp_proxy yet")
            )
        }
        None => return Err(path.error("one of 'cluster' or 'weighted_clusters' is required")),
    };
    let idle_timeout = match &cfg.idle_timeout {
        Some(d) if config::duration(d).is_zero() => None,
        other => Some(config::duration_or(other, DEFAULT_IDLE_TIMEOUT)),
    };
    let access_logs = access_log::build_access_logs(&cfg.access_log, &path.child("access_log"), ctx.store)?;
    Ok(NetworkFilter::Terminal(Arc::new(TcpProxyFilter {
        cluster,
        access_logs: access_logs.into(),
        idle_timeout,
        max_connect_attempts: cfg.max_connect_attempts.map(|v| v.value).unwrap_or(1).max(1),
        stats: Arc::new(TcpProxyStats::new(ctx.store, &format!("tcp.{}.", cfg.stat_prefix))),
        clusters: ctx.clusters.clone(),
    })))
}

impl NetworkFilterFactory for TcpProxyFilter {
    fn on_refused_connection(&self) {
        self.stats.downstream_cx_total.inc();
    }

    fn on_new_connection(&self, conn: DownstreamConnection) -> LocalBoxFuture {
        self.stats.downstream_cx_total.inc();
        let report = conn.report.clone();
        let mut info = (!self.access_logs.is_empty() || report.is_some()).then(|| connection_info(&conn));
        // What read filters before this one record later (RBAC's shadow
        // result) is in the line too.
        let read_filters = info.as_ref().and_then(|_| conn.stream.read_filters());
        let cluster = self.clusters.get().and_then(|cm| cm.get(&self.cluster));
        let Some(cluster) = cluster else {
            // Unknown cluster: Envoy closes the connection and counts it.
            tracing::debug!("tcp_proxy: no cluster '{}'", self.cluster);
            self.stats.downstream_cx_no_route.inc();
            if let Some(info) = &mut info {
                info.response_flags.set(ResponseFlag::NoClusterFound);
            }
            finish(&self.access_logs, report.as_deref(), info);
            return Box::pin(async move { drop(conn) });
        };
        let attempts = self.max_connect_attempts;
        let idle_timeout = self.idle_timeout;
        let stats = self.stats.clone();
        let access_logs = self.access_logs.clone();
        let ctx = LbContext { restored_local: conn.info.local_restored.then_some(conn.info.local), headers: None };
        Box::pin(async move {
            let mut upstream = None;
            if let Some(info) = &mut info {
                info.upstream_cluster = Some(cluster.name.clone());
            }
            // The PROXY protocol header of an `upstream_proxy_protocol` cluster names this connection.
            let downstream = Downstream {
                remote: conn.info.remote,
                local: conn.info.local,
                tlvs: conn.info.proxy_protocol_tlvs.clone(),
            };
            let options = TransportOptions { downstream: Some(downstream), ..TransportOptions::NONE };
            let mut flag = None;
            for _ in 0..attempts {
                let Some(host) = cluster.choose_host(&ctx) else {
                    cluster.info.stats.upstream_cx_none_healthy.inc();
                    flag = Some(ResponseFlag::NoHealthyUpstream);
                    break;
                };
                if let Some(info) = &mut info {
                    info.upstream_host = Some(host.address);
                    info.attempt_count += 1;
                }
                // Envoy's TCP pool counts each connection attempt as a request.
                cluster.info.stats.upstream_rq_pending_total.inc();
                match UpstreamConnection::connect_for(&cluster.info, &host, None, &options).await {
                    Ok(u) => {
                        if let Some(info) = &mut info {
                            info.set_upstream_connection(&u.info);
                        }
                        cluster.info.stats.upstream_rq_total.inc();
                        host.stats.rq_total.fetch_add(1, Ordering::Relaxed);
                        upstream = Some(u);
                        break;
                    }
                    Err(_) => {
                        cluster.info.stats.upstream_rq_pending_failure_eject.inc();
                        flag = Some(ResponseFlag::UpstreamConnectionFailure);
                    }
                }
            }
            let Some(upstream) = upstream else {
                cluster.info.stats.upstream_cx_connect_attempts_exceeded.inc();
                if let Some(info) = &mut info {
                    if let Some(flag) = flag {
                        info.response_flags.set(flag);
                    }
                    // Envoy 1.40 marks connect attempts run out as a retry limit too.
                    if flag == Some(ResponseFlag::UpstreamConnectionFailure) {
                        info.response_flags.set(ResponseFlag::UpstreamRetryLimitExceeded);
                    }
                    drop(conn); // closed before the line is written, as Envoy logs on close
                    add_read_filters_metadata(info, read_filters.as_ref());
                }
                finish(&access_logs, report.as_deref(), info);
                return; // dropping `conn` closes the downstream, as Envoy does
            };
            let bytes = relay::relay(conn, upstream, idle_timeout, &stats).await;
            if let Some(info) = &mut info {
                (info.bytes_received, info.bytes_sent) = bytes;
                add_read_filters_metadata(info, read_filters.as_ref());
            }
            finish(&access_logs, report.as_deref(), info);
        })
    }
}

/// A connection's log facts as far as they are known when it arrives.
fn connection_info(conn: &DownstreamConnection) -> StreamInfo {
    let mut info = StreamInfo::new(conn.info.remote, conn.info.local, "");
    info.downstream_tls = conn.info.tls.clone();
    info.downstream_hello = conn.info.inspected_hello.clone();
    info.dynamic_metadata = conn.dynamic_metadata.clone();
    info
}

/// Adds what the read filters recorded after the connection started: dynamic
/// metadata, why one of them closed it.
fn add_read_filters_metadata(info: &mut StreamInfo, read_filters: Option<&ReadFiltersHandle>) {
    if let Some(filters) = read_filters {
        let filters = filters.get();
        info.dynamic_metadata.extend(filters.dynamic_metadata());
        info.connection_termination_details = filters.termination_details().map(str::to_string);
    }
}

/// Writes the connection's line to each access log, its duration ending now,
/// and leaves what was recorded to the listener's loggers.
fn finish(access_logs: &[Arc<dyn AccessLogger>], report: Option<&ConnectionReport>, info: Option<StreamInfo>) {
    let Some(mut info) = info else { return };
    info.last_downstream_tx = Some(info.start.elapsed());
    let cx = FormatContext::new(&info);
    access_logs.iter().for_each(|l| l.log(&cx));
    if let Some(report) = report {
        report.set_filter_info(Box::new(info));
    }
}
