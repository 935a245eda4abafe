//! The HTTP router end to end, against Envoy's documented behaviour: route matchers,
//! virtual host selection, forwarding actions, redirects and direct responses, path
//! and host rewrites, timeouts, retries and header mutations.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::*;

/// One request on a new connection, with `Host: host`.
fn send(addr: SocketAddr, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut all = vec![("Host", host)];
    all.extend_from_slice(headers);
    Client::connect(addr).request(method, path, &all, b"")
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    send(addr, "GET", "example.com", path, headers)
}

/// A route answering 200 with its `name` as the body.
fn named(m: &str, name: &str) -> String {
    format!("  - match: {m}\n    direct_response: {{ status: 200, body: {{ inline_string: \"{name}\" }} }}\n")
}

/// A forwarding route.
fn fwd(m: &str, action: &str) -> String {
    format!("  - match: {m}\n    route: {action}\n")
}

/// A route configuration with one `*` virtual host holding `routes`.
fn vhost(routes: &str) -> String {
    format!("virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n{routes}")
}

/// The name of the route that answered, or `None` for Envoy's 404 (no route).
fn answered(r: &HttpResponse) -> Option<String> {
    match r.status {
        200 => Some(r.text()),
        404 => {
            assert!(r.body.is_empty(), "a no-route 404 has no body: {}", r.text());
            None
        }
        s => panic!("unexpected status {s}: {}", r.text()),
    }
}

#[test]
fn path_matchers() {
    let routes = [
        named("{ path: \"/exact\" }", "path"),
        named("{ path_separated_prefix: \"/sep\" }", "sep"),
        named("{ safe_regex: { regex: \"/re/[0-9]+\" } }", "regex"),
        named("{ prefix: \"/CI/\", case_sensitive: false }", "ci"),
        named("{ path: \"/Exact-CI\", case_sensitive: false }", "path-ci"),
        named("{ prefix: \"/pre\" }", "prefix"),
    ]
    .concat();
    let c = start_web("", &vhost(&routes), "", &[]);
    let addr = c.listener("web");
    let cases: &[(&str, Option<&str>)] = &[
        ("/exact", Some("path")),
        ("/exact?x=1", Some("path")),
        ("/exact/", None),
        ("/Exact", None),
        ("/sep", Some("sep")),
        ("/sep/a/b", Some("sep")),
        ("/sep?debug=1", Some("sep")),
        ("/separate", None),
        ("/re/123", Some("regex")),
        ("/re/123?q=abc", Some("regex")),
        ("/re/12a", None),
        ("/re/1/2", None),
        ("/ci/thing", Some("ci")),
        ("/Ci/THING", Some("ci")),
        ("/exact-ci", Some("path-ci")),
        ("/EXACT-CI?z", Some("path-ci")),
        ("/pre", Some("prefix")),
        ("/prefix/deeper", Some("prefix")),
        ("/PRE", None),
        ("/", None),
    ];
    for (path, want) in cases {
        assert_eq!(answered(&get(addr, path, &[])).as_deref(), *want, "{path}");
    }
    c.wait_stat("http.ingress.no_route", |v| v == 7);
}

/// A path, its request headers, and the route expected to answer.
type HeaderCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

#[test]
fn header_matchers() {
    let h = |name: &str, headers: &str| named(&format!("{{ prefix: \"/h\", headers: [ {headers} ] }}"), name);
    let routes = [
        h("exact", "{ name: x-exact, string_match: { exact: \"yes\" } }"),
        h("legacy-exact", "{ name: x-legacy, exact_match: \"old\" }"),
        h("prefix", "{ name: x-prefix, string_match: { prefix: \"pre\" } }"),
        h("suffix", "{ name: x-suffix, string_match: { suffix: \"fix\" } }"),
        h("contains", "{ name: x-contains, string_match: { contains: \"mid\" } }"),
        h("regex", "{ name: x-regex, string_match: { safe_regex: { regex: \"[0-9]{3}\" } } }"),
        h("legacy-regex", "{ name: x-legacy-regex, safe_regex_match: { regex: \"v[0-9]+\" } }"),
        h("ignore-case", "{ name: x-ignore-case, string_match: { exact: \"MiXeD\", ignore_case: true } }"),
        h("present", "{ name: x-present, present_match: true }"),
        h("range", "{ name: x-range, range_match: { start: 10, end: 20 } }"),
        h("invert", "{ name: x-invert, string_match: { exact: \"no\" }, invert_match: true }"),
        // Inverted presence: every request without `x-absent`.
        h("absent", "{ name: x-absent, present_match: true, invert_match: true }"),
        named(
            "{ prefix: \"/multi\", headers: [ { name: x-a, string_match: { exact: \"1\" } }, { name: x-b, string_match: { exact: \"2\" } } ] }",
            "both",
        ),
        named("{ prefix: \"/m\", headers: [ { name: \":method\", string_match: { exact: POST } } ] }", "post"),
        named(
            "{ prefix: \"/empty\", headers: [ { name: x-empty, string_match: { exact: \"\" }, treat_missing_header_as_empty: true } ] }",
            "missing-as-empty",
        ),
    ]
    .concat();
    let c = start_web("", &vhost(&routes), "", &[]);
    let addr = c.listener("web");
    let cases: &[HeaderCase] = &[
        ("/h", &[("x-exact", "yes")], Some("exact")),
        ("/h", &[("x-exact", "YES"), ("x-absent", "1")], None),
        ("/h", &[("x-legacy", "old")], Some("legacy-exact")),
        ("/h", &[("x-prefix", "prefixed")], Some("prefix")),
        ("/h", &[("x-prefix", "apre"), ("x-absent", "1")], None),
        ("/h", &[("x-suffix", "postfix")], Some("suffix")),
        ("/h", &[("x-contains", "amidst")], Some("contains")),
        ("/h", &[("x-regex", "123")], Some("regex")),
        // A regex must match the whole value.
        ("/h", &[("x-regex", "1234"), ("x-absent", "1")], None),
        ("/h", &[("x-legacy-regex", "v42")], Some("legacy-regex")),
        ("/h", &[("x-ignore-case", "mixed")], Some("ignore-case")),
        ("/h", &[("x-present", "")], Some("present")),
        ("/h", &[("x-range", "15")], Some("range")),
        // The range is [start, end).
        ("/h", &[("x-range", "20"), ("x-absent", "1")], None),
        ("/empty", &[], Some("missing-as-empty")),
        ("/empty", &[("x-empty", "set")], None),
        ("/h", &[("x-invert", "yes"), ("x-absent", "1")], Some("invert")),
        ("/h", &[("x-invert", "no"), ("x-absent", "1")], None),
        // A missing header never matches a value matcher, inverted or not.
        ("/h", &[("x-absent", "1")], None),
        ("/h", &[], Some("absent")),
        ("/multi", &[("x-a", "1"), ("x-b", "2")], Some("both")),
        ("/multi", &[("x-a", "1")], None),
    ];
    for (path, headers, want) in cases {
        assert_eq!(answered(&get(addr, path, headers)).as_deref(), *want, "{path} {headers:?}");
    }
    assert_eq!(answered(&send(addr, "POST", "example.com", "/m", &[])).as_deref(), Some("post"));
    assert_eq!(answered(&get(addr, "/m", &[])), None);
}

#[test]
fn query_parameter_matchers() {
    let q = |name: &str, params: &str| named(&format!("{{ prefix: \"/q\", query_parameters: [ {params} ] }}"), name);
    let routes = [
        q("debug", "{ name: debug, string_match: { exact: \"1\" } }"),
        q("flag", "{ name: flag, present_match: true }"),
        q("both", "{ name: a, string_match: { prefix: \"x\" } }, { name: b, string_match: { exact: \"y\" } }"),
    ]
    .concat();
    let c = start_web("", &vhost(&routes), "", &[]);
    let addr = c.listener("web");
    let cases: &[(&str, Option<&str>)] = &[
        ("/q?debug=1", Some("debug")),
        ("/q?other=2&debug=1", Some("debug")),
        ("/q?debug=2", None),
        ("/q?DEBUG=1", None),
        ("/q?flag", Some("flag")),
        ("/q?flag=anything", Some("flag")),
        ("/q?a=xyz&b=y", Some("both")),
        ("/q?a=xyz", None),
        ("/q", None),
    ];
    for (path, want) in cases {
        assert_eq!(answered(&get(addr, path, &[])).as_deref(), *want, "{path}");
    }
}

/// Virtual hosts named after their kind, each answering with its name.
fn domains_config(extra: &str) -> String {
    let vh = |name: &str, domains: &str| {
        format!("- name: {name}\n  domains: {domains}\n  routes:\n{}", named("{ prefix: \"/\" }", name))
    };
    [
        extra.to_string(),
        "virtual_hosts:\n".to_string(),
        vh("default", "[\"*\"]"),
        vh("exact", "[\"api.example.com\"]"),
        vh("exact-port", "[\"api.example.com:8443\"]"),
        vh("suffix-long", "[\"*.api.example.com\"]"),
        vh("suffix", "[\"*.example.com\"]"),
        vh("prefix-long", "[\"api.example.*\"]"),
        vh("prefix", "[\"api.*\"]"),
    ]
    .concat()
}

#[test]
fn virtual_host_domains_most_specific_wins() {
    let c = start_web("", &domains_config(""), "", &[]);
    let addr = c.listener("web");
    let cases: &[(&str, &str)] = &[
        ("api.example.com", "exact"),
        ("API.Example.COM", "exact"),
        ("api.example.com:8443", "exact-port"),
        // The port is part of the host: no exact match, the longest prefix wildcard wins.
        ("api.example.com:9999", "prefix-long"),
        ("v1.api.example.com", "suffix-long"),
        ("www.example.com", "suffix"),
        ("www.example.com:8080", "default"),
        ("api.example.org", "prefix-long"),
        ("api.other.net", "prefix"),
        // A wildcard stands for at least one character.
        (".example.com", "default"),
        ("unknown.net", "default"),
    ];
    for (host, want) in cases {
        let r = send(addr, "GET", host, "/", &[]);
        assert_eq!(answered(&r).as_deref(), Some(*want), "Host: {host}");
    }
}

#[test]
fn virtual_host_domains_ignoring_the_port() {
    let c = start_web("", &domains_config("ignore_port_in_host_matching: true\n"), "", &[]);
    let addr = c.listener("web");
    for (host, want) in [
        ("api.example.com:9999", "exact"),
        ("www.example.com:8080", "suffix"),
        ("api.other.net:1", "prefix"),
        ("unknown.net:80", "default"),
    ] {
        let r = send(addr, "GET", host, "/", &[]);
        assert_eq!(answered(&r).as_deref(), Some(want), "Host: {host}");
    }
}

#[test]
fn cluster_cluster_header_and_weighted_clusters() {
    let a = http_upstream("a");
    let b = http_upstream("b");
    let routes = [
        fwd("{ prefix: \"/by-header\" }", "{ cluster_header: x-cluster }"),
        fwd(
            "{ prefix: \"/weighted\" }",
            "{ weighted_clusters: { clusters: [ { name: a, weight: 30 }, { name: b, weight: 70 } ], total_weight: 100 } }",
        ),
        fwd("{ prefix: \"/\" }", "{ cluster: a }"),
    ]
    .concat();
    let clusters = [static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()])];
    let c = start_web("", &vhost(&routes), "", &clusters);
    let addr = c.listener("web");
    assert_eq!(get(addr, "/plain", &[]).seen().upstream(), "a");
    assert_eq!(get(addr, "/by-header", &[("x-cluster", "b")]).seen().upstream(), "b");
    assert_eq!(get(addr, "/by-header", &[("x-cluster", "a")]).seen().upstream(), "a");
    // No header, or a cluster that does not exist: 503 (NC).
    assert_eq!(get(addr, "/by-header", &[]).status, 503);
    assert_eq!(get(addr, "/by-header", &[("x-cluster", "nope")]).status, 503);
    assert_eq!(c.stat("http.ingress.no_cluster"), Some(2));

    let mut client = Client::connect(addr);
    let (mut to_a, mut to_b) = (0, 0);
    for _ in 0..200 {
        match client.get("/weighted").seen().upstream() {
            "a" => to_a += 1,
            "b" => to_b += 1,
            other => panic!("unexpected upstream {other}"),
        }
    }
    // 30/70 of 200: expect about 60 and 140; the bounds are > 6 standard deviations wide.
    assert!(to_a >= 20 && to_b >= 80 && to_b > to_a, "a: {to_a}, b: {to_b}");
}

#[test]
fn cluster_not_found_response_code() {
    let routes = fwd("{ prefix: \"/\" }", "{ cluster_header: x-cluster, cluster_not_found_response_code: NOT_FOUND }");
    let c = start_web("", &vhost(&routes), "", &[]);
    assert_eq!(get(c.listener("web"), "/", &[("x-cluster", "nope")]).status, 404);
}

#[test]
fn direct_responses_and_redirects() {
    let redirect = |m: &str, action: &str| {
        format!(
            "  - match: {m}\n    redirect: {action}\n    response_headers_to_add: [ {{ header: {{ key: x-route, value: redirect }} }} ]\n"
        )
    };
    let routes = [
        "  - match: { path: \"/teapot\" }\n    direct_response: { status: 418, body: { inline_string: \"short and stout\" } }\n    response_headers_to_add: [ { header: { key: x-route, value: direct } } ]\n".to_string(),
        "  - match: { path: \"/empty\" }\n    direct_response: { status: 204 }\n".to_string(),
        redirect("{ prefix: \"/https\" }", "{ https_redirect: true }"),
        redirect("{ prefix: \"/scheme\" }", "{ scheme_redirect: https, port_redirect: 8443 }"),
        redirect("{ prefix: \"/host\" }", "{ host_redirect: new.example.org, response_code: FOUND }"),
        redirect("{ prefix: \"/port\" }", "{ port_redirect: 9090, response_code: SEE_OTHER }"),
        redirect("{ prefix: \"/path\" }", "{ path_redirect: \"/elsewhere\", response_code: TEMPORARY_REDIRECT }"),
        redirect(
            "{ prefix: \"/strip\" }",
            "{ path_redirect: \"/clean\", strip_query: true, response_code: PERMANENT_REDIRECT }",
        ),
        redirect("{ prefix: \"/old/\" }", "{ prefix_rewrite: \"/new/\", response_code: MOVED_PERMANENTLY }"),
    ]
    .concat();
    let c = start_web("", &vhost(&routes), "", &[]);
    let addr = c.listener("web");

    let r = get(addr, "/teapot", &[]);
    assert_eq!((r.status, r.text().as_str()), (418, "short and stout"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-route"), Some("direct"), "route response headers apply to direct responses");
    let r = get(addr, "/empty", &[]);
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());

    let cases: &[(&str, &str, u16, &str)] = &[
        ("example.com", "/https?x=1", 301, "https://example.com/https?x=1"),
        // The default port of the old scheme is dropped when the scheme changes.
        ("example.com:80", "/https", 301, "https://example.com/https"),
        ("example.com:8080", "/https", 301, "https://example.com:8080/https"),
        ("example.com", "/scheme/x", 301, "https://example.com:8443/scheme/x"),
        ("example.com:8080", "/host/a?b=c", 302, "http://new.example.org/host/a?b=c"),
        ("example.com:8080", "/port", 303, "http://example.com:9090/port"),
        ("example.com", "/path?a=1", 307, "http://example.com/elsewhere?a=1"),
        ("example.com", "/strip?a=1", 308, "http://example.com/clean"),
        ("example.com", "/old/a/b?q=1", 301, "http://example.com/new/a/b?q=1"),
    ];
    for (host, path, status, location) in cases {
        let r = send(addr, "GET", host, path, &[]);
        assert_eq!(r.status, *status, "{host}{path}");
        assert_eq!(r.header("location"), Some(*location), "{host}{path}");
        assert_eq!(r.header("x-route"), Some("redirect"), "route response headers apply to redirects");
    }
    // Envoy counts redirect routes under rq_direct_response; rq_redirect is for
    // internal redirects.
    c.wait_stat("http.ingress.rq_direct_response", |v| v == cases.len() as i64 + 2);
    assert_eq!(c.stat("http.ingress.rq_redirect"), Some(0));
}

#[test]
fn direct_response_body_from_an_environment_variable() {
    // The body is read from Courier's environment at load time.
    let routes = "  - match: { path: \"/env\" }\n    direct_response: { status: 200, body: { environment_variable: COURIER_TEST_DIRECT_BODY } }\n";
    let listener = http_listener("web", "", &indent(&vhost(routes), 12), "");
    let c = Courier::start_with(
        &config(&[listener], &[]),
        1,
        &[],
        &[("COURIER_TEST_DIRECT_BODY", "body from the environment")],
    );
    let r = get(c.listener("web"), "/env", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "body from the environment"));
}

#[test]
fn path_and_host_rewrites() {
    let up = http_upstream("a");
    let routes = [
        fwd("{ prefix: \"/api/\" }", "{ cluster: app, prefix_rewrite: \"/v2/\" }"),
        fwd(
            "{ prefix: \"/svc/\" }",
            "{ cluster: app, regex_rewrite: { pattern: { regex: \"^/svc/([^/]+)/(.*)$\" }, substitution: \"/\\\\2/\\\\1\" } }",
        ),
        fwd("{ prefix: \"/literal\" }", "{ cluster: app, host_rewrite_literal: backend.internal }"),
        fwd("{ prefix: \"/\" }", "{ cluster: app }"),
    ]
    .concat();
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");

    let seen = get(addr, "/api/users?id=7", &[]).seen();
    assert_eq!(seen.path(), "/v2/users?id=7");
    assert_eq!(seen.header("x-envoy-original-path"), Some("/api/users?id=7"));
    assert_eq!(seen.header("host"), Some("example.com"));

    let seen = get(addr, "/svc/users/list?x=/svc/a/b", &[]).seen();
    assert_eq!(seen.path(), "/list/users?x=/svc/a/b", "the query string is not rewritten");
    assert_eq!(seen.header("x-envoy-original-path"), Some("/svc/users/list?x=/svc/a/b"));

    let seen = get(addr, "/literal", &[]).seen();
    assert_eq!(seen.header("host"), Some("backend.internal"));
    assert_eq!(seen.path(), "/literal");

    let seen = get(addr, "/untouched", &[]).seen();
    assert_eq!(seen.path(), "/untouched");
    assert_eq!(seen.header("x-envoy-original-path"), None);
}

#[test]
fn auto_host_rewrite_uses_the_dns_name() {
    let up = http_upstream("dns");
    let cluster = format!(
        "  - name: dns\n    type: STRICT_DNS\n    dns_lookup_family: V4_ONLY\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: dns\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {} }} }} }}\n",
        up.port()
    );
    let routes = [
        fwd("{ prefix: \"/auto\" }", "{ cluster: dns, auto_host_rewrite: true }"),
        fwd("{ prefix: \"/\" }", "{ cluster: dns }"),
    ]
    .concat();
    let c = start_web("", &vhost(&routes), "", &[cluster]);
    let addr = c.listener("web");
    assert_eq!(get(addr, "/auto", &[]).seen().header("host"), Some("localhost"));
    assert_eq!(get(addr, "/plain", &[]).seen().header("host"), Some("example.com"));
}

#[test]
fn route_timeout_is_504_upstream_request_timeout() {
    let up = http_upstream("a");
    let routes = fwd("{ prefix: \"/\" }", "{ cluster: app, timeout: 0.3s }");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    assert_eq!(get(addr, "/", &[]).seen().header("x-envoy-expected-rq-timeout-ms"), Some("300"));
    let started = Instant::now();
    let r = get(addr, "/slow", &[("x-test-delay-ms", "8000")]);
    let elapsed = started.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    // Not before the 0.3 s timeout, and long before the upstream's answer at 8 s.
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(c.stat("cluster.app.upstream_rq_timeout"), Some(1));
}

/// A route `/` to `app` with this retry policy (back-off 10ms).
fn retry_route(policy: &str, extra: &str) -> String {
    fwd(
        "{ prefix: \"/\" }",
        &format!("{{ cluster: app{extra}, retry_policy: {{ {policy}, retry_back_off: {{ base_interval: 0.01s }} }} }}"),
    )
}

#[test]
fn retry_on_retriable_status_codes() {
    let up = http_upstream("a");
    let routes =
        retry_route("retry_on: retriable-status-codes, num_retries: 2, retriable_status_codes: [503, 418]", "");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    // The first request gets a 503, listed: retried, then 200.
    assert_eq!(get(addr, "/", &[("x-test-fail-first", "1")]).status, 200);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry_success"), Some(1));
    // 418 every time: two retries, then the last 418 goes downstream.
    assert_eq!(get(addr, "/", &[("x-test-status", "418")]).status, 418);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(3));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry_limit_exceeded"), Some(1));
    // 500 is not listed (and `5xx` is not on): no retry.
    assert_eq!(get(addr, "/", &[("x-test-status", "500")]).status, 500);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(3));
}

#[test]
fn retries_resend_the_request_body() {
    // Envoy buffers a request body (up to its buffer limit) so that a retry can send
    // it again.
    let up = http_upstream("a");
    let routes = retry_route("retry_on: 5xx, num_retries: 1", "");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[up.port()])]);
    let r = Client::connect(c.listener("web")).request("POST", "/", &[("x-test-fail-first", "1")], b"payload");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.seen().body(), "payload");
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
    // Over the buffer limit (1 MiB) the body is sent once, whole, and not retried.
    let big = vec![b'z'; 1536 * 1024];
    let r = Client::connect(c.listener("web")).request("POST", "/", &[("x-test-status", "503")], &big);
    assert_eq!(r.status, 503);
    assert_eq!(r.seen().body().len(), big.len());
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
}

#[test]
fn retry_on_retriable_4xx_is_409_only() {
    let up = http_upstream("a");
    let routes = retry_route("retry_on: retriable-4xx, num_retries: 1", "");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    assert_eq!(get(addr, "/", &[("x-test-status", "409")]).status, 409);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
    // The retried 409 counts under `retry.*`, the final one under `upstream_rq_409`.
    assert_eq!(c.stat("cluster.app.retry.upstream_rq_409"), Some(1));
    c.wait_stat("cluster.app.upstream_rq_409", |v| v == 1);
    assert_eq!(get(addr, "/", &[("x-test-status", "404")]).status, 404);
    assert_eq!(get(addr, "/", &[("x-test-status", "503")]).status, 503);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
}

#[test]
fn retry_on_connect_failure() {
    let up = http_upstream("good");
    let dead = closed_port();
    let routes = retry_route("retry_on: connect-failure, num_retries: 3", "");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[dead, up.port()])]);
    let addr = c.listener("web");
    // Round robin alternates hosts, so at least one of two requests starts on the
    // dead host; every request still succeeds on the good one.
    for _ in 0..2 {
        let r = get(addr, "/", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.seen().upstream(), "good");
    }
    let fails = c.stat("cluster.app.upstream_cx_connect_fail").unwrap_or(0);
    assert!(fails >= 1, "no connect failure was retried");
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(fails));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry_success"), Some(fails));
}

#[test]
fn retry_on_reset() {
    // The upstream closes its first connection without answering.
    let up = resetting_upstream("flaky", 1);
    let routes = retry_route("retry_on: reset, num_retries: 1", "");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[up.port()])]);
    let r = get(c.listener("web"), "/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "flaky"));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry_success"), Some(1));

    // Without a retry policy the reset is a 503 (UC).
    let always = resetting_upstream("dead", usize::MAX);
    let c = start_web(
        "",
        &vhost(&fwd("{ prefix: \"/\" }", "{ cluster: app }")),
        "",
        &[static_cluster("app", &[always.port()])],
    );
    let r = get(c.listener("web"), "/", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    );
}

#[test]
fn retry_on_reset_covers_connect_failures_and_per_try_timeouts() {
    // Envoy's `reset` retries any reset but an overflow: a refused connection, and a
    // per-try timeout (a local reset), too.
    let up = http_upstream("good");
    let dead = closed_port();
    let routes = retry_route("retry_on: reset, num_retries: 3, per_try_timeout: 0.2s", "");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[dead, up.port()])]);
    let addr = c.listener("web");
    for _ in 0..2 {
        let r = get(addr, "/", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let fails = c.stat("cluster.app.upstream_cx_connect_fail").unwrap_or(0);
    assert!(fails >= 1);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(fails));

    let c = start_web(
        "",
        &vhost(&retry_route("retry_on: reset, num_retries: 1, per_try_timeout: 0.2s", "")),
        "",
        &[static_cluster("app", &[up.port()])],
    );
    // Both 0.2 s tries time out long before the upstream would answer.
    let r = get(c.listener("web"), "/", &[("x-test-delay-ms", "8000")]);
    assert_eq!(r.status, 504);
    assert_eq!(c.stat("cluster.app.upstream_rq_per_try_timeout"), Some(2));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
}

#[test]
fn x_envoy_ratelimited_responses_retry_only_on_envoy_ratelimited() {
    let (limited, count) = fixed_upstream("limited", 503, "x-envoy-ratelimited: true\r\n");
    let c = start_web(
        "",
        &vhost(&retry_route("retry_on: 5xx, num_retries: 2", "")),
        "",
        &[static_cluster("app", &[limited.port()])],
    );
    assert_eq!(get(c.listener("web"), "/", &[]).status, 503);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "a rate limited 503 is not retried on 5xx");
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(0));

    let (limited, count) = fixed_upstream("limited", 429, "x-envoy-ratelimited: true\r\n");
    let c = start_web(
        "",
        &vhost(&retry_route("retry_on: envoy-ratelimited, num_retries: 2", "")),
        "",
        &[static_cluster("app", &[limited.port()])],
    );
    assert_eq!(get(c.listener("web"), "/", &[]).status, 429);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(2));
}

#[test]
fn per_try_timeout_is_retried_within_the_route_timeout() {
    let up = http_upstream("a");
    let routes = retry_route("retry_on: 5xx, num_retries: 1, per_try_timeout: 0.2s", ", timeout: 3s");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    // Envoy sends the smaller of the per-try and route timeouts.
    assert_eq!(get(addr, "/", &[]).seen().header("x-envoy-expected-rq-timeout-ms"), Some("200"));
    let started = Instant::now();
    let r = get(addr, "/", &[("x-test-delay-ms", "8000")]);
    let elapsed = started.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    // Two tries of 0.2 s, ended before the 3 s route timeout (which the stats below
    // tell apart too) and long before the upstream's answer at 8 s.
    assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(c.stat("cluster.app.upstream_rq_per_try_timeout"), Some(2));
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(1));
    // As Envoy, a per-try timeout that ends the request is not a route timeout.
    assert_eq!(c.stat("cluster.app.upstream_rq_timeout"), Some(0));
    assert_eq!(c.stat("cluster.app.upstream_rq_504"), Some(1));
}

#[test]
fn exhausted_retries_say_so_in_the_reset_reason() {
    let dead = closed_port();
    let routes = retry_route("retry_on: connect-failure, num_retries: 2", "");
    let c = start_web("", &vhost(&routes), "", &[static_cluster("app", &[dead])]);
    let r = get(c.listener("web"), "/", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: \
         remote connection failure"
    );
    assert_eq!(c.stat("cluster.app.upstream_rq_retry"), Some(2));
    // Envoy counts its own 503 as the upstream's, and no request reached a connection.
    assert_eq!(c.stat("cluster.app.upstream_rq_503"), Some(1));
    assert_eq!(c.stat("cluster.app.upstream_rq_total"), Some(0));
    assert_eq!(c.stat("cluster.app.upstream_rq_pending_failure_eject"), Some(3));
}

/// Header edits at the three levels, each level overwriting `x-level`.
fn mutations_config(most_specific_wins: bool) -> String {
    let level = |name: &str| {
        format!(
            "[ {{ header: {{ key: x-level, value: {name} }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }}, {{ header: {{ key: x-{name}-only, value: \"1\" }} }} ]"
        )
    };
    let resp_level = |name: &str| {
        format!("[ {{ header: {{ key: x-resp-level, value: {name} }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }} ]")
    };
    format!(
        r#"most_specific_header_mutations_wins: {most_specific_wins}
request_headers_to_add: {config_req}
request_headers_to_remove: [ x-drop-config ]
response_headers_to_add: {config_resp}
response_headers_to_remove: [ x-upstream ]
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: {vhost_req}
  response_headers_to_add: {vhost_resp}
  routes:
  - match: {{ prefix: "/" }}
    route: {{ cluster: app }}
    request_headers_to_add:
    - {{ header: {{ key: x-level, value: route }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }}
    - {{ header: {{ key: x-append, value: added }}, append_action: APPEND_IF_EXISTS_OR_ADD }}
    - {{ header: {{ key: x-append-new, value: added }} }}
    - {{ header: {{ key: x-if-absent, value: added }}, append_action: ADD_IF_ABSENT }}
    - {{ header: {{ key: x-if-absent-new, value: added }}, append_action: ADD_IF_ABSENT }}
    - {{ header: {{ key: x-overwrite, value: new }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }}
    - {{ header: {{ key: x-overwrite-if, value: new }}, append_action: OVERWRITE_IF_EXISTS }}
    - {{ header: {{ key: x-overwrite-if-missing, value: new }}, append_action: OVERWRITE_IF_EXISTS }}
    - {{ header: {{ key: x-remote, value: "%DOWNSTREAM_REMOTE_ADDRESS%" }} }}
    - {{ header: {{ key: x-remote-ip, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }} }}
    - {{ header: {{ key: x-protocol, value: "%PROTOCOL%" }} }}
    - {{ header: {{ key: x-copy, value: "%REQ(x-source)%" }} }}
    - {{ header: {{ key: x-copy-missing, value: "%REQ(x-not-sent)%" }} }}
    - {{ header: {{ key: x-start, value: "%START_TIME(%s)%" }} }}
    - {{ header: {{ key: x-literal, value: "100%% sure" }} }}
    request_headers_to_remove: [ x-drop ]
    response_headers_to_add:
    - {{ header: {{ key: x-resp-level, value: route }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }}
    - {{ header: {{ key: x-resp-copy, value: "%RESP(x-upstream)%" }} }}
    - {{ header: {{ key: x-resp-req, value: "%REQ(x-source)%" }} }}
"#,
        config_req = level("config"),
        config_resp = resp_level("config"),
        vhost_req = level("vhost"),
        vhost_resp = resp_level("vhost"),
    )
}

#[test]
fn header_mutations_levels_actions_and_substitutions() {
    let up = http_upstream("a");
    let c = start_web("", &mutations_config(false), "", &[static_cluster("app", &[up.port()])]);
    let mut client = Client::connect(c.listener("web"));
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let r = client.request(
        "GET",
        "/",
        &[
            ("x-append", "orig"),
            ("x-if-absent", "orig"),
            ("x-overwrite", "orig"),
            ("x-overwrite-if", "orig"),
            ("x-source", "copied"),
            ("x-drop", "1"),
            ("x-drop-config", "1"),
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.seen();
    // Route, then virtual host, then route configuration: the least specific level
    // has the last word.
    assert_eq!(seen.header("x-level"), Some("config"));
    assert_eq!(seen.header("x-vhost-only"), Some("1"));
    assert_eq!(seen.header("x-config-only"), Some("1"));
    assert_eq!(seen.header("x-append"), Some("orig,added"));
    assert_eq!(seen.header("x-append-new"), Some("added"));
    assert_eq!(seen.header("x-if-absent"), Some("orig"));
    assert_eq!(seen.header("x-if-absent-new"), Some("added"));
    assert_eq!(seen.header("x-overwrite"), Some("new"));
    assert_eq!(seen.header("x-overwrite-if"), Some("new"));
    assert_eq!(seen.header("x-overwrite-if-missing"), None);
    let local = local_addr(&client).to_string();
    assert_eq!(seen.header("x-remote"), Some(local.as_str()));
    assert_eq!(seen.header("x-remote-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-protocol"), Some("HTTP/1.1"));
    assert_eq!(seen.header("x-copy"), Some("copied"));
    assert_eq!(seen.header("x-copy-missing"), None, "an empty value is not added");
    let start: u64 = seen.header("x-start").and_then(|v| v.parse().ok()).expect("x-start is epoch seconds");
    assert!(start >= before && start <= before + 5, "{start} vs {before}");
    assert_eq!(seen.header("x-literal"), Some("100% sure"));
    assert_eq!(seen.header("x-drop"), None);
    assert_eq!(seen.header("x-drop-config"), None);

    assert_eq!(r.header("x-resp-level"), Some("config"));
    // The route level runs before the route configuration removes `x-upstream`.
    assert_eq!(r.header("x-resp-copy"), Some("a"));
    assert_eq!(r.header("x-upstream"), None);
    assert_eq!(r.header("x-resp-req"), Some("copied"));
}

#[test]
fn most_specific_header_mutations_wins() {
    let up = http_upstream("a");
    let c = start_web("", &mutations_config(true), "", &[static_cluster("app", &[up.port()])]);
    let r = get(c.listener("web"), "/", &[]);
    assert_eq!(r.seen().header("x-level"), Some("route"));
    assert_eq!(r.header("x-resp-level"), Some("route"));
}

#[test]
fn later_levels_see_earlier_header_edits() {
    let up = http_upstream("a");
    let rc = r#"virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: [ { header: { key: x-vhost-saw, value: "%REQ(x-from-route)%" } } ]
  response_headers_to_add: [ { header: { key: x-vhost-saw, value: "%RESP(x-from-route)%" } } ]
  routes:
  - match: { prefix: "/" }
    route: { cluster: app }
    request_headers_to_add: [ { header: { key: x-from-route, value: "r" } } ]
    response_headers_to_add: [ { header: { key: x-from-route, value: "r" } } ]
"#;
    let c = start_web("", rc, "", &[static_cluster("app", &[up.port()])]);
    let r = get(c.listener("web"), "/", &[]);
    assert_eq!(r.seen().header("x-vhost-saw"), Some("r"));
    assert_eq!(r.header("x-vhost-saw"), Some("r"));
    // Reversed order: the route configuration removes `x-upstream` before the route
    // level formats `%RESP(x-upstream)%`, so the copy is empty and not added.
    let c = start_web("", &mutations_config(true), "", &[static_cluster("app", &[up.port()])]);
    let r = get(c.listener("web"), "/", &[]);
    assert_eq!(r.header("x-resp-copy"), None);
}

#[test]
fn route_response_headers_apply_to_upstream_failure_replies() {
    let up = http_upstream("a");
    let rc = vhost(
        "  - match: { prefix: \"/\" }\n    route: { cluster: app, timeout: 0.2s }\n    response_headers_to_add: [ { header: { key: x-route, value: \"yes\" } } ]\n",
    );
    let c = start_web("", &rc, "", &[static_cluster("app", &[up.port()])]);
    // The 0.2 s timeout fires long before the upstream would answer.
    let r = get(c.listener("web"), "/", &[("x-test-delay-ms", "8000")]);
    assert_eq!(r.status, 504);
    assert_eq!(r.header("x-route"), Some("yes"));
}

#[test]
fn unsupported_route_features_are_config_errors() {
    let rc = |route: &str| {
        let listener = http_listener("web", "", &indent(&vhost(route), 12), "");
        config(&[listener], &[static_cluster("app", &[closed_port()])])
    };
    let (ok, out) = validate(&rc(
        "  - match: { prefix: \"/\" }\n    route: { cluster: app }\n    request_headers_to_add: [ { header: { key: x-m, value: \"%UPSTREAM_METADATA([\\\"ns\\\", \\\"k\\\"])%\" } } ]\n",
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("UPSTREAM_METADATA"), "{out}");
    let (ok, out) = validate(&rc(
        "  - match: { prefix: \"/\" }\n    route: { cluster: app, hash_policy: [ { header: { header_name: x } } ] }\n",
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("hash_policy"), "{out}");
}

/// A mirrored request's copy is the request as the router sends it, its host
/// suffixed `-shadow`, marked internal, and with the body the client streamed
/// (teed piece by piece); the client's answer is the main cluster's.
#[test]
fn a_mirror_gets_a_copy_of_a_streamed_request() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::mpsc;

    let up = http_upstream("app");
    let mirror = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mirror_port = mirror.local_addr().expect("addr").port();
    let (seen_tx, seen) = mpsc::channel::<(String, String)>();
    let shadow = std::thread::spawn(move || {
        let (stream, _) = mirror.accept().expect("accept");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut head = String::new();
        while reader.read_line(&mut head).expect("head") > 2 {}
        let mut body = String::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex");
            let mut data = vec![0; n + 2];
            reader.read_exact(&mut data).expect("chunk");
            if n == 0 {
                break;
            }
            body.push_str(&String::from_utf8_lossy(&data[..n]));
        }
        let _ = seen_tx.send((head.to_ascii_lowercase(), body));
        let mut w = stream;
        let _ = w.write_all(b"HTTP/1.1 500 Mirror\r\ncontent-length: 0\r\n\r\n");
    });
    let route = fwd("{ prefix: / }", "{ cluster: app, request_mirror_policies: [{ cluster: mirror }] }");
    let clusters = [static_cluster("app", &[up.port()]), static_cluster("mirror", &[mirror_port])];
    let c = start_web("", &vhost(&route), "", &clusters);
    let mut client = Client::connect(c.listener("web"));
    client.send_raw(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    client.send_raw(b"6\r\n world\r\n0\r\n\r\n");
    let r = client.read_response(false);
    assert_eq!(r.status, 200, "the main cluster answers");
    assert_eq!(r.seen().body(), "hello world");
    let (head, body) = seen.recv_timeout(Duration::from_secs(10)).expect("the mirror got a copy");
    assert!(head.starts_with("post /up http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nhost: a-shadow\r\n") && head.contains("\r\nx-envoy-internal: true\r\n"), "{head}");
    assert_eq!(body, "hello world");
    shadow.join().expect("mirror");
    c.wait_stat("cluster.mirror.upstream_rq_500", |v| v == 1);
    assert_eq!(c.stat("cluster.app.upstream_rq_200"), Some(1));
}
