//! RTDS over a management server's stream: one watch of the runtime type per
//! stream (a `NamedWatch`), an `Entry` for every RTDS layer fetched there.
//!
//! As RDS, RTDS names its resource: each request lists the layers' resource
//! names. A `Runtime` goes to the layer of its name through `RtdsApi::apply`,
//! the code a file's goes through; a delta response removing it empties the
//! layer (Envoy's `onConfigRemoved`). Each layer is initialized by its first
//! response, accepted or not, or by `initial_fetch_timeout` (counting
//! `runtime.init_fetch_timeout`).

use std::rc::Rc;
use std::time::Duration;

use super::grpc_mux::GrpcMux;
use super::grpc_subscription::LocalBoxFuture;
use super::named_watch::{apply_one_with, time_out_initial_fetch, NamedEntry, NamedWatch};
use super::rtds::{RtdsApi, RUNTIME_TYPE, STAT_PREFIX};
use super::SubscriptionStats;
use crate::config::path_source::DiscoveryFile;
use crate::config::ConfigError;
use crate::server::init_target::InitTarget;
use crate::stats::Store;

/// One RTDS layer on the stream.
pub struct Entry {
    api: RtdsApi,
    stats: SubscriptionStats,
    initialized: InitTarget,
}

impl Entry {
    /// Waits for the first response naming it, or for its fetch to time out.
    pub async fn initialized(&self) {
        self.initialized.ready().await;
    }
}

impl NamedEntry for Entry {
    fn resource_name(&self) -> &str {
        self.api.resource_name()
    }

    fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }

    fn is_initialized(&self) -> bool {
        self.initialized.is_ready()
    }

    fn initialize(&self) {
        self.initialized.set();
    }

    fn apply_one<'a>(&'a self, one: &'a DiscoveryFile) -> LocalBoxFuture<'a, Result<(), ConfigError>> {
        Box::pin(apply_one_with(self, &self.api, one, one))
    }

    fn removed<'a>(&'a self, version_info: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            self.api.remove();
            self.initialize();
            self.stats.accepted(version_info);
        })
    }
}

/// The RTDS layers of one stream.
pub type RtdsWatch = NamedWatch<Entry>;

/// A new stream's runtime watch: its layers are asked for one request at a
/// time as they subscribe (the first request names the first layer, the
/// next the first two, ...; on a delta stream each subscribes one), as
/// Envoy's (checked against 1.40 with three layers on ADS, both protocols).
pub fn new_watch(mux: &Rc<GrpcMux>) -> RtdsWatch {
    NamedWatch::one_by_one(mux, RUNTIME_TYPE)
}

/// Subscribes a layer on `watch`: the stream asks for its resource. Ends its
/// initialization after `timeout` if no response named it by then.
pub fn add(watch: &RtdsWatch, api: RtdsApi, store: &Store, timeout: Option<Duration>) -> Rc<Entry> {
    let stats = SubscriptionStats::new(store, STAT_PREFIX);
    let entry = Rc::new(Entry { api, stats, initialized: InitTarget::default() });
    watch.push(entry.clone());
    time_out_initial_fetch(&entry, timeout);
    entry
}
