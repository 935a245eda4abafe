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
//! now, a locality left out when all of these are zero; the dropped requests
//! (0: Courier drops none by `drop_overload`) and the interval measured since
//! the cluster's last report. The counts are the per-host atomics the workers
//! already keep (`HostStats`): the reporter remembers what it reported of each
//! host and sends the difference, so requests pay nothing for it. The stream
//! itself counts as a request in progress on its host, as Envoy's does. A
//! stream that fails is opened again after Envoy's back-off.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{Locality as LocalityProto, Node};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamLocalityStats};
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
                    let w = Wanted { send_all: answer.send_all_clusters, clusters: answer.clusters, interval };
                    self.start_periods(&w);
                    next_report = Some(tokio::time::Instant::now() + w.interval);
                    wanted = Some(w);
                }
                () = tick => {
                    let Some(w) = &wanted else { continue };
                    // As Envoy's, every report says whose it is.
                    let report = LoadStatsRequest { node: Some(node.clone()), cluster_stats: self.report() };
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
                    now
                }
            };
            periods.insert(name, start);
        }
        self.periods = periods;
    }

    /// One report of every cluster in the period, its hosts' counts taken.
    fn report(&mut self) -> Vec<ClusterStats> {
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
                    stats.total_successful_requests += current.success.saturating_sub(last.success);
                    stats.total_error_requests += current.error.saturating_sub(last.error);
                    stats.total_issued_requests += current.issued.saturating_sub(last.issued);
                    stats.total_requests_in_progress += HostStats::get(&host.stats.rq_active);
                }
                let any = stats.total_successful_requests
                    + stats.total_error_requests
                    + stats.total_requests_in_progress
                    + stats.total_issued_requests;
                if any != 0 {
                    localities.push(stats);
                }
            }
            let started = self.periods.insert(name.clone(), now).unwrap_or(now);
            let service_name = info.eds.as_ref().map(|e| e.service_name.clone()).filter(|s| *s != name);
            out.push(ClusterStats {
                cluster_name: name,
                cluster_service_name: service_name.unwrap_or_default(),
                upstream_locality_stats: localities,
                total_dropped_requests: 0,
                dropped_requests: Vec::new(),
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

fn proto_duration(d: Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}
