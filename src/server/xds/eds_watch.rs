//! EDS over a management server's stream (Envoy's EDS watches on a
//! `GrpcMux`): one watch of the endpoint type per stream (a `NamedWatch`), an
//! `Entry` for every EDS cluster that gets its assignment there.
//!
//! Unlike CDS and LDS, EDS names its resources: each request lists the
//! `service_name`s of the clusters subscribed, and is sent again as clusters
//! come and go. Each cluster counts its updates in its own
//! `cluster.<name>.update_*`, as Envoy's per-cluster subscriptions do, and is
//! initialized by its first assignment or by `initial_fetch_timeout` (then
//! with no hosts, counting `init_fetch_timeout`).

use std::rc::Rc;
use std::time::Duration;

use super::eds::EdsApi;
use super::grpc_mux::GrpcMux;
use super::grpc_subscription::LocalBoxFuture;
use super::named_watch::{time_out_initial_fetch, NamedEntry, NamedWatch};
use super::{ResourceApi, SubscriptionStats};
use crate::config::path_source::{DiscoveryFile, ENDPOINT_TYPE};
use crate::config::ConfigError;
use crate::server::init_target::InitTarget;
use crate::stats::Store;

/// One EDS cluster on the stream.
pub struct Entry {
    api: EdsApi,
    stats: SubscriptionStats,
}

impl Entry {
    /// Waits until the cluster is initialized.
    pub async fn initialized(&self) {
        self.api.initialized().await;
    }
}

impl NamedEntry for Entry {
    fn resource_name(&self) -> &str {
        self.api.resource_name()
    }

    fn done(&self) -> bool {
        self.api.done()
    }

    fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }

    fn is_initialized(&self) -> bool {
        self.api.is_initialized()
    }

    /// A warming cluster starts serving (with no hosts if none came in time).
    fn initialize(&self) {
        self.api.initialize();
    }

    fn init_target(&self) -> Option<Rc<InitTarget>> {
        Some(self.api.init_target())
    }

    fn apply_one<'a>(&'a self, one: &'a DiscoveryFile) -> LocalBoxFuture<'a, Result<(), ConfigError>> {
        Box::pin(async move {
            let applied = self.api.apply(one).await;
            self.initialize();
            match &applied {
                Ok(()) => self.stats.accepted(&one.version_info),
                Err(e) => tracing::warn!("eds: cluster {}: assignment rejected: {e}", self.api.info().name),
            }
            applied
        })
    }
}

/// The EDS clusters of one stream.
pub type EdsWatch = NamedWatch<Entry>;

/// A new stream's endpoint watch.
pub fn new_watch(mux: &Rc<GrpcMux>) -> EdsWatch {
    NamedWatch::new(mux, ENDPOINT_TYPE)
}

/// Subscribes a cluster on `watch`: the stream asks for its assignment. Ends
/// its initialization after `timeout` if no assignment came by then.
pub fn add(watch: &EdsWatch, api: EdsApi, store: &Store, timeout: Option<Duration>) -> Rc<Entry> {
    let stats = SubscriptionStats::new(store, &format!("cluster.{}.", api.info().stat_name));
    let entry = Rc::new(Entry { api, stats });
    watch.push(entry.clone());
    time_out_initial_fetch(&entry, timeout);
    entry
}
