//! An immutable view of the runtime's layers (Envoy's `Runtime::SnapshotImpl`).
//! The main thread builds one from the layers each time a layer changes and
//! publishes it to every thread; a reader on a worker looks values up in its own
//! copy without a lock, and a value it read stays as it was until it takes the next
//! snapshot.

use std::collections::{BTreeMap, HashMap};

use crate::common::fnv::FnvHashMap;
use crate::common::random;

/// Envoy's `FractionalPercent` as the runtime samples it: true for
/// `numerator / denominator` of the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub numerator: u64,
    pub denominator: u64,
}

impl Fraction {
    pub const ZERO: Fraction = Fraction { numerator: 0, denominator: 100 };
    pub const HUNDRED: Fraction = Fraction { numerator: 100, denominator: 100 };

    /// A `FractionalPercent.denominator` enum value as its number (unknown ones are
    /// `HUNDRED`, Envoy's default).
    pub fn denominator_of(value: i32) -> u64 {
        match value {
            1 => 10_000,
            2 => 1_000_000,
            _ => 100,
        }
    }

    /// True for `numerator / denominator` of the calls (always when the numerator is
    /// at least the denominator, never when it is zero).
    pub fn sample(self) -> bool {
        if self.numerator == 0 {
            return false;
        }
        if self.numerator >= self.denominator {
            return true;
        }
        random::below(self.denominator) < self.numerator
    }
}

/// One key's value in a layer: its text as shown by `/runtime`, and the typed
/// readings Envoy makes of it once, when the layer is built.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub raw: String,
    pub bool_value: Option<bool>,
    pub double_value: Option<f64>,
    pub uint_value: Option<u64>,
    pub fraction_value: Option<Fraction>,
}

impl Entry {
    /// A value given as text (disk files, `/runtime_modify`, static strings), read as
    /// Envoy's `SnapshotImpl::createEntry(string)`: a boolean (`true`/`false`, any
    /// case), else a number (a non-negative one is also an integer, truncated).
    pub fn from_text(raw: impl Into<String>) -> Entry {
        let raw = raw.into();
        let mut e = Entry { raw, bool_value: None, double_value: None, uint_value: None, fraction_value: None };
        let lower = e.raw.to_ascii_lowercase();
        if lower == "true" || lower == "false" {
            e.bool_value = Some(lower == "true");
            return e;
        }
        if let Ok(d) = e.raw.trim().parse::<f64>() {
            if !d.is_nan() {
                e.double_value = Some(d);
                if (0.0..=u64::MAX as f64).contains(&d) {
                    e.uint_value = Some(d as u64);
                }
            }
        }
        e
    }

    /// A number of a static layer: Envoy prints it with six significant digits
    /// (`absl::StrCat` of a double).
    pub fn from_number(d: f64) -> Entry {
        let mut e = Entry::from_text(format_double(d));
        e.double_value = Some(d);
        e.uint_value = (d >= 0.0 && d <= u64::MAX as f64).then_some(d as u64);
        e
    }

    pub fn from_bool(b: bool) -> Entry {
        Entry::from_text(if b { "true" } else { "false" })
    }
}

/// `%g` with six significant digits, as `absl::StrCat(double)` prints.
pub fn format_double(d: f64) -> String {
    if d == 0.0 {
        return "0".into();
    }
    if !d.is_finite() {
        return if d.is_nan() {
            "nan".into()
        } else if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let exp = d.abs().log10().floor() as i32;
    // Rounding to six digits may carry into the next power of ten.
    let sci = format!("{d:.5e}");
    let (mantissa, e) = sci.split_once('e').unwrap_or((&sci, "0"));
    let e: i32 = e.parse().unwrap_or(exp);
    if (-4..6).contains(&e) {
        let decimals = (5 - e).max(0) as usize;
        let fixed = format!("{d:.decimals$}");
        trim_zeros(&fixed)
    } else {
        let m = trim_zeros(mantissa);
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// One layer's name and values, as loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    pub name: String,
    pub values: HashMap<String, Entry>,
}

/// The layers in order and the merged values (a later layer's key wins). The
/// merged map, which workers look keys up in, hashes with FNV: its keys are the
/// operator's (config, disk, admin), never a client's.
#[derive(Debug, Default)]
pub struct Snapshot {
    layers: Vec<Layer>,
    values: FnvHashMap<String, Entry>,
}

impl Snapshot {
    pub fn new(layers: Vec<Layer>) -> Snapshot {
        let mut values = FnvHashMap::default();
        for layer in &layers {
            for (k, v) in &layer.values {
                values.insert(k.clone(), v.clone());
            }
        }
        Snapshot { layers, values }
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    pub fn num_keys(&self) -> usize {
        self.values.len()
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.values.get(key)
    }

    /// Envoy's `featureEnabled(key, FractionalPercent)`: the key's fraction, or its
    /// integer over `default`'s denominator, or `default`; then sampled.
    pub fn feature_enabled(&self, key: &str, default: Fraction) -> bool {
        self.fraction(key, default).sample()
    }

    /// The fraction `feature_enabled` samples.
    pub fn fraction(&self, key: &str, default: Fraction) -> Fraction {
        match self.values.get(key) {
            Some(Entry { fraction_value: Some(f), .. }) => *f,
            Some(Entry { uint_value: Some(n), .. }) => Fraction { numerator: *n, denominator: default.denominator },
            _ => default,
        }
    }

    /// Envoy's `getBoolean`: the key's boolean, or `default`.
    pub fn get_boolean(&self, key: &str, default: bool) -> bool {
        self.values.get(key).and_then(|e| e.bool_value).unwrap_or(default)
    }

    /// Envoy's `getDouble`: the key's number, or `default`.
    pub fn get_double(&self, key: &str, default: f64) -> f64 {
        self.values.get(key).and_then(|e| e.double_value).unwrap_or(default)
    }

    /// Envoy's `getInteger`: the key's non-negative integer, or `default`.
    pub fn get_integer(&self, key: &str, default: u64) -> u64 {
        // Most deployments set no runtime: no key is hashed for nothing.
        if self.values.is_empty() {
            return default;
        }
        self.values.get(key).and_then(|e| e.uint_value).unwrap_or(default)
    }

    /// Every key of any layer with its value in each layer (empty where a layer
    /// does not set it) and its final value: what `/runtime` shows.
    pub fn entries(&self) -> BTreeMap<&str, (Vec<&str>, &str)> {
        let mut out = BTreeMap::new();
        for (key, entry) in &self.values {
            let per_layer = self.layers.iter().map(|l| l.values.get(key).map_or("", |e| e.raw.as_str())).collect();
            out.insert(key.as_str(), (per_layer, entry.raw.as_str()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, kv: &[(&str, &str)]) -> Layer {
        Layer { name: name.into(), values: kv.iter().map(|(k, v)| (k.to_string(), Entry::from_text(*v))).collect() }
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let s = Snapshot::new(vec![layer("a", &[("x", "1"), ("y", "2")]), layer("b", &[("y", "3")])]);
        assert_eq!(s.get_integer("x", 9), 1);
        assert_eq!(s.get_integer("y", 9), 3);
        assert_eq!(s.get_integer("z", 9), 9);
        assert_eq!(s.num_keys(), 2);
        let entries = s.entries();
        assert_eq!(entries["y"], (vec!["2", "3"], "3"));
        assert_eq!(entries["x"], (vec!["1", ""], "1"));
    }

    #[test]
    fn text_values_are_typed_as_envoy_types_them() {
        let t = Entry::from_text("TRUE");
        assert_eq!((t.bool_value, t.double_value), (Some(true), None));
        let n = Entry::from_text("2.5");
        assert_eq!((n.double_value, n.uint_value), (Some(2.5), Some(2)));
        let neg = Entry::from_text("-1");
        assert_eq!((neg.double_value, neg.uint_value), (Some(-1.0), None));
        let s = Entry::from_text("abc");
        assert_eq!((s.bool_value, s.double_value, s.uint_value), (None, None, None));
    }

    #[test]
    fn fractions_come_from_integers_over_the_default_denominator() {
        let s = Snapshot::new(vec![layer("a", &[("k", "5"), ("t", "true")])]);
        let d = Fraction { numerator: 50, denominator: 10_000 };
        assert_eq!(s.fraction("k", d), Fraction { numerator: 5, denominator: 10_000 });
        assert_eq!(s.fraction("t", d), d);
        assert_eq!(s.fraction("missing", d), d);
        assert!(!Snapshot::new(vec![layer("a", &[("k", "0")])]).feature_enabled("k", Fraction::HUNDRED));
    }

    #[test]
    fn numbers_print_as_absl_prints_them() {
        for (d, s) in [
            (100.0, "100"),
            (1.5, "1.5"),
            (1234567.0, "1.23457e+06"),
            (-3.0, "-3"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (999999.5, "1e+06"),
            (0.1, "0.1"),
            (123456.0, "123456"),
        ] {
            assert_eq!(format_double(d), s, "{d}");
        }
    }
}
