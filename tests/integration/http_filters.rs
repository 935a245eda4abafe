//! Courier's HTTP filters end to end, against Envoy's documented behaviour:
//! local_ratelimit, cors, fault, health_check, buffer, decompressor and jwt_authn's
//! remote keys.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::*;

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    Client::connect(addr).request("GET", path, headers, b"")
}

/// One `*` virtual host forwarding `/` to `app`, with `extra` YAML (per-filter
/// configs, more routes) at the virtual host level and `routes` before the
/// catch-all route.
fn routes_to_app(vhost_extra: &str, routes: &str) -> String {
    format!(
        "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n{vhost_extra}  routes:\n{routes}  - match: {{ prefix: \"/\" }}\n    route: {{ cluster: app }}\n"
    )
}

/// An `http_filters` item.
fn filter(name: &str, type_name: &str, config: &str) -> String {
    format!("- name: {name}\n  typed_config:\n    \"@type\": type.googleapis.com/{type_name}\n{}", indent(config, 4))
}

const RATELIMIT_TYPE: &str = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

#[test]
fn local_ratelimit_answers_429_when_the_bucket_is_empty() {
    let up = http_upstream("a");
    let rl = filter(
        "envoy.filters.http.local_ratelimit",
        RATELIMIT_TYPE,
        r#"stat_prefix: rl
token_bucket: { max_tokens: 2, tokens_per_fill: 1, fill_interval: 1000s }
filter_enabled: { runtime_key: rl_enabled, default_value: { numerator: 100, denominator: HUNDRED } }
filter_enforced: { runtime_key: rl_enforced, default_value: { numerator: 100, denominator: HUNDRED } }
response_headers_to_add:
- append_action: OVERWRITE_IF_EXISTS_OR_ADD
  header: { key: x-local-rate-limit, value: "true" }
"#,
    );
    let c = start_web("", &routes_to_app("", ""), &rl, &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let mut client = Client::connect(addr);
    assert_eq!(client.get("/").status, 200);
    assert_eq!(client.get("/").status, 200);
    let r = client.get("/");
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "local_rate_limited");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-local-rate-limit"), Some("true"));
    // Envoy's local_ratelimit filter does not add `x-envoy-ratelimited` (only the
    // global ratelimit filter does, despite older docs saying otherwise).
    assert_eq!(r.header("x-envoy-ratelimited"), None);
    // The connection stays usable.
    assert_eq!(client.get("/").status, 429);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(c.stat("rl.http_local_rate_limit.enabled"), Some(4));
    assert_eq!(c.stat("rl.http_local_rate_limit.ok"), Some(2));
    assert_eq!(c.stat("rl.http_local_rate_limit.rate_limited"), Some(2));
    assert_eq!(c.stat("rl.http_local_rate_limit.enforced"), Some(2));
    c.wait_stat("http.ingress.downstream_rq_4xx", |v| v == 2);
}

#[test]
fn local_ratelimit_not_enforced_adds_request_headers() {
    let up = http_upstream("a");
    let rl = filter(
        "envoy.filters.http.local_ratelimit",
        RATELIMIT_TYPE,
        r#"stat_prefix: shadow
token_bucket: { max_tokens: 1, fill_interval: 1000s }
filter_enabled: { default_value: { numerator: 100 } }
request_headers_to_add_when_not_enforced:
- header: { key: x-rate-limited, value: "yes" }
"#,
    );
    let c = start_web("", &routes_to_app("", ""), &rl, &[static_cluster("app", &[up.port()])]);
    let mut client = Client::connect(c.listener("web"));
    assert_eq!(client.get("/").seen().header("x-rate-limited"), None);
    let r = client.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().header("x-rate-limited"), Some("yes"));
    assert_eq!(c.stat("shadow.http_local_rate_limit.rate_limited"), Some(1));
    assert_eq!(c.stat("shadow.http_local_rate_limit.enforced"), Some(0));
}

/// The filter with no bucket of its own (and disabled), limiting only the route
/// `/limited` through `typed_per_filter_config`.
fn per_route_ratelimit() -> (Upstream, Courier) {
    let up = http_upstream("a");
    let rl = filter("envoy.filters.http.local_ratelimit", RATELIMIT_TYPE, "stat_prefix: filter\n");
    let routes = format!(
        r#"  - match: {{ prefix: "/limited" }}
    route: {{ cluster: app }}
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit:
        "@type": type.googleapis.com/{RATELIMIT_TYPE}
        stat_prefix: route_rl
        token_bucket: {{ max_tokens: 1, tokens_per_fill: 1, fill_interval: 1000s }}
        filter_enabled: {{ default_value: {{ numerator: 100 }} }}
        filter_enforced: {{ default_value: {{ numerator: 100 }} }}
"#
    );
    let c = start_web("", &routes_to_app("", &routes), &rl, &[static_cluster("app", &[up.port()])]);
    (up, c)
}

#[test]
fn local_ratelimit_per_route_config() {
    let (_up, c) = per_route_ratelimit();
    let mut client = Client::connect(c.listener("web"));
    assert_eq!(client.get("/limited").status, 200);
    let r = client.get("/limited");
    assert_eq!((r.status, r.text().as_str()), (429, "local_rate_limited"));
    for _ in 0..3 {
        assert_eq!(client.get("/free").status, 200, "other routes use the filter's (disabled) config");
    }
}

#[test]
fn local_ratelimit_per_route_stats_use_the_route_stat_prefix() {
    let (_up, c) = per_route_ratelimit();
    let mut client = Client::connect(c.listener("web"));
    client.get("/limited");
    client.get("/limited");
    assert_eq!(c.stat("route_rl.http_local_rate_limit.ok"), Some(1));
    assert_eq!(c.stat("route_rl.http_local_rate_limit.rate_limited"), Some(1));
}

const CORS_POLICY: &str = r#"  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match:
      - exact: "https://good.example"
      - suffix: ".trusted.example"
      allow_methods: "GET, POST"
      allow_headers: "x-custom"
      expose_headers: "x-exposed"
      max_age: "600"
      allow_credentials: true
"#;

#[test]
fn cors_preflights_and_response_headers() {
    let up = http_upstream("a");
    let cors = filter("envoy.filters.http.cors", "envoy.extensions.filters.http.cors.v3.Cors", "");
    let c = start_web("", &routes_to_app(CORS_POLICY, ""), &cors, &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");

    // A preflight from an allowed origin is answered by Courier.
    let r = Client::connect(addr).request(
        "OPTIONS",
        "/api",
        &[("Origin", "https://good.example"), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("access-control-allow-origin"), Some("https://good.example"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(r.header("access-control-allow-headers"), Some("x-custom"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0, "the preflight reached the upstream");

    // A preflight from another origin goes upstream untouched.
    let r = Client::connect(addr).request(
        "OPTIONS",
        "/api",
        &[("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().method(), "OPTIONS");
    assert_eq!(r.header("access-control-allow-origin"), None);

    // Actual requests: allowed origins get the CORS response headers.
    for origin in ["https://good.example", "https://a.trusted.example"] {
        let r = get(addr, "/api", &[("Origin", origin)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.seen().path(), "/api");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-expose-headers"), Some("x-exposed"));
    }
    let r = get(addr, "/api", &[("Origin", "https://evil.example")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-expose-headers"), None);
    // Not a CORS request at all.
    let r = get(addr, "/api", &[]);
    assert_eq!(r.header("access-control-allow-origin"), None);

    assert_eq!(c.stat("http.ingress.cors.origin_valid"), Some(3));
    assert_eq!(c.stat("http.ingress.cors.origin_invalid"), Some(2));
}

#[test]
fn cors_policies_merge_levels_and_echo_wildcards() {
    let up = http_upstream("a");
    let cors = filter("envoy.filters.http.cors", "envoy.extensions.filters.http.cors.v3.Cors", "");
    let policy = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy";
    let vhost_policy = format!(
        "  typed_per_filter_config:\n    envoy.filters.http.cors:\n      {policy}\n      allow_origin_string_match: [ {{ exact: \"https://good.example\" }} ]\n      allow_credentials: true\n      allow_methods: \"*\"\n      allow_headers: \"*\"\n"
    );
    // The route's policy sets only two fields; the rest comes from the virtual host's.
    let strict = format!(
        "  - match: {{ prefix: \"/strict\" }}\n    route: {{ cluster: app }}\n    typed_per_filter_config:\n      envoy.filters.http.cors:\n        {policy}\n        forward_not_matching_preflights: false\n        max_age: \"60\"\n"
    );
    let c = start_web("", &routes_to_app(&vhost_policy, &strict), &cors, &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let preflight = |path: &str, origin: &str| {
        Client::connect(addr).request(
            "OPTIONS",
            path,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "PUT"),
                ("Access-Control-Request-Headers", "x-a,x-b"),
            ],
            b"",
        )
    };
    let r = preflight("/strict", "https://good.example");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://good.example"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("PUT"), "`*` echoes the requested method");
    assert_eq!(r.header("access-control-allow-headers"), Some("x-a,x-b"), "`*` echoes the requested headers");
    assert_eq!(r.header("access-control-max-age"), Some("60"));
    // Not matching, not forwarded: answered without access-control-allow-origin.
    let r = preflight("/strict", "https://evil.example");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-max-age"), Some("60"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);
    // Elsewhere a non-matching preflight is forwarded (the default).
    assert_eq!(preflight("/other", "https://evil.example").seen().method(), "OPTIONS");
}

const FAULT_TYPE: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";

#[test]
fn fault_aborts_and_delays() {
    let up = http_upstream("a");
    // The filter's own faults are header-controlled; two routes have fixed ones.
    let fault = filter(
        "envoy.filters.http.fault",
        FAULT_TYPE,
        r#"abort: { header_abort: {}, percentage: { numerator: 100 } }
delay: { header_delay: {}, percentage: { numerator: 100 } }
"#,
    );
    let routes = format!(
        r#"  - match: {{ prefix: "/abort" }}
    route: {{ cluster: app }}
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/{FAULT_TYPE}
        abort: {{ http_status: 503, percentage: {{ numerator: 100, denominator: HUNDRED }} }}
  - match: {{ prefix: "/delay" }}
    route: {{ cluster: app }}
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/{FAULT_TYPE}
        delay: {{ fixed_delay: 0.3s, percentage: {{ numerator: 100 }} }}
"#
    );
    let c = start_web("", &routes_to_app("", &routes), &fault, &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");

    let r = get(addr, "/abort", &[]);
    assert_eq!((r.status, r.text().as_str()), (503, "fault filter abort"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0, "an aborted request reached the upstream");

    let started = Instant::now();
    let r = get(addr, "/delay", &[]);
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(290), "{:?}", started.elapsed());

    // Header-controlled faults from the filter's config.
    let r = get(addr, "/", &[("x-envoy-fault-abort-request", "429")]);
    assert_eq!((r.status, r.text().as_str()), (429, "fault filter abort"));
    let started = Instant::now();
    assert_eq!(get(addr, "/", &[("x-envoy-fault-delay-request", "200")]).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(190), "{:?}", started.elapsed());
    // No header, no fault (the counters below stay at two each).
    assert_eq!(get(addr, "/", &[]).status, 200);

    assert_eq!(c.stat("http.ingress.fault.aborts_injected"), Some(2));
    assert_eq!(c.stat("http.ingress.fault.delays_injected"), Some(2));
    c.wait_stat("http.ingress.fault.active_faults", |v| v == 0);
}

fn health_check_proxy(args: &[&str]) -> (Upstream, Courier) {
    let up = http_upstream("a");
    let hc = filter(
        "envoy.filters.http.health_check",
        "envoy.extensions.filters.http.health_check.v3.HealthCheck",
        "pass_through_mode: false\nheaders: [ { name: \":path\", string_match: { exact: \"/healthz\" } } ]\n",
    );
    let c = start_web_with("", &routes_to_app("", ""), &hc, &[static_cluster("app", &[up.port()])], args);
    (up, c)
}

#[test]
fn health_check_is_answered_locally_and_follows_admin_fail_ok() {
    let (up, c) = health_check_proxy(&[]);
    let addr = c.listener("web");
    let r = get(addr, "/healthz", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(r.header("x-envoy-upstream-healthchecked-cluster").is_some());
    assert_eq!(r.header("x-envoy-immediate-health-check-fail"), None);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0, "a health check reached the upstream");
    // Other paths go upstream.
    assert_eq!(get(addr, "/healthz/deeper", &[]).seen().path(), "/healthz/deeper");

    assert_eq!(c.admin_post("/healthcheck/fail").0, 200);
    let r = get(addr, "/healthz", &[]);
    assert_eq!(r.status, 503);
    assert!(r.header("x-envoy-upstream-healthchecked-cluster").is_some());
    // Envoy marks its own 503 and the other responses.
    assert_eq!(r.header("x-envoy-immediate-health-check-fail"), Some("true"));
    let r = get(addr, "/other", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-envoy-immediate-health-check-fail"), Some("true"));

    assert_eq!(c.admin_post("/healthcheck/ok").0, 200);
    let r = get(addr, "/healthz", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/other", &[]).header("x-envoy-immediate-health-check-fail"), None);
    assert_eq!(c.stat("http.ingress.health_check.request_total"), Some(3));
    assert_eq!(c.stat("http.ingress.health_check.ok"), Some(2));
    assert_eq!(c.stat("http.ingress.health_check.failed"), Some(1));
    // As Envoy, the health checks are left out of the per-class and completed
    // counts: only the three proxied requests are there.
    c.wait_stat("http.ingress.downstream_rq_completed", |v| v == 3);
    assert_eq!(c.stat("http.ingress.downstream_rq_2xx"), Some(3));
    assert_eq!(c.stat("http.ingress.downstream_rq_5xx"), Some(0));
}

#[test]
fn health_check_names_the_service_cluster() {
    let (_up, c) = health_check_proxy(&["--service-cluster", "front-proxy"]);
    let r = get(c.listener("web"), "/healthz", &[]);
    assert_eq!(r.header("x-envoy-upstream-healthchecked-cluster"), Some("front-proxy"));
}

#[test]
fn buffer_limits_and_completes_request_bodies() {
    let up = http_upstream("a");
    let buffer = filter(
        "envoy.filters.http.buffer",
        "envoy.extensions.filters.http.buffer.v3.Buffer",
        "max_request_bytes: 16\n",
    );
    let c = start_web("", &routes_to_app("", ""), &buffer, &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");

    let r = Client::connect(addr).request("POST", "/upload", &[], &[b'x'; 32]);
    assert_eq!((r.status, r.text().as_str()), (413, "Payload Too Large"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(c.stat("http.ingress.downstream_rq_too_large"), Some(1));

    // A chunked body over the limit is refused too.
    let mut client = Client::connect(addr);
    client.send_raw(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n");
    assert_eq!(client.read_response(false).status, 413);

    // Under the limit: the upstream gets the whole body with its length.
    let r = Client::connect(addr).request("POST", "/upload", &[], b"0123456789");
    let seen = r.seen();
    assert_eq!(seen.body(), "0123456789");
    assert_eq!(seen.header("content-length"), Some("10"));
    // A chunked body is forwarded with the content-length Envoy's buffer filter adds.
    let mut client = Client::connect(addr);
    client.send_raw(b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let seen = client.read_response(false).seen();
    assert_eq!(seen.body(), "hello world");
    assert_eq!(seen.header("content-length"), Some("11"));
    assert_eq!(seen.header("transfer-encoding"), None);
}

/// The decompressor inflates a request body as it streams: the upstream has the
/// first piece, decompressed, before the client sends the rest (the body is not
/// read whole first), chunked in place of the compressed body's length.
#[test]
fn decompressor_inflates_a_request_body_as_it_streams() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::mpsc;

    let decompressor = filter(
        "envoy.filters.http.decompressor",
        "envoy.extensions.filters.http.decompressor.v3.Decompressor",
        "decompressor_library:\n  name: up\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip\n",
    );
    // An upstream that reports each chunk of the request body as it arrives.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (chunks_tx, chunks) = mpsc::channel::<String>();
    let upstream = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut head = String::new();
        while reader.read_line(&mut head).expect("head") > 2 {}
        let _ = chunks_tx.send(head.to_ascii_lowercase());
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
            let mut data = vec![0; n + 2];
            reader.read_exact(&mut data).expect("chunk");
            if n == 0 {
                break;
            }
            let _ = chunks_tx.send(String::from_utf8_lossy(&data[..n]).into_owned());
        }
        let mut w = stream;
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    let c = start_web("", &routes_to_app("", ""), &decompressor, &[static_cluster("app", &[port])]);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"first part, ").expect("gzip");
    gz.flush().expect("sync flush");
    let first = std::mem::take(gz.get_mut());
    gz.write_all(b"second part").expect("gzip");
    let rest = gz.finish().expect("gzip");
    let mut client = Client::connect(c.listener("web"));
    let head = format!(
        "POST /up HTTP/1.1\r\nhost: a\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
        first.len() + rest.len()
    );
    client.send_raw(&[head.as_bytes(), &first].concat());
    let wait = |what: &str| chunks.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no {what}"));
    let head = wait("request head");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-encoding") && !head.contains("content-length"), "{head}");
    assert_eq!(wait("first piece"), "first part, ");
    client.send_raw(&rest);
    let mut body = String::new();
    while let Ok(piece) = chunks.recv_timeout(Duration::from_secs(10)) {
        body.push_str(&piece);
    }
    assert_eq!(body, "second part");
    assert_eq!(client.read_response(false).status, 200);
    upstream.join().expect("upstream");
    c.wait_stat("http.ingress.decompressor.up.gzip.request.decompressed", |v| v == 1);
    assert_eq!(c.stat("http.ingress.decompressor.up.gzip.request.total_uncompressed_bytes"), Some(23));
}

const JWT_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
/// An RS256 key set and a token it signed (made once with openssl; `exp` in 2100),
/// as in tests/compat/cases/filter_jwt_authn.yaml.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"rsa1","alg":"RS256","n":"7efvthMLrkaL7xRDtx8XovoueWqIiOXrIzgyZDuBEgnAF8PeewYANzgoJEzb9Uue54Wqp0Gq4EWQezEZyETa3RyGza3qgukLrFS4NBOkcmwsx1MM6BwdJYDYL-OD588fw-3dHgLbpJt8ueIUnU-k3RvKJesABhdxkoWq68AreVbSVEs4iAEeLLNtnbqeyU5Hodtg3v6R4UiBqL-PrLFbz1CNzI7IsXMVjG31fMccxen0krvfaDYg6SZ8gq9k-vm66l5XsZyKerhaeljR5zWj3t1IrYq-njdXVMXbeecqDLDT6Jvp5D9QvKhUJevcWrs6UxrkPYl9RSsFslpzh3Qbuw","e":"AQAB"}]}"#;
const JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjpbImNvdXJpZXIiLCJvdGhlciJdLCJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwiZW1haWwiOiJhbGljZUBleGFtcGxlLmNvbSIsInRlbmFudCI6eyJpZCI6N30sImFkbWluIjp0cnVlfQ.cuhguZepMWiBMF7HxJSkT80ZsvgT3EqMoZ6dO6hE2o2Z93DgrYTHca11rZX8PdJwSXd_910XdYvFsJkJoY-zKToZ_QiXRlIGSXAo4x33MtgmXLMbbfUrFUPdQc_saq2-w4kbs_C_cqymBPLGKdQNlyXfNhJBp-i4ZunphSx1hn788OaOz5gjRYYbt89_SXqzp4hfM66I1OkZiStwRHhWDsrf06zKam6iXjS_UR2UZl4uMEpINRcdev_h50eibLS28EcQR4AdG1HIQ3GC8REZwMjVE5ntOvHBaNuJmKBvVRz1g2pGLEFQLZZrIaXo3SfKz12ywjfZo4tFnIjjWf3A_w";

#[test]
fn jwt_authn_fetches_remote_jwks_once_and_answers_a_failed_fetch() {
    let app = http_upstream("app");
    let (jwks, fetches) = fixed_upstream(JWKS, 200, "");
    let jwt = filter(
        "envoy.filters.http.jwt_authn",
        JWT_TYPE,
        r#"providers:
  remote:
    issuer: https://issuer.test
    remote_jwks:
      http_uri: { uri: "http://jwks.test/keys", cluster: jwks, timeout: 1s }
      cache_duration: 300s
  unreachable:
    remote_jwks:
      http_uri: { uri: "http://dead.test/keys", cluster: dead, timeout: 1s }
rules:
- match: { prefix: /dead }
  requires: { provider_name: unreachable }
- match: { prefix: / }
  requires: { provider_name: remote }
"#,
    );
    let clusters = [
        static_cluster("app", &[app.port()]),
        static_cluster("jwks", &[jwks.port()]),
        static_cluster("dead", &[closed_port()]),
    ];
    let c = start_web("", &routes_to_app("", ""), &jwt, &clusters);
    let addr = c.listener("web");
    let bearer = format!("Bearer {JWT}");
    // Fetched on first use, then kept: one fetch for several requests.
    for _ in 0..3 {
        let r = get(addr, "/a", &[("authorization", &bearer)]);
        assert_eq!(r.status, 200);
        // The verified token does not go upstream (no `forward`).
        assert!(r.text().contains(r#""upstream":"app""#) && !r.text().contains("authorization"), "{}", r.text());
    }
    // The token's last character is `w`: now the signature is wrong.
    let tampered = format!("{}A", &bearer[..bearer.len() - 1]);
    let r = get(addr, "/a", &[("authorization", &tampered)]);
    assert_eq!((r.status, r.text().as_str()), (401, "Jwt verification fails"));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(c.stat("http.ingress.jwt_authn.jwks_fetch_success"), Some(1));
    assert_eq!(c.stat("cluster.jwks.upstream_rq_200"), Some(1));

    // A fetch that fails answers as Envoy 1.40 does, and is not kept.
    for n in 1..=2 {
        let r = get(addr, "/dead", &[("authorization", &bearer), ("host", "h.test")]);
        assert_eq!((r.status, r.text().as_str()), (401, "Jwks remote fetch is failed"));
        let challenge = r.header("www-authenticate");
        assert_eq!(challenge, Some(r#"Bearer realm="http://h.test/dead", error="invalid_token""#));
        assert_eq!(c.stat("http.ingress.jwt_authn.jwks_fetch_failed"), Some(n));
    }
    assert_eq!(c.stat("http.ingress.jwt_authn.allowed"), Some(3));
    assert_eq!(c.stat("http.ingress.jwt_authn.denied"), Some(3));
}

/// A zstd request body reaches the upstream inflated, and the JSON answer comes
/// back brotli-compressed (and a large one zstd-compressed) through a chain of
/// brotli and zstd compressors that choose one coding per response.
#[test]
fn brotli_and_zstd_compress_and_inflate_through_one_chain() {
    let up = http_upstream("app");
    let library = |kind: &str, t: &str| {
        format!(
            "  name: {kind}\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.compression.{t}\n"
        )
    };
    let compressor = "envoy.extensions.filters.http.compressor.v3.Compressor";
    // The decompressor last: it sees responses before the compressors do, as
    // they come from the upstream (it would inflate a compressor's output).
    let filters = [
        filter("br", compressor, &format!("compressor_library:\n{}", library("br", "brotli.compressor.v3.Brotli"))),
        filter("zstd", compressor, &format!("compressor_library:\n{}", library("z", "zstd.compressor.v3.Zstd"))),
        filter(
            "envoy.filters.http.decompressor",
            "envoy.extensions.filters.http.decompressor.v3.Decompressor",
            &format!("decompressor_library:\n{}", library("up", "zstd.decompressor.v3.Zstd")),
        ),
    ]
    .concat();
    let c = start_web("", &routes_to_app("", ""), &filters, &[static_cluster("app", &[up.port()])]);
    let mut client = Client::connect(c.listener("web"));

    let body = crate::shared_net::encode("zstd", b"a zstd upload, a zstd upload");
    let r =
        client.request("POST", "/up", &[("content-encoding", "zstd"), ("accept-encoding", "zstd;q=0.5, br")], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("br"));
    let json = crate::shared_net::decode("br", &r.body).expect("a whole brotli stream");
    let seen = HttpResponse { body: json, ..r }.seen();
    assert_eq!(seen.body(), "a zstd upload, a zstd upload");
    assert_eq!(seen.header("content-encoding"), None);

    let r = client.request("GET", "/big", &[("accept-encoding", "zstd"), ("x-test-body-size", "300000")], b"");
    assert_eq!(r.header("content-encoding"), Some("zstd"), "{:?}", r.headers);
    assert_eq!(crate::shared_net::decode("zstd", &r.body), Some(vec![b'x'; 300_000]));

    c.wait_stat("http.ingress.compressor.br.brotli.header_compressor_overshadowed", |v| v == 1);
    assert_eq!(c.stat("http.ingress.compressor.br.brotli.compressed"), Some(1));
    assert_eq!(c.stat("http.ingress.compressor.z.zstd.compressed"), Some(1));
    assert_eq!(c.stat("http.ingress.compressor.z.zstd.header_compressor_overshadowed"), Some(1));
    assert_eq!(c.stat("http.ingress.decompressor.up.zstd.request.decompressed"), Some(1));
}
