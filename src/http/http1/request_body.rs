//! The read side of a downstream connection and the request body read from it.
//!
//! One `ConnReader` per connection holds the transport's read half, the bytes read
//! but not yet consumed (the rest of a body, the next pipelined request) and the
//! framing state of the current body. The router streams the body through
//! `RequestBody`, which decodes `Content-Length` or chunked framing as it is
//! polled, so nothing is read faster than the upstream takes it.
//!
//! An idle keep-alive connection holds no read buffer: when the connection waits
//! for its next request with nothing buffered, the buffer goes back to the
//! worker's `buffer_pool`, and one is taken again once the transport is readable (`ReadReady`).

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::body_decoder::{BodyDecoder, Decoded};
use super::{BodyFraming, CodecError};
use crate::common::buffer_pool;
use crate::network::read_filter::ClosedByFilter;
use crate::network::transport::{ReadReady, TransportReadHalf};
use crate::stats::Counter;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = buffer_pool::BUFFER_SIZE;

/// The read half of a downstream connection.
pub struct ConnReader {
    io: TransportReadHalf,
    /// Bytes read and not yet consumed. Holds no memory while the connection is
    /// idle between requests (see `poll_next_request`).
    pub buf: BytesMut,
    body: BodyDecoder,
    rx_bytes: Arc<Counter>,
    /// When bytes last arrived (the stream idle timer).
    pub last_rx: Instant,
    /// The client closed its side (or the socket failed) before the current
    /// request body was whole.
    pub client_gone: bool,
    /// Body bytes of the current request decoded so far (`%BYTES_RECEIVED%`);
    /// shared with the stream, reset for each request.
    pub body_bytes: Rc<Cell<u64>>,
    /// `http_protocol_options.enable_trailers`: a chunked body's trailers are
    /// passed on (as a trailers frame) instead of dropped.
    pub keep_trailers: bool,
}

impl ConnReader {
    pub fn new(io: TransportReadHalf, rx_bytes: Arc<Counter>) -> ConnReader {
        ConnReader {
            io,
            buf: BytesMut::new(),
            body: BodyDecoder::new(BodyFraming::None),
            rx_bytes,
            last_rx: Instant::now(),
            body_bytes: Rc::new(Cell::new(0)),
            client_gone: false,
            keep_trailers: false,
        }
    }

    /// The transport's read half and what was read from it but not consumed (to
    /// hand a connection that turned out to be HTTP/2 to that codec).
    pub fn into_parts(self) -> (TransportReadHalf, BytesMut) {
        (self.io, self.buf)
    }

    /// Reads more bytes into `buf` while waiting for a request head. When nothing
    /// is buffered and nothing has arrived, the connection is idle: its buffer
    /// goes back to the worker until the socket is readable again.
    pub fn poll_next_request(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == 0 {
            ready!(self.io.poll_read_ready(cx))?;
        }
        let read = self.poll_fill(cx);
        if read.is_pending() && self.buf.is_empty() && self.buf.capacity() > 0 {
            buffer_pool::give_back(std::mem::take(&mut self.buf));
        }
        read
    }

    /// Reads more bytes into `buf`; `Ok(0)` at end of stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == 0 {
            self.buf = buffer_pool::take();
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = match ready!(super::poll_read_into(&mut self.io, &mut self.buf, cx)) {
            Ok(n) => n,
            Err(e) => {
                // What a read filter refused was read off the connection all the same.
                self.rx_bytes.add(ClosedByFilter::unread_of(&e) as u64);
                return Poll::Ready(Err(e));
            }
        };
        if n > 0 {
            self.rx_bytes.add(n as u64);
            self.last_rx = Instant::now();
        }
        Poll::Ready(Ok(n))
    }

    /// Reads and drops what arrives on a connection that is closing; `Ok(0)` at
    /// end of stream. Not counted in `rx_bytes`: nothing of it is served (Envoy
    /// does not count what a closing connection still receives either).
    pub fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == 0 {
            self.buf = buffer_pool::take();
        }
        self.buf.clear();
        super::poll_read_into(&mut self.io, &mut self.buf, cx)
    }

    /// Starts decoding the body of the request just parsed.
    pub fn start_body(&mut self, framing: BodyFraming) {
        self.body_bytes.set(0);
        self.body = BodyDecoder::new(framing).keeping_trailers(self.keep_trailers);
    }

    /// The current request body was read to its end.
    pub fn body_done(&self) -> bool {
        self.body.is_done()
    }

    /// Drops what is left of the body if it is already buffered (a reply that
    /// did not read the body, e.g. a 404); true when the body is then complete
    /// and the connection can serve the next request.
    pub fn discard_buffered_body(&mut self) -> bool {
        loop {
            match self.body.decode(&mut self.buf) {
                Ok(Decoded::Data(_)) => continue,
                Ok(Decoded::Done | Decoded::Trailers(_)) => return true,
                Ok(Decoded::NeedMore) | Err(_) => return false,
            }
        }
    }

    /// The next body frame, reading from the socket as needed.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        loop {
            match self.body.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => {
                    self.body_bytes.set(self.body_bytes.get() + data.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::Done) => return Poll::Ready(None),
                Ok(Decoded::Trailers(trailers)) => return Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Decoded::NeedMore) => {}
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) | Err(_) => {
                    // The client went away mid-body.
                    self.client_gone = true;
                    let e = self.body.fail(CodecError::client_gone());
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(_) => {}
            }
        }
    }
}

/// A request body, decoded from the connection as it is polled.
pub struct RequestBody {
    reader: Rc<RefCell<ConnReader>>,
}

impl RequestBody {
    pub fn new(reader: Rc<RefCell<ConnReader>>) -> RequestBody {
        RequestBody { reader }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        self.reader.borrow_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.reader.borrow().body.remaining() == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.reader.borrow().body.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    /// A reader over a real loopback socket fed with `input`.
    async fn reader_with(input: &'static [u8], framing: BodyFraming) -> Rc<RefCell<ConnReader>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(input).await.unwrap();
        });
        let (s, _) = listener.accept().await.unwrap();
        let (rd, _wr) = crate::network::Transport::into_split(crate::network::TransportStream::from(s));
        let mut r = ConnReader::new(rd, Arc::new(Counter::default()));
        r.start_body(framing);
        Rc::new(RefCell::new(r))
    }

    /// Reads once more, borrowing the reader only while polled.
    async fn fill(r: &Rc<RefCell<ConnReader>>) -> usize {
        std::future::poll_fn(|cx| r.borrow_mut().poll_fill(cx)).await.unwrap()
    }

    async fn collect(reader: &Rc<RefCell<ConnReader>>) -> Result<Vec<u8>, CodecError> {
        let body = RequestBody::new(reader.clone());
        body.collect().await.map(|c| c.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn content_length_body_stops_at_its_length() {
        let r = reader_with(b"helloGET /next", BodyFraming::Length(5)).await;
        assert_eq!(collect(&r).await.unwrap(), b"hello");
        assert!(r.borrow().body_done());
        // The pipelined request stays buffered (it may arrive in a later read).
        while r.borrow().buf.len() < 9 {
            if fill(&r).await == 0 {
                break;
            }
        }
        assert_eq!(&r.borrow().buf[..], b"GET /next");
    }

    #[tokio::test]
    async fn early_close_is_an_error() {
        let r = reader_with(b"abc", BodyFraming::Length(10)).await;
        assert_eq!(collect(&r).await.unwrap_err().details, "downstream_remote_disconnect");
    }

    #[tokio::test]
    async fn buffered_body_can_be_discarded() {
        let r = reader_with(b"3\r\nabc\r\n0\r\n\r\n", BodyFraming::Chunked).await;
        while r.borrow().buf.len() < 13 {
            fill(&r).await;
        }
        assert!(r.borrow_mut().discard_buffered_body());
    }
}
