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
//! The load is computed when the host set changes; a pick does not allocate.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

use super::host::Host;
use super::load_balancer::{LbPolicy, LoadBalancer};
use crate::common::random;

/// One worker's load balancer for one cluster: a balancer per priority level.
#[derive(Debug)]
pub struct PriorityLoadBalancer {
    policy: LbPolicy,
    seed: u64,
    overprovisioning_factor: u32,
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
}

impl PriorityLoadBalancer {
    /// A balancer with a random seed, as each of Envoy's is.
    pub fn new(policy: LbPolicy, overprovisioning_factor: u32) -> Self {
        Self::with_seed(policy, overprovisioning_factor, random::next_u64())
    }

    pub fn with_seed(policy: LbPolicy, overprovisioning_factor: u32, seed: u64) -> Self {
        PriorityLoadBalancer { policy, seed, overprovisioning_factor, levels: RefCell::default() }
    }

    /// Installs a new host set, ordered by priority (a `HostSet`). Levels that
    /// stay keep their balancer's state, as Envoy's do.
    pub fn refresh(&self, hosts: &[Arc<Host>]) {
        let count = hosts.last().map_or(1, |h| h.priority as usize + 1);
        let mut levels = self.levels.borrow_mut();
        levels.levels.truncate(count);
        while levels.levels.len() < count {
            let lb = LoadBalancer::with_seed(self.policy, self.seed);
            levels.levels.push(Level { range: 0..0, load: 0, lb });
        }
        for (i, level) in levels.levels.iter_mut().enumerate() {
            let start = hosts.partition_point(|h| (h.priority as usize) < i);
            let end = hosts.partition_point(|h| h.priority as usize <= i);
            level.range = start..end;
            level.lb.refresh(&hosts[start..end]);
        }
        // Every host is healthy (module doc).
        let counts: Vec<(u64, u64)> = levels.levels.iter().map(|l| l.range.len() as u64).map(|n| (n, n)).collect();
        let loads = priority_loads(&counts, self.overprovisioning_factor);
        for (level, load) in levels.levels.iter_mut().zip(&loads) {
            level.load = *load;
        }
        levels.sole = loads.iter().position(|l| *l == 100);
    }

    /// The next host: a level by its load, then a host by the level's balancer.
    /// `hosts` must be the set last given to `refresh`.
    pub fn choose<'a>(&self, hosts: &'a [Arc<Host>]) -> Option<&'a Arc<Host>> {
        let levels = self.levels.borrow();
        let level = match levels.sole {
            Some(i) => levels.levels.get(i)?,
            None => choose_level(&levels.levels, random::below(100) as u32)?,
        };
        level.lb.choose(hosts.get(level.range.clone())?)
    }
}

/// Envoy's `choosePriority`: the first level whose cumulative load reaches `draw + 1`
/// (`draw` in 0..100).
fn choose_level(levels: &[Level], draw: u32) -> Option<&Level> {
    let mut cumulative = 0;
    levels.iter().find(|l| {
        cumulative += l.load;
        draw < cumulative
    })
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
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, 0);
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
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, 0);
        lb.refresh(&[]);
        assert!(lb.choose(&[]).is_none());
    }

    #[test]
    fn a_small_overprovisioning_factor_spreads_requests_over_levels() {
        let set = hosts(&[0, 1]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 50, 0);
        lb.refresh(&set);
        let picks = ports(&lb, &set, 2000);
        let to_p0 = picks.iter().filter(|p| **p == 1).count();
        assert!((800..1200).contains(&to_p0), "{to_p0} of 2000 to priority 0, expected about half");
    }
}
