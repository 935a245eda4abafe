//! Runs a stream's HTTP filters (Envoy's `FilterManager`).
//!
//! The request headers go through the decoder filters in config order. A filter
//! that returns `StopIteration` holds the headers back: the stream then reads the
//! body, passing each piece through the filters up to that one and buffering it
//! where a filter asks (`StopIterationAndBuffer`), until the body is whole; the
//! later filters then see the headers and the whole body. The response goes the
//! same way through the encoder filters in reverse order. Buffered bytes are
//! bounded by the stream's buffer limit (the listener's
//! `per_connection_buffer_limit_bytes`, or what a filter set): over it, a request
//! gets Envoy's 413 (`downstream_rq_too_large`), a response Envoy's 500
//! (`rs_too_large`).
//!
//! Pieces of a body are shown to the filters only while it is buffered this way:
//! a body that no filter stopped for streams to the upstream (or the client)
//! without passing through the filters, which is how it stays unbuffered. A filter
//! that needs to see a body returns `StopIteration` from its headers callback; one
//! that only changes a request body as it streams hands the body a transform
//! (`StreamContext::transform_request_body`), which the later filters and the
//! upstream read through.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::extensions::filters::http::filter::{
    DataStatus, DecodedBody, EncodeStatus, FilterStatus, StreamContext, StreamFilter,
};
use crate::http::body::TransformableBody;
use crate::http::local_reply::LocalReply;
use crate::router::Route;
use crate::stream_info::{ResponseFlag, StreamInfo};

/// A stream's filter instances, in config order (or the first few of them: those
/// that saw the request see the reply to it).
pub(super) type Filters = [Box<dyn StreamFilter>];

/// Why the decoder filters answered the request themselves.
pub(super) struct DecodeStop {
    pub reply: Box<LocalReply>,
    /// How many filters saw the request (they see the reply on the way out).
    pub filters_run: usize,
}

/// What the stream tells the filters about itself besides headers and bodies.
pub(super) struct StreamState<'a> {
    pub route: &'a mut Option<Arc<Route>>,
    pub info: &'a mut StreamInfo,
    pub buffer_limit: &'a mut u64,
}

/// Chooses the route again for the request (after a filter cleared the route
/// cache), setting what depends on it.
pub(super) type Reroute<'a> = dyn FnMut(&http::request::Parts, &mut Option<Arc<Route>>, &mut StreamInfo) + 'a;

/// Runs the request headers (and, when a filter stops them, the body) through
/// the decoder filters. `reroute` chooses the route again after a filter cleared
/// the route cache.
pub(super) async fn decode<B: Body<Data = Bytes> + Unpin + TransformableBody>(
    filters: &mut Filters,
    state: StreamState<'_>,
    parts: &mut http::request::Parts,
    body: B,
    reroute: &mut Reroute<'_>,
) -> Result<DecodedBody<B>, Box<DecodeStop>> {
    let StreamState { route, info, buffer_limit } = state;
    let mut decoded = if body.is_end_stream() { DecodedBody::Empty } else { DecodedBody::Unread(body) };
    for i in 0..filters.len() {
        let stop = |reply| Box::new(DecodeStop { reply: Box::new(reply), filters_run: i + 1 });
        let end_stream = matches!(decoded, DecodedBody::Empty);
        let (mut status, requests) = {
            let mut cx = StreamContext::new(route.as_ref(), info, None);
            let status = filters[i].decode_headers(parts, end_stream, &mut cx);
            (status, cx.into_requests())
        };
        if let Some(limit) = requests.buffer_limit {
            *buffer_limit = limit;
        }
        if requests.clear_route_cache {
            reroute(parts, route, info);
        }
        if let Some(mut transform) = requests.body_transform {
            decoded = match decoded {
                DecodedBody::Unread(body) => DecodedBody::Unread(body.transformed(transform)),
                // Read whole for an earlier filter: transformed at once.
                DecodedBody::Buffered(data, trailers) => DecodedBody::Buffered(transform.data(data, true), trailers),
                DecodedBody::Empty => DecodedBody::Empty,
            };
        }
        let stopped = loop {
            match status {
                FilterStatus::Continue => break false,
                FilterStatus::StopIteration => break true,
                FilterStatus::LocalReply(reply) => return Err(stop(reply)),
                FilterStatus::ContinueAfter(wait) => {
                    wait.await;
                    break false;
                }
                FilterStatus::Decide(decision) => {
                    status = decision.await;
                    // While the filter waited, Envoy's filter manager buffered the
                    // body that arrived: a reply now finds the request complete.
                    if let (FilterStatus::LocalReply(_), DecodedBody::Unread(body)) = (&status, &mut decoded) {
                        skip_arrived_body(body, *buffer_limit).await;
                    }
                }
                FilterStatus::ContinueWith(edit) => {
                    edit(parts);
                    break false;
                }
            }
        };
        let env =
            Env { route: route.as_ref(), info: &mut *info, request_headers: Some(&parts.headers), held_response: None };
        decoded = match decoded {
            // The body was read whole for an earlier filter: this one sees it now.
            DecodedBody::Buffered(data, mut trailers) => {
                let mut pass = DataIteration::new(Direction::Decode, i..i + 1, u64::MAX);
                pass.whole(filters, env, data, trailers.as_mut()).map_err(|s| stop(s.into_reply(Direction::Decode)))?;
                let trailers = pass.ending(trailers);
                DecodedBody::Buffered(pass.out.freeze(), trailers)
            }
            DecodedBody::Unread(body) if stopped => {
                let (data, trailers) = buffer_request(filters, env, i, body, *buffer_limit)
                    .await
                    .map_err(|s| stop(s.into_reply(Direction::Decode)))?;
                DecodedBody::Buffered(data, trailers)
            }
            other => other,
        };
    }
    Ok(decoded)
}

/// Reads and drops what has already arrived of `body`, up to `limit` bytes,
/// without waiting for more.
async fn skip_arrived_body<B: Body<Data = Bytes> + Unpin>(body: &mut B, limit: u64) {
    let mut skipped = 0u64;
    while skipped <= limit && !body.is_end_stream() {
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *body).poll_frame(cx)));
        match polled.await {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                skipped += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            _ => break,
        }
    }
}

/// Reads the request body whole through the decoder filters `0..=stopped`.
async fn buffer_request<B: Body<Data = Bytes> + Unpin>(
    filters: &mut Filters,
    mut env: Env<'_>,
    stopped: usize,
    mut body: B,
    limit: u64,
) -> Result<(Bytes, Option<HeaderMap>), Stop> {
    // Read up to the limit before refusing, as Envoy (its 413's access log
    // counts the bytes received), not refused by a declared length.
    let mut pass = DataIteration::new(Direction::Decode, 0..stopped + 1, limit);
    loop {
        let Some(frame) = body.frame().await else {
            pass.data(filters, env.reborrow(), 0, Bytes::new(), true)?;
            let trailers = pass.ending(None);
            return Ok((pass.out.freeze(), trailers));
        };
        let frame = frame.map_err(|_| Stop::BodyError)?;
        match frame.into_data() {
            Ok(data) => {
                let end = body.is_end_stream();
                pass.data(filters, env.reborrow(), 0, data, end)?;
                if end {
                    let trailers = pass.ending(None);
                    return Ok((pass.out.freeze(), trailers));
                }
            }
            Err(frame) => {
                if let Ok(mut trailers) = frame.into_trailers() {
                    pass.trailers(filters, env.reborrow(), 0, &mut trailers)?;
                    return Ok((pass.out.freeze(), Some(trailers)));
                }
            }
        }
    }
}

/// The response through the encoder filters, in reverse config order. Not async:
/// when a filter stops the headers (`headers` returns its position), the caller
/// reads the body whole (a local reply has it at hand, an upstream body is
/// awaited) and hands it to `body`.
pub(super) struct Encoder<'s> {
    pub filters: &'s mut Filters,
    pub route: Option<&'s Arc<Route>>,
    pub info: &'s mut StreamInfo,
    pub request_headers: Option<&'s HeaderMap>,
    pub buffer_limit: u64,
    /// The body a filter gave a response that had none (see `AddedBody`).
    pub added_body: Option<AddedBody>,
}

/// What a filter's `add_data` and `add_trailers` gave a response without a body
/// from its headers callback (Envoy's `addEncodedData` / `addEncodedTrailers`
/// from `encodeHeaders` with `end_stream`): the later filters see the headers
/// with a body to come, then it.
pub(super) struct AddedBody {
    /// The chain position of the filter that added it.
    from: usize,
    data: Bytes,
    trailers: Option<HeaderMap>,
}

impl Encoder<'_> {
    /// The headers through the filter at chain position `pos`.
    fn headers_at(
        &mut self,
        pos: usize,
        parts: &mut http::response::Parts,
        end_stream: bool,
    ) -> Result<EncodeStatus, Box<LocalReply>> {
        let n = self.filters.len();
        let mut cx = StreamContext::new(self.route, &mut *self.info, self.request_headers);
        let status = self.filters[n - 1 - pos].encode_headers(parts, end_stream, &mut cx);
        let requests = cx.into_requests();
        if let Some(limit) = requests.buffer_limit {
            self.buffer_limit = limit;
        }
        let adds = requests.added_data.is_some() || requests.added_trailers.is_some();
        if end_stream && adds && self.added_body.is_none() {
            let data = requests.added_data.unwrap_or_default();
            self.added_body = Some(AddedBody { from: pos, data, trailers: requests.added_trailers });
        }
        match requests.local_reply {
            Some(reply) => Err(Box::new(reply)),
            None => Ok(status),
        }
    }

    /// The headers through the filters; `Ok(Some(pos))` when the filter at chain
    /// position `pos` stopped them for the body. A filter's local reply replaces
    /// the response. A body a filter gave a response without one
    /// (`added_body`) goes through the later filters at once: `Some` of the last
    /// position unless one of them stopped.
    pub fn headers(
        &mut self,
        parts: &mut http::response::Parts,
        mut end_stream: bool,
    ) -> Result<Option<usize>, Box<LocalReply>> {
        for pos in 0..self.filters.len() {
            let status = self.headers_at(pos, parts, end_stream)?;
            if end_stream && self.added_body.is_some() {
                end_stream = false;
                continue;
            }
            if status == EncodeStatus::StopIteration && !end_stream {
                return Ok(Some(pos));
            }
        }
        Ok(self.added_body.as_ref().map(|_| self.filters.len() - 1))
    }

    /// The whole body, after the filter at `stopped` stopped the headers: through
    /// the filters up to it (within the buffer limit), then the headers and the
    /// whole body through each of the rest. Returns the body as the filters left
    /// it, with the trailers that end it (a filter may have added them), or the
    /// reply that replaces the response (the encoder filters do not run again on
    /// it). A body a filter added to a response without one (`added_body`)
    /// replaces the (empty) `data`, from the filter after it on.
    pub fn body(
        &mut self,
        parts: &mut http::response::Parts,
        stopped: usize,
        data: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Result<(Bytes, Option<HeaderMap>), Box<LocalReply>> {
        let (from, data, mut trailers) = match self.added_body.take() {
            Some(added) => (added.from + 1, added.data, added.trailers),
            None => (0, data, trailers),
        };
        if data.len() as u64 > self.buffer_limit {
            return Err(Box::new(response_too_large_reply()));
        }
        let mut pass = DataIteration::new(Direction::Encode, from..stopped + 1, self.buffer_limit);
        let env = Env {
            route: self.route,
            info: &mut *self.info,
            request_headers: self.request_headers,
            held_response: Some(&mut *parts),
        };
        pass.whole(self.filters, env, data, trailers.as_mut())
            .map_err(|s| Box::new(s.into_reply(Direction::Encode)))?;
        trailers = pass.ending(trailers);
        let mut data = pass.out.freeze();
        for pos in stopped + 1..self.filters.len() {
            self.headers_at(pos, parts, false)?;
            let mut pass = DataIteration::new(Direction::Encode, pos..pos + 1, u64::MAX);
            let env = Env {
                route: self.route,
                info: &mut *self.info,
                request_headers: self.request_headers,
                held_response: Some(&mut *parts),
            };
            pass.whole(self.filters, env, data, trailers.as_mut())
                .map_err(|s| Box::new(s.into_reply(Direction::Encode)))?;
            trailers = pass.ending(trailers);
            data = pass.out.freeze();
        }
        Ok((data, trailers))
    }
}

/// The encoder filters on a response body that streams (none of them stopped
/// the headers): each piece goes through them as it arrives and what they let
/// through is written at once; a filter that holds data (`StopIterationAndBuffer`)
/// keeps it, within the buffer limit, until it continues or the body ends. The
/// headers are gone by then, so a filter's reply or a body over the limit can only
/// end the stream (`Err`).
pub(super) struct StreamingEncoder {
    filters: Vec<Box<dyn StreamFilter>>,
    route: Option<Arc<Route>>,
    pass: DataIteration,
}

impl StreamingEncoder {
    pub fn new(filters: Vec<Box<dyn StreamFilter>>, route: Option<Arc<Route>>, buffer_limit: u64) -> StreamingEncoder {
        let pass = DataIteration {
            streams_out: true,
            ..DataIteration::new(Direction::Encode, 0..filters.len(), buffer_limit)
        };
        StreamingEncoder { filters, route, pass }
    }

    /// `chunk` through the filters (`end`: the body ends with it); what they let
    /// through now, possibly nothing, and at the end the trailers a filter added
    /// (`add_trailers`), which then end the body instead.
    pub fn data(&mut self, info: &mut StreamInfo, chunk: Bytes, end: bool) -> Result<EncodedPiece, Box<LocalReply>> {
        let env = Env { route: self.route.as_ref(), info, request_headers: None, held_response: None };
        let start = self.pass.range.start;
        self.pass
            .data(&mut self.filters, env, start, chunk, end)
            .map_err(|s| Box::new(s.into_reply(Direction::Encode)))?;
        Ok((self.pass.out.split().freeze(), self.pass.added_trailers.take()))
    }

    /// The trailers through the filters, which end the body; the data a filter
    /// held until then.
    pub fn trailers(&mut self, info: &mut StreamInfo, trailers: &mut HeaderMap) -> Result<Bytes, Box<LocalReply>> {
        let env = Env { route: self.route.as_ref(), info, request_headers: None, held_response: None };
        let start = self.pass.range.start;
        self.pass
            .trailers(&mut self.filters, env, start, trailers)
            .map_err(|s| Box::new(s.into_reply(Direction::Encode)))?;
        Ok(self.pass.out.split().freeze())
    }
}

/// What the encoder filters let through of a streamed piece, and the trailers
/// they added at the body's end.
pub(super) type EncodedPiece = (Bytes, Option<HeaderMap>);

/// Envoy's response code details for a request body over the buffer limit.
pub(super) const REQUEST_TOO_LARGE: &str = "request_payload_too_large";

/// Envoy's response code details for a response body over the buffer limit.
pub(super) const RESPONSE_TOO_LARGE: &str = "response_payload_too_large";

/// The 500 for a response body over the buffer limit.
pub(super) fn response_too_large_reply() -> LocalReply {
    Stop::TooLarge.into_reply(Direction::Encode)
}

/// How buffering a body through the filters ended early.
#[derive(Debug)]
enum Stop {
    /// Over the stream's buffer limit.
    TooLarge,
    /// The request body was malformed.
    BodyError,
    /// A filter answered.
    LocalReply(Box<LocalReply>),
}

impl Stop {
    fn into_reply(self, dir: Direction) -> LocalReply {
        match (self, dir) {
            (Stop::LocalReply(r), _) => *r,
            (Stop::TooLarge, Direction::Decode) => {
                LocalReply::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", REQUEST_TOO_LARGE)
            }
            (Stop::TooLarge, Direction::Encode) => {
                LocalReply::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", RESPONSE_TOO_LARGE)
            }
            (Stop::BodyError, _) => LocalReply::new(StatusCode::BAD_REQUEST, "Bad Request", "request_body_error")
                .with_flag(ResponseFlag::DownstreamProtocolError),
        }
    }
}

/// Which way a body flows through the chain: decoding visits the filters in
/// config order, encoding in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Decode,
    Encode,
}

/// What a filter callback gets besides the body.
struct Env<'a> {
    route: Option<&'a Arc<Route>>,
    info: &'a mut StreamInfo,
    request_headers: Option<&'a HeaderMap>,
    /// The response headers, while the encoder filters hold them back.
    held_response: Option<&'a mut http::response::Parts>,
}

impl Env<'_> {
    fn reborrow(&mut self) -> Env<'_> {
        Env {
            route: self.route,
            info: &mut *self.info,
            request_headers: self.request_headers,
            held_response: self.held_response.as_deref_mut(),
        }
    }

    fn context(&mut self) -> StreamContext<'_> {
        StreamContext::new(self.route, &mut *self.info, self.request_headers)
            .holding_response(self.held_response.as_deref_mut())
    }
}

/// One body on its way through the positions `range` of the chain (in the order
/// `dir` visits the filters). A piece goes from filter to filter until one holds
/// it (`StopIterationAndBuffer`): it then waits in `held` with what that filter
/// held before, and goes on as one piece when the filter continues. What passes
/// the last position collects in `out`. As in Envoy there is one buffer: when a
/// filter before the holding one also holds, the buffer moves to it, and the
/// filters between see those bytes again when it continues.
struct DataIteration {
    dir: Direction,
    range: std::ops::Range<usize>,
    held: BytesMut,
    held_at: Option<usize>,
    out: BytesMut,
    /// Bound on `held` plus `out` (or on `held` alone, with `streams_out`).
    limit: u64,
    /// What passes the last position goes out at once (a streamed response):
    /// it is not buffered, so the limit leaves it alone, as Envoy's bounds only
    /// what its filter manager holds (a filter may release a body larger than
    /// the limit that it held itself, as the gRPC reverse bridge does).
    streams_out: bool,
    /// Trailers a filter added to a body that ended without (`add_trailers`),
    /// as the last position left them.
    added_trailers: Option<HeaderMap>,
}

impl DataIteration {
    fn new(dir: Direction, range: std::ops::Range<usize>, limit: u64) -> DataIteration {
        DataIteration {
            dir,
            range,
            held: BytesMut::new(),
            held_at: None,
            out: BytesMut::new(),
            limit,
            streams_out: false,
            added_trailers: None,
        }
    }

    /// The trailers that end the body: those it came with, or those a filter added.
    fn ending(&mut self, trailers: Option<HeaderMap>) -> Option<HeaderMap> {
        trailers.or_else(|| self.added_trailers.take())
    }

    fn filter<'f>(&self, filters: &'f mut Filters, pos: usize) -> &'f mut dyn StreamFilter {
        let index = match self.dir {
            Direction::Decode => pos,
            Direction::Encode => filters.len() - 1 - pos,
        };
        filters[index].as_mut()
    }

    fn check_limit(&self) -> Result<(), Stop> {
        let out = if self.streams_out { 0 } else { self.out.len() };
        if (self.held.len() + out) as u64 > self.limit {
            return Err(Stop::TooLarge);
        }
        Ok(())
    }

    /// A whole body (data, then trailers) through the range.
    fn whole(
        &mut self,
        filters: &mut Filters,
        mut env: Env<'_>,
        data: Bytes,
        trailers: Option<&mut HeaderMap>,
    ) -> Result<(), Stop> {
        let start = self.range.start;
        self.data(filters, env.reborrow(), start, data, trailers.is_none())?;
        if let Some(t) = trailers {
            self.trailers(filters, env, start, t)?;
        }
        Ok(())
    }

    /// One piece, from position `from` on; `end`: the body ends with it. A filter
    /// that adds trailers to the end (`add_trailers`) has the piece go on
    /// without the end, and the trailers after it through the later positions;
    /// they are then in `added_trailers`.
    fn data(
        &mut self,
        filters: &mut Filters,
        mut env: Env<'_>,
        from: usize,
        mut chunk: Bytes,
        mut end: bool,
    ) -> Result<(), Stop> {
        let mut pos = from;
        let mut added: Option<(usize, HeaderMap)> = None;
        let mut held = false;
        while pos < self.range.end {
            let (status, requests) = {
                let mut cx = env.context();
                let filter = self.filter(filters, pos);
                let status = match self.dir {
                    Direction::Decode => filter.decode_data(&mut chunk, end, &mut cx),
                    Direction::Encode => filter.encode_data(&mut chunk, end, &mut cx),
                };
                (status, cx.into_requests())
            };
            if let Some(reply) = requests.local_reply {
                return Err(Stop::LocalReply(Box::new(reply)));
            }
            if let Some(limit) = requests.buffer_limit {
                self.limit = limit;
            }
            // At the end of the body there is nothing more to wait for: a hold
            // lets the body through.
            if status == DataStatus::StopIterationAndBuffer && !end {
                self.held.extend_from_slice(&chunk);
                self.held_at = Some(self.held_at.map_or(pos, |at| at.min(pos)));
                held = true;
                break;
            }
            if let Some(trailers) = requests.added_trailers.filter(|_| end) {
                end = false;
                added = Some((pos, trailers));
            }
            let releases_held = self.held_at.is_some_and(|at| at <= pos);
            if let Some(front) = requests.prepended_data {
                let mut joined = BytesMut::from(&front[..]);
                if releases_held {
                    joined.extend_from_slice(&self.held.split());
                    self.held_at = None;
                }
                joined.extend_from_slice(&chunk);
                chunk = joined.freeze();
            } else if releases_held {
                self.held.extend_from_slice(&chunk);
                chunk = self.held.split().freeze();
                self.held_at = None;
            }
            pos += 1;
        }
        if !held {
            self.out.extend_from_slice(&chunk);
        }
        self.check_limit()?;
        if let Some((at, mut trailers)) = added {
            self.trailers(filters, env, at + 1, &mut trailers)?;
            self.added_trailers = Some(trailers);
        }
        Ok(())
    }

    /// The trailers, from position `from` on, which end the body: a filter
    /// holding data lets it go on once it has seen them.
    fn trailers(
        &mut self,
        filters: &mut Filters,
        mut env: Env<'_>,
        from: usize,
        trailers: &mut HeaderMap,
    ) -> Result<(), Stop> {
        for pos in from..self.range.end {
            let requests = {
                let mut cx = env.context();
                let filter = self.filter(filters, pos);
                match self.dir {
                    Direction::Decode => filter.decode_trailers(trailers, &mut cx),
                    Direction::Encode => filter.encode_trailers(trailers, &mut cx),
                }
                cx.into_requests()
            };
            if let Some(reply) = requests.local_reply {
                return Err(Stop::LocalReply(Box::new(reply)));
            }
            if self.held_at == Some(pos) {
                self.held_at = None;
                let held = self.held.split().freeze();
                self.data(filters, env.reborrow(), pos + 1, held, false)?;
            }
            if let Some(added) = requests.added_data {
                self.data(filters, env.reborrow(), pos + 1, added, false)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    use hyper::body::Frame;

    use super::*;

    type Log = Rc<RefCell<Vec<String>>>;

    /// A filter that logs each call and does what its flags say.
    #[derive(Default)]
    struct Probe {
        name: &'static str,
        log: Log,
        /// At the end of a body without trailers (or of a response without a
        /// body: with a body `x`), adds the trailer `t: <name>`.
        add_trailers: bool,
        stop_headers: bool,
        buffer_until_end: bool,
        uppercase: bool,
        reply_on_data: bool,
        clear_route: bool,
        limit: Option<u64>,
        /// Hands the body a transform that numbers each piece it sees.
        transform: bool,
    }

    /// Marks each piece `[n:piece]`, and the end `[end]`.
    #[derive(Default)]
    struct Numbering(usize);

    impl crate::http::body::BodyTransform for Numbering {
        fn data(&mut self, data: Bytes, end: bool) -> Bytes {
            self.0 += 1;
            let end = if end { "[end]" } else { "" };
            Bytes::from(format!("[{}:{}]{end}", self.0, String::from_utf8_lossy(&data)))
        }
    }

    impl Probe {
        fn boxed(name: &'static str, log: &Log, set: impl FnOnce(&mut Probe)) -> Box<dyn StreamFilter> {
            let mut p = Probe { name, log: log.clone(), ..Default::default() };
            set(&mut p);
            Box::new(p)
        }

        fn note(&self, what: String) {
            self.log.borrow_mut().push(format!("{}:{what}", self.name));
        }

        fn data(&mut self, data: &mut Bytes, end: bool, cx: &mut StreamContext<'_>, dir: &str) -> DataStatus {
            self.note(format!("{dir}_data({},{end})", String::from_utf8_lossy(data)));
            if self.reply_on_data {
                cx.send_local_reply(LocalReply::new(StatusCode::FORBIDDEN, "no", "probe"));
            }
            if self.uppercase {
                *data = Bytes::from(data.to_ascii_uppercase());
            }
            if self.add_trailers && end {
                cx.add_trailers().insert("t", http::HeaderValue::from_static(self.name));
            }
            if self.buffer_until_end && !end {
                DataStatus::StopIterationAndBuffer
            } else {
                DataStatus::Continue
            }
        }
    }

    impl StreamFilter for Probe {
        fn decode_headers(
            &mut self,
            _: &mut http::request::Parts,
            end: bool,
            cx: &mut StreamContext<'_>,
        ) -> FilterStatus {
            self.note(format!("decode_headers({end})"));
            if self.transform {
                cx.transform_request_body(Box::<Numbering>::default());
            }
            if let Some(limit) = self.limit {
                cx.set_buffer_limit(limit);
            }
            if self.clear_route {
                cx.clear_route_cache();
            }
            if self.stop_headers {
                FilterStatus::StopIteration
            } else {
                FilterStatus::Continue
            }
        }

        fn decode_data(&mut self, data: &mut Bytes, end: bool, cx: &mut StreamContext<'_>) -> DataStatus {
            self.data(data, end, cx, "decode")
        }

        fn decode_trailers(&mut self, trailers: &mut HeaderMap, _: &mut StreamContext<'_>) {
            self.note(format!("decode_trailers({})", trailers.len()));
        }

        fn encode_headers(
            &mut self,
            _: &mut http::response::Parts,
            end: bool,
            cx: &mut StreamContext<'_>,
        ) -> EncodeStatus {
            self.note(format!("encode_headers({end})"));
            if self.add_trailers && end {
                cx.add_data(Bytes::from_static(b"x"));
                cx.add_trailers().insert("t", http::HeaderValue::from_static(self.name));
            }
            if self.stop_headers {
                EncodeStatus::StopIteration
            } else {
                EncodeStatus::Continue
            }
        }

        fn encode_data(&mut self, data: &mut Bytes, end: bool, cx: &mut StreamContext<'_>) -> DataStatus {
            self.data(data, end, cx, "encode")
        }

        fn encode_trailers(&mut self, trailers: &mut HeaderMap, _: &mut StreamContext<'_>) {
            self.note(format!("encode_trailers({})", trailers.len()));
        }
    }

    /// A request body of the given frames.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// Transformed at once: the test bodies are at hand.
    impl TransformableBody for Frames {
        fn transformed(self, mut transform: Box<dyn crate::http::body::BodyTransform>) -> Frames {
            let last_data = self.0.iter().rposition(|f| f.is_data());
            let mut out = VecDeque::new();
            for (i, frame) in self.0.into_iter().enumerate() {
                match frame.into_data() {
                    Ok(data) => out.push_back(Frame::data(transform.data(data, Some(i) == last_data))),
                    Err(other) => out.push_back(other),
                }
            }
            Frames(out)
        }
    }

    fn body(pieces: &[&'static str], trailers: bool) -> Frames {
        let mut frames: VecDeque<_> = pieces.iter().map(|p| Frame::data(Bytes::from_static(p.as_bytes()))).collect();
        if trailers {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", http::HeaderValue::from_static("0"));
            frames.push_back(Frame::trailers(t));
        }
        Frames(frames)
    }

    fn info() -> StreamInfo {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        StreamInfo::new(addr, addr, "HTTP/1.1")
    }

    /// Runs `decode` to completion (the test bodies never wait).
    fn run_decode(
        filters: &mut Filters,
        body: Frames,
        limit: u64,
        reroutes: &mut usize,
    ) -> Result<DecodedBody<Frames>, Box<DecodeStop>> {
        let mut route = None;
        let mut info = info();
        let mut limit = limit;
        let mut parts = http::Request::new(()).into_parts().0;
        let mut reroute = |_: &http::request::Parts, _: &mut Option<Arc<Route>>, _: &mut StreamInfo| *reroutes += 1;
        let state = StreamState { route: &mut route, info: &mut info, buffer_limit: &mut limit };
        let fut = decode(filters, state, &mut parts, body, &mut reroute);
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        match std::future::Future::poll(fut.as_mut(), &mut Context::from_waker(waker)) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("the test body never waits"),
        }
    }

    fn log_of(log: &Log) -> Vec<String> {
        std::mem::take(&mut *log.borrow_mut())
    }

    #[test]
    fn a_stopping_filter_sees_the_body_in_pieces_and_the_next_sees_it_whole() {
        let log = Log::default();
        let mut filters = vec![
            Probe::boxed("a", &log, |p| {
                p.stop_headers = true;
                p.buffer_until_end = true;
            }),
            Probe::boxed("b", &log, |_| {}),
        ];
        let decoded = run_decode(&mut filters, body(&["ab", "cd"], false), 100, &mut 0);
        let Ok(DecodedBody::Buffered(data, None)) = decoded else { panic!("buffered") };
        assert_eq!(&data[..], b"abcd");
        assert_eq!(
            log_of(&log),
            [
                "a:decode_headers(false)",
                "a:decode_data(ab,false)",
                "a:decode_data(cd,true)",
                "b:decode_headers(false)",
                "b:decode_data(abcd,true)"
            ]
        );
    }

    #[test]
    fn a_transform_changes_a_streaming_body_without_holding_it() {
        let log = Log::default();
        let mut filters = vec![Probe::boxed("a", &log, |p| p.transform = true), Probe::boxed("b", &log, |_| {})];
        let Ok(DecodedBody::Unread(Frames(frames))) = run_decode(&mut filters, body(&["ab", "cd"], false), 100, &mut 0)
        else {
            panic!("unread")
        };
        let data: Vec<_> = frames.iter().filter_map(|f| f.data_ref().cloned()).collect();
        assert_eq!(data, ["[1:ab]", "[2:cd][end]"]);
        // Nobody stopped for the body: no filter saw its pieces.
        assert_eq!(log_of(&log), ["a:decode_headers(false)", "b:decode_headers(false)"]);
    }

    #[test]
    fn a_later_stopping_filter_sees_the_transformed_body_and_an_earlier_one_the_original() {
        let log = Log::default();
        let mut filters = vec![
            Probe::boxed("a", &log, |p| {
                p.stop_headers = true;
                p.buffer_until_end = true;
            }),
            Probe::boxed("b", &log, |p| p.transform = true),
            Probe::boxed("c", &log, |p| {
                p.stop_headers = true;
                p.buffer_until_end = true;
            }),
        ];
        let Ok(DecodedBody::Buffered(data, None)) = run_decode(&mut filters, body(&["ab", "cd"], false), 100, &mut 0)
        else {
            panic!("buffered")
        };
        // `a` read the body whole before `b` saw the headers: `b`'s transform gets it in one piece.
        assert_eq!(&data[..], b"[1:abcd][end]");
        assert!(log_of(&log).contains(&"c:decode_data([1:abcd][end],true)".to_string()));
    }

    #[test]
    fn what_a_filter_changes_is_what_the_next_sees() {
        let log = Log::default();
        let mut filters = vec![
            Probe::boxed("a", &log, |p| {
                p.stop_headers = true;
                p.uppercase = true;
            }),
            Probe::boxed("b", &log, |p| p.buffer_until_end = true),
        ];
        let Ok(DecodedBody::Buffered(data, None)) = run_decode(&mut filters, body(&["ab", "cd"], false), 100, &mut 0)
        else {
            panic!("buffered")
        };
        assert_eq!(&data[..], b"ABCD");
        assert!(log_of(&log).contains(&"b:decode_data(ABCD,true)".to_string()));
    }

    #[test]
    fn trailers_end_the_body_and_release_what_was_held() {
        let log = Log::default();
        let mut filters = vec![
            Probe::boxed("a", &log, |p| {
                p.stop_headers = true;
                p.buffer_until_end = true;
            }),
            Probe::boxed("b", &log, |_| {}),
        ];
        let Ok(DecodedBody::Buffered(data, Some(trailers))) =
            run_decode(&mut filters, body(&["ab"], true), 100, &mut 0)
        else {
            panic!("buffered with trailers")
        };
        assert_eq!((&data[..], trailers.len()), (&b"ab"[..], 1));
        assert_eq!(
            log_of(&log),
            [
                "a:decode_headers(false)",
                "a:decode_data(ab,false)",
                "a:decode_trailers(1)",
                "b:decode_headers(false)",
                "b:decode_data(ab,false)",
                "b:decode_trailers(1)"
            ]
        );
    }

    #[test]
    fn a_body_over_the_limit_a_filter_set_is_a_413() {
        let log = Log::default();
        let mut filters = vec![
            Probe::boxed("a", &log, |p| {
                p.stop_headers = true;
                p.buffer_until_end = true;
                p.limit = Some(3);
            }),
            Probe::boxed("b", &log, |_| {}),
        ];
        let Err(stop) = run_decode(&mut filters, body(&["ab", "cd"], false), 100, &mut 0) else { panic!("413") };
        assert_eq!(
            (stop.reply.status, stop.reply.details, stop.filters_run),
            (StatusCode::PAYLOAD_TOO_LARGE, "request_payload_too_large", 1)
        );
        assert!(!log_of(&log).iter().any(|l| l.starts_with("b:")), "the next filter never saw the request");
    }

    #[test]
    fn a_local_reply_from_a_body_callback_answers_the_request() {
        let log = Log::default();
        let mut filters = vec![Probe::boxed("a", &log, |p| {
            p.stop_headers = true;
            p.reply_on_data = true;
        })];
        let Err(stop) = run_decode(&mut filters, body(&["ab"], false), 100, &mut 0) else { panic!("reply") };
        assert_eq!(stop.reply.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn without_a_stop_the_body_streams_unread_and_the_route_cache_can_be_cleared() {
        let log = Log::default();
        let mut filters = vec![Probe::boxed("a", &log, |p| p.clear_route = true), Probe::boxed("b", &log, |_| {})];
        let mut reroutes = 0;
        let decoded = run_decode(&mut filters, body(&["ab"], false), 100, &mut reroutes);
        assert!(matches!(decoded, Ok(DecodedBody::Unread(_))));
        assert_eq!(log_of(&log), ["a:decode_headers(false)", "b:decode_headers(false)"]);
        assert_eq!(reroutes, 1);
        // No body: `StopIteration` is `Continue`.
        let mut filters = vec![Probe::boxed("a", &log, |p| p.stop_headers = true), Probe::boxed("b", &log, |_| {})];
        assert!(matches!(run_decode(&mut filters, body(&[], false), 100, &mut 0), Ok(DecodedBody::Empty)));
        assert_eq!(log_of(&log), ["a:decode_headers(true)", "b:decode_headers(true)"]);
    }

    fn encoder<'s>(filters: &'s mut Filters, info: &'s mut StreamInfo, limit: u64) -> Encoder<'s> {
        Encoder { filters, route: None, info, request_headers: None, buffer_limit: limit, added_body: None }
    }

    #[test]
    fn encoder_filters_run_in_reverse_and_see_a_stopped_body_whole() {
        let log = Log::default();
        let mut filters = vec![
            Probe::boxed("a", &log, |p| p.uppercase = true),
            Probe::boxed("b", &log, |p| {
                p.stop_headers = true;
                p.buffer_until_end = true;
            }),
        ];
        let mut info = info();
        let mut enc = encoder(&mut filters, &mut info, 100);
        let mut parts = http::Response::new(()).into_parts().0;
        let stopped = enc.headers(&mut parts, false).expect("no reply");
        assert_eq!(stopped, Some(0), "b, the last filter, encodes first");
        let (data, _) = enc.body(&mut parts, 0, Bytes::from_static(b"xy"), None).expect("fits");
        assert_eq!(&data[..], b"XY");
        assert_eq!(
            log_of(&log),
            ["b:encode_headers(false)", "b:encode_data(xy,true)", "a:encode_headers(false)", "a:encode_data(xy,true)"]
        );
    }

    #[test]
    fn a_response_body_over_the_limit_is_a_500() {
        let log = Log::default();
        let mut filters = vec![Probe::boxed("a", &log, |p| p.stop_headers = true)];
        let mut info = info();
        let mut enc = encoder(&mut filters, &mut info, 1);
        let mut parts = http::Response::new(()).into_parts().0;
        assert_eq!(enc.headers(&mut parts, false).expect("no reply"), Some(0));
        let reply = enc.body(&mut parts, 0, Bytes::from_static(b"xy"), None).expect_err("over the limit");
        assert_eq!((reply.status, reply.details), (StatusCode::INTERNAL_SERVER_ERROR, RESPONSE_TOO_LARGE));
    }

    /// A streamed response body goes through the encoder filters piece by piece,
    /// last filter first; a filter that holds data releases it all at the end.
    #[test]
    fn a_streamed_response_body_goes_through_the_filters_piece_by_piece() {
        let log = Log::default();
        let filters = vec![
            Probe::boxed("a", &log, |p| p.uppercase = true),
            Probe::boxed("b", &log, |p| p.buffer_until_end = true),
        ];
        let mut info = info();
        let mut enc = StreamingEncoder::new(filters, None, 1024);
        assert_eq!(enc.data(&mut info, Bytes::from_static(b"ab"), false).expect("passes").0, "");
        assert_eq!(enc.data(&mut info, Bytes::from_static(b"cd"), false).expect("passes").0, "");
        assert_eq!(enc.data(&mut info, Bytes::new(), true).expect("passes").0, "ABCD");
        assert_eq!(
            *log.borrow(),
            ["b:encode_data(ab,false)", "b:encode_data(cd,false)", "b:encode_data(,true)", "a:encode_data(abcd,true)"]
        );

        let log = Log::default();
        let filters = vec![Probe::boxed("a", &log, |p| p.uppercase = true)];
        let mut enc = StreamingEncoder::new(filters, None, 1024);
        assert_eq!(enc.data(&mut info, Bytes::from_static(b"ab"), false).expect("passes").0, "AB");
        let mut trailers = HeaderMap::new();
        assert_eq!(enc.trailers(&mut info, &mut trailers).expect("passes"), "");
    }

    /// Envoy's `addEncodedTrailers`: the later filters see the end without
    /// `end_stream`, then the trailers; the stream ends with them.
    #[test]
    fn trailers_a_filter_adds_at_the_end_go_through_the_later_filters() {
        let log = Log::default();
        let filters = vec![
            Probe::boxed("a", &log, |p| p.buffer_until_end = true),
            Probe::boxed("b", &log, |p| p.add_trailers = true),
        ];
        let mut info = info();
        let mut enc = StreamingEncoder::new(filters, None, 1024);
        assert_eq!(enc.data(&mut info, Bytes::from_static(b"ab"), false).expect("passes").0, "");
        let (data, trailers) = enc.data(&mut info, Bytes::from_static(b"cd"), true).expect("passes");
        assert_eq!((&data[..], trailers.expect("added")["t"].as_bytes()), (&b"abcd"[..], &b"b"[..]));
        assert_eq!(
            log_of(&log),
            [
                "b:encode_data(ab,false)",
                "a:encode_data(ab,false)",
                "b:encode_data(cd,true)",
                "a:encode_data(cd,false)",
                "a:encode_trailers(1)"
            ]
        );
    }

    /// From the headers of a response without a body, Envoy's `addEncodedData`
    /// and `addEncodedTrailers` give it one, which only the later filters see.
    #[test]
    fn a_body_added_to_a_response_without_one_goes_through_the_later_filters() {
        let log = Log::default();
        let mut filters =
            vec![Probe::boxed("a", &log, |p| p.uppercase = true), Probe::boxed("b", &log, |p| p.add_trailers = true)];
        let mut info = info();
        let mut enc = encoder(&mut filters, &mut info, 100);
        let mut parts = http::Response::new(()).into_parts().0;
        let stopped = enc.headers(&mut parts, true).expect("no reply");
        assert_eq!(stopped, Some(1), "the added body goes through the rest at once");
        let (data, trailers) = enc.body(&mut parts, 1, Bytes::new(), None).expect("fits");
        assert_eq!((&data[..], trailers.expect("added")["t"].as_bytes()), (&b"X"[..], &b"b"[..]));
        assert_eq!(
            log_of(&log),
            ["b:encode_headers(true)", "a:encode_headers(false)", "a:encode_data(x,false)", "a:encode_trailers(1)"]
        );
    }

    /// A streamed piece larger than the limit that no filter holds goes out.
    #[test]
    fn a_streamed_piece_over_the_limit_passes_when_nothing_holds_it() {
        let log = Log::default();
        let filters = vec![Probe::boxed("a", &log, |p| p.uppercase = true)];
        let mut info = info();
        let mut enc = StreamingEncoder::new(filters, None, 3);
        assert_eq!(enc.data(&mut info, Bytes::from_static(b"abcdef"), true).expect("passes").0, "ABCDEF");
    }

    /// Held data over the buffer limit after the headers went out: the reply says
    /// why, and the caller resets the stream.
    #[test]
    fn a_streamed_response_held_over_the_limit_fails() {
        let log = Log::default();
        let filters = vec![Probe::boxed("a", &log, |p| p.buffer_until_end = true)];
        let mut info = info();
        let mut enc = StreamingEncoder::new(filters, None, 3);
        assert_eq!(enc.data(&mut info, Bytes::from_static(b"ab"), false).expect("held").0, "");
        let reply = enc.data(&mut info, Bytes::from_static(b"cd"), false).expect_err("over the limit");
        assert_eq!(reply.details, RESPONSE_TOO_LARGE);
    }
}
