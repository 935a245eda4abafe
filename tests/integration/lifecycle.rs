//! Start-up, shutdown with drain, and the guard dog.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn sigterm_drains_open_connections_then_exits_zero() {
    let up = Upstream::echo();
    let mut c = Courier::start_with(
        &config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])]),
        2,
        &["--drain-time-s", "30"],
        &[],
    );
    let addr = c.listener("l");
    let mut open = connect(addr);
    open.write_all(b"1").unwrap();
    let mut b = [0u8; 1];
    open.read_exact(&mut b).unwrap();
    c.send_signal(libc::SIGTERM);
    // Draining: no new connections, the open one keeps working.
    c.wait_until(|_| std::net::TcpStream::connect(addr).is_err(), "listener closed on SIGTERM");
    assert_eq!(c.admin_get("/ready"), (503, "DRAINING\n".to_string()));
    open.write_all(b"2").unwrap();
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"2");
    // Closing the last connection ends the drain early.
    let closed_at = Instant::now();
    drop(open);
    let status = c.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    assert!(closed_at.elapsed() < Duration::from_secs(10));
}

#[test]
fn drain_time_bounds_shutdown() {
    let up = Upstream::echo();
    let mut c = Courier::start_with(
        &config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])]),
        1,
        &["--drain-time-s", "1"],
        &[],
    );
    let mut open = connect(c.listener("l"));
    open.write_all(b"1").unwrap();
    let mut b = [0u8; 1];
    open.read_exact(&mut b).unwrap();
    let started = Instant::now();
    assert_eq!(c.admin_post("/quitquitquit"), (200, "OK\n".to_string()));
    // Draining: the open connection keeps working...
    open.write_all(b"2").unwrap();
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"2");
    // ...until the drain time is over, when it is closed as the worker exits.
    assert_closes_silently(&mut open);
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the drain time was over");
    let status = c.wait_exit(Duration::from_secs(20));
    assert!(status.success());
}

#[test]
fn watchdog_counts_a_blocked_worker() {
    let up = Upstream::echo();
    let yaml = format!(
        "watchdogs:\n  worker_watchdog: {{ miss_timeout: 0.1s, megamiss_timeout: 0.3s }}\n{}",
        config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])])
    );
    let c = Courier::start_with(&yaml, 2, &[], &[("COURIER_TEST_HOOKS", "1")]);
    assert_eq!(c.stat("server.worker_1.watchdog_miss"), Some(0));
    assert_eq!(c.admin_post("/courier_test/block_worker?worker=1&ms=800").0, 200);
    c.wait_stat("server.worker_1.watchdog_mega_miss", |v| v == 1);
    assert_eq!(c.stat("server.worker_1.watchdog_miss"), Some(1));
    assert!(c.stat("workers.watchdog_miss").unwrap() >= 1);
    assert_eq!(c.stat("server.worker_0.watchdog_miss"), Some(0));
    assert_eq!(c.stat("main_thread.watchdog_miss"), Some(0));
}

#[test]
fn watchdog_kill_timeout_aborts_a_stuck_process() {
    let up = Upstream::echo();
    let yaml = format!(
        "watchdogs:\n  worker_watchdog: {{ miss_timeout: 0.1s, megamiss_timeout: 0.2s, kill_timeout: 0.5s }}\n{}",
        config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])])
    );
    let mut c = Courier::start_with(&yaml, 1, &[], &[("COURIER_TEST_HOOKS", "1")]);
    assert_eq!(c.admin_post("/courier_test/block_worker?worker=0&ms=5000").0, 200);
    let status = c.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "a stuck worker past kill_timeout must abort the process");
}

#[test]
fn legacy_watchdog_applies_to_the_workers() {
    // The deprecated bootstrap `watchdog` sets both guard dogs when `watchdogs` is absent.
    let up = Upstream::echo();
    let yaml = format!(
        "watchdog: {{ miss_timeout: 0.1s, megamiss_timeout: 0.3s }}\n{}",
        config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])])
    );
    let c = Courier::start_with(&yaml, 1, &[], &[("COURIER_TEST_HOOKS", "1")]);
    assert_eq!(c.admin_post("/courier_test/block_worker?worker=0&ms=800").0, 200);
    // With Envoy's default megamiss_timeout (1s) an 800 ms stall is no mega-miss.
    c.wait_stat("server.worker_0.watchdog_mega_miss", |v| v == 1);
    assert_eq!(c.stat("server.worker_0.watchdog_miss"), Some(1));
}

#[test]
fn main_thread_watchdog_counts_a_blocked_main_thread() {
    let up = Upstream::echo();
    let yaml = format!(
        "watchdogs:\n  main_thread_watchdog: {{ miss_timeout: 0.1s, megamiss_timeout: 0.3s }}\n{}",
        config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])])
    );
    let c = Courier::start_with(&yaml, 1, &[], &[("COURIER_TEST_HOOKS", "1")]);
    assert_eq!(c.stat("main_thread.watchdog_mega_miss"), Some(0));
    // Answered once the main thread is free again, so the stall is over by then.
    assert_eq!(c.admin_post("/courier_test/block_worker?worker=main&ms=800").0, 200);
    c.wait_stat("main_thread.watchdog_mega_miss", |v| v == 1);
    assert_eq!(c.stat("main_thread.watchdog_miss"), Some(1));
    // The worker's guard dog keeps Envoy's defaults and saw nothing.
    assert_eq!(c.stat("server.worker_0.watchdog_miss"), Some(0));
}

#[test]
fn watchdog_multikill_aborts_when_enough_workers_are_stuck() {
    // Two stuck workers past multikill_timeout abort the process (with the default
    // threshold, 0%), though neither reaches a kill_timeout (none is set).
    let up = Upstream::echo();
    let yaml = format!(
        "watchdogs:\n  worker_watchdog: {{ miss_timeout: 0.1s, megamiss_timeout: 0.3s, multikill_timeout: 0.2s }}\n{}",
        config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])])
    );
    let mut c = Courier::start_with(&yaml, 3, &[], &[("COURIER_TEST_HOOKS", "1")]);
    for w in [0, 1] {
        assert_eq!(c.admin_post(&format!("/courier_test/block_worker?worker={w}&ms=5000")).0, 200);
    }
    let status = c.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "two workers stuck past multikill_timeout must abort the process");
}

#[test]
fn watchdog_multikill_threshold_spares_fewer_stuck_workers() {
    // Two of three workers (67%) stuck past multikill_timeout are below an 80%
    // multikill_threshold: the process lives on (compare the test above, where the
    // default 0% aborts it).
    let up = Upstream::echo();
    let yaml = format!(
        "watchdogs:\n  worker_watchdog: {{ miss_timeout: 0.1s, megamiss_timeout: 0.3s, multikill_timeout: 0.2s, \
         multikill_threshold: {{ value: 80 }} }}\n{}",
        config(&[tcp_listener("l", "t", "echo", "")], &[static_cluster("echo", &[up.port()])])
    );
    let c = Courier::start_with(&yaml, 3, &[], &[("COURIER_TEST_HOOKS", "1")]);
    let blocked_until = std::time::Instant::now() + Duration::from_millis(1500);
    for w in [0, 1] {
        assert_eq!(c.admin_post(&format!("/courier_test/block_worker?worker={w}&ms=1500")).0, 200);
    }
    // The guard dog saw both stuck past megamiss (so past multikill_timeout too)...
    for w in [0, 1] {
        c.wait_stat(&format!("server.worker_{w}.watchdog_mega_miss"), |v| v >= 1);
    }
    // ...and once they are free again the process still answers.
    std::thread::sleep(blocked_until.saturating_duration_since(std::time::Instant::now()));
    assert_eq!(c.admin_get("/ready").0, 200, "the process must outlive a stuck share below multikill_threshold");
}

#[test]
fn embedded_default_config_is_valid() {
    let out = std::process::Command::new(courier_bin()).args(["--mode", "validate"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration '<embedded default>' OK"));
}

#[test]
fn bad_log_level_and_version() {
    let out = std::process::Command::new(courier_bin()).args(["--mode", "validate", "-l", "loud"]).output().unwrap();
    assert!(!out.status.success());
    let out = std::process::Command::new(courier_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("courier "));
}
