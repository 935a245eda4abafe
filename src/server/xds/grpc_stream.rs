//! A gRPC bidirectional stream to a management server: one HTTP/2 connection
//! per stream, opened on the main thread — in plaintext (prior knowledge), or
//! over the cluster's TLS transport socket (`UpstreamTls`, the same client the
//! cluster's pools use: its SNI, certificate validation and secrets, ALPN `h2`
//! when the context names none, its `ssl.*` stats) — carrying
//! one `POST` of the service method with the headers Envoy's gRPC client sends
//! (`content-type: application/grpc`, `te: trailers`, `:authority` the
//! cluster's name). Messages are length-prefixed protobuf both ways.
//!
//! The first request goes out before the response headers come back (a server
//! may answer only once it has read one), so the response is awaited lazily by
//! `recv`. A message the server announces above `MAX_MESSAGE` ends the stream
//! before any of it is buffered: a hostile server cannot make Courier hold
//! more. `recv` keeps its state in the stream, so it can be dropped and polled
//! again (it sits in a `select!` beside the subscription requests).

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::header::{HeaderValue, CONTENT_TYPE, TE};
use prost::Message;

use crate::http::grpc::{GRPC_MESSAGE, GRPC_STATUS};
use crate::network::tls::{AlpnFallback, TransportOptions, UpstreamTls};
use crate::network::transport::TransportStream;
use crate::upstream::cluster::ClusterInfo;

/// The largest message read (a whole state of the world of clusters or
/// listeners arrives as one).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Why a stream ended; the text is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub String);

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError(format!("{what}: {e}"))
}

enum Incoming {
    Head(ResponseFuture),
    Body(RecvStream),
}

pub struct GrpcStream {
    send: SendStream<Bytes>,
    incoming: Incoming,
    buf: BytesMut,
    /// The connection's task, which drives its I/O: it ends with the stream.
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl GrpcStream {
    /// Connects to `addr`, a host of `cluster`, over the cluster's TLS context
    /// if it has one (within its `connect_timeout`, the TLS handshake
    /// included, as Envoy's) and opens the stream of `method`
    /// (`/package.Service/Method`). The cluster's HTTP/2 windows apply, as in
    /// Envoy's gRPC client: with its 256 MiB defaults a large response is not
    /// paced by WINDOW_UPDATE round trips.
    pub async fn open(
        addr: SocketAddr,
        cluster: &ClusterInfo,
        authority: &str,
        method: &str,
    ) -> Result<GrpcStream, StreamError> {
        let transport = tokio::time::timeout(cluster.connect_timeout, connect(addr, cluster.tls.as_deref()))
            .await
            .map_err(|_| StreamError(format!("connecting to {addr} timed out")))??;
        let o = &cluster.http2_options;
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(o.initial_stream_window_size)
            .initial_connection_window_size(o.initial_connection_window_size)
            .header_table_size(o.hpack_table_size)
            .handshake::<_, Bytes>(transport)
            .await
            .map_err(|e| failed("HTTP/2 handshake", e))?;
        let connection = tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://{authority}{method}"))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
            .header(TE, HeaderValue::from_static("trailers"))
            .body(())
            .map_err(|e| failed("the stream's request", e))?;
        let mut client: SendRequest<Bytes> = client.ready().await.map_err(|e| failed("opening the stream", e))?;
        let (response, send) = client.send_request(request, false).map_err(|e| failed("opening the stream", e))?;
        Ok(GrpcStream { send, incoming: Incoming::Head(response), buf: BytesMut::new(), connection })
    }

    /// Sends one message.
    pub fn send<M: Message>(&mut self, message: &M) -> Result<(), StreamError> {
        let mut framed = BytesMut::with_capacity(5 + message.encoded_len());
        framed.put_u8(0);
        framed.put_u32(message.encoded_len() as u32);
        message.encode(&mut framed).map_err(|e| failed("encoding a request", e))?;
        self.send.send_data(framed.freeze(), false).map_err(|e| failed("sending a request", e))
    }

    /// The next message; an error once the stream ended (the server's status
    /// in its text).
    pub async fn recv<M: Message + Default>(&mut self) -> Result<M, StreamError> {
        loop {
            if let Some(payload) = take_message(&mut self.buf)? {
                return M::decode(payload).map_err(|e| failed("decoding a response", e));
            }
            match &mut self.incoming {
                Incoming::Head(response) => {
                    let response = response.await.map_err(|e| failed("the stream failed", e))?;
                    if response.status() != http::StatusCode::OK {
                        return Err(StreamError(format!("the server answered HTTP {}", response.status())));
                    }
                    // A trailers-only answer: the call failed before any message.
                    if response.headers().contains_key(GRPC_STATUS) {
                        return Err(ended(response.headers()));
                    }
                    self.incoming = Incoming::Body(response.into_body());
                }
                Incoming::Body(body) => match body.data().await {
                    Some(Ok(chunk)) => {
                        let _ = body.flow_control().release_capacity(chunk.len());
                        self.buf.extend_from_slice(&chunk);
                    }
                    Some(Err(e)) => return Err(failed("the stream failed", e)),
                    None => {
                        let trailers = body.trailers().await.map_err(|e| failed("the stream failed", e))?;
                        return Err(trailers.as_ref().map_or(StreamError("the server ended the stream".into()), ended));
                    }
                },
            }
        }
    }
}

/// A connection to `addr`, with its TLS handshake done over `tls`.
async fn connect(addr: SocketAddr, tls: Option<&UpstreamTls>) -> Result<TransportStream, StreamError> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| failed(&format!("connecting to {addr}"), e))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else { return Ok(TransportStream::from(tcp)) };
    let (stream, _) = Box::pin(tls.connect(tcp, addr.ip(), Some(AlpnFallback::Http2), &TransportOptions::NONE))
        .await
        .map_err(|e| failed(&format!("the TLS handshake with {addr}"), e))?;
    Ok(stream)
}

/// A whole message from `buf`, if one is there; an error for one announced
/// above `MAX_MESSAGE` (before it is buffered) or compressed.
fn take_message(buf: &mut BytesMut) -> Result<Option<Bytes>, StreamError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    if buf[0] != 0 {
        return Err(StreamError("a compressed message, which Courier did not ask for".into()));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_MESSAGE {
        return Err(StreamError(format!("a message of {len} bytes, above the limit of {MAX_MESSAGE}")));
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    Ok(Some(buf.split_to(len).freeze()))
}

/// The server's `grpc-status` and `grpc-message`, as the reason a stream ended.
fn ended(headers: &http::HeaderMap) -> StreamError {
    let text = |name| headers.get(name).map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let status = text(GRPC_STATUS).unwrap_or_default();
    let message = text(GRPC_MESSAGE).unwrap_or_default();
    StreamError(format!("the server ended the stream: gRPC status {status} {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_taken_whole_and_an_oversized_one_is_refused_at_its_prefix() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 2, b'h'][..]);
        assert_eq!(take_message(&mut buf), Ok(None));
        buf.extend_from_slice(b"i\0\0");
        assert_eq!(take_message(&mut buf), Ok(Some(Bytes::from_static(b"hi"))));
        assert_eq!(buf.as_ref(), b"\0\0", "the next message's start stays");
        let mut huge = BytesMut::from(&[0u8][..]);
        huge.extend_from_slice(&((MAX_MESSAGE + 1) as u32).to_be_bytes());
        assert!(take_message(&mut huge).is_err());
        assert!(take_message(&mut BytesMut::from(&[1u8, 0, 0, 0, 0][..])).is_err());
    }
}
