//! Incremental (delta) xDS from a management server: `ads_config.api_type:
//! DELTA_GRPC` (`DeltaAggregatedResources`) and per-type `DELTA_GRPC`
//! sources (`DeltaClusters`, ...). Each test runs the control plane of
//! `tests/shared/xds_server.rs` in delta mode on 127.0.0.1, starts the proxy
//! against it, pushes and removes resources, sends real traffic through them,
//! and waits on the delta requests the control plane got (subscriptions,
//! ACKs, NACKs) and on the stats, never on time. The session runs against the
//! real Envoy 1.40 too: both must send the same requests and end the same.

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::google::protobuf::Any;

use crate::harness::{static_cluster, wait_for, Courier, IO_TIMEOUT};
use crate::http_util::{holding_upstream, http_listener, one_vhost, prefix_route, Client, Gate};
use crate::rds::route_config;
use crate::shared_net::http_upstream;
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use crate::xds_grpc::{
    admin_listener, admin_stat, ads_eds_cluster, assignment, clusters, resource, same_as_envoy, web_listener,
    xds_cluster,
};

/// A bootstrap with CDS and LDS over delta ADS to `xds`.
fn delta_bootstrap(xds: &XdsServer, ads_extra: &str) -> String {
    format!(
        "node: {{ id: test-node, cluster: test-cluster }}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds }} }}]
{ads_extra}  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
{}",
        xds_cluster(xds.port())
    )
}

/// An HTTP listener `name` whose routes are the route config `routes` over ADS.
fn rds_listener(name: &str, routes: &str) -> Any {
    rds_listener_on(name, routes, "{ ads: {}, resource_api_version: V3 }")
}

/// An HTTP listener `name` whose routes are the route config `routes` from `source`.
fn rds_listener_on(name: &str, routes: &str, source: &str) -> Any {
    let rds = format!("          rds:\n            route_config_name: {routes}\n            config_source: {source}\n");
    resource(LISTENER_TYPE, &http_listener(name, "", "", "").replacen("          route_config:\n", &rds, 1))
}

fn routes(name: &str, routes: &str) -> Any {
    resource(ROUTE_TYPE, &route_config(name, routes))
}

fn is_type(r: &DeltaDiscoveryRequest, type_url: &str) -> bool {
    r.type_url == type_url
}

/// An ACK: the response's nonce, no error.
fn is_ack(r: &DeltaDiscoveryRequest, type_url: &str) -> bool {
    is_type(r, type_url) && !r.response_nonce.is_empty() && r.error_detail.is_none()
}

fn is_nack(r: &DeltaDiscoveryRequest, type_url: &str) -> bool {
    is_type(r, type_url) && r.error_detail.is_some()
}

/// What a delta request says, for comparing two proxies' (names sorted: the
/// order means nothing; the node only as present or not).
pub fn delta_summary(r: &DeltaDiscoveryRequest) -> String {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let mut initial: Vec<String> = r.initial_resource_versions.iter().map(|(n, v)| format!("{n}={v}")).collect();
    initial.sort();
    let ty = r.type_url.rsplit('.').next().unwrap_or_default();
    let node = if r.node.is_some() { " +node" } else { "" };
    let error = r.error_detail.as_ref().map_or(String::new(), |s| format!(" NACK code {}", s.code));
    format!(
        "{ty} nonce '{}'{node} sub {:?} unsub {:?} initial {initial:?}{error}",
        r.response_nonce,
        sorted(&r.resource_names_subscribe),
        sorted(&r.resource_names_unsubscribe)
    )
}

/// The delta ADS session against a proxy started by `start`: LDS (one
/// listener's routes by RDS) and CDS (an EDS cluster) brought up, an
/// assignment and a route config updated, a bad cluster NACKed, a cluster
/// and a listener removed, the management server lost and back. What served
/// each step, the stats, `/config_dump`'s versions and the requests.
fn session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> Vec<String> {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let mut xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[ads_eds_cluster("app", "app"), static_cluster("b", &[b.port()])]));
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("app", &[a.port()])]);
    xds.push(LISTENER_TYPE, "l1", vec![rds_listener("web", "routes"), web_listener("other", "", "b")]);
    xds.push(ROUTE_TYPE, "r1", vec![routes("routes", &prefix_route("/", "app", ""))]);
    let (admin, guard) = start(&delta_bootstrap(&xds, "    set_node_on_first_message_only: true\n"));
    let mut out = Vec::new();
    let stat = |name: &str| admin_stat(admin, name);
    let served = |step: &str, out: &mut Vec<String>| {
        let listeners = crate::harness::http_request(admin, "GET", "/listeners").1;
        for (listener, path) in [("web", "/"), ("web", "/b"), ("other", "/")] {
            let who = if !listeners.contains(&format!("{listener}::")) {
                "no listener".to_string()
            } else {
                let r = Client::connect(admin_listener(admin, listener)).get(path);
                if r.status == 200 {
                    r.seen().upstream().to_string()
                } else {
                    r.status.to_string()
                }
            };
            out.push(format!("{step} {listener} {path}: {who}"));
        }
    };
    xds.wait_delta_request(0, |r| is_ack(r, ROUTE_TYPE));
    xds.wait_delta_request(0, |r| is_ack(r, LISTENER_TYPE));
    served("up", &mut out);

    // Updates: the assignment moves to b, then a route to the static cluster.
    let seen = xds.delta_requests().len();
    xds.push(ENDPOINT_TYPE, "e2", vec![assignment("app", &[b.port()])]);
    xds.wait_delta_request(seen, |r| is_ack(r, ENDPOINT_TYPE));
    let seen = xds.delta_requests().len();
    xds.push(ROUTE_TYPE, "r2", vec![routes("routes", &(prefix_route("/b", "b", "") + &prefix_route("/", "app", "")))]);
    xds.wait_delta_request(seen, |r| is_ack(r, ROUTE_TYPE));
    served("updated", &mut out);

    // Refused by both: a STATIC cluster's endpoint must be an IP address.
    let seen = xds.delta_requests().len();
    let bad = static_cluster("bad", &[a.port()]).replace("127.0.0.1", "localhost");
    let c2 = [ads_eds_cluster("app", "app"), static_cluster("b", &[b.port()]), bad];
    xds.push(CLUSTER_TYPE, "c2", clusters(&c2));
    xds.wait_delta_request(seen, |r| is_nack(r, CLUSTER_TYPE));
    // And an endpoint's: the last assignment serves.
    let seen = xds.delta_requests().len();
    let bad = "- cluster_name: app\n  endpoints:\n  - lb_endpoints:\n    - endpoint: { address: { socket_address: { address: localhost, port_value: 1 } } }\n";
    xds.push(ENDPOINT_TYPE, "e-bad", vec![resource(ENDPOINT_TYPE, bad)]);
    xds.wait_delta_request(seen, |r| is_nack(r, ENDPOINT_TYPE));
    served("nacked", &mut out);

    // Removed: cluster b (its route answers 503) and listener other.
    let seen = xds.delta_requests().len();
    xds.push(CLUSTER_TYPE, "c3", clusters(&[ads_eds_cluster("app", "app")]));
    xds.wait_delta_request(seen, |r| is_ack(r, CLUSTER_TYPE));
    let seen = xds.delta_requests().len();
    xds.remove(LISTENER_TYPE, "l2", &["other"]);
    xds.wait_delta_request(seen, |r| is_ack(r, LISTENER_TYPE));
    wait_for("listener other is still there", || stat("listener_manager.total_listeners_active") == 1);
    served("removed", &mut out);

    // The management server goes away and comes back: the new stream says
    // what the proxy has, and a later update flows on it.
    xds.stop();
    wait_for("still connected", || stat("control_plane.connected_state") == 0);
    let seen = xds.delta_requests().len();
    xds.restart();
    xds.wait_delta_request(seen, |r| is_type(r, ROUTE_TYPE));
    // The refused assignment is not what the proxy says it has: sent again, refused again.
    xds.wait_delta_request(seen, |r| is_nack(r, ENDPOINT_TYPE));
    wait_for("not connected again", || stat("control_plane.connected_state") == 1);
    xds.push(ENDPOINT_TYPE, "e3", vec![assignment("app", &[a.port()])]);
    xds.wait_delta_request(seen, |r| is_ack(r, ENDPOINT_TYPE));
    served("reconnected", &mut out);

    for prefix in ["cluster_manager.cds.", "listener_manager.lds.", "cluster.app.", "http.ingress.rds.routes."] {
        // Attempts less failures: how many failures a lost stream counts depends on the back-off.
        let failures = stat(&format!("{prefix}update_failure"));
        assert!(failures >= 1, "{prefix}update_failure");
        let attempts = stat(&format!("{prefix}update_attempt")) - failures;
        out.push(format!("{prefix}update_attempt - update_failure: {attempts}"));
        for name in ["update_success", "update_rejected", "init_fetch_timeout", "version"] {
            out.push(format!("{prefix}{name}: {}", stat(&format!("{prefix}{name}"))));
        }
    }
    for name in [
        "control_plane.connected_state",
        "cluster_manager.cluster_removed",
        "listener_manager.listener_removed",
        "http.ingress.rds.routes.config_reload",
    ] {
        out.push(format!("{name}: {}", stat(name)));
    }
    let dump = crate::harness::http_request(admin, "GET", "/config_dump").1;
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    for config in dump["configs"].as_array().into_iter().flatten() {
        let ty = config["@type"].as_str().unwrap_or_default();
        if ty.ends_with("ClustersConfigDump") {
            out.push(format!("clusters version_info {}", config["version_info"]));
            for c in config["dynamic_active_clusters"].as_array().into_iter().flatten() {
                out.push(format!("cluster {} version_info {}", c["cluster"]["name"], c["version_info"]));
            }
        }
        if ty.ends_with("ListenersConfigDump") {
            out.push(format!("listeners version_info {}", config["version_info"]));
            // (Envoy lists a removed listener while it drains, without an active state.)
            let active =
                config["dynamic_listeners"].as_array().into_iter().flatten().filter(|l| !l["active_state"].is_null());
            for l in active {
                out.push(format!("listener {} version_info {}", l["name"], l["active_state"]["version_info"]));
            }
        }
        // The route config's own version, not the response's (as the others).
        if ty.ends_with("RoutesConfigDump") {
            for r in config["dynamic_route_configs"].as_array().into_iter().flatten() {
                out.push(format!("route {} version_info {}", r["route_config"]["name"], r["version_info"]));
            }
        }
    }
    drop(guard);
    out.extend(
        xds.delta_requests()
            .iter()
            .map(|(method, r)| format!("{} {}", method.rsplit('/').next().unwrap_or_default(), delta_summary(r))),
    );
    out
}

/// The delta ADS session against the real Envoy 1.40 and Courier: the same
/// requests (subscriptions, ACKs, NACKs, where the node goes, what a new
/// stream says it has), what served each step, the stats and versions
/// (`/config_dump` shows each resource's own version, as Envoy's).
#[test]
fn delta_ads_requests_traffic_and_stats_match_envoys() {
    let courier = same_as_envoy(session);
    let expected = [
        "up web /: a",
        "up web /b: a",
        "up other /: b",
        "updated web /: b",
        "updated web /b: b",
        "updated other /: b",
        "nacked web /: b",
        "nacked web /b: b",
        "nacked other /: b",
        "removed web /: b",
        "removed web /b: 503",
        "removed other /: no listener",
        "reconnected web /: a",
        "reconnected web /b: 503",
        "reconnected other /: no listener",
    ];
    assert_eq!(courier[..expected.len()], expected, "{courier:#?}");
    // The route config's own version, where the response's is r2.
    assert!(courier.iter().any(|l| l == "route \"routes\" version_info \"res-r2\""), "{courier:#?}");
}

#[test]
fn delta_ads_serves_nacks_with_the_field_path_and_resumes_with_initial_versions() {
    let a = http_upstream("a");
    let mut xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    let c = Courier::start(&delta_bootstrap(&xds, ""), 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    let requests = xds.delta_requests();
    let (method, first) = &requests[0];
    assert!(method.ends_with("AggregatedDiscoveryService/DeltaAggregatedResources"), "{method}");
    assert_eq!(first.type_url, CLUSTER_TYPE);
    assert!(first.resource_names_subscribe.is_empty(), "a wildcard subscription names nothing: {first:?}");
    // The node names Courier where Envoy's names itself ("envoy", 1.40.0).
    let node = first.node.as_ref().expect("the first request carries the node");
    assert_eq!((node.id.as_str(), node.user_agent_name.as_str()), ("test-node", "courier"));
    assert!(node.user_agent_version_type.is_some(), "{node:?}");
    assert!(node.client_features.is_empty(), "{node:?}");
    xds.wait_delta_request(0, |r| is_ack(r, LISTENER_TYPE));
    assert_eq!(c.stat("cluster_manager.cds.update_success"), Some(1));

    // A field Courier does not act on: NACKed by its path in the response
    // (resources[0], the one that changed), the old cluster serving.
    let seen = xds.delta_requests().len();
    let unsupported = format!("{}    outlier_detection: {{}}\n", static_cluster("a", &[a.port()]));
    xds.push(CLUSTER_TYPE, "c2", clusters(&[unsupported]));
    let (_, nack) = xds.wait_delta_request(seen, |r| is_nack(r, CLUSTER_TYPE));
    assert!(!nack.response_nonce.is_empty());
    let status = nack.error_detail.expect("error_detail");
    assert_eq!(status.code, 13);
    assert!(status.message.contains("resources[0].outlier_detection"), "{}", status.message);
    c.wait_stat("cluster_manager.cds.update_rejected", |v| v == 1);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");

    // The server comes back: CDS says it has c1's cluster, LDS l1's listener.
    xds.stop();
    c.wait_stat("control_plane.connected_state", |v| v == 0);
    let seen = xds.delta_requests().len();
    xds.restart();
    let (_, cds) = xds.wait_delta_request(seen, |r| is_type(r, CLUSTER_TYPE) && r.response_nonce.is_empty());
    let versions: Vec<(String, String)> = cds.initial_resource_versions.into_iter().collect();
    assert_eq!(versions, [("a".to_string(), "res-c1".to_string())]);
    let (_, lds) = xds.wait_delta_request(seen, |r| is_type(r, LISTENER_TYPE) && r.response_nonce.is_empty());
    assert_eq!(lds.initial_resource_versions.get("web").map(String::as_str), Some("res-l1"));
    // The server resends the refused cluster (Courier does not have it): NACKed again.
    xds.wait_delta_request(seen, |r| is_nack(r, CLUSTER_TYPE));
    xds.push(CLUSTER_TYPE, "c3", clusters(&[static_cluster("a", &[a.port()]), static_cluster("b", &[a.port()])]));
    xds.wait_delta_request(seen, |r| is_ack(r, CLUSTER_TYPE));
    c.wait_stat("cluster_manager.active_clusters", |v| v == 3);
}

/// A listener removed by `removed_resources` stops accepting; its request in
/// flight completes and its connection closes (drained), as with SotW.
#[test]
fn a_listener_removed_by_delta_drains() {
    let gate = Gate::new();
    let up = holding_upstream("held", &gate);
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("up", &[up.port()])]));
    let web = resource(LISTENER_TYPE, &http_listener("web", "", &one_vhost(&prefix_route("/", "up", "")), ""));
    xds.push(LISTENER_TYPE, "l1", vec![web]);
    let c = Courier::start(&delta_bootstrap(&xds, ""), 2);
    let addr = c.listener("web");
    let mut held = Client::connect(addr);
    held.send_raw(&Client::encode_request("GET", "/", &[("x-test-hold", "1")], b""));
    gate.wait_held(1);

    xds.remove(LISTENER_TYPE, "l2", &["web"]);
    c.wait_stat("listener_manager.listener_removed", |v| v == 1);
    assert_eq!(c.stat("listener_manager.total_listeners_draining"), Some(1));
    wait_for("the removed listener still accepts", || std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT).is_err());
    gate.open();
    let response = held.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
}

/// Per-type delta streams (`api_config_source { api_type: DELTA_GRPC }`):
/// `DeltaClusters`, `DeltaListeners`, a listener's `DeltaRoutes`, and an EDS
/// cluster's `DeltaEndpoints`, which unsubscribes the cluster's name once CDS
/// removes it.
#[test]
fn per_type_delta_streams_subscribe_and_unsubscribe() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let xds = XdsServer::start();
    let source = "{ api_config_source: { api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }, resource_api_version: V3 }";
    let eds = |name: &str| {
        format!(
            "  - name: {name}\n    type: EDS\n    connect_timeout: 1s\n    eds_cluster_config: {{ eds_config: {source} }}\n"
        )
    };
    xds.push(CLUSTER_TYPE, "c1", clusters(&[eds("one"), eds("two")]));
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("one", &[a.port()]), assignment("two", &[b.port()])]);
    xds.push(LISTENER_TYPE, "l1", vec![rds_listener_on("web", "routes", source)]);
    xds.push(
        ROUTE_TYPE,
        "r1",
        vec![routes("routes", &(prefix_route("/two", "two", "") + &prefix_route("/", "one", "")))],
    );
    let yaml = format!(
        "node: {{ id: node-1, cluster: cluster-1 }}\ndynamic_resources:\n  cds_config: {source}\n  lds_config: {source}\nstatic_resources:\n  clusters:\n{}",
        xds_cluster(xds.port())
    );
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    assert_eq!(Client::connect(addr).get("/two").seen().upstream(), "b");
    let methods: Vec<String> = xds.delta_requests().into_iter().map(|(m, _)| m).collect();
    for service in ["DeltaClusters", "DeltaListeners", "DeltaEndpoints", "DeltaRoutes"] {
        assert!(methods.iter().any(|m| m.ends_with(service)), "{methods:?}");
    }
    let (_, eds_first) = xds.wait_delta_request(0, |r| is_type(r, ENDPOINT_TYPE));
    let mut names = eds_first.resource_names_subscribe.clone();
    names.sort();
    assert_eq!(names, ["one", "two"]);

    let seen = xds.delta_requests().len();
    xds.remove(CLUSTER_TYPE, "c2", &["two"]);
    let (_, unsub) =
        xds.wait_delta_request(seen, |r| is_type(r, ENDPOINT_TYPE) && !r.resource_names_unsubscribe.is_empty());
    assert_eq!(unsub.resource_names_unsubscribe, ["two"]);
    assert!(unsub.resource_names_subscribe.is_empty());
    // The unsubscribe goes out as the main thread applies the removal; the
    // worker gets the new cluster set by a post right after.
    wait_for("the removed cluster gone on the worker", || Client::connect(addr).get("/two").status == 503);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
}

/// An assignment and a route config in `removed_resources` against a proxy
/// started by `start`: what serves and their stats after (Envoy's EDS takes it
/// as an empty update, its RDS ignores it: both keep what they had).
fn eds_removal_session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> Vec<String> {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[ads_eds_cluster("app", "app"), static_cluster("b", &[b.port()])]));
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("app", &[a.port()])]);
    xds.push(LISTENER_TYPE, "l1", vec![rds_listener("web", "routes")]);
    xds.push(ROUTE_TYPE, "r1", vec![routes("routes", &(prefix_route("/b", "b", "") + &prefix_route("/", "app", "")))]);
    let (admin, guard) = start(&delta_bootstrap(&xds, ""));
    xds.wait_delta_request(0, |r| is_ack(r, ROUTE_TYPE));
    let mut out = Vec::new();
    let stat = |name: &str| admin_stat(admin, name);
    let served = |step: &str, out: &mut Vec<String>| {
        for path in ["/", "/b"] {
            let r = Client::connect(admin_listener(admin, "web")).get(path);
            let who = if r.status == 200 { r.seen().upstream().to_string() } else { r.status.to_string() };
            out.push(format!("{step} {path}: {who}"));
        }
        for prefix in ["cluster.app.", "http.ingress.rds.routes."] {
            for name in ["update_attempt", "update_success", "update_empty", "update_rejected", "version"] {
                out.push(format!("{step} {prefix}{name}: {}", stat(&format!("{prefix}{name}"))));
            }
        }
        out.push(format!("{step} cluster.app.membership_total: {}", stat("cluster.app.membership_total")));
    };
    served("e1", &mut out);
    let seen = xds.delta_requests().len();
    xds.remove(ENDPOINT_TYPE, "e2", &["app"]);
    xds.wait_delta_request(seen, |r| is_ack(r, ENDPOINT_TYPE));
    let seen = xds.delta_requests().len();
    xds.remove(ROUTE_TYPE, "r2", &["routes"]);
    xds.wait_delta_request(seen, |r| is_ack(r, ROUTE_TYPE));
    // What the removals did is seen once the next update is in.
    let seen = xds.delta_requests().len();
    xds.push(CLUSTER_TYPE, "c2", clusters(&[ads_eds_cluster("app", "app")]));
    xds.wait_delta_request(seen, |r| is_ack(r, CLUSTER_TYPE));
    served("removed", &mut out);
    drop(guard);
    out.extend(xds.delta_requests().iter().map(|(_, r)| delta_summary(r)));
    out
}

#[test]
fn an_assignment_and_routes_removed_by_delta_match_envoy() {
    same_as_envoy(eds_removal_session);
}
