//! Active health checking (`Cluster.health_checks`) against upstreams the tests
//! control: an HTTP server whose `/healthz` the test flips between 200 and 503,
//! a gRPC `grpc.health.v1.Health` server it flips between SERVING and
//! NOT_SERVING, and hostile servers (garbage, silence). Requests follow the
//! hosts' health; `/clusters` and `cluster.<name>.health_check.*` show it. Short
//! intervals keep the tests fast; every wait is bounded (`wait_for`). The same
//! checks at start-up are compared with Envoy in tests/compat/cases/active_health_check.yaml.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::harness::{config, wait_for, Courier, Upstream, IO_TIMEOUT};
use crate::http_util::{http_listener, one_vhost, prefix_route, read_request, Client};
use crate::shared_net::serve_h2c;

/// An HTTP upstream named `name`: `/healthz` answers with the status the test
/// sets (and records the check's headers), anything else 200 with body `name`.
struct HealthyServer {
    upstream: Upstream,
    status: Arc<AtomicU16>,
    checks: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    /// When set, answers other than `/healthz` carry
    /// `x-envoy-immediate-health-check-fail` (a passive failure).
    passive: Arc<AtomicBool>,
}

impl HealthyServer {
    fn start(name: &'static str) -> HealthyServer {
        let status = Arc::new(AtomicU16::new(200));
        let checks = Arc::new(Mutex::new(Vec::new()));
        let passive = Arc::new(AtomicBool::new(false));
        let (s, seen, fail) = (status.clone(), checks.clone(), passive.clone());
        let upstream = Upstream::start(move |stream: TcpStream| {
            let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
            let Ok(mut writer) = stream.try_clone() else { return };
            let mut reader = BufReader::new(stream);
            while let Some(req) = read_request(&mut reader) {
                let (code, body) = if req.path == "/healthz" {
                    seen.lock().expect("checks").push(req.headers.clone());
                    (s.load(Ordering::SeqCst), "")
                } else {
                    (200, name)
                };
                let extra = if body.is_empty() || !fail.load(Ordering::SeqCst) {
                    ""
                } else {
                    "x-envoy-immediate-health-check-fail: true\r\n"
                };
                let out = format!("HTTP/1.1 {code} X\r\n{extra}content-length: {}\r\n\r\n{body}", body.len());
                if writer.write_all(out.as_bytes()).is_err() {
                    return;
                }
            }
        });
        HealthyServer { upstream, status, checks, passive }
    }

    fn port(&self) -> u16 {
        self.upstream.port()
    }
}

fn flags(c: &Courier, cluster: &str, port: u16) -> String {
    let (_, body) = c.admin_get("/clusters");
    let key = format!("{cluster}::127.0.0.1:{port}::health_flags::");
    body.lines().find_map(|l| l.strip_prefix(&key)).unwrap_or("<absent>").to_string()
}

fn wait_flags(c: &Courier, cluster: &str, port: u16, want: &str) {
    wait_for(&format!("{cluster} host {port} health_flags {want}"), || flags(c, cluster, port) == want);
}

/// Which upstreams served `n` requests to `/`.
fn served(c: &Courier, n: usize) -> Vec<String> {
    let web = c.listener("web");
    (0..n).map(|_| Client::connect(web).get("/").text()).collect()
}

fn start(cluster: &str) -> Courier {
    let listener = http_listener("web", "", &one_vhost(&prefix_route("/", "c", "")), "");
    Courier::start(&config(&[listener], &[cluster.to_string()]), 1)
}

#[test]
fn http_checks_move_traffic_away_from_a_failing_host_and_back() {
    let (a, b) = (HealthyServer::start("a"), HealthyServer::start("b"));
    // 503 is retriable: two in a row fail a host; two passes bring it back.
    let cluster = format!(
        r#"  - name: c
    type: STATIC
    connect_timeout: 1s
    health_checks:
    - timeout: 1s
      interval: 0.05s
      no_traffic_interval: 0.05s
      unhealthy_interval: 0.05s
      unhealthy_edge_interval: 0.05s
      healthy_edge_interval: 0.05s
      unhealthy_threshold: 2
      healthy_threshold: 2
      http_health_check:
        path: /healthz
        expected_statuses: [{{ start: 200, end: 201 }}]
        retriable_statuses: [{{ start: 503, end: 504 }}]
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }}
            health_check_config: {{ hostname: hc-a }}
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
"#,
        a.port(),
        b.port()
    );
    let c = start(&cluster);
    // Start-up waited for the first checks: both serve at once.
    assert_eq!((flags(&c, "c", a.port()), flags(&c, "c", b.port())), ("healthy".into(), "healthy".into()));
    let mut both = served(&c, 4);
    both.sort();
    assert_eq!(both, ["a", "a", "b", "b"]);

    a.status.store(503, Ordering::SeqCst);
    wait_flags(&c, "c", a.port(), "/failed_active_hc");
    assert!(c.stat("cluster.c.health_check.failure").unwrap_or(0) >= 2, "two failures fail a host");
    assert_eq!(c.stat("cluster.c.health_check.healthy"), Some(1));
    assert_eq!(c.stat("cluster.c.membership_healthy"), Some(1));
    // The workers get the new health (posted after the flag is set): then every
    // request goes to b (no panic at 50 %).
    wait_for("requests to b only", || served(&c, 2) == ["b", "b"]);
    assert_eq!(served(&c, 4), ["b", "b", "b", "b"]);

    a.status.store(200, Ordering::SeqCst);
    wait_flags(&c, "c", a.port(), "healthy");
    wait_for("both healthy", || c.stat("cluster.c.health_check.healthy") == Some(2));
    wait_for("requests to a again", || served(&c, 2).contains(&"a".to_string()));
    assert_eq!(c.stat("cluster.c.lb_healthy_panic"), Some(0));
    assert!(c.stat("cluster.c.health_check.success").unwrap_or(0) >= 4);
    assert_eq!(c.stat("cluster.c.health_check.network_failure"), Some(0));

    // What the checks sent: Envoy's user agent, and as host the endpoint's
    // health-check hostname, else the cluster's name.
    let seen_a = a.checks.lock().expect("checks")[0].clone();
    let seen_b = b.checks.lock().expect("checks")[0].clone();
    assert_eq!(seen_a.get("user-agent").map(String::as_str), Some("Envoy/HC"));
    assert_eq!(seen_a.get("host").map(String::as_str), Some("hc-a"));
    assert_eq!(seen_b.get("host").map(String::as_str), Some("c"));
}

/// Each line of a health check event log from after the cluster's name to the
/// metadata (or the locality), its timestamp masked.
fn events(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let (_, rest) = l.split_once("\"cluster_name\":\"c\",").unwrap_or(("", l));
            let end = rest.find(",\"metadata\"").or_else(|| rest.find(",\"locality\"")).unwrap_or(rest.len());
            let event = &rest[..end];
            let (before, after) = event.split_once("\"timestamp\":\"").unwrap_or((event, ""));
            let after = after.split_once('"').map_or("", |(_, a)| a);
            format!("{before}\"timestamp\":T{after}")
        })
        .collect()
}

/// The event log (`event_log_path`) over a host's life: added by its first
/// check, ejected by a 503 (the status in the line), added back, and ejected by a
/// response with `x-envoy-immediate-health-check-fail` (PASSIVE); the endpoint's
/// metadata and locality on every line. The lines' form is compared with Envoy's
/// in tests/compat/cases/active_health_check_event_log.yaml.
#[test]
fn event_log_follows_a_host_through_active_and_passive_failures() {
    let a = HealthyServer::start("a");
    let dir = crate::harness::TempDir::new("hc-events");
    let log = dir.0.join("events.log");
    let cluster = format!(
        r#"  - name: c
    type: STATIC
    connect_timeout: 1s
    health_checks:
    - timeout: 1s
      interval: 0.05s
      no_traffic_interval: 0.05s
      unhealthy_threshold: 1
      healthy_threshold: 1
      event_log_path: {}
      http_health_check: {{ path: /healthz }}
    load_assignment:
      cluster_name: c
      endpoints:
      - locality: {{ zone: z1 }}
        lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
          metadata: {{ filter_metadata: {{ acme: {{ team: a }} }} }}
"#,
        log.display(),
        a.port()
    );
    let c = start(&cluster);
    let added = |first: bool| format!(r#""add_healthy_event":{{"first_check":{first}}},"timestamp":T"#);
    let eject = |kind: &str, status: u16| {
        format!(r#""eject_unhealthy_event":{{"failure_type":"{kind}","http_status_code":{status}}},"timestamp":T"#)
    };
    wait_for("the first check's line", || events(&log).len() == 1);
    a.status.store(503, Ordering::SeqCst);
    wait_flags(&c, "c", a.port(), "/failed_active_hc");
    a.status.store(200, Ordering::SeqCst);
    wait_flags(&c, "c", a.port(), "healthy");
    wait_for("three lines", || events(&log).len() == 3);
    a.passive.store(true, Ordering::SeqCst);
    wait_for("the host served", || served(&c, 1) == ["a"]);
    // The next check may add the host back (a fifth line) before this reads.
    wait_for("four lines", || events(&log).len() >= 4);
    assert_eq!(events(&log)[..4], [added(true), eject("ACTIVE", 503), added(false), eject("PASSIVE", 0)]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let metadata = r#","metadata":{"filter_metadata":{"acme":{"team":"a"}},"typed_filter_metadata":{}},"locality":{"region":"","zone":"z1","sub_zone":""}}"#;
    assert!(text.lines().all(|l| l.ends_with(metadata)), "{text}");
    assert_eq!(c.stat("cluster.c.health_check.passive_failure"), Some(1));
}

/// A gRPC health server: answers `Check` with SERVING or NOT_SERVING as the test
/// says, and records each call's `:authority` and service name.
struct GrpcHealthServer {
    upstream: Upstream,
    serving: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl GrpcHealthServer {
    fn start() -> GrpcHealthServer {
        let serving = Arc::new(AtomicBool::new(true));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (s, seen) = (serving.clone(), calls.clone());
        let upstream = Upstream::start(move |stream: TcpStream| {
            let (s, seen) = (s.clone(), seen.clone());
            serve_h2c(stream, move |request, mut respond| {
                let (s, seen) = (s.clone(), seen.clone());
                async move {
                    let (parts, mut body) = request.into_parts();
                    let mut data = Vec::new();
                    while let Some(Ok(chunk)) = body.data().await {
                        let _ = body.flow_control().release_capacity(chunk.len());
                        data.extend_from_slice(&chunk);
                    }
                    // HealthCheckRequest { service = 1 }: after the 5-byte prefix,
                    // tag 0x0a, a one-byte length, the name.
                    let service = data.get(7..).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                    let authority = parts.uri.authority().map(|a| a.to_string()).unwrap_or_default();
                    seen.lock().expect("calls").push((authority, service));
                    let status = if s.load(Ordering::SeqCst) { 1 } else { 2 };
                    let head = http::Response::builder().status(200).header("content-type", "application/grpc");
                    let Ok(head) = head.body(()) else { return };
                    let Ok(mut send) = respond.send_response(head, false) else { return };
                    let _ = send.send_data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false);
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let _ = send.send_trailers(trailers);
                }
            })
        });
        GrpcHealthServer { upstream, serving, calls }
    }
}

#[test]
fn grpc_checks_follow_the_serving_status() {
    let grpc = GrpcHealthServer::start();
    let cluster = format!(
        r#"  - name: c
    type: STATIC
    connect_timeout: 1s
    health_checks:
    - timeout: 1s
      interval: 0.05s
      no_traffic_interval: 0.05s
      unhealthy_threshold: 1
      healthy_threshold: 1
      grpc_health_check: {{ service_name: svc, authority: grpc-auth }}
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
"#,
        grpc.upstream.port()
    );
    let c = start(&cluster);
    let port = grpc.upstream.port();
    assert_eq!(flags(&c, "c", port), "healthy");
    grpc.serving.store(false, Ordering::SeqCst);
    // NOT_SERVING is an answer, not a network failure: the host fails at once.
    wait_flags(&c, "c", port, "/failed_active_hc");
    assert_eq!(c.stat("cluster.c.health_check.network_failure"), Some(0));
    grpc.serving.store(true, Ordering::SeqCst);
    wait_flags(&c, "c", port, "healthy");
    let calls = grpc.calls.lock().expect("calls").clone();
    assert_eq!(calls[0], ("grpc-auth".to_string(), "svc".to_string()));
    // The checks reused one connection (reuse_connection's default).
    assert!(calls.len() >= 3);
}

#[test]
fn hostile_health_answers_count_failures_and_harm_nothing() {
    // One upstream answers checks with garbage, one with a head that never ends,
    // one never answers at all.
    let garbage = Upstream::start(|mut s: TcpStream| {
        let _ = s.write_all(b"\x00\xffNOT HTTP AT ALL\r\n\r\n");
    });
    let endless_head = Upstream::start(|mut s: TcpStream| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = vec![b'x'; 8192];
        for _ in 0..64 {
            if s.write_all(b"x-pad: ").is_err() || s.write_all(&line).is_err() || s.write_all(b"\r\n").is_err() {
                return;
            }
        }
    });
    let silent = Upstream::start(|s: TcpStream| {
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        let mut reader = BufReader::new(s);
        while read_request(&mut reader).is_some() {}
    });
    let ports = [garbage.port(), endless_head.port(), silent.port()];
    let endpoints: String = ports
        .iter()
        .map(|p| {
            format!(
                "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
            )
        })
        .collect();
    let cluster = format!(
        r#"  - name: c
    type: STATIC
    connect_timeout: 1s
    health_checks:
    - timeout: 0.3s
      interval: 0.05s
      no_traffic_interval: 0.05s
      unhealthy_threshold: 1
      healthy_threshold: 1
      http_health_check: {{ path: /healthz }}
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
{endpoints}"#
    );
    let c = start(&cluster);
    for port in ports {
        assert!(flags(&c, "c", port).starts_with("/failed_active_hc"), "{port}: {}", flags(&c, "c", port));
    }
    assert_eq!(flags(&c, "c", silent.port()), "/failed_active_hc/active_hc_timeout");
    wait_for("failures counted", || c.stat("cluster.c.health_check.failure").unwrap_or(0) >= 6);
    assert_eq!(c.stat("cluster.c.health_check.success"), Some(0));
    assert_eq!(c.stat("cluster.c.health_check.healthy"), Some(0));
    // Still serving: admin answers, and a request goes to a host in panic.
    assert_eq!(c.admin_get("/ready").0, 200);
}

/// A `DiscoveryResponse` file with one assignment for `name`: `ports` at priority 0.
fn eds_file(name: &str, ports: &[u16]) -> String {
    let endpoints: String = ports
        .iter()
        .map(|p| {
            format!("    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n")
        })
        .collect();
    format!(
        "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: {name}\n  endpoints:\n  - lb_endpoints:\n{endpoints}"
    )
}

const EDS_HEALTH_CHECKS: &str = "  health_checks:\n  - timeout: 1s\n    interval: 0.05s\n    no_traffic_interval: 0.05s\n    unhealthy_threshold: 1\n    healthy_threshold: 1\n    http_health_check: { path: /healthz }\n";

#[test]
fn eds_clusters_start_once_their_hosts_are_checked() {
    let a = HealthyServer::start("a");
    let dead = crate::harness::closed_port();
    let dir = crate::harness::TempDir::new("hc-eds");
    let d = dir.0.display();
    dir.file("eds.yaml", &eds_file("d", &[a.port(), dead]));
    dir.file("static_eds.yaml", &eds_file("s", &[a.port(), dead]));
    // `d` comes from CDS (and warms), `s` is static.
    let cds_cluster = format!(
        "version_info: \"c\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: d\n  type: EDS\n  connect_timeout: 1s\n{EDS_HEALTH_CHECKS}  eds_cluster_config:\n    eds_config: {{ path_config_source: {{ path: {d}/eds.yaml }} }}\n"
    );
    dir.file("cds.yaml", &cds_cluster);
    let routes = format!("{}{}", prefix_route("/s", "s", ""), prefix_route("/", "d", ""));
    let listener = http_listener("web", "", &one_vhost(&routes), "");
    dir.file("lds.yaml", &crate::xds_files::discovery("envoy.config.listener.v3.Listener", "l", &[listener]));
    let static_cluster = format!(
        "  - name: s\n    type: EDS\n    connect_timeout: 1s\n{}    eds_cluster_config:\n      eds_config: {{ path_config_source: {{ path: {d}/static_eds.yaml }} }}\n",
        crate::http_util::indent(EDS_HEALTH_CHECKS, 2)
    );
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\nstatic_resources:\n  clusters:\n{static_cluster}dynamic_resources:\n  cds_config:\n    path_config_source: {{ path: {d}/cds.yaml }}\n  lds_config:\n    path_config_source: {{ path: {d}/lds.yaml }}\n"
    );
    let c = Courier::start(&yaml, 1);
    // Both started with their hosts' first checks done: no request meets a
    // host not yet checked.
    for cluster in ["d", "s"] {
        assert_eq!(flags(&c, cluster, a.port()), "healthy", "{cluster}");
        assert_eq!(flags(&c, cluster, dead), "/failed_active_hc", "{cluster}");
        assert_eq!(c.stat(&format!("cluster.{cluster}.membership_healthy")), Some(1), "{cluster}");
    }
    assert_eq!(c.stat("cluster_manager.warming_clusters"), Some(0));
    assert_eq!(c.stat("cluster.d.membership_change"), Some(1));
    let web = c.listener("web");
    for path in ["/", "/s", "/", "/s"] {
        assert_eq!(Client::connect(web).get(path).text(), "a", "{path}");
    }
}
