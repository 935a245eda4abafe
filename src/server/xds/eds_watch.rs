//! EDS over a management server's stream (Envoy's EDS watches on a
//! `GrpcMux`): one watch of the endpoint type per stream, for every EDS
//! cluster that gets its assignment there.
//!
//! Unlike CDS and LDS, EDS names its resources: each request lists the
//! `service_name`s of the clusters subscribed, and is sent again as clusters
//! come and go (`GrpcMux::interest_changed`). A response's assignments go to
//! the clusters of their names; one no cluster asked for is ignored, and a
//! cluster whose assignment a response leaves out keeps the one it has (a
//! state-of-the-world response of a type that names its resources need not
//! repeat them). Each cluster counts its updates in its own
//! `cluster.<name>.update_*`, as Envoy's per-cluster subscriptions do (a
//! rejected response counts against every one), and is initialized by its
//! first assignment or by `initial_fetch_timeout` (then with no hosts,
//! counting `init_fetch_timeout`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

use super::eds::EdsApi;
use super::grpc_mux::GrpcMux;
use super::grpc_subscription::{LocalBoxFuture, Watch};
use super::{ResourceApi, SubscriptionStats};
use crate::config::path_source::{decode_pushed, DiscoveryFile, ENDPOINT_TYPE};
use crate::config::ConfigError;
use crate::stats::Store;

/// One EDS cluster on the stream.
pub struct Entry {
    api: EdsApi,
    stats: SubscriptionStats,
    initialized: tokio::sync::Notify,
}

impl Entry {
    /// Waits until the cluster is initialized.
    pub async fn initialized(&self) {
        let notified = self.initialized.notified();
        if !self.api.is_initialized() {
            notified.await;
        }
    }

    /// No first assignment in time: the cluster starts with no hosts.
    fn fetch_timed_out(&self) {
        self.stats.init_fetch_timeout.inc();
        self.stats.update_attempt.inc();
        tracing::warn!("eds: initial fetch timed out for cluster {}", self.api.info().name);
        self.initialize();
    }

    fn initialize(&self) {
        if !self.api.is_initialized() {
            self.api.initialize();
            self.initialized.notify_waiters();
        }
    }
}

/// The EDS clusters of one stream.
pub struct EdsWatch {
    mux: Weak<GrpcMux>,
    type_url: String,
    entries: RefCell<Vec<Rc<Entry>>>,
    /// The last accepted response's `version_info`.
    version_info: RefCell<String>,
}

impl EdsWatch {
    pub fn new(mux: &Rc<GrpcMux>) -> Self {
        EdsWatch {
            mux: Rc::downgrade(mux),
            type_url: format!("type.googleapis.com/{ENDPOINT_TYPE}"),
            entries: RefCell::default(),
            version_info: RefCell::default(),
        }
    }

    /// Subscribes a cluster: the stream asks for its assignment. Counts the
    /// start as an attempt, and ends its initialization after `timeout` if no
    /// assignment came by then.
    pub fn add(&self, api: EdsApi, store: &Store, timeout: Option<Duration>) -> Rc<Entry> {
        let stats = SubscriptionStats::new(store, &format!("cluster.{}.", api.info().stat_name));
        stats.update_attempt.inc();
        let entry = Rc::new(Entry { api, stats, initialized: tokio::sync::Notify::new() });
        self.entries.borrow_mut().push(entry.clone());
        self.interest_changed();
        if let Some(timeout) = timeout {
            let weak = Rc::downgrade(&entry);
            tokio::task::spawn_local(async move {
                tokio::time::sleep(timeout).await;
                if let Some(entry) = weak.upgrade().filter(|e| !e.api.is_initialized()) {
                    entry.fetch_timed_out();
                }
            });
        }
        entry
    }

    /// Drops the clusters CDS replaced or removed; the stream asks again
    /// without their names.
    pub fn prune(&self) {
        let before = self.entries.borrow().len();
        self.entries.borrow_mut().retain(|e| !e.api.done());
        if self.entries.borrow().len() != before {
            self.interest_changed();
        }
    }

    fn interest_changed(&self) {
        if let Some(mux) = self.mux.upgrade() {
            mux.interest_changed(&self.type_url);
        }
    }

    /// Hands `file`'s assignment to each cluster of its name. A refused one
    /// rejects the response: every cluster counts it (Envoy's
    /// `onConfigUpdateFailed` to each watch), once.
    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let entries = self.entries.borrow().clone();
        let mut counted: Vec<*const Entry> = Vec::new();
        for resource in &file.resources {
            for entry in entries.iter().filter(|e| e.api.resource_name() == resource.name && !e.api.done()) {
                entry.stats.update_attempt.inc();
                counted.push(Rc::as_ptr(entry));
                let one = DiscoveryFile { version_info: file.version_info.clone(), resources: vec![resource.clone()] };
                let applied = entry.api.apply(&one).await;
                entry.initialize();
                match applied {
                    Ok(()) => entry.stats.accepted(&file.version_info),
                    Err(e) => {
                        tracing::warn!("eds: cluster {}: assignment rejected: {e}", entry.api.info().name);
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

impl Watch for EdsWatch {
    fn type_url(&self) -> &str {
        &self.type_url
    }

    fn resource_names(&self) -> Vec<String> {
        self.entries.borrow_mut().retain(|e| !e.api.done());
        let mut names: Vec<String> = self.entries.borrow().iter().map(|e| e.api.resource_name().to_string()).collect();
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
                decode_pushed(&response.version_info, &pushed, ENDPOINT_TYPE, &crate::extensions::supported::INVENTORY);
            crate::config::release_schema();
            let outcome = match decoded {
                Ok(file) => self.apply(&file).await,
                Err(e) => {
                    // A response that does not decode reaches no cluster: each counts it.
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
