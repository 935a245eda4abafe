//! An EDS cluster's membership as an assignment sets it (Envoy's
//! `EdsClusterImpl`, less its subscription, which the server runs): a
//! `ClusterLoadAssignment` is read by the same code as a static
//! `load_assignment` (`cluster::assignment_endpoints`), and becomes a host set
//! that keeps the hosts which stayed, so their pools and counts live on, as
//! Envoy keeps a host whose address is still assigned.

use std::sync::Arc;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use super::cluster::{
    assignment_endpoints, overprovisioning_factor, ConfiguredEndpoint, DiscoveryType, EndpointAddress,
};
use super::drop_overload::DropOverloadConfig;
use super::host::{host_set, Host, HostSet};
use crate::config::{ConfigError, FieldPath};

/// A checked `ClusterLoadAssignment`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub endpoints: Vec<ConfiguredEndpoint>,
    /// `policy.overprovisioning_factor`, in percent (140 when unset).
    pub overprovisioning_factor: u32,
    /// `policy.drop_overloads` (none dropped when unset).
    pub drop_overload: DropOverloadConfig,
}

impl Assignment {
    /// Checks `la` (at `path`) as a static `load_assignment` is checked: every
    /// address is an IP address.
    pub fn from_proto(la: &ClusterLoadAssignment, path: &FieldPath) -> Result<Assignment, ConfigError> {
        Ok(Assignment {
            endpoints: assignment_endpoints(la, path, DiscoveryType::Eds)?,
            overprovisioning_factor: overprovisioning_factor(la),
            drop_overload: DropOverloadConfig::from_assignment(la, path)?,
        })
    }

    /// The assignment's hosts, each taken from `current` when one there is the
    /// same endpoint (address, name, priority and locality), as Envoy keeps a
    /// host; with the hosts kept whose weight or health the assignment changes,
    /// and their endpoint (`Kept::apply`, once the update is applied).
    pub fn hosts(&self, current: &HostSet) -> (HostSet, Vec<Kept<'_>>) {
        let mut changed = Vec::new();
        let hosts = self
            .endpoints
            .iter()
            .filter_map(|e| match e.address {
                EndpointAddress::Ip(a) => Some(match same_host(current, a, e) {
                    Some(h) => {
                        if h.weight() != e.weight || h.eds_health() != e.health {
                            changed.push(Kept { host: h.clone(), endpoint: e });
                        }
                        h
                    }
                    None => Host::of_endpoint(a, e.hostname.clone(), e),
                }),
                // `assignment_endpoints` refuses names for EDS.
                EndpointAddress::Dns { .. } => None,
            })
            .collect();
        (host_set(hosts), changed)
    }
}

/// A host an assignment keeps but changes: Envoy updates its weight and its EDS
/// health in place, so it keeps its pools and counts.
#[derive(Debug)]
pub struct Kept<'a> {
    pub host: Arc<Host>,
    pub endpoint: &'a ConfiguredEndpoint,
}

impl Kept<'_> {
    pub fn apply(&self) {
        self.host.set_weight(self.endpoint.weight);
        self.host.set_eds_health(self.endpoint.health);
        self.host.set_metadata_json(self.endpoint.metadata.clone());
    }
}

fn same_host(current: &HostSet, address: std::net::SocketAddr, e: &ConfiguredEndpoint) -> Option<Arc<Host>> {
    current
        .iter()
        .find(|h| {
            h.address == address
                && h.hostname == e.hostname
                && h.priority == e.priority
                && h.locality == e.locality
                && h.locality_weight == e.locality_weight
                && h.ipv6_only == crate::network::socket::ipv6_only(address.ip(), e.ipv4_compat)
        })
        .cloned()
}

/// Whether two host sets hold the same hosts, in order.
pub fn same_hosts(a: &HostSet, b: &HostSet) -> bool {
    a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// How many priority levels differ between two host sets (each ordered by
/// priority): Envoy counts a `membership_change` for each level an update
/// changes, and at start-up for each level that has hosts.
pub fn levels_changed(old: &HostSet, new: &HostSet) -> u64 {
    let level = |set: &HostSet, p: u32| -> Vec<*const Host> {
        set.iter().filter(|h| h.priority == p).map(Arc::as_ptr).collect()
    };
    let top = old.iter().chain(new.iter()).map(|h| h.priority).max();
    top.map_or(0, |top| (0..=top).filter(|p| level(old, *p) != level(new, *p)).count() as u64)
}

/// `max_host_weight` after an EDS update, as Envoy 1.40 sets it: the largest
/// weight (at least 1) of each level with hosts in turn, so the last such
/// level's wins; `None` when no level has hosts (the gauge is left).
pub fn max_host_weight(hosts: &HostSet) -> Option<u32> {
    let last = hosts.last()?.priority;
    hosts.iter().filter(|h| h.priority == last).map(|h| h.weight().max(1)).max()
}
