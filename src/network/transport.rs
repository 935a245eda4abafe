//! The transport seam: what Courier's codecs and pools need of a connection's
//! byte stream, so TLS can plug in under them as another transport without
//! touching a codec.
//!
//! `Transport` is the contract: a stream that reads, writes and shuts down
//! (tokio's `AsyncRead` + `AsyncWrite`), says when a read may make progress
//! without taking a buffer (`ReadReady`: an idle HTTP/1 connection waits on it and
//! holds no read buffer, see `ConnReader`), and splits into a read side and a
//! write side that one worker's task uses at once (the HTTP/1 reader and
//! writer). TCP keeps its own zero-cost halves (`OwnedReadHalf`/`OwnedWriteHalf`,
//! `ReadHalf`/`WriteHalf`). A stream the OS cannot split (a TLS session: one
//! object for both ways) goes in a `SharedStream`, whose halves share it through
//! `Rc<RefCell<_>>`: a worker is single-threaded and a half borrows the stream
//! only for one poll, so no lock is needed.
//!
//! The codecs and pools hold `TransportStream`, an enum of the transports Courier
//! has (`Tcp`, `Tls(SharedStream<TlsSession>)`, and either under a chain's read
//! filters, `Filtered(SharedStream<ReadFiltered>)`), not a generic
//! parameter or a `Box<dyn>`: the HTTP/1 reader and the upstream connection end
//! up inside the protocol-free `RequestBody` / `ResponseBody`, which a generic
//! would turn generic all the way up into the filters and router, and a
//! `Box<dyn>` costs an allocation per connection and an indirect, un-inlinable
//! call per read and write. An enum of one variant has the layout of `TcpStream`
//! and its `match` compiles away; with the `Tls` variant (one pointer, in a
//! niche of `TcpStream`) the enum keeps `TcpStream`'s size and each I/O call
//! costs one well-predicted branch. `TcpStream` has room for one such variant
//! only: `Filtered` adds a tag word (40 bytes instead of 32), which every
//! connection pays whether filtered or not, still without an allocation or
//! an indirect call for TCP and TLS.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{self, OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub use super::read_filter::ReadFiltered;
pub use super::tls_session::TlsSession;

/// A stream that can tell when a read may make progress, without reading.
pub trait ReadReady {
    /// Ready once a read would not return `Pending` right away (bytes, end of
    /// stream or an error are there), registering `cx` otherwise. A transport
    /// that buffers decoded bytes (TLS) is ready while it holds some.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// The read side of a split transport.
pub trait TransportRead: AsyncRead + ReadReady + Unpin + 'static {}

/// The write side of a split transport.
pub trait TransportWrite: AsyncWrite + Unpin + 'static {
    /// Gives the write side up at the end of a connection without shutting it
    /// down first: the stream closes once its read side is dropped too (for TCP,
    /// one `shutdown` syscall fewer for the same FIN).
    fn close(self);
}

/// A connection's byte stream as the codecs use it.
pub trait Transport: AsyncRead + AsyncWrite + ReadReady + Unpin + Sized + 'static {
    type ReadHalf: TransportRead;
    type WriteHalf: TransportWrite;
    /// The halves of a borrowed split (both ways at once within one task).
    type ReadRef<'a>: AsyncRead + ReadReady + Unpin
    where
        Self: 'a;
    type WriteRef<'a>: AsyncWrite + Unpin
    where
        Self: 'a;

    /// Splits into halves that live as long as the connection.
    fn into_split(self) -> (Self::ReadHalf, Self::WriteHalf);

    /// The stream again from the halves `into_split` made; `None` if they are
    /// not halves of one stream.
    fn reunite(read: Self::ReadHalf, write: Self::WriteHalf) -> Option<Self>;

    /// Reads and writes at once for a while (a request body still going up while
    /// the response comes down).
    fn split(&mut self) -> (Self::ReadRef<'_>, Self::WriteRef<'_>);
}

impl ReadReady for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl ReadReady for OwnedReadHalf {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

impl TransportRead for OwnedReadHalf {}

impl ReadReady for tcp::ReadHalf<'_> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

impl TransportWrite for OwnedWriteHalf {
    fn close(self) {
        self.forget();
    }
}

impl Transport for TcpStream {
    type ReadHalf = OwnedReadHalf;
    type WriteHalf = OwnedWriteHalf;
    type ReadRef<'a> = tcp::ReadHalf<'a>;
    type WriteRef<'a> = tcp::WriteHalf<'a>;

    fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        TcpStream::into_split(self)
    }

    fn reunite(read: OwnedReadHalf, write: OwnedWriteHalf) -> Option<TcpStream> {
        read.reunite(write).ok()
    }

    fn split(&mut self) -> (tcp::ReadHalf<'_>, tcp::WriteHalf<'_>) {
        TcpStream::split(self)
    }
}

/// A stream the OS cannot split (a TLS session), shared by its halves on one
/// worker. Each poll borrows the stream for its own length only, so the read and
/// write sides can be polled in turn by one task (or by two tasks of the worker).
#[derive(Debug)]
pub struct SharedStream<S> {
    inner: Rc<RefCell<S>>,
}

impl<S> SharedStream<S> {
    pub fn new(stream: S) -> SharedStream<S> {
        SharedStream { inner: Rc::new(RefCell::new(stream)) }
    }

    fn share(&self) -> SharedStream<S> {
        SharedStream { inner: self.inner.clone() }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SharedStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner.borrow_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SharedStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner.borrow_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.borrow().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner.borrow_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner.borrow_mut()).poll_shutdown(cx)
    }
}

impl<S: ReadReady> ReadReady for SharedStream<S> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.borrow().poll_read_ready(cx)
    }
}

impl<S: AsyncRead + ReadReady + Unpin + 'static> TransportRead for SharedStream<S> {}

impl<S: AsyncWrite + Unpin + 'static> TransportWrite for SharedStream<S> {
    fn close(self) {}
}

impl<S: AsyncRead + AsyncWrite + ReadReady + Unpin + 'static> Transport for SharedStream<S> {
    type ReadHalf = SharedStream<S>;
    type WriteHalf = SharedStream<S>;
    type ReadRef<'a> = SharedStream<S>;
    type WriteRef<'a> = SharedStream<S>;

    fn into_split(self) -> (SharedStream<S>, SharedStream<S>) {
        (self.share(), self)
    }

    fn reunite(read: SharedStream<S>, write: SharedStream<S>) -> Option<SharedStream<S>> {
        Rc::ptr_eq(&read.inner, &write.inner).then_some(write)
    }

    fn split(&mut self) -> (SharedStream<S>, SharedStream<S>) {
        (self.share(), self.share())
    }
}

/// A filtered stream's read filters, kept by a terminal filter that reads what
/// they recorded once the connection is over (its access log).
#[derive(Debug)]
pub struct ReadFiltersHandle(SharedStream<ReadFiltered>);

impl ReadFiltersHandle {
    pub fn get(&self) -> std::cell::Ref<'_, ReadFiltered> {
        self.0.inner.borrow()
    }
}

/// Runs `$body` with `$s` bound to the transport inside whichever variant `$e`
/// is; every enum below has the same variants, so a new transport adds one arm
/// here.
macro_rules! each_transport {
    ($e:expr, $s:ident => $body:expr) => {
        match $e {
            Self::Tcp($s) => $body,
            Self::Tls($s) => $body,
            Self::Filtered($s) => $body,
        }
    };
}

/// Implements `AsyncRead` (and `AsyncWrite`) for an enum of transports by
/// passing each call to the variant's own.
macro_rules! delegate_io {
    (read $t:ty) => {
        impl AsyncRead for $t {
            #[inline]
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                each_transport!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
            }
        }
    };
    (write $t:ty) => {
        impl AsyncWrite for $t {
            #[inline]
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                each_transport!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
            }

            #[inline]
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                each_transport!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
            }

            #[inline]
            fn is_write_vectored(&self) -> bool {
                each_transport!(self, s => s.is_write_vectored())
            }

            #[inline]
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each_transport!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
            }

            #[inline]
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each_transport!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
            }
        }
    };
}

/// A connection's byte stream, whichever transport carries it.
#[derive(Debug)]
pub enum TransportStream {
    Tcp(TcpStream),
    Tls(SharedStream<TlsSession>),
    /// Either of the above under a chain's read filters (`read_filter`).
    Filtered(SharedStream<ReadFiltered>),
}

/// The read half of a `TransportStream`.
#[derive(Debug)]
pub enum TransportReadHalf {
    Tcp(OwnedReadHalf),
    Tls(SharedStream<TlsSession>),
    Filtered(SharedStream<ReadFiltered>),
}

/// The write half of a `TransportStream`.
#[derive(Debug)]
pub enum TransportWriteHalf {
    Tcp(OwnedWriteHalf),
    Tls(SharedStream<TlsSession>),
    Filtered(SharedStream<ReadFiltered>),
}

/// The read side of a borrowed split of a `TransportStream`.
#[derive(Debug)]
pub enum TransportReadRef<'a> {
    Tcp(tcp::ReadHalf<'a>),
    Tls(SharedStream<TlsSession>),
    Filtered(SharedStream<ReadFiltered>),
}

/// The write side of a borrowed split of a `TransportStream`.
#[derive(Debug)]
pub enum TransportWriteRef<'a> {
    Tcp(tcp::WriteHalf<'a>),
    Tls(SharedStream<TlsSession>),
    Filtered(SharedStream<ReadFiltered>),
}

delegate_io!(read TransportStream);
delegate_io!(write TransportStream);
delegate_io!(read TransportReadHalf);
delegate_io!(write TransportWriteHalf);
delegate_io!(read TransportReadRef<'_>);
delegate_io!(write TransportWriteRef<'_>);

impl TransportStream {
    /// The TCP socket under the transport (socket options, addresses); `None`
    /// for a TLS session, which its halves share.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Tcp(s) => Some(s),
            Self::Tls(_) | Self::Filtered(_) => None,
        }
    }

    /// True when the transport negotiated `protocol` by ALPN (`h2`: the HTTP
    /// connection manager's AUTO codec serves HTTP/2 from the first byte).
    pub fn alpn_is(&self, protocol: &[u8]) -> bool {
        match self {
            Self::Tcp(_) => false,
            Self::Tls(s) => s.inner.borrow().alpn() == Some(protocol),
            Self::Filtered(s) => s.inner.borrow().inner().alpn_is(protocol),
        }
    }

    /// The read filters' state of a filtered stream (what they recorded of
    /// the connection), shared with the stream.
    pub fn read_filters(&self) -> Option<ReadFiltersHandle> {
        match self {
            Self::Filtered(s) => Some(ReadFiltersHandle(s.share())),
            Self::Tcp(_) | Self::Tls(_) => None,
        }
    }
}

impl From<TcpStream> for TransportStream {
    fn from(s: TcpStream) -> TransportStream {
        TransportStream::Tcp(s)
    }
}

impl ReadReady for TransportStream {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_transport!(self, s => ReadReady::poll_read_ready(s, cx))
    }
}

impl ReadReady for TransportReadHalf {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_transport!(self, s => ReadReady::poll_read_ready(s, cx))
    }
}

impl TransportRead for TransportReadHalf {}

impl ReadReady for TransportReadRef<'_> {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_transport!(self, s => ReadReady::poll_read_ready(s, cx))
    }
}

impl TransportWrite for TransportWriteHalf {
    fn close(self) {
        each_transport!(self, s => s.close())
    }
}

impl Transport for TransportStream {
    type ReadHalf = TransportReadHalf;
    type WriteHalf = TransportWriteHalf;
    type ReadRef<'a> = TransportReadRef<'a>;
    type WriteRef<'a> = TransportWriteRef<'a>;

    #[inline]
    fn into_split(self) -> (TransportReadHalf, TransportWriteHalf) {
        match self {
            Self::Tcp(s) => {
                let (r, w) = Transport::into_split(s);
                (TransportReadHalf::Tcp(r), TransportWriteHalf::Tcp(w))
            }
            Self::Tls(s) => {
                let (r, w) = Transport::into_split(s);
                (TransportReadHalf::Tls(r), TransportWriteHalf::Tls(w))
            }
            Self::Filtered(s) => {
                let (r, w) = Transport::into_split(s);
                (TransportReadHalf::Filtered(r), TransportWriteHalf::Filtered(w))
            }
        }
    }

    fn reunite(read: TransportReadHalf, write: TransportWriteHalf) -> Option<TransportStream> {
        match (read, write) {
            (TransportReadHalf::Tcp(r), TransportWriteHalf::Tcp(w)) => Transport::reunite(r, w).map(Self::Tcp),
            (TransportReadHalf::Tls(r), TransportWriteHalf::Tls(w)) => Transport::reunite(r, w).map(Self::Tls),
            (TransportReadHalf::Filtered(r), TransportWriteHalf::Filtered(w)) => {
                Transport::reunite(r, w).map(Self::Filtered)
            }
            _ => None,
        }
    }

    #[inline]
    fn split(&mut self) -> (TransportReadRef<'_>, TransportWriteRef<'_>) {
        match self {
            Self::Tcp(s) => {
                let (r, w) = Transport::split(s);
                (TransportReadRef::Tcp(r), TransportWriteRef::Tcp(w))
            }
            Self::Tls(s) => {
                let (r, w) = Transport::split(s);
                (TransportReadRef::Tls(r), TransportWriteRef::Tls(w))
            }
            Self::Filtered(s) => {
                let (r, w) = Transport::split(s);
                (TransportReadRef::Filtered(r), TransportWriteRef::Filtered(w))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// An in-memory stream standing in for a TLS session: one object, no OS split.
    impl ReadReady for DuplexStream {
        fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn shared_halves_read_and_write_one_stream() {
        let (mut peer, stream) = tokio::io::duplex(64);
        let (mut rd, mut wr) = Transport::into_split(SharedStream::new(stream));
        peer.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        rd.read_exact(&mut got).await.unwrap();
        wr.write_all(b"pong").await.unwrap();
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        assert!(SharedStream::reunite(rd, wr).is_some());
    }

    #[tokio::test]
    async fn halves_of_two_streams_do_not_reunite() {
        let (rd, _) = Transport::into_split(SharedStream::new(tokio::io::duplex(8).1));
        let (_, wr) = Transport::into_split(SharedStream::new(tokio::io::duplex(8).1));
        assert!(SharedStream::reunite(rd, wr).is_none());
    }

    #[tokio::test]
    async fn a_tcp_transport_splits_and_reunites() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream = TransportStream::from(server);
        // A tag word beside the socket (see the module doc), no more.
        assert!(std::mem::size_of::<TransportStream>() <= std::mem::size_of::<TcpStream>() + 8);
        let (mut rd, wr) = stream.into_split();
        client.write_all(b"x").await.unwrap();
        std::future::poll_fn(|cx| rd.poll_read_ready(cx)).await.unwrap();
        let mut got = [0u8; 1];
        rd.read_exact(&mut got).await.unwrap();
        let mut stream = TransportStream::reunite(rd, wr).unwrap();
        stream.write_all(b"y").await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"y");
    }
}
