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
//!
//! The connection is the cluster's, counted as Envoy's gRPC client counts its
//! pool's (checked against 1.40): `upstream_cx_total`/`_active`/
//! `_http2_total`/`_destroy*` (`UpstreamConnection`), the stream as a
//! request (`upstream_rq_total`, `_pending_total`, `_active`; its `200`
//! answer as `upstream_rq_200`/`_2xx`/`_completed` and their `internal.`
//! twins, Envoy's gRPC requests being internal ones), `http2.streams_active`.
//! With the cluster's `connection_keepalive` a PING goes every interval and
//! one unanswered within its timeout closes the connection
//! (`http2.keepalive_timeout`): a management server gone silent is noticed,
//! and the stream opened again.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::header::{HeaderValue, CONTENT_TYPE, TE};
use prost::Message;

use crate::http::grpc::{GRPC_MESSAGE, GRPC_STATUS};
use crate::http::http2::keepalive_pings::pings_timed_out;
use crate::http::http2::{Keepalive, KeepalivePings};
use crate::network::tls::{AlpnFallback, TransportOptions};
use crate::network::transport::TransportStream;
use crate::upstream::cluster::ClusterInfo;
use crate::upstream::host::Host;
use crate::upstream::upstream_connection::{ConnectionAccounting, UpstreamConnection};

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
    counted: Counted,
}

/// The stream as its cluster counts it, and its connection's task (which
/// drives the I/O): the request stops being active, and the connection ends,
/// when the stream is dropped.
struct Counted {
    cluster: Arc<ClusterInfo>,
    /// Set while the stream is open, for its connection's end to count it.
    open: Rc<Cell<bool>>,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.set(false);
        self.cluster.stats.upstream_rq_active.dec();
        self.cluster.http2_stats().streams_active.dec();
        self.connection.abort();
    }
}

impl GrpcStream {
    /// Connects to `host` of `cluster` (over the cluster's TLS context if it
    /// has one, within its `connect_timeout`, the TLS handshake included, as
    /// Envoy's) and opens the stream of `method` (`/package.Service/Method`).
    /// The cluster's HTTP/2 windows apply, as in Envoy's gRPC client: with
    /// its 256 MiB defaults a large response is not paced by WINDOW_UPDATE
    /// round trips.
    pub async fn open(
        host: &Arc<Host>,
        cluster: &Arc<ClusterInfo>,
        authority: &str,
        method: &str,
    ) -> Result<GrpcStream, StreamError> {
        let addr = host.address;
        let stats = &cluster.stats;
        cluster.use_traffic_stats();
        stats.upstream_rq_total.inc();
        stats.upstream_rq_pending_total.inc();
        let connected =
            UpstreamConnection::connect_for(cluster, host, Some(AlpnFallback::Http2), &TransportOptions::NONE).await;
        let UpstreamConnection { stream: transport, mut accounting, .. } = match connected {
            Ok(c) => c,
            Err(e) => {
                stats.upstream_rq_pending_failure_eject.inc();
                return Err(StreamError(format!("connecting to {addr} failed ({e:?})")));
            }
        };
        let o = &cluster.http2_options;
        let handshake = h2::client::Builder::new()
            .initial_window_size(o.initial_stream_window_size)
            .initial_connection_window_size(o.initial_connection_window_size)
            .header_table_size(o.hpack_table_size)
            .handshake::<_, Bytes>(transport)
            .await;
        let (client, connection) = match handshake {
            Ok(made) => made,
            Err(e) => {
                if !e.is_io() {
                    accounting.mark_closed_locally();
                }
                stats.upstream_rq_pending_failure_eject.inc();
                return Err(failed("HTTP/2 handshake", e));
            }
        };
        stats.upstream_cx_http2_total.inc();
        stats.upstream_rq_active.inc();
        cluster.http2_stats().streams_active.inc();
        let open = Rc::new(Cell::new(true));
        let keepalive = (o.keepalive.clone(), cluster.clone());
        let connection = tokio::task::spawn_local(drive(connection, keepalive, accounting, open.clone()));
        let counted = Counted { cluster: cluster.clone(), open, connection };
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://{authority}{method}"))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
            .header(TE, HeaderValue::from_static("trailers"))
            .body(())
            .map_err(|e| failed("the stream's request", e))?;
        let mut client: SendRequest<Bytes> = client.ready().await.map_err(|e| failed("opening the stream", e))?;
        let (response, send) = client.send_request(request, false).map_err(|e| failed("opening the stream", e))?;
        Ok(GrpcStream { send, incoming: Incoming::Head(response), buf: BytesMut::new(), counted })
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
                    count_response(&self.counted.cluster, response.status().as_u16());
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

/// The answer's status, counted as Envoy's router counts a request's
/// (`upstream_rq_<code>`, `_<class>xx`, `_completed`), and again under
/// `internal.`: the gRPC client's requests are internal ones.
fn count_response(cluster: &ClusterInfo, code: u16) {
    cluster.code_counter(code).inc();
    cluster.class_counter(code).inc();
    cluster.dynamic_counter("upstream_rq_completed").inc();
    cluster.dynamic_counter(&format!("internal.upstream_rq_{code}")).inc();
    cluster.dynamic_counter(&format!("internal.upstream_rq_{}xx", crate::stats::status_class(code))).inc();
    cluster.dynamic_counter("internal.upstream_rq_completed").inc();
}

/// Runs the stream's connection until it ends, then counts how it ended
/// (`accounting`; with the stream still `open`, as one destroyed with an
/// active request, which Envoy also counts as `upstream_rq_pending_failure_eject`).
/// With `connection_keepalive`, a PING goes every (jittered) interval and
/// one not answered within its timeout closes the connection
/// (`http2.keepalive_timeout`), as the cluster's pools do.
async fn drive(
    mut connection: h2::client::Connection<TransportStream, Bytes>,
    (keepalive, cluster): (Option<Keepalive>, Arc<ClusterInfo>),
    mut accounting: ConnectionAccounting,
    open: Rc<Cell<bool>>,
) {
    let mut pings = KeepalivePings::new(connection.ping_pong(), keepalive);
    let closed_locally = tokio::select! {
        ended = &mut connection => ended.is_err_and(|e| e.is_library()),
        () = pings_timed_out(&mut pings) => {
            cluster.http2_stats().keepalive_timeout.inc();
            tracing::warn!("the management server's connection did not answer a PING in time: closed");
            true
        }
    };
    drop(connection);
    if closed_locally {
        accounting.mark_closed_locally();
    }
    if open.get() {
        accounting.mark_active_request();
        if !closed_locally {
            cluster.stats.upstream_rq_pending_failure_eject.inc();
        }
    }
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
