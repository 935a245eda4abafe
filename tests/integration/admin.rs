//! Admin endpoint paths, methods and output formats (Envoy's, see
//! docs/compat notes in the tests' expectations).

use std::io::{Read, Write};
use std::time::Instant;

use crate::harness::*;
use crate::http_util::{http_listener, one_vhost};

fn proxy_with_traffic() -> (Upstream, Courier) {
    let up = Upstream::echo();
    let c = Courier::start(
        &format!(
            "node: {{ id: file-node, cluster: file-cluster }}\n{}",
            config(&[tcp_listener("tcp_in", "tcp_stats", "echo", "")], &[static_cluster("echo", &[up.port()])])
        ),
        2,
    );
    for _ in 0..3 {
        let mut s = connect(c.listener("tcp_in"));
        s.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
    }
    c.wait_stat("listener.127.0.0.1_0.downstream_cx_destroy", |v| v == 3);
    (up, c)
}

#[test]
fn ready_and_healthcheck_fail_ok() {
    let (_up, c) = proxy_with_traffic();
    assert_eq!(c.admin_get("/ready"), (200, "LIVE\n".to_string()));
    assert_eq!(c.stat("server.live"), Some(1));
    // Mutating endpoints need POST.
    let (status, body) = c.admin_get("/healthcheck/fail");
    assert_eq!(status, 405);
    assert_eq!(body, "Method GET not allowed, POST required.");
    assert_eq!(c.admin_post("/healthcheck/fail"), (200, "OK\n".to_string()));
    assert_eq!(c.admin_get("/ready"), (503, "DRAINING\n".to_string()));
    assert_eq!(c.stat("server.live"), Some(0));
    assert!(c.admin_get("/server_info").1.contains("\"state\": \"DRAINING\""));
    assert_eq!(c.admin_post("/healthcheck/ok"), (200, "OK\n".to_string()));
    assert_eq!(c.admin_get("/ready"), (200, "LIVE\n".to_string()));
}

#[test]
fn stats_text_is_sorted_name_value_lines() {
    let spawned_after = Instant::now();
    let (_up, c) = proxy_with_traffic();
    let (status, head, body) = http_request_full(c.admin, "GET", "/stats");
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; charset=utf-8"), "{head}");
    // Counters and gauges first, in name order; then histograms (Envoy's layout),
    // whose values are quantile lists.
    let is_histogram = |l: &&str| l.contains("P0(") || l.ends_with("No recorded values");
    let split = body.lines().position(|l| is_histogram(&l)).unwrap_or(body.lines().count());
    let names: Vec<&str> = body.lines().take(split).map(|l| l.split_once(": ").expect("name: value").0).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "stats are not in name order");
    let histograms: Vec<&str> = body.lines().skip(split).collect();
    assert!(histograms.iter().all(is_histogram), "a counter or gauge after the histograms");
    // A cluster that only carried TCP timed no request: like Envoy, which creates
    // `upstream_rq_time` with the first response, Courier lists none.
    assert!(!body.contains("cluster.echo.upstream_rq_time: "), "{histograms:?}");
    for expected in [
        "cluster.echo.upstream_cx_total: 3",
        "cluster.echo.upstream_rq_total: 3",
        "cluster.echo.membership_healthy: 1",
        "cluster.echo.membership_total: 1",
        "listener.127.0.0.1_0.downstream_cx_total: 3",
        "listener.127.0.0.1_0.downstream_cx_active: 0",
        "listener_manager.listener_added: 1",
        "listener_manager.listener_create_success: 2",
        "listener_manager.total_listeners_active: 1",
        "server.concurrency: 2",
        "server.live: 1",
        "server.state: 0",
        "tcp.tcp_stats.downstream_cx_total: 3",
        "tcp.tcp_stats.downstream_cx_rx_bytes_total: 15",
        "main_thread.watchdog_miss: 0",
        "workers.watchdog_mega_miss: 0",
        "server.worker_1.watchdog_miss: 0",
    ] {
        assert!(body.lines().any(|l| l == expected), "missing `{expected}` in /stats");
    }
    // `server.uptime` is the process's age in whole seconds, refreshed for each admin
    // request: it grows past 0, and never beyond the time since before the spawn.
    c.wait_stat("server.uptime", |v| v >= 1);
    let uptime = c.stat("server.uptime").unwrap();
    let bound = spawned_after.elapsed().as_secs() as i64;
    assert!((1..=bound).contains(&uptime), "uptime {uptime}s for a process at most {bound}s old");
    assert!(c.stat("server.memory_allocated").unwrap() > 0);
    assert!(c.stat("server.memory_physical_size").unwrap() > 0);
}

#[test]
fn stats_filter_and_json() {
    let (_up, c) = proxy_with_traffic();
    let (_, filtered) = c.admin_get("/stats?filter=^tcp\\.");
    assert!(!filtered.is_empty());
    assert!(filtered.lines().all(|l| l.starts_with("tcp.")), "{filtered}");
    let (status, json) = c.admin_get("/stats?format=json");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let stats = v["stats"].as_array().expect("stats array");
    assert!(stats.iter().any(|s| s["name"] == "cluster.echo.upstream_cx_total" && s["value"] == 3));
    let (status, _) = c.admin_get("/stats?filter=[");
    assert_eq!(status, 400);
}

#[test]
fn prometheus_exposition_uses_envoy_names_and_tags() {
    let (_up, c) = proxy_with_traffic();
    let (status, body) = c.admin_get("/stats/prometheus");
    assert_eq!(status, 200);
    for expected in [
        "# TYPE envoy_cluster_upstream_cx_total counter",
        "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"echo\"} 3",
        "envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.1_0\"} 3",
        "# TYPE envoy_listener_worker_downstream_cx_total counter",
        "envoy_tcp_downstream_cx_total{envoy_tcp_prefix=\"tcp_stats\"} 3",
        "# TYPE envoy_server_live gauge",
        "envoy_server_live{} 1",
        "envoy_server_worker_watchdog_miss{envoy_worker_id=\"0\"} 0",
        "envoy_listener_worker_downstream_cx_active{envoy_worker_id=\"1\",envoy_listener_address=\"127.0.0.1_0\"} 0",
    ] {
        assert!(body.lines().any(|l| l == expected), "missing `{expected}`");
    }
    // Every sample line belongs to the family declared just before it, and every
    // family is declared once.
    let mut current = String::new();
    let mut families = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let (name, kind) = decl.split_once(' ').expect("TYPE name kind");
            assert!(kind == "counter" || kind == "gauge" || kind == "histogram");
            assert!(families.insert(name.to_string()), "family {name} declared twice");
            current = name.to_string();
        } else {
            let (metric, value) = line.rsplit_once(' ').expect("metric value");
            // A histogram family's samples are `<family>_bucket/_sum/_count{...}`.
            let in_family =
                ["{", "_bucket{", "_sum{", "_count{"].iter().any(|s| metric.starts_with(&format!("{current}{s}")));
            assert!(in_family, "{line} outside its family {current}");
            assert!(metric.ends_with('}'));
            value.parse::<f64>().expect("numeric value");
            assert!(metric.chars().take_while(|c| *c != '{').all(|c| c.is_ascii_alphanumeric() || c == '_'));
        }
    }
}

/// Response codes and classes are tags, as Envoy's default extractors make them: the
/// per-class counters of every prefix fold into one `_rq_xx` family.
#[test]
fn prometheus_response_codes_are_tags() {
    let routes = "              - match: { path: \"/ok\" }\n                direct_response: { status: 200 }\n              - match: { path: \"/down\" }\n                direct_response: { status: 503 }\n";
    let c = Courier::start(&config(&[http_listener("web", "", &one_vhost(routes), "")], &[]), 1);
    for path in ["/ok", "/ok", "/down"] {
        http_request(c.listener("web"), "GET", path);
    }
    c.wait_stat("http.ingress.downstream_rq_completed", |v| v == 3);
    let (_, body) = c.admin_get("/stats/prometheus");
    for expected in [
        "envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\",envoy_http_conn_manager_prefix=\"ingress\"} 2",
        "envoy_http_downstream_rq_xx{envoy_response_code_class=\"5\",envoy_http_conn_manager_prefix=\"ingress\"} 1",
        "envoy_listener_http_downstream_rq_xx{envoy_response_code_class=\"2\",envoy_http_conn_manager_prefix=\"ingress\",envoy_listener_address=\"127.0.0.1_0\"} 2",
    ] {
        assert!(body.lines().any(|l| l == expected), "missing `{expected}` in:\n{body}");
    }
    let types: Vec<&str> = body.lines().filter(|l| l.starts_with("# TYPE envoy_http_downstream_rq_xx ")).collect();
    assert_eq!(types, ["# TYPE envoy_http_downstream_rq_xx counter"]);
    assert!(!body.contains("_rq_2xx"), "an untagged class counter:\n{body}");
}

#[test]
fn clusters_text_and_json() {
    let (up, c) = proxy_with_traffic();
    let (_, body) = c.admin_get("/clusters");
    let host = format!("echo::127.0.0.1:{}", up.port());
    for expected in [
        "echo::observability_name::echo".to_string(),
        "echo::default_priority::max_connections::1024".to_string(),
        "echo::high_priority::max_retries::3".to_string(),
        "echo::added_via_api::false".to_string(),
        format!("{host}::cx_active::0"),
        format!("{host}::cx_total::3"),
        format!("{host}::rq_total::3"),
        format!("{host}::health_flags::healthy"),
        format!("{host}::weight::1"),
        format!("{host}::success_rate::-1"),
    ] {
        assert!(body.lines().any(|l| l == expected), "missing `{expected}` in:\n{body}");
    }
    let (_, json) = c.admin_get("/clusters?format=json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cluster = &v["cluster_statuses"][0];
    assert_eq!(cluster["name"], "echo");
    assert_eq!(cluster["host_statuses"][0]["address"]["socket_address"]["port_value"], up.port());
    let cx_total =
        cluster["host_statuses"][0]["stats"].as_array().unwrap().iter().find(|s| s["name"] == "cx_total").unwrap();
    assert_eq!(cx_total["value"], "3");
}

#[test]
fn listeners_server_info_config_dump() {
    let spawned_after = Instant::now();
    let (_up, c) = proxy_with_traffic();
    let addr = c.listener("tcp_in");
    let (_, text) = c.admin_get("/listeners");
    assert_eq!(text, format!("tcp_in::{addr}\n"));
    let (_, json) = c.admin_get("/listeners?format=json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["listener_statuses"][0]["name"], "tcp_in");
    assert_eq!(v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"], addr.port());

    let (status, info) = c.admin_get("/server_info");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    for key in [
        "version",
        "state",
        "uptime_current_epoch",
        "uptime_all_epochs",
        "hot_restart_version",
        "command_line_options",
        "node",
    ] {
        assert!(v.get(key).is_some(), "server_info lacks {key}");
    }
    assert_eq!(v["state"], "LIVE");
    assert_eq!(v["command_line_options"]["concurrency"], 2);
    assert_eq!(v["node"]["id"], "file-node");
    // Whole seconds of the process's age, as "<n>s".
    let uptime: u64 = v["uptime_current_epoch"].as_str().unwrap().strip_suffix('s').unwrap().parse().unwrap();
    assert!(uptime <= spawned_after.elapsed().as_secs(), "uptime {uptime}s: older than the process");

    let (status, dump) = c.admin_get("/config_dump");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let configs = v["configs"].as_array().unwrap();
    assert_eq!(configs[0]["@type"], "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump");
    let listener = &configs[0]["bootstrap"]["static_resources"]["listeners"][0];
    assert_eq!(listener["name"], "tcp_in");
    // Any payloads are expanded with their @type, with proto field names.
    let typed = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(typed["@type"], "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy");
    assert_eq!(typed["stat_prefix"], "tcp_stats");
    assert_eq!(configs[1]["static_clusters"][0]["cluster"]["name"], "echo");
    assert_eq!(configs[2]["static_listeners"][0]["listener"]["name"], "tcp_in");
}

/// `/config_dump`'s query errors Envoy 1.40 answers with (compat
/// `admin_config_dump_query` compares the rest): a mask an element cannot take
/// quotes the mask in protobuf's debug form, whose marker protobuf varies from
/// run to run; a name_regex that does not parse.
#[test]
fn config_dump_query_errors() {
    let (_up, c) = proxy_with_traffic();
    let (status, body) = c.admin_get("/config_dump?resource=static_clusters&mask=cluster,cluster.bogus");
    assert_eq!(status, 400);
    assert!(body.starts_with("FieldMask goo.gle/debug"), "{body}");
    assert!(
        body.ends_with("\npaths: \"cluster\"\npaths: \"cluster.bogus\"\n could not be successfully used."),
        "{body}"
    );
    let (status, body) = c.admin_get("/config_dump?resource=static_clusters&name_regex=(");
    assert_eq!(status, 400);
    assert!(body.starts_with("INVALID_ARGUMENT: Error while parsing name_regex from (: "), "{body}");
    // An element's own field and its resource's, together.
    let (status, body) = c.admin_get("/config_dump?resource=static_listeners&mask=listener.name,last_updated");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["configs"][0]["listener"]["name"], "tcp_in");
    assert!(v["configs"][0]["last_updated"].is_string(), "{body}");
    assert!(v["configs"][0]["listener"].get("address").is_none(), "{body}");
}

#[test]
fn unknown_path_is_404_with_help() {
    let (_up, c) = proxy_with_traffic();
    let (status, body) = c.admin_get("/nope");
    assert_eq!(status, 404);
    assert!(body.starts_with("invalid path. admin commands are:"));
    assert!(body.contains("/quitquitquit (POST): exit the server"));
}

#[test]
fn drain_listeners_stops_accepting_but_keeps_open_connections() {
    let (_up, c) = proxy_with_traffic();
    let addr = c.listener("tcp_in");
    let mut open = connect(addr);
    open.write_all(b"a").unwrap();
    let mut b = [0u8; 1];
    open.read_exact(&mut b).unwrap();
    assert_eq!(c.admin_post("/drain_listeners"), (200, "OK\n".to_string()));
    c.wait_stat("listener_manager.listener_stopped", |v| v == 1);
    // The workers close their sockets after the post; new connections get refused.
    c.wait_until(|_| std::net::TcpStream::connect(addr).is_err(), "listener closed");
    open.write_all(b"b").unwrap();
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"b");
    assert_eq!(c.admin_get("/ready").0, 200, "drain_listeners keeps the server LIVE, as Envoy");
}

#[test]
fn config_yaml_overrides_scalars_of_the_file() {
    let up = Upstream::echo();
    let c = Courier::start_with(
        &format!(
            "node: {{ id: file-node }}\n{}",
            config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])])
        ),
        1,
        &["--config-yaml", "node: { id: yaml-node }"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(&c.admin_get("/server_info").1).unwrap();
    assert_eq!(v["node"]["id"], "yaml-node");
}

#[test]
fn stats_flush_interval_sets_when_histograms_are_published() {
    // Histograms show in /stats as of the last flush. Two servers with one sample
    // each: flushing every 50 ms publishes it, every 299 s (the longest Envoy
    // allows) does not yet.
    let up = crate::http_util::http_upstream("a");
    let yaml = |interval: &str| {
        let routes = crate::http_util::one_vhost(&crate::http_util::prefix_route("/", "app", ""));
        let listener = crate::http_util::http_listener("web", "", &routes, "");
        format!("stats_flush_interval: {interval}\n{}", config(&[listener], &[static_cluster("app", &[up.port()])]))
    };
    let histogram = |c: &Courier| c.admin_get("/stats?filter=^http\\.ingress\\.downstream_rq_time$").1;
    let slow = Courier::start(&yaml("299s"), 1);
    let fast = Courier::start(&yaml("0.05s"), 1);
    for c in [&slow, &fast] {
        assert_eq!(crate::http_util::Client::connect(c.listener("web")).get("/").status, 200);
    }
    fast.wait_until(|c| histogram(c).contains("P0("), "the histogram flushed");
    assert_eq!(histogram(&slow).trim(), "http.ingress.downstream_rq_time: No recorded values");
}

/// `admin.access_log_path` (Envoy's default format) and `admin.access_log` log
/// every admin request as Envoy 1.40 does: the admin's connection manager uses the
/// remote address, so a loopback client shows as this host's address in
/// `x-forwarded-for`; the request line keeps the query.
#[test]
fn admin_access_log_path_and_access_log() {
    let dir = TempDir::new("adminlog");
    let (legacy, custom) = (dir.0.join("admin.log"), dir.0.join("admin2.log"));
    let yaml = format!(
        "admin:\n  access_log_path: {}\n  access_log:\n  - name: envoy.access_loggers.file\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n      path: {}\n      log_format: {{ text_format_source: {{ inline_string: \"%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %BYTES_SENT% %PROTOCOL%\\n\" }} }}\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 0 }}\n",
        legacy.display(),
        custom.display()
    );
    let c = Courier::start(&yaml, 1);
    assert_eq!(c.admin_get("/ready?mark=1"), (200, "LIVE\n".to_string()));
    assert_eq!(post_with_body(c.admin, "/healthcheck/ok", "abc"), 200);
    let (missing, body) = c.admin_get("/no_such_page");
    assert_eq!(missing, 404);
    let ours = |lines: &[String]| -> Vec<String> {
        let start = lines.iter().position(|l| l.contains("/ready?mark=1")).unwrap_or(lines.len());
        lines[start..].to_vec()
    };
    let custom_lines = ours(&wait_for_admin_lines(&custom, "/no_such_page"));
    assert_eq!(
        custom_lines,
        [
            "GET /ready?mark=1 200 5 HTTP/1.1".to_string(),
            "POST /healthcheck/ok 200 3 HTTP/1.1".to_string(),
            format!("GET /no_such_page 404 {} HTTP/1.1", body.len()),
        ]
    );
    let legacy_lines = ours(&wait_for_admin_lines(&legacy, "/no_such_page"));
    let line = regex::Regex::new(
        r#"^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\] "GET /ready\?mark=1 HTTP/1.1" 200 - 0 5 \d+ - "([^"]+)" "-" "-" "[^"]+" "-"$"#,
    )
    .expect("regex");
    let caps = line.captures(&legacy_lines[0]).unwrap_or_else(|| panic!("not Envoy's line: {}", legacy_lines[0]));
    let xff: std::net::IpAddr = caps[1].parse().expect("x-forwarded-for is an address");
    assert!(!xff.is_loopback() || legacy_lines[0].contains("\"127.0.0.1\""), "{}", legacy_lines[0]);
    assert!(legacy_lines[1].contains("\"POST /healthcheck/ok HTTP/1.1\" 200 - 3 3 "), "{}", legacy_lines[1]);
    assert!(legacy_lines[2].contains("\"GET /no_such_page HTTP/1.1\" 404 - 0 "), "{}", legacy_lines[2]);
}

/// The lines of `path` once one mentions `last` (bounded wait).
fn wait_for_admin_lines(path: &std::path::Path, last: &str) -> Vec<String> {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l.contains(last)) && text.ends_with('\n') {
            return text.lines().map(str::to_string).collect();
        }
        assert!(Instant::now() < deadline, "{} never logged {last}:\n{text}", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `/logging` changes what is logged while running: an upstream connect failure is
/// logged at debug by the `upstream` logger, so it shows at `-l debug`, not once
/// `upstream` is set to info, and again once `paths=` sets it back.
#[test]
fn logging_levels_change_live() {
    let c = Courier::start(
        &config(&[tcp_listener("tcp_in", "t", "dead", "")], &[static_cluster("dead", &[closed_port()])]),
        1,
    );
    let failures = |c: &Courier| c.log().matches("upstream connect failed").count();
    let connect_and_wait = |c: &Courier, total: u64| {
        let mut s = connect(c.listener("tcp_in"));
        let _ = s.read(&mut [0u8; 1]);
        c.wait_stat("cluster.dead.upstream_cx_connect_fail", |v| v as u64 == total);
    };
    connect_and_wait(&c, 1);
    c.wait_until(|c| failures(c) == 1, "the debug line");
    let (status, body) = c.admin_post("/logging?upstream=info");
    assert_eq!(status, 200);
    assert!(body.contains("\n  upstream: info\n") && body.contains("\n  admin: debug\n"), "{body}");
    connect_and_wait(&c, 2);
    assert_eq!(failures(&c), 1, "logged at debug with upstream at info");
    assert_eq!(c.admin_post("/logging?paths=upstream:debug").0, 200);
    connect_and_wait(&c, 3);
    c.wait_until(|c| failures(c) == 2, "the debug line again");
    let (status, body) = c.admin_post("/logging?upstream=loud");
    assert_eq!(status, 400);
    assert!(body.starts_with("error: unknown logger level\n\nusage: /logging?<name>=<level>"), "{body}");
}

/// POSTs `body` on a new connection; the status.
fn post_with_body(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    let mut s = connect(addr);
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    String::from_utf8_lossy(&raw).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// `/memory` has Envoy's keys in Envoy's order, each a decimal string, with the
/// allocator's figures where glibc has them; `/reset_counters` needs POST.
#[test]
fn memory_keys_and_reset_counters_method() {
    let (_up, c) = proxy_with_traffic();
    let (status, head, body) = http_request_full(c.admin, "GET", "/memory");
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let keys: Vec<&str> = body.lines().filter_map(|l| l.trim().strip_prefix('"')?.split('"').next()).collect();
    assert_eq!(
        keys,
        ["allocated", "heap_size", "pageheap_unmapped", "pageheap_free", "total_thread_cache", "total_physical_bytes"]
    );
    let value = |key: &str| -> u64 {
        let line = body.lines().find(|l| l.contains(&format!("\"{key}\""))).expect("key");
        line.rsplit(": \"").next().and_then(|v| v.trim_end_matches([',', '"']).parse().ok()).expect("number")
    };
    assert!(value("allocated") > 0 && value("allocated") <= value("heap_size"), "{body}");
    assert!(value("total_physical_bytes") > 0, "{body}");
    assert_eq!(c.admin_get("/reset_counters").0, 405);
    assert!(c.stat("cluster.echo.upstream_cx_total").unwrap_or(0) > 0);
    assert_eq!(c.admin_post("/reset_counters"), (200, "OK\n".to_string()));
    assert_eq!(c.stat("cluster.echo.upstream_cx_total"), Some(0));
    assert_eq!(c.stat("cluster.echo.membership_total"), Some(1), "gauges keep their values");
}
