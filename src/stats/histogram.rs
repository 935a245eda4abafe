//! Histograms (`upstream_rq_time`, `downstream_cx_length_ms`, …): a distribution of
//! values (usually milliseconds) that any worker records into without locks, and
//! that the main thread closes into *intervals* at every stats flush, as Envoy does.
//!
//! `record` is one relaxed atomic add on the sample's bucket counter plus one on the
//! exact sum. The buckets are Envoy's log-linear ones (see `buckets`), allocated a
//! decade (90 counters, 720 bytes) at a time the first time a value of that decade is
//! recorded, so a latency histogram spanning 1 ms…10 s costs about 3 KiB while the
//! whole `u64` range stays exact; only that first allocation per decade can make a
//! concurrent `record` wait.
//!
//! What `/stats` shows changes only at a flush, never at a read (Envoy's behaviour):
//! [`Store::flush_histograms`](super::Store::flush_histograms) swaps every counter
//! back to zero, keeps what it took as the *interval* (the `P50(interval,…)` part of
//! `/stats`), and adds it to the *cumulative* distribution. A histogram that has no
//! flushed sample yet prints `No recorded values`. A sample recorded while the flush
//! runs lands in that interval or the next one, never in neither.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::buckets::{self, DECADES, PER_DECADE, UNITS};
use super::distribution::Distribution;

type Decade = [AtomicU64; PER_DECADE];
type Decades = [OnceLock<Box<Decade>>; DECADES];

/// A histogram of `u64` samples. Created by [`Store::histogram`](super::Store::histogram).
pub struct Histogram {
    /// Counters of the open interval for `0..=9`.
    units: [AtomicU64; UNITS],
    /// Counters of the open interval for `[10^(d+1), 10^(d+2))`, allocated on first
    /// use; the table of them too, so a histogram that never sees a value above 9
    /// (most of those a large xDS config's clusters get) holds one pointer, not 19.
    decades: OnceLock<Box<Decades>>,
    /// Exact sum of every recorded value (wrapping), live.
    sum: AtomicU64,
    /// What the last flush produced; touched by the main thread only.
    flushed: Mutex<HistogramSnapshot>,
}

/// The state of a histogram as of the last flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Samples recorded between the last two flushes.
    pub interval: Distribution,
    /// Samples recorded before the last flush.
    pub cumulative: Distribution,
}

impl HistogramSnapshot {
    /// True when some sample was flushed: the meaning of `usedonly` for histograms.
    pub fn used(&self) -> bool {
        !self.cumulative.is_empty()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub(super) fn new() -> Self {
        Histogram {
            units: [const { AtomicU64::new(0) }; UNITS],
            decades: OnceLock::new(),
            sum: AtomicU64::new(0),
            flushed: Mutex::new(HistogramSnapshot::default()),
        }
    }

    /// Records one sample (milliseconds, bytes, a count, …).
    #[inline]
    pub fn record(&self, value: u64) {
        let counter = match buckets::position(value) {
            (0, unit) => &self.units[unit],
            (d, offset) => &self.decades.get_or_init(new_decades)[d - 1].get_or_init(new_decade)[offset],
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The exact sum of every value recorded so far, including the open interval
    /// (the formats print Envoy's bucket-based approximation instead).
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// The interval and cumulative distributions as of the last flush.
    pub fn snapshot(&self) -> HistogramSnapshot {
        self.lock_flushed().clone()
    }

    /// Closes the open interval: takes its counts (resetting them to zero), makes
    /// them the last interval, and adds them to the cumulative distribution.
    pub(super) fn flush(&self) {
        let mut bins = Vec::new();
        let mut take = |index: usize, counter: &AtomicU64| {
            // Skip the write on idle counters so the flush does not dirty their lines.
            if counter.load(Ordering::Relaxed) != 0 {
                // Bucket indexes are below 10 + 19·90, well within u16.
                bins.push((index as u16, counter.swap(0, Ordering::Relaxed)));
            }
        };
        for (unit, counter) in self.units.iter().enumerate() {
            take(unit, counter);
        }
        for (d, decade) in self.decades.get().into_iter().flat_map(|d| d.iter()).enumerate() {
            for (offset, counter) in decade.get().into_iter().flat_map(|c| c.iter()).enumerate() {
                take(UNITS + d * PER_DECADE + offset, counter);
            }
        }
        let interval = Distribution::from_sorted(bins);
        let mut flushed = self.lock_flushed();
        flushed.cumulative.add(&interval);
        flushed.interval = interval;
    }

    fn lock_flushed(&self) -> MutexGuard<'_, HistogramSnapshot> {
        // Plain data behind the lock: a panic elsewhere leaves it usable.
        self.flushed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn new_decades() -> Box<Decades> {
    Box::new([const { OnceLock::new() }; DECADES])
}

fn new_decade() -> Box<Decade> {
    Box::new([const { AtomicU64::new(0) }; PER_DECADE])
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.lock_flushed();
        f.debug_struct("Histogram")
            .field("sum", &self.sum())
            .field("flushed_count", &snapshot.cumulative.sample_count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn values_show_only_after_a_flush() {
        let h = Histogram::new();
        h.record(24);
        assert!(!h.snapshot().used());
        assert_eq!(h.sum(), 24);
        h.flush();
        let s = h.snapshot();
        assert!(s.used());
        assert_eq!(s.interval.sample_count(), 1);
        assert_eq!(s.cumulative.quantiles()[0], 24.5);
    }

    #[test]
    fn flush_closes_the_interval() {
        let h = Histogram::new();
        for v in [1, 10, 100] {
            h.record(v);
        }
        h.flush();
        h.record(1000);
        h.flush();
        let s = h.snapshot();
        assert_eq!(s.interval.sample_count(), 1);
        assert_eq!(s.interval.quantiles()[0], 1050.0);
        assert_eq!(s.cumulative.sample_count(), 4);
        assert_eq!(s.cumulative.quantiles()[0], 1.05);
        // A flush without new samples empties the interval but keeps the total.
        h.flush();
        let s = h.snapshot();
        assert!(s.interval.is_empty());
        assert!(s.interval.quantiles()[5].is_nan());
        assert_eq!(s.cumulative.sample_count(), 4);
        assert_eq!(s.cumulative.quantiles()[9], 1050.0);
    }

    #[test]
    fn extreme_values() {
        let h = Histogram::new();
        for v in [0, 9, 10, 99, u64::MAX] {
            h.record(v);
        }
        h.flush();
        let q = h.snapshot().cumulative.quantiles();
        assert_eq!(q[0], 0.0);
        assert!(q[9] >= 1.8e19);
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let h = Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.record(t * 10_000 + i);
                    }
                })
            })
            .collect();
        // Flushing while the workers record must not lose samples either.
        for _ in 0..10 {
            h.flush();
        }
        for t in threads {
            t.join().expect("recording thread");
        }
        h.flush();
        let s = h.snapshot();
        assert_eq!(s.cumulative.sample_count(), 40_000);
        assert_eq!(h.sum(), (0..40_000u64).sum::<u64>());
        let p50 = s.cumulative.quantiles()[2];
        assert!((p50 - 20_000.0).abs() < 20_000.0 * 0.05, "{p50}");
    }
}
