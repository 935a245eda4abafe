//! `envoy.filters.network.tcp_proxy` end to end.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use crate::harness::*;

fn echo_proxy(extra: &str) -> (Upstream, Courier) {
    let up = Upstream::echo();
    let c = Courier::start(
        &config(&[tcp_listener("tcp_in", "tcp_stats", "echo", extra)], &[static_cluster("echo", &[up.port()])]),
        2,
    );
    (up, c)
}

#[test]
fn echoes_small_payload_and_counts_bytes() {
    let (_up, c) = echo_proxy("");
    let mut s = connect(c.listener("tcp_in"));
    s.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(s);
    c.wait_stat("tcp.tcp_stats.downstream_cx_rx_bytes_total", |v| v == 5);
    c.wait_stat("cluster.echo.upstream_cx_active", |v| v == 0);
    assert_eq!(c.stat("tcp.tcp_stats.downstream_cx_total"), Some(1));
    assert_eq!(c.stat("tcp.tcp_stats.downstream_cx_tx_bytes_total"), Some(5));
    assert_eq!(c.stat("cluster.echo.upstream_cx_total"), Some(1));
    assert_eq!(c.stat("cluster.echo.upstream_cx_rx_bytes_total"), Some(5));
    assert_eq!(c.stat("cluster.echo.upstream_cx_tx_bytes_total"), Some(5));
    c.wait_stat("listener.127.0.0.1_0.downstream_cx_destroy", |v| v == 1);
    assert_eq!(c.stat("listener.127.0.0.1_0.downstream_cx_total"), Some(1));
}

#[test]
fn echoes_multi_megabyte_payload_with_half_close() {
    let (_up, c) = echo_proxy("");
    echo_round_trip(connect(c.listener("tcp_in")), 8 * 1024 * 1024);
}

/// Sends `len` patterned bytes on `s` (to an echo behind the proxy), then
/// half-closes, while reading: every byte must come back, in order.
pub fn echo_round_trip(s: std::net::TcpStream, len: u32) {
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut writer = s.try_clone().unwrap();
    let to_send = payload.clone();
    // Write and read concurrently: neither side may need to buffer everything.
    let w = std::thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        // Half-close: the echo server sees EOF only through Courier's FIN.
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(payload.len());
    let mut r = s;
    r.read_to_end(&mut got).unwrap();
    w.join().unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "payload corrupted");
}

#[test]
fn upstream_half_close_reaches_client_while_client_can_still_send() {
    // The upstream greets, then closes its write side; the client must see EOF
    // yet still be able to send, and the upstream must receive it.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let tx = std::sync::Mutex::new(tx);
    let up = Upstream::start(move |mut s| {
        s.write_all(b"bye").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let _ = tx.lock().unwrap().send(got);
    });
    let c = Courier::start(&config(&[tcp_listener("tcp_in", "t", "up", "")], &[static_cluster("up", &[up.port()])]), 1);
    let mut s = connect(c.listener("tcp_in"));
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"bye");
    s.write_all(b"still here").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let received = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(received, b"still here");
}

#[test]
fn connect_failure_closes_downstream_and_counts() {
    let dead = closed_port();
    let c =
        Courier::start(&config(&[tcp_listener("tcp_dead", "dead", "dead", "")], &[static_cluster("dead", &[dead])]), 1);
    let mut s = connect(c.listener("tcp_dead"));
    // Closed (FIN or RST) without a byte of data.
    assert_closes_silently(&mut s);
    c.wait_stat("cluster.dead.upstream_cx_connect_fail", |v| v == 1);
    assert_eq!(c.stat("cluster.dead.upstream_cx_connect_attempts_exceeded"), Some(1));
    assert_eq!(c.stat("cluster.dead.upstream_cx_active"), Some(0));
    assert_eq!(c.stat("tcp.dead.downstream_cx_total"), Some(1));
}

#[test]
fn max_connect_attempts_retries_other_hosts() {
    let up = Upstream::greeter("ok");
    let dead = closed_port();
    let c = Courier::start(
        &config(
            &[tcp_listener("l", "t", "mixed", "          max_connect_attempts: 2\n")],
            &[static_cluster("mixed", &[dead, up.port()])],
        ),
        1,
    );
    // Round robin starts at a random host, then alternates, so at least one of two
    // connections starts at the dead host; its second attempt reaches the live one.
    for _ in 0..2 {
        let mut s = connect(c.listener("l"));
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    }
    let fails = c.stat("cluster.mixed.upstream_cx_connect_fail").unwrap();
    assert!(fails == 1 || fails == 2, "{fails} connect failures");
    assert_eq!(c.stat("cluster.mixed.upstream_cx_connect_attempts_exceeded"), Some(0));
    assert_eq!(c.stat("cluster.mixed.upstream_rq_pending_failure_eject"), Some(fails));
}

#[test]
fn unknown_cluster_closes_and_counts_no_route() {
    let up = Upstream::echo();
    let c =
        Courier::start(&config(&[tcp_listener("l", "nr", "missing", "")], &[static_cluster("echo", &[up.port()])]), 1);
    let mut s = connect(c.listener("l"));
    assert_closes_silently(&mut s);
    c.wait_stat("tcp.nr.downstream_cx_no_route", |v| v == 1);
}

#[test]
fn round_robin_over_hosts_per_worker() {
    let a = Upstream::greeter("A");
    let b = Upstream::greeter("B");
    let c3 = Upstream::greeter("C");
    let c = Courier::start(
        &config(&[tcp_listener("l", "rr", "three", "")], &[static_cluster("three", &[a.port(), b.port(), c3.port()])]),
        1,
    );
    let addr = c.listener("l");
    let seen: String = (0..6)
        .map(|_| {
            let mut s = connect(addr);
            let mut buf = [0u8; 1];
            s.read_exact(&mut buf).unwrap();
            buf[0] as char
        })
        .collect();
    // Each host once in every 3 connections, in config order, from the random host
    // the worker's balancer starts at.
    assert!("ABCABCABC".contains(&seen), "not a rotation of ABC: {seen}");
}

#[test]
fn idle_timeout_closes_quiet_connections() {
    let (_up, c) = echo_proxy("          idle_timeout: 0.3s\n");
    let mut s = connect(c.listener("tcp_in"));
    // Before the last activity, so the timeout cannot end sooner than 0.3 s after.
    let started = std::time::Instant::now();
    s.write_all(b"x").unwrap();
    let mut buf = [0u8; 1];
    s.read_exact(&mut buf).unwrap();
    assert_closes_silently(&mut s);
    assert!(started.elapsed() >= Duration::from_millis(290), "closed too early: {:?}", started.elapsed());
    c.wait_stat("tcp.tcp_stats.idle_timeout", |v| v == 1);
    c.wait_stat("cluster.echo.upstream_cx_destroy_local", |v| v == 1);
}

#[test]
fn slow_reader_does_not_make_courier_buffer_without_limit() {
    const TOTAL: usize = 256 * 1024 * 1024;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent2 = sent.clone();
    let up = Upstream::start(move |mut s| {
        let chunk = vec![7u8; 64 * 1024];
        let mut n = 0;
        while n < TOTAL {
            match s.write(&chunk) {
                Ok(w) => {
                    n += w;
                    sent2.store(n, std::sync::atomic::Ordering::SeqCst);
                }
                Err(_) => return,
            }
        }
    });
    let c = Courier::start(
        &config(&[tcp_listener("l", "slow", "firehose", "")], &[static_cluster("firehose", &[up.port()])]),
        1,
    );
    let rss_before = c.rss();
    let mut s = connect(c.listener("l"));
    // Wait until the upstream is blocked: the amount it managed to send stops growing.
    let mut last = usize::MAX;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = sent.load(std::sync::atomic::Ordering::SeqCst);
        if now == last && now > 0 {
            break;
        }
        last = now;
        assert!(std::time::Instant::now() < deadline, "upstream never blocked");
    }
    let stalled_at = sent.load(std::sync::atomic::Ordering::SeqCst);
    // Loopback socket buffers hold a few MiB on each side; Courier itself at most
    // one 64 KiB chunk per direction. Nothing near the 256 MiB on offer.
    assert!(stalled_at < 48 * 1024 * 1024, "upstream pushed {stalled_at} bytes into a non-reading client");
    let grown = c.rss().saturating_sub(rss_before);
    assert!(grown < 16 * 1024 * 1024, "courier RSS grew by {grown} bytes");
    // Now read everything: no byte lost.
    let mut total = 0usize;
    let mut buf = vec![0u8; 1024 * 1024];
    while total < TOTAL {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early at {total}");
        total += n;
    }
    assert_eq!(total, TOTAL);
}

#[test]
fn two_workers_both_accept() {
    let (_up, c) = echo_proxy("");
    let addr = c.listener("tcp_in");
    for _ in 0..64 {
        let mut s = connect(addr);
        s.write_all(b"p").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
    }
    c.wait_stat("listener.127.0.0.1_0.downstream_cx_total", |v| v == 64);
    let w0 = c.stat("listener.127.0.0.1_0.worker_0.downstream_cx_total").unwrap();
    let w1 = c.stat("listener.127.0.0.1_0.worker_1.downstream_cx_total").unwrap();
    assert_eq!(w0 + w1, 64);
    assert!(w0 > 0 && w1 > 0, "one worker took every connection: {w0}/{w1}");
}

#[test]
fn shared_socket_without_reuse_port_also_serves() {
    let up = Upstream::echo();
    let listener = tcp_listener("l", "shared", "echo", "")
        .replace("    filter_chains:", "    enable_reuse_port: false\n    filter_chains:");
    let c = Courier::start(&config(&[listener], &[static_cluster("echo", &[up.port()])]), 2);
    for _ in 0..8 {
        let mut s = connect(c.listener("l"));
        s.write_all(b"q").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"q");
    }
}
