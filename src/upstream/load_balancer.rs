//! Load balancers (`Cluster.lb_policy`). Each worker owns one per cluster, so the
//! state is plain cells, exact only per worker (DESIGN.md §1), and never locked.
//! A pick does not allocate: the weighted scheduler is rebuilt only when the host
//! set changes (`LoadBalancer::refresh`).
//!
//! As in Envoy:
//! - `ROUND_ROBIN` cycles through the hosts when their weights are equal, and uses an
//!   earliest-deadline-first scheduler over `load_balancing_weight` when they differ;
//! - `LEAST_REQUEST` picks the host with the fewest active requests among
//!   `choice_count` hosts sampled at random (power of two choices by default) when the
//!   weights are equal, and when they differ uses the EDF scheduler with the dynamic
//!   weight `load_balancing_weight / (active_requests + 1)^active_request_bias`,
//!   computed each time a host is (re)scheduled;
//! - `RANDOM` picks a uniformly random host (weights are not used).

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::host::{Host, HostStats};
use crate::common::random;

/// Envoy's default `least_request_lb_config.choice_count`.
pub const DEFAULT_CHOICE_COUNT: u32 = 2;
/// Envoy's default `least_request_lb_config.active_request_bias`.
pub const DEFAULT_ACTIVE_REQUEST_BIAS: f64 = 1.0;

/// A cluster's load-balancing policy and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest {
        choice_count: u32,
        active_request_bias: f64,
    },
    Random,
}

/// One worker's load balancer for one cluster.
#[derive(Debug, Default)]
pub struct LoadBalancer {
    policy: LbPolicy,
    /// Next index of unweighted round robin; kept across host-set changes.
    rr_next: Cell<usize>,
    /// The weighted scheduler, present while the hosts' weights differ
    /// (`ROUND_ROBIN` and `LEAST_REQUEST` only).
    edf: RefCell<Option<Edf>>,
}

impl LoadBalancer {
    pub fn new(policy: LbPolicy) -> Self {
        LoadBalancer { policy, ..Default::default() }
    }

    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    /// Installs a new host set: `weights[i]` is the `load_balancing_weight` of `hosts[i]`.
    pub fn refresh(&self, hosts: &[Arc<Host>], weights: &[u32]) {
        let weighted = hosts.len() == weights.len() && weights.windows(2).any(|w| w[0] != w[1]);
        let weights = || weights.iter().map(|&w| f64::from(w)).collect::<Vec<f64>>();
        *self.edf.borrow_mut() = match self.policy {
            _ if !weighted => None,
            LbPolicy::Random => None,
            LbPolicy::RoundRobin => Some(Edf::new(weights(), |_, w| w)),
            LbPolicy::LeastRequest { active_request_bias, .. } => {
                Some(Edf::new(weights(), |i, w| least_request_weight(w, &hosts[i], active_request_bias)))
            }
        };
    }

    /// The next host, or `None` when there is none. `hosts` must be the set last
    /// given to `refresh` (a set of another size is balanced as if unweighted).
    pub fn choose<'a>(&self, hosts: &'a [Arc<Host>]) -> Option<&'a Arc<Host>> {
        if hosts.is_empty() {
            return None;
        }
        match self.policy {
            LbPolicy::RoundRobin => {
                if let Some(i) = self.pick_weighted(hosts, |_, w| w) {
                    return hosts.get(i);
                }
                let i = self.rr_next.get();
                self.rr_next.set(i.wrapping_add(1));
                hosts.get(i % hosts.len())
            }
            LbPolicy::LeastRequest { choice_count, active_request_bias } => {
                if let Some(i) = self.pick_weighted(hosts, |h, w| least_request_weight(w, h, active_request_bias)) {
                    return hosts.get(i);
                }
                least_of_random_choices(hosts, choice_count)
            }
            LbPolicy::Random => hosts.get(random_index(hosts.len())),
        }
    }

    /// A pick of the weighted scheduler, which reschedules the host with
    /// `weight(host, load_balancing_weight)`; `None` when unweighted.
    fn pick_weighted(&self, hosts: &[Arc<Host>], weight: impl Fn(&Host, f64) -> f64) -> Option<usize> {
        let mut edf = self.edf.borrow_mut();
        let edf = edf.as_mut().filter(|e| e.weights.len() == hosts.len())?;
        edf.pick(|i, w| weight(&hosts[i], w))
    }
}

fn random_index(len: usize) -> usize {
    random::below(len as u64) as usize
}

/// Envoy's unweighted least request: of `choice_count` hosts sampled at random (with
/// replacement), the first one with the fewest active requests.
fn least_of_random_choices(hosts: &[Arc<Host>], choice_count: u32) -> Option<&Arc<Host>> {
    let mut best: Option<(&Arc<Host>, u64)> = None;
    for _ in 0..choice_count.max(1) {
        let host = &hosts[random_index(hosts.len())];
        let active = HostStats::get(&host.stats.rq_active);
        if best.is_none_or(|(_, fewest)| active < fewest) {
            best = Some((host, active));
        }
    }
    best.map(|(h, _)| h)
}

/// `weight / (active_requests + 1)^bias`.
fn least_request_weight(weight: f64, host: &Host, bias: f64) -> f64 {
    if bias == 0.0 {
        return weight;
    }
    let active = HostStats::get(&host.stats.rq_active) as f64 + 1.0;
    if bias == 1.0 {
        weight / active
    } else {
        weight / active.powf(bias)
    }
}

/// Envoy's earliest-deadline-first scheduler: a host of weight `w` scheduled at
/// time `now` is due at `now + 1/w`; the earliest is picked (ties in scheduling
/// order), the clock moves to its deadline, and it is scheduled again.
#[derive(Debug)]
struct Edf {
    /// Each host's `load_balancing_weight`, by index in the host set.
    weights: Vec<f64>,
    queue: BinaryHeap<EdfEntry>,
    now: f64,
    order: u64,
}

impl Edf {
    fn new(weights: Vec<f64>, effective: impl Fn(usize, f64) -> f64) -> Edf {
        let mut edf = Edf { queue: BinaryHeap::with_capacity(weights.len()), weights, now: 0.0, order: 0 };
        for i in 0..edf.weights.len() {
            let w = effective(i, edf.weights[i]);
            edf.schedule(i, w);
        }
        edf
    }

    fn schedule(&mut self, index: usize, weight: f64) {
        // A weight that rounds to zero (a huge bias) would never be due again.
        let deadline = self.now + 1.0 / weight.max(f64::MIN_POSITIVE);
        self.queue.push(EdfEntry { deadline, order: self.order, index });
        self.order += 1;
    }

    fn pick(&mut self, effective: impl Fn(usize, f64) -> f64) -> Option<usize> {
        let entry = self.queue.pop()?;
        self.now = entry.deadline;
        let w = effective(entry.index, self.weights[entry.index]);
        self.schedule(entry.index, w);
        Some(entry.index)
    }
}

#[derive(Debug)]
struct EdfEntry {
    deadline: f64,
    order: u64,
    index: usize,
}

impl Ord for EdfEntry {
    /// Reversed, so that the max-heap yields the earliest deadline, then the
    /// earliest scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.total_cmp(&self.deadline).then_with(|| other.order.cmp(&self.order))
    }
}

impl PartialOrd for EdfEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for EdfEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for EdfEntry {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    fn hosts(n: u16) -> Vec<Arc<Host>> {
        (1..=n).map(|p| Host::new(format!("127.0.0.1:{p}").parse().expect("addr"), String::new())).collect()
    }

    fn lb(policy: LbPolicy, hosts: &[Arc<Host>], weights: &[u32]) -> LoadBalancer {
        let lb = LoadBalancer::new(policy);
        lb.refresh(hosts, weights);
        lb
    }

    /// How many of `picks` picks went to each host (by port 1..=n).
    fn counts(lb: &LoadBalancer, hosts: &[Arc<Host>], picks: usize) -> Vec<usize> {
        let mut seen = vec![0; hosts.len()];
        for _ in 0..picks {
            let h = lb.choose(hosts).expect("a host");
            seen[usize::from(h.address.port()) - 1] += 1;
        }
        seen
    }

    fn ports(lb: &LoadBalancer, hosts: &[Arc<Host>], picks: usize) -> Vec<u16> {
        (0..picks).filter_map(|_| lb.choose(hosts)).map(|h| h.address.port()).collect()
    }

    const LEAST_REQUEST: LbPolicy =
        LbPolicy::LeastRequest { choice_count: DEFAULT_CHOICE_COUNT, active_request_bias: DEFAULT_ACTIVE_REQUEST_BIAS };

    #[test]
    fn round_robin_cycles_through_equally_weighted_hosts() {
        let hosts = hosts(3);
        let rr = lb(LbPolicy::RoundRobin, &hosts, &[1, 1, 1]);
        assert_eq!(ports(&rr, &hosts, 6), vec![1, 2, 3, 1, 2, 3]);
        assert!(rr.choose(&[]).is_none());
        // Equal weights other than 1 are still plain round robin.
        let rr = lb(LbPolicy::RoundRobin, &hosts, &[5, 5, 5]);
        assert_eq!(ports(&rr, &hosts, 4), vec![1, 2, 3, 1]);
        // Never refreshed: unweighted.
        assert_eq!(ports(&LoadBalancer::default(), &hosts, 4), vec![1, 2, 3, 1]);
    }

    #[test]
    fn round_robin_position_survives_a_host_set_change() {
        let three = hosts(3);
        let rr = lb(LbPolicy::RoundRobin, &three, &[1, 1, 1]);
        assert_eq!(ports(&rr, &three, 2), vec![1, 2]);
        let two = hosts(2);
        rr.refresh(&two, &[1, 1]);
        assert_eq!(ports(&rr, &two, 3), vec![1, 2, 1]);
    }

    #[test]
    fn weighted_round_robin_follows_edf_order() {
        let hosts = hosts(2);
        let rr = lb(LbPolicy::RoundRobin, &hosts, &[3, 1]);
        // Deadlines: host 1 at 1/3, 2/3, 1; host 2 at 1, and scheduled first.
        assert_eq!(ports(&rr, &hosts, 4), vec![1, 1, 2, 1]);
        // Every further 4 picks hold exactly 3:1.
        for window in ports(&rr, &hosts, 400).chunks(4) {
            assert_eq!(window.iter().filter(|&&p| p == 1).count(), 3, "{window:?}");
        }
    }

    #[test]
    fn weighted_round_robin_distribution_is_exact() {
        let hosts = hosts(4);
        let rr = lb(LbPolicy::RoundRobin, &hosts, &[1, 2, 3, 4]);
        assert_eq!(counts(&rr, &hosts, 1000), vec![100, 200, 300, 400]);
        // A new host set with new weights starts a new schedule.
        rr.refresh(&hosts, &[1, 1, 1, 7]);
        assert_eq!(counts(&rr, &hosts, 100), vec![10, 10, 10, 70]);
        // Back to equal weights: plain round robin.
        rr.refresh(&hosts, &[2, 2, 2, 2]);
        assert_eq!(counts(&rr, &hosts, 8), vec![2, 2, 2, 2]);
    }

    #[test]
    fn least_request_avoids_a_busy_host() {
        let hosts = hosts(2);
        hosts[0].stats.rq_active.store(5, Relaxed);
        // With as many choices as it takes, the idle host always wins.
        let lr = lb(LbPolicy::LeastRequest { choice_count: 64, active_request_bias: 1.0 }, &hosts, &[1, 1]);
        assert_eq!(counts(&lr, &hosts, 200), vec![0, 200]);
        // With one host, it is the one.
        let one = &hosts[..1];
        lr.refresh(one, &[1]);
        assert_eq!(lr.choose(one).map(|h| h.address.port()), Some(1));
        assert!(lr.choose(&[]).is_none());
    }

    #[test]
    fn least_request_power_of_two_choices() {
        // Two hosts, one busy: both samples land on the busy host a quarter of the time.
        let hosts = hosts(2);
        hosts[0].stats.rq_active.store(1, Relaxed);
        let lr = lb(LEAST_REQUEST, &hosts, &[1, 1]);
        let seen = counts(&lr, &hosts, 8000);
        assert!((1600..2400).contains(&seen[0]), "{seen:?}");
        // Equally loaded hosts share evenly.
        hosts[0].stats.rq_active.store(0, Relaxed);
        let seen = counts(&lr, &hosts, 8000);
        assert!((3600..4400).contains(&seen[0]), "{seen:?}");
    }

    #[test]
    fn weighted_least_request_divides_weight_by_active_requests() {
        let hosts = hosts(2);
        // Weights 1:2, host 2 has 3 active requests: dynamic weights 1/1 and 2/4.
        hosts[1].stats.rq_active.store(3, Relaxed);
        let lr = lb(LEAST_REQUEST, &hosts, &[1, 2]);
        assert_eq!(counts(&lr, &hosts, 300), vec![200, 100]);
        // Bias 2: 2/16 against 1.
        let lr = lb(LbPolicy::LeastRequest { choice_count: 2, active_request_bias: 2.0 }, &hosts, &[1, 2]);
        assert_eq!(counts(&lr, &hosts, 900), vec![800, 100]);
        // Bias 0 ignores active requests: weighted round robin.
        let lr = lb(LbPolicy::LeastRequest { choice_count: 2, active_request_bias: 0.0 }, &hosts, &[1, 2]);
        assert_eq!(counts(&lr, &hosts, 300), vec![100, 200]);
    }

    #[test]
    fn weighted_least_request_reacts_when_a_host_is_rescheduled() {
        let hosts = hosts(2);
        let lr = lb(LEAST_REQUEST, &hosts, &[2, 1]);
        // Idle: plain 2:1.
        assert_eq!(counts(&lr, &hosts, 30), vec![20, 10]);
        // Host 1 gets busy: its weight drops to 2/10 the next time it is scheduled.
        hosts[0].stats.rq_active.store(9, Relaxed);
        let seen = counts(&lr, &hosts, 60);
        assert!(seen[0] <= 12 && seen[1] >= 48, "{seen:?}");
    }

    #[test]
    fn random_spreads_over_all_hosts_and_ignores_weights() {
        let hosts = hosts(4);
        let r = lb(LbPolicy::Random, &hosts, &[1, 1, 1, 100]);
        let seen = counts(&r, &hosts, 8000);
        assert!(seen.iter().all(|&n| (1600..2400).contains(&n)), "{seen:?}");
        assert!(r.choose(&[]).is_none());
    }

    #[test]
    fn edf_breaks_ties_in_scheduling_order() {
        let mut edf = Edf::new(vec![1.0, 1.0, 1.0], |_, w| w);
        let order: Vec<usize> = (0..6).filter_map(|_| edf.pick(|_, w| w)).collect();
        assert_eq!(order, vec![0, 1, 2, 0, 1, 2]);
    }
}
