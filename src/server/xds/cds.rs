//! CDS (Envoy's `CdsApiImpl`): a file's clusters against the cluster manager's.
//!
//! A cluster the file lists and no running one matches byte for byte is built
//! (the same checks as a static one), and once every one has built, each is
//! added or replaces its namesake; a dynamic cluster the file no longer lists
//! is removed. As in Envoy, a cluster of `static_resources` is neither replaced
//! nor removed: a file that names one has it skipped, not refused. An EDS
//! cluster warms until its first assignment was read (`eds::start`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use prost::Message;

use super::eds_watch::Entry;
use super::start::Started;
use super::{diff, epoch_ms, record, resource_path, AppliedState, ResourceApi};
use crate::config::path_source::{DiscoveryFile, CLUSTER_TYPE};
use crate::config::ConfigError;
use crate::define_stats;
use crate::extensions::transport_sockets::tls::{SecretManager, TlsSocketBuilder};
use crate::stats::Store;
use crate::upstream::cluster_manager::build_cluster;
use crate::upstream::{ClusterManager, DiscoveryType};

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
    /// Until the server's start-up is over (`started_initialized`), the EDS
    /// clusters added whose first assignment is awaited.
    initializing: RefCell<Option<Vec<Rc<Entry>>>>,
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

impl ResourceApi for CdsApi {
    const TYPE: &'static str = CLUSTER_TYPE;
    const NAME: &'static str = "cds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let (changed, removed) = diff(file, &self.state.borrow(), |name| self.cm.is_static(name));
        let sockets = TlsSocketBuilder { store: &self.store, secrets: &self.secrets };
        let mut built = Vec::with_capacity(changed.len());
        for (i, r) in &changed {
            let path = resource_path(*i);
            let cluster = Cluster::decode(r.encoded.as_slice())
                .map_err(|e| path.error(format!("cannot decode the cluster: {e}")))?;
            built.push(build_cluster(
                &cluster,
                &path,
                self.cm.local_locality(),
                self.cm.local_cluster(),
                &self.store,
                &sockets,
            )?);
        }
        // The SDS secrets the new clusters named are read before they run
        // (their files are then followed until the process exits).
        super::sds::start_pending(&self.secrets, &self.store)
            .await
            .map_err(|e| ConfigError::new("sds_config", format!("cannot watch an SDS file: {e}")))?;
        tracing::info!(
            "cds: {} added/updated cluster(s), {} removed, {} unchanged or static",
            built.len(),
            removed.len(),
            file.resources.len() - built.len()
        );
        for info in built {
            if info.discovery == DiscoveryType::Eds {
                self.cm.warm(&info);
                // Its first read is done (and it is warm) either way; unwatched, it
                // keeps that assignment.
                let started = match self.streams.upgrade() {
                    Some(streams) => super::eds::start(&self.cm, &info, &streams).await,
                    None => Err(std::io::Error::other("the server is stopping")),
                };
                match started {
                    Ok(Some(entry)) => self.initializing.borrow_mut().iter_mut().for_each(|p| p.push(entry.clone())),
                    Ok(None) => {}
                    Err(e) => tracing::warn!("cds: cluster {}: cannot subscribe to its endpoints: {e}", info.name),
                }
            } else {
                self.cm.add_or_update(info).await;
            }
        }
        for name in &removed {
            self.cm.remove(name);
        }
        // The EDS clusters replaced or removed are asked for no longer.
        if let Some(streams) = self.streams.upgrade() {
            streams.prune_eds();
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
        for entry in pending {
            entry.initialized().await;
        }
        self.cm.set_initialized();
    }
}
