//! Request bodies on the HTTP path, protocol-neutral: what a downstream codec
//! decodes, read by the connection manager, the filters and the router alike,
//! and the changes a filter makes to one as it streams (`BodyTransform`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};

use crate::http::http1::CodecError;
use crate::http::{http1, http2};

/// A downstream request body, as its codec decodes it: the stream and the
/// router read it without knowing the protocol. An enum rather than a boxed
/// trait object: no allocation per HTTP/1 request, and the match is one branch.
/// The HTTP/2 body is boxed so the enum stays two words: requests move through
/// several futures, and a larger body measured +1 % instructions per HTTP/1
/// request in copies alone.
pub enum RequestBody {
    Http1(http1::RequestBody),
    Http2(Box<http2::RequestBody>),
    /// Either of them, changed piece by piece on its way (a decompressing filter).
    Transformed(Box<TransformedBody<RequestBody>>),
}

/// A change a decoder filter makes to the request body while it streams,
/// without holding it back: each piece is replaced by what the transform makes
/// of it (a decompressor's output, say). The filter hands it over from its
/// headers callback; the body then carries it, so the filter need not be
/// reachable from the upload to the upstream.
pub trait BodyTransform {
    /// `data` as it goes on (possibly empty); `end`: no data follows it (the body
    /// ends, or its trailers come next), so whatever the transform holds is due.
    fn data(&mut self, data: Bytes, end: bool) -> Bytes;
}

/// A body that can carry a transform (the codecs' `RequestBody`; a test's body).
pub trait TransformableBody: Sized {
    fn transformed(self, transform: Box<dyn BodyTransform>) -> Self;
}

impl TransformableBody for RequestBody {
    fn transformed(self, transform: Box<dyn BodyTransform>) -> RequestBody {
        match self {
            RequestBody::Transformed(mut t) => {
                t.transforms.push(transform);
                RequestBody::Transformed(t)
            }
            inner => RequestBody::Transformed(Box::new(TransformedBody::new(inner, transform))),
        }
    }
}

/// `inner` with its data passed through `transforms` in order. Trailers pass
/// unchanged, after what the transforms still held.
pub struct TransformedBody<B> {
    inner: B,
    transforms: Vec<Box<dyn BodyTransform>>,
    /// Trailers read from `inner`, sent after the transforms' last data.
    trailers: Option<HeaderMap>,
    /// The transforms were told the data ended.
    flushed: bool,
    done: bool,
}

impl<B> TransformedBody<B> {
    pub fn new(inner: B, transform: Box<dyn BodyTransform>) -> TransformedBody<B> {
        TransformedBody { inner, transforms: vec![transform], trailers: None, flushed: false, done: false }
    }

    fn apply(&mut self, mut data: Bytes, end: bool) -> Bytes {
        for t in &mut self.transforms {
            data = t.data(data, end);
        }
        self.flushed |= end;
        data
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TransformedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if this.flushed {
                this.done = this.trailers.is_none();
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    let tail = this.apply(Bytes::new(), true);
                    if tail.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(tail))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => frame,
            };
            let out = match frame.into_data() {
                Ok(data) => {
                    let end = this.inner.is_end_stream();
                    this.apply(data, end)
                }
                Err(frame) => {
                    this.trailers = frame.into_trailers().ok();
                    this.apply(Bytes::new(), true)
                }
            };
            // An empty piece is not a frame: wait for what the transforms make of
            // the next one (or for the end).
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    /// The length changes on the way: unknown.
    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        match self.get_mut() {
            RequestBody::Http1(b) => Pin::new(b).poll_frame(cx),
            RequestBody::Http2(b) => Pin::new(&mut **b).poll_frame(cx),
            RequestBody::Transformed(b) => Pin::new(&mut **b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Http1(b) => b.is_end_stream(),
            RequestBody::Http2(b) => b.is_end_stream(),
            RequestBody::Transformed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Http1(b) => b.size_hint(),
            RequestBody::Http2(b) => b.size_hint(),
            RequestBody::Transformed(b) => b.size_hint(),
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

    /// A filter's transform changes the body on its way (see `BodyTransform`).
    pub fn is_transformed(&self) -> bool {
        matches!(self.rest, RequestBody::Transformed(_))
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
