//! RDS over the ADS stream (Envoy's RDS watches on a `GrpcMux`): one watch of
//! the route type on the stream (a `NamedWatch`), an `Entry` for every route
//! config fetched there.
//!
//! As EDS, RDS names its resources: each request lists the route config names
//! subscribed, and is sent again as one is added. A route config goes to the
//! subscription of its name through `RdsApi::apply`, the code a file's goes
//! through. Each counts its updates in its own
//! `http.<prefix>.rds.<name>.update_*` and is initialized by its first
//! response or by `initial_fetch_timeout`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::grpc_mux::GrpcMux;
use super::grpc_subscription::LocalBoxFuture;
use super::named_watch::{apply_one_with, NamedEntry, NamedWatch};
use super::rds::RdsApi;
use super::{AppliedState, SubscriptionStats};
use crate::config::path_source::DiscoveryFile;
use crate::config::ConfigError;
use crate::extensions::filters::network::http_connection_manager::rds::{RdsRouteConfig, ROUTE_TYPE};
use crate::server::init_target::InitTarget;
use crate::stats::Store;

/// One route config on the stream.
pub struct Entry {
    api: RdsApi,
    stats: SubscriptionStats,
    initialized: InitTarget,
    /// No listener names it any more (`release`).
    released: Cell<bool>,
    /// On a delta stream, the version of the route config about to be applied.
    resource_version: RefCell<Option<String>>,
}

impl Entry {
    /// Waits for the first response naming it, or for `timeout` (then with
    /// no table: every request is a 404, counting `init_fetch_timeout`).
    pub async fn initialized(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else { return self.initialized.ready().await };
        if tokio::time::timeout(timeout, self.initialized.ready()).await.is_err() && !self.initialized.is_ready() {
            self.stats.init_fetch_timeout.inc();
            self.stats.update_attempt.inc();
            tracing::warn!("rds: initial fetch timed out for route config {}", self.api.name());
            self.initialize();
        }
    }
}

impl NamedEntry for Entry {
    fn resource_name(&self) -> &str {
        self.api.name()
    }

    fn done(&self) -> bool {
        self.released.get()
    }

    fn is_initialized(&self) -> bool {
        self.initialized.is_ready()
    }

    fn initialize(&self) {
        self.initialized.set();
    }

    fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }

    /// On a delta stream only: Envoy's delta RDS takes the resource's own
    /// version, a state of the world's the response's.
    fn resource_version(&self, version: &str, delta: bool) {
        if delta {
            *self.resource_version.borrow_mut() = Some(version.to_string());
        }
    }

    /// The route config is applied with its own version when it has one
    /// (what `/config_dump` and the log show, as Envoy's); the subscription
    /// counts the response's.
    fn apply_one<'a>(&'a self, one: &'a DiscoveryFile) -> LocalBoxFuture<'a, Result<(), ConfigError>> {
        Box::pin(async move {
            let own = self
                .resource_version
                .borrow_mut()
                .take()
                .map(|version_info| DiscoveryFile { version_info, resources: one.resources.clone() });
            apply_one_with(self, &self.api, one, own.as_ref().unwrap_or(one)).await
        })
    }

    /// Envoy's RDS ignores a delta removal of its route config (logged), the
    /// table staying; the update still counts as accepted.
    fn removed<'a>(&'a self, version_info: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::error!(
                "Server sent a delta RDS update attempting to remove a resource (name: {}). Ignoring.",
                self.api.name()
            );
            self.stats.accepted(version_info);
        })
    }
}

/// The route configs of one stream.
pub type RdsWatch = NamedWatch<Entry>;

/// A new stream's route watch.
pub fn new_watch(mux: &Rc<GrpcMux>) -> RdsWatch {
    NamedWatch::new(mux, ROUTE_TYPE)
}

/// Subscribes a route config on `watch`: the stream asks for it.
pub fn add(watch: &RdsWatch, api: RdsApi, store: &Store) -> Rc<Entry> {
    let stats = SubscriptionStats::new(store, api.stat_prefix());
    let entry = Rc::new(Entry {
        api,
        stats,
        initialized: InitTarget::default(),
        released: Cell::new(false),
        resource_version: RefCell::default(),
    });
    watch.push(entry.clone());
    entry
}

/// Ends the subscriptions of the `released` route configs (no listener
/// names them any more): the stream asks without them (SotW's names shrink,
/// delta unsubscribes them), `/config_dump` (`states`, the server's
/// `rds_states`) no longer shows them and their `http.<prefix>.rds.<name>.*`
/// stats are deleted, as Envoy's once the listener that named them drained
/// (checked against 1.40, both protocols): a later subscription of the name
/// starts them anew.
pub fn release(
    watch: &RdsWatch,
    released: &[Arc<RdsRouteConfig>],
    states: &RefCell<Vec<Rc<RefCell<AppliedState>>>>,
    store: &Store,
) {
    for entry in watch.entries() {
        if released.iter().any(|c| Arc::ptr_eq(c, entry.api.config())) {
            tracing::info!("rds: route config {} is no longer named: unsubscribed", entry.api.name());
            entry.released.set(true);
            store.remove_group(entry.api.stat_prefix());
            states.borrow_mut().retain(|s| !Rc::ptr_eq(s, entry.api.shared_state()));
        }
    }
    watch.prune();
}

/// The subscription of route config `name` on `watch`.
pub fn entry(watch: &RdsWatch, name: &str) -> Option<Rc<Entry>> {
    watch.entries().into_iter().find(|e| e.api.name() == name)
}
