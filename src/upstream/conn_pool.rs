//! The seam between the router and the per-host connection pools (Envoy's
//! `ConnectionPool::Instance`): a worker keeps one pool per (host, protocol),
//! and the router asks for "the pool of this host for this protocol", then
//! talks to the one it got. An enum rather than a trait object, so the HTTP/1
//! path stays as it was (one `Rc` clone, no boxing, a match the compiler
//! sees through).

use std::rc::Rc;
use std::sync::Arc;

use super::cluster::UpstreamProtocol;
use super::host::Host;
use super::http1_conn_pool::{Http1ConnPool, Http1ResponseBody};
use super::http2_conn_pool::{Http2ConnPool, Http2ResponseBody};

/// The HTTP version of a pool (never `UseDownstream`: that is resolved per
/// request before a pool is chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http1,
    Http2,
}

impl From<UpstreamProtocol> for Protocol {
    fn from(p: UpstreamProtocol) -> Protocol {
        match p {
            UpstreamProtocol::Http2 => Protocol::Http2,
            // `Auto` picks its pool by ALPN (`mixed_conn_pool`), never by this.
            UpstreamProtocol::Http1 | UpstreamProtocol::UseDownstream | UpstreamProtocol::Auto => Protocol::Http1,
        }
    }
}

/// One host's pool on one worker, of either protocol.
#[derive(Clone)]
pub enum ConnPool {
    Http1(Rc<Http1ConnPool>),
    Http2(Rc<Http2ConnPool>),
}

impl ConnPool {
    pub fn host(&self) -> &Arc<Host> {
        match self {
            ConnPool::Http1(p) => p.host(),
            ConnPool::Http2(p) => p.host(),
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            ConnPool::Http1(_) => Protocol::Http1,
            ConnPool::Http2(_) => Protocol::Http2,
        }
    }
}

/// An upstream response body of either protocol: it owns what the response
/// holds upstream (an HTTP/1 connection, an HTTP/2 stream) until it ends.
/// `http::body::ResponseBody` keeps each as a source of its own.
pub enum UpstreamResponseBody {
    Http1(Http1ResponseBody),
    Http2(Http2ResponseBody),
}

impl UpstreamResponseBody {
    /// After a 101 on HTTP/1: the connection, for a tunnel (HTTP/2 upgrades,
    /// extended CONNECT, are not supported).
    pub fn take_upgraded(&mut self) -> Option<super::http1_conn_pool::UpgradedUpstream> {
        match self {
            UpstreamResponseBody::Http1(b) => b.take_upgraded(),
            UpstreamResponseBody::Http2(_) => None,
        }
    }
}

/// For code that reads a response body without caring which protocol carried it
/// (the encoder filters reading it whole).
impl hyper::body::Body for UpstreamResponseBody {
    type Data = bytes::Bytes;
    type Error = super::http1_conn_pool::UpstreamBodyError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.get_mut() {
            UpstreamResponseBody::Http1(b) => std::pin::Pin::new(b).poll_frame(cx),
            UpstreamResponseBody::Http2(b) => std::pin::Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamResponseBody::Http1(b) => b.is_end_stream(),
            UpstreamResponseBody::Http2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            UpstreamResponseBody::Http1(b) => b.size_hint(),
            UpstreamResponseBody::Http2(b) => b.size_hint(),
        }
    }
}

/// A pool whose idle connections close after the cluster's `idle_timeout`.
pub(super) trait IdleReaping {
    /// Closes the connections idle past the timeout; when the next idle one
    /// expires, or `None` when none is idle.
    fn close_expired(&self) -> Option<tokio::time::Instant>;
    /// Whether the pool's reaper task runs (one per pool at most).
    fn reaper_running(&self) -> &std::cell::Cell<bool>;
}

/// Starts `pool`'s idle timer unless it runs: one task per pool, alive only
/// while connections are idle (Envoy closes an upstream connection idle for
/// `idle_timeout`). Both pools' timer.
pub(super) fn start_reaper<P: IdleReaping + 'static>(pool: &P, me: &std::rc::Weak<P>) {
    if !pool.reaper_running().replace(true) {
        tokio::task::spawn_local(reap_idle(me.clone()));
    }
}

async fn reap_idle<P: IdleReaping>(pool: std::rc::Weak<P>) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let Some(next) = p.close_expired() else {
            p.reaper_running().set(false);
            return;
        };
        drop(p);
        tokio::time::sleep_until(next).await;
    }
}
