//! The HTTP/1.1 reverse proxy end to end: connection manager, router, pools.

use std::net::{Ipv4Addr, TcpListener};

use crate::harness::*;
use crate::http_util::*;

/// Courier with one HTTP listener `web` routing everything to cluster `app`.
fn proxy(upstreams: &[&Upstream], hcm_extra: &str, routes: &str, cluster_extra: &str) -> Courier {
    let ports: Vec<u16> = upstreams.iter().map(|u| u.port()).collect();
    let cluster =
        static_cluster("app", &ports).replacen("    type: STATIC\n", &format!("    type: STATIC\n{cluster_extra}"), 1);
    Courier::start(&config(&[http_listener("web", hcm_extra, &one_vhost(routes), "")], &[cluster]), 1)
}

/// Asserts that `xff` is `before`, a comma, then an address of this machine other than
/// loopback: for a loopback peer, Envoy appends its local address (the first
/// non-loopback interface address), not 127.0.0.1. Which address that is depends on
/// the machine, so it is checked independently of Courier's code: it binds here.
fn assert_xff_appends_own_address(xff: Option<&str>, before: &str) {
    let xff = xff.expect("no x-forwarded-for");
    let own = xff
        .strip_prefix(before)
        .and_then(|rest| rest.strip_prefix(','))
        .unwrap_or_else(|| panic!("x-forwarded-for {xff:?} is not {before:?} and one more address"));
    let ip: Ipv4Addr = own.parse().unwrap_or_else(|_| panic!("appended {own:?} is not one IPv4 address"));
    assert!(!ip.is_loopback(), "appended a loopback address: {xff:?}");
    assert!(TcpListener::bind((ip, 0)).is_ok(), "appended {ip}, which is not an address of this machine");
}

fn simple(up: &Upstream) -> Courier {
    proxy(&[up], "", &prefix_route("/", "app", ""), "")
}

#[test]
fn proxies_a_request_with_envoys_headers() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    let r = client.request(
        "GET",
        "/hello?x=1",
        &[("Connection", "keep-alive, x-hop"), ("x-hop", "secret"), ("x-custom", "kept")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.seen();
    assert_eq!(seen.method(), "GET");
    assert_eq!(seen.path(), "/hello?x=1");
    assert_eq!(seen.header("host"), Some("example.com"));
    assert_eq!(seen.header("x-custom"), Some("kept"));
    assert_eq!(seen.header("x-hop"), None, "headers named in Connection are hop-by-hop");
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-envoy-expected-rq-timeout-ms"), Some("15000"));
    assert_eq!(seen.header("x-request-id").map(str::len), Some(36));
    assert!(r.header("x-envoy-upstream-service-time").is_some_and(|v| v.parse::<u64>().is_ok()));
    assert_eq!(r.header("server"), Some("envoy"));
    assert!(r.header("date").is_some());
    assert_eq!(r.header("x-upstream"), Some("a"));
    c.wait_stat("http.ingress.downstream_rq_2xx", |v| v == 1);
    assert_eq!(c.stat("cluster.app.upstream_rq_200"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_2xx"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_total"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_rq_total"), Some(1));
}

#[test]
fn bodies_stream_both_ways() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    let r = client.request("POST", "/submit", &[], b"hello body");
    assert_eq!(r.seen().body(), "hello body");
    // Chunked request body.
    client.send_raw(b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let r = client.read_response(false);
    assert_eq!(r.seen().body(), "hello world");
    // A large response body arrives whole.
    let r = client.request("GET", "/big", &[("x-test-body-size", "3000000")], b"");
    assert_eq!(r.body.len(), 3_000_000);
}

#[test]
fn keep_alive_reuses_one_upstream_connection() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    let first = client.get("/1").seen().connection();
    for i in 2..=5 {
        let r = client.get(&format!("/{i}"));
        assert_eq!(r.seen().connection(), first, "request {i} used another upstream connection");
    }
    // A second client connection on the same worker uses the same pool.
    let mut other = Client::connect(c.listener("web"));
    assert_eq!(other.get("/x").seen().connection(), first);
    assert_eq!(c.stat("cluster.app.upstream_cx_total"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_cx_http1_total"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_cx_total"), Some(2));
}

#[test]
fn concurrent_requests_open_more_connections() {
    let gate = Gate::new();
    let up = holding_upstream("a", &gate);
    let c = simple(&up);
    let addr = c.listener("web");
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || Client::connect(addr).request("GET", "/", &[("x-test-hold", "1")], b"").status)
        })
        .collect();
    // All three are at the upstream at once, so each has a connection of its own.
    gate.wait_held(3);
    gate.open();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(c.stat("cluster.app.upstream_cx_total"), Some(3));
}

#[test]
fn max_requests_per_connection_rotates_connections() {
    let up = http_upstream("a");
    let c = proxy(&[&up], "", &prefix_route("/", "app", ""), "    max_requests_per_connection: 2\n");
    let mut client = Client::connect(c.listener("web"));
    let ids: Vec<u64> = (0..4).map(|_| client.get("/").seen().connection()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_eq!(ids[2], ids[3]);
    c.wait_stat("cluster.app.upstream_cx_max_requests", |v| v >= 1);
}

#[test]
fn upstream_connection_close_is_honoured() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    let first = client.request("GET", "/", &[("x-test-close", "1")], b"");
    assert_eq!(first.status, 200);
    let second = client.get("/");
    assert_eq!(second.status, 200);
    assert_ne!(first.seen().connection(), second.seen().connection());
}

#[test]
fn upstream_closing_an_idle_connection_silently_fails_no_request() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    // The upstream closes right after its response, without `connection: close`:
    // Courier sees the close while the connection is idle, or, losing that race,
    // when its next request gets no response, and then sends it on a new one.
    for _ in 0..20 {
        let first = client.request("GET", "/", &[("x-test-close-silently", "1")], b"");
        assert_eq!(first.status, 200);
        let second = client.get("/");
        assert_eq!(second.status, 200);
        assert_ne!(first.seen().connection(), second.seen().connection());
    }
    c.wait_stat("cluster.app.upstream_cx_destroy_remote", |v| v >= 20);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    client.send_raw(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n");
    for path in ["/one", "/two", "/three"] {
        assert_eq!(client.read_response(false).seen().path(), path);
    }
}

#[test]
fn connection_close_and_http10() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    let r = client.request("GET", "/", &[("Connection", "close")], b"");
    assert_eq!(r.status, 200);
    client.assert_closed("Courier must close after Connection: close");
    // HTTP/1.0 is refused unless accept_http_10, as in Envoy.
    let mut old = Client::connect(c.listener("web"));
    old.send_raw(b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n");
    let r = old.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (426, "Upgrade Required"));
    let c =
        proxy(&[&up], "          http_protocol_options: { accept_http_10: true }\n", &prefix_route("/", "app", ""), "");
    let mut old = Client::connect(c.listener("web"));
    old.send_raw(b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n");
    let r = old.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().path(), "/old");
    old.assert_closed("HTTP/1.0 without keep-alive closes");
}

#[test]
fn expect_continue_head_and_absolute_form() {
    let up = http_upstream("a");
    let c = simple(&up);
    let mut client = Client::connect(c.listener("web"));
    client.send_raw(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    // Courier answers 100 Continue itself before the body is sent.
    assert!(client.read_line().starts_with("HTTP/1.1 100 Continue"));
    assert_eq!(client.read_line(), "\r\n");
    client.send_raw(b"data");
    let r = client.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().body(), "data");
    let r = client.request("HEAD", "/", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = client.request("GET", "http://absolute.example/abs?q=1", &[("Host", "ignored.example")], b"");
    assert_eq!(r.seen().path(), "/abs?q=1");
    assert_eq!(r.seen().header("host"), Some("absolute.example"));
}

#[test]
fn local_replies_for_route_cluster_and_upstream_failures() {
    let up = http_upstream("a");
    let dead = closed_port();
    let routes = format!(
        "{}{}{}",
        prefix_route("/missing-cluster", "nope", ""),
        prefix_route("/dead", "dead", ""),
        prefix_route("/app", "app", ", timeout: 0.2s")
    );
    let clusters = [static_cluster("app", &[up.port()]), static_cluster("dead", &[dead])];
    // A route to a cluster that does not exist loads only without Envoy's
    // `validate_clusters` (on by default for an inline route configuration).
    let route_config = format!("            validate_clusters: false\n{}", one_vhost(&routes));
    let c = Courier::start(&config(&[http_listener("web", "", &route_config, "")], &clusters), 1);
    let mut client = Client::connect(c.listener("web"));
    let r = client.get("/nothing-here");
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    let r = client.get("/missing-cluster");
    assert_eq!(r.status, 503);
    let r = client.get("/dead");
    assert_eq!(r.status, 503);
    // Envoy 1.40's body for a refused upstream connection, byte for byte.
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    );
    // The 0.2 s timeout fires long before the upstream's answer.
    let r = client.request("GET", "/app", &[("x-test-delay-ms", "8000")], b"");
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    assert_eq!(c.stat("http.ingress.no_route"), Some(1));
    assert_eq!(c.stat("http.ingress.no_cluster"), Some(1));
    assert_eq!(c.stat("cluster.dead.upstream_cx_connect_fail"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_timeout"), Some(1));
    c.wait_stat("http.ingress.downstream_rq_5xx", |v| v == 3);
    assert_eq!(c.stat("http.ingress.downstream_rq_4xx"), Some(1));
}

/// `up` behind one route retrying with `policy` (and a 10 ms back-off).
fn retrying(up: &Upstream, policy: &str) -> Courier {
    let retry = format!(", retry_policy: {{ {policy}, retry_back_off: {{ base_interval: 0.01s }} }}");
    proxy(&[up], "", &prefix_route("/", "app", &retry), "")
}

#[test]
fn retries_on_5xx_until_success() {
    let up = http_upstream("a");
    let c = retrying(&up, "retry_on: 5xx, num_retries: 3");
    let mut client = Client::connect(c.listener("web"));
    let r = client.request("GET", "/", &[("x-test-fail-first", "2")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(2));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry_success"), Some(1));
    // As Envoy, a retried response counts under `retry.*`, only the final one
    // under `upstream_rq_<code>`; each retry is a host error.
    assert_eq!(c.stat("cluster.app.retry.upstream_rq_503"), Some(2));
    assert_eq!(c.stat("cluster.app.retry.upstream_rq_5xx"), Some(2));
    assert_eq!(c.stat("cluster.app.retry.upstream_rq_completed"), Some(2));
    assert_eq!(c.stat("cluster.app.upstream_rq_503"), None);
    c.wait_stat("cluster.app.upstream_rq_200", |v| v == 1);
    assert_eq!(c.stat("cluster.app.upstream_rq_completed"), Some(1));
}

/// `retry_host_predicate: previous_hosts`: a retry picks again (up to
/// `host_selection_retry_max_attempts` times) rather than go back to a host
/// already tried. With a random balancer over a dead host and a live one, every
/// request whose first try met the dead host is retried on the live one; without
/// the predicate, about half such retries go back to the dead one.
#[test]
fn previous_hosts_keeps_a_retry_off_the_host_that_failed() {
    let live = http_upstream("live");
    let dead = closed_port();
    let run = |predicate: &str| {
        let retry = format!(", retry_policy: {{ retry_on: connect-failure, num_retries: 1{predicate} }}");
        let cluster = static_cluster("app", &[dead, live.port()]).replacen(
            "    type: STATIC\n",
            "    type: STATIC\n    lb_policy: RANDOM\n",
            1,
        );
        let listener = http_listener("web", "", &one_vhost(&prefix_route("/", "app", &retry)), "");
        let c = Courier::start(&config(&[listener], &[cluster]), 1);
        let served = (0..30).filter(|_| Client::connect(c.listener("web")).get("/").status == 200).count();
        (served, c.stat("cluster.app.upstream_rq_retry").unwrap_or(0))
    };
    let predicate = ", retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }], host_selection_retry_max_attempts: 20";
    let (served, retries) = run(predicate);
    assert_eq!(served, 30, "every retry avoided the dead host");
    assert!(retries > 0, "some first tries met the dead host");
    let (served, _) = run("");
    assert!(served < 30, "without the predicate some retries went back to the dead host");
}

#[test]
fn retries_give_up_after_num_retries() {
    let up = http_upstream("a");
    let c = retrying(&up, "retry_on: gateway-error, num_retries: 1");
    let mut client = Client::connect(c.listener("web"));
    let r = client.request("GET", "/", &[("x-test-status", "502")], b"");
    assert_eq!(r.status, 502);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry_limit_exceeded"), Some(1));
    // 4xx is not retried by gateway-error.
    let r = client.request("GET", "/", &[("x-test-status", "404")], b"");
    assert_eq!(r.status, 404);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
}

/// A body on a retrying route streams to the first try as it arrives (it is not
/// read whole first), and the retry after that try failed sends what it took,
/// then the rest.
#[test]
fn a_retry_resends_the_body_that_streamed_to_the_failed_try() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::mpsc;

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (seen_tx, seen) = mpsc::channel::<String>();
    let first = "first part, ";
    let rest = "and the rest";
    let upstream = std::thread::spawn(move || {
        // Reads a request head and `n` body bytes.
        let read = |stream: &std::net::TcpStream, n: usize| -> String {
            stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).expect("head") > 2 {
                line.clear();
            }
            let mut body = vec![0; n];
            reader.read_exact(&mut body).expect("body");
            String::from_utf8_lossy(&body).into_owned()
        };
        // The first try: its first piece, then the connection closes.
        let (one, _) = listener.accept().expect("accept");
        let _ = seen_tx.send(read(&one, first.len()));
        drop(one);
        // The retry: the whole body.
        let (mut two, _) = listener.accept().expect("accept");
        let body = read(&two, first.len() + rest.len());
        let _ = two.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
    });
    let retry = ", retry_policy: { retry_on: reset, num_retries: 1, retry_back_off: { base_interval: 0.01s } }";
    let listener_yaml = http_listener("web", "", &one_vhost(&prefix_route("/", "app", retry)), "");
    let c = Courier::start(&config(&[listener_yaml], &[static_cluster("app", &[port])]), 1);
    let mut client = Client::connect(c.listener("web"));
    let head = format!("POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n", first.len() + rest.len());
    client.send_raw(format!("{head}{first}").as_bytes());
    let got = seen.recv_timeout(std::time::Duration::from_secs(10)).expect("the first piece reached the first try");
    assert_eq!(got, first);
    client.send_raw(rest.as_bytes());
    let r = client.read_response(false);
    assert_eq!((r.status, r.text()), (200, format!("{first}{rest}")));
    upstream.join().expect("upstream");
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
    assert_eq!(c.stat("cluster.app.retry_or_shadow_abandoned"), Some(0));
}

#[test]
fn pending_overflow_is_503_uo() {
    let gate = Gate::new();
    let up = holding_upstream("a", &gate);
    let c = proxy(
        &[&up],
        "",
        &prefix_route("/", "app", ""),
        "    circuit_breakers: { thresholds: [ { max_connections: 1, max_pending_requests: 1 } ] }\n",
    );
    let addr = c.listener("web");
    // Held at the upstream until the gate opens.
    let slow =
        || std::thread::spawn(move || Client::connect(addr).request("GET", "/", &[("x-test-hold", "1")], b"").status);
    // The first request is pending while its connection is made, then active on it.
    let first = slow();
    gate.wait_held(1);
    c.wait_stat("cluster.app.upstream_rq_active", |v| v == 1);
    assert_eq!(c.stat("cluster.app.upstream_rq_pending_total"), Some(1));
    // The second waits for that connection (the connection breaker is open).
    let second = slow();
    c.wait_stat("cluster.app.upstream_rq_pending_active", |v| v == 1);
    let r = Client::connect(addr).get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(c.stat("cluster.app.upstream_rq_pending_overflow"), Some(1));
    gate.open();
    let statuses = [first.join().unwrap(), second.join().unwrap()];
    assert_eq!(statuses, [200, 200], "the pending request is served when the connection frees");
    assert_eq!(c.stat("cluster.app.upstream_cx_total"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_pending_total"), Some(2));
}

#[test]
fn direct_response_and_redirect() {
    let up = http_upstream("a");
    let routes = "              - match: { path: \"/direct\" }\n                direct_response: { status: 418, body: { inline_string: \"short and stout\" } }\n              - match: { prefix: \"/old\" }\n                redirect: { path_redirect: \"/new\", response_code: FOUND }\n";
    let c = proxy(&[&up], "", routes, "");
    let mut client = Client::connect(c.listener("web"));
    let r = client.get("/direct");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "short and stout");
    let r = client.get("/old");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://example.com/new"));
    // Envoy counts redirect routes as direct responses too.
    assert_eq!(c.stat("http.ingress.rq_direct_response"), Some(2));
    assert_eq!(c.stat("http.ingress.rq_redirect"), Some(0));
}

#[test]
fn header_edits_rewrites_and_xff() {
    let up = http_upstream("a");
    let routes = "              - match: { prefix: \"/api/\" }\n                route: { cluster: app, prefix_rewrite: \"/v2/\", host_rewrite_literal: backend.internal }\n                request_headers_to_add: [ { header: { key: x-added, value: \"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\" } } ]\n                request_headers_to_remove: [ x-remove-me ]\n                response_headers_to_add: [ { header: { key: x-resp, value: \"yes\" } } ]\n                response_headers_to_remove: [ x-upstream ]\n";
    let c = proxy(&[&up], "          use_remote_address: true\n", routes, "");
    let mut client = Client::connect(c.listener("web"));
    let r = client.request("GET", "/api/items?id=7", &[("x-remove-me", "1"), ("x-forwarded-for", "10.1.1.1")], b"");
    assert_eq!(r.status, 200);
    let seen = r.seen();
    assert_eq!(seen.path(), "/v2/items?id=7");
    assert_eq!(seen.header("host"), Some("backend.internal"));
    assert_eq!(seen.header("x-envoy-original-path"), Some("/api/items?id=7"));
    assert_eq!(seen.header("x-added"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-remove-me"), None);
    // For a loopback peer Envoy appends its own address, not 127.0.0.1.
    assert_xff_appends_own_address(seen.header("x-forwarded-for"), "10.1.1.1");
    assert_eq!(seen.header("x-envoy-internal"), None, "no address is internal by default (Envoy 1.40)");
    assert_eq!(r.header("x-resp"), Some("yes"));
    assert_eq!(r.header("x-upstream"), None);
}

#[test]
fn round_robin_across_upstreams() {
    let a = http_upstream("a");
    let b = http_upstream("b");
    let c = proxy(&[&a, &b], "", &prefix_route("/", "app", ""), "");
    let mut client = Client::connect(c.listener("web"));
    let seen: Vec<String> = (0..4).map(|_| client.get("/").seen().upstream().to_string()).collect();
    // The worker's balancer starts at a random host (as Envoy's); then they alternate.
    assert!(seen == ["a", "b", "a", "b"] || seen == ["b", "a", "b", "a"], "not alternating: {seen:?}");
}

#[test]
fn the_example_config_is_an_http_proxy() {
    // The README's example with its fixed ports swapped for free ones and its
    // upstream (Courier's own admin) for a test upstream.
    let up = http_upstream("a");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/courier-default.yaml"))
        .expect("example config");
    let yaml = example
        .replace("port_value: 10000", "port_value: 0")
        .replace(
            "endpoint:\n            address:\n              socket_address: { address: 127.0.0.1, port_value: 9901 }",
            &format!("endpoint:\n            address:\n              socket_address: {{ address: 127.0.0.1, port_value: {} }}", up.port()),
        )
        .replace("port_value: 9901", "port_value: 0");
    let config_lines = yaml.lines().filter(|l| !l.trim_start().starts_with('#'));
    assert!(config_lines.clone().all(|l| !l.contains("9901") && !l.contains("10000")), "the example changed: {yaml}");
    let c = Courier::start(&yaml, 1);
    let mut client = Client::connect(c.listener("http_to_admin"));
    let r = client.get("/hello");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from courier\n"));
    let r = client.get("/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().path(), "/stats");
    assert_eq!(c.stat("cluster.admin.upstream_rq_2xx"), Some(1));
}

#[test]
fn xff_num_trusted_hops_picks_the_client_from_x_forwarded_for() {
    let up = http_upstream("a");
    let c = proxy(
        &[&up],
        "          use_remote_address: true\n          xff_num_trusted_hops: 1\n",
        &prefix_route("/", "app", ""),
        "",
    );
    let mut client = Client::connect(c.listener("web"));
    let seen = client.request("GET", "/", &[("x-forwarded-for", "203.0.113.7")], b"").seen();
    assert_xff_appends_own_address(seen.header("x-forwarded-for"), "203.0.113.7");
    assert_eq!(seen.header("x-envoy-external-address"), Some("203.0.113.7"));
    assert_eq!(seen.header("x-envoy-internal"), None);
    // Fewer addresses than trusted hops: the peer is the client. Control headers
    // from an external client are dropped.
    let r = client.request("GET", "/", &[("x-envoy-retry-on", "5xx"), ("x-envoy-internal", "true")], b"");
    let seen = r.seen();
    assert_eq!(seen.header("x-envoy-external-address"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-envoy-retry-on"), None);
    assert_eq!(seen.header("x-envoy-internal"), None);
}

/// `upgrade_configs`: an allowed websocket upgrade is forwarded with its
/// `connection`/`upgrade` headers, the upstream's 101 goes back, and then the
/// connection is a tunnel (bytes sent past either head go first, a half-close
/// passes through); a route can turn an upgrade the connection manager has off
/// back on, and where none does, the upgrade gets Envoy's 403.
#[test]
fn websocket_upgrades_become_tunnels() {
    use std::io::{Read, Write};
    use std::sync::mpsc;

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (head_tx, heads) = mpsc::channel::<String>();
    let upstream = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        while !data.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("head");
            assert!(n > 0, "closed before the head");
            data.extend_from_slice(&buf[..n]);
        }
        let end = data.windows(4).position(|w| w == b"\r\n\r\n").expect("head end") + 4;
        let _ = head_tx.send(String::from_utf8_lossy(&data[..end]).to_ascii_lowercase());
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nWELCOME")
            .expect("101");
        let mut pending = data[end..].to_vec();
        loop {
            if !pending.is_empty() {
                s.write_all(&[b"echo:", &pending[..]].concat()).expect("echo");
            }
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            pending = buf[..n].to_vec();
        }
    });
    // Off on the connection manager, on again on the `/` route.
    let routes = format!(
        "{}{}",
        prefix_route("/off", "app", ""),
        prefix_route("/", "app", ", upgrade_configs: [{ upgrade_type: WebSocket, enabled: true }]")
    );
    let dir = TempDir::new("ws");
    let log = dir.0.join("access.log");
    let hcm = format!(
        "          upgrade_configs: [{{ upgrade_type: websocket, enabled: false }}]\n          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format: {{ text_format_source: {{ inline_string: \"%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT%\\n\" }} }}\n",
        log.display()
    );
    let listener_yaml = http_listener("web", &hcm, &one_vhost(&routes), "");
    let c = Courier::start(&config(&[listener_yaml], &[static_cluster("app", &[port])]), 1);

    // A route that turns the upgrade off gets Envoy's 403.
    let mut refused = Client::connect(c.listener("web"));
    refused.send_raw(b"GET /off HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(refused.read_response(false).status, 403);

    let mut s = std::net::TcpStream::connect(c.listener("web")).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\nhello")
        .expect("request");
    let head = heads.recv_timeout(std::time::Duration::from_secs(10)).expect("the upstream got the request");
    assert!(head.contains("\r\nconnection: upgrade\r\n") && head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"echo:hello") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101 switching protocols\r\n"), "{text}");
    assert!(text.contains("\r\nupgrade: websocket\r\n") && text.contains("\r\nconnection: upgrade\r\n"), "{text}");
    assert!(!text.contains("content-length") && !text.contains("x-envoy-upstream-service-time"), "{text}");
    assert!(text.ends_with("\r\n\r\nwelcomeecho:hello"), "{text}");
    s.write_all(b"more").expect("more");
    let mut echo = [0u8; 9];
    s.read_exact(&mut echo).expect("echo");
    assert_eq!(&echo, b"echo:more");
    c.wait_stat("http.ingress.downstream_cx_upgrades_active", |v| v == 1);
    // The client's half-close reaches the upstream, which closes; so does the tunnel.
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    assert_eq!(s.read(&mut buf).expect("eof"), 0);
    upstream.join().expect("upstream");
    c.wait_stat("http.ingress.downstream_cx_upgrades_active", |v| v == 0);
    assert_eq!(c.stat("http.ingress.downstream_cx_upgrades_total"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_rq_ws_on_non_ws_route"), Some(1));
    // As Envoy logs the upgraded stream: when the tunnel closed, with its bytes
    // (hello + more in; WELCOME, echo:hello, echo:more out) and DC, the client
    // having ended it.
    let lines = wait_for_lines(&log, 2);
    assert_eq!(lines[1], "/chat 101 DC 9 26", "{lines:?}");
    assert_eq!(c.stat("http.ingress.downstream_rq_rx_reset"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_rq_active"), Some(0));
    assert_eq!(c.stat("http.ingress.downstream_cx_destroy_remote_active_rq"), Some(1));
}

/// A tunnel with no traffic for `stream_idle_timeout` is closed, as Envoy's:
/// logged `SI` with what it moved, counted as an idle timeout.
#[test]
fn an_idle_websocket_tunnel_times_out() {
    use std::io::{Read, Write};

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let upstream = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("head");
            assert!(n > 0);
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhi")
            .expect("101");
        // Silent until the proxy closes the tunnel.
        while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    });
    let dir = TempDir::new("ws-idle");
    let log = dir.0.join("access.log");
    let hcm = format!(
        "          stream_idle_timeout: 0.3s\n          upgrade_configs: [{{ upgrade_type: websocket }}]\n          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format: {{ text_format_source: {{ inline_string: \"%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT%\\n\" }} }}\n",
        log.display()
    );
    let listener_yaml = http_listener("web", &hcm, &one_vhost(&prefix_route("/", "app", "")), "");
    let c = Courier::start(&config(&[listener_yaml], &[static_cluster("app", &[port])]), 1);
    let mut s = std::net::TcpStream::connect(c.listener("web")).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).ends_with("\r\n\r\nhi"), "{:?}", String::from_utf8_lossy(&got));
    upstream.join().expect("upstream");
    assert_eq!(wait_for_lines(&log, 1)[0], "101 SI 0 2");
    c.wait_stat("http.ingress.downstream_rq_idle_timeout", |v| v == 1);
    assert_eq!(c.stat("http.ingress.downstream_cx_upgrades_active"), Some(0));
}
