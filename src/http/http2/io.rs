//! The HTTP/2 codec's view of its transport: the bytes already read are read
//! again first, and bytes are counted each way.
//!
//! `codec_type: AUTO` reads the start of a connection to tell the HTTP/2
//! preface from an HTTP/1 request line; when it is HTTP/2, the codec must
//! still see the preface, so the bytes read go back in front of the rest.
//! Generic over the transport, so a TLS stream plugs in as a TCP one does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::network::transport::ReadReady;
use crate::stats::Counter;

/// `io` with `prefix` read before it; `rx`/`tx` count what crosses `io`.
pub struct CodecIo<T> {
    prefix: BytesMut,
    io: T,
    rx: Arc<Counter>,
    tx: Arc<Counter>,
}

impl<T> CodecIo<T> {
    /// `prefix` was read from `io` and counted already.
    pub fn new(prefix: BytesMut, io: T, rx: Arc<Counter>, tx: Arc<Counter>) -> CodecIo<T> {
        CodecIo { prefix, io, rx, tx }
    }

    fn count_outbound(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = *polled {
            self.tx.add(n as u64);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CodecIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Nothing of the read buffer is kept once replayed.
                self.prefix = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.rx.add(n as u64);
        }
        polled
    }
}

/// Ready at once while bytes read before the codec started are left.
impl<T: ReadReady> ReadReady for CodecIo<T> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.io.poll_read_ready(cx)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CodecIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.count_outbound(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.count_outbound(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_prefix_is_read_before_the_transport() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b" world").await.unwrap();
        drop(a);
        let rx = Arc::new(Counter::default());
        let mut r = CodecIo::new(BytesMut::from(&b"hello"[..]), b, rx.clone(), Arc::new(Counter::default()));
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
        assert_eq!(rx.value(), 6, "the prefix was counted when first read");
    }
}
