//! A request body received on an HTTP/2 stream, as the router reads it.
//!
//! Flow-control window is given back to the client only as the router takes
//! each chunk, so a client can send no faster than the upstream accepts: the
//! stream's receive window is the bound on what Courier holds for it.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::server_stream::StreamHandle;
use crate::http::http1::CodecError;

/// What the connection loop and the stream's timers see of a request body
/// while the router owns it.
#[derive(Debug)]
pub struct StreamRx {
    /// When body bytes last arrived (the stream idle timer).
    pub last_rx: Cell<Instant>,
    /// The body (and its trailers) was read to its end.
    pub done: Cell<bool>,
    /// Body bytes read so far (`%BYTES_RECEIVED%`).
    pub body_bytes: Rc<Cell<u64>>,
    /// The request carried trailers (`http2.trailers`).
    pub trailers: Cell<bool>,
}

impl StreamRx {
    pub fn new(done: bool) -> Rc<StreamRx> {
        Rc::new(StreamRx {
            last_rx: Cell::new(Instant::now()),
            done: Cell::new(done),
            body_bytes: Rc::new(Cell::new(0)),
            trailers: Cell::new(false),
        })
    }
}

/// The body of one request stream.
pub struct RequestBody {
    /// `None` for a stream whose DATA is not a body (extended CONNECT: the
    /// tunnel reads it), which the router sees as empty.
    recv: Option<StreamHandle>,
    rx: Rc<StreamRx>,
    /// `content-length` of the request, when it gave one.
    length: Option<u64>,
    data_done: bool,
}

impl RequestBody {
    pub fn new(recv: StreamHandle, rx: Rc<StreamRx>, length: Option<u64>) -> RequestBody {
        RequestBody { recv: Some(recv), rx, length, data_done: false }
    }

    /// A request without a body whose stream stays open (extended CONNECT,
    /// RFC 8441): what the client sends is the tunnel's, not the request's.
    pub fn tunnel(rx: Rc<StreamRx>) -> RequestBody {
        rx.done.set(true);
        RequestBody { recv: None, rx, length: Some(0), data_done: true }
    }
}

/// A stream the client reset or a connection that failed mid-body.
fn stream_error() -> CodecError {
    tracing::debug!("HTTP/2 request body failed: the stream was reset");
    CodecError::client_gone()
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        let this = &mut *self;
        let Some(recv) = &this.recv else { return Poll::Ready(None) };
        while !this.data_done {
            match ready!(recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    recv.release(data.len());
                    let rx = &this.rx;
                    rx.body_bytes.set(rx.body_bytes.get() + data.len() as u64);
                    rx.last_rx.set(Instant::now());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(_)) => return Poll::Ready(Some(Err(stream_error()))),
                None => this.data_done = true,
            }
        }
        if this.rx.done.get() {
            return Poll::Ready(None);
        }
        this.rx.done.set(true);
        this.rx.last_rx.set(Instant::now());
        match recv.take_trailers() {
            Some(t) => {
                this.rx.trailers.set(true);
                Poll::Ready(Some(Ok(Frame::trailers(t))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rx.done.get() || self.recv.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.rx.body_bytes.get())),
            None => SizeHint::default(),
        }
    }
}
