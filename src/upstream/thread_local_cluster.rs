//! A worker's view of the clusters: membership snapshots published by the main
//! thread, plus this worker's own load-balancer state. Lives in a thread-local
//! slot, so it is `Rc`/`RefCell` and never locked.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::cluster::ClusterInfo;
use super::conn_pool::{ConnPool, Protocol};
use super::host::{Host, HostSet};
use super::http1_conn_pool::Http1ConnPool;
use super::http2_conn_pool::Http2ConnPool;
use super::original_dst::{LbContext, OriginalDstLb};
use super::priority::PriorityLoadBalancer;
use crate::common::fnv::{FnvBuildHasher, FnvHashMap};
use crate::network::tls::TransportOptions;
use crate::stats::Counter;

/// A pool's key: the host's address, the protocol, the requests' TLS options.
type PoolKey = (SocketAddr, Protocol, TransportOptions);

/// One cluster on one worker.
pub struct ThreadLocalCluster {
    pub info: Arc<ClusterInfo>,
    /// The cluster's name, this worker's copy: requests record it (`%UPSTREAM_CLUSTER%`)
    /// by a count of this thread, not by copying it or sharing a count with others.
    pub name: Rc<str>,
    hosts: RefCell<HostSet>,
    /// This worker's load balancer (one per priority level), refreshed with every
    /// new host set once it is in use.
    lb: PriorityLoadBalancer,
    /// `lb` has not been built yet: it is, from `hosts`, at the first pick. Most of
    /// a large xDS config's clusters are never picked on a given worker, and a
    /// level's balancers are most of what a cluster costs a worker (~0.5 KiB). A
    /// zone-aware cluster, which needs its local cluster's hosts, is built at once.
    lb_unbuilt: Cell<bool>,
    /// An ORIGINAL_DST cluster's balancer, in place of `lb`.
    original_dst: Option<Box<OriginalDstLb>>,
    /// What traffic through this worker builds up, made with the first of it: an
    /// unused cluster (most of a large xDS config's, on a given worker) costs a
    /// pointer here rather than four empty maps.
    traffic: OnceCell<Box<Traffic>>,
}

/// A cluster's per-worker state that requests create.
#[derive(Default)]
struct Traffic {
    /// This worker's HTTP pools, one per host address, protocol and TLS
    /// options (Envoy keys its pools by the transport socket options too).
    http_pools: RefCell<FnvHashMap<PoolKey, ConnPool>>,
    /// `auto_config`: the protocol each (host, options) negotiated last.
    negotiated: RefCell<FnvHashMap<(SocketAddr, TransportOptions), Protocol>>,
    /// This worker's cache of `upstream_rq_<code>` counters.
    /// Per response code: its class counter and its own counter.
    code_counters: RefCell<FnvHashMap<u16, [Arc<Counter>; 2]>>,
    /// This worker's cache of the `retry.*` counters of each code.
    retry_counters: RefCell<FnvHashMap<u16, Vec<Arc<Counter>>>>,
}

impl std::fmt::Debug for ThreadLocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadLocalCluster").field("name", &self.info.name).finish()
    }
}

impl ThreadLocalCluster {
    /// The next host: a priority level by its load, then a host of it by the
    /// cluster's load-balancing policy; counts `lb_healthy_panic` when the level
    /// drawn is in panic. Only an ORIGINAL_DST cluster reads `ctx`.
    pub fn choose_host(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        self.info.use_traffic_stats();
        if let (Some(lb), Some(od)) = (&self.original_dst, &self.info.original_dst) {
            return lb.choose(&self.info, od, ctx);
        }
        if self.lb_unbuilt.get() {
            self.lb.refresh(&self.hosts.borrow());
            self.lb_unbuilt.set(false);
        }
        let pick = self.lb.choose();
        if pick.panic {
            self.info.stats.lb_healthy_panic.inc();
        }
        pick.host
    }

    fn traffic(&self) -> &Traffic {
        self.traffic.get_or_init(Box::default)
    }

    pub fn hosts(&self) -> HostSet {
        self.hosts.borrow().clone()
    }

    /// Counts the response the router went on with (or its own reply for an
    /// upstream failure: overflow, connect failure, timeout, no healthy upstream)
    /// by class and by exact code, as Envoy's `chargeUpstreamCode`. A response
    /// that was retried counts with `count_retried_response_code` instead.
    pub fn count_response_code(&self, code: u16) {
        let s = &self.info.stats;
        s.upstream_rq_completed.inc();
        let mut cache = self.traffic().code_counters.borrow_mut();
        let counters =
            cache.entry(code).or_insert_with(|| [self.info.class_counter(code), self.info.code_counter(code)]);
        for c in counters.iter() {
            c.inc();
        }
    }

    /// Counts an upstream response that is retried, as Envoy's
    /// `chargeBasicResponseStat` with the `retry` prefix:
    /// `retry.upstream_rq_completed`, `retry.upstream_rq_<class>xx` and
    /// `retry.upstream_rq_<code>` (created on first use, as Envoy does).
    pub fn count_retried_response_code(&self, code: u16) {
        let mut cache = self.traffic().retry_counters.borrow_mut();
        let counters = cache.entry(code).or_insert_with(|| {
            let mut names = vec!["retry.upstream_rq_completed".to_owned()];
            if (100..600).contains(&code) {
                names.push(format!("retry.upstream_rq_{}xx", code / 100));
            }
            names.push(format!("retry.upstream_rq_{code}"));
            names.iter().map(|n| self.info.dynamic_counter(n)).collect()
        });
        for c in counters.iter() {
            c.inc();
        }
    }

    /// The worker's connection pool for `host`, `protocol` and the request's
    /// TLS `options`, created on first use.
    pub fn http_pool(&self, host: &Arc<Host>, protocol: Protocol, options: TransportOptions) -> ConnPool {
        let mut pools = self.traffic().http_pools.borrow_mut();
        let key = (host.address, protocol, options);
        match pools.get(&key) {
            Some(p) if Arc::ptr_eq(p.host(), host) => p.clone(),
            _ => {
                let (info, host, options) = (self.info.clone(), host.clone(), key.2.clone());
                let p = match protocol {
                    Protocol::Http1 => ConnPool::Http1(Http1ConnPool::new(info, host, options)),
                    Protocol::Http2 => ConnPool::Http2(Http2ConnPool::new(info, host, options)),
                };
                pools.insert(key, p.clone());
                p
            }
        }
    }

    /// The protocol `auto_config` connections to `host` with `options` negotiated.
    pub(super) fn negotiated(&self, host: &Arc<Host>, options: &TransportOptions) -> Option<Protocol> {
        self.traffic.get()?.negotiated.borrow().get(&(host.address, options.clone())).copied()
    }

    /// Records (`Some`) or forgets what `auto_config` connections negotiated.
    pub fn set_negotiated(&self, host: &Arc<Host>, options: &TransportOptions, protocol: Option<Protocol>) {
        let key = (host.address, options.clone());
        match protocol {
            Some(p) => self.traffic().negotiated.borrow_mut().insert(key, p),
            None => self.traffic.get().and_then(|t| t.negotiated.borrow_mut().remove(&key)),
        };
    }
}

/// Whether `new` differs from `old` in levels other than 0 only.
fn only_lower_levels_changed(old: &HostSet, new: &HostSet) -> bool {
    let level0 =
        |set: &HostSet| -> Vec<*const Host> { set.iter().filter(|h| h.priority == 0).map(Arc::as_ptr).collect() };
    level0(old) == level0(new) && !super::eds::same_hosts(old, new)
}

/// Every cluster on one worker, by name.
#[derive(Debug, Default)]
pub struct ThreadLocalClusterManager {
    clusters: RefCell<FnvHashMap<Rc<str>, Rc<ThreadLocalCluster>>>,
}

impl ThreadLocalClusterManager {
    /// Installs `clusters` in name order, as Envoy's threads receive them (a
    /// zone-aware cluster installed before its local cluster recalculates its
    /// zones again when that one arrives, as in Envoy).
    pub fn new(clusters: &[(Arc<ClusterInfo>, HostSet)]) -> Self {
        let tlcm = ThreadLocalClusterManager::default();
        let mut sorted: Vec<&(Arc<ClusterInfo>, HostSet)> = clusters.iter().collect();
        sorted.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        for (info, hosts) in sorted {
            tlcm.add_or_update(info.clone(), hosts.clone());
        }
        tlcm
    }

    pub fn get(&self, name: &str) -> Option<Rc<ThreadLocalCluster>> {
        self.clusters.borrow().get(name).cloned()
    }

    /// Drops a cluster CDS removed: requests in flight keep its snapshot (and
    /// pools) until they finish; idle pooled connections close with the pools.
    pub fn remove(&self, name: &str) {
        self.clusters.borrow_mut().remove(name);
    }

    /// Installs a new membership snapshot for `info.name` (or the cluster itself).
    pub fn add_or_update(&self, info: Arc<ClusterInfo>, hosts: HostSet) {
        self.install(info, hosts, None);
    }

    /// Installs an EDS cluster's assignment: its hosts and the overprovisioning
    /// factor that came with them.
    pub fn add_or_update_assigned(&self, info: Arc<ClusterInfo>, hosts: HostSet, overprovisioning_factor: u32) {
        self.install(info, hosts, Some(overprovisioning_factor));
    }

    fn install(&self, info: Arc<ClusterInfo>, hosts: HostSet, overprovisioning_factor: Option<u32>) {
        self.install_cluster(info.clone(), hosts, overprovisioning_factor);
        if info.is_local_cluster {
            self.recalculate_zones_against(&info.name);
        }
    }

    /// Zone-aware clusters whose local cluster is `local` recalculate their zones
    /// with its new hosts (Envoy's local priority set callback).
    fn recalculate_zones_against(&self, local: &str) {
        let clusters = self.clusters.borrow();
        let Some(local_hosts) = clusters.get(local).map(|c| c.hosts()) else { return };
        for cluster in clusters.values() {
            if cluster.info.local_cluster.as_deref() == Some(local) {
                cluster.lb.recalculate_zones(&local_hosts);
            }
        }
    }

    /// The local cluster's hosts for `info` (none until it is installed).
    fn local_hosts(clusters: &FnvHashMap<Rc<str>, Rc<ThreadLocalCluster>>, info: &ClusterInfo) -> HostSet {
        info.local_cluster.as_deref().and_then(|l| clusters.get(l)).map(|c| c.hosts()).unwrap_or_default()
    }

    fn install_cluster(&self, info: Arc<ClusterInfo>, hosts: HostSet, overprovisioning_factor: Option<u32>) {
        let mut clusters = self.clusters.borrow_mut();
        match clusters.get(info.name.as_str()) {
            Some(existing) if Arc::ptr_eq(&existing.info, &info) => {
                match (&existing.original_dst, overprovisioning_factor) {
                    (Some(od), _) => od.refresh(&hosts),
                    (None, Some(factor)) if existing.lb_unbuilt.get() => {
                        existing.lb.set_overprovisioning_factor(factor)
                    }
                    (None, None) if existing.lb_unbuilt.get() => {}
                    (None, Some(factor)) => existing.lb.refresh_assigned(&hosts, factor),
                    (None, None) => existing.lb.refresh(&hosts),
                }
                // Envoy recalculates the zones when level 0 changes (an update of
                // other levels only leaves them).
                if existing.lb.is_zone_aware() && !only_lower_levels_changed(&existing.hosts(), &hosts) {
                    existing.lb.recalculate_zones(&Self::local_hosts(&clusters, &info));
                }
                // Pools of hosts that left the cluster close when their last user is
                // done (an ORIGINAL_DST worker's own new hosts stay). A set: such a
                // cluster may have many hosts, and as many pools.
                let kept: HashSet<SocketAddr, FnvBuildHasher> = match &existing.original_dst {
                    Some(od) => od.addresses(),
                    None => hosts.iter().map(|h| h.address).collect(),
                };
                if let Some(traffic) = existing.traffic.get() {
                    traffic.http_pools.borrow_mut().retain(|(addr, _, _), _| kept.contains(addr));
                    traffic.negotiated.borrow_mut().retain(|(addr, _), _| kept.contains(addr));
                }
                *existing.hosts.borrow_mut() = hosts;
            }
            _ => {
                let name: Rc<str> = info.name.as_str().into();
                let factor = overprovisioning_factor.unwrap_or(info.overprovisioning_factor);
                let mut lb = PriorityLoadBalancer::new(info.lb_policy, factor, info.locality_weighted)
                    .with_local_locality(info.local_locality.clone())
                    .with_panic_threshold(info.healthy_panic_threshold)
                    .with_fail_traffic_on_panic(info.zone_aware.fail_traffic_on_panic);
                if info.local_cluster.is_some() {
                    lb = lb.with_zone_aware(info.clone());
                }
                let lb_unbuilt = !lb.is_zone_aware();
                if !lb_unbuilt {
                    lb.refresh(&hosts);
                    lb.recalculate_zones(&Self::local_hosts(&clusters, &info));
                }
                let original_dst = info.original_dst.as_ref().map(|_| Box::<OriginalDstLb>::default());
                if let Some(od) = &original_dst {
                    od.refresh(&hosts);
                }
                clusters.insert(
                    name.clone(),
                    Rc::new(ThreadLocalCluster {
                        info,
                        name,
                        hosts: RefCell::new(hosts),
                        lb,
                        lb_unbuilt: Cell::new(lb_unbuilt),
                        original_dst,
                        traffic: OnceCell::new(),
                    }),
                );
            }
        }
    }
}
