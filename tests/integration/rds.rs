//! RDS from a file: connection managers whose `rds` names a route config in a
//! `path_config_source` file. Each test starts Courier, sends real traffic,
//! replaces the file by writing a new one beside it and renaming it over, and
//! waits for `http.ingress.rds.<name>.update_*` before looking.

use crate::harness::{static_cluster, swap_in, validate, Courier, TempDir};
use crate::http_util::{http_listener, prefix_route};
use crate::shared_net::http_upstream;
use crate::xds_files::discovery;

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
fn route_config(name: &str, routes: &str) -> String {
    let routes: String = routes.lines().map(|l| format!("{}\n", l.strip_prefix("        ").unwrap_or(l))).collect();
    format!("  - name: {name}\n    virtual_hosts:\n    - name: vh\n      domains: [\"*\"]\n      routes:\n{routes}")
}

fn counter(c: &Courier, name: &str) -> i64 {
    c.stat(&format!("{STATS}{name}")).unwrap_or_else(|| panic!("no stat {STATS}{name}"))
}

fn get(c: &Courier, listener: &str, path: &str) -> (u16, String) {
    let r = crate::http_util::Client::connect(c.listener(listener)).get(path);
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
    let routes_dump = &dump["configs"][3];
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
    // Not over a management server yet.
    let ads = rds_listener("web", &dir)
        .replace(&format!("path_config_source: {{ path: {}/rds.yaml }}", dir.0.display()), "ads: {}");
    let e = refused(&format!("node: {{ id: t, cluster: t }}\n{}", statics(ads)));
    assert!(e.contains("rds.config_source.ads: RDS over ADS is not supported by Courier yet"), "{e}");
}

/// The output of `--mode validate` on a config it refuses.
fn refused(yaml: &str) -> String {
    let (ok, text) = validate(yaml);
    assert!(!ok, "accepted: {yaml}");
    text
}
