//! Keeping a streamed request body for retries. Envoy's router buffers the request
//! body as it forwards it (up to its buffer limit) so that a retry can send it
//! again; a body over the limit is sent once and the request is not retried.
//!
//! Courier reads the body before the first attempt, up to the listener's
//! `per_connection_buffer_limit_bytes`: a body that ends within it becomes
//! replayable (`ForwardBody::Buffered`); a larger one (counted in
//! `retry_or_shadow_abandoned`, or one with trailers or a framing error) is sent
//! once, what was read first and then the rest (`ForwardBody::Once`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use super::upstream_request::ForwardBody;
use crate::http::body::RequestBodyStream;
use crate::http::http1::client_connection::BoxError;
use crate::http::http1::CodecError;
use crate::stats::Counter;

/// Makes a streamed body replayable when it fits in `limit` bytes; other bodies
/// are returned as they are. A body over the limit counts in `abandoned`.
pub(crate) async fn buffer_for_retries(body: ForwardBody, limit: usize, abandoned: &Counter) -> ForwardBody {
    let ForwardBody::Streaming(mut stream) = body else { return body };
    let mut read: VecDeque<Result<Frame<Bytes>, CodecError>> = VecDeque::new();
    let mut len = 0usize;
    loop {
        match stream.frame().await {
            None => break,
            Some(Ok(frame)) if frame.is_data() => {
                len += frame.data_ref().map_or(0, |d| d.len());
                read.push_back(Ok(frame));
                if len > limit {
                    abandoned.inc();
                    return once(read, stream);
                }
            }
            // Trailers or a framing error: send what came, as it came.
            Some(other) => {
                read.push_back(other);
                return once(read, stream);
            }
        }
    }
    let mut whole = BytesMut::with_capacity(len);
    for frame in read.into_iter().flatten() {
        if let Ok(data) = frame.into_data() {
            whole.extend_from_slice(&data);
        }
    }
    if whole.is_empty() {
        ForwardBody::Empty
    } else {
        ForwardBody::Buffered(whole.freeze())
    }
}

fn once(read: VecDeque<Result<Frame<Bytes>, CodecError>>, rest: RequestBodyStream) -> ForwardBody {
    ForwardBody::Once(Box::pin(ReadFirst { read, rest }.map_err(|e| Box::new(e) as BoxError)))
}

/// The frames already read, then the rest of the stream.
struct ReadFirst {
    read: VecDeque<Result<Frame<Bytes>, CodecError>>,
    rest: RequestBodyStream,
}

impl Body for ReadFirst {
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        match self.read.pop_front() {
            Some(frame) => Poll::Ready(Some(frame)),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self.read.iter().flatten().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + read);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + read);
        }
        hint
    }
}
