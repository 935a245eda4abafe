//! Cluster discovery: STRICT_DNS and LOGICAL_DNS membership reaching the workers.

use std::io::{Read, Write};

use crate::harness::*;

fn dns_cluster(name: &str, kind: &str, port: u16, extra: &str) -> String {
    format!(
        "  - name: {name}\n    type: {kind}\n    connect_timeout: 1s\n    dns_lookup_family: V4_ONLY\n    dns_refresh_rate: 0.2s\n{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {port} }} }} }}\n"
    )
}

#[test]
fn strict_dns_resolves_localhost_and_proxies() {
    let up = Upstream::echo();
    let c = Courier::start(
        &config(&[tcp_listener("l", "dns", "by_name", "")], &[dns_cluster("by_name", "STRICT_DNS", up.port(), "")]),
        2,
    );
    assert_eq!(c.stat("cluster.by_name.membership_total"), Some(1));
    let mut s = connect(c.listener("l"));
    s.write_all(b"dns").unwrap();
    let mut b = [0u8; 3];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"dns");
    // Re-resolution runs on the refresh timer; an unchanged answer is no rebuild.
    c.wait_stat("cluster.by_name.update_no_rebuild", |v| v >= 1);
    assert_eq!(c.stat("cluster.by_name.update_failure"), Some(0));
    let (_, clusters) = c.admin_get("/clusters");
    assert!(clusters.contains(&format!("by_name::127.0.0.1:{}::hostname::localhost", up.port())), "{clusters}");
}

#[test]
fn logical_dns_uses_one_host() {
    let up = Upstream::echo();
    let c = Courier::start(
        &config(&[tcp_listener("l", "ldns", "logical", "")], &[dns_cluster("logical", "LOGICAL_DNS", up.port(), "")]),
        1,
    );
    assert_eq!(c.stat("cluster.logical.membership_total"), Some(1));
    let mut s = connect(c.listener("l"));
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
}

#[test]
fn unresolvable_name_counts_failure_and_closes_connections() {
    let bad =
        dns_cluster("nowhere", "STRICT_DNS", 80, "").replace("address: localhost", "address: does-not-exist.invalid");
    let c = Courier::start(&config(&[tcp_listener("l", "nx", "nowhere", "")], &[bad]), 1);
    c.wait_stat("cluster.nowhere.update_failure", |v| v >= 1);
    assert_eq!(c.stat("cluster.nowhere.membership_total"), Some(0));
    let mut s = connect(c.listener("l"));
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty());
    c.wait_stat("cluster.nowhere.upstream_cx_none_healthy", |v| v == 1);
}
