//! EDS from files: clusters of `type: EDS` whose `eds_cluster_config.eds_config`
//! names a `DiscoveryResponse` file holding their `ClusterLoadAssignment`. Each
//! test sends real traffic to upstreams on 127.0.0.1, renames a new file over
//! the old one (what the file watch reacts to) and waits for the cluster's
//! `update_*` counter before looking. The counts are those Envoy 1.40 gives on
//! the same files.

use crate::harness::{config, swap_in, Courier, TempDir};
use crate::http_util::{http_listener, one_vhost, prefix_route, Client};
use crate::shared_net::http_upstream;
use crate::xds_files::discovery;

const ASSIGNMENT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// An EDS file of `version` with one assignment for `name`: a locality per
/// priority, each `(priority, ports)`, and `extra` fields of the assignment.
fn eds_file(version: &str, name: &str, levels: &[(u32, &[u16])], extra: &str) -> String {
    let mut localities = String::new();
    for (priority, ports) in levels {
        localities.push_str(&format!("  - priority: {priority}\n    lb_endpoints:\n"));
        for p in *ports {
            localities.push_str(&format!(
                "    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
            ));
        }
    }
    format!("version_info: \"{version}\"\nresources:\n- \"@type\": {ASSIGNMENT}\n  cluster_name: {name}\n{extra}  endpoints:\n{localities}")
}

/// An EDS cluster `name` reading `dir/eds.yaml`, for assignment `service`.
fn eds_cluster(name: &str, dir: &TempDir, service: &str) -> String {
    format!(
        "  - name: {name}\n    type: EDS\n    connect_timeout: 1s\n    eds_cluster_config:\n      service_name: {service}\n      eds_config:\n        resource_api_version: V3\n        path_config_source: {{ path: {}/eds.yaml }}\n",
        dir.0.display()
    )
}

/// The `EndpointsConfigDump` of `/config_dump?include_eds`; a plain
/// `/config_dump` has none.
fn endpoints_dump(c: &Courier) -> serde_json::Value {
    let parse =
        |path| -> serde_json::Value { serde_json::from_str(&c.admin_get(path).1).expect("config_dump is JSON") };
    // Bootstrap, clusters, listeners, scoped routes, routes and secrets, as Envoy's.
    assert_eq!(parse("/config_dump")["configs"].as_array().map(Vec::len), Some(6));
    let mut dump = parse("/config_dump?include_eds");
    let endpoints = dump["configs"][2].take();
    assert_eq!(endpoints["@type"], "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump");
    endpoints
}

fn counter(c: &Courier, name: &str) -> i64 {
    c.stat(name).unwrap_or_else(|| panic!("no stat {name}"))
}

#[test]
fn an_eds_cluster_serves_its_file_and_follows_each_new_assignment() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let dir = TempDir::new("eds-follow");
    // Cluster `e`'s `eds_cluster_config`: `eds_config` is `eds.yaml`, whose
    // assignment it takes by its `service_name`, `svc`.
    dir.file("eds.yaml", &eds_file("1", "svc", &[(0, &[a.port()])], ""));
    let listener = http_listener("web", "", &one_vhost(&prefix_route("/", "e", "")), "");
    // Envoy requires a node for an EDS subscription.
    let yaml =
        format!("node: {{ id: test, cluster: test }}\n{}", config(&[listener], &[eds_cluster("e", &dir, "svc")]));
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    for (stat, value) in [
        ("cluster.e.update_attempt", 1),
        ("cluster.e.update_success", 1),
        ("cluster.e.membership_change", 1),
        ("cluster.e.membership_total", 1),
        ("cluster.e.membership_healthy", 1),
        ("cluster.e.init_fetch_timeout", 0),
        ("cluster_manager.cluster_updated", 0),
        ("cluster_manager.warming_clusters", 0),
    ] {
        assert_eq!(counter(&c, stat), value, "{stat}");
    }
    let (_, clusters) = c.admin_get("/clusters");
    assert!(clusters.contains(&format!("e::127.0.0.1:{}::weight::1", a.port())), "{clusters}");
    // `/config_dump?include_eds` shows the membership as Envoy's
    // EndpointsConfigDump does, after the clusters, named by the service.
    let endpoints = endpoints_dump(&c);
    let config = &endpoints["static_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(config["cluster_name"], "svc");
    let address = &config["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    assert_eq!(address["port_value"], a.port());
    assert_eq!(config["policy"]["overprovisioning_factor"], 140);

    // A new assignment moves the traffic.
    swap_in(&dir.0, "eds.yaml", &eds_file("2", "svc", &[(0, &[b.port()])], ""));
    c.wait_stat("cluster.e.update_success", |v| v == 2);
    // The main thread counts the update, then posts it to the worker.
    c.wait_until(|_| Client::connect(addr).get("/").seen().upstream() == "b", "the worker to take the new hosts");
    assert_eq!(counter(&c, "cluster.e.membership_change"), 2);
    assert_eq!(counter(&c, "cluster_manager.cluster_updated"), 1);

    // The same hosts again: nothing to rebuild.
    swap_in(&dir.0, "eds.yaml", &eds_file("3", "svc", &[(0, &[b.port()])], ""));
    c.wait_stat("cluster.e.update_success", |v| v == 3);
    assert_eq!(counter(&c, "cluster.e.update_no_rebuild"), 1);
    assert_eq!(counter(&c, "cluster.e.membership_change"), 2);

    // Refused: a name for an address, an assignment for another cluster, two
    // assignments. The hosts stay.
    let bad_address = eds_file("4", "svc", &[(0, &[b.port()])], "").replace("127.0.0.1", "upstream.example");
    let two = format!("{}{}", eds_file("4", "svc", &[(0, &[a.port()])], ""), &eds_file("4", "other", &[], "")[29..]);
    for (i, bad) in [bad_address, eds_file("4", "other", &[(0, &[a.port()])], ""), two].iter().enumerate() {
        swap_in(&dir.0, "eds.yaml", bad);
        c.wait_stat("cluster.e.update_rejected", |v| v == i as i64 + 1);
        assert_eq!(Client::connect(addr).get("/").seen().upstream(), "b");
    }
    assert!(c.log().contains("resources[0].endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address"));
    assert!(c.log().contains("Unexpected EDS cluster (expecting svc): other"), "{}", c.log());
    assert!(c.log().contains("Unexpected EDS resource length: 2"), "{}", c.log());
    assert_eq!(counter(&c, "cluster.e.update_success"), 3);

    // No assignment at all changes nothing, as in Envoy; one with no endpoints
    // leaves the cluster with no host.
    swap_in(&dir.0, "eds.yaml", "version_info: \"5\"\nresources: []\n");
    c.wait_stat("cluster.e.update_empty", |v| v == 1);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "b");
    swap_in(&dir.0, "eds.yaml", &eds_file("6", "svc", &[], ""));
    c.wait_stat("cluster.e.update_success", |v| v == 5);
    c.wait_until(|_| Client::connect(addr).get("/").status == 503, "the worker to drop the hosts");
    let r = Client::connect(addr).get("/");
    assert_eq!((r.status, r.text().as_str()), (503, "no healthy upstream"));
    // Two refused requests: the one that saw the worker updated, and `r`.
    assert_eq!(counter(&c, "cluster.e.upstream_cx_none_healthy"), 2);
    assert_eq!(counter(&c, "cluster.e.membership_total"), 0);
}

#[test]
fn a_cds_eds_cluster_warms_on_its_first_assignment_and_honours_priorities() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let dir = TempDir::new("eds-cds");
    let d = dir.0.display();
    // P0 holds `a`, P1 `b`: every request goes to P0 while it has hosts.
    dir.file("eds.yaml", &eds_file("1", "d", &[(0, &[a.port()]), (1, &[b.port()])], ""));
    let cluster = |timeout: &str| {
        format!(
            "version_info: \"c\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: d\n  type: EDS\n  connect_timeout: {timeout}\n  eds_cluster_config:\n    eds_config: {{ path_config_source: {{ path: {d}/eds.yaml }} }}\n"
        )
    };
    dir.file("cds.yaml", &cluster("1s"));
    // The listener comes from LDS, so its route may name a CDS cluster.
    let listener = http_listener("web", "", &one_vhost(&prefix_route("/", "d", "")), "");
    dir.file("lds.yaml", &discovery("envoy.config.listener.v3.Listener", "l", &[listener]));
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\ndynamic_resources:\n  cds_config:\n    path_config_source: {{ path: {d}/cds.yaml }}\n  lds_config:\n    path_config_source: {{ path: {d}/lds.yaml }}\n"
    );
    let c = Courier::start(&yaml, 2);
    let addr = c.listener("web");
    for _ in 0..4 {
        assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    }
    // A change for each priority level filled, as Envoy counts.
    assert_eq!(counter(&c, "cluster.d.membership_change"), 2);
    assert_eq!(counter(&c, "cluster_manager.warming_clusters"), 0);
    assert_eq!(counter(&c, "cluster_manager.active_clusters"), 1);
    assert_eq!(counter(&c, "cluster.d.update_success"), 1);

    // The priorities swap, with another overprovisioning factor: every
    // request goes to `b`.
    let factor = "  policy: { overprovisioning_factor: 150 }\n";
    swap_in(&dir.0, "eds.yaml", &eds_file("2", "d", &[(1, &[a.port()]), (0, &[b.port()])], factor));
    c.wait_stat("cluster.d.update_success", |v| v == 2);
    for _ in 0..4 {
        assert_eq!(Client::connect(addr).get("/").seen().upstream(), "b");
    }
    assert_eq!(counter(&c, "cluster.d.membership_change"), 4);
    // A CDS cluster's endpoints are dynamic ones.
    let config = &endpoints_dump(&c)["dynamic_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(config["cluster_name"], "d");
    assert_eq!(
        config["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"],
        b.port()
    );
    assert_eq!(config["endpoints"][1]["priority"], 1);
    assert_eq!(config["policy"]["overprovisioning_factor"], 150);

    // CDS replaces the cluster: the new one reads its assignment before it
    // takes over, and the old subscription ends with the old cluster.
    swap_in(&dir.0, "cds.yaml", &cluster("2s"));
    c.wait_stat("cluster_manager.cds.update_success", |v| v == 2);
    assert_eq!(counter(&c, "cluster_manager.cluster_modified"), 1);
    assert_eq!(counter(&c, "cluster_manager.warming_clusters"), 0);
    assert_eq!(counter(&c, "cluster.d.update_success"), 3);
    assert_eq!(counter(&c, "cluster.d.membership_change"), 6);
    assert_eq!(counter(&c, "cluster_manager.cluster_updated"), 1);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "b");
    swap_in(&dir.0, "eds.yaml", &eds_file("3", "d", &[(0, &[a.port()])], ""));
    c.wait_stat("cluster.d.update_success", |v| v == 4);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");

    // A cluster whose EDS file is not there is refused, as Envoy 1.40 refuses
    // it, and the running one serves on.
    swap_in(&dir.0, "cds.yaml", &cluster("3s").replace("eds.yaml", "absent.yaml"));
    c.wait_stat("cluster_manager.cds.update_rejected", |v| v == 1);
    assert!(c.log().contains("paths must refer to an existing path in the system"), "{}", c.log());
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
}

#[test]
fn a_host_an_assignment_keeps_keeps_its_pooled_connection() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let dir = TempDir::new("eds-keep");
    dir.file("eds.yaml", &eds_file("1", "e", &[(0, &[a.port()])], ""));
    let listener = http_listener("web", "", &one_vhost(&prefix_route("/", "e", "")), "");
    let yaml = format!("node: {{ id: test, cluster: test }}\n{}", config(&[listener], &[eds_cluster("e", &dir, "e")]));
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    assert_eq!(counter(&c, "cluster.e.upstream_cx_total"), 1);

    // `a` stays at priority 0; `b` joins at priority 1: one level changed, and
    // the next request reuses the connection the pool of `a` kept.
    swap_in(&dir.0, "eds.yaml", &eds_file("2", "e", &[(0, &[a.port()]), (1, &[b.port()])], ""));
    c.wait_stat("cluster.e.update_success", |v| v == 2);
    assert_eq!(counter(&c, "cluster.e.membership_change"), 2);
    assert_eq!(counter(&c, "cluster.e.membership_total"), 2);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    assert_eq!(counter(&c, "cluster.e.upstream_cx_total"), 1);
    assert_eq!(counter(&c, "cluster.e.upstream_cx_active"), 1);

    // A new weight for `a` is set on the host itself, as Envoy 1.40 does: a
    // rebuild (`cluster_updated`) that changes no membership.
    let weighted = eds_file("3", "e", &[(0, &[a.port()]), (1, &[b.port()])], "").replacen(
        "} } }\n",
        "} } }\n      load_balancing_weight: 7\n",
        1,
    );
    swap_in(&dir.0, "eds.yaml", &weighted);
    c.wait_stat("cluster.e.update_success", |v| v == 3);
    assert_eq!(counter(&c, "cluster.e.membership_change"), 2);
    assert_eq!(counter(&c, "cluster_manager.cluster_updated"), 2);
    let (_, clusters) = c.admin_get("/clusters");
    assert!(clusters.contains(&format!("e::127.0.0.1:{}::weight::7", a.port())), "{clusters}");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    assert_eq!(counter(&c, "cluster.e.upstream_cx_total"), 1);
}

/// `file` with each `(port, status)` endpoint's `health_status` set.
fn with_health(file: &str, statuses: &[(u16, &str)]) -> String {
    statuses.iter().fold(file.to_string(), |f, (port, status)| {
        let line = format!("port_value: {port} }} }} }}\n");
        f.replacen(&line, &format!("{line}      health_status: {status}\n"), 1)
    })
}

/// Which upstreams served `n` requests, in order.
fn served(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    (0..n).map(|_| Client::connect(addr).get("/").seen().upstream().to_string()).collect()
}

#[test]
fn eds_health_status_steers_traffic_and_changes_the_kept_host() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let dir = TempDir::new("eds-health");
    let file = |version: &str, statuses: &[(u16, &str)]| {
        with_health(&eds_file(version, "e", &[(0, &[a.port(), b.port()])], ""), statuses)
    };
    dir.file("eds.yaml", &file("1", &[(b.port(), "UNHEALTHY")]));
    let listener = http_listener("web", "", &one_vhost(&prefix_route("/", "e", "")), "");
    let yaml = format!("node: {{ id: test, cluster: test }}\n{}", config(&[listener], &[eds_cluster("e", &dir, "e")]));
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    // The unhealthy host gets no traffic (one healthy of two is 70 %: no panic).
    assert_eq!(served(addr, 3), ["a", "a", "a"]);
    assert_eq!(counter(&c, "cluster.e.membership_healthy"), 1);
    assert_eq!(counter(&c, "cluster.e.membership_total"), 2);
    let (_, clusters) = c.admin_get("/clusters");
    assert!(clusters.contains(&format!("e::127.0.0.1:{}::health_flags::/failed_eds_health", b.port())), "{clusters}");
    let lb_endpoints =
        &endpoints_dump(&c)["static_endpoint_configs"][0]["endpoint_config"]["endpoints"][0]["lb_endpoints"];
    assert_eq!(
        (lb_endpoints[0]["health_status"].as_str(), lb_endpoints[1]["health_status"].as_str()),
        (Some("HEALTHY"), Some("UNHEALTHY"))
    );

    // The health flips: the kept hosts change in place, as in Envoy 1.40 (a
    // rebuild, no membership change; `a` keeps its counts).
    swap_in(&dir.0, "eds.yaml", &file("2", &[(a.port(), "UNHEALTHY")]));
    c.wait_stat("cluster.e.update_success", |v| v == 2);
    assert_eq!(served(addr, 2), ["b", "b"]);
    assert_eq!(counter(&c, "cluster.e.membership_change"), 1);
    assert_eq!(counter(&c, "cluster_manager.cluster_updated"), 1);
    let (_, clusters) = c.admin_get("/clusters");
    assert!(clusters.contains(&format!("e::127.0.0.1:{}::rq_total::3", a.port())), "{clusters}");
    assert!(clusters.contains(&format!("e::127.0.0.1:{}::health_flags::healthy", b.port())), "{clusters}");

    // No host available: panic, every host serves, each pick counted.
    swap_in(&dir.0, "eds.yaml", &file("3", &[(a.port(), "UNHEALTHY"), (b.port(), "TIMEOUT")]));
    c.wait_stat("cluster.e.update_success", |v| v == 3);
    let mut picks = served(addr, 4);
    picks.sort();
    assert_eq!(picks, ["a", "a", "b", "b"]);
    assert_eq!(counter(&c, "cluster.e.lb_healthy_panic"), 4);
    assert_eq!(counter(&c, "cluster.e.membership_healthy"), 0);

    // A degraded host takes the load no healthy host covers; a draining one is
    // excluded.
    swap_in(&dir.0, "eds.yaml", &file("4", &[(a.port(), "DEGRADED"), (b.port(), "DRAINING")]));
    c.wait_stat("cluster.e.update_success", |v| v == 4);
    assert_eq!(served(addr, 2), ["a", "a"]);
    assert_eq!(counter(&c, "cluster.e.lb_healthy_panic"), 4);
    assert_eq!(counter(&c, "cluster.e.membership_degraded"), 1);
    assert_eq!(counter(&c, "cluster.e.membership_excluded"), 1);
    let (_, clusters) = c.admin_get("/clusters");
    assert!(clusters.contains(&format!("e::127.0.0.1:{}::health_flags::/eds_status_draining", b.port())), "{clusters}");
}

/// `policy.drop_overloads` of each assignment: all dropped, then (the same
/// host, no policy) none, and an assignment with two categories is refused
/// as Envoy refuses it, the share staying.
#[test]
fn each_assignment_sets_the_share_dropped_anew() {
    let a = http_upstream("a");
    let dir = TempDir::new("eds-drop");
    let all = "  policy:\n    drop_overloads:\n    - { category: throttle, drop_percentage: { numerator: 100 } }\n";
    dir.file("eds.yaml", &eds_file("1", "svc", &[(0, &[a.port()])], all));
    let listener = http_listener("web", "", &one_vhost(&prefix_route("/", "e", "")), "");
    let yaml =
        format!("node: {{ id: test, cluster: test }}\n{}", config(&[listener], &[eds_cluster("e", &dir, "svc")]));
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    let r = Client::connect(addr).get("/");
    assert_eq!((r.status, r.text().as_str()), (503, "unconditional drop overload"));
    assert_eq!(r.header("x-envoy-unconditional-drop-overload"), Some("true"));
    let policy = &endpoints_dump(&c)["static_endpoint_configs"][0]["endpoint_config"]["policy"];
    assert_eq!(policy["drop_overloads"][0]["category"], "throttle");
    assert_eq!(policy["drop_overloads"][0]["drop_percentage"]["numerator"], 1_000_000);

    swap_in(&dir.0, "eds.yaml", &eds_file("2", "svc", &[(0, &[a.port()])], ""));
    c.wait_stat("cluster.e.update_success", |v| v == 2);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");

    let two = format!("{all}    - {{ category: more, drop_percentage: {{ numerator: 1 }} }}\n");
    swap_in(&dir.0, "eds.yaml", &eds_file("3", "svc", &[(0, &[a.port()])], &two));
    c.wait_stat("cluster.e.update_rejected", |v| v == 1);
    assert!(c.log().contains("Cluster drop_overloads config has 2 categories. Envoy only support one."), "{}", c.log());
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
}
