//! A worker's view of the clusters: membership snapshots published by the main
//! thread, plus this worker's own load-balancer state. Lives in a thread-local
//! slot, so it is `Rc`/`RefCell` and never locked.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::cluster::ClusterInfo;
use super::host::{Host, HostSet};
use super::load_balancer::RoundRobin;

/// One cluster on one worker.
#[derive(Debug)]
pub struct ThreadLocalCluster {
    pub info: Arc<ClusterInfo>,
    hosts: RefCell<HostSet>,
    lb: RoundRobin,
}

impl ThreadLocalCluster {
    /// The next host by the cluster's load-balancing policy.
    pub fn choose_host(&self) -> Option<Arc<Host>> {
        self.lb.choose(&self.hosts.borrow()).cloned()
    }

    pub fn hosts(&self) -> HostSet {
        self.hosts.borrow().clone()
    }
}

/// Every cluster on one worker, by name.
#[derive(Debug, Default)]
pub struct ThreadLocalClusterManager {
    clusters: RefCell<HashMap<String, Rc<ThreadLocalCluster>>>,
}

impl ThreadLocalClusterManager {
    pub fn new(clusters: &[(Arc<ClusterInfo>, HostSet)]) -> Self {
        let tlcm = ThreadLocalClusterManager::default();
        for (info, hosts) in clusters {
            tlcm.add_or_update(info.clone(), hosts.clone());
        }
        tlcm
    }

    pub fn get(&self, name: &str) -> Option<Rc<ThreadLocalCluster>> {
        self.clusters.borrow().get(name).cloned()
    }

    /// Installs a new membership snapshot for `info.name` (or the cluster itself).
    pub fn add_or_update(&self, info: Arc<ClusterInfo>, hosts: HostSet) {
        let mut clusters = self.clusters.borrow_mut();
        match clusters.get(&info.name) {
            Some(existing) if Arc::ptr_eq(&existing.info, &info) => {
                *existing.hosts.borrow_mut() = hosts;
            }
            _ => {
                let name = info.name.clone();
                clusters.insert(
                    name,
                    Rc::new(ThreadLocalCluster {
                        info,
                        hosts: RefCell::new(hosts),
                        lb: RoundRobin::default(),
                    }),
                );
            }
        }
    }
}
