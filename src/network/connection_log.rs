//! A listener's own `access_log` (`Listener.access_log`): one line per
//! connection, as Envoy 1.40 writes it (checked by running it): when a
//! connection ends, and for a socket that never reached a filter chain — none
//! matched (response flag `NR`, details `filter_chain_not_found`), or a
//! listener filter closed it or timed out. The line knows what the listener
//! knows of the connection (addresses, TLS, SNI, the listener filters'
//! metadata, its duration), not what a terminal filter did with it.
//!
//! The loggers themselves (format, filter, file) belong to a layer above
//! this one: they come in as `ListenerAccessLog`, built by the
//! `NetworkFilterBuilder` that builds the listener's filters.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::client_hello::InspectedHello;
use super::tls::DownstreamTlsInfo;
use crate::common::dynamic_metadata::DynamicMetadata;

/// Why a listener logs a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLogCause {
    /// The connection went through a filter chain and ended.
    Closed,
    /// No filter chain matched the socket (`no_filter_chain_match`).
    NoFilterChain,
    /// A listener filter closed the socket, or its timeout did.
    ListenerFilterClosed,
}

/// What a listener knows of one connection when it logs it.
#[derive(Debug)]
pub struct ConnectionLogEvent<'a> {
    pub cause: ConnectionLogCause,
    pub remote: SocketAddr,
    pub direct_remote: SocketAddr,
    pub local: SocketAddr,
    /// When the socket was accepted (monotonic, and wall-clock).
    pub accepted: Instant,
    pub accepted_at: SystemTime,
    /// The TLS session a filter chain's transport socket terminated.
    pub tls: Option<&'a Rc<DownstreamTlsInfo>>,
    /// The TLS inspector's SNI and fingerprints.
    pub hello: Option<&'a Rc<InspectedHello>>,
    /// What the listener filters attached.
    pub dynamic_metadata: &'a DynamicMetadata,
}

/// One entry of a listener's `access_log`.
pub trait ListenerAccessLog: Send + Sync + Debug {
    fn log(&self, event: &ConnectionLogEvent<'_>);
}

/// The listener's loggers, shared by its workers.
pub type ListenerAccessLogs = Box<[Arc<dyn ListenerAccessLog>]>;

/// A connection's facts kept until it ends, for the listener's loggers; only
/// a listener that has some keeps them.
#[derive(Debug)]
pub struct PendingConnectionLog {
    pub remote: SocketAddr,
    pub direct_remote: SocketAddr,
    pub local: SocketAddr,
    pub accepted: Instant,
    pub accepted_at: SystemTime,
    pub tls: Option<Rc<DownstreamTlsInfo>>,
    pub hello: Option<Rc<InspectedHello>>,
    pub dynamic_metadata: DynamicMetadata,
}

impl PendingConnectionLog {
    /// Writes the connection's line to each of `logs`.
    pub fn write(&self, cause: ConnectionLogCause, logs: &[Arc<dyn ListenerAccessLog>]) {
        let event = ConnectionLogEvent {
            cause,
            remote: self.remote,
            direct_remote: self.direct_remote,
            local: self.local,
            accepted: self.accepted,
            accepted_at: self.accepted_at,
            tls: self.tls.as_ref(),
            hello: self.hello.as_ref(),
            dynamic_metadata: &self.dynamic_metadata,
        };
        logs.iter().for_each(|l| l.log(&event));
    }
}
