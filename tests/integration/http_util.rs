//! HTTP/1.1 pieces for tests: a raw client connection that can send anything
//! (including malformed requests) and parse responses, and an upstream server
//! that answers with a JSON description of what it received.
//!
//! The upstream obeys request headers: `x-test-status: N` (response status),
//! `x-test-delay-ms: N` (wait before answering), `x-test-close: 1` (answer with
//! `Connection: close` and close), `x-test-body-size: N` (answer with N bytes
//! instead of the JSON), `x-test-fail-first: N` (the first N requests on this
//! upstream get a 503).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{Upstream, IO_TIMEOUT};

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The upstream's JSON report of the request it received.
    pub fn seen(&self) -> Seen {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not an upstream report ({e}): {}", self.text()));
        Seen(v)
    }
}

/// What the test upstream received.
pub struct Seen(pub serde_json::Value);

impl Seen {
    pub fn method(&self) -> &str {
        self.0["method"].as_str().unwrap_or("")
    }
    pub fn path(&self) -> &str {
        self.0["path"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0["headers"][name].as_str()
    }
    pub fn body(&self) -> &str {
        self.0["body"].as_str().unwrap_or("")
    }
    pub fn upstream(&self) -> &str {
        self.0["upstream"].as_str().unwrap_or("")
    }
    pub fn connection(&self) -> u64 {
        self.0["connection"].as_u64().unwrap_or(0)
    }
}

/// One client connection; several requests may be sent on it (keep-alive).
pub struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client { stream, reader }
    }

    pub fn send_raw(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write request");
    }

    /// Sends a request with `Host: example.com` unless `headers` has a host.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str("Host: example.com\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")) {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut raw = req.into_bytes();
        raw.extend_from_slice(body);
        self.send_raw(&raw);
        self.read_response(method == "HEAD")
    }

    pub fn get(&mut self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }

    /// Reads one response; `Err` text when the connection closed first.
    pub fn try_read_response(&mut self, head: bool) -> Result<HttpResponse, String> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or(format!("bad status line {line:?}"))?;
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                self.reader.read_line(&mut h).map_err(|e| e.to_string())?;
                let h = h.trim_end_matches(['\r', '\n']);
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').ok_or(format!("bad header {h:?}"))?;
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            if status == 100 {
                continue; // interim response
            }
            let mut resp = HttpResponse { status, headers, body: Vec::new() };
            if head || status == 204 || status == 304 {
                return Ok(resp);
            }
            if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                resp.body = read_chunked(&mut self.reader)?;
            } else if let Some(len) = resp.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
                let mut body = vec![0u8; len];
                self.reader.read_exact(&mut body).map_err(|e| e.to_string())?;
                resp.body = body;
            } else {
                self.reader.read_to_end(&mut resp.body).map_err(|e| e.to_string())?;
            }
            return Ok(resp);
        }
    }

    pub fn read_response(&mut self, head: bool) -> HttpResponse {
        self.try_read_response(head).unwrap_or_else(|e| panic!("no response: {e}"))
    }

    /// One raw line (with its line ending), for interim responses.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        line
    }

    /// True when the peer closed the connection (EOF) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).map_err(|e| e.to_string())?;
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).map_err(|e| e.to_string())?;
        if n == 0 {
            // Trailers until the empty line.
            loop {
                let mut t = String::new();
                r.read_line(&mut t).map_err(|e| e.to_string())?;
                if t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let mut chunk = vec![0u8; n + 2];
        r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
        body.extend_from_slice(&chunk[..n]);
    }
}

/// A request as the test upstream parsed it.
struct Parsed {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Parsed> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim().to_string();
        headers.entry(k).and_modify(|e: &mut String| *e = format!("{e},{v}")).or_insert(v);
    }
    let body = if headers.get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(r).ok()?
    } else if let Some(len) = headers.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut b = vec![0u8; len];
        r.read_exact(&mut b).ok()?;
        b
    } else {
        Vec::new()
    };
    Some(Parsed { method, path, headers, body })
}

/// The JSON-reporting HTTP upstream; `name` identifies it in reports.
pub fn http_upstream(name: &'static str) -> Upstream {
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    Upstream::start(move |stream| {
        let conn_id = connections.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        while let Some(req) = read_request(&mut reader) {
            let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
            let header = |k: &str| req.headers.get(k).cloned();
            if let Some(ms) = header("x-test-delay-ms").and_then(|v| v.parse().ok()) {
                std::thread::sleep(Duration::from_millis(ms));
            }
            let fail_first: usize = header("x-test-fail-first").and_then(|v| v.parse().ok()).unwrap_or(0);
            let status: u16 =
                if n <= fail_first { 503 } else { header("x-test-status").and_then(|v| v.parse().ok()).unwrap_or(200) };
            let close = header("x-test-close").is_some();
            let body = match header("x-test-body-size").and_then(|v| v.parse::<usize>().ok()) {
                Some(size) => vec![b'x'; size],
                None => serde_json::json!({
                    "upstream": name,
                    "connection": conn_id,
                    "method": req.method,
                    "path": req.path,
                    "headers": req.headers,
                    "body": String::from_utf8_lossy(&req.body),
                })
                .to_string()
                .into_bytes(),
            };
            let mut head = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nx-upstream: {name}\r\n");
            head.push_str(&format!("content-length: {}\r\n", body.len()));
            if close {
                head.push_str("connection: close\r\n");
            }
            head.push_str("\r\n");
            let mut out = head.into_bytes();
            if req.method != "HEAD" {
                out.extend_from_slice(&body);
            }
            if writer.write_all(&out).is_err() || close {
                return;
            }
        }
    })
}

/// YAML for an HTTP listener with an HCM whose route config and filters are given.
pub fn http_listener(name: &str, hcm_extra: &str, route_config: &str, filters: &str) -> String {
    format!(
        r#"  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
{hcm_extra}          route_config:
{route_config}          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// A route config with one virtual host (`*`) and the given routes YAML.
pub fn one_vhost(routes: &str) -> String {
    format!("            virtual_hosts:\n            - name: vh\n              domains: [\"*\"]\n              routes:\n{routes}")
}

/// `- match: { prefix: PREFIX } route: { cluster: CLUSTER EXTRA }`
pub fn prefix_route(prefix: &str, cluster: &str, extra: &str) -> String {
    format!(
        "              - match: {{ prefix: \"{prefix}\" }}\n                route: {{ cluster: {cluster}{extra} }}\n"
    )
}

// ---------------------------------------------------------------------------
// Helpers for the routing, http_filters and access_log tests.
// ---------------------------------------------------------------------------

/// `text` with every non-empty line indented by `n` spaces.
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| if l.trim().is_empty() { "\n".to_string() } else { format!("{pad}{l}\n") }).collect()
}

/// Courier with one HTTP listener `web`. `hcm_extra` (HCM fields), `route_config` (a
/// `RouteConfiguration`) and `filters` (`http_filters` items before the router) are
/// YAML written at column 0; `clusters` are `static_cluster`-style fragments.
pub fn start_web(hcm_extra: &str, route_config: &str, filters: &str, clusters: &[String]) -> crate::harness::Courier {
    start_web_with(hcm_extra, route_config, filters, clusters, &[])
}

/// `start_web` with extra command-line arguments.
pub fn start_web_with(
    hcm_extra: &str,
    route_config: &str,
    filters: &str,
    clusters: &[String],
    args: &[&str],
) -> crate::harness::Courier {
    let listener = http_listener("web", &indent(hcm_extra, 10), &indent(route_config, 12), &indent(filters, 10));
    crate::harness::Courier::start_with(&crate::harness::config(&[listener], clusters), 1, args, &[])
}

/// An HTTP upstream whose first `resets` connections read one request and close
/// without answering; later requests get a 200 with body `name` and `x-upstream: name`.
pub fn resetting_upstream(name: &'static str, resets: usize) -> Upstream {
    let seen = Arc::new(AtomicUsize::new(0));
    Upstream::start(move |stream| {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader).is_some() {
            if seen.fetch_add(1, Ordering::SeqCst) < resets {
                return; // dropped: the connection closes before any response
            }
            let out = format!("HTTP/1.1 200 OK\r\nx-upstream: {name}\r\ncontent-length: {}\r\n\r\n{name}", name.len());
            if writer.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// Polls `path` (a readiness check on the access log writer thread, bounded by
/// `IO_TIMEOUT`) until it holds at least `n` complete lines; returns them.
pub fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        let lines: Vec<String> = complete.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(std::time::Instant::now() < deadline, "{} has {} of {n} lines:\n{text}", path.display(), lines.len());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The client's own address (what Courier sees as the downstream remote address).
pub fn local_addr(client: &Client) -> SocketAddr {
    client.stream.local_addr().expect("local addr")
}

/// An HTTP upstream answering every request with `status`, the extra response header
/// lines `headers` (each ending in `\r\n`) and the body `name`; `requests` counts them.
pub fn fixed_upstream(name: &'static str, status: u16, headers: &'static str) -> (Upstream, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let up = Upstream::start(move |stream| {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader).is_some() {
            counter.fetch_add(1, Ordering::SeqCst);
            let out = format!(
                "HTTP/1.1 {status} X\r\nx-upstream: {name}\r\n{headers}content-length: {}\r\n\r\n{name}",
                name.len()
            );
            if writer.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    });
    (up, requests)
}
