//! Listener filters: what runs on an accepted socket before any filter chain is
//! chosen (Envoy's `Network::ListenerFilter`). They look at the first bytes without
//! consuming them (TLS and HTTP inspectors: `MSG_PEEK` on the TCP socket, under
//! any transport) or consume a header that is not the client's (PROXY protocol),
//! and record what the filter-chain match reads: server name, transport and
//! application protocols, the addresses. The filters themselves are extensions,
//! built in `extensions` and handed down as `ListenerFilterFactory`s, so the
//! listener layer names none of them.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;

use tokio::io::Interest;

use super::client_hello::Fingerprints;
use crate::common::dynamic_metadata::DynamicMetadata;
use tokio::net::TcpStream;

/// An accepted socket while its listener filters run (Envoy's `ConnectionSocket`
/// seen through `ListenerFilterCallbacks`).
#[derive(Debug)]
pub struct AcceptedSocket {
    /// The raw TCP socket: listener filters run before any transport socket.
    pub stream: TcpStream,
    /// The client, as the PROXY protocol may restore it.
    pub remote: SocketAddr,
    /// The destination, as the PROXY protocol or `original_dst` may restore it.
    pub local: SocketAddr,
    /// `local` is the destination before a redirect (`original_dst` found it):
    /// only then does an ORIGINAL_DST cluster connect to it, as Envoy's.
    pub local_restored: bool,
    /// The TCP peer itself.
    pub direct_remote: SocketAddr,
    /// SNI, lower case (TLS inspector).
    pub server_name: String,
    /// `tls` once the TLS inspector saw a ClientHello; empty is `raw_buffer`.
    pub transport_protocol: &'static str,
    /// ALPN or the HTTP inspector's finding, in the client's order.
    pub application_protocols: Vec<String>,
    /// The ClientHello's JA3/JA4, when the TLS inspector was asked for them.
    pub tls_fingerprints: Option<Fingerprints>,
    /// What listener filters attached to the connection (the PROXY protocol
    /// filter's `rules`), for its filters and TCP access logs.
    pub dynamic_metadata: DynamicMetadata,
    /// The TLVs of the PROXY v2 header the PROXY filter read and kept
    /// (`pass_through_tlvs`).
    pub proxy_protocol_tlvs: Option<super::proxy_protocol::Tlvs>,
    /// When the socket was accepted, kept only for a listener's own access
    /// log (`connection_log`).
    pub accepted: Option<(std::time::Instant, std::time::SystemTime)>,
}

/// Why a listener filter gave up on a socket; the socket is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerFilterError {
    /// The client closed (or reset) before the filter had what it needs
    /// (`downstream_listener_filter_remote_close`).
    RemoteClose,
    /// The bytes were not what the filter accepts, e.g. a bad PROXY header
    /// (counted by the filter, e.g. `proxy_proto.versions.v1.error`).
    Rejected,
}

/// A listener filter's work on one socket.
pub type ListenerFilterFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ListenerFilterError>> + 'a>>;

/// Built once from config on the main thread, run by every worker on each
/// accepted socket, in the order of `listener_filters`.
pub trait ListenerFilterFactory: Send + Sync + Debug {
    fn on_accept<'a>(&'a self, socket: &'a mut AcceptedSocket) -> ListenerFilterFuture<'a>;
}

impl AcceptedSocket {
    /// Copies the bytes waiting on the socket into `buf` without consuming them,
    /// waiting until there are more than `have` (what an earlier peek saw), `buf`
    /// is full, or the client has closed its side. Returns how many were copied;
    /// no more than `have` means the client closed without sending more.
    pub async fn peek_more(&self, buf: &mut [u8], have: usize) -> io::Result<usize> {
        peek_more(&self.stream, buf, have).await
    }
}

/// `AcceptedSocket::peek_more` on a bare socket (the TLS transport reads the
/// ClientHello with it too).
pub async fn peek_more(stream: &TcpStream, buf: &mut [u8], have: usize) -> io::Result<usize> {
    loop {
        let ready = stream.ready(Interest::READABLE).await?;
        let peeked = stream.try_io(Interest::READABLE, || {
            let n = peek(stream, buf)?;
            // Same bytes as before: wait for the next readiness edge rather
            // than spin (tokio keeps a socket readable until a read blocks).
            if n <= have && n < buf.len() && !ready.is_read_closed() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match peeked {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `recv(MSG_PEEK)`: tokio's own `peek` cannot tell "the same bytes again" from
/// "new bytes", which `peek_more` needs.
fn peek(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes and the fd is open for
    // as long as `stream` is borrowed.
    let n = unsafe { libc::recv(stream.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
