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
    let xray = "tracing:\n  provider:\n    name: envoy.tracers.xray\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.XRayConfig\n      segment_name: web\n";
    let (ok, out) = with(xray);
    assert!(!ok && out.contains("XRayConfig"), "{out}");
    // OpenTelemetry exports over gRPC only.
    let otel_http = "tracing:\n  provider:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      http_service: { http_uri: { uri: /v1/traces, cluster: app, timeout: 1s } }\n";
    let (ok, out) = with(otel_http);
    assert!(!ok && out.contains("'http_service'"), "{out}");
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

/// A gRPC collector: answers every call OK (or, `hang`ing, never) and hands
/// over its path, content type and message (the 5-byte gRPC prefix removed).
fn grpc_collector(hang: bool) -> (Upstream, Receiver<Call>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Arc::new(Mutex::new(tx));
    let upstream = Upstream::start(move |stream| {
        let tx = tx.clone();
        crate::shared_net::serve_h2c(stream, move |request, respond| answer_grpc(request, respond, tx.clone(), hang));
    });
    (upstream, rx)
}

type Call = (String, String, Vec<u8>);

async fn answer_grpc(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    tx: std::sync::Arc<Mutex<mpsc::Sender<Call>>>,
    hang: bool,
) {
    let (parts, mut body) = request.into_parts();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let message = data.get(5..).unwrap_or_default().to_vec();
    let _ = tx.lock().map(|tx| tx.send((parts.uri.path().to_owned(), content_type.to_owned(), message)));
    if hang {
        // The call stays unanswered until Courier gives up on it.
        let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
        return;
    }
    let response = http::Response::builder().header("content-type", "application/grpc").body(());
    let Ok(mut send) = respond.send_response(response.expect("response"), false) else { return };
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}

/// `envoy.tracers.opentelemetry` as Envoy 1.40 exports (checked by hand against
/// Envoy with the same config): one OTLP call with the resource's service.name,
/// scope `envoy`, a SERVER span child of the caller's traceparent (flags: remote
/// parent, sampled) named by the decorator, the caller's tracestate, and the
/// same tags as Zipkin's as attributes; an unsampled caller's span is not sent.
#[test]
fn opentelemetry_spans_are_exported_over_grpc_with_w3c_context() {
    use courier::extensions::common::otlp::trace::ExportTraceServiceRequest;
    use prost::Message;

    let service = http_upstream("svc");
    let (collector, calls) = grpc_collector(false);
    let tracing = "tracing:\n  provider:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      grpc_service:\n        envoy_grpc: { cluster_name: otel }\n        timeout: 1s\n      service_name: front\n";
    let listener = http_listener("web", &indent(tracing, 10), &indent(&routes(), 12), "");
    let otel = format!("{}    http2_protocol_options: {{}}\n", static_cluster("otel", &[collector.port()]));
    let yaml = format!(
        "layered_runtime:\n  layers:\n  - name: static\n    static_layer: {{ tracing.opentelemetry.min_flush_spans: 3 }}\n{}",
        config(&[listener], &[static_cluster("app", &[service.port()]), otel])
    );
    let courier = Courier::start(&yaml, 1);
    let addr = courier.listener("web");
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let joined = Client::connect(addr).request("GET", "/a", &[("traceparent", parent), ("tracestate", "k=v")], b"");
    let sent = joined.seen().header("traceparent").expect("traceparent upstream").to_string();
    assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && sent.ends_with("-01"), "{sent}");
    assert_ne!(sent, parent, "a span of its own");
    assert_eq!(joined.seen().header("tracestate"), Some("k=v"));
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let quiet = Client::connect(addr).request("GET", "/q", &[("traceparent", unsampled)], b"");
    assert!(quiet.seen().header("traceparent").is_some_and(|t| t.ends_with("-00")));
    assert_eq!(quiet.seen().header("tracestate"), Some(""), "Envoy sends an empty tracestate");
    let new = Client::connect(addr).get("/new");
    assert!(new.seen().header("traceparent").is_some_and(|t| t.ends_with("-01")));
    assert_eq!(Client::connect(addr).get("/fail").status, 503);

    let (path, content_type, message) = calls.recv_timeout(Duration::from_secs(10)).expect("an export call");
    assert_eq!(path, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    assert_eq!(content_type, "application/grpc");
    let export = ExportTraceServiceRequest::decode(message.as_slice()).expect("an OTLP export request");
    let rs = &export.resource_spans[0];
    let attr = |kvs: &[envoy_types::pb::opentelemetry::proto::common::v1::KeyValue], k: &str| {
        kvs.iter().find(|kv| kv.key == k).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            envoy_types::pb::opentelemetry::proto::common::v1::any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
    };
    let resource = rs.resource.as_ref().expect("resource");
    assert_eq!(attr(&resource.attributes, "service.name").as_deref(), Some("front"));
    let scope = &rs.scope_spans[0];
    assert_eq!(scope.scope.as_ref().map(|s| s.name.as_str()), Some("envoy"));
    assert_eq!(scope.spans.len(), 3, "the sampled ones");
    let span = &scope.spans[0];
    assert_eq!(hex(&span.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&span.parent_span_id), "b7ad6b7169203331");
    assert_eq!(format!("00-{}-{}-01", hex(&span.trace_id), hex(&span.span_id)), sent);
    assert_eq!((span.name.as_str(), span.kind, span.flags), ("checkout", 2, 0x301));
    assert_eq!(span.trace_state, "k=v");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    assert_eq!(attr(&span.attributes, "http.status_code").as_deref(), Some("200"));
    assert_eq!(attr(&span.attributes, "upstream_cluster").as_deref(), Some("app"));
    let root = &scope.spans[1];
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.flags, 0x101, "no remote parent, sampled");
    assert_eq!(span.status, None);
    let failed = &scope.spans[2];
    assert_eq!(attr(&failed.attributes, "error").as_deref(), Some("true"));
    assert_eq!(failed.status.as_ref().map(|s| s.code), Some(2), "a 5xx: status ERROR, as Envoy");
    assert_eq!(failed.name, "ingress", "no decorator: Envoy's name for an ingress span");
    courier.wait_stat("cluster.otel.upstream_rq_200", |v| v == 1);
    assert_eq!(courier.stat("tracing.opentelemetry.spans_sent"), Some(3));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `grpc_service.timeout` bounds an export call: a collector that never answers
/// has the call abandoned (the cluster's active request goes) at the timeout.
#[test]
fn an_opentelemetry_export_is_abandoned_at_the_grpc_timeout() {
    let service = http_upstream("svc");
    let (collector, calls) = grpc_collector(true);
    let tracing = "tracing:\n  provider:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      grpc_service:\n        envoy_grpc: { cluster_name: otel }\n        timeout: 0.2s\n";
    let listener = http_listener("web", &indent(tracing, 10), &indent(&routes(), 12), "");
    let otel = format!("{}    http2_protocol_options: {{}}\n", static_cluster("otel", &[collector.port()]));
    let yaml = format!(
        "layered_runtime:\n  layers:\n  - name: static\n    static_layer: {{ tracing.opentelemetry.min_flush_spans: 1 }}\n{}",
        config(&[listener], &[static_cluster("app", &[service.port()]), otel])
    );
    let courier = Courier::start(&yaml, 1);
    assert_eq!(Client::connect(courier.listener("web")).get("/x").status, 200);
    calls.recv_timeout(Duration::from_secs(10)).expect("the export call arrived");
    let started = std::time::Instant::now();
    courier.wait_stat("cluster.otel.upstream_rq_active", |v| v == 0);
    assert!(started.elapsed() < Duration::from_secs(3), "abandoned at the timeout");
    assert_eq!(courier.stat("cluster.otel.upstream_rq_total"), Some(1));
}
