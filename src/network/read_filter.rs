//! A chain's read filters on one connection (Envoy's network filter manager,
//! read side): they see the connection start, then each read, before the
//! terminal filter does, in order, and any of them may close the connection.
//!
//! The terminal filters read their stream themselves (the relay of
//! `tcp_proxy`, the codecs of the connection manager), so the read filters
//! live in the stream: `ReadFiltered` wraps the transport, and each read it
//! passes up has been through the filters; a read a filter refuses reaches
//! the terminal filter as an error (`ClosedByFilter`), as a connection Envoy
//! closed under it. A chain of the terminal filter alone gets no wrapper
//! (`start_chain`), so its connections cost what they did before read filters
//! existed — unless the listener has an `access_log`: the wrapper is also
//! where the connection's bytes are counted for it (`ConnectionReport`).
//!
//! Envoy's order follows: the terminal filter starts once every read filter
//! let the connection go on (a `tcp_proxy` connects upstream then), and the
//! first bytes are decided on after that (RBAC's default enforcement): the
//! upstream of a refused connection sees it open and close with no data, as
//! with Envoy 1.40.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::connection::{ConnectionInfo, DownstreamConnection};
use super::connection_log::ConnectionReport;
use super::filter::{FilterChain, LocalBoxFuture, ReadFilter, ReadFilterContext, ReadFilterStatus};
use super::transport::{ReadReady, SharedStream, TransportStream};
use crate::common::dynamic_metadata::DynamicMetadata;

/// Starts `conn` on `chain`: its read filters' `on_new_connection`, then, if
/// none closed it, the terminal filter over the filtered stream.
pub fn start_chain(chain: &FilterChain, mut conn: DownstreamConnection) -> LocalBoxFuture {
    if chain.read_filters.is_empty() && conn.report.is_none() {
        return chain.terminal.on_new_connection(conn);
    }
    let mut filters: Vec<Box<dyn ReadFilter>> = chain.read_filters.iter().map(|f| f.create()).collect();
    let mut termination_details = None;
    let mut cx = ReadFilterContext {
        info: &conn.info,
        dynamic_metadata: &mut conn.dynamic_metadata,
        termination_details: &mut termination_details,
    };
    let status = filters
        .iter_mut()
        .map(|f| f.on_new_connection(&mut cx))
        .find(|s| *s != ReadFilterStatus::Continue)
        .unwrap_or(ReadFilterStatus::Continue);
    if status != ReadFilterStatus::Continue {
        chain.terminal.on_refused_connection();
    }
    match status {
        ReadFilterStatus::Continue => {}
        // The terminal filter never starts; dropping the filters and the
        // connection closes it.
        ReadFilterStatus::Close => return Box::pin(async move { drop((conn, filters)) }),
        ReadFilterStatus::CloseAfter(delay) => {
            return Box::pin(async move {
                tokio::time::sleep(delay).await;
                drop((conn, filters))
            })
        }
    }
    let DownstreamConnection { stream, info, buffer_limit, dynamic_metadata, report } = conn;
    let filtered = ReadFiltered {
        inner: stream,
        counted: report.clone(),
        filters: filters.into_boxed_slice(),
        state: ConnectionState { info: info.clone(), dynamic_metadata: DynamicMetadata::default() },
        termination_details,
        phase: Phase::Open,
    };
    let stream = TransportStream::Filtered(SharedStream::new(filtered));
    chain.terminal.on_new_connection(DownstreamConnection { stream, info, buffer_limit, dynamic_metadata, report })
}

/// What the filters read of the connection while it runs.
struct ConnectionState {
    info: ConnectionInfo,
    /// What the filters set after the connection started (RBAC's shadow result).
    dynamic_metadata: DynamicMetadata,
}

/// Where the filtered stream is.
enum Phase {
    Open,
    /// A filter closes the connection once this fires; nothing is read
    /// meanwhile. The refused read's length is told then.
    Closing(Pin<Box<Sleep>>, usize),
    Closed,
}

/// A transport whose reads pass through the chain's read filters.
pub struct ReadFiltered {
    inner: TransportStream,
    /// Where the bytes read and written are counted, for the listener's log.
    counted: Option<Rc<ConnectionReport>>,
    filters: Box<[Box<dyn ReadFilter>]>,
    state: ConnectionState,
    termination_details: Option<String>,
    phase: Phase,
}

impl fmt::Debug for ReadFiltered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadFiltered")
            .field("inner", &self.inner)
            .field("filters", &self.filters.len())
            .field("closed", &!matches!(self.phase, Phase::Open))
            .finish()
    }
}

/// The error a terminal filter reads once a read filter closed the connection:
/// how many bytes the refused read held (the connection read them, as Envoy's
/// counts them, though no filter after the one that closed saw them).
#[derive(Debug, Clone, Copy)]
pub struct ClosedByFilter {
    pub unread: usize,
}

impl fmt::Display for ClosedByFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection closed by a network filter")
    }
}

impl std::error::Error for ClosedByFilter {}

impl ClosedByFilter {
    fn error(unread: usize) -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, ClosedByFilter { unread })
    }

    /// Whether `e` is a read filter's close.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|e| e.is::<ClosedByFilter>())
    }

    /// The bytes a read that failed with `e` had taken off the connection.
    pub fn unread_of(e: &io::Error) -> usize {
        e.get_ref().and_then(|e| e.downcast_ref::<ClosedByFilter>()).map_or(0, |c| c.unread)
    }
}

impl ReadFiltered {
    /// The inner transport (ALPN and the like).
    pub fn inner(&self) -> &TransportStream {
        &self.inner
    }

    /// What the filters set in the connection's dynamic metadata once it ran.
    pub fn dynamic_metadata(&self) -> &DynamicMetadata {
        &self.state.dynamic_metadata
    }

    /// Why a filter closed the connection.
    pub fn termination_details(&self) -> Option<&str> {
        self.termination_details.as_deref()
    }

    fn count_sent(&self, written: usize) {
        if let Some(c) = &self.counted {
            c.bytes_sent.set(c.bytes_sent.get() + written as u64);
        }
    }

    /// Runs the filters on one read; the first that does not continue decides.
    fn on_data(&mut self, data: &[u8], end_stream: bool) -> ReadFilterStatus {
        let mut cx = ReadFilterContext {
            info: &self.state.info,
            dynamic_metadata: &mut self.state.dynamic_metadata,
            termination_details: &mut self.termination_details,
        };
        for f in self.filters.iter_mut() {
            let status = f.on_data(data, end_stream, &mut cx);
            if status != ReadFilterStatus::Continue {
                return status;
            }
        }
        ReadFilterStatus::Continue
    }
}

impl AsyncRead for ReadFiltered {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            // Nothing can be read: not an end of stream for the filters to see.
            return Poll::Ready(Ok(()));
        }
        loop {
            match &mut this.phase {
                Phase::Open => {}
                Phase::Closing(timer, unread) => {
                    ready!(timer.as_mut().poll(cx));
                    let unread = *unread;
                    this.phase = Phase::Closed;
                    return Poll::Ready(Err(ClosedByFilter::error(unread)));
                }
                Phase::Closed => return Poll::Ready(Err(ClosedByFilter::error(0))),
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let read = buf.filled().len() - before;
            if let Some(c) = &this.counted {
                c.bytes_received.set(c.bytes_received.get() + read as u64);
            }
            match this.on_data(&buf.filled()[before..], read == 0) {
                ReadFilterStatus::Continue => return Poll::Ready(Ok(())),
                ReadFilterStatus::Close => {
                    buf.set_filled(before);
                    this.phase = Phase::Closed;
                    return Poll::Ready(Err(ClosedByFilter::error(read)));
                }
                // Envoy stops reading until the timer closes the connection.
                ReadFilterStatus::CloseAfter(delay) => {
                    buf.set_filled(before);
                    this.phase = Phase::Closing(Box::pin(tokio::time::sleep(delay)), read);
                }
            }
        }
    }
}

impl AsyncWrite for ReadFiltered {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Closed) {
            return Poll::Ready(Err(ClosedByFilter::error(0)));
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.count_sent(written);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Closed) {
            return Poll::Ready(Err(ClosedByFilter::error(0)));
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.count_sent(written);
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl ReadReady for ReadFiltered {
    /// Once a filter decided to close, a read is what tells the terminal
    /// filter (it waits on the timer first, registering the task).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.phase {
            Phase::Open => self.inner.poll_read_ready(cx),
            Phase::Closing(..) | Phase::Closed => Poll::Ready(Ok(())),
        }
    }
}
