//! The bucket layout of a histogram: Envoy's log-linear buckets (libcircllhist), so
//! that the same samples give Courier and Envoy the same quantiles to the last digit.
//!
//! A bucket keeps two significant decimal digits: a value `v >= 10` goes to
//! `[dd·10^k, (dd+1)·10^k)` where `dd` are its two leading digits (`1234` →
//! `[1200, 1300)`, `24` → `[24, 25)`); a value `1..=9` goes to `[v, v+0.1)` (what
//! Envoy's `hist_insert_intscale(v, 0)` does), and 0 has a bucket of its own. That is
//! 90 buckets per decade, a relative width between 1 % and 10 %, and
//! `1 + 9 + 19·90` buckets for the whole `u64` range. Buckets are numbered in value
//! order, so sorting by index sorts by value.

/// Buckets holding `0..=9`: the zero bucket and `[1, 1.1)` … `[9, 9.1)`.
pub(super) const UNITS: usize = 10;
/// Buckets per decade (leading digits 10..=99).
pub(super) const PER_DECADE: usize = 90;
/// Decades at and above 10: `[10, 100)` … `[10^19, u64::MAX]`.
pub(super) const DECADES: usize = 19;
/// Number of buckets covering every `u64`.
#[cfg(test)]
pub(super) const COUNT: usize = UNITS + DECADES * PER_DECADE;

/// Powers of ten that are exact in both `u64` and `f64` (up to 10^19), the same
/// table libcircllhist multiplies with.
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Where `value` is counted: `(decade, offset)` with decade 0 for `0..=9` (offset =
/// the value) and decade `d >= 1` for `[10^d, 10^(d+1))` (offset = leading two
/// digits − 10).
#[inline]
pub(super) fn position(value: u64) -> (usize, usize) {
    if value < 10 {
        return (0, value as usize);
    }
    let d = value.ilog10() as usize; // 1..=19
    let leading = value / POW10[d - 1]; // 10..=99
    (d, leading as usize - 10)
}

/// The global bucket index of `value` (`0..COUNT`).
#[cfg(test)]
pub(super) fn index(value: u64) -> usize {
    match position(value) {
        (0, unit) => unit,
        (d, offset) => UNITS + (d - 1) * PER_DECADE + offset,
    }
}

/// The lower edge and width of bucket `index`, computed as libcircllhist does
/// (`val/10.0 * 10^exp` and `10^exp / 10.0`), floating-point rounding included.
pub(super) fn bounds(index: usize) -> (f64, f64) {
    if index == 0 {
        return (0.0, 0.0);
    }
    // circllhist's (val, exp): val in 10..=99, bucket = [val/10·10^exp, (val+1)/10·10^exp).
    let (val, exp) = if index < UNITS {
        (index * 10, 0)
    } else {
        let k = index - UNITS;
        (k % PER_DECADE + 10, k / PER_DECADE + 1)
    };
    let scale = POW10.get(exp).copied().unwrap_or(u64::MAX) as f64;
    ((val as f64 / 10.0) * scale, scale / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_circllhist() {
        assert_eq!(index(0), 0);
        assert_eq!(bounds(index(0)), (0.0, 0.0));
        assert_eq!(bounds(index(1)), (1.0, 0.1));
        assert_eq!(bounds(index(9)), (9.0, 0.1));
        assert_eq!(bounds(index(10)), (10.0, 1.0));
        assert_eq!(bounds(index(24)), (24.0, 1.0));
        assert_eq!(bounds(index(99)), (99.0, 1.0));
        assert_eq!(bounds(index(100)), (100.0, 10.0));
        assert_eq!(bounds(index(1234)), (1200.0, 100.0));
        assert!(index(u64::MAX) < COUNT);
        assert_eq!(bounds(index(u64::MAX)), (1.8e19, 1e18));
        // libcircllhist's rounding, kept on purpose: 1.1 * 100.
        assert_eq!(bounds(index(110)), (110.00000000000001, 10.0));
        // Every bucket holds the values between its edges (up to that rounding).
        for v in [1u64, 9, 10, 11, 99, 100, 109, 110, 999, 1000, 3_600_000, u64::MAX / 3] {
            let (left, width) = bounds(index(v));
            let v = v as f64;
            assert!(left <= v * (1.0 + f64::EPSILON) && v < left + width, "{v}: {left} {width}");
        }
        // Indexes are in value order.
        let mut last = 0;
        for v in (0..100_000u64).step_by(7) {
            assert!(index(v) >= last);
            last = index(v);
        }
    }
}
