//! Priority levels (`LocalityLbEndpoints.priority`), as Envoy's `LoadBalancerBase`.
//!
//! A cluster's hosts form levels 0 (the highest) to N, some possibly empty. Each
//! level's health is the share of its hosts that are healthy scaled by the
//! overprovisioning factor (`load_assignment.policy.overprovisioning_factor`, 140 %
//! by default) and capped at 100 %. The load is then handed out in level order: each
//! level takes its health's share of the total health (the total capped at 100 %),
//! so a level whose hosts are mostly healthy keeps all of it and the next level only
//! gets what the ones above cannot cover; what is left by rounding goes to the first
//! level with any health. A request picks a level by that load, then a host of the
//! level with the level's own balancer (its own round-robin index and weighted
//! schedule, as Envoy keeps one per level), all seeded alike.
//!
//! Courier has no health checking, so every host is healthy: a level with hosts has
//! the health min(100, factor), and with a factor of 100 or more the first level with
//! hosts takes all the load; a smaller factor spreads it over the levels. Panic mode
//! (`common_lb_config.healthy_panic_threshold`) needs a level with unhealthy hosts,
//! so it never starts; with no host at all, Envoy sends the load to level 0 (either
//! way it takes), which has none.
//!
//! With `common_lb_config.locality_weighted_lb_config`, a level's hosts are grouped
//! by locality (sorted by region, zone, sub-zone, as Envoy's map orders them), and a
//! request first picks a locality by Envoy's earliest-deadline-first schedule over
//! their effective weights (`LocalityLbEndpoints.load_balancing_weight` scaled by
//! the locality's availability, min(1, factor × healthy share): the weight itself
//! while every host is healthy and the factor is at least 100), then a host of the
//! locality with the locality's own balancer. A locality of weight 0 (or none) gets
//! no request; when every locality has weight 0 the level is balanced as a whole.
//! As in Envoy, the bootstrap node's own locality comes first (it wins ties).
//!
//! The load and the schedules are computed when the host set changes; a pick does
//! not allocate.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::sync::Arc;

use super::host::{Host, Locality};
use super::load_balancer::{Edf, LbPolicy, LoadBalancer};
use crate::common::random;

/// One worker's load balancer for one cluster: a balancer per priority level.
#[derive(Debug)]
pub struct PriorityLoadBalancer {
    policy: LbPolicy,
    seed: u64,
    /// The assignment's: an EDS update may change it (`refresh_assigned`).
    overprovisioning_factor: Cell<u32>,
    /// `locality_weighted_lb_config`: pick a locality first (module doc).
    locality_weighted: bool,
    /// The node's locality, ordered first among a level's localities.
    local_locality: Option<Locality>,
    levels: RefCell<Levels>,
}

#[derive(Debug, Default)]
struct Levels {
    levels: Vec<Level>,
    /// The level with all of the load, when one has (the usual case): no draw.
    sole: Option<usize>,
}

#[derive(Debug)]
struct Level {
    /// The level's hosts in the host set (which is ordered by priority).
    range: Range<usize>,
    /// Its percentage of the requests.
    load: u32,
    lb: LoadBalancer,
    /// With locality weighted balancing, its localities (module doc).
    localities: Localities,
}

/// A level's localities and the schedule that picks one.
#[derive(Debug, Default)]
struct Localities {
    /// By locality order; each with its hosts (in host-set order) and balancer,
    /// which stays with the locality's index across host-set changes, as Envoy's.
    groups: Vec<(Vec<Arc<Host>>, LoadBalancer)>,
    /// Over the localities of positive effective weight: their indexes in `groups`
    /// by the schedule's index. None when no locality has weight.
    schedule: Option<(Edf, Vec<usize>)>,
}

impl PriorityLoadBalancer {
    /// A balancer with a random seed, as each of Envoy's is.
    pub fn new(policy: LbPolicy, overprovisioning_factor: u32, locality_weighted: bool) -> Self {
        Self::with_seed(policy, overprovisioning_factor, locality_weighted, random::next_u64())
    }

    pub fn with_seed(policy: LbPolicy, overprovisioning_factor: u32, locality_weighted: bool, seed: u64) -> Self {
        PriorityLoadBalancer {
            policy,
            seed,
            overprovisioning_factor: Cell::new(overprovisioning_factor),
            locality_weighted,
            local_locality: None,
            levels: RefCell::default(),
        }
    }

    /// Orders `local` first among the localities (the bootstrap's `node.locality`).
    pub fn with_local_locality(mut self, local: Option<Locality>) -> Self {
        self.local_locality = local;
        self
    }

    /// Installs an EDS assignment: its hosts and its overprovisioning factor.
    pub fn refresh_assigned(&self, hosts: &[Arc<Host>], overprovisioning_factor: u32) {
        self.overprovisioning_factor.set(overprovisioning_factor);
        self.refresh(hosts);
    }

    /// Installs a new host set, ordered by priority (a `HostSet`). Levels that
    /// stay keep their balancer's state, as Envoy's do.
    pub fn refresh(&self, hosts: &[Arc<Host>]) {
        let count = hosts.last().map_or(1, |h| h.priority as usize + 1);
        let mut levels = self.levels.borrow_mut();
        levels.levels.truncate(count);
        while levels.levels.len() < count {
            let lb = LoadBalancer::with_seed(self.policy, self.seed);
            levels.levels.push(Level { range: 0..0, load: 0, lb, localities: Localities::default() });
        }
        for (i, level) in levels.levels.iter_mut().enumerate() {
            let start = hosts.partition_point(|h| (h.priority as usize) < i);
            let end = hosts.partition_point(|h| h.priority as usize <= i);
            level.range = start..end;
            level.lb.refresh(&hosts[start..end]);
            if self.locality_weighted {
                self.refresh_localities(&mut level.localities, &hosts[start..end]);
            }
        }
        // Every host is healthy (module doc).
        let counts: Vec<(u64, u64)> = levels.levels.iter().map(|l| l.range.len() as u64).map(|n| (n, n)).collect();
        let loads = priority_loads(&counts, self.overprovisioning_factor.get());
        for (level, load) in levels.levels.iter_mut().zip(&loads) {
            level.load = *load;
        }
        levels.sole = loads.iter().position(|l| *l == 100);
    }

    /// Groups a level's hosts by locality and builds the schedule over their
    /// effective weights (module doc), as Envoy's `rebuildLocalityScheduler`.
    fn refresh_localities(&self, localities: &mut Localities, hosts: &[Arc<Host>]) {
        let grouped = locality_groups(hosts, self.local_locality.as_ref());
        localities.groups.truncate(grouped.len());
        while localities.groups.len() < grouped.len() {
            localities.groups.push((Vec::new(), LoadBalancer::with_seed(self.policy, self.seed)));
        }
        let mut weights = Vec::with_capacity(grouped.len());
        for ((_, hosts), (group, lb)) in grouped.into_iter().zip(localities.groups.iter_mut()) {
            *group = hosts;
            lb.refresh(group);
            // Envoy keeps the weight of the last endpoint group of the locality.
            weights.push(group.last().map_or(0, |h| h.locality_weight));
        }
        // Every host is healthy: the availability is min(1, factor).
        let availability = (f64::from(self.overprovisioning_factor.get()) / 100.0).min(1.0);
        let (effective, indexes): (Vec<f64>, Vec<usize>) = weights
            .iter()
            .enumerate()
            .map(|(i, w)| (f64::from(*w) * availability, i))
            .filter(|(w, _)| *w > 0.0)
            .unzip();
        localities.schedule = if effective.is_empty() {
            None
        } else {
            // Envoy passes its 64-bit seed as the 32-bit number of picks.
            Some((Edf::with_picks(effective, |_, w| w, self.seed as u32), indexes))
        };
    }

    /// The next host: a level by its load, then (with locality weighted balancing)
    /// a locality by its schedule, then a host by the balancer of the level or
    /// locality. `hosts` must be the set last given to `refresh`.
    pub fn choose(&self, hosts: &[Arc<Host>]) -> Option<Arc<Host>> {
        let mut levels = self.levels.borrow_mut();
        let Levels { levels, sole } = &mut *levels;
        let level = match *sole {
            Some(i) => levels.get_mut(i)?,
            None => choose_level(levels, random::below(100) as u32)?,
        };
        if let Some((edf, indexes)) = level.localities.schedule.as_mut() {
            let (group, lb) = indexes.get(edf.pick(|_, w| w)?).and_then(|i| level.localities.groups.get(*i))?;
            return lb.choose(group).cloned();
        }
        level.lb.choose(hosts.get(level.range.clone())?).cloned()
    }
}

/// Envoy's `choosePriority`: the first level whose cumulative load reaches `draw + 1`
/// (`draw` in 0..100).
fn choose_level(levels: &mut [Level], draw: u32) -> Option<&mut Level> {
    let mut cumulative = 0;
    levels.iter_mut().find(|l| {
        cumulative += l.load;
        draw < cumulative
    })
}

/// A level's hosts grouped by locality, in Envoy's order (`hostsPerLocality`):
/// by locality, the node's own first; hosts with none form the empty locality.
pub fn locality_groups(hosts: &[Arc<Host>], local: Option<&Locality>) -> Vec<(Locality, Vec<Arc<Host>>)> {
    let empty = Locality::default();
    let locality = |h: &Host| h.locality.as_deref().unwrap_or(&empty).clone();
    let mut keys: Vec<Locality> = hosts.iter().map(|h| locality(h)).collect();
    keys.sort_unstable();
    keys.dedup();
    if let Some(at) = keys.iter().position(|k| Some(k) == local) {
        keys[..=at].rotate_right(1);
    }
    keys.into_iter()
        .map(|key| {
            let group = hosts.iter().filter(|h| locality(h) == key).cloned().collect();
            (key, group)
        })
        .collect()
}

/// Envoy's per-priority load (`recalculatePerPriorityState`), in percent, from each
/// level's `(healthy, total)` host counts; the loads add up to 100.
pub fn priority_loads(levels: &[(u64, u64)], overprovisioning_factor: u32) -> Vec<u32> {
    let health: Vec<u32> = levels
        .iter()
        .map(|&(healthy, total)| match total {
            0 => 0,
            // At most 100, so the cast is exact.
            _ => (u64::from(overprovisioning_factor) * healthy / total).min(100) as u32,
        })
        .collect();
    let mut loads = vec![0; levels.len().max(1)];
    let normalized_total = health.iter().sum::<u32>().min(100);
    if normalized_total == 0 {
        total_panic_loads(levels, &mut loads);
        return loads;
    }
    let mut remaining = 100;
    for (load, h) in loads.iter_mut().zip(&health) {
        *load = remaining.min(h * 100 / normalized_total);
        remaining -= *load;
    }
    // Rounding leaves a little: it goes to the first level with any health.
    if let Some(first) = health.iter().position(|h| *h > 0) {
        loads[first] += remaining;
    }
    loads
}

/// With no level healthy, Envoy spreads the load by host count
/// (`recalculateLoadInTotalPanic`), or, with no host anywhere, gives it all to
/// level 0. (With `healthy_panic_threshold` 0 it gives level 0 everything at once;
/// while every host is healthy no level is unhealthy unless it is empty, so the two
/// agree.)
fn total_panic_loads(levels: &[(u64, u64)], loads: &mut [u32]) {
    let hosts: u64 = levels.iter().map(|(_, total)| total).sum();
    let Some(first) = levels.iter().position(|(_, total)| *total > 0) else {
        loads[0] = 100;
        return;
    };
    let mut remaining = 100;
    for (load, (_, total)) in loads.iter_mut().zip(levels) {
        // At most 100, so the cast is exact.
        *load = (100 * total / hosts) as u32;
        remaining -= *load;
    }
    loads[first] += remaining;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(counts: &[u64]) -> Vec<(u64, u64)> {
        counts.iter().map(|&n| (n, n)).collect()
    }

    #[test]
    fn priority_loads_follow_envoys_documented_examples() {
        // Envoy's "Priority levels" table, overprovisioning factor 1.4: the healthy
        // share of P0 and P1 hosts → the traffic each takes.
        for ((p0, p1), expected) in [
            ((100, 100), [100, 0]),
            ((72, 100), [100, 0]),
            ((71, 100), [99, 1]),
            ((50, 100), [70, 30]),
            ((25, 100), [35, 65]),
            ((0, 100), [0, 100]),
        ] {
            assert_eq!(priority_loads(&[(p0, 100), (p1, 100)], 140), expected, "P0 {p0}% P1 {p1}% healthy");
        }
        // Three levels: P0 and P1 each cover part.
        assert_eq!(priority_loads(&[(20, 100), (20, 100), (100, 100)], 140), [28, 28, 44]);
    }

    #[test]
    fn with_every_host_healthy_the_first_level_with_hosts_takes_the_load() {
        assert_eq!(priority_loads(&healthy(&[2, 3]), 140), [100, 0]);
        assert_eq!(priority_loads(&healthy(&[0, 3, 1]), 140), [0, 100, 0]);
        assert_eq!(priority_loads(&healthy(&[0, 0]), 140), [100, 0]);
        assert_eq!(priority_loads(&healthy(&[]), 140), [100]);
        // A factor below 100 leaves the rest to the next levels; normalized when
        // their sum is below 100.
        assert_eq!(priority_loads(&healthy(&[1, 1]), 50), [50, 50]);
        assert_eq!(priority_loads(&healthy(&[1, 1, 1]), 40), [40, 40, 20]);
        assert_eq!(priority_loads(&healthy(&[1]), 50), [100]);
        assert_eq!(priority_loads(&healthy(&[1, 0, 1]), 30), [50, 0, 50]);
        assert_eq!(priority_loads(&healthy(&[1, 1, 1]), 30), [34, 33, 33]);
    }

    #[test]
    fn with_no_healthy_level_the_load_follows_host_counts() {
        assert_eq!(priority_loads(&[(0, 1), (0, 3)], 140), [25, 75]);
        assert_eq!(priority_loads(&[(0, 0), (0, 1), (0, 2)], 140), [0, 34, 66]);
    }

    fn hosts(priorities: &[u32]) -> Vec<Arc<Host>> {
        (1..)
            .zip(priorities)
            .map(|(port, &priority)| {
                let h = Host::new(format!("127.0.0.1:{port}").parse().expect("addr"), String::new(), 1);
                let mut h = Arc::into_inner(h).expect("unshared");
                h.priority = priority;
                Arc::new(h)
            })
            .collect()
    }

    fn ports(lb: &PriorityLoadBalancer, hosts: &[Arc<Host>], picks: usize) -> Vec<u16> {
        (0..picks).filter_map(|_| lb.choose(hosts)).map(|h| h.address.port()).collect()
    }

    #[test]
    fn requests_go_to_the_first_level_with_hosts_and_balance_within_it() {
        let set = hosts(&[0, 0, 1]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0);
        lb.refresh(&set);
        assert_eq!(ports(&lb, &set, 4), [1, 2, 1, 2]);
        // Level 0 gone: level 1 takes over (its round robin from the seed).
        let set = hosts(&[1, 1, 2]);
        lb.refresh(&set);
        assert_eq!(ports(&lb, &set, 3), [1, 2, 1]);
        // Level 0 back, its balancer where it was.
        let set = hosts(&[0, 0, 1]);
        lb.refresh(&set);
        assert_eq!(ports(&lb, &set, 1), [1]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0);
        lb.refresh(&[]);
        assert!(lb.choose(&[]).is_none());
    }

    /// Hosts on ports 1..=n at priority 0, each in region `(region, locality weight)`.
    fn in_localities(localities: &[(&str, u32)]) -> Vec<Arc<Host>> {
        (1..)
            .zip(localities)
            .map(|(port, (region, weight))| {
                let h = Host::new(format!("127.0.0.1:{port}").parse().expect("addr"), String::new(), 1);
                let mut h = Arc::into_inner(h).expect("unshared");
                h.locality = Some(Arc::new(Locality { region: region.to_string(), ..Default::default() }));
                h.locality_weight = *weight;
                Arc::new(h)
            })
            .collect()
    }

    #[test]
    fn locality_weighted_picks_localities_by_weight_then_hosts_within() {
        // Region "b" (weight 2, two hosts), "a" (weight 1), "z" (no weight: no requests).
        let set = in_localities(&[("b", 2), ("a", 1), ("b", 2), ("z", 0)]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, true, 0);
        lb.refresh(&set);
        let picks = ports(&lb, &set, 300);
        let count = |p: u16| picks.iter().filter(|x| **x == p).count();
        assert_eq!((count(1), count(3), count(2), count(4)), (100, 100, 100, 0));
        // Each cycle of three picks has region "b" twice and "a" once.
        for cycle in picks.chunks(3) {
            assert_eq!(cycle.iter().filter(|p| **p == 2).count(), 1, "{picks:?}");
        }
        // Without locality weighting, the weights change nothing.
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0);
        lb.refresh(&set);
        assert_eq!(ports(&lb, &set, 4), [1, 2, 3, 4]);
    }

    #[test]
    fn the_nodes_own_locality_comes_first_and_wins_ties() {
        let set = in_localities(&[("a", 1), ("b", 1)]);
        let first = |local: Option<&str>| {
            let local = local.map(|r| Locality { region: r.to_string(), ..Default::default() });
            let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, true, 0).with_local_locality(local);
            lb.refresh(&set);
            ports(&lb, &set, 2)
        };
        assert_eq!(first(None), [1, 2]);
        assert_eq!(first(Some("b")), [2, 1]);
        assert_eq!(first(Some("elsewhere")), [1, 2]);
    }

    #[test]
    fn locality_weighted_without_any_weight_balances_the_whole_level() {
        let set = in_localities(&[("b", 0), ("a", 0)]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, true, 0);
        lb.refresh(&set);
        assert_eq!(ports(&lb, &set, 4), [1, 2, 1, 2]);
    }

    #[test]
    fn a_small_overprovisioning_factor_spreads_requests_over_levels() {
        let set = hosts(&[0, 1]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 50, false, 0);
        lb.refresh(&set);
        let picks = ports(&lb, &set, 2000);
        let to_p0 = picks.iter().filter(|p| **p == 1).count();
        assert!((800..1200).contains(&to_p0), "{to_p0} of 2000 to priority 0, expected about half");
    }
}
