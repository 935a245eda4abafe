//! Test pieces shared by the integration tests (`tests/integration`) and the Envoy
//! compatibility suite (`tests/compat`), each of which includes this file with
//! `#[path = "../shared/net.rs"] mod shared_net;`: a TCP server on 127.0.0.1
//! (`Upstream`), the JSON-reporting HTTP upstream (`http_upstream`) and a raw
//! HTTP/1.1 client that can send anything and parse responses (`Client`).
//!
//! The HTTP upstream obeys request headers: `x-test-status: N` (response status),
//! `x-test-delay-ms: N` (wait before answering), `x-test-close: 1` (answer with
//! `Connection: close` and close), `x-test-close-silently: 1` (answer, then close
//! without saying so), `x-test-body-size: N` (answer with N bytes
//! instead of the JSON), `x-test-fail-first: N` (the first N requests on this
//! upstream get a 503), `x-test-response-header: name: value` (add that header
//! to the response), `x-test-gzip-response: 1` (the body gzip-compressed, with
//! `content-encoding: gzip`), `x-test-encoded-response: CODING` (the body
//! compressed with `gzip`, `br` or `zstd`, see `encode`, with that
//! `content-encoding`).
//!
//! `h2c_upstream` is the same JSON-reporting upstream speaking HTTP/2 (prior
//! knowledge, on the `h2` crate's server), for clusters that send HTTP/2
//! upstream; it obeys `x-test-status`, `x-test-delay-ms`, `x-test-trailers: 1`
//! (response trailers `x-checksum: abc`; request trailers are reported among the
//! headers as `trailer:<name>`), `x-test-big-header: N` (a response
//! header `x-big` of N bytes), `x-test-no-content-length: 1` (the JSON
//! without a content-length), `x-test-reset: REASON` (RST_STREAM with that
//! reason, e.g. `INTERNAL_ERROR` or `REFUSED_STREAM`, before any response) and
//! `x-test-reset-once: REASON` (the same for the first request of its path
//! only), `x-test-grpc-status: N` (a gRPC answer: `content-type:
//! application/grpc`, the JSON in one gRPC frame, trailers `grpc-status: N` and,
//! with `x-test-grpc-message: text`, `grpc-message`), and reports the
//! pseudo-headers it got (`:authority`, `:scheme`) among the headers. `h2c_goaway_upstream` answers its first connection's first
//! request with GOAWAY (last stream id 0), then serves as `h2c_upstream`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection was seen to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer's FIN: a read returned 0.
    Eof,
    /// The peer reset (or aborted) the connection.
    Reset,
}

/// A socket bound to a port of 127.0.0.1 but not listening: a connection to it is
/// refused, and while it is held no other process (another test's proxy or
/// upstream, run in parallel) can be given that port, as a port freed at once can.
pub fn dead_socket() -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind a dead port");
    socket
}

/// Reads from `reader` (over `socket`) until the peer closes the connection, for at
/// most `within`. `Ok` with the bytes that came before the close and how it closed;
/// `Err` when the time runs out with the connection still open (a timeout is not a
/// close), or on any other error. The socket's read timeout is `IO_TIMEOUT` after.
pub fn read_until_closed_from(
    reader: &mut impl Read,
    socket: &TcpStream,
    within: Duration,
) -> Result<(Vec<u8>, Closed), String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(format!("still open after {within:?} ({} bytes read)", got.len()));
        }
        if let Err(e) = socket.set_read_timeout(Some(left)) {
            break Err(format!("set_read_timeout: {e}"));
        }
        match reader.read(&mut buf) {
            Ok(0) => break Ok((got, Closed::Eof)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                break Ok((got, Closed::Reset))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => break Err(format!("read error {e} ({} bytes read)", got.len())),
        }
    };
    let _ = socket.set_read_timeout(Some(IO_TIMEOUT));
    result
}

/// `read_until_closed_from` on an unbuffered stream.
pub fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Result<(Vec<u8>, Closed), String> {
    let socket = stream.try_clone().map_err(|e| format!("try_clone: {e}"))?;
    read_until_closed_from(stream, &socket, within)
}

/// Asserts that the peer closes `stream` (EOF or reset) within `IO_TIMEOUT` without
/// sending anything more; returns how it closed.
pub fn assert_closes_silently(stream: &mut TcpStream) -> Closed {
    match read_until_closed(stream, IO_TIMEOUT) {
        Ok((got, how)) if got.is_empty() => how,
        Ok((got, how)) => {
            panic!("{} unexpected bytes before the close ({how:?}): {:?}", got.len(), String::from_utf8_lossy(&got))
        }
        Err(e) => panic!("the connection did not close: {e}"),
    }
}

/// A TCP server on 127.0.0.1 that runs `handler` for every connection on its own
/// thread; stops accepting when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub accepted: Arc<AtomicUsize>,
    /// Connections accepted and not yet closed by this side (its handler returned).
    pub open: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (stop2, accepted2, open2) = (stop.clone(), accepted.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accepted2.fetch_add(1, Ordering::SeqCst);
                open2.fetch_add(1, Ordering::SeqCst);
                let (h, open3) = (handler.clone(), open2.clone());
                std::thread::spawn(move || {
                    h(stream); // the stream is dropped (closed) by the time it returns
                    open3.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream { addr, stop, accepted, open, thread: Some(thread) }
    }

    /// Echoes everything back and half-closes after the peer's EOF.
    pub fn echo() -> Upstream {
        Upstream::start(|mut s| {
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            let mut buf = [0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        })
    }

    /// Sends `greeting` on connect, then echoes.
    pub fn greeter(greeting: &'static str) -> Upstream {
        Upstream::start(move |mut s| {
            let _ = s.write_all(greeting.as_bytes());
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

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
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client { stream, reader })
    }

    pub fn send_raw(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write request");
    }

    pub fn try_send_raw(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(raw)
    }

    /// The bytes of a request with `Host: example.com` unless `headers` has a host,
    /// and a `Content-Length` for a non-empty body unless there is a transfer-encoding.
    pub fn encode_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
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
        raw
    }

    /// Sends a request with `Host: example.com` unless `headers` has a host.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        self.send_raw(&Client::encode_request(method, path, headers, body));
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

    /// True when the peer closes the connection (EOF or reset) within `IO_TIMEOUT`
    /// with nothing more sent first. False when it is still open then (a read
    /// timeout is not a close), or when bytes arrive.
    pub fn is_closed(&mut self) -> bool {
        self.wait_closed(IO_TIMEOUT).is_ok()
    }

    /// Waits up to `within` for the peer to close the connection (EOF or reset) with
    /// nothing more sent first; `Err` says what happened instead (still open, data).
    pub fn wait_closed(&mut self, within: Duration) -> Result<Closed, String> {
        match read_until_closed_from(&mut self.reader, &self.stream, within)? {
            (got, how) if got.is_empty() => Ok(how),
            (got, how) => Err(format!(
                "{} unexpected bytes before the close ({how:?}): {:?}",
                got.len(),
                String::from_utf8_lossy(&got)
            )),
        }
    }

    /// Panics unless the peer closes the connection (EOF or reset) within
    /// `IO_TIMEOUT` with nothing more sent first; `what` names the expectation.
    pub fn assert_closed(&mut self, what: &str) -> Closed {
        self.wait_closed(IO_TIMEOUT).unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// The client's own address (what the proxy sees as the downstream remote address).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }
}

pub fn read_chunked(r: &mut BufReader<TcpStream>) -> Result<Vec<u8>, String> {
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
pub struct Parsed {
    pub method: String,
    pub path: String,
    /// Lower-cased names; repeated headers joined with `,`.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

pub fn read_request(r: &mut BufReader<TcpStream>) -> Option<Parsed> {
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

/// Waits `delay` before an answer, but returns `false` at once when the proxy closes
/// the connection meanwhile (a timed-out or cancelled request): the upstream then
/// lets go of the connection as the proxy did, and a test waiting for both sides'
/// connection counts to agree does not wait out the rest of the delay. Leaves the
/// socket's read timeout changed.
fn delay_unless_closed(stream: &TcpStream, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    let mut byte = [0u8; 1];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            std::thread::sleep(left);
            return true;
        }
        match stream.peek(&mut byte) {
            Ok(0) => return false,
            // A pipelined request: no close can be seen past it; sleep out the delay.
            Ok(_) => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                return true;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
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
                let open = delay_unless_closed(reader.get_ref(), Duration::from_millis(ms));
                if !open || reader.get_ref().set_read_timeout(Some(Duration::from_secs(30))).is_err() {
                    return;
                }
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
            if let Some(extra) = header("x-test-response-header") {
                head.push_str(&format!("{extra}\r\n"));
            }
            let coding =
                header("x-test-encoded-response").or(header("x-test-gzip-response").map(|_| "gzip".to_string()));
            let body = match coding {
                Some(coding) => {
                    head.push_str(&format!("content-encoding: {coding}\r\n"));
                    encode(&coding, &body)
                }
                None => body,
            };
            head.push_str(&format!("content-length: {}\r\n", body.len()));
            if close {
                head.push_str("connection: close\r\n");
            }
            head.push_str("\r\n");
            let mut out = head.into_bytes();
            if req.method != "HEAD" {
                out.extend_from_slice(&body);
            }
            let silent_close = header("x-test-close-silently").is_some();
            if writer.write_all(&out).is_err() || close || silent_close {
                return;
            }
        }
    })
}

/// The JSON-reporting upstream over HTTP/2 (h2c): each connection runs the
/// `h2` server on a current-thread runtime of its own thread; every request's
/// answer is the JSON of what it received (pseudo-headers included).
pub fn h2c_upstream(name: &'static str) -> Upstream {
    h2c_upstream_with(name, false)
}

/// `h2c_upstream` whose first connection answers the first request with GOAWAY
/// (last stream id 0: nothing processed) and closes once the proxy does.
pub fn h2c_goaway_upstream(name: &'static str) -> Upstream {
    h2c_upstream_with(name, true)
}

fn h2c_upstream_with(name: &'static str, goaway_first: bool) -> Upstream {
    let connections = Arc::new(AtomicUsize::new(0));
    let reset_paths = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    Upstream::start(move |stream| {
        let conn_id = connections.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if goaway_first && conn_id == 1 {
            return goaway_at_first_request(stream);
        }
        let reset_paths = reset_paths.clone();
        serve_h2c(stream, move |request, respond| answer_h2(name, conn_id, request, respond, reset_paths.clone()));
    })
}

/// Serves one accepted connection as an HTTP/2 (h2c) server on a current-thread
/// runtime of its own, each stream answered by `answer` in a task while this
/// loop drives the connection. Returns when the connection ends.
pub fn serve_h2c<F, Fut>(stream: TcpStream, answer: F)
where
    F: Fn(http::Request<h2::RecvStream>, h2::server::SendResponse<bytes::Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    rt.block_on(async move {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
        let Ok(mut conn) = h2::server::handshake(stream).await else { return };
        while let Some(Ok((request, respond))) = conn.accept().await {
            tokio::spawn(answer(request, respond));
        }
    });
}

/// Raw HTTP/2: reads the client preface and frames until the first HEADERS,
/// then sends GOAWAY (last stream id 0, NO_ERROR) and reads until the client
/// closes (so nothing unread turns the close into a reset).
fn goaway_at_first_request(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let mut preface = [0u8; 24];
    if s.read_exact(&mut preface).is_err() || s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).is_err() {
        return;
    }
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_err() {
            return;
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            return;
        }
        if head[3] == 1 {
            break;
        }
    }
    if s.write_all(&[0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

async fn answer_h2(
    name: &'static str,
    conn_id: u64,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    reset_paths: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
) {
    let (parts, mut body) = request.into_parts();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.ok().flatten().unwrap_or_default();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    if let Some(a) = parts.uri.authority() {
        headers.insert(":authority".into(), a.to_string());
    }
    if let Some(s) = parts.uri.scheme_str() {
        headers.insert(":scheme".into(), s.to_owned());
    }
    for (k, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers.entry(k.as_str().to_owned()).and_modify(|e| *e = format!("{e},{v}")).or_insert(v);
    }
    // Request trailers are reported with the headers, marked as such.
    for (k, v) in &trailers {
        headers.insert(format!("trailer:{k}"), String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let reason = |name: &str| match name {
        "REFUSED_STREAM" => h2::Reason::REFUSED_STREAM,
        "CANCEL" => h2::Reason::CANCEL,
        _ => h2::Reason::INTERNAL_ERROR,
    };
    if let Some(r) = headers.get("x-test-reset") {
        return respond.send_reset(reason(r));
    }
    if let Some(r) = headers.get("x-test-reset-once") {
        let first = reset_paths.lock().map(|mut p| p.insert(parts.uri.path().to_owned())).unwrap_or(false);
        if first {
            return respond.send_reset(reason(r));
        }
    }
    if let Some(ms) = headers.get("x-test-delay-ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status: u16 = headers.get("x-test-status").and_then(|v| v.parse().ok()).unwrap_or(200);
    let json = serde_json::json!({
        "upstream": name,
        "connection": conn_id,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "body": String::from_utf8_lossy(&data),
    })
    .to_string();
    let grpc_status = headers.get("x-test-grpc-status").cloned();
    let json = match &grpc_status {
        Some(_) => grpc_frame(json.as_bytes()),
        None => json.into_bytes(),
    };
    let content_type = if grpc_status.is_some() { "application/grpc" } else { "application/json" };
    let mut response =
        http::Response::builder().status(status).header("content-type", content_type).header("x-upstream", name);
    if !headers.contains_key("x-test-no-content-length") {
        response = response.header("content-length", json.len());
    }
    if let Some(n) = headers.get("x-test-big-header").and_then(|v| v.parse::<usize>().ok()) {
        response = response.header("x-big", "b".repeat(n));
    }
    let Ok(response) = response.body(()) else { return };
    let head_only = parts.method == http::Method::HEAD;
    let Ok(mut send) = respond.send_response(response, head_only) else { return };
    if !head_only {
        let trailers = headers.contains_key("x-test-trailers") || grpc_status.is_some();
        let _ = send.send_data(bytes::Bytes::from(json), !trailers);
        if trailers {
            let mut t = http::HeaderMap::new();
            match &grpc_status {
                Some(code) => {
                    let value = |v: &str| http::HeaderValue::from_str(v).ok();
                    t.extend(value(code).map(|v| (http::HeaderName::from_static("grpc-status"), v)));
                    let message = headers.get("x-test-grpc-message").and_then(|m| value(m));
                    t.extend(message.map(|v| (http::HeaderName::from_static("grpc-message"), v)));
                }
                None => {
                    t.insert("x-checksum", http::HeaderValue::from_static("abc"));
                }
            }
            let _ = send.send_trailers(t);
        }
    }
}

/// `message` as one uncompressed gRPC frame: a zero flag byte, the length
/// (4 bytes, big-endian), the message.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// `body` compressed with `coding` (`gzip`, `br` or `zstd`; anything else is
/// left as it is), with each library's usual settings.
pub fn encode(coding: &str, body: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = gz.write_all(body);
            gz.finish().unwrap_or_default()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                let _ = w.write_all(body);
            }
            out
        }
        "zstd" => zstd::stream::encode_all(body, 3).unwrap_or_default(),
        _ => body.to_vec(),
    }
}

/// `body` decompressed from `coding` (`gzip`, `br` or `zstd`), or None when it
/// is not a whole valid stream of it.
pub fn decode(coding: &str, body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(body).read_to_end(&mut out).ok()?,
        "br" => brotli::Decompressor::new(body, 4096).read_to_end(&mut out).ok()?,
        "zstd" => zstd::stream::read::Decoder::new(body).ok()?.read_to_end(&mut out).ok()?,
        _ => return None,
    };
    Some(out)
}
