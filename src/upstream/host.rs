//! An upstream host and the immutable host sets that workers share.
//!
//! A host's health is its endpoint's `health_status` (`EdsHealth`) combined with
//! what active health checking found (`active_hc`, flags the main thread's
//! checkers set), as Envoy's `healthFlags`: `Host::health` is the class the load
//! balancers file it under, `Host::health_flags` what `/clusters` prints.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::cluster::ConfiguredEndpoint;

/// One endpoint of a cluster. Its counters are shared by every worker, so they
/// are atomics; they feed `/clusters`.
#[derive(Debug)]
pub struct Host {
    pub address: SocketAddr,
    /// The name it was resolved from (DNS clusters) or the endpoint's `hostname`.
    pub hostname: String,
    /// The `load_balancing_weight` of the endpoint it came from (1 when unset), as
    /// Envoy's `Host::weight()`: the load balancers and `/clusters` read it. An EDS
    /// assignment that keeps the host changes it in place, as Envoy's does.
    weight: AtomicU32,
    /// Its `EdsHealth` (as a `u8`): an EDS assignment that keeps the host changes
    /// it in place, as the weight.
    eds_health: AtomicU8,
    /// Active health checking's flags (`ACTIVE_HC_*`), set by the main thread's
    /// checkers; workers read them as they rebuild their balancers with the host
    /// set posted after a change.
    active_hc: AtomicU8,
    /// Where and how active health checks reach it (`health_check_config`).
    pub health_check: HealthCheckTarget,
    /// Its health checker's ear for a response that carried
    /// `x-envoy-immediate-health-check-fail` (Envoy's `HealthCheckHostMonitor`):
    /// set by the main thread while the host is checked, read by a worker only
    /// when such a response arrives.
    passive_monitor: Mutex<Option<PassiveMonitor>>,
    /// `IPV6_V6ONLY` on connections to an IPv6 address: Envoy's default, cleared by
    /// the endpoint's `ipv4_compat` (an IPv4-mapped address needs it to connect).
    pub ipv6_only: bool,
    /// The `locality` of the endpoint's `LocalityLbEndpoints` (shown by `/clusters`),
    /// shared by its hosts.
    pub locality: Option<Arc<Locality>>,
    /// The `priority` of the endpoint's `LocalityLbEndpoints`: its level in the
    /// cluster's priority set (0 is the highest).
    pub priority: u32,
    /// The `load_balancing_weight` of that `LocalityLbEndpoints` (0 when unset).
    pub locality_weight: u32,
    pub stats: HostStats,
    /// Picked since the ORIGINAL_DST cluster's last cleanup round (unused by
    /// other clusters).
    pub used: AtomicBool,
    /// Its endpoint's `metadata` as protobuf JSON, when set: health check event
    /// logs show it. An EDS assignment that keeps the host changes it in place.
    metadata: Mutex<Option<Arc<str>>>,
}

/// An endpoint's `health_status`, as Envoy 1.40 files it: UNKNOWN and HEALTHY are
/// healthy; UNHEALTHY and TIMEOUT fail the host (`FAILED_EDS_HEALTH`); DRAINING
/// excludes it (`EDS_STATUS_DRAINING`: counted in `membership_excluded`, taken out
/// of the level's host count); DEGRADED makes it degraded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EdsHealth {
    #[default]
    Healthy = 0,
    Unhealthy = 1,
    Draining = 2,
    Degraded = 3,
}

impl EdsHealth {
    /// From `LbEndpoint.health_status` (a `core.v3.HealthStatus`); a number the
    /// enum lacks is not a status Envoy acts on, so the host stays healthy.
    pub fn from_proto(status: i32) -> EdsHealth {
        match status {
            2 | 4 => EdsHealth::Unhealthy,
            3 => EdsHealth::Draining,
            5 => EdsHealth::Degraded,
            _ => EdsHealth::Healthy,
        }
    }

    fn from_u8(v: u8) -> EdsHealth {
        match v {
            1 => EdsHealth::Unhealthy,
            2 => EdsHealth::Draining,
            3 => EdsHealth::Degraded,
            _ => EdsHealth::Healthy,
        }
    }

    /// `/clusters?format=json`'s `eds_health_status`.
    pub fn eds_status_name(self) -> &'static str {
        match self {
            EdsHealth::Healthy => "HEALTHY",
            EdsHealth::Unhealthy => "UNHEALTHY",
            EdsHealth::Draining => "DRAINING",
            EdsHealth::Degraded => "DEGRADED",
        }
    }

    /// `/config_dump`'s `health_status`: Envoy rebuilds it from the host's
    /// health, where draining is unhealthy.
    pub fn dump_name(self) -> &'static str {
        match self {
            EdsHealth::Draining => "UNHEALTHY",
            other => other.eds_status_name(),
        }
    }
}

/// Active health checking failed the host (`/failed_active_hc`).
pub const FAILED_ACTIVE_HC: u8 = 1;
/// A check passed with `x-envoy-degraded` (`/degraded_active_hc`).
pub const DEGRADED_ACTIVE_HC: u8 = 2;
/// A failed check's response carried `x-envoy-immediate-health-check-fail`: the
/// host leaves the balancers until a check passes (`/excluded_via_immediate_hc_fail`).
pub const EXCLUDED_VIA_IMMEDIATE_HC_FAIL: u8 = 4;
/// The host failed and its last check timed out (`/active_hc_timeout`).
pub const ACTIVE_HC_TIMEOUT: u8 = 8;

/// Where a worker reports a host's passive health failure: the main thread's
/// checker of its cluster.
pub type PassiveMonitor = tokio::sync::mpsc::UnboundedSender<Arc<Host>>;

/// The class a host's flags put it in, as Envoy's `coarseHealth` and its
/// excluded hosts: excluded hosts are left out of their level's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
    Excluded,
}

/// An endpoint's `health_check_config`: the address active checks go to (its
/// `address`, else the host's, with `port_value` when set), the hostname they
/// send (`hostname`), and whether they skip it (`disable_active_health_check`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthCheckTarget {
    pub address: Option<SocketAddr>,
    pub port: u16,
    pub hostname: String,
    pub disabled: bool,
}

/// Where an endpoint runs, as its `LocalityLbEndpoints.locality` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
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
        let ipv6_only = crate::network::socket::ipv6_only(address.ip(), false);
        Arc::new(Host {
            address,
            hostname,
            weight: AtomicU32::new(weight),
            eds_health: AtomicU8::new(EdsHealth::Healthy as u8),
            active_hc: AtomicU8::new(0),
            health_check: HealthCheckTarget::default(),
            passive_monitor: Mutex::new(None),
            ipv6_only,
            locality: None,
            priority: 0,
            locality_weight: 0,
            stats: HostStats::default(),
            used: AtomicBool::new(false),
            metadata: Mutex::new(None),
        })
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// A new weight from an EDS assignment (main thread); workers read it as
    /// they rebuild their balancers with the host set posted after it.
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    pub fn eds_health(&self) -> EdsHealth {
        EdsHealth::from_u8(self.eds_health.load(Ordering::Relaxed))
    }

    /// A new health from an EDS assignment (main thread), read as `set_weight`'s.
    pub fn set_eds_health(&self, health: EdsHealth) {
        self.eds_health.store(health as u8, Ordering::Relaxed);
    }

    /// Whether active health checking's `flag` is set.
    pub fn active_hc(&self, flag: u8) -> bool {
        self.active_hc.load(Ordering::Relaxed) & flag != 0
    }

    /// Sets (`on`) or clears one of active health checking's flags (main thread).
    pub fn set_active_hc(&self, flag: u8, on: bool) {
        if on {
            self.active_hc.fetch_or(flag, Ordering::Relaxed);
        } else {
            self.active_hc.fetch_and(!flag, Ordering::Relaxed);
        }
    }

    /// Its endpoint's `metadata` as protobuf JSON, when set.
    pub fn metadata_json(&self) -> Option<Arc<str>> {
        self.metadata.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// New metadata from an EDS assignment that keeps the host (main thread).
    pub fn set_metadata_json(&self, metadata: Option<Arc<str>>) {
        *self.metadata.lock().unwrap_or_else(PoisonError::into_inner) = metadata;
    }

    /// Sets (or clears, with `None`) where passive failures go (main thread).
    pub fn set_passive_monitor(&self, monitor: Option<PassiveMonitor>) {
        *self.passive_monitor.lock().unwrap_or_else(PoisonError::into_inner) = monitor;
    }

    /// An upstream response carried `x-envoy-immediate-health-check-fail`: a
    /// checked host is excluded at once, and its checker fails it (Envoy's
    /// `setUnhealthy(ImmediateHealthCheckFail)`); an unchecked host is left as is.
    pub fn immediate_health_check_fail(self: &Arc<Self>) {
        let monitor = self.passive_monitor.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(monitor) = monitor.as_ref() {
            self.set_active_hc(EXCLUDED_VIA_IMMEDIATE_HC_FAIL, true);
            let _ = monitor.send(self.clone());
        }
    }

    /// The class the balancers file the host under: excluded (draining, or
    /// failed with `x-envoy-immediate-health-check-fail`), else unhealthy (by
    /// EDS or active checks), else degraded (either), else healthy.
    pub fn health(&self) -> Health {
        let eds = self.eds_health();
        if eds == EdsHealth::Draining || self.active_hc(EXCLUDED_VIA_IMMEDIATE_HC_FAIL) {
            Health::Excluded
        } else if eds == EdsHealth::Unhealthy || self.active_hc(FAILED_ACTIVE_HC) {
            Health::Unhealthy
        } else if eds == EdsHealth::Degraded || self.active_hc(DEGRADED_ACTIVE_HC) {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    /// `/clusters`' `health_flags`, as Envoy's `healthFlagsToString`: each set
    /// flag in Envoy's order, or `healthy`.
    pub fn health_flags(&self) -> String {
        let eds = self.eds_health();
        let flags = [
            (self.active_hc(FAILED_ACTIVE_HC), "/failed_active_hc"),
            (eds == EdsHealth::Unhealthy, "/failed_eds_health"),
            (self.active_hc(DEGRADED_ACTIVE_HC), "/degraded_active_hc"),
            (eds == EdsHealth::Degraded, "/degraded_eds_health"),
            (self.active_hc(EXCLUDED_VIA_IMMEDIATE_HC_FAIL), "/excluded_via_immediate_hc_fail"),
            (self.active_hc(ACTIVE_HC_TIMEOUT), "/active_hc_timeout"),
            (eds == EdsHealth::Draining, "/eds_status_draining"),
        ];
        let text: String = flags.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
        if text.is_empty() {
            "healthy".to_owned()
        } else {
            text
        }
    }

    /// The address active health checks connect to.
    pub fn health_check_address(&self) -> SocketAddr {
        let mut address = self.health_check.address.unwrap_or(self.address);
        if self.health_check.port != 0 {
            address.set_port(self.health_check.port);
        }
        address
    }

    /// A host of configured endpoint `e` at `address` (its own, or one its name
    /// resolved to), named `hostname`.
    pub fn of_endpoint(address: SocketAddr, hostname: String, e: &ConfiguredEndpoint) -> Arc<Host> {
        let ipv6_only = crate::network::socket::ipv6_only(address.ip(), e.ipv4_compat);
        Arc::new(Host {
            address,
            hostname,
            weight: AtomicU32::new(e.weight),
            eds_health: AtomicU8::new(e.health as u8),
            active_hc: AtomicU8::new(0),
            health_check: e.health_check.clone(),
            passive_monitor: Mutex::new(None),
            ipv6_only,
            locality: e.locality.clone(),
            priority: e.priority,
            locality_weight: e.locality_weight,
            stats: HostStats::default(),
            used: AtomicBool::new(false),
            metadata: Mutex::new(e.metadata.clone()),
        })
    }
}

/// A cluster's membership at one moment, ordered by priority (each level's hosts in
/// config order, as Envoy's priority set lists them); replaced whole on change (RCU).
pub type HostSet = Arc<Vec<Arc<Host>>>;

/// `hosts` as a `HostSet`: sorted by priority, keeping the order within a level.
pub fn host_set(mut hosts: Vec<Arc<Host>>) -> HostSet {
    hosts.sort_by_key(|h| h.priority);
    Arc::new(hosts)
}
