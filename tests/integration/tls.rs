//! TLS (`envoy.transport_sockets.tls`): HTTPS termination with HTTP/1.1 and, by
//! ALPN, HTTP/2; mutual TLS accepted and refused; TLS to upstreams with SNI and
//! CA validation (a rustls test upstream); the handshake timeout; bytes that are
//! no ClientHello, and clients that stall or garble theirs while others are
//! served. Certificates are made at test time (`shared_tls::Pki`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::shared_tls::{client_config, server_config, Leaf, Pki};

const SERVER_NAME: &str = "server.test";

/// `transport_socket` YAML (at column 6) for a filter chain or (at column 4) a cluster.
fn transport_socket(kind: &str, body: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let body: String = body.lines().map(|l| format!("{pad}    {l}\n")).collect();
    format!(
        "{pad}transport_socket:\n{pad}  name: envoy.transport_sockets.tls\n{pad}  typed_config:\n{pad}    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{kind}\n{body}"
    )
}

/// `common_tls_context` for a certificate pair (paths), trusted CA and an
/// `alpn_protocols` line.
fn common(cert: Option<&(std::path::PathBuf, std::path::PathBuf)>, ca: Option<&std::path::Path>, alpn: &str) -> String {
    let mut out = String::from("common_tls_context:\n");
    if let Some((c, k)) = cert {
        out += &format!(
            "  tls_certificates:\n  - certificate_chain: {{ filename: {} }}\n    private_key: {{ filename: {} }}\n",
            c.display(),
            k.display()
        );
    }
    if let Some(ca) = ca {
        out += &format!("  validation_context:\n    trusted_ca: {{ filename: {} }}\n", ca.display());
    }
    if !alpn.is_empty() {
        out += &format!("  {alpn}\n");
    }
    out
}

/// An HTTPS listener `web` (stats `listener.tls_web.*`): `/direct` answers
/// itself, the rest goes to cluster `app`.
fn https_listener(chain_extra: &str, tls: &str) -> String {
    format!(
        r#"  - name: web
    stat_prefix: tls_web
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - {chain_extra}
{ts}      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{ prefix: "/direct" }}
                direct_response: {{ status: 200, body: {{ inline_string: hi }} }}
              - match: {{ prefix: "/" }}
                route: {{ cluster: app }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#,
        ts = transport_socket("DownstreamTlsContext", tls, 6),
    )
}

/// A plain HTTP listener `plain` routing everything to cluster `app`.
fn plain_listener() -> String {
    crate::http_util::http_listener(
        "plain",
        "",
        &crate::http_util::indent(&crate::http_util::one_vhost(&crate::http_util::prefix_route("/", "app", "")), 0),
        "",
    )
}

/// Certificates for a test: CA, `server.test`, a client, in a scratch dir.
struct Certs {
    dir: TempDir,
    pki: Pki,
    server: (std::path::PathBuf, std::path::PathBuf),
    ca: std::path::PathBuf,
}

fn certs() -> Certs {
    let dir = TempDir::new("tls");
    let pki = Pki::new("Courier Test CA");
    let server = pki.leaf(&[SERVER_NAME]).write(&dir.0, "server");
    let ca = dir.file("ca.crt", &pki.ca_pem);
    Certs { dir, pki, server, ca }
}

/// One HTTP/1.1 GET over TLS; the status and body, or what failed.
fn https_get(addr: SocketAddr, config: Arc<rustls::ClientConfig>, path: &str) -> Result<(u16, String), String> {
    https_get_as(addr, config, SERVER_NAME, path)
}

/// `https_get` asking for (and verifying) the server name `sni`.
fn https_get_as(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, connect(addr));
    let request = format!("GET {path} HTTP/1.1\r\nhost: {SERVER_NAME}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer that closes without close_notify: what came is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// An HTTP/1.1 upstream over TLS: answers every request with the SNI it was
/// asked for as the body. Stopped on drop.
struct TlsUpstream {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsUpstream {
    fn start(leaf: &Leaf) -> TlsUpstream {
        Self::start_alpn(leaf, &[])
    }

    /// `start`, choosing from `alpn` what the client offers.
    fn start_alpn(leaf: &Leaf, alpn: &[&str]) -> TlsUpstream {
        let mut config = (*server_config(leaf)).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let config = config.clone();
                        std::thread::spawn(move || serve_tls(stream, config));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TlsUpstream { port, stop, thread: Some(thread) }
    }
}

fn serve_tls(stream: TcpStream, config: Arc<rustls::ServerConfig>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
    loop {
        let mut line = String::new();
        let mut content_length = 0usize;
        let mut first = true;
        loop {
            line.clear();
            if tls.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; content_length];
        if tls.read_exact(&mut body).is_err() {
            return;
        }
        let conn = &tls.get_ref().conn;
        let mut sni = conn.server_name().unwrap_or("none").to_string();
        if let Some(alpn) = conn.alpn_protocol() {
            sni = format!("{sni} {}", String::from_utf8_lossy(alpn));
        }
        let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{sni}", sni.len());
        if tls.get_mut().write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(listeners: &[String], clusters: &[String]) -> Courier {
    Courier::start(&config(listeners, clusters), 1)
}

#[test]
fn https_terminates_http1_and_counts_the_handshake() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let transport_socket = common(Some(&certs.server), None, "");
    let c = start(&[https_listener("name: tls", &transport_socket)], &[static_cluster("app", &[up.port()])]);
    let client = client_config(&certs.pki.ca_pem, None, &[]);
    let got = https_get(c.listener("web"), client, "/direct").expect("HTTPS GET");
    assert_eq!(got, (200, "hi".to_string()));
    assert_eq!(c.stat("listener.tls_web.ssl.handshake"), Some(1));
    assert_eq!(c.stat("listener.tls_web.ssl.versions.TLSv1.3"), Some(1));
    assert_eq!(c.stat("listener.tls_web.ssl.curves.X25519"), Some(1), "Envoy's preferred curve");
    assert_eq!(c.stat("listener.tls_web.ssl.no_certificate"), Some(1));
    assert_eq!(c.stat("listener.tls_web.ssl.connection_error"), Some(0));
    assert_eq!(c.stat("http.ingress.downstream_rq_http1_total"), Some(1));
    // The same client again resumes its session (rustls's session cache, as
    // Envoy resumes by default).
    let client = client_config(&certs.pki.ca_pem, None, &[]);
    assert_eq!(https_get(c.listener("web"), client.clone(), "/direct").map(|r| r.0), Ok(200));
    assert_eq!(https_get(c.listener("web"), client, "/direct").map(|r| r.0), Ok(200));
    assert_eq!(c.stat("listener.tls_web.ssl.session_reused"), Some(1));
    assert_eq!(c.stat("listener.tls_web.ssl.handshake"), Some(3));
}

#[test]
fn tls_params_and_inline_certificates_choose_the_version() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let leaf = certs.pki.leaf(&[SERVER_NAME]);
    let inline = format!(
        "common_tls_context:\n  tls_params:\n    tls_minimum_protocol_version: TLSv1_2\n    tls_maximum_protocol_version: TLSv1_2\n    cipher_suites: [\"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-RSA-AES128-GCM-SHA256]\"]\n  tls_certificates:\n  - certificate_chain: {{ inline_string: {:?} }}\n    private_key: {{ inline_bytes: {:?} }}\n",
        leaf.cert_pem,
        base64(leaf.key_pem.as_bytes()),
    );
    let c = start(&[https_listener("name: tls12", &inline)], &[static_cluster("app", &[up.port()])]);
    let client = client_config(&certs.pki.ca_pem, None, &[]);
    assert_eq!(https_get(c.listener("web"), client, "/direct").expect("GET").0, 200);
    assert_eq!(c.stat("listener.tls_web.ssl.versions.TLSv1.2"), Some(1));
    assert_eq!(c.stat("listener.tls_web.ssl.ciphers.ECDHE-ECDSA-AES128-GCM-SHA256"), Some(1));
}

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn alpn_h2_serves_http2_and_http1_stays_http1() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let tls = common(Some(&certs.server), None, "alpn_protocols: [h2, http/1.1]");
    let c = start(&[https_listener("name: alpn", &tls)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let config = client_config(&certs.pki.ca_pem, None, &["h2"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let status = rt
        .block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            let (mut client, conn) = h2::client::handshake(tls).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let req =
                http::Request::get(format!("https://{SERVER_NAME}/direct")).body(()).map_err(|e| e.to_string())?;
            let (resp, _) = client.send_request(req, true).map_err(|e| e.to_string())?;
            let resp = tokio::time::timeout(IO_TIMEOUT, resp).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(resp.map_err(|e| e.to_string())?.status().as_u16())
        })
        .expect("HTTP/2 over TLS");
    assert_eq!(status, 200);
    assert_eq!(c.stat("http.ingress.downstream_rq_http2_total"), Some(1));
    let http1 = client_config(&certs.pki.ca_pem, None, &["http/1.1"]);
    assert_eq!(https_get(addr, http1, "/direct").expect("HTTP/1.1").0, 200);
    assert_eq!(c.stat("http.ingress.downstream_rq_http1_total"), Some(1));
}

#[test]
fn mutual_tls_accepts_the_ca_s_clients_and_refuses_the_rest() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let validation = format!("  validation_context:\n    trusted_ca: {{ filename: {} }}\n", certs.ca.display());
    let tls = format!("require_client_certificate: true\n{}{validation}", common(Some(&certs.server), None, ""));
    let c = start(&[https_listener("name: mtls", &tls)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");

    let no_cert = client_config(&certs.pki.ca_pem, None, &[]);
    assert!(https_get(addr, no_cert, "/direct").is_err(), "no client certificate");
    c.wait_stat("listener.tls_web.ssl.fail_verify_no_cert", |v| v == 1);

    let stranger = Pki::new("Other CA").leaf(&["client.test"]);
    let wrong_ca = client_config(&certs.pki.ca_pem, Some(&stranger), &[]);
    assert!(https_get(addr, wrong_ca, "/direct").is_err(), "a client of another CA");
    c.wait_stat("listener.tls_web.ssl.fail_verify_error", |v| v == 1);

    let client = certs.pki.leaf(&["client.test"]);
    let good = client_config(&certs.pki.ca_pem, Some(&client), &[]);
    assert_eq!(https_get(addr, good, "/direct").expect("mTLS GET"), (200, "hi".to_string()));
    assert_eq!(c.stat("listener.tls_web.ssl.handshake"), Some(1));
    // A verification failure counts as fail_verify_* only, as in Envoy.
    assert_eq!(c.stat("listener.tls_web.ssl.connection_error"), Some(0));
    assert_eq!(c.stat("listener.tls_web.ssl.no_certificate"), Some(0));
    drop(c);

    // Without a validation context Envoy requires a certificate and verifies none.
    let tls = format!("require_client_certificate: true\n{}", common(Some(&certs.server), None, ""));
    let c = start(&[https_listener("name: any", &tls)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let no_cert = client_config(&certs.pki.ca_pem, None, &[]);
    assert!(https_get(addr, no_cert, "/direct").is_err(), "still required");
    let any = client_config(&certs.pki.ca_pem, Some(&stranger), &[]);
    assert_eq!(https_get(addr, any, "/direct").map(|r| r.0), Ok(200), "any certificate");
    assert_eq!(c.stat("listener.tls_web.ssl.fail_verify_no_cert"), Some(1));
}

#[test]
fn upstream_tls_sends_sni_and_validates_the_ca() {
    let certs = certs();
    let up = TlsUpstream::start(&certs.pki.leaf(&["up.test"]));
    let client = certs.pki.leaf(&["courier.test"]).write(&certs.dir.0, "client");
    let cluster = |name: &str, tls: &str| {
        format!("{}{}", static_cluster(name, &[up.port]), transport_socket("UpstreamTlsContext", tls, 4))
    };
    let verified = cluster(
        "app",
        &format!("sni: up.test\n{}", common(Some(&client), Some(&certs.ca), "alpn_protocols: [http/1.1]")),
    );
    let c = start(&[plain_listener()], &[verified]);
    let (status, body) = http_request(c.listener("plain"), "GET", "/");
    assert_eq!((status, body.as_str()), (200, "up.test"), "the upstream saw the SNI");
    assert_eq!(c.stat("cluster.app.ssl.handshake"), Some(1));
    assert_eq!(c.stat("cluster.app.ssl.versions.TLSv1.3"), None, "Envoy counts versions on listeners only");

    // Another CA: the upstream is not trusted, the request fails as a connect failure.
    let other_ca = certs.dir.file("other-ca.crt", &Pki::new("Other CA").ca_pem);
    let c = start(&[plain_listener()], &[cluster("app", &common(None, Some(&other_ca), ""))]);
    let (status, body) = http_request(c.listener("plain"), "GET", "/");
    assert_eq!(status, 503);
    assert!(body.starts_with("upstream connect error or disconnect/reset before headers"), "{body}");
    assert_eq!(c.stat("cluster.app.ssl.fail_verify_error"), Some(1));
    assert_eq!(c.stat("cluster.app.ssl.connection_error"), Some(0), "a verification failure only");
    assert_eq!(c.stat("cluster.app.upstream_cx_connect_fail"), Some(1));

    // No validation context: Envoy does not verify the upstream, nor does Courier.
    let c = start(&[plain_listener()], &[cluster("app", "common_tls_context: {}\n")]);
    let (status, body) = http_request(c.listener("plain"), "GET", "/");
    assert_eq!((status, body.as_str()), (200, "none"), "no sni: none sent");
    // Nor with a validation context that names no trusted_ca.
    let c = start(&[plain_listener()], &[cluster("app", "common_tls_context:\n  validation_context: {}\n")]);
    assert_eq!(http_request(c.listener("plain"), "GET", "/").0, 200);
}

#[test]
fn a_handshake_that_does_not_finish_in_time_is_closed() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let tls = common(Some(&certs.server), None, "");
    let c = start(
        &[https_listener("transport_socket_connect_timeout: 0.2s", &tls)],
        &[static_cluster("app", &[up.port()])],
    );
    let mut silent = connect(c.listener("web"));
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    assert!(started.elapsed() < Duration::from_secs(3), "closed by the timeout");
    c.wait_stat("listener.tls_web.downstream_cx_transport_socket_connect_timeout", |v| v == 1);
}

#[test]
fn bytes_that_are_no_client_hello_close_the_connection_and_others_are_served() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let tls = common(Some(&certs.server), None, "");
    let c = start(&[https_listener("name: garbage", &tls)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let held = Mutex::new(connect(addr)); // an idle connection that is not disturbed
    let mut plain = connect(addr);
    plain.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").expect("write");
    let mut out = Vec::new();
    let _ = plain.read_to_end(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("HTTP/1.1"), "no HTTP answer in plaintext");
    c.wait_stat("listener.tls_web.ssl.connection_error", |v| v == 1);
    let client = client_config(&certs.pki.ca_pem, None, &[]);
    assert_eq!(https_get(addr, client, "/direct").expect("GET").0, 200);
    drop(held);
}

#[test]
fn clients_stalled_or_garbling_their_hellos_do_not_hold_up_others() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let tls = common(Some(&certs.server), None, "");
    let c = start(&[https_listener("name: hostile", &tls)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let hello_start = [0x16, 0x03, 0x01, 0x00, 0x41, 0x01, 0x00, 0x00, 0x3d, 0x03, 0x03];
    // 100 clients stop mid-ClientHello and stay; 20 more send bytes that a
    // pseudo-random walk corrupted after a handshake record header, then close.
    let stalled: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(&hello_start).expect("write");
            s
        })
        .collect();
    let mut seed = 0x9e37_79b9_u32;
    for _ in 0..20 {
        let mut s = connect(addr);
        let mut bytes = hello_start.to_vec();
        for _ in 0..200 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            bytes.push((seed >> 24) as u8);
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    c.wait_stat("listener.tls_web.downstream_cx_active", |v| v == 100);
    // A well-formed client is served while the stalled ones are still open.
    let client = client_config(&certs.pki.ca_pem, None, &[]);
    assert_eq!(https_get(addr, client, "/direct").expect("GET").0, 200);
    drop(stalled);
    c.wait_stat("listener.tls_web.downstream_cx_active", |v| v == 0);
    assert_eq!(c.stat("listener.tls_web.ssl.handshake"), Some(1));
}

#[test]
fn tls_config_courier_cannot_honour_is_refused_naming_the_field() {
    let certs = certs();
    let (cert, key) = (certs.server.0.display().to_string(), certs.server.1.display().to_string());
    let listener = |tls: &str| {
        let tls: String = tls.lines().map(|l| format!("          {l}\n")).collect();
        format!(
            "static_resources:\n  listeners:\n  - name: web\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}\n    filter_chains:\n    - transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n{tls}      filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: t\n          cluster: app\n  clusters:\n{}",
            static_cluster("app", &[closed_port()])
        )
    };
    let pair = format!("  - certificate_chain: {{ filename: {cert} }}\n    private_key: {{ filename: {key} }}\n");
    let cases = [
        (
            format!("common_tls_context:\n  tls_params: {{ tls_minimum_protocol_version: TLSv1_0 }}\n  tls_certificates:\n{pair}"),
            "common_tls_context.tls_params.tls_minimum_protocol_version",
        ),
        (
            format!("common_tls_context:\n  tls_params: {{ cipher_suites: [AES128-SHA] }}\n  tls_certificates:\n{pair}"),
            "common_tls_context.tls_params.cipher_suites[0]",
        ),
        (
            format!("session_ticket_keys: {{ keys: [{{ inline_string: x }}] }}\ncommon_tls_context:\n  tls_certificates:\n{pair}"),
            "session_ticket_keys.keys[0]: Incorrect TLS session ticket key length. Length 1, expected length 80.",
        ),
        (
            "common_tls_context:\n  tls_certificates:\n  - certificate_chain: { filename: /nonexistent.crt }\n    private_key: { inline_string: x }\n".to_string(),
            "certificate_chain.filename",
        ),
        (
            format!("common_tls_context:\n  validation_context: {{ crl: {{ inline_string: x }} }}\n  tls_certificates:\n{pair}"),
            "validation_context.crl: Failed to load CRL from <inline> without trusted CA",
        ),
        (
            format!("common_tls_context:\n  validation_context:\n    trusted_ca: {{ filename: {cert} }}\n    crl: {{ inline_string: \"-----BEGIN X509 CRL-----\\nAAAA\\n-----END X509 CRL-----\\n\" }}\n  tls_certificates:\n{pair}"),
            "validation_context.crl: Failed to load CRL from <inline>",
        ),
    ];
    for (tls, field) in cases {
        let (ok, out) = validate(&listener(&tls));
        assert!(!ok, "accepted:\n{tls}");
        assert!(out.contains(field), "{field} not named in: {out}");
    }
    let (ok, out) = validate(&listener(&format!("common_tls_context:\n  tls_certificates:\n{pair}")));
    assert!(ok, "{out}");
}

#[test]
fn several_tls_certificates_are_chosen_by_sni() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let other = certs.pki.leaf(&["other.test", "*.wild.test"]).write(&certs.dir.0, "other");
    let pair = |(c, k): &(std::path::PathBuf, std::path::PathBuf)| {
        format!(
            "  - certificate_chain: {{ filename: {} }}\n    private_key: {{ filename: {} }}\n",
            c.display(),
            k.display()
        )
    };
    let tls_certificates = format!("common_tls_context:\n  tls_certificates:\n{}{}", pair(&certs.server), pair(&other));
    let c = start(&[https_listener("name: sni", &tls_certificates)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    // The client checks the name it asked for: each answer shows which certificate came.
    for sni in [SERVER_NAME, "other.test", "a.wild.test"] {
        let client = client_config(&certs.pki.ca_pem, None, &[]);
        assert_eq!(https_get_as(addr, client, sni, "/direct").map(|r| r.0), Ok(200), "SNI {sni}");
    }
    // An unknown name gets the first certificate (for server.test): the check fails.
    let client = client_config(&certs.pki.ca_pem, None, &[]);
    assert!(https_get_as(addr, client, "unknown.test", "/direct").is_err());
}

/// An HTTP/2 upstream over TLS (ALPN `h2` only): answers `h2 <sni>`. Stopped on drop.
struct H2TlsUpstream {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl H2TlsUpstream {
    fn start(leaf: &Leaf) -> H2TlsUpstream {
        let mut config = (*server_config(leaf)).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let serve = async {
                    while let Ok((tcp, _)) = listener.accept().await {
                        tokio::spawn(serve_h2(acceptor.clone(), tcp));
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        H2TlsUpstream { port, stop: Some(stop), thread: Some(thread) }
    }
}

async fn serve_h2(acceptor: tokio_rustls::TlsAcceptor, tcp: tokio::net::TcpStream) {
    let Ok(tls) = acceptor.accept(tcp).await else { return };
    let sni = tls.get_ref().1.server_name().unwrap_or("none").to_string();
    let Ok(mut conn) = h2::server::handshake(tls).await else { return };
    while let Some(Ok((_request, mut respond))) = conn.accept().await {
        let Ok(response) = http::Response::builder().status(200).body(()) else { return };
        if let Ok(mut send) = respond.send_response(response, false) {
            let _ = send.send_data(bytes::Bytes::from(format!("h2 {sni}")), true);
        }
    }
}

impl Drop for H2TlsUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn an_http2_cluster_speaks_h2_over_tls_by_alpn() {
    let certs = certs();
    let up = H2TlsUpstream::start(&certs.pki.leaf(&["up.test"]));
    let http2 = "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: { http2_protocol_options: {} }\n";
    // No alpn_protocols: the HTTP/2 pool offers h2, as Envoy's ALPN fallback.
    let tls = format!("sni: up.test\n{}", common(None, Some(&certs.ca), ""));
    let cluster =
        format!("{}{http2}{}", static_cluster("app", &[up.port]), transport_socket("UpstreamTlsContext", &tls, 4));
    let c = start(&[plain_listener()], &[cluster]);
    for _ in 0..2 {
        let (status, body) = http_request(c.listener("plain"), "GET", "/");
        assert_eq!((status, body.as_str()), (200, "h2 up.test"));
    }
    assert_eq!(c.stat("cluster.app.upstream_cx_http2_total"), Some(1), "one multiplexed connection");
    assert_eq!(c.stat("cluster.app.ssl.handshake"), Some(1));
}

#[test]
fn a_large_body_and_pipelined_requests_cross_a_tls_listener() {
    let certs = certs();
    let up = crate::shared_net::http_upstream("a");
    let tls = common(Some(&certs.server), None, "");
    let c = start(&[https_listener("name: big", &tls)], &[static_cluster("app", &[up.port()])]);
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("name");
    let conn = rustls::ClientConnection::new(client_config(&certs.pki.ca_pem, None, &[]), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, connect(c.listener("web")));
    // Records bigger than the proxy's reads, and two requests in one write: the
    // session's buffered plaintext must be read without waiting on the socket.
    let body = "x".repeat(300_000);
    let mut out = format!("POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    out += "GET /direct HTTP/1.1\r\nhost: a\r\n\r\nGET /direct HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    tls.write_all(out.as_bytes()).expect("write");
    let mut got = Vec::new();
    let _ = tls.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{}", &text[..text.len().min(400)]);
    assert!(text.contains("\"body\""), "the upstream's report");
    let report = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let seen = crate::shared_net::Seen(
        serde_json::from_str(report.split("HTTP/1.1").next().unwrap_or("")).unwrap_or_default(),
    );
    assert_eq!(seen.body().len(), 300_000, "the whole body reached the upstream");
}

#[test]
fn records_cut_into_single_bytes_and_a_key_update_cross_a_tls_listener() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let tls = common(Some(&certs.server), None, "");
    let c = start(&[https_listener("name: dribble", &tls)], &[static_cluster("app", &[up.port()])]);
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("name");
    let mut conn = rustls::ClientConnection::new(client_config(&certs.pki.ca_pem, None, &[]), name).expect("client");
    let mut tcp = connect(c.listener("web"));
    tcp.set_nodelay(true).expect("nodelay");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    // The client asks for new keys (the proxy must answer with its own
    // KeyUpdate before its reply can be read), then writes its request's
    // records one byte per write: the proxy holds each cut record until the
    // rest comes.
    conn.refresh_traffic_keys().expect("key update");
    for request in
        ["GET /direct HTTP/1.1\r\nhost: a\r\n\r\n", "GET /direct HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"]
    {
        conn.writer().write_all(request.as_bytes()).expect("plaintext");
        let mut records = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut records).expect("records");
        }
        for byte in records {
            tcp.write_all(&[byte]).expect("one byte");
        }
    }
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut got = Vec::new();
    let _ = tls.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(c.stat("listener.tls_web.ssl.connection_error"), Some(0));
}

#[test]
fn a_forged_record_after_the_handshake_closes_the_connection_and_counts_as_envoy() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let tls = common(Some(&certs.server), None, "");
    let c = start(&[https_listener("name: forged", &tls)], &[static_cluster("app", &[up.port()])]);
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("name");
    let mut conn = rustls::ClientConnection::new(client_config(&certs.pki.ca_pem, None, &[]), name).expect("client");
    let mut tcp = connect(c.listener("web"));
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    // An application-data record no key sealed: the proxy cannot open it.
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[b'A'; 32]);
    tcp.write_all(&forged).expect("forged record");
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    // Envoy 1.40 counts the failed read and the close_notify it cannot write.
    assert_eq!(c.stat("listener.tls_web.ssl.connection_error"), Some(2));
    assert_eq!(c.stat("listener.tls_web.ssl.handshake"), Some(1));
}

/// A tcp_proxy listener `tcp` that terminates TLS and forwards over TLS
/// (cluster `app`, SNI `up.test`, no validation context) to an echo upstream;
/// the echo's TLS front lives as long as the returned `Upstream`.
fn tls_tcp_proxy_to_tls_echo(certs: &Certs) -> (Courier, Upstream) {
    let tls_echo = crate::shared_tls::tls_front(Upstream::echo(), &certs.pki.leaf(&["up.test"]));
    let cluster = format!(
        "{}{}",
        static_cluster("app", &[tls_echo.port()]),
        transport_socket("UpstreamTlsContext", "sni: up.test\n", 4)
    );
    let listener = tcp_listener("tcp", "tls_tcp", "app", "");
    let (head, filters) = listener.split_once("    filter_chains:\n    - filters:\n").expect("listener shape");
    let tls = transport_socket("DownstreamTlsContext", &common(Some(&certs.server), None, ""), 6);
    let listener = format!("{head}    filter_chains:\n    -\n{tls}      filters:\n{filters}");
    (start(&[listener], &[cluster]), tls_echo)
}

#[test]
fn tcp_proxy_runs_over_a_tls_listener_and_to_a_tls_cluster() {
    let certs = certs();
    let (c, _tls_echo) = tls_tcp_proxy_to_tls_echo(&certs);
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("name");
    let conn = rustls::ClientConnection::new(client_config(&certs.pki.ca_pem, None, &[]), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, connect(c.listener("tcp")));
    let data = "y".repeat(100_000);
    tls.write_all(data.as_bytes()).expect("write");
    let mut back = vec![0u8; data.len()];
    tls.read_exact(&mut back).expect("the echo, through both TLS hops");
    assert_eq!(back, data.as_bytes());
    // The listener's scope is its configured address, as its other stats.
    assert_eq!(c.stat("listener.127.0.0.1_0.ssl.handshake"), Some(1));
    assert_eq!(c.stat("cluster.app.ssl.handshake"), Some(1));
}

#[test]
fn megabytes_both_ways_cross_tls_on_both_hops_intact() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = certs();
    let (c, _tls_echo) = tls_tcp_proxy_to_tls_echo(&certs);
    let addr = c.listener("tcp");
    let config = client_config(&certs.pki.ca_pem, None, &[]);
    // 4 MiB in writes of uneven sizes while the echo comes back: both
    // sessions fill their sockets, keep ciphertext the socket did not take,
    // and cut records across reads. Every byte comes back in order.
    const TOTAL: usize = 4 << 20;
    let pattern = |i: usize| (i % 251) as u8;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let back = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("name");
        let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("handshake");
        let (mut rd, mut wr) = tokio::io::split(tls);
        let writer = tokio::spawn(async move {
            let (mut at, mut size) = (0, 1);
            while at < TOTAL {
                let n = size.min(TOTAL - at);
                let chunk: Vec<u8> = (at..at + n).map(pattern).collect();
                wr.write_all(&chunk).await.expect("write");
                at += n;
                size = size * 7 % 70_001 + 1;
            }
            wr.flush().await.expect("flush");
            wr
        });
        let mut back = vec![0u8; TOTAL];
        let read = tokio::time::timeout(IO_TIMEOUT, rd.read_exact(&mut back)).await;
        let _wr = writer.await.expect("writer");
        read.expect("in time").expect("read");
        back
    });
    let wrong = back.iter().enumerate().position(|(i, b)| *b != pattern(i));
    assert_eq!(wrong, None, "the first byte that came back wrong");
    assert_eq!(c.stat("cluster.app.ssl.connection_error"), Some(0));
}

/// A self-signed certificate with a known serial, validity and names of every
/// kind `/certs` shows (in an order that is not Envoy's: it groups them).
fn certificate_with_known_fields() -> Leaf {
    use rcgen::string::Ia5String;
    use rcgen::{date_time_ymd, CertificateParams, KeyPair, SanType, SerialNumber};
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.serial_number = Some(SerialNumber::from_slice(&[0x0a, 0x1b, 0x2c]));
    params.not_before = date_time_ymd(2026, 1, 2);
    // From 2050 on, a GeneralizedTime rather than a UTCTime.
    params.not_after = date_time_ymd(2099, 12, 31);
    params.subject_alt_names = vec![
        SanType::IpAddress("10.0.0.1".parse().expect("IP")),
        SanType::URI(Ia5String::try_from("spiffe://courier/test").expect("URI")),
        SanType::DnsName(Ia5String::try_from(SERVER_NAME).expect("DNS")),
        SanType::IpAddress("::2".parse().expect("IP")),
    ];
    let cert = params.self_signed(&key).expect("self-signed");
    Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

#[test]
fn admin_certs_lists_each_context_as_envoy_does() {
    let dir = TempDir::new("certs");
    let leaf = certificate_with_known_fields();
    let (cert, key) = leaf.write(&dir.0, "server");
    // An X.509 v1 certificate (no extensions), inline: the second entry of the chain.
    let v1_cert = include_str!("../../src/extensions/transport_sockets/tls/testdata/x509-v1-cert.pem");
    let v1_key = include_str!("../../src/extensions/transport_sockets/tls/testdata/x509-v1-key.pem");
    let inline = |pem: &str| format!("{{ inline_string: {:?} }}", pem);
    let listener_tls = format!(
        "common_tls_context:\n  tls_certificates:\n  - certificate_chain: {{ filename: {} }}\n    private_key: {{ filename: {} }}\n  - certificate_chain: {}\n    private_key: {}\n",
        cert.display(),
        key.display(),
        inline(v1_cert),
        inline(v1_key)
    );
    let cluster_tls = common(None, Some(&cert), "");
    let cluster = format!("{}{}", static_cluster("app", &[1]), transport_socket("UpstreamTlsContext", &cluster_tls, 4));
    let c = start(&[https_listener("name: tls", &listener_tls)], &[cluster]);
    let (status, body) = c.admin_get("/certs");
    assert_eq!(status, 200, "{body}");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let days = |expiry: u64| ((expiry - now) / 86_400).to_string();
    let known = |days_left: &str| {
        format!(
            r#"{{
     "path": "{}",
     "serial_number": "0a1b2c",
     "subject_alt_names": [
      {{
       "dns": "server.test"
      }},
      {{
       "uri": "spiffe://courier/test"
      }},
      {{
       "ip_address": "10.0.0.1"
      }},
      {{
       "ip_address": "::2"
      }}
     ],
     "days_until_expiration": "{days_left}",
     "valid_from": "2026-01-02T00:00:00Z",
     "expiration_time": "2099-12-31T00:00:00Z"
    }}"#,
            cert.display()
        )
    };
    // 2099-12-31T00:00:00Z and the v1 certificate's 2126-11-12T17:35:07Z.
    let (known_days, v1_days) = (days(4_102_358_400), days(4_950_178_507));
    let want = format!(
        r#"{{
 "certificates": [
  {{
   "ca_cert": [
    {known_ca}
   ],
   "cert_chain": []
  }},
  {{
   "ca_cert": [],
   "cert_chain": [
    {known_leaf},
    {{
     "path": "\u003cinline\u003e",
     "serial_number": "0da94ba9c02d59f9e89bc5ea833b7a92b4ccef58",
     "subject_alt_names": [],
     "days_until_expiration": "{v1_days}",
     "valid_from": "2026-12-06T17:35:07Z",
     "expiration_time": "2126-11-12T17:35:07Z"
    }}
   ]
  }}
 ]
}}
"#,
        known_ca = known(&known_days),
        known_leaf = known(&known_days),
    );
    assert_eq!(body, want);
    let (_, help) = c.admin_get("/help");
    assert!(help.contains("  /certs: print certs on machine\n"), "{help}");
}

/// SHA-256 of `bytes`, in lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `verify_certificate_spki` of a leaf: the SHA-256 of its public key info, in base64.
fn spki_pin(leaf: &Leaf) -> String {
    use rcgen::PublicKeyData;
    let key = rcgen::KeyPair::from_pem(&leaf.key_pem).expect("key");
    base64(ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info()).as_ref())
}

/// The DER of the first certificate of `pem`.
fn leaf_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM").to_vec()
}

/// As Envoy 1.40: a pin (`verify_certificate_hash` in hex with or without
/// colons, `verify_certificate_spki` in base64) accepts a peer on its own
/// without a `trusted_ca`, and on top of the chain with one; a peer that matches
/// no pin fails with `ssl.fail_verify_cert_hash`. Both ways.
#[test]
fn pinned_certificates_are_accepted_by_hash_or_spki_and_others_refused() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let pinned = certs.pki.leaf(&["client.test"]);
    let other = certs.pki.leaf(&["other.test"]);
    let colons = sha256_hex(&leaf_der(&pinned.cert_pem))
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let validation = format!("  validation_context:\n    verify_certificate_hash: [\"{colons}\"]\n");
    let tls = format!("require_client_certificate: true\n{}{validation}", common(Some(&certs.server), None, ""));
    let c = start(&[https_listener("name: pinned", &tls)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let ok = client_config(&certs.pki.ca_pem, Some(&pinned), &[]);
    assert_eq!(https_get(addr, ok, "/direct").map(|r| r.0), Ok(200), "the pinned client, no CA needed");
    let refused = client_config(&certs.pki.ca_pem, Some(&other), &[]);
    assert!(https_get(addr, refused, "/direct").is_err(), "a client of the same CA, not pinned");
    c.wait_stat("listener.tls_web.ssl.fail_verify_cert_hash", |v| v == 1);
    assert_eq!(c.stat("listener.tls_web.ssl.fail_verify_error"), Some(0));
    drop(c);

    // With a CA, the chain and the SPKI pin must both hold.
    let validation = format!(
        "  validation_context:\n    trusted_ca: {{ filename: {} }}\n    verify_certificate_spki: [\"{}\"]\n",
        certs.ca.display(),
        spki_pin(&pinned)
    );
    let tls = format!("require_client_certificate: true\n{}{validation}", common(Some(&certs.server), None, ""));
    let c = start(&[https_listener("name: spki", &tls)], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let ok = client_config(&certs.pki.ca_pem, Some(&pinned), &[]);
    assert_eq!(https_get(addr, ok, "/direct").map(|r| r.0), Ok(200));
    let refused = client_config(&certs.pki.ca_pem, Some(&other), &[]);
    assert!(https_get(addr, refused, "/direct").is_err());
    c.wait_stat("listener.tls_web.ssl.fail_verify_cert_hash", |v| v == 1);
    drop(c);

    // Upstream: the cluster pins its server's key.
    let up_leaf = certs.pki.leaf(&["up.test"]);
    let tls_up = TlsUpstream::start(&up_leaf);
    let cluster = |pin: &str| {
        let tls = format!("common_tls_context:\n  validation_context:\n    verify_certificate_spki: [\"{pin}\"]\n");
        format!("{}{}", static_cluster("app", &[tls_up.port]), transport_socket("UpstreamTlsContext", &tls, 4))
    };
    let c = start(&[plain_listener()], &[cluster(&spki_pin(&up_leaf))]);
    assert_eq!(http_request(c.listener("plain"), "GET", "/").0, 200, "the pinned upstream");
    let c = start(&[plain_listener()], &[cluster(&spki_pin(&other))]);
    assert_eq!(http_request(c.listener("plain"), "GET", "/").0, 503, "an upstream not pinned");
    assert_eq!(c.stat("cluster.app.ssl.fail_verify_cert_hash"), Some(1));

    // A pin that is no SHA-256 is refused at start-up, naming it.
    let not_hex = "Z".repeat(64);
    let validation = format!("  validation_context:\n    verify_certificate_hash: [\"{not_hex}\"]\n");
    let tls = format!("{}{validation}", common(Some(&certs.server), None, ""));
    let (ok, e) = validate(&config(&[https_listener("name: bad", &tls)], &[static_cluster("app", &[up.port()])]));
    let want = format!("validation_context.verify_certificate_hash[0]: Invalid hex-encoded SHA-256 {not_hex}");
    assert!(!ok && e.contains(&want), "{e}");
}

/// `tls_params.ecdh_curves` limits and orders the key exchange groups; a curve
/// rustls on ring lacks is refused by name.
#[test]
fn ecdh_curves_choose_the_key_exchange() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let tls = format!("{}  tls_params: {{ ecdh_curves: [P-384, P-256] }}\n", common(Some(&certs.server), None, ""));
    let c = start(&[https_listener("name: curves", &tls)], &[static_cluster("app", &[up.port()])]);
    let client = client_config(&certs.pki.ca_pem, None, &[]);
    assert_eq!(https_get(c.listener("web"), client, "/direct").map(|r| r.0), Ok(200));
    assert_eq!(c.stat("listener.tls_web.ssl.curves.P-384"), Some(1), "the listener's first choice the client has");
    // A client with X25519 only shares no group with the listener.
    let mut x25519_only = Arc::unwrap_or_clone(crate::shared_tls::provider());
    x25519_only.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(leaf_der(&certs.pki.ca_pem))).expect("CA");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(x25519_only))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert!(https_get(c.listener("web"), Arc::new(client), "/direct").is_err());
    c.wait_stat("listener.tls_web.ssl.connection_error", |v| v == 1);

    let tls = format!("{}  tls_params: {{ ecdh_curves: [X25519, P-521] }}\n", common(Some(&certs.server), None, ""));
    let (ok, e) = validate(&config(&[https_listener("name: bad", &tls)], &[static_cluster("app", &[up.port()])]));
    assert!(!ok && e.contains("tls_params.ecdh_curves[1]: curve 'P-521' is not supported by Courier"), "{e}");
}

/// Resumption as Envoy's: by stateless ticket by default; with
/// `disable_stateless_session_resumption` no TLS 1.3 session resumes (BoringSSL
/// resumes TLS 1.3 by ticket only) while TLS 1.2 resumes by session ID from the
/// cache, which `disable_stateful_session_resumption` turns off too.
#[test]
fn session_resumption_follows_the_stateless_and_stateful_switches() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let resumed = |extra: &str, tls12: bool| {
        let tls = format!("{extra}{}", common(Some(&certs.server), None, ""));
        let c = start(&[https_listener("name: resume", &tls)], &[static_cluster("app", &[up.port()])]);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(leaf_der(&certs.pki.ca_pem))).expect("CA");
        let versions: &[&rustls::SupportedProtocolVersion] =
            if tls12 { &[&rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
        let client = rustls::ClientConfig::builder_with_provider(crate::shared_tls::provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = Arc::new(client);
        for _ in 0..2 {
            assert_eq!(https_get(c.listener("web"), client.clone(), "/direct").map(|r| r.0), Ok(200));
        }
        c.stat("listener.tls_web.ssl.session_reused")
    };
    assert_eq!(resumed("", false), Some(1), "TLS 1.3 by ticket");
    assert_eq!(resumed("", true), Some(1), "TLS 1.2 by ticket");
    let stateless_off = "disable_stateless_session_resumption: true\n";
    assert_eq!(resumed(stateless_off, false), Some(0), "no TLS 1.3 resumption without tickets");
    assert_eq!(resumed(stateless_off, true), Some(1), "TLS 1.2 by session ID");
    let both_off = format!("{stateless_off}disable_stateful_session_resumption: true\n");
    assert_eq!(resumed(&both_off, true), Some(0));
}

/// A GET with `host` as its Host header; (status, body).
fn get_host(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// `typed_extension_protocol_options` (at column 4) with `HttpProtocolOptions` fields `body`.
fn protocol_options(body: &str) -> String {
    format!(
        "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        {body}\n"
    )
}

#[test]
fn auto_sni_and_auto_san_validation_name_each_connection_after_the_host() {
    let certs = certs();
    let up = TlsUpstream::start(&certs.pki.leaf(&["a.test", "b.test"]));
    let names = "upstream_http_protocol_options: { auto_sni: true, auto_san_validation: true }\n        explicit_http_config: { http_protocol_options: {} }";
    let cluster = |name: &str, tls: &str| {
        format!(
            "{}{}{}",
            static_cluster(name, &[up.port]),
            protocol_options(names),
            transport_socket("UpstreamTlsContext", tls, 4)
        )
    };
    let routes = [
        crate::http_util::prefix_route("/rewrite", "app", ", host_rewrite_literal: \"b.test:99\""),
        crate::http_util::prefix_route("/no_ca", "no_ca", ""),
        crate::http_util::prefix_route("/matchers", "matchers", ""),
        crate::http_util::prefix_route("/", "app", ""),
    ]
    .concat();
    let listener = crate::http_util::http_listener("plain", "", &crate::http_util::one_vhost(&routes), "");
    let verified = cluster("app", &common(None, Some(&certs.ca), ""));
    let matchers = format!(
        "{}    match_typed_subject_alt_names: [{{ san_type: DNS, matcher: {{ exact: nothing.test }} }}]\n",
        common(None, Some(&certs.ca), "")
    );
    let clusters =
        [verified, cluster("no_ca", "sni: configured.test\ncommon_tls_context: {}\n"), cluster("matchers", &matchers)];
    let c = start(&[listener], &clusters);
    let addr = c.listener("plain");
    // As Envoy 1.40 on the same config: the host without its port is the SNI.
    assert_eq!(get_host(addr, "a.test", "/"), (200, "a.test".into()));
    assert_eq!(get_host(addr, "a.test:8080", "/"), (200, "a.test".into()), "one connection per name");
    assert_eq!(get_host(addr, "a.test", "/rewrite"), (200, "b.test".into()), "the host as rewritten");
    assert_eq!(c.stat("cluster.app.upstream_cx_total"), Some(2), "a.test and b.test");
    assert_eq!(c.stat("cluster.app.upstream_cx_active"), Some(2), "never shared");
    // A name the certificate lacks, and an address (checked, not sent): refused.
    for host in ["c.test", "127.0.0.1:80"] {
        let (status, body) = get_host(addr, host, "/");
        assert_eq!(status, 503, "{host}");
        assert!(body.ends_with("reset reason: remote connection failure"), "{body}");
    }
    assert_eq!(c.stat("cluster.app.ssl.fail_verify_san"), Some(2));
    assert_eq!(c.stat("cluster.app.upstream_cx_connect_fail"), Some(2));
    // No trusted CA to vouch for a name: Envoy fails every connection, counting no ssl stat.
    assert_eq!(get_host(addr, "a.test", "/no_ca").0, 503);
    assert_eq!(c.stat("cluster.no_ca.upstream_cx_connect_fail"), Some(1));
    assert_eq!(c.stat("cluster.no_ca.ssl.handshake"), Some(0));
    assert_eq!(c.stat("cluster.no_ca.ssl.fail_verify_san"), Some(0));
    // The host is checked besides the configured matchers, not instead (as Envoy 1.40).
    assert_eq!(get_host(addr, "a.test", "/matchers").0, 503);
    assert_eq!(c.stat("cluster.matchers.ssl.fail_verify_san"), Some(1));
}

#[test]
fn auto_sni_alone_sends_the_host_and_falls_back_to_sni_for_an_address() {
    let certs = certs();
    let up = TlsUpstream::start(&certs.pki.leaf(&["a.test"]));
    let options = protocol_options(
        "upstream_http_protocol_options: { auto_sni: true, override_auto_sni_header: x-sni }\n        explicit_http_config: { http_protocol_options: {} }",
    );
    let tls = transport_socket("UpstreamTlsContext", "sni: configured.test\ncommon_tls_context: {}\n", 4);
    let c = start(&[plain_listener()], &[format!("{}{options}{tls}", static_cluster("app", &[up.port]))]);
    let addr = c.listener("plain");
    assert_eq!(get_host(addr, "c.test", "/"), (200, "c.test".into()), "not verified: any name");
    assert_eq!(get_host(addr, "127.0.0.1", "/"), (200, "configured.test".into()), "an address is no SNI");
    let mut s = connect(addr);
    write!(s, "GET / HTTP/1.1\r\nhost: c.test\r\nx-sni: d.test\r\nconnection: close\r\n\r\n").expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.ends_with("\r\n\r\nd.test"), "override_auto_sni_header: {raw}");
}

#[test]
fn auto_config_speaks_the_protocol_alpn_picked() {
    let certs = certs();
    let h2 = H2TlsUpstream::start(&certs.pki.leaf(&["up.test"]));
    let h1 = TlsUpstream::start_alpn(&certs.pki.leaf(&["up.test"]), &["http/1.1"]);
    let plain = TlsUpstream::start(&certs.pki.leaf(&["up.test"]));
    let auto = protocol_options("auto_config: { http_protocol_options: {}, http2_protocol_options: {} }");
    let tls = transport_socket("UpstreamTlsContext", "common_tls_context: {}\n", 4);
    let cluster = |name: &str, port: u16| format!("{}{auto}{tls}", static_cluster(name, &[port]));
    let routes = [
        crate::http_util::prefix_route("/h2", "h2", ""),
        crate::http_util::prefix_route("/h1", "h1", ""),
        crate::http_util::prefix_route("/none", "none", ""),
    ]
    .concat();
    // The mixed pool hands its first connection to the protocol's pool: the
    // requests on it log that connection (its local port, its TLS session).
    let dir = TempDir::new("auto-log");
    let log = dir.0.join("access.log");
    let access_log = format!(
        "access_log:\n- name: envoy.access_loggers.file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    log_format: {{ text_format_source: {{ inline_string: \"%REQ(:PATH)% %UPSTREAM_LOCAL_PORT% %UPSTREAM_TLS_VERSION%\\n\" }} }}\n",
        log.display()
    );
    let listener = crate::http_util::http_listener(
        "plain",
        &crate::http_util::indent(&access_log, 10),
        &crate::http_util::one_vhost(&routes),
        "",
    );
    let c = start(&[listener], &[cluster("h2", h2.port), cluster("h1", h1.port), cluster("none", plain.port)]);
    let addr = c.listener("plain");
    for _ in 0..2 {
        assert_eq!(http_request(addr, "GET", "/h2"), (200, "h2 none".into()));
        assert_eq!(http_request(addr, "GET", "/h1"), (200, "none http/1.1".into()));
        // No protocol chosen: HTTP/1.1, as Envoy.
        assert_eq!(http_request(addr, "GET", "/none"), (200, "none".into()));
    }
    assert_eq!(c.stat("cluster.h2.upstream_cx_http2_total"), Some(1), "one connection, reused");
    assert_eq!(c.stat("cluster.h2.upstream_cx_http1_total"), Some(0));
    assert_eq!(c.stat("cluster.h1.upstream_cx_http1_total"), Some(1));
    assert_eq!(c.stat("cluster.h1.upstream_cx_http2_total"), Some(0));
    assert_eq!(c.stat("cluster.none.upstream_cx_http1_total"), Some(1));
    assert_eq!(c.stat("cluster.h2.upstream_rq_total"), Some(2));
    assert_eq!(c.stat("cluster.h1.upstream_cx_total"), Some(2), "Envoy 1.40's mixed pool counts it twice");
    let lines = crate::http_util::wait_for_lines(&log, 6);
    for path in ["/h2", "/h1", "/none"] {
        let of_path: Vec<&str> = lines.iter().filter(|l| l.starts_with(&format!("{path} "))).map(|l| &l[..]).collect();
        assert_eq!(of_path.len(), 2, "{lines:?}");
        assert_eq!(of_path[0], of_path[1], "one connection: {lines:?}");
        let port: u16 = of_path[0].split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        assert!(port > 0 && of_path[0].ends_with(" TLSv1.2"), "{lines:?}");
    }

    // Only TLS negotiates: Envoy refuses auto_config on a plaintext cluster.
    let yaml = config(&[plain_listener()], &[format!("{}{auto}", static_cluster("app", &[h1.port]))]);
    let (ok, out) = validate(&yaml);
    assert!(!ok);
    assert!(out.contains("ALPN configured for cluster app which has a non-ALPN transport socket"), "{out}");
}

#[test]
fn upstream_sessions_resume_unless_max_session_keys_is_0() {
    let certs = certs();
    let up = TlsUpstream::start(&certs.pki.leaf(&["up.test"]));
    // One request per connection, so each request makes a handshake.
    let once = protocol_options(
        "common_http_protocol_options: { max_requests_per_connection: 1 }\n        explicit_http_config: { http_protocol_options: {} }",
    );
    let cluster = |name: &str, extra: &str| {
        let tls = format!("sni: up.test\n{extra}{}", common(None, Some(&certs.ca), ""));
        format!("{}{once}{}", static_cluster(name, &[up.port]), transport_socket("UpstreamTlsContext", &tls, 4))
    };
    let routes =
        [crate::http_util::prefix_route("/none", "none", ""), crate::http_util::prefix_route("/", "app", "")].concat();
    let listener = crate::http_util::http_listener("plain", "", &crate::http_util::one_vhost(&routes), "");
    let c = start(&[listener], &[cluster("app", ""), cluster("none", "max_session_keys: 0\n")]);
    let addr = c.listener("plain");
    for path in ["/a", "/b", "/none/a", "/none/b"] {
        assert_eq!(http_request(addr, "GET", path).0, 200, "{path}");
    }
    // As Envoy 1.40 on the same upstream (compat case tls_upstream_resumption).
    assert_eq!(c.stat("cluster.app.ssl.handshake"), Some(2));
    assert_eq!(c.stat("cluster.app.ssl.session_reused"), Some(1), "the default keeps one session");
    assert_eq!(c.stat("cluster.none.ssl.handshake"), Some(2));
    assert_eq!(c.stat("cluster.none.ssl.session_reused"), Some(0));
}

/// `session_ticket_keys`: a ticket one Courier process issued resumes on a
/// second process whose keys include the one that sealed it (second in its
/// list, as after a rotation), and not on a process with other keys; by TLS 1.3
/// and TLS 1.2, as Envoy's processes do with `openssl s_client -sess_out/-sess_in`.
/// `session_timeout` is the tickets' lifetime (its expiry: the unit tests of
/// `tls::tickets`).
#[test]
fn session_ticket_keys_resume_a_session_on_another_process_with_the_same_keys() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let key = |fill: u8| base64(&[fill; 80]);
    let (k1, k2) = (key(1), key(2));
    let courier = |keys: &[&str]| {
        let list: String = keys.iter().map(|k| format!("  - inline_bytes: {k}\n")).collect();
        let tls = format!(
            "session_timeout: 300s\nsession_ticket_keys:\n  keys:\n{list}{}",
            common(Some(&certs.server), None, "")
        );
        start(&[https_listener("name: keys", &tls)], &[static_cluster("app", &[up.port()])])
    };
    let (first, rotated, other) = (courier(&[&k1]), courier(&[&k2, &k1]), courier(&[&k2]));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = || {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(rustls::pki_types::CertificateDer::from(leaf_der(&certs.pki.ca_pem))).expect("CA");
            let config = rustls::ClientConfig::builder_with_provider(crate::shared_tls::provider())
                .with_protocol_versions(&[version])
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        };
        // Each client holds only the first process's ticket when it moves on.
        for (to, resumes) in [(&rotated, true), (&other, false)] {
            let client = client();
            let before = to.stat("listener.tls_web.ssl.session_reused");
            assert_eq!(https_get(first.listener("web"), client.clone(), "/direct").map(|r| r.0), Ok(200));
            assert_eq!(https_get(to.listener("web"), client, "/direct").map(|r| r.0), Ok(200), "{version:?}");
            let after = to.stat("listener.tls_web.ssl.session_reused");
            assert_eq!(after.zip(before).map(|(a, b)| a - b), Some(i64::from(resumes)), "{version:?}");
        }
    }
    assert_eq!(first.stat("listener.tls_web.ssl.session_reused"), Some(0));
}

/// `crl` and `only_verify_leaf_cert_crl`, as Envoy 1.40 (checked with the same
/// chains through the real binary): once a `crl` is given, each certificate of
/// the client's chain needs a CRL from its issuer (only the leaf with
/// `only_verify_leaf_cert_crl`); a revoked client, one whose issuer has no CRL
/// or whose CRL has expired is refused (`ssl.fail_verify_error`, alerts
/// certificate_revoked or unknown_ca); a `crl` that holds no CRL at all loads
/// and then refuses everyone. Upstream validation reads the same CRLs.
#[test]
fn crls_refuse_revoked_peers_and_peers_whose_issuer_has_no_crl() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let int = certs.pki.intermediate("Courier Test Intermediate");
    let good = certs.pki.leaf(&["good.test"]);
    let revoked = certs.pki.leaf(&["revoked.test"]);
    let mut deep = int.leaf(&["deep.test"]);
    deep.cert_pem += &int.ca_pem;
    let root_crl = certs.pki.crl(&["revoked.test"], false);
    let int_crl = int.crl(&[], false);
    let file = |name: &str, text: &str| certs.dir.file(name, text).display().to_string();
    let (root_only, int_only) = (file("root.crl", &root_crl), file("int.crl", &int_crl));
    let both = file("both.crl", &format!("{root_crl}{int_crl}"));
    let expired = file("expired.crl", &certs.pki.crl(&[], true));
    let no_crl = file("none.crl", "no CRL in here\n");
    // (crl, leaf only, whether good, revoked, deep are served)
    let cases = [
        (&root_only, false, [true, false, false]),
        (&int_only, false, [false, false, false]),
        (&int_only, true, [false, false, true]),
        (&both, false, [true, false, true]),
        (&expired, false, [false, false, false]),
        (&no_crl, false, [false, false, false]),
    ];
    for (crl, leaf_only, served) in cases {
        let validation = format!(
            "  validation_context:\n    trusted_ca: {{ filename: {} }}\n    crl: {{ filename: {crl} }}\n    only_verify_leaf_cert_crl: {leaf_only}\n",
            certs.ca.display()
        );
        let tls = format!("require_client_certificate: true\n{}{validation}", common(Some(&certs.server), None, ""));
        let c = start(&[https_listener("name: crl", &tls)], &[static_cluster("app", &[up.port()])]);
        for (client, ok) in [&good, &revoked, &deep].into_iter().zip(served) {
            let got = https_get(c.listener("web"), client_config(&certs.pki.ca_pem, Some(client), &[]), "/direct");
            assert_eq!(got.is_ok(), ok, "{crl} leaf only {leaf_only}: {got:?}");
            if client.cert_pem == revoked.cert_pem && crl == &root_only {
                assert!(got.is_err_and(|e| e.contains("CertificateRevoked")), "the client is told why");
            } else if crl == &expired && client.cert_pem != deep.cert_pem {
                // (For `deep`, whose issuer has no CRL either, BoringSSL says
                // unknown_ca, checking from the leaf up; webpki finds the expired one first.)
                assert!(got.is_err_and(|e| e.contains("CertificateExpired")), "BoringSSL's alert");
            }
        }
        let refused = served.iter().filter(|ok| !**ok).count() as i64;
        c.wait_stat("listener.tls_web.ssl.fail_verify_error", |v| v == refused);
        assert_eq!(c.stat("listener.tls_web.ssl.connection_error"), Some(0));
    }

    // A cluster's validation context: the upstream's revoked certificate fails the connect.
    let tls_up = TlsUpstream::start(&certs.pki.leaf(&["revoked.test"]));
    let cluster = format!(
        "{}{}",
        static_cluster("app", &[tls_up.port]),
        transport_socket(
            "UpstreamTlsContext",
            &format!(
                "common_tls_context:\n  validation_context:\n    trusted_ca: {{ filename: {} }}\n    crl: {{ filename: {root_only} }}\n",
                certs.ca.display()
            ),
            4
        )
    );
    let c = start(&[plain_listener()], &[cluster]);
    assert_eq!(http_request(c.listener("plain"), "GET", "/").0, 503);
    assert_eq!(c.stat("cluster.app.ssl.fail_verify_error"), Some(1));
}

/// A client's verifier that keeps the OCSP response the server stapled (rustls
/// hands it to the verifier only); rustls asks for one in every ClientHello.
#[derive(Debug)]
struct StapleCatcher {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    stapled: Mutex<Option<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for StapleCatcher {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.stapled.lock().expect("lock") = (!ocsp.is_empty()).then(|| ocsp.to_vec());
        self.webpki.verify_server_cert(end_entity, intermediates, server_name, &[], now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `ocsp_staple` and `ocsp_staple_policy`, as Envoy 1.40 (checked with
/// `openssl s_client -status` through the real binary on the same responses):
/// a client that asks gets a valid staple (TLS 1.3 and 1.2); an expired one is
/// omitted under LENIENT_STAPLING and fails the handshake under
/// STRICT_STAPLING (alert handshake_failure, `connection_error`), with Envoy's
/// `ssl.ocsp_staple_*` counts; a certificate with the must-staple TLS feature
/// is MUST_STAPLE whatever the policy. A response for another certificate and
/// a MUST_STAPLE certificate without one are start-up errors naming the field.
#[test]
fn ocsp_staples_go_to_clients_that_ask_and_the_policy_rules_an_expired_one() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let staple = |name: &str, der: Vec<u8>| {
        let path = certs.dir.0.join(name);
        std::fs::write(&path, der).expect("write staple");
        path.display().to_string()
    };
    let good_der = certs.pki.ocsp_response(SERVER_NAME, Some("40000101000000Z"));
    let good = staple("good.ocsp", good_der.clone());
    let expired = staple("expired.ocsp", certs.pki.ocsp_response(SERVER_NAME, Some("20240102000000Z")));
    let other = staple("other.ocsp", certs.pki.ocsp_response("other.test", Some("40000101000000Z")));
    let tls = |policy: &str, staple: Option<&str>| {
        let (c, k) = (certs.server.0.display(), certs.server.1.display());
        let staple = staple.map(|s| format!("    ocsp_staple: {{ filename: {s} }}\n")).unwrap_or_default();
        format!("{policy}common_tls_context:\n  tls_certificates:\n  - certificate_chain: {{ filename: {c} }}\n    private_key: {{ filename: {k} }}\n{staple}")
    };
    let client = |version: &'static rustls::SupportedProtocolVersion| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(leaf_der(&certs.pki.ca_pem))).expect("CA");
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::shared_tls::provider())
                .build()
                .expect("verifier");
        let catcher = Arc::new(StapleCatcher { webpki, stapled: Mutex::new(None) });
        let config = rustls::ClientConfig::builder_with_provider(crate::shared_tls::provider())
            .with_protocol_versions(&[version])
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(catcher.clone())
            .with_no_client_auth();
        (Arc::new(config), catcher)
    };
    let strict = "ocsp_staple_policy: STRICT_STAPLING\n";
    // (policy, staple, served, stapled, [responses, omitted, failed])
    let cases = [
        ("", &good, true, true, [2, 0, 0]),
        ("ocsp_staple_policy: MUST_STAPLE\n", &good, true, true, [2, 0, 0]),
        ("", &expired, true, false, [0, 2, 0]),
        (strict, &expired, false, false, [0, 0, 2]),
    ];
    for (policy, staple, served, stapled, counts) in cases {
        let c =
            start(&[https_listener("name: ocsp", &tls(policy, Some(staple)))], &[static_cluster("app", &[up.port()])]);
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (config, catcher) = client(version);
            let got = https_get(c.listener("web"), config, "/direct");
            assert_eq!(got.is_ok(), served, "{policy}{staple} {version:?}: {got:?}");
            if !served {
                assert!(got.is_err_and(|e| e.contains("HandshakeFailure")), "Envoy's alert");
            }
            let want = stapled.then(|| good_der.clone());
            assert_eq!(*catcher.stapled.lock().expect("lock"), want, "{policy}{staple} {version:?}");
        }
        let stat = |name: &str| c.stat(&format!("listener.tls_web.ssl.ocsp_staple_{name}"));
        assert_eq!(stat("requests"), Some(2));
        assert_eq!([stat("responses"), stat("omitted"), stat("failed")], counts.map(Some), "{policy}{staple}");
        assert_eq!(c.stat("listener.tls_web.ssl.connection_error"), Some(counts[2]));
    }

    // A certificate with the must-staple TLS feature is MUST_STAPLE whatever the policy.
    let must = certs.pki.must_staple_leaf(&[SERVER_NAME]).write(&certs.dir.0, "must");
    let must_tls = |staple: &str| {
        let (c, k) = (must.0.display(), must.1.display());
        format!("common_tls_context:\n  tls_certificates:\n  - certificate_chain: {{ filename: {c} }}\n    private_key: {{ filename: {k} }}\n    ocsp_staple: {{ filename: {staple} }}\n")
    };
    let c = start(&[https_listener("name: must", &must_tls(&expired))], &[static_cluster("app", &[up.port()])]);
    let (asking, _) = client(&rustls::version::TLS13);
    assert!(https_get(c.listener("web"), asking, "/direct").is_err_and(|e| e.contains("HandshakeFailure")));
    assert_eq!(c.stat("listener.tls_web.ssl.ocsp_staple_failed"), Some(1));

    let listener = |tls: &str| config(&[https_listener("name: ocsp", tls)], &[static_cluster("app", &[up.port()])]);
    let (ok, out) = validate(&listener(&tls("", Some(&other))));
    assert!(
        !ok && out.contains("tls_certificates[0].ocsp_staple: OCSP response does not match its TLS certificate"),
        "{out}"
    );
    let (ok, out) = validate(&listener(&tls("ocsp_staple_policy: MUST_STAPLE\n", None)));
    assert!(!ok && out.contains("ocsp_staple: Required OCSP response is missing from TLS context"), "{out}");
    let no_staple = must_tls("x").replace("    ocsp_staple: { filename: x }\n", "");
    let (ok, out) = validate(&listener(&no_staple));
    assert!(!ok && out.contains("ocsp_staple: OCSP response is required for must-staple certificate"), "{out}");
}

/// Ticket keys from a secret (`session_ticket_keys_sds_secret_config`): a
/// static one (`static_resources.secrets`) or an SDS file, whose key file is
/// read in. A ticket sealed by a process with the same key inline opens on
/// either, as Envoy's; an unknown static name is refused in Envoy's words.
#[test]
fn ticket_keys_from_a_static_or_sds_secret_open_another_process_s_tickets() {
    let certs = certs();
    let up = Upstream::start(|_| {});
    let key = [7u8; 80];
    let key_file = certs.dir.0.join("ticket.key");
    std::fs::write(&key_file, key).expect("write key");
    let keys_body = format!("session_ticket_keys:\n      keys:\n      - filename: {}\n", key_file.display());
    let sds = certs.dir.file(
        "sds.yaml",
        &format!(
            "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: keys\n  {}",
            keys_body.replace("\n      ", "\n    ")
        ),
    );
    let with_secret = |keys: &str, secrets: &str| {
        let tls = format!("session_ticket_keys_sds_secret_config: {keys}\n{}", common(Some(&certs.server), None, ""));
        let listeners = [https_listener("name: keys", &tls)];
        let secrets = if secrets.is_empty() { String::new() } else { format!("  secrets:\n{secrets}") };
        format!(
            "node: {{ id: test, cluster: test }}\n{}{secrets}",
            config(&listeners, &[static_cluster("app", &[up.port()])])
        )
    };
    let inline = format!("session_ticket_keys: {{ keys: [{{ inline_bytes: {} }}] }}\n", base64(&key));
    let first = start(
        &[https_listener("name: keys", &format!("{inline}{}", common(Some(&certs.server), None, "")))],
        &[static_cluster("app", &[up.port()])],
    );
    let static_secret = format!("  - name: keys\n    {keys_body}");
    let by_static = Courier::start(&with_secret("{ name: keys }", &static_secret), 1);
    let sds_config = format!("{{ name: keys, sds_config: {{ path_config_source: {{ path: {} }} }} }}", sds.display());
    let by_sds = Courier::start(&with_secret(&sds_config, ""), 1);
    by_sds.wait_stat("sds.keys.update_success", |v| v == 1);
    for to in [&by_static, &by_sds] {
        let client = client_config(&certs.pki.ca_pem, None, &[]);
        assert_eq!(https_get(first.listener("web"), client.clone(), "/direct").map(|r| r.0), Ok(200));
        assert_eq!(https_get(to.listener("web"), client, "/direct").map(|r| r.0), Ok(200));
        assert_eq!(to.stat("listener.tls_web.ssl.session_reused"), Some(1));
    }

    let (ok, out) = validate(&with_secret("{ name: nope }", &static_secret));
    assert!(
        !ok && out.contains("session_ticket_keys_sds_secret_config.name: Unknown tls session ticket keys: nope"),
        "{out}"
    );
}

/// RBAC over mutual TLS: `authenticated.principal_name` matches the client
/// certificate's SAN (a mesh's identity), `requested_server_name` the SNI the
/// TLS inspector read (without one the connection has none, as in Envoy).
#[test]
fn rbac_authenticated_principals_are_the_client_certificate_names() {
    let certs = certs();
    let up = crate::http_util::http_upstream("app");
    let validation = format!("  validation_context:\n    trusted_ca: {{ filename: {} }}\n", certs.ca.display());
    let tls = format!("require_client_certificate: true\n{}{validation}", common(Some(&certs.server), None, ""));
    let rbac = r#"          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  mesh:
                    permissions: [ { any: true } ]
                    principals: [ { authenticated: { principal_name: { exact: client.test } } } ]
                  sni:
                    permissions:
                    - and_rules:
                        rules:
                        - requested_server_name: { exact: server.test }
                        - url_path: { path: { prefix: /sni } }
                    principals: [ { any: true } ]
"#;
    let inspector = "    listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config: \
                     { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }\n";
    let listener = https_listener("name: rbac", &tls)
        .replace("          http_filters:\n", rbac)
        .replace("    filter_chains:\n", &format!("{inspector}    filter_chains:\n"));
    let c = start(&[listener], &[static_cluster("app", &[up.port()])]);
    let addr = c.listener("web");
    let client = certs.pki.leaf(&["client.test"]);
    let member = client_config(&certs.pki.ca_pem, Some(&client), &[]);
    assert_eq!(https_get(addr, member, "/direct").expect("GET"), (200, "hi".to_string()));
    let other = certs.pki.leaf(&["other.test"]);
    let stranger = client_config(&certs.pki.ca_pem, Some(&other), &[]);
    assert_eq!(https_get(addr, stranger.clone(), "/direct").expect("GET"), (403, "RBAC: access denied".to_string()));
    assert_eq!(https_get(addr, stranger, "/sni/x").expect("GET").0, 200, "the SNI's policy");
    assert_eq!(c.stat("http.ingress.rbac.allowed"), Some(2));
    assert_eq!(c.stat("http.ingress.rbac.denied"), Some(1));
}
