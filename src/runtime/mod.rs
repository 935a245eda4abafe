//! Envoy's runtime (`layered_runtime`): values that override config defaults by key,
//! from layers read in order (a static layer, disk directories, the admin's
//! `/runtime_modify`), later layers winning.
//!
//! As Envoy's `LoaderImpl`, the main thread owns the layers (`Loader`): each load
//! builds an immutable `Snapshot` and posts it to every thread's slot. A reader on a
//! worker (a route's `runtime_fraction`, a filter's `filter_enabled`, a load
//! balancer's `active_request_bias`) takes its own thread's snapshot, with no lock.
//! Readers find the slot process-wide, as Envoy's code finds `LoaderSingleton`; on a
//! thread without a snapshot (no server, unit tests) every key has its default.
//!
//! An RTDS layer holds what its subscription last took (nothing until then: an
//! empty layer, as Envoy's). As in Envoy, the subscription keeps a resource
//! whose layer cannot be flattened (the update is rejected): every load fails
//! until a good one comes, so the last snapshot serves on and `/runtime_modify`
//! answers with the error.
//!
//! A disk layer is read at each load; the main thread checks every
//! `DISK_CHECK_INTERVAL` whether a layer's `symlink_root` now points elsewhere and
//! then loads again (Envoy watches for the symlink being moved in; Courier polls,
//! needing no inotify).

pub mod feature_flag;
pub mod layers;
pub mod snapshot;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use feature_flag::FeatureFlag;
pub use layers::{LayerConfig, LayerSource};
pub use snapshot::{Entry, Fraction, Layer, Snapshot};

use crate::define_stats;
use crate::stats::Store;
use crate::thread_local::{LocalSlot, Slot};

/// How often the main thread looks for a replaced disk layer symlink.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

define_stats! {
    /// `runtime.*`, as Envoy's `RuntimeStats`.
    #[derive(Debug)]
    pub struct RuntimeStats {
        counter deprecated_feature_use,
        counter load_error,
        counter load_success,
        counter override_dir_exists,
        counter override_dir_not_exists,
        gauge admin_overrides_active,
        gauge deprecated_feature_seen_since_process_start,
        gauge num_keys,
        gauge num_layers,
    }
}

/// The slot readers look in, plus one (0: no runtime published in this process).
static PUBLISHED_SLOT: AtomicUsize = AtomicUsize::new(0);

/// This thread's current snapshot, if a runtime published one here.
pub fn snapshot() -> Option<Rc<Arc<Snapshot>>> {
    let index = PUBLISHED_SLOT.load(Ordering::Relaxed).checked_sub(1)?;
    LocalSlot::<Arc<Snapshot>>::at(index).get()
}

/// Makes `snapshot` this thread's, as a worker holds it: for unit tests of the
/// code that reads the runtime (each nextest test is a process of its own).
pub fn publish_on_this_thread(snapshot: Snapshot) {
    let slot = crate::thread_local::ThreadLocalRegistry::new().allocate_slot::<Arc<Snapshot>>();
    PUBLISHED_SLOT.store(slot.index() + 1, Ordering::Relaxed);
    slot.set_here(Arc::new(snapshot));
}

/// Envoy's `getDouble` on this thread's snapshot.
pub fn get_double(key: &str, default: f64) -> f64 {
    // No key, no lookup: most callers pass a config's unset key.
    if key.is_empty() {
        return default;
    }
    snapshot().map_or(default, |s| s.get_double(key, default))
}

/// A `RuntimeFractionalPercent` (or an Envoy feature flag with a fixed key): the
/// runtime key that may override the default fraction.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeFraction {
    /// `None` when the config names no key: only the default applies.
    key: Option<Box<str>>,
    pub default: Fraction,
}

impl RuntimeFraction {
    pub fn new(key: &str, default: Fraction) -> Self {
        RuntimeFraction { key: (!key.is_empty()).then(|| key.into()), default }
    }

    /// A `RuntimeFractionalPercent`: its `default_value` (0 when unset), which
    /// the runtime may override by `runtime_key`.
    pub fn from_proto(r: &envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent) -> Self {
        let default = r.default_value.as_ref().map_or(Fraction::ZERO, |d| Fraction {
            numerator: u64::from(d.numerator),
            denominator: Fraction::denominator_of(d.denominator),
        });
        RuntimeFraction::new(&r.runtime_key, default)
    }

    /// A fraction no runtime key overrides.
    pub fn fixed(default: Fraction) -> Self {
        RuntimeFraction { key: None, default }
    }

    /// The fraction in effect on this thread now.
    pub fn current(&self) -> Fraction {
        // A fraction without a key never looks at the thread's snapshot.
        let Some(key) = &self.key else { return self.default };
        snapshot().map_or(self.default, |s| s.fraction(key, self.default))
    }

    /// True for the current fraction of the calls (Envoy's `featureEnabled`).
    pub fn enabled(&self) -> bool {
        self.current().sample()
    }
}

/// A layer's values by key, or why they cannot be read.
pub type LayerValues = Result<HashMap<String, Entry>, String>;

/// The main thread's runtime: the configured layers, the admin layer's values, and
/// the snapshot last published.
pub struct Loader {
    layers: Vec<LayerConfig>,
    admin_values: RefCell<HashMap<String, Entry>>,
    /// Each RTDS layer's values by layer name, or why its last resource could
    /// not be read.
    rtds_values: RefCell<HashMap<String, LayerValues>>,
    stats: RuntimeStats,
    slot: Slot<Arc<Snapshot>>,
    current: RefCell<Arc<Snapshot>>,
    /// Where each disk layer's `symlink_root` pointed at the last load.
    disk_targets: RefCell<Vec<Option<PathBuf>>>,
}

impl Loader {
    /// A loader publishing into `slot`; nothing is loaded until `load`.
    pub fn new(layers: Vec<LayerConfig>, store: &Store, slot: Slot<Arc<Snapshot>>) -> Loader {
        PUBLISHED_SLOT.store(slot.index() + 1, Ordering::Relaxed);
        Loader {
            layers,
            admin_values: RefCell::new(HashMap::new()),
            rtds_values: RefCell::new(HashMap::new()),
            stats: RuntimeStats::new(store, "runtime."),
            slot,
            current: RefCell::new(Arc::new(Snapshot::default())),
            disk_targets: RefCell::new(Vec::new()),
        }
    }

    /// Reads every layer into a new snapshot and posts it to all threads, counting
    /// as Envoy's `loadNewSnapshot` counts. An RTDS layer holding a bad resource
    /// fails it (nothing counted, nothing posted).
    pub fn load(&self) -> Result<(), String> {
        let mut loaded = Vec::with_capacity(self.layers.len());
        let (mut disk_layers, mut error_layers) = (0, 0);
        for layer in &self.layers {
            let values = match &layer.source {
                LayerSource::Static(values) => values.clone(),
                LayerSource::Admin => self.admin_values.borrow().clone(),
                LayerSource::Rtds { .. } => match self.rtds_values.borrow().get(&layer.name) {
                    Some(Ok(values)) => values.clone(),
                    Some(Err(e)) => return Err(e.clone()),
                    None => HashMap::new(),
                },
                LayerSource::Disk { directory, .. } => match layers::read_disk_layer(directory) {
                    Ok(Some(values)) => {
                        disk_layers += 1;
                        values
                    }
                    // Envoy leaves out a layer whose directory does not exist.
                    Ok(None) => continue,
                    Err(e) => {
                        error_layers += 1;
                        tracing::debug!("error loading runtime values for layer {} from disk: {e}", layer.name);
                        continue;
                    }
                },
            };
            loaded.push(Layer { name: layer.name.clone(), values });
        }
        *self.disk_targets.borrow_mut() = self.disk_targets_now();
        let s = &self.stats;
        s.num_layers.set(loaded.len() as i64);
        if error_layers == 0 {
            s.load_success.inc();
        } else {
            s.load_error.inc();
        }
        // Envoy's "override directory": a second disk layer that exists.
        if disk_layers > 1 {
            s.override_dir_exists.inc();
        } else {
            s.override_dir_not_exists.inc();
        }
        let snapshot = Arc::new(Snapshot::new(loaded));
        s.num_keys.set(snapshot.num_keys() as i64);
        *self.current.borrow_mut() = snapshot.clone();
        self.slot.set(move || snapshot.clone());
        Ok(())
    }

    /// An RTDS subscription took a resource for `layer`: its layer's values (an
    /// empty layer when it was removed), or why they cannot be read. Loads.
    pub fn set_rtds_layer(&self, layer: &str, values: LayerValues) -> Result<(), String> {
        self.rtds_values.borrow_mut().insert(layer.to_string(), values);
        self.load()
    }

    /// The RTDS layers: each layer's name, its resource's name and where it comes from.
    pub fn rtds_layers(&self) -> impl Iterator<Item = (&str, &str, &crate::config::config_source::SubscriptionSource)> {
        self.layers.iter().filter_map(|l| match &l.source {
            LayerSource::Rtds { resource_name, source } => Some((l.name.as_str(), resource_name.as_str(), source)),
            _ => None,
        })
    }

    /// The snapshot last published.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.borrow().clone()
    }

    pub fn has_admin_layer(&self) -> bool {
        self.layers.iter().any(|l| l.source == LayerSource::Admin)
    }

    /// `/runtime_modify`: sets each key in the admin layer (an empty value removes
    /// it) and loads. `Ok(false)` when there is no admin layer; the load's error
    /// (the values stay set, as in Envoy).
    pub fn modify(&self, values: &[(String, String)]) -> Result<bool, String> {
        if !self.has_admin_layer() {
            return Ok(false);
        }
        {
            let mut admin = self.admin_values.borrow_mut();
            for (k, v) in values {
                if v.is_empty() {
                    admin.remove(k);
                } else {
                    admin.insert(k.clone(), Entry::from_text(v.clone()));
                }
            }
            self.stats.admin_overrides_active.set(i64::from(!admin.is_empty()));
        }
        self.load().map(|()| true)
    }

    /// Loads again when a disk layer's `symlink_root` now resolves elsewhere (the
    /// symlink was replaced). Returns whether it loaded.
    pub fn reload_if_disk_changed(&self) -> bool {
        if *self.disk_targets.borrow() == self.disk_targets_now() {
            return false;
        }
        if let Err(e) = self.load() {
            tracing::warn!("runtime: cannot load the new disk layer: {e}");
        }
        true
    }

    fn disk_targets_now(&self) -> Vec<Option<PathBuf>> {
        self.layers
            .iter()
            .filter_map(|l| match &l.source {
                LayerSource::Disk { symlink_root, .. } => Some(std::fs::canonicalize(symlink_root).ok()),
                _ => None,
            })
            .collect()
    }

    /// Runs the disk check on the current (main) thread's loop while `self` lives.
    pub fn watch_disk_layers(self: &Rc<Self>) {
        if !self.layers.iter().any(|l| matches!(l.source, LayerSource::Disk { .. })) {
            return;
        }
        let weak = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(DISK_CHECK_INTERVAL).await;
                let Some(loader) = weak.upgrade() else { return };
                loader.reload_if_disk_changed();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::bootstrap::v3::runtime_layer::{LayerSpecifier, RtdsLayer};
    use envoy_types::pb::envoy::config::bootstrap::v3::{LayeredRuntime, RuntimeLayer};
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
    use envoy_types::pb::envoy::config::core::v3::ConfigSource;

    /// A loader of an RTDS layer (over ADS) and an admin layer.
    fn rtds_loader() -> Loader {
        let ads = ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::Ads(Default::default())),
            ..Default::default()
        };
        let layer = |name: &str, l: LayerSpecifier| RuntimeLayer { name: name.into(), layer_specifier: Some(l) };
        let rt = LayeredRuntime {
            layers: vec![
                layer("rtds", LayerSpecifier::RtdsLayer(RtdsLayer { name: "rtds".into(), rtds_config: Some(ads) })),
                layer("admin", LayerSpecifier::AdminLayer(Default::default())),
            ],
        };
        let layers =
            layers::from_proto(&rt, "", &crate::config::FieldPath::starting_at("layered_runtime")).expect("layers");
        let slot = crate::thread_local::ThreadLocalRegistry::new().allocate_slot();
        Loader::new(layers, &Store::new(), slot)
    }
    #[test]
    fn an_rtds_layer_is_empty_until_set_and_a_bad_one_fails_every_load() {
        let loader = rtds_loader();
        loader.load().expect("loads");
        assert_eq!(loader.snapshot().layers().len(), 2, "the RTDS layer is there, empty");
        let values = [("k".to_string(), Entry::from_text("1"))].into_iter().collect();
        loader.set_rtds_layer("rtds", Ok(values)).expect("loads");
        assert_eq!(loader.snapshot().get_integer("k", 0), 1);
        // Held as Envoy holds it: no load succeeds, the last snapshot serves.
        let bad = loader.set_rtds_layer("rtds", Err("Invalid runtime entry value for x".into()));
        assert_eq!(bad, Err("Invalid runtime entry value for x".into()));
        assert_eq!(loader.modify(&[("a".into(), "2".into())]), Err("Invalid runtime entry value for x".into()));
        assert_eq!(loader.snapshot().get_integer("k", 0), 1);
        assert_eq!(loader.snapshot().get_integer("a", 0), 0);
        // A good layer loads again, with the admin value set meanwhile.
        loader.set_rtds_layer("rtds", Ok(HashMap::new())).expect("loads");
        assert_eq!((loader.snapshot().get_integer("k", 0), loader.snapshot().get_integer("a", 0)), (0, 2));
    }
}
