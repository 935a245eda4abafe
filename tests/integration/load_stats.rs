//! `cluster_manager.load_stats_config` seen from the load reporting service
//! (`shared_collector` answering the first message with a
//! `LoadStatsResponse`, on 127.0.0.1): a real Courier, and beside it the real
//! Envoy 1.40 when it is installed, run the same config and requests, and what
//! each reports is reduced to the facts both must share: the node and its
//! client feature first and in every report, then per cluster and locality the requests that
//! succeeded, failed and were issued (summed over the reports, which count
//! since the previous one), none in progress, none dropped, an interval; and
//! with `drop_overloads` and `report_endpoint_granularity`, the drops per
//! category and in all, and each endpoint's counts.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};
use prost::Message;

use crate::harness::*;
use crate::http2_conformance::Envoy;
use crate::http_util::{http_listener, http_upstream, one_vhost, prefix_route, Client};
use crate::shared_collector::{Call, GrpcCollector};

const STREAM_PATH: &str = "/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats";
const WAIT: Duration = Duration::from_secs(10);

/// A listener `web` routing to `app` (one endpoint in locality r1/z1), the
/// node `node1`, and load reports to the service's cluster `lrs`.
fn yaml(lrs: u16, app: u16) -> String {
    yaml_with(lrs, app, "", "")
}

/// `yaml`, with `routes` before the one to `app`, and `clusters`.
fn yaml_with(lrs: u16, app: u16, routes: &str, clusters: &str) -> String {
    let routes = one_vhost(&format!("{routes}{}", prefix_route("/", "app", "")));
    let app = format!(
        "  - name: app\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: app\n      \
         endpoints:\n      - locality: {{ region: r1, zone: z1 }}\n        lb_endpoints:\n        - endpoint: {{ address: \
         {{ socket_address: {{ address: 127.0.0.1, port_value: {app} }} }} }}\n"
    );
    let lrs = format!("{}    http2_protocol_options: {{}}\n", static_cluster("lrs", &[lrs]));
    format!(
        r#"node: {{ id: node1, cluster: c1 }}
cluster_manager:
  load_stats_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{ cluster_name: lrs }}
{}"#,
        config(&[http_listener("web", "", &routes, "")], &[app, lrs, clusters.to_string()])
    )
}

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
        eprintln!("Envoy is not installed (scripts/install-envoy): Courier's reports are checked alone");
        vec![false]
    }
}

fn messages(call: &Call) -> Vec<LoadStatsRequest> {
    call.messages.iter().map(|m| LoadStatsRequest::decode(m.as_slice()).expect("a LoadStatsRequest")).collect()
}

/// Per `(cluster, region/zone, priority)`: (succeeded, failed, issued), summed
/// over the reports; the largest in progress; and whether every report of the
/// cluster had an interval and no drops.
type Totals = std::collections::BTreeMap<(String, String, u32), (u64, u64, u64, u64)>;

fn totals(reports: &[LoadStatsRequest]) -> (Totals, bool) {
    let mut out = Totals::new();
    let mut well_formed = true;
    for r in reports {
        for c in &r.cluster_stats {
            well_formed &= c.load_report_interval.is_some() && c.total_dropped_requests == 0;
            for l in &c.upstream_locality_stats {
                let loc = l.locality.as_ref().map(|l| format!("{}/{}", l.region, l.zone)).unwrap_or_default();
                let e = out.entry((c.cluster_name.clone(), loc, l.priority)).or_default();
                e.0 += l.total_successful_requests;
                e.1 += l.total_error_requests;
                e.2 += l.total_issued_requests;
                e.3 = e.3.max(l.total_requests_in_progress);
            }
        }
    }
    (out, well_formed)
}

/// The service asks for `app` every 0.3 s; three requests succeed and two get
/// a 503 from the upstream.
#[test]
fn reports_per_cluster_and_locality_as_envoy() {
    // The answer of the service `cluster_manager.load_stats_config` names.
    let answer = LoadStatsResponse {
        clusters: vec!["app".into()],
        load_reporting_interval: Some(envoy_types::pb::google::protobuf::Duration { seconds: 0, nanos: 300_000_000 }),
        ..Default::default()
    };
    compare(answer);
}

/// What Courier and Envoy report for the service's `answer`, compared.
fn compare(answer: LoadStatsResponse) {
    let app = http_upstream("app");
    let mut seen = Vec::new();
    for envoy in proxies() {
        // `cluster_manager.load_stats_config` (see `yaml`) streams to this service.
        let lrs = GrpcCollector::answering_first_message(answer.encode_to_vec());
        let (web, _proxy) = start(envoy, &yaml(lrs.port(), app.port()));
        // The first report (the service's answer was read) before the requests.
        lrs.wait(WAIT, |calls| calls.iter().any(|c| c.messages.len() >= 2));
        let mut client = Client::connect(web);
        for status in ["200", "200", "503", "200", "503"] {
            let r = client.request("GET", "/", &[("x-test-status", status)], b"");
            assert_eq!(r.status.to_string(), status);
        }
        let expected = (3, 2, 5, 0);
        let done = |calls: &[Call]| calls.iter().any(|c| totals(&messages(c)).0.values().any(|t| *t == expected));
        let calls = lrs.wait(WAIT, done);
        assert_eq!(calls.len(), 1, "one stream");
        assert_eq!(calls[0].path, STREAM_PATH);
        let all = messages(&calls[0]);
        let node = all[0].node.as_ref().expect("the first message's node");
        let features = node.client_features.clone();
        let first = (node.id.clone(), node.cluster.clone(), all[0].cluster_stats.len());
        let later_nodes = all[1..].iter().all(|m| m.node == all[0].node);
        let reported_clusters: std::collections::BTreeSet<String> =
            all[1..].iter().flat_map(|m| m.cluster_stats.iter().map(|c| c.cluster_name.clone())).collect();
        let (t, well_formed) = totals(&all[1..]);
        seen.push((first, features, later_nodes, reported_clusters, t, well_formed));
    }
    let courier = &seen[0];
    assert_eq!(courier.0, ("node1".to_string(), "c1".to_string(), 0));
    assert!(courier.1.iter().any(|f| f == "envoy.lrs.supports_send_all_clusters"), "{:?}", courier.1);
    assert_eq!(courier.4.get(&("app".into(), "r1/z1".into(), 0)), Some(&(3, 2, 5, 0)));
    assert!(courier.5, "every report has an interval and no drops");
    if let Some(envoy) = seen.get(1) {
        assert_eq!(courier, envoy, "Courier's reports (left) differ from Envoy's (right)");
    }
}

/// `send_all_clusters`: every cluster, the service's own with its stream in
/// progress.
#[test]
fn send_all_clusters_reports_every_cluster_as_envoy() {
    compare(LoadStatsResponse {
        send_all_clusters: true,
        load_reporting_interval: Some(envoy_types::pb::google::protobuf::Duration { seconds: 0, nanos: 300_000_000 }),
        ..Default::default()
    });
}

/// What Courier cannot do with the service is refused at start-up by name.
#[test]
fn load_stats_config_errors_name_the_field() {
    let base = yaml(1, 2);
    let refused = [
        ("cluster_name: lrs", "cluster_name: nowhere", "Unknown gRPC client cluster 'nowhere'"),
        (
            "api_type: GRPC",
            "api_type: GRPC\n    set_node_on_first_message_only: true",
            "set_node_on_first_message_only",
        ),
    ];
    for (from, to, expected) in refused {
        let (ok, out) = validate(&base.replacen(from, to, 1));
        assert!(!ok && out.contains("cluster_manager.load_stats_config") && out.contains(expected), "{out}");
    }
    let (ok, out) = validate(&base.replacen("api_type: GRPC", "api_type: DELTA_GRPC", 1));
    assert!(ok, "Envoy streams load stats the same for a delta api_type: {out}");
}

/// Per cluster, summed over the reports: `total_dropped_requests`, and
/// `dropped_requests` per category; per `(cluster, endpoint address)`: the
/// requests that succeeded, failed and were issued, and the largest in progress.
type Drops = std::collections::BTreeMap<String, (u64, std::collections::BTreeMap<String, u64>)>;
type Endpoints = std::collections::BTreeMap<(String, String), (u64, u64, u64, u64)>;

fn drops_and_endpoints(reports: &[LoadStatsRequest]) -> (Drops, Endpoints) {
    use envoy_types::pb::envoy::config::core::v3::address::Address as Kind;
    let (mut drops, mut endpoints) = (Drops::new(), Endpoints::new());
    for r in reports {
        for c in &r.cluster_stats {
            let d = drops.entry(c.cluster_name.clone()).or_default();
            d.0 += c.total_dropped_requests;
            for by in &c.dropped_requests {
                *d.1.entry(by.category.clone()).or_default() += by.dropped_count;
            }
            for e in c.upstream_locality_stats.iter().flat_map(|l| &l.upstream_endpoint_stats) {
                let address = match e.address.as_ref().and_then(|a| a.address.as_ref()) {
                    Some(Kind::SocketAddress(s)) => format!("{}:{:?}", s.address, s.port_specifier),
                    other => format!("{other:?}"),
                };
                let t = endpoints.entry((c.cluster_name.clone(), address)).or_default();
                t.0 += e.total_successful_requests;
                t.1 += e.total_error_requests;
                t.2 += e.total_issued_requests;
                t.3 = t.3.max(e.total_requests_in_progress);
            }
        }
    }
    (drops, endpoints)
}

/// `drops` drops all of its requests (category `throttle`), `app` none, and
/// `full`'s circuit breaker refuses its request; the service asks for the
/// three with `report_endpoint_granularity`: each report carries `app`'s
/// endpoint inside its locality, the drops of `drops` under its category and
/// in all, and `full`'s overflow in all.
#[test]
fn drop_overloads_and_endpoint_granularity_reported_as_envoy() {
    let answer = LoadStatsResponse {
        clusters: vec!["app".into(), "drops".into(), "full".into()],
        load_reporting_interval: Some(envoy_types::pb::google::protobuf::Duration { seconds: 0, nanos: 300_000_000 }),
        report_endpoint_granularity: true,
        ..Default::default()
    };
    let app = http_upstream("app");
    let mut seen = Vec::new();
    for envoy in proxies() {
        let lrs = GrpcCollector::answering_first_message(answer.encode_to_vec());
        let drops = format!(
            "  - name: drops\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: drops\n      \
             policy:\n        drop_overloads:\n        - {{ category: throttle, drop_percentage: {{ numerator: 100 }} }}\n      \
             endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, \
             port_value: {} }} }} }}\n",
            app.port()
        );
        let full = format!(
            "{}    circuit_breakers:\n      thresholds:\n      - {{ priority: DEFAULT, max_requests: 0 }}\n",
            static_cluster("full", &[app.port()])
        );
        let routes = format!("{}{}", prefix_route("/drop", "drops", ""), prefix_route("/full", "full", ""));
        let yaml = yaml_with(lrs.port(), app.port(), &routes, &format!("{drops}{full}"));
        let (web, _proxy) = start(envoy, &yaml);
        lrs.wait(WAIT, |calls| calls.iter().any(|c| c.messages.len() >= 2));
        let mut client = Client::connect(web);
        for status in ["200", "503", "200"] {
            let r = client.request("GET", "/", &[("x-test-status", status)], b"");
            assert_eq!(r.status.to_string(), status);
        }
        for path in ["/drop", "/drop", "/full"] {
            let r = client.request("GET", path, &[], b"");
            assert_eq!(r.status, 503);
        }
        let done = |calls: &[Call]| {
            calls.iter().any(|c| {
                let all = messages(c);
                let (d, e) = drops_and_endpoints(&all);
                d.get("drops").is_some_and(|d| d.0 == 2)
                    && d.get("full").is_some_and(|d| d.0 == 1)
                    && e.values().any(|t| t.2 == 3)
            })
        };
        let calls = lrs.wait(WAIT, done);
        let all = messages(&calls[0]);
        let (t, _) = totals(&all[1..]);
        let (d, e) = drops_and_endpoints(&all[1..]);
        seen.push((t, d, e));
    }
    let courier = &seen[0];
    assert_eq!(courier.0.get(&("app".into(), "r1/z1".into(), 0)), Some(&(2, 1, 3, 0)));
    let throttle: std::collections::BTreeMap<String, u64> = [("throttle".to_string(), 2)].into();
    assert_eq!(courier.1.get("drops"), Some(&(2, throttle)));
    assert_eq!(courier.1.get("app"), Some(&(0, Default::default())));
    assert_eq!(courier.1.get("full"), Some(&(1, Default::default())));
    let endpoint = ("app".to_string(), format!("127.0.0.1:Some(PortValue({}))", app.port()));
    assert_eq!(courier.2.get(&endpoint), Some(&(2, 1, 3, 0)), "{:?}", courier.2);
    // The overflow counts as an error of the host it was to go to, none issued.
    let full = ("full".to_string(), endpoint.1.clone());
    assert_eq!(courier.2.get(&full), Some(&(0, 1, 0, 0)), "{:?}", courier.2);
    assert_eq!(courier.2.len(), 2, "{:?}", courier.2);
    if let Some(envoy) = seen.get(1) {
        assert_eq!(courier, envoy, "Courier's reports (left) differ from Envoy's (right)");
    }
}

/// `half` drops one request in two (5000 in ten thousand), its endpoint the
/// upstream of `app`. Of 100 requests each proxy drops some and passes some
/// (the chance of either all or none is 2⁻⁹⁹), each drop a 503 with
/// `x-envoy-drop-overload`, each other request a 200; its reports count
/// exactly the drops it answered, under the category and in all, and the
/// requests it passed as issued to the endpoint.
#[test]
fn a_share_dropped_is_reported_exactly() {
    let answer = LoadStatsResponse {
        clusters: vec!["half".into()],
        load_reporting_interval: Some(envoy_types::pb::google::protobuf::Duration { seconds: 0, nanos: 300_000_000 }),
        ..Default::default()
    };
    let app = http_upstream("app");
    for envoy in proxies() {
        let lrs = GrpcCollector::answering_first_message(answer.encode_to_vec());
        let half = format!(
            "  - name: half\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: half\n      \
             policy:\n        drop_overloads:\n        - {{ category: coin, drop_percentage: {{ numerator: 5000, denominator: \
             TEN_THOUSAND }} }}\n      endpoints:\n      - locality: {{ region: r1, zone: z1 }}\n        lb_endpoints:\n        \
             - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
            app.port()
        );
        let yaml = yaml_with(lrs.port(), app.port(), &prefix_route("/half", "half", ""), &half);
        let (web, _proxy) = start(envoy, &yaml);
        lrs.wait(WAIT, |calls| calls.iter().any(|c| c.messages.len() >= 2));
        let mut client = Client::connect(web);
        let mut dropped = 0;
        for _ in 0..100 {
            let r = client.request("GET", "/half", &[], b"");
            match r.status {
                503 => {
                    assert_eq!(r.header("x-envoy-drop-overload"), Some("true"));
                    assert_eq!(r.body, b"drop overload");
                    dropped += 1;
                }
                status => assert_eq!(status, 200),
            }
        }
        assert!(0 < dropped && dropped < 100, "{dropped} of 100 dropped");
        let coin: std::collections::BTreeMap<String, u64> = [("coin".to_string(), dropped)].into();
        let expected = (dropped, coin);
        let passed = 100 - dropped;
        let done = |calls: &[Call]| {
            calls.iter().any(|c| {
                let all = messages(c);
                let issued = totals(&all).0.get(&("half".into(), "r1/z1".into(), 0)).map(|t| t.2);
                drops_and_endpoints(&all).0.get("half") == Some(&expected) && issued == Some(passed)
            })
        };
        lrs.wait(WAIT, done);
    }
}
