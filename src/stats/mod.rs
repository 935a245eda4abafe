//! Stats with Envoy's names and semantics: counters, gauges and histograms that any
//! thread updates without locks; the store (locked only when a stat is created or
//! listed) keeps them by name for the admin endpoint and its three formats.
//! Histograms change what they show only when the main thread flushes them
//! ([`Store::flush_histograms`]), as Envoy's do.

mod buckets;
mod config;
mod distribution;
mod histogram;
mod number;
pub mod render;
pub mod sink;
mod store;
mod table;
pub mod tag_extractor;

pub use config::StatsConfig;
pub use distribution::{Distribution, DEFAULT_BUCKETS, SUPPORTED_QUANTILES};
pub use histogram::{Histogram, HistogramSnapshot};
pub use store::{Counter, Gauge, Store, TextReadout};
pub use table::{Stats, Words};

/// The status class of a response, 1 to 5 (anything outside 100..=499 counts as
/// 5xx, as Envoy's code stats do).
pub fn status_class(status: u16) -> u16 {
    match status {
        100..=499 => status / 100,
        _ => 5,
    }
}

/// The counter of a response's status class among `[1xx, 2xx, 3xx, 4xx, 5xx]`.
pub fn by_status_class(status: u16, classes: [&Counter; 5]) -> &Counter {
    classes[usize::from(status_class(status) - 1)]
}

/// Declares a struct of stats whose names are `<prefix><field>`, as Envoy's
/// `ALL_*_STATS` macros do, so each component names its stats in one place:
///
/// ```ignore
/// define_stats! {
///     pub struct ClusterStats {
///         counter upstream_rq_total,
///         gauge upstream_rq_active,
///         histogram upstream_rq_time,
///     }
/// }
/// ```
///
/// Counters come first, then gauges, then histograms; each kind may be absent.
#[macro_export]
macro_rules! define_stats {
    ($(#[$m:meta])* $vis:vis struct $name:ident {
        $(counter $c:ident,)* $(gauge $g:ident,)* $(histogram $h:ident,)* $(text $t:ident,)*
    }) => {
        $(#[$m])*
        $vis struct $name {
            $(pub $c: std::sync::Arc<$crate::stats::Counter>,)*
            $(pub $g: std::sync::Arc<$crate::stats::Gauge>,)*
            $(pub $h: std::sync::Arc<$crate::stats::Histogram>,)*
            $(pub $t: std::sync::Arc<$crate::stats::TextReadout>,)*
        }
        impl $name {
            /// Creates (or finds) every stat of the struct under `prefix`, which
            /// their names share.
            pub fn new(store: &$crate::stats::Store, prefix: &str) -> Self {
                static COUNTERS: $crate::stats::Words = $crate::stats::Words::new(&[$(stringify!($c)),*]);
                static GAUGES: $crate::stats::Words = $crate::stats::Words::new(&[$(stringify!($g)),*]);
                static HISTOGRAMS: $crate::stats::Words = $crate::stats::Words::new(&[$(stringify!($h)),*]);
                let mut stats = store.lock();
                #[allow(unused_mut, unused_variables)]
                let mut counters = stats.counters_in(prefix, &COUNTERS).into_iter();
                #[allow(unused_mut, unused_variables)]
                let mut gauges = stats.gauges_in(prefix, &GAUGES).into_iter();
                #[allow(unused_mut, unused_variables)]
                let mut histograms = stats.histograms_in(prefix, &HISTOGRAMS).into_iter();
                // One stat per word, in order: the defaults are never reached.
                $name {
                    $($c: counters.next().unwrap_or_default(),)*
                    $($g: gauges.next().unwrap_or_default(),)*
                    $($h: histograms.next().unwrap_or_default(),)*
                    $($t: stats.text_readout(&format!("{prefix}{}", stringify!($t))),)*
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::{StatsConfig, Store};
    use crate::config::FieldPath;
    use envoy_types::pb::envoy::config::metrics::v3::{stats_matcher, StatsConfig as StatsConfigProto, StatsMatcher};
    use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, ListStringMatcher, StringMatcher};

    crate::define_stats! {
        /// All three kinds.
        struct Mixed {
            counter rq_total,
            gauge rq_active,
            histogram rq_time,
        }
    }

    crate::define_stats! {
        struct HistogramsOnly {
            histogram cx_length_ms,
            histogram rq_per_cx,
        }
    }

    #[test]
    fn define_stats_declares_histograms() {
        let store = Store::new();
        let mixed = Mixed::new(&store, "cluster.echo.");
        mixed.rq_total.inc();
        mixed.rq_active.inc();
        mixed.rq_time.record(7);
        let only = HistogramsOnly::new(&store, "cluster.echo.");
        only.rq_per_cx.record(1);
        assert_eq!(only.cx_length_ms.sum(), 0);
        store.flush_histograms();
        let stats = store.lock();
        let names: Vec<String> = stats.histograms().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["cluster.echo.cx_length_ms", "cluster.echo.rq_per_cx", "cluster.echo.rq_time"]);
        assert!(stats.find_histogram("cluster.echo.rq_time").is_some_and(|h| h.snapshot().used()));
        drop(stats);
        assert_eq!(store.counter_value("cluster.echo.rq_total"), Some(1));
        // Same name, same histogram.
        assert_eq!(store.histogram("cluster.echo.rq_time").sum(), 7);
    }

    #[test]
    fn a_rejected_stat_counts_but_is_not_listed() {
        let suffix = StringMatcher { match_pattern: Some(MatchPattern::Suffix("_total".into())), ..Default::default() };
        let matcher = stats_matcher::StatsMatcher::ExclusionList(ListStringMatcher { patterns: vec![suffix] });
        let proto = StatsConfigProto {
            stats_matcher: Some(StatsMatcher { stats_matcher: Some(matcher) }),
            ..Default::default()
        };
        let config = StatsConfig::from_proto(&proto, &FieldPath::starting_at("stats_config")).expect("valid");
        let store = Store::with_config(config);
        // Through a `define_stats!` struct (its words filled at once otherwise) and by name.
        let mixed = Mixed::new(&store, "cluster.echo.");
        mixed.rq_total.inc();
        mixed.rq_active.inc();
        store.counter("server.rq_total").inc();
        assert_eq!(mixed.rq_total.value(), 1);
        assert_eq!(store.counter_value("cluster.echo.rq_total"), None);
        assert_eq!(store.counter_value("server.rq_total"), None);
        assert_eq!(store.gauge_value("cluster.echo.rq_active"), Some(1));
        let names: Vec<String> = store.lock().histograms().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["cluster.echo.rq_time"]);
    }
}
