//! Writing a response onto a downstream connection: the status line and headers
//! Envoy sends (`date` added when absent, `connection: close` when closing), the
//! body framed by `content-length` when known and chunked otherwise, streamed
//! frame by frame. Small frames are gathered into one write while the body has
//! more ready; a frame that is not ready yet flushes what is gathered.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Response, StatusCode, Version};
use hyper::body::{Body, Frame};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::common::buffer_pool;
use crate::event::Timer;
use crate::http::header_map_pool;
use crate::network::transport::{TransportWrite, TransportWriteHalf};
use crate::overload::{self, ScaledTimer};
use crate::stats::Counter;

/// Frames smaller than this are copied into the gather buffer.
const GATHER_MAX: usize = 16 * 1024;

/// Why a response could not be written whole; the connection must close.
#[derive(Debug)]
pub enum WriteError {
    Io(io::Error),
    /// The body failed midway (upstream reset): the downstream is cut off.
    Body,
    /// No progress within the stream idle timeout, or past the stream deadline.
    Timeout,
}

/// The `connection` header a response gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// None: HTTP/1.1 keep-alive is the default.
    None,
    /// `connection: close`: the connection ends after this response.
    Close,
    /// `connection: keep-alive`: an HTTP/1.0 client asked to keep it open.
    KeepAlive,
    /// `connection: Upgrade`: a 101 switching the connection to another protocol.
    Upgrade,
}

/// Timers that bound writing a response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteLimits {
    /// `stream_idle_timeout`: longest wait for the next frame or a write.
    pub idle: Option<std::time::Duration>,
    /// `max_stream_duration`: the stream's end.
    pub deadline: Option<Instant>,
}

impl WriteLimits {
    /// When a wait starting now must end: the idle timeout from now (as the
    /// reduce_timeouts overload action scales it), or the stream's end if that
    /// comes first.
    pub fn wait_deadline(&self) -> Option<Instant> {
        let idle_at = self.idle.map(|d| overload::scaled_deadline(ScaledTimer::StreamIdle, Instant::now(), d));
        [idle_at, self.deadline].into_iter().flatten().min()
    }
}

/// The reason phrase Envoy writes for `code` (its `CodeUtility::toString` table):
/// the upstream's own phrase is not kept, and codes outside the table, 418 among
/// them, are "Unknown".
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        599 => "Last Unassigned Server Error Code",
        _ => "Unknown",
    }
}

/// The write half of a downstream connection.
pub struct ResponseWriter {
    io: TransportWriteHalf,
    /// The response being gathered; a `buffer_pool` buffer taken for each response
    /// and given back once it is written, so an idle connection holds none.
    out: BytesMut,
    tx_bytes: Arc<Counter>,
    /// `http_protocol_options.enable_trailers`: a chunked response's trailers
    /// are written after its last chunk (else dropped, as Envoy's codec does).
    pub trailers: bool,
}

impl ResponseWriter {
    pub fn new(io: TransportWriteHalf, tx_bytes: Arc<Counter>) -> ResponseWriter {
        ResponseWriter { io, out: BytesMut::new(), tx_bytes, trailers: false }
    }

    /// The transport's write half (to hand the connection to another codec).
    pub fn into_inner(self) -> TransportWriteHalf {
        self.io
    }

    /// `HTTP/1.1 100 Continue`, for a request that expects it.
    pub async fn write_continue(&mut self) -> io::Result<()> {
        self.take_buffer();
        self.out.put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.flush().await
    }

    /// Writes `response`; `head_only` for a HEAD request. Returns the body bytes
    /// written.
    pub async fn write<B>(
        &mut self,
        response: Response<B>,
        head_only: bool,
        connection: ConnectionHeader,
        limits: WriteLimits,
        timer: &mut Timer,
    ) -> Result<u64, WriteError>
    where
        B: Body<Data = Bytes>,
    {
        let (parts, body) = response.into_parts();
        let status = parts.status;
        let no_body = head_only
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let exact = body.size_hint().exact();
        // Framing: the declared length, else a known length, else chunks.
        let (length, chunked) = match (declared, exact) {
            (Some(n), _) => (Some(n), false),
            (None, _) if no_body => (None, false),
            (None, Some(n)) => (Some(n), false),
            (None, None) => (None, true),
        };

        self.take_buffer();
        let out = &mut self.out;
        // Envoy answers an HTTP/1.0 request in HTTP/1.0 (the connection manager marks
        // the response), whatever the upstream spoke.
        out.put_slice(if parts.version == Version::HTTP_10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        out.put_slice(itoa::Buffer::new().format(status.as_u16()).as_bytes());
        out.put_u8(b' ');
        out.put_slice(reason_phrase(status.as_u16()).as_bytes());
        out.put_slice(b"\r\n");
        for (name, value) in &parts.headers {
            if name == TRANSFER_ENCODING || name == CONNECTION || (name == CONTENT_LENGTH && declared.is_none()) {
                continue;
            }
            put_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
        if declared.is_none() {
            if let Some(n) = length.filter(|_| status != StatusCode::NO_CONTENT && !status.is_informational()) {
                put_header(out, b"content-length", itoa::Buffer::new().format(n).as_bytes());
            }
        }
        if chunked {
            put_header(out, b"transfer-encoding", b"chunked");
        }
        if !parts.headers.contains_key(DATE) {
            put_header(out, b"date", super::date::now().as_bytes());
        }
        match connection {
            ConnectionHeader::None => {}
            ConnectionHeader::Close => put_header(out, b"connection", b"close"),
            ConnectionHeader::KeepAlive => put_header(out, b"connection", b"keep-alive"),
            ConnectionHeader::Upgrade => put_header(out, b"connection", b"Upgrade"),
        }
        out.put_slice(b"\r\n");
        header_map_pool::give_back(parts.headers);

        if no_body {
            drop(body);
            self.flush_within(limits, timer).await?;
            self.give_back_buffer();
            return Ok(0);
        }
        let mut body = std::pin::pin!(body);
        let mut written = 0u64;
        let mut trailers = None;
        loop {
            let frame = match poll_ready(body.as_mut()).await {
                Some(f) => f,
                None => {
                    // Nothing ready: send what is gathered, then wait for the body.
                    self.flush_within(limits, timer).await?;
                    within(limits, timer, std::future::poll_fn(|cx| body.as_mut().poll_frame(cx))).await?
                }
            };
            let Some(frame) = frame else { break };
            let Ok(frame) = frame else { return Err(WriteError::Body) };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Only chunked framing has room for trailers.
                    if chunked && self.trailers {
                        trailers = frame.into_trailers().ok();
                    }
                    continue;
                }
            };
            if data.is_empty() {
                continue;
            }
            written += data.len() as u64;
            if length.is_some_and(|n| written > n) {
                // More than declared: the framing would break; cut the connection.
                return Err(WriteError::Body);
            }
            if chunked {
                let mut hex = [0u8; 16];
                let hex = hex_len(data.len(), &mut hex);
                self.out.put_slice(hex);
                self.out.put_slice(b"\r\n");
            }
            if data.len() < GATHER_MAX {
                self.out.put_slice(&data);
            } else {
                self.flush_within(limits, timer).await?;
                within(limits, timer, self.io.write_all(&data)).await?.map_err(WriteError::Io)?;
                self.tx_bytes.add(data.len() as u64);
            }
            if chunked {
                self.out.put_slice(b"\r\n");
            }
            if self.out.len() >= GATHER_MAX {
                self.flush_within(limits, timer).await?;
            }
        }
        if length.is_some_and(|n| written != n) {
            return Err(WriteError::Body);
        }
        if chunked {
            self.out.put_slice(b"0\r\n");
            for (name, value) in trailers.iter().flatten() {
                put_header(&mut self.out, name.as_str().as_bytes(), value.as_bytes());
            }
            self.out.put_slice(b"\r\n");
        }
        self.flush_within(limits, timer).await?;
        self.give_back_buffer();
        Ok(written)
    }

    fn take_buffer(&mut self) {
        if self.out.capacity() == 0 {
            self.out = buffer_pool::take();
        }
    }

    /// Once a response is written whole, its buffer goes back to the worker.
    fn give_back_buffer(&mut self) {
        buffer_pool::give_back(std::mem::take(&mut self.out));
    }

    async fn flush_within(&mut self, limits: WriteLimits, timer: &mut Timer) -> Result<(), WriteError> {
        within(limits, timer, self.flush()).await?.map_err(WriteError::Io)
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.io.write_all(&self.out).await?;
        self.tx_bytes.add(self.out.len() as u64);
        self.out.clear();
        Ok(())
    }

    /// Gives up the write half after the last response without a `shutdown` call:
    /// the FIN goes with the socket's close, once the read half is dropped too
    /// (dropping the half would call `shutdown` first, one more syscall per
    /// connection for the same FIN).
    pub fn close(self) {
        self.io.close();
    }
}

/// The next frame if the body has it ready now; `None` if it would wait.
async fn poll_ready<B: Body>(mut body: Pin<&mut B>) -> Option<Option<Result<Frame<B::Data>, B::Error>>> {
    std::future::poll_fn(|cx| match body.as_mut().poll_frame(cx) {
        Poll::Ready(f) => Poll::Ready(Some(f)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Runs `f` under the stream's idle timeout and deadline, on the connection's timer.
async fn within<F: std::future::Future>(limits: WriteLimits, timer: &mut Timer, f: F) -> Result<F::Output, WriteError> {
    timer.set(limits.wait_deadline());
    tokio::select! {
        biased;
        out = f => Ok(out),
        () = timer.fired() => Err(WriteError::Timeout),
    }
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// `n` in lower-case hex, for a chunk size line.
fn hex_len(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use tokio::io::AsyncReadExt;

    /// Writes `response` over a real loopback socket and returns what arrived.
    async fn wire<B: Body<Data = Bytes>>(response: Response<B>, head_only: bool, close: bool) -> String {
        let connection = if close { ConnectionHeader::Close } else { ConnectionHeader::None };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).await.unwrap();
            s
        });
        let (s, _) = listener.accept().await.unwrap();
        let (_rd, wr) = crate::network::Transport::into_split(crate::network::TransportStream::from(s));
        let mut w = ResponseWriter::new(wr, Arc::new(Counter::default()));
        w.write(response, head_only, connection, WriteLimits::default(), &mut Timer::new()).await.unwrap();
        w.close();
        drop(_rd);
        reader.await.unwrap()
    }

    #[tokio::test]
    async fn known_length_body_gets_content_length() {
        let r = Response::builder().status(200).header("x-a", "1").body(Full::new(Bytes::from("hello"))).unwrap();
        let s = wire(r, false, false).await;
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\ndate: "), "{s}");
        assert!(s.ends_with("\r\n\r\nhello"), "{s}");
    }

    /// A body of the given frames with no size hint.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn unknown_length_body_is_chunked_and_close_is_announced() {
        let body = Frames([Bytes::from("ab"), Bytes::from("cde")].into());
        let s = wire(Response::new(body), false, true).await;
        assert!(s.contains("transfer-encoding: chunked\r\n"), "{s}");
        assert!(s.contains("connection: close\r\n"), "{s}");
        assert!(s.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"), "{s}");
    }

    #[tokio::test]
    async fn head_and_no_content_carry_no_body() {
        let r = Response::builder().header("content-length", "5").body(Full::new(Bytes::from("hello"))).unwrap();
        let s = wire(r, true, false).await;
        assert!(s.contains("content-length: 5\r\n") && s.ends_with("\r\n\r\n"), "{s}");
        let r = Response::builder().status(204).body(Full::new(Bytes::new())).unwrap();
        let s = wire(r, false, false).await;
        assert!(!s.contains("content-length") && s.starts_with("HTTP/1.1 204 No Content\r\n"), "{s}");
    }

    #[tokio::test]
    async fn status_line_has_envoys_reason_and_the_requests_version() {
        let mut r = Response::builder().status(418).body(Full::new(Bytes::new())).unwrap();
        *r.version_mut() = Version::HTTP_10;
        let s = wire(r, false, false).await;
        assert!(s.starts_with("HTTP/1.0 418 Unknown\r\n"), "{s}");
        assert_eq!(reason_phrase(451), "Unknown");
        assert_eq!(reason_phrase(425), "Too Early");
    }

    #[test]
    fn hex_lengths() {
        let mut b = [0u8; 16];
        assert_eq!(hex_len(0, &mut b), b"0");
        assert_eq!(hex_len(255, &mut b), b"ff");
        assert_eq!(hex_len(4096, &mut b), b"1000");
    }
}
