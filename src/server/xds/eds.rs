//! EDS (Envoy's `EdsClusterImpl` subscription): an EDS cluster's assignment,
//! from its `eds_cluster_config.eds_config` file or from a management server
//! (`eds_watch`).
//!
//! Each EDS cluster has its own subscription, counted in the cluster's stats
//! (`cluster.<name>.update_*`, `version`), as Envoy's. Unlike CDS and LDS, EDS
//! names its resource (the cluster's `service_name`): `EdsApi::apply` takes the
//! `(version_info, resources)` of one update for that name, which a file holds
//! whole and another transport can hand over once it picked the names an
//! `EdsApi` asks for (`resource_name`). As in Envoy 1.40, an update with no
//! assignment changes nothing (`update_empty`), and one with several, or one
//! for another name, is rejected. The cluster is initialized (a static one
//! before listeners start; one from CDS leaves warming) by its first update,
//! whatever its outcome: a file is read at once, so `initial_fetch_timeout`
//! never fires, as in Envoy's filesystem subscription.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::Message;

use super::eds_watch::Entry;
use super::source::Source;
use super::start::Started;
use super::{resource_path, AppliedState, PathSubscription, ResourceApi};
use crate::config::path_source::{DiscoveryFile, ENDPOINT_TYPE};
use crate::config::{ConfigError, FieldPath};
use crate::server::init_target::InitTarget;
use crate::upstream::eds::Assignment;
use crate::upstream::{ClusterInfo, ClusterManager, DiscoveryType};

/// One EDS cluster's subscription.
pub struct EdsApi {
    cm: Weak<ClusterManager>,
    info: Arc<ClusterInfo>,
    /// Set once the first update was handled: later changes count as updates.
    /// Set by the first update (or its absence).
    /// Shared with its initial-fetch timer, which ends with it.
    initialized: Rc<InitTarget>,
    state: RefCell<AppliedState>,
}

impl EdsApi {
    pub fn new(cm: &Rc<ClusterManager>, info: Arc<ClusterInfo>) -> Self {
        EdsApi { cm: Rc::downgrade(cm), info, initialized: Rc::default(), state: RefCell::default() }
    }

    /// The `cluster_name` of the assignment this cluster takes.
    pub fn resource_name(&self) -> &str {
        self.info.eds.as_ref().map_or(self.info.name.as_str(), |e| e.service_name.as_str())
    }

    pub fn info(&self) -> &Arc<ClusterInfo> {
        &self.info
    }

    /// Whether the first update (or its absence) initialized the cluster.
    pub fn is_initialized(&self) -> bool {
        self.initialized.is_ready()
    }

    /// What its initialization sets.
    pub fn init_target(&self) -> Rc<InitTarget> {
        self.initialized.clone()
    }

    /// Waits until the cluster is initialized.
    pub async fn initialized(&self) {
        self.initialized.ready().await;
    }

    /// The first update was handled, whatever its outcome (or none came in
    /// time): a warming cluster starts serving, with no hosts if none was assigned.
    pub fn initialize(&self) {
        if self.initialized.set() {
            if let Some(cm) = self.cm.upgrade() {
                cm.end_warming(&self.info);
            }
        }
    }
}

impl ResourceApi for EdsApi {
    const TYPE: &'static str = ENDPOINT_TYPE;
    const NAME: &'static str = "eds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let name = self.resource_name();
        // Envoy's checks and messages (`EdsClusterImpl::onConfigUpdate`).
        let resource = match file.resources.as_slice() {
            [] => {
                tracing::debug!("eds: missing ClusterLoadAssignment for {name}");
                self.info.stats.update_empty.inc();
                return Ok(());
            }
            [one] => one,
            more => {
                return Err(FieldPath::starting_at("resources")
                    .error(format!("Unexpected EDS resource length: {}", more.len())))
            }
        };
        let path = resource_path(0);
        if resource.name != name {
            return Err(path
                .field_error("cluster_name", format!("Unexpected EDS cluster (expecting {name}): {}", resource.name)));
        }
        let la = ClusterLoadAssignment::decode(resource.encoded.as_slice())
            .map_err(|e| path.error(format!("cannot decode the assignment: {e}")))?;
        let assignment = Assignment::from_proto(&la, &path)?;
        if let Some(cm) = self.cm.upgrade() {
            cm.assign(&self.info, &assignment, !self.initialized.is_ready());
        }
        super::record(&self.state, file, &[(0, resource)], &[]);
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
    }

    fn done(&self) -> bool {
        self.cm.upgrade().is_none_or(|cm| !cm.is_current(&self.info))
    }
}

/// Starts the subscription of an EDS cluster the manager runs or warms. A
/// file is read once now (ending its warming, whatever the outcome), then
/// followed by a local task until the cluster is replaced or removed. A
/// management server is asked for the assignment, which ends the warming when
/// it comes (or `initial_fetch_timeout` does); the returned entry tells when.
pub async fn start(
    cm: &Rc<ClusterManager>,
    info: &Arc<ClusterInfo>,
    streams: &Started,
) -> std::io::Result<Option<Rc<Entry>>> {
    let Some(eds) = &info.eds else {
        return Err(std::io::Error::other(format!("cluster {} has no eds_cluster_config", info.name)));
    };
    let api = EdsApi::new(cm, info.clone());
    let path = match &eds.source.source {
        Source::Path(path) => path.clone(),
        other => {
            let Some(watch) = streams.eds_watch(other) else {
                api.initialize();
                return Err(std::io::Error::other(format!("cluster {}: no ADS stream for its eds_config", info.name)));
            };
            return Ok(Some(super::eds_watch::add(&watch, api, streams.store(), eds.source.initial_fetch_timeout)));
        }
    };
    let sub = PathSubscription::new(path, streams.store(), &format!("cluster.{}.", info.stat_name));
    let watcher = sub.start(&api).await;
    api.initialize();
    let watcher = watcher?;
    streams.push_task(tokio::task::spawn_local(async move { sub.follow(&api, watcher).await }));
    Ok(None)
}

/// Starts the subscription of each EDS cluster of `static_resources`, and
/// waits until each is initialized, its hosts' first health checks included
/// (Envoy's init manager, before listeners).
pub async fn start_static(cm: &Rc<ClusterManager>, streams: &Started) -> std::io::Result<()> {
    let mut pending = Vec::new();
    for info in cm.clusters().iter().filter(|c| c.discovery == DiscoveryType::Eds && cm.is_static(&c.name)) {
        pending.extend(start(cm, info, streams).await?);
    }
    for entry in pending {
        entry.initialized().await;
    }
    // Then its hosts' first health checks, as Envoy's cluster initialization.
    for info in cm.clusters().iter().filter(|c| c.discovery == DiscoveryType::Eds && cm.is_static(&c.name)) {
        cm.first_checks_done(info).await;
    }
    Ok(())
}
