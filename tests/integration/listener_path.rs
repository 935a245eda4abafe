//! The listener path end to end: listener filters (TLS inspector, PROXY protocol)
//! and the choice of a filter chain by what they found, on real connections.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::*;

const TLS_INSPECTOR: &str = "    - name: envoy.filters.listener.tls_inspector\n      typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}\n";

const ORIGINAL_DST: &str = "    - name: envoy.filters.listener.original_dst\n      typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}\n";

fn proxy_protocol(extra: &str) -> String {
    format!("    - name: envoy.filters.listener.proxy_protocol\n      typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol{extra}}}\n")
}

/// One filter chain: `filter_chain_match` (flow YAML, or empty) and a tcp_proxy to `cluster`.
fn tcp_chain(chain_match: &str, cluster: &str) -> String {
    let m = if chain_match.is_empty() { String::new() } else { format!("      filter_chain_match: {chain_match}\n") };
    format!("    - name: to_{cluster}\n{m}      filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: {cluster}\n          cluster: {cluster}\n")
}

/// A listener `lp` on 127.0.0.1:0 with the given listener filters, extra
/// listener fields and chains.
fn listener(filters: &str, extra: &str, chains: &[String]) -> String {
    format!(
        "  - name: lp\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}\n    listener_filters:\n{filters}{extra}    filter_chains:\n{}",
        chains.concat()
    )
}

/// A TLS ClientHello record with SNI `sni` and the given ALPN protocols, encoded
/// by hand (the filter only reads it, no handshake follows).
fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
    let mut exts = Vec::new();
    let mut names = vec![0u8];
    names.extend((sni.len() as u16).to_be_bytes());
    names.extend(sni.as_bytes());
    exts.extend([0, 0]);
    exts.extend(((names.len() + 2) as u16).to_be_bytes());
    exts.extend((names.len() as u16).to_be_bytes());
    exts.extend(names);
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn.iter().flat_map(|p| std::iter::once(p.len() as u8).chain(p.bytes())).collect();
        exts.extend([0, 16]);
        exts.extend(((list.len() + 2) as u16).to_be_bytes());
        exts.extend((list.len() as u16).to_be_bytes());
        exts.extend(list);
    }
    let mut body = vec![3, 3];
    body.extend([0x42; 32]);
    body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut record = vec![22, 3, 1];
    record.extend(((body.len() + 4) as u16).to_be_bytes());
    record.push(1);
    record.extend(&(body.len() as u32).to_be_bytes()[1..]);
    record.extend(body);
    record
}

/// Sends `bytes`, half-closes and reads everything until the proxy closes.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(bytes).expect("write");
    // A proxy that closed at once (no chain) may have reset already.
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn sni_passthrough_routes_each_server_name_to_its_upstream() {
    let (a, b) = (Upstream::greeter("A:"), Upstream::greeter("B:"));
    let chains = [
        tcp_chain("{server_names: [a.example]}", "a"),
        tcp_chain("{server_names: ['*.b.example'], transport_protocol: tls}", "b"),
    ];
    let c = Courier::start(
        &config(
            &[listener(TLS_INSPECTOR, "", &chains)],
            &[static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()])],
        ),
        2,
    );
    let addr = c.listener("lp");
    // The upstream gets the ClientHello untouched: the inspector only peeked.
    let hello = client_hello("a.example", &["h2"]);
    assert_eq!(exchange(addr, &hello), [b"A:".as_slice(), &hello].concat());
    let hello = client_hello("WWW.b.example", &[]);
    assert_eq!(exchange(addr, &hello), [b"B:".as_slice(), &hello].concat());
    // An SNI no chain names, and a client that is not TLS: closed, counted.
    assert!(exchange(addr, &client_hello("c.example", &[])).is_empty());
    assert!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").is_empty());
    c.wait_stat("listener.127.0.0.1_0.no_filter_chain_match", |v| v == 2);
    assert_eq!(c.stat("tls_inspector.tls_found"), Some(3));
    assert_eq!(c.stat("tls_inspector.tls_not_found"), Some(1));
    assert_eq!(c.stat("tls_inspector.sni_found"), Some(3));
    assert_eq!(c.stat("tls_inspector.alpn_found"), Some(1));
    assert_eq!(c.stat("tls_inspector.alpn_not_found"), Some(2));
    assert_eq!(c.stat("listener.127.0.0.1_0.downstream_cx_total"), Some(2));
}

#[test]
fn a_client_hello_and_a_proxy_header_in_pieces_are_waited_for() {
    let up = Upstream::greeter("up:");
    let chains = [tcp_chain("{server_names: [a.example]}", "up")];
    let filters = proxy_protocol("") + TLS_INSPECTOR;
    let c = Courier::start(&config(&[listener(&filters, "", &chains)], &[static_cluster("up", &[up.port()])]), 1);
    let header = b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 443\r\n".as_slice();
    let hello = client_hello("a.example", &["h2"]);
    let all = [header, &hello].concat();
    let mut s = connect(c.listener("lp"));
    // A partial header held for a while costs no CPU: the filter waits for new
    // bytes rather than peeking the same ones again.
    s.write_all(&all[..10]).expect("write");
    let before = cpu_ticks(c.pid());
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu_ticks(c.pid()) - before;
    assert!(spent <= 10, "{spent} ticks of CPU while waiting for bytes");
    let all = &all[10..];
    let header = &header[10..];
    // Byte runs that end inside the header, at its end, and inside the ClientHello.
    for piece in [&all[..5], &all[5..header.len()], &all[header.len()..header.len() + 7], &all[header.len() + 7..]] {
        s.write_all(piece).expect("write");
        std::thread::sleep(Duration::from_millis(60));
    }
    let mut got = vec![0u8; 3 + hello.len()];
    s.read_exact(&mut got).expect("proxied");
    assert_eq!(got, [b"up:".as_slice(), &hello].concat());
    assert_eq!(c.stat("tls_inspector.sni_found"), Some(1));
}

#[test]
fn a_truncated_client_hello_closes_on_the_client_and_is_counted() {
    let up = Upstream::greeter("up:");
    let c = Courier::start(
        &config(&[listener(TLS_INSPECTOR, "", &[tcp_chain("", "up")])], &[static_cluster("up", &[up.port()])]),
        1,
    );
    let hello = client_hello("a.example", &[]);
    assert!(exchange(c.listener("lp"), &hello[..20]).is_empty());
    c.wait_stat("listener.127.0.0.1_0.downstream_listener_filter_remote_close", |v| v == 1);
    assert_eq!(c.stat("listener.127.0.0.1_0.downstream_cx_total"), Some(0));
}

#[test]
fn proxy_protocol_addresses_choose_the_chain_by_destination_port_and_source_prefix() {
    let (a, b, d) = (Upstream::greeter("A:"), Upstream::greeter("B:"), Upstream::greeter("D:"));
    let chains = [
        tcp_chain("{destination_port: 8443}", "a"),
        tcp_chain("{source_prefix_ranges: [{address_prefix: 192.0.2.0, prefix_len: 24}], source_ports: [7000]}", "b"),
    ];
    let default = "    default_filter_chain:\n      filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: d\n          cluster: d\n";
    let l = listener(&proxy_protocol(""), "", &chains) + default;
    let c = Courier::start(
        &config(
            &[l],
            &[static_cluster("a", &[a.port()]), static_cluster("b", &[b.port()]), static_cluster("d", &[d.port()])],
        ),
        1,
    );
    let addr = c.listener("lp");
    // The header is consumed: the upstream sees only what follows it.
    assert_eq!(exchange(addr, b"PROXY TCP4 198.51.100.7 203.0.113.1 5555 8443\r\nx"), b"A:x");
    assert_eq!(exchange(addr, b"PROXY TCP4 192.0.2.9 203.0.113.1 7000 80\r\ny"), b"B:y");
    assert_eq!(exchange(addr, b"PROXY TCP4 192.0.2.9 203.0.113.1 7001 80\r\nz"), b"D:z");
    // v2, binary: 192.0.2.10:7000 -> 10.0.0.1:8443 (destination port first).
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend([192, 0, 2, 10, 10, 0, 0, 1]);
    v2.extend(7000u16.to_be_bytes());
    v2.extend(8443u16.to_be_bytes());
    v2.extend(b"v");
    assert_eq!(exchange(addr, &v2), b"A:v");
    assert_eq!(c.stat("proxy_proto.versions.v1.found"), Some(3));
    assert_eq!(c.stat("proxy_proto.versions.v2.found"), Some(1));
    // Not a PROXY header, and a malformed one: closed, counted.
    assert!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").is_empty());
    assert!(exchange(addr, b"PROXY TCP4 300.0.0.1 1.1.1.1 1 2\r\n").is_empty());
    c.wait_stat("downstream_cx_proxy_proto_error", |v| v == 2);
    assert_eq!(c.stat("proxy_proto.not_found_disallowed"), Some(1));
    assert_eq!(c.stat("proxy_proto.versions.v1.error"), Some(1));
}

#[test]
fn proxy_protocol_client_shows_in_access_log_and_x_forwarded_for() {
    let up = http_upstream("app");
    let dir = TempDir::new("lpath");
    let log = dir.0.join("access.log");
    let hcm_extra = format!(
        "          use_remote_address: true\n          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format: {{text_format_source: {{inline_string: \"%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%\\n\"}}}}\n",
        log.display()
    );
    let http = http_listener("web", &hcm_extra, &one_vhost(&prefix_route("/", "app", "")), "");
    let http = http.replacen(
        "    filter_chains:",
        &format!(
            "    listener_filters:\n{}    filter_chains:",
            proxy_protocol(", allow_requests_without_proxy_protocol: true")
        ),
        1,
    );
    let c = Courier::start(&config(&[http], &[static_cluster("app", &[up.port()])]), 1);
    let mut client = Client::connect(c.listener("web"));
    client.send_raw(b"PROXY TCP4 198.51.100.7 203.0.113.1 5555 8080\r\n");
    let r = client.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().header("x-forwarded-for"), Some("198.51.100.7"));
    // Without a header (allowed here) the connection's own address counts (a
    // loopback client is given the host's address, as Envoy does).
    let r = Client::connect(c.listener("web")).get("/");
    assert!(r.seen().header("x-forwarded-for").is_some_and(|xff| xff != "198.51.100.7"));
    let lines = wait_for_lines(&log, 2);
    assert_eq!(lines[0], "198.51.100.7:5555 203.0.113.1:8080");
    assert!(lines[1].starts_with("127.0.0.1:"), "{}", lines[1]);
    assert_eq!(c.stat("proxy_proto.not_found_allowed"), Some(1));
}

#[test]
fn listener_filters_timeout_closes_or_continues_as_configured() {
    let up = Upstream::greeter("server-first:");
    let timeout = "    listener_filters_timeout: 0.3s\n";
    let c = Courier::start(
        &config(&[listener(TLS_INSPECTOR, timeout, &[tcp_chain("", "up")])], &[static_cluster("up", &[up.port()])]),
        1,
    );
    let started = Instant::now();
    let mut s = connect(c.listener("lp"));
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    c.wait_stat("listener.127.0.0.1_0.downstream_pre_cx_timeout", |v| v == 1);
    drop(c);

    // With continue_on_listener_filters_timeout a server-first protocol works.
    let extra = format!("{timeout}    continue_on_listener_filters_timeout: true\n");
    let c = Courier::start(
        &config(
            &[listener(TLS_INSPECTOR, &extra, &[tcp_chain("{transport_protocol: raw_buffer}", "up")])],
            &[static_cluster("up", &[up.port()])],
        ),
        1,
    );
    let mut s: TcpStream = connect(c.listener("lp"));
    let mut greeting = [0u8; 13];
    s.read_exact(&mut greeting).expect("greeting after the timeout");
    assert_eq!(&greeting, b"server-first:");
    assert_eq!(c.stat("listener.127.0.0.1_0.downstream_pre_cx_timeout"), Some(1));
}

#[test]
fn duplicate_filter_chain_matches_are_refused_as_envoy_refuses_them() {
    let chains =
        [tcp_chain("{server_names: [a.example, b.example]}", "a"), tcp_chain("{server_names: [b.example]}", "a")];
    let (ok, out) = validate(&config(&[listener(TLS_INSPECTOR, "", &chains)], &[static_cluster("a", &[1])]));
    assert!(!ok);
    assert!(
        out.contains(
            "error adding listener '127.0.0.1:0': multiple filter chains with overlapping matching rules are defined"
        ),
        "{out}"
    );
}

#[test]
fn original_dst_without_a_redirect_leaves_the_listeners_address() {
    // On loopback the kernel knows no original destination (no iptables rule):
    // the connection keeps the listener's address, which the chain matches on.
    let up = Upstream::greeter("up:");
    let chains = [
        tcp_chain("{destination_port: 1}", "none"),
        tcp_chain("{prefix_ranges: [{address_prefix: 127.0.0.1, prefix_len: 32}]}", "up"),
    ];
    let c = Courier::start(
        &config(
            &[listener(ORIGINAL_DST, "", &chains)],
            &[static_cluster("up", &[up.port()]), static_cluster("none", &[1])],
        ),
        1,
    );
    assert_eq!(exchange(c.listener("lp"), b"hello"), b"up:hello");
    assert_eq!(c.stat("listener.127.0.0.1_0.no_filter_chain_match"), Some(0));
    assert_eq!(c.stat("cluster.up.upstream_cx_total"), Some(1));
}

/// User and system CPU time of process `pid`, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends with the last ')': utime and stime
    // are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum()
}
