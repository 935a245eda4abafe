//! HTTP access logs end to end: Envoy's default line, command operators, response
//! flags and JSON lines, written by the file (and stderr) access loggers.
//!
//! Lines are written by a writer thread; tests wait for them by polling the file
//! with a deadline (`wait_for_lines`).

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use crate::harness::*;
use crate::http_util::*;

/// HCM `access_log` YAML for a file logger at `path` with `format` (YAML for
/// `log_format`, or empty for Envoy's default).
fn file_log(path: &Path, log_format: &str) -> String {
    let format = if log_format.is_empty() { String::new() } else { indent(&format!("log_format:\n{log_format}"), 4) };
    format!(
        "access_log:\n- name: envoy.access_loggers.file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n{format}",
        path.display()
    )
}

/// A `text_format_source` log format.
fn text_format(text: &str) -> String {
    format!("  text_format_source:\n    inline_string: \"{text}\\n\"\n")
}

fn routes(routes: &str) -> String {
    format!("virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n{routes}")
}

fn fwd(prefix: &str, action: &str) -> String {
    format!("  - match: {{ prefix: \"{prefix}\" }}\n    route: {action}\n")
}

#[test]
fn default_format_line() {
    let up = http_upstream("a");
    let dir = TempDir::new("alog");
    let log = dir.0.join("access.log");
    let rc = routes(&fwd("/api/", "{ cluster: app, prefix_rewrite: \"/v2/\" }"));
    let c = start_web(&file_log(&log, ""), &rc, "", &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let r = Client::connect(addr).request("GET", "/api/x?q=1", &[("User-Agent", "ua-test")], b"");
    assert_eq!(r.status, 200);
    let request_id = r.seen().header("x-request-id").expect("x-request-id").to_string();
    let nr = Client::connect(addr).request("GET", "/nowhere", &[], b"");
    assert_eq!(nr.status, 404);

    let lines = wait_for_lines(&log, 2);
    let line = Regex::new(
        r#"^\[(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\] "(\S+) (\S+) (\S+)" (\d+) (\S+) (\d+) (\d+) (\d+) (\S+) "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)"$"#,
    )
    .expect("regex");
    let caps = line.captures(&lines[0]).unwrap_or_else(|| panic!("not Envoy's default format: {}", lines[0]));
    let f = |i: usize| caps.get(i).map_or("", |m| m.as_str());
    assert!(f(1).parse::<u32>().is_ok_and(|y| y >= 2024), "{}", lines[0]);
    // The original path (x-envoy-original-path), not the rewritten one.
    assert_eq!((f(2), f(3), f(4)), ("GET", "/api/x?q=1", "HTTP/1.1"), "{}", lines[0]);
    assert_eq!((f(5), f(6), f(7)), ("200", "-", "0"));
    assert_eq!(f(8), r.body.len().to_string(), "%BYTES_SENT%");
    let duration: u64 = f(9).parse().expect("duration");
    let service_time: u64 = f(10).parse().expect("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%");
    assert!(service_time <= duration + 1, "{}", lines[0]);
    assert_eq!(f(11), "-", "no x-forwarded-for");
    assert_eq!(f(12), "ua-test");
    assert_eq!(f(13), request_id);
    assert_eq!(f(14), "example.com");
    assert_eq!(f(15), format!("127.0.0.1:{}", up.port()));

    let caps = line.captures(&lines[1]).unwrap_or_else(|| panic!("not Envoy's default format: {}", lines[1]));
    let f = |i: usize| caps.get(i).map_or("", |m| m.as_str());
    assert_eq!((f(3), f(5), f(6), f(7), f(8)), ("/nowhere", "404", "NR", "0", "0"), "{}", lines[1]);
    assert_eq!((f(10), f(12), f(15)), ("-", "-", "-"), "{}", lines[1]);
}

#[test]
fn response_flags_and_operators() {
    let up = http_upstream("a");
    let dead = closed_port();
    let dir = TempDir::new("alog");
    let log = dir.0.join("access.log");
    let format = text_format(
        "%REQ(X-TAG)% %RESPONSE_FLAGS% %RESPONSE_CODE% %UPSTREAM_HOST% %RESP(X-UPSTREAM)% %BYTES_SENT% %REQ(:PATH)%",
    );
    let rc = routes(
        &[
            fwd("/ok", "{ cluster: app }"),
            fwd("/dead", "{ cluster: dead }"),
            fwd("/slow", "{ cluster: app, timeout: 0.2s }"),
            fwd("/empty", "{ cluster: empty }"),
            fwd("/retry", "{ cluster: app, retry_policy: { retry_on: 5xx, num_retries: 1, retry_back_off: { base_interval: 0.01s } } }"),
        ]
        .concat(),
    );
    let empty =
        "  - name: empty\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment: { cluster_name: empty }\n";
    let clusters = [static_cluster("app", &[up.port()]), static_cluster("dead", &[dead]), empty.to_string()];
    let c = start_web(&file_log(&log, &format), &rc, "", &clusters);
    let addr = c.listener("web");
    let send = |tag: &str, path: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("x-tag", tag)];
        all.extend_from_slice(headers);
        Client::connect(addr).request("GET", path, &all, b"")
    };
    let ok = send("ok", "/ok", &[]);
    assert_eq!(ok.status, 200);
    assert_eq!(send("nr", "/nowhere", &[]).status, 404);
    let uf = send("uf", "/dead", &[]);
    assert_eq!(uf.status, 503);
    assert_eq!(send("ut", "/slow", &[("x-test-delay-ms", "1000")]).status, 504);
    let uh = send("uh", "/empty", &[]);
    assert_eq!((uh.status, uh.text().as_str()), (503, "no healthy upstream"));
    let urx = send("urx", "/retry", &[("x-test-status", "503")]);
    assert_eq!(urx.status, 503);

    let lines = wait_for_lines(&log, 6);
    let by_tag: HashMap<&str, &str> = lines.iter().map(|l| (l.split(' ').next().unwrap_or(""), l.as_str())).collect();
    let app = format!("127.0.0.1:{}", up.port());
    let expect = [
        ("ok", format!("ok - 200 {app} a {} /ok", ok.body.len())),
        ("nr", "nr NR 404 - - 0 /nowhere".to_string()),
        ("uf", format!("uf UF 503 127.0.0.1:{dead} - {} /dead", uf.body.len())),
        ("ut", format!("ut UT 504 {app} - 24 /slow")),
        ("uh", "uh UH 503 - - 19 /empty".to_string()),
        ("urx", format!("urx URX 503 {app} a {} /retry", urx.body.len())),
    ];
    for (tag, want) in expect {
        assert_eq!(by_tag.get(tag).copied(), Some(want.as_str()), "{lines:#?}");
    }
}

#[test]
fn bytes_received_counts_the_request_body() {
    let up = http_upstream("a");
    let dir = TempDir::new("alog");
    let log = dir.0.join("access.log");
    let c = start_web(
        &file_log(&log, &text_format("%BYTES_RECEIVED% %BYTES_SENT%")),
        &routes(&fwd("/", "{ cluster: app }")),
        "",
        &[static_cluster("app", &[up.port()])],
    );
    let r = Client::connect(c.listener("web")).request("POST", "/", &[], b"eleven byte");
    assert_eq!(r.status, 200);
    assert_eq!(wait_for_lines(&log, 1)[0], format!("11 {}", r.body.len()));
}

#[test]
fn json_format_lines_are_json_objects() {
    let up = http_upstream("a");
    let dir = TempDir::new("alog");
    let log = dir.0.join("access.log");
    let format = r#"  json_format:
    status: "%RESPONSE_CODE%"
    method: "%REQ(:METHOD)%"
    path: "%REQ(:PATH)%"
    flags: "%RESPONSE_FLAGS%"
    upstream: "%UPSTREAM_HOST%"
    bytes_sent: "%BYTES_SENT%"
    agent: "%REQ(USER-AGENT)%"
    quoted: "%REQ(X-QUOTE)%"
    nested: { protocol: "%PROTOCOL%", text: "code %RESPONSE_CODE%" }
    route: "%ROUTE_NAME%"
    cluster: "%UPSTREAM_CLUSTER%"
    details: "%RESPONSE_CODE_DETAILS%"
    attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"
    duration: "%DURATION%"
"#;
    let c = start_web(
        &file_log(&log, format),
        &routes("  - name: ok-route\n    match: { prefix: \"/ok\" }\n    route: { cluster: app }\n"),
        "",
        &[static_cluster("app", &[up.port()])],
    );
    let addr = c.listener("web");
    let ok = Client::connect(addr).request(
        "GET",
        "/ok?a=1",
        &[("User-Agent", "ua \"quoted\""), ("X-Quote", "back\\slash")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(Client::connect(addr).request("GET", "/nowhere", &[], b"").status, 404);

    let lines = wait_for_lines(&log, 2);
    let v: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert_eq!(v[0]["status"], 200, "%RESPONSE_CODE% is a number");
    assert_eq!(v[0]["method"], "GET");
    assert_eq!(v[0]["path"], "/ok?a=1");
    assert_eq!(v[0]["flags"], "-");
    assert_eq!(v[0]["upstream"], format!("127.0.0.1:{}", up.port()));
    assert_eq!(v[0]["bytes_sent"], ok.body.len() as u64);
    assert_eq!(v[0]["agent"], "ua \"quoted\"");
    assert_eq!(v[0]["quoted"], "back\\slash");
    assert_eq!(v[0]["nested"]["protocol"], "HTTP/1.1");
    assert_eq!(v[0]["nested"]["text"], "code 200");
    assert_eq!(v[0]["route"], "ok-route");
    assert_eq!(v[0]["cluster"], "app");
    assert_eq!(v[0]["details"], "via_upstream");
    assert_eq!(v[0]["attempts"], 1);
    assert!(v[0]["duration"].is_u64(), "{}", lines[0]);
    assert_eq!(v[1]["details"], "route_not_found");
    assert_eq!(v[1]["status"], 404);
    assert_eq!(v[1]["flags"], "NR");
    assert_eq!(v[1]["path"], "/nowhere");
}

#[test]
fn stderr_access_log() {
    let up = http_upstream("a");
    let log = "access_log:\n- name: envoy.access_loggers.stderr\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog\n    log_format:\n      text_format_source: { inline_string: \"ALOG %REQ(X-TAG)% %RESPONSE_CODE% %UPSTREAM_HOST%\\n\" }\n";
    let c = start_web(log, &routes(&fwd("/", "{ cluster: app }")), "", &[static_cluster("app", &[up.port()])]);
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x-tag", "via-stderr")], b"");
    assert_eq!(r.status, 200);
    let want = format!("ALOG via-stderr 200 127.0.0.1:{}\n", up.port());
    c.wait_until(|c| c.log().contains(&want), "the access log line on stderr");
}

#[test]
fn file_access_log_path_and_its_legacy_formats() {
    // One logger per format field of FileAccessLog, each to its own `path`: the
    // deprecated `format` (text), `json_format` and `typed_json_format` (values
    // keep their types in both, as Envoy 1.40 prints them: compat
    // `listener_access_log_formats`), and `log_format` with the
    // deprecated inline `text_format`.
    let up = http_upstream("a");
    let dir = TempDir::new("alog");
    let [text, legacy, json, typed] = ["text.log", "format.log", "json.log", "typed.log"].map(|n| dir.0.join(n));
    let logger = |path: &Path, format: &str| {
        format!(
            "- name: envoy.access_loggers.file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    {format}\n",
            path.display()
        )
    };
    let logs = [
        logger(&text, r#"log_format: { text_format: "text %RESPONSE_CODE% %REQ(X-TAG)%\n" }"#),
        logger(&legacy, r#"format: "format %RESPONSE_CODE% %REQ(X-TAG)%\n""#),
        logger(&json, r#"json_format: { code: "%RESPONSE_CODE%", tag: "%REQ(X-TAG)%" }"#),
        logger(&typed, r#"typed_json_format: { code: "%RESPONSE_CODE%", tag: "%REQ(X-TAG)%" }"#),
    ];
    let c = start_web(
        &format!("access_log:\n{}", logs.concat()),
        &routes(&fwd("/", "{ cluster: app }")),
        "",
        &[static_cluster("app", &[up.port()])],
    );
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x-tag", "t1")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(wait_for_lines(&text, 1), ["text 200 t1"]);
    assert_eq!(wait_for_lines(&legacy, 1), ["format 200 t1"]);
    let as_json = |path: &Path| -> serde_json::Value {
        let line = wait_for_lines(path, 1).remove(0);
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    assert_eq!(as_json(&json), serde_json::json!({"code": 200, "tag": "t1"}));
    assert_eq!(as_json(&typed), serde_json::json!({"code": 200, "tag": "t1"}));
}

#[test]
fn stdout_access_log() {
    let up = http_upstream("a");
    let dir = TempDir::new("stdout");
    let out = dir.0.join("stdout.log");
    let log = "access_log:\n- name: envoy.access_loggers.stdout\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n    log_format:\n      text_format_source: { inline_string: \"SLOG %REQ(X-TAG)% %RESPONSE_CODE%\\n\" }\n";
    let listener = http_listener("web", &indent(log, 10), &indent(&routes(&fwd("/", "{ cluster: app }")), 12), "");
    let c = Courier::start_full(&config(&[listener], &[static_cluster("app", &[up.port()])]), 1, &[], &[], Some(&out));
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x-tag", "via-stdout")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(wait_for_lines(&out, 1), ["SLOG via-stdout 200"]);
}

/// `backend` behind a relay that records the address each connection comes
/// from: the proxy's end of its upstream connection.
fn recording_front(backend: Upstream) -> (Upstream, std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>) {
    use std::io::Write;
    let peers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = peers.clone();
    let backend = std::sync::Arc::new(backend);
    let front = Upstream::start(move |client| {
        if let Ok(peer) = client.peer_addr() {
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(peer);
        }
        let Ok(server) = std::net::TcpStream::connect(backend.addr) else { return };
        let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else { return };
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_in, &mut server_out);
            let _ = server_out.shutdown(std::net::Shutdown::Write);
        });
        let (mut server_in, mut client_out) = (server, client);
        let _ = std::io::copy(&mut server_in, &mut client_out);
        let _ = client_out.flush();
        let _ = client_out.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    });
    (front, peers)
}

/// `%UPSTREAM_LOCAL_ADDRESS%` (`_WITHOUT_PORT`, `%UPSTREAM_LOCAL_PORT%`) is
/// the local address of the upstream connection the request went on, as the
/// upstream sees its peer: over HTTP/1 (two requests on one pooled
/// connection show the same), HTTP/2, and tcp_proxy.
#[test]
fn upstream_local_address_is_the_connections() {
    let (h1, h1_peers) = recording_front(http_upstream("h1"));
    let (h2, h2_peers) = recording_front(crate::shared_net::h2c_upstream("h2"));
    let (echo, tcp_peers) = recording_front(Upstream::echo());
    let dir = TempDir::new("alog");
    let log = dir.0.join("access.log");
    let format = text_format(
        "%REQ(X-TAG)% %UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %UPSTREAM_LOCAL_PORT%",
    );
    let access_log = file_log(&log, &format);
    let rc = routes(&[fwd("/h1", "{ cluster: h1 }"), fwd("/h2", "{ cluster: h2 }")].concat());
    let h2_cluster = format!(
        "{}    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {{ http2_protocol_options: {{}} }}\n",
        static_cluster("h2", &[h2.port()])
    );
    let listeners = [
        http_listener("web", &indent(&access_log, 10), &indent(&rc, 12), ""),
        tcp_listener("tcp", "tcp", "echo", &indent(&access_log, 10)),
    ];
    let clusters = [static_cluster("h1", &[h1.port()]), h2_cluster, static_cluster("echo", &[echo.port()])];
    let c = Courier::start(&config(&listeners, &clusters), 1);
    let web = c.listener("web");
    let fields = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
    let expect = |line: &str, tag: &str, local: std::net::SocketAddr| {
        let port = local.port().to_string();
        assert_eq!(fields(line), [tag, &local.to_string(), "127.0.0.1", &port], "{line}");
    };

    for tag in ["h1-first", "h1-again"] {
        assert_eq!(Client::connect(web).request("GET", "/h1", &[("x-tag", tag)], b"").status, 200);
    }
    let lines = wait_for_lines(&log, 2);
    let h1_local = h1_peers.lock().unwrap()[..].to_vec();
    assert_eq!(h1_local.len(), 1, "both requests went on one pooled connection");
    expect(&lines[0], "h1-first", h1_local[0]);
    expect(&lines[1], "h1-again", h1_local[0]);

    assert_eq!(Client::connect(web).request("GET", "/h2", &[("x-tag", "h2")], b"").status, 200);
    let lines = wait_for_lines(&log, 3);
    expect(&lines[2], "h2", h2_peers.lock().unwrap()[0]);

    let mut s = connect(c.listener("tcp"));
    std::io::Write::write_all(&mut s, b"ping").expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut echoed = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut echoed).expect("echo");
    assert_eq!(echoed, b"ping");
    let lines = wait_for_lines(&log, 4);
    expect(&lines[3], "-", tcp_peers.lock().unwrap()[0]);
}
