//! Courier's downstream HTTP/1.1 codec (Envoy's `http/http1/codec_impl`), on
//! `httparse`.
//!
//! Courier writes its own server side rather than using hyper's because Envoy's
//! codec answers hostile input in ways hyper's cannot be configured to: both
//! `Content-Length` and `Transfer-Encoding`, or a repeated `Content-Length`, are
//! rejected (hyper drops one silently); an unknown transfer coding gets 501;
//! HTTP/1.0 gets 426 unless `accept_http_10`; a header name that is not a token
//! is refused (a bare CR in it decides nothing), while obs-fold and a bare CR in
//! a value are normalised; every rejection is a reply with Envoy's status and
//! body, and a slow head gets 408. The upstream side is Courier's own too
//! (`client_connection`): one task per stream drives its upstream connection
//! directly, with no connection task or channel in between.
//!
//! - `request_head` — request line and headers, framing and limits
//! - `request_line` — method, target and version, as Envoy's parser takes them
//! - `field` — header (and trailer) field syntax: token names, clean values
//! - `request_body` — the request body as the router reads it, streamed
//! - `body_decoder` — `Content-Length`, chunked and close-delimited bodies, both ways
//! - `client_connection` — the upstream side: a request out, its response back
//! - `response_writer` — a response onto the wire
//! - `date` — the `date` header, formatted once a second

pub mod body_decoder;
pub mod client_connection;
pub mod date;
pub mod field;
pub mod request_body;
pub mod request_head;
pub mod request_line;
pub mod response_writer;

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use http::StatusCode;
use tokio::io::{AsyncRead, ReadBuf};

pub use body_decoder::BodyFraming;
pub use request_body::{ConnReader, RequestBody};
pub use request_head::{HeadLimits, RequestHead};

/// Reads from `io` into `buf`'s spare capacity, as much as fits (the caller makes
/// room first, by its own policy); `Ok(0)` at end of stream. Both sides of the
/// codec read through it.
fn poll_read_into<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut read_buf = ReadBuf::uninit(buf.spare_capacity_mut());
    ready!(Pin::new(io).poll_read(cx, &mut read_buf))?;
    let n = read_buf.filled().len();
    // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(n))
}

/// The details of a body cut short by its client (`CodecError::client_gone`).
pub const CLIENT_GONE: &str = "downstream_remote_disconnect";

/// A request the codec refuses, with the reply Envoy sends for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecError {
    pub status: StatusCode,
    /// Envoy's response code details (`%RESPONSE_CODE_DETAILS%`).
    pub details: &'static str,
}

impl CodecError {
    pub fn bad_request(details: &'static str) -> CodecError {
        CodecError { status: StatusCode::BAD_REQUEST, details }
    }

    pub fn headers_too_large() -> CodecError {
        CodecError { status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, details: "http1.headers_too_large" }
    }

    pub fn too_many_headers() -> CodecError {
        CodecError { status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, details: "http1.too_many_headers" }
    }

    pub fn upgrade_required() -> CodecError {
        CodecError { status: StatusCode::UPGRADE_REQUIRED, details: "low_version" }
    }

    /// The client went away mid-body: no fault in what it sent.
    pub fn client_gone() -> CodecError {
        CodecError::bad_request(CLIENT_GONE)
    }

    /// Whether this counts as the connection's protocol error (Envoy's
    /// `downstream_cx_protocol_error`): every refusal but a client gone.
    pub fn is_protocol_error(&self) -> bool {
        self.details != CLIENT_GONE
    }

    pub fn not_implemented() -> CodecError {
        CodecError { status: StatusCode::NOT_IMPLEMENTED, details: "http1.invalid_transfer_encoding" }
    }

    /// The codec's error behind a request body's failure (bodies are boxed on
    /// their way upstream); any other failure reads as a generic codec error.
    pub fn of_body_error(e: &(dyn std::error::Error + 'static)) -> CodecError {
        e.downcast_ref::<CodecError>().copied().unwrap_or(CodecError::bad_request("http1.codec_error"))
    }

    /// The reply body: the status's reason phrase, as Envoy sends.
    pub fn body(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Bad Request")
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.status, self.details)
    }
}

impl std::error::Error for CodecError {}
