//! HCM tracing with the Zipkin provider, seen from the collector: a real Courier
//! process posts its spans to an upstream this test runs, and the spans must be
//! those the service's requests belong to, in the shape Envoy 1.40 sends (checked
//! by hand against Envoy: kinds, `shared`, the closing annotation, the local
//! endpoint, the tags). What the service receives is compared with Envoy by the
//! compat case `tracing_zipkin`.

use std::io::{BufReader, Write};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::http_util::{http_listener, http_upstream, indent, read_request, Client};
use crate::shared_net::Parsed;

/// A collector that answers every POST 202, as Zipkin does, and hands it over.
fn collector() -> (Upstream, Receiver<Parsed>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = Upstream::start(move |stream| {
        let Ok(mut writer) = stream.try_clone() else { return };
        let mut reader = BufReader::new(stream);
        while let Some(request) = read_request(&mut reader) {
            let _ = tx.lock().map(|tx| tx.send(request));
            if writer.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").is_err() {
                return;
            }
        }
    });
    (upstream, rx)
}

fn routes() -> String {
    "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/fail\" }\n    direct_response: { status: 503 }\n  - match: { prefix: \"/\" }\n    route: { cluster: app }\n    decorator: { operation: checkout }\n    tracing: { custom_tags: [{ tag: route-tag, literal: { value: r } }, { tag: team, literal: { value: route-team } }] }\n".to_string()
}

fn start(tracing: &str, service: u16, collector: u16) -> Courier {
    let listener = http_listener("web", &indent(tracing, 10), &indent(&routes(), 12), "");
    let clusters = [static_cluster("app", &[service]), static_cluster("zipkin", &[collector])];
    let yaml = format!(
        "node: {{ id: node-a, cluster: front, locality: {{ zone: z1 }} }}\nlayered_runtime:\n  layers:\n  - name: static\n    static_layer: {{ tracing.zipkin.min_flush_spans: 3 }}\n{}",
        config(&[listener], &clusters)
    );
    Courier::start_with(&yaml, 1, &[], &[("COURIER_TRACING_TEST_HOME", "/home/x")])
}

#[test]
fn spans_reach_the_collector_in_envoys_shape_with_the_propagated_ids() {
    let service = http_upstream("svc");
    const TRACING: &str = r#"tracing:
  client_sampling: { value: 100 }
  random_sampling: { value: 100 }
  overall_sampling: { value: 100 }
  max_path_tag_length: 8
  custom_tags:
  - { tag: team, literal: { value: payments } }
  - { tag: home, environment: { name: COURIER_TRACING_TEST_HOME, default_value: nowhere } }
  - { tag: region, environment: { name: COURIER_TRACING_TEST_UNSET, default_value: eu } }
  - { tag: tenant, request_header: { name: x-tenant, default_value: unknown } }
  provider:
    name: envoy.tracers.zipkin
    typed_config:
      "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
      collector_cluster: zipkin
      collector_endpoint: "/api/v2/spans"
      collector_endpoint_version: HTTP_JSON
      collector_hostname: collector.example
"#;
    let (zipkin, posts) = collector();
    let courier = start(TRACING, service.port(), zipkin.port());
    let addr = courier.listener("web");

    // A caller's trace, joined (shared span context: the caller's span id).
    let joined = Client::connect(addr).request(
        "GET",
        "/joined/long/path",
        &[
            ("x-b3-traceid", "0000000000000001"),
            ("x-b3-spanid", "0000000000000002"),
            ("x-b3-sampled", "1"),
            ("x-tenant", "acme"),
        ],
        b"",
    );
    assert_eq!(joined.status, 200);
    assert_eq!(joined.header("x-envoy-decorator-operation"), Some("checkout"));
    let seen = joined.seen();
    assert_eq!(
        (seen.header("x-b3-traceid"), seen.header("x-b3-spanid")),
        (Some("0000000000000001"), Some("0000000000000002"))
    );
    // A new trace: its ids are the span's.
    let new = Client::connect(addr).get("/new");
    let new_trace = new.seen().header("x-b3-traceid").expect("a new trace id").to_string();
    assert_eq!(new.seen().header("x-b3-spanid"), Some(new_trace.as_str()));
    assert_eq!(new.seen().header("x-b3-sampled"), Some("1"));
    assert_eq!(&new.seen().header("x-request-id").expect("request id")[14..15], "9", "sampled, in the request id");
    // A local reply: a span too, marked as an error.
    assert_eq!(Client::connect(addr).get("/fail").status, 503);

    // Three spans: `tracing.zipkin.min_flush_spans` (runtime) makes them one batch.
    let post = posts.recv_timeout(Duration::from_secs(10)).expect("the collector got spans");
    assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/api/v2/spans"));
    assert_eq!(post.headers.get("host").map(String::as_str), Some("collector.example"));
    assert_eq!(post.headers.get("content-type").map(String::as_str), Some("application/json"));
    let spans: Vec<Value> = serde_json::from_slice(&post.body).expect("a JSON array of spans");
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let span =
        |trace: &str| spans.iter().find(|s| s["traceId"] == trace).unwrap_or_else(|| panic!("{trace}: {spans:#?}"));

    let j = span("0000000000000001");
    assert_eq!(j["id"], "0000000000000002");
    assert_eq!(j["parentId"], Value::Null);
    assert_eq!(
        (&j["kind"], &j["shared"], &j["name"]),
        (&Value::from("SERVER"), &Value::from(true), &Value::from("checkout"))
    );
    assert_eq!(j["localEndpoint"]["serviceName"], "front");
    assert_eq!(j["localEndpoint"]["port"], 0);
    assert_eq!(j["annotations"][0]["value"], "ss");
    let duration = j["duration"].as_u64().expect("duration");
    assert_eq!(j["annotations"][0]["timestamp"].as_u64(), j["timestamp"].as_u64().map(|t| t + duration));
    let tags = &j["tags"];
    for (tag, value) in [
        ("component", "proxy"),
        ("node_id", "node-a"),
        ("zone", "z1"),
        ("http.method", "GET"),
        // `max_path_tag_length: 8` cuts the path.
        ("http.url", "http://example.com/joined/"),
        ("http.status_code", "200"),
        ("http.protocol", "HTTP/1.1"),
        ("upstream_cluster", "app"),
        ("upstream_cluster.name", "app"),
        ("response_flags", "-"),
        ("downstream_cluster", "-"),
        ("peer.address", "127.0.0.1"),
        ("request_size", "0"),
        // The route's tracing custom_tags come after the connection manager's.
        ("team", "route-team"),
        ("route-tag", "r"),
        ("home", "/home/x"),
        ("region", "eu"),
        ("tenant", "acme"),
    ] {
        assert_eq!(tags[tag], value, "{tag}: {tags:#}");
    }
    assert_eq!(tags["guid:x-request-id"].as_str(), seen.header("x-request-id"));
    assert_eq!(tags["error"], Value::Null);

    let n = span(&new_trace);
    assert_eq!(n["id"].as_str(), Some(new_trace.as_str()));
    assert_eq!(n["tags"]["tenant"], "unknown");
    assert_eq!(n["tags"]["http.url"], "http://example.com/new");

    let failed = spans.iter().find(|s| s["tags"]["http.status_code"] == "503").expect("the 503's span");
    assert_eq!(failed["tags"]["error"], "true");
    assert_eq!(failed["name"], "example.com", "no decorator: the host names the span");
    assert_eq!(failed["tags"]["upstream_cluster"], Value::Null);
    assert_eq!((&failed["tags"]["team"], &failed["tags"]["route-tag"]), (&Value::from("payments"), &Value::Null));

    courier.wait_stat("tracing.zipkin.reports_sent", |v| v == 1);
    assert_eq!(courier.stat("tracing.zipkin.spans_sent"), Some(3));
    assert_eq!(courier.stat("http.ingress.tracing.random_sampling"), Some(3));
}

#[test]
fn other_tracers_and_unimplemented_options_are_refused_by_name() {
    let with = |tracing: &str| {
        let listener = http_listener("web", &indent(tracing, 10), &indent(&routes(), 12), "");
        validate(&config(&[listener], &[static_cluster("app", &[1]), static_cluster("zipkin", &[1])]))
    };
    let zipkin = |extra: &str| {
        format!("tracing:\n  provider:\n    name: envoy.tracers.zipkin\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig\n      collector_cluster: zipkin\n      collector_endpoint: /api/v2/spans\n{extra}")
    };
    assert!(with(&zipkin("      collector_endpoint_version: HTTP_JSON\n")).0);
    let (ok, out) = with(&zipkin("      collector_endpoint_version: HTTP_PROTO\n"));
    assert!(!ok && out.contains("collector_endpoint_version: HTTP_PROTO is not supported"), "{out}");
    let (ok, out) = with(&zipkin("      collector_endpoint_version: HTTP_JSON\n      split_spans_for_request: true\n"));
    assert!(!ok && out.contains("split_spans_for_request"), "{out}");
    let (ok, out) = with(&format!("{}  verbose: true\n", zipkin("      collector_endpoint_version: HTTP_JSON\n")));
    assert!(!ok && out.contains("'verbose'"), "{out}");
    let (ok, out) = with(
        &zipkin("      collector_endpoint_version: HTTP_JSON\n")
            .replace("collector_cluster: zipkin", "collector_cluster: nope"),
    );
    assert!(!ok && out.contains("unknown cluster 'nope'"), "{out}");
    let otel = "tracing:\n  provider:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      service_name: s\n";
    let (ok, out) = with(otel);
    assert!(!ok && out.contains("OpenTelemetryConfig"), "{out}");
}

/// A collector cluster configured for HTTP/2 gets the spans over HTTP/2, as
/// Envoy's async client uses the cluster's protocol; its 200 (not Zipkin's 202)
/// counts as a dropped report, as in Envoy.
#[test]
fn spans_go_to_an_http2_collector_over_http2() {
    let service = http_upstream("svc");
    let collector = crate::shared_net::h2c_upstream("collector");
    let tracing = "tracing:\n  provider:\n    name: envoy.tracers.zipkin\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig\n      collector_cluster: zipkin\n      collector_endpoint: /api/v2/spans\n      collector_endpoint_version: HTTP_JSON\n";
    let listener = http_listener("web", &indent(tracing, 10), &indent(&routes(), 12), "");
    let h2_cluster = format!("{}    http2_protocol_options: {{}}\n", static_cluster("zipkin", &[collector.port()]));
    let yaml = format!(
        "layered_runtime:\n  layers:\n  - name: static\n    static_layer: {{ tracing.zipkin.min_flush_spans: 1 }}\n{}",
        config(&[listener], &[static_cluster("app", &[service.port()]), h2_cluster])
    );
    let courier = Courier::start(&yaml, 1);
    assert_eq!(Client::connect(courier.listener("web")).get("/x").status, 200);
    courier.wait_stat("tracing.zipkin.reports_dropped", |v| v == 1);
    assert_eq!(courier.stat("cluster.zipkin.upstream_cx_http2_total"), Some(1));
    assert_eq!(courier.stat("cluster.zipkin.upstream_rq_200"), Some(1));
    assert_eq!(courier.stat("tracing.zipkin.spans_sent"), Some(1));
}
