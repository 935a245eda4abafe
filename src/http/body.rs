//! Bodies on the HTTP path.
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

use crate::http::http1::CodecError;
use crate::http::{http1, http2};
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

/// A downstream request body, as its codec decodes it: the stream and the
/// router read it without knowing the protocol. An enum rather than a boxed
/// trait object: no allocation per HTTP/1 request, and the match is one branch.
/// The HTTP/2 body is boxed so the enum stays two words: requests move through
/// several futures, and a larger body measured +1 % instructions per HTTP/1
/// request in copies alone.
pub enum RequestBody {
    Http1(http1::RequestBody),
    Http2(Box<http2::RequestBody>),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        match self.get_mut() {
            RequestBody::Http1(b) => Pin::new(b).poll_frame(cx),
            RequestBody::Http2(b) => Pin::new(&mut **b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Http1(b) => b.is_end_stream(),
            RequestBody::Http2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Http1(b) => b.size_hint(),
            RequestBody::Http2(b) => b.size_hint(),
        }
    }
}

/// A downstream request body whose first frame was already read (to catch a
/// malformed body before anything goes upstream), then the rest as it comes.
pub struct RequestBodyStream {
    first: Option<Frame<Bytes>>,
    rest: RequestBody,
}

impl RequestBodyStream {
    /// Reads what already arrived of `body` without waiting: a framing error in
    /// it (e.g. a bad chunk size) is returned before any upstream sees the request.
    pub async fn start(mut body: RequestBody) -> Result<RequestBodyStream, CodecError> {
        let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let first = match polled {
            Poll::Ready(Some(Err(e))) => return Err(e),
            Poll::Ready(Some(Ok(frame))) => Some(frame),
            Poll::Ready(None) | Poll::Pending => None,
        };
        Ok(RequestBodyStream { first, rest: body })
    }
}

impl Body for RequestBodyStream {
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        match self.first.take() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().and_then(|f| f.data_ref()).map_or(0, |d| d.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}
