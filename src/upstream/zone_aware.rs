//! Zone-aware routing (Envoy's `ZoneAwareLoadBalancerBase`): with a local cluster
//! (`cluster_manager.local_cluster_name`, the proxies of this service), a request
//! of priority 0 goes to the upstream hosts of the node's own locality
//! (`node.locality`) as far as they can take their share, and the rest to the
//! other localities by the capacity they have left.
//!
//! The local cluster's hosts per locality are compared with the upstream
//! cluster's healthy hosts per locality, each as a share of its total (in
//! 1/10000). When the upstream's local share covers the local cluster's, every
//! request goes to the local locality (`lb_zone_routing_all_directly`);
//! otherwise a request goes there with probability upstream share / local share
//! (`lb_zone_routing_sampled`), else to another locality drawn by its residual
//! capacity, upstream share minus local share (`lb_zone_routing_cross_zone`;
//! `lb_zone_no_capacity_left` when no locality has any, and a random one is
//! taken). No routing happens with fewer than two upstream or local localities,
//! when the local cluster has no host in the node's locality
//! (`lb_local_cluster_not_ok`), or with fewer healthy upstream hosts than
//! `min_cluster_size` (`lb_zone_cluster_too_small`). `force_local_zone` (and the
//! deprecated `force_locality_direct_routing`, its `min_size` 1) sends everything
//! to the local locality whenever it has that many healthy upstream hosts.
//!
//! The routing is computed when either cluster's membership changes
//! (`lb_recalculate_zone_structures`, each time on each thread), never per
//! request. A pick reads the runtime's `upstream.zone_routing.enabled` (a
//! percentage, `routing_enabled` by default) and whether the local cluster is
//! in panic, then draws as above.

use std::sync::Arc;

use super::cluster::ClusterStats;
use super::host::{Health, Host, Locality};
use super::priority::{is_host_set_in_panic, locality_groups};
use crate::common::random;
use crate::runtime;

/// The runtime's switch for zone routing, a percentage of requests.
const ROUTING_ENABLED_KEY: &str = "upstream.zone_routing.enabled";
/// The runtime's override of `min_cluster_size`.
const MIN_CLUSTER_SIZE_KEY: &str = "upstream.zone_routing.min_cluster_size";

/// A cluster's `zone_aware_lb_config` (Envoy's defaults when unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneAwareConfig {
    /// `routing_enabled`, in whole percent.
    pub routing_enabled: u32,
    pub min_cluster_size: u64,
    pub fail_traffic_on_panic: bool,
    /// `force_local_zone.min_size` (1 when only the deprecated
    /// `force_locality_direct_routing` is set).
    pub force_local_zone_min_size: Option<u32>,
}

impl Default for ZoneAwareConfig {
    fn default() -> Self {
        ZoneAwareConfig {
            routing_enabled: 100,
            min_cluster_size: 6,
            fail_traffic_on_panic: false,
            force_local_zone_min_size: None,
        }
    }
}

/// How priority 0's requests are routed across localities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ZoneRouting {
    /// No zone routing: the level is balanced as a whole.
    #[default]
    Off,
    /// Everything to the local locality (index 0).
    Direct,
    /// The local locality with probability `local_percent / 10000`, else a locality
    /// drawn by the cumulative residual capacities (by locality index).
    Residual { local_percent: u64, residual: Vec<u64> },
}

/// What a pick counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZonePick {
    /// To locality `index` (of the level's healthy or degraded hosts).
    Locality { index: usize },
    /// Zone routing is off for this pick: the level's hosts as a whole.
    Whole,
    /// The local cluster is in panic and `fail_traffic_on_panic` is set: no host.
    Fail,
}

/// The zone state of one cluster on one thread: the config and the routing as of
/// the last recalculation.
#[derive(Debug, Default)]
pub struct ZoneState {
    pub config: ZoneAwareConfig,
    pub routing: ZoneRouting,
    /// Whether the local cluster's level 0 was in panic at the recalculation.
    pub local_panic: bool,
}

/// One locality's share of the local and of the upstream hosts, in 1/10000.
#[derive(Debug, Clone, Copy)]
struct Shares {
    local: u64,
    upstream: u64,
}

impl ZoneState {
    /// Envoy's `regenerateLocalityRoutingStructures`: recomputes the routing from
    /// the upstream cluster's level 0 and the local cluster's hosts, counting
    /// `lb_recalculate_zone_structures` and why routing is off, if it is.
    pub fn recalculate(
        &mut self,
        upstream_level0: &[Arc<Host>],
        local_hosts: &[Arc<Host>],
        node: Option<&Locality>,
        panic_threshold: u32,
        stats: &ClusterStats,
    ) {
        stats.lb_recalculate_zone_structures.inc();
        // The local cluster has a single priority level: Envoy reads its level 0.
        let local_level0: Vec<Arc<Host>> = local_hosts.iter().filter(|h| h.priority == 0).cloned().collect();
        self.local_panic = is_host_set_in_panic(&local_level0, panic_threshold);
        self.routing = self.compute(upstream_level0, &local_level0, node, stats);
    }

    fn compute(
        &self,
        upstream: &[Arc<Host>],
        local: &[Arc<Host>],
        node: Option<&Locality>,
        stats: &ClusterStats,
    ) -> ZoneRouting {
        let upstream_groups = locality_groups(upstream, node);
        if upstream_groups.len() < 2 {
            return ZoneRouting::Off;
        }
        let force = self.config.force_local_zone_min_size;
        let local_groups = locality_groups(local, node);
        if local_groups.len() < 2 && force.is_none() {
            return ZoneRouting::Off;
        }
        let empty = Locality::default();
        let node = node.unwrap_or(&empty);
        if local_groups.first().is_none_or(|(l, hosts)| l != node || hosts.is_empty()) {
            stats.lb_local_cluster_not_ok.inc();
            return ZoneRouting::Off;
        }
        let healthy = |hosts: &[Arc<Host>]| hosts.iter().filter(|h| h.health() == Health::Healthy).count() as u64;
        let upstream_healthy: Vec<u64> = upstream_groups.iter().map(|(_, hosts)| healthy(hosts)).collect();
        let min_size = runtime::snapshot().map_or(self.config.min_cluster_size, |s| {
            s.get_integer(MIN_CLUSTER_SIZE_KEY, self.config.min_cluster_size)
        });
        if upstream_healthy.iter().sum::<u64>() < min_size {
            stats.lb_zone_cluster_too_small.inc();
            return ZoneRouting::Off;
        }
        let shares = shares(&local_groups, &upstream_groups, &upstream_healthy, healthy);
        let has_local = &upstream_groups[0].0 == node;
        if has_local {
            let (s, local_healthy) = (shares[0], upstream_healthy[0]);
            let forced = force.is_some_and(|min| local_healthy >= u64::from(min));
            if (s.upstream > 0 && s.upstream >= s.local) || forced {
                return ZoneRouting::Direct;
            }
        }
        let local_percent = match shares[0] {
            s if has_local && s.local > 0 => s.upstream * 10000 / s.local,
            _ => 0,
        };
        let mut residual = Vec::with_capacity(shares.len());
        let mut total = 0;
        for (i, s) in shares.iter().enumerate() {
            if !(i == 0 && has_local) && s.upstream > s.local {
                total += s.upstream - s.local;
            }
            residual.push(total);
        }
        ZoneRouting::Residual { local_percent, residual }
    }

    /// Envoy's `hostSourceToUse` past the panic and locality-weighted checks, for
    /// level 0: whether this request is zone routed, and to which locality.
    pub fn pick(&self, stats: &ClusterStats) -> ZonePick {
        if self.routing == ZoneRouting::Off {
            return ZonePick::Whole;
        }
        let enabled = u64::from(self.config.routing_enabled);
        let enabled = runtime::snapshot().map_or(enabled, |s| s.get_integer(ROUTING_ENABLED_KEY, enabled));
        if random::below(100) >= enabled {
            return ZonePick::Whole;
        }
        if self.local_panic {
            stats.lb_local_cluster_not_ok.inc();
            return if self.config.fail_traffic_on_panic { ZonePick::Fail } else { ZonePick::Whole };
        }
        let index = match &self.routing {
            ZoneRouting::Off => return ZonePick::Whole,
            ZoneRouting::Direct => {
                stats.lb_zone_routing_all_directly.inc();
                0
            }
            ZoneRouting::Residual { local_percent, residual } => {
                if random::below(10000) < *local_percent {
                    stats.lb_zone_routing_sampled.inc();
                    0
                } else {
                    stats.lb_zone_routing_cross_zone.inc();
                    match residual.last() {
                        Some(&total) if total > 0 => {
                            let threshold = random::below(total);
                            residual.iter().position(|&r| threshold < r).unwrap_or(0)
                        }
                        _ => {
                            stats.lb_zone_no_capacity_left.inc();
                            random::below(residual.len() as u64) as usize
                        }
                    }
                }
            }
        };
        ZonePick::Locality { index }
    }
}

/// Envoy's `calculateLocalityPercentages`: each upstream locality's share of the
/// local cluster's healthy hosts and of the upstream's healthy hosts.
fn shares(
    local_groups: &[(Locality, Vec<Arc<Host>>)],
    upstream_groups: &[(Locality, Vec<Arc<Host>>)],
    upstream_healthy: &[u64],
    healthy: impl Fn(&[Arc<Host>]) -> u64,
) -> Vec<Shares> {
    let local_healthy: Vec<(&Locality, u64)> = local_groups.iter().map(|(l, hosts)| (l, healthy(hosts))).collect();
    let total_local: u64 = local_healthy.iter().map(|(_, n)| n).sum();
    let total_upstream: u64 = upstream_healthy.iter().sum();
    upstream_groups
        .iter()
        .zip(upstream_healthy)
        .map(|((locality, _), &n)| {
            if n == 0 {
                return Shares { local: 0, upstream: 0 };
            }
            let local_count = local_healthy.iter().find(|(l, _)| *l == locality).map_or(0, |(_, c)| *c);
            Shares {
                local: (10000 * local_count).checked_div(total_local).unwrap_or(0),
                upstream: (10000 * n).checked_div(total_upstream).unwrap_or(0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;

    fn stats() -> ClusterStats {
        ClusterStats::new(&Arc::new(Store::new()), "cluster.c.")
    }

    fn zone(z: &str) -> Locality {
        Locality { zone: z.into(), ..Locality::default() }
    }

    /// `n` healthy hosts in each zone of `zones`.
    fn hosts(zones: &[(&str, usize)]) -> Vec<Arc<Host>> {
        let mut port = 0;
        let mut out = Vec::new();
        for (z, n) in zones {
            for _ in 0..*n {
                port += 1;
                let mut host = Host::new(format!("127.0.0.1:{port}").parse().expect("addr"), String::new(), 1);
                if let Some(h) = Arc::get_mut(&mut host) {
                    h.locality = Some(Arc::new(zone(z)));
                }
                out.push(host);
            }
        }
        out
    }

    fn routing(
        config: ZoneAwareConfig,
        upstream: &[(&str, usize)],
        local: &[(&str, usize)],
    ) -> (ZoneRouting, ClusterStats) {
        let stats = stats();
        let mut state = ZoneState { config, ..ZoneState::default() };
        state.recalculate(&hosts(upstream), &hosts(local), Some(&zone("a")), 50, &stats);
        assert_eq!(stats.lb_recalculate_zone_structures.value(), 1);
        (state.routing, stats)
    }

    const SMALL: ZoneAwareConfig = ZoneAwareConfig {
        routing_enabled: 100,
        min_cluster_size: 1,
        fail_traffic_on_panic: false,
        force_local_zone_min_size: None,
    };

    #[test]
    fn all_directly_when_the_local_zone_has_its_share() {
        // Upstream a: 1/2, local a: 1/2.
        assert_eq!(routing(SMALL, &[("a", 1), ("b", 1)], &[("a", 1), ("b", 1)]).0, ZoneRouting::Direct);
        // Upstream a: 2/3 >= local 1/2.
        assert_eq!(routing(SMALL, &[("a", 2), ("b", 1)], &[("a", 1), ("b", 1)]).0, ZoneRouting::Direct);
    }

    #[test]
    fn residual_capacity_follows_envoys_example() {
        // Envoy's comment: local 40/40/20 %, upstream 25/50/25 %: the local zone
        // takes 25/40 of the requests, the rest goes by residual 0, 10, 5 %.
        let (r, _) = routing(SMALL, &[("a", 1), ("b", 2), ("c", 1)], &[("a", 2), ("b", 2), ("c", 1)]);
        assert_eq!(r, ZoneRouting::Residual { local_percent: 6250, residual: vec![0, 1000, 1500] });
        // No upstream host in the local zone: all cross zone, by residual capacity.
        let (r, _) = routing(SMALL, &[("b", 1), ("c", 1)], &[("a", 1), ("b", 1)]);
        assert_eq!(r, ZoneRouting::Residual { local_percent: 0, residual: vec![0, 5000] });
    }

    #[test]
    fn routing_is_off_for_small_clusters_and_a_local_cluster_without_the_node() {
        let (r, stats) = routing(ZoneAwareConfig::default(), &[("a", 1), ("b", 1)], &[("a", 1), ("b", 1)]);
        assert_eq!((r, stats.lb_zone_cluster_too_small.value()), (ZoneRouting::Off, 1));
        let (r, stats) = routing(SMALL, &[("a", 1), ("b", 1)], &[("b", 1), ("c", 1)]);
        assert_eq!((r, stats.lb_local_cluster_not_ok.value()), (ZoneRouting::Off, 1));
        // One upstream (or local) locality: off, uncounted.
        let (r, stats) = routing(SMALL, &[("a", 2)], &[("a", 1), ("b", 1)]);
        assert_eq!(
            (r, stats.lb_zone_cluster_too_small.value() + stats.lb_local_cluster_not_ok.value()),
            (ZoneRouting::Off, 0)
        );
        assert_eq!(routing(SMALL, &[("a", 1), ("b", 1)], &[("a", 2)]).0, ZoneRouting::Off);
        // Unless the local zone is forced, which needs no local localities.
        let forced = ZoneAwareConfig { force_local_zone_min_size: Some(1), ..SMALL };
        assert_eq!(routing(forced, &[("a", 1), ("b", 9)], &[("a", 2)]).0, ZoneRouting::Direct);
        let forced = ZoneAwareConfig { force_local_zone_min_size: Some(2), ..SMALL };
        assert!(matches!(
            routing(forced, &[("a", 1), ("b", 9)], &[("a", 1), ("b", 1)]).0,
            ZoneRouting::Residual { .. }
        ));
    }

    #[test]
    fn picks_count_envoys_stats() {
        let stats = stats();
        let mut state = ZoneState { config: SMALL, ..ZoneState::default() };
        state.routing = ZoneRouting::Residual { local_percent: 2500, residual: vec![0, 0, 3000] };
        let mut seen = [0; 3];
        for _ in 0..4000 {
            match state.pick(&stats) {
                ZonePick::Locality { index } => seen[index] += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen[1], 0);
        assert!((800..1200).contains(&seen[0]), "{seen:?}");
        assert_eq!(stats.lb_zone_routing_sampled.value(), seen[0]);
        assert_eq!(stats.lb_zone_routing_cross_zone.value(), seen[2]);
        // No residual capacity anywhere: a random locality.
        state.routing = ZoneRouting::Residual { local_percent: 0, residual: vec![0, 0] };
        state.pick(&stats);
        assert_eq!(stats.lb_zone_no_capacity_left.value(), 1);
        // The local cluster in panic: no zone routing (or no host).
        state.routing = ZoneRouting::Direct;
        state.local_panic = true;
        assert_eq!(state.pick(&stats), ZonePick::Whole);
        state.config.fail_traffic_on_panic = true;
        assert_eq!(state.pick(&stats), ZonePick::Fail);
        assert_eq!(stats.lb_local_cluster_not_ok.value(), 2);
        // routing_enabled 0: never.
        state.config.routing_enabled = 0;
        assert_eq!(state.pick(&stats), ZonePick::Whole);
    }
}
