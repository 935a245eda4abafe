//! `layered_runtime` in a running Courier: `/runtime` shows the layers and values,
//! `/runtime_modify` changes a route's `runtime_fraction` on the workers while
//! traffic flows, and a disk layer is read again when its symlink root is replaced.

use crate::harness::{config, http_request, Courier, TempDir};
use crate::http_util::{http_listener, indent};

/// One route: `/frac` matches the fraction the runtime key `route.frac` sets
/// (100% by default) and answers 200; everything else falls to a 404.
fn web_listener() -> String {
    let routes = "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: /frac, runtime_fraction: { default_value: { numerator: 100 }, runtime_key: route.frac } }\n    direct_response: { status: 200 }\n";
    http_listener("web", "", &indent(routes, 12), "")
}

fn start(runtime: &str) -> Courier {
    let yaml = format!("{}layered_runtime:\n{}", config(&[web_listener()], &[]), indent(runtime, 2));
    Courier::start(&yaml, 2)
}

fn statuses(c: &Courier, n: usize) -> Vec<u16> {
    let addr = c.listener("web");
    (0..n).map(|_| http_request(addr, "GET", "/frac").0).collect()
}

fn runtime_json(c: &Courier) -> serde_json::Value {
    let (status, body) = c.admin_get("/runtime");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/runtime is not JSON ({e}): {body}"))
}

#[test]
fn runtime_shows_layers_and_runtime_modify_changes_a_route_live() {
    let c = start("layers:\n- name: static\n  static_layer: { a: { b: 1.5, c: text }, t: true }\n- name: admin\n  admin_layer: {}\n");
    let rt = runtime_json(&c);
    assert_eq!(rt["layers"], serde_json::json!(["static", "admin"]));
    assert_eq!(rt["entries"]["a.b"], serde_json::json!({ "final_value": "1.5", "layer_values": ["1.5", ""] }));
    assert_eq!(rt["entries"]["a.c"]["final_value"], "text");
    assert_eq!(rt["entries"]["t"]["final_value"], "true");
    assert_eq!(c.stat("runtime.num_layers"), Some(2));
    assert_eq!(c.stat("runtime.num_keys"), Some(3));
    assert_eq!(c.stat("runtime.load_success"), Some(2));
    assert_eq!(c.stat("runtime.admin_overrides_active"), Some(0));
    assert!(statuses(&c, 10).iter().all(|s| *s == 200));

    // 0%: every request falls through the route, on every worker (once each has
    // taken the snapshot the main thread posted).
    assert_eq!(c.admin_post("/runtime_modify?route.frac=0&a.b=2"), (200, "OK\n".into()));
    c.wait_until(|c| statuses(c, 10).iter().all(|s| *s == 404), "route.frac 0 on the workers");
    let rt = runtime_json(&c);
    assert_eq!(rt["entries"]["a.b"], serde_json::json!({ "final_value": "2", "layer_values": ["1.5", "2"] }));
    assert_eq!(c.stat("runtime.admin_overrides_active"), Some(1));
    assert_eq!(c.stat("runtime.load_success"), Some(3));
    assert_eq!(c.stat("runtime.num_keys"), Some(4));

    // An empty value removes the override: the default (100%) is back.
    assert_eq!(c.admin_post("/runtime_modify?route.frac=&a.b=").0, 200);
    c.wait_until(|c| statuses(c, 10).iter().all(|s| *s == 200), "route.frac removed on the workers");
    assert_eq!(c.stat("runtime.admin_overrides_active"), Some(0));
    assert_eq!(runtime_json(&c)["entries"]["a.b"]["final_value"], "1.5");

    let (status, body) = c.admin_post("/runtime_modify");
    assert_eq!(status, 400);
    assert!(body.starts_with("usage: /runtime_modify?key1=value1"), "{body}");
    assert_eq!(c.admin_get("/runtime_modify?x=1").0, 405);
}

#[test]
fn runtime_modify_without_an_admin_layer_is_refused() {
    let c = start("layers:\n- name: static\n  static_layer: { route: { frac: 0 } }\n");
    assert!(statuses(&c, 5).iter().all(|s| *s == 404), "the static layer sets 0%");
    assert_eq!(c.admin_post("/runtime_modify?route.frac=100"), (503, "No admin layer specified".into()));
    assert!(statuses(&c, 5).iter().all(|s| *s == 404));
}

#[test]
fn disk_layer_is_read_and_reread_when_its_symlink_is_replaced() {
    let dir = TempDir::new("runtime-disk");
    for (root, value) in [("v1", "0"), ("v2", "100")] {
        std::fs::create_dir_all(dir.0.join(root).join("sub/route")).expect("mkdir");
        std::fs::write(dir.0.join(root).join("sub/route/frac"), format!("{value}\n")).expect("write");
    }
    let current = dir.0.join("current");
    std::os::unix::fs::symlink(dir.0.join("v1"), &current).expect("symlink");
    let c = start(&format!(
        "layers:\n- name: disk\n  disk_layer: {{ symlink_root: {}, subdirectory: sub }}\n- name: missing\n  disk_layer: {{ symlink_root: {}, subdirectory: none }}\n",
        current.display(),
        dir.0.join("nowhere").display()
    ));
    let rt = runtime_json(&c);
    // A disk layer whose directory does not exist is left out, as in Envoy.
    assert_eq!(rt["layers"], serde_json::json!(["disk"]));
    assert_eq!(rt["entries"]["route.frac"]["final_value"], "0");
    assert_eq!(c.stat("runtime.override_dir_not_exists"), Some(2));
    assert!(statuses(&c, 5).iter().all(|s| *s == 404));

    // Replace the symlink as deployments do: a new link renamed over the old one.
    let next = dir.0.join("next");
    std::os::unix::fs::symlink(dir.0.join("v2"), &next).expect("symlink");
    std::fs::rename(&next, &current).expect("rename");
    c.wait_until(|c| runtime_json(c)["entries"]["route.frac"]["final_value"] == "100", "the disk layer re-read");
    c.wait_until(|c| statuses(c, 5).iter().all(|s| *s == 200), "route.frac 100 on the workers");
    assert_eq!(c.stat("runtime.load_success"), Some(3));
}

#[test]
fn filters_read_their_runtime_keys() {
    let routes = "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: / }\n    direct_response: { status: 200 }\n";
    let filters = r#"- name: envoy.filters.http.local_ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: rl
    token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s }
    filter_enabled: { runtime_key: rl.enabled, default_value: { numerator: 0 } }
    filter_enforced: { runtime_key: rl.enforced, default_value: { numerator: 100 } }
- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    abort: { http_status: 503, percentage: { numerator: 0 } }
"#;
    let listener = http_listener("web", "", &indent(routes, 12), &indent(filters, 10));
    let runtime = "layers:\n- name: static\n  static_layer: { fault.http.abort.http_status: 418 }\n- name: admin\n  admin_layer: {}\n";
    let yaml = format!("{}layered_runtime:\n{}", config(&[listener], &[]), indent(runtime, 2));
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    let get = || http_request(addr, "GET", "/").0;
    // Neither filter is enabled by its defaults.
    assert_eq!([get(), get()], [200, 200]);
    // The fault filter's default key turns aborts on, with the runtime's status.
    assert_eq!(c.admin_post("/runtime_modify?fault.http.abort.abort_percent=100").0, 200);
    c.wait_until(|_| get() == 418, "fault.http.abort.abort_percent on the worker");
    assert_eq!(c.admin_post("/runtime_modify?fault.http.abort.abort_percent=").0, 200);
    // The rate limiter, enabled by its key: one token, then 429s.
    assert_eq!(c.admin_post("/runtime_modify?rl.enabled=100").0, 200);
    c.wait_until(|_| get() == 429, "rl.enabled on the worker");
    assert_eq!(c.admin_post("/runtime_modify?rl.enforced=0").0, 200);
    c.wait_until(|_| get() == 200, "rl.enforced 0 on the worker");
    assert!(c.stat("rl.http_local_rate_limit.rate_limited").is_some_and(|n| n >= 2));
}

#[test]
fn retries_follow_upstream_use_retry() {
    let (up, requests) = crate::http_util::fixed_upstream("busy", 503, "");
    let routes = "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: / }\n    route: { cluster: busy, retry_policy: { retry_on: 5xx, num_retries: 2 } }\n";
    let listener = http_listener("web", "", &indent(routes, 12), "");
    let runtime = "layers:\n- name: static\n  static_layer: { upstream: { use_retry: 0, base_retry_backoff_ms: 1 } }\n- name: admin\n  admin_layer: {}\n";
    let cluster = crate::harness::static_cluster("busy", &[up.port()]);
    let yaml = format!("{}layered_runtime:\n{}", config(&[listener], &[cluster]), indent(runtime, 2));
    let c = Courier::start(&yaml, 1);
    let addr = c.listener("web");
    let sent = || requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(http_request(addr, "GET", "/").0, 503);
    assert_eq!(sent(), 1, "upstream.use_retry 0: no retry");
    assert_eq!(c.stat("cluster.busy.upstream_rq_retry"), Some(0));
    assert_eq!(c.admin_post("/runtime_modify?upstream.use_retry=100").0, 200);
    c.wait_until(
        |_| http_request(addr, "GET", "/").0 == 503 && c.stat("cluster.busy.upstream_rq_retry") == Some(2),
        "retries on",
    );
}
