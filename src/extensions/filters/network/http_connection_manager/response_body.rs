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

use super::filter_manager::EncodedPiece;
use crate::http::http1::client_connection::BodyFailure;
use crate::upstream::conn_pool::UpstreamResponseBody;
use crate::upstream::http1_conn_pool::{Http1ResponseBody, UpstreamBodyError};
use crate::upstream::http2_conn_pool::Http2ResponseBody;

/// Runs once when a stream is over; see `ResponseBody`.
/// Which side ended an upgraded stream's tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// The client (Envoy's `DC`).
    Client,
    /// The upstream.
    Upstream,
    /// Nothing moved for `stream_idle_timeout` (Envoy's `SI`).
    Idle,
    /// HTTP/2: the client reset the stream (Envoy's `DR`).
    StreamReset,
    /// HTTP/2: the upstream closed, so the stream was reset (Envoy's `UC`).
    UpstreamReset,
}

pub trait StreamCompletion {
    /// `bytes_sent`: response body bytes written; `complete`: the body ended
    /// normally (false: the downstream went away or the upstream failed midway).
    fn finish(self: Box<Self>, bytes_sent: u64, trailers: Option<&HeaderMap>, complete: bool);

    /// The client went away before its request was whole: no response was
    /// sent (Envoy's downstream reset, `DC`); the stream is not counted as
    /// completed.
    fn downstream_reset(self: Box<Self>);

    /// An upgraded stream's tunnel ended (`sent`: its bytes to the client), as
    /// `end` says.
    fn finish_tunnel(self: Box<Self>, sent: u64, end: TunnelEnd) {
        let _ = end;
        self.finish(sent, None, true);
    }

    /// Whether the stream's encoder filters see its body as it streams (it has
    /// some, and none of them read the body whole).
    fn encodes_body(&self) -> bool {
        false
    }

    /// A piece of the body through the encoder filters (`end_stream`: the last):
    /// what they let through now, possibly nothing, and at the end the trailers
    /// a filter added, which then end the body.
    fn encode_data(&mut self, data: Bytes, end_stream: bool) -> Result<EncodedPiece, EncodeAborted> {
        let _ = end_stream;
        Ok((data, None))
    }

    /// The trailers through the encoder filters, which end the body: the data a
    /// filter held until then.
    fn encode_trailers(&mut self, trailers: &mut HeaderMap) -> Result<Bytes, EncodeAborted> {
        let _ = trailers;
        Ok(Bytes::new())
    }
}

/// An encoder filter ended a streaming response after its headers went out (its
/// own reply, or a body held over the buffer limit): the stream is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeAborted;

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
    /// The encoder filters see each piece of an upstream body (`encodes_body`).
    filtered: bool,
    /// With `filtered`: the filters have seen the body's end.
    filters_ended: bool,
    /// With `filtered`: trailers that wait while data a filter released at them
    /// goes out first.
    pending_trailers: Option<Box<HeaderMap>>,
    /// A local body whose length is not told (`local_unsized`).
    unsized_local: bool,
}

impl ResponseBody {
    /// A body Courier made itself.
    pub fn local(bytes: Bytes, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let source = Source::Local((!bytes.is_empty()).then_some(bytes));
        ResponseBody::new(source, completion)
    }

    /// A body Courier made whose length is not declared: the codec frames it as
    /// it streams (chunked on HTTP/1).
    pub fn local_unsized(bytes: Bytes, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let mut body = ResponseBody::local(bytes, completion);
        body.unsized_local = true;
        body
    }

    /// A body the encoder filters buffered whole.
    pub fn buffered(data: Bytes, trailers: Option<HeaderMap>, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let source = Source::Buffered((!data.is_empty()).then_some(data), trailers.map(Box::new));
        ResponseBody::new(source, completion)
    }

    /// An upstream response body; its connection returns to the pool when the
    /// body ends.
    pub fn upstream(body: UpstreamResponseBody, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let source = match body {
            UpstreamResponseBody::Http1(b) => Source::Upstream(b),
            UpstreamResponseBody::Http2(b) => Source::Upstream2(b),
        };
        ResponseBody::new(source, completion)
    }

    fn new(source: Source, completion: Box<dyn StreamCompletion>) -> ResponseBody {
        let filtered = matches!(source, Source::Upstream(_) | Source::Upstream2(_)) && completion.encodes_body();
        ResponseBody {
            source,
            sent: 0,
            trailers: None,
            completion: Some(completion),
            filtered,
            filters_ended: false,
            pending_trailers: None,
            unsized_local: false,
        }
    }

    /// After an upstream's 101 to an upgrade: its connection, for a tunnel, and
    /// the stream's completion, which the tunnel's end calls (as Envoy logs an
    /// upgraded stream when it closes).
    pub fn take_upgraded(
        &mut self,
    ) -> Option<(crate::upstream::http1_conn_pool::UpgradedUpstream, Box<dyn StreamCompletion>)> {
        let Source::Upstream(b) = &mut self.source else { return None };
        let upgraded = b.take_upgraded()?;
        Some((upgraded, self.completion.take()?))
    }

    /// A local reply's body (not an upstream's).
    pub fn is_local(&self) -> bool {
        matches!(self.source, Source::Local(_))
    }

    /// An upstream's answer other than 101 to an extended CONNECT's upgrade:
    /// Envoy sends its head alone, so the body is not sent; the stream ends
    /// complete, with nothing sent.
    pub fn discard_unswitched(mut self) {
        self.finish(true);
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
        let polled = if this.filtered { this.poll_filtered(cx) } else { this.source.poll(cx) };
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
        // The filters may still have data to release at the end.
        self.source.ended() && (!self.filtered || (self.filters_ended && self.pending_trailers.is_none()))
    }

    fn size_hint(&self) -> SizeHint {
        if self.filtered || self.unsized_local {
            // The filters may change the length (a compressor): it is not known.
            return SizeHint::default();
        }
        match &self.source {
            Source::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Source::Local(None) => SizeHint::with_exact(0),
            Source::Buffered(b, _) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Source::Upstream(body) => body.size_hint(),
            Source::Upstream2(body) => body.size_hint(),
        }
    }
}

type Polled = Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>>;

impl Source {
    fn poll(&mut self, cx: &mut Context<'_>) -> Polled {
        match self {
            Source::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Source::Buffered(data, trailers) => Poll::Ready(match data.take() {
                Some(b) => Some(Ok(Frame::data(b))),
                None => trailers.take().map(|t| Ok(Frame::trailers(*t))),
            }),
            Source::Upstream(body) => Pin::new(body).poll_frame(cx),
            Source::Upstream2(body) => Pin::new(body).poll_frame(cx),
        }
    }

    /// Nothing more to poll.
    fn ended(&self) -> bool {
        match self {
            Source::Local(b) => b.is_none(),
            Source::Buffered(b, t) => b.is_none() && t.is_none(),
            Source::Upstream(body) => body.is_end_stream(),
            Source::Upstream2(body) => body.is_end_stream(),
        }
    }
}

impl ResponseBody {
    /// The upstream body through the encoder filters, piece by piece: a piece
    /// they hold is not written (the source is polled again), data they release
    /// at the end or at the trailers goes out before the end or the trailers.
    fn poll_filtered(&mut self, cx: &mut Context<'_>) -> Polled {
        let aborted = || Poll::Ready(Some(Err(UpstreamBodyError(BodyFailure::Reset))));
        if let Some(t) = self.pending_trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(*t))));
        }
        let ResponseBody { source, completion, filters_ended, pending_trailers, .. } = self;
        let Some(completion) = completion.as_mut() else { return source.poll(cx) };
        loop {
            if *filters_ended {
                return Poll::Ready(None);
            }
            let frame = match std::task::ready!(source.poll(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    *filters_ended = true;
                    match completion.encode_data(Bytes::new(), true) {
                        Ok(piece) => return Poll::Ready(ended_with(piece, pending_trailers)),
                        Err(EncodeAborted) => return aborted(),
                    }
                }
            };
            let frame = match frame.into_data() {
                Ok(data) => {
                    let end = source.ended();
                    *filters_ended = end;
                    match completion.encode_data(data, end) {
                        // Never an empty data frame: HTTP/1 chunking would read it as the end.
                        Ok((data, _)) if data.is_empty() && !end => continue,
                        Ok(piece) if end => return Poll::Ready(ended_with(piece, pending_trailers)),
                        Ok((data, _)) => Frame::data(data),
                        Err(EncodeAborted) => return aborted(),
                    }
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(mut trailers) => {
                        *filters_ended = true;
                        match completion.encode_trailers(&mut trailers) {
                            Ok(held) if held.is_empty() => Frame::trailers(trailers),
                            Ok(held) => {
                                *pending_trailers = Some(Box::new(trailers));
                                Frame::data(held)
                            }
                            Err(EncodeAborted) => return aborted(),
                        }
                    }
                    Err(_) => continue,
                },
            };
            return Poll::Ready(Some(Ok(frame)));
        }
    }
}

/// The frame for the last piece the encoder filters let through: its data
/// (then the trailers a filter added, kept in `pending`), or those trailers, or
/// the end.
fn ended_with(
    (data, added): EncodedPiece,
    pending: &mut Option<Box<HeaderMap>>,
) -> Option<Result<Frame<Bytes>, UpstreamBodyError>> {
    match (data.is_empty(), added) {
        (true, None) => None,
        (true, Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
        (false, added) => {
            *pending = added.map(Box::new);
            Some(Ok(Frame::data(data)))
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An empty body needs no polling (HEAD responses, 204s): that is complete
        // (and the upstream body gives its connection back when dropped).
        let complete = self.source.ended();
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
