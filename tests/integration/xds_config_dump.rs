//! `/config_dump` while xDS resources move between states, against the real
//! Envoy 1.40 on the same control-plane sequence: a cluster warming until its
//! assignment (`dynamic_warming_clusters`), a listener warming until its
//! routes (`warming_state`, its predecessor still `active_state`), one
//! replaced or removed and draining (`draining_state`), a cluster replaced
//! by one that warms (both shown), and the route configs
//! written inline in the listeners (`static_route_configs`). Each step waits
//! on the requests the control plane got and on stats, never on time.

use serde_json::Value;

use crate::harness::{http_request, static_cluster, wait_for};
use crate::http_util::{http_listener, one_vhost, prefix_route, Client};
use crate::rds::route_config;
use crate::shared_net::http_upstream;
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};
use crate::xds_grpc::{
    admin_listener, admin_stat, ads_bootstrap, ads_eds_cluster, assignment, clusters, is_ack, resource, same_as_envoy,
    web_listener, Started,
};

/// The clusters, listeners and route configs of the dump, one line per
/// value (`step Type.path = value`), with every `last_updated` and port
/// masked and the inline route configs (which Envoy lists in no set order)
/// sorted.
fn dumped(admin: std::net::SocketAddr, step: &str) -> Vec<String> {
    let (_, body) = http_request(admin, "GET", "/config_dump");
    let dump: Value = serde_json::from_str(&body).expect("config_dump is JSON");
    let mut lines = Vec::new();
    for mut config in dump["configs"].as_array().cloned().unwrap_or_default() {
        let kind = config["@type"].as_str().unwrap_or_default().rsplit('.').next().unwrap_or_default().to_string();
        if !["ClustersConfigDump", "ListenersConfigDump", "ScopedRoutesConfigDump", "RoutesConfigDump"]
            .contains(&kind.as_str())
        {
            continue;
        }
        if let Some(routes) = config.get_mut("static_route_configs").and_then(Value::as_array_mut) {
            routes.sort_by_key(|r| r.to_string());
        }
        flatten(&config, &format!("{step} {kind}"), &mut lines);
    }
    lines
}

fn flatten(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(fields) => {
            for (k, v) in fields {
                match k.as_str() {
                    "last_updated" | "port_value" => out.push(format!("{path}.{k} = (masked)")),
                    _ => flatten(v, &format!("{path}.{k}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(format!("{path} = {v}")),
    }
}

/// An upstream TLS context whose certificate is the secret `s1` over ADS.
const TLS_FROM_SDS: &str = "    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificate_sds_secret_configs: [{ name: s1, sds_config: { ads: {}, resource_api_version: V3 } }]
";

/// The listener `web` with its routes from RDS (`rc1`, over ADS) and a
/// buffer limit, so that replacing the inline-routed one is not in place.
fn rds_web_listener() -> envoy_types::pb::google::protobuf::Any {
    let rds = "          rds:\n            route_config_name: rc1\n            config_source: { ads: {}, resource_api_version: V3 }\n";
    let yaml = http_listener("web", "", "", "").replacen("          route_config:\n", rds, 1).replacen(
        "    filter_chains:\n",
        "    per_connection_buffer_limit_bytes: 65536\n    filter_chains:\n",
        1,
    );
    resource(LISTENER_TYPE, &yaml)
}

fn session(start: fn(&str) -> Started) -> Vec<String> {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[ads_eds_cluster("app", "app-svc")]));
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("app-svc", &[a.port()])]);
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "app")]);
    // A static listener with its routes inline, to the management server's cluster.
    let inline = http_listener("local", "", &one_vhost(&prefix_route("/", "xds", "")), "");
    let (admin, guard) = start(&format!("{}  listeners:\n{inline}", ads_bootstrap(&xds, "", "")));
    let mut out = Vec::new();
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    assert_eq!(Client::connect(admin_listener(admin, "web")).get("/").status, 200);
    out.extend(dumped(admin, "l1"));

    // A cluster added warms until its assignment comes.
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c2", clusters(&[ads_eds_cluster("app", "app-svc"), ads_eds_cluster("two", "two-svc")]));
    xds.wait_request(seen, |r| r.type_url == ENDPOINT_TYPE && r.resource_names.len() == 2);
    out.extend(dumped(admin, "c2 warming"));
    xds.push(ENDPOINT_TYPE, "e2", vec![assignment("app-svc", &[a.port()]), assignment("two-svc", &[a.port()])]);
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c2"));
    out.extend(dumped(admin, "c2 warm"));

    // A cluster replaced by one whose secret has not come warms; the old one
    // stays active meanwhile.
    let seen = xds.requests().len();
    let tls_app = static_cluster("app", &[a.port()]) + TLS_FROM_SDS;
    xds.push(CLUSTER_TYPE, "c3", clusters(&[tls_app, ads_eds_cluster("two", "two-svc")]));
    xds.wait_request(seen, |r| r.type_url == SECRET_TYPE && r.resource_names == ["s1"]);
    out.extend(dumped(admin, "c3 warming"));

    // A listener replaced by one whose routes have not come warms; the old one serves.
    let seen = xds.requests().len();
    xds.push(LISTENER_TYPE, "l2", vec![rds_web_listener()]);
    xds.wait_request(seen, |r| r.type_url == ROUTE_TYPE && r.resource_names == ["rc1"]);
    out.extend(dumped(admin, "l2 warming"));
    // Its routes come: it serves, the old one drains.
    xds.push(ROUTE_TYPE, "r1", vec![resource(ROUTE_TYPE, &route_config("rc1", &prefix_route("/", "two", "")))]);
    xds.wait_request(seen, |r| is_ack(r, ROUTE_TYPE, "r1"));
    wait_for("the listener to warm", || admin_stat(admin, "listener_manager.total_listeners_warming") == 0);
    assert_eq!(Client::connect(admin_listener(admin, "web")).get("/").status, 200);
    out.extend(dumped(admin, "l2 warm"));

    // Removed: the oldest of its drains is shown.
    let seen = xds.requests().len();
    xds.push(LISTENER_TYPE, "l3", vec![]);
    xds.wait_request(seen, |r| is_ack(r, LISTENER_TYPE, "l3"));
    out.extend(dumped(admin, "l3 removed"));
    drop(guard);
    out
}

/// The same sequence through Courier and Envoy 1.40: the same dumps.
#[test]
fn warming_and_draining_resources_are_dumped_as_envoy_dumps_them() {
    let dumps = same_as_envoy(session);
    let joined = dumps.join("\n");
    for expected in [
        "c2 warming ClustersConfigDump.dynamic_warming_clusters[0].cluster.name = \"two\"",
        "c3 warming ClustersConfigDump.dynamic_active_clusters[0].cluster.name = \"app\"",
        "c3 warming ClustersConfigDump.dynamic_active_clusters[0].version_info = \"c1\"",
        "c3 warming ClustersConfigDump.dynamic_warming_clusters[0].cluster.name = \"app\"",
        "c3 warming ClustersConfigDump.dynamic_warming_clusters[0].version_info = \"c3\"",
        "l2 warming ListenersConfigDump.dynamic_listeners[0].active_state.version_info = \"l1\"",
        "l2 warming ListenersConfigDump.dynamic_listeners[0].warming_state.version_info = \"l2\"",
        "l2 warm ListenersConfigDump.dynamic_listeners[0].active_state.version_info = \"l2\"",
        "l2 warm ListenersConfigDump.dynamic_listeners[0].draining_state.version_info = \"l1\"",
        "l3 removed ListenersConfigDump.dynamic_listeners[0].draining_state.version_info = \"l1\"",
    ] {
        assert!(dumps.iter().any(|l| l == expected), "{expected} missing:\n{joined}");
    }
    // The static listener's inline routes, with those of the listeners from LDS.
    let inline =
        |l: &&String| l.starts_with("l1 RoutesConfigDump.static_route_configs[") && l.contains("route.cluster");
    assert_eq!(dumps.iter().filter(inline).count(), 2, "{joined}");
}
