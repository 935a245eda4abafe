//! The body of a downstream response, as the connection manager hands it to the
//! codec.
//!
//! `ResponseBody` is what the downstream codec writes: either bytes Courier made
//! (local replies) or an upstream response relayed frame by frame, never buffered
//! whole. It carries the stream's `StreamCompletion`, which charges the stats and
//! writes the access log exactly once — when the body ended, or when the codec
//! dropped it (client gone); the upstream body hands its connection back to
//! the pool only after the upstream response was read to the end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};

use crate::upstream::conn_pool::UpstreamResponseBody;
use crate::upstream::http1_conn_pool::{Http1ResponseBody, UpstreamBodyError};
use crate::upstream::http2_conn_pool::Http2ResponseBody;

/// Runs once when a stream is over; see `ResponseBody`.
pub trait StreamCompletion {
    /// `bytes_sent`: response body bytes written; `complete`: the body ended
    /// normally (false: the downstream went away or the upstream failed midway).
    fn finish(self: Box<Self>, bytes_sent: u64, trailers: Option<&HeaderMap>, complete: bool);

    /// The client went away before its request was whole: no response was
    /// sent (Envoy's downstream reset, `DC`); the stream is not counted as
    /// completed.
    fn downstream_reset(self: Box<Self>);
}

enum Source {
    Local(Option<Bytes>),
    /// A body the encoder filters read whole (and may have changed), with the
    /// trailers that ended it.
    Buffered(Option<Bytes>, Option<Box<HeaderMap>>),
    Upstream(Http1ResponseBody),
    /// An HTTP/2 upstream stream: flow-control credit goes back as data is
    /// taken, and it ends with the stream's trailers, if any.
    Upstream2(Http2ResponseBody),
}

/// The body of a downstream response.
pub struct ResponseBody {
    source: Source,
    sent: u64,
    /// Boxed: rare, and the body moves several times per request.
    trailers: Option<Box<HeaderMap>>,
    completion: Option<Box<dyn StreamCompletion>>,
}

impl ResponseBody {
    /// A body Courier made itself.
    pub fn local(bytes: Bytes, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let source = Source::Local((!bytes.is_empty()).then_some(bytes));
        ResponseBody { source, sent: 0, trailers: None, completion: Some(completion) }
    }

    /// A body the encoder filters buffered whole.
    pub fn buffered(data: Bytes, trailers: Option<HeaderMap>, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let source = Source::Buffered((!data.is_empty()).then_some(data), trailers.map(Box::new));
        ResponseBody { source, sent: 0, trailers: None, completion: Some(completion) }
    }

    /// An upstream response body; its connection returns to the pool when the
    /// body ends.
    pub fn upstream(body: UpstreamResponseBody, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let source = match body {
            UpstreamResponseBody::Http1(b) => Source::Upstream(b),
            UpstreamResponseBody::Http2(b) => Source::Upstream2(b),
        };
        ResponseBody { source, sent: 0, trailers: None, completion: Some(completion) }
    }

    /// Ends the stream as reset by the client: nothing is written.
    pub fn downstream_reset(mut self) {
        if let Some(c) = self.completion.take() {
            c.downstream_reset();
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(c) = self.completion.take() {
            c.finish(self.sent, self.trailers.as_deref(), complete);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.source {
            Source::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Source::Buffered(data, trailers) => Poll::Ready(match data.take() {
                Some(b) => Some(Ok(Frame::data(b))),
                None => trailers.take().map(|t| Ok(Frame::trailers(*t))),
            }),
            Source::Upstream(body) => Pin::new(body).poll_frame(cx),
            Source::Upstream2(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                } else if let Some(t) = frame.trailers_ref() {
                    this.trailers = Some(Box::new(t.clone()));
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Local(b) => b.is_none(),
            Source::Buffered(b, t) => b.is_none() && t.is_none(),
            Source::Upstream(body) => body.is_end_stream(),
            Source::Upstream2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Source::Local(None) => SizeHint::with_exact(0),
            Source::Buffered(b, _) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Source::Upstream(body) => body.size_hint(),
            Source::Upstream2(body) => body.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An empty body needs no polling (HEAD responses, 204s): that is complete
        // (and the upstream body gives its connection back when dropped).
        let complete = match &self.source {
            Source::Local(bytes) => bytes.is_none(),
            Source::Buffered(b, t) => b.is_none() && t.is_none(),
            Source::Upstream(body) => body.is_end_stream(),
            Source::Upstream2(body) => body.is_end_stream(),
        };
        self.finish(complete);
    }
}

/// Why an upstream response body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWholeError {
    /// It is longer than the limit.
    TooLarge,
    /// The upstream failed midway.
    Failed,
}

/// Reads an upstream response body to its end, for encoder filters that want
/// it whole, within `limit` bytes: a declared length over it is refused before
/// anything is read. The connection goes back to the pool once the body ended.
pub async fn read_upstream_whole(
    body: &mut UpstreamResponseBody,
    limit: u64,
) -> Result<(Bytes, Option<HeaderMap>), ReadWholeError> {
    use http_body_util::BodyExt;
    if body.size_hint().lower() > limit {
        return Err(ReadWholeError::TooLarge);
    }
    let mut data = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok((data.freeze(), None)),
            Some(Err(_)) => return Err(ReadWholeError::Failed),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    if (data.len() + chunk.len()) as u64 > limit {
                        return Err(ReadWholeError::TooLarge);
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return Ok((data.freeze(), Some(trailers)));
                    }
                }
            },
        }
    }
}
