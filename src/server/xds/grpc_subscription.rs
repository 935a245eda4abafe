//! One resource type on a management server's stream (Envoy's
//! `GrpcSubscriptionImpl`): the `Watch` a `GrpcMux` holds by type URL. It
//! checks each response's resources exactly as a file's
//! (`path_source::decode_pushed`) and hands them to the same `ResourceApi`, so
//! CDS and LDS apply a pushed update as they apply a file; the mux then ACKs
//! or NACKs it with what `apply` returned.
//!
//! The stats are counted as Envoy counts them for gRPC (checked against Envoy
//! 1.40): one `update_attempt` as the subscription starts and one per
//! response, stream failure or initial fetch timeout; `update_failure` per
//! stream that failed; `update_duration` for an accepted update.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

use super::{ResourceApi, SubscriptionStats};
use crate::config::path_source::{decode_pushed, CheckedResources, DiscoveryFile, Resource};
use crate::config::ConfigError;
use crate::stats::Store;

/// A boxed future of the main thread (never sent).
pub type LocalBoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// What a `GrpcMux` needs of a subscription, whatever its resource type.
pub trait Watch {
    /// `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
    fn type_url(&self) -> &str;
    /// The names subscribed to: empty for a wildcard subscription (CDS, LDS).
    fn resource_names(&self) -> Vec<String>;
    /// The last accepted `version_info`, sent on each request.
    fn version_info(&self) -> String;
    /// Checks and applies a response of this type, counting it. On a delta
    /// stream `removed` holds the names the response removed, and the
    /// response only what it added or changed (see `delta`).
    fn on_response<'a>(
        &'a self,
        response: &'a DiscoveryResponse,
        removed: Option<&'a [String]>,
    ) -> LocalBoxFuture<'a, Result<(), ConfigError>>;
    /// The stream failed (or could not be opened).
    fn on_stream_failure(&self);
    /// Whether it takes every resource of its type (CDS, LDS) rather than
    /// naming them (a delta stream's first request says so).
    fn wildcard(&self) -> bool {
        false
    }
    /// On a delta stream, the versions of the resources an accepted response
    /// carried: each has its own (for `/config_dump`), not the response's.
    fn set_resource_versions(&self, _versions: &[(String, String)]) {}
    /// Before `on_response`, when the response says them (a delta one, or a
    /// state of the world wrapping its resources in `Resource`s): the name
    /// and version of each resource it carries, in its order (Envoy's SDS
    /// keeps the version as the secret's own).
    fn resource_versions_received(&self, _versions: &[(String, String)]) {}
    /// On a delta stream, the response just handed over was rejected: Envoy
    /// counts an attempt as a delta update reaches a subscription and
    /// another as it is rejected (checked against Envoy 1.40).
    fn on_delta_rejected(&self) {}
    /// A request of this watch just went out: whether to ask again at once,
    /// naming a subscription the request left out (Envoy asks for each RTDS
    /// layer in a request of its own as the layer's subscription starts).
    fn requested(&self) -> bool {
        false
    }
    /// On a delta stream, after an accepted response: the named resources it
    /// removed (a wildcard watch had them removed from the state it was handed).
    fn on_removed<'a>(&'a self, _names: &'a [String], _version_info: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A `ResourceApi` subscribed over gRPC.
pub struct GrpcSubscription<R> {
    api: R,
    type_url: String,
    stats: SubscriptionStats,
    /// Set by the first response, accepted or not, or the initial fetch timeout.
    initialized: Cell<bool>,
    first_response: tokio::sync::Notify,
    /// Responses wait until the server is ready for them (`open`).
    open: Cell<bool>,
    opened: tokio::sync::Notify,
    /// The last accepted response's resources, not checked again when
    /// repeated (a state of the world's; a delta response repeats nothing).
    checked: RefCell<CheckedResources>,
}

impl<R: ResourceApi> GrpcSubscription<R> {
    /// `prefix`: `cluster_manager.cds.` or `listener_manager.lds.`. Counts the
    /// start as an attempt, as Envoy.
    pub fn new(api: R, store: &Store, prefix: &str) -> Self {
        let stats = SubscriptionStats::new(store, prefix);
        stats.update_attempt.inc();
        GrpcSubscription {
            api,
            type_url: format!("type.googleapis.com/{}", R::TYPE),
            stats,
            initialized: Cell::new(false),
            first_response: tokio::sync::Notify::new(),
            open: Cell::new(false),
            opened: tokio::sync::Notify::new(),
            checked: RefCell::default(),
        }
    }

    pub fn api(&self) -> &R {
        &self.api
    }

    /// Lets responses apply. Envoy asks for listeners as soon as the clusters
    /// are in, before its CDS ACK, but applies them once it is ready: the
    /// request goes out early and its answer waits for this.
    pub fn open(&self) {
        self.open.set(true);
        self.opened.notify_waiters();
    }

    /// Waits for the first response, or for `timeout` (Envoy's
    /// `initial_fetch_timeout`: start-up goes on without it).
    pub async fn initialized(&self, timeout: Option<Duration>) {
        if self.initialized.get() {
            return;
        }
        let first = self.first_response.notified();
        let Some(timeout) = timeout else { return first.await };
        if tokio::time::timeout(timeout, first).await.is_err() && !self.initialized.get() {
            self.initialized.set(true);
            self.stats.init_fetch_timeout.inc();
            self.stats.update_attempt.inc();
            tracing::warn!("gRPC config: initial fetch timed out for {}", self.type_url);
        }
    }

    /// A delta response's resources (`file`) with what runs that the response
    /// neither changed nor removed, by name: the state of the world `apply`
    /// takes. As Envoy's, the names removed are the response's and a resource
    /// is added by its body's name.
    fn with_unchanged(&self, mut file: DiscoveryFile, removed: &[String]) -> DiscoveryFile {
        let mut unchanged: Vec<Resource> = {
            let touched: HashSet<&str> =
                file.resources.iter().map(|r| r.name.as_str()).chain(removed.iter().map(String::as_str)).collect();
            let state = self.api.state().borrow();
            state
                .resources
                .iter()
                .filter(|(name, _)| !touched.contains(name.as_str()))
                .map(|(name, applied)| Resource { name: name.clone(), encoded: applied.encoded.clone() })
                .collect()
        };
        unchanged.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        file.resources.extend(unchanged);
        file
    }

    fn done_initializing(&self) {
        if !self.initialized.replace(true) {
            self.first_response.notify_waiters();
        }
    }
}

impl<R: ResourceApi> Watch for GrpcSubscription<R> {
    fn type_url(&self) -> &str {
        &self.type_url
    }

    fn resource_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn version_info(&self) -> String {
        self.api.state().borrow().version_info.clone()
    }

    fn on_response<'a>(
        &'a self,
        response: &'a DiscoveryResponse,
        removed: Option<&'a [String]>,
    ) -> LocalBoxFuture<'a, Result<(), ConfigError>> {
        Box::pin(async move {
            if !self.open.get() {
                self.opened.notified().await;
            }
            let s = &self.stats;
            s.update_attempt.inc();
            let started = Instant::now();
            let pushed: Vec<(&str, &[u8])> =
                response.resources.iter().map(|a| (a.type_url.as_str(), a.value.as_slice())).collect();
            let inventory = &crate::extensions::supported::INVENTORY;
            let decoded = match removed {
                Some(removed) => {
                    decode_pushed(&response.version_info, &pushed, R::TYPE, inventory, &Default::default())
                        .map(|file| self.with_unchanged(file, removed))
                }
                None => decode_pushed(&response.version_info, &pushed, R::TYPE, inventory, &self.checked.borrow()),
            };
            let outcome = match decoded {
                Ok(file) => self.api.apply(&file).await.map(|()| file),
                Err(e) => Err(e),
            };
            // Decoding loaded the schema, which stays: a management server's
            // updates come at any time, and decoding it again took each ~50 ms
            // (`config::descriptor`).
            let outcome = match outcome {
                Ok(file) => {
                    if removed.is_none() {
                        self.checked.borrow_mut().remember(&pushed, &file);
                    }
                    s.accepted(&file.version_info);
                    s.update_duration.record(started.elapsed().as_millis() as u64);
                    self.api.state().borrow_mut().version_info = file.version_info;
                    Ok(())
                }
                Err(e) => {
                    s.update_rejected.inc();
                    tracing::warn!("gRPC config for {} rejected: {e}", self.type_url);
                    Err(e)
                }
            };
            self.done_initializing();
            outcome
        })
    }

    fn on_stream_failure(&self) {
        self.stats.update_attempt.inc();
        self.stats.update_failure.inc();
    }

    fn wildcard(&self) -> bool {
        true
    }

    fn on_delta_rejected(&self) {
        self.stats.update_attempt.inc();
    }

    fn set_resource_versions(&self, versions: &[(String, String)]) {
        let mut state = self.api.state().borrow_mut();
        for (name, version) in versions {
            if let Some(applied) = state.resources.get_mut(name) {
                version.clone_into(&mut applied.version_info);
            }
        }
    }
}
