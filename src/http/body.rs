//! Request bodies on the HTTP path, protocol-neutral: what a downstream codec
//! decodes, read by the connection manager, the filters and the router alike.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
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
