//! xDS from a management server: `dynamic_resources.ads_config` with CDS and
//! LDS on it (`ads: {}`), or each on a stream of its own (`api_config_source`).
//! Each test runs the control plane of `tests/shared/xds_server.rs` on
//! 127.0.0.1, starts Courier against it, pushes clusters and listeners, sends
//! real traffic through them, and waits on the requests the control plane got
//! (ACKs, NACKs) and on Courier's stats, never on time.

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::protobuf::Any;

use crate::harness::{static_cluster, Courier};
use crate::http_util::{http_listener, one_vhost, prefix_route, Client};
use crate::shared_net::http_upstream;
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE};

/// A resource from a static-style YAML fragment (`  - name: ...`), encoded
/// as a management server sends it. The fragment is decoded as far as the
/// schema allows, unchecked: a test may push what Courier must refuse.
pub fn resource(type_url: &str, fragment: &str) -> Any {
    let json = courier::config::bootstrap::parse_yaml(fragment).expect("YAML fragment");
    let item = json.as_array().and_then(|a| a.first()).expect("one list item");
    let name = type_url.trim_start_matches("type.googleapis.com/");
    let desc = courier::config::descriptor::message(name).expect("a type of the schema");
    let mut path = courier::config::FieldPath::new();
    let (msg, errors) = courier::config::proto_json::decode_partial(&desc, item, &mut path);
    assert!(errors.is_empty(), "{errors:?}");
    Any { type_url: type_url.to_string(), value: courier::config::encode::encode_to_vec(&msg) }
}

pub fn clusters(fragments: &[String]) -> Vec<Any> {
    fragments.iter().map(|f| resource(CLUSTER_TYPE, f)).collect()
}

/// An HTTP listener `name` routing `/` to `cluster` (and, with `extra_routes`, more).
pub fn web_listener(name: &str, extra_routes: &str, cluster: &str) -> Any {
    let routes = format!("{extra_routes}{}", prefix_route("/", cluster, ""));
    resource(LISTENER_TYPE, &http_listener(name, "", &one_vhost(&routes), ""))
}

/// The management server's cluster: plaintext HTTP/2 to the control plane
/// (`xds_tls.rs` has it over TLS).
pub fn xds_cluster(port: u16) -> String {
    format!(
        "{}    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {{ http2_protocol_options: {{}} }}\n",
        static_cluster("xds", &[port])
    )
}

/// A bootstrap with CDS and LDS over ADS to `xds`; `ads_extra` adds to
/// `ads_config`, `source_extra` to both config sources.
pub fn ads_bootstrap(xds: &XdsServer, ads_extra: &str, source_extra: &str) -> String {
    format!(
        "node: {{ id: test-node, cluster: test-cluster }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds }} }}]
{ads_extra}  cds_config: {{ ads: {{}}, resource_api_version: V3{source_extra} }}
  lds_config: {{ ads: {{}}, resource_api_version: V3{source_extra} }}
static_resources:
  clusters:
{}",
        xds_cluster(xds.port())
    )
}

fn counter(c: &Courier, name: &str) -> i64 {
    c.stat(name).unwrap_or_else(|| panic!("no stat {name}"))
}

pub fn is_ack(r: &DiscoveryRequest, type_url: &str, version: &str) -> bool {
    r.type_url == type_url && r.version_info == version && !r.response_nonce.is_empty() && r.error_detail.is_none()
}

#[test]
fn ads_clusters_and_listeners_serve_and_updates_apply() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    // `ads_config` to the control plane, CDS and LDS on it (`ads: {}`).
    let c = Courier::start(&ads_bootstrap(&xds, "", ""), 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/x").seen().upstream(), "a");

    // CDS first, wildcard, with the node; LDS once the clusters are in, which
    // is before CDS's ACK (as Envoy orders them).
    let requests = xds.requests();
    let (method, first) = &requests[0];
    assert!(method.ends_with("AggregatedDiscoveryService/StreamAggregatedResources"), "{method}");
    assert_eq!((first.type_url.as_str(), first.version_info.as_str()), (CLUSTER_TYPE, ""));
    assert!(first.resource_names.is_empty() && first.response_nonce.is_empty());
    let node = first.node.as_ref().expect("the first request carries the node");
    assert_eq!((node.id.as_str(), node.cluster.as_str()), ("test-node", "test-cluster"));
    let (cds_ack, ack) = xds.wait_request(0, |r| is_ack(r, CLUSTER_TYPE, "c1"));
    assert!(ack.node.is_some(), "without set_node_on_first_message_only every request has the node");
    let (lds, _) = xds.wait_request(0, |r| r.type_url == LISTENER_TYPE);
    assert_eq!((lds, cds_ack), (1, 2), "{requests:#?}");
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    assert_eq!(counter(&c, "control_plane.connected_state"), 1);
    assert_eq!(counter(&c, "control_plane.pending_requests"), 0);
    assert_eq!(counter(&c, "control_plane.rate_limit_enforced"), 0);
    // One attempt as the subscription starts, one per response.
    assert_eq!(counter(&c, "cluster_manager.cds.update_attempt"), 2);
    assert_eq!(counter(&c, "cluster_manager.cds.update_success"), 1);
    assert_eq!(counter(&c, "listener_manager.lds.update_success"), 1);
    assert_eq!(counter(&c, "cluster_manager.cds.init_fetch_timeout"), 0);

    // A new cluster, then a route to it.
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c2", clusters(&[static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()])]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c2"));
    xds.push(LISTENER_TYPE, "l2", vec![web_listener("web", &prefix_route("/b", "b", ""), "a")]);
    xds.wait_request(seen, |r| is_ack(r, LISTENER_TYPE, "l2"));
    assert_eq!(c.listener("web"), addr, "the updated listener keeps its socket");
    assert_eq!(Client::connect(addr).get("/b").seen().upstream(), "b");
    assert_eq!(Client::connect(addr).get("/x").seen().upstream(), "a");
    assert_eq!(counter(&c, "cluster_manager.cluster_added"), 3, "xds, a and b");

    let (_, dump) = c.admin_get("/config_dump");
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    assert_eq!(dump["configs"][1]["version_info"], "c2");
    assert_eq!(dump["configs"][1]["dynamic_active_clusters"][1]["version_info"], "c2");
    // An in-place update keeps its predecessor's version, as Envoy's does.
    assert_eq!(dump["configs"][2]["dynamic_listeners"][0]["active_state"]["version_info"], "l1");
    // Recorded as in Envoy; shown once the histograms are flushed.
    let (_, stats) = c.admin_get("/stats");
    assert!(stats.contains("cluster_manager.cds.update_duration: "), "{stats}");

    // The route's cluster goes: it answers 503, the rest serves on.
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c3", clusters(&[static_cluster("a", &[a.port()])]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c3"));
    assert_eq!(counter(&c, "cluster_manager.cluster_removed"), 1);
    assert_eq!(Client::connect(addr).get("/b").status, 503);
    assert_eq!(Client::connect(addr).get("/x").seen().upstream(), "a");
}

#[test]
fn a_bad_resource_is_nacked_with_its_field_path_and_the_old_config_serves() {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    let c = Courier::start(&ads_bootstrap(&xds, "", ""), 1);
    let addr = c.listener("web");
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));

    // A field Courier does not act on: NACKed by its path, with the last
    // accepted version and the response's nonce, as gRPC status INTERNAL.
    let seen = xds.requests().len();
    let unsupported = format!("{}    outlier_detection: {{}}\n", static_cluster("b", &[a.port()]));
    xds.push(CLUSTER_TYPE, "c2", clusters(&[static_cluster("a", &[a.port()]), unsupported]));
    let (_, nack) = xds.wait_request(seen, |r| r.type_url == CLUSTER_TYPE && r.error_detail.is_some());
    assert_eq!(nack.version_info, "c1");
    assert!(!nack.response_nonce.is_empty());
    let status = nack.error_detail.expect("error_detail");
    assert_eq!(status.code, 13);
    assert!(status.message.contains("resources[1].outlier_detection"), "{}", status.message);
    c.wait_stat("cluster_manager.cds.update_rejected", |v| v == 1);
    assert_eq!(counter(&c, "cluster_manager.cds.update_success"), 1);
    assert_eq!(counter(&c, "cluster_manager.cluster_added"), 2, "nothing of c2 applied");

    // A field the schema lacks (number 999): refused too, by its number.
    let seen = xds.requests().len();
    let mut unknown = resource(CLUSTER_TYPE, &static_cluster("a", &[a.port()]));
    unknown.value.extend_from_slice(&[0xb8, 0x3e, 0x01]); // field 999, varint 1
    xds.push(CLUSTER_TYPE, "c3", vec![unknown]);
    let (_, nack) = xds.wait_request(seen, |r| r.type_url == CLUSTER_TYPE && r.error_detail.is_some());
    assert_eq!(nack.version_info, "c1");
    let message = nack.error_detail.map(|s| s.message).unwrap_or_default();
    assert!(message.contains("unknown field number 999 in envoy.config.cluster.v3.Cluster"), "{message}");

    // A listener routing to a cluster that does not exist: refused as a file's would be.
    let seen = xds.requests().len();
    xds.push(LISTENER_TYPE, "l2", vec![web_listener("web", "", "nowhere")]);
    let (_, nack) = xds.wait_request(seen, |r| r.type_url == LISTENER_TYPE && r.error_detail.is_some());
    assert_eq!(nack.version_info, "l1");
    assert_eq!(counter(&c, "listener_manager.lds.update_rejected"), 1);
    assert_eq!(Client::connect(addr).get("/x").seen().upstream(), "a", "the old config serves");

    // The next good update is ACKed and applies.
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c4", clusters(&[static_cluster("a", &[a.port()]), static_cluster("b", &[a.port()])]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c4"));
    assert_eq!(counter(&c, "cluster_manager.cds.update_success"), 2);
}

#[test]
fn a_lost_management_server_is_reconnected_and_resubscribed_keeping_the_config() {
    let a = http_upstream("a");
    let mut xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    let c = Courier::start(&ads_bootstrap(&xds, "    set_node_on_first_message_only: true\n", ""), 1);
    let addr = c.listener("web");
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    let requests = xds.requests();
    assert!(requests[0].1.node.is_some(), "the stream's first request carries the node");
    assert!(requests[1..].iter().all(|(_, r)| r.node.is_none()), "and only it: {requests:#?}");

    xds.stop();
    c.wait_stat("control_plane.connected_state", |v| v == 0);
    c.wait_stat("cluster_manager.cds.update_failure", |v| v >= 1);
    assert!(counter(&c, "listener_manager.lds.update_failure") >= 1);
    assert_eq!(Client::connect(addr).get("/x").seen().upstream(), "a", "what it had keeps serving");

    // Back: a new stream, each type asked for again with its last accepted
    // version and no nonce, the node on the first request again.
    let seen = xds.requests().len();
    xds.restart();
    let (i, cds) = xds.wait_request(seen, |r| r.type_url == CLUSTER_TYPE && r.response_nonce.is_empty());
    assert_eq!(cds.version_info, "c1");
    assert_eq!(i, seen, "CDS first on the new stream");
    assert!(cds.node.is_some());
    let (_, lds) = xds.wait_request(seen, |r| r.type_url == LISTENER_TYPE && r.response_nonce.is_empty());
    assert_eq!(lds.version_info, "l1");
    assert!(lds.node.is_none());
    c.wait_stat("control_plane.connected_state", |v| v == 1);
    assert_eq!(xds.streams(), 2);
    xds.wait_request(seen, |r| is_ack(r, LISTENER_TYPE, "l1"));

    // And updates flow on it.
    xds.push(LISTENER_TYPE, "l2", vec![web_listener("web", &prefix_route("/y", "a", ""), "a")]);
    xds.wait_request(seen, |r| is_ack(r, LISTENER_TYPE, "l2"));
    assert_eq!(Client::connect(addr).get("/y").seen().upstream(), "a");
}

#[test]
fn initial_fetch_timeout_lets_start_up_go_on_without_an_answer() {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    // Nothing pushed: the control plane never answers at start-up.
    let c = Courier::start(&ads_bootstrap(&xds, "", ", initial_fetch_timeout: 0.2s"), 1);
    assert_eq!(counter(&c, "cluster_manager.cds.init_fetch_timeout"), 1);
    assert_eq!(counter(&c, "listener_manager.lds.init_fetch_timeout"), 1);
    // The start, then the timeout.
    assert_eq!(counter(&c, "cluster_manager.cds.update_attempt"), 2);
    assert_eq!(counter(&c, "control_plane.connected_state"), 1);

    // Later pushes apply.
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.wait_request(0, |r| is_ack(r, CLUSTER_TYPE, "c1"));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    assert_eq!(Client::connect(c.listener("web")).get("/").seen().upstream(), "a");
}

#[test]
fn cds_and_lds_on_streams_of_their_own() {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    let source = "{ api_config_source: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }, resource_api_version: V3 }";
    let yaml = format!(
        "node: {{ id: node-1, cluster: cluster-1 }}\ndynamic_resources:\n  cds_config: {source}\n  lds_config: {source}\nstatic_resources:\n  clusters:\n{}",
        xds_cluster(xds.port())
    );
    let c = Courier::start(&yaml, 1);
    assert_eq!(Client::connect(c.listener("web")).get("/").seen().upstream(), "a");
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    let methods: Vec<(String, String)> = xds.requests().into_iter().map(|(m, r)| (m, r.type_url)).collect();
    assert!(methods.iter().all(|(m, t)| (t == CLUSTER_TYPE) == m.ends_with("ClusterDiscoveryService/StreamClusters")));
    assert!(methods.iter().any(|(m, _)| m.ends_with("ListenerDiscoveryService/StreamListeners")), "{methods:?}");
    assert_eq!(xds.streams(), 2);
}

/// `--mode validate` refuses `yaml`: its output.
fn refused(yaml: &str) -> String {
    let (ok, out) = crate::harness::validate(yaml);
    assert!(!ok, "accepted:\n{yaml}");
    out
}

#[test]
fn a_management_server_needs_a_static_http2_cluster() {
    let xds = XdsServer::start();
    let yaml = ads_bootstrap(&xds, "", "").replace("cluster_name: xds", "cluster_name: nope");
    let e = refused(&yaml);
    assert!(e.contains("Unknown gRPC client cluster 'nope'"), "{e}");
    let yaml = ads_bootstrap(&xds, "", "").replace(
        "explicit_http_config: { http2_protocol_options: {} }",
        "explicit_http_config: { http_protocol_options: {} }",
    );
    let e = refused(&yaml);
    assert!(e.contains("needs explicit_http_config.http2_protocol_options"), "{e}");
    let yaml = ads_bootstrap(&xds, "", "").replace("api_type: GRPC", "api_type: REST");
    let e = refused(&yaml);
    assert!(e.contains("dynamic_resources.ads_config") && e.contains("must not have a gRPC service specified"), "{e}");
    let yaml = ads_bootstrap(&xds, "", "").replace("node: { id: test-node, cluster: test-cluster }\n", "");
    let e = refused(&yaml);
    assert!(e.contains("ads: node 'id' and 'cluster' are required"), "{e}");
    // The stream writes no PROXY protocol header: refused, not ignored.
    let yaml = ads_bootstrap(&xds, "", "") + "    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport\n        config: { version: V2 }\n        transport_socket: { name: raw, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer } }\n";
    let e = refused(&yaml);
    assert!(e.contains("'xds' has an upstream_proxy_protocol transport_socket"), "{e}");
}

/// What a request says, for comparing two proxies' (the node only as present or not).
pub fn summary(r: &DiscoveryRequest) -> String {
    let error = r.error_detail.as_ref().map_or(String::new(), |s| format!(" NACK code {}", s.code));
    let node = if r.node.is_some() { " +node" } else { "" };
    let names = if r.resource_names.is_empty() { "" } else { " names" };
    let ty = r.type_url.rsplit('.').next().unwrap_or_default();
    format!("{ty} version '{}' nonce '{}'{node}{names}{error}", r.version_info, r.response_nonce)
}

/// Runs the same session against a proxy started by `start` (its admin
/// address, and what stops it when dropped): the requests its control plane
/// got and the xDS stats it ended with.
fn session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> (Vec<String>, Vec<String>) {
    let a = http_upstream("a");
    let mut xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    let (admin, guard) = start(&ads_bootstrap(&xds, "    set_node_on_first_message_only: true\n", ""));
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    assert_eq!(Client::connect(admin_listener(admin, "web")).get("/").seen().upstream(), "a");
    // Refused by both: a STATIC cluster's endpoint must be an IP address.
    let seen = xds.requests().len();
    let bad = static_cluster("b", &[a.port()]).replace("127.0.0.1", "localhost");
    xds.push(CLUSTER_TYPE, "c2", clusters(&[static_cluster("a", &[a.port()]), bad]));
    xds.wait_request(seen, |r| r.type_url == CLUSTER_TYPE && r.error_detail.is_some());
    let seen = xds.requests().len();
    xds.push(LISTENER_TYPE, "l2", vec![web_listener("web", &prefix_route("/y", "a", ""), "a")]);
    xds.wait_request(seen, |r| is_ack(r, LISTENER_TYPE, "l2"));
    let stat = |name: &str| admin_stat(admin, name);
    let wait_stat = |name: &str, want: i64| {
        let deadline = std::time::Instant::now() + crate::harness::IO_TIMEOUT;
        while stat(name) != want {
            assert!(std::time::Instant::now() < deadline, "{name} is not {want}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    // The management server goes away and comes back: the new stream gets the
    // same snapshot (the bad clusters again) and a new update after it.
    xds.stop();
    wait_stat("control_plane.connected_state", 0);
    let seen = xds.requests().len();
    xds.restart();
    xds.wait_request(seen, |r| r.type_url == LISTENER_TYPE && !r.response_nonce.is_empty());
    xds.wait_request(seen, |r| r.type_url == CLUSTER_TYPE && !r.response_nonce.is_empty());
    xds.push(CLUSTER_TYPE, "c3", clusters(&[static_cluster("a", &[a.port()])]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c3"));
    wait_stat("control_plane.connected_state", 1);
    let requests = xds.requests().iter().map(|(_, r)| summary(r)).collect();
    let mut stats = Vec::new();
    for prefix in ["cluster_manager.cds.", "listener_manager.lds."] {
        // Attempts less failures: how many failures a lost stream counts depends on the back-off.
        let failures = stat(&format!("{prefix}update_failure"));
        assert!(failures >= 1, "{prefix}update_failure");
        stats.push(format!(
            "{prefix}update_attempt - update_failure: {}",
            stat(&format!("{prefix}update_attempt")) - failures
        ));
        for name in ["update_success", "update_rejected", "init_fetch_timeout", "version"] {
            stats.push(format!("{prefix}{name}: {}", stat(&format!("{prefix}{name}"))));
        }
    }
    for name in ["control_plane.connected_state", "control_plane.pending_requests", "control_plane.rate_limit_enforced"]
    {
        stats.push(format!("{name}: {}", stat(name)));
    }
    drop(guard);
    (requests, stats)
}

/// A stat of the proxy behind `admin` (Courier's or Envoy's), -1 when it has none.
pub fn admin_stat(admin: std::net::SocketAddr, name: &str) -> i64 {
    let (_, body) = crate::harness::http_request(admin, "GET", &format!("/stats?filter=^{name}$"));
    body.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))?.trim().parse().ok()).unwrap_or(-1)
}

/// The address the listener `name` of the proxy behind `admin` is bound to.
pub fn admin_listener(admin: std::net::SocketAddr, name: &str) -> std::net::SocketAddr {
    let (_, body) = crate::harness::http_request(admin, "GET", "/listeners");
    body.lines().find_map(|l| l.strip_prefix(&format!("{name}::"))?.parse().ok()).expect("listener")
}

/// A proxy a session started: its admin address, and what stops it when dropped.
pub type Started = (std::net::SocketAddr, Box<dyn std::any::Any>);

pub fn start_courier(yaml: &str) -> Started {
    let c = Courier::start(yaml, 1);
    (c.admin, Box::new(c))
}

pub fn start_envoy(yaml: &str) -> Started {
    let e = crate::http2_conformance::Envoy::start(yaml);
    (e.admin, Box::new(e))
}

/// `start_courier` with `--drain-time-s 1`: a replaced listener's drain ends
/// within the test.
pub fn start_courier_quick_drain(yaml: &str) -> Started {
    let c = Courier::start_with(yaml, 1, &["--drain-time-s", "1"], &[]);
    (c.admin, Box::new(c))
}

/// `start_envoy` with `--drain-time-s 1`.
pub fn start_envoy_quick_drain(yaml: &str) -> Started {
    let e = crate::http2_conformance::Envoy::start_with(yaml, &["--drain-time-s", "1"]);
    (e.admin, Box::new(e))
}

/// Runs an xDS `session` (given how to start the proxy) against Courier, then
/// against the real Envoy 1.40 on its own control plane, and asserts that both
/// ended the same (requests, what served, stats). Courier's outcome, for a test
/// to check on its own too; Envoy's run is skipped when it is not installed.
pub fn same_as_envoy<T: PartialEq + std::fmt::Debug>(session: impl Fn(fn(&str) -> Started) -> T) -> T {
    let courier = session(start_courier);
    if !crate::http2_conformance::Envoy::bin().exists() {
        eprintln!("SKIPPED: Envoy is not installed (scripts/install-envoy)");
        return courier;
    }
    let envoy = session(start_envoy);
    assert_eq!(courier, envoy, "Courier (left) and Envoy 1.40 (right) differ");
    courier
}

/// The same session against the real Envoy 1.40 and Courier: the same requests
/// (versions, nonces, where the node goes, NACKs) and the same stats.
#[test]
fn ads_requests_and_stats_match_envoys() {
    // `ads_config` with `set_node_on_first_message_only`, CDS and LDS on `ads: {}`.
    same_as_envoy(session);
}

/// A `ClusterLoadAssignment` for `service` with one endpoint per port.
pub fn assignment(service: &str, ports: &[u16]) -> Any {
    let endpoints: String = ports
        .iter()
        .map(|p| {
            format!("    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n")
        })
        .collect();
    resource(ENDPOINT_TYPE, &format!("- cluster_name: {service}\n  endpoints:\n  - lb_endpoints:\n{endpoints}"))
}

/// An EDS cluster `name` whose assignment `service` comes over ADS.
pub fn ads_eds_cluster(name: &str, service: &str) -> String {
    format!(
        "  - name: {name}\n    type: EDS\n    connect_timeout: 1s\n    eds_cluster_config: {{ service_name: {service}, eds_config: {{ ads: {{}}, resource_api_version: V3 }} }}\n"
    )
}

/// EDS over ADS, as Envoy's: the EDS clusters of the first CDS update are
/// assigned before listeners are asked for; one CDS adds later warms until its
/// assignment comes, and the CDS ACK waits for it (the management server's
/// signal that routes may name it); the EDS request names each `service_name`
/// (again as clusters come and go); each new assignment moves traffic, and one
/// Courier refuses is NACKed while the last one serves.
#[test]
fn eds_over_ads_assigns_endpoints_as_they_are_pushed() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[ads_eds_cluster("app", "app-svc")]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "app")]);
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("app-svc", &[a.port()]), assignment("other", &[b.port()])]);
    let c = Courier::start(&ads_bootstrap(&xds, "", ""), 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a", "assigned before listeners");
    let (eds, _) = xds.wait_request(0, |r| r.type_url == ENDPOINT_TYPE);
    let (lds, _) = xds.wait_request(0, |r| r.type_url == LISTENER_TYPE);
    assert!(eds < lds, "{:#?}", xds.requests());
    assert_eq!(xds.requests()[eds].1.resource_names, vec!["app-svc".to_string()]);

    // A cluster added later warms until its assignment comes; so does CDS's ACK.
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c2", clusters(&[ads_eds_cluster("app", "app-svc"), ads_eds_cluster("two", "two-svc")]));
    let (asked, eds) = xds.wait_request(seen, |r| r.type_url == ENDPOINT_TYPE && r.resource_names.len() == 2);
    assert_eq!(eds.resource_names, vec!["app-svc".to_string(), "two-svc".to_string()]);
    assert_eq!(counter(&c, "cluster_manager.warming_clusters"), 1);
    assert!(!xds.requests().iter().any(|(_, r)| is_ack(r, CLUSTER_TYPE, "c2")), "no ACK while it warms");
    xds.push(ENDPOINT_TYPE, "e2", vec![assignment("app-svc", &[b.port()]), assignment("two-svc", &[a.port()])]);
    let (acked, _) = xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c2"));
    let (eds_acked, _) = xds.wait_request(seen, |r| is_ack(r, ENDPOINT_TYPE, "e2"));
    assert!(asked < acked && acked < eds_acked, "{:#?}", xds.requests());
    assert_eq!(counter(&c, "cluster_manager.warming_clusters"), 0);
    xds.push(LISTENER_TYPE, "l2", vec![web_listener("web", &prefix_route("/two", "two", ""), "app")]);
    xds.wait_request(seen, |r| is_ack(r, LISTENER_TYPE, "l2"));
    assert_eq!(Client::connect(addr).get("/two").seen().upstream(), "a");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "b");
    assert_eq!(counter(&c, "cluster.app.update_success"), 2);
    assert_eq!(counter(&c, "cluster.app.membership_total"), 1);

    // An endpoint field Courier does not act on: NACKed by its path, b serves on.
    let seen = xds.requests().len();
    let bad = "- cluster_name: app-svc\n  endpoints:\n  - proximity: 1\n    lb_endpoints:\n    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } }\n";
    xds.push(ENDPOINT_TYPE, "e3", vec![resource(ENDPOINT_TYPE, bad)]);
    let (_, nack) = xds.wait_request(seen, |r| r.type_url == ENDPOINT_TYPE && r.error_detail.is_some());
    assert_eq!(nack.version_info, "e2");
    let message = nack.error_detail.map(|s| s.message).unwrap_or_default();
    assert!(message.contains("resources[0].endpoints[0].proximity"), "{message}");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "b");

    // CDS removes the clusters: EDS is asked again, for nothing.
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c3", clusters(&[]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c3"));
    let (_, eds) = xds.wait_request(seen, |r| r.type_url == ENDPOINT_TYPE && r.resource_names.is_empty());
    assert_eq!(eds.version_info, "e2");
}

/// A static EDS cluster on ADS holds start-up until its first assignment (or,
/// as here for `late`, until `initial_fetch_timeout`: then it has no hosts and
/// counts `init_fetch_timeout`), as Envoy's init manager does.
#[test]
fn a_static_eds_cluster_on_ads_starts_with_its_first_assignment() {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("app", &[a.port()])]);
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", &prefix_route("/late", "late", ""), "app")]);
    let late = "  - name: late\n    type: EDS\n    connect_timeout: 1s\n    eds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: 0.3s } }\n";
    let yaml = ads_bootstrap(&xds, "", "").replace("  cds_config: { ads: {}, resource_api_version: V3 }\n", "")
        + &ads_eds_cluster("app", "app")
        + late;
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    assert_eq!(Client::connect(addr).get("/").seen().upstream(), "a", "assigned before listeners started");
    assert_eq!(counter(&c, "cluster.app.update_success"), 1);
    assert_eq!(counter(&c, "cluster.late.init_fetch_timeout"), 1);
    assert_eq!(Client::connect(addr).get("/late").status, 503);
    let (_, eds) = xds.wait_request(0, |r| r.type_url == ENDPOINT_TYPE);
    assert_eq!(eds.resource_names, vec!["app".to_string(), "late".to_string()]);
}

/// The EDS-over-ADS session of `eds_over_ads_assigns_endpoints_as_they_are_pushed`
/// against a proxy started by `start`: the requests (with the names each EDS
/// request lists), what served each step, and the EDS stats.
fn eds_session<G>(start: impl FnOnce(&str) -> (std::net::SocketAddr, G)) -> Vec<String> {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[ads_eds_cluster("app", "app-svc")]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "app")]);
    xds.push(ENDPOINT_TYPE, "e1", vec![assignment("app-svc", &[a.port()]), assignment("other", &[b.port()])]);
    let (admin, guard) = start(&ads_bootstrap(&xds, "", ""));
    let mut out = Vec::new();
    let stat = |name: &str| admin_stat(admin, name);
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    let listener = || admin_listener(admin, "web");
    let served = |step: &str, out: &mut Vec<String>| {
        for path in ["/", "/two"] {
            let r = Client::connect(listener()).get(path);
            let who = if r.status == 200 { r.seen().upstream().to_string() } else { r.status.to_string() };
            out.push(format!(
                "{step} {path}: {who}, warming {} attempts {} {}",
                stat("cluster_manager.warming_clusters"),
                stat("cluster.app.update_attempt"),
                stat("cluster.two.update_attempt")
            ));
        }
    };
    served("e1", &mut out);
    xds.push(CLUSTER_TYPE, "c2", clusters(&[ads_eds_cluster("app", "app-svc"), ads_eds_cluster("two", "two-svc")]));
    xds.wait_request(0, |r| r.type_url == ENDPOINT_TYPE && r.resource_names.len() == 2);
    served("c2", &mut out);
    xds.push(ENDPOINT_TYPE, "e2", vec![assignment("app-svc", &[b.port()]), assignment("two-svc", &[a.port()])]);
    xds.wait_request(0, |r| is_ack(r, ENDPOINT_TYPE, "e2"));
    xds.wait_request(0, |r| is_ack(r, CLUSTER_TYPE, "c2"));
    served("e2", &mut out);
    xds.push(LISTENER_TYPE, "l2", vec![web_listener("web", &prefix_route("/two", "two", ""), "app")]);
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l2"));
    served("l2", &mut out);
    // Refused by both: an endpoint's address must be an IP address.
    let seen = xds.requests().len();
    let bad = format!(
        "- cluster_name: app-svc\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {} }} }} }}\n",
        a.port()
    );
    xds.push(ENDPOINT_TYPE, "e3", vec![resource(ENDPOINT_TYPE, &bad)]);
    xds.wait_request(seen, |r| r.type_url == ENDPOINT_TYPE && r.error_detail.is_some());
    served("e3", &mut out);
    let names = ["update_attempt", "update_success", "update_rejected", "update_empty", "init_fetch_timeout"];
    for name in names.into_iter().chain(["membership_total", "version"]) {
        for cluster in ["app", "two"] {
            out.push(format!("cluster.{cluster}.{name}: {}", stat(&format!("cluster.{cluster}.{name}"))));
        }
    }
    // The clusters go: EDS is asked again without them.
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c3", clusters(&[]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c3"));
    xds.wait_request(seen, |r| r.type_url == ENDPOINT_TYPE && r.resource_names.is_empty());
    drop(guard);
    let requests = xds.requests();
    // The order of a request's names means nothing (Envoy's is a hash set's).
    out.extend(requests.iter().map(|(_, r)| {
        let mut names = r.resource_names.clone();
        names.sort();
        format!("{} {names:?}", summary(r))
    }));
    out
}

/// The EDS-over-ADS session against the real Envoy 1.40 and Courier.
#[test]
fn eds_over_ads_matches_envoy() {
    same_as_envoy(eds_session);
}
