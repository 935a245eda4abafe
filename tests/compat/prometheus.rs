//! The `admin.prometheus` check (`prometheus: true` under a case's `admin:`): a
//! scrape of `/stats/prometheus` from each proxy after the requests, compared family
//! by family, so that a dashboard built on Envoy's metrics finds Courier's.
//!
//! For every family Courier exports there is one check `admin.prometheus.<family>`:
//! Envoy must export the family too, with the same `# TYPE`, and every one of
//! Courier's series must be one of Envoy's, by label names in order and label values
//! (ports made placeholders by the runner; the values of `envoy_response_code` and
//! `envoy_response_code_class` are `*`, since which codes have a series depends on
//! which responses were counted, not on naming). Families only Envoy exports, and
//! series only Envoy has, are fine: Courier has fewer stats.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::compare::Check;

/// Labels whose values say which responses were counted, not how a stat is named.
const VOLATILE_LABELS: [&str; 2] = ["envoy_response_code", "envoy_response_code_class"];

/// One scrape: family name → its type and its series.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Families(BTreeMap<String, Family>);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Family {
    kind: String,
    /// Each series as `{name="value",...}` (volatile values as `*`, `le` left out).
    series: BTreeSet<String>,
}

/// Scrapes with `get` until two scrapes in a row have the same families and series
/// (stats are created as responses are counted, just after the client has its
/// response), at most 2 s.
pub fn scrape(get: impl Fn() -> String) -> Families {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = parse(&get());
    loop {
        std::thread::sleep(Duration::from_millis(60));
        let now = parse(&get());
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Parses a text exposition: `# TYPE <family> <kind>` lines, each followed by its
/// samples `<family>[_bucket|_sum|_count]{labels} value`.
pub fn parse(text: &str) -> Families {
    let mut families = BTreeMap::new();
    let mut current: Option<(String, Family)> = None;
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let (name, kind) = decl.split_once(' ').unwrap_or((decl, ""));
            if let Some((name, family)) = current.take() {
                families.insert(name, family);
            }
            current = Some((name.to_string(), Family { kind: kind.to_string(), series: BTreeSet::new() }));
        } else if let Some((_, family)) = current.as_mut().filter(|_| !line.starts_with('#')) {
            let sample = line.rsplit_once(' ').map_or(line, |(s, _)| s);
            let labels = sample.split_once('{').map_or("", |(_, l)| l.strip_suffix('}').unwrap_or(l));
            family.series.insert(series_key(labels));
        }
    }
    if let Some((name, family)) = current {
        families.insert(name, family);
    }
    Families(families)
}

/// `{a="1",b="*"}` for the labels `a="1",b="2",le="5"`: `le` dropped, volatile
/// values starred.
fn series_key(labels: &str) -> String {
    let pairs: Vec<String> = label_pairs(labels)
        .into_iter()
        .filter(|(k, _)| k != "le")
        .map(|(k, v)| if VOLATILE_LABELS.contains(&k.as_str()) { format!("{k}=*") } else { format!("{k}=\"{v}\"") })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// `name="value"` pairs, values unescaped.
fn label_pairs(labels: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = labels;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next().map_or('\\', |(_, e)| if e == 'n' { '\n' } else { e })),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((name.trim_start_matches(',').to_string(), value));
        rest = &after[end..];
    }
    out
}

/// One `admin.prometheus.<family>` check per family Courier exports.
pub fn checks(envoy: &Families, courier: &Families) -> Vec<Check> {
    courier
        .0
        .iter()
        .map(|(name, c)| {
            let e = envoy.0.get(name);
            let agree = e.is_some_and(|e| e.kind == c.kind && c.series.is_subset(&e.series));
            let show = |f: &Family, only: Option<&BTreeSet<String>>| {
                // On a difference, Courier's side lists just the series Envoy lacks.
                let series: Vec<&str> =
                    f.series.iter().filter(|s| only.is_none_or(|o| !o.contains(*s))).map(String::as_str).collect();
                format!("{} {}", f.kind, series.join(" "))
            };
            let courier_shown = match e {
                Some(e) if !agree && e.kind == c.kind => show(c, Some(&e.series)),
                _ => show(c, None),
            };
            Check {
                name: format!("admin.prometheus.{name}"),
                envoy: e.map_or_else(|| "<absent>".to_string(), |e| show(e, None)),
                courier: courier_shown,
                agree,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVOY: &str = "# TYPE envoy_cluster_upstream_rq_xx counter\n\
        envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"web\"} 3\n\
        # TYPE envoy_server_live gauge\n\
        envoy_server_live{} 1\n\
        # TYPE envoy_cluster_upstream_rq_time histogram\n\
        envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"0.5\"} 0\n\
        envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"web\"} 0\n\
        envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"web\"} 0\n";

    #[test]
    fn parses_families_and_series() {
        let f = parse(ENVOY);
        let xx = &f.0["envoy_cluster_upstream_rq_xx"];
        assert_eq!(xx.kind, "counter");
        assert_eq!(xx.series.iter().collect::<Vec<_>>(), [r#"{envoy_response_code_class=*,envoy_cluster_name="web"}"#]);
        assert_eq!(f.0["envoy_server_live"].series.iter().collect::<Vec<_>>(), ["{}"]);
        assert_eq!(f.0["envoy_cluster_upstream_rq_time"].series.len(), 1);
        assert_eq!(label_pairs(r#"a="x\"y",b="""#), [("a".into(), "x\"y".into()), ("b".into(), String::new())]);
    }

    #[test]
    fn courier_families_must_be_envoys() {
        let envoy = parse(ENVOY);
        let courier = parse(
            "# TYPE envoy_cluster_upstream_rq_xx counter\n\
             envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"web\"} 1\n\
             # TYPE envoy_cluster_upstream_rq_2xx counter\n\
             envoy_cluster_upstream_rq_2xx{envoy_cluster_name=\"web\"} 1\n\
             # TYPE envoy_server_live counter\n\
             envoy_server_live{} 1\n",
        );
        let result: Vec<(String, bool)> = checks(&envoy, &courier).into_iter().map(|c| (c.name, c.agree)).collect();
        assert_eq!(
            result,
            [
                ("admin.prometheus.envoy_cluster_upstream_rq_2xx".to_string(), false),
                ("admin.prometheus.envoy_cluster_upstream_rq_xx".to_string(), true),
                ("admin.prometheus.envoy_server_live".to_string(), false),
            ]
        );
        let reordered = parse(
            "# TYPE envoy_cluster_upstream_rq_xx counter\n\
             envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"web\",envoy_response_code_class=\"2\"} 1\n",
        );
        assert!(!checks(&envoy, &reordered)[0].agree, "label order is part of the series");
    }
}
