//! `dynamic_resources` from files (Envoy's filesystem subscriptions for CDS and
//! LDS, SDS for the secrets TLS contexts name, EDS for EDS clusters, and RDS
//! for the route configs connection managers name, RTDS for the runtime's
//! `rtds_layer`s): each subscription reads its file once as the server starts, then again
//! whenever a file is moved into place (`event::file_watcher`), and hands the
//! checked resources to its API (`cds`, `lds`, `sds`, `eds`, `rds`), which works out what changed
//! and applies it through the cluster or listener manager. CDS, LDS, EDS, RDS
//! and SDS may instead come from a management server (`source`): a `GrpcMux` stream
//! (`grpc_mux`, the ADS one or one per type; state of the world, or incremental
//! through `delta`) hands each response to a
//! `GrpcSubscription`, which feeds the same API (`start` picks the source).
//!
//! Everything runs on the main thread, one update at a time. An update is all
//! or nothing: its resources are all built before any is applied, so one that
//! fails leaves what runs untouched (`update_rejected`, the error logged with
//! its field path). The stats are Envoy's `<prefix>.{cds,lds}.*`, checked
//! against Envoy 1.40 on the same files.

pub mod backoff;
pub mod cds;
pub mod delta;
pub mod eds;
pub mod eds_watch;
pub mod grpc_mux;
pub mod grpc_stream;
pub mod grpc_subscription;
pub mod lds;
pub mod named_watch;
pub mod rds;
pub mod rds_watch;
pub mod rtds;
pub mod rtds_watch;
pub mod sds;
pub mod sds_watch;
pub mod source;
pub mod start;
pub mod transitions;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use crate::common::xxhash::xxhash64;
use crate::config::path_source::{self, DiscoveryFile, PathSource, UpdateError};
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::event::file_watcher::MoveWatcher;
use crate::stats::Store;
use source::{GrpcSource, Source, SubscriptionSource};

define_stats! {
    /// `cluster_manager.cds.*` / `listener_manager.lds.*` (Envoy's
    /// `SubscriptionStats`). `init_fetch_timeout` stays 0 (a file has no
    /// first fetch to wait for) and `update_duration` empty (Envoy records it
    /// for gRPC subscriptions only), as in Envoy; `version_text` is the
    /// accepted `version_info` itself, Envoy's text readout.
    #[derive(Debug)]
    pub struct SubscriptionStats {
        counter update_attempt,
        counter update_success,
        counter update_failure,
        counter update_rejected,
        counter init_fetch_timeout,
        gauge update_time,
        gauge version,
        histogram update_duration,
        text version_text,
    }
}

impl SubscriptionStats {
    /// Counts an accepted update of `version_info`.
    pub fn accepted(&self, version_info: &str) {
        self.update_success.inc();
        self.update_time.set(epoch_ms(SystemTime::now()));
        self.version.set(xxhash64(version_info.as_bytes()) as i64);
        self.version_text.set(version_info);
    }
}

/// `dynamic_resources`: where each subscription gets its resources, and the
/// ADS stream's management server.
#[derive(Debug, Clone, Default)]
pub struct DynamicResourcesConfig {
    pub cds: Option<SubscriptionSource>,
    pub lds: Option<SubscriptionSource>,
    pub ads: Option<GrpcSource>,
}

impl DynamicResourcesConfig {
    pub fn from_proto(
        d: &envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::DynamicResources,
    ) -> Result<Self, ConfigError> {
        let ads = match &d.ads_config {
            Some(a) => Some(GrpcSource::from_proto(a, &FieldPath::starting_at("dynamic_resources.ads_config"))?),
            None => None,
        };
        let source = |s: &Option<_>, field: &str| -> Result<Option<SubscriptionSource>, ConfigError> {
            let path = FieldPath::starting_at(&format!("dynamic_resources.{field}"));
            let Some(s) = s.as_ref() else { return Ok(None) };
            let source = SubscriptionSource::from_proto(s, &path)?;
            // Envoy skips such a subscription with a warning: refused here.
            if source.source == Source::Ads && ads.is_none() {
                return Err(path.field_error("ads", "ADS must be configured to support an ADS config source"));
            }
            Ok(Some(source))
        };
        Ok(DynamicResourcesConfig {
            cds: source(&d.cds_config, "cds_config")?,
            lds: source(&d.lds_config, "lds_config")?,
            ads,
        })
    }
}

/// A resource as applied, for `/config_dump`.
#[derive(Debug, Clone)]
pub struct AppliedResource {
    pub encoded: Vec<u8>,
    pub version_info: String,
    pub last_updated: SystemTime,
}

/// What one subscription has applied: the last accepted `version_info` and
/// the running resources by name (`/config_dump` sorts them).
#[derive(Debug, Default)]
pub struct AppliedState {
    pub version_info: String,
    pub resources: AppliedResources,
    /// CDS's and LDS's resources between states (`transitions`).
    transitions: Option<Box<transitions::Transitions>>,
}

/// The running resources of a subscription by name: a few (an EDS cluster's
/// one assignment, a route config) in a vector sized to fit, more (CDS's,
/// LDS's) in a hash map. With 10,000 EDS clusters, a hash map of one each
/// took ~380 bytes a cluster (its four buckets), a B-tree's first node ~1 KiB.
#[derive(Debug, Default, Clone)]
pub struct AppliedResources {
    few: Vec<(String, AppliedResource)>,
    /// Once more than `FEW` were held: all of them.
    many: HashMap<String, AppliedResource>,
}

/// How many resources `AppliedResources` keeps in its vector.
const FEW: usize = 8;

impl AppliedResources {
    pub fn get(&self, name: &str) -> Option<&AppliedResource> {
        match self.few.iter().find(|(n, _)| n == name) {
            Some((_, r)) => Some(r),
            None => self.many.get(name),
        }
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut AppliedResource> {
        match self.few.iter_mut().find(|(n, _)| n == name) {
            Some((_, r)) => Some(r),
            None => self.many.get_mut(name),
        }
    }

    pub fn insert(&mut self, name: String, resource: AppliedResource) {
        if let Some(r) = self.get_mut(&name) {
            *r = resource;
        } else if !self.many.is_empty() {
            self.many.insert(name, resource);
        } else if self.few.len() < FEW {
            // Exactly one more: a vector's first growth would make room for four.
            self.few.reserve_exact(1);
            self.few.push((name, resource));
        } else {
            self.many.extend(std::mem::take(&mut self.few));
            self.many.insert(name, resource);
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<AppliedResource> {
        match self.few.iter().position(|(n, _)| n == name) {
            Some(i) => Some(self.few.swap_remove(i).1),
            None => self.many.remove(name),
        }
    }

    pub fn len(&self) -> usize {
        self.few.len() + self.many.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every resource with its name, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &AppliedResource)> {
        self.few.iter().map(|(n, r)| (n, r)).chain(self.many.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(n, _)| n)
    }
}

impl Extend<(String, AppliedResource)> for AppliedResources {
    fn extend<I: IntoIterator<Item = (String, AppliedResource)>>(&mut self, iter: I) {
        for (name, resource) in iter {
            self.insert(name, resource);
        }
    }
}

/// The resources of a subscription: what each API applies. (Its futures run
/// on the main thread's local task set and are never sent: no `Send` bound.)
#[allow(async_fn_in_trait)]
pub trait ResourceApi {
    /// The resource's message type, `envoy.config.cluster.v3.Cluster`.
    const TYPE: &'static str;
    /// `cds` or `lds`, in log lines.
    const NAME: &'static str;

    /// Builds every changed resource of `file` and applies them all, or none.
    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError>;

    /// What has been applied.
    fn state(&self) -> &RefCell<AppliedState>;

    /// Whether the subscription is over (its EDS cluster was replaced or removed).
    fn done(&self) -> bool {
        false
    }

    /// Waits for what the first update started to initialize (CDS: the EDS
    /// clusters it added), as Envoy's init manager does before the next
    /// subscription starts.
    async fn started_initialized(&self) {}
}

/// One subscription: its file and its stats.
pub struct PathSubscription {
    source: PathSource,
    stats: SubscriptionStats,
}

impl PathSubscription {
    /// `prefix`: `cluster_manager.cds.`, `listener_manager.lds.`, `cluster.<name>.`, ….
    pub fn new(source: PathSource, store: &Store, prefix: &str) -> Self {
        PathSubscription { source, stats: SubscriptionStats::new(store, prefix) }
    }

    /// Watches the file's directory (from now on: a move made while the file
    /// is first read is not missed), reads the file once, and returns the
    /// watcher for `follow`.
    pub async fn start<R: ResourceApi>(&self, api: &R) -> std::io::Result<MoveWatcher> {
        let (dir, name) = self.source.watch();
        let watcher = MoveWatcher::new(&dir, name.as_deref())?;
        self.update(api).await;
        Ok(watcher)
    }

    /// Reads the file again after each move into place, until the watcher fails
    /// or the API is done.
    pub async fn follow<R: ResourceApi>(&self, api: &R, mut watcher: MoveWatcher) {
        loop {
            if let Err(e) = watcher.moved().await {
                tracing::error!("{}: watching {} failed, no more updates: {e}", R::NAME, self.source.path.display());
                return;
            }
            if api.done() {
                return;
            }
            self.update(api).await;
        }
    }

    /// One update, counted as Envoy counts it.
    async fn update<R: ResourceApi>(&self, api: &R) {
        let s = &self.stats;
        s.update_attempt.inc();
        let outcome = match path_source::read(&self.source.path, R::TYPE, &crate::extensions::supported::INVENTORY) {
            Ok(file) => api.apply(&file).await.map(|()| file).map_err(UpdateError::Rejected),
            Err(e) => Err(e),
        };
        // Reading decoded the schema; only updates need it, and they are rare.
        crate::config::release_schema();
        match outcome {
            Ok(file) => {
                s.accepted(&file.version_info);
                api.state().borrow_mut().version_info = file.version_info;
            }
            Err(UpdateError::Failure(e)) => {
                s.update_failure.inc();
                tracing::warn!("Filesystem config update failure: {e}");
            }
            Err(UpdateError::Rejected(e)) => {
                s.update_rejected.inc();
                tracing::warn!("Filesystem config update rejected: {} {}: {e}", R::NAME, self.source.path.display());
            }
        }
    }
}

/// Milliseconds since the epoch, as Envoy's `update_time` gauge.
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The resources of `file` that differ from what `state` runs, each with its
/// index in the file, and the names `state` runs that `file` no longer lists.
/// `skip` leaves a resource out (one of `static_resources`, which xDS cannot touch).
pub fn diff<'f>(
    file: &'f DiscoveryFile,
    state: &AppliedState,
    skip: impl Fn(&str) -> bool,
) -> (Vec<(usize, &'f path_source::Resource)>, Vec<String>) {
    let changed = file
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| !skip(&r.name))
        .filter(|(_, r)| state.resources.get(&r.name).is_none_or(|a| a.encoded != r.encoded))
        .collect();
    let listed: HashSet<&str> = file.resources.iter().map(|r| r.name.as_str()).collect();
    let mut removed: Vec<String> =
        state.resources.keys().filter(|name| !listed.contains(name.as_str())).cloned().collect();
    // By name, as the state's order was before it became a hash map.
    removed.sort_unstable();
    (changed, removed)
}

/// Records the applied resources of an update in `state`.
pub fn record(
    state: &RefCell<AppliedState>,
    file: &DiscoveryFile,
    changed: &[(usize, &path_source::Resource)],
    removed: &[String],
) {
    let now = SystemTime::now();
    let mut state = state.borrow_mut();
    for (_, r) in changed {
        state.resources.insert(
            r.name.clone(),
            AppliedResource { encoded: r.encoded.clone(), version_info: file.version_info.clone(), last_updated: now },
        );
    }
    for name in removed {
        state.resources.remove(name);
    }
}

/// The field path of the `i`th resource of a file.
pub fn resource_path(i: usize) -> FieldPath {
    FieldPath::starting_at(&format!("resources[{i}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(version: &str) -> AppliedResource {
        AppliedResource { encoded: Vec::new(), version_info: version.into(), last_updated: SystemTime::UNIX_EPOCH }
    }

    #[test]
    fn applied_resources_hold_a_few_then_many_by_name() {
        let mut r = AppliedResources::default();
        r.insert("a".into(), applied("1"));
        r.insert("a".into(), applied("2"));
        assert_eq!((r.len(), r.few.capacity()), (1, 1), "one, in a vector of one");
        for i in 0..FEW + 2 {
            r.insert(format!("n{i}"), applied("1"));
        }
        assert_eq!((r.len(), r.few.len()), (FEW + 3, 0));
        assert_eq!(r.get("a").map(|a| a.version_info.as_str()), Some("2"));
        r.get_mut("n0").expect("n0").version_info = "3".into();
        assert_eq!(r.remove("n0").map(|a| a.version_info), Some("3".into()));
        assert!(r.get("n0").is_none() && r.remove("n0").is_none());
        assert_eq!(r.keys().count(), FEW + 2);
    }
}
