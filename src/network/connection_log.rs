//! A listener's own `access_log` (`Listener.access_log`): one line per
//! connection, as Envoy 1.40 writes it (checked by running it): when a
//! connection ends, and for a socket that never reached a filter chain — none
//! matched (response flag `NR`, details `filter_chain_not_found`), or a
//! listener filter closed it or timed out. The line knows what the listener
//! knows of the connection (addresses, TLS, SNI, the listener filters'
//! metadata, its duration) and what its filters told it in a
//! `ConnectionReport` (Envoy's connection-level `StreamInfo`): the bytes the
//! connection read and wrote, the protocol a codec spoke, what `tcp_proxy`
//! did upstream. A request-level value (`%REQ(...)%`, `%RESPONSE_CODE%`) is
//! not the connection's: it prints `-` or 0, as in Envoy.
//!
//! The loggers themselves (format, filter, file) belong to a layer above
//! this one: they come in as `ListenerAccessLog`, built by the
//! `NetworkFilterBuilder` that builds the listener's filters.

use std::any::Any;
use std::cell::{Cell, Ref, RefCell};
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
    /// What the connection's filters told (nothing for a socket that never
    /// reached a chain).
    pub report: &'a ConnectionReport,
}

/// What a connection's filters tell its listener's loggers, shared with them
/// while it runs: the bytes read and written under the filters (as Envoy's
/// connection counts them: decrypted, each read whether a filter let it
/// through or not), the protocol a codec spoke, and what the terminal filter
/// recorded (`tcp_proxy`'s upstream host, cluster and flags: a `StreamInfo`,
/// which this layer does not name). Only a listener with an `access_log`
/// makes one.
#[derive(Debug, Default)]
pub struct ConnectionReport {
    pub bytes_received: Cell<u64>,
    pub bytes_sent: Cell<u64>,
    /// `HTTP/1.1`, `HTTP/2` once a codec spoke it (`%PROTOCOL%`).
    pub protocol: Cell<&'static str>,
    filter_info: RefCell<Option<Box<dyn Any>>>,
}

impl ConnectionReport {
    /// Keeps what the terminal filter recorded of the connection.
    pub fn set_filter_info(&self, info: Box<dyn Any>) {
        *self.filter_info.borrow_mut() = Some(info);
    }

    /// What the terminal filter recorded, if it was a `T`.
    pub fn filter_info<T: 'static>(&self) -> Option<Ref<'_, T>> {
        Ref::filter_map(self.filter_info.borrow(), |i| i.as_ref().and_then(|i| i.downcast_ref::<T>())).ok()
    }
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
    /// Shared with the connection's filters (`DownstreamConnection::report`).
    pub report: Rc<ConnectionReport>,
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
            report: &self.report,
        };
        logs.iter().for_each(|l| l.log(&event));
    }
}
