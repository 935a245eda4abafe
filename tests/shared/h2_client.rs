//! An HTTP/2 client for tests (prior knowledge, h2c), on the `h2` crate: real
//! frames over a loopback socket, driven on a small runtime of its own so that
//! blocking tests can call it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

/// How long a whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/2 request.
#[derive(Debug, Clone, Default)]
pub struct H2Request {
    pub method: String,
    pub path: String,
    /// `:authority` (default `example.com`).
    pub authority: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// `:protocol` of an extended CONNECT (RFC 8441; `method` should be
    /// CONNECT): sent once the server's SETTINGS allow it, the stream left open.
    pub protocol: Option<String>,
}

impl H2Request {
    pub fn get(path: &str) -> H2Request {
        H2Request { method: "GET".into(), path: path.into(), ..Default::default() }
    }
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct H2Response {
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl H2Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a test runtime")
}

/// Sends `requests` concurrently as streams of one connection; each result is
/// the response or what went wrong with its stream.
pub fn h2_exchange(addr: SocketAddr, requests: &[H2Request]) -> Result<Vec<Result<H2Response, String>>, String> {
    runtime().block_on(async {
        tokio::time::timeout(TIMEOUT, exchange_on_one_connection(addr, requests))
            .await
            .map_err(|_| format!("HTTP/2 exchange with {addr} took over {TIMEOUT:?}"))?
    })
}

/// One request on a new connection.
pub fn h2_request(addr: SocketAddr, request: &H2Request) -> Result<H2Response, String> {
    h2_exchange(addr, std::slice::from_ref(request))?.remove(0)
}

async fn exchange_on_one_connection(
    addr: SocketAddr,
    requests: &[H2Request],
) -> Result<Vec<Result<H2Response, String>>, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let (client, conn) = h2::client::handshake(tcp).await.map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    // Each stream a task of its own, so all of them are in flight at once.
    let tasks: Vec<_> = requests.iter().map(|r| tokio::spawn(one(client.clone(), r.clone()))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(format!("stream task: {e}"))));
    }
    drop(client);
    driver.abort();
    Ok(out)
}

async fn one(client: h2::client::SendRequest<Bytes>, r: H2Request) -> Result<H2Response, String> {
    let mut client = client.ready().await.map_err(|e| format!("not ready: {e}"))?;
    let authority = r.authority.as_deref().unwrap_or("example.com");
    let mut builder = http::Request::builder().method(r.method.as_str()).uri(format!("http://{authority}{}", r.path));
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let mut request = builder.body(()).map_err(|e| format!("request: {e}"))?;
    if let Some(protocol) = &r.protocol {
        // The server's SETTINGS come after the handshake; the caller's timeout
        // bounds the wait (a server that never allows it fails the exchange).
        while !client.is_extended_connect_protocol_enabled() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        request.extensions_mut().insert(h2::ext::Protocol::from(protocol.as_str()));
    }
    let no_body = r.body.is_empty() && r.trailers.is_empty() && r.protocol.is_none();
    let (response, mut send) = client.send_request(request, no_body).map_err(|e| format!("send: {e}"))?;
    if !r.body.is_empty() {
        send.send_data(Bytes::from(r.body.clone()), r.trailers.is_empty()).map_err(|e| format!("data: {e}"))?;
    }
    if !r.trailers.is_empty() {
        let mut t = http::HeaderMap::new();
        for (k, v) in &r.trailers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
            t.append(name, http::HeaderValue::from_str(v).map_err(|e| e.to_string())?);
        }
        send.send_trailers(t).map_err(|e| format!("trailers: {e}"))?;
    }
    let response = response.await.map_err(|e| format!("response: {e}"))?;
    let status = response.status().as_u16();
    let headers =
        response.headers().iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into())).collect();
    let mut recv = response.into_body();
    let mut body = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    let trailers = match recv.trailers().await.map_err(|e| format!("trailers: {e}"))? {
        Some(t) => t.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into())).collect(),
        None => Vec::new(),
    };
    Ok(H2Response { status, headers, body, trailers })
}
