//! `ClusterLoadAssignment.policy.drop_overloads`: the share of a cluster's
//! requests the router answers itself before choosing a host (Envoy's
//! `ClusterImplBase::parseDropOverloadConfig` and `Router::checkDropOverload`),
//! and the drops the Load Reporting Service reports.
//!
//! As Envoy 1.40: one category at most, its `drop_percentage` a fraction of
//! 100, 10 000 or 1 000 000 that may not pass 1; a static `load_assignment`
//! sets it at start-up, each EDS assignment anew (none: no drops). A request
//! dropped at a share below 100 % gets a 503 `drop overload` with
//! `x-envoy-drop-overload: true` and the flag `DO`; at 100 % every request gets
//! `unconditional drop overload`, `x-envoy-unconditional-drop-overload: true`
//! and `UDO`. Either counts `upstream_rq_503` on the cluster and, outside
//! `/stats` (Envoy keeps them in the cluster's load report store), a drop of
//! the category and a dropped request for the next load report.
//!
//! The share sits in the cluster's `ClusterInfo`, which every worker holds, as
//! the bits of an `f32` it reads with one relaxed load per request: an
//! assignment that changes it sets it there on the main thread, and the workers'
//! next requests see it, as Envoy's next requests see the cluster's new value.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;

use crate::config::{ConfigError, FieldPath};

/// A checked `policy.drop_overloads`: the share dropped and its category.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DropOverloadConfig {
    /// In 0..=1 (0: none dropped).
    pub share: f32,
    pub category: Arc<str>,
}

impl DropOverloadConfig {
    /// `la.policy.drop_overloads`, checked as Envoy checks it; `path` points at
    /// the assignment.
    pub fn from_assignment(la: &ClusterLoadAssignment, path: &FieldPath) -> Result<Self, ConfigError> {
        let Some(policy) = &la.policy else { return Ok(Self::default()) };
        let drops = &policy.drop_overloads;
        let Some(first) = drops.first() else { return Ok(Self::default()) };
        let path = path.child("policy");
        if drops.len() > 1 {
            return Err(path.field_error(
                "drop_overloads",
                format!("Cluster drop_overloads config has {} categories. Envoy only support one.", drops.len()),
            ));
        }
        let percent = first.drop_percentage.unwrap_or_default();
        let denominator = match DenominatorType::try_from(percent.denominator) {
            Ok(DenominatorType::Hundred) => 100.0,
            Ok(DenominatorType::TenThousand) => 10_000.0,
            Ok(DenominatorType::Million) => 1_000_000.0,
            Err(_) => {
                return Err(path.field_error(
                    "drop_overloads",
                    format!(
                        "Cluster drop_overloads config denominator setting is invalid : {}. Valid range 0~2.",
                        percent.denominator
                    ),
                ))
            }
        };
        let share = percent.numerator as f32 / denominator;
        if share > 1.0 {
            return Err(path.field_error(
                "drop_overloads",
                format!(
                    "Cluster drop_overloads config is invalid. drop_ratio={share}(Numerator {} / Denominator {denominator}). \
                     The valid range is 0~1.",
                    percent.numerator
                ),
            ));
        }
        Ok(DropOverloadConfig { share, category: first.category.as_str().into() })
    }
}

/// Why the router drops a request (`DropOverload::decide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A share below 100 % drew this request.
    Drawn,
    /// The share is 100 %.
    Unconditional,
}

/// A cluster's drop share now, and its drops not yet reported.
#[derive(Debug, Default)]
pub struct DropOverload {
    /// The share's `f32` bits.
    share: AtomicU32,
    category: Mutex<Arc<str>>,
    /// Envoy's load report stat `upstream_rq_drop_overload`: requests dropped
    /// by the share.
    dropped_by_share: AtomicU64,
    /// Envoy's load report stat `upstream_rq_dropped`: every request the router
    /// dropped (by the share or a circuit breaker's overflow).
    dropped: AtomicU64,
}

impl DropOverload {
    pub fn new(config: &DropOverloadConfig) -> DropOverload {
        let d = DropOverload::default();
        d.set(config);
        d
    }

    /// Takes an assignment's share and category.
    pub fn set(&self, config: &DropOverloadConfig) {
        self.share.store(config.share.to_bits(), Ordering::Relaxed);
        if let Ok(mut category) = self.category.lock() {
            *category = config.category.clone();
        }
    }

    pub fn share(&self) -> f32 {
        f32::from_bits(self.share.load(Ordering::Relaxed))
    }

    pub fn category(&self) -> Arc<str> {
        self.category.lock().map_or_else(|_| "".into(), |c| c.clone())
    }

    /// Whether this request is dropped (Envoy's `bernoulli` of the share),
    /// counted when it is.
    pub fn decide(&self) -> Option<Dropped> {
        let share = self.share();
        if share <= 0.0 {
            return None;
        }
        let drop = if share >= 1.0 {
            Dropped::Unconditional
        } else if crate::common::random::next_u64() < (f64::from(share) * u64::MAX as f64) as u64 {
            Dropped::Drawn
        } else {
            return None;
        };
        self.dropped_by_share.fetch_add(1, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        Some(drop)
    }

    /// Counts a request dropped otherwise (a circuit breaker's overflow).
    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The drops since the last call: by the share, and in all (Envoy's
    /// `latch` of its load report stats; the load reporter alone reads them).
    pub fn latch(&self) -> (u64, u64) {
        (self.dropped_by_share.swap(0, Ordering::Relaxed), self.dropped.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::policy::DropOverload as Pb;
    use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::Policy;
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;

    use super::*;

    fn config(drops: &[(&str, u32, DenominatorType)]) -> Result<DropOverloadConfig, ConfigError> {
        let drop_overloads = drops
            .iter()
            .map(|(category, numerator, d)| Pb {
                category: category.to_string(),
                drop_percentage: Some(FractionalPercent { numerator: *numerator, denominator: *d as i32 }),
            })
            .collect();
        let la = ClusterLoadAssignment {
            policy: Some(Policy { drop_overloads, ..Default::default() }),
            ..Default::default()
        };
        DropOverloadConfig::from_assignment(&la, &FieldPath::starting_at("load_assignment"))
    }

    #[test]
    fn shares_of_each_denominator() {
        let c = config(&[("lb", 25, DenominatorType::Hundred)]);
        assert_eq!(c.unwrap(), DropOverloadConfig { share: 0.25, category: "lb".into() });
        assert_eq!(config(&[("x", 5, DenominatorType::TenThousand)]).unwrap().share, 0.0005);
        assert_eq!(config(&[("x", 1_000_000, DenominatorType::Million)]).unwrap().share, 1.0);
        assert_eq!(config(&[]).unwrap(), DropOverloadConfig::default());
    }

    #[test]
    fn envoy_refuses_two_categories_and_a_share_above_one() {
        let two = config(&[("a", 1, DenominatorType::Hundred), ("b", 1, DenominatorType::Hundred)]).unwrap_err();
        assert_eq!(two.path, "load_assignment.policy.drop_overloads");
        assert!(two.to_string().contains("has 2 categories. Envoy only support one."), "{two}");
        let above = config(&[("a", 101, DenominatorType::Hundred)]).unwrap_err();
        assert!(above.to_string().contains("drop_ratio=1.01(Numerator 101 / Denominator 100)"), "{above}");
    }

    #[test]
    fn none_some_or_all_dropped_and_counted() {
        let d = DropOverload::new(&DropOverloadConfig::default());
        assert!((0..100).all(|_| d.decide().is_none()));
        d.set(&DropOverloadConfig { share: 1.0, category: "all".into() });
        assert!((0..100).all(|_| d.decide() == Some(Dropped::Unconditional)));
        d.count_dropped();
        assert_eq!(d.latch(), (100, 101));
        assert_eq!(d.latch(), (0, 0));
        assert_eq!(&*d.category(), "all");
        // One in two of 1000 draws: far from 0 and 1000 (p < 1e-30 of leaving 300..=700).
        d.set(&DropOverloadConfig { share: 0.5, category: "half".into() });
        let drawn = (0..1000).filter(|_| d.decide() == Some(Dropped::Drawn)).count();
        assert!((300..=700).contains(&drawn), "{drawn}");
    }
}
