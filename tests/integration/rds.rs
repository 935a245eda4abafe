//! RDS from a file: connection managers whose `rds` names a route config in a
//! `path_config_source` file. Each test starts Courier, sends real traffic,
//! replaces the file by writing a new one beside it and renaming it over, and
//! waits for `http.ingress.rds.<name>.update_*` before looking.

use envoy_types::pb::google::protobuf::Any;

use crate::harness::{static_cluster, swap_in, validate, Courier, TempDir};
use crate::http_util::{http_listener, prefix_route, Client};
use crate::shared_net::http_upstream;
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use crate::xds_files::discovery;
use crate::xds_grpc::{admin_listener, admin_stat, clusters, is_ack, resource, same_as_envoy, summary, xds_cluster};

const ROUTE: &str = "envoy.config.route.v3.RouteConfiguration";
const STATS: &str = "http.ingress.rds.routes.";

/// A listener `name` whose routes come from `dir/rds.yaml`'s `routes`.
fn rds_listener(name: &str, dir: &TempDir) -> String {
    let rds = format!(
        "          rds:\n            route_config_name: routes\n            config_source:\n              path_config_source: {{ path: {}/rds.yaml }}\n",
        dir.0.display()
    );
    // `http_listener` writes an inline `route_config`: put `rds` in its place.
    http_listener(name, "", "", "").replacen("          route_config:\n", &rds, 1)
}

/// A route config `name` (one virtual host) with `routes` (`prefix_route`'s,
/// which are indented for an inline `route_config`: moved 8 columns left).
pub fn route_config(name: &str, routes: &str) -> String {
    let routes: String = routes.lines().map(|l| format!("{}\n", l.strip_prefix("        ").unwrap_or(l))).collect();
    format!("  - name: {name}\n    virtual_hosts:\n    - name: vh\n      domains: [\"*\"]\n      routes:\n{routes}")
}

fn counter(c: &Courier, name: &str) -> i64 {
    c.stat(&format!("{STATS}{name}")).unwrap_or_else(|| panic!("no stat {STATS}{name}"))
}

fn get(c: &Courier, listener: &str, path: &str) -> (u16, String) {
    let r = Client::connect(c.listener(listener)).get(path);
    let body = if r.status == 200 { r.seen().upstream().to_string() } else { String::new() };
    (r.status, body)
}

#[test]
fn routes_from_an_rds_file_serve_and_a_moved_in_file_changes_them() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let dir = TempDir::new("rds-file");
    dir.file("rds.yaml", &discovery(ROUTE, "v1", &[route_config("routes", &prefix_route("/a", "a", ""))]));
    // Two connection managers naming the same route config (its
    // `config_source` and name) share one subscription.
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\n{}",
        crate::harness::config(
            &[rds_listener("one", &dir), rds_listener("two", &dir)],
            &[static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()])]
        )
    );
    let c = Courier::start(&yaml, 2);
    assert_eq!(get(&c, "one", "/a"), (200, "a".into()));
    assert_eq!(get(&c, "two", "/a"), (200, "a".into()));
    assert_eq!(get(&c, "one", "/b").0, 404);
    assert_eq!(counter(&c, "update_attempt"), 1);
    assert_eq!(counter(&c, "update_success"), 1);
    assert_eq!(counter(&c, "config_reload"), 1);

    // A moved-in file changes what both route, on every worker.
    let routes = prefix_route("/b", "b", "") + &prefix_route("/a", "a", "");
    swap_in(&dir.0, "rds.yaml", &discovery(ROUTE, "v2", &[route_config("routes", &routes)]));
    c.wait_stat(&format!("{STATS}update_success"), |v| v == 2);
    for _ in 0..4 {
        assert_eq!(get(&c, "one", "/b"), (200, "b".into()));
        assert_eq!(get(&c, "two", "/b"), (200, "b".into()));
    }
    assert_eq!(counter(&c, "config_reload"), 2);
    let (_, dump) = c.admin_get("/config_dump");
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    let routes_dump = crate::harness::dumped_config(&dump, "RoutesConfigDump");
    assert_eq!(routes_dump["@type"], "type.googleapis.com/envoy.admin.v3.RoutesConfigDump");
    let dynamic = &routes_dump["dynamic_route_configs"][0];
    assert_eq!(dynamic["version_info"], "v2");
    assert_eq!(dynamic["route_config"]["@type"], format!("type.googleapis.com/{ROUTE}"));
    assert_eq!(dynamic["route_config"]["name"], "routes");
    assert_eq!(dynamic["route_config"]["virtual_hosts"][0]["routes"][0]["match"]["prefix"], "/b");
    assert!(dynamic["last_updated"].as_str().is_some_and(|t| t.ends_with('Z')), "{dynamic}");

    // Refused: a bad regex (by its field path), a name other than the
    // `route_config_name`, two configs. The running routes keep serving.
    let bad = "      - match: { safe_regex: { regex: \"[\" } }\n        route: { cluster: a }\n";
    let bad =
        format!("  - name: routes\n    virtual_hosts:\n    - name: vh\n      domains: [\"*\"]\n      routes:\n{bad}");
    swap_in(&dir.0, "rds.yaml", &discovery(ROUTE, "v3", &[bad]));
    c.wait_stat(&format!("{STATS}update_rejected"), |v| v == 1);
    assert!(c.log().contains("resources[0].virtual_hosts[0].routes[0].match.safe_regex"), "{}", c.log());
    swap_in(&dir.0, "rds.yaml", &discovery(ROUTE, "v4", &[route_config("other", &routes)]));
    c.wait_stat(&format!("{STATS}update_rejected"), |v| v == 2);
    assert!(c.log().contains("Unexpected RDS configuration (expecting routes): other"), "{}", c.log());
    swap_in(
        &dir.0,
        "rds.yaml",
        &discovery(ROUTE, "v5", &[route_config("routes", &routes), route_config("x", &routes)]),
    );
    c.wait_stat(&format!("{STATS}update_rejected"), |v| v == 3);
    assert!(c.log().contains("Unexpected RDS resource length: 2"), "{}", c.log());
    assert_eq!(get(&c, "one", "/b"), (200, "b".into()));
    assert_eq!(counter(&c, "update_success"), 2);

    // No resource: accepted (`update_empty`), the routes stay. The same table
    // again is no reload. A route to a cluster that does not exist is taken
    // (`validate_clusters` is off for RDS) and answers 503.
    swap_in(&dir.0, "rds.yaml", &discovery(ROUTE, "v6", &[]));
    c.wait_stat(&format!("{STATS}update_success"), |v| v == 3);
    assert_eq!(counter(&c, "update_empty"), 1);
    assert_eq!(get(&c, "one", "/b"), (200, "b".into()));
    let (_, dump) = c.admin_get("/config_dump");
    assert!(dump.contains("\"version_info\": \"v2\""), "the table of v2 runs: {dump}");
    swap_in(&dir.0, "rds.yaml", &discovery(ROUTE, "v7", &[route_config("routes", &routes)]));
    c.wait_stat(&format!("{STATS}update_success"), |v| v == 4);
    assert_eq!(counter(&c, "config_reload"), 2);
    let missing = prefix_route("/m", "missing", "") + &routes;
    swap_in(&dir.0, "rds.yaml", &discovery(ROUTE, "v8", &[route_config("routes", &missing)]));
    c.wait_stat(&format!("{STATS}update_success"), |v| v == 5);
    assert_eq!(get(&c, "one", "/m").0, 503);
    assert_eq!(counter(&c, "config_reload"), 3);
}

#[test]
fn an_lds_listener_with_rds_serves_its_routes_once_applied() {
    let a = http_upstream("a");
    let dir = TempDir::new("rds-lds");
    dir.file("rds.yaml", &discovery(ROUTE, "r1", &[route_config("routes", &prefix_route("/", "a", ""))]));
    dir.file("lds.yaml", &discovery("envoy.config.listener.v3.Listener", "l1", &[rds_listener("web", &dir)]));
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\ndynamic_resources:\n  lds_config:\n    path_config_source: {{ path: {}/lds.yaml }}\n{}",
        dir.0.display(),
        crate::harness::config(&[], &[static_cluster("a", &[a.port()])]).replace("  listeners:\n", "  listeners: []\n")
    );
    let c = Courier::start(&yaml, 1);
    assert_eq!(get(&c, "web", "/x"), (200, "a".into()));
    assert_eq!(counter(&c, "update_success"), 1);
}

#[test]
fn rds_config_errors_name_the_field() {
    let dir = TempDir::new("rds-errors");
    let statics = |listener: String| crate::harness::config(&[listener], &[]);
    // No node: Envoy's message as it subscribes.
    let e = refused(&statics(rds_listener("web", &dir)));
    assert!(e.contains("node 'id' and 'cluster' are required"), "{e}");
    // The file must be there.
    let e = refused(&format!("node: {{ id: t, cluster: t }}\n{}", statics(rds_listener("web", &dir))));
    assert!(e.contains("rds.config_source: paths must refer to an existing path"), "{e}");
    // ADS needs `ads_config`; a stream of its own, a static HTTP/2 cluster.
    let file = format!("path_config_source: {{ path: {}/rds.yaml }}", dir.0.display());
    let ads = rds_listener("web", &dir).replace(&file, "ads: {}");
    let e = refused(&format!("node: {{ id: t, cluster: t }}\n{}", statics(ads)));
    assert!(e.contains("http.ingress.rds.routes.config_source.ads: ADS must be configured"), "{e}");
    let grpc = rds_listener("web", &dir).replace(
        &file,
        "api_config_source: { api_type: GRPC, grpc_services: [{ envoy_grpc: { cluster_name: nowhere } }] }",
    );
    let e = refused(&format!("node: {{ id: t, cluster: t }}\n{}", statics(grpc)));
    assert!(e.contains("Unknown gRPC client cluster 'nowhere'"), "{e}");
}

/// The output of `--mode validate` on a config it refuses.
fn refused(yaml: &str) -> String {
    let (ok, text) = validate(yaml);
    assert!(!ok, "accepted: {yaml}");
    text
}

/// A bootstrap with CDS over ADS to `xds` and a static listener `web` whose
/// routes (`routes`) come over ADS too.
fn ads_rds_bootstrap(xds: &XdsServer, rds_extra: &str) -> String {
    rds_bootstrap(xds, &format!("{{ ads: {{}}, resource_api_version: V3{rds_extra} }}"))
}

/// `ads_rds_bootstrap` with `source` as the route config's `config_source`.
fn rds_bootstrap(xds: &XdsServer, source: &str) -> String {
    let rds = format!("          rds:\n            route_config_name: routes\n            config_source: {source}\n");
    format!(
        "node: {{ id: test-node, cluster: test-cluster }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds }} }}]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  listeners:
{}  clusters:
{}",
        http_listener("web", "", "", "").replacen("          route_config:\n", &rds, 1),
        xds_cluster(xds.port())
    )
}

/// A route config pushed by the management server.
fn pushed_routes(name: &str, routes: &str) -> Any {
    resource(ROUTE_TYPE, &route_config(name, routes))
}

/// The RDS-over-ADS session against a proxy started by `start` (its admin
/// address and a guard that stops it): what served each step, the rds stats,
/// and the requests the control plane got.
fn ads_session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> Vec<String> {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()])]));
    // A route config nobody asked for rides along, ignored.
    let r1 = vec![pushed_routes("routes", &prefix_route("/", "a", "")), pushed_routes("unasked", "")];
    xds.push(ROUTE_TYPE, "r1", r1);
    let (admin, guard) = start(&ads_rds_bootstrap(&xds, ""));
    let mut out = Vec::new();
    let stat = |name: &str| admin_stat(admin, name);
    let listener = || admin_listener(admin, "web");
    let served = |step: &str, out: &mut Vec<String>| {
        for path in ["/", "/b"] {
            let r = Client::connect(listener()).get(path);
            let who = if r.status == 200 { r.seen().upstream().to_string() } else { r.status.to_string() };
            out.push(format!("{step} {path}: {who}"));
        }
    };
    xds.wait_request(0, |r| is_ack(r, ROUTE_TYPE, "r1"));
    served("r1", &mut out);
    let routes = prefix_route("/b", "b", "") + &prefix_route("/", "a", "");
    xds.push(ROUTE_TYPE, "r2", vec![pushed_routes("routes", &routes)]);
    xds.wait_request(0, |r| is_ack(r, ROUTE_TYPE, "r2"));
    served("r2", &mut out);
    // Refused by both: a regex that does not compile. The old routes serve.
    let seen = xds.requests().len();
    let bad = "              - match: { safe_regex: { regex: \"[\" } }\n                route: { cluster: a }\n";
    xds.push(ROUTE_TYPE, "r3", vec![pushed_routes("routes", bad)]);
    xds.wait_request(seen, |r| r.type_url == ROUTE_TYPE && r.error_detail.is_some());
    served("r3", &mut out);
    // A response without the subscribed name changes nothing.
    xds.push(ROUTE_TYPE, "r4", vec![pushed_routes("unasked", &routes)]);
    xds.wait_request(seen, |r| is_ack(r, ROUTE_TYPE, "r4"));
    served("r4", &mut out);
    let names = ["update_attempt", "update_success", "update_rejected", "update_empty", "init_fetch_timeout"];
    for name in names.into_iter().chain(["config_reload", "version"]) {
        out.push(format!("{name}: {}", stat(&format!("{STATS}{name}"))));
    }
    drop(guard);
    out.extend(xds.requests().iter().map(|(method, r)| {
        let names = format!("{:?}", r.resource_names);
        format!("{} {} {names}", method.rsplit('/').next().unwrap_or_default(), summary(r))
    }));
    out
}

#[test]
fn routes_over_ads_are_asked_for_by_name_pushed_updated_and_nacked() {
    let courier = ads_session(|yaml| {
        let c = Courier::start(yaml, 2);
        (c.admin, c)
    });
    let expected_served = ["r1 /: a", "r1 /b: a", "r2 /: a", "r2 /b: b", "r3 /: a", "r3 /b: b", "r4 /: a", "r4 /b: b"];
    assert_eq!(courier[..8], expected_served, "{courier:#?}");
    assert!(courier.contains(&"update_rejected: 1".to_string()), "{courier:#?}");
    assert!(courier.contains(&"config_reload: 2".to_string()), "{courier:#?}");
    // The route request names the route_config_name.
    assert!(
        courier.iter().any(|l| l.contains("RouteConfiguration version 'r2'") && l.contains("[\"routes\"]")),
        "{courier:#?}"
    );
}

/// The RDS-over-ADS session against the real Envoy 1.40 and Courier.
#[test]
fn rds_over_ads_matches_envoy() {
    same_as_envoy(ads_session);
}

/// An LDS listener `web` whose routes are `route_config_name` over ADS.
fn ads_rds_listener(route_config_name: &str) -> Any {
    let rds = format!(
        "          rds:\n            route_config_name: {route_config_name}\n            config_source: {{ ads: {{}}, resource_api_version: V3 }}\n"
    );
    resource(LISTENER_TYPE, &http_listener("web", "", "", "").replacen("          route_config:\n", &rds, 1))
}

/// The LDS-with-RDS session against a proxy started by `start`: a listener
/// replaced by one naming routes not pushed yet warms (the old one serving)
/// until they come.
fn warming_session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> Vec<String> {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![ads_rds_listener("first")]);
    xds.push(ROUTE_TYPE, "r1", vec![pushed_routes("first", &prefix_route("/", "a", ""))]);
    let (admin, guard) = start(&crate::xds_grpc::ads_bootstrap(&xds, "", ""));
    let mut out = Vec::new();
    let stat = |name: &str| admin_stat(admin, name);
    let listener = || admin_listener(admin, "web");
    let served = |step: &str, out: &mut Vec<String>| {
        let r = Client::connect(listener()).get("/");
        let who = if r.status == 200 { r.seen().upstream().to_string() } else { r.status.to_string() };
        out.push(format!("{step}: {who}, warming {}", stat("listener_manager.total_listeners_warming")));
    };
    // Start-up waited for the first listener's routes.
    served("l1", &mut out);
    // The replacement names routes nobody pushed yet: it warms, the old one serves.
    let seen = xds.requests().len();
    xds.push(LISTENER_TYPE, "l2", vec![ads_rds_listener("second")]);
    xds.wait_request(seen, |r| is_ack(r, LISTENER_TYPE, "l2"));
    xds.wait_request(seen, |r| r.type_url == ROUTE_TYPE && r.resource_names.contains(&"second".to_string()));
    served("l2", &mut out);
    let routes =
        vec![pushed_routes("first", &prefix_route("/", "a", "")), pushed_routes("second", &prefix_route("/", "b", ""))];
    xds.push(ROUTE_TYPE, "r2", routes);
    xds.wait_request(seen, |r| is_ack(r, ROUTE_TYPE, "r2"));
    // Warmed: the new listener takes over as each worker takes the update. A
    // connection lands on either worker, so eight in a row reaching "b" say
    // both have it (one alone was a race with the other worker).
    let mut in_a_row = 0;
    crate::harness::wait_for("the warmed listener serving on every worker", || {
        let r = Client::connect(listener()).get("/");
        let b = r.status == 200 && r.seen().upstream() == "b";
        in_a_row = if b { in_a_row + 1 } else { 0 };
        in_a_row >= 8 && stat("listener_manager.total_listeners_warming") == 0
    });
    served("r2", &mut out);
    for name in ["listener_added", "listener_modified", "listener_create_success", "total_listeners_active"] {
        out.push(format!("{name}: {}", stat(&format!("listener_manager.{name}"))));
    }
    drop(guard);
    out.extend(xds.requests().iter().map(|(_, r)| {
        let mut names = r.resource_names.clone();
        names.sort();
        format!("{} {names:?}", summary(r))
    }));
    out
}

#[test]
fn an_lds_listener_with_rds_warms_until_its_routes_come() {
    let courier = warming_session(|yaml| {
        let c = Courier::start(yaml, 2);
        (c.admin, c)
    });
    assert_eq!(courier[..3], ["l1: a, warming 0", "l2: a, warming 1", "r2: b, warming 0"], "{courier:#?}");
}

/// The warming session against the real Envoy 1.40 and Courier.
#[test]
fn lds_rds_warming_matches_envoy() {
    same_as_envoy(warming_session);
}

/// A static listener whose routes never came within `initial_fetch_timeout`:
/// the proxy starts with no route (404), then serves them once pushed.
fn fetch_timeout_session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> Vec<String> {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    let (admin, guard) = start(&ads_rds_bootstrap(&xds, ", initial_fetch_timeout: 0.3s"));
    let stat = |name: &str| admin_stat(admin, name);
    let listener = || admin_listener(admin, "web");
    let mut out = vec![format!("no routes: {}", Client::connect(listener()).get("/").status)];
    xds.push(ROUTE_TYPE, "r1", vec![pushed_routes("routes", &prefix_route("/", "a", ""))]);
    xds.wait_request(0, |r| is_ack(r, ROUTE_TYPE, "r1"));
    out.push(format!("r1: {}", Client::connect(listener()).get("/").seen().upstream()));
    for name in ["init_fetch_timeout", "update_attempt", "update_success", "config_reload"] {
        out.push(format!("{name}: {}", stat(&format!("{STATS}{name}"))));
    }
    drop(guard);
    out
}

#[test]
fn a_static_listener_starts_without_routes_after_the_initial_fetch_timeout() {
    let courier = same_as_envoy(fetch_timeout_session);
    let expected = [
        "no routes: 404",
        "r1: a",
        "init_fetch_timeout: 1",
        "update_attempt: 3",
        "update_success: 1",
        "config_reload: 1",
    ];
    assert_eq!(courier, expected);
}

/// Routes on a stream of their own (`StreamRoutes`), against Envoy 1.40 too.
fn own_stream_session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> Vec<String> {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(ROUTE_TYPE, "r1", vec![pushed_routes("routes", &prefix_route("/", "a", ""))]);
    let source = "{ api_config_source: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }, resource_api_version: V3 }";
    let (admin, guard) = start(&rds_bootstrap(&xds, source));
    xds.wait_request(0, |r| is_ack(r, ROUTE_TYPE, "r1"));
    let addr = admin_listener(admin, "web");
    let mut out = vec![format!("r1: {}", Client::connect(addr).get("/").seen().upstream())];
    drop(guard);
    out.extend(xds.requests().iter().map(|(method, r)| {
        format!("{} {} {:?}", method.rsplit('/').next().unwrap_or_default(), summary(r), r.resource_names)
    }));
    out
}

#[test]
fn routes_on_a_stream_of_their_own() {
    let courier = same_as_envoy(own_stream_session);
    assert_eq!(courier[0], "r1: a");
    assert!(courier.iter().any(|l| l.starts_with("StreamRoutes RouteConfiguration version 'r1'")), "{courier:#?}");
}
