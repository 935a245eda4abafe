//! CDS (Envoy's `CdsApiImpl`): a file's clusters against the cluster manager's.
//!
//! A cluster the file lists and no running one matches byte for byte is built
//! (the same checks as a static one), and once every one has built, each is
//! added or replaces its namesake; a dynamic cluster the file no longer lists
//! is removed. As in Envoy, a cluster of `static_resources` is neither replaced
//! nor removed: a file that names one has it skipped, not refused. A cluster
//! warms until the SDS secrets of its TLS context that come from a management
//! server do (their first answer or initial fetch timeout), and an EDS one
//! also until its first assignment was read (`eds::start`, asked for once the
//! secrets came, as a static EDS cluster's are awaited before it), as Envoy's.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use prost::Message;

use super::grpc_subscription::LocalBoxFuture;
use super::start::Started;
use super::{diff, epoch_ms, record, resource_path, AppliedState, ResourceApi};
use crate::config::path_source::{DiscoveryFile, CLUSTER_TYPE};
use crate::config::ConfigError;
use crate::define_stats;
use crate::extensions::transport_sockets::tls::{SecretManager, TlsSocketBuilder};
use crate::stats::Store;
use crate::upstream::cluster_manager::build_cluster;
use crate::upstream::{ClusterInfo, ClusterManager, DiscoveryType};

define_stats! {
    /// `cluster_manager.cds.config_reload*`: Envoy's count of CDS updates that
    /// changed a cluster (added, replaced or removed one), and when the last did.
    #[derive(Debug)]
    pub struct CdsStats {
        counter config_reload,
        gauge config_reload_time_ms,
    }
}

pub struct CdsApi {
    cm: Rc<ClusterManager>,
    store: Arc<Store>,
    secrets: Arc<SecretManager>,
    stats: CdsStats,
    state: Rc<RefCell<AppliedState>>,
    /// Where the EDS clusters it adds subscribe (weak: the streams hold this API).
    streams: Weak<Started>,
    /// Until the server's start-up is over (`started_initialized`), the
    /// warming of the clusters added (an EDS cluster's first assignment, a
    /// cluster's secrets).
    initializing: RefCell<Option<Vec<LocalBoxFuture<'static, ()>>>>,
}

impl CdsApi {
    pub fn new(
        cm: Rc<ClusterManager>,
        store: Arc<Store>,
        secrets: Arc<SecretManager>,
        state: Rc<RefCell<AppliedState>>,
        streams: &Rc<Started>,
    ) -> Self {
        let stats = CdsStats::new(&store, "cluster_manager.cds.");
        CdsApi {
            cm,
            store,
            secrets,
            stats,
            state,
            streams: Rc::downgrade(streams),
            initializing: RefCell::new(Some(Vec::new())),
        }
    }
}

impl CdsApi {
    /// Start-up waits for `warming` too, if it is not over yet.
    fn initializing(&self, warming: LocalBoxFuture<'static, ()>) {
        if let Some(pending) = self.initializing.borrow_mut().as_mut() {
            pending.push(warming);
        }
    }
}

impl CdsApi {
    /// Holds `info` back until it is warm; `/config_dump` shows its namesake
    /// that runs meanwhile, if one does, as still active.
    fn warm(&self, info: &Arc<ClusterInfo>) {
        if !self.cm.warms(&info.name) {
            let mut state = self.state.borrow_mut();
            let running = self.cm.get(&info.name).and_then(|_| state.resources.get(&info.name).cloned());
            let superseded = &mut state.transitions_mut().superseded;
            match running {
                Some(r) => superseded.insert(info.name.clone(), r),
                None => drop(superseded.remove(&info.name)),
            }
        }
        self.cm.warm(info);
    }

    /// Lets go of what the clusters that have warmed since superseded.
    fn forget_warmed(&self) {
        let mut state = self.state.borrow_mut();
        let Some(superseded) = state.transitions().map(|t| &t.superseded) else { return };
        let warmed: Vec<String> = superseded.keys().filter(|n| !self.cm.warms(n)).cloned().collect();
        for name in warmed {
            state.end_warming(&name);
        }
    }
}

impl ResourceApi for CdsApi {
    const TYPE: &'static str = CLUSTER_TYPE;
    const NAME: &'static str = "cds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        self.forget_warmed();
        let (changed, removed) = diff(file, &self.state.borrow(), |name| self.cm.is_static(name));
        let sockets = TlsSocketBuilder { store: &self.store, secrets: &self.secrets };
        let mut built = Vec::with_capacity(changed.len());
        // What was named before is not these clusters'.
        self.secrets.take_named();
        for (i, r) in &changed {
            let path = resource_path(*i);
            let cluster = Cluster::decode(r.encoded.as_slice())
                .map_err(|e| path.error(format!("cannot decode the cluster: {e}")))?;
            let info = build_cluster(
                &cluster,
                &path,
                self.cm.local_locality(),
                self.cm.local_cluster(),
                &self.store,
                &sockets,
            )?;
            built.push((info, self.secrets.take_named()));
        }
        // The SDS files the new clusters named are read before they run (then
        // followed until the process exits); a secret of a management server
        // is asked for, and the cluster warms until it comes.
        let streams = self.streams.upgrade();
        super::sds::start_pending(&self.secrets, &self.store, streams.as_deref(), |_| true)
            .await
            .map_err(|e| ConfigError::new("sds_config", format!("cannot start SDS: {e}")))?;
        tracing::info!(
            "cds: {} added/updated cluster(s), {} removed, {} unchanged or static",
            built.len(),
            removed.len(),
            file.resources.len() - built.len()
        );
        for (info, secrets) in built {
            let secrets: Vec<_> = secrets.into_iter().filter(|s| !s.is_initialized()).collect();
            if info.discovery == DiscoveryType::Eds && !secrets.is_empty() {
                tracing::info!("cds: cluster '{}' warming until its secrets and endpoints come", info.name);
                self.warm(&info);
                let (cm, streams) = (self.cm.clone(), self.streams.clone());
                let warmed = tokio::task::spawn_local(async move {
                    for secret in secrets {
                        secret.initialized().await;
                    }
                    // Unless a later update replaced or removed it meanwhile.
                    let Some(streams) = streams.upgrade().filter(|_| cm.is_warming(&info)) else { return };
                    let entry = match super::eds::start(&cm, &info, &streams).await {
                        Ok(entry) => entry,
                        Err(e) => {
                            tracing::warn!("cds: cluster {}: cannot subscribe to its endpoints: {e}", info.name);
                            return;
                        }
                    };
                    if let Some(entry) = entry {
                        entry.initialized().await;
                    }
                    first_checks_then_warm(&cm, &info).await;
                });
                self.initializing(Box::pin(async move {
                    let _ = warmed.await;
                }));
            } else if info.discovery == DiscoveryType::Eds {
                self.warm(&info);
                // Its first read is done (and it is warm) either way; unwatched, it
                // keeps that assignment.
                let started = match self.streams.upgrade() {
                    Some(streams) => super::eds::start(&self.cm, &info, &streams).await,
                    None => Err(std::io::Error::other("the server is stopping")),
                };
                // Warm once its first assignment came and, with health checks,
                // its hosts' first checks are done (a file's assignment was read
                // already, the checks may still run).
                let (cm, warming) = (self.cm.clone(), info.clone());
                let checked = async move { first_checks_then_warm(&cm, &warming).await };
                match started {
                    Ok(Some(entry)) => self.initializing(Box::pin(async move {
                        entry.initialized().await;
                        checked.await;
                    })),
                    Ok(None) => self.initializing(Box::pin(checked)),
                    Err(e) => tracing::warn!("cds: cluster {}: cannot subscribe to its endpoints: {e}", info.name),
                }
            } else if !secrets.is_empty() {
                tracing::info!("cds: cluster '{}' warming until its secrets come", info.name);
                self.warm(&info);
                let cm = self.cm.clone();
                let warmed = tokio::task::spawn_local(async move {
                    for secret in secrets {
                        secret.initialized().await;
                    }
                    // Unless a later update replaced or removed it meanwhile.
                    if cm.is_warming(&info) {
                        cm.add_or_update(info).await;
                    }
                });
                self.initializing(Box::pin(async move {
                    let _ = warmed.await;
                }));
            } else {
                self.state.borrow_mut().end_warming(&info.name);
                self.cm.add_or_update(info).await;
            }
        }
        for name in &removed {
            self.state.borrow_mut().end_warming(name);
            self.cm.remove(name);
        }
        // The EDS clusters replaced or removed are asked for no longer, nor
        // (once every worker let go of them) the secrets only they read.
        if let Some(streams) = self.streams.upgrade() {
            streams.prune_eds();
            if !removed.is_empty() || !changed.is_empty() {
                let caught_up = self.cm.threads_caught_up();
                let streams = Rc::downgrade(&streams);
                tokio::task::spawn_local(async move {
                    let _ = caught_up.await;
                    if let Some(streams) = streams.upgrade() {
                        streams.prune_sds();
                    }
                });
            }
        }
        if !changed.is_empty() || !removed.is_empty() {
            self.stats.config_reload.inc();
            self.stats.config_reload_time_ms.set(epoch_ms(SystemTime::now()));
        }
        record(&self.state, file, &changed, &removed);
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
    }

    /// Envoy's cluster manager initializes the EDS clusters of the first CDS
    /// update (their first assignment, or `initial_fetch_timeout`) before CDS
    /// counts as initialized and listeners are asked for.
    async fn started_initialized(&self) {
        let pending = self.initializing.borrow_mut().take().unwrap_or_default();
        for warming in pending {
            warming.await;
        }
        self.cm.set_initialized();
    }
}

/// Waits, for a warming EDS cluster that has its first assignment, until its
/// hosts' first health checks are done (at once without health checks).
async fn first_checks_then_warm(cm: &ClusterManager, warming: &Arc<ClusterInfo>) {
    if warming.health_checks.is_empty() {
        return;
    }
    cm.first_checks_done(warming).await;
    // The checker's own task, woken with this one, activates the cluster right
    // after (a few turns of the loop at most; the bound keeps a cluster that
    // warms on for another reason from holding start-up here).
    for _ in 0..64 {
        if !cm.is_warming(warming) {
            break;
        }
        tokio::task::yield_now().await;
    }
}
