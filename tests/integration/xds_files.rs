//! File-based xDS: `dynamic_resources.cds_config` / `lds_config` with a
//! `path_config_source`. Each test starts Courier on a bootstrap whose CDS and
//! LDS read files of a scratch directory, sends real traffic, replaces a file
//! by writing a new one beside it and renaming it over (what Envoy watches
//! for), and waits for the update through its `update_success` (or
//! `update_rejected`) counter before looking.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{config, static_cluster, swap_in, Courier, TempDir, IO_TIMEOUT};
use crate::http_util::{holding_upstream, http_listener, one_vhost, prefix_route, Client, Gate};
use crate::shared_net::http_upstream;

const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const LISTENER: &str = "envoy.config.listener.v3.Listener";

/// A `DiscoveryResponse` file of `type_name` resources, from static-style YAML
/// fragments (`  - name: ...`).
pub fn discovery(type_name: &str, version: &str, fragments: &[String]) -> String {
    let items: String = fragments
        .iter()
        .map(|f| f.replacen("  - ", &format!("  - \"@type\": type.googleapis.com/{type_name}\n    "), 1))
        .collect();
    format!("version_info: \"{version}\"\nresources:\n{items}")
}

/// An HTTP listener `name` routing `/` to `cluster` (and, with `extra_routes`, more).
fn web_listener(name: &str, extra_routes: &str, cluster: &str) -> String {
    let routes = format!("{extra_routes}{}", prefix_route("/", cluster, ""));
    http_listener(name, "", &one_vhost(&routes), "")
}

/// Courier with `static_yaml` (a `static_resources` config, may be empty) and
/// CDS and LDS reading `cds.yaml` and `lds.yaml` of `dir`, which must exist.
fn start(dir: &TempDir, static_yaml: &str, workers: usize) -> Courier {
    let d = dir.0.display();
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\ndynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path_config_source: {{ path: {d}/cds.yaml }}\n  lds_config:\n    resource_api_version: V3\n    path: {d}/lds.yaml\n{static_yaml}"
    );
    Courier::start(&yaml, workers)
}

fn counter(c: &Courier, name: &str) -> i64 {
    c.stat(name).unwrap_or_else(|| panic!("no stat {name}"))
}

#[test]
fn clusters_and_listeners_from_files_serve_and_updates_apply() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let dir = TempDir::new("xds-apply");
    dir.file("cds.yaml", &discovery(CLUSTER, "c1", &[static_cluster("a", &[a.port()])]));
    dir.file("lds.yaml", &discovery(LISTENER, "l1", &[web_listener("web", "", "a")]));
    let c = start(&dir, "", 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/x").seen().upstream(), "a");
    assert_eq!(counter(&c, "cluster_manager.cds.update_success"), 1);
    assert_eq!(counter(&c, "cluster_manager.active_clusters"), 1);
    assert_eq!(counter(&c, "listener_manager.total_listeners_active"), 1);

    // A new cluster, and a route to it: the cluster first, as a management
    // server orders them, so the route's cluster exists when it is built.
    let clusters = [static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()])];
    swap_in(&dir.0, "cds.yaml", &discovery(CLUSTER, "c2", &clusters));
    c.wait_stat("cluster_manager.cds.update_success", |v| v == 2);
    assert_eq!(counter(&c, "cluster_manager.cluster_added"), 2);
    swap_in(&dir.0, "lds.yaml", &discovery(LISTENER, "l2", &[web_listener("web", &prefix_route("/b", "b", ""), "a")]));
    c.wait_stat("listener_manager.lds.update_success", |v| v == 2);
    assert_eq!(c.listener("web"), addr, "the updated listener keeps its socket");
    assert_eq!(Client::connect(addr).get("/b").seen().upstream(), "b");
    assert_eq!(Client::connect(addr).get("/x").seen().upstream(), "a");
    // Only the filter chain changed: Envoy's in-place update.
    assert_eq!(counter(&c, "listener_manager.listener_modified"), 1);
    assert_eq!(counter(&c, "listener_manager.listener_in_place_updated"), 1);
    // Updates that changed a cluster: the first read and "c2".
    assert_eq!(counter(&c, "cluster_manager.cds.config_reload"), 2);

    let (_, dump) = c.admin_get("/config_dump");
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    let clusters = &dump["configs"][1];
    assert_eq!(clusters["version_info"], "c2");
    let dynamic = clusters["dynamic_active_clusters"].as_array().expect("dynamic_active_clusters");
    assert_eq!(dynamic.len(), 2);
    assert_eq!(dynamic[1]["cluster"]["name"], "b");
    assert_eq!(dynamic[1]["cluster"]["@type"], format!("type.googleapis.com/{CLUSTER}"));
    assert_eq!(dynamic[1]["version_info"], "c2");
    assert!(dynamic[1]["last_updated"].as_str().is_some_and(|t| t.ends_with('Z')));
    let listeners = &dump["configs"][2];
    assert_eq!(listeners["version_info"], "l2");
    assert_eq!(listeners["dynamic_listeners"][0]["name"], "web");
    // An in-place update keeps its predecessor's version, as Envoy's does.
    assert_eq!(listeners["dynamic_listeners"][0]["active_state"]["version_info"], "l1");
    let (_, clusters_text) = c.admin_get("/clusters");
    assert!(clusters_text.contains("b::added_via_api::true"), "{clusters_text}");

    // A cluster the file no longer lists goes; its route answers 503, and the
    // idle keep-alive connection its pool held to `b` closes.
    assert_eq!(counter(&c, "cluster.b.upstream_cx_active"), 1);
    swap_in(&dir.0, "cds.yaml", &discovery(CLUSTER, "c3", &[static_cluster("a", &[a.port()])]));
    c.wait_stat("cluster_manager.cds.update_success", |v| v == 3);
    assert_eq!(counter(&c, "cluster_manager.cluster_removed"), 1);
    assert_eq!(counter(&c, "cluster_manager.active_clusters"), 1);
    assert_eq!(Client::connect(addr).get("/b").status, 503);
    c.wait_stat("cluster.b.upstream_cx_active", |v| v == 0);
}

#[test]
fn a_removed_listener_stops_accepting_while_its_request_in_flight_completes() {
    let gate = Gate::new();
    let up = holding_upstream("held", &gate);
    let dir = TempDir::new("xds-remove");
    dir.file("cds.yaml", &discovery(CLUSTER, "1", &[static_cluster("up", &[up.port()])]));
    dir.file("lds.yaml", &discovery(LISTENER, "1", &[web_listener("web", "", "up")]));
    // LDS through the deprecated plain `path` of ConfigSource.
    let d = dir.0.display();
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\ndynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path_config_source: {{ path: {d}/cds.yaml }}\n  lds_config:\n    resource_api_version: V3\n    path: {d}/lds.yaml\n"
    );
    let c = Courier::start(&yaml, 2);
    let addr = c.listener("web");
    let mut held = Client::connect(addr);
    held.send_raw(&Client::encode_request("GET", "/", &[("x-test-hold", "1")], b""));
    gate.wait_held(1);

    swap_in(&dir.0, "lds.yaml", &discovery(LISTENER, "2", &[]));
    c.wait_stat("listener_manager.lds.update_success", |v| v == 2);
    assert_eq!(counter(&c, "listener_manager.listener_removed"), 1);
    assert_eq!(counter(&c, "listener_manager.total_listeners_active"), 0);
    assert_eq!(counter(&c, "listener_manager.total_listeners_draining"), 1);
    // Each worker closes its socket as it takes the removal off its queue.
    let deadline = Instant::now() + IO_TIMEOUT;
    while std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT).is_ok() {
        assert!(Instant::now() < deadline, "the removed listener still accepts");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!c.admin_get("/listeners").1.contains("web::"));

    gate.open();
    let response = held.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "held");
    // The listener drains: no keep-alive past the request in flight.
    assert_eq!(response.header("connection"), Some("close"));
}

#[test]
fn a_rejected_update_keeps_the_running_config_and_is_counted() {
    let a = http_upstream("a");
    let dir = TempDir::new("xds-reject");
    dir.file("cds.yaml", &discovery(CLUSTER, "1", &[static_cluster("a", &[a.port()])]));
    dir.file("lds.yaml", &discovery(LISTENER, "1", &[web_listener("web", "", "a")]));
    let c = start(&dir, "", 1);
    let addr = c.listener("web");

    // One good cluster and one with a field Courier does not act on: neither applies.
    let bad = static_cluster("bad", &[a.port()]) + "    outlier_detection: {}\n";
    swap_in(&dir.0, "cds.yaml", &discovery(CLUSTER, "2", &[static_cluster("new", &[a.port()]), bad]));
    c.wait_stat("cluster_manager.cds.update_rejected", |v| v == 1);
    assert_eq!(counter(&c, "cluster_manager.cds.update_success"), 1);
    assert_eq!(counter(&c, "cluster_manager.active_clusters"), 1);
    assert!(!c.admin_get("/clusters").1.contains("new::"));
    assert!(c.log().contains("resources[1].outlier_detection"), "{}", c.log());

    // A listener whose route names no cluster, beside a changed good one.
    let changed = web_listener("web", &prefix_route("/n", "a", ""), "a");
    swap_in(&dir.0, "lds.yaml", &discovery(LISTENER, "2", &[changed, web_listener("other", "", "missing")]));
    c.wait_stat("listener_manager.lds.update_rejected", |v| v == 1);
    assert!(c.log().contains("resources[1]"), "{}", c.log());
    assert_eq!(counter(&c, "listener_manager.listener_modified"), 0);

    // A listener on the address of a running one (static or from LDS): with
    // SO_REUSEPORT it would bind and share the port, so it is refused, as Envoy.
    let port = addr.port();
    let twin = web_listener("twin", "", "a").replacen("port_value: 0", &format!("port_value: {port}"), 1);
    swap_in(&dir.0, "lds.yaml", &discovery(LISTENER, "3", &[web_listener("web", "", "a"), twin]));
    c.wait_stat("listener_manager.lds.update_rejected", |v| v == 2);
    assert!(c.log().contains("has duplicate address"), "{}", c.log());
    assert_eq!(counter(&c, "listener_manager.total_listeners_active"), 1);

    // A listener with no name could never be replaced nor removed.
    let nameless = web_listener("", "", "a");
    swap_in(&dir.0, "lds.yaml", &discovery(LISTENER, "4", &[web_listener("web", "", "a"), nameless]));
    c.wait_stat("listener_manager.lds.update_rejected", |v| v == 3);
    assert!(c.log().contains("resources[1].name: a listener from LDS needs a name"), "{}", c.log());

    // A file that does not parse is a failure, not a rejection, as in Envoy.
    swap_in(&dir.0, "cds.yaml", "resources: [");
    c.wait_stat("cluster_manager.cds.update_failure", |v| v == 1);

    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    let (_, dump) = c.admin_get("/config_dump");
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    assert_eq!(dump["configs"][1]["version_info"], "1");
    assert_eq!(dump["configs"][2]["version_info"], "1");
}

#[test]
fn static_clusters_and_listeners_are_left_alone_by_updates() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let dir = TempDir::new("xds-static");
    dir.file("cds.yaml", &discovery(CLUSTER, "1", &[]));
    dir.file("lds.yaml", &discovery(LISTENER, "1", &[]));
    let statics = config(&[web_listener("static_web", "", "s")], &[static_cluster("s", &[a.port()])]);
    let c = start(&dir, &statics, 1);
    let addr = c.listener("static_web");
    // Envoy skips a static cluster or listener named by an update (no error).
    swap_in(&dir.0, "cds.yaml", &discovery(CLUSTER, "2", &[static_cluster("s", &[b.port()])]));
    c.wait_stat("cluster_manager.cds.update_success", |v| v == 2);
    swap_in(&dir.0, "lds.yaml", &discovery(LISTENER, "2", &[web_listener("static_web", "", "missing")]));
    c.wait_stat("listener_manager.lds.update_success", |v| v == 2);
    assert_eq!(counter(&c, "cluster_manager.cluster_modified"), 0);
    assert_eq!(counter(&c, "listener_manager.listener_modified"), 0);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
    // And an empty file removes neither.
    swap_in(&dir.0, "cds.yaml", &discovery(CLUSTER, "3", &[]));
    c.wait_stat("cluster_manager.cds.update_success", |v| v == 3);
    assert_eq!(counter(&c, "cluster_manager.active_clusters"), 1);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a");
}

#[test]
fn listener_updates_under_a_keep_alive_client_lose_no_request() {
    let a = http_upstream("a");
    let dir = TempDir::new("xds-keepalive");
    dir.file("cds.yaml", &discovery(CLUSTER, "1", &[static_cluster("a", &[a.port()])]));
    let listener = |limit: u32| {
        web_listener("web", "", "a").replacen(
            "    filter_chains:",
            &format!("    per_connection_buffer_limit_bytes: {limit}\n    filter_chains:"),
            1,
        )
    };
    dir.file("lds.yaml", &discovery(LISTENER, "0", &[listener(1_000_000)]));
    let c = start(&dir, "", 2);
    let addr = c.listener("web");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut sent, mut reconnects) = (0u32, 0u32);
            let mut client = Client::connect(addr);
            while !done.load(std::sync::atomic::Ordering::SeqCst) || sent < 50 {
                let r = client.get("/");
                assert_eq!(r.status, 200, "request {sent} failed");
                sent += 1;
                // A draining listener's connection answers with `connection: close`:
                // the client goes on on a new one, as a keep-alive client does.
                if r.header("connection") == Some("close") {
                    client = Client::connect(addr);
                    reconnects += 1;
                }
            }
            (sent, reconnects)
        })
    };
    // Each update changes the listener itself, not only its chains: a full
    // replacement, the old listener draining under the client.
    for v in 1..=5u32 {
        swap_in(&dir.0, "lds.yaml", &discovery(LISTENER, &v.to_string(), &[listener(1_000_000 + v)]));
        c.wait_stat("listener_manager.lds.update_success", |n| n == i64::from(v) + 1);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, reconnects) = client.join().expect("client thread");
    assert!(sent >= 50);
    assert!(reconnects >= 1, "the client's connection never drained");
    assert_eq!(counter(&c, "listener_manager.listener_modified"), 5);
    assert_eq!(counter(&c, "listener_manager.listener_in_place_updated"), 0);
    assert_eq!(c.listener("web"), addr);
}

#[test]
fn a_watched_directory_reloads_on_any_move_into_it() {
    let a = http_upstream("a");
    let dir = TempDir::new("xds-watched");
    let cds = dir.file("cds.yaml", &discovery(CLUSTER, "1", &[static_cluster("a", &[a.port()])]));
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\ndynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path_config_source:\n      path: {}\n      watched_directory: {{ path: {} }}\n",
        cds.display(),
        dir.0.display()
    );
    let c = Courier::start(&yaml, 1);
    assert_eq!(counter(&c, "cluster_manager.cds.update_success"), 1);
    // A write in place is no move: nothing happens. Then another file is
    // moved into the directory, and the file is read again.
    std::fs::write(&cds, discovery(CLUSTER, "2", &[])).expect("write in place");
    swap_in(&dir.0, "unrelated", "x");
    c.wait_stat("cluster_manager.cds.update_success", |v| v == 2);
    assert_eq!(counter(&c, "cluster_manager.cds.update_attempt"), 2);
    assert_eq!(counter(&c, "cluster_manager.active_clusters"), 0);
}

#[test]
fn a_config_source_other_than_a_file_is_refused_naming_the_field() {
    let yaml = "node: { id: test, cluster: test }\ndynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    ads: {}\n";
    let (ok, out) = crate::harness::validate(yaml);
    assert!(!ok);
    // ADS without `ads_config` (which Envoy skips with a warning).
    assert!(out.contains("dynamic_resources.cds_config.ads: ADS must be configured"), "{out}");
    let yaml = "node: { id: test, cluster: test }\ndynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    api_config_source: { api_type: REST, cluster_names: [x] }\n";
    let (ok, out) = crate::harness::validate(yaml);
    assert!(!ok);
    assert!(out.contains("dynamic_resources.cds_config.api_config_source.cluster_names"), "{out}");
    // Not a refusal: a file source without resource_api_version (AUTO), as
    // envoyproxy/examples' dynamic-config-fs writes it, is read as Envoy reads it.
    let yaml = "dynamic_resources:\n  lds_config:\n    path: /x/lds.yaml\n";
    let (_, out) = crate::harness::validate(yaml);
    assert!(!out.contains("resource_api_version"), "{out}");
    // As Envoy: CDS needs the node's id and cluster (LDS does not).
    let yaml = "dynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path: /x/cds.yaml\n";
    let (ok, out) = crate::harness::validate(yaml);
    assert!(!ok);
    assert!(out.contains("node 'id' and 'cluster' are required"), "{out}");
}

/// `examples/xds-files/` as a user runs it (its ports and backend moved to
/// free ones): it serves, and an edited `lds.yaml` moved into place applies.
#[test]
fn the_example_serves_and_applies_an_edited_file() {
    let up = http_upstream("backend");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/xds-files");
    let read = |name: &str| std::fs::read_to_string(example.join(name)).expect("example file");
    let dir = TempDir::new("xds-example");
    let d = dir.0.display().to_string();
    let bootstrap =
        read("bootstrap.yaml").replace("examples/xds-files", &d).replace("port_value: 9901", "port_value: 0");
    let cds = read("cds.yaml")
        .replace("address: localhost, port_value: 8080", &format!("address: 127.0.0.1, port_value: {}", up.port()));
    let lds = read("lds.yaml").replace("address: 0.0.0.0, port_value: 10000", "address: 127.0.0.1, port_value: 0");
    dir.file("cds.yaml", &cds);
    dir.file("lds.yaml", &lds);
    let c = Courier::start(&bootstrap, 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "backend");
    let edited = lds.replace("version_info: \"1\"", "version_info: \"2\"").replace("prefix: \"/\"", "prefix: \"/api\"");
    swap_in(&dir.0, "lds.yaml", &edited);
    c.wait_stat("listener_manager.lds.update_success", |v| v == 2);
    assert_eq!(Client::connect(addr).get("/").status, 404);
    assert_eq!(Client::connect(addr).get("/api").seen().upstream(), "backend");
}

#[test]
fn a_replaced_cluster_finishes_its_requests_in_flight_and_new_ones_go_to_the_new_one() {
    let gate = Gate::new();
    let (old, new) = (holding_upstream("old", &gate), http_upstream("new"));
    let dir = TempDir::new("xds-replace-cluster");
    dir.file("cds.yaml", &discovery(CLUSTER, "1", &[static_cluster("up", &[old.port()])]));
    dir.file("lds.yaml", &discovery(LISTENER, "1", &[web_listener("web", "", "up")]));
    let mut c = start(&dir, "", 2);
    let addr = c.listener("web");
    let mut held = Client::connect(addr);
    held.send_raw(&Client::encode_request("GET", "/", &[("x-test-hold", "1")], b""));
    gate.wait_held(1);

    swap_in(&dir.0, "cds.yaml", &discovery(CLUSTER, "2", &[static_cluster("up", &[new.port()])]));
    c.wait_stat("cluster_manager.cds.update_success", |v| v == 2);
    assert_eq!(counter(&c, "cluster_manager.cluster_modified"), 1);
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "new");
    gate.open();
    let response = held.read_response(false);
    assert_eq!((response.status, response.text().as_str()), (200, "old"));
    // The old cluster's pool is gone with it: no connection to `old` stays.
    c.wait_stat("cluster.up.upstream_cx_active", |v| v == 1);

    // Shutdown stops the LDS listener too (no kept copy holds its socket).
    drop(held);
    c.send_signal(libc::SIGTERM);
    assert!(c.wait_exit(Duration::from_secs(15)).success());
}
