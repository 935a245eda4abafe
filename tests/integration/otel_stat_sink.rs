//! `envoy.stat_sinks.open_telemetry` seen from an OTLP collector on 127.0.0.1
//! (`shared_collector`): a real Courier, and beside it the real Envoy 1.40 when
//! it is installed (`tools/envoy`), run the same config and the same requests,
//! flushing every 0.3 s; what each exports is reduced to the facts both must
//! share (`Facts`) and compared, and checked against what Envoy 1.40 sent.
//!
//! Differences left, by design or not closed (so not compared):
//! - the resource's `telemetry.sdk.language` and `telemetry.sdk.version`
//!   (Envoy: `cpp`, its build; Courier: `rust`, `courier/<version>`), as the
//!   tracer's;
//! - which stats exist (Envoy has its admin listener's, `cluster.<c>.internal.*`,
//!   `http.async-client.*`, ...) and when a gauge counts as used (Envoy: once
//!   set, even to 0; Courier: once non-zero): only stats both have are compared;
//! - the metrics' and the resource attributes' order (Envoy's is a hash map's);
//! - a cumulative point's `start_time_unix_nano`: Envoy 1.40 sends the sink's
//!   creation in microseconds, Courier in nanoseconds;
//! - histogram samples, which depend on timing (their count and bounds are
//!   compared).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use courier::extensions::common::otlp::metrics::{Data, ExportMetricsServiceRequest, Value};
use envoy_types::pb::opentelemetry::proto::common::v1::any_value::Value as AnyValue;
use envoy_types::pb::opentelemetry::proto::common::v1::KeyValue;
use prost::Message;

use crate::harness::*;
use crate::http2_conformance::Envoy;
use crate::http_util::{http_listener, http_upstream, one_vhost, prefix_route, Client};
use crate::shared_collector::{Call, GrpcCollector};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const WAIT: Duration = Duration::from_secs(10);

/// A listener `web` routing to `app`, and the sink (the `SinkConfig`'s
/// fields) sending to the collector's cluster `otel`.
fn yaml(sink: &str, collector: u16, app: u16) -> String {
    let routes = one_vhost(&prefix_route("/", "app", ""));
    let otel = format!("{}    http2_protocol_options: {{}}\n", static_cluster("otel", &[collector]));
    format!(
        r#"stats_flush_interval: 0.3s
stats_sinks:
- name: envoy.stat_sinks.open_telemetry
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig
{sink}{}"#,
        config(&[http_listener("web", "", &routes, "")], &[static_cluster("app", &[app]), otel])
    )
}

/// The collector's `GrpcService`, plainly.
const GRPC_SERVICE: &str = "    grpc_service: { envoy_grpc: { cluster_name: otel } }\n";

/// Courier, or Envoy, serving `yaml`; kept alive while the test reads.
enum Proxy {
    Courier(Courier),
    Envoy(Envoy),
}

impl Proxy {
    fn web(&self) -> SocketAddr {
        match self {
            Proxy::Courier(c) => c.listener("web"),
            Proxy::Envoy(e) => e.listener("web"),
        }
    }
}

/// The proxies to run: Courier, and Envoy when it is installed.
fn proxies() -> Vec<bool> {
    if Envoy::bin().exists() {
        vec![false, true]
    } else {
        eprintln!("Envoy is not installed (scripts/install-envoy): Courier's exports are checked alone");
        vec![false]
    }
}

fn start(envoy: bool, yaml: &str) -> Proxy {
    if envoy {
        Proxy::Envoy(Envoy::start(yaml))
    } else {
        Proxy::Courier(Courier::start(yaml, 1))
    }
}

fn decode(call: &Call) -> ExportMetricsServiceRequest {
    let message = call.messages.first().expect("a unary call has one message");
    ExportMetricsServiceRequest::decode(message.as_slice()).expect("an ExportMetricsServiceRequest")
}

fn attributes(kvs: &[KeyValue]) -> String {
    let text = |kv: &KeyValue| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    };
    kvs.iter().map(|kv| format!("{}={}", kv.key, text(kv))).collect::<Vec<_>>().join(",")
}

/// Each data point of an export as `name{attributes}` → what it says: its kind,
/// temporality and value (a histogram's count and bounds).
fn points(export: &ExportMetricsServiceRequest) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let temporality = |t: i32| if t == 1 { "delta" } else { "cumulative" };
    for metric in export.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
        let mut add = |attrs: &[KeyValue], what: String| {
            out.insert(format!("{}{{{}}}", metric.name, attributes(attrs)), what);
        };
        match &metric.data {
            Some(Data::Gauge(g)) => {
                g.data_points.iter().for_each(|p| add(&p.attributes, format!("gauge {:?}", p.value)))
            }
            Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| {
                let Some(Value::AsInt(v)) = p.value else { panic!("{}: not an integer", metric.name) };
                let monotonic = if s.is_monotonic { "monotonic" } else { "non-monotonic" };
                add(&p.attributes, format!("sum {monotonic} {} {v}", temporality(s.aggregation_temporality)))
            }),
            Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| {
                assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1, "{}", metric.name);
                assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count, "{}", metric.name);
                let what = format!(
                    "histogram {} count={} bounds={:?}",
                    temporality(h.aggregation_temporality),
                    p.count,
                    p.explicit_bounds
                );
                add(&p.attributes, what)
            }),
            None => panic!("{} has no data", metric.name),
        }
    }
    out
}

/// The resource's attributes, the SDK's language and version left out.
fn resource(export: &ExportMetricsServiceRequest) -> BTreeSet<String> {
    let attrs = export.resource_metrics.iter().filter_map(|r| r.resource.as_ref()).flat_map(|r| &r.attributes);
    attrs
        .filter(|kv| kv.key != "telemetry.sdk.language" && kv.key != "telemetry.sdk.version")
        .map(|kv| attributes(std::slice::from_ref(kv)))
        .collect()
}

/// The gRPC request's headers both send, `x-forwarded-for`'s value (the
/// host's address) left out.
fn headers(call: &Call) -> BTreeMap<String, String> {
    let mut h = call.headers.clone();
    if let Some(v) = h.get_mut("x-forwarded-for") {
        *v = "<host address>".into();
    }
    h
}

const DEFAULT_BOUNDS: &str = "[0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, \
                              10000.0, 30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0]";

/// Tag-extracted names, tags as sorted attributes, cumulative monotonic sums,
/// gauges, histograms over Envoy's default bounds; the resource from
/// `static_config`; `:authority` the configured one and `initial_metadata`
/// sent. Envoy 1.40 exported exactly the `expected` points below for three
/// requests (among the other stats it has), with the same headers.
#[test]
fn counters_gauges_and_histograms_are_exported_cumulatively_with_tags() {
    let app = http_upstream("a");
    // The defaults: emit_tags_as_attributes and use_tag_extracted_name true,
    // no report_counters_as_deltas / report_histograms_as_deltas, no prefix.
    let sink = r#"    grpc_service:
      envoy_grpc: { cluster_name: otel, authority: collector.example }
      timeout: 2s
      initial_metadata:
      - { key: Authorization, value: "Bearer t" }
    resource_detectors:
    - name: envoy.tracers.opentelemetry.resource_detectors.static_config
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.StaticConfigResourceDetectorConfig
        attributes: { service.name: svc, deployment.environment: test }
"#;
    let hcm = "envoy.http_conn_manager_prefix=ingress";
    let expected: BTreeMap<String, String> = [
        (format!("http.downstream_rq_total{{{hcm}}}"), "sum monotonic cumulative 3".to_string()),
        (format!("http.downstream_rq_xx{{{hcm},envoy.response_code_class=2}}"), "sum monotonic cumulative 3".into()),
        (
            format!("listener.http.downstream_rq_xx{{{hcm},envoy.listener_address=127.0.0.1_0,envoy.response_code_class=2}}"),
            "sum monotonic cumulative 3".into(),
        ),
        ("cluster.upstream_rq{envoy.cluster_name=app,envoy.response_code=200}".into(), "sum monotonic cumulative 3".into()),
        ("cluster.upstream_rq_total{envoy.cluster_name=app}".into(), "sum monotonic cumulative 3".into()),
        ("cluster.membership_total{envoy.cluster_name=app}".into(), "gauge Some(AsInt(1))".into()),
        ("server.live{}".into(), "gauge Some(AsInt(1))".into()),
        (format!("http.downstream_rq_time{{{hcm}}}"), format!("histogram cumulative count=3 bounds={DEFAULT_BOUNDS}")),
    ]
    .into_iter()
    .collect();
    let mut seen = Vec::new();
    for envoy in proxies() {
        let collector = GrpcCollector::start();
        let proxy = start(envoy, &yaml(sink, collector.port(), app.port()));
        let mut client = Client::connect(proxy.web());
        for _ in 0..3 {
            assert_eq!(client.get("/").status, 200);
        }
        let done = |calls: &[Call]| {
            calls.last().is_some_and(|c| {
                let p = points(&decode(c));
                expected.keys().all(|k| p.get(k) == expected.get(k))
            })
        };
        let calls = collector.wait(WAIT, done);
        let last = calls.last().expect("a call");
        assert_eq!(last.path, EXPORT_PATH);
        let export = decode(last);
        assert_eq!(export.resource_metrics.len(), 1);
        assert_eq!(export.resource_metrics[0].scope_metrics.len(), 1);
        let points = points(&export);
        for (name, what) in &points {
            let kind = what.split(' ').next().unwrap_or("");
            assert!(!name.ends_with("_rq_200{envoy.cluster_name=app}"), "{name}: the code is a tag");
            assert!(kind != "sum" || what.starts_with("sum monotonic cumulative"), "{name}: {what}");
        }
        let facts = (headers(last), resource(&export), expected.keys().map(|k| points[k].clone()).collect::<Vec<_>>());
        seen.push((envoy, facts));
    }
    let (_, courier) = &seen[0];
    let header_names: Vec<&str> = courier.0.keys().map(String::as_str).collect();
    assert_eq!(
        header_names,
        [":authority", "authorization", "content-type", "te", "x-envoy-internal", "x-forwarded-for"]
    );
    assert_eq!(courier.0[":authority"], "collector.example");
    assert_eq!(courier.0["authorization"], "Bearer t");
    assert_eq!(
        courier.1,
        BTreeSet::from(
            ["deployment.environment=test", "service.name=svc", "telemetry.sdk.name=envoy"].map(String::from)
        )
    );
    if let Some((_, envoy)) = seen.get(1) {
        assert_eq!(courier, envoy, "Courier's export (left) differs from Envoy's (right)");
    }
}

/// `report_counters_as_deltas` and `report_histograms_as_deltas`: a counter's
/// change since the previous flush (one that did not change is left out), a
/// histogram of the interval (one without samples left out), starting at the
/// previous flush; `prefix`, full names (`use_tag_extracted_name: false`) and
/// no attributes (`emit_tags_as_attributes: false`). Envoy 1.40 sent
/// `pre.http.ingress.downstream_rq_total` only in the flushes after requests,
/// and nothing for it once they stopped.
#[test]
fn deltas_prefix_and_full_names_without_attributes() {
    let app = http_upstream("a");
    let fields = format!(
        "{GRPC_SERVICE}    report_counters_as_deltas: true\n    report_histograms_as_deltas: true\n    prefix: pre\n    \
         use_tag_extracted_name: false\n    emit_tags_as_attributes: false\n"
    );
    let total = "pre.http.ingress.downstream_rq_total{}";
    let time = "pre.http.ingress.downstream_rq_time{}";
    let mut seen = Vec::new();
    for envoy in proxies() {
        let collector = GrpcCollector::start();
        let proxy = start(envoy, &yaml(&fields, collector.port(), app.port()));
        let mut client = Client::connect(proxy.web());
        for _ in 0..3 {
            assert_eq!(client.get("/").status, 200);
        }
        let sum = |calls: &[Call], name: &str| -> u64 {
            calls
                .iter()
                .filter_map(|c| points(&decode(c)).get(name).cloned())
                .map(|w| w.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
                .sum()
        };
        let histogram_count = |calls: &[Call]| -> u64 {
            let counts = calls.iter().filter_map(|c| points(&decode(c)).get(time).cloned());
            counts.filter_map(|w| w.split("count=").nth(1)?.split(' ').next()?.parse::<u64>().ok()).sum()
        };
        let calls = collector.wait(WAIT, |c| sum(c, total) == 3 && histogram_count(c) == 3);
        // Two more flushes with no request: neither sends the counter or the histogram.
        let after = calls.len();
        let calls = collector.wait(WAIT, |c| c.len() >= after + 2);
        let mut quiet = BTreeSet::new();
        for call in &calls[after..] {
            let points = points(&decode(call));
            quiet.insert((points.contains_key(total), points.contains_key(time)));
            for (name, what) in &points {
                assert!(name.starts_with("pre.") && name.ends_with("{}"), "{name}");
                assert!(!what.starts_with("sum") || what.starts_with("sum monotonic delta"), "{name}: {what}");
                assert!(!what.ends_with("delta 0"), "{name}: an unchanged counter is left out");
            }
        }
        // A delta starts where the previous flush ended.
        let (a, b) = (decode(&calls[after]), decode(&calls[after + 1]));
        let time_of = |e: &ExportMetricsServiceRequest, start: bool| {
            let mut metrics = e.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics);
            metrics.find_map(|m| match &m.data {
                Some(Data::Sum(s)) => {
                    s.data_points.first().map(|p| if start { p.start_time_unix_nano } else { p.time_unix_nano })
                }
                _ => None,
            })
        };
        if let (Some(end), Some(start)) = (time_of(&a, false), time_of(&b, true)) {
            assert_eq!(start, end, "a delta starts at the previous flush");
        }
        let gauge = points(&decode(&calls[after])).get("pre.server.live{}").cloned();
        seen.push((envoy, (quiet, gauge)));
    }
    let (_, courier) = &seen[0];
    assert_eq!(courier.0, BTreeSet::from([(false, false)]));
    assert_eq!(courier.1.as_deref(), Some("gauge Some(AsInt(1))"));
    if let Some((_, envoy)) = seen.get(1) {
        assert_eq!(courier, envoy, "Courier's export (left) differs from Envoy's (right)");
    }
}

/// The `environment` detector reads `OTEL_RESOURCE_ATTRIBUTES` (`k=v` pairs);
/// a later detector's attribute replaces an earlier one's.
#[test]
fn the_environment_detector_reads_otel_resource_attributes() {
    let app = http_upstream("a");
    let detectors = r#"    grpc_service: { envoy_grpc: { cluster_name: otel } }
    resource_detectors:
    - name: envoy.tracers.opentelemetry.resource_detectors.environment
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig
    - name: envoy.tracers.opentelemetry.resource_detectors.static_config
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.StaticConfigResourceDetectorConfig
        attributes: { team: static }
"#;
    let collector = GrpcCollector::start();
    let env = [("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-env,team=env,broken")];
    let _courier = Courier::start_with(&yaml(detectors, collector.port(), app.port()), 1, &[], &env);
    let calls = collector.wait(WAIT, |c| !c.is_empty());
    assert_eq!(
        resource(&decode(&calls[0])),
        BTreeSet::from(["service.name=from-env", "team=static", "telemetry.sdk.name=envoy"].map(String::from))
    );
}

/// `grpc_service.timeout` bounds no export, as in Envoy 1.40: with a 0.1 s
/// timeout and a collector that never answers, the exports of the first
/// flushes are all still active three flushes (0.9 s) in.
#[test]
fn the_grpc_timeout_does_not_bound_an_export() {
    let app = http_upstream("a");
    let sink = "    grpc_service: { envoy_grpc: { cluster_name: otel }, timeout: 0.1s }\n";
    for envoy in proxies() {
        let collector = GrpcCollector::never_answering();
        let proxy = start(envoy, &yaml(sink, collector.port(), app.port()));
        collector.wait(WAIT, |c| c.len() >= 4);
        let active = match &proxy {
            Proxy::Courier(c) => c.stat("cluster.otel.upstream_rq_active").unwrap_or(0),
            Proxy::Envoy(e) => {
                let (_, body) = http_request(e.admin, "GET", "/stats?filter=^cluster.otel.upstream_rq_active$");
                body.trim().rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0)
            }
        };
        assert!(active >= 3, "envoy={envoy}: {active} exports active");
    }
}

/// What Courier does not implement is refused at start-up, naming the field.
#[test]
fn unsupported_sink_fields_are_refused_by_name() {
    let refused = |fields: &str, expected: &str| {
        let (ok, out) = validate(&yaml(&format!("{GRPC_SERVICE}{fields}"), 9, 9));
        assert!(!ok, "accepted: {fields}");
        assert!(out.contains(expected), "{fields}: {out}");
    };
    refused(
        "    custom_metric_conversions: { matcher_list: { matchers: [] } }\n",
        "stats_sinks[0].typed_config.custom_metric_conversions",
    );
    refused("    max_data_points_per_request: 10\n", "stats_sinks[0].typed_config.max_data_points_per_request");
    refused(
        "    resource_detectors:\n    - name: envoy.tracers.opentelemetry.resource_detectors.dynatrace\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.DynatraceResourceDetectorConfig\n",
        "stats_sinks[0].typed_config.resource_detectors[0].typed_config",
    );
    let (ok, out) = validate(&yaml(&GRPC_SERVICE.replace("otel", "nowhere"), 9, 9));
    assert!(!ok && out.contains("stats_sinks[0].typed_config.grpc_service.envoy_grpc.cluster_name"), "{out}");
}
