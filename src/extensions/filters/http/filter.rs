//! HTTP filters (Envoy's `StreamDecoderFilter` / `StreamEncoderFilter`).
//!
//! A filter sees the request on the way in (`decode_headers`, `decode_data`,
//! `decode_trailers`) and the response on the way out (`encode_headers`,
//! `encode_data`, `encode_trailers`), and may modify each, answer locally, pause
//! the stream (e.g. a fault delay), or stop the iteration and have the connection
//! manager buffer the body until it continues (the buffer filter), within the
//! stream's buffer limit: over it, Envoy's 413 for a request and 500 for a response.
//! Filters run in config order on the way in and in reverse order on the way out;
//! the router (`super::router`) is the terminal decoder filter after them, which
//! the connection manager awaits directly (see there why it is not a
//! `StreamFilter`). The connection manager drives them
//! (`filters::network::http_connection_manager::filter_manager`).
//!
//! Filter instances are created per stream by a `StreamFilterFactory` that was
//! built from config on the main thread and is shared by every worker.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::http::body::{BodyTransform, RequestBody};
use crate::http::local_reply::LocalReply;
use crate::router::Route;
use crate::stream_info::StreamInfo;

/// A future that runs on one worker.
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// What the decoder filters left for the router (`B`: the request body type, a
/// codec's `RequestBody` but for tests).
pub enum DecodedBody<B = RequestBody> {
    /// No body.
    Empty,
    /// Read whole through the filters (some filter stopped the headers).
    Buffered(Bytes, Option<HeaderMap>),
    /// Not read yet: it streams to the upstream.
    Unread(B),
}

/// What a decoder filter wants after seeing the request headers.
pub enum FilterStatus {
    /// Go on to the next filter.
    Continue,
    /// Stop here and answer with this response (encoder filters still run on it).
    LocalReply(LocalReply),
    /// Wait for the future, then continue with the next filter (fault delay).
    ContinueAfter(LocalBoxFuture<()>),
    /// Wait for the future, then act on what it returns.
    Decide(LocalBoxFuture<FilterStatus>),
    /// Change the request headers, then go on (what a `Decide` future found
    /// that the request needs: an authorization service's headers, say).
    ContinueWith(Box<dyn FnOnce(&mut http::request::Parts)>),
    /// Envoy's `StopIteration`: the next filters see the headers only once this
    /// filter's `decode_data` (or `decode_trailers`) lets the body through; the
    /// body is buffered meanwhile. With no body it is `Continue`.
    StopIteration,
}

/// What an encoder filter wants after seeing the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeStatus {
    Continue,
    /// As `FilterStatus::StopIteration`, for the response: the headers wait (and
    /// the body is buffered) until this filter's `encode_data` lets it through.
    StopIteration,
}

/// What a filter wants after seeing a piece of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    /// Pass this data (with any buffered before it) to the next filter.
    Continue,
    /// Keep it in the stream's buffer, and don't pass it on until a later call
    /// returns `Continue` (at the latest with `end_stream`, where buffering more
    /// is meaningless and the body goes on). The buffer is bounded: see the module
    /// doc.
    StopIterationAndBuffer,
}

impl Debug for FilterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterStatus::Continue => f.write_str("Continue"),
            FilterStatus::LocalReply(r) => write!(f, "LocalReply({})", r.status),
            FilterStatus::ContinueAfter(_) => f.write_str("ContinueAfter"),
            FilterStatus::Decide(_) => f.write_str("Decide"),
            FilterStatus::ContinueWith(_) => f.write_str("ContinueWith"),
            FilterStatus::StopIteration => f.write_str("StopIteration"),
        }
    }
}

/// What a filter can see and change besides the headers and bodies, and what it
/// asks of the connection manager (Envoy's filter callbacks).
pub struct StreamContext<'a> {
    /// The route chosen for the request (`None`: no route matched).
    pub route: Option<&'a Arc<Route>>,
    pub info: &'a mut StreamInfo,
    /// The request headers, available to encoder filters (e.g. CORS needs `origin`)
    /// and to decoder filters while the body is buffered; `None` while the body
    /// streams to the upstream (the router has the headers then).
    pub request_headers: Option<&'a HeaderMap>,
    /// The response headers (and status) while an encoder filter holds them
    /// back for the body (`EncodeStatus::StopIteration`): the body and trailers
    /// callbacks may still change them, as an Envoy filter changes the headers
    /// it kept from `encodeHeaders` (the gRPC bridge writes the trailers there).
    /// `None` once they are gone, and on the request path.
    pub held_response: Option<&'a mut http::response::Parts>,
    requests: FilterRequests,
}

/// What a filter asked for during one call; the connection manager acts on it
/// when the call returns.
#[derive(Default)]
pub(crate) struct FilterRequests {
    pub clear_route_cache: bool,
    pub buffer_limit: Option<u64>,
    pub local_reply: Option<LocalReply>,
    pub added_data: Option<Bytes>,
    pub prepended_data: Option<Bytes>,
    pub added_trailers: Option<HeaderMap>,
    pub body_transform: Option<Box<dyn BodyTransform>>,
}

impl<'a> StreamContext<'a> {
    pub fn new(
        route: Option<&'a Arc<Route>>,
        info: &'a mut StreamInfo,
        request_headers: Option<&'a HeaderMap>,
    ) -> StreamContext<'a> {
        StreamContext { route, info, request_headers, held_response: None, requests: FilterRequests::default() }
    }

    /// The context with the held response headers (see `held_response`).
    pub(crate) fn holding_response(mut self, parts: Option<&'a mut http::response::Parts>) -> StreamContext<'a> {
        self.held_response = parts;
        self
    }

    /// Envoy's `clearRouteCache`: the filter changed what routing reads (a header,
    /// the path), so the route is chosen again before the next filter runs.
    pub fn clear_route_cache(&mut self) {
        self.requests.clear_route_cache = true;
    }

    /// Envoy's `setDecoderBufferLimit` / `setEncoderBufferLimit`: the most this
    /// stream buffers in the direction the filter is called for (the listener's
    /// `per_connection_buffer_limit_bytes` unless a filter sets it).
    pub fn set_buffer_limit(&mut self, bytes: u64) {
        self.requests.buffer_limit = Some(bytes);
    }

    /// Envoy's `sendLocalReply` from a body or trailers callback: the stream is
    /// answered with `reply` instead of going on. Once the response has begun
    /// (a streamed response body), the stream is reset instead.
    pub fn send_local_reply(&mut self, reply: LocalReply) {
        self.requests.local_reply = Some(reply);
    }

    /// Envoy's `addEncodedData` / `addDecodedData` from a trailers callback: `data`
    /// goes on through the later filters before the trailers (a compressor's
    /// tail, say). From the response headers callback of a response without a
    /// body, it becomes the body the later filters see (with `add_trailers`, a
    /// gRPC frame and status for an empty answer).
    pub fn add_data(&mut self, data: Bytes) {
        if !data.is_empty() {
            match &mut self.requests.added_data {
                Some(existing) => {
                    let mut joined = bytes::BytesMut::from(&existing[..]);
                    joined.extend_from_slice(&data);
                    *existing = joined.freeze();
                }
                None => self.requests.added_data = Some(data),
            }
        }
    }

    /// Envoy's `addEncodedTrailers` / `addDecodedTrailers`: from the callback that
    /// sees the end of a body that has no trailers (a data callback with
    /// `end_stream`, or the response headers callback of a response without a
    /// body), the body gets trailers — the map returned, which the filter fills.
    /// The later filters see that end without `end_stream`, then these trailers
    /// (a gRPC status added to an HTTP/1.1 upstream's answer, say). Anywhere else
    /// the body already ends with trailers or is still going on, and the map is
    /// not used, as Envoy allows the call only there. A local reply's body is
    /// written without them (no filter here adds trailers to one: the reverse
    /// bridge replaces the local replies it sees).
    pub fn add_trailers(&mut self) -> &mut HeaderMap {
        self.requests.added_trailers.get_or_insert_with(HeaderMap::new)
    }

    /// From a body callback, Envoy's `modifyDecodingBuffer` / `modifyEncodingBuffer`
    /// used to prepend: `data` goes on before what this filter held and the
    /// piece it is called with, once it lets them through (a gRPC frame header
    /// before a whole message, say).
    pub fn prepend_data(&mut self, data: Bytes) {
        self.requests.prepended_data = Some(data);
    }

    /// From `decode_headers`: the request body goes on through `transform` piece
    /// by piece as it streams, without being held back (a decompressor). The
    /// later filters and the upstream see what the transform makes of it.
    pub fn transform_request_body(&mut self, transform: Box<dyn BodyTransform>) {
        self.requests.body_transform = Some(transform);
    }

    pub(crate) fn into_requests(self) -> FilterRequests {
        self.requests
    }
}

/// One filter instance, for one stream. Every callback has a default that lets
/// everything through, so a filter implements what it looks at.
pub trait StreamFilter {
    /// Request headers (plus method and URI in `parts`). `end_stream` is true when
    /// the request has no body.
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let _ = (parts, end_stream, cx);
        FilterStatus::Continue
    }

    /// A piece of the request body; `end_stream`: it is the last (the request has
    /// no trailers). May be called with empty data to carry `end_stream`. Called
    /// only when some decoder filter stopped the headers for the body (which is
    /// then read through the filters); otherwise the body streams to the upstream
    /// unseen, or through what a filter gave `StreamContext::transform_request_body`.
    fn decode_data(&mut self, data: &mut Bytes, end_stream: bool, cx: &mut StreamContext<'_>) -> DataStatus {
        let _ = (data, end_stream, cx);
        DataStatus::Continue
    }

    /// The request trailers, which end the request.
    fn decode_trailers(&mut self, trailers: &mut HeaderMap, cx: &mut StreamContext<'_>) {
        let _ = (trailers, cx);
    }

    /// Response headers (and status), including those of local replies.
    /// `end_stream`: the response has no body.
    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        let _ = (parts, end_stream, cx);
        EncodeStatus::Continue
    }

    /// A piece of the response body, as `decode_data`. Called for every piece as
    /// the body streams (the headers are already written: a `send_local_reply`
    /// or a hold over the buffer limit resets the stream), or on the whole body
    /// when an encoder filter stopped the headers for it or the body is a local
    /// reply's.
    fn encode_data(&mut self, data: &mut Bytes, end_stream: bool, cx: &mut StreamContext<'_>) -> DataStatus {
        let _ = (data, end_stream, cx);
        DataStatus::Continue
    }

    /// The response trailers, which end the response.
    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cx: &mut StreamContext<'_>) {
        let _ = (trailers, cx);
    }
}

/// Builds filter instances; one per filter in `http_filters`, shared by workers.
pub trait StreamFilterFactory: Send + Sync + Debug {
    /// A new instance for a stream on the current worker.
    fn create(&self) -> Box<dyn StreamFilter>;
}
