//! A closed set of histogram samples (one flush interval, or everything since start)
//! and the statistics Envoy derives from it: the ten quantiles of `/stats`, the
//! Prometheus bucket counts, and the approximate sum.
//!
//! Envoy computes these with libcircllhist from bucket counts only, never from the
//! raw values, and Courier does the same so that equal samples print equal numbers:
//! - quantiles are Hyndman–Fan type 1 (the `ceil(q·N)`-th sample, the first for
//!   q = 0), where the `n` samples of a bucket `[l, l+w)` are taken to sit at
//!   `l + w·j/(n+1)`, `j = 1..=n` (one sample of 1 ms is 1.05, one of 24 ms is 24.5);
//! - a Prometheus bucket `le=b` counts the buckets whose lower edge is `<= b` (a
//!   1 ms sample lands in `le="1"`);
//! - the sum counts each sample at its bucket's harmonic midpoint `2lr/(l+r)`.

use super::buckets;

/// The quantiles Envoy reports, as fractions.
pub const SUPPORTED_QUANTILES: [f64; 10] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0];

/// Envoy's default Prometheus bucket bounds (`HistogramSettingsImpl::defaultBuckets`).
pub const DEFAULT_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
    600000.0, 1800000.0, 3600000.0,
];

/// Sample counts per bucket, sorted by bucket (that is, by value), zero counts left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    bins: Vec<(u16, u64)>,
}

impl Distribution {
    /// From `(bucket index, count)` pairs already in bucket order.
    pub(super) fn from_sorted(mut bins: Vec<(u16, u64)>) -> Self {
        bins.retain(|&(_, n)| n > 0);
        debug_assert!(bins.windows(2).all(|w| w[0].0 < w[1].0));
        Distribution { bins }
    }

    /// Adds `other`'s samples to this one.
    pub(super) fn add(&mut self, other: &Distribution) {
        if other.bins.is_empty() {
            return;
        }
        let mut merged = Vec::with_capacity(self.bins.len() + other.bins.len());
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&(i, n)), Some(&&(j, m))) if i == j => {
                    a.next();
                    b.next();
                    (i, n.saturating_add(m))
                }
                (Some(&&x), Some(&&y)) => {
                    if x.0 < y.0 {
                        a.next();
                        x
                    } else {
                        b.next();
                        y
                    }
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, Some(&&y)) => {
                    b.next();
                    y
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.bins = merged;
    }

    /// True when no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// Number of samples.
    pub fn sample_count(&self) -> u64 {
        self.bins.iter().fold(0u64, |acc, &(_, n)| acc.saturating_add(n))
    }

    /// Envoy's approximate sum (`hist_approx_sum`): every sample at the harmonic
    /// midpoint of its bucket.
    pub fn sample_sum(&self) -> f64 {
        self.bins.iter().fold(0.0, |sum, &(index, n)| {
            let (left, width) = buckets::bounds(usize::from(index));
            let mid = if width == 0.0 { left } else { left + width * (left / (left + (left + width))) };
            sum + mid * n as f64
        })
    }

    /// The [`SUPPORTED_QUANTILES`] of the samples; NaN for all of them when there is
    /// none (Envoy prints `nan`, or `null` in JSON).
    pub fn quantiles(&self) -> [f64; SUPPORTED_QUANTILES.len()] {
        let mut out = [f64::NAN; SUPPORTED_QUANTILES.len()];
        let total = self.bins.iter().fold(0.0, |acc, &(_, n)| acc + n as f64);
        let mut bins = self.bins.iter();
        let Some(&(mut index, mut count)) = bins.next() else {
            return out;
        };
        // Samples before the current bucket, and up to and including it.
        let (mut below, mut upto) = (0.0, count as f64);
        for (slot, q) in out.iter_mut().zip(SUPPORTED_QUANTILES) {
            let target = total * q;
            while upto < target {
                let Some(&(i, n)) = bins.next() else { break };
                (index, count, below, upto) = (i, n, upto, upto + n as f64);
            }
            let (left, width) = buckets::bounds(usize::from(index));
            let n = count as f64;
            // Type 1: the ceil(target)-th sample overall, the j-th of this bucket.
            let j = (target - below).ceil().clamp(1.0, n);
            *slot = if width == 0.0 { left } else { left + (j / (n + 1.0)) * width };
        }
        out
    }

    /// `(lower bound, width, count)` of each non-empty bucket, in value order
    /// (Envoy's `histogram_buckets=detailed`).
    pub fn buckets(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        self.bins.iter().map(|&(index, n)| {
            let (lower, width) = buckets::bounds(usize::from(index));
            (lower, width, n)
        })
    }

    /// Cumulative counts for each bound of `bounds` (sorted; the `+Inf` bucket is
    /// [`sample_count`](Self::sample_count)).
    pub fn bucket_counts(&self, bounds: &[f64]) -> Vec<u64> {
        bounds
            .iter()
            .map(|&bound| {
                self.bins
                    .iter()
                    .take_while(|&&(index, _)| buckets::bounds(usize::from(index)).0 <= bound)
                    .fold(0u64, |acc, &(_, n)| acc.saturating_add(n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[u64]) -> Distribution {
        let mut bins: Vec<(u16, u64)> = Vec::new();
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        for v in sorted {
            let i = buckets::index(v) as u16;
            match bins.last_mut() {
                Some((last, n)) if *last == i => *n += 1,
                _ => bins.push((i, 1)),
            }
        }
        Distribution::from_sorted(bins)
    }

    /// The quantiles real Envoy 1.40 printed for these samples (/tmp/envoy-ref).
    #[test]
    fn quantiles_match_envoy() {
        let q = |v: &[u64]| of(v).quantiles().map(|x| x.to_string()).join(" ");
        assert_eq!(q(&[24]), ["24.5"; 10].join(" "));
        assert_eq!(q(&[1, 1, 1]), "1.025 1.025 1.05 1.075 1.075 1.075 1.075 1.075 1.075 1.075");
        assert_eq!(
            q(&[0, 1, 1]),
            "0 0 1.0333333333333334 1.0666666666666667 1.0666666666666667 1.0666666666666667 \
             1.0666666666666667 1.0666666666666667 1.0666666666666667 1.0666666666666667"
        );
        assert_eq!(q(&[0, 0, 1]), "0 0 0 1.05 1.05 1.05 1.05 1.05 1.05 1.05");
        assert_eq!(q(&[1, 2, 6]), "1.05 1.05 2.05 6.05 6.05 6.05 6.05 6.05 6.05 6.05");
        assert_eq!(
            q(&[1; 6]),
            "1.0142857142857142 1.0285714285714285 1.042857142857143 1.0714285714285714 \
             1.0857142857142856 1.0857142857142856 1.0857142857142856 1.0857142857142856 \
             1.0857142857142856 1.0857142857142856"
        );
        assert!(Distribution::default().quantiles().iter().all(|x| x.is_nan()));
        // Cases that tell apart the ways of rounding `l + w·j/(n+1)`, checked against
        // Envoy 1.40 with connections held ~105 and ~115 ms.
        assert_eq!(of(&[105; 10]).quantiles()[3], 107.27272727272728);
        let mut mixed = vec![105, 105];
        mixed.extend([115; 8]);
        assert_eq!(of(&mixed).quantiles()[4], 117.77777777777779);
        assert_eq!(of(&[115]).quantiles()[0], 115.00000000000001);
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let d = of(&(1..=1000).collect::<Vec<_>>());
        let q = d.quantiles();
        for (got, want) in q.iter().zip([1.0, 250.0, 500.0, 750.0, 900.0, 950.0, 990.0, 995.0, 999.0, 1000.0]) {
            // Within 5 %, or the 0.1 width of the buckets below 10.
            assert!((got - want).abs() <= want * 0.05 + 0.1, "{got} vs {want}");
        }
        assert_eq!(d.sample_count(), 1000);
        let sum = d.sample_sum();
        assert!((sum - 500_500.0).abs() < 500_500.0 * 0.01, "{sum}");
    }

    /// Sums and bucket counts as Envoy printed them in `/stats/prometheus`.
    #[test]
    fn sum_and_buckets_match_envoy() {
        assert_eq!(of(&[24]).sample_sum().to_string(), "24.489795918367346");
        assert_eq!(of(&[1; 6]).sample_sum().to_string(), "6.2857142857142865");
        assert_eq!(of(&[1, 2, 6]).sample_sum().to_string(), "9.14598631228343");
        let sum = |v: &[u64]| super::super::number::general(of(v).sample_sum(), 32);
        assert_eq!(sum(&[105; 10]), "1047.6190476190477056661620736122");
        assert_eq!(sum(&[115, 1050, 1050, 1050]), "3257.6397515527951327385380864143");
        let b = of(&[1, 2, 6]).bucket_counts(&DEFAULT_BUCKETS);
        assert_eq!(&b[..4], &[0, 1, 2, 3]);
        assert_eq!(of(&[0, 0]).bucket_counts(&DEFAULT_BUCKETS), [2; 19]);
        assert_eq!(of(&[250, 259, 260]).bucket_counts(&DEFAULT_BUCKETS)[7], 2); // le="250"
    }

    #[test]
    fn add_merges_in_bucket_order() {
        let mut a = of(&[1, 5, 500]);
        a.add(&of(&[0, 5, 70, 5000]));
        assert_eq!(a, of(&[0, 1, 5, 5, 70, 500, 5000]));
        assert_eq!(a.sample_count(), 7);
    }
}
