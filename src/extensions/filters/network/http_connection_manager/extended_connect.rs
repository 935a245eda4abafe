//! WebSocket (any upgrade) over HTTP/2, RFC 8441's extended CONNECT, as Envoy
//! 1.40 does it: with `http2_protocol_options.allow_connect` the connection
//! advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, and a stream with `:method
//! CONNECT` + `:protocol X` goes on as the HTTP/1 upgrade it stands for (`GET`,
//! `upgrade: X`, `connection: upgrade`), allowed or refused (403) by
//! `upgrade_configs` like one. The upstream's 101 becomes `:status 200`, and the
//! stream's DATA carries the tunnel's bytes both ways. The ends, as Envoy's: the
//! client's END_STREAM half-closes the upstream connection; the upstream
//! closing resets the stream with CONNECT_ERROR; the client's RST_STREAM closes
//! the upstream connection (checked against Envoy 1.40).

use std::cell::Cell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::response_body::{ResponseBody, TunnelEnd};
use super::stats::HcmStats;
use crate::event::Timer;
use crate::http::http1::response_writer::{WriteError, WriteLimits};
use crate::http::http2::codec::ErrorCode;
use crate::http::http2::response_writer::{self, Outbound};
use crate::http::http2::server_stream::StreamHandle;

/// Each read from the upstream connection.
const RELAY_BUFFER: usize = 16 * 1024;

/// Turns an extended CONNECT (its `:protocol`) into the HTTP/1 upgrade request
/// it stands for; false (nothing changed) for any other request.
pub(super) fn as_upgrade(parts: &mut http::request::Parts, protocol: Option<HeaderValue>) -> bool {
    if parts.method != Method::CONNECT {
        return false;
    }
    let Some(upgrade) = protocol else { return false };
    parts.method = Method::GET;
    parts.headers.insert(http::header::UPGRADE, upgrade);
    parts.headers.insert(http::header::CONNECTION, HeaderValue::from_static("upgrade"));
    true
}

/// A response to an extended CONNECT that is not a tunnel, written: an
/// upstream's answer (it did not switch) as its head alone, as Envoy's (the
/// stream dropped its body's headers: `upstream_response_headers`); a local
/// reply whole.
pub(super) async fn write_unswitched(
    response: http::Response<ResponseBody>,
    respond: &StreamHandle,
    out: Outbound,
    timer: &mut Timer,
) -> Result<u64, WriteError> {
    if response.body().is_local() {
        return response_writer::write(respond, response, false, out, timer).await;
    }
    let (parts, body) = response.into_parts();
    body.discard_unswitched();
    let head = http::Response::from_parts(parts, http_body_util::Empty::<Bytes>::new());
    response_writer::write(respond, head, true, out, timer).await
}

/// How a tunnel ended, for the stream's counters.
pub(super) enum Ended {
    /// Both directions ended: END_STREAM went to the client.
    Closed,
    /// The client reset the stream.
    ClientReset,
    /// Courier reset it: the upstream went away first, or nothing moved for
    /// the stream's idle timeout.
    Reset(TunnelEnd),
}

/// When `response` is the upstream's 101 to the stream's upgrade: answers
/// `:status 200` and relays `recv` and the upstream connection until the
/// tunnel ends. Gives the response back otherwise.
pub(super) async fn serve(
    mut response: http::Response<ResponseBody>,
    stream: &StreamHandle,
    received: Rc<Cell<u64>>,
    limits: WriteLimits,
    out: Outbound,
    stats: &HcmStats,
) -> Result<Ended, http::Response<ResponseBody>> {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(response);
    }
    let Some((mut upstream, completion)) = response.body_mut().take_upgraded() else { return Err(response) };
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::OK;
    response_writer::prepare_head(&mut parts);
    let Ok(()) = stream.send_head(parts.status, &parts.headers, false) else {
        completion.finish_tunnel(0, TunnelEnd::StreamReset);
        return Ok(Ended::ClientReset);
    };
    stats.downstream_cx_upgrades_active.inc();
    let (io, early) = upstream.parts();
    let traffic = Traffic { received: Cell::new(0), sent: Cell::new(0), last: Cell::new(Instant::now()) };
    let ended = relay(io, early, stream, limits.idle, out, &traffic).await;
    stats.downstream_cx_upgrades_active.dec();
    received.set(received.get() + traffic.received.get());
    let end = match &ended {
        Ended::Closed => TunnelEnd::Upstream,
        Ended::ClientReset => TunnelEnd::StreamReset,
        Ended::Reset(TunnelEnd::Idle) => TunnelEnd::Idle,
        Ended::Reset(_) => TunnelEnd::UpstreamReset,
    };
    completion.finish_tunnel(traffic.sent.get(), end);
    Ok(ended)
}

/// What the two directions moved, and when last.
struct Traffic {
    received: Cell<u64>,
    sent: Cell<u64>,
    last: Cell<Instant>,
}

/// What ended the client's direction.
enum ClientSide {
    Reset,
    /// Writing to the upstream failed: it is gone.
    UpstreamGone,
}

async fn relay(
    io: &mut crate::network::TransportStream,
    early: BytesMut,
    stream: &StreamHandle,
    idle: Option<std::time::Duration>,
    out: Outbound,
    traffic: &Traffic,
) -> Ended {
    let (mut up_rd, mut up_wr) = tokio::io::split(io);
    let client_ended = Cell::new(false);
    // The client's DATA to the upstream; its END_STREAM half-closes the
    // upstream connection, after which this waits on (the other way goes on).
    let from_client = async {
        loop {
            match std::future::poll_fn(|cx| stream.poll_data(cx)).await {
                Some(Ok(data)) => {
                    stream.release(data.len());
                    traffic.last.set(Instant::now());
                    if up_wr.write_all(&data).await.is_err() {
                        return ClientSide::UpstreamGone;
                    }
                    traffic.received.set(traffic.received.get() + data.len() as u64);
                }
                Some(Err(_)) => return ClientSide::Reset,
                None => {
                    client_ended.set(true);
                    let _ = up_wr.shutdown().await;
                    return std::future::pending().await;
                }
            }
        }
    };
    // The upstream's bytes to the client, as its window allows; returns once the
    // upstream ended (Ok) or the client reset the stream (Err).
    let to_client = async {
        let mut timer = Timer::new();
        // Sends without a deadline of its own: the tunnel's idle timer covers it.
        let out = Outbound { limits: WriteLimits { idle: None, deadline: None }, ..out };
        if !early.is_empty() {
            traffic.sent.set(early.len() as u64);
            response_writer::send_data(stream, early.freeze(), false, out, &mut timer).await?;
        }
        let mut buf = BytesMut::with_capacity(RELAY_BUFFER);
        loop {
            buf.reserve(RELAY_BUFFER);
            let read = tokio::select! {
                r = up_rd.read_buf(&mut buf) => r,
                () = std::future::poll_fn(|cx| stream.poll_reset(cx)) => {
                    return Err(WriteError::Io(std::io::ErrorKind::ConnectionReset.into()));
                }
            };
            let n = match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            traffic.last.set(Instant::now());
            traffic.sent.set(traffic.sent.get() + n as u64);
            response_writer::send_data(stream, buf.split().freeze(), false, out, &mut timer).await?;
        }
    };
    let ended = tokio::select! {
        side = from_client => match side {
            ClientSide::Reset => Ended::ClientReset,
            ClientSide::UpstreamGone => Ended::Reset(TunnelEnd::Upstream),
        },
        sent = to_client => match sent {
            Err(_) => Ended::ClientReset,
            Ok(()) if client_ended.get() => Ended::Closed,
            Ok(()) => Ended::Reset(TunnelEnd::Upstream),
        },
        () = super::upgrade::idled(idle, &traffic.last) => Ended::Reset(TunnelEnd::Idle),
    };
    match &ended {
        Ended::Closed => {
            let _ = stream.send_data(&mut Bytes::new(), true);
        }
        Ended::Reset(TunnelEnd::Idle) => stream.send_reset(ErrorCode::INTERNAL_ERROR),
        Ended::Reset(_) => {
            // What the upstream sent before it went reaches the client first (a
            // reset discards what the codec still holds), as with Envoy.
            tokio::select! {
                () = stream.wait_below(1) => {}
                () = std::future::poll_fn(|cx| stream.poll_reset(cx)) => {}
                () = super::upgrade::idled(idle, &traffic.last) => {}
            }
            stream.send_reset(ErrorCode::CONNECT_ERROR);
        }
        Ended::ClientReset => {}
    }
    ended
}
