//! The cluster manager: the main thread's owner of cluster definitions and
//! membership. It resolves DNS clusters on their refresh timers and publishes each
//! new host set to every worker through a thread-local slot.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;

use super::cluster::{ClusterInfo, DiscoveryType, EndpointAddress};
use super::dns;
use super::host::{Host, HostSet};
use super::thread_local_cluster::ThreadLocalClusterManager;
use crate::config::{ConfigError, FieldPath};
use crate::stats::Store;
use crate::thread_local::Slot;

/// The clusters of the static config, validated but not yet running.
#[derive(Debug)]
pub struct ClusterManagerConfig {
    pub clusters: Vec<Arc<ClusterInfo>>,
}

impl ClusterManagerConfig {
    /// Checks and builds every cluster of `static_resources.clusters`.
    pub fn from_proto(clusters: &[Cluster], store: &Arc<Store>) -> Result<Self, ConfigError> {
        let mut out: Vec<Arc<ClusterInfo>> = Vec::with_capacity(clusters.len());
        for (i, c) in clusters.iter().enumerate() {
            let path = FieldPath::starting_at(&format!("static_resources.clusters[{i}]"));
            if out.iter().any(|o| o.name == c.name) {
                return Err(path.field_error("name", format!("cluster manager: duplicate cluster '{}'", c.name)));
            }
            out.push(Arc::new(ClusterInfo::from_proto(c, &path, store)?));
        }
        Ok(ClusterManagerConfig { clusters: out })
    }
}

/// Main-thread owner of the clusters. Not `Send`: it lives on the main dispatcher.
pub struct ClusterManager {
    clusters: BTreeMap<String, Arc<ClusterInfo>>,
    membership: RefCell<BTreeMap<String, HostSet>>,
    slot: Slot<ThreadLocalClusterManager>,
}

impl ClusterManager {
    /// Creates the manager, resolves every DNS cluster once (Envoy's cluster
    /// initialization, which start-up waits for), publishes the snapshot to all
    /// threads, and starts the DNS refresh loops on the current (main) dispatcher.
    pub async fn start(config: ClusterManagerConfig, slot: Slot<ThreadLocalClusterManager>) -> Rc<ClusterManager> {
        let cm = Rc::new(ClusterManager {
            clusters: config.clusters.iter().map(|c| (c.name.clone(), c.clone())).collect(),
            membership: RefCell::new(BTreeMap::new()),
            slot,
        });
        let mut initial = Vec::with_capacity(config.clusters.len());
        for info in &config.clusters {
            let hosts = match info.discovery {
                DiscoveryType::Static => Arc::new(
                    info.endpoints
                        .iter()
                        .filter_map(|e| match e {
                            EndpointAddress::Ip(a) => Some(Host::new(*a, String::new())),
                            EndpointAddress::Dns { .. } => None,
                        })
                        .collect(),
                ),
                DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
                    resolve_cluster(info, &Arc::new(Vec::new())).await.unwrap_or_default()
                }
            };
            set_membership_stats(info, &hosts);
            cm.membership.borrow_mut().insert(info.name.clone(), hosts.clone());
            initial.push((info.clone(), hosts));
        }
        let initial = Arc::new(initial);
        cm.slot.set(move || ThreadLocalClusterManager::new(&initial));
        for info in config.clusters.iter().filter(|c| c.discovery != DiscoveryType::Static) {
            tokio::task::spawn_local(refresh_loop(Rc::downgrade(&cm), info.clone()));
        }
        cm
    }

    /// The slot holding each worker's `ThreadLocalClusterManager`.
    pub fn thread_local_slot(&self) -> &Slot<ThreadLocalClusterManager> {
        &self.slot
    }

    pub fn clusters(&self) -> impl Iterator<Item = &Arc<ClusterInfo>> {
        self.clusters.values()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ClusterInfo>> {
        self.clusters.get(name)
    }

    /// The current members of `name` as the main thread knows them.
    pub fn hosts(&self, name: &str) -> HostSet {
        self.membership.borrow().get(name).cloned().unwrap_or_default()
    }

    /// Installs a new membership for a cluster on main and on every worker.
    fn update_membership(&self, info: &Arc<ClusterInfo>, hosts: HostSet) {
        info.stats.membership_change.inc();
        set_membership_stats(info, &hosts);
        self.membership.borrow_mut().insert(info.name.clone(), hosts.clone());
        let info = info.clone();
        self.slot.run_on_all_threads(move |tlcm| tlcm.add_or_update(info.clone(), hosts.clone()));
    }
}

fn set_membership_stats(info: &ClusterInfo, hosts: &HostSet) {
    info.stats.membership_total.set(hosts.len() as i64);
    info.stats.membership_healthy.set(hosts.len() as i64);
    info.stats.max_host_weight.set(if hosts.is_empty() { 0 } else { 1 });
}

/// Resolves every endpoint of a DNS cluster. Hosts whose address did not change
/// are kept (with their stats); `None` when any name failed to resolve.
async fn resolve_cluster(info: &ClusterInfo, current: &HostSet) -> Option<HostSet> {
    info.stats.update_attempt.inc();
    let mut hosts: Vec<Arc<Host>> = Vec::new();
    for endpoint in &info.endpoints {
        let EndpointAddress::Dns { name, port } = endpoint else {
            continue;
        };
        match dns::resolve(name, *port, info.dns_lookup_family).await {
            Ok(mut addrs) => {
                if info.discovery == DiscoveryType::LogicalDns {
                    addrs.truncate(1);
                }
                hosts.extend(addrs.into_iter().map(|a| reuse_or_new(current, a, name)));
            }
            Err(e) => {
                tracing::warn!(cluster = %info.name, "DNS resolution of '{name}' failed: {e}");
                info.stats.update_failure.inc();
                return None;
            }
        }
    }
    info.stats.update_success.inc();
    if hosts.is_empty() {
        info.stats.update_empty.inc();
    }
    Some(Arc::new(hosts))
}

fn reuse_or_new(current: &HostSet, address: SocketAddr, name: &str) -> Arc<Host> {
    current
        .iter()
        .find(|h| h.address == address && h.hostname == name)
        .cloned()
        .unwrap_or_else(|| Host::new(address, name.to_string()))
}

/// Re-resolves a DNS cluster every `dns_refresh_rate` until the manager is gone.
async fn refresh_loop(cm: std::rc::Weak<ClusterManager>, info: Arc<ClusterInfo>) {
    loop {
        tokio::time::sleep(info.dns_refresh_rate).await;
        let Some(current) = cm.upgrade().map(|cm| cm.hosts(&info.name)) else {
            return;
        };
        let Some(new) = resolve_cluster(&info, &current).await else {
            continue;
        };
        let Some(cm) = cm.upgrade() else { return };
        let same = new.len() == current.len() && new.iter().zip(current.iter()).all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            info.stats.update_no_rebuild.inc();
        } else {
            cm.update_membership(&info, new);
        }
    }
}
