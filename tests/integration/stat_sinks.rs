//! The bootstrap's `stats_sinks` (`envoy.stat_sinks.statsd`, `envoy.stat_sinks.dog_statsd`)
//! seen from a collector: a real Courier process sends to UDP sockets this test reads
//! on 127.0.0.1, with a short `stats_flush_interval` so a few flushes pass in a
//! second. The expected lines are those Envoy 1.40 sent for the same traffic (see
//! each test's comment).

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::{http_listener, one_vhost, prefix_route, Client};

/// Every datagram until `done` holds for the lines so far, split into lines.
fn collect_until(socket: &UdpSocket, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    socket.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            lines.extend(String::from_utf8_lossy(&buf[..n]).split('\n').map(str::to_string));
            if done(&lines) {
                return lines;
            }
        }
    }
    panic!("the sink never sent what was expected; got {lines:#?}");
}

/// The sum of the counter deltas sent for `name_and_tags` (`name` or `name|c|#tags`).
fn counter_total(lines: &[String], name: &str, tags: &str) -> u64 {
    lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix(name)?.strip_prefix(':')?.strip_suffix(&format!("|c{tags}"))?.parse::<u64>().ok()
        })
        .sum()
}

/// Envoy 1.40 with a statsd sink (`prefix: pre`) and a dog_statsd sink, three
/// requests through an HTTP listener (`stat_prefix: ing`), flush every 0.5 s, sent
/// one line per datagram:
///
/// ```text
/// pre.http.ing.downstream_rq_total:3|c            (then pre.http.ing.downstream_rq_total:0|c every flush)
/// pre.http.ing.downstream_rq_active:0|g
/// pre.http.ing.downstream_rq_time:0|ms            (one per request)
/// envoy.http.downstream_rq_total:3|c|#envoy.http_conn_manager_prefix:ing
/// envoy.listener.http.downstream_rq_xx:3|c|#envoy.response_code_class:2,envoy.http_conn_manager_prefix:ing,envoy.listener_address:127.0.0.1_18080
/// envoy.http.downstream_rq_time:0|ms|#envoy.http_conn_manager_prefix:ing
/// ```
///
/// and no line for a stat `stats_config.stats_matcher` rejects.
#[test]
fn statsd_and_dog_statsd_sinks_send_counters_gauges_and_histograms() {
    let statsd = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dog = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (statsd_port, dog_port) = (statsd.local_addr().expect("addr").port(), dog.local_addr().expect("addr").port());
    let up = crate::http_util::http_upstream("a");
    let routes = one_vhost(&prefix_route("/", "app", ""));
    let yaml = format!(
        r#"stats_flush_interval: 0.1s
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {statsd_port}, protocol: UDP }} }}
    prefix: pre
- name: envoy.stat_sinks.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {dog_port}, protocol: UDP }} }}
    max_bytes_per_datagram: 1400
stats_config:
  stats_matcher:
    exclusion_list: {{ patterns: [ {{ prefix: "http.ingress.downstream_cx_" }} ] }}
{}"#,
        config(&[http_listener("web", "", &routes, "")], &[static_cluster("app", &[up.port()])])
    );
    let c = Courier::start(&yaml, 1);
    let mut client = Client::connect(c.listener("web"));
    for _ in 0..3 {
        assert_eq!(client.get("/").status, 200);
    }
    drop(client);

    let rq_total = "pre.http.ingress.downstream_rq_total";
    let lines = collect_until(&statsd, |l| {
        counter_total(l, rq_total, "") == 3
            && l.iter().filter(|l| l.starts_with("pre.http.ingress.downstream_rq_time:")).count() == 3
            && l.iter().any(|l| l == &format!("{rq_total}:0|c"))
    });
    let times: Vec<&String> = lines.iter().filter(|l| l.starts_with("pre.http.ingress.downstream_rq_time:")).collect();
    assert!(times.iter().all(|l| l.ends_with("|ms")), "{times:?}");
    assert!(lines.iter().any(|l| l == "pre.cluster.app.membership_total:1|g"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.starts_with("pre.http.ingress.downstream_cx_")), "rejected stats are not sent");
    assert!(lines.iter().all(|l| l.starts_with("pre.")), "{lines:#?}");

    let hcm = "|#envoy.http_conn_manager_prefix:ingress";
    let dog_lines = collect_until(&dog, |l| {
        counter_total(l, "envoy.http.downstream_rq_total", hcm) == 3
            && counter_total(l, "envoy.cluster.upstream_rq_xx", "|#envoy.response_code_class:2,envoy.cluster_name:app")
                == 3
            && l.iter().filter(|l| l.starts_with("envoy.http.downstream_rq_time:")).count() == 3
    });
    assert!(
        dog_lines.iter().any(|l| l.starts_with("envoy.http.downstream_rq_time:") && l.ends_with(&format!("|ms{hcm}"))),
        "{dog_lines:#?}"
    );
    assert!(!dog_lines.iter().any(|l| l.starts_with("envoy.http.downstream_cx_")), "rejected stats are not sent");
    let by_name: HashMap<&str, usize> = dog_lines.iter().fold(HashMap::new(), |mut m, l| {
        *m.entry(l.split(':').next().unwrap_or("")).or_default() += 1;
        m
    });
    assert!(!by_name.contains_key("envoy.http.ingress.downstream_rq_total"), "dog_statsd names are tag-extracted");
}

/// A TCP statsd (`tcp_cluster_name`) is refused at start-up, naming the field.
#[test]
fn a_tcp_statsd_sink_is_refused_naming_the_field() {
    let yaml = format!(
        "stats_sinks:\n- name: envoy.stat_sinks.statsd\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.config.metrics.v3.StatsdSink\n    tcp_cluster_name: app\n{}",
        config(&[], &[])
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok, "config was accepted");
    assert!(out.contains("stats_sinks[0].typed_config.tcp_cluster_name"), "{out}");
}

/// Envoy 1.40 flushes its sinks once more when it stops: with
/// `stats_flush_interval: 60s`, one request and SIGTERM, the collector got
/// `pre.http.ing.downstream_rq_total:1|c` right after the signal. So does Courier.
#[test]
fn the_sinks_are_flushed_once_more_at_exit() {
    let statsd = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = statsd.local_addr().expect("addr").port();
    // A direct response: no upstream connection is open when the process exits.
    let routes =
        one_vhost("              - match: { prefix: \"/\" }\n                direct_response: { status: 200 }\n");
    let yaml = format!(
        "stats_flush_interval: 60s\nstats_sinks:\n- name: envoy.stat_sinks.statsd\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.config.metrics.v3.StatsdSink\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    prefix: pre\n{}",
        config(&[http_listener("web", "", &routes, "")], &[])
    );
    let mut c = Courier::start_with(&yaml, 1, &["--drain-time-s", "1"], &[]);
    let mut client = Client::connect(c.listener("web"));
    assert_eq!(client.get("/").status, 200);
    drop(client);
    c.send_signal(libc::SIGTERM);
    // The histogram's sample, from the interval closed at exit, comes last.
    collect_until(&statsd, |l| {
        l.iter().any(|l| l == "pre.http.ingress.downstream_rq_total:1|c")
            && l.iter().any(|l| l.starts_with("pre.http.ingress.downstream_rq_time:") && l.ends_with("|ms"))
    });
    let status = c.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}: {}", c.log());
}
