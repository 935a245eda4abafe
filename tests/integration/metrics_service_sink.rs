//! `envoy.stat_sinks.metrics_service` seen from the service
//! (`shared_collector`, on 127.0.0.1): a real Courier, and beside it the real
//! Envoy 1.40 when it is installed, run the same config and requests,
//! flushing every 0.3 s, and what each streams is reduced to the facts both
//! must share and compared (as `otel_stat_sink` does; the same differences
//! are left out: which stats exist, when a gauge counts as used, the order of
//! families, the histograms' timing-dependent samples).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::service::metrics::v3::StreamMetricsMessage;
use envoy_types::pb::io::prometheus::client::MetricType;
use prost::Message;

use crate::harness::*;
use crate::http2_conformance::Envoy;
use crate::http_util::{http_listener, http_upstream, one_vhost, prefix_route, Client};
use crate::shared_collector::{Call, GrpcCollector};

const STREAM_PATH: &str = "/envoy.service.metrics.v3.MetricsService/StreamMetrics";
const WAIT: Duration = Duration::from_secs(10);

/// A listener `web` routing to `app`, the node `node1`, and the sink (its
/// `MetricsServiceConfig` fields after `transport_api_version`) streaming to
/// the service's cluster `ms`.
fn yaml(sink: &str, collector: u16, app: u16) -> String {
    let routes = one_vhost(&prefix_route("/", "app", ""));
    let ms = format!("{}    http2_protocol_options: {{}}\n", static_cluster("ms", &[collector]));
    format!(
        r#"node: {{ id: node1, cluster: c1 }}
stats_flush_interval: 0.3s
stats_sinks:
- name: envoy.stat_sinks.metrics_service
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig
    transport_api_version: V3
{sink}{}"#,
        config(&[http_listener("web", "", &routes, "")], &[static_cluster("app", &[app]), ms])
    )
}

/// Courier, or Envoy when installed: the listener's address, and the proxy
/// kept alive by the box.
fn start(envoy: bool, yaml: &str) -> (SocketAddr, Box<dyn std::any::Any>) {
    if envoy {
        let e = Envoy::start(yaml);
        (e.listener("web"), Box::new(e))
    } else {
        let c = Courier::start(yaml, 1);
        (c.listener("web"), Box::new(c))
    }
}

fn proxies() -> Vec<bool> {
    if Envoy::bin().exists() {
        vec![false, true]
    } else {
        eprintln!("Envoy is not installed (scripts/install-envoy): Courier's stream is checked alone");
        vec![false]
    }
}

fn messages(call: &Call) -> Vec<StreamMetricsMessage> {
    call.messages.iter().map(|m| StreamMetricsMessage::decode(m.as_slice()).expect("a StreamMetricsMessage")).collect()
}

/// Each family as `name{labels}` (and `:summary` or `:histogram`) → its type
/// and value (a summary's or histogram's count and bounds).
fn families(message: &StreamMetricsMessage) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for f in &message.envoy_metrics {
        assert_eq!(f.metric.len(), 1, "one metric per family, as Envoy's");
        let m = &f.metric[0];
        assert!(m.timestamp_ms() > 0, "{}: stamped", f.name());
        let labels: Vec<String> = m.label.iter().map(|l| format!("{}={}", l.name(), l.value())).collect();
        let what = match f.r#type() {
            MetricType::Counter => format!("counter {}", m.counter.as_ref().map_or(-1.0, |c| c.value())),
            MetricType::Gauge => format!("gauge {}", m.gauge.as_ref().map_or(-1.0, |g| g.value())),
            MetricType::Summary => {
                let s = m.summary.as_ref().expect("a summary");
                let quantiles: Vec<f64> = s.quantile.iter().map(|q| q.quantile()).collect();
                format!("summary n={} quantiles={quantiles:?}", s.sample_count())
            }
            MetricType::Histogram => {
                let h = m.histogram.as_ref().expect("a histogram");
                let bounds: Vec<f64> = h.bucket.iter().map(|b| b.upper_bound()).collect();
                format!("histogram n={} bounds={bounds:?}", h.sample_count())
            }
            other => format!("{other:?}"),
        };
        // A histogram's summary and histogram families share its name.
        let suffix = match f.r#type() {
            MetricType::Summary => ":summary",
            MetricType::Histogram => ":histogram",
            MetricType::Counter | MetricType::Gauge | MetricType::Untyped | MetricType::GaugeHistogram => "",
        };
        out.insert(format!("{}{{{}}}{suffix}", f.name(), labels.join(",")), what);
    }
    out
}

/// The count of samples over every message of `key` (a summary or histogram).
fn samples(call: &Call, key: &str) -> u64 {
    let counts = messages(call).into_iter().filter_map(|m| families(&m).get(key).cloned());
    counts.filter_map(|w| w.split("n=").nth(1)?.split(' ').next()?.parse::<u64>().ok()).sum()
}

fn value(family: Option<&String>) -> f64 {
    family.and_then(|w| w.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

const BOUNDS: &str = "[0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, \
                      30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0]";

/// One stream, its first message alone carrying the identifier (the node);
/// with `emit_tags_as_labels` families named by tag-extracted name, the tags
/// as labels in Envoy's order; counters cumulative; per histogram a summary
/// (Envoy's ten quantiles) and a histogram (Envoy's bounds) of the interval.
/// Envoy 1.40 streamed exactly the `expected` families below.
#[test]
fn one_stream_identified_once_with_labelled_families() {
    let app = http_upstream("a");
    let sink = "    grpc_service: { envoy_grpc: { cluster_name: ms } }\n    emit_tags_as_labels: true\n";
    let quantiles = "[0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0]";
    let expected: BTreeMap<String, String> = [
        ("http.downstream_rq_total{envoy.http_conn_manager_prefix=ingress}", "counter 3".to_string()),
        ("cluster.upstream_rq{envoy.response_code=200,envoy.cluster_name=app}", "counter 3".into()),
        (
            "listener.http.downstream_rq_xx{envoy.response_code_class=2,envoy.http_conn_manager_prefix=ingress,envoy.listener_address=127.0.0.1_0}",
            "counter 3".into(),
        ),
        ("cluster.membership_total{envoy.cluster_name=app}", "gauge 1".into()),
        ("server.live{}", "gauge 1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let time = "http.downstream_rq_time{envoy.http_conn_manager_prefix=ingress}";
    let mut seen = Vec::new();
    for envoy in proxies() {
        let collector = GrpcCollector::start();
        let (web, _proxy) = start(envoy, &yaml(sink, collector.port(), app.port()));
        let mut client = Client::connect(web);
        for _ in 0..3 {
            assert_eq!(client.get("/").status, 200);
        }
        let done = |calls: &[Call]| {
            calls.first().is_some_and(|c| {
                let last = messages(c).last().map(families).unwrap_or_default();
                expected.keys().all(|k| last.get(k) == expected.get(k)) && samples(c, &format!("{time}:histogram")) == 3
            })
        };
        let calls = collector.wait(WAIT, done);
        assert_eq!(calls.len(), 1, "one stream");
        let stream = &calls[0];
        assert_eq!(stream.path, STREAM_PATH);
        let all = messages(stream);
        let node = all[0].identifier.as_ref().and_then(|i| i.node.as_ref()).expect("the first message's node");
        assert_eq!((node.id.as_str(), node.cluster.as_str()), ("node1", "c1"));
        assert!(all[1..].iter().all(|m| m.identifier.is_none()), "only the first message says who sends");
        assert_eq!(samples(stream, &format!("{time}:summary")), 3);
        let last = families(all.last().expect("a message"));
        let mut kinds = BTreeSet::new();
        for m in &all {
            for f in &m.envoy_metrics {
                if f.name() == "http.downstream_rq_time" {
                    kinds.insert(f.r#type());
                }
            }
        }
        let mut h = stream.headers.clone();
        h.insert("x-forwarded-for".into(), "<host address>".into());
        let summary_quantiles = all
            .iter()
            .flat_map(|m| m.envoy_metrics.iter())
            .find(|f| f.r#type() == MetricType::Summary)
            .map(|f| families(&StreamMetricsMessage { identifier: None, envoy_metrics: vec![f.clone()] }));
        let facts = (
            h,
            expected.keys().map(|k| last[k].clone()).collect::<Vec<_>>(),
            kinds,
            summary_quantiles.map(|f| f.values().any(|w| w.ends_with(&format!("quantiles={quantiles}")))),
        );
        let histogram_bounds = all.iter().find_map(|m| families(m).get(&format!("{time}:histogram")).cloned());
        assert_eq!(histogram_bounds.map(|w| w.ends_with(&format!("bounds={BOUNDS}"))), Some(true));
        seen.push(facts);
    }
    let courier = &seen[0];
    assert_eq!(courier.0[":authority"], "ms");
    assert_eq!(courier.2, BTreeSet::from([MetricType::Summary, MetricType::Histogram]));
    assert_eq!(courier.3, Some(true));
    if let Some(envoy) = seen.get(1) {
        assert_eq!(courier, envoy, "Courier's stream (left) differs from Envoy's (right)");
    }
}

/// `report_counters_as_deltas`: each message has the change since the
/// previous flush (zeros included); without `emit_tags_as_labels` families
/// have the full name and no label; `histogram_emit_mode: HISTOGRAM` sends no
/// summary. As Envoy 1.40 streamed.
#[test]
fn deltas_full_names_and_histograms_only() {
    let app = http_upstream("a");
    let sink = "    grpc_service: { envoy_grpc: { cluster_name: ms } }\n    report_counters_as_deltas: true\n    \
                histogram_emit_mode: HISTOGRAM\n";
    let total = "http.ingress.downstream_rq_total{}";
    let mut seen = Vec::new();
    for envoy in proxies() {
        let collector = GrpcCollector::start();
        let (web, _proxy) = start(envoy, &yaml(sink, collector.port(), app.port()));
        let mut client = Client::connect(web);
        for _ in 0..3 {
            assert_eq!(client.get("/").status, 200);
        }
        let sum = |c: &Call| messages(c).iter().map(|m| value(families(m).get(total))).sum::<f64>();
        let calls = collector.wait(WAIT, |c| c.first().is_some_and(|c| sum(c) == 3.0));
        let after = calls[0].messages.len();
        let calls = collector.wait(WAIT, |c| c.first().is_some_and(|c| c.messages.len() >= after + 2));
        let all = messages(&calls[0]);
        let quiet: Vec<String> = all[after..].iter().filter_map(|m| families(m).get(total).cloned()).collect();
        let mut kinds = BTreeSet::new();
        for m in &all {
            for f in &m.envoy_metrics {
                assert!(f.metric[0].label.is_empty(), "{}: no labels", f.name());
                kinds.insert(f.r#type());
            }
        }
        seen.push((quiet, kinds));
    }
    let courier = &seen[0];
    assert_eq!(courier.0, ["counter 0", "counter 0"], "a used counter's zero delta is sent");
    assert!(!courier.1.contains(&MetricType::Summary), "{:?}", courier.1);
    if let Some(envoy) = seen.get(1) {
        assert_eq!(courier, envoy, "Courier's stream (left) differs from Envoy's (right)");
    }
}

/// What Courier does not implement is refused at start-up, naming the field.
#[test]
fn unsupported_metrics_service_fields_are_refused_by_name() {
    let grpc = "    grpc_service: { envoy_grpc: { cluster_name: ms } }\n";
    let (ok, out) = validate(&yaml(&format!("{grpc}    batch_size: 10\n"), 9, 9));
    assert!(!ok && out.contains("stats_sinks[0].typed_config.batch_size"), "{out}");
    let (ok, out) = validate(&yaml(grpc, 9, 9).replace("transport_api_version: V3", "transport_api_version: AUTO"));
    assert!(!ok && out.contains("stats_sinks[0].typed_config.transport_api_version"), "{out}");
}

/// A service that ends the stream (here after two messages) gets a new one
/// at the next flush, its first message carrying the identifier again. Envoy
/// 1.40 did the same, losing no flush between the streams (the messages kept
/// their 0.3 s spacing; so did Courier's, which stops a stream's upload as
/// soon as the service resets it).
#[test]
fn a_stream_the_service_ends_is_opened_again_with_the_identifier() {
    let app = http_upstream("a");
    let sink = "    grpc_service: { envoy_grpc: { cluster_name: ms } }\n";
    let mut seen = Vec::new();
    for envoy in proxies() {
        let collector = GrpcCollector::ending_streams_after(2);
        let (_web, _proxy) = start(envoy, &yaml(sink, collector.port(), app.port()));
        let calls = collector.wait(WAIT, |c| c.len() >= 3);
        let identified: Vec<Vec<bool>> =
            calls[..3].iter().map(|c| messages(c).iter().map(|m| m.identifier.is_some()).collect()).collect();
        seen.push(identified[..2].to_vec());
        assert!(identified[2].first() == Some(&true), "{identified:?}");
    }
    assert_eq!(seen[0], [[true, false], [true, false]]);
    if let Some(envoy) = seen.get(1) {
        assert_eq!(&seen[0], envoy, "Courier's streams (left) differ from Envoy's (right)");
    }
}
