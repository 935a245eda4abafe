//! The cluster manager: the main thread's owner of cluster definitions and
//! membership. It resolves DNS clusters on their refresh timers and publishes each
//! new host set to every worker through a thread-local slot. Clusters of
//! `static_resources` stay for the process's life; CDS adds, replaces and removes
//! the others (`add_or_update`, `remove`), which workers learn through the same
//! slot: a replaced cluster's requests in flight finish on the snapshot they hold.
//! An EDS cluster's hosts are set by its assignments (`assign`); one CDS adds
//! warms (`warm`) until its first, while the cluster it replaces serves on.
//! A cluster with `health_checks` has a `ClusterHealthChecker` that follows its
//! membership: a cluster of start-up or of CDS serves once every host had its
//! first check, and a host whose health changed has the cluster's hosts posted
//! to the workers again.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;

use super::cluster::{ClusterInfo, ConfiguredEndpoint, DiscoveryType, EndpointAddress};
use super::dns::{DnsResolver, DnsResolverConfig};
use super::eds::{levels_changed, max_host_weight, same_hosts, Assignment};
use super::health_check::ClusterHealthChecker;
use super::host::{host_set, Health, Host, HostSet, Locality};
use super::original_dst;
use super::thread_local_cluster::ThreadLocalClusterManager;
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::network::tls::{TransportSocketBuilder, UpstreamTransport};
use crate::stats::Store;
use crate::thread_local::Slot;

define_stats! {
    /// `cluster_manager.*`, those of Envoy's that Courier can move. Only an EDS
    /// cluster from CDS is ever warming (a DNS one is resolved before it is
    /// published), and updates are never merged (only host-set changes happen,
    /// which Envoy applies at once).
    #[derive(Debug)]
    pub struct ClusterManagerStats {
        counter cluster_added,
        counter cluster_modified,
        counter cluster_removed,
        counter cluster_updated,
        counter cluster_updated_via_merge,
        counter update_merge_cancelled,
        counter update_out_of_merge_window,
        gauge active_clusters,
        gauge warming_clusters,
    }
}

/// The clusters of the static config, validated but not yet running.
#[derive(Debug)]
pub struct ClusterManagerConfig {
    pub clusters: Vec<Arc<ClusterInfo>>,
    pub stats: Arc<ClusterManagerStats>,
    /// `node.locality`, which every cluster (CDS ones too) is built with.
    pub local_locality: Option<Arc<Locality>>,
    /// `cluster_manager.local_cluster_name`: zone routing's local cluster.
    pub local_cluster: Option<String>,
    /// The bootstrap's DNS resolver, which DNS clusters without their own use.
    pub default_resolver: Arc<DnsResolver>,
}

impl ClusterManagerConfig {
    /// Checks and builds every cluster of `static_resources.clusters`; `local` is
    /// the bootstrap's `node.locality`, `local_cluster` its
    /// `cluster_manager.local_cluster_name` (which must name one of them);
    /// `sockets` builds a cluster's `transport_socket`; `default_dns` is the
    /// bootstrap's resolver config.
    pub fn from_proto(
        clusters: &[Cluster],
        local: Option<&Arc<Locality>>,
        local_cluster: Option<&str>,
        default_dns: DnsResolverConfig,
        store: &Arc<Store>,
        sockets: &dyn TransportSocketBuilder,
    ) -> Result<Self, ConfigError> {
        let mut out: Vec<Arc<ClusterInfo>> = Vec::with_capacity(clusters.len());
        let mut names: HashSet<&str> = HashSet::with_capacity(clusters.len());
        // A cluster's stats are three groups: `cluster.<name>.` and its two circuit
        // breakers' (`circuit_breakers.default.`, `circuit_breakers.high.`).
        store.lock().reserve_groups(3 * clusters.len());
        for (i, c) in clusters.iter().enumerate() {
            let path = FieldPath::starting_at(&format!("static_resources.clusters[{i}]"));
            if !names.insert(&c.name) {
                return Err(path.field_error("name", format!("cluster manager: duplicate cluster '{}'", c.name)));
            }
            out.push(build_cluster(c, &path, local, local_cluster, store, sockets)?);
        }
        if let Some(name) = local_cluster.filter(|n| !names.contains(n)) {
            // Envoy's words.
            return Err(FieldPath::starting_at("cluster_manager")
                .field_error("local_cluster_name", format!("local cluster '{name}' must be defined")));
        }
        Ok(ClusterManagerConfig {
            clusters: out,
            stats: Arc::new(ClusterManagerStats::new(store, "cluster_manager.")),
            local_locality: local.cloned(),
            local_cluster: local_cluster.map(str::to_owned),
            default_resolver: Arc::new(DnsResolver::new(default_dns, store.clone())),
        })
    }
}

/// Checks and builds one cluster (of `static_resources` or of a CDS update, at
/// `path`); every cluster but the local one (`local_cluster`) is zone aware.
pub fn build_cluster(
    c: &Cluster,
    path: &FieldPath,
    local: Option<&Arc<Locality>>,
    local_cluster: Option<&str>,
    store: &Arc<Store>,
    sockets: &dyn TransportSocketBuilder,
) -> Result<Arc<ClusterInfo>, ConfigError> {
    let mut info = ClusterInfo::from_proto(c, path, store)?;
    info.local_locality = local.cloned();
    info.is_local_cluster = local_cluster == Some(info.name.as_str());
    // An ORIGINAL_DST cluster balances by the requests' addresses only.
    if !info.is_local_cluster && info.original_dst.is_none() {
        info.local_cluster = local_cluster.map(str::to_owned);
    }
    let transport = upstream_transport(c, path, sockets, &info.stat_name)?;
    info.tls = transport.tls;
    info.proxy_protocol = transport.proxy_protocol;
    if info.upstream_protocol == super::cluster::UpstreamProtocol::Auto && info.tls.is_none() {
        // Envoy's words: only TLS negotiates a protocol.
        return Err(
            path.error(format!("ALPN configured for cluster {} which has a non-ALPN transport socket", info.name))
        );
    }
    Ok(Arc::new(info))
}

/// Main-thread owner of the clusters. Not `Send`: it lives on the main dispatcher.
pub struct ClusterManager {
    clusters: RefCell<BTreeMap<String, Arc<ClusterInfo>>>,
    /// The names of `static_resources.clusters`: CDS neither replaces nor removes them.
    static_names: HashSet<String>,
    membership: RefCell<BTreeMap<String, HostSet>>,
    /// CDS's EDS clusters waiting for their first assignment, by name.
    warming: RefCell<BTreeMap<String, Arc<ClusterInfo>>>,
    /// Woken each time the last warming cluster is warm.
    all_warm: tokio::sync::Notify,
    /// Set once the clusters of start-up are initialized (Envoy's
    /// `AllClustersInitialized`): from then on, warming holds CDS's ACK back.
    initialized: std::cell::Cell<bool>,
    /// The overprovisioning factor of each EDS cluster's last assignment.
    assigned_factors: RefCell<BTreeMap<String, u32>>,
    slot: Slot<ThreadLocalClusterManager>,
    stats: Arc<ClusterManagerStats>,
    local_locality: Option<Arc<Locality>>,
    local_cluster: Option<String>,
    /// The active health checking of each cluster that has `health_checks`.
    health_checkers: RefCell<BTreeMap<String, Rc<ClusterHealthChecker>>>,
    /// Set once the workers hold the clusters of start-up: health changes are
    /// posted to them from then on.
    serving: std::cell::Cell<bool>,
    /// Itself, for the health checkers' callbacks.
    me: std::rc::Weak<ClusterManager>,
    /// Warming EDS clusters with health checks whose first assignment came:
    /// they warm on until its hosts' first checks, then start with the
    /// overprovisioning factor of their last assignment.
    checking: RefCell<BTreeMap<String, (Arc<ClusterInfo>, u32)>>,
    default_resolver: Arc<DnsResolver>,
}

impl ClusterManager {
    /// Creates the manager, resolves every DNS cluster once (Envoy's cluster
    /// initialization, which start-up waits for), publishes the snapshot to all
    /// threads, and starts the DNS refresh loops on the current (main) dispatcher.
    pub async fn start(config: ClusterManagerConfig, slot: Slot<ThreadLocalClusterManager>) -> Rc<ClusterManager> {
        let cm = Rc::new_cyclic(|me| ClusterManager {
            health_checkers: RefCell::default(),
            serving: std::cell::Cell::new(false),
            me: me.clone(),
            checking: RefCell::default(),
            clusters: RefCell::new(config.clusters.iter().map(|c| (c.name.clone(), c.clone())).collect()),
            static_names: config.clusters.iter().map(|c| c.name.clone()).collect(),
            membership: RefCell::new(BTreeMap::new()),
            warming: RefCell::default(),
            all_warm: tokio::sync::Notify::new(),
            initialized: std::cell::Cell::new(false),
            assigned_factors: RefCell::default(),
            slot,
            stats: config.stats.clone(),
            local_locality: config.local_locality.clone(),
            local_cluster: config.local_cluster.clone(),
            default_resolver: config.default_resolver.clone(),
        });
        let mut pending = Vec::with_capacity(config.clusters.len());
        for info in &config.clusters {
            // Clusters of static_resources are active at once, never warming.
            cm.stats.cluster_added.inc();
            cm.stats.active_clusters.inc();
            // All initialize at once, as Envoy's: a slow name delays no other cluster.
            let (cm, info) = (cm.clone(), info.clone());
            pending.push(tokio::task::spawn_local(async move {
                let (hosts, next) = cm.initial_hosts(&info).await;
                (info, hosts, next, tokio::time::Instant::now())
            }));
        }
        let mut initial = Vec::with_capacity(pending.len());
        for task in pending {
            match task.await {
                Ok(done) => initial.push(done),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {} // Only a runtime shutting down cancels it.
            }
        }
        // Envoy's cluster initialization waits for every host's first check.
        let checkers: Vec<_> = cm.health_checkers.borrow().values().cloned().collect();
        for checker in checkers {
            checker.first_round().await;
        }
        for (info, ..) in &initial {
            set_membership_stats(info, &cm.hosts(&info.name));
        }
        let loops: Vec<_> = initial
            .iter()
            .filter(|(i, ..)| i.discovery.is_dns())
            .map(|(i, _, next, at)| (i.clone(), *next, *at))
            .collect();
        let initial = Arc::new(initial.into_iter().map(|(info, hosts, ..)| (info, hosts)).collect::<Vec<_>>());
        cm.slot.set(move || ThreadLocalClusterManager::new(&initial));
        cm.serving.set(true);
        for (info, next, resolved_at) in loops {
            tokio::task::spawn_local(refresh_loop(Rc::downgrade(&cm), info, next, resolved_at));
        }
        for info in config.clusters.iter().filter(|c| c.original_dst.is_some()) {
            tokio::task::spawn_local(original_dst::maintain(Rc::downgrade(&cm), info.clone()));
        }
        cm
    }

    /// The resolver of a DNS cluster: its own, else the bootstrap's.
    fn resolver_of(&self, info: &ClusterInfo) -> Arc<DnsResolver> {
        info.dns_resolver.clone().unwrap_or_else(|| self.default_resolver.clone())
    }

    /// A cluster's first hosts (its endpoints, or its names resolved once), with
    /// their stats, and when a DNS cluster resolves next (`None` after a failure).
    async fn initial_hosts(&self, info: &Arc<ClusterInfo>) -> (HostSet, Option<Duration>) {
        let mut next = None;
        let hosts = match info.discovery {
            DiscoveryType::Static => {
                let hosts = static_hosts(info);
                info.stats.membership_change.add(levels_changed(&HostSet::default(), &hosts));
                hosts
            }
            DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
                let resolved = resolve_cluster(info, &self.resolver_of(info), &Arc::new(Vec::new())).await;
                // Envoy adds each name's hosts as that name resolves: a membership
                // change each. Its STRICT_DNS cluster is initialized by the first
                // name's resolution, so each further name's hosts are an update.
                let with_hosts = resolved.as_ref().map_or(0, |r| r.targets_with_hosts) as u64;
                info.stats.membership_change.add(with_hosts);
                self.stats.cluster_updated.add(with_hosts.saturating_sub(1));
                // A name that resolved to no host changed nothing.
                if let Some(r) = &resolved {
                    info.stats.update_no_rebuild.add((r.targets - r.targets_with_hosts) as u64);
                }
                next = resolved.as_ref().map(|r| r.next_refresh);
                resolved.map(|r| r.hosts).unwrap_or_default()
            }
            // None until its first assignment (`assign`), or its first request.
            DiscoveryType::Eds | DiscoveryType::OriginalDst => HostSet::default(),
        };
        self.record_membership(info, &hosts);
        (hosts, next)
    }

    /// Makes `hosts` the main thread's membership of `info`, with its stats; a
    /// cluster with health checks checks its new hosts (marked failed first) and
    /// no longer its hosts gone. Before the hosts go to the workers.
    fn record_membership(&self, info: &Arc<ClusterInfo>, hosts: &HostSet) {
        if !info.health_checks.is_empty() {
            let mut checkers = self.health_checkers.borrow_mut();
            let checker = match checkers.get(&info.name) {
                Some(c) if Arc::ptr_eq(c.info(), info) => c.clone(),
                _ => {
                    let me = self.me.clone();
                    let on_change = Rc::new(move |info: &Arc<ClusterInfo>| {
                        if let Some(cm) = me.upgrade() {
                            cm.health_changed(info);
                        }
                    });
                    let checker = ClusterHealthChecker::new(info.clone(), on_change);
                    checkers.insert(info.name.clone(), checker.clone());
                    checker
                }
            };
            drop(checkers);
            checker.update(hosts);
        } else {
            self.health_checkers.borrow_mut().remove(&info.name);
        }
        set_membership_stats(info, hosts);
        self.membership.borrow_mut().insert(info.name.clone(), hosts.clone());
    }

    /// A host of `info` changed health (active checks): its stats follow, and
    /// the workers get the cluster's hosts again to rebalance, as Envoy's
    /// `reloadHealthyHosts` (not before they serve the cluster).
    fn health_changed(&self, info: &Arc<ClusterInfo>) {
        let current = self.clusters.borrow().get(&info.name).is_some_and(|c| Arc::ptr_eq(c, info));
        let hosts = self.hosts(&info.name);
        set_membership_stats(info, &hosts);
        if !current || !self.serving.get() {
            return;
        }
        // A new snapshot of the same hosts: the workers refile them by health.
        let hosts: HostSet = Arc::new(hosts.as_ref().clone());
        self.membership.borrow_mut().insert(info.name.clone(), hosts.clone());
        let info = info.clone();
        self.slot.run_on_all_threads(move |tlcm| tlcm.add_or_update(info.clone(), hosts.clone()));
    }

    /// Waits for the first check of every host of `info`, counted as warming
    /// (`cluster_manager.warming_clusters`) meanwhile, as Envoy's CDS clusters
    /// with health checks warm.
    async fn first_checks(&self, info: &Arc<ClusterInfo>) {
        if self.checker_of(info).is_some() {
            self.warm(info);
            self.first_checks_done(info).await;
        }
    }

    /// Waits until every host of `info` had its first check (at once without
    /// health checks): a static EDS cluster's hosts before listeners start.
    pub async fn first_checks_done(&self, info: &Arc<ClusterInfo>) {
        if let Some(checker) = self.checker_of(info) {
            checker.first_round().await;
            set_membership_stats(info, &self.hosts(&info.name));
        }
    }

    fn checker_of(&self, info: &Arc<ClusterInfo>) -> Option<Rc<ClusterHealthChecker>> {
        self.health_checkers.borrow().get(&info.name).filter(|c| Arc::ptr_eq(c.info(), info)).cloned()
    }

    /// Whether `info` warms until its first assignment's hosts are checked.
    fn is_checking(&self, info: &Arc<ClusterInfo>) -> bool {
        self.checking.borrow().get(&info.name).is_some_and(|(i, _)| Arc::ptr_eq(i, info))
    }

    /// A warming EDS cluster with health checks got an assignment: its hosts
    /// are checked, and the cluster starts once their first checks are done
    /// (`end_checking`), as Envoy's cluster initialization waits for them. A
    /// later assignment meanwhile replaces the hosts being checked.
    fn assign_while_checking(&self, info: &Arc<ClusterInfo>, assignment: &Assignment) {
        let current = if self.is_checking(info) { self.hosts(&info.name) } else { HostSet::default() };
        let (hosts, changed) = assignment.hosts(&current);
        for kept in &changed {
            kept.apply();
        }
        self.record_membership(info, &hosts);
        let factor = assignment.overprovisioning_factor;
        let first = self.checking.borrow_mut().insert(info.name.clone(), (info.clone(), factor));
        if first.is_some_and(|(i, _)| Arc::ptr_eq(&i, info)) {
            return;
        }
        let (me, info) = (self.me.clone(), info.clone());
        tokio::task::spawn_local(async move {
            let Some(checker) = me.upgrade().and_then(|cm| cm.checker_of(&info)) else { return };
            checker.first_round().await;
            if let Some(cm) = me.upgrade() {
                cm.end_checking(&info);
            }
        });
    }

    /// The first checks of a warming EDS cluster's hosts are done: it starts
    /// with them, unless CDS replaced or removed it meanwhile.
    fn end_checking(&self, info: &Arc<ClusterInfo>) {
        if !self.is_checking(info) {
            return;
        }
        let Some((_, factor)) = self.checking.borrow_mut().remove(&info.name) else { return };
        if !self.take_warming(info) {
            return;
        }
        let hosts = self.hosts(&info.name);
        if let Some(weight) = max_host_weight(&hosts) {
            info.stats.max_host_weight.set(i64::from(weight));
        }
        info.stats.membership_change.add(levels_changed(&HostSet::default(), &hosts));
        self.activate(info, hosts, factor);
    }

    /// Adds a cluster, or replaces the one of the same name (Envoy's
    /// `addOrUpdateCluster`): a DNS cluster is resolved first, then every thread
    /// gets it. Workers drop the old one's pools, whose idle connections close;
    /// requests in flight finish on the snapshot they hold. The caller keeps
    /// static clusters out (`is_static`).
    pub async fn add_or_update(self: &Rc<Self>, info: Arc<ClusterInfo>) {
        let (hosts, next) = self.initial_hosts(&info).await;
        self.first_checks(&info).await;
        self.drop_warming(&info.name);
        self.install(&info);
        if info.discovery.is_dns() {
            // The old cluster's loop sees it was replaced and ends.
            let now = tokio::time::Instant::now();
            tokio::task::spawn_local(refresh_loop(Rc::downgrade(self), info.clone(), next, now));
        }
        if info.original_dst.is_some() {
            tokio::task::spawn_local(original_dst::maintain(Rc::downgrade(self), info.clone()));
        }
        self.slot.run_on_all_threads(move |tlcm| tlcm.add_or_update(info.clone(), hosts.clone()));
    }

    /// Makes `info` the cluster of its name, counting it added or modified.
    fn install(&self, info: &Arc<ClusterInfo>) {
        self.assigned_factors.borrow_mut().remove(&info.name);
        let replaced = self.clusters.borrow_mut().insert(info.name.clone(), info.clone()).is_some();
        if replaced {
            self.stats.cluster_modified.inc();
        } else {
            self.stats.cluster_added.inc();
            self.stats.active_clusters.inc();
        }
    }

    /// Holds a cluster from CDS back, as Envoy's warming: an EDS one until its
    /// first assignment (`assign`) or its first update's failure
    /// (`end_warming`), another until its SDS secrets come (then
    /// `add_or_update`). The cluster of its name, if any, serves meanwhile.
    pub fn warm(&self, info: &Arc<ClusterInfo>) {
        if self.warming.borrow_mut().insert(info.name.clone(), info.clone()).is_none() {
            self.stats.warming_clusters.inc();
        }
    }

    /// Whether a cluster of this name warms.
    pub fn warms(&self, name: &str) -> bool {
        self.warming.borrow().contains_key(name)
    }

    /// Whether `info` is the warming cluster of its name.
    pub fn is_warming(&self, info: &Arc<ClusterInfo>) -> bool {
        self.warming.borrow().get(&info.name).is_some_and(|w| Arc::ptr_eq(w, info))
    }

    /// Ends `info`'s warming with no hosts, if no assignment ended it.
    pub fn end_warming(&self, info: &Arc<ClusterInfo>) {
        // Its first assignment came: its first checks end the warming.
        if self.is_checking(info) {
            return;
        }
        if self.take_warming(info) {
            self.activate(info, HostSet::default(), info.overprovisioning_factor);
        }
    }

    fn take_warming(&self, info: &Arc<ClusterInfo>) -> bool {
        let mut warming = self.warming.borrow_mut();
        if !warming.get(&info.name).is_some_and(|w| Arc::ptr_eq(w, info)) {
            return false;
        }
        warming.remove(&info.name);
        self.stats.warming_clusters.dec();
        if warming.is_empty() {
            self.all_warm.notify_waiters();
        }
        true
    }

    /// Forgets a warming cluster CDS replaced or removed before it was warm.
    fn drop_warming(&self, name: &str) {
        let mut warming = self.warming.borrow_mut();
        if warming.remove(name).is_some() {
            self.stats.warming_clusters.dec();
            if warming.is_empty() {
                self.all_warm.notify_waiters();
            }
        }
    }

    /// A warm EDS cluster starts serving, in place of its namesake.
    fn activate(&self, info: &Arc<ClusterInfo>, hosts: HostSet, factor: u32) {
        self.install(info);
        self.publish(info, hosts, factor);
    }

    /// The clusters of start-up are initialized.
    pub fn set_initialized(&self) {
        self.initialized.set(true);
    }

    /// Whether an ADS stream holds CDS's ACK back now: once start-up's
    /// clusters are initialized, for as long as a cluster warms. Envoy does so
    /// to tell a management server when the clusters it sent are ready for
    /// the routes that name them.
    pub fn holds_cds_ack(&self) -> bool {
        self.initialized.get() && !self.warming.borrow().is_empty()
    }

    /// Waits until no cluster warms.
    pub async fn all_warm(&self) {
        let notified = self.all_warm.notified();
        if self.warming.borrow().is_empty() {
            return;
        }
        notified.await;
    }

    /// Whether a cluster of this name runs or warms: what a route may name
    /// (Envoy's `ClusterInfoMaps::hasCluster`, for `validate_clusters`).
    pub fn has_cluster(&self, name: &str) -> bool {
        self.clusters.borrow().contains_key(name) || self.warming.borrow().contains_key(name)
    }

    /// Whether `info` is the manager's cluster of its name, running or warming:
    /// the subscription of one that CDS replaced or removed ends.
    pub fn is_current(&self, info: &Arc<ClusterInfo>) -> bool {
        let same = |c: Option<&Arc<ClusterInfo>>| c.is_some_and(|c| Arc::ptr_eq(c, info));
        same(self.clusters.borrow().get(&info.name)) || same(self.warming.borrow().get(&info.name))
    }

    /// Sets an EDS cluster's membership from an assignment. A warming cluster
    /// starts serving with it. Counted as Envoy 1.40 counts it:
    /// `update_no_rebuild` when nothing changed, `membership_change` per level
    /// whose hosts did (a new weight or health is not one: the host keeps it),
    /// `max_host_weight` from the last level with hosts, and
    /// `cluster_manager.cluster_updated` for a running cluster's change after
    /// its `initial` assignment. `false` when `info` is no longer current.
    pub fn assign(&self, info: &Arc<ClusterInfo>, assignment: &Assignment, initial: bool) -> bool {
        // As Envoy's, every assignment sets the share dropped anew, before and
        // whatever its hosts.
        info.drop_overload.set(&assignment.drop_overload);
        let factor = assignment.overprovisioning_factor;
        let warming_now = self.warming.borrow().get(&info.name).is_some_and(|w| Arc::ptr_eq(w, info));
        if warming_now && !info.health_checks.is_empty() {
            self.assign_while_checking(info, assignment);
            return true;
        }
        let warming = self.take_warming(info);
        if !warming && !self.clusters.borrow().get(&info.name).is_some_and(|c| Arc::ptr_eq(c, info)) {
            return false;
        }
        let current = if warming { HostSet::default() } else { self.hosts(&info.name) };
        let (hosts, changed) = assignment.hosts(&current);
        let unchanged = same_hosts(&hosts, &current) && changed.is_empty();
        // Kept hosts take their new weight and health in place, as Envoy's.
        for kept in &changed {
            kept.apply();
        }
        if let Some(weight) = max_host_weight(&hosts) {
            info.stats.max_host_weight.set(i64::from(weight));
        }
        let last_factor = self.assigned_factors.borrow().get(&info.name).copied();
        if !warming && unchanged && last_factor.unwrap_or(info.overprovisioning_factor) == factor {
            info.stats.update_no_rebuild.inc();
            return true;
        }
        info.stats.membership_change.add(levels_changed(&current, &hosts));
        if warming {
            self.activate(info, hosts, factor);
            return true;
        }
        if !initial {
            self.stats.cluster_updated.inc();
        }
        self.publish(info, hosts, factor);
        true
    }

    /// Installs an EDS cluster's hosts and factor on main and every worker.
    fn publish(&self, info: &Arc<ClusterInfo>, hosts: HostSet, factor: u32) {
        self.record_membership(info, &hosts);
        self.assigned_factors.borrow_mut().insert(info.name.clone(), factor);
        let info = info.clone();
        self.slot.run_on_all_threads(move |tlcm| tlcm.add_or_update_assigned(info.clone(), hosts.clone(), factor));
    }

    /// Removes a cluster added by CDS from main and every worker; its pools close
    /// once their requests in flight are done. `false` for an unknown or static one.
    pub fn remove(&self, name: &str) -> bool {
        self.drop_warming(name);
        if self.is_static(name) || self.clusters.borrow_mut().remove(name).is_none() {
            return false;
        }
        self.assigned_factors.borrow_mut().remove(name);
        self.membership.borrow_mut().remove(name);
        self.health_checkers.borrow_mut().remove(name);
        self.stats.cluster_removed.inc();
        self.stats.active_clusters.dec();
        let name: Arc<str> = name.into();
        self.slot.run_on_all_threads(move |tlcm| tlcm.remove(&name));
        true
    }

    /// Resolves once every thread has applied what was posted to it so far
    /// (a removed cluster is gone from every worker's snapshot).
    pub fn threads_caught_up(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.slot.run_on_all_threads_then(
            |_| {},
            move || {
                let _ = tx.send(());
            },
        );
        rx
    }

    /// Whether `name` is a cluster of `static_resources`.
    pub fn is_static(&self, name: &str) -> bool {
        self.static_names.contains(name)
    }

    /// `node.locality`, which CDS clusters are built with.
    pub fn local_locality(&self) -> Option<&Arc<Locality>> {
        self.local_locality.as_ref()
    }

    /// `cluster_manager.local_cluster_name`.
    pub fn local_cluster(&self) -> Option<&str> {
        self.local_cluster.as_deref()
    }

    /// The slot holding each worker's `ThreadLocalClusterManager`.
    pub fn thread_local_slot(&self) -> &Slot<ThreadLocalClusterManager> {
        &self.slot
    }

    /// Every cluster, by name.
    pub fn clusters(&self) -> Vec<Arc<ClusterInfo>> {
        self.clusters.borrow().values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<ClusterInfo>> {
        self.clusters.borrow().get(name).cloned()
    }

    /// The current members of `name` as the main thread knows them.
    pub fn hosts(&self, name: &str) -> HostSet {
        self.membership.borrow().get(name).cloned().unwrap_or_default()
    }

    /// The overprovisioning factor a cluster balances with: its last
    /// assignment's (EDS), else its `load_assignment`'s.
    pub fn overprovisioning_factor(&self, info: &ClusterInfo) -> u32 {
        self.assigned_factors.borrow().get(&info.name).copied().unwrap_or(info.overprovisioning_factor)
    }

    /// Installs a new membership on main and on every worker, counting
    /// `changes` updates (an ORIGINAL_DST cluster's batch of hosts its requests
    /// made is one per host, as Envoy counts them).
    pub(super) fn set_provided_hosts(&self, info: &Arc<ClusterInfo>, hosts: HostSet, changes: u64) {
        info.stats.membership_change.add(changes);
        self.stats.cluster_updated.add(changes);
        self.record_membership(info, &hosts);
        let info = info.clone();
        self.slot.run_on_all_threads(move |tlcm| tlcm.add_or_update(info.clone(), hosts.clone()));
    }

    /// Installs a new membership for a cluster on main and on every worker.
    fn update_membership(&self, info: &Arc<ClusterInfo>, hosts: HostSet) {
        self.set_provided_hosts(info, hosts, 1);
    }
}

/// `membership_*` by the hosts' health (EDS and active checks), as Envoy counts
/// them: an excluded host (draining) is only in `membership_excluded` and the
/// total, an unhealthy one only in the total.
fn set_membership_stats(info: &ClusterInfo, hosts: &HostSet) {
    let count = |health: Health| hosts.iter().filter(|h| h.health() == health).count() as i64;
    info.stats.membership_total.set(hosts.len() as i64);
    info.stats.membership_healthy.set(count(Health::Healthy));
    info.stats.membership_degraded.set(count(Health::Degraded));
    info.stats.membership_excluded.set(count(Health::Excluded));
}

/// The hosts of a STATIC cluster: its endpoints, by priority then in order, with
/// their weights.
fn static_hosts(info: &ClusterInfo) -> HostSet {
    host_set(
        info.endpoints
            .iter()
            .filter_map(|e| match e.address {
                EndpointAddress::Ip(a) => Some(Host::of_endpoint(a, e.hostname.clone(), e)),
                EndpointAddress::Dns { .. } => None,
            })
            .collect(),
    )
}

/// A DNS cluster's hosts after resolving all of its names.
struct Resolved {
    hosts: HostSet,
    /// How many names were resolved, and how many of them to at least one host.
    targets: usize,
    targets_with_hosts: usize,
    /// When to resolve again: the soonest of the names' refresh times.
    next_refresh: Duration,
}

/// Resolves every endpoint of a DNS cluster; each host takes its endpoint's
/// `load_balancing_weight`. Hosts whose address did not change are kept (with
/// their stats); `None` when any name failed to resolve. As in Envoy, a name with
/// no address is an empty answer for a STRICT_DNS cluster (whose hosts it removes)
/// and a failure for a LOGICAL_DNS one (which keeps its host); `update_empty` is
/// Envoy's count of empty EDS updates, never of DNS answers. `update_attempt`,
/// `update_success` and `update_failure` count each name, as Envoy's resolve
/// targets do (though here a failed name ends the round: the names after it wait
/// for the next one).
///
/// `max_host_weight` follows Envoy, whose STRICT_DNS cluster sets it from each
/// name's hosts as that name resolves (at least 1), so it ends with the last name's;
/// STATIC and LOGICAL_DNS clusters never set it.
///
/// Each name's next resolution is, as in Envoy, `dns_refresh_rate`, or with
/// `respect_dns_ttl` its answer's least TTL (a LOGICAL_DNS name's first address's)
/// when not 0, plus up to `dns_jitter`; Courier resolves the cluster's names
/// together, at the soonest of them.
async fn resolve_cluster(info: &ClusterInfo, resolver: &DnsResolver, current: &HostSet) -> Option<Resolved> {
    let mut hosts: Vec<Arc<Host>> = Vec::new();
    let mut targets = 0;
    let mut targets_with_hosts = 0;
    let mut next_refresh: Option<Duration> = None;
    for endpoint in &info.endpoints {
        let EndpointAddress::Dns { name, port } = &endpoint.address else {
            continue;
        };
        let weight = endpoint.weight;
        // The endpoint's `hostname`, else the name resolved.
        let hostname = if endpoint.hostname.is_empty() { name } else { &endpoint.hostname };
        targets += 1;
        info.stats.update_attempt.inc();
        match resolver.resolve(name, *port, info.dns_lookup_family).await {
            Ok(r) if r.addresses.is_empty() && info.discovery == DiscoveryType::LogicalDns => {
                tracing::warn!(cluster = %info.name, "DNS resolution of '{name}' found no address");
                info.stats.update_failure.inc();
                return None;
            }
            Ok(r) => {
                let ttl = r.least_ttl(info.discovery == DiscoveryType::LogicalDns);
                let refresh = match ttl {
                    Some(ttl) if info.respect_dns_ttl && !ttl.is_zero() => ttl,
                    _ => info.dns_refresh_rate,
                } + jitter(info.dns_jitter);
                next_refresh = Some(next_refresh.map_or(refresh, |n| n.min(refresh)));
                let mut addrs = r.addresses;
                if info.discovery == DiscoveryType::LogicalDns {
                    addrs.truncate(1);
                } else {
                    info.stats.max_host_weight.set(if addrs.is_empty() { 1 } else { i64::from(weight) });
                }
                info.stats.update_success.inc();
                targets_with_hosts += usize::from(!addrs.is_empty());
                hosts.extend(addrs.into_iter().map(|a| reuse_or_new(current, a, hostname, endpoint)));
            }
            Err(e) => {
                tracing::warn!(cluster = %info.name, "DNS resolution of '{name}' failed: {e}");
                info.stats.update_failure.inc();
                return None;
            }
        }
    }
    let next_refresh = next_refresh.unwrap_or(info.dns_refresh_rate);
    Some(Resolved { hosts: host_set(hosts), targets, targets_with_hosts, next_refresh })
}

/// Envoy's `dns_jitter`: a random wait below it, in whole milliseconds.
fn jitter(max: Duration) -> Duration {
    Duration::from_millis(crate::common::random::below(max.as_millis() as u64))
}

fn reuse_or_new(current: &HostSet, address: SocketAddr, name: &str, endpoint: &ConfiguredEndpoint) -> Arc<Host> {
    current
        .iter()
        .find(|h| {
            h.address == address
                && h.hostname == name
                && h.weight() == endpoint.weight
                && h.priority == endpoint.priority
        })
        .cloned()
        .unwrap_or_else(|| Host::of_endpoint(address, name.to_string(), endpoint))
}

/// Re-resolves a DNS cluster until the manager is gone: after a success at the
/// time it gave (`next`: the last resolution's, `resolve_cluster`), and after a
/// failure (`next` is `None`) at the `dns_failure_refresh_rate` back-off, or
/// `dns_refresh_rate` without one, as Envoy. Each wait counts from the end of the
/// resolution before it (`resolved_at`, the first one's).
async fn refresh_loop(
    cm: std::rc::Weak<ClusterManager>,
    info: Arc<ClusterInfo>,
    mut next: Option<Duration>,
    mut resolved_at: tokio::time::Instant,
) {
    let mut backoff = info.dns_failure_refresh_rate.map(|(base, max)| FailureBackOff::new(base, max));
    loop {
        let wait = match (next, backoff.as_mut()) {
            (None, Some(b)) => b.next(),
            (None, None) => info.dns_refresh_rate,
            (Some(after_success), b) => {
                if let Some(b) = b {
                    b.reset();
                }
                after_success
            }
        };
        tokio::time::sleep_until(resolved_at + wait).await;
        // Ends with the manager, or once CDS removed or replaced the cluster.
        let Some((current, resolver)) = cm
            .upgrade()
            .filter(|cm| cm.get(&info.name).is_some_and(|c| Arc::ptr_eq(&c, &info)))
            .map(|cm| (cm.hosts(&info.name), cm.resolver_of(&info)))
        else {
            return;
        };
        let resolved = resolve_cluster(&info, &resolver, &current).await;
        resolved_at = tokio::time::Instant::now();
        next = resolved.as_ref().map(|r| r.next_refresh);
        let Some(Resolved { hosts: new, targets, .. }) = resolved else {
            continue;
        };
        let Some(cm) = cm.upgrade().filter(|cm| cm.get(&info.name).is_some_and(|c| Arc::ptr_eq(&c, &info))) else {
            return;
        };
        if same_hosts(&new, &current) {
            // Envoy counts each name whose hosts stayed.
            info.stats.update_no_rebuild.add(targets as u64);
        } else {
            cm.update_membership(&info, new);
        }
    }
}

/// Envoy's `JitteredExponentialBackOffStrategy`, in milliseconds: each wait is
/// uniformly random below an interval that starts at `base` and doubles up to
/// `max`; a success starts it over.
#[derive(Debug)]
struct FailureBackOff {
    base: u64,
    max: u64,
    next: u64,
}

impl FailureBackOff {
    fn new(base: Duration, max: Duration) -> Self {
        // The config check keeps 0 < base <= max.
        let base = (base.as_millis() as u64).max(1);
        FailureBackOff { base, max: (max.as_millis() as u64).max(base), next: base }
    }

    fn next(&mut self) -> Duration {
        let interval = self.next;
        self.next = if self.next < self.max / 2 { self.next * 2 } else { self.max };
        Duration::from_millis(crate::common::random::below(interval))
    }

    fn reset(&mut self) {
        self.next = self.base;
    }
}

/// A cluster's `transport_socket`, built by `sockets`; nothing without one.
fn upstream_transport(
    c: &Cluster,
    path: &FieldPath,
    sockets: &dyn TransportSocketBuilder,
    stat_name: &str,
) -> Result<UpstreamTransport, ConfigError> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let Some(socket) = &c.transport_socket else {
        return Ok(UpstreamTransport::default());
    };
    let mut path = path.clone();
    path.push_field("transport_socket");
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        return Err(path.field_error("typed_config", "a transport socket needs a typed_config"));
    };
    path.push_field("typed_config");
    sockets.upstream_transport(any, &path, &format!("cluster.{stat_name}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_back_off_doubles_up_to_max_and_starts_over() {
        let mut b = FailureBackOff::new(Duration::from_millis(100), Duration::from_millis(500));
        let mut intervals = Vec::new();
        for _ in 0..5 {
            intervals.push(b.next);
            assert!(b.next() < Duration::from_millis(intervals[intervals.len() - 1]));
        }
        // Doubled while below half the max, then the max (Envoy's `doubling_limit_`).
        assert_eq!(intervals, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next, 100);
    }
}
