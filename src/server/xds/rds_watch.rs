//! RDS over the ADS stream (Envoy's RDS watches on a `GrpcMux`): one watch of
//! the route type on the stream, for every route config fetched there.
//!
//! As EDS, RDS names its resources: each request lists the route config
//! names subscribed, and is sent again as one is added. A response's route
//! configs go to the subscriptions of their names (`RdsApi::apply`, the code
//! a file's goes through); one nobody asked for is ignored, and a
//! subscription a response leaves out keeps its table (Envoy calls only the
//! watches a response names). Each counts its updates in its own
//! `http.<prefix>.rds.<name>.update_*` (a rejected response counts against
//! every one, as Envoy's `onConfigUpdateFailed` to each watch) and is
//! initialized by its first response or by `initial_fetch_timeout`.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

use super::grpc_mux::GrpcMux;
use super::grpc_subscription::{LocalBoxFuture, Watch};
use super::rds::RdsApi;
use super::{ResourceApi, SubscriptionStats};
use crate::config::path_source::{decode_pushed, DiscoveryFile};
use crate::config::ConfigError;
use crate::extensions::filters::network::http_connection_manager::rds::ROUTE_TYPE;
use crate::stats::Store;

/// One route config on the stream.
pub struct Entry {
    api: RdsApi,
    stats: SubscriptionStats,
    initialized: Cell<bool>,
    notify: tokio::sync::Notify,
}

impl Entry {
    /// Waits for the first response naming it, or for `timeout` (then with
    /// no table: every request is a 404, counting `init_fetch_timeout`).
    pub async fn initialized(&self, timeout: Option<Duration>) {
        let notified = self.notify.notified();
        if self.initialized.get() {
            return;
        }
        let Some(timeout) = timeout else { return notified.await };
        if tokio::time::timeout(timeout, notified).await.is_err() && !self.initialized.get() {
            self.stats.init_fetch_timeout.inc();
            self.stats.update_attempt.inc();
            tracing::warn!("rds: initial fetch timed out for route config {}", self.api.name());
            self.initialize();
        }
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.get()
    }

    fn initialize(&self) {
        if !self.initialized.replace(true) {
            self.notify.notify_waiters();
        }
    }
}

/// The route configs of one stream.
pub struct RdsWatch {
    mux: Weak<GrpcMux>,
    type_url: String,
    entries: RefCell<Vec<Rc<Entry>>>,
    /// The last accepted response's `version_info`.
    version_info: RefCell<String>,
}

impl RdsWatch {
    pub fn new(mux: &Rc<GrpcMux>) -> Self {
        RdsWatch {
            mux: Rc::downgrade(mux),
            type_url: format!("type.googleapis.com/{ROUTE_TYPE}"),
            entries: RefCell::default(),
            version_info: RefCell::default(),
        }
    }

    /// Subscribes a route config: the stream asks for it. Counts the start as
    /// an attempt, as Envoy's gRPC subscription.
    pub fn add(&self, api: RdsApi, store: &Store) -> Rc<Entry> {
        let stats = SubscriptionStats::new(store, api.stat_prefix());
        stats.update_attempt.inc();
        let entry = Rc::new(Entry { api, stats, initialized: Cell::new(false), notify: tokio::sync::Notify::new() });
        self.entries.borrow_mut().push(entry.clone());
        if let Some(mux) = self.mux.upgrade() {
            mux.interest_changed(&self.type_url);
        }
        entry
    }

    /// The subscription of `name`.
    pub fn entry(&self, name: &str) -> Option<Rc<Entry>> {
        self.entries.borrow().iter().find(|e| e.api.name() == name).cloned()
    }

    /// Hands each route config of `file` to the subscription of its name.
    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let entries = self.entries.borrow().clone();
        let mut counted: Vec<*const Entry> = Vec::new();
        for resource in &file.resources {
            for entry in entries.iter().filter(|e| e.api.name() == resource.name) {
                entry.stats.update_attempt.inc();
                counted.push(Rc::as_ptr(entry));
                let one = DiscoveryFile { version_info: file.version_info.clone(), resources: vec![resource.clone()] };
                let applied = entry.api.apply(&one).await;
                entry.initialize();
                match applied {
                    Ok(()) => {
                        entry.stats.accepted(&file.version_info);
                        entry.api.state().borrow_mut().version_info.clone_from(&file.version_info);
                    }
                    Err(e) => {
                        for entry in &entries {
                            if !counted.contains(&Rc::as_ptr(entry)) {
                                entry.stats.update_attempt.inc();
                            }
                            entry.stats.update_rejected.inc();
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Watch for RdsWatch {
    fn type_url(&self) -> &str {
        &self.type_url
    }

    fn resource_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.borrow().iter().map(|e| e.api.name().to_string()).collect();
        names.sort();
        names.dedup();
        names
    }

    fn version_info(&self) -> String {
        self.version_info.borrow().clone()
    }

    fn on_response<'a>(&'a self, response: &'a DiscoveryResponse) -> LocalBoxFuture<'a, Result<(), ConfigError>> {
        Box::pin(async move {
            let pushed: Vec<(&str, &[u8])> =
                response.resources.iter().map(|a| (a.type_url.as_str(), a.value.as_slice())).collect();
            let decoded =
                decode_pushed(&response.version_info, &pushed, ROUTE_TYPE, &crate::extensions::supported::INVENTORY);
            crate::config::release_schema();
            let outcome = match decoded {
                Ok(file) => self.apply(&file).await,
                Err(e) => {
                    // A response that does not decode reaches no subscription: each counts it.
                    for entry in self.entries.borrow().iter() {
                        entry.stats.update_attempt.inc();
                        entry.stats.update_rejected.inc();
                    }
                    Err(e)
                }
            };
            if outcome.is_ok() {
                response.version_info.clone_into(&mut self.version_info.borrow_mut());
            } else {
                tracing::warn!("gRPC config for {} rejected: {outcome:?}", self.type_url);
            }
            outcome
        })
    }

    fn on_stream_failure(&self) {
        for entry in self.entries.borrow().iter() {
            entry.stats.update_attempt.inc();
            entry.stats.update_failure.inc();
        }
    }
}
