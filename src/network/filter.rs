//! Network filters. Courier's network filters so far are terminal (`tcp_proxy`, and
//! the HTTP connection manager to come): the filter takes the connection and runs
//! it to its end on the worker. Filters that only inspect or veto a connection
//! will get their own trait when the first one arrives.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use super::connection::DownstreamConnection;
use super::listener_filter::ListenerFilterFactory;
use super::tls::{DownstreamTls, TransportSocketBuilder};
use crate::config::{ConfigError, FieldPath};

/// A future that runs on one worker (it may hold `Rc`s).
pub type LocalBoxFuture = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Built once from config on the main thread, used by every worker.
pub trait NetworkFilterFactory: Send + Sync + Debug {
    /// Takes over `conn` and returns the task that serves it to completion.
    fn on_new_connection(&self, conn: DownstreamConnection) -> LocalBoxFuture;
}

/// One of a listener's network filter chains, chosen per connection by the
/// listener's `FilterChainMatcher`. A chain's transport socket (TLS termination)
/// belongs here too: it wraps the connection once the chain is chosen
/// (`active_listener::serve_connection`), before the terminal filter takes it.
#[derive(Debug, Clone)]
pub struct FilterChain {
    pub name: String,
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
    ) -> Result<Arc<dyn NetworkFilterFactory>, ConfigError>;

    /// Builds a listener filter (`listener_filters[i].typed_config`) the same way.
    fn build_listener_filter(
        &self,
        typed_config: &Any,
        path: &FieldPath,
        listener: ListenerScope<'_>,
    ) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError>;

    /// What builds a chain's `transport_socket`; `None` refuses one.
    fn transport_sockets(&self) -> Option<&dyn TransportSocketBuilder> {
        None
    }
}
