//! WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through Courier to an
//! HTTP/1.1 upstream that speaks the upgrade: with `allow_connect` and
//! `upgrade_configs`, a `CONNECT` + `:protocol websocket` stream reaches the
//! upstream as a `GET` upgrade, its 101 comes back as `:status 200`, and the
//! stream's DATA frames carry the tunnel both ways; the ends and the 403 to a
//! refused upgrade are Envoy 1.40's (checked by running it).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;

use crate::harness::*;
use crate::http_util::*;

const TIMEOUT: Duration = Duration::from_secs(10);

/// An upstream that answers one upgrade with 101 and `WELCOME`, then echoes
/// each read as `echo:<bytes>`, and closes after echoing `bye`. Sends the
/// request head it got.
fn websocket_upstream() -> (u16, mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (head_tx, heads) = mpsc::channel::<String>();
    let thread = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else { return };
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        while !data.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return;
            }
            data.extend_from_slice(&buf[..n]);
        }
        let _ = head_tx.send(String::from_utf8_lossy(&data).to_ascii_lowercase());
        let _ = s
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nWELCOME");
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return;
            }
            let _ = s.write_all(&[b"echo:", &buf[..n]].concat());
            if &buf[..n] == b"bye" {
                return;
            }
        }
    });
    (port, heads, thread)
}

fn start(hcm_extra: &str, port: u16) -> Courier {
    let hcm = format!("codec_type: HTTP2\n{hcm_extra}");
    let routes = "virtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    route: { cluster: app }\n";
    start_web(&hcm, routes, "", &[static_cluster("app", &[port])])
}

/// What the client saw of one extended CONNECT stream.
struct Seen {
    status: u16,
    headers: http::HeaderMap,
    /// The stream's DATA, and how it ended (`None`: END_STREAM).
    data: Vec<u8>,
    reset: Option<h2::Reason>,
}

/// Opens `CONNECT /chat` with `:protocol websocket`; sends each of `sends`
/// once the data read so far ends with the matching `after`.
fn extended_connect(addr: std::net::SocketAddr, steps: &[(&'static [u8], &'static [u8])]) -> Seen {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (client, conn) = h2::client::handshake(tcp).await.expect("handshake");
        let driver = tokio::spawn(conn);
        let mut client = client.ready().await.expect("ready");
        // The server's SETTINGS (SETTINGS_ENABLE_CONNECT_PROTOCOL) arrive after
        // the handshake; the overall timeout bounds the wait.
        while !client.is_extended_connect_protocol_enabled() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut request = http::Request::builder()
            .method("CONNECT")
            .uri("http://example.com/chat")
            .header("sec-websocket-version", "13")
            .body(())
            .expect("request");
        request.extensions_mut().insert(h2::ext::Protocol::from_static("websocket"));
        let (response, mut send) = client.send_request(request, false).expect("send");
        let response = response.await.expect("response");
        let (parts, mut recv) = response.into_parts();
        let mut data = Vec::new();
        let mut steps = steps.iter();
        let mut next = steps.next();
        let reset = loop {
            if let Some((after, payload)) = next {
                if data.ends_with(after) {
                    send.send_data(Bytes::from_static(payload), false).expect("data");
                    next = steps.next();
                    continue;
                }
            }
            match recv.data().await {
                Some(Ok(chunk)) => {
                    let _ = recv.flow_control().release_capacity(chunk.len());
                    data.extend_from_slice(&chunk);
                }
                Some(Err(e)) => break e.reason(),
                None => break None,
            }
        };
        driver.abort();
        Seen { status: parts.status.as_u16(), headers: parts.headers, data, reset }
    };
    rt.block_on(async { tokio::time::timeout(TIMEOUT, exchange).await }).expect("the exchange finished in time")
}

#[test]
fn websocket_over_http2_is_relayed_to_an_http1_upgrade() {
    let (port, heads, upstream) = websocket_upstream();
    let dir = TempDir::new("h2ws");
    let log = dir.0.join("access.log");
    let c = start(
        &format!(
            "http2_protocol_options: {{ allow_connect: true }}\nupgrade_configs: [{{ upgrade_type: websocket }}]\n\
             access_log:\n- name: envoy.access_loggers.file\n  typed_config:\n    \"@type\": \
             type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    \
             log_format: {{ text_format_source: {{ inline_string: \"%REQ(:METHOD)% %RESPONSE_CODE% \
             %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT%\\n\" }} }}\n",
            log.display()
        ),
        port,
    );
    let seen = extended_connect(c.listener("web"), &[(b"WELCOME", b"hello"), (b"echo:hello", b"bye")]);
    // The upstream got the upgrade the stream stands for: a GET with
    // `upgrade`/`connection`, no body framing.
    let head = heads.recv_timeout(TIMEOUT).expect("the upstream got the request");
    assert!(head.starts_with("get /chat http/1.1\r\n"), "{head}");
    for line in ["\r\nhost: example.com\r\n", "\r\nupgrade: websocket\r\n", "\r\nconnection: upgrade\r\n"] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    assert!(!head.contains("content-length") && !head.contains("transfer-encoding"), "{head}");
    // Its 101 is a 200 on the stream, without the HTTP/1 upgrade headers.
    assert_eq!(seen.status, 200);
    assert!(seen.headers.get("upgrade").is_none() && seen.headers.get("x-envoy-upstream-service-time").is_none());
    // Bytes both ways; the upstream's close comes after all it sent, as
    // RST_STREAM CONNECT_ERROR.
    assert_eq!(String::from_utf8_lossy(&seen.data), "WELCOMEecho:helloecho:bye");
    assert_eq!(seen.reset, Some(h2::Reason::CONNECT_ERROR));
    upstream.join().expect("upstream");
    c.wait_stat("http.ingress.downstream_cx_upgrades_active", |v| v == 0);
    c.wait_stat("http.ingress.downstream_rq_active", |v| v == 0);
    assert_eq!(c.stat("http.ingress.downstream_cx_upgrades_total"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_rq_tx_reset"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_rq_rx_reset"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_rq_1xx"), Some(1));
    assert_eq!(c.stat("http2.tx_reset"), Some(1));
    // Logged when the tunnel closed, as Envoy logs it: the upstream's 101, `UC`,
    // the tunnel's bytes (hello + bye in; WELCOME and the echoes out).
    assert_eq!(wait_for_lines(&log, 1), ["GET 101 UC 8 25"]);
}

/// Without `upgrade_configs` the extended CONNECT gets Envoy's 403, and the
/// connection goes away (GOAWAY) after it; nothing reaches the upstream.
#[test]
fn websocket_over_http2_without_upgrade_configs_is_refused() {
    let (port, heads, _upstream) = websocket_upstream();
    let c = start("http2_protocol_options: { allow_connect: true }\n", port);
    let seen = extended_connect(c.listener("web"), &[]);
    assert_eq!(seen.status, 403);
    assert!(heads.try_recv().is_err(), "nothing reaches the upstream");
    c.wait_stat("http2.goaway_sent", |v| v == 1);
    assert_eq!(c.stat("http.ingress.downstream_rq_ws_on_non_ws_route"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_rq_response_before_rq_complete"), Some(1));
    assert_eq!(c.stat("http.ingress.downstream_cx_upgrades_total"), Some(0));
}
