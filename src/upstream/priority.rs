//! Priority levels (`LocalityLbEndpoints.priority`) and host health, as Envoy's
//! `LoadBalancerBase`.
//!
//! A cluster's hosts form levels 0 (the highest) to N, some possibly empty. A host
//! is healthy, degraded, unhealthy or excluded by its endpoint's `health_status`
//! and active health checking (`Host::health`). Each level's health
//! is its healthy share of the hosts not excluded, and its degraded availability
//! its degraded share, each scaled by the overprovisioning factor
//! (`load_assignment.policy.overprovisioning_factor`, 140 % by default) and capped
//! at 100 %. The load is handed out in level order, first to healthy hosts by each
//! level's health over the total availability (health plus degraded, capped at
//! 100 %), then what is left to degraded hosts the same way, so degraded hosts
//! take traffic only when the healthy ones cannot cover it; what rounding leaves
//! goes to the first level with any health (else with degraded hosts). A request
//! draws a level and whether its healthy or its degraded hosts serve, then a host
//! of those with their own balancer (its own round-robin index and weighted
//! schedule, as Envoy keeps one per level and host source), all seeded alike.
//!
//! A level whose healthy and degraded share is below
//! `common_lb_config.healthy_panic_threshold` (50 % by default; the runtime key
//! `upstream.healthy_panic_threshold` overrides it) is in panic: a
//! request that draws it goes to any of its hosts, whatever their health, and
//! counts `lb_healthy_panic`. With no availability anywhere every level is in
//! panic and the load follows the levels' host counts; with the threshold at 0 it
//! all goes to level 0's healthy hosts instead (so no host: 503).
//!
//! With `common_lb_config.locality_weighted_lb_config`, a level's hosts are grouped
//! by locality (sorted by region, zone, sub-zone, as Envoy's map orders them), and a
//! request first picks a locality by Envoy's earliest-deadline-first schedule over
//! their effective weights (`LocalityLbEndpoints.load_balancing_weight` scaled by
//! the locality's availability, min(1, factor × its healthy — or degraded — share
//! of its hosts not excluded)), then a healthy (or degraded) host of the locality
//! with the locality's own balancer. A locality of weight 0 (or none) gets no
//! request; when every locality has weight 0 the level is balanced as a whole, and
//! so is a level in panic. As in Envoy, the bootstrap node's own locality comes
//! first (it wins ties).
//!
//! With a local cluster (`upstream::zone_aware`), level 0's requests may be
//! routed to a locality of its healthy (or degraded) hosts first: after the
//! panic and locality-weighted checks, as Envoy's `hostSourceToUse`. With
//! `fail_traffic_on_panic`, a level in panic yields no host.
//!
//! The load and the schedules are computed when the host set changes (an EDS
//! health change publishes a new one); a pick does not allocate.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::cluster::ClusterInfo;
use super::host::{Health, Host, Locality};
use super::load_balancer::{Edf, LbPolicy, LoadBalancer};
use super::zone_aware::{ZonePick, ZoneState};
use crate::common::random;
use crate::runtime;

/// The runtime key that overrides every cluster's `healthy_panic_threshold`.
const PANIC_THRESHOLD_KEY: &str = "upstream.healthy_panic_threshold";

/// One worker's load balancer for one cluster: balancers per priority level.
#[derive(Debug)]
pub struct PriorityLoadBalancer {
    policy: LbPolicy,
    seed: u64,
    /// The assignment's: an EDS update may change it (`refresh_assigned`).
    overprovisioning_factor: Cell<u32>,
    /// `healthy_panic_threshold`, in percent.
    panic_threshold: u32,
    /// `locality_weighted_lb_config`: pick a locality first (module doc).
    locality_weighted: bool,
    /// The node's locality, ordered first among a level's localities.
    local_locality: Option<Arc<Locality>>,
    levels: RefCell<Levels>,
    /// `zone_aware_lb_config.fail_traffic_on_panic`: a level in panic yields no host.
    fail_on_panic: bool,
    /// Zone-aware routing, for a cluster with a local cluster to compare with
    /// (`None` otherwise: no cost on a pick).
    zone: Option<Zone>,
}

/// A cluster's zone routing state, and the cluster whose stats a pick counts.
#[derive(Debug)]
struct Zone {
    info: Arc<ClusterInfo>,
    state: RefCell<ZoneState>,
}

#[derive(Debug, Default)]
struct Levels {
    levels: Vec<Level>,
    /// The level and host source with all of the load, when one has (the usual
    /// case): no draw.
    sole: Option<(usize, Availability)>,
}

/// Which of a level's hosts a request drew: Envoy's `HostAvailability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Healthy,
    Degraded,
}

#[derive(Debug)]
struct Level {
    /// Its percentages of the requests, for its healthy and its degraded hosts.
    healthy_load: u32,
    degraded_load: u32,
    /// Below the panic threshold: a request goes to any host of `all`.
    panic: bool,
    all: Source,
    healthy: Source,
    degraded: Source,
}

/// Hosts a request may go to, with their balancer (and localities).
#[derive(Debug)]
struct Source {
    hosts: Vec<Arc<Host>>,
    lb: LoadBalancer,
    /// With locality weighted balancing, its localities (module doc).
    localities: Localities,
}

/// A source's localities and the schedule that picks one.
#[derive(Debug, Default)]
struct Localities {
    /// By locality order; each with its hosts (in host-set order) and balancer,
    /// which stays with the locality's index across host-set changes, as Envoy's.
    groups: Vec<(Vec<Arc<Host>>, LoadBalancer)>,
    /// Over the localities of positive effective weight: their indexes in `groups`
    /// by the schedule's index. None when no locality has weight. (A cell: a
    /// pick moves the schedule on; boxed, as most sources have none.)
    schedule: RefCell<Option<Box<LocalitySchedule>>>,
}

/// A schedule over localities, and the index in `groups` of each it picks.
type LocalitySchedule = (Edf, Vec<usize>);

/// The host a request goes to (none when its level and source have none), and
/// whether its level was in panic (`lb_healthy_panic`).
#[derive(Debug)]
pub struct Pick {
    pub host: Option<Arc<Host>>,
    pub panic: bool,
}

impl Source {
    fn new(policy: LbPolicy, seed: u64) -> Self {
        Source { hosts: Vec::new(), lb: LoadBalancer::with_seed(policy, seed), localities: Localities::default() }
    }

    /// A host: of a locality picked by its schedule when there is one.
    fn choose(&self) -> Option<Arc<Host>> {
        let mut schedule = self.localities.schedule.borrow_mut();
        if let Some((edf, indexes)) = schedule.as_deref_mut() {
            let (group, lb) = indexes.get(edf.pick(|_, w| w)?).and_then(|i| self.localities.groups.get(*i))?;
            return lb.choose(group).cloned();
        }
        self.lb.choose(&self.hosts).cloned()
    }
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
            panic_threshold: super::cluster::DEFAULT_HEALTHY_PANIC_THRESHOLD,
            locality_weighted,
            local_locality: None,
            levels: RefCell::default(),
            zone: None,
            fail_on_panic: false,
        }
    }

    /// Sets `fail_traffic_on_panic`.
    pub fn with_fail_traffic_on_panic(mut self, fail: bool) -> Self {
        self.fail_on_panic = fail;
        self
    }

    /// Routes level 0 by zone (`upstream::zone_aware`) with `info`'s
    /// `zone_aware_lb_config`, counting its stats; off until `recalculate_zones`.
    pub fn with_zone_aware(mut self, info: Arc<ClusterInfo>) -> Self {
        let state = RefCell::new(ZoneState { config: info.zone_aware, ..ZoneState::default() });
        self.zone = Some(Zone { info, state });
        self
    }

    /// Whether zone routing is configured (`with_zone_aware`).
    pub fn is_zone_aware(&self) -> bool {
        self.zone.is_some()
    }

    /// Recomputes the zone routing from level 0 and the local cluster's `local`
    /// hosts (after a change of either), as Envoy's
    /// `regenerateLocalityRoutingStructures`.
    pub fn recalculate_zones(&self, local: &[Arc<Host>]) {
        let Some(zone) = &self.zone else { return };
        let levels = self.levels.borrow();
        let level0 = levels.levels.first().map_or(&[][..], |l| &l.all.hosts[..]);
        let threshold = self.effective_panic_threshold();
        zone.state.borrow_mut().recalculate(level0, local, self.local_locality.as_deref(), threshold, &zone.info.stats);
    }

    /// The panic threshold, the runtime's when it sets one (capped at 100).
    fn effective_panic_threshold(&self) -> u32 {
        let configured = u64::from(self.panic_threshold);
        let threshold = runtime::snapshot().map_or(configured, |s| s.get_integer(PANIC_THRESHOLD_KEY, configured));
        // At most 100, so the cast is exact.
        threshold.min(100) as u32
    }

    /// Orders `local` first among the localities (the bootstrap's `node.locality`).
    pub fn with_local_locality(mut self, local: Option<Arc<Locality>>) -> Self {
        self.local_locality = local;
        self
    }

    /// Sets `healthy_panic_threshold` (percent).
    pub fn with_panic_threshold(mut self, threshold: u32) -> Self {
        self.panic_threshold = threshold;
        self
    }

    /// Installs an EDS assignment: its hosts and its overprovisioning factor.
    pub fn refresh_assigned(&self, hosts: &[Arc<Host>], overprovisioning_factor: u32) {
        self.set_overprovisioning_factor(overprovisioning_factor);
        self.refresh(hosts);
    }

    /// The assignment's factor, for the next `refresh`.
    pub fn set_overprovisioning_factor(&self, overprovisioning_factor: u32) {
        self.overprovisioning_factor.set(overprovisioning_factor);
    }

    /// Installs a new host set, ordered by priority (a `HostSet`). Levels that
    /// stay keep their balancers' state, as Envoy's do.
    pub fn refresh(&self, hosts: &[Arc<Host>]) {
        let count = hosts.last().map_or(1, |h| h.priority as usize + 1);
        let mut levels = self.levels.borrow_mut();
        levels.levels.truncate(count);
        // Exactly: a level is ~830 bytes, and a growth to four of them for the
        // one level nearly every cluster has cost ~2.5 KiB per cluster and worker.
        let missing = count.saturating_sub(levels.levels.len());
        levels.levels.reserve_exact(missing);
        while levels.levels.len() < count {
            let source = || Source::new(self.policy, self.seed);
            let (all, healthy, degraded) = (source(), source(), source());
            levels.levels.push(Level { healthy_load: 0, degraded_load: 0, panic: false, all, healthy, degraded });
        }
        let factor = self.overprovisioning_factor.get();
        let mut counts = Vec::with_capacity(count);
        for (i, level) in levels.levels.iter_mut().enumerate() {
            let start = hosts.partition_point(|h| (h.priority as usize) < i);
            let end = hosts.partition_point(|h| h.priority as usize <= i);
            let all = &hosts[start..end];
            let of = |health: Health| all.iter().filter(|h| h.health() == health).cloned().collect();
            level.all.hosts = all.to_vec();
            level.healthy.hosts = of(Health::Healthy);
            level.degraded.hosts = of(Health::Degraded);
            for source in [&mut level.all, &mut level.healthy, &mut level.degraded] {
                source.lb.refresh(&source.hosts);
            }
            // Zone routing picks among level 0's localities (without a schedule).
            let zoned = i == 0 && self.zone.is_some();
            if self.locality_weighted || zoned {
                let groups = locality_groups(all, self.local_locality.as_deref());
                let (policy, seed, weighted) = (self.policy, self.seed, self.locality_weighted);
                refresh_localities(&mut level.healthy, &groups, Health::Healthy, factor, policy, seed, weighted);
                refresh_localities(&mut level.degraded, &groups, Health::Degraded, factor, policy, seed, weighted);
            }
            counts.push(LevelCounts {
                healthy: level.healthy.hosts.len() as u64,
                degraded: level.degraded.hosts.len() as u64,
                excluded: all.iter().filter(|h| h.health() == Health::Excluded).count() as u64,
                total: all.len() as u64,
            });
        }
        // Envoy reads the runtime's threshold each time it recomputes the loads.
        let loads = priority_loads(&counts, factor, self.effective_panic_threshold());
        for (level, load) in levels.levels.iter_mut().zip(&loads) {
            (level.healthy_load, level.degraded_load, level.panic) = (load.healthy, load.degraded, load.panic);
        }
        levels.sole = loads.iter().enumerate().find_map(|(i, l)| match (l.healthy, l.degraded) {
            (100, _) => Some((i, Availability::Healthy)),
            (_, 100) => Some((i, Availability::Degraded)),
            _ => None,
        });
    }

    /// The next host: a level and its healthy or degraded hosts by the load (all
    /// its hosts when the level is in panic), then (with locality weighted
    /// balancing) a locality by its schedule, then a host by the balancer of those.
    pub fn choose(&self) -> Pick {
        let levels = self.levels.borrow();
        let chosen = match levels.sole {
            Some(sole) => Some(sole),
            None => choose_level(&levels.levels, random::below(100) as u32),
        };
        let Some(level) = chosen.and_then(|(i, a)| Some((levels.levels.get(i)?, a))) else {
            return Pick { host: None, panic: false };
        };
        let source = match level {
            (l, _) if l.panic && self.fail_on_panic => return Pick { host: None, panic: true },
            (l, _) if l.panic => return Pick { host: l.all.lb.choose(&l.all.hosts).cloned(), panic: true },
            (l, Availability::Healthy) => &l.healthy,
            (l, Availability::Degraded) => &l.degraded,
        };
        // Locality weighted balancing comes first; zone routing is for level 0.
        if let Some(zone) = &self.zone {
            let is_level0 = std::ptr::eq(level.0, &levels.levels[0]);
            if is_level0 && !self.locality_weighted {
                let host = match zone.state.borrow().pick(&zone.info.stats) {
                    ZonePick::Whole => source.lb.choose(&source.hosts).cloned(),
                    ZonePick::Fail => None,
                    ZonePick::Locality { index } => {
                        source.localities.groups.get(index).and_then(|(group, lb)| lb.choose(group).cloned())
                    }
                };
                return Pick { host, panic: false };
            }
        }
        Pick { host: source.choose(), panic: false }
    }
}
/// Builds a source's localities from the level's (`groups`): each locality's
/// hosts of `health`, and (when `weighted`) the schedule over their effective
/// weights (module doc), as Envoy's `rebuildLocalityScheduler`.
fn refresh_localities(
    source: &mut Source,
    groups: &[(Locality, Vec<Arc<Host>>)],
    health: Health,
    factor: u32,
    policy: LbPolicy,
    seed: u64,
    weighted: bool,
) {
    let localities = &mut source.localities;
    localities.groups.truncate(groups.len());
    while localities.groups.len() < groups.len() {
        localities.groups.push((Vec::new(), LoadBalancer::with_seed(policy, seed)));
    }
    let mut weights = Vec::with_capacity(groups.len());
    for ((_, all), (group, lb)) in groups.iter().zip(localities.groups.iter_mut()) {
        *group = all.iter().filter(|h| h.health() == health).cloned().collect();
        lb.refresh(group);
        // Envoy keeps the weight of the last endpoint group of the locality.
        let weight = all.last().map_or(0, |h| h.locality_weight);
        let counted = all.iter().filter(|h| h.health() != Health::Excluded).count();
        let availability = match counted {
            0 => 0.0,
            n => (f64::from(factor) / 100.0 * group.len() as f64 / n as f64).min(1.0),
        };
        weights.push(f64::from(weight) * availability);
    }
    let (effective, indexes): (Vec<f64>, Vec<usize>) =
        weights.into_iter().enumerate().map(|(i, w)| (w, i)).filter(|(w, _)| *w > 0.0).unzip();
    *localities.schedule.get_mut() = if effective.is_empty() || !weighted {
        None
    } else {
        // Envoy passes its 64-bit seed as the 32-bit number of picks.
        Some(Box::new((Edf::with_picks(effective, |_, w| w, seed as u32), indexes)))
    };
}

/// Envoy's `choosePriority`: the first level whose cumulative healthy load
/// reaches `draw + 1` (`draw` in 0..100), else the first by degraded load.
fn choose_level(levels: &[Level], draw: u32) -> Option<(usize, Availability)> {
    let mut cumulative = 0;
    let healthy = levels.iter().position(|l| {
        cumulative += l.healthy_load;
        draw < cumulative
    });
    let mut degraded = || {
        levels.iter().position(|l| {
            cumulative += l.degraded_load;
            draw < cumulative
        })
    };
    match healthy {
        Some(i) => Some((i, Availability::Healthy)),
        None => degraded().map(|i| (i, Availability::Degraded)),
    }
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

/// A level's hosts by health, what Envoy's load computation reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelCounts {
    pub healthy: u64,
    pub degraded: u64,
    /// Draining hosts: not counted among the level's hosts, but in panic
    /// mode's.
    pub excluded: u64,
    pub total: u64,
}

/// A level's share of the requests, in percent, and whether it is in panic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelLoad {
    pub healthy: u32,
    pub degraded: u32,
    pub panic: bool,
}

/// Envoy's per-priority load (`recalculatePerPriorityState`, then
/// `recalculatePerPriorityPanic`) from each level's host counts; the loads add
/// up to 100.
pub fn priority_loads(levels: &[LevelCounts], overprovisioning_factor: u32, panic_threshold: u32) -> Vec<LevelLoad> {
    let share = |n: u64, c: &LevelCounts| match c.total - c.excluded {
        0 => 0,
        // At most 100, so the cast is exact.
        counted => (u64::from(overprovisioning_factor) * n / counted).min(100) as u32,
    };
    let health: Vec<u32> = levels.iter().map(|c| share(c.healthy, c)).collect();
    let degraded: Vec<u32> = levels.iter().map(|c| share(c.degraded, c)).collect();
    let mut loads = vec![LevelLoad::default(); levels.len().max(1)];
    let normalized_total = (health.iter().sum::<u32>() + degraded.iter().sum::<u32>()).min(100);
    if normalized_total == 0 {
        if panic_threshold == 0 {
            loads[0].healthy = 100;
        } else {
            total_panic_loads(levels, &mut loads);
        }
        return loads;
    }
    let (first_healthy, remaining) = distribute(&mut loads, &health, 100, normalized_total, |l| &mut l.healthy);
    let (first_degraded, remaining) =
        distribute(&mut loads, &degraded, remaining, normalized_total, |l| &mut l.degraded);
    // Rounding leaves a little: it goes to the first level with any health,
    // else with degraded hosts.
    match (first_healthy, first_degraded) {
        (Some(i), _) => loads[i].healthy += remaining,
        (None, Some(i)) => loads[i].degraded += remaining,
        (None, None) => {}
    }
    // Panic never starts while the levels together cover all of the load.
    if normalized_total < 100 {
        for (load, c) in loads.iter_mut().zip(levels) {
            load.panic = is_in_panic(c, panic_threshold);
        }
    }
    loads
}

/// Envoy's `distributeLoad`: each level in turn takes its availability's share
/// of the total, as long as load remains. Returns the first level with any
/// availability and the load left.
fn distribute(
    loads: &mut [LevelLoad],
    availability: &[u32],
    mut remaining: u32,
    normalized_total: u32,
    field: impl Fn(&mut LevelLoad) -> &mut u32,
) -> (Option<usize>, u32) {
    for (load, a) in loads.iter_mut().zip(availability) {
        let share = remaining.min(a * 100 / normalized_total);
        *field(load) = share;
        remaining -= share;
    }
    (availability.iter().position(|a| *a > 0), remaining)
}

/// `is_in_panic` of a set of hosts (the local cluster's level 0, for zone routing).
pub fn is_host_set_in_panic(hosts: &[Arc<Host>], panic_threshold: u32) -> bool {
    let count = |health| hosts.iter().filter(|h| h.health() == health).count() as u64;
    let counts = LevelCounts {
        healthy: count(Health::Healthy),
        degraded: count(Health::Degraded),
        excluded: count(Health::Excluded),
        total: hosts.len() as u64,
    };
    is_in_panic(&counts, panic_threshold)
}

/// Envoy's `isHostSetInPanic`: the level's healthy and degraded share of its
/// hosts not excluded is below the threshold (an empty level is in panic).
fn is_in_panic(c: &LevelCounts, panic_threshold: u32) -> bool {
    let counted = c.total - c.excluded;
    let available = if counted == 0 { 0.0 } else { 100.0 * (c.healthy + c.degraded) as f64 / counted as f64 };
    available < f64::from(panic_threshold.min(100))
}

/// With no level available, every level is in panic and Envoy spreads the load
/// by host count, excluded hosts included (`recalculateLoadInTotalPanic`), or,
/// with no host anywhere, gives it all to level 0.
fn total_panic_loads(levels: &[LevelCounts], loads: &mut [LevelLoad]) {
    for load in loads.iter_mut() {
        load.panic = true;
    }
    let hosts: u64 = levels.iter().map(|c| c.total).sum();
    let Some(first) = levels.iter().position(|c| c.total > 0) else {
        loads[0].healthy = 100;
        return;
    };
    let mut remaining = 100;
    for (load, c) in loads.iter_mut().zip(levels) {
        // At most 100, so the cast is exact.
        load.healthy = (100 * c.total / hosts) as u32;
        remaining -= load.healthy;
    }
    loads[first].healthy += remaining;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::host::EdsHealth;

    /// Levels of `(healthy, degraded, total)` hosts, none excluded.
    fn counts(levels: &[(u64, u64, u64)]) -> Vec<LevelCounts> {
        levels.iter().map(|&(healthy, degraded, total)| LevelCounts { healthy, degraded, excluded: 0, total }).collect()
    }

    fn healthy(levels: &[u64]) -> Vec<LevelCounts> {
        counts(&levels.iter().map(|&n| (n, 0, n)).collect::<Vec<_>>())
    }

    /// The healthy loads of `levels` (with the default panic threshold).
    fn loads(levels: &[LevelCounts], factor: u32) -> Vec<u32> {
        priority_loads(levels, factor, 50).iter().map(|l| l.healthy).collect()
    }

    /// Each level's `(healthy load, degraded load, panic)`.
    fn full(levels: &[(u64, u64, u64)], factor: u32, threshold: u32) -> Vec<(u32, u32, bool)> {
        priority_loads(&counts(levels), factor, threshold).iter().map(|l| (l.healthy, l.degraded, l.panic)).collect()
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
            assert_eq!(loads(&counts(&[(p0, 0, 100), (p1, 0, 100)]), 140), expected, "P0 {p0}% P1 {p1}% healthy");
        }
        // Three levels: P0 and P1 each cover part.
        assert_eq!(loads(&counts(&[(20, 0, 100), (20, 0, 100), (100, 0, 100)]), 140), [28, 28, 44]);
    }

    #[test]
    fn degraded_hosts_take_what_healthy_ones_cannot_cover() {
        // Envoy's "Degraded endpoints" table: P0's healthy/degraded/unhealthy
        // shares → traffic to its healthy and degraded hosts.
        for ((h, d, u), expected) in [
            ((100, 0, 0), (100, 0)),
            ((71, 0, 29), (100, 0)),
            ((71, 29, 0), (99, 1)),
            ((25, 65, 10), (35, 65)),
            ((5, 0, 95), (100, 0)),
        ] {
            let got = full(&[(h, d, h + d + u)], 140, 50)[0];
            assert_eq!((got.0, got.1), expected, "{h}/{d}/{u}");
        }
        // The example in Envoy's `recalculatePerPriorityState`: health 10/20/10 %
        // and degraded 20/10/0 % (factor 100) → 16/28/14 to healthy hosts (the
        // first takes the rounding) and 28/14/0 to degraded ones.
        let got = full(&[(10, 20, 100), (20, 10, 100), (10, 0, 100)], 100, 50);
        assert_eq!(got.iter().map(|l| (l.0, l.1)).collect::<Vec<_>>(), [(16, 28), (28, 14), (14, 0)]);
    }

    #[test]
    fn panic_starts_below_the_threshold_unless_the_levels_cover_all_the_load() {
        // Envoy's "Panic threshold" examples (threshold 50 %): a level in panic
        // keeps its load but balances over all its hosts.
        assert_eq!(full(&[(72, 0, 100), (72, 0, 100)], 140, 50), [(100, 0, false), (0, 0, false)]);
        assert_eq!(full(&[(50, 0, 100), (60, 0, 100)], 140, 50), [(70, 0, false), (30, 0, false)]);
        assert_eq!(full(&[(25, 0, 100), (100, 0, 100)], 140, 50), [(35, 0, false), (65, 0, false)]);
        assert_eq!(full(&[(25, 0, 100), (25, 0, 100)], 140, 50), [(50, 0, true), (50, 0, true)]);
        // One level of 5 % healthy: all its load, in panic.
        assert_eq!(full(&[(5, 0, 100)], 140, 50), [(100, 0, true)]);
        // Degraded hosts count as available; the threshold is configurable.
        assert!(!full(&[(1, 1, 4)], 140, 50)[0].2);
        assert!(full(&[(1, 1, 4)], 140, 60)[0].2);
        assert!(!full(&[(1, 0, 4)], 140, 0)[0].2);
    }

    #[test]
    fn excluded_hosts_count_only_in_total_panic() {
        // Envoy's "Excluded endpoints" example: P0 {healthy, excluded, excluded},
        // P1 two healthy: all traffic to P0, not in panic.
        let levels = [LevelCounts { healthy: 1, degraded: 0, excluded: 2, total: 3 }, healthy(&[2])[0]];
        assert_eq!(loads(&levels, 140), [100, 0]);
        let only_excluded = [LevelCounts { healthy: 0, degraded: 0, excluded: 1, total: 1 }, counts(&[(0, 0, 3)])[0]];
        let got = priority_loads(&only_excluded, 140, 50);
        assert_eq!(got.iter().map(|l| (l.healthy, l.panic)).collect::<Vec<_>>(), [(25, true), (75, true)]);
    }

    #[test]
    fn with_every_host_healthy_the_first_level_with_hosts_takes_the_load() {
        assert_eq!(loads(&healthy(&[2, 3]), 140), [100, 0]);
        assert_eq!(loads(&healthy(&[0, 3, 1]), 140), [0, 100, 0]);
        assert_eq!(loads(&healthy(&[0, 0]), 140), [100, 0]);
        assert_eq!(loads(&healthy(&[]), 140), [100]);
        // A factor below 100 leaves the rest to the next levels; normalized when
        // their sum is below 100.
        assert_eq!(loads(&healthy(&[1, 1]), 50), [50, 50]);
        assert_eq!(loads(&healthy(&[1, 1, 1]), 40), [40, 40, 20]);
        assert_eq!(loads(&healthy(&[1]), 50), [100]);
        assert_eq!(loads(&healthy(&[1, 0, 1]), 30), [50, 0, 50]);
        assert_eq!(loads(&healthy(&[1, 1, 1]), 30), [34, 33, 33]);
    }

    #[test]
    fn with_no_healthy_level_the_load_follows_host_counts() {
        assert_eq!(loads(&counts(&[(0, 0, 1), (0, 0, 3)]), 140), [25, 75]);
        assert_eq!(loads(&counts(&[(0, 0, 0), (0, 0, 1), (0, 0, 2)]), 140), [0, 34, 66]);
        // With the threshold at 0, level 0's healthy hosts take it all (none).
        assert_eq!(full(&[(0, 0, 1), (0, 0, 3)], 140, 0), [(100, 0, false), (0, 0, false)]);
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

    fn ports(lb: &PriorityLoadBalancer, picks: usize) -> Vec<u16> {
        (0..picks).filter_map(|_| lb.choose().host).map(|h| h.address.port()).collect()
    }

    #[test]
    fn requests_go_to_the_first_level_with_hosts_and_balance_within_it() {
        let set = hosts(&[0, 0, 1]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0);
        lb.refresh(&set);
        assert_eq!(ports(&lb, 4), [1, 2, 1, 2]);
        // Level 0 gone: level 1 takes over (its round robin from the seed).
        let set = hosts(&[1, 1, 2]);
        lb.refresh(&set);
        assert_eq!(ports(&lb, 3), [1, 2, 1]);
        // Level 0 back, its balancer where it was.
        let set = hosts(&[0, 0, 1]);
        lb.refresh(&set);
        assert_eq!(ports(&lb, 1), [1]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0);
        lb.refresh(&[]);
        assert!(lb.choose().host.is_none());
    }

    /// Hosts on ports 1..=n, each at `(priority, health)`.
    fn with_health(hosts: &[(u32, EdsHealth)]) -> Vec<Arc<Host>> {
        (1..)
            .zip(hosts)
            .map(|(port, &(priority, health))| {
                let h = Host::new(format!("127.0.0.1:{port}").parse().expect("addr"), String::new(), 1);
                let mut h = Arc::into_inner(h).expect("unshared");
                h.priority = priority;
                h.set_eds_health(health);
                Arc::new(h)
            })
            .collect()
    }

    #[test]
    fn requests_skip_unhealthy_hosts_until_panic() {
        use EdsHealth::*;
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0);
        // Two healthy hosts of three (93 %): only they serve, no panic.
        lb.refresh(&with_health(&[(0, Healthy), (0, Unhealthy), (0, Healthy)]));
        assert_eq!(ports(&lb, 4), [1, 3, 1, 3]);
        assert!(!lb.choose().panic);
        // One healthy and one degraded host of three (46 % + 46 %, normalized):
        // each takes half; not in panic (66 % available).
        let set = with_health(&[(0, Healthy), (0, Unhealthy), (0, Degraded)]);
        lb.refresh(&set);
        let picks = ports(&lb, 2000);
        let to = |p: u16| picks.iter().filter(|x| **x == p).count();
        assert_eq!(to(2), 0);
        assert!((850..1250).contains(&to(3)), "{} of 2000 to the degraded host", to(3));
        // Every P0 host unhealthy, P1 healthy: P1 takes it all.
        lb.refresh(&with_health(&[(0, Unhealthy), (0, Draining), (1, Healthy)]));
        assert_eq!(ports(&lb, 3), [3, 3, 3]);
        // No healthy host anywhere: total panic, load by host count, any host.
        lb.refresh(&with_health(&[(0, Unhealthy), (0, Draining)]));
        let pick = lb.choose();
        assert!(pick.panic && pick.host.is_some());
        assert_eq!(ports(&lb, 4).len(), 4);
        // With the threshold at 0 there is no panic, and no healthy host.
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0).with_panic_threshold(0);
        lb.refresh(&with_health(&[(0, Unhealthy), (0, Unhealthy)]));
        let pick = lb.choose();
        assert!(!pick.panic && pick.host.is_none());
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
        let picks = ports(&lb, 300);
        let count = |p: u16| picks.iter().filter(|x| **x == p).count();
        assert_eq!((count(1), count(3), count(2), count(4)), (100, 100, 100, 0));
        // Each cycle of three picks has region "b" twice and "a" once.
        for cycle in picks.chunks(3) {
            assert_eq!(cycle.iter().filter(|p| **p == 2).count(), 1, "{picks:?}");
        }
        // Without locality weighting, the weights change nothing.
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, false, 0);
        lb.refresh(&set);
        assert_eq!(ports(&lb, 4), [1, 2, 3, 4]);
    }

    #[test]
    fn the_nodes_own_locality_comes_first_and_wins_ties() {
        let set = in_localities(&[("a", 1), ("b", 1)]);
        let first = |local: Option<&str>| {
            let local = local.map(|r| Arc::new(Locality { region: r.to_string(), ..Default::default() }));
            let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 140, true, 0).with_local_locality(local);
            lb.refresh(&set);
            ports(&lb, 2)
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
        assert_eq!(ports(&lb, 4), [1, 2, 1, 2]);
    }

    #[test]
    fn a_small_overprovisioning_factor_spreads_requests_over_levels() {
        let set = hosts(&[0, 1]);
        let lb = PriorityLoadBalancer::with_seed(LbPolicy::RoundRobin, 50, false, 0);
        lb.refresh(&set);
        let picks = ports(&lb, 2000);
        let to_p0 = picks.iter().filter(|p| **p == 1).count();
        assert!((800..1200).contains(&to_p0), "{to_p0} of 2000 to priority 0, expected about half");
    }
}
