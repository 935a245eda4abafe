//! A response onto an HTTP/2 stream: HEADERS, DATA as the peer's flow-control
//! window allows, then trailers or an empty end of stream.
//!
//! Data goes out only as window is granted (`StreamHandle::send_data` takes
//! what the windows allow, `window` waits for more), and a connection's
//! streams together queue at most its buffer limit beyond what was written
//! (`StreamHandle::wait_below`), so what
//! a slow reader makes Courier hold is bounded by that limit, not by the
//! responses' sizes. The stream's idle timeout and deadline bound each wait, as
//! the HTTP/1 writer's do.

use std::future::Future;

use bytes::Bytes;
use http::header::{CONNECTION, DATE, TE, TRANSFER_ENCODING, UPGRADE};
use http::{Response, StatusCode};
use hyper::body::Body;

use super::server_stream::{StreamGone, StreamHandle};
use crate::event::Timer;
use crate::http::header_map_pool;
use crate::http::headers::{KEEP_ALIVE, PROXY_CONNECTION};
use crate::http::http1::date;
use crate::http::http1::response_writer::{WriteError, WriteLimits};

/// A stream's bounds on what it sends: its timers and the connection's budget.
#[derive(Clone, Copy)]
pub struct Outbound {
    pub limits: WriteLimits,
    /// The connection's buffer limit: pending send bytes past it wait.
    pub buffer_limit: u64,
}

/// Writes `response` on the stream; `head_only` for a HEAD request. Returns the
/// body bytes written.
pub async fn write<B>(
    stream: &StreamHandle,
    response: Response<B>,
    head_only: bool,
    out: Outbound,
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
    let sent = stream.send_head(parts.status, &parts.headers, end);
    // Encoded: the map goes back for the next message parsed on this worker.
    header_map_pool::give_back(parts.headers);
    sent.map_err(gone)?;
    if end {
        return Ok(0);
    }
    let mut body = std::pin::pin!(body);
    let mut written = 0u64;
    loop {
        let frame = within(out.limits, timer, stream, std::future::poll_fn(|cx| body.as_mut().poll_frame(cx))).await?;
        match frame {
            None => {
                stream.send_data(&mut Bytes::new(), true).map_err(gone)?;
                return Ok(written);
            }
            Some(Err(_)) => return Err(WriteError::Body),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    written += data.len() as u64;
                    let last = body.is_end_stream();
                    send_data(stream, data, last, out, timer).await?;
                    if last {
                        return Ok(written);
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        stream.send_trailers(&trailers).map_err(gone)?;
                        return Ok(written);
                    }
                }
            },
        }
    }
}

/// A response head as HTTP/2 sends it: without connection-specific headers
/// (RFC 9113 §8.2.2), with a `date`. Its values may be slices of an upstream
/// connection's read buffer; that is fine, as HPACK's dynamic table copies
/// what it indexes and nothing else outlives the encoding.
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
    parts.version = http::Version::HTTP_2;
}

/// Sends `data` as the window allows; `last` ends the stream with it.
pub async fn send_data(
    stream: &StreamHandle,
    mut data: Bytes,
    last: bool,
    out: Outbound,
    timer: &mut Timer,
) -> Result<(), WriteError> {
    if data.is_empty() {
        if last {
            stream.send_data(&mut data, true).map_err(gone)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        if stream.pending_send() >= out.buffer_limit {
            within(out.limits, timer, stream, stream.wait_below(out.buffer_limit)).await?;
        }
        stream.send_data(&mut data, last).map_err(gone)?;
        if !data.is_empty() {
            within(out.limits, timer, stream, stream.window()).await?;
        }
    }
    Ok(())
}

/// Runs `f` under the stream's idle timeout and deadline; the client resetting
/// the stream ends the wait too.
async fn within<F: Future>(
    limits: WriteLimits,
    timer: &mut Timer,
    stream: &StreamHandle,
    f: F,
) -> Result<F::Output, WriteError> {
    timer.set(limits.wait_deadline());
    let mut f = std::pin::pin!(f);
    tokio::select! {
        biased;
        () = std::future::poll_fn(|cx| stream.poll_reset(cx)) => {
            Err(WriteError::Io(std::io::ErrorKind::ConnectionReset.into()))
        }
        out = f.as_mut() => Ok(out),
        () = timer.fired() => Err(WriteError::Timeout),
    }
}

fn gone(_: StreamGone) -> WriteError {
    WriteError::Io(std::io::ErrorKind::ConnectionReset.into())
}
