//! The management server's connection, the `xds` cluster's: counted in its
//! `cluster.xds.*` stats as Envoy's gRPC client counts it (a connection, an
//! HTTP/2 one, a request answered 200 also under `internal.`, destroyed by
//! the server with the request active), and kept alive by the cluster's
//! `connection_keepalive`: a management server that stops answering (a TCP
//! relay in the test goes silent) is noticed by the unanswered PING, the
//! connection closed and the stream opened again. Each session runs against
//! Courier and then the real Envoy 1.40, and both must end the same.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::harness::{static_cluster, wait_for};
use crate::shared_net::http_upstream;
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, LISTENER_TYPE};
use crate::xds_grpc::{admin_stat, ads_bootstrap, clusters, is_ack, same_as_envoy, web_listener, Started};

const XDS_STATS: &[&str] = &[
    "upstream_cx_total",
    "upstream_cx_active",
    "upstream_cx_http2_total",
    "upstream_rq_total",
    "upstream_rq_pending_total",
    "upstream_rq_active",
    "upstream_rq_200",
    "upstream_rq_2xx",
    "upstream_rq_completed",
    "internal.upstream_rq_200",
    "internal.upstream_rq_2xx",
    "internal.upstream_rq_completed",
    "http2.streams_active",
];

fn xds_stats(admin: std::net::SocketAddr, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("cluster.xds.{n}: {}", admin_stat(admin, &format!("cluster.xds.{n}")))).collect()
}

fn stats_session(start: fn(&str) -> Started) -> Vec<String> {
    let a = http_upstream("a");
    let mut xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    let (admin, guard) = start(&ads_bootstrap(&xds, "", ""));
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    let mut out = xds_stats(admin, XDS_STATS);
    // The server closes the connection under the open stream. (What the
    // reconnection attempts count next depends on the back-off: not compared.)
    xds.stop();
    wait_for("disconnected", || admin_stat(admin, "control_plane.connected_state") == 0);
    out.push("-- the server went away".into());
    let gone = ["upstream_cx_active", "upstream_rq_active", "upstream_cx_destroy_remote_with_active_rq"];
    out.extend(xds_stats(admin, &gone));
    drop(guard);
    out
}

#[test]
fn the_management_server_s_connection_is_counted_as_envoys() {
    let out = same_as_envoy(stats_session);
    assert!(out.contains(&"cluster.xds.upstream_rq_200: 1".to_string()), "{out:#?}");
}

/// A TCP relay to `target` that can go silent: the connections open then stop
/// passing anything (kept open, reading and dropping), as a management
/// server that hangs; later connections pass as before.
struct Relay {
    port: u16,
    silenced: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("addr").port();
        let silenced: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, k) = (silenced.clone(), sockets.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let mute = Arc::new(AtomicBool::new(false));
                s.lock().expect("relay").push(mute.clone());
                let mut kept = k.lock().expect("relay");
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { continue };
                    kept.push(from.try_clone().expect("clone"));
                    let mute = mute.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            if !mute.load(Ordering::Relaxed) && to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Relay { port, silenced, sockets }
    }

    /// The connections open now pass nothing any more.
    fn silence(&self) {
        for mute in self.silenced.lock().expect("relay").iter() {
            mute.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for s in self.sockets.lock().expect("relay").iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn keepalive_session(start: fn(&str) -> Started) -> Vec<String> {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    let relay = Relay::start(xds.port());
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    // The `xds` cluster to the relay, PINGing every 200 ms, giving up after 200 ms.
    let yaml = ads_bootstrap(&xds, "", "").replace(&format!("port_value: {}", xds.port()), &format!("port_value: {}", relay.port)).replace(
        "explicit_http_config: { http2_protocol_options: {} }",
        "explicit_http_config: { http2_protocol_options: { connection_keepalive: { interval: 0.2s, timeout: 0.2s } } }",
    );
    let (admin, guard) = start(&yaml);
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    let mut out = vec![format!("streams {}", xds.streams())];
    relay.silence();
    wait_for("a PING timed out", || admin_stat(admin, "cluster.xds.http2.keepalive_timeout") >= 1);
    // The stream opens again through the relay, and an update flows on it.
    wait_for("a new stream", || xds.streams() == 2);
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c2", clusters(&[static_cluster("a", &[a.port()]), static_cluster("b", &[a.port()])]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c2"));
    out.push(format!("streams {}", xds.streams()));
    out.push(format!("connected {}", admin_stat(admin, "control_plane.connected_state")));
    out.push(format!("keepalive_timeout {}", admin_stat(admin, "cluster.xds.http2.keepalive_timeout")));
    out.push(format!(
        "closed locally with the stream {}",
        admin_stat(admin, "cluster.xds.upstream_cx_destroy_local_with_active_rq")
    ));
    drop(guard);
    out
}

#[test]
fn a_silent_management_server_is_noticed_by_keepalive_and_reconnected_as_envoy() {
    let out = same_as_envoy(keepalive_session);
    assert_eq!(out[1], "streams 2", "{out:#?}");
}

/// `grpc_services[0].timeout` on the ADS stream: Envoy 1.40 applies no timeout
/// to a streaming xDS call (checked against a management server that never
/// answers, with and without response headers: no reset, no new stream, no
/// `upstream_rq_timeout`), so the stream outlives it and updates keep flowing
/// on it. The test waits past the timeout on purpose: what it shows is that
/// nothing happens then.
fn grpc_timeout_session(start: fn(&str) -> Started) -> Vec<String> {
    let a = http_upstream("a");
    let xds = XdsServer::start();
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("a", &[a.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "a")]);
    let plain = "grpc_services: [{ envoy_grpc: { cluster_name: xds } }]";
    let yaml = ads_bootstrap(&xds, "", "");
    assert!(yaml.contains(plain), "ads_bootstrap changed its grpc_services");
    let yaml = yaml.replace(plain, "grpc_services: [{ envoy_grpc: { cluster_name: xds }, timeout: 0.2s }]");
    let (admin, guard) = start(&yaml);
    xds.wait_request(0, |r| is_ack(r, LISTENER_TYPE, "l1"));
    // The management server says nothing for well past the timeout.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let seen = xds.requests().len();
    xds.push(CLUSTER_TYPE, "c2", clusters(&[static_cluster("a", &[a.port()]), static_cluster("b", &[a.port()])]));
    xds.wait_request(seen, |r| is_ack(r, CLUSTER_TYPE, "c2"));
    let mut out = vec![format!("streams {}", xds.streams())];
    out.push(format!("connected {}", admin_stat(admin, "control_plane.connected_state")));
    out.extend(xds_stats(
        admin,
        &["upstream_rq_total", "upstream_rq_active", "upstream_rq_timeout", "upstream_cx_total"],
    ));
    drop(guard);
    out
}

#[test]
fn the_grpc_timeout_does_not_end_an_ads_stream_as_in_envoy() {
    let out = same_as_envoy(grpc_timeout_session);
    assert_eq!(out[0], "streams 1", "{out:#?}");
    assert!(out.contains(&"cluster.xds.upstream_rq_timeout: 0".to_string()), "{out:#?}");
}
