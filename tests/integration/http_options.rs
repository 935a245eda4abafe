//! Connection manager and cluster options not covered elsewhere: underscores in
//! header names, the `server` header, circuit breakers for requests and retries,
//! the upstream idle timeout, and the refused `proxy_100_continue: true`.

use std::sync::atomic::Ordering;

use crate::harness::*;
use crate::http_util::*;

/// One listener `web` routing everything to cluster `app`; `cluster_extra` is
/// inserted after the cluster's `type` line.
fn proxy(up: &Upstream, hcm_extra: &str, route_extra: &str, cluster_extra: &str) -> Courier {
    let cluster = static_cluster("app", &[up.port()]).replacen(
        "    type: STATIC\n",
        &format!("    type: STATIC\n{cluster_extra}"),
        1,
    );
    let routes = one_vhost(&prefix_route("/", "app", route_extra));
    Courier::start(&config(&[http_listener("web", hcm_extra, &routes, "")], &[cluster]), 1)
}

#[test]
fn headers_with_underscores_are_rejected_or_dropped_as_configured() {
    let up = http_upstream("a");
    let c = proxy(
        &up,
        "          common_http_protocol_options: { headers_with_underscores_action: REJECT_REQUEST }\n",
        "",
        "",
    );
    let mut client = Client::connect(c.listener("web"));
    let r = client.request("GET", "/", &[("x_under", "1")], b"");
    assert_eq!((r.status, r.text().as_str()), (400, "Bad Request"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.stat("http1.requests_rejected_with_underscores_in_headers"), Some(1));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);

    let c = proxy(
        &up,
        "          common_http_protocol_options: { headers_with_underscores_action: DROP_HEADER }\n",
        "",
        "",
    );
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x_under", "1"), ("x-ok", "2")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().header("x_under"), None);
    assert_eq!(r.seen().header("x-ok"), Some("2"));
    assert_eq!(c.stat("http1.dropped_headers_with_underscores"), Some(1));
}

#[test]
fn server_header_follows_server_name_and_transformation() {
    let up = http_upstream("a");
    let c = proxy(&up, "          server_name: courier-test\n", "", "");
    assert_eq!(Client::connect(c.listener("web")).get("/").header("server"), Some("courier-test"));
    // Local replies carry it too.
    let c = proxy(
        &up,
        "          server_name: courier-test\n          server_header_transformation: APPEND_IF_ABSENT\n",
        "",
        "",
    );
    assert_eq!(Client::connect(c.listener("web")).get("/").header("server"), Some("courier-test"));
    let c = proxy(&up, "          server_header_transformation: PASS_THROUGH\n", "", "");
    assert_eq!(Client::connect(c.listener("web")).get("/").header("server"), None, "the upstream sent none");
}

#[test]
fn max_requests_breaker_overflows_with_503_uo() {
    let gate = Gate::new();
    let up = holding_upstream("a", &gate);
    let c = proxy(&up, "", "", "    circuit_breakers: { thresholds: [ { max_requests: 1 } ] }\n");
    let addr = c.listener("web");
    // Held at the upstream until the gate opens.
    let slow =
        std::thread::spawn(move || Client::connect(addr).request("GET", "/", &[("x-test-hold", "1")], b"").status);
    gate.wait_held(1);
    c.wait_stat("cluster.app.upstream_rq_active", |v| v == 1);
    let r = Client::connect(addr).get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "upstream connect error or disconnect/reset before headers. reset reason: overflow");
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    // As Envoy, the request gets a connection first, then overflows the
    // `max_requests` breaker as it is attached to it.
    assert_eq!(c.stat("cluster.app.upstream_rq_active_overflow"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_pending_overflow"), Some(0));
    assert_eq!(c.stat("cluster.app.upstream_cx_total"), Some(2));
    assert_eq!(c.stat("cluster.app.upstream_rq_total"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_503"), Some(1));
    assert_eq!(c.stat("cluster.app.circuit_breakers.default.rq_open"), Some(1));
    gate.open();
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn max_retries_breaker_stops_retries() {
    let up = http_upstream("a");
    let c = proxy(
        &up,
        "",
        ", retry_policy: { retry_on: 5xx, num_retries: 3, retry_back_off: { base_interval: 0.01s } }",
        "    circuit_breakers: { thresholds: [ { max_retries: 0 } ] }\n",
    );
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x-test-status", "503")], b"");
    assert_eq!(r.status, 503);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry_overflow"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(0));
    assert_eq!(c.stat("cluster.app.upstream_rq_total"), Some(1));
}

#[test]
fn upstream_idle_timeout_closes_pooled_connections() {
    let up = http_upstream("a");
    let options = "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        common_http_protocol_options: { idle_timeout: 0.2s }\n        explicit_http_config: { http_protocol_options: {} }\n";
    let c = proxy(&up, "", "", options);
    let mut client = Client::connect(c.listener("web"));
    let first = client.get("/").seen().connection();
    c.wait_stat("cluster.app.upstream_cx_idle_timeout", |v| v == 1);
    assert_eq!(c.stat("cluster.app.upstream_cx_active"), Some(0));
    // The next request opens a new connection rather than failing on the closed one.
    let second = client.get("/").seen().connection();
    assert_ne!(first, second);
}

/// Courier answers `Expect: 100-continue` itself; relaying the upstream's
/// `100 Continue` (`proxy_100_continue: true`) is refused at start-up, naming the field.
#[test]
fn proxy_100_continue_true_is_refused() {
    let routes = one_vhost(&prefix_route("/", "app", ""));
    let cluster = static_cluster("app", &[closed_port()]);
    let yaml = |v: &str| {
        config(
            &[http_listener("web", &format!("          proxy_100_continue: {v}\n"), &routes, "")],
            std::slice::from_ref(&cluster),
        )
    };
    let (ok, out) = validate(&yaml("false"));
    assert!(ok, "{out}");
    let (ok, out) = validate(&yaml("true"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("static_resources.listeners[0].filter_chains[0].filters[0].typed_config.proxy_100_continue: true is not supported by Courier"),
        "{out}"
    );
}
