//! A route config that no listener names any more, over ADS (state of the
//! world and delta): once the listener that named it drained, the stream asks
//! for it no longer (SotW's `resource_names` shrink, delta unsubscribes it),
//! `/config_dump` no longer lists it, and its `http.<prefix>.rds.<name>.*`
//! stats are deleted; a listener naming it again subscribes anew, its stats
//! starting over. Each session runs against Courier and the real Envoy 1.40 with
//! `--drain-time-s 1`, and both must send the same requests and end the same.

use envoy_types::pb::google::protobuf::Any;

use crate::harness::{http_request, static_cluster};
use crate::http_util::{http_listener, prefix_route};
use crate::rds::route_config;
use crate::shared_net::http_upstream;
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use crate::xds_delta::delta_summary;
use crate::xds_grpc::{
    admin_stat, ads_bootstrap, clusters, resource, start_courier_quick_drain, start_envoy_quick_drain, summary, Started,
};

/// A listener `web` whose routes are the route config `routes` over ADS.
fn rds_listener(routes: &str) -> Any {
    let rds = format!(
        "          rds:\n            route_config_name: {routes}\n            config_source: {{ ads: {{}}, resource_api_version: V3 }}\n"
    );
    resource(LISTENER_TYPE, &http_listener("web", "", "", "").replacen("          route_config:\n", &rds, 1))
}

/// Both route configs, as version `version`.
fn both_routes(xds: &XdsServer, version: &str, cluster: &str) {
    let routes = |name: &str| resource(ROUTE_TYPE, &route_config(name, &prefix_route("/", cluster, "")));
    xds.push(ROUTE_TYPE, version, vec![routes("routes1"), routes("routes2")]);
}

/// The route configs `/config_dump` lists.
fn dumped_routes(admin: std::net::SocketAddr) -> Vec<String> {
    let dump = http_request(admin, "GET", "/config_dump").1;
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    let mut names: Vec<String> = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["dynamic_route_configs"].as_array().cloned().unwrap_or_default())
        .map(|r| r["route_config"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// `routes1`'s counters ("absent" once deleted).
fn routes1_stats(admin: std::net::SocketAddr) -> String {
    let stats: Vec<String> = ["update_attempt", "update_success", "update_rejected", "config_reload", "version_text"]
        .iter()
        .map(|s| match admin_stat_text(admin, &format!("http.ingress.rds.routes1.{s}")) {
            Some(value) => format!("{s} {value}"),
            None => format!("{s} absent"),
        })
        .collect();
    stats.join(", ")
}

/// The value `/stats` shows for `name` (a counter's, a gauge's or a text
/// readout's), if it lists it.
fn admin_stat_text(admin: std::net::SocketAddr, name: &str) -> Option<String> {
    let (_, body) = http_request(admin, "GET", &format!("/stats?filter=^{name}$"));
    body.lines().find_map(|l| Some(l.strip_prefix(&format!("{name}: "))?.trim().to_string()))
}

fn session(delta: bool, start: fn(&str) -> Started) -> Vec<String> {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![rds_listener("routes1")]);
    both_routes(&xds, "r1", "a");
    let mut yaml = ads_bootstrap(&xds, "", "");
    if delta {
        yaml = yaml.replace("api_type: GRPC", "api_type: DELTA_GRPC");
    }
    let (admin, guard) = start(&yaml);
    // The requests naming exactly `names` (by a route request's names, or a
    // delta one's unsubscriptions): what the test waits for.
    let names_are = |after: usize, names: &[&str]| {
        if delta {
            xds.wait_delta_request(after, |r| r.type_url == ROUTE_TYPE && r.resource_names_unsubscribe == names);
        } else {
            xds.wait_request(after, |r| r.type_url == ROUTE_TYPE && r.resource_names == names);
        }
    };
    let seen = || if delta { xds.delta_requests().len() } else { xds.requests().len() };
    // A listener naming `routes`, and the route configs at `version`. On delta
    // the routes go first: pushed after, they raced the new subscription's
    // answer, and a proxy could end on the older version (seen once with
    // Envoy under load).
    let push = |listener: &str, routes: &str, version: &str| {
        if delta {
            both_routes(&xds, version, "a");
        }
        xds.push(LISTENER_TYPE, listener, vec![rds_listener(routes)]);
        if !delta {
            both_routes(&xds, version, "a");
        }
    };
    crate::harness::wait_for("routes1", || admin_stat(admin, "http.ingress.rds.routes1.update_success") == 1);
    let mut out = vec![format!("up: {:?}, {}", dumped_routes(admin), routes1_stats(admin))];

    // The listener moves to routes2: routes1 is asked for no longer once the
    // old listener drained.
    let before = seen();
    push("l2", "routes2", "r2");
    names_are(before, if delta { &["routes1"] } else { &["routes2"] });
    out.push(format!("released: {:?}, {}", dumped_routes(admin), routes1_stats(admin)));

    // And back: routes1 is subscribed anew, its stats starting over.
    let before = seen();
    push("l3", "routes1", "r3");
    names_are(before, if delta { &["routes2"] } else { &["routes1"] });
    out.push(format!("back: {:?}, {}", dumped_routes(admin), routes1_stats(admin)));
    drop(guard);
    if delta {
        out.extend(xds.delta_requests().iter().map(|(_, r)| delta_summary(r)));
    } else {
        out.extend(xds.requests().iter().map(|(_, r)| {
            let mut names = r.resource_names.clone();
            names.sort();
            format!("{} {names:?}", summary(r))
        }));
    }
    out
}

/// Runs `session` against Courier and Envoy (both draining in 1 s).
fn same_as_envoy(delta: bool) -> Vec<String> {
    let courier = session(delta, start_courier_quick_drain);
    if crate::http2_conformance::Envoy::bin().exists() {
        assert_eq!(courier, session(delta, start_envoy_quick_drain), "Courier (left) and Envoy 1.40 (right) differ");
    }
    courier
}

#[test]
fn a_route_config_no_listener_names_is_unsubscribed_as_envoys() {
    let out = same_as_envoy(false);
    assert_eq!(
        out[1],
        "released: [\"routes2\"], update_attempt absent, update_success absent, update_rejected absent, \
         config_reload absent, version_text absent"
    );
}

#[test]
fn a_route_config_no_listener_names_is_unsubscribed_on_delta_as_envoys() {
    let out = same_as_envoy(true);
    assert!(out.iter().any(|r| r.contains("unsub [\"routes1\"]")), "{out:#?}");
}
