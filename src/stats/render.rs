//! The admin formats of the stats store, as Envoy prints them: `/stats` text
//! (`name: value`, counters and gauges merged in name order), `/stats?format=json`
//! and `/stats/prometheus` (counters, then gauges, grouped by tag-extracted name).

use std::collections::BTreeMap;
use std::fmt::Write;

use regex::Regex;

use super::store::Stats;
use super::tag_extractor::{extract, prometheus_name};

/// `/stats` query options shared by every format.
#[derive(Debug, Default)]
pub struct StatsFilter {
    /// `filter=REGEX`: keep stats whose name matches (partial match, as RE2's search).
    pub filter: Option<Regex>,
    /// `invert_filter`: keep stats that do not match.
    pub invert: bool,
    /// `usedonly`: keep stats that were written. Courier approximates "written" by a
    /// non-zero value.
    pub used_only: bool,
}

impl StatsFilter {
    fn keeps(&self, name: &str, value_nonzero: bool) -> bool {
        if self.used_only && !value_nonzero {
            return false;
        }
        match &self.filter {
            Some(re) => re.is_match(name) != self.invert,
            None => true,
        }
    }
}

/// Counter and gauge values merged and sorted by name.
fn merged(stats: &Stats, f: &StatsFilter) -> BTreeMap<String, i128> {
    let counters = stats.counters.iter().map(|(n, c)| (n, c.value() as i128));
    let gauges = stats.gauges.iter().map(|(n, g)| (n, g.value() as i128));
    counters
        .chain(gauges)
        .filter(|(n, v)| f.keeps(n, *v != 0))
        .map(|(n, v)| (n.clone(), v))
        .collect()
}

/// `name: value` lines.
pub fn text(stats: &Stats, f: &StatsFilter) -> String {
    let mut out = String::new();
    for (name, value) in merged(stats, f) {
        let _ = writeln!(out, "{name}: {value}");
    }
    out
}

/// `{"stats":[{"name":..,"value":..},..]}`.
pub fn json(stats: &Stats, f: &StatsFilter) -> String {
    let list: Vec<serde_json::Value> = merged(stats, f)
        .into_iter()
        .map(|(name, value)| serde_json::json!({ "name": name, "value": value as i64 }))
        .collect();
    serde_json::json!({ "stats": list }).to_string()
}

/// Prometheus text exposition (version 0.0.4).
pub fn prometheus(stats: &Stats, f: &StatsFilter) -> String {
    let mut out = String::new();
    let counters = stats
        .counters
        .iter()
        .map(|(n, c)| (n.as_str(), c.value() as i128));
    let gauges = stats
        .gauges
        .iter()
        .map(|(n, g)| (n.as_str(), g.value() as i128));
    family(&mut out, "counter", counters, f);
    family(&mut out, "gauge", gauges, f);
    out
}

fn family<'a>(
    out: &mut String,
    kind: &str,
    stats: impl Iterator<Item = (&'a str, i128)>,
    f: &StatsFilter,
) {
    // metric name → (label string, value), kept in name then label order.
    let mut groups: BTreeMap<String, Vec<(String, i128)>> = BTreeMap::new();
    for (name, value) in stats.filter(|(n, v)| f.keeps(n, *v != 0)) {
        let tagged = extract(name);
        let labels: Vec<String> = tagged
            .tags
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        groups
            .entry(prometheus_name(&tagged.name))
            .or_default()
            .push((labels.join(","), value));
    }
    for (metric, mut series) in groups {
        series.sort();
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for (labels, value) in series {
            let _ = writeln!(out, "{metric}{{{labels}}} {value}");
        }
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;

    #[test]
    fn formats() {
        let store = Store::new();
        store.counter("cluster.b.upstream_cx_total").add(3);
        store.counter("cluster.a.upstream_cx_total").add(1);
        store.gauge("cluster.a.upstream_cx_active").set(2);
        store.gauge("server.live").set(1);
        let s = store.lock();
        let f = StatsFilter::default();
        assert_eq!(
            text(&s, &f),
            "cluster.a.upstream_cx_active: 2\ncluster.a.upstream_cx_total: 1\ncluster.b.upstream_cx_total: 3\nserver.live: 1\n"
        );
        let p = prometheus(&s, &f);
        assert!(
            p.starts_with(
                "# TYPE envoy_cluster_upstream_cx_total counter\n\
             envoy_cluster_upstream_cx_total{envoy_cluster_name=\"a\"} 1\n\
             envoy_cluster_upstream_cx_total{envoy_cluster_name=\"b\"} 3\n\
             # TYPE envoy_cluster_upstream_cx_active gauge\n"
            ),
            "{p}"
        );
        assert!(p.contains("envoy_server_live{} 1\n"));
        let j: serde_json::Value = serde_json::from_str(&json(&s, &f)).expect("json");
        assert_eq!(j["stats"][0]["name"], "cluster.a.upstream_cx_active");
        let only_a = StatsFilter {
            filter: Some(Regex::new("cluster\\.a").expect("re")),
            ..Default::default()
        };
        assert_eq!(text(&s, &only_a).lines().count(), 2);
    }
}
