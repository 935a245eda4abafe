//! A resource whose name in the response differs from its own: a delta
//! response's `Resource.name`, or a state-of-the-world response's resource
//! wrapped in a `Resource` (which Envoy accepts). As Envoy's watch map, the
//! response's name says which subscription gets it: an assignment or a route
//! config named for a subscription but naming another in its body is
//! refused by that subscription ("Unexpected EDS cluster (expecting app):
//! other"), and NACKed; one named for nothing subscribed is ignored
//! (ACKed). A cluster takes its body's name, and a delta removal of the
//! response's name removes no cluster of another. Each session runs against
//! Courier and the real Envoy 1.40 on both protocols and must end the same.

use envoy_types::pb::google::protobuf::Any;

use crate::harness::{http_request, static_cluster, wait_for};
use crate::http_util::{http_listener, prefix_route};
use crate::rds::route_config;
use crate::shared_net::http_upstream;
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use crate::xds_grpc::{
    admin_stat, ads_bootstrap, ads_eds_cluster, assignment, clusters, resource, same_as_envoy, Started,
};

fn rds_listener() -> Any {
    let rds = "          rds:\n            route_config_name: routes\n            config_source: { ads: {}, resource_api_version: V3 }\n";
    resource(LISTENER_TYPE, &http_listener("web", "", "", "").replacen("          route_config:\n", rds, 1))
}

fn routes(name: &str) -> Any {
    resource(ROUTE_TYPE, &route_config(name, &prefix_route("/", "a", "")))
}

fn session(delta: bool, start: fn(&str) -> Started) -> Vec<String> {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    let cds = |names: &[(&'static str, String)]| -> Vec<(&'static str, Any)> {
        names.iter().map(|(n, c)| (*n, clusters(std::slice::from_ref(c)).remove(0))).collect()
    };
    let c1 = [("a", static_cluster("a", &[a.port()])), ("app", ads_eds_cluster("app", "app"))];
    xds.push_named(CLUSTER_TYPE, "c1", cds(&c1));
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("app", &[a.port()])]);
    xds.push(LISTENER_TYPE, "l1", vec![rds_listener()]);
    xds.push(ROUTE_TYPE, "r1", vec![routes("routes")]);
    let mut yaml = ads_bootstrap(&xds, "", "");
    if delta {
        yaml = yaml.replace("api_type: GRPC", "api_type: DELTA_GRPC");
    }
    let (admin, guard) = start(&yaml);
    wait_for("routes", || admin_stat(admin, "http.ingress.rds.routes.update_success") == 1);
    // The answer to a push of `type_url`: ACK, or NACK and whether its
    // message ends as Envoy's (Courier's starts with the field path).
    let answer = |type_url: &str, after: usize, message: &str| -> String {
        let nack = if delta {
            let (_, r) = xds.wait_delta_request(after, |r| r.type_url == type_url && !r.response_nonce.is_empty());
            r.error_detail
        } else {
            let (_, r) = xds.wait_request(after, |r| r.type_url == type_url && !r.response_nonce.is_empty());
            r.error_detail
        };
        nack.map_or("ACK".into(), |s| format!("NACK {} {}", s.code, s.message.ends_with(message)))
    };
    let seen = || if delta { xds.delta_requests().len() } else { xds.requests().len() };
    let hosts = || {
        let clusters = http_request(admin, "GET", "/clusters").1;
        clusters.lines().filter(|l| l.starts_with("app::") && l.ends_with("::cx_total::0")).count()
    };
    let mut out = Vec::new();

    let n = seen();
    xds.push_named(ENDPOINT_TYPE, "e2", vec![("app", assignment("other", &[a.port(), a.port() + 1]))]);
    out.push(format!("eds app/other: {}", answer(ENDPOINT_TYPE, n, "Unexpected EDS cluster (expecting app): other")));
    let n = seen();
    xds.push_named(ENDPOINT_TYPE, "e3", vec![("other", assignment("app", &[a.port(), a.port() + 2]))]);
    out.push(format!("eds other/app: {}", answer(ENDPOINT_TYPE, n, "")));
    out.push(format!("app hosts {}", hosts()));
    let n = seen();
    xds.push_named(ROUTE_TYPE, "r2", vec![("routes", routes("other"))]);
    let expected = "Unexpected RDS configuration (expecting routes): other";
    out.push(format!("rds routes/other: {}", answer(ROUTE_TYPE, n, expected)));
    let n = seen();
    let c2 = [c1[0].clone(), c1[1].clone(), ("cx", static_cluster("cy", &[a.port()]))];
    xds.push_named(CLUSTER_TYPE, "c2", cds(&c2));
    out.push(format!("cds cx/cy: {}", answer(CLUSTER_TYPE, n, "")));
    let clusters = http_request(admin, "GET", "/clusters").1;
    out.push(format!("cy: {}, cx: {}", clusters.contains("cy::"), clusters.contains("cx::")));
    // Without cx: a delta response removes the name cx, which names no
    // cluster (cy stays, as Envoy's removes by the response's name); a state
    // of the world no longer holds cy.
    let n = seen();
    xds.push_named(CLUSTER_TYPE, "c3", cds(&c1));
    out.push(format!("cds without cx: {}", answer(CLUSTER_TYPE, n, "")));
    let clusters = http_request(admin, "GET", "/clusters").1;
    out.push(format!("then cy: {}", clusters.contains("cy::")));
    for stat in [
        "cluster.app.update_success",
        "cluster.app.update_rejected",
        "http.ingress.rds.routes.update_rejected",
        "cluster_manager.cds.update_success",
    ] {
        out.push(format!("{stat}: {}", admin_stat(admin, stat)));
    }
    drop(guard);
    out
}

#[test]
fn a_delta_resource_named_otherwise_than_its_body_is_taken_as_envoy() {
    let out = same_as_envoy(|start| session(true, start));
    assert_eq!(out[0], "eds app/other: NACK 13 true", "{out:#?}");
    assert_eq!(out[7], "then cy: true", "{out:#?}");
}

#[test]
fn a_wrapped_sotw_resource_named_otherwise_than_its_body_is_taken_as_envoy() {
    let out = same_as_envoy(|start| session(false, start));
    assert_eq!(out[3], "rds routes/other: NACK 13 true", "{out:#?}");
    assert_eq!(out[7], "then cy: false", "{out:#?}");
}
