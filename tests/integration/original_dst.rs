//! The ORIGINAL_DST cluster end to end: hosts made from what each request asks
//! for (the `x-envoy-original-dst-host` header, or the destination a listener
//! filter restored: here the PROXY protocol's, as loopback has no NAT redirect
//! for `original_dst` to find), shown in `/clusters` and the membership stats,
//! and removed once unused.

use std::io::{Read, Write};
use std::net::Shutdown;

use crate::harness::*;
use crate::http_util::*;

fn original_dst_cluster(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    connect_timeout: 1s\n{extra}"
    )
}

#[test]
fn use_http_header_names_each_upstream_and_a_bad_header_is_a_503() {
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let cluster = original_dst_cluster("od", "    original_dst_lb_config: { use_http_header: true }\n");
    let c = start_web("", &one_vhost(&prefix_route("/", "od", "")), "", &[cluster]);
    let addr = c.listener("web");
    for (port, name) in [(a.port(), "a"), (b.port(), "b"), (a.port(), "a")] {
        let target = format!("127.0.0.1:{port}");
        let r = Client::connect(addr).request("GET", "/", &[("x-envoy-original-dst-host", &target)], b"");
        assert_eq!((r.status, r.seen().upstream().to_string()), (200, name.to_string()));
    }
    // No header and no restored destination; a header that is no ip:port.
    for headers in [&[][..], &[("x-envoy-original-dst-host", "a.example:80")][..]] {
        let r = Client::connect(addr).request("GET", "/", headers, b"");
        assert_eq!((r.status, r.text().as_str()), (503, "no healthy upstream"));
    }
    assert_eq!(c.stat("cluster.od.original_dst_host_invalid"), Some(1));
    assert_eq!(c.stat("cluster.od.upstream_cx_none_healthy"), Some(2));
    // Each host joins the membership once, named after the cluster and address.
    c.wait_stat("cluster.od.membership_total", |v| v == 2);
    assert_eq!(c.stat("cluster.od.membership_change"), Some(2));
    let (_, clusters) = c.admin_get("/clusters");
    assert!(
        clusters.contains(&format!("od::127.0.0.1:{}::hostname::od127.0.0.1:{}", a.port(), a.port())),
        "{clusters}"
    );
    assert!(clusters.contains(&format!("od::127.0.0.1:{}::rq_total::2", a.port())), "{clusters}");
    assert!(clusters.contains(&format!("od::127.0.0.1:{}::rq_total::1", b.port())), "{clusters}");
}

#[test]
fn a_restored_destination_is_the_host_with_its_port_overridden_and_unused_hosts_leave() {
    let up = Upstream::echo();
    let proxy = "    - name: envoy.filters.listener.proxy_protocol\n      typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol}\n";
    let listener = tcp_listener("t", "t", "od", "").replacen(
        "    filter_chains:\n",
        &format!("    listener_filters:\n{proxy}    filter_chains:\n"),
        1,
    );
    let extra = format!(
        "    cleanup_interval: 0.2s\n    original_dst_lb_config: {{ upstream_port_override: {} }}\n",
        up.port()
    );
    let c = Courier::start(&config(&[listener], &[original_dst_cluster("od", &extra)]), 1);
    // The PROXY header's destination (port 1) is restored; the override sends it to the echo upstream.
    let mut s = connect(c.listener("t"));
    s.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 1\r\nhello").expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read");
    assert_eq!(got, b"hello");
    // The worker made the host; the main thread adds it to the membership by a post.
    let made = format!("od::127.0.0.1:{}::cx_total::1", up.port());
    wait_for("the made host in /clusters", || c.admin_get("/clusters").1.contains(&made));
    // Its connection closed and nothing picks it again: gone after a round or two.
    c.wait_stat("cluster.od.membership_total", |v| v == 0);
    assert_eq!(c.stat("cluster.od.membership_change"), Some(2));
}

#[test]
fn original_dst_cluster_config_errors_are_envoys() {
    for (extra, error) in [
        ("    lb_policy: ROUND_ROBIN\n", "cluster: LB policy ROUND_ROBIN is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'"),
        ("    lb_policy: CLUSTER_PROVIDED\n    load_assignment: { cluster_name: od }\n", "ORIGINAL_DST clusters must have no load assignment configured"),
        ("    lb_policy: CLUSTER_PROVIDED\n    original_dst_lb_config: { http_header_name: foo }\n", "ORIGINAL_DST cluster: invalid config http_header_name=foo and use_http_header is false. Set use_http_header to true if http_header_name is desired."),
        ("    lb_policy: CLUSTER_PROVIDED\n    cleanup_interval: 0s\n", "cleanup_interval: value must be greater than 0s"),
    ] {
        let cluster = format!("  - name: od\n    type: ORIGINAL_DST\n    connect_timeout: 1s\n{extra}");
        let (ok, out) = validate(&format!("static_resources:\n  clusters:\n{cluster}"));
        assert!(!ok && out.contains(error), "{extra}: {out}");
    }
    let cluster = "  - name: s\n    type: STATIC\n    lb_policy: CLUSTER_PROVIDED\n    connect_timeout: 1s\n";
    let (ok, out) = validate(&format!("static_resources:\n  clusters:\n{cluster}"));
    assert!(!ok && out.contains("cluster provided LB specified but cluster 's' did not provide one"), "{out}");
}
