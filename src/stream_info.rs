//! Per-request facts gathered while a stream is served (Envoy's `StreamInfo`):
//! timing, the upstream chosen, bytes, the response code and the response flags.
//! The access log and the header formatter read it. Filters attach structured
//! values to it (`dynamic_metadata`, kept in `common` since a connection's
//! listener filters write it too).

pub use crate::common::dynamic_metadata::{self, DynamicMetadata};

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Envoy's response flags (`%RESPONSE_FLAGS%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ResponseFlag {
    FailedLocalHealthCheck = 1 << 0,
    NoHealthyUpstream = 1 << 1,
    UpstreamRequestTimeout = 1 << 2,
    LocalReset = 1 << 3,
    UpstreamRemoteReset = 1 << 4,
    UpstreamConnectionFailure = 1 << 5,
    UpstreamConnectionTermination = 1 << 6,
    UpstreamOverflow = 1 << 7,
    NoRouteFound = 1 << 8,
    DelayInjected = 1 << 9,
    FaultInjected = 1 << 10,
    RateLimited = 1 << 11,
    DownstreamConnectionTermination = 1 << 12,
    UpstreamRetryLimitExceeded = 1 << 13,
    StreamIdleTimeout = 1 << 14,
    DownstreamProtocolError = 1 << 15,
    UpstreamProtocolError = 1 << 16,
    UpstreamMaxStreamDurationReached = 1 << 17,
    NoClusterFound = 1 << 18,
    DurationTimeout = 1 << 19,
    OverloadManager = 1 << 20,
    DownstreamRemoteReset = 1 << 21,
    UnauthorizedExternalService = 1 << 22,
    DropOverload = 1 << 23,
    UnconditionalDropOverload = 1 << 24,
}

impl ResponseFlag {
    /// All flags, in Envoy's declaration order.
    pub const ALL: [ResponseFlag; 25] = [
        ResponseFlag::FailedLocalHealthCheck,
        ResponseFlag::NoHealthyUpstream,
        ResponseFlag::UpstreamRequestTimeout,
        ResponseFlag::LocalReset,
        ResponseFlag::UpstreamRemoteReset,
        ResponseFlag::UpstreamConnectionFailure,
        ResponseFlag::UpstreamConnectionTermination,
        ResponseFlag::UpstreamOverflow,
        ResponseFlag::NoRouteFound,
        ResponseFlag::DelayInjected,
        ResponseFlag::FaultInjected,
        ResponseFlag::RateLimited,
        ResponseFlag::UnauthorizedExternalService,
        ResponseFlag::DownstreamConnectionTermination,
        ResponseFlag::UpstreamRetryLimitExceeded,
        ResponseFlag::StreamIdleTimeout,
        ResponseFlag::DownstreamProtocolError,
        ResponseFlag::UpstreamMaxStreamDurationReached,
        ResponseFlag::DurationTimeout,
        ResponseFlag::UpstreamProtocolError,
        ResponseFlag::NoClusterFound,
        ResponseFlag::OverloadManager,
        ResponseFlag::DropOverload,
        ResponseFlag::DownstreamRemoteReset,
        ResponseFlag::UnconditionalDropOverload,
    ];

    /// The short name printed by `%RESPONSE_FLAGS%`.
    pub fn short_name(self) -> &'static str {
        match self {
            ResponseFlag::FailedLocalHealthCheck => "LH",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::LocalReset => "LR",
            ResponseFlag::UpstreamRemoteReset => "UR",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::NoRouteFound => "NR",
            ResponseFlag::DelayInjected => "DI",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::RateLimited => "RL",
            ResponseFlag::UnauthorizedExternalService => "UAEX",
            ResponseFlag::DownstreamConnectionTermination => "DC",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::DownstreamProtocolError => "DPE",
            ResponseFlag::UpstreamProtocolError => "UPE",
            ResponseFlag::UpstreamMaxStreamDurationReached => "UMSDR",
            ResponseFlag::NoClusterFound => "NC",
            ResponseFlag::DurationTimeout => "DT",
            ResponseFlag::OverloadManager => "OM",
            ResponseFlag::DownstreamRemoteReset => "DR",
            ResponseFlag::DropOverload => "DO",
            ResponseFlag::UnconditionalDropOverload => "UDO",
        }
    }
}

/// A set of response flags, printed in the order they were set, as Envoy does
/// (a retried request that ends in a timeout logs `URX,UT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFlags {
    bits: u32,
    /// Per flag (by bit index), when it was first set: 1, 2, ...
    set_at: [u8; ResponseFlag::ALL.len()],
    sets: u8,
}

impl ResponseFlags {
    pub fn set(&mut self, f: ResponseFlag) {
        if !self.has(f) {
            self.sets = self.sets.saturating_add(1);
            self.set_at[Self::index(f)] = self.sets;
        }
        self.bits |= f as u32;
    }

    pub fn unset(&mut self, f: ResponseFlag) {
        self.bits &= !(f as u32);
    }

    pub fn has(&self, f: ResponseFlag) -> bool {
        self.bits & f as u32 != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    fn index(f: ResponseFlag) -> usize {
        (f as u32).trailing_zeros() as usize
    }

    /// The flags set, in the order they were first set.
    pub fn in_set_order(&self) -> Vec<ResponseFlag> {
        let mut set: Vec<ResponseFlag> = ResponseFlag::ALL.iter().copied().filter(|f| self.has(*f)).collect();
        set.sort_by_key(|f| self.set_at[Self::index(*f)]);
        set
    }

    /// `UH,UF` style, or `-` when empty, as `%RESPONSE_FLAGS%` prints.
    pub fn to_short_string(&self) -> String {
        if self.is_empty() {
            return "-".to_string();
        }
        let names: Vec<&str> = self.in_set_order().iter().map(|f| f.short_name()).collect();
        names.join(",")
    }
}

/// What the access log reads of an upstream connection
/// (`%UPSTREAM_LOCAL_ADDRESS%`, `%UPSTREAM_TLS_*%`, `%UPSTREAM_PEER_*%`): read
/// once when the connection is made, kept with it by its pool, and copied
/// into the `StreamInfo` of each request it carries (an address and an `Rc`:
/// no allocation per request).
#[derive(Debug, Clone, Default)]
pub struct UpstreamConnectionInfo {
    pub local: Option<SocketAddr>,
    /// The address connected to (`%UPSTREAM_REMOTE_ADDRESS%`).
    pub remote: Option<SocketAddr>,
    pub tls: Option<Rc<crate::network::tls::UpstreamTlsInfo>>,
}

/// What is known about one request/response exchange.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Wall-clock start (for `%START_TIME%`).
    pub start_time: SystemTime,
    /// Monotonic start (for durations).
    pub start: Instant,
    /// `HTTP/1.1`, `HTTP/1.0`, `HTTP/2`.
    pub protocol: &'static str,
    pub downstream_remote: SocketAddr,
    pub downstream_local: SocketAddr,
    /// `downstream_local` was restored by a listener filter (`original_dst`,
    /// `proxy_protocol`): an ORIGINAL_DST cluster connects to it.
    pub downstream_local_restored: bool,
    /// The PROXY TLVs the downstream connection's listener kept, for an
    /// upstream PROXY header.
    pub downstream_proxy_protocol_tlvs: Option<crate::network::proxy_protocol::Tlvs>,
    pub response_code: Option<u16>,
    /// Envoy's `%RESPONSE_CODE_DETAILS%` (`via_upstream`, `route_not_found`, ...).
    pub response_code_details: &'static str,
    pub response_flags: ResponseFlags,
    /// Request body bytes received from downstream.
    pub bytes_received: u64,
    /// Response body bytes sent to downstream.
    pub bytes_sent: u64,
    pub upstream_host: Option<SocketAddr>,
    /// The worker's copy of the cluster's name (no allocation per request).
    pub upstream_cluster: Option<Rc<str>>,
    /// The local address of the upstream connection the request went on.
    pub upstream_local: Option<SocketAddr>,
    /// The address that connection was made to: unlike `upstream_host`, none
    /// when no connection was had (`%UPSTREAM_REMOTE_ADDRESS%` prints `-`
    /// after a refused connect in Envoy 1.40).
    pub upstream_remote: Option<SocketAddr>,
    /// That connection's TLS session (`%UPSTREAM_TLS_*%`, `%UPSTREAM_PEER_*%`).
    pub upstream_tls: Option<Rc<crate::network::tls::UpstreamTlsInfo>>,
    /// The protocol of that connection (`HTTP/1.1`, `HTTP/2`): how the
    /// response's body arrives (Envoy's HTTP/1 codec ends it with an empty data
    /// call of its own, which filters such as the decompressor see).
    pub upstream_protocol: Option<&'static str>,
    pub route_name: Option<String>,
    /// When the last request byte was received, from `start`.
    pub last_downstream_rx: Option<Duration>,
    /// When the first upstream response byte arrived, from `start`.
    pub first_upstream_rx: Option<Duration>,
    /// When the last response byte was sent downstream, from `start`.
    pub last_downstream_tx: Option<Duration>,
    /// Upstream connection failure reason (`%UPSTREAM_TRANSPORT_FAILURE_REASON%`).
    pub upstream_transport_failure_reason: Option<String>,
    /// How many times the router retried.
    pub attempt_count: u32,
    /// The request is a health check (set by the health_check filter): as Envoy,
    /// it is left out of the `downstream_rq_<class>` and `downstream_rq_completed`
    /// counts.
    pub health_check: bool,
    /// The downstream connection's TLS session (`%DOWNSTREAM_PEER_*%`, XFCC).
    pub downstream_tls: Option<Rc<crate::network::tls::DownstreamTlsInfo>>,
    /// The downstream ClientHello's JA3/JA4 (`%TLS_JA3_FINGERPRINT%`, ...).
    pub downstream_hello: Option<Rc<crate::network::client_hello::InspectedHello>>,
    /// What filters attached (`%DYNAMIC_METADATA(...)%`).
    pub dynamic_metadata: DynamicMetadata,
    /// Why a network filter closed the connection
    /// (`%CONNECTION_TERMINATION_DETAILS%`: RBAC's refusal).
    pub connection_termination_details: Option<String>,
}

impl StreamInfo {
    pub fn new(downstream_remote: SocketAddr, downstream_local: SocketAddr, protocol: &'static str) -> StreamInfo {
        StreamInfo {
            start_time: SystemTime::now(),
            start: Instant::now(),
            protocol,
            downstream_remote,
            downstream_local,
            downstream_local_restored: false,
            downstream_proxy_protocol_tlvs: None,
            response_code: None,
            response_code_details: "",
            response_flags: ResponseFlags::default(),
            bytes_received: 0,
            bytes_sent: 0,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local: None,
            upstream_remote: None,
            upstream_protocol: None,
            upstream_tls: None,
            route_name: None,
            last_downstream_rx: None,
            first_upstream_rx: None,
            last_downstream_tx: None,
            upstream_transport_failure_reason: None,
            attempt_count: 0,
            downstream_tls: None,
            downstream_hello: None,
            health_check: false,
            dynamic_metadata: DynamicMetadata::default(),
            connection_termination_details: None,
        }
    }

    /// The request went on `connection` (each try's, the last one's stays).
    pub fn set_upstream_connection(&mut self, connection: &UpstreamConnectionInfo) {
        self.upstream_local = connection.local;
        self.upstream_remote = connection.remote;
        self.upstream_tls.clone_from(&connection.tls);
    }

    /// Total duration so far, or until the last byte was sent.
    pub fn duration(&self) -> Duration {
        self.last_downstream_tx.unwrap_or_else(|| self.start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envoy 1.40 prints flags in the order they were set (a set again keeps its
    /// place; one unset and set again goes last).
    #[test]
    fn flags_print_in_the_order_set() {
        let mut f = ResponseFlags::default();
        assert_eq!(f.to_short_string(), "-");
        f.set(ResponseFlag::UpstreamRetryLimitExceeded);
        f.set(ResponseFlag::NoHealthyUpstream);
        f.set(ResponseFlag::UpstreamRetryLimitExceeded);
        assert_eq!(f.to_short_string(), "URX,UH");
        f.set(ResponseFlag::DownstreamProtocolError);
        f.unset(ResponseFlag::NoHealthyUpstream);
        assert_eq!(f.to_short_string(), "URX,DPE");
        f.set(ResponseFlag::NoHealthyUpstream);
        assert_eq!(f.to_short_string(), "URX,DPE,UH");
    }
}
