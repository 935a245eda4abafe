//! RTDS: `layered_runtime`'s `rtds_layer` fed by the control plane of
//! `tests/shared/xds_server.rs` (over ADS, or on a delta stream of its own) or
//! by a file. Each session runs against Courier and then the real Envoy 1.40
//! (`same_as_envoy`) and both must end the same: a route's `runtime_fraction`
//! (runtime key `route.frac`) flips as RTDS pushes a new layer, `/runtime`
//! shows the key in the layer, a bad layer is NACKed (rejected) and the old one
//! serves on, and the `runtime.*` stats and the requests agree.

use envoy_types::pb::google::protobuf::Any;

use crate::harness::{http_request, static_cluster, swap_in, TempDir};
use crate::http_util::{http_listener, one_vhost};
use crate::shared_xds::{XdsServer, LISTENER_TYPE, RUNTIME_TYPE};
use crate::xds_grpc::{
    admin_listener, admin_stat, ads_bootstrap, is_ack, resource, same_as_envoy, summary, xds_cluster, Started,
};

/// A listener `web`: `/frac` answers 200 on the fraction of requests the
/// runtime key `route.frac` sets (100% by default); the rest fall to a 204.
fn web_listener() -> String {
    let routes = "              - match: { prefix: /frac, runtime_fraction: { default_value: { numerator: 100 }, runtime_key: route.frac } }\n                direct_response: { status: 200 }\n              - match: { prefix: / }\n                direct_response: { status: 204 }\n";
    http_listener("web", "", &one_vhost(routes), "")
}

/// A `Runtime` resource `name` whose `layer` is the YAML flow mapping `layer`.
fn runtime(name: &str, layer: &str) -> Any {
    resource(RUNTIME_TYPE, &format!("- name: {name}\n  layer: {layer}\n"))
}

/// The status `/frac` gets once it is `want` (or the last one after the
/// wait): the workers take a new snapshot a moment after the update is ACKed.
fn frac_status(admin: std::net::SocketAddr, want: u16) -> u16 {
    let addr = admin_listener(admin, "web");
    let deadline = std::time::Instant::now() + crate::harness::IO_TIMEOUT;
    loop {
        let status = http_request(addr, "GET", "/frac").0;
        if status == want || std::time::Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `/runtime`'s layers, and each of `keys` with its value in every layer and final.
fn runtime_shown(admin: std::net::SocketAddr, keys: &[&str]) -> String {
    let (_, body) = http_request(admin, "GET", "/runtime");
    let rt: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/runtime ({e}): {body}"));
    let mut out = format!("layers {}", rt["layers"]);
    for key in keys {
        let e = &rt["entries"][key];
        out.push_str(&format!("; {key} = {} {}", e["final_value"], e["layer_values"]));
    }
    out
}

/// The `runtime.*` counters and gauges both proxies have (the `version_text`
/// text readout is compared by compat `runtime_rtds_file`).
fn runtime_stats(admin: std::net::SocketAddr) -> Vec<String> {
    [
        "load_success",
        "load_error",
        "num_keys",
        "num_layers",
        "override_dir_exists",
        "override_dir_not_exists",
        "admin_overrides_active",
        "update_attempt",
        "update_success",
        "update_rejected",
        "update_failure",
        "init_fetch_timeout",
        "version",
    ]
    .iter()
    .map(|name| format!("runtime.{name}: {}", admin_stat(admin, &format!("runtime.{name}"))))
    .collect()
}

const KEYS: &[&str] = &["route.frac", "deep.er.key", "on", "s"];

/// RTDS over ADS beside LDS: the runtime is asked for (by the layer's name)
/// before the listeners, as Envoy's server waits for it before its secondary
/// clusters; each push flips `/frac`; a layer holding a list is NACKed, the
/// old one serves on and (as Envoy keeps the bad resource) `/runtime_modify`
/// fails with its error until a good layer comes; a resource of another name
/// is ACKed and changes nothing.
fn ads_session(runtime_layers: &str, start: fn(&str) -> Started) -> Vec<String> {
    let xds = XdsServer::start();
    let layer = "{ route: { frac: 0 }, deep: { er: { key: text } }, on: true, pct: { numerator: 5, denominator: TEN_THOUSAND } }";
    xds.push(RUNTIME_TYPE, "r1", vec![runtime("rtds0", layer)]);
    xds.push(LISTENER_TYPE, "l1", vec![resource(LISTENER_TYPE, &web_listener())]);
    let yaml = ads_bootstrap(&xds, "", "").replace("  cds_config: { ads: {}, resource_api_version: V3 }\n", "")
        + runtime_layers
        + "stats_flush_interval: 0.1s\n";
    let (admin, guard) = start(&yaml);
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    let mut out = vec![
        format!("r1: /frac {}", frac_status(admin, 204)),
        runtime_shown(admin, KEYS),
        format!("num_keys {}", admin_stat(admin, "runtime.num_keys")),
    ];

    xds.push(RUNTIME_TYPE, "r2", vec![runtime("rtds0", "{ route: { frac: 100 } }")]);
    xds.wait_request(0, |r| is_ack(r, RUNTIME_TYPE, "r2"));
    out.push(format!("r2: /frac {}", frac_status(admin, 200)));
    out.push(runtime_shown(admin, KEYS));

    let seen = xds.requests().len();
    xds.push(RUNTIME_TYPE, "r3", vec![runtime("rtds0", "{ route: { frac: [0] } }")]);
    let (_, nack) = xds.wait_request(seen, |r| r.type_url == RUNTIME_TYPE && r.error_detail.is_some());
    let message = nack.error_detail.map(|s| s.message).unwrap_or_default();
    out.push(format!("r3 NACK names the key: {}", message.contains("Invalid runtime entry value for route.frac")));
    out.push(format!("r3: /frac {}", frac_status(admin, 200)));
    let (status, body) = http_request(admin, "POST", "/runtime_modify?zz=1");
    out.push(format!("runtime_modify while the bad layer is held: {status} {body:?}"));

    xds.push(RUNTIME_TYPE, "r4", vec![runtime("other", "{ route: { frac: 0 } }")]);
    xds.wait_request(seen, |r| is_ack(r, RUNTIME_TYPE, "r4"));
    out.push(format!("r4: /frac {}", frac_status(admin, 200)));

    xds.push(RUNTIME_TYPE, "r5", vec![runtime("rtds0", "{ route: { frac: 0 } }"), runtime("other", "{ x: 1 }")]);
    xds.wait_request(seen, |r| is_ack(r, RUNTIME_TYPE, "r5"));
    out.push(format!("r5: /frac {}", frac_status(admin, 204)));
    let (status, body) = http_request(admin, "POST", "/runtime_modify?zz=1");
    out.push(format!("runtime_modify: {status} {body:?}"));
    out.push(runtime_shown(admin, &["route.frac", "zz", "x"]));
    out.extend(runtime_stats(admin));
    // Recorded for each accepted gRPC update, shown once histograms are flushed.
    let durations = || http_request(admin, "GET", "/stats?filter=^runtime.update_duration$").1;
    crate::harness::wait_for("runtime.update_duration", || !durations().contains("No recorded values"));
    drop(guard);
    out.extend(xds.requests().iter().map(|(_, r)| format!("{} {:?}", summary(r), r.resource_names)));
    out
}

#[test]
fn rtds_over_ads_matches_envoy() {
    // The layer `rtds0` takes the `Runtime` resource of its `name` (whose
    // `layer` the session pushes) from `rtds_config`: the ADS stream.
    let layers = "layered_runtime:\n  layers:\n  - { name: static, static_layer: { route: { frac: 100 }, s: 1 } }\n  - { name: rtds0, rtds_layer: { name: rtds0, rtds_config: { ads: {}, resource_api_version: V3 } } }\n  - { name: admin, admin_layer: {} }\n";
    let out = same_as_envoy(|start| ads_session(layers, start));
    assert!(out.contains(&"r2: /frac 200".to_string()), "{out:#?}");
    assert!(out.contains(&"r5: /frac 204".to_string()), "{out:#?}");
}

/// Courier's NACK of a bad layer names the field, and its key.
#[test]
fn a_bad_rtds_layer_is_nacked_with_its_field_path() {
    let xds = XdsServer::start();
    xds.push(RUNTIME_TYPE, "r1", vec![runtime("rtds0", "{ route: { frac: 0 } }")]);
    xds.push(LISTENER_TYPE, "l1", vec![resource(LISTENER_TYPE, &web_listener())]);
    let yaml = ads_bootstrap(&xds, "", "").replace("  cds_config: { ads: {}, resource_api_version: V3 }\n", "")
        + "layered_runtime:\n  layers:\n  - { name: rtds0, rtds_layer: { name: rtds0, rtds_config: { ads: {} } } }\n";
    let c = crate::harness::Courier::start(&yaml, 1);
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    xds.push(RUNTIME_TYPE, "r2", vec![runtime("rtds0", "{ route: { frac: [0] } }")]);
    let (_, nack) = xds.wait_request(0, |r| r.type_url == RUNTIME_TYPE && r.error_detail.is_some());
    assert_eq!(nack.version_info, "r1");
    let message = nack.error_detail.map(|s| s.message).unwrap_or_default();
    assert_eq!(message, "resources[0].layer: Invalid runtime entry value for route.frac");
    assert_eq!(frac_status(c.admin, 204), 204, "the old layer serves");
}

/// RTDS on a stream of its own (`api_config_source`), a stream per layer, two
/// layers: one the server has, one it never sends (start-up goes on after its
/// `initial_fetch_timeout`, counted). On a delta stream, removing a layer's resource empties the layer
/// (the static default is back); in the state of the world a response without
/// it changes nothing. The other's first push applies.
/// `rtds_layer` is the layer's YAML given its name and an `initial_fetch_timeout`.
fn own_stream_session(api_type: &str, rtds_layer: fn(&str, &str) -> String, start: fn(&str) -> Started) -> Vec<String> {
    let xds = XdsServer::start();
    xds.push(RUNTIME_TYPE, "r1", vec![runtime("rtds0", "{ route: { frac: 0 } }")]);
    let delta = api_type == "DELTA_GRPC";
    let yaml = format!(
        "node: {{ id: test-node, cluster: test-cluster }}\nstatic_resources:\n  listeners:\n{}  clusters:\n{}layered_runtime:\n  layers:\n  - {{ name: static, static_layer: {{ route: {{ frac: 100 }} }} }}\n  - {}\n  - {}\n",
        web_listener(),
        xds_cluster(xds.port()),
        rtds_layer("rtds0", "15s").replace("API_TYPE", api_type),
        rtds_layer("rtds1", "0.3s").replace("API_TYPE", api_type),
    );
    let (admin, guard) = start(&yaml);
    let mut out = vec![
        format!("started: /frac {}", frac_status(admin, 204)),
        format!("init_fetch_timeout {}", admin_stat(admin, "runtime.init_fetch_timeout")),
        runtime_shown(admin, &["route.frac"]),
    ];
    let acked = |nonce: &str, version: &str| {
        if delta {
            xds.wait_delta_request(0, |r| r.response_nonce == nonce && r.error_detail.is_none());
        } else {
            xds.wait_request(0, |r| is_ack(r, RUNTIME_TYPE, version));
        }
    };
    xds.remove(RUNTIME_TYPE, "r2", &["rtds0"]);
    acked("n2", "r2");
    out.push(format!("rtds0 removed: /frac {}", frac_status(admin, if delta { 200 } else { 204 })));
    out.push(runtime_shown(admin, &["route.frac"]));
    xds.push(RUNTIME_TYPE, "r3", vec![runtime("rtds1", "{ route: { frac: 0 } }")]);
    acked("n3", "r3");
    out.push(format!("rtds1 pushed: /frac {}", frac_status(admin, 204)));
    out.push(runtime_shown(admin, &["route.frac"]));
    out.extend(runtime_stats(admin));
    drop(guard);
    // Each layer has a stream of its own: the order across them is a race
    // (and so which gets which nonce), each stream's own is not.
    let mut requests = xds.requests();
    requests.sort_by(|a, b| a.1.resource_names.cmp(&b.1.resource_names));
    out.extend(requests.iter().map(|(method, r)| {
        format!(
            "{} version '{}' nonce{} node {} {:?}{}",
            method.rsplit('/').next().unwrap_or_default(),
            r.version_info,
            if r.response_nonce.is_empty() { " none" } else { " set" },
            r.node.is_some(),
            r.resource_names,
            if r.error_detail.is_some() { " NACK" } else { "" }
        )
    }));
    // Here too the order across the two streams is a race (which of the
    // first answers is `n1` too): the delta requests are compared sorted.
    let mut delta: Vec<String> = xds
        .delta_requests()
        .iter()
        .map(|(method, r)| {
            let mut names = r.resource_names_subscribe.clone();
            names.sort();
            format!(
                "{} {} subscribe {names:?} unsubscribe {:?} nonce{}{}",
                method.rsplit('/').next().unwrap_or_default(),
                r.type_url.rsplit('.').next().unwrap_or_default(),
                r.resource_names_unsubscribe,
                if r.response_nonce.is_empty() { " none" } else { " set" },
                if r.error_detail.is_some() { " NACK" } else { "" }
            )
        })
        .collect();
    delta.sort();
    out.extend(delta);
    out
}

/// An RTDS layer named `name` on a stream of its own (`API_TYPE` to fill).
fn own_stream_layer(name: &str, initial_fetch_timeout: &str) -> String {
    format!(
        "{{ name: {name}, rtds_layer: {{ name: {name}, rtds_config: {{ api_config_source: {{ api_type: API_TYPE, transport_api_version: V3, grpc_services: [{{ envoy_grpc: {{ cluster_name: xds }} }}] }}, resource_api_version: V3, initial_fetch_timeout: {initial_fetch_timeout} }} }} }}"
    )
}

#[test]
fn rtds_on_a_delta_stream_matches_envoy() {
    // Each layer's `rtds_config` is an `api_config_source` of DELTA_GRPC.
    let out = same_as_envoy(|start| own_stream_session("DELTA_GRPC", own_stream_layer, start));
    assert!(out.contains(&"rtds0 removed: /frac 200".to_string()), "{out:#?}");
}

#[test]
fn rtds_on_a_stream_of_its_own_matches_envoy() {
    // Each layer's `rtds_config` is an `api_config_source` of GRPC.
    let out = same_as_envoy(|start| own_stream_session("GRPC", own_stream_layer, start));
    assert!(out.contains(&"rtds1 pushed: /frac 204".to_string()), "{out:#?}");
}

/// RTDS from a file (`path_config_source`): read before the listeners serve,
/// read again as a new file is moved in; a bad one is rejected (the old
/// layer serves on) and so are one naming another resource and an empty one.
fn file_session(rtds_layer: &str, start: fn(&str) -> Started) -> Vec<String> {
    let dir = TempDir::new("rtds-file");
    let file = |version: &str, resources: &str| format!("version_info: \"{version}\"\nresources:\n{resources}");
    let one = |name: &str, layer: &str| {
        format!("- \"@type\": type.googleapis.com/envoy.service.runtime.v3.Runtime\n  name: {name}\n  layer: {layer}\n")
    };
    swap_in(&dir.0, "rtds.yaml", &file("1", &one("rtds0", "{ route: { frac: 0 } }")));
    let yaml = format!(
        "node: {{ id: test-node, cluster: test-cluster }}\nstatic_resources:\n  listeners:\n{}  clusters:\n{}layered_runtime:\n  layers:\n  - {}\n",
        web_listener(),
        static_cluster("unused", &[1]),
        rtds_layer.replace("PATH", &dir.0.join("rtds.yaml").display().to_string())
    );
    let (admin, guard) = start(&yaml);
    let mut out = vec![format!("1: /frac {}", frac_status(admin, 204)), runtime_shown(admin, &["route.frac"])];
    let wait_attempts = |n: i64| {
        crate::harness::wait_for("runtime.update_attempt", || admin_stat(admin, "runtime.update_attempt") == n)
    };
    swap_in(&dir.0, "rtds.yaml", &file("2", &one("rtds0", "{ route: { frac: 100 } }")));
    wait_attempts(2);
    out.push(format!("2: /frac {}", frac_status(admin, 200)));
    for (i, bad) in
        [one("rtds0", "{ route: { frac: [1] } }"), one("other", "{ a: 1 }"), "  []\n".to_string()].iter().enumerate()
    {
        swap_in(&dir.0, "rtds.yaml", &file(&format!("{}", 3 + i), bad));
        wait_attempts(3 + i as i64);
        out.push(format!("{}: /frac {}", 3 + i, frac_status(admin, 200)));
    }
    out.extend(runtime_stats(admin));
    drop(guard);
    out
}

#[test]
fn rtds_from_a_file_matches_envoy() {
    let rtds_layer =
        "{ name: rtds0, rtds_layer: { name: rtds0, rtds_config: { path_config_source: { path: PATH } } } }";
    let out = same_as_envoy(|start| file_session(rtds_layer, start));
    assert!(out.contains(&"2: /frac 200".to_string()), "{out:#?}");
}

/// Envoy Gateway's shape (`layered_runtime` with a static layer and an RTDS
/// layer on delta ADS, a static EDS cluster on ADS, CDS and LDS on ADS, the
/// node on the first message only): the runtime is asked for first, and the
/// EDS, CDS and LDS requests only once its layer came, as Envoy's server
/// initializes its secondary clusters after RTDS.
fn gateway_session(start: fn(&str) -> Started) -> Vec<String> {
    let a = crate::shared_net::http_upstream("a");
    let xds = XdsServer::start();
    xds.push(RUNTIME_TYPE, "r1", vec![runtime("runtime-0", "{ route: { frac: 0 } }")]);
    xds.push(crate::shared_xds::ENDPOINT_TYPE, "e1", vec![crate::xds_grpc::assignment("local", &[a.port()])]);
    xds.push(crate::shared_xds::CLUSTER_TYPE, "c1", crate::xds_grpc::clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![resource(LISTENER_TYPE, &web_listener())]);
    let yaml = format!(
        "node: {{ id: test-node, cluster: test-cluster }}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds }} }}]
    set_node_on_first_message_only: true
  cds_config: {{ ads: {{}}, initial_fetch_timeout: 0s, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, initial_fetch_timeout: 0s, resource_api_version: V3 }}
layered_runtime:
  layers:
  - {{ name: global_config, static_layer: {{ re2.max_program_size.error_level: 4294967295 }} }}
  - {{ name: runtime-0, rtds_layer: {{ name: runtime-0, rtds_config: {{ ads: {{}}, resource_api_version: V3 }} }} }}
static_resources:
  clusters:
{}{}",
        xds_cluster(xds.port()),
        crate::xds_grpc::ads_eds_cluster("local", "local")
    );
    let (admin, guard) = start(&yaml);
    xds.wait_delta_request(0, |r| r.type_url == LISTENER_TYPE && !r.response_nonce.is_empty());
    let mut out = vec![format!("/frac {}", frac_status(admin, 204)), runtime_shown(admin, &["route.frac"])];
    xds.push(RUNTIME_TYPE, "r2", vec![runtime("runtime-0", "{ route: { frac: 100 } }")]);
    xds.wait_delta_request(0, |r| r.type_url == RUNTIME_TYPE && r.response_nonce == "n5");
    out.push(format!("r2: /frac {}", frac_status(admin, 200)));
    out.extend(runtime_stats(admin));
    drop(guard);
    out.extend(xds.delta_requests().iter().map(|(_, r)| crate::xds_delta::delta_summary(r)));
    out
}

#[test]
fn envoy_gateway_s_rtds_layer_on_delta_ads_matches_envoy() {
    let out = same_as_envoy(gateway_session);
    assert!(out.contains(&"r2: /frac 200".to_string()), "{out:#?}");
}

/// Two RTDS layers on the ADS stream (the state of the world): asked for one
/// after the other on the one stream, the second request naming both (the
/// first only `first`); a
/// response updates each layer it holds, the later layer winning.
fn two_layers_on_ads_session(start: fn(&str) -> Started) -> Vec<String> {
    let xds = XdsServer::start();
    let both = |version: &str, first: &str, second: &str| {
        xds.push(RUNTIME_TYPE, version, vec![runtime("first", first), runtime("second", second)]);
    };
    both("r1", "{ route: { frac: 0 } }", "{ other: 1 }");
    let yaml = format!(
        "node: {{ id: test-node, cluster: test-cluster }}\ndynamic_resources:\n  ads_config: {{ api_type: GRPC, transport_api_version: V3, grpc_services: [{{ envoy_grpc: {{ cluster_name: xds }} }}] }}\nstatic_resources:\n  listeners:\n{}  clusters:\n{}layered_runtime:\n  layers:\n  - {{ name: first, rtds_layer: {{ name: first, rtds_config: {{ ads: {{}} }} }} }}\n  - {{ name: second, rtds_layer: {{ name: second, rtds_config: {{ ads: {{}} }} }} }}\n",
        web_listener(),
        xds_cluster(xds.port())
    );
    let (admin, guard) = start(&yaml);
    let mut out =
        vec![format!("r1: /frac {}", frac_status(admin, 204)), runtime_shown(admin, &["route.frac", "other"])];
    both("r2", "{ route: { frac: 0 } }", "{ route: { frac: 100 } }");
    xds.wait_request(0, |r| is_ack(r, RUNTIME_TYPE, "r2"));
    out.push(format!("r2: /frac {}", frac_status(admin, 200)));
    out.push(runtime_shown(admin, &["route.frac", "other"]));
    out.extend(runtime_stats(admin));
    drop(guard);
    // Each layer's subscription asks as it starts: the first request names
    // `first`, the next (before any response) both, as Envoy's.
    let requests = xds.requests();
    out.extend(requests.iter().map(|(_, r)| {
        let mut names = r.resource_names.clone();
        names.sort();
        format!("{} {names:?}", summary(r))
    }));
    out
}

#[test]
fn two_rtds_layers_on_ads_match_envoy() {
    let out = same_as_envoy(two_layers_on_ads_session);
    assert!(out.contains(&"r2: /frac 200".to_string()), "{out:#?}");
}
