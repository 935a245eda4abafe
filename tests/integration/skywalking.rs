//! `envoy.tracers.skywalking` seen from the collector (`shared_collector`, on
//! 127.0.0.1) and from the service: a real Courier, and beside it the real
//! Envoy 1.40 when it is installed, run the same config (the router's
//! `start_child_span`, as the skywalking sandbox has it) and requests; the
//! `sw8` the service receives, the segments streamed to
//! `TraceSegmentReportService/collect` (without their random ids and times)
//! and the `tracing.skywalking.*` stats must be the same.

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use courier::extensions::tracers::skywalking::proto::SegmentObject;
use prost::Message;

use crate::harness::*;
use crate::http2_conformance::Envoy;
use crate::http_util::{http_listener, http_upstream, indent, one_vhost, prefix_route, Client};
use crate::shared_collector::{Call, GrpcCollector};
use crate::xds_grpc::admin_stat;

const COLLECT_PATH: &str = "/skywalking.v3.TraceSegmentReportService/collect";
const WAIT: Duration = Duration::from_secs(10);
/// The header of SkyWalking's protocol document: trace `traceid`, segment
/// `segment`, span 3, service `service`, instance `instance`, endpoint
/// `/endpoint`, target `target:8080`.
const CALLER_SW8: &str = "1-dHJhY2VpZA==-c2VnbWVudA==-3-c2VydmljZQ==-aW5zdGFuY2U=-L2VuZHBvaW50-dGFyZ2V0OjgwODA=";

/// A listener `web` (egress) routing to `app` with SkyWalking tracing to the
/// cluster `skywalking`; `client_config` as given.
fn yaml(client_config: &str, collector: u16, app: u16) -> String {
    let tracing = format!(
        r#"tracing:
  provider:
    name: envoy.tracers.skywalking
    typed_config:
      "@type": type.googleapis.com/envoy.config.trace.v3.SkyWalkingConfig
      grpc_service: {{ envoy_grpc: {{ cluster_name: skywalking }}, timeout: 0.250s }}
      client_config: {client_config}
"#
    );
    let routes = format!("{}{}", prefix_route("/dead", "dead", ""), prefix_route("/", "app", ""));
    let listener = http_listener("web", &indent(&tracing, 10), &one_vhost(&routes), "")
        .replace("    filter_chains:", "    traffic_direction: OUTBOUND\n    filter_chains:")
        .replace(
            "\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
            "\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n              start_child_span: true\n",
        );
    let sw = format!("{}    http2_protocol_options: {{}}\n", static_cluster("skywalking", &[collector]));
    let clusters = [static_cluster("app", &[app]), static_cluster("dead", &[closed_port()]), sw];
    format!("node: {{ id: node-a, cluster: front }}\n{}", config(&[listener], &clusters))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `text` with the ports of 127.0.0.1 left out: each run has its own.
fn without_ports(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(at + "127.0.0.1:".len());
        out += head;
        out += "<port>";
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out + rest
}

/// `yaml` with the connection manager's `tracing.spawn_upstream_span` (which
/// replaces the router's deprecated `start_child_span` in Envoy) instead.
fn spawning(yaml: &str) -> String {
    yaml.replace("              start_child_span: true\n", "")
        .replace("          tracing:\n", "          tracing:\n            spawn_upstream_span: true\n")
}

/// Courier, or Envoy: the listener, the admin, and the proxy kept alive by the box.
fn start(envoy: bool, yaml: &str) -> (SocketAddr, SocketAddr, Box<dyn std::any::Any>) {
    if envoy {
        let e = Envoy::start(yaml);
        (e.listener("web"), e.admin, Box::new(e))
    } else {
        let c = Courier::start(yaml, 1);
        (c.listener("web"), c.admin, Box::new(c))
    }
}

fn proxies() -> Vec<bool> {
    if Envoy::bin().exists() {
        vec![false, true]
    } else {
        eprintln!("Envoy is not installed (scripts/install-envoy): Courier is checked alone");
        vec![false]
    }
}

fn segments(calls: &[Call]) -> Vec<SegmentObject> {
    let all = calls.iter().flat_map(|c| &c.messages);
    all.map(|m| SegmentObject::decode(m.as_slice()).expect("a SegmentObject")).collect()
}

fn decoded(field: &str) -> String {
    String::from_utf8(STANDARD.decode(field).expect("base64")).expect("utf-8")
}

/// A segment without its random ids and its times: what both proxies must send.
fn shape(s: &SegmentObject) -> String {
    let mut out = format!("trace {} service {} instance {}\n", s.trace_id, s.service, s.service_instance);
    for span in &s.spans {
        assert!(span.start_time > 0 && span.end_time >= span.start_time, "{span:?}");
        out += &format!(
            "span {} parent {} type {} layer {} component {} error {} skip {} op {} peer {}\n",
            span.span_id,
            span.parent_span_id,
            span.span_type,
            span.span_layer,
            span.component_id,
            span.is_error,
            span.skip_analysis,
            span.operation_name,
            span.peer
        );
        for r in &span.refs {
            out += &format!("  ref {r:?}\n");
        }
        for t in &span.tags {
            let value = if t.key == "guid:x-request-id" { "<id>" } else { t.value.as_str() };
            out += &format!("  tag {}={}\n", t.key, value);
        }
    }
    out
}

/// A caller's `sw8` joins its trace: the segment's Entry span refers to it,
/// the child span (the upstream request) is the Exit span whose context goes
/// upstream, addressed to the host picked; a request without `sw8` starts a
/// trace; a 503 marks both spans; an upstream that cannot be reached ends the
/// Exit span with the reset's reason, no protocol and status 0. Envoy 1.40
/// sent the same.
#[test]
fn segments_and_sw8_as_envoys() {
    let app = http_upstream("a");
    let mut seen = Vec::new();
    for envoy in proxies() {
        let collector = GrpcCollector::start();
        let client_config = "{ service_name: svc-front, instance_name: inst-1, backend_token: tok123 }";
        let (web, admin, _proxy) = start(envoy, &yaml(client_config, collector.port(), app.port()));
        let joined = Client::connect(web).request("GET", "/a?x=1", &[("sw8", CALLER_SW8)], b"");
        assert_eq!(joined.status, 200);
        let sw8 = joined.seen().header("sw8").expect("sw8 upstream").to_string();
        let fields: Vec<&str> = sw8.split('-').collect();
        assert_eq!(fields.len(), 8, "{sw8}");
        assert_eq!((fields[0], decoded(fields[1]).as_str(), fields[3]), ("1", "traceid", "1"), "{sw8}");
        assert_eq!(decoded(fields[2]).len(), 36, "a new segment id: {sw8}");
        let rest: Vec<String> = fields[4..].iter().map(|f| decoded(f)).collect();
        assert_eq!(rest, ["svc-front", "inst-1", "/a?x=1", &format!("127.0.0.1:{}", app.port())], "{sw8}");

        let fresh = Client::connect(web).request("GET", "/b", &[("x-test-status", "503")], b"");
        assert_eq!(fresh.status, 503);
        let sw8 = fresh.seen().header("sw8").expect("sw8 upstream").to_string();
        assert_ne!(decoded(sw8.split('-').nth(1).expect("trace")), "traceid");

        // An upstream that cannot be reached: the Exit span ends with the reset.
        assert_eq!(Client::connect(web).get("/dead").status, 503);

        let calls = collector.wait(WAIT, |calls| segments(calls).len() == 3);
        assert_eq!(calls.len(), 1, "one stream");
        assert_eq!(calls[0].path, COLLECT_PATH);
        assert_eq!(calls[0].headers.get("authentication").map(String::as_str), Some("tok123"));
        // A new trace's id is random (the caller's is `traceid`).
        let shapes: Vec<String> = segments(&calls)
            .iter()
            .map(|s| without_ports(&shape(s).replacen(&format!("trace {} ", s.trace_id), "trace <new> ", 1)))
            .collect();
        let stat = |n: &str| admin_stat(admin, &format!("tracing.skywalking.{n}"));
        let stats: Vec<i64> =
            ["segments_sent", "segments_dropped", "segments_flushed", "cache_flushed"].map(stat).to_vec();
        assert_eq!(stats, [3, 0, 0, 0]);
        seen.push(shapes);
    }
    let courier = &seen[0];
    assert!(courier[0].contains("span 1 parent 0 type 1 layer 3 component 9000"), "{}", courier[0]);
    assert!(courier[0].contains("ref SegmentReference { ref_type: 0, trace_id: \"traceid\""), "{}", courier[0]);
    assert!(courier[1].contains("error true"), "{}", courier[1]);
    assert!(courier[2].contains("tag error.reason=remote connection failure"), "{}", courier[2]);
    if let Some(envoy) = seen.get(1) {
        for (c, e) in courier.iter().zip(envoy) {
            assert_eq!(c, e, "Courier's segment, then Envoy's");
        }
    }
}

/// A service that ends the stream after each segment: a new stream follows
/// after the back-off (Envoy's `onRemoteClose`), and the next segment goes
/// into it.
#[test]
fn a_stream_the_collector_ends_is_opened_again() {
    let app = http_upstream("a");
    let collector = GrpcCollector::ending_streams_after(1);
    let courier = Courier::start(&spawning(&yaml("{}", collector.port(), app.port())), 1);
    let web = courier.listener("web");
    for n in 1..=3 {
        let response = Client::connect(web).get("/");
        assert_eq!(response.status, 200);
        // `spawn_upstream_span`: the upstream span (id 1) goes upstream.
        let sw8 = response.seen().header("sw8").map(|v| v.split('-').nth(3).map(str::to_owned));
        assert_eq!(sw8, Some(Some("1".to_owned())));
        // The segment came on the n-th stream, which the service ended; the
        // next stream is open.
        collector.wait_opened(WAIT, |calls| calls.len() == n + 1 && calls[n - 1].messages.len() == 1);
    }
    let calls = collector.wait(WAIT, |calls| segments(calls).len() == 3);
    // The node's cluster and id name the service and instance by default.
    let s = &segments(&calls)[0];
    assert_eq!((s.service.as_str(), s.service_instance.as_str()), ("front", "node-a"));
    assert_eq!(courier.stat("tracing.skywalking.segments_sent"), Some(3));
}

/// A collector that cannot be reached costs no request: segments wait in a
/// queue of `max_cache_size`, the oldest dropped past it.
#[test]
fn an_unreachable_collector_costs_no_request() {
    let app = http_upstream("a");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let courier = Courier::start(&yaml("{ max_cache_size: 1 }", port, app.port()), 1);
    let web = courier.listener("web");
    for _ in 0..10 {
        assert_eq!(Client::connect(web).get("/").status, 200);
    }
    courier.wait_stat("tracing.skywalking.segments_dropped", |v| v >= 1);
}

#[test]
fn unimplemented_options_are_refused_by_name() {
    let refused = |yaml: &str, what: &str| {
        let (ok, out) = validate(yaml);
        assert!(!ok && out.contains(what), "{out}");
    };
    let sandbox = yaml("{}", 1, 2);
    assert!(validate(&sandbox).0, "{}", validate(&sandbox).1);
    refused(
        &sandbox.replace("envoy_grpc: { cluster_name: skywalking }", "google_grpc: { target_uri: x, stat_prefix: s }"),
        "google_grpc",
    );
    refused(&sandbox.replace("cluster_name: skywalking", "cluster_name: nope"), "unknown cluster 'nope'");
    // Child spans are SkyWalking's only.
    let zipkin = sandbox.replace(
        "\"@type\": type.googleapis.com/envoy.config.trace.v3.SkyWalkingConfig\n                grpc_service: { envoy_grpc: { cluster_name: skywalking }, timeout: 0.250s }\n                client_config: {}",
        "\"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig\n                collector_cluster: skywalking\n                collector_endpoint: /api/v2/spans\n                collector_endpoint_version: HTTP_JSON",
    );
    refused(&zipkin, "start_child_span");
    refused(&spawning(&zipkin), "spawn_upstream_span");
}
