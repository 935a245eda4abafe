//! The stats store: counters, gauges and histograms by full name. Counters and
//! gauges are single atomics; histograms are described in `histogram`; how the
//! store keeps them by name is in `table`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::config::StatsConfig;
use super::histogram::Histogram;
use super::table::Stats;

/// A monotonically increasing count (`upstream_cx_total`).
#[derive(Debug, Default)]
pub struct Counter {
    value: AtomicU64,
}

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn value(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Back to zero (`/reset_counters`).
    pub fn reset(&self) {
        self.value.store(0, Ordering::Relaxed);
    }
}

/// Envoy's text readout: a string value (an xDS subscription's `version_text`),
/// set off the data path. Boxed to its length, without a spare capacity:
/// there is one per EDS cluster.
#[derive(Debug, Default)]
pub struct TextReadout {
    value: Mutex<Box<str>>,
}

impl TextReadout {
    pub fn set(&self, value: &str) {
        if let Ok(mut v) = self.value.lock() {
            if **v != *value {
                *v = value.into();
            }
        }
    }

    pub fn value(&self) -> String {
        self.value.lock().map(|v| v.to_string()).unwrap_or_default()
    }
}

/// A value that goes up and down (`downstream_cx_active`).
#[derive(Debug, Default)]
pub struct Gauge {
    value: AtomicI64,
}

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn dec(&self) {
        self.value.fetch_sub(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn sub(&self, n: i64) {
        self.value.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    pub fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// All stats of the process by full name. Stats are created at configuration time,
/// never per request, so the lock is off the data path.
#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<Stats>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store following the bootstrap's `stats_config`.
    pub fn with_config(config: StatsConfig) -> Self {
        Store { inner: Mutex::new(Stats::with_config(config)) }
    }

    /// The counter named `name`, created at zero on first use.
    pub fn counter(&self, name: &str) -> Arc<Counter> {
        self.lock().counter("", name)
    }

    /// The gauge named `name`, created at zero on first use.
    pub fn gauge(&self, name: &str) -> Arc<Gauge> {
        self.lock().gauge("", name)
    }

    /// The histogram named `name`, created empty on first use.
    pub fn histogram(&self, name: &str) -> Arc<Histogram> {
        self.lock().histogram("", name)
    }

    /// Closes the current interval of every histogram (Envoy's stats flush, every
    /// 5 s on the main thread): what was recorded since the previous call becomes
    /// the interval shown by `/stats` and is added to the cumulative values. Until
    /// the next call, histogram output does not change.
    pub fn flush_histograms(&self) {
        // Flush outside the store lock so stat creation on other threads never
        // waits for it.
        let histograms: Vec<Arc<Histogram>> = self.lock().histograms().into_iter().map(|(_, h)| h.clone()).collect();
        for h in histograms {
            h.flush();
        }
    }

    /// A consistent view for rendering.
    pub fn lock(&self) -> MutexGuard<'_, Stats> {
        // A panic while holding this lock leaves plain maps behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current value of a counter, if it exists (tests and admin use this).
    pub fn counter_value(&self, name: &str) -> Option<u64> {
        self.lock().find_counter(name).map(|c| c.value())
    }

    /// Sets every counter to zero, as Envoy's `/reset_counters`; gauges and
    /// histograms keep their values.
    pub fn reset_counters(&self) {
        for (_, c) in self.lock().counters() {
            c.reset();
        }
    }

    /// Deletes the stats made under `prefix` (`Stats::remove_group`).
    pub fn remove_group(&self, prefix: &str) {
        self.lock().remove_group(prefix);
    }

    /// The current value of a gauge, if it exists.
    pub fn gauge_value(&self, name: &str) -> Option<i64> {
        self.lock().find_gauge(name).map(|g| g.value())
    }
}
