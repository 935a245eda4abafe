//! The listener path: listen sockets created by the main thread's
//! `ListenerManager`, accepted on every worker by an `ActiveListener`, each new
//! connection handed to the network filter chain of its listener.

pub mod active_listener;
pub mod address;
pub mod client_hello;
pub mod connection;
pub mod connection_log;
pub mod drain;
pub mod filter;
pub mod filter_chain_match;
pub mod listener;
pub mod listener_filter;
pub mod listener_manager;
pub mod proxy_protocol;
pub mod read_filter;
pub mod socket;
pub mod tls;
pub mod tls_session;
mod tls_session_id;
pub mod transport;

pub use connection::{ConnectionInfo, DownstreamConnection};
pub use connection_log::{
    ConnectionLogCause, ConnectionLogEvent, ConnectionReport, ListenerAccessLog, ListenerAccessLogs,
};
pub use drain::{DrainPhase, DrainWatch};
pub use filter::{
    FilterChain, ListenerScope, NetworkFilter, NetworkFilterBuilder, NetworkFilterFactory, ReadFilter,
    ReadFilterContext, ReadFilterFactory, ReadFilterStatus,
};
pub use filter_chain_match::{Cidr, FilterChainMatcher, MatchInput};
pub use listener::ListenerConfig;
pub use listener_filter::{AcceptedSocket, ListenerFilterError, ListenerFilterFactory, ListenerFilterFuture};
pub use listener_manager::ListenerManager;
pub use transport::{Transport, TransportStream};
