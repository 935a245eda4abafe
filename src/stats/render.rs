//! The admin formats of the stats store, as Envoy prints them:
//! - `/stats` text: `name: value` lines for counters and gauges merged in name order,
//!   then one line per histogram in name order (`P0(interval,cumulative) … P100(…)`,
//!   or `No recorded values` before its first flushed sample);
//! - `/stats?format=json`: `{"stats":[{"name":..,"value":..},..]}`, the histograms as
//!   one last `{"histograms":{..}}` element when any histogram is listed;
//! - `/stats/prometheus`: counter families, then gauge families, then histogram
//!   families (cumulative `_bucket`s on Envoy's default bounds, `_sum`, `_count`),
//!   named and labelled by tag extraction.
//!
//! `?type=` keeps one kind of stat in every format; `?histogram_buckets=cumulative`
//! or `disjoint` shows histograms as counts on the default buckets instead of
//! quantiles (`B0.5(interval,cumulative) …` in text, `{"buckets":[..]}` in JSON),
//! `detailed` as every internal bucket (`lower,width:count`) and the quantiles.
//!
//! Histograms are printed as of the last flush (see `Store::flush_histograms`).

use std::collections::BTreeMap;
use std::fmt::Write;

use regex::Regex;

use super::distribution::SUPPORTED_QUANTILES;
use super::histogram::HistogramSnapshot;
use super::number::{general, shortest, to_chars};
use super::table::Stats;
use super::tag_extractor::{prometheus_name, TagProducer};

/// [`SUPPORTED_QUANTILES`] as Envoy labels them, in percent (`P99.5`).
const QUANTILE_LABELS: [&str; SUPPORTED_QUANTILES.len()] =
    ["0", "25", "50", "75", "90", "95", "99", "99.5", "99.9", "100"];

/// `/stats` query options shared by every format.
#[derive(Debug, Default)]
pub struct StatsFilter {
    /// `filter=REGEX`: keep stats whose name matches (partial match, as RE2's search).
    pub filter: Option<Regex>,
    /// `invert_filter`: keep stats that do not match.
    pub invert: bool,
    /// `usedonly`: keep stats that were written. Courier approximates "written" by a
    /// non-zero value for counters and gauges; a histogram is used once a flush saw
    /// a sample in it.
    pub used_only: bool,
    /// `type=`: which kinds of stat to list.
    pub types: StatTypes,
    /// `histogram_buckets=`: how histograms are shown in `/stats` text and JSON.
    pub buckets: HistogramBuckets,
}

/// Envoy's `/stats?type=` values (case-sensitive, as Envoy parses them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum StatTypes {
    #[default]
    All,
    Counters,
    Gauges,
    Histograms,
    TextReadouts,
}

impl StatTypes {
    pub fn parse(s: &str) -> Option<StatTypes> {
        Some(match s {
            "All" => StatTypes::All,
            "Counters" => StatTypes::Counters,
            "Gauges" => StatTypes::Gauges,
            "Histograms" => StatTypes::Histograms,
            "TextReadouts" => StatTypes::TextReadouts,
            _ => return None,
        })
    }

    fn counters(self) -> bool {
        matches!(self, StatTypes::All | StatTypes::Counters)
    }

    fn gauges(self) -> bool {
        matches!(self, StatTypes::All | StatTypes::Gauges)
    }

    fn histograms(self) -> bool {
        matches!(self, StatTypes::All | StatTypes::Histograms)
    }

    fn text_readouts(self) -> bool {
        matches!(self, StatTypes::All | StatTypes::TextReadouts)
    }
}

/// Envoy's `/stats?histogram_buckets=` modes Courier prints: quantiles (the
/// default), or counts on [`DEFAULT_BUCKETS`], each bucket holding everything up
/// to its bound (`cumulative`) or only what lies above the previous bound
/// (`disjoint`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum HistogramBuckets {
    #[default]
    Summary,
    Cumulative,
    Disjoint,
    /// Every non-empty internal bucket, then the quantiles.
    Detailed,
}

impl StatsFilter {
    fn keeps(&self, name: &str, used: bool) -> bool {
        if self.used_only && !used {
            return false;
        }
        self.matches(name)
    }

    fn matches(&self, name: &str) -> bool {
        match &self.filter {
            Some(re) => re.is_match(name) != self.invert,
            None => true,
        }
    }
}

/// Counter and gauge values merged and sorted by name.
fn merged(stats: &Stats, f: &StatsFilter) -> BTreeMap<String, i128> {
    counter_values(stats, f).chain(gauge_values(stats, f)).filter(|(n, v)| f.keeps(n, *v != 0)).collect()
}

/// The counters `f.types` asks for, unfiltered by name, in name order.
fn counter_values<'a>(stats: &'a Stats, f: &StatsFilter) -> impl Iterator<Item = (String, i128)> + 'a {
    let listed = if f.types.counters() { stats.counters() } else { Vec::new() };
    listed.into_iter().map(|(n, c)| (n, c.value() as i128))
}

/// The gauges `f.types` asks for, unfiltered by name, in name order. Envoy's
/// gauges are unsigned 64-bit: an xDS `version` (a hash) above `i64::MAX` is
/// kept in the signed gauge bit for bit and shown as Envoy shows it.
fn gauge_values<'a>(stats: &'a Stats, f: &StatsFilter) -> impl Iterator<Item = (String, i128)> + 'a {
    let listed = if f.types.gauges() { stats.gauges() } else { Vec::new() };
    listed.into_iter().map(|(n, g)| (n, i128::from(g.value() as u64)))
}

/// The text readouts `f` keeps, in name order (used: set to something).
fn text_readouts(stats: &Stats, f: &StatsFilter) -> Vec<(String, String)> {
    if !f.types.text_readouts() {
        return Vec::new();
    }
    stats
        .text_readouts()
        .into_iter()
        .map(|(name, t)| (name, t.value()))
        .filter(|(name, value)| f.keeps(name, !value.is_empty()))
        .collect()
}

/// The histograms `f` keeps, in name order, as of the last flush.
fn histograms(stats: &Stats, f: &StatsFilter) -> Vec<(String, HistogramSnapshot)> {
    if !f.types.histograms() {
        return Vec::new();
    }
    stats
        .histograms()
        .into_iter()
        .filter(|(name, _)| f.matches(name))
        .map(|(name, h)| (name, h.snapshot()))
        .filter(|(_, h)| !f.used_only || h.used())
        .collect()
}

/// `name: "text"` lines (as Envoy, text readouts first), `name: value` lines,
/// then histogram lines.
pub fn text(stats: &Stats, f: &StatsFilter) -> String {
    let mut out = String::new();
    for (name, value) in text_readouts(stats, f) {
        let _ = writeln!(out, "{name}: \"{value}\"");
    }
    for (name, value) in merged(stats, f) {
        let _ = writeln!(out, "{name}: {value}");
    }
    for (name, h) in histograms(stats, f) {
        let shown = match f.buckets {
            HistogramBuckets::Summary => quantile_summary(&h),
            _ if !h.used() => "No recorded values".to_string(),
            HistogramBuckets::Detailed => detailed_text(&h),
            mode => bucket_summary(&h, mode, stats.config().buckets(&name)),
        };
        // The detailed form starts on the next line: no space after the colon.
        let sep = if shown.starts_with('\n') { "" } else { " " };
        let _ = writeln!(out, "{name}:{sep}{shown}");
    }
    out
}

/// The lines under `name:` of Envoy's detailed text: the cumulative and interval
/// buckets as `lower,width:count`, then the quantiles.
fn detailed_text(h: &HistogramSnapshot) -> String {
    let list = |d: &super::distribution::Distribution| {
        let parts: Vec<String> =
            d.buckets().map(|(lower, width, n)| format!("{},{}:{n}", shortest(lower), shortest(width))).collect();
        parts.join(", ")
    };
    format!("\n  totals={}\n  intervals={}\n  summary={}", list(&h.cumulative), list(&h.interval), quantile_summary(h))
}

/// One histogram's detailed JSON: `{"name":..,"totals":[{"lower_bound":..,"width":..,
/// "count":..}],"intervals":[..],"percentiles":[{"cumulative":..,"interval":..}]}`.
fn json_detailed(name: &str, h: &HistogramSnapshot) -> String {
    let list = |d: &super::distribution::Distribution| {
        let parts: Vec<String> = d
            .buckets()
            .map(|(lower, width, n)| {
                format!("{{\"lower_bound\":{},\"width\":{},\"count\":{n}}}", to_chars(lower), to_chars(width))
            })
            .collect();
        parts.join(",")
    };
    format!(
        "{{\"name\":{},\"totals\":[{}],\"intervals\":[{}],\"percentiles\":[{}]}}",
        json_string(name),
        list(&h.cumulative),
        list(&h.interval),
        json_quantiles(h)
    )
}

/// `{"cumulative":..,"interval":..}` per supported quantile, `null` for none.
fn json_quantiles(h: &HistogramSnapshot) -> String {
    let values: Vec<String> = h
        .cumulative
        .quantiles()
        .into_iter()
        .zip(h.interval.quantiles())
        .map(|(c, i)| format!("{{\"cumulative\":{},\"interval\":{}}}", json_number(c), json_number(i)))
        .collect();
    values.join(",")
}

/// `B0.5(interval,cumulative) B1(…) …` on the histogram's bucket `bounds`,
/// printed as C's `%g` (`B1.8e+06`), as Envoy's text format shows bucket counts.
fn bucket_summary(h: &HistogramSnapshot, mode: HistogramBuckets, bounds: &[f64]) -> String {
    let parts: Vec<String> = bucket_counts(h, mode, bounds)
        .map(|(bound, interval, cumulative)| format!("B{}({interval},{cumulative})", general(bound, 6)))
        .collect();
    parts.join(" ")
}

/// `(upper bound, interval count, cumulative count)` per bucket of `bounds`; in
/// `Disjoint` mode each count leaves out what the buckets below hold.
fn bucket_counts<'a>(
    h: &HistogramSnapshot,
    mode: HistogramBuckets,
    bounds: &'a [f64],
) -> impl Iterator<Item = (f64, u64, u64)> + 'a {
    let (interval, cumulative) = (h.interval.bucket_counts(bounds), h.cumulative.bucket_counts(bounds));
    (0..bounds.len()).map(move |i| {
        let below = |counts: &[u64]| {
            if mode == HistogramBuckets::Disjoint && i > 0 {
                counts[i - 1]
            } else {
                0
            }
        };
        (bounds[i], interval[i] - below(&interval), cumulative[i] - below(&cumulative))
    })
}

/// One histogram's JSON in a bucket mode: `{"name":..,"buckets":[{"upper_bound":..,
/// "interval":..,"cumulative":..},..]}`.
fn json_buckets(name: &str, h: &HistogramSnapshot, mode: HistogramBuckets, bounds: &[f64]) -> String {
    let buckets: Vec<String> = bucket_counts(h, mode, bounds)
        .map(|(bound, interval, cumulative)| {
            format!("{{\"upper_bound\":{},\"interval\":{interval},\"cumulative\":{cumulative}}}", to_chars(bound))
        })
        .collect();
    format!("{{\"name\":{},\"buckets\":[{}]}}", json_string(name), buckets.join(","))
}

/// `P0(i,c) P25(i,c) … P100(i,c)`, or `No recorded values` (Envoy's `quantileSummary`).
fn quantile_summary(h: &HistogramSnapshot) -> String {
    if !h.used() {
        return "No recorded values".to_string();
    }
    let quantiles = h.interval.quantiles().into_iter().zip(h.cumulative.quantiles());
    let parts: Vec<String> = QUANTILE_LABELS
        .iter()
        .zip(quantiles)
        .map(|(p, (interval, cumulative))| format!("P{p}({},{})", shortest(interval), shortest(cumulative)))
        .collect();
    parts.join(" ")
}

/// `{"stats":[{"name":..,"value":..},..,{"histograms":{..}}]}`, compact, with keys
/// in Envoy's order.
pub fn json(stats: &Stats, f: &StatsFilter) -> String {
    let mut entries: Vec<String> = text_readouts(stats, f)
        .into_iter()
        .map(|(name, value)| format!("{{\"name\":{},\"value\":{}}}", json_string(&name), json_string(&value)))
        .collect();
    entries.extend(
        merged(stats, f)
            .into_iter()
            .map(|(name, value)| format!("{{\"name\":{},\"value\":{value}}}", json_string(&name))),
    );
    let histograms = histograms(stats, f);
    if !histograms.is_empty() && f.buckets == HistogramBuckets::Detailed {
        let listed: Vec<String> = histograms.iter().map(|(name, h)| json_detailed(name, h)).collect();
        entries.push(format!(
            "{{\"histograms\":{{\"supported_percentiles\":[{}],\"details\":[{}]}}}}",
            QUANTILE_LABELS.join(","),
            listed.join(",")
        ));
    } else if !histograms.is_empty() && f.buckets != HistogramBuckets::Summary {
        let listed: Vec<String> =
            histograms.iter().map(|(name, h)| json_buckets(name, h, f.buckets, stats.config().buckets(name))).collect();
        entries.push(format!("{{\"histograms\":[{}]}}", listed.join(",")));
    } else if !histograms.is_empty() {
        let computed: Vec<String> = histograms
            .iter()
            .map(|(name, h)| format!("{{\"name\":{},\"values\":[{}]}}", json_string(name), json_quantiles(h)))
            .collect();
        entries.push(format!(
            "{{\"histograms\":{{\"supported_quantiles\":[{}],\"computed_quantiles\":[{}]}}}}",
            QUANTILE_LABELS.join(","),
            computed.join(",")
        ));
    }
    format!("{{\"stats\":[{}]}}", entries.join(","))
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A quantile in JSON: `null` where the text format prints `nan`.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        shortest(x)
    } else {
        "null".to_string()
    }
}

/// Prometheus text exposition (version 0.0.4).
pub fn prometheus(stats: &Stats, f: &StatsFilter) -> String {
    let mut out = String::new();
    let kept = |(name, value): &(String, i128)| f.keeps(name, *value != 0);
    let counters = counter_values(stats, f).filter(kept);
    let gauges = gauge_values(stats, f).filter(kept);
    let tags = stats.config().tags();
    scalar_families(&mut out, tags, "counter", counters);
    scalar_families(&mut out, tags, "gauge", gauges);
    let named = histograms(stats, f).into_iter().map(|(name, h)| {
        let bounds = stats.config().buckets(&name);
        (name, (h, bounds))
    });
    for family in families(tags, named) {
        let _ = writeln!(out, "# TYPE {} histogram", family.metric);
        for (labels, (h, bounds)) in &family.series {
            histogram_series(&mut out, &family.metric, labels, h, bounds);
        }
    }
    out
}

fn scalar_families(out: &mut String, tags: &TagProducer, kind: &str, stats: impl Iterator<Item = (String, i128)>) {
    for Family { metric, series } in families(tags, stats) {
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for (labels, value) in series {
            let _ = writeln!(out, "{metric}{{{labels}}} {value}");
        }
    }
}

/// One histogram's `_bucket` lines (cumulative, `le` last), `_sum` and `_count`;
/// `bounds` are its buckets (`stats_config.histogram_bucket_settings` or Envoy's
/// defaults), printed as Envoy prints them (`%.32g`).
fn histogram_series(out: &mut String, metric: &str, labels: &str, h: &HistogramSnapshot, bounds: &[f64]) {
    let sep = if labels.is_empty() { "" } else { "," };
    let total = h.cumulative.sample_count();
    for (&bound, count) in bounds.iter().zip(h.cumulative.bucket_counts(bounds)) {
        let _ = writeln!(out, "{metric}_bucket{{{labels}{sep}le=\"{}\"}} {count}", general(bound, 32));
    }
    let _ = writeln!(out, "{metric}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{metric}_sum{{{labels}}} {}", general(h.cumulative.sample_sum(), 32));
    let _ = writeln!(out, "{metric}_count{{{labels}}} {total}");
}

/// One Prometheus metric family: its name and its series (label string, value).
struct Family<T> {
    metric: String,
    series: Vec<(String, T)>,
}

/// Groups `stats` (given in full-name order) into families, ordered as Envoy orders
/// them: by tag-extracted dotted name (`cluster.upstream_cx_total` before
/// `cluster_manager.*`), each family's series staying in full-name order.
fn families<T>(tags: &TagProducer, stats: impl IntoIterator<Item = (String, T)>) -> impl Iterator<Item = Family<T>> {
    let mut groups: BTreeMap<String, Family<T>> = BTreeMap::new();
    for (name, value) in stats {
        let tagged = tags.extract(&name);
        let labels: Vec<String> = tagged.tags.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
        groups
            .entry(tagged.name)
            .or_insert_with_key(|dotted| Family { metric: prometheus_name(dotted), series: Vec::new() })
            .series
            .push((labels.join(","), value));
    }
    groups.into_values()
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;
    use crate::stats::DEFAULT_BUCKETS;

    /// [`DEFAULT_BUCKETS`] as Envoy 1.40 prints them in `le` labels (never with an
    /// exponent).
    const BUCKET_LABELS: [&str; DEFAULT_BUCKETS.len()] = [
        "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000",
        "300000", "600000", "1800000", "3600000",
    ];

    /// Text readouts come first, quoted, as Envoy 1.40 lists `sds.<name>.version_text`
    /// (compat `xds_sds`); `type=` and `usedonly` pick them as the others.
    #[test]
    fn text_readouts_come_first() {
        let store = Store::new();
        store.counter("sds.a.update_success").inc();
        store.lock().text_readout("sds.a.version_text").set("v7");
        store.lock().text_readout("sds.b.version_text");
        let s = store.lock();
        let f = StatsFilter::default();
        assert_eq!(text(&s, &f), "sds.a.version_text: \"v7\"\nsds.b.version_text: \"\"\nsds.a.update_success: 1\n");
        let used = StatsFilter { used_only: true, types: StatTypes::TextReadouts, ..Default::default() };
        assert_eq!(json(&s, &used), r#"{"stats":[{"name":"sds.a.version_text","value":"v7"}]}"#);
        let counters = StatsFilter { types: StatTypes::Counters, ..Default::default() };
        assert_eq!(text(&s, &counters), "sds.a.update_success: 1\n");
    }

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
        let only_a = StatsFilter { filter: Some(Regex::new("cluster\\.a").expect("re")), ..Default::default() };
        assert_eq!(text(&s, &only_a).lines().count(), 2);
    }

    fn filter(re: &str) -> StatsFilter {
        StatsFilter { filter: Some(Regex::new(re).expect("re")), ..Default::default() }
    }

    /// `server.initialization_time_ms` holding one 24 ms sample (flushed once, then
    /// `flushes - 1` more times), next to a histogram that never had one.
    fn store_with_histograms(flushes: usize) -> Store {
        let store = Store::new();
        store.gauge("server.live").set(1);
        store.histogram("server.initialization_time_ms").record(24);
        store.histogram("cluster.dead.upstream_cx_connect_ms");
        for _ in 0..flushes {
            store.flush_histograms();
        }
        store
    }

    #[test]
    fn text_histograms() {
        let store = store_with_histograms(0);
        assert_eq!(
            text(&store.lock(), &StatsFilter::default()),
            "server.live: 1\n\
             cluster.dead.upstream_cx_connect_ms: No recorded values\n\
             server.initialization_time_ms: No recorded values\n"
        );
        store.flush_histograms();
        let after_one = "server.initialization_time_ms: P0(24.5,24.5) P25(24.5,24.5) P50(24.5,24.5) \
            P75(24.5,24.5) P90(24.5,24.5) P95(24.5,24.5) P99(24.5,24.5) P99.5(24.5,24.5) P99.9(24.5,24.5) \
            P100(24.5,24.5)\n";
        assert_eq!(text(&store.lock(), &filter("initialization")), after_one);
        // The next flush had no sample: the interval is empty, as Envoy prints it.
        store.flush_histograms();
        assert_eq!(
            text(&store.lock(), &filter("initialization")),
            "server.initialization_time_ms: P0(nan,24.5) P25(nan,24.5) P50(nan,24.5) P75(nan,24.5) \
             P90(nan,24.5) P95(nan,24.5) P99(nan,24.5) P99.5(nan,24.5) P99.9(nan,24.5) P100(nan,24.5)\n"
        );
        let h = store.histogram("cluster.echo.upstream_cx_length_ms");
        for v in [0, 1, 4] {
            h.record(v);
        }
        store.flush_histograms();
        assert_eq!(
            text(&store.lock(), &filter("echo")),
            "cluster.echo.upstream_cx_length_ms: P0(0,0) P25(0,0) P50(1.05,1.05) P75(4.05,4.05) P90(4.05,4.05) \
             P95(4.05,4.05) P99(4.05,4.05) P99.5(4.05,4.05) P99.9(4.05,4.05) P100(4.05,4.05)\n"
        );
    }

    #[test]
    fn used_only_and_filters_apply_to_histograms() {
        let store = store_with_histograms(1);
        let s = store.lock();
        let used = StatsFilter { used_only: true, ..Default::default() };
        let lines: Vec<String> =
            text(&s, &used).lines().map(|l| l.split(':').next().unwrap_or("").to_string()).collect();
        assert_eq!(lines, ["server.live", "server.initialization_time_ms"]);
        assert_eq!(text(&s, &filter("^cluster")), "cluster.dead.upstream_cx_connect_ms: No recorded values\n");
        let inverted = StatsFilter { invert: true, ..filter("server") };
        assert_eq!(text(&s, &inverted), text(&s, &filter("^cluster")));
        assert!(!prometheus(&s, &used).contains("cluster_upstream_cx_connect_ms"));
    }

    #[test]
    fn json_histograms() {
        let store = store_with_histograms(2);
        let s = store.lock();
        let nulls = [r#"{"cumulative":null,"interval":null}"#; 10].join(",");
        let seen = [r#"{"cumulative":24.5,"interval":null}"#; 10].join(",");
        assert_eq!(
            json(&s, &StatsFilter::default()),
            format!(
                r#"{{"stats":[{{"name":"server.live","value":1}},{{"histograms":{{"supported_quantiles":[0,25,50,75,90,95,99,99.5,99.9,100],"computed_quantiles":[{{"name":"cluster.dead.upstream_cx_connect_ms","values":[{nulls}]}},{{"name":"server.initialization_time_ms","values":[{seen}]}}]}}}}]}}"#
            )
        );
        // No histogram element when no histogram is listed.
        assert_eq!(json(&s, &filter("live")), r#"{"stats":[{"name":"server.live","value":1}]}"#);
        assert_eq!(json(&s, &filter("nomatch")), r#"{"stats":[]}"#);
        let only: serde_json::Value = serde_json::from_str(&json(&s, &filter("initialization"))).expect("json");
        assert_eq!(only["stats"][0]["histograms"]["computed_quantiles"][0]["values"][9]["cumulative"], 24.5);
    }

    #[test]
    fn prometheus_histograms() {
        let store = store_with_histograms(1);
        let echo = store.histogram("cluster.echo.upstream_cx_length_ms");
        for v in [1, 1, 1] {
            echo.record(v);
        }
        store.flush_histograms();
        let p = prometheus(&store.lock(), &StatsFilter::default());
        let bounds = BUCKET_LABELS.iter().chain(&["+Inf"]);
        let mut expected = String::from("# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n");
        expected += "# TYPE envoy_cluster_upstream_cx_connect_ms histogram\n";
        for le in bounds.clone() {
            expected +=
                &format!("envoy_cluster_upstream_cx_connect_ms_bucket{{envoy_cluster_name=\"dead\",le=\"{le}\"}} 0\n");
        }
        expected += "envoy_cluster_upstream_cx_connect_ms_sum{envoy_cluster_name=\"dead\"} 0\n\
                     envoy_cluster_upstream_cx_connect_ms_count{envoy_cluster_name=\"dead\"} 0\n\
                     # TYPE envoy_cluster_upstream_cx_length_ms histogram\n";
        for (le, n) in bounds.clone().zip([0].into_iter().chain([3; 19])) {
            expected +=
                &format!("envoy_cluster_upstream_cx_length_ms_bucket{{envoy_cluster_name=\"echo\",le=\"{le}\"}} {n}\n");
        }
        expected +=
            "envoy_cluster_upstream_cx_length_ms_sum{envoy_cluster_name=\"echo\"} 3.1428571428571432377907513000537\n\
                     envoy_cluster_upstream_cx_length_ms_count{envoy_cluster_name=\"echo\"} 3\n\
                     # TYPE envoy_server_initialization_time_ms histogram\n";
        for (le, n) in bounds.zip([0, 0, 0, 0].into_iter().chain([1; 16])) {
            expected += &format!("envoy_server_initialization_time_ms_bucket{{le=\"{le}\"}} {n}\n");
        }
        expected += "envoy_server_initialization_time_ms_sum{} 24.489795918367345706201376742683\n\
                     envoy_server_initialization_time_ms_count{} 1\n";
        assert_eq!(p, expected);
    }

    #[test]
    fn prometheus_orders_like_envoy() {
        let store = Store::new();
        store.counter("cluster_manager.cluster_added").inc();
        store.counter("cluster.echo.upstream_rq_tx_reset").inc();
        for (worker, addr) in [(0, 47103), (1, 47103), (0, 47104), (1, 47104)] {
            store.counter(&format!("listener.127.0.0.1_{addr}.worker_{worker}.downstream_cx_total")).inc();
        }
        let p = prometheus(&store.lock(), &StatsFilter::default());
        let types: Vec<&str> = p.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        // Families by tag-extracted dotted name: `cluster.` sorts before `cluster_`.
        assert_eq!(
            types,
            [
                "envoy_cluster_upstream_rq_tx_reset counter",
                "envoy_cluster_manager_cluster_added counter",
                "envoy_listener_worker_downstream_cx_total counter"
            ]
        );
        // Series by full stat name, as Envoy lists them.
        let workers: Vec<&str> = p.lines().filter(|l| l.starts_with("envoy_listener_worker")).collect();
        assert_eq!(
            workers,
            [
                "envoy_listener_worker_downstream_cx_total{envoy_worker_id=\"0\",envoy_listener_address=\"127.0.0.1_47103\"} 1",
                "envoy_listener_worker_downstream_cx_total{envoy_worker_id=\"1\",envoy_listener_address=\"127.0.0.1_47103\"} 1",
                "envoy_listener_worker_downstream_cx_total{envoy_worker_id=\"0\",envoy_listener_address=\"127.0.0.1_47104\"} 1",
                "envoy_listener_worker_downstream_cx_total{envoy_worker_id=\"1\",envoy_listener_address=\"127.0.0.1_47104\"} 1",
            ]
        );
    }

    #[test]
    fn prometheus_folds_response_codes_into_one_family() {
        let store = Store::new();
        for name in ["cluster.b.upstream_rq_2xx", "cluster.a.upstream_rq_5xx", "cluster.a.upstream_rq_2xx"] {
            store.counter(name).inc();
        }
        store.counter("cluster.a.upstream_rq_503").inc();
        store.counter("cluster.a.upstream_rq_200").add(2);
        store.counter("cluster.a.upstream_rq_total").add(3);
        let p = prometheus(&store.lock(), &StatsFilter::default());
        assert_eq!(
            p,
            "# TYPE envoy_cluster_upstream_rq counter\n\
             envoy_cluster_upstream_rq{envoy_response_code=\"200\",envoy_cluster_name=\"a\"} 2\n\
             envoy_cluster_upstream_rq{envoy_response_code=\"503\",envoy_cluster_name=\"a\"} 1\n\
             # TYPE envoy_cluster_upstream_rq_total counter\n\
             envoy_cluster_upstream_rq_total{envoy_cluster_name=\"a\"} 3\n\
             # TYPE envoy_cluster_upstream_rq_xx counter\n\
             envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"a\"} 1\n\
             envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"a\"} 1\n\
             envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"b\"} 1\n"
        );
    }

    /// `?histogram_buckets=` and `?type=` in Envoy 1.40's shapes: `B<bound>(interval,
    /// cumulative)` with `%g` bounds in text, `to_chars` bounds in JSON, an unused
    /// histogram still `No recorded values`.
    #[test]
    fn bucket_modes_and_types() {
        let store = Store::new();
        store.counter("cluster.a.upstream_rq_total").inc();
        let h = store.histogram("cluster.a.upstream_cx_length_ms");
        for v in [0, 1, 4, 700_000] {
            h.record(v);
        }
        store.histogram("cluster.a.upstream_rq_time");
        store.flush_histograms();
        let cumulative =
            StatsFilter { types: StatTypes::Histograms, buckets: HistogramBuckets::Cumulative, ..Default::default() };
        assert_eq!(
            text(&store.lock(), &cumulative),
            "cluster.a.upstream_cx_length_ms: B0.5(1,1) B1(2,2) B5(3,3) B10(3,3) B25(3,3) B50(3,3) B100(3,3) \
             B250(3,3) B500(3,3) B1000(3,3) B2500(3,3) B5000(3,3) B10000(3,3) B30000(3,3) B60000(3,3) \
             B300000(3,3) B600000(3,3) B1.8e+06(4,4) B3.6e+06(4,4)\n\
             cluster.a.upstream_rq_time: No recorded values\n"
        );
        let disjoint = StatsFilter { buckets: HistogramBuckets::Disjoint, ..filter("cx_length") };
        let line = text(&store.lock(), &disjoint);
        assert!(line.starts_with("cluster.a.upstream_cx_length_ms: B0.5(1,1) B1(1,1) B5(1,1) B10(0,0) "), "{line}");
        assert!(line.ends_with("B600000(0,0) B1.8e+06(1,1) B3.6e+06(0,0)\n"), "{line}");
        let json = json(&store.lock(), &StatsFilter { buckets: HistogramBuckets::Cumulative, ..filter("cx_length") });
        assert!(
            json.starts_with(
                "{\"stats\":[{\"histograms\":[{\"name\":\"cluster.a.upstream_cx_length_ms\",\"buckets\":[\
                 {\"upper_bound\":0.5,\"interval\":1,\"cumulative\":1},"
            ),
            "{json}"
        );
        assert!(json.contains("{\"upper_bound\":3e+05,\"interval\":3,\"cumulative\":3}"), "{json}");
        let detailed = StatsFilter { buckets: HistogramBuckets::Detailed, ..filter("cx_length") };
        assert_eq!(
            text(&store.lock(), &detailed),
            "cluster.a.upstream_cx_length_ms:\n  totals=0,0:1, 1,0.1:1, 4,0.1:1, 700000,10000:1\n  intervals=0,0:1, 1,0.1:1, \
             4,0.1:1, 700000,10000:1\n  summary=P0(0,0) P25(0,0) P50(1.05,1.05) P75(4.05,4.05) P90(705000,705000) \
             P95(705000,705000) P99(705000,705000) P99.5(705000,705000) P99.9(705000,705000) P100(705000,705000)\n"
        );
        let detailed_json = super::json(&store.lock(), &detailed);
        assert!(
            detailed_json.contains(
                "\"totals\":[{\"lower_bound\":0,\"width\":0,\"count\":1},{\"lower_bound\":1,\"width\":0.1,\"count\":1},"
            ),
            "{detailed_json}"
        );
        let counters = StatsFilter { types: StatTypes::Counters, ..Default::default() };
        assert_eq!(text(&store.lock(), &counters), "cluster.a.upstream_rq_total: 1\n");
        let gauges = StatsFilter { types: StatTypes::Gauges, ..Default::default() };
        assert_eq!(text(&store.lock(), &gauges), "");
    }

    #[test]
    fn bucket_labels_are_the_default_buckets() {
        let labels: Vec<String> = DEFAULT_BUCKETS.iter().map(|&b| general(b, 32)).collect();
        assert_eq!(labels, BUCKET_LABELS);
        for (label, q) in QUANTILE_LABELS.iter().zip(SUPPORTED_QUANTILES) {
            assert_eq!(shortest(q * 100.0), *label);
        }
    }
}
