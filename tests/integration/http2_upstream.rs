//! HTTP/2 to upstream hosts: an HTTP/1.1 client through Courier to an h2c
//! upstream written here on the `h2` crate's server (or, for GOAWAY and the
//! client's SETTINGS, a few raw frames), all on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use h2::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{static_cluster, validate, Courier, IO_TIMEOUT};
use crate::http_util::{one_vhost, prefix_route, start_web, Client};

/// What the upstream does with a request.
#[derive(Clone, Debug)]
enum Action {
    /// 200 with the request body echoed (or `hello h2`), `x-conn: <connection index>`.
    Reply,
    /// `Reply`, with response trailers `x-checksum: abc`.
    ReplyWithTrailers,
    /// `Reply` once `n` requests have arrived (all of them in flight together).
    ReplyWhenSeen(usize),
    /// RST_STREAM with this reason, before any response headers.
    Reset(Reason),
    /// `Reply` once the test calls `H2Upstream::release`.
    ReplyWhenReleased,
    /// 200 with this many bytes of body.
    ReplyBig(usize),
}

/// Holds `ReplyWhenReleased` requests until opened.
#[derive(Default)]
struct Release {
    open: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

/// A request as the upstream saw it.
#[derive(Clone, Debug)]
struct SeenH2 {
    conn: usize,
    method: String,
    scheme: String,
    authority: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// Request trailers.
    trailers: BTreeMap<String, String>,
}

type Plan = Arc<dyn Fn(usize) -> Action + Send + Sync>;

/// An h2c upstream. Its first `goaway_conns` connections answer the first
/// request with GOAWAY (last stream id 0) and close; the others are served by
/// `h2`, with `max_concurrent_streams`, each request's action chosen by its
/// index (from 0, across connections).
struct H2Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<SeenH2>>>,
    connections: Arc<AtomicUsize>,
    release: Arc<Release>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl H2Upstream {
    fn start(max_concurrent_streams: u32, goaway_conns: usize, plan: Plan) -> H2Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let release = Arc::new(Release::default());
        let (s, c, r) = (seen.clone(), connections.clone(), release.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("listener");
                let notify = Arc::new(tokio::sync::Notify::new());
                let accept = async {
                    loop {
                        let Ok((sock, _)) = listener.accept().await else { return };
                        let index = c.fetch_add(1, Ordering::SeqCst);
                        let (s, plan, notify, r) = (s.clone(), plan.clone(), notify.clone(), r.clone());
                        tokio::spawn(async move {
                            if index < goaway_conns {
                                goaway_at_first_request(sock).await;
                            } else {
                                serve(sock, index, max_concurrent_streams, s, plan, notify, r).await;
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        H2Upstream { port, seen, connections, release, stop: Some(stop), thread: Some(thread) }
    }

    /// Lets the held `ReplyWhenReleased` requests (and later ones) be answered.
    fn release(&self) {
        self.release.open.store(true, Ordering::SeqCst);
        self.release.notify.notify_waiters();
    }

    /// Waits (bounded) until the upstream has seen `n` requests.
    fn wait_seen(&self, n: usize) {
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        while self.seen.lock().expect("seen").len() < n {
            assert!(std::time::Instant::now() < deadline, "the upstream never saw {n} requests");
            std::thread::yield_now();
        }
    }

    fn seen(&self) -> Vec<SeenH2> {
        self.seen.lock().expect("seen").clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    sock: TcpStream,
    conn: usize,
    max_concurrent_streams: u32,
    seen: Arc<Mutex<Vec<SeenH2>>>,
    plan: Plan,
    notify: Arc<tokio::sync::Notify>,
    release: Arc<Release>,
) {
    let Ok(mut connection) =
        h2::server::Builder::new().max_concurrent_streams(max_concurrent_streams).handshake::<_, Bytes>(sock).await
    else {
        return;
    };
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        let (seen, plan, notify, release) = (seen.clone(), plan.clone(), notify.clone(), release.clone());
        tokio::spawn(async move {
            let (parts, mut body) = request.into_parts();
            let mut data = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            let trailers = body.trailers().await.ok().flatten().unwrap_or_default();
            let map = |h: &http::HeaderMap| {
                h.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect::<BTreeMap<_, _>>()
            };
            let index = {
                let mut seen = seen.lock().expect("seen");
                seen.push(SeenH2 {
                    conn,
                    method: parts.method.to_string(),
                    scheme: parts.uri.scheme_str().unwrap_or("").to_owned(),
                    authority: parts.uri.authority().map(|a| a.to_string()).unwrap_or_default(),
                    path: parts.uri.path().to_owned(),
                    headers: map(&parts.headers),
                    body: data.clone(),
                    trailers: map(&trailers),
                });
                seen.len() - 1
            };
            notify.notify_waiters();
            let action = plan(index);
            if let Action::ReplyWhenSeen(n) = action {
                loop {
                    let wait = notify.notified();
                    if seen.lock().expect("seen").len() >= n {
                        break;
                    }
                    wait.await;
                }
            }
            if let Action::ReplyWhenReleased = action {
                loop {
                    let wait = release.notify.notified();
                    if release.open.load(Ordering::SeqCst) {
                        break;
                    }
                    wait.await;
                }
            }
            if let Action::Reset(reason) = action {
                respond.send_reset(reason);
                return;
            }
            let body = match action {
                Action::ReplyBig(n) => Bytes::from(vec![b'z'; n]),
                _ if data.is_empty() => Bytes::from_static(b"hello h2"),
                _ => Bytes::from(data),
            };
            let response =
                http::Response::builder().status(200).header("x-conn", conn.to_string()).body(()).expect("response");
            let Ok(mut send) = respond.send_response(response, false) else { return };
            let with_trailers = matches!(action, Action::ReplyWithTrailers);
            let _ = send.send_data(body, !with_trailers);
            if with_trailers {
                let mut t = http::HeaderMap::new();
                t.insert("x-checksum", http::HeaderValue::from_static("abc"));
                let _ = send.send_trailers(t);
            }
        });
    }
}

/// Reads frames until the first HEADERS, then says GOAWAY with last stream id
/// 0 (nothing processed) and closes.
async fn goaway_at_first_request(mut sock: TcpStream) {
    let mut preface = [0u8; 24];
    if sock.read_exact(&mut preface).await.is_err() {
        return;
    }
    // Our SETTINGS (empty).
    let _ = sock.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
    loop {
        let Ok((kind, _flags, _payload)) = read_frame(&mut sock).await else { return };
        if kind == 1 {
            break;
        }
    }
    // GOAWAY: last stream id 0, NO_ERROR; then read until Courier closes (so
    // nothing unread turns the close into a reset that could lose the GOAWAY).
    let _ = sock.write_all(&[0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).await;
    drain_until_closed(&mut sock).await;
}

/// Reads and discards until the peer closes, for at most `IO_TIMEOUT`.
async fn drain_until_closed(sock: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(IO_TIMEOUT, async { while sock.read(&mut sink).await.is_ok_and(|n| n > 0) {} }).await;
}

async fn read_frame(sock: &mut TcpStream) -> std::io::Result<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    sock.read_exact(&mut head).await?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).await?;
    Ok((head[3], head[4], payload))
}

/// A STATIC cluster `h2` on `port` speaking HTTP/2 upstream, with `extra`
/// (YAML at column 0) in its `http2_protocol_options`.
fn h2_cluster(port: u16, http2_options: &str) -> String {
    format!(
        "{}    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config:\n          http2_protocol_options: {{{http2_options}}}\n",
        static_cluster("h2", &[port])
    )
}

fn start(cluster: String, route_extra: &str) -> Courier {
    start_web("", &one_vhost(&prefix_route("/", "h2", route_extra)), "", &[cluster])
}

fn stat(courier: &Courier, name: &str) -> i64 {
    courier.stat(name).unwrap_or(0)
}

#[test]
fn get_and_post_reach_an_http2_upstream_with_authority_and_no_hop_by_hop_headers() {
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::Reply));
    // explicit_http_config with http2_protocol_options: HTTP/2 upstream.
    let courier = start(h2_cluster(upstream.port, ""), "");
    let mut client = Client::connect(courier.listener("web"));
    let r = client.request(
        "GET",
        "/a/b?x=1",
        &[("Host", "example.com:8080"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("x-custom", "1")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello h2");
    assert_eq!(r.header("x-conn"), Some("0"));
    // A response without content-length reaches the HTTP/1.1 client chunked.
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let r = client.request("POST", "/post", &[("Proxy-Connection", "keep-alive")], b"request body");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "request body");

    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    let get = &seen[0];
    assert_eq!((get.method.as_str(), get.scheme.as_str()), ("GET", "http"));
    assert_eq!((get.authority.as_str(), get.path.as_str()), ("example.com:8080", "/a/b"));
    assert_eq!(get.headers.get("te").map(String::as_str), Some("trailers"));
    assert_eq!(get.headers.get("x-custom").map(String::as_str), Some("1"));
    for hop in ["host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] {
        assert!(!get.headers.contains_key(hop), "{hop} went upstream: {:?}", get.headers);
    }
    assert!(get.headers.contains_key("x-request-id"), "{:?}", get.headers);
    let post = &seen[1];
    assert_eq!(post.body, b"request body");
    assert_eq!(post.headers.get("content-length").map(String::as_str), Some("12"));
    assert!(!post.headers.contains_key("proxy-connection"));
    // Both on one connection.
    assert_eq!((post.conn, upstream.connections()), (0, 1));
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http1_total"), 0);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_total"), 2);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_200"), 2);
    courier.wait_stat("cluster.h2.upstream_rq_active", |v| v == 0);
    assert_eq!(courier.stat("cluster.h2.http2.rx_reset"), Some(0));
}

#[test]
fn a_chunked_request_body_streams_both_ways_under_http2_flow_control() {
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::Reply));
    // Windows of 64 KiB: the 200 KB echoed back only arrives if Courier gives
    // flow-control credit back as the client reads.
    let windows = "initial_stream_window_size: 65535, initial_connection_window_size: 65535";
    let courier = start(h2_cluster(upstream.port, windows), "");
    let mut client = Client::connect(courier.listener("web"));
    let big = vec![b'x'; 200_000];
    let mut raw = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in big.chunks(70_000) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
    client.send_raw(&raw);
    let r = client.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), big.len());
    let seen = upstream.seen();
    assert_eq!(seen[0].body.len(), big.len());
    assert!(!seen[0].headers.contains_key("transfer-encoding"), "{:?}", seen[0].headers);
    // The HTTP/1 codec drops request trailers, as Envoy's does without enable_trailers.
    assert!(seen[0].trailers.is_empty(), "{:?}", seen[0].trailers);
}

#[test]
fn concurrent_requests_share_one_http2_connection() {
    const N: usize = 5;
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::ReplyWhenSeen(N)));
    let courier = start(h2_cluster(upstream.port, ""), "");
    let addr = courier.listener("web");
    let threads: Vec<_> = (0..N)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let r = c.get(&format!("/m/{i}"));
                (r.status, r.header("x-conn").map(str::to_owned))
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("client"), (200, Some("0".to_owned())));
    }
    // All five were in flight together (the upstream answered none before the
    // fifth arrived), on the one connection.
    assert_eq!(upstream.connections(), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_total"), N as i64);
    courier.wait_stat("cluster.h2.upstream_rq_active", |v| v == 0);
    assert_eq!(courier.stat("cluster.h2.http2.streams_active"), Some(0));
}

#[test]
fn the_upstreams_max_concurrent_streams_opens_another_connection() {
    // The upstream takes one stream per connection; the cluster's own limit
    // (max_concurrent_streams) is higher.
    let upstream = H2Upstream::start(1, 0, Arc::new(|_| Action::ReplyWhenSeen(2)));
    let courier = start(h2_cluster(upstream.port, "max_concurrent_streams: 50"), "");
    let addr = courier.listener("web");
    let first = std::thread::spawn(move || Client::connect(addr).get("/one").status);
    // The second request only once the first is in flight (and the upstream's
    // SETTINGS are known).
    upstream.wait_seen(1);
    let second = Client::connect(addr).get("/two");
    assert_eq!(second.status, 200);
    assert_eq!(first.join().expect("first"), 200);
    assert_eq!(upstream.connections(), 2);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 2);
}

#[test]
fn the_clusters_max_concurrent_streams_and_max_requests_per_connection_limit_a_connection() {
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::ReplyWhenSeen(2)));
    // The cluster's max_concurrent_streams: 1 puts two concurrent requests on two connections.
    let courier = start(h2_cluster(upstream.port, "max_concurrent_streams: 1"), "");
    let addr = courier.listener("web");
    let first = std::thread::spawn(move || Client::connect(addr).get("/one").status);
    let second = Client::connect(addr).get("/two");
    assert_eq!((second.status, first.join().expect("first")), (200, 200));
    assert_eq!(upstream.connections(), 2);
    drop(courier);

    // max_requests_per_connection: 2 drains a connection after its second stream.
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::Reply));
    let mut cluster = h2_cluster(upstream.port, "");
    cluster.push_str("    max_requests_per_connection: 2\n");
    let courier = start(cluster, "");
    let mut client = Client::connect(courier.listener("web"));
    let conns: Vec<_> = (0..3).map(|_| client.get("/").header("x-conn").map(str::to_owned)).collect();
    assert_eq!(conns, [Some("0".into()), Some("0".into()), Some("1".into())]);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_max_requests"), 1);
    courier.wait_stat("cluster.h2.upstream_cx_destroy_local", |v| v == 1);
}

#[test]
fn http2_requests_are_held_to_the_circuit_breakers() {
    // max_requests: 1 — a second request while one is in flight overflows.
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::ReplyWhenReleased));
    let mut cluster = h2_cluster(upstream.port, "");
    cluster.push_str("    circuit_breakers: { thresholds: [ { max_requests: 1 } ] }\n");
    let courier = start(cluster, "");
    let addr = courier.listener("web");
    let first = std::thread::spawn(move || Client::connect(addr).get("/one").status);
    upstream.wait_seen(1);
    let second = Client::connect(addr).get("/two");
    assert_eq!(second.status, 503);
    assert_eq!(second.header("x-envoy-overloaded"), Some("true"));
    upstream.release();
    assert_eq!(first.join().expect("first"), 200);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_active_overflow"), 1);
    drop(courier);

    // max_connections: 1 with one stream per connection — the second request
    // waits for the first one's slot instead of opening a connection.
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::ReplyWhenReleased));
    let mut cluster = h2_cluster(upstream.port, "max_concurrent_streams: 1");
    cluster.push_str("    circuit_breakers: { thresholds: [ { max_connections: 1 } ] }\n");
    let courier = start(cluster, "");
    let addr = courier.listener("web");
    let first = std::thread::spawn(move || Client::connect(addr).get("/one").status);
    upstream.wait_seen(1);
    let second = std::thread::spawn(move || Client::connect(addr).get("/two").status);
    courier.wait_stat("cluster.h2.upstream_rq_pending_active", |v| v == 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_overflow"), 1);
    upstream.release();
    assert_eq!((first.join().expect("first"), second.join().expect("second")), (200, 200));
    assert_eq!(upstream.connections(), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_pending_total"), 2);
    courier.wait_stat("cluster.h2.upstream_rq_pending_active", |v| v == 0);
}

#[test]
fn an_idle_http2_connection_closes_after_the_idle_timeout() {
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::Reply));
    let mut cluster = h2_cluster(upstream.port, "");
    cluster = cluster.replace(
        "        explicit_http_config:",
        "        common_http_protocol_options: { idle_timeout: 0.2s }\n        explicit_http_config:",
    );
    let courier = start(cluster, "");
    assert_eq!(Client::connect(courier.listener("web")).get("/").status, 200);
    courier.wait_stat("cluster.h2.upstream_cx_idle_timeout", |v| v == 1);
    courier.wait_stat("cluster.h2.upstream_cx_destroy_local", |v| v == 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_active"), 0);
    // The next request opens a new connection.
    assert_eq!(Client::connect(courier.listener("web")).get("/").header("x-conn"), Some("1"));
}

#[test]
fn a_refused_http2_connection_is_a_503_uf() {
    let port = crate::harness::closed_port();
    let courier = start(h2_cluster(port, ""), "");
    let r = Client::connect(courier.listener("web")).get("/");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    );
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_connect_fail"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_pending_failure_eject"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 0);
    courier.wait_stat("cluster.h2.upstream_rq_pending_active", |v| v == 0);
}

#[test]
fn a_client_gone_mid_response_resets_the_stream_and_keeps_the_connection() {
    let upstream =
        H2Upstream::start(100, 0, Arc::new(|i| if i == 0 { Action::ReplyBig(4 << 20) } else { Action::Reply }));
    // Small windows: most of the 4 MiB waits upstream for credit.
    let courier = start(h2_cluster(upstream.port, "initial_stream_window_size: 65535"), "");
    let addr = courier.listener("web");
    let mut client = crate::harness::connect(addr);
    std::io::Write::write_all(&mut client, b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n").expect("send");
    let mut first = [0u8; 12];
    std::io::Read::read_exact(&mut client, &mut first).expect("response starts");
    assert_eq!(&first, b"HTTP/1.1 200");
    drop(client);
    courier.wait_stat("cluster.h2.upstream_rq_active", |v| v == 0);
    courier.wait_stat("cluster.h2.http2.tx_reset", |v| v == 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_tx_reset"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_active"), 1);
    assert_eq!(stat(&courier, "cluster.h2.http2.streams_active"), 0);
    // The connection serves the next request.
    assert_eq!(Client::connect(addr).get("/next").header("x-conn"), Some("0"));
}

#[test]
fn an_upstream_that_does_not_speak_http2_is_a_502_upe() {
    // Answers the request's HEADERS with HTTP/1.1 bytes, which no HTTP/2 frame parses.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = TcpListener::from_std(listener).expect("listener");
            let Ok(Ok((mut sock, _))) = tokio::time::timeout(IO_TIMEOUT, listener.accept()).await else { return };
            let mut preface = [0u8; 24];
            let _ = sock.read_exact(&mut preface).await;
            while let Ok(Ok((kind, _, _))) = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut sock)).await {
                if kind == 1 {
                    break;
                }
            }
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            drain_until_closed(&mut sock).await;
        });
    });
    let courier = start(h2_cluster(port, ""), "");
    let r = Client::connect(courier.listener("web")).get("/");
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "upstream connect error or disconnect/reset before headers. reset reason: protocol error");
    let _ = server.join();
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_protocol_error"), 1);
    // As Envoy: Courier's codec ended the connection and the stream (no RST_STREAM sent).
    courier.wait_stat("cluster.h2.upstream_cx_destroy_local", |v| v == 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_tx_reset"), 1);
    assert_eq!(stat(&courier, "cluster.h2.http2.tx_reset"), 0);
}

#[test]
fn response_trailers_end_the_body() {
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::ReplyWithTrailers));
    let courier = start(h2_cluster(upstream.port, ""), "");
    let mut client = Client::connect(courier.listener("web"));
    let r = client.get("/t");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello h2");
    // The connection stays usable: the body ended properly.
    assert_eq!(client.get("/again").status, 200);
    // Envoy's http2.trailers counts request trailers from downstream only.
    assert_eq!(courier.stat("cluster.h2.http2.trailers"), Some(0));
    courier.wait_stat("cluster.h2.upstream_rq_active", |v| v == 0);
}

#[test]
fn a_reset_before_headers_is_a_503_ur_without_a_retry_policy() {
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::Reset(Reason::INTERNAL_ERROR)));
    let courier = start(h2_cluster(upstream.port, ""), "");
    let mut client = Client::connect(courier.listener("web"));
    let r = client.get("/reset");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "upstream connect error or disconnect/reset before headers. reset reason: remote reset");
    // Not sent again.
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_rx_reset"), 1);
    assert_eq!(stat(&courier, "cluster.h2.http2.rx_reset"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_503"), 1);
    // The connection survives a stream reset.
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_active"), 1);
}

#[test]
fn a_reset_before_headers_is_retried_with_retry_on_reset() {
    let upstream = H2Upstream::start(
        100,
        0,
        Arc::new(|i| if i == 0 { Action::Reset(Reason::INTERNAL_ERROR) } else { Action::Reply }),
    );
    let courier = start(h2_cluster(upstream.port, ""), ", retry_policy: { retry_on: reset, num_retries: 1 }");
    let mut client = Client::connect(courier.listener("web"));
    let r = client.request("POST", "/retry", &[], b"twice");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "twice");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body, b"twice");
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_retry"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_retry_success"), 1);
}

#[test]
fn a_stream_a_goaway_cut_is_refused_and_not_sent_again() {
    // The first connection says GOAWAY (last stream id 0) to the first request:
    // Envoy's 503 UR "remote refused stream reset", never a silent resend (h2
    // cannot tell it from a stream the upstream may have processed).
    let upstream = H2Upstream::start(100, 1, Arc::new(|_| Action::Reply));
    let courier = start(h2_cluster(upstream.port, ""), "");
    let mut client = Client::connect(courier.listener("web"));
    let r = client.get("/once");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset"
    );
    assert_eq!(upstream.connections(), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_retry"), 0);
    // The drained connection is closed, and the next request opens another.
    let r = client.get("/next");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 2);
    courier.wait_stat("cluster.h2.upstream_cx_destroy_local", |v| v == 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_destroy_remote"), 0);
}

#[test]
fn a_refused_stream_is_sent_again_transparently() {
    let upstream = H2Upstream::start(
        100,
        0,
        Arc::new(|i| if i == 0 { Action::Reset(Reason::REFUSED_STREAM) } else { Action::Reply }),
    );
    let courier = start(h2_cluster(upstream.port, ""), "");
    let mut client = Client::connect(courier.listener("web"));
    let r = client.get("/refused");
    assert_eq!(r.status, 200);
    assert_eq!(upstream.seen().len(), 2);
    assert_eq!(stat(&courier, "cluster.h2.upstream_rq_retry"), 0);
}

#[test]
fn use_downstream_protocol_config_sends_http11_for_an_http11_request() {
    // An HTTP/1.1 upstream: the cluster follows the downstream's HTTP/1.1.
    let (upstream, _) = crate::http_util::fixed_upstream("h1", 200, "");
    let cluster = format!(
        "{}    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        use_downstream_protocol_config:\n          http_protocol_options: {{}}\n          http2_protocol_options: {{max_concurrent_streams: 10}}\n",
        static_cluster("h2", &[upstream.port()])
    );
    let courier = start(cluster, "");
    let r = Client::connect(courier.listener("web")).get("/");
    assert_eq!(r.status, 200);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http1_total"), 1);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 0);
    // No HTTP/2 connection, no http2.* stats.
    assert_eq!(courier.stat("cluster.h2.http2.rx_reset"), None);
}

#[test]
fn use_downstream_protocol_config_sends_http2_for_an_http2_request() {
    use crate::shared_h2::{h2_exchange, H2Request};
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::ReplyWithTrailers));
    let cluster = format!(
        "{}    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        use_downstream_protocol_config:\n          http2_protocol_options: {{max_concurrent_streams: 10}}\n",
        static_cluster("h2", &[upstream.port])
    );
    let courier = start_web("codec_type: AUTO\n", &one_vhost(&prefix_route("/", "h2", "")), "", &[cluster]);
    let addr = courier.listener("web");
    // An HTTP/2 client: HTTP/2 upstream, trailers relayed both ways.
    let mut post = H2Request { method: "POST".into(), path: "/h2".into(), ..Default::default() };
    post.body = b"from an h2 client".to_vec();
    post.trailers = vec![("x-request-trailer".into(), "1".into())];
    let responses = h2_exchange(addr, &[H2Request::get("/one"), post]).expect("h2 exchange");
    let responses: Vec<_> = responses.into_iter().map(|r| r.expect("response")).collect();
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].text(), "hello h2");
    assert_eq!(responses[1].text(), "from an h2 client");
    assert_eq!(responses[1].trailers, [("x-checksum".to_owned(), "abc".to_owned())]);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    let post_seen = seen.iter().find(|r| r.method == "POST").expect("the POST upstream");
    assert_eq!(post_seen.authority, "example.com");
    assert_eq!(post_seen.trailers.get("x-request-trailer").map(String::as_str), Some("1"));
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 1);
    // An HTTP/1.1 client on the same listener: HTTP/1.1 upstream (refused by this
    // h2-only upstream: the point is the protocol chosen).
    let r = Client::connect(addr).get("/h1");
    assert_ne!(r.status, 200);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http1_total"), 1);
}

#[test]
fn deprecated_cluster_http2_protocol_options_speak_http2() {
    let upstream = H2Upstream::start(100, 0, Arc::new(|_| Action::Reply));
    let mut cluster = static_cluster("h2", &[upstream.port]);
    cluster.push_str("    http2_protocol_options: {}\n");
    let courier = start(cluster, "");
    let r = Client::connect(courier.listener("web")).get("/");
    assert_eq!(r.status, 200);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http2_total"), 1);
    // protocol_selection: USE_DOWNSTREAM_PROTOCOL follows the HTTP/1.1 client.
    let (h1, _) = crate::http_util::fixed_upstream("h1", 200, "");
    let mut cluster = static_cluster("h2", &[h1.port()]);
    cluster.push_str("    http2_protocol_options: {}\n    protocol_selection: USE_DOWNSTREAM_PROTOCOL\n");
    let courier = start(cluster, "");
    assert_eq!(Client::connect(courier.listener("web")).get("/").status, 200);
    assert_eq!(stat(&courier, "cluster.h2.upstream_cx_http1_total"), 1);
}

/// The client's SETTINGS carry the cluster's http2_protocol_options:
/// hpack_table_size, max_concurrent_streams, initial_stream_window_size, and
/// initial_connection_window_size (as the connection's WINDOW_UPDATE).
#[test]
fn http2_protocol_options_go_into_the_clients_settings() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = TcpListener::from_std(listener).expect("listener");
            let Ok(Ok((mut sock, _))) = tokio::time::timeout(IO_TIMEOUT, listener.accept()).await else { return };
            let mut preface = [0u8; 24];
            let _ = sock.read_exact(&mut preface).await;
            let mut settings = BTreeMap::new();
            let mut window_update = None;
            while window_update.is_none() {
                let Ok(Ok((kind, _, payload))) = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut sock)).await else {
                    break;
                };
                match kind {
                    4 => {
                        for s in payload.chunks(6) {
                            let id = u16::from_be_bytes([s[0], s[1]]);
                            settings.insert(id, u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
                        }
                    }
                    8 => window_update = Some(u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])),
                    _ => {}
                }
            }
            let _ = tx.send((settings, window_update));
            // Never answers: hold the connection until the route timeout resets
            // the stream (RST_STREAM).
            let _ = tokio::time::timeout(IO_TIMEOUT, async {
                while let Ok((kind, _, _)) = read_frame(&mut sock).await {
                    if kind == 3 {
                        break;
                    }
                }
            })
            .await;
        });
    });
    let courier = start(
        h2_cluster(
            port,
            "hpack_table_size: 1000, max_concurrent_streams: 7, initial_stream_window_size: 70000, \
             initial_connection_window_size: 1000000",
        ),
        ", timeout: 0.5s",
    );
    let mut client = Client::connect(courier.listener("web"));
    let r = client.get("/");
    assert_eq!(r.status, 504);
    let (settings, window_update) = rx.recv_timeout(IO_TIMEOUT).expect("client SETTINGS");
    let _ = reader.join();
    // SETTINGS_HEADER_TABLE_SIZE (1), SETTINGS_MAX_CONCURRENT_STREAMS (3),
    // SETTINGS_INITIAL_WINDOW_SIZE (4).
    assert_eq!(settings.get(&1), Some(&1000), "{settings:?}");
    assert_eq!(settings.get(&3), Some(&7), "{settings:?}");
    assert_eq!(settings.get(&4), Some(&70000), "{settings:?}");
    // SETTINGS_MAX_HEADER_LIST_SIZE (6): Envoy's 60 KiB max_response_headers_kb.
    assert_eq!(settings.get(&6), Some(&61440), "{settings:?}");
    // The connection window grows from 65535 to initial_connection_window_size.
    assert_eq!(window_update, Some(1_000_000 - 65_535));
}

#[test]
fn unsupported_http2_upstream_config_fails_with_its_field_path() {
    let with = |options: &str| {
        format!(
            "static_resources:\n  clusters:\n{}    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n{options}",
            static_cluster("h2", &[1])
        )
    };
    let cases = [
        (
            with("        auto_config: { http3_protocol_options: {} }\n"),
            "static_resources.clusters[0].typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"].auto_config.http3_protocol_options",
        ),
        (
            with("        explicit_http_config:\n          http2_protocol_options: {allow_connect: true}\n"),
            "explicit_http_config.http2_protocol_options.allow_connect: field 'allow_connect' of envoy.config.core.v3.Http2ProtocolOptions is not supported by Courier here",
        ),
        (
            with("        use_downstream_protocol_config:\n          http3_protocol_options: {}\n"),
            "use_downstream_protocol_config.http3_protocol_options",
        ),
        (
            format!(
                "static_resources:\n  clusters:\n{}    http2_protocol_options: {{max_outbound_frames: 5}}\n",
                static_cluster("h2", &[1])
            ),
            "static_resources.clusters[0].http2_protocol_options.max_outbound_frames",
        ),
        (
            format!(
                "{}    protocol_selection: USE_DOWNSTREAM_PROTOCOL\n",
                with("        explicit_http_config:\n          http2_protocol_options: {}\n")
            ),
            "static_resources.clusters[0].protocol_selection: Envoy ignores this deprecated field",
        ),
    ];
    for (yaml, expected) in cases {
        let (ok, out) = validate(&yaml);
        assert!(!ok, "accepted:\n{yaml}");
        assert!(out.contains(expected), "{expected}\nnot in:\n{out}");
    }
}

/// `connection_keepalive` on a cluster: a PING every interval, and one the
/// upstream leaves unanswered closes the connection after its timeout
/// (`http2.keepalive_timeout`), as Envoy's; the request it carried fails. The
/// upstream here completes the HTTP/2 handshake, then answers nothing.
#[test]
fn an_unanswered_keepalive_ping_closes_the_upstream_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let Ok((mut stream, _)) = listener.accept() else { return };
        // SETTINGS (empty), then the ACK of the client's.
        let _ = stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    let courier = start(h2_cluster(port, " connection_keepalive: { interval: 0.2s, timeout: 0.2s } "), "");
    let started = std::time::Instant::now();
    let r = Client::connect(courier.listener("web")).get("/");
    assert_eq!(r.status, 503, "the connection went with the request on it");
    assert!(started.elapsed() >= std::time::Duration::from_millis(400), "after a PING interval and timeout");
    courier.wait_stat("cluster.h2.http2.keepalive_timeout", |v| v == 1);
    courier.wait_stat("cluster.h2.upstream_cx_destroy_local", |v| v == 1);
    drop(courier);
    let _ = silent.join();
}
