//! Cluster discovery: STRICT_DNS and LOGICAL_DNS membership reaching the workers;
//! and what a cluster's transport writes first (the upstream PROXY protocol).

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
    assert_eq!(&b, b"x", "the echo upstream behind the LOGICAL_DNS host answers");
}

/// As Envoy's resolver, a name that does not exist is an empty answer for
/// STRICT_DNS (tests/compat/cases/dns_no_address.yaml compares the stats) and a
/// failure for LOGICAL_DNS; the cluster has no host either way.
#[test]
fn unresolvable_name_leaves_no_host_and_closes_connections() {
    let bad =
        dns_cluster("nowhere", "STRICT_DNS", 80, "").replace("address: localhost", "address: does-not-exist.invalid");
    let c = Courier::start(&config(&[tcp_listener("l", "nx", "nowhere", "")], &[bad]), 1);
    c.wait_stat("cluster.nowhere.update_success", |v| v >= 1);
    assert_eq!(c.stat("cluster.nowhere.update_failure"), Some(0));
    assert_eq!(c.stat("cluster.nowhere.membership_total"), Some(0));
    let mut s = connect(c.listener("l"));
    assert_closes_silently(&mut s);
    c.wait_stat("cluster.nowhere.upstream_cx_none_healthy", |v| v == 1);
}

#[test]
fn host_weights_max_host_weight_and_cluster_manager_stats() {
    let (one, two) = (Upstream::echo(), Upstream::echo());
    // Two names, each endpoint with its weight: Envoy's STRICT_DNS cluster is
    // initialized by the first name, and the second one's hosts are an update.
    let strict = format!(
        "  - name: weighted\n    type: STRICT_DNS\n    connect_timeout: 1s\n    dns_lookup_family: V4_ONLY\n    load_assignment:\n      cluster_name: weighted\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {} }} }} }}\n          load_balancing_weight: 2\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n          load_balancing_weight: 7\n",
        one.port(),
        two.port()
    );
    let logical = dns_cluster("logical", "LOGICAL_DNS", one.port(), "")
        .replace(" } } }\n", " } } }\n          load_balancing_weight: 5\n");
    let c = Courier::start(
        &config(&[tcp_listener("l", "w", "weighted", "")], &[strict, logical, static_cluster("fixed", &[one.port()])]),
        1,
    );
    let (_, clusters) = c.admin_get("/clusters");
    for line in [
        format!("weighted::127.0.0.1:{}::weight::2", one.port()),
        format!("weighted::127.0.0.1:{}::weight::7", two.port()),
        format!("logical::127.0.0.1:{}::weight::5", one.port()),
        format!("fixed::127.0.0.1:{}::weight::1", one.port()),
    ] {
        assert!(clusters.lines().any(|l| l == line), "missing `{line}` in:\n{clusters}");
    }
    // Set from each name's hosts as it resolves (the last one's), by STRICT_DNS only.
    assert_eq!(c.stat("cluster.weighted.max_host_weight"), Some(7));
    assert_eq!(c.stat("cluster.logical.max_host_weight"), Some(0));
    assert_eq!(c.stat("cluster.fixed.max_host_weight"), Some(0));
    for (name, value) in [
        ("active_clusters", 3),
        ("warming_clusters", 0),
        ("cluster_added", 3),
        ("cluster_modified", 0),
        ("cluster_removed", 0),
        ("cluster_updated", 1),
        ("cluster_updated_via_merge", 0),
        ("update_merge_cancelled", 0),
        ("update_out_of_merge_window", 0),
    ] {
        assert_eq!(c.stat(&format!("cluster_manager.{name}")), Some(value), "cluster_manager.{name}");
    }
    // Traffic reaches both weighted hosts.
    for _ in 0..9 {
        let mut s = connect(c.listener("l"));
        s.write_all(b"w").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
    }
    let (_, clusters) = c.admin_get("/clusters");
    for port in [one.port(), two.port()] {
        let prefix = format!("weighted::127.0.0.1:{port}::cx_total::");
        let n: u64 = clusters.lines().find_map(|l| l.strip_prefix(&prefix)).expect("cx_total").parse().unwrap();
        assert!(n >= 1, "{prefix}{n}");
    }
}

#[test]
fn dns_refresh_rate_sets_how_often_names_are_resolved() {
    // Envoy's default is 5s; at 0.05s, five resolutions take a fraction of a second.
    let up = Upstream::echo();
    let cluster = format!(
        "  - name: fast\n    type: STRICT_DNS\n    connect_timeout: 1s\n    dns_lookup_family: V4_ONLY\n    dns_refresh_rate: 0.05s\n    load_assignment:\n      cluster_name: fast\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {} }} }} }}\n",
        up.port()
    );
    let c = Courier::start(&config(&[tcp_listener("l", "dns", "fast", "")], &[cluster]), 1);
    let started = std::time::Instant::now();
    let first = c.stat("cluster.fast.update_attempt").expect("update_attempt");
    c.wait_stat("cluster.fast.update_attempt", |v| v >= first + 5);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[test]
fn connect_timeout_bounds_an_unanswered_connect() {
    // An upstream whose accept queue is full drops further SYNs, so a connect to it
    // hangs until the cluster's connect_timeout (Envoy's default is 5s).
    use std::os::fd::AsRawFd;
    let full = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    // SAFETY: listen(2) on a socket this test owns, shrinking its accept queue.
    assert_eq!(unsafe { libc::listen(full.as_raw_fd(), 0) }, 0);
    let addr = full.local_addr().expect("addr");
    let mut fillers = Vec::new();
    while fillers.len() < 8 {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break, // the queue is full: SYNs are dropped now
        }
    }
    assert!(fillers.len() < 8, "the accept queue never filled");
    let cluster = format!(
        "  - name: blackhole\n    type: STATIC\n    connect_timeout: 0.2s\n    load_assignment:\n      cluster_name: blackhole\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        addr.port()
    );
    let c = Courier::start(&config(&[tcp_listener("l", "t", "blackhole", "")], &[cluster]), 1);
    let started = std::time::Instant::now();
    let mut s = connect(c.listener("l"));
    let mut rest = Vec::new();
    // Courier closes the downstream connection when the upstream connect fails.
    let _ = s.read_to_end(&mut rest);
    c.wait_stat("cluster.blackhole.upstream_cx_connect_timeout", |v| v == 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(c.stat("cluster.blackhole.upstream_cx_connect_fail"), Some(1));
}

#[test]
fn dns_failure_refresh_rate_backs_off_after_a_failed_resolution() {
    // A LOGICAL_DNS name without an address fails to resolve (as in Envoy). With
    // dns_refresh_rate at 60s, only dns_failure_refresh_rate (waits below 50 then
    // 100 ms) can bring the next attempts; the plain cluster stays at its first.
    let failing = |name: &str, extra: &str| {
        dns_cluster(name, "LOGICAL_DNS", 80, extra)
            .replace("address: localhost", "address: does-not-exist.invalid")
            .replace("dns_refresh_rate: 0.2s", "dns_refresh_rate: 60s")
    };
    let backoff = "    dns_failure_refresh_rate: { base_interval: 0.05s, max_interval: 0.1s }\n";
    let clusters = [failing("backoff", backoff), failing("plain", "")];
    let c = Courier::start(&config(&[tcp_listener("l", "nx", "backoff", "")], &clusters), 1);
    c.wait_stat("cluster.backoff.update_failure", |v| v >= 5);
    assert_eq!(c.stat("cluster.plain.update_failure"), Some(1));
    assert_eq!(c.stat("cluster.plain.update_attempt"), Some(1));
}

/// An upstream that reads a PROXY v1 line first, then answers each keep-alive
/// request with that line: what the proxy told it about the client.
fn proxy_protocol_upstream() -> (std::net::TcpListener, std::net::SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

fn serve_proxy_protocol(listener: std::net::TcpListener, accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader};
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                let mut proxy_line = String::new();
                if reader.read_line(&mut proxy_line).unwrap_or(0) == 0 {
                    return;
                }
                let proxy_line = proxy_line.trim_end().to_string();
                loop {
                    let mut line = String::new();
                    let mut head_done = false;
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        if line.ends_with("\r\n\r\n") || line == "\r\n" {
                            head_done = true;
                            break;
                        }
                        if line.ends_with("\r\n") {
                            line.clear();
                        }
                    }
                    if !head_done {
                        return;
                    }
                    let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{proxy_line}", proxy_line.len());
                    if writer.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// An HTTP cluster with `upstream_proxy_protocol`: each downstream connection
/// has upstream connections of its own, whose PROXY header names it, and its
/// keep-alive requests share them (Envoy keys its pools by the header's data).
#[test]
fn upstream_proxy_protocol_gives_each_downstream_connection_its_own_upstream() {
    use std::io::{BufRead, BufReader};
    let (listener, up) = proxy_protocol_upstream();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    serve_proxy_protocol(listener, accepted.clone());
    let cluster = format!(
        "{}    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport\n        config: {{ version: V1 }}\n        transport_socket:\n          name: envoy.transport_sockets.raw_buffer\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer\n",
        static_cluster("pp", &[up.port()])
    );
    let routes = "              - match: { prefix: \"/\" }\n                route: { cluster: pp }\n";
    let listener = crate::http_util::http_listener("web", "", &crate::http_util::one_vhost(routes), "");
    let c = Courier::start(&config(&[listener], &[cluster]), 1);
    let addr = c.listener("web");
    let get = |s: &mut std::net::TcpStream| -> String {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").expect("write");
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).expect("body");
        String::from_utf8(body).expect("utf-8")
    };
    let mut a = connect(addr);
    let mut b = connect(addr);
    let named = |s: &std::net::TcpStream| {
        let local = s.local_addr().expect("addr");
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {}", local.port(), addr.port())
    };
    assert_eq!(get(&mut a), named(&a));
    assert_eq!(get(&mut b), named(&b));
    assert_eq!(get(&mut a), named(&a), "the second request of a reuses its upstream connection");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(c.stat("cluster.pp.upstream_cx_total"), Some(2));
}

/// `pass_through_tlvs` on both sides, through the connection manager: the
/// listener's PROXY filter keeps the TLVs it names of the client's v2 header,
/// and the cluster's upstream PROXY header carries those its own names (as
/// Envoy 1.40 did with this config; compat `proxy_protocol_pass_through_tlvs`
/// shows the same through tcp_proxy, byte for byte).
#[test]
fn upstream_proxy_protocol_passes_the_kept_tlvs_of_http_requests() {
    let up = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = up.local_addr().expect("addr").port();
    // Answers each connection's first request with the hex of its PROXY header's TLVs.
    std::thread::spawn(move || {
        for stream in up.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut fixed = [0u8; 16];
                if stream.read_exact(&mut fixed).is_err() {
                    return;
                }
                let mut rest = vec![0u8; usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))];
                if stream.read_exact(&mut rest).is_err() {
                    return;
                }
                let tlvs: String = rest.iter().skip(12).map(|b| format!("{b:02x}")).collect();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
                    head.push(byte[0]);
                }
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{tlvs}", tlvs.len());
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    let cluster = format!(
        "{}    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport\n        config: {{ version: V2, pass_through_tlvs: {{ match_type: INCLUDE_ALL }} }}\n        transport_socket:\n          name: envoy.transport_sockets.raw_buffer\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer\n",
        static_cluster("pp", &[up_port])
    );
    let routes = "              - match: { prefix: \"/\" }\n                route: { cluster: pp }\n";
    let listener = crate::http_util::http_listener("web", "", &crate::http_util::one_vhost(routes), "").replacen(
        "    filter_chains:\n",
        "    listener_filters:\n    - name: envoy.filters.listener.proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol\n        pass_through_tlvs: { match_type: INCLUDE, tlv_type: [225, 5] }\n    filter_chains:\n",
        1,
    );
    let c = Courier::start(&config(&[listener], &[cluster]), 1);
    let mut s = connect(c.listener("web"));
    // PROXY v2, 192.0.2.7:4321 -> 198.51.100.9:8443, TLVs e1 "a", e2 "b", 05 "id".
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x19".to_vec();
    header.extend_from_slice(&[192, 0, 2, 7, 198, 51, 100, 9, 0x10, 0xe1, 0x20, 0xfb]);
    header.extend_from_slice(b"\xe1\x00\x01a\xe2\x00\x01b\x05\x00\x02id");
    s.write_all(&header).expect("write");
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("write");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The kept TLVs (e1, 05) in the client's order; e2 was not kept.
    assert!(response.ends_with("\r\n\r\ne10001610500026964"), "{response}");
}
