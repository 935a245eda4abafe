//! The upstream side of the HTTP/1.1 codec (Envoy's `ClientConnectionImpl`): one
//! request written onto a pooled connection, its response head parsed, its body
//! decoded as the downstream writer asks for it.
//!
//! The stream's own task drives the connection; there is no connection task and
//! no channel between them, so a request costs its four syscalls (write, read
//! here; read, write downstream) and no extra wake-ups. A request head and a body
//! already whole go out in one write. Response header values are slices of the
//! read buffer, not copies.
//!
//! Framing follows RFC 9112 §6.3 as Envoy applies it: no body for a HEAD request,
//! 1xx, 204 or 304; `Transfer-Encoding: chunked`; `Content-Length`; otherwise the
//! body runs until the upstream closes. A response with both `Content-Length` and
//! `Transfer-Encoding`, differing lengths, an unknown transfer coding or a head over
//! the limit is a protocol error, as request smuggling starts there.

use std::io;
use std::pin::pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::body_decoder::{BodyDecoder, BodyFraming, Decoded};
use super::CodecError;
use crate::network::transport::{ReadReady, Transport, TransportStream};

/// Errors of a request body on its way upstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body sent upstream. Worker-local (not `Send`): a streamed body
/// reads from the downstream connection of the same worker.
pub type UpstreamBody = std::pin::Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = BoxError>>>;

/// Longest response head accepted (Envoy's default `max_response_headers_kb`, 60 KiB).
const MAX_HEAD: usize = 60 * 1024;
/// Most response headers accepted (Envoy's default `max_headers_count`).
const MAX_HEADERS: usize = 100;
/// Header slots tried first.
const FEW_HEADERS: usize = 24;
/// Read buffer growth step while reading a response head.
const READ_CHUNK: usize = 8 * 1024;
/// Read buffer growth step while reading a body: a large body comes in a few large
/// reads, whose frames are large enough to be written downstream without a copy.
/// Given up once the body is read (a pooled connection keeps a small buffer).
const BODY_READ_CHUNK: usize = 64 * 1024;
/// Body frames up to this size are copied next to their chunk framing, so a frame
/// is one write.
const COPY_MAX: usize = 16 * 1024;

/// How a request failed before its response head was whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFailure {
    /// The connection closed or failed before a byte of the response arrived; on
    /// a reused connection, likely the upstream closing it while it was idle.
    ClosedBeforeResponse,
    /// The connection closed or failed in the middle of the response head.
    Reset,
    /// The response head is not valid HTTP/1.1.
    Protocol,
    /// The request body from downstream failed on its way up (the downstream's
    /// fault, e.g. a bad chunk), with the codec's reason.
    RequestBody(CodecError),
}

/// How a response body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// The upstream closed or reset the connection before the body was whole.
    Reset,
    /// The body's framing is invalid (a bad chunk).
    Protocol,
}

/// A header that replaces the router's headers of its name for one try.
pub type HeaderOverride = (HeaderName, HeaderValue);

/// A request as it goes upstream: the router's request line and headers, with
/// per-try overrides that replace same-named headers.
pub struct RequestOut<'a> {
    pub method: &'a Method,
    /// Origin-form target (path and query).
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    /// `None` slots are skipped (a fixed set of optional overrides needs no list).
    pub overrides: &'a [Option<HeaderOverride>],
}

/// What follows the request head.
pub enum BodyOut {
    /// A body already whole (possibly empty), written with the head.
    Whole(Bytes),
    /// A body streamed frame by frame as it arrives from downstream.
    Streaming(UpstreamBody),
}

/// A parsed response head.
pub struct ResponseHead {
    pub parts: http::response::Parts,
    pub framing: BodyFraming,
    /// The connection may carry another request after this response's body.
    pub reusable: bool,
}

/// One upstream HTTP/1.1 connection.
pub struct ClientConnection {
    io: TransportStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request head (and a small body) being written; kept for reuse.
    out: BytesMut,
}

impl ClientConnection {
    /// After a 101: the transport, and what the upstream sent past the response
    /// head (the new protocol's first bytes).
    pub fn upgraded(&mut self) -> (&mut TransportStream, BytesMut) {
        (&mut self.io, self.buf.split())
    }

    pub fn new(io: TransportStream) -> ClientConnection {
        ClientConnection { io, buf: BytesMut::new(), out: BytesMut::new() }
    }

    /// True when the upstream closed (or wrote to) this connection while it sat
    /// idle; checks readiness the reactor already saw, without a syscall unless
    /// something arrived.
    pub fn closed_while_idle(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            // EOF, an error, or bytes nobody asked for: not reusable.
            // Pending: nothing for a reader after all (the readiness was stale, or
            // a TLS record carried no data).
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                std::pin::Pin::new(&mut self.io).poll_read(&mut cx, &mut ReadBuf::new(&mut probe)).is_ready()
            }
        }
    }

    /// Sends `request` with `body` and reads the response head. A response that
    /// arrives before a streamed body is sent whole ends the sending; the
    /// connection is then not reused.
    pub async fn send(&mut self, request: &RequestOut<'_>, body: BodyOut) -> Result<ResponseHead, RequestFailure> {
        self.buf.clear();
        let chunked = encode_head(&mut self.out, request, &body);
        let head_only = *request.method == Method::HEAD;
        match body {
            BodyOut::Whole(data) => {
                if chunked {
                    put_chunk(&mut self.out, &data);
                    self.out.put_slice(b"0\r\n\r\n");
                } else {
                    self.out.put_slice(&data);
                }
                if write_out(&mut self.io, &mut self.out).await.is_err() {
                    return Err(RequestFailure::ClosedBeforeResponse);
                }
                read_head(&mut self.io, &mut self.buf, head_only).await
            }
            BodyOut::Streaming(body) => self.send_streaming(body, chunked, head_only).await,
        }
    }

    async fn send_streaming(
        &mut self,
        body: UpstreamBody,
        chunked: bool,
        head_only: bool,
    ) -> Result<ResponseHead, RequestFailure> {
        let ClientConnection { io, buf, out } = self;
        let (mut rd, mut wr) = io.split();
        let mut sending = pin!(write_body(&mut wr, out, body, chunked));
        let mut sent = false;
        loop {
            tokio::select! {
                r = &mut sending, if !sent => {
                    r?;
                    sent = true;
                }
                head = read_head(&mut rd, buf, head_only) => {
                    let mut head = head?;
                    head.reusable &= sent;
                    return Ok(head);
                }
            }
        }
    }

    /// The next piece of the response body, reading as needed; `None` at its end.
    pub fn poll_body(
        &mut self,
        decoder: &mut BodyDecoder,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyFailure>>> {
        loop {
            match decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                // Trailers are not kept upstream (a cluster's enable_trailers is
                // not supported), so none come; were they, the body is whole.
                Ok(Decoded::Done | Decoded::Trailers(_)) => {
                    if self.buf.is_empty() && self.buf.capacity() > READ_CHUNK {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Ready(None);
                }
                Err(_) => return Poll::Ready(Some(Err(BodyFailure::Protocol))),
                Ok(Decoded::NeedMore) => {}
            }
            match ready!(poll_fill(&mut self.io, &mut self.buf, BODY_READ_CHUNK, cx)) {
                Ok(0) => {
                    let eof = CodecError::bad_request("upstream_reset");
                    if decoder.on_eof(eof).is_err() {
                        return Poll::Ready(Some(Err(BodyFailure::Reset)));
                    }
                }
                Ok(_) => {}
                Err(_) => return Poll::Ready(Some(Err(BodyFailure::Reset))),
            }
        }
    }
}

/// Writes the request line and headers into `out`; returns whether the body is
/// sent chunked. Framing follows the router's headers (`transfer-encoding` kept
/// from a chunked downstream request, or `content-length`); a whole body without
/// either gets its length, a streamed one chunks.
fn encode_head(out: &mut BytesMut, request: &RequestOut<'_>, body: &BodyOut) -> bool {
    out.clear();
    out.put_slice(request.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(request.target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    let overrides = || request.overrides.iter().flatten();
    let any_override = overrides().next().is_some();
    for (name, value) in request.headers {
        if any_override && overrides().any(|(n, _)| n == name) {
            continue;
        }
        put_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    for (name, value) in overrides() {
        put_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let chunked = request.headers.contains_key(TRANSFER_ENCODING);
    if !chunked && !request.headers.contains_key(CONTENT_LENGTH) {
        match body {
            BodyOut::Whole(data) if !data.is_empty() => {
                put_header(out, b"content-length", itoa::Buffer::new().format(data.len()).as_bytes());
            }
            BodyOut::Whole(_) => {}
            BodyOut::Streaming(_) => {
                put_header(out, b"transfer-encoding", b"chunked");
                out.put_slice(b"\r\n");
                return true;
            }
        }
    }
    out.put_slice(b"\r\n");
    chunked
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// One chunk of a chunked body (nothing for empty data: that would end it).
fn put_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    put_chunk_size(out, data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn put_chunk_size(out: &mut BytesMut, len: usize) {
    let mut hex = [0u8; 16];
    let mut i = hex.len();
    let mut n = len;
    loop {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&hex[i..]);
    out.put_slice(b"\r\n");
}

async fn write_out<W: tokio::io::AsyncWrite + Unpin>(io: &mut W, out: &mut BytesMut) -> io::Result<()> {
    let r = io.write_all(out).await;
    out.clear();
    r
}

/// Streams `body` after the head already in `out`.
async fn write_body<W: tokio::io::AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut BytesMut,
    mut body: UpstreamBody,
    chunked: bool,
) -> Result<(), RequestFailure> {
    let closed = |_| RequestFailure::ClosedBeforeResponse;
    write_out(io, out).await.map_err(closed)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RequestFailure::RequestBody(CodecError::of_body_error(&*e)))?;
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        if !chunked {
            io.write_all(&data).await.map_err(closed)?;
        } else if data.len() <= COPY_MAX {
            put_chunk(out, &data);
            write_out(io, out).await.map_err(closed)?;
        } else {
            put_chunk_size(out, data.len());
            write_out(io, out).await.map_err(closed)?;
            io.write_all(&data).await.map_err(closed)?;
            io.write_all(b"\r\n").await.map_err(closed)?;
        }
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await.map_err(closed)?;
    }
    Ok(())
}

/// Reads more into `buf`, with room for `chunk` bytes; `Ok(0)` at end of stream.
/// A whole `chunk` of room, not what the last response left: a response cut
/// short by a nearly full buffer costs a second read. Once the previous
/// response's bytes are dropped the room is reclaimed in place, with no allocation.
fn poll_fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    chunk: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    buf.reserve(chunk);
    super::poll_read_into(io, buf, cx)
}

/// Reads until a final (non-1xx) response head is whole, and parses it.
async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    head_only: bool,
) -> Result<ResponseHead, RequestFailure> {
    let mut received = false;
    loop {
        if !buf.is_empty() {
            received = true;
            match parse_head(buf, head_only)? {
                Some(Parsed::Final(head)) => return Ok(head),
                Some(Parsed::Interim) => continue,
                None if buf.len() > MAX_HEAD => return Err(RequestFailure::Protocol),
                None => {}
            }
        }
        match std::future::poll_fn(|cx| poll_fill(io, buf, READ_CHUNK, cx)).await {
            Ok(n) if n > 0 => {}
            _ if received => return Err(RequestFailure::Reset),
            _ => return Err(RequestFailure::ClosedBeforeResponse),
        }
    }
}

enum Parsed {
    Final(ResponseHead),
    /// A 1xx response, consumed (`100 Continue` and the like are not relayed).
    Interim,
}

/// Fuzz target (`crate::fuzz`): response heads (interim ones first, if any)
/// read at once and in two reads give the same heads and errors.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    use std::fmt::Write;
    let head_only = data.first().is_some_and(|b| b & 1 == 1);
    let read = |cut: usize| {
        let (first, second) = data.split_at(cut);
        let mut buf = BytesMut::from(first);
        let mut rest = Some(second);
        let mut seen = String::new();
        loop {
            match parse_head(&mut buf, head_only) {
                Ok(Some(Parsed::Interim)) => seen.push_str("interim; "),
                Ok(Some(Parsed::Final(h))) => {
                    let p = &h.parts;
                    let _ = write!(seen, "{} {:?} {:?} {:?} {}", p.status, p.version, p.headers, h.framing, h.reusable);
                    return seen;
                }
                Ok(None) => match rest.take() {
                    Some(more) => buf.extend_from_slice(more),
                    None => return seen + "incomplete",
                },
                Err(e) => return seen + &format!("{e:?}"),
            }
        }
    };
    let whole = read(data.len());
    let cut = data.len() * usize::from(data.last().copied().unwrap_or(0)) / 256;
    assert_eq!(read(cut), whole, "cut at {cut}");
}

/// Parses a response head from the front of `buf`, consuming it when whole.
fn parse_head(buf: &mut BytesMut, head_only: bool) -> Result<Option<Parsed>, RequestFailure> {
    // Most heads fit the small slot array (filling slots costs); a larger one is
    // parsed again with room for Envoy's limit.
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut many;
    let mut response = httparse::Response::new(&mut few);
    let mut parsed = response.parse(buf);
    if parsed == Err(httparse::Error::TooManyHeaders) {
        many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
        response = httparse::Response::new(&mut many);
        parsed = response.parse(buf);
    }
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(RequestFailure::Protocol),
    };
    let code = response.code.ok_or(RequestFailure::Protocol)?;
    let status = StatusCode::from_u16(code).map_err(|_| RequestFailure::Protocol)?;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        let _ = buf.split_to(len);
        return Ok(Some(Parsed::Interim));
    }
    let version = if response.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    if len > MAX_HEAD {
        return Err(RequestFailure::Protocol);
    }
    // Where each name and value sits in the head (under 64 KiB, so u16), so that
    // the values can be slices of the head's bytes (shared, not copied) once it
    // is split off.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| ((s.as_ptr() as usize - base) as u16, s.len() as u16);
    let mut spans = [((0u16, 0u16), (0u16, 0u16)); MAX_HEADERS];
    let count = response.headers.len();
    for (span, h) in spans.iter_mut().zip(response.headers.iter()) {
        *span = (offset(h.name.as_bytes()), offset(h.value));
    }
    let head_bytes = buf.split_to(len).freeze();
    // Room for what Courier adds (`x-envoy-upstream-service-time`, `date`).
    let mut headers = crate::http::header_map_pool::take(count + 2);
    // The headers that decide framing and reuse are read as they go into the
    // map, not looked up in it again after.
    let mut seen = FramingHeaders::default();
    for &((name_at, name_len), (value_at, value_len)) in &spans[..count] {
        let (name_at, value_at) = (usize::from(name_at), usize::from(value_at));
        let name = HeaderName::from_bytes(&head_bytes[name_at..name_at + usize::from(name_len)]);
        let value = HeaderValue::from_maybe_shared(head_bytes.slice(value_at..value_at + usize::from(value_len)));
        match (name, value) {
            (Ok(name), Ok(value)) => {
                seen.note(&name, &value);
                headers.append(name, value)
            }
            _ => return Err(RequestFailure::Protocol),
        };
    }
    let framing = framing(status, &seen, head_only)?;
    let keep_alive = match version {
        Version::HTTP_10 => seen.keep_alive,
        _ => !seen.close,
    };
    let reusable = keep_alive && framing != BodyFraming::UntilClose && status != StatusCode::SWITCHING_PROTOCOLS;
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Parsed::Final(ResponseHead { parts, framing, reusable })))
}

/// What a response's `Transfer-Encoding`, `Content-Length` and `Connection`
/// headers say, noted as each is parsed.
#[derive(Default)]
struct FramingHeaders {
    /// The last `Transfer-Encoding` value, if there is one.
    te: Option<HeaderValue>,
    /// Every `Content-Length` value agreed on this length; `Err` once one is no
    /// length or differs from another.
    length: Option<Result<u64, ()>>,
    /// A `Connection` token says `close` / `keep-alive`.
    close: bool,
    keep_alive: bool,
}

impl FramingHeaders {
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) {
        if name == TRANSFER_ENCODING {
            self.te = Some(value.clone());
        } else if name == CONTENT_LENGTH {
            let n = super::field::content_length(value.as_bytes()).ok_or(());
            self.length = Some(match (self.length, n) {
                (Some(Ok(l)), Ok(n)) if l != n => Err(()),
                (Some(Err(())), _) => Err(()),
                (_, n) => n,
            });
        } else if name == CONNECTION {
            // As `connection_tokens`: a value that is not visible ASCII names nothing.
            if value.to_str().is_ok() {
                for token in value.as_bytes().split(|&b| b == b',').map(super::field::trim) {
                    self.close |= token.eq_ignore_ascii_case(b"close");
                    self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
    }
}

/// How the response body is delimited (RFC 9112 §6.3).
fn framing(status: StatusCode, seen: &FramingHeaders, head_only: bool) -> Result<BodyFraming, RequestFailure> {
    if head_only || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    {
        return Ok(BodyFraming::None);
    }
    if let Some(te) = &seen.te {
        // Both framings at once is how smuggling starts: refused, as Envoy does.
        if seen.length.is_some() {
            return Err(RequestFailure::Protocol);
        }
        let last = te.to_str().ok().and_then(|v| v.rsplit(',').next()).map(str::trim);
        return match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Ok(BodyFraming::Chunked),
            _ => Err(RequestFailure::Protocol),
        };
    }
    match seen.length {
        Some(Ok(n)) => Ok(BodyFraming::Length(n)),
        Some(Err(())) => Err(RequestFailure::Protocol),
        None => Ok(BodyFraming::UntilClose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head_only: bool) -> Result<ResponseHead, RequestFailure> {
        let mut buf = BytesMut::from(raw);
        match parse_head(&mut buf, head_only)? {
            Some(Parsed::Final(h)) => Ok(h),
            Some(Parsed::Interim) => match parse_head(&mut buf, head_only)? {
                Some(Parsed::Final(h)) => Ok(h),
                _ => panic!("no final head"),
            },
            None => panic!("partial"),
        }
    }

    #[test]
    fn framing_of_responses() {
        let h = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false).unwrap();
        assert_eq!((h.framing, h.reusable), (BodyFraming::Length(5), true));
        let h = parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", false).unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        let h = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!((h.framing, h.reusable), (BodyFraming::UntilClose, false));
        let h = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true).unwrap();
        assert_eq!(h.framing, BodyFraming::None, "a HEAD response has no body");
        let h = parse(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap();
        assert_eq!((h.framing, h.reusable), (BodyFraming::None, true));
        let h =
            parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", false).unwrap();
        assert_eq!(h.parts.status, 201, "1xx responses are skipped");
    }

    #[test]
    fn many_headers_up_to_envoys_limit() {
        let head = |n: usize| {
            let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..n {
                raw.extend_from_slice(format!("x-h{i}: {i}\r\n").as_bytes());
            }
            raw.extend_from_slice(b"content-length: 0\r\n\r\n");
            raw
        };
        let h = parse(&head(60), false).unwrap();
        assert_eq!(h.parts.headers.len(), 61);
        assert_eq!(h.parts.headers["x-h59"], "59");
        assert_eq!(parse(&head(MAX_HEADERS), false).err(), Some(RequestFailure::Protocol));
    }

    #[test]
    fn keep_alive_by_version_and_connection_header() {
        assert!(!parse(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n", false).unwrap().reusable);
        assert!(!parse(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false).unwrap().reusable);
        let h = parse(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n", false).unwrap();
        assert!(h.reusable);
    }

    #[test]
    fn ambiguous_framing_is_a_protocol_error() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert_eq!(parse(raw, false).err(), Some(RequestFailure::Protocol), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn framing_headers_are_read_whole_and_in_order() {
        let ok = |raw: &[u8]| parse(raw, false).unwrap();
        let h = ok(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(5), "repeated equal lengths agree");
        let h = ok(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked, "the last coding of the last value");
        let h = ok(b"HTTP/1.1 204 No Content\r\ncontent-length: x\r\ntransfer-encoding: gzip\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::None, "a 204 has no body, whatever the headers say");
        let h = ok(b"HTTP/1.1 200 OK\r\nconnection: foo\r\nconnection: bar,  Close \r\ncontent-length: 0\r\n\r\n");
        assert!(!h.reusable, "close in a later Connection value");
        let h = ok(b"HTTP/1.0 200 OK\r\nconnection: x, Keep-Alive\r\ncontent-length: 0\r\n\r\n");
        assert!(h.reusable);
        for raw in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: x\r\ncontent-length: 5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        ] {
            assert_eq!(parse(raw, false).err(), Some(RequestFailure::Protocol), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn head_encoding_frames_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.com"));
        headers.insert("x-envoy-expected-rq-timeout-ms", HeaderValue::from_static("1"));
        let overrides = [
            None,
            Some((HeaderName::from_static("x-envoy-expected-rq-timeout-ms"), HeaderValue::from_static("15000"))),
        ];
        let req = RequestOut { method: &Method::POST, target: "/a?b", headers: &headers, overrides: &overrides };
        let mut out = BytesMut::new();
        assert!(!encode_head(&mut out, &req, &BodyOut::Whole(Bytes::from_static(b"abc"))));
        assert_eq!(
            &out[..],
            b"POST /a?b HTTP/1.1\r\nhost: example.com\r\nx-envoy-expected-rq-timeout-ms: 15000\r\ncontent-length: 3\r\n\r\n"
        );
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let req = RequestOut { method: &Method::POST, target: "/", headers: &headers, overrides: &[] };
        assert!(encode_head(&mut out, &req, &BodyOut::Whole(Bytes::new())));
        let mut chunk = BytesMut::new();
        put_chunk(&mut chunk, &[b'x'; 26]);
        assert_eq!(&chunk[..4], b"1a\r\n");
    }
}
