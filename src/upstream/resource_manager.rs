//! Circuit breakers (Envoy's `ResourceManager`): per-cluster limits on open
//! connections, pending requests, active requests and active retries, shared by
//! every worker (atomics, as in Envoy), with the `circuit_breakers.default.*_open`
//! gauges. As Envoy's, each maximum may be overridden by the runtime key
//! `circuit_breakers.<cluster>.default.<field>`, read at each check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers;
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;

use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::runtime;
use crate::stats::{Gauge, Store};

define_stats! {
    /// `cluster.<name>.circuit_breakers.default.*`
    #[derive(Debug)]
    pub struct CircuitBreakerStats {
        gauge cx_open,
        gauge cx_pool_open,
        gauge rq_open,
        gauge rq_pending_open,
        gauge rq_retry_open,
    }
}

/// The kinds of resource a circuit breaker limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Connections,
    PendingRequests,
    Requests,
    Retries,
}

/// One limited resource: a shared count and its maximum.
#[derive(Debug)]
struct Limit {
    count: AtomicU64,
    /// The configured maximum, unless the runtime sets `runtime_key`.
    configured_max: u64,
    runtime_key: Box<str>,
    open: Arc<Gauge>,
}

impl Limit {
    fn new(configured_max: u64, runtime_key: String, open: Arc<Gauge>) -> Limit {
        Limit { count: AtomicU64::new(0), configured_max, runtime_key: runtime_key.into(), open }
    }

    /// The maximum in effect on this thread (Envoy's `ManagedResourceImpl::max`).
    fn max(&self) -> u64 {
        runtime::snapshot().map_or(self.configured_max, |s| s.get_integer(&self.runtime_key, self.configured_max))
    }

    /// Envoy's `canCreate()` then `inc()`: the `*_open` gauge changes only when
    /// the count does, so a limit of 0 that is never reached leaves it at 0.
    fn try_acquire(&self) -> bool {
        let max = self.max();
        let mut current = self.count.load(Ordering::Relaxed);
        loop {
            if current >= max {
                return false;
            }
            match self.count.compare_exchange_weak(current, current + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    self.open.set(i64::from(current + 1 >= max));
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn release(&self) {
        let before = self.count.fetch_sub(1, Ordering::Relaxed);
        self.open.set(i64::from(before > self.max()));
    }
}

/// The default-priority limits of one cluster.
#[derive(Debug)]
pub struct ResourceManager {
    connections: Limit,
    pending: Limit,
    requests: Limit,
    retries: Limit,
    /// The HIGH priority maxima, shown by `/clusters` (Courier routes everything
    /// at DEFAULT priority).
    high: [u64; 4],
}

/// Envoy's defaults: 1024 connections, pending and active requests; 3 retries.
const DEFAULTS: [u64; 4] = [1024, 1024, 1024, 3];

/// The resources in Envoy's `/clusters` order, with their field names.
pub const THRESHOLD_FIELDS: [(Resource, &str); 4] = [
    (Resource::Connections, "max_connections"),
    (Resource::PendingRequests, "max_pending_requests"),
    (Resource::Requests, "max_requests"),
    (Resource::Retries, "max_retries"),
];

impl ResourceManager {
    /// Limits from `circuit_breakers`: as Envoy, the first threshold of each
    /// priority applies, and a field it leaves unset keeps Envoy's default.
    /// `cluster` is the cluster's name (its runtime keys'), `prefix` its stats'.
    pub fn from_proto(
        cb: Option<&CircuitBreakers>,
        path: &FieldPath,
        store: &Store,
        cluster: &str,
        prefix: &str,
    ) -> Result<ResourceManager, ConfigError> {
        let thresholds = cb.map(|cb| cb.thresholds.as_slice()).unwrap_or_default();
        for (i, t) in thresholds.iter().enumerate() {
            if t.priority != RoutingPriority::High as i32 && t.retry_budget.is_some() {
                return Err(ConfigError::new(
                    format!("{path}.circuit_breakers.thresholds[{i}].retry_budget"),
                    "retry budgets are not supported by Courier",
                ));
            }
        }
        let maxima = |priority: RoutingPriority| {
            let mut max = DEFAULTS;
            if let Some(t) = thresholds.iter().find(|t| t.priority == priority as i32) {
                for (slot, v) in [&t.max_connections, &t.max_pending_requests, &t.max_requests, &t.max_retries]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(v) = v {
                        max[slot] = u64::from(v.value);
                    }
                }
            }
            max
        };
        let max = maxima(RoutingPriority::Default);
        let stats = CircuitBreakerStats::new(store, &format!("{prefix}circuit_breakers.default."));
        // The HIGH priority gauges exist in Envoy's output too.
        CircuitBreakerStats::new(store, &format!("{prefix}circuit_breakers.high."));
        let key = |field: &str| format!("circuit_breakers.{cluster}.default.{field}");
        Ok(ResourceManager {
            connections: Limit::new(max[0], key("max_connections"), stats.cx_open.clone()),
            pending: Limit::new(max[1], key("max_pending_requests"), stats.rq_pending_open.clone()),
            requests: Limit::new(max[2], key("max_requests"), stats.rq_open.clone()),
            retries: Limit::new(max[3], key("max_retries"), stats.rq_retry_open.clone()),
            high: maxima(RoutingPriority::High),
        })
    }

    fn limit(&self, r: Resource) -> &Limit {
        match r {
            Resource::Connections => &self.connections,
            Resource::PendingRequests => &self.pending,
            Resource::Requests => &self.requests,
            Resource::Retries => &self.retries,
        }
    }

    /// Takes one unit of `r`, or returns None when the breaker is open.
    pub fn try_acquire(self: &Arc<Self>, r: Resource) -> Option<ResourceGuard> {
        self.limit(r).try_acquire().then(|| ResourceGuard { manager: self.clone(), resource: r })
    }

    /// The maximum of `r` in effect (DEFAULT priority): the runtime's, else the
    /// configured one.
    pub fn max(&self, r: Resource) -> u64 {
        self.limit(r).max()
    }

    /// The configured maximum of `r` at HIGH priority (shown, not enforced).
    pub fn high_priority_max(&self, r: Resource) -> u64 {
        let slot = THRESHOLD_FIELDS.iter().position(|(x, _)| *x == r).unwrap_or(0);
        self.high[slot]
    }
}

/// One unit of a resource, given back on drop.
#[derive(Debug)]
pub struct ResourceGuard {
    manager: Arc<ResourceManager>,
    resource: Resource,
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        self.manager.limit(self.resource).release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_releases() {
        let store = Store::new();
        let rm = Arc::new(ResourceManager::from_proto(None, &FieldPath::new(), &store, "x", "cluster.x.").expect("rm"));
        let retries: Vec<_> = (0..3).filter_map(|_| rm.try_acquire(Resource::Retries)).collect();
        assert_eq!(retries.len(), 3);
        assert!(rm.try_acquire(Resource::Retries).is_none());
        assert_eq!(store.gauge_value("cluster.x.circuit_breakers.default.rq_retry_open"), Some(1));
        drop(retries);
        assert_eq!(store.gauge_value("cluster.x.circuit_breakers.default.rq_retry_open"), Some(0));
        assert!(rm.try_acquire(Resource::Retries).is_some());
    }

    #[test]
    fn the_runtime_overrides_a_maximum_by_cluster_name() {
        use crate::runtime::{Entry, Layer, Snapshot};
        let values = [("circuit_breakers.x.default.max_retries".to_string(), Entry::from_text("1"))];
        runtime::publish_on_this_thread(Snapshot::new(vec![Layer { name: "admin".into(), values: values.into() }]));
        let store = Store::new();
        let rm =
            Arc::new(ResourceManager::from_proto(None, &FieldPath::new(), &store, "x", "cluster.alt.").expect("rm"));
        assert_eq!(rm.max(Resource::Retries), 1);
        assert_eq!(rm.max(Resource::Requests), 1024);
        let first = rm.try_acquire(Resource::Retries);
        assert!(first.is_some());
        assert!(rm.try_acquire(Resource::Retries).is_none());
        assert_eq!(store.gauge_value("cluster.alt.circuit_breakers.default.rq_retry_open"), Some(1));
    }

    #[test]
    fn the_first_threshold_of_each_priority_applies() {
        use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
        use envoy_types::pb::google::protobuf::UInt32Value;
        let v = |value| Some(UInt32Value { value });
        let cb = CircuitBreakers {
            thresholds: vec![
                Thresholds { max_requests: v(0), max_connections: v(7), max_retries: v(9), ..Default::default() },
                Thresholds { priority: RoutingPriority::High as i32, max_retries: v(11), ..Default::default() },
                Thresholds { max_requests: v(5), ..Default::default() },
            ],
            ..Default::default()
        };
        let store = Store::new();
        let rm =
            Arc::new(ResourceManager::from_proto(Some(&cb), &FieldPath::new(), &store, "x", "cluster.x.").expect("rm"));
        let maxima = |f: fn(&ResourceManager, Resource) -> u64| THRESHOLD_FIELDS.map(|(r, _)| f(&rm, r));
        assert_eq!(maxima(ResourceManager::max), [7, 1024, 0, 9]);
        assert_eq!(maxima(ResourceManager::high_priority_max), [1024, 1024, 1024, 11]);
        // A limit of 0 overflows at once, and (as Envoy) leaves its gauge closed.
        assert!(rm.try_acquire(Resource::Requests).is_none());
        assert_eq!(store.gauge_value("cluster.x.circuit_breakers.default.rq_open"), Some(0));
    }
}
