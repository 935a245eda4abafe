//! HCM tracing with the Datadog provider, seen from the agent: a real Courier
//! process posts MessagePack to an agent this test runs, which decodes it; the
//! spans must be those of the service's requests, in the shape Envoy 1.40 posts
//! (checked by decoding what Envoy sent for the same requests: `envoy.proxy`
//! spans whose resource is the operation, the tags in `meta` but `error`, the
//! sampling metrics), with dd-trace-cpp's headers, the agent's answered rates
//! deciding the later traces, and the service must get
//! both Datadog and W3C context, as from Envoy (compat case `tracing_datadog`).

use std::io::{BufReader, Write};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::harness::*;
use crate::http_util::{http_listener, http_upstream, indent, read_request, Client};
use crate::shared_net::Parsed;

/// An agent that answers every POST 200 with its sampling rates, as Datadog's does.
fn agent() -> (Upstream, Receiver<Parsed>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = Upstream::start(move |stream| {
        let Ok(mut writer) = stream.try_clone() else { return };
        let mut reader = BufReader::new(stream);
        while let Some(request) = read_request(&mut reader) {
            let _ = tx.lock().map(|tx| tx.send(request));
            let body = r#"{"rate_by_service":{"service:,env:":1}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    (upstream, rx)
}

/// The MessagePack forms the agent's API uses, as JSON (integers as i64/u64).
fn decode(b: &[u8], i: &mut usize) -> Value {
    let take = |i: &mut usize, n: usize| -> &[u8] {
        let s = &b[*i..*i + n];
        *i += n;
        s
    };
    let len = |i: &mut usize, t: u8| -> usize {
        match t {
            0x90..=0x9f => usize::from(t & 0x0f),
            0x80..=0x8f => usize::from(t & 0x0f),
            0xa0..=0xbf => usize::from(t & 0x1f),
            0xdc | 0xde | 0xda => usize::from(u16::from_be_bytes(take(i, 2).try_into().unwrap())),
            0xdd | 0xdf | 0xdb => u32::from_be_bytes(take(i, 4).try_into().unwrap()) as usize,
            _ => panic!("unexpected msgpack type {t:#x}"),
        }
    };
    let t = take(i, 1)[0];
    match t {
        0x00..=0x7f => Value::from(t),
        0xcf => Value::from(u64::from_be_bytes(take(i, 8).try_into().unwrap())),
        0xd3 => Value::from(i64::from_be_bytes(take(i, 8).try_into().unwrap())),
        0xcb => Value::from(f64::from_be_bytes(take(i, 8).try_into().unwrap())),
        0x90..=0x9f | 0xdc | 0xdd => {
            let n = len(i, t);
            Value::Array((0..n).map(|_| decode(b, i)).collect())
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let n = len(i, t);
            let mut m = Map::new();
            for _ in 0..n {
                let k = decode(b, i).as_str().expect("string keys").to_owned();
                m.insert(k, decode(b, i));
            }
            Value::Object(m)
        }
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb => {
            let n = if t == 0xd9 { usize::from(take(i, 1)[0]) } else { len(i, t) };
            Value::from(String::from_utf8(take(i, n).to_vec()).expect("utf-8"))
        }
        _ => panic!("unexpected msgpack type {t:#x}"),
    }
}

const ROUTES: &str = "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/fail\" }\n    direct_response: { status: 503 }\n  - match: { prefix: \"/\" }\n    route: { cluster: app }\n    decorator: { operation: checkout }\n";

fn datadog(extra: &str) -> String {
    format!("tracing:\n  provider:\n    name: envoy.tracers.datadog\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.DatadogConfig\n      collector_cluster: agent\n{extra}")
}

#[test]
fn datadog_spans_reach_the_agent_as_msgpack_with_both_contexts_propagated() {
    let service = http_upstream("svc");
    let (agent, posts) = agent();
    let tracing = datadog("      service_name: front-proxy\n      collector_hostname: agent.example\n");
    let listener = http_listener("web", &indent(&tracing, 10), &indent(ROUTES, 12), "");
    let clusters = [static_cluster("app", &[service.port()]), static_cluster("agent", &[agent.port()])];
    let yaml = format!("node: {{ id: node-a, locality: {{ zone: z1 }} }}\n{}", config(&[listener], &clusters));
    let courier = Courier::start(&yaml, 1);
    let addr = courier.listener("web");

    // A new trace: decided here, kept; 128-bit, its root span's id the lower half.
    let new = Client::connect(addr).get("/new");
    assert_eq!(new.status, 200);
    let seen = new.seen();
    let trace = seen.header("x-datadog-trace-id").expect("a trace id").to_string();
    assert_eq!(seen.header("x-datadog-parent-id"), Some(trace.as_str()));
    assert_eq!(seen.header("x-datadog-sampling-priority"), Some("1"));
    let tags = seen.header("x-datadog-tags").expect("trace tags");
    assert!(tags.starts_with("_dd.p.tid=") && tags.ends_with("00000000,_dd.p.dm=-0"), "{tags}");
    let tid = &tags[10..26];
    let span_hex = format!("{:016x}", trace.parse::<u64>().expect("decimal"));
    assert_eq!(seen.header("traceparent"), Some(format!("00-{tid}{span_hex}-{span_hex}-01").as_str()));
    assert_eq!(seen.header("tracestate"), Some(format!("dd=s:1;p:{span_hex};t.dm:-0").as_str()));

    // A caller's Datadog context: joined, its priority and origin standing.
    let joined = Client::connect(addr).request(
        "GET",
        "/joined",
        &[
            ("x-datadog-trace-id", "123"),
            ("x-datadog-parent-id", "456"),
            ("x-datadog-sampling-priority", "2"),
            ("x-datadog-origin", "rum"),
        ],
        b"",
    );
    let seen = joined.seen();
    assert_eq!(seen.header("x-datadog-trace-id"), Some("123"));
    let joined_span = seen.header("x-datadog-parent-id").expect("our span").to_string();
    assert_ne!(joined_span, "456");
    assert_eq!((seen.header("x-datadog-sampling-priority"), seen.header("x-datadog-origin")), (Some("2"), Some("rum")));
    assert_eq!(seen.header("x-datadog-tags"), None);
    // A local reply: a span too, its error the span's field.
    assert_eq!(Client::connect(addr).get("/fail").status, 503);

    // Every 2 s the worker posts what it has: gather the three traces.
    let mut spans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while spans.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let post = posts.recv_timeout(left).expect("the agent got the traces");
        assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/v0.4/traces"));
        let h = |name: &str| post.headers.get(name).map(String::as_str);
        assert_eq!(h("host"), Some("agent.example"));
        assert_eq!(h("content-type"), Some("application/msgpack"));
        assert_eq!((h("datadog-meta-lang"), h("datadog-meta-tracer-version")), (Some("cpp"), Some("v2.1.1")));
        let traces = decode(&post.body, &mut 0);
        let traces = traces.as_array().expect("an array of traces");
        assert_eq!(h("x-datadog-trace-count"), Some(traces.len().to_string().as_str()));
        for t in traces {
            assert_eq!(t.as_array().map(Vec::len), Some(1), "one span per trace: {t:#}");
            spans.push(t[0].clone());
        }
    }
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for s in &spans {
        assert_eq!(
            (&s["service"], &s["name"], &s["type"]),
            (&Value::from("front-proxy"), &"envoy.proxy".into(), &"web".into())
        );
        assert_eq!(s["meta"]["language"], "cpp");
        assert_eq!((&s["meta"]["node_id"], &s["meta"]["zone"]), (&Value::from("node-a"), &Value::from("z1")));
        assert!(s["start"].as_u64().is_some_and(|t| t > 1_600_000_000_000_000_000), "ns since the epoch: {s:#}");
        assert!(s["duration"].as_u64().is_some(), "{s:#}");
        assert_eq!(s["meta"]["error"], Value::Null);
    }
    let by_trace = |id: u64| spans.iter().find(|s| s["trace_id"] == id).unwrap_or_else(|| panic!("{id}: {spans:#?}"));

    let n = by_trace(trace.parse().expect("decimal"));
    assert_eq!((&n["span_id"], &n["parent_id"]), (&n["trace_id"], &Value::from(0)));
    assert_eq!((&n["resource"], &n["error"]), (&Value::from("checkout"), &Value::from(0)));
    assert_eq!((&n["meta"]["_dd.p.tid"], &n["meta"]["_dd.p.dm"]), (&Value::from(tid), &Value::from("-0")));
    assert_eq!(n["meta"]["http.url"], "http://example.com/new");
    assert_eq!(n["meta"]["http.status_code"], "200");
    assert_eq!(n["meta"]["upstream_cluster"], "app");
    assert_eq!(n["metrics"]["_sampling_priority_v1"], 1.0);
    assert_eq!(n["metrics"]["_dd.agent_psr"], 1.0);

    let j = by_trace(123);
    assert_eq!((j["span_id"].to_string(), &j["parent_id"]), (joined_span, &Value::from(456)));
    assert_eq!((&j["meta"]["_dd.origin"], &j["meta"]["_dd.p.dm"]), (&Value::from("rum"), &Value::Null));
    assert_eq!(
        (&j["metrics"]["_sampling_priority_v1"], &j["metrics"]["_dd.agent_psr"]),
        (&Value::from(2.0), &Value::Null)
    );

    let f = spans.iter().find(|s| s["meta"]["http.status_code"] == "503").expect("the 503's span");
    assert_eq!((&f["error"], &f["resource"]), (&Value::from(1), &Value::from("ingress")));

    courier.wait_stat("tracing.datadog.reports_sent", |v| v >= 1);
    // The agent answered its rates (1 for every service): they decide from now on.
    let later = Client::connect(addr).get("/later");
    let tags = later.seen().header("x-datadog-tags").expect("trace tags").to_string();
    assert!(tags.ends_with("00000000,_dd.p.dm=-1,_dd.p.ksr=1"), "{tags}");
    assert_eq!(later.seen().header("x-datadog-sampling-priority"), Some("1"));
    assert_eq!(courier.stat("tracing.datadog.reports_dropped"), Some(0));
    assert_eq!(courier.stat("tracing.datadog.reports_failed"), Some(0));
    assert_eq!(courier.stat("tracing.datadog.reports_skipped_no_cluster"), Some(0));
}

#[test]
fn datadog_options_courier_does_not_act_on_are_refused_by_name() {
    let with = |tracing: &str| {
        let listener = http_listener("web", &indent(tracing, 10), &indent(ROUTES, 12), "");
        validate(&config(&[listener], &[static_cluster("app", &[1]), static_cluster("agent", &[1])]))
    };
    assert!(with(&datadog("      service_name: s\n")).0);
    let (ok, out) = with(&datadog("      service_name: s\n      remote_config: {}\n"));
    assert!(!ok && out.contains("remote_config"), "{out}");
    let (ok, out) = with(&datadog(""));
    assert!(!ok && out.contains("service_name"), "{out}");
    let (ok, out) =
        with(&datadog("      service_name: s\n").replace("collector_cluster: agent", "collector_cluster: nope"));
    assert!(!ok && out.contains("unknown cluster 'nope'"), "{out}");
}
