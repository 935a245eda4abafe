//! A response onto an HTTP/2 stream: HEADERS, DATA as the peer's flow-control
//! window allows, then trailers or an empty end of stream.
//!
//! Data goes out only as window is granted (`reserve_capacity` /
//! `poll_capacity`), and a connection's streams together hand the codec at most
//! its buffer limit beyond what was written (`FrameGuard::wait_below`), so what
//! a slow reader makes Courier hold is bounded by that limit, not by the
//! responses' sizes. The stream's idle timeout and deadline bound each wait, as
//! the HTTP/1 writer's do.

use std::future::Future;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::SendStream;
use http::header::{CONNECTION, DATE, TE, TRANSFER_ENCODING, UPGRADE};
use http::{Response, StatusCode};
use hyper::body::Body;

use super::frame_guard::FrameGuard;
use crate::event::Timer;
use crate::http::headers::{KEEP_ALIVE, PROXY_CONNECTION};
use crate::http::http1::date;
use crate::http::http1::response_writer::{WriteError, WriteLimits};

/// The largest final body chunk copied out of the buffer it shares (see `write`).
const LAST_CHUNK_COPY: usize = 4096;

/// A stream's bounds on what it sends: its timers and the connection's budget.
#[derive(Clone, Copy)]
pub struct Outbound<'a> {
    pub limits: WriteLimits,
    pub guard: &'a FrameGuard,
    /// The connection's buffer limit: pending send bytes past it wait.
    pub buffer_limit: u64,
}

/// Writes `response` on the stream; `head_only` for a HEAD request. Returns the
/// body bytes written.
pub async fn write<B>(
    respond: &mut SendResponse<Bytes>,
    response: Response<B>,
    head_only: bool,
    out: Outbound<'_>,
    timer: &mut Timer,
) -> Result<u64, WriteError>
where
    B: Body<Data = Bytes>,
{
    let (mut parts, body) = response.into_parts();
    prepare_head(&mut parts);
    let status = parts.status;
    let no_body = head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let end = no_body || body.is_end_stream();
    let head = Response::from_parts(parts, ());
    let mut send = respond.send_response(head, end).map_err(h2_error)?;
    if end {
        return Ok(0);
    }
    let mut body = std::pin::pin!(body);
    let mut written = 0u64;
    loop {
        let frame =
            within(out.limits, timer, &mut send, std::future::poll_fn(|cx| body.as_mut().poll_frame(cx))).await?;
        match frame {
            None => {
                send.send_data(Bytes::new(), true).map_err(h2_error)?;
                return Ok(written);
            }
            Some(Err(_)) => return Err(WriteError::Body),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    written += data.len() as u64;
                    let last = body.is_end_stream();
                    // h2 keeps the connection's last DATA frame until the next one;
                    // a small end of a body is copied so an idle connection does not
                    // pin the upstream read buffer it was cut from (8 KiB each).
                    if last && data.len() <= LAST_CHUNK_COPY {
                        data = Bytes::copy_from_slice(&data);
                    }
                    send_data(&mut send, data, last, out, timer).await?;
                    if last {
                        return Ok(written);
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        send.send_trailers(trailers).map_err(h2_error)?;
                        return Ok(written);
                    }
                }
            },
        }
    }
}

/// A response head as HTTP/2 sends it: without connection-specific headers
/// (RFC 9113 §8.2.2), with a `date`.
pub fn prepare_head(parts: &mut http::response::Parts) {
    // Most responses have none: one pass over the names settles it.
    let specific = [CONNECTION, TRANSFER_ENCODING, UPGRADE, TE, KEEP_ALIVE, PROXY_CONNECTION];
    if parts.headers.keys().any(|k| specific.contains(k)) {
        for name in specific {
            parts.headers.remove(name);
        }
    }
    if !parts.headers.contains_key(DATE) {
        parts.headers.insert(DATE, date::now());
    }
    detach_values(&mut parts.headers);
    parts.version = http::Version::HTTP_2;
}

/// Moves the header values into one buffer of their own. HPACK's dynamic table
/// keeps the values it indexes for the connection's life, and values parsed
/// from an upstream response are slices of that connection's read buffer: kept,
/// they would pin 8 KiB per idle HTTP/2 connection. One allocation the size of
/// the values instead.
fn detach_values(headers: &mut http::HeaderMap) {
    let total: usize = headers.values().map(|v| v.len()).sum();
    let mut all = bytes::BytesMut::with_capacity(total);
    for v in headers.values() {
        all.extend_from_slice(v.as_bytes());
    }
    let all = all.freeze();
    let mut at = 0;
    for v in headers.values_mut() {
        let end = at + v.len();
        if let Ok(mut own) = http::HeaderValue::from_maybe_shared(all.slice(at..end)) {
            own.set_sensitive(v.is_sensitive());
            *v = own;
        }
        at = end;
    }
}

/// Sends `data` as the window allows; `last` ends the stream with it.
pub async fn send_data(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    last: bool,
    out: Outbound<'_>,
    timer: &mut Timer,
) -> Result<(), WriteError> {
    if data.is_empty() {
        if last {
            send.send_data(data, true).map_err(h2_error)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        if out.guard.pending_send() >= out.buffer_limit {
            within(out.limits, timer, send, out.guard.wait_below(out.buffer_limit)).await?;
        }
        send.reserve_capacity(data.len());
        let capacity = wait_capacity(send, out.limits, timer).await?;
        if capacity == 0 {
            continue;
        }
        let chunk = data.split_to(capacity.min(data.len()));
        out.guard.handed(chunk.len());
        send.send_data(chunk, last && data.is_empty()).map_err(h2_error)?;
    }
    Ok(())
}

/// Waits for window to be granted, under the stream's limits.
async fn wait_capacity(
    send: &mut SendStream<Bytes>,
    limits: WriteLimits,
    timer: &mut Timer,
) -> Result<usize, WriteError> {
    timer.set(limits.wait_deadline());
    tokio::select! {
        biased;
        c = std::future::poll_fn(|cx| send.poll_capacity(cx)) => match c {
            Some(Ok(n)) => Ok(n),
            Some(Err(e)) => Err(h2_error(e)),
            None => Err(WriteError::Io(std::io::ErrorKind::ConnectionReset.into())),
        },
        () = timer.fired() => Err(WriteError::Timeout),
    }
}

/// Runs `f` under the stream's idle timeout and deadline; the client resetting
/// the stream ends the wait too.
async fn within<F: Future>(
    limits: WriteLimits,
    timer: &mut Timer,
    send: &mut SendStream<Bytes>,
    f: F,
) -> Result<F::Output, WriteError> {
    timer.set(limits.wait_deadline());
    let mut f = std::pin::pin!(f);
    tokio::select! {
        biased;
        out = f.as_mut() => Ok(out),
        _ = std::future::poll_fn(|cx| send.poll_reset(cx)) => {
            Err(WriteError::Io(std::io::ErrorKind::ConnectionReset.into()))
        }
        () = timer.fired() => Err(WriteError::Timeout),
    }
}

fn h2_error(e: h2::Error) -> WriteError {
    WriteError::Io(e.into_io().unwrap_or_else(|| std::io::ErrorKind::ConnectionReset.into()))
}
