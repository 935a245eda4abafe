//! Network filters. A chain ends with one terminal filter (`tcp_proxy`, the HTTP
//! connection manager), which takes the connection and runs it to its end on the
//! worker. Before it, as in Envoy, come read filters (`ReadFilter`: RBAC, ...),
//! which see the connection start and each read before the terminal filter
//! does, and may let it go on or close it. They sit in the connection's stream
//! (`read_filter::ReadFiltered`), so the terminal filter reads through them
//! without knowing; a chain of the terminal filter alone has no such layer.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::google::protobuf::Any;

use super::connection::{ConnectionInfo, DownstreamConnection};
use super::listener_filter::ListenerFilterFactory;
use super::tls::{DownstreamTls, TransportSocketBuilder};
use crate::config::{ConfigError, FieldPath};

/// A future that runs on one worker (it may hold `Rc`s).
pub type LocalBoxFuture = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Built once from config on the main thread, used by every worker.
pub trait NetworkFilterFactory: Send + Sync + Debug {
    /// Takes over `conn` and returns the task that serves it to completion.
    fn on_new_connection(&self, conn: DownstreamConnection) -> LocalBoxFuture;

    /// A read filter before this one closed the connection as it started, so
    /// this one never ran: Envoy had created it all the same, and counts the
    /// connection in its stats.
    fn on_refused_connection(&self) {}
}

/// What a read filter decides on an event of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFilterStatus {
    /// The next filter (at last the terminal one) sees the event.
    Continue,
    /// The connection closes now; no later filter sees the event (Envoy's
    /// `NoFlush` close and `StopIteration`).
    Close,
    /// Nothing more is read and the connection closes after this long (RBAC's
    /// `delay_deny`, `connection_limit`'s `delay`).
    CloseAfter(Duration),
}

/// What a read filter may read and write of its connection.
pub struct ReadFilterContext<'a> {
    pub info: &'a ConnectionInfo,
    /// The connection's dynamic metadata (Envoy's connection stream info).
    pub dynamic_metadata: &'a mut crate::common::dynamic_metadata::DynamicMetadata,
    /// Why the connection was closed, for `%CONNECTION_TERMINATION_DETAILS%`.
    pub termination_details: &'a mut Option<String>,
}

/// A non-terminal network filter of one connection (worker-local).
pub trait ReadFilter {
    /// The connection was accepted (after its TLS handshake, if any), before
    /// the terminal filter starts.
    fn on_new_connection(&mut self, _cx: &mut ReadFilterContext<'_>) -> ReadFilterStatus {
        ReadFilterStatus::Continue
    }

    /// Bytes were read (`data` empty with `end_stream`: the peer closed its side).
    fn on_data(&mut self, _data: &[u8], _end_stream: bool, _cx: &mut ReadFilterContext<'_>) -> ReadFilterStatus {
        ReadFilterStatus::Continue
    }
}

/// Built once from config on the main thread; makes each connection's filter.
pub trait ReadFilterFactory: Send + Sync + Debug {
    fn create(&self) -> Box<dyn ReadFilter>;
}

/// A built network filter: the chain's last (terminal) one, or one before it.
#[derive(Debug, Clone)]
pub enum NetworkFilter {
    Terminal(Arc<dyn NetworkFilterFactory>),
    Read(Arc<dyn ReadFilterFactory>),
}

/// One of a listener's network filter chains, chosen per connection by the
/// listener's `FilterChainMatcher`. A chain's transport socket (TLS termination)
/// belongs here too: it wraps the connection once the chain is chosen
/// (`active_listener::serve_connection`), before the terminal filter takes it.
#[derive(Debug, Clone)]
pub struct FilterChain {
    pub name: String,
    /// The filters before the terminal one, in order (usually none).
    pub read_filters: Box<[Arc<dyn ReadFilterFactory>]>,
    pub terminal: Arc<dyn NetworkFilterFactory>,
    /// The chain's `transport_socket` (TLS); `None`: plain TCP.
    pub transport_socket: Option<Arc<DownstreamTls>>,
}

/// What the listener being built tells the code that builds its network filters.
#[derive(Debug, Clone, Copy)]
pub struct ListenerScope<'a> {
    /// The listener's stat scope (`listener.<scope>.`).
    pub stat_scope: &'a str,
    /// The listener's `per_connection_buffer_limit_bytes`: what a connection's
    /// filters may buffer.
    pub buffer_limit: u32,
    /// `bypass_overload_manager`: no overload action applies to its connections.
    pub bypass_overload_manager: bool,
    /// `traffic_direction: OUTBOUND`: the connection manager's tracing is egress.
    pub outbound: bool,
}

/// Builds a network filter from its `typed_config` (`path` points at it) for the
/// listener described by `listener`. The layer that knows the extensions
/// implements it, so that building a listener needs none of them.
pub trait NetworkFilterBuilder {
    fn build(
        &self,
        typed_config: &Any,
        path: &FieldPath,
        listener: ListenerScope<'_>,
    ) -> Result<NetworkFilter, ConfigError>;

    /// Builds a listener filter (`listener_filters[i].typed_config`) the same way.
    fn build_listener_filter(
        &self,
        typed_config: &Any,
        path: &FieldPath,
        listener: ListenerScope<'_>,
    ) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError>;

    /// Builds the listener's own `access_log` entries (`path` points at the
    /// list); by default a listener with one is refused.
    fn build_access_logs(
        &self,
        logs: &[envoy_types::pb::envoy::config::accesslog::v3::AccessLog],
        path: &FieldPath,
    ) -> Result<Vec<Arc<dyn super::connection_log::ListenerAccessLog>>, ConfigError> {
        match logs.is_empty() {
            true => Ok(Vec::new()),
            false => Err(path.error("a listener's access_log is not supported here")),
        }
    }

    /// What builds a chain's `transport_socket`; `None` refuses one.
    fn transport_sockets(&self) -> Option<&dyn TransportSocketBuilder> {
        None
    }
}
