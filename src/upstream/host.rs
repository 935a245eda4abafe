//! An upstream host and the immutable host sets that workers share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One endpoint of a cluster. Its counters are shared by every worker, so they
/// are atomics; they feed `/clusters`.
#[derive(Debug)]
pub struct Host {
    pub address: SocketAddr,
    /// The name it was resolved from (DNS clusters) or the endpoint's `hostname`.
    pub hostname: String,
    /// The `load_balancing_weight` of the endpoint it came from (1 when unset), as
    /// Envoy's `Host::weight()`: the load balancers and `/clusters` read it.
    pub weight: u32,
    /// `IPV6_V6ONLY` on connections to an IPv6 address: Envoy's default, cleared by
    /// the endpoint's `ipv4_compat` (an IPv4-mapped address needs it to connect).
    pub ipv6_only: bool,
    pub stats: HostStats,
}

#[derive(Debug, Default)]
pub struct HostStats {
    pub cx_total: AtomicU64,
    pub cx_active: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    pub rq_total: AtomicU64,
    pub rq_success: AtomicU64,
    pub rq_error: AtomicU64,
    pub rq_timeout: AtomicU64,
    pub rq_active: AtomicU64,
    pub rq_pending_active: AtomicU64,
}

impl HostStats {
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

impl Host {
    pub fn new(address: SocketAddr, hostname: String, weight: u32) -> Arc<Host> {
        Host::with_ipv4_compat(address, hostname, weight, false)
    }

    /// A host whose endpoint address says `ipv4_compat`.
    pub fn with_ipv4_compat(address: SocketAddr, hostname: String, weight: u32, ipv4_compat: bool) -> Arc<Host> {
        let ipv6_only = crate::network::socket::ipv6_only(address.ip(), ipv4_compat);
        Arc::new(Host { address, hostname, weight, ipv6_only, stats: HostStats::default() })
    }
}

/// A cluster's membership at one moment; replaced whole on change (RCU).
pub type HostSet = Arc<Vec<Arc<Host>>>;
