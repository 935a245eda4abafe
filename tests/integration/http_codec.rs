//! Hostile and malformed HTTP/1.1 requests: each gets the reply Envoy 1.40 gives
//! (status, body, `connection: close`), a counted stat, and nothing reaches the
//! upstream that Envoy would not forward. Envoy's answers were recorded by
//! sending the same bytes to Envoy with the same config.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::*;

fn proxy(up: &Upstream, hcm_extra: &str) -> Courier {
    let cluster = static_cluster("app", &[up.port()]);
    Courier::start(
        &config(&[http_listener("web", hcm_extra, &one_vhost(&prefix_route("/", "app", "")), "")], &[cluster]),
        1,
    )
}

/// Sends `raw` on a fresh connection and returns the reply.
fn reply_to(c: &Courier, raw: &[u8]) -> HttpResponse {
    let mut client = Client::connect(c.listener("web"));
    client.send_raw(raw);
    client.try_read_response(false).unwrap_or_else(|e| panic!("no reply to {:?}: {e}", String::from_utf8_lossy(raw)))
}

#[test]
fn rejected_requests_get_envoys_reply_and_never_reach_upstream() {
    let up = http_upstream("a");
    let c = proxy(&up, "");
    let big_path = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(70_000));
    let big_headers = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "v".repeat(80 * 1024));
    let many_headers =
        format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", (0..100).map(|i| format!("x-h{i}: v\r\n")).collect::<String>());
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("CL then TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(), 400, "Bad Request"),
        ("TE then CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(), 400, "Bad Request"),
        ("differing CLs", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(), 400, "Bad Request"),
        ("equal CLs", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello".to_vec(), 400, "Bad Request"),
        ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n".to_vec(), 400, "Bad Request"),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\0b\r\n\r\n".to_vec(), 400, "Bad Request"),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n".to_vec(), 400, "Bad Request"),
        ("bad method token", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 400, "Bad Request"),
        ("request line over the limit", big_path.into_bytes(), 431, "Request Header Fields Too Large"),
        ("headers over the limit", big_headers.into_bytes(), 431, "Request Header Fields Too Large"),
        ("101 headers", many_headers.into_bytes(), 431, "Request Header Fields Too Large"),
        ("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), 501, "Not Implemented"),
        ("TE chunked, gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n".to_vec(), 501, "Not Implemented"),
        ("HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a\r\n\r\n".to_vec(), 426, "Upgrade Required"),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n".to_vec(), 426, "Upgrade Required"),
        ("HTTP/2.0 on HTTP/1", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(), 426, "Upgrade Required"),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400, ""),
    ];
    for (name, raw, status, body) in &cases {
        let r = reply_to(&c, raw);
        assert_eq!((r.status, r.text().as_str()), (*status, *body), "{name}");
        assert_eq!(r.header("connection"), Some("close"), "{name}: Envoy closes after a rejected request");
        assert_eq!(r.header("server"), Some("envoy"), "{name}");
        assert!(r.header("date").is_some(), "{name}");
        if !body.is_empty() {
            assert_eq!(r.header("content-type"), Some("text/plain"), "{name}");
        }
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0, "a rejected request reached the upstream");
    // The no-Host reply is the connection manager's, not a codec error.
    assert_eq!(c.stat("http.ingress.downstream_cx_protocol_error"), Some(cases.len() as i64 - 1));
    assert_eq!(c.stat("http.ingress.downstream_rq_4xx"), Some(cases.len() as i64 - 2));
    assert_eq!(c.stat("http.ingress.downstream_rq_5xx"), Some(2));
    // The proxy still serves well-formed requests.
    assert_eq!(Client::connect(c.listener("web")).get("/").status, 200);
}

/// The smuggling vectors of tests/compat/cases/hostile_*.yaml that Courier used to
/// forward, with Envoy 1.40's status and details: none reaches the upstream,
/// whatever framing a lenient reading of it would have chosen.
#[test]
fn smuggling_vectors_decide_no_framing_and_reach_no_upstream() {
    let up = http_upstream("a");
    let c = proxy(&up, "");
    let cases: [(&str, &[u8], u16); 12] = [
        ("bare CR in Content-Length's name", b"POST / HTTP/1.1\r\nHost: a\r\nContent-\rLength: 3\r\n\r\nabc", 400),
        (
            "bare CR in Transfer-Encoding's name",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-\rEncoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        ("bare CR in Content-Length's value", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r4\r\n\r\nabc", 400),
        ("folded Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n 4\r\n\r\nabc", 400),
        ("vertical tab in a name", b"POST / HTTP/1.1\r\nHost: a\r\n\x0bTransfer-Encoding: chunked\r\n\r\n", 400),
        (
            "any coding beside Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            400,
        ),
        ("Host with a space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("Host folded onto the next line", b"GET / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n", 400),
        ("unknown method", b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (
            "blank line for a chunk size",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "0x chunk size",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        ("non-ASCII target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ];
    for (name, raw, status) in cases {
        let r = reply_to(&c, raw);
        assert_eq!(r.status, status, "{name}");
        assert_eq!(r.header("connection"), Some("close"), "{name}");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0, "a smuggling vector reached the upstream");
    assert_eq!(c.stat("http.ingress.downstream_cx_protocol_error"), Some(cases.len() as i64));
    assert_eq!(c.stat("http.ingress.downstream_rq_4xx"), Some(cases.len() as i64));
}

#[test]
fn bad_chunk_in_body_is_400_and_the_request_is_not_sent() {
    let up = http_upstream("a");
    let c = proxy(&up, "");
    let r = reply_to(&c, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (400, "Bad Request"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(c.stat("http.ingress.downstream_cx_protocol_error"), Some(1));
}

#[test]
fn what_envoy_tolerates_is_forwarded_normalised() {
    let up = http_upstream("a");
    let c = proxy(&up, "");
    // obs-fold: the line break goes, the fold line's whitespace stays.
    let r = reply_to(&c, b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\r\n b\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().header("x-foo"), Some("a b"));
    // Bare LF line endings.
    let r = reply_to(&c, b"GET /lf HTTP/1.1\nHost: a\nX-A: 1\n\n");
    assert_eq!((r.status, r.seen().path()), (200, "/lf"));
    // A bare CR inside a value is dropped.
    let r = reply_to(&c, b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\rb\r\n\r\n");
    assert_eq!(r.seen().header("x-foo"), Some("ab"));
    // Exactly 100 headers is within the default limit; underscores pass by default.
    let hundred = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX_Under: u\r\n{}\r\n",
        (0..98).map(|i| format!("x-h{i}: v\r\n")).collect::<String>()
    );
    let r = reply_to(&c, hundred.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.seen().header("x_under"), Some("u"));
}

#[test]
fn slowloris_gets_408_from_request_headers_timeout() {
    let up = http_upstream("a");
    let c = proxy(&up, "          request_headers_timeout: 0.3s\n");
    let mut client = Client::connect(c.listener("web"));
    let started = Instant::now();
    client.send_raw(b"GET / HTTP/1.1\r\nHost: a\r\n");
    let r = client.try_read_response(false).expect("a 408");
    assert_eq!((r.status, r.text().as_str()), (408, "request header timeout"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(client.is_closed());
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(c.stat("http.ingress.downstream_rq_header_timeout"), Some(1));
}

#[test]
/// Envoy answers 408 while the request is still arriving, 504 once it is whole.
fn stream_timers_answer_408_or_504() {
    let up = http_upstream("a");
    // request_timeout: the body never finishes arriving.
    let c = proxy(&up, "          request_timeout: 0.3s\n");
    let mut client = Client::connect(c.listener("web"));
    client.send_raw(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    let r = client.try_read_response(false).expect("a 408");
    assert_eq!((r.status, r.text().as_str()), (408, "request timeout"));
    assert_eq!(c.stat("http.ingress.downstream_rq_timeout"), Some(1));
    // A slow upstream is the route timeout's business, not request_timeout's.
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x-test-delay-ms", "500")], b"");
    assert_eq!(r.status, 200);

    // max_stream_duration bounds the whole stream.
    let c = proxy(&up, "          common_http_protocol_options: { max_stream_duration: 0.3s }\n");
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x-test-delay-ms", "3000")], b"");
    assert_eq!((r.status, r.text().as_str()), (504, "downstream duration timeout"));
    assert_eq!(c.stat("http.ingress.downstream_rq_max_duration_reached"), Some(1));

    // stream_idle_timeout: nothing moves in either direction.
    let c = proxy(&up, "          stream_idle_timeout: 0.3s\n");
    let r = Client::connect(c.listener("web")).request("GET", "/", &[("x-test-delay-ms", "3000")], b"");
    assert_eq!((r.status, r.text().as_str()), (504, "stream timeout"));
    assert_eq!(c.stat("http.ingress.downstream_rq_idle_timeout"), Some(1));
    // Before the request is whole, the same timer answers 408.
    let mut client = Client::connect(c.listener("web"));
    client.send_raw(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    let r = client.try_read_response(false).expect("a 408");
    assert_eq!((r.status, r.text().as_str()), (408, "stream timeout"));
    assert_eq!(c.stat("http.ingress.downstream_rq_idle_timeout"), Some(2));
}

/// As Envoy's drain sequence: a connection quiet for `idle_timeout` is counted
/// and drains for `drain_timeout` before it closes; a request that comes
/// meanwhile is answered with `connection: close`, not lost to a closing socket.
#[test]
fn an_idle_connection_drains_before_it_closes() {
    let up = http_upstream("a");
    let c =
        proxy(&up, "          common_http_protocol_options: { idle_timeout: 0.3s }\n          drain_timeout: 0.6s\n");
    let mut client = Client::connect(c.listener("web"));
    let started = Instant::now();
    assert_eq!(client.get("/").status, 200);
    assert!(client.wait_closed(Duration::from_secs(5)).is_ok());
    assert!(started.elapsed() >= Duration::from_millis(900), "closed after {:?}", started.elapsed());
    c.wait_stat("http.ingress.downstream_cx_idle_timeout", |v| v == 1);

    let mut client = Client::connect(c.listener("web"));
    assert_eq!(client.get("/").status, 200);
    c.wait_stat("http.ingress.downstream_cx_idle_timeout", |v| v == 2);
    let r = client.get("/");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(client.is_closed());
    assert_eq!(c.stat("http.ingress.downstream_cx_drain_close"), Some(0));
}

/// The reduce_timeouts overload action shrinks the idle timeout of a connection
/// that was already waiting when the action engaged: its deadline is computed
/// again, as Envoy's scaled timers are, so it closes at once rather than after
/// the hour it was armed for.
#[test]
fn reduce_timeouts_shortens_an_idle_connection_armed_before_it_engaged() {
    let up = http_upstream("a");
    let overload = r#"overload_manager:
  refresh_interval: 3s
  resource_monitors:
  - name: heap
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
      max_heap_size_bytes: 1000
  actions:
  - name: envoy.overload_actions.reduce_timeouts
    triggers: [{ name: heap, threshold: { value: 0.9 } }]
    typed_config:
      "@type": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig
      timer_scale_factors: [{ timer: HTTP_DOWNSTREAM_CONNECTION_IDLE, min_scale: { value: 0 } }]
"#;
    let idle = "          common_http_protocol_options: { idle_timeout: 3600s }\n          drain_timeout: 0.1s\n";
    let listener = http_listener("web", idle, &one_vhost(&prefix_route("/", "app", "")), "");
    let c = Courier::start(&format!("{overload}{}", config(&[listener], &[static_cluster("app", &[up.port()])])), 1);
    let mut client = Client::connect(c.listener("web"));
    assert_eq!(client.get("/").status, 200);
    // The first refresh comes 3 s after start-up: the idle timer was armed before.
    assert_eq!(c.stat("overload.envoy.overload_actions.reduce_timeouts.active"), Some(0));
    assert!(client.wait_closed(Duration::from_secs(10)).is_ok(), "closed once the action engaged");
    assert_eq!(c.stat("overload.envoy.overload_actions.reduce_timeouts.active"), Some(1));
    c.wait_stat("http.ingress.downstream_cx_idle_timeout", |v| v == 1);
}

/// Reads `s` to its end; how long that took. The client never closes first.
fn time_to_close(s: &mut std::net::TcpStream) -> (Vec<u8>, Duration) {
    use std::io::Read;
    let started = Instant::now();
    let mut got = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut got);
    (got, started.elapsed())
}

/// `delayed_close_timeout`, as Envoy 1.40 applies it on HTTP/1 (checked by
/// running it): after a reply made before the request's end (here a 400 to a
/// malformed head) the connection waits for the client to close, and closes
/// itself when the timeout passes (`downstream_cx_delayed_close_timeout`); a
/// client that closes first ends it at once (closed remotely); after the
/// upstream's response to a whole `connection: close` request there is no wait.
#[test]
fn delayed_close_timeout_waits_for_the_client_after_a_local_reply() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let up = http_upstream("a");
    let c = proxy(&up, "          delayed_close_timeout: 0.4s\n");
    let malformed = b"GET / HTTP/1.1\r\nhost: a\r\nbad header\r\n\r\n";
    let mut s = TcpStream::connect(c.listener("web")).unwrap();
    s.write_all(malformed).unwrap();
    let (got, waited) = time_to_close(&mut s);
    assert!(got.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&got));
    assert!(waited >= Duration::from_millis(350), "closed after {waited:?}");
    c.wait_stat("http.ingress.downstream_cx_delayed_close_timeout", |v| v == 1);
    assert_eq!(c.stat("http.ingress.downstream_cx_destroy_local"), Some(1));

    // The client reads the reply and closes: the connection ends then.
    let mut s = TcpStream::connect(c.listener("web")).unwrap();
    s.write_all(malformed).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    let started = Instant::now();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (_, waited) = time_to_close(&mut s);
    assert!(started.elapsed() < Duration::from_millis(300), "closed after {waited:?}");
    c.wait_stat("http.ingress.downstream_cx_destroy_remote", |v| v == 1);

    // The upstream's response to a whole request: closed at once.
    let mut s = TcpStream::connect(c.listener("web")).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").unwrap();
    let (got, waited) = time_to_close(&mut s);
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    assert!(waited < Duration::from_millis(300), "closed after {waited:?}");
    assert_eq!(c.stat("http.ingress.downstream_cx_delayed_close_timeout"), Some(1));
}

/// The router's 503 after a refused upstream connection, to a whole
/// `connection: close` request: Envoy 1.40 closes at once, as after an
/// upstream's response, where a direct response (a reply made as the head was
/// decoded) waits `delayed_close_timeout` for the client (checked by running it).
#[test]
fn a_reply_to_a_failed_upstream_request_closes_at_once() {
    use std::io::Write;
    use std::net::TcpStream;
    let routes = format!(
        "              - match: {{ prefix: \"/direct\" }}\n                direct_response: {{ status: 200 }}\n{}",
        prefix_route("/", "dead", "")
    );
    let listener = http_listener("web", "          delayed_close_timeout: 0.5s\n", &one_vhost(&routes), "");
    let c = Courier::start(&config(&[listener], &[static_cluster("dead", &[closed_port()])]), 1);
    let mut s = TcpStream::connect(c.listener("web")).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").unwrap();
    let (got, waited) = time_to_close(&mut s);
    assert!(got.starts_with(b"HTTP/1.1 503"), "{}", String::from_utf8_lossy(&got));
    assert!(waited < Duration::from_millis(300), "closed after {waited:?}");
    drop(s);

    let mut s = TcpStream::connect(c.listener("web")).unwrap();
    s.write_all(b"GET /direct HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").unwrap();
    let (got, waited) = time_to_close(&mut s);
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    assert!(waited >= Duration::from_millis(450), "closed after {waited:?}");
    c.wait_stat("http.ingress.downstream_cx_destroy_local", |v| v == 2);
    assert_eq!(c.stat("http.ingress.downstream_cx_delayed_close_timeout"), Some(1));
}

/// A client that resets the connection during the delayed-close wait does
/// not end it: as Envoy 1.40 (checked by running it), the connection closes
/// when `delayed_close_timeout` passes, a delayed-close timeout and a local
/// close; only a client's FIN makes it a remote close.
#[test]
fn a_reset_during_the_delayed_close_wait_is_a_local_close_at_the_timeout() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let up = http_upstream("a");
    let c = proxy(&up, "          delayed_close_timeout: 0.4s\n");
    let mut s = TcpStream::connect(c.listener("web")).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nbad header\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    let reset = Instant::now();
    c.wait_stat("http.ingress.downstream_cx_destroy", |v| v == 1);
    assert!(reset.elapsed() >= Duration::from_millis(300), "closed after {:?}", reset.elapsed());
    assert_eq!(c.stat("http.ingress.downstream_cx_delayed_close_timeout"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_cx_destroy_local"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_cx_destroy_remote"), Some(0));
}
