//! Load-balancing policies end to end: weighted round robin, least request, random,
//! and the start-up errors of the policies Courier does not implement.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::*;

/// A STATIC cluster `app` with `cluster_extra` (e.g. `lb_policy`) and one endpoint
/// per `(upstream, load_balancing_weight)`.
fn weighted_cluster(cluster_extra: &str, endpoints: &[(&Upstream, Option<u32>)]) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|(u, w)| {
            let weight = w.map(|w| format!(", load_balancing_weight: {w}")).unwrap_or_default();
            format!(
                "        - {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}{weight} }}\n",
                u.port()
            )
        })
        .collect();
    format!(
        "  - name: app\n    type: STATIC\n    connect_timeout: 1s\n{cluster_extra}    load_assignment:\n      cluster_name: app\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
    )
}

/// Courier on one worker (so the balancer's sequence is one worker's), with an HTTP
/// listener `web` routing everything to `cluster`.
fn proxy(cluster: &str) -> Courier {
    Courier::start(
        &config(&[http_listener("web", "", &one_vhost(&prefix_route("/", "app", "")), "")], &[cluster.into()]),
        1,
    )
}

/// The upstream names that answered `n` GETs sent one after another on one connection.
fn upstreams_of(c: &Courier, n: usize) -> Vec<String> {
    let mut client = Client::connect(c.listener("web"));
    (0..n).map(|_| client.get("/").seen().upstream().to_string()).collect()
}

#[test]
fn weighted_round_robin_follows_load_balancing_weight() {
    let a = http_upstream("a");
    let b = http_upstream("b");
    let c = proxy(&weighted_cluster("    lb_policy: ROUND_ROBIN\n", &[(&a, Some(3)), (&b, Some(1))]));
    let seen = upstreams_of(&c, 12);
    // Envoy's EDF order, a, a, b, a over and over, from a random point of the cycle.
    assert!(seen[4..].iter().zip(&seen).all(|(x, y)| x == y), "not a cycle of 4: {seen:?}");
    assert_eq!(seen[..4].iter().filter(|u| *u == "b").count(), 1, "{seen:?}");
    assert_eq!(seen.iter().filter(|u| *u == "a").count(), 9, "{seen:?}");
    // `/clusters` shows each host's weight; Envoy sets `max_host_weight` only for
    // clusters whose hosts come from DNS or EDS, not STATIC ones.
    let (_, clusters) = c.admin_get("/clusters");
    for (u, w) in [(&a, 3), (&b, 1)] {
        let line = format!("app::127.0.0.1:{}::weight::{w}", u.port());
        assert!(clusters.lines().any(|l| l == line), "missing `{line}` in:\n{clusters}");
    }
    let (_, json) = c.admin_get("/clusters?format=json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let weights: Vec<_> = v["cluster_statuses"][0]["host_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["address"]["socket_address"]["port_value"].clone(), h["weight"].clone()))
        .collect();
    assert_eq!(weights, [(a.port().into(), 3.into()), (b.port().into(), 1.into())]);
    assert_eq!(c.stat("cluster.app.max_host_weight"), Some(0));
}

#[test]
fn weighted_round_robin_workers_start_at_different_points() {
    let a = http_upstream("a");
    let b = http_upstream("b");
    // Each start gives the worker's balancer a random seed, so the first pick is b a
    // quarter of the time (never b in 40 starts: 0.75^40, about 1e-5).
    let cluster = weighted_cluster("", &[(&a, Some(3)), (&b, Some(1))]);
    let mut firsts = Vec::new();
    for _ in 0..40 {
        let c = proxy(&cluster);
        firsts.push(upstreams_of(&c, 1).remove(0));
        if firsts.iter().any(|u| u == "b") {
            return;
        }
    }
    panic!("b was never first: {firsts:?}");
}

#[test]
fn equal_weights_are_plain_round_robin_from_a_random_start() {
    let a = http_upstream("a");
    let b = http_upstream("b");
    let cluster = weighted_cluster("", &[(&a, Some(4)), (&b, Some(4))]);
    // Each start gives the worker's balancer a random seed, where Envoy starts its
    // round robin: a first half the time (always a in 40 starts: 0.5^40, about 1e-12).
    let mut firsts = Vec::new();
    for _ in 0..40 {
        let c = proxy(&cluster);
        let seen = upstreams_of(&c, 4);
        // Whatever the start, the hosts alternate.
        assert!(seen == ["a", "b", "a", "b"] || seen == ["b", "a", "b", "a"], "not alternating: {seen:?}");
        firsts.push(seen[0].clone());
        if firsts.iter().any(|u| u == "a") && firsts.iter().any(|u| u == "b") {
            return;
        }
    }
    panic!("round robin always started at the same host: {firsts:?}");
}

#[test]
fn least_request_prefers_an_idle_host_over_a_busy_one() {
    // Enough choices that a pick sampling only the busy host (2^-32) does not happen.
    let total =
        busy_host_is_avoided("    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 32 }\n");
    assert_eq!(total, Some(7));
}

/// The extension form (`load_balancing_policy`) acts as `lb_policy` does, with its
/// own `choice_count`; the enum beside it is ignored, as in Envoy.
#[test]
fn typed_least_request_policy_prefers_an_idle_host() {
    busy_host_is_avoided(
        "    lb_policy: RANDOM\n    load_balancing_policy:\n      policies:\n      - typed_extension_config:\n          \
         name: lr\n          typed_config:\n            \"@type\": \
         type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest\n            \
         choice_count: 32\n",
    );
}

/// Holds one request at one of two hosts of a cluster with `lb` (a least-request
/// policy with 32 choices), sends six more, and asserts they all went to the other
/// host; returns the cluster's `upstream_rq_total`.
fn busy_host_is_avoided(lb: &str) -> Option<i64> {
    let gate = Gate::new();
    let a = holding_upstream("a", &gate);
    let b = holding_upstream("b", &gate);
    let c = proxy(&weighted_cluster(lb, &[(&a, None), (&b, None)]));
    let addr = c.listener("web");
    let slow = std::thread::spawn(move || {
        let r = Client::connect(addr).request("GET", "/slow", &[("x-test-hold", "1")], b"");
        r.text()
    });
    // The slow request is in flight on one host, held there until the gate opens.
    gate.wait_held(1);
    c.wait_stat("cluster.app.upstream_rq_active", |v| v == 1);
    let mut client = Client::connect(c.listener("web"));
    let fast: Vec<String> = (0..6).map(|_| client.get("/").text()).collect();
    gate.open();
    let busy = slow.join().expect("slow request");
    let idle = if busy == "a" { "b" } else { "a" };
    assert!(fast.iter().all(|u| u == idle), "busy host {busy}, fast requests went to {fast:?}");
    c.stat("cluster.app.upstream_rq_total")
}

#[test]
fn random_reaches_every_host() {
    let ups = [http_upstream("a"), http_upstream("b"), http_upstream("c")];
    let c = proxy(&weighted_cluster("    lb_policy: RANDOM\n", &[(&ups[0], None), (&ups[1], None), (&ups[2], None)]));
    // Missing a host in 60 uniform picks has a probability of about 1e-10.
    let seen = upstreams_of(&c, 60);
    for name in ["a", "b", "c"] {
        assert!(seen.iter().any(|u| u == name), "{name} never picked: {seen:?}");
    }
}

#[test]
fn unsupported_lb_policy_fails_at_startup() {
    let a = http_upstream("a");
    let yaml = format!(
        "admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 0 }}\n{}",
        config(
            &[http_listener("web", "", &one_vhost(&prefix_route("/", "app", "")), "")],
            &[weighted_cluster("    lb_policy: MAGLEV\n", &[(&a, None)])]
        )
    );
    let dir = TempDir::new("lb-maglev");
    let path = dir.file("config.yaml", &yaml);
    let log = dir.0.join("stderr.log");
    let mut child = Command::new(courier_bin())
        .arg("-c")
        .arg(&path)
        .args(["--concurrency", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn courier");
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("courier started with lb_policy MAGLEV");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{text}");
    assert!(
        text.contains(
            "static_resources.clusters[0].lb_policy: load balancing policy MAGLEV is not supported by Courier"
        ),
        "{text}"
    );
}

#[test]
fn least_request_config_errors_name_the_field() {
    let a = http_upstream("a");
    let cases = [
        (
            "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 1 }\n",
            "static_resources.clusters[0].least_request_lb_config.choice_count",
        ),
        (
            "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { active_request_bias: { default_value: -0.5, runtime_key: k } }\n",
            "static_resources.clusters[0].least_request_lb_config.active_request_bias.default_value",
        ),
        (
            "    lb_policy: ROUND_ROBIN\n    least_request_lb_config: { choice_count: 3 }\n",
            "static_resources.clusters[0].least_request_lb_config: least_request_lb_config is only used with lb_policy LEAST_REQUEST",
        ),
        (
            "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { slow_start_config: {} }\n",
            "static_resources.clusters[0].least_request_lb_config.slow_start_config: field 'slow_start_config'",
        ),
    ];
    for (extra, expected) in cases {
        let yaml = config(
            &[http_listener("web", "", &one_vhost(&prefix_route("/", "app", "")), "")],
            &[weighted_cluster(extra, &[(&a, None)])],
        );
        let (ok, out) = validate(&yaml);
        assert!(!ok, "accepted:\n{yaml}");
        assert!(out.contains(expected), "expected `{expected}` in:\n{out}");
    }
    // A weight of zero is refused by the schema's rules.
    let yaml = config(
        &[http_listener("web", "", &one_vhost(&prefix_route("/", "app", "")), "")],
        &[weighted_cluster("", &[(&a, Some(0))])],
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok && out.contains("lb_endpoints[0].load_balancing_weight"), "{out}");
}

/// A STATIC cluster `app` whose `load_assignment` holds one locality per
/// `(priority, upstream)` and `policy`, when given.
fn priority_cluster(policy: &str, levels: &[(u32, &Upstream)]) -> String {
    let localities: String = levels
        .iter()
        .map(|(p, u)| {
            format!(
                "      - priority: {p}\n        lb_endpoints:\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}\n",
                u.port()
            )
        })
        .collect();
    format!(
        "  - name: app\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: app\n{policy}      endpoints:\n{localities}"
    )
}

#[test]
fn overprovisioning_factor_below_100_spreads_load_over_priorities() {
    let ups = [http_upstream("p0"), http_upstream("p1")];
    // Default factor 1.4: priority 0, all healthy, covers all the load.
    let c = proxy(&priority_cluster("", &[(0, &ups[0]), (1, &ups[1])]));
    assert!(upstreams_of(&c, 20).iter().all(|u| u == "p0"));
    drop(c);
    // Factor 0.5: each level's health is 50 %, so each takes half of the requests
    // (Envoy picks the level at random by its load). Missing one in 60 picks has a
    // probability of about 1e-18.
    let policy = "      policy: { overprovisioning_factor: 50 }\n";
    let c = proxy(&priority_cluster(policy, &[(0, &ups[0]), (1, &ups[1])]));
    let seen = upstreams_of(&c, 60);
    for name in ["p0", "p1"] {
        assert!(seen.iter().any(|u| u == name), "{name} never picked: {seen:?}");
    }
}

/// A STATIC cluster `app` of one level, each endpoint `(upstream, health_status)`,
/// with the assignment's `overprovisioning_factor`.
fn health_cluster(factor: u32, endpoints: &[(&Upstream, &str)]) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|(u, health)| {
            format!(
                "        - {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}, health_status: {health} }}\n",
                u.port()
            )
        })
        .collect();
    format!(
        "  - name: app\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: app\n      policy: {{ overprovisioning_factor: {factor} }}\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
    )
}

#[test]
fn degraded_hosts_serve_only_what_healthy_ones_cannot_cover() {
    let (a, b, u) = (http_upstream("a"), http_upstream("b"), http_upstream("u"));
    let hosts = [(&a, "HEALTHY"), (&b, "DEGRADED"), (&u, "UNHEALTHY")];
    // Factor 300: one healthy host of three is 100 % healthy; the degraded one idles.
    let c = proxy(&health_cluster(300, &hosts));
    assert!(upstreams_of(&c, 20).iter().all(|s| s == "a"));
    drop(c);
    // Factor 140: health 46 %, degraded 46 %, normalized to half each (as
    // Envoy's degraded-endpoints table); the unhealthy host never serves and
    // 66 % available is no panic.
    let c = proxy(&health_cluster(140, &hosts));
    let seen = upstreams_of(&c, 200);
    let count = |name: &str| seen.iter().filter(|s| *s == name).count();
    assert_eq!(count("u"), 0, "{seen:?}");
    assert!((60..140).contains(&count("b")), "{} of 200 to the degraded host", count("b"));
    assert_eq!(c.stat("cluster.app.lb_healthy_panic"), Some(0));
    assert_eq!(
        (c.stat("cluster.app.membership_healthy"), c.stat("cluster.app.membership_degraded")),
        (Some(1), Some(1))
    );
}

#[test]
fn an_unhealthy_level_spills_to_the_next_and_a_cluster_without_health_panics() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let levels = |p0: &str, p1: &str| {
        format!(
            "  - name: app\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: app\n      endpoints:\n      - lb_endpoints:\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}, health_status: {p0} }}\n      - priority: 1\n        lb_endpoints:\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}, health_status: {p1} }}\n",
            a.port(),
            b.port()
        )
    };
    let c = proxy(&levels("UNHEALTHY", "HEALTHY"));
    assert!(upstreams_of(&c, 6).iter().all(|s| s == "b"));
    assert_eq!(c.stat("cluster.app.lb_healthy_panic"), Some(0));
    drop(c);
    // Neither level has health: total panic, the load by host count (half
    // each), any host of the level drawn, each request counted.
    let c = proxy(&levels("UNHEALTHY", "DRAINING"));
    let seen = upstreams_of(&c, 100);
    assert!(seen.iter().any(|s| s == "a") && seen.iter().any(|s| s == "b"), "{seen:?}");
    assert_eq!(c.stat("cluster.app.lb_healthy_panic"), Some(100));
}

/// A STATIC cluster `name` with one locality per `(zone, port)`, and `extra`.
fn zoned_cluster(name: &str, extra: &str, zones: &[(&str, u16)]) -> String {
    let localities: String = zones
        .iter()
        .map(|(zone, port)| {
            format!(
                "      - locality: {{ zone: {zone} }}\n        lb_endpoints:\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}\n"
            )
        })
        .collect();
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n{localities}"
    )
}

#[test]
fn zone_aware_routing_samples_the_local_zone_by_its_capacity() {
    // The node is in zone a; the local cluster has one host in a and one in b
    // (50 % each, never contacted). The upstream has one host in each of a, b, c
    // (33.33 % each): zone a can take 3333/5000 of the requests (Envoy's
    // local_percent_to_route 6666 in 10000); the rest go across by residual
    // capacity, which only c has (b's share is below the local one).
    let ups = [http_upstream("a"), http_upstream("b"), http_upstream("c")];
    let dead = free_port();
    let local = zoned_cluster("local", "", &[("a", dead), ("b", dead)]);
    let zone_aware = "    common_lb_config: { zone_aware_lb_config: { min_cluster_size: 1 } }\n";
    let app = zoned_cluster("app", zone_aware, &[("a", ups[0].port()), ("b", ups[1].port()), ("c", ups[2].port())]);
    let yaml = format!(
        "node: {{ id: node1, cluster: web, locality: {{ zone: a }} }}\ncluster_manager: {{ local_cluster_name: local }}\n{}",
        config(&[http_listener("web", "", &one_vhost(&prefix_route("/", "app", "")), "")], &[local, app])
    );
    let c = Courier::start(&yaml, 1);
    let n = 600;
    let seen = upstreams_of(&c, n);
    let count = |name: &str| seen.iter().filter(|u| *u == name).count();
    // Binomial(600, 2/3): mean 400, standard deviation 11.5; 60 off is over 5
    // standard deviations (about 1e-7).
    assert!(count("a").abs_diff(400) < 60, "zone a took {} of {n}", count("a"));
    assert_eq!(count("b"), 0, "zone b has no residual capacity");
    assert_eq!(count("a") + count("c"), n);
    assert_eq!(c.stat("cluster.app.lb_zone_routing_sampled"), Some(count("a") as i64));
    assert_eq!(c.stat("cluster.app.lb_zone_routing_cross_zone"), Some(count("c") as i64));
    // Recalculated on each thread (main and worker) when the cluster arrived; `app`
    // comes before `local` by name, so again when the local cluster did.
    assert_eq!(c.stat("cluster.app.lb_recalculate_zone_structures"), Some(4));
    assert_eq!(c.stat("cluster.local.lb_recalculate_zone_structures"), Some(0));
}

#[test]
fn local_cluster_name_must_name_a_cluster() {
    let yaml = format!(
        "cluster_manager: {{ local_cluster_name: nowhere }}\n{}",
        config(&[], &[zoned_cluster("app", "", &[("a", 1)])])
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok && out.contains("local cluster 'nowhere' must be defined"), "{out}");
}
