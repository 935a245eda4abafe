//! Circuit breakers (Envoy's `ResourceManager`): per-cluster limits on open
//! connections, pending requests, active requests and active retries, shared by
//! every worker (atomics, as in Envoy), with the `circuit_breakers.default.*_open`
//! gauges.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers;
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;

use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
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
    max: u64,
    open: Arc<Gauge>,
}

impl Limit {
    fn new(max: u64, open: Arc<Gauge>) -> Limit {
        Limit { count: AtomicU64::new(0), max, open }
    }

    fn try_acquire(&self) -> bool {
        let mut current = self.count.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                self.open.set(1);
                return false;
            }
            match self.count.compare_exchange_weak(current, current + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    if current + 1 >= self.max {
                        self.open.set(1);
                    }
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn release(&self) {
        let before = self.count.fetch_sub(1, Ordering::Relaxed);
        if before <= self.max {
            self.open.set(0);
        }
    }
}

/// The default-priority limits of one cluster.
#[derive(Debug)]
pub struct ResourceManager {
    connections: Limit,
    pending: Limit,
    requests: Limit,
    retries: Limit,
}

/// Envoy's defaults: 1024 connections, pending and active requests; 3 retries.
const DEFAULTS: [u64; 4] = [1024, 1024, 1024, 3];

impl ResourceManager {
    /// Limits from `circuit_breakers` (the DEFAULT priority threshold; HIGH is
    /// accepted for compatibility but Courier routes everything at DEFAULT).
    pub fn from_proto(
        cb: Option<&CircuitBreakers>,
        path: &FieldPath,
        store: &Store,
        prefix: &str,
    ) -> Result<ResourceManager, ConfigError> {
        let mut max = DEFAULTS;
        if let Some(cb) = cb {
            for (i, t) in cb.thresholds.iter().enumerate() {
                if t.priority == RoutingPriority::High as i32 {
                    continue;
                }
                let field = |f: &str| format!("{path}.circuit_breakers.thresholds[{i}].{f}");
                if t.retry_budget.is_some() {
                    return Err(ConfigError::new(field("retry_budget"), "retry budgets are not supported by Courier"));
                }
                for (slot, v) in [&t.max_connections, &t.max_pending_requests, &t.max_requests, &t.max_retries]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(v) = v {
                        max[slot] = u64::from(v.value);
                    }
                }
            }
        }
        let stats = CircuitBreakerStats::new(store, &format!("{prefix}circuit_breakers.default."));
        // The HIGH priority gauges exist in Envoy's output too.
        CircuitBreakerStats::new(store, &format!("{prefix}circuit_breakers.high."));
        Ok(ResourceManager {
            connections: Limit::new(max[0], stats.cx_open.clone()),
            pending: Limit::new(max[1], stats.rq_pending_open.clone()),
            requests: Limit::new(max[2], stats.rq_open.clone()),
            retries: Limit::new(max[3], stats.rq_retry_open.clone()),
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

    /// The configured maximum of `r`.
    pub fn max(&self, r: Resource) -> u64 {
        self.limit(r).max
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
        let rm = Arc::new(ResourceManager::from_proto(None, &FieldPath::new(), &store, "cluster.x.").expect("rm"));
        let retries: Vec<_> = (0..3).filter_map(|_| rm.try_acquire(Resource::Retries)).collect();
        assert_eq!(retries.len(), 3);
        assert!(rm.try_acquire(Resource::Retries).is_none());
        assert_eq!(store.gauge_value("cluster.x.circuit_breakers.default.rq_retry_open"), Some(1));
        drop(retries);
        assert_eq!(store.gauge_value("cluster.x.circuit_breakers.default.rq_retry_open"), Some(0));
        assert!(rm.try_acquire(Resource::Retries).is_some());
    }
}
