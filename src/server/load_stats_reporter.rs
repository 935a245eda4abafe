//! `cluster_manager.load_stats_config`: the Load Reporting Service client
//! (Envoy's `LoadStatsReporter`), on the main thread.
//!
//! It opens `envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats`
//! to the first host of the configured cluster (the xDS streams' `GrpcStream`)
//! and sends the node (with the client feature
//! `envoy.lrs.supports_send_all_clusters`; every later report carries it too). Each answer names the clusters to
//! report (or `send_all_clusters`) and the `load_reporting_interval`; the
//! counts of clusters new to the report start from then. Every interval a
//! report goes out: per cluster, per priority and locality, the requests that
//! succeeded, failed, were issued since the last report, and are in progress
//! now, a locality left out when all of these are zero; when the answer asks
//! for `report_endpoint_granularity`, the same per host of the locality
//! (`upstream_endpoint_stats`, a host left out when all are zero, as Envoy's);
//! the requests dropped (`total_dropped_requests`: by `drop_overloads` or a
//! circuit breaker's overflow, as Envoy's `upstream_rq_dropped`), those of
//! `drop_overloads` under its category (`dropped_requests`, left out when
//! none), and the interval measured since the cluster's last report. The
//! counts are the per-host atomics the workers already keep (`HostStats`): the
//! reporter remembers what it reported of each host and sends the difference,
//! so requests pay nothing for it; the drops are the cluster's
//! (`upstream::drop_overload`), taken as they are reported. The stream
//! itself counts as a request in progress on its host, as Envoy's does. A
//! stream that fails is opened again after Envoy's back-off.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, Locality as LocalityProto, Node, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::cluster_stats::DroppedRequests;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamEndpointStats, UpstreamLocalityStats};
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};

use super::xds::backoff::BackOff;
use super::xds::grpc_stream::{GrpcStream, StreamError};
use crate::config::config_source::GrpcSource;
use crate::upstream::cluster_manager::ClusterManager;
use crate::upstream::host::{Host, HostStats};

pub const METHOD: &str = "/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats";

/// What the server asked for in its last answer.
struct Wanted {
    send_all: bool,
    clusters: Vec<String>,
    interval: Duration,
    /// `report_endpoint_granularity`: each host's counts too.
    per_endpoint: bool,
}

/// What was last reported of one host (its counters then).
#[derive(Clone, Copy, Default)]
struct Reported {
    success: u64,
    error: u64,
    issued: u64,
}

impl Reported {
    fn now(s: &HostStats) -> Reported {
        Reported {
            success: HostStats::get(&s.rq_success),
            error: HostStats::get(&s.rq_error),
            issued: HostStats::get(&s.rq_total),
        }
    }
}

pub struct LoadStatsReporter {
    source: GrpcSource,
    node: Node,
    cm: Rc<ClusterManager>,
    /// Per host (by address of its `Host`), what was last reported.
    reported: HashMap<usize, Reported>,
    /// Per reported cluster, when its report period started.
    periods: HashMap<String, Instant>,
}

impl LoadStatsReporter {
    pub fn new(source: GrpcSource, node: Node, cm: Rc<ClusterManager>) -> LoadStatsReporter {
        LoadStatsReporter { source, node, cm, reported: HashMap::new(), periods: HashMap::new() }
    }

    /// Reports until the task is aborted, opening the stream again after a failure.
    pub async fn run(mut self) {
        let mut backoff = BackOff::default();
        loop {
            match self.open().await {
                Ok((stream, host)) => {
                    let _active = ActiveOnHost::new(host);
                    let (error, answered) = self.serve(stream).await;
                    tracing::warn!("load stats stream to '{}' closed: {error}", self.source.cluster);
                    if answered {
                        backoff.reset();
                    }
                }
                Err(e) => tracing::warn!("cannot open the load stats stream to '{}': {e}", self.source.cluster),
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// The stream, and the host of the service's cluster it goes to.
    async fn open(&self) -> Result<(GrpcStream, Arc<Host>), StreamError> {
        let name = &self.source.cluster;
        let cluster = self.cm.get(name).ok_or_else(|| StreamError(format!("no cluster '{name}'")))?;
        let hosts = self.cm.hosts(name);
        let host = hosts.first().ok_or_else(|| StreamError(format!("cluster '{name}' has no host")))?;
        Ok((GrpcStream::open(host, &cluster, name, METHOD).await?, host.clone()))
    }

    /// One stream: the node first, then a report every interval the server set.
    /// Returns why it ended and whether the server answered.
    async fn serve(&mut self, mut stream: GrpcStream) -> (StreamError, bool) {
        let mut node = self.node.clone();
        node.client_features.push("envoy.lrs.supports_send_all_clusters".into());
        let first = LoadStatsRequest { node: Some(node.clone()), cluster_stats: Vec::new() };
        if let Err(e) = stream.send(&first) {
            return (e, false);
        }
        let mut wanted: Option<Wanted> = None;
        let mut next_report: Option<tokio::time::Instant> = None;
        loop {
            let tick = async {
                match next_report {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                answer = stream.recv::<LoadStatsResponse>() => {
                    let answer = match answer {
                        Ok(a) => a,
                        Err(e) => return (e, wanted.is_some()),
                    };
                    let interval = answer.load_reporting_interval.as_ref().map_or(Duration::ZERO, crate::config::duration);
                    let w = Wanted {
                        send_all: answer.send_all_clusters,
                        clusters: answer.clusters,
                        interval,
                        per_endpoint: answer.report_endpoint_granularity,
                    };
                    self.start_periods(&w);
                    next_report = Some(tokio::time::Instant::now() + w.interval);
                    wanted = Some(w);
                }
                () = tick => {
                    let Some(w) = &wanted else { continue };
                    // As Envoy's, every report says whose it is.
                    let report = LoadStatsRequest { node: Some(node.clone()), cluster_stats: self.report(w.per_endpoint) };
                    if let Err(e) = stream.send(&report) {
                        return (e, true);
                    }
                    next_report = Some(tokio::time::Instant::now() + w.interval);
                }
            }
        }
    }

    /// The clusters `w` names (or all): those new to the report start a period
    /// now, their hosts' counts from here; the others keep theirs.
    fn start_periods(&mut self, w: &Wanted) {
        let names: Vec<String> = if w.send_all {
            self.cm.clusters().iter().map(|c| c.name.to_string()).collect()
        } else {
            w.clusters.clone()
        };
        let now = Instant::now();
        let mut periods = HashMap::with_capacity(names.len());
        for name in names {
            let start = match self.periods.get(&name) {
                Some(&at) => at,
                None => {
                    for host in self.cm.hosts(&name).iter() {
                        self.reported.insert(host_key(host), Reported::now(&host.stats));
                    }
                    if let Some(info) = self.cm.get(&name) {
                        info.drop_overload.latch();
                    }
                    now
                }
            };
            periods.insert(name, start);
        }
        self.periods = periods;
    }

    /// One report of every cluster in the period, its hosts' counts taken
    /// (each host's in its locality too when `per_endpoint`).
    fn report(&mut self, per_endpoint: bool) -> Vec<ClusterStats> {
        let now = Instant::now();
        let mut names: Vec<String> = self.periods.keys().cloned().collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let Some(info) = self.cm.get(&name) else { continue };
            let hosts = self.cm.hosts(&name);
            let mut localities: Vec<UpstreamLocalityStats> = Vec::new();
            for group in by_priority_and_locality(&hosts) {
                let mut stats = UpstreamLocalityStats {
                    locality: Some(locality_of(group[0])),
                    priority: group[0].priority,
                    ..Default::default()
                };
                for host in group {
                    let current = Reported::now(&host.stats);
                    let last = self.reported.insert(host_key(host), current).unwrap_or_default();
                    let success = current.success.saturating_sub(last.success);
                    let error = current.error.saturating_sub(last.error);
                    let issued = current.issued.saturating_sub(last.issued);
                    let active = HostStats::get(&host.stats.rq_active);
                    stats.total_successful_requests += success;
                    stats.total_error_requests += error;
                    stats.total_issued_requests += issued;
                    stats.total_requests_in_progress += active;
                    if per_endpoint && success + error + issued + active != 0 {
                        stats.upstream_endpoint_stats.push(UpstreamEndpointStats {
                            address: Some(socket_address(host.address)),
                            total_successful_requests: success,
                            total_error_requests: error,
                            total_issued_requests: issued,
                            total_requests_in_progress: active,
                            ..Default::default()
                        });
                    }
                }
                let any = stats.total_successful_requests
                    + stats.total_error_requests
                    + stats.total_requests_in_progress
                    + stats.total_issued_requests;
                if any != 0 {
                    localities.push(stats);
                }
            }
            let (by_share, dropped) = info.drop_overload.latch();
            let dropped_requests = if by_share == 0 {
                Vec::new()
            } else {
                vec![DroppedRequests { category: info.drop_overload.category().to_string(), dropped_count: by_share }]
            };
            let started = self.periods.insert(name.clone(), now).unwrap_or(now);
            let service_name = info.eds.as_ref().map(|e| e.service_name.clone()).filter(|s| *s != name);
            out.push(ClusterStats {
                cluster_name: name,
                cluster_service_name: service_name.unwrap_or_default(),
                upstream_locality_stats: localities,
                total_dropped_requests: dropped,
                dropped_requests,
                load_report_interval: Some(proto_duration(now - started)),
            });
        }
        out
    }
}

/// The stream counted on its host as an issued request in progress while it
/// lasts, as Envoy's gRPC client's stream is (a report with
/// `send_all_clusters` shows it under the service's cluster).
struct ActiveOnHost(Arc<Host>);

impl ActiveOnHost {
    fn new(host: Arc<Host>) -> ActiveOnHost {
        host.stats.rq_total.fetch_add(1, Ordering::Relaxed);
        host.stats.rq_active.fetch_add(1, Ordering::Relaxed);
        ActiveOnHost(host)
    }
}

impl Drop for ActiveOnHost {
    fn drop(&mut self) {
        self.0.stats.rq_active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn host_key(host: &Arc<Host>) -> usize {
    Arc::as_ptr(host) as usize
}

/// The hosts grouped by priority, then locality, in the order they come.
fn by_priority_and_locality(hosts: &[Arc<Host>]) -> Vec<Vec<&Arc<Host>>> {
    let mut groups: Vec<Vec<&Arc<Host>>> = Vec::new();
    for host in hosts {
        let same = |g: &&mut Vec<&Arc<Host>>| g[0].priority == host.priority && g[0].locality == host.locality;
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(host),
            None => groups.push(vec![host]),
        }
    }
    groups
}

fn locality_of(host: &Host) -> LocalityProto {
    host.locality.as_deref().map_or_else(LocalityProto::default, |l| LocalityProto {
        region: l.region.clone(),
        zone: l.zone.clone(),
        sub_zone: l.sub_zone.clone(),
    })
}

/// A host's address as Envoy reports it (`addressToProtobufAddress`).
fn socket_address(a: std::net::SocketAddr) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: a.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(a.port()))),
            ..Default::default()
        })),
    }
}

fn proto_duration(d: Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}
