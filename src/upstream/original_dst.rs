//! The ORIGINAL_DST cluster (Envoy's `OriginalDstCluster`): it has no configured
//! hosts; its load balancer makes one from each request, the address the client
//! meant to reach (the connection's restored local address, or the
//! `x-envoy-original-dst-host` header with `use_http_header`), with the port
//! overridden by `upstream_port_override`. A worker creates the host and uses it
//! at once, then hands it to the main thread, which adds it to the cluster's
//! membership for every worker (its own pools, `/clusters`, `membership_*`) and
//! every `cleanup_interval` removes the hosts no request picked since the last
//! round and no connection uses. The request's view is an `LbContext` of
//! borrowed values: the other policies never read it and it allocates nothing.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Weak;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, LbPolicy as PbLbPolicy};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;

use super::cluster::ClusterInfo;
use super::cluster_manager::ClusterManager;
use super::host::{Host, HostSet, HostStats};
use crate::common::fnv::{FnvBuildHasher, FnvHashMap};
use crate::config::{self, ConfigError, FieldPath};

/// Envoy's default `cleanup_interval`.
const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(5);
/// The header `use_http_header` reads unless `http_header_name` names another.
const DEFAULT_HEADER: &str = "x-envoy-original-dst-host";

/// What a load balancer may read of the request it picks a host for (Envoy's
/// `LoadBalancerContext`); only the ORIGINAL_DST cluster reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LbContext<'a> {
    /// The downstream connection's local address, when a listener filter
    /// restored it (`original_dst`, `proxy_protocol`).
    pub restored_local: Option<SocketAddr>,
    /// The request's headers (HTTP only).
    pub headers: Option<&'a http::HeaderMap>,
}

/// An ORIGINAL_DST cluster's settings, and the hosts workers made that the main
/// thread has not added yet.
#[derive(Debug)]
pub struct OriginalDst {
    /// `use_http_header`: the header naming the host (`None` when unset, or when
    /// `http_header_name` is no valid header name, which no request can carry).
    header: Option<http::HeaderName>,
    /// `upstream_port_override`.
    port_override: Option<u16>,
    pub cleanup_interval: Duration,
    /// Hosts made on workers, for the main thread to add (`maintain`).
    made: Mutex<Vec<Arc<Host>>>,
    made_signal: tokio::sync::Notify,
}

impl OriginalDst {
    /// The settings of an ORIGINAL_DST cluster, checked as Envoy checks them
    /// (its messages); `path` points at the cluster.
    pub fn from_proto(c: &Cluster, path: &FieldPath) -> Result<OriginalDst, ConfigError> {
        if c.lb_policy != PbLbPolicy::ClusterProvided as i32 {
            let name = PbLbPolicy::try_from(c.lb_policy).map_or("UNKNOWN", |p| p.as_str_name());
            return Err(path.field_error(
                "lb_policy",
                format!("cluster: LB policy {name} is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'"),
            ));
        }
        if c.load_assignment.is_some() {
            return Err(
                path.field_error("load_assignment", "ORIGINAL_DST clusters must have no load assignment configured")
            );
        }
        if c.load_balancing_policy.is_some() {
            return Err(path.field_error(
                "load_balancing_policy",
                format!("cluster manager: cluster provided LB not specified but cluster '{}' provided one. Check cluster documentation.", c.name),
            ));
        }
        let lb = match &c.lb_config {
            Some(LbConfig::OriginalDstLbConfig(lb)) => Some(lb),
            Some(_) => return Err(path.error("this load balancer config is not used by an ORIGINAL_DST cluster")),
            None => None,
        };
        let (mut header, mut port_override) = (None, None);
        if let Some(lb) = lb {
            if !lb.use_http_header && !lb.http_header_name.is_empty() {
                return Err(path.field_error(
                    "original_dst_lb_config",
                    format!("ORIGINAL_DST cluster: invalid config http_header_name={} and use_http_header is false. Set use_http_header to true if http_header_name is desired.", lb.http_header_name),
                ));
            }
            if lb.use_http_header {
                let name = if lb.http_header_name.is_empty() { DEFAULT_HEADER } else { &lb.http_header_name };
                header = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok();
            }
            // Validation keeps it within 1..=65535.
            port_override = lb.upstream_port_override.as_ref().and_then(|p| u16::try_from(p.value).ok());
        }
        Ok(OriginalDst {
            header,
            port_override,
            cleanup_interval: config::duration_or(&c.cleanup_interval, DEFAULT_CLEANUP_INTERVAL),
            made: Mutex::default(),
            made_signal: tokio::sync::Notify::new(),
        })
    }

    /// The address a request asks for: its header's (with `use_http_header`),
    /// else the restored local address, with the port overridden. A header that
    /// is no `ip:port` counts `original_dst_host_invalid` and is passed over.
    pub(super) fn destination(&self, info: &ClusterInfo, ctx: &LbContext<'_>) -> Option<SocketAddr> {
        let from_header = match (&self.header, ctx.headers) {
            // Only the first value: the header is untrusted (Envoy's reading).
            (Some(name), Some(headers)) => headers.get(name).and_then(|v| {
                let parsed = v.to_str().ok().and_then(|s| s.parse::<SocketAddr>().ok());
                if parsed.is_none() {
                    info.stats.original_dst_host_invalid.inc();
                }
                parsed
            }),
            _ => None,
        };
        let mut destination = from_header.or(ctx.restored_local)?;
        if let Some(port) = self.port_override {
            destination.set_port(port);
        }
        Some(destination)
    }
}

/// A worker's ORIGINAL_DST load balancer: the cluster's hosts by address, and
/// those this worker made that no membership it was given has yet.
#[derive(Debug, Default)]
pub(super) struct OriginalDstLb {
    by_address: RefCell<FnvHashMap<SocketAddr, Arc<Host>>>,
    made: RefCell<Vec<Arc<Host>>>,
}

impl OriginalDstLb {
    /// Takes the membership the main thread published. A host this worker made
    /// stays until a membership has its address: one published before the main
    /// thread added it must not make the worker make another.
    pub(super) fn refresh(&self, hosts: &HostSet) {
        let mut map = self.by_address.borrow_mut();
        map.clear();
        map.extend(hosts.iter().map(|h| (h.address, h.clone())));
        let mut made = self.made.borrow_mut();
        made.retain(|h| !map.contains_key(&h.address));
        map.extend(made.iter().map(|h| (h.address, h.clone())));
    }

    /// The addresses of its hosts, the cluster's and its own.
    pub(super) fn addresses(&self) -> HashSet<SocketAddr, FnvBuildHasher> {
        self.by_address.borrow().keys().copied().collect()
    }

    /// The host of the address the request asks for, made if the cluster has
    /// none yet (then handed to the main thread); `None` when the request names
    /// no address (Envoy's 503, no healthy upstream).
    pub(super) fn choose(&self, info: &ClusterInfo, od: &OriginalDst, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        let address = od.destination(info, ctx)?;
        let mut map = self.by_address.borrow_mut();
        if let Some(host) = map.get(&address) {
            host.used.store(true, Ordering::Relaxed);
            return Some(host.clone());
        }
        // Envoy names the host after the cluster and the address (`/clusters`' hostname).
        let host = Host::new(address, format!("{}{address}", info.name), 1);
        host.used.store(true, Ordering::Relaxed);
        map.insert(address, host.clone());
        self.made.borrow_mut().push(host.clone());
        od.made.lock().unwrap_or_else(|e| e.into_inner()).push(host.clone());
        od.made_signal.notify_one();
        Some(host)
    }
}

/// The main thread's side of an ORIGINAL_DST cluster, until it is no longer
/// the manager's: adds the hosts workers made, and removes unused ones every
/// `cleanup_interval`.
pub(super) async fn maintain(cm: Weak<ClusterManager>, info: Arc<ClusterInfo>) {
    let Some(od) = info.original_dst.as_ref() else { return };
    let mut cleanup = tokio::time::interval_at(tokio::time::Instant::now() + od.cleanup_interval, od.cleanup_interval);
    loop {
        let made = tokio::select! {
            () = od.made_signal.notified() => true,
            _ = cleanup.tick() => false,
        };
        let Some(cm) = cm.upgrade().filter(|cm| cm.get(&info.name).is_some_and(|c| Arc::ptr_eq(&c, &info))) else {
            return;
        };
        let current = cm.hosts(&info.name);
        let next = if made {
            let made = std::mem::take(&mut *od.made.lock().unwrap_or_else(|e| e.into_inner()));
            with_made(&current, made)
        } else {
            without_unused(&current)
        };
        if let Some((hosts, changes)) = next {
            cm.set_provided_hosts(&info, hosts, changes);
        }
    }
}

/// `current` with the hosts workers made at addresses it lacks (a second
/// worker's host for the same address is dropped), and how many were added:
/// Envoy updates the membership once per host.
fn with_made(current: &HostSet, made: Vec<Arc<Host>>) -> Option<(HostSet, u64)> {
    let mut hosts: Vec<Arc<Host>> = current.as_ref().clone();
    let mut added = 0;
    for host in made {
        if !hosts.iter().any(|h| h.address == host.address) {
            hosts.push(host);
            added += 1;
        }
    }
    (added > 0).then(|| (Arc::new(hosts), added))
}

/// `current` without the hosts no request picked since the last round and no
/// connection uses (Envoy keeps a host its pools still hold), as one update.
fn without_unused(current: &HostSet) -> Option<(HostSet, u64)> {
    let in_use = |h: &Host| HostStats::get(&h.stats.cx_active) > 0 || HostStats::get(&h.stats.rq_active) > 0;
    let kept: Vec<Arc<Host>> =
        current.iter().filter(|h| h.used.swap(false, Ordering::Relaxed) || in_use(h)).cloned().collect();
    (kept.len() < current.len()).then(|| (Arc::new(kept), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ORIGINAL_DST cluster with no `original_dst_lb_config`.
    fn info() -> ClusterInfo {
        use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
        let c = Cluster {
            name: "od".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::OriginalDst as i32)),
            lb_policy: PbLbPolicy::ClusterProvided as i32,
            ..Default::default()
        };
        let store = Arc::new(crate::stats::Store::new());
        ClusterInfo::from_proto(&c, &FieldPath::starting_at("od"), &store).unwrap()
    }

    fn host(port: u16) -> Arc<Host> {
        Host::new(SocketAddr::from(([127, 0, 0, 1], port)), String::new(), 1)
    }

    #[test]
    fn a_workers_own_host_outlives_a_membership_that_lacks_it() {
        let (lb, info) = (OriginalDstLb::default(), info());
        let od = info.original_dst.as_ref().unwrap();
        let ctx = LbContext { restored_local: Some(SocketAddr::from(([127, 0, 0, 1], 7))), headers: None };
        let made = lb.choose(&info, od, &ctx).unwrap();
        // Another worker's host was published first: this one's is kept.
        lb.refresh(&Arc::new(vec![host(8)]));
        assert!(Arc::ptr_eq(&lb.choose(&info, od, &ctx).unwrap(), &made));
        // Once a membership has the address, its host is the one used.
        let published = host(7);
        lb.refresh(&Arc::new(vec![published.clone()]));
        assert!(Arc::ptr_eq(&lb.choose(&info, od, &ctx).unwrap(), &published));
        assert!(lb.made.borrow().is_empty());
    }

    #[test]
    fn made_hosts_join_once_per_address_and_unused_ones_leave_after_a_round() {
        let first = host(1);
        let (hosts, added) = with_made(&HostSet::default(), vec![first.clone(), host(1), host(2)]).unwrap();
        assert_eq!((hosts.len(), added), (2, 2));
        assert!(Arc::ptr_eq(&hosts[0], &first));
        assert!(with_made(&hosts, vec![host(2)]).is_none());
        // Picked since the last round: kept, and unmarked for the next one.
        hosts[0].used.store(true, Ordering::Relaxed);
        let (kept, changes) = without_unused(&hosts).unwrap();
        assert_eq!((kept.len(), changes), (1, 1));
        // A host with an open connection stays though nobody picked it.
        kept[0].stats.cx_active.store(1, Ordering::Relaxed);
        assert!(without_unused(&kept).is_none());
        kept[0].stats.cx_active.store(0, Ordering::Relaxed);
        assert!(without_unused(&kept).unwrap().0.is_empty());
    }
}
