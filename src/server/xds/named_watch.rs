//! A watch of a resource type whose subscriptions name their resources (EDS's
//! clusters, RDS's route configs) on a `GrpcMux` stream: one watch per type and
//! stream, an entry per subscription (`eds_watch`, `rds_watch`).
//!
//! Each request lists the names of the entries, and is sent again as they
//! change (`GrpcMux::interest_changed`). A response's resources go to the
//! entries of their names; one nobody asked for is ignored, and an entry a
//! response leaves out keeps what it has (Envoy calls only the watches a
//! response names). Each entry counts its updates in its own stats: one
//! attempt per response naming it, and a rejected response against every
//! entry, once (Envoy's `onConfigUpdateFailed` to each watch); an accepted
//! update's `update_duration`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

use super::grpc_mux::GrpcMux;
use super::grpc_subscription::{LocalBoxFuture, Watch};
use super::{ResourceApi, SubscriptionStats};
use crate::config::path_source::{decode_pushed, CheckedResources, DiscoveryFile};
use crate::config::ConfigError;
use crate::server::init_target::InitTarget;

/// One subscription of a `NamedWatch`.
pub trait NamedEntry {
    /// The resource it asks for.
    fn resource_name(&self) -> &str;
    /// Over: its resource is no longer asked for.
    fn done(&self) -> bool {
        false
    }
    fn stats(&self) -> &SubscriptionStats;
    /// Its first response came, or its initial fetch timed out.
    fn is_initialized(&self) -> bool;
    /// Ends its initialization (what waits for it goes on).
    fn initialize(&self);
    /// What its initialization sets, when its initial-fetch timer may end with
    /// it rather than run to the end (EDS: with thousands of clusters, each
    /// timer's task is ~270 bytes held for `initial_fetch_timeout`).
    fn init_target(&self) -> Option<Rc<InitTarget>> {
        None
    }
    /// The version of its resource in the response about to be applied
    /// (`apply_one` follows), when the response says it: a delta one's
    /// (`delta`), or a state of the world's resource wrapped in a `Resource`.
    fn resource_version(&self, _version: &str, _delta: bool) {}
    /// Applies an update holding its one resource (and ends its
    /// initialization, whatever the outcome); counts an accepted one.
    fn apply_one<'a>(&'a self, one: &'a DiscoveryFile) -> LocalBoxFuture<'a, Result<(), ConfigError>>;
    /// Its resource was removed by a delta response of `version_info` (its
    /// attempt counted): by default an update holding nothing, as Envoy's
    /// EDS takes it (`update_empty`, the hosts stay).
    fn removed<'a>(&'a self, version_info: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            let empty = DiscoveryFile { version_info: version_info.to_string(), resources: Vec::new() };
            let _ = self.apply_one(&empty).await;
        })
    }
}

/// An entry's update `one` applied by its `api` (RDS's, RTDS's) as
/// `applied_as` (`one`, or its resource with its own version): the entry is
/// initialized whatever the outcome, and an accepted update counted, its
/// version kept for `/config_dump`.
pub async fn apply_one_with<E: NamedEntry, R: ResourceApi>(
    entry: &E,
    api: &R,
    one: &DiscoveryFile,
    applied_as: &DiscoveryFile,
) -> Result<(), ConfigError> {
    let applied = api.apply(applied_as).await;
    entry.initialize();
    if applied.is_ok() {
        entry.stats().accepted(&one.version_info);
        api.state().borrow_mut().version_info.clone_from(&one.version_info);
    }
    applied
}

/// Ends `entry`'s initialization after `timeout` (if given) when no response
/// named it by then, counting Envoy's `init_fetch_timeout` and an attempt.
pub fn time_out_initial_fetch<E: NamedEntry + 'static>(entry: &Rc<E>, timeout: Option<Duration>) {
    let Some(timeout) = timeout else { return };
    let weak = Rc::downgrade(entry);
    let ready = entry.init_target();
    tokio::task::spawn_local(async move {
        match ready {
            Some(ready) => tokio::select! {
                () = tokio::time::sleep(timeout) => {}
                () = ready.ready() => return,
            },
            None => tokio::time::sleep(timeout).await,
        }
        if let Some(entry) = weak.upgrade().filter(|e| !e.is_initialized()) {
            entry.stats().init_fetch_timeout.inc();
            entry.stats().update_attempt.inc();
            tracing::warn!("initial fetch timed out for {}", entry.resource_name());
            entry.initialize();
        }
    });
}

/// The entries of one resource type on one stream.
pub struct NamedWatch<E> {
    mux: Weak<GrpcMux>,
    type_name: &'static str,
    type_url: String,
    entries: RefCell<Vec<Rc<E>>>,
    /// The last accepted response's `version_info`.
    version_info: RefCell<String>,
    /// The entries the last rejected response reached.
    rejected: RefCell<Vec<Rc<E>>>,
    /// The last accepted response's resources, not checked again when
    /// repeated (a state of the world's: a delta response repeats nothing,
    /// and EDS's first one held every assignment).
    checked: RefCell<CheckedResources>,
    /// The name and version of each resource of the response being applied,
    /// in its order, when it says them (a delta response's `Resource`s, or a
    /// state of the world's resources wrapped in `Resource`s): a resource
    /// goes to the entries of that name, whatever its own says (Envoy's watch
    /// map), and an entry then refuses a resource named otherwise.
    received: RefCell<Vec<(String, String)>>,
    /// With `one_by_one`, how many of the entries the stream's requests name
    /// so far: the first request names the first entry, and each next one
    /// more (`requested`).
    named: Option<Cell<usize>>,
}

impl<E: NamedEntry> NamedWatch<E> {
    pub fn new(mux: &Rc<GrpcMux>, type_name: &'static str) -> Self {
        NamedWatch {
            mux: Rc::downgrade(mux),
            type_name,
            type_url: format!("type.googleapis.com/{type_name}"),
            entries: RefCell::default(),
            version_info: RefCell::default(),
            rejected: RefCell::default(),
            checked: RefCell::default(),
            received: RefCell::default(),
            named: None,
        }
    }

    /// A watch whose entries the stream asks for one request at a time, as
    /// they were added, the first time (Envoy's RTDS layers: each layer's
    /// subscription asks as it starts, all before a response comes); a
    /// stream opened later names them all at once.
    pub fn one_by_one(mux: &Rc<GrpcMux>, type_name: &'static str) -> Self {
        NamedWatch { named: Some(Cell::new(1)), ..Self::new(mux, type_name) }
    }

    /// Adds an entry, counting its start as an attempt (as Envoy's gRPC
    /// subscription): the stream asks again with its name.
    pub fn push(&self, entry: Rc<E>) {
        entry.stats().update_attempt.inc();
        self.entries.borrow_mut().push(entry);
        self.interest_changed();
    }

    /// The entries, in the order they came.
    pub fn entries(&self) -> Vec<Rc<E>> {
        self.entries.borrow().clone()
    }

    /// Drops the entries that are done; the stream asks again without them.
    pub fn prune(&self) {
        let before = self.entries.borrow().len();
        self.entries.borrow_mut().retain(|e| !e.done());
        if self.entries.borrow().len() != before {
            self.interest_changed();
        }
    }

    fn interest_changed(&self) {
        if let Some(mux) = self.mux.upgrade() {
            mux.interest_changed(&self.type_url);
        }
    }

    /// Hands each resource of `file` (of a delta response: `delta`) to the
    /// entries of its name.
    async fn apply(&self, file: &DiscoveryFile, delta: bool) -> Result<(), ConfigError> {
        let entries = self.entries();
        // The entries by name, in their order: a response may hold thousands of
        // resources for as many entries (EDS's clusters).
        let mut by_name: HashMap<&str, Vec<&Rc<E>>> = HashMap::with_capacity(entries.len());
        for entry in &entries {
            by_name.entry(entry.resource_name()).or_default().push(entry);
        }
        let mut counted: Vec<Rc<E>> = Vec::new();
        let received = self.received.borrow().clone();
        for (i, resource) in file.resources.iter().enumerate() {
            let (name, version) = match received.get(i) {
                Some((name, version)) if !name.is_empty() => (name.as_str(), Some(version)),
                _ => (resource.name.as_str(), None),
            };
            let named = by_name.get(name).map_or(&[][..], Vec::as_slice);
            for entry in named.iter().copied().filter(|e| !e.done()) {
                entry.stats().update_attempt.inc();
                counted.push(entry.clone());
                if let Some(version) = version {
                    entry.resource_version(version, delta);
                }
                let one = DiscoveryFile { version_info: file.version_info.clone(), resources: vec![resource.clone()] };
                let started = std::time::Instant::now();
                let applied = entry.apply_one(&one).await;
                if applied.is_ok() {
                    // As Envoy's gRPC subscription records an accepted update.
                    entry.stats().update_duration.record(started.elapsed().as_millis() as u64);
                }
                if let Err(e) = applied {
                    for entry in &entries {
                        if !counted.iter().any(|c| Rc::ptr_eq(c, entry)) {
                            entry.stats().update_attempt.inc();
                        }
                        entry.stats().update_rejected.inc();
                    }
                    *self.rejected.borrow_mut() = counted;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl<E: NamedEntry> Watch for NamedWatch<E> {
    fn type_url(&self) -> &str {
        &self.type_url
    }

    fn resource_names(&self) -> Vec<String> {
        self.entries.borrow_mut().retain(|e| !e.done());
        let entries = self.entries.borrow();
        let named = self.named.as_ref().map_or(entries.len(), |n| n.get().min(entries.len()));
        let mut names: Vec<String> = entries[..named].iter().map(|e| e.resource_name().to_string()).collect();
        names.sort();
        names.dedup();
        names
    }

    fn version_info(&self) -> String {
        self.version_info.borrow().clone()
    }

    fn requested(&self) -> bool {
        let Some(named) = &self.named else { return false };
        let more = named.get() < self.entries.borrow().len();
        if more {
            named.set(named.get() + 1);
        }
        more
    }

    /// On a delta stream the removed names come after (`on_removed`).
    fn on_response<'a>(
        &'a self,
        response: &'a DiscoveryResponse,
        removed: Option<&'a [String]>,
    ) -> LocalBoxFuture<'a, Result<(), ConfigError>> {
        let delta = removed.is_some();
        Box::pin(async move {
            self.rejected.borrow_mut().clear();
            let pushed: Vec<(&str, &[u8])> =
                response.resources.iter().map(|a| (a.type_url.as_str(), a.value.as_slice())).collect();
            let inventory = &crate::extensions::supported::INVENTORY;
            let decoded = if delta {
                decode_pushed(&response.version_info, &pushed, self.type_name, inventory, &Default::default())
            } else {
                decode_pushed(&response.version_info, &pushed, self.type_name, inventory, &self.checked.borrow())
            };
            // The schema stays decoded (see `GrpcSubscription::on_response`).
            let outcome = match decoded {
                Ok(file) => {
                    let applied = self.apply(&file, delta).await;
                    if applied.is_ok() && !delta {
                        self.checked.borrow_mut().remember(&pushed, &file);
                    }
                    applied
                }
                Err(e) => {
                    // A response that does not decode reaches no entry: each counts it.
                    for entry in self.entries.borrow().iter() {
                        entry.stats().update_attempt.inc();
                        entry.stats().update_rejected.inc();
                    }
                    Err(e)
                }
            };
            self.received.borrow_mut().clear();
            if outcome.is_ok() {
                response.version_info.clone_into(&mut self.version_info.borrow_mut());
            } else {
                tracing::warn!("gRPC config for {} rejected: {outcome:?}", self.type_url);
            }
            outcome
        })
    }

    fn on_removed<'a>(&'a self, names: &'a [String], version_info: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            for entry in self.entries().iter().filter(|e| names.iter().any(|n| n == e.resource_name()) && !e.done()) {
                entry.stats().update_attempt.inc();
                entry.removed(version_info).await;
            }
        })
    }

    fn resource_versions_received(&self, versions: &[(String, String)]) {
        versions.clone_into(&mut self.received.borrow_mut());
    }

    fn on_delta_rejected(&self) {
        for entry in std::mem::take(&mut *self.rejected.borrow_mut()) {
            entry.stats().update_attempt.inc();
        }
    }

    fn on_stream_failure(&self) {
        for entry in self.entries.borrow().iter() {
            entry.stats().update_attempt.inc();
            entry.stats().update_failure.inc();
        }
    }
}
