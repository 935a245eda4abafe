//! Read filters before the terminal network filter, end to end: the RBAC
//! network filter in front of `tcp_proxy` and of the HTTP connection manager,
//! with real clients and upstreams.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::*;

/// A listener running `rbac` (the filter's typed_config body, indented for it)
/// before a tcp_proxy to `cluster`.
fn rbac_tcp_listener(name: &str, rbac: &str, cluster: &str) -> String {
    format!(
        "  - name: {name}\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.rbac\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n{rbac}      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: {name}\n          cluster: {cluster}\n"
    )
}

const ALLOW_LOOPBACK: &str = "          stat_prefix: loopback\n          enforcement_type: CONTINUOUS\n          rules:\n            policies:\n              loopback:\n                permissions: [{ any: true }]\n                principals: [{ direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }]\n";

const DENY_ALL: &str = "          stat_prefix: nobody\n          rules:\n            action: DENY\n            policies:\n              everyone: { permissions: [{ any: true }], principals: [{ any: true }] }\n";

/// An upstream that reports, per connection, every byte it received.
fn recording_upstream() -> (Upstream, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let up = Upstream::start(move |mut s| {
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let _ = tx.lock().map(|tx| tx.send(got));
    });
    (up, rx)
}

/// Several megabytes both ways through an allowing filter that decides on every
/// read (`CONTINUOUS`): the filtered stream passes every byte, in order, with
/// the half-close.
#[test]
fn network_rbac_passes_an_allowed_connection_whole() {
    let up = Upstream::echo();
    let c = Courier::start(
        &config(&[rbac_tcp_listener("allowed", ALLOW_LOOPBACK, "echo")], &[static_cluster("echo", &[up.port()])]),
        1,
    );
    crate::tcp_proxy::echo_round_trip(connect(c.listener("allowed")), 4 * 1024 * 1024);
    c.wait_stat("cluster.echo.upstream_cx_active", |v| v == 0);
    // One decision per read, the end of stream included.
    assert!(c.stat("loopback.rbac.allowed").unwrap() >= 2);
    assert_eq!(c.stat("loopback.rbac.denied"), Some(0));
}

/// A refused connection: tcp_proxy had connected upstream as it started, as
/// Envoy's does; the upstream sees that connection close without a byte, and
/// the client sees its connection close without an answer.
#[test]
fn network_rbac_closes_a_refused_connection_before_any_byte_goes_up() {
    let (up, received) = recording_upstream();
    let c = Courier::start(
        &config(&[rbac_tcp_listener("refused", DENY_ALL, "rec")], &[static_cluster("rec", &[up.port()])]),
        1,
    );
    let mut s = connect(c.listener("refused"));
    s.write_all(b"let me in").unwrap();
    assert_closes_silently(&mut s);
    let upstream_got = received.recv_timeout(IO_TIMEOUT).expect("the upstream connection closes");
    assert!(upstream_got.is_empty(), "the upstream received {upstream_got:?}");
    c.wait_stat("nobody.rbac.denied", |v| v == 1);
    assert_eq!(c.stat("nobody.rbac.allowed"), Some(0));
    assert_eq!(c.stat("cluster.rec.upstream_cx_total"), Some(1));
    assert_eq!(c.stat("cluster.rec.upstream_cx_tx_bytes_total"), Some(0));
    c.wait_stat("tcp.refused.downstream_cx_rx_bytes_total", |v| v == 9);
}

/// `delay_deny` holds a refused connection open, reading nothing, for the
/// delay before it closes it.
#[test]
fn network_rbac_delay_deny_closes_after_the_delay() {
    let (up, received) = recording_upstream();
    let delayed = DENY_ALL.replace("stat_prefix: nobody\n", "stat_prefix: nobody\n          delay_deny: 0.3s\n");
    let c = Courier::start(
        &config(&[rbac_tcp_listener("delayed", &delayed, "rec")], &[static_cluster("rec", &[up.port()])]),
        1,
    );
    let mut s = connect(c.listener("delayed"));
    let start = Instant::now();
    s.write_all(b"hello").unwrap();
    assert_closes_silently(&mut s);
    assert!(start.elapsed() >= Duration::from_millis(300), "closed after {:?}", start.elapsed());
    assert!(received.recv_timeout(IO_TIMEOUT).unwrap().is_empty());
    assert_eq!(c.stat("nobody.rbac.denied"), Some(1));
}

/// In front of the HTTP connection manager: an allowed connection serves
/// keep-alive requests through the filtered stream; a refused one is closed
/// before its request is parsed.
#[test]
fn network_rbac_in_front_of_the_connection_manager() {
    let rbac_chain = |name: &str, rbac: &str| {
        http_listener(name, "", &one_vhost("              - match: { prefix: / }\n                direct_response: { status: 200, body: { inline_string: fine } }\n"), "")
            .replace(
                "    - filters:\n",
                &format!("    - filters:\n      - name: envoy.filters.network.rbac\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n{rbac}"),
            )
    };
    let c = Courier::start(&config(&[rbac_chain("allowed", ALLOW_LOOPBACK), rbac_chain("refused", DENY_ALL)], &[]), 1);
    let mut client = Client::connect(c.listener("allowed"));
    for _ in 0..3 {
        let resp = client.get("/");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"fine");
    }
    let mut refused = Client::connect(c.listener("refused"));
    refused.send_raw(&Client::encode_request("GET", "/", &[], b""));
    assert!(refused.try_read_response(false).is_err(), "a refused connection got a response");
    c.wait_stat("nobody.rbac.denied", |v| v == 1);
    assert_eq!(c.stat("http.ingress.downstream_rq_total"), Some(3));
}

/// `connection_limit` with one connection allowed: a second one while the
/// first is open is refused as it starts (after `delay`), without an upstream
/// connection; once the first closed, a new one goes through.
#[test]
fn connection_limit_refuses_a_connection_over_the_limit() {
    let up = Upstream::echo();
    let listener = tcp_listener("limited", "limited", "echo", "").replace(
        "    - filters:\n",
        "    - filters:\n      - name: envoy.filters.network.connection_limit\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit\n          stat_prefix: one\n          max_connections: 1\n          delay: 0.2s\n",
    );
    let c = Courier::start(&config(&[listener], &[static_cluster("echo", &[up.port()])]), 2);
    let echo = |s: &mut std::net::TcpStream, what: &[u8]| {
        s.write_all(what).unwrap();
        let mut got = vec![0u8; what.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, what);
    };
    let mut first = connect(c.listener("limited"));
    echo(&mut first, b"first");
    c.wait_stat("connection_limit.one.active_connections", |v| v == 1);
    let mut second = connect(c.listener("limited"));
    let start = Instant::now();
    second.write_all(b"second").unwrap();
    assert_closes_silently(&mut second);
    assert!(start.elapsed() >= Duration::from_millis(150), "closed after {:?}", start.elapsed());
    assert_eq!(c.stat("connection_limit.one.limited_connections"), Some(1));
    drop(first);
    c.wait_stat("connection_limit.one.active_connections", |v| v == 0);
    let mut third = connect(c.listener("limited"));
    echo(&mut third, b"third");
    drop(third);
    c.wait_stat("connection_limit.one.active_connections", |v| v == 0);
    // The refused connection never went upstream; tcp_proxy counted it all the same.
    assert_eq!(c.stat("cluster.echo.upstream_cx_total"), Some(2));
    assert_eq!(c.stat("tcp.limited.downstream_cx_total"), Some(3));
}
