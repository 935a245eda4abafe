//! Load balancers (`Cluster.lb_policy`) over one set of hosts: a priority level, or
//! one locality of it (`upstream::priority` picks which). Each worker owns its own,
//! so the state is plain cells, exact only per worker (DESIGN.md §1), and never locked.
//! A pick does not allocate: the weighted scheduler is rebuilt only when the host
//! set changes (`LoadBalancer::refresh`).
//!
//! As in Envoy:
//! - `ROUND_ROBIN` cycles through the hosts when their weights are equal, and uses an
//!   earliest-deadline-first scheduler over `load_balancing_weight` when they differ;
//!   each worker's balancer starts at a random point (its seed, as Envoy's
//!   `EdfLoadBalancerBase::seed_`), so workers do not all send their first requests
//!   to the same host: the weighted schedule as if that many picks had been made, and
//!   unweighted round robin at host `seed mod n` (Envoy's `rr_indexes_`, which start
//!   at the seed);
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
use crate::runtime;

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
        /// `active_request_bias.runtime_key`: the runtime may override the bias,
        /// read as Envoy reads it, when the host set changes. (Interned: a
        /// policy is `Copy`, and clusters are built once.)
        active_request_bias_key: Option<&'static str>,
    },
    Random,
}

/// One worker's load balancer for one cluster.
#[derive(Debug, Default)]
pub struct LoadBalancer {
    policy: LbPolicy,
    /// Where the schedules start: the number of picks the weighted scheduler is built
    /// as having made already, and the first index of unweighted round robin.
    seed: u64,
    /// Next index of unweighted round robin (modulo the number of hosts), from the
    /// seed; kept across host-set changes, as Envoy's.
    rr_next: Cell<u64>,
    /// The weighted scheduler, present while the hosts' weights differ
    /// (`ROUND_ROBIN` and `LEAST_REQUEST` only). Boxed: most clusters never
    /// have one, and a balancer is kept per source, level and thread.
    edf: RefCell<Option<Box<Edf>>>,
    /// `LEAST_REQUEST`'s bias as of the last `refresh` (the runtime's, or the
    /// configured one).
    bias: Cell<f64>,
}

impl LoadBalancer {
    /// A balancer with a random seed, as each of Envoy's is.
    pub fn new(policy: LbPolicy) -> Self {
        Self::with_seed(policy, random::next_u64())
    }

    /// A balancer starting from `seed` (see `LoadBalancer::seed`).
    pub fn with_seed(policy: LbPolicy, seed: u64) -> Self {
        let bias = match policy {
            LbPolicy::LeastRequest { active_request_bias, .. } => active_request_bias,
            _ => DEFAULT_ACTIVE_REQUEST_BIAS,
        };
        LoadBalancer { policy, seed, rr_next: Cell::new(seed), edf: RefCell::new(None), bias: Cell::new(bias) }
    }

    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    /// Installs a new host set. As Envoy's `EdfLoadBalancerBase::refresh`, the weighted
    /// scheduler is built only when the hosts' weights differ (so for two hosts or
    /// more), each time from the balancer's seed (`EdfScheduler::createWithPicks`).
    pub fn refresh(&self, hosts: &[Arc<Host>]) {
        let weighted = hosts.windows(2).any(|w| w[0].weight() != w[1].weight());
        let weights = || hosts.iter().map(|h| f64::from(h.weight())).collect::<Vec<f64>>();
        // Envoy passes its 64-bit seed as the 32-bit number of picks.
        let picks = self.seed as u32;
        if let LbPolicy::LeastRequest { active_request_bias, active_request_bias_key: Some(key), .. } = self.policy {
            self.bias.set(runtime_bias(key, active_request_bias));
        }
        let bias = self.bias.get();
        *self.edf.borrow_mut() = match self.policy {
            _ if !weighted => None,
            LbPolicy::Random => None,
            LbPolicy::RoundRobin => Some(Box::new(Edf::with_picks(weights(), |_, w| w, picks))),
            LbPolicy::LeastRequest { .. } => {
                Some(Box::new(Edf::with_picks(weights(), |i, w| least_request_weight(w, &hosts[i], bias), picks)))
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
                // `i % len < len`, so the index fits in a usize.
                hosts.get((i % hosts.len() as u64) as usize)
            }
            LbPolicy::LeastRequest { choice_count, .. } => {
                let bias = self.bias.get();
                if let Some(i) = self.pick_weighted(hosts, |h, w| least_request_weight(w, h, bias)) {
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

/// The runtime's bias for `key`, as Envoy's `LeastRequestLoadBalancer::refresh`
/// reads it: a negative or NaN value is replaced by 1.0.
fn runtime_bias(key: &str, configured: f64) -> f64 {
    let bias = runtime::get_double(key, configured);
    if bias < 0.0 || bias.is_nan() {
        tracing::warn!("upstream: invalid active request bias supplied (runtime key {key}), using 1.0");
        return DEFAULT_ACTIVE_REQUEST_BIAS;
    }
    bias
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

/// Envoy's earliest-deadline-first scheduler (`EdfScheduler`): a host of weight `w`
/// scheduled at time `now` is due at `now + 1/w`; the earliest is picked (ties in
/// scheduling order), the clock moves to its deadline, and it is scheduled again.
/// The floating-point steps are Envoy's, so that the order is Envoy's too.
#[derive(Debug)]
pub(super) struct Edf {
    /// Each host's `load_balancing_weight`, by index in the host set.
    weights: Vec<f64>,
    queue: BinaryHeap<EdfEntry>,
    now: f64,
    order: u64,
}

/// Envoy bounds the picks a scheduler is created with (`UINT_MAX / 10`).
const MAX_INITIAL_PICKS: u32 = 429_496_729;

impl Edf {
    /// Envoy's `EdfScheduler::createWithPicks`: the scheduler as if `picks` picks had
    /// been made from a fresh one holding every host (in index order), without
    /// making them one by one. Each host `i` of weight `w_i` (out of `W`) has been
    /// picked `floor(picks * w_i / W)` times, so it is due at `(p_i + 1) / w_i` and the
    /// clock is at the latest of the `p_i / w_i`; the few picks left are then made.
    /// Like Envoy, it adds 1e-13 to every weight here, so that weights that are
    /// multiples of each other do not tie on rounding errors, and breaks ties between
    /// the hosts by index.
    pub(super) fn with_picks(weights: Vec<f64>, effective: impl Fn(usize, f64) -> f64, picks: u32) -> Edf {
        let picks = picks % MAX_INITIAL_PICKS;
        let n = weights.len();
        let augmented: Vec<f64> = (0..n).map(|i| effective(i, weights[i]).max(f64::MIN_POSITIVE) + 1e-13).collect();
        let sum = augmented.iter().fold(0.0, |sum, w| sum + w);
        let mut queue = BinaryHeap::with_capacity(n);
        let mut picked: u32 = 0;
        let mut now: f64 = 0.0;
        for (i, &w) in augmented.iter().enumerate() {
            let mut floor = (w * f64::from(picks) / sum) as u32;
            // Where floating point puts floor(A * B) above A * B, Envoy picks once less
            // here and once more below.
            if floor > 0 && f64::from(floor) / w >= f64::from(picks) / sum {
                floor -= 1;
            }
            now = now.max(f64::from(floor) / w);
            queue.push(EdfEntry { deadline: f64::from(floor + 1) / w, order: i as u64, index: i });
            picked += floor;
        }
        let mut edf = Edf { weights, queue, now, order: n as u64 };
        while picked < picks {
            edf.pick(&effective);
            picked += 1;
        }
        edf
    }

    fn schedule(&mut self, index: usize, weight: f64) {
        // A weight that rounds to zero (a huge bias) would never be due again.
        let deadline = self.now + 1.0 / weight.max(f64::MIN_POSITIVE);
        self.queue.push(EdfEntry { deadline, order: self.order, index });
        self.order += 1;
    }

    pub(super) fn pick(&mut self, effective: impl Fn(usize, f64) -> f64) -> Option<usize> {
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

    #[test]
    fn least_request_reads_its_bias_from_the_runtime_at_refresh() {
        // `active_request_bias.runtime_key` names a key of the runtime's snapshot.
        use crate::runtime::{self, Entry, Layer, Snapshot};
        let values = [("lb.bias", "0"), ("lb.bad", "-2")];
        let values = values.iter().map(|(k, v)| (k.to_string(), Entry::from_text(*v))).collect();
        runtime::publish_on_this_thread(Snapshot::new(vec![Layer { name: "static".into(), values }]));
        let policy =
            |key| LbPolicy::LeastRequest { choice_count: 2, active_request_bias: 0.5, active_request_bias_key: key };
        let hosts = weighted(&[1, 3]);
        let lb = LoadBalancer::with_seed(policy(Some("lb.bias")), 0);
        assert_eq!(lb.bias.get(), 0.5, "the configured bias until the first refresh");
        lb.refresh(&hosts);
        assert_eq!(lb.bias.get(), 0.0);
        let lb = LoadBalancer::with_seed(policy(Some("lb.bad")), 0);
        lb.refresh(&hosts);
        assert_eq!(lb.bias.get(), 1.0, "a negative runtime bias is replaced by 1.0, as Envoy");
        let lb = LoadBalancer::with_seed(policy(Some("lb.unset")), 0);
        lb.refresh(&hosts);
        assert_eq!(lb.bias.get(), 0.5);
    }

    /// Hosts on ports 1..=n, each of `load_balancing_weight` `weights[port - 1]`.
    fn weighted(weights: &[u32]) -> Vec<Arc<Host>> {
        (1..)
            .zip(weights)
            .map(|(p, &w)| Host::new(format!("127.0.0.1:{p}").parse().expect("addr"), String::new(), w))
            .collect()
    }

    fn hosts(n: usize) -> Vec<Arc<Host>> {
        weighted(&vec![1; n])
    }

    /// A balancer of seed 0 (no picks made yet) over `hosts`.
    fn lb(policy: LbPolicy, hosts: &[Arc<Host>]) -> LoadBalancer {
        let lb = LoadBalancer::with_seed(policy, 0);
        lb.refresh(hosts);
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

    const LEAST_REQUEST: LbPolicy = LbPolicy::LeastRequest {
        choice_count: DEFAULT_CHOICE_COUNT,
        active_request_bias: DEFAULT_ACTIVE_REQUEST_BIAS,
        active_request_bias_key: None,
    };

    #[test]
    fn round_robin_cycles_through_equally_weighted_hosts() {
        let hosts3 = hosts(3);
        let rr = lb(LbPolicy::RoundRobin, &hosts3);
        assert_eq!(ports(&rr, &hosts3, 6), vec![1, 2, 3, 1, 2, 3]);
        assert!(rr.choose(&[]).is_none());
        // Equal weights other than 1 are still plain round robin.
        let fives = weighted(&[5, 5, 5]);
        let rr = lb(LbPolicy::RoundRobin, &fives);
        assert_eq!(ports(&rr, &fives, 4), vec![1, 2, 3, 1]);
        // Never refreshed: unweighted.
        assert_eq!(ports(&LoadBalancer::default(), &hosts3, 4), vec![1, 2, 3, 1]);
    }

    #[test]
    fn unweighted_round_robin_starts_at_the_seed() {
        // As Envoy's `rr_indexes_`, which start at the seed: the first pick is host
        // `seed mod n`, all 64 bits of it (unlike the weighted schedule's 32).
        let hosts = hosts(3);
        for (seed, expected) in [(0, [1, 2, 3, 1]), (1, [2, 3, 1, 2]), (5, [3, 1, 2, 3]), ((1 << 32) + 1, [3, 1, 2, 3])]
        {
            let rr = LoadBalancer::with_seed(LbPolicy::RoundRobin, seed);
            rr.refresh(&hosts);
            assert_eq!(ports(&rr, &hosts, 4), expected, "seed {seed}");
        }
    }

    #[test]
    fn unweighted_round_robin_from_a_random_seed_keeps_the_cyclic_order() {
        let hosts = hosts(3);
        let mut firsts = [0usize; 3];
        for _ in 0..300 {
            let rr = LoadBalancer::new(LbPolicy::RoundRobin);
            rr.refresh(&hosts);
            let order = ports(&rr, &hosts, 9);
            // Each host once per cycle of 3, in config order, from wherever it starts.
            let first = usize::from(order[0]) - 1;
            let expected: Vec<u16> = (0..9).map(|i| ((first + i) % 3 + 1) as u16).collect();
            assert_eq!(order, expected);
            firsts[first] += 1;
        }
        // Each host starts a third of the time: fewer than 50 of 300 is 6 standard
        // deviations off (about 1e-9).
        assert!(firsts.iter().all(|&n| n >= 50), "first hosts {firsts:?}");
    }

    #[test]
    fn round_robin_position_survives_a_host_set_change() {
        let three = hosts(3);
        let rr = lb(LbPolicy::RoundRobin, &three);
        assert_eq!(ports(&rr, &three, 2), vec![1, 2]);
        let two = hosts(2);
        rr.refresh(&two);
        assert_eq!(ports(&rr, &two, 3), vec![1, 2, 1]);
    }

    #[test]
    fn weighted_round_robin_follows_envoys_edf_order() {
        let hosts = weighted(&[3, 1]);
        let rr = lb(LbPolicy::RoundRobin, &hosts);
        // Deadlines 1/(3+ε) and 1/(1+ε): host 2's first deadline is just before 1, so it
        // comes before host 1's third pick; then the cycle of 4 repeats (Envoy 1.40's
        // order, which rounding does not disturb here).
        assert_eq!(ports(&rr, &hosts, 12), vec![1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1]);
        // Every further 4 picks hold exactly 3:1.
        for window in ports(&rr, &hosts, 400).chunks(4) {
            assert_eq!(window.iter().filter(|&&p| p == 1).count(), 3, "{window:?}");
        }
        // Weights 2:1 have a cycle of 3.
        let hosts = weighted(&[2, 1]);
        let rr = lb(LbPolicy::RoundRobin, &hosts);
        assert_eq!(ports(&rr, &hosts, 9), vec![1, 2, 1, 1, 2, 1, 1, 2, 1]);
    }

    #[test]
    fn weighted_round_robin_seed_is_a_number_of_picks_already_made() {
        let hosts = weighted(&[3, 1]);
        let cycle = [1, 1, 2, 1];
        for seed in 0..8u64 {
            let rr = LoadBalancer::with_seed(LbPolicy::RoundRobin, seed);
            rr.refresh(&hosts);
            let expected: Vec<u16> = (0..12).map(|i| cycle[(i + seed as usize) % 4]).collect();
            assert_eq!(ports(&rr, &hosts, 12), expected, "seed {seed}");
        }
        // Only the low 32 bits count, modulo Envoy's bound on initial picks.
        let rr = LoadBalancer::with_seed(LbPolicy::RoundRobin, (7 << 32) | (MAX_INITIAL_PICKS as u64 + 2));
        rr.refresh(&hosts);
        assert_eq!(ports(&rr, &hosts, 4), vec![2, 1, 1, 1]);
        // Any seed, as Envoy's random ones: one host 2 in every 4, one cycle throughout.
        for _ in 0..200 {
            let rr = LoadBalancer::new(LbPolicy::RoundRobin);
            rr.refresh(&hosts);
            let order = ports(&rr, &hosts, 12);
            assert!(order[4..].iter().zip(&order).all(|(a, b)| a == b), "{order:?}");
            assert_eq!(order[..4].iter().filter(|&&p| p == 2).count(), 1, "{order:?}");
        }
        // A refresh starts again from the seed.
        let rr = LoadBalancer::with_seed(LbPolicy::RoundRobin, 1);
        rr.refresh(&hosts);
        assert_eq!(ports(&rr, &hosts, 3), vec![1, 2, 1]);
        rr.refresh(&hosts);
        assert_eq!(ports(&rr, &hosts, 3), vec![1, 2, 1]);
    }

    #[test]
    fn weighted_round_robin_distribution_is_exact() {
        let hosts = weighted(&[1, 2, 3, 4]);
        let rr = lb(LbPolicy::RoundRobin, &hosts);
        assert_eq!(counts(&rr, &hosts, 1000), vec![100, 200, 300, 400]);
        // A new host set with new weights starts a new schedule.
        let hosts = weighted(&[1, 1, 1, 7]);
        rr.refresh(&hosts);
        assert_eq!(counts(&rr, &hosts, 100), vec![10, 10, 10, 70]);
        // Back to equal weights: plain round robin.
        let hosts = weighted(&[2, 2, 2, 2]);
        rr.refresh(&hosts);
        assert_eq!(counts(&rr, &hosts, 8), vec![2, 2, 2, 2]);
        // A seeded start keeps the proportions, give or take the pick in progress.
        let hosts = weighted(&[1, 2, 3, 4]);
        let rr = LoadBalancer::with_seed(LbPolicy::RoundRobin, 123_456_789);
        rr.refresh(&hosts);
        let seen = counts(&rr, &hosts, 1000);
        assert!(seen.iter().zip([100, 200, 300, 400]).all(|(&n, e)| n.abs_diff(e) <= 1), "{seen:?}");
    }

    #[test]
    fn least_request_avoids_a_busy_host() {
        let hosts = hosts(2);
        hosts[0].stats.rq_active.store(5, Relaxed);
        // With as many choices as it takes, the idle host always wins.
        let lr = lb(
            LbPolicy::LeastRequest { choice_count: 64, active_request_bias: 1.0, active_request_bias_key: None },
            &hosts,
        );
        assert_eq!(counts(&lr, &hosts, 200), vec![0, 200]);
        // With one host, it is the one.
        let one = &hosts[..1];
        lr.refresh(one);
        assert_eq!(lr.choose(one).map(|h| h.address.port()), Some(1));
        assert!(lr.choose(&[]).is_none());
    }

    #[test]
    fn least_request_power_of_two_choices() {
        // Two hosts, one busy: both samples land on the busy host a quarter of the time.
        let hosts = hosts(2);
        hosts[0].stats.rq_active.store(1, Relaxed);
        let lr = lb(LEAST_REQUEST, &hosts);
        let seen = counts(&lr, &hosts, 8000);
        assert!((1600..2400).contains(&seen[0]), "{seen:?}");
        // Equally loaded hosts share evenly.
        hosts[0].stats.rq_active.store(0, Relaxed);
        let seen = counts(&lr, &hosts, 8000);
        assert!((3600..4400).contains(&seen[0]), "{seen:?}");
    }

    #[test]
    fn weighted_least_request_divides_weight_by_active_requests() {
        let hosts = weighted(&[1, 2]);
        // Weights 1:2, host 2 has 3 active requests: dynamic weights 1/1 and 2/4.
        hosts[1].stats.rq_active.store(3, Relaxed);
        let lr = lb(LEAST_REQUEST, &hosts);
        assert_eq!(counts(&lr, &hosts, 300), vec![200, 100]);
        // Bias 2: 2/16 against 1.
        let lr = lb(
            LbPolicy::LeastRequest { choice_count: 2, active_request_bias: 2.0, active_request_bias_key: None },
            &hosts,
        );
        assert_eq!(counts(&lr, &hosts, 900), vec![800, 100]);
        // Bias 0 ignores active requests: weighted round robin.
        let lr = lb(
            LbPolicy::LeastRequest { choice_count: 2, active_request_bias: 0.0, active_request_bias_key: None },
            &hosts,
        );
        assert_eq!(counts(&lr, &hosts, 300), vec![100, 200]);
    }

    #[test]
    fn weighted_least_request_reacts_when_a_host_is_rescheduled() {
        let hosts = weighted(&[2, 1]);
        let lr = lb(LEAST_REQUEST, &hosts);
        // Idle: plain 2:1.
        assert_eq!(counts(&lr, &hosts, 30), vec![20, 10]);
        // Host 1 gets busy: its weight drops to 2/10 the next time it is scheduled.
        hosts[0].stats.rq_active.store(9, Relaxed);
        let seen = counts(&lr, &hosts, 60);
        assert!(seen[0] <= 12 && seen[1] >= 48, "{seen:?}");
    }

    #[test]
    fn random_spreads_over_all_hosts_and_ignores_weights() {
        let hosts = weighted(&[1, 1, 1, 100]);
        let r = lb(LbPolicy::Random, &hosts);
        let seen = counts(&r, &hosts, 8000);
        assert!(seen.iter().all(|&n| (1600..2400).contains(&n)), "{seen:?}");
        assert!(r.choose(&[]).is_none());
    }

    #[test]
    fn edf_breaks_ties_in_scheduling_order() {
        let mut edf = Edf::with_picks(vec![1.0, 1.0, 1.0], |_, w| w, 0);
        let order: Vec<usize> = (0..6).filter_map(|_| edf.pick(|_, w| w)).collect();
        assert_eq!(order, vec![0, 1, 2, 0, 1, 2]);
        // Created as if 4 picks were made: the fifth and sixth come next.
        let mut edf = Edf::with_picks(vec![1.0, 1.0, 1.0], |_, w| w, 4);
        let order: Vec<usize> = (0..4).filter_map(|_| edf.pick(|_, w| w)).collect();
        assert_eq!(order, vec![1, 2, 0, 1]);
    }

    #[test]
    fn edf_created_with_picks_continues_a_fresh_schedule() {
        let pick_n = |edf: &mut Edf, n: usize| -> Vec<usize> { (0..n).filter_map(|_| edf.pick(|_, w| w)).collect() };
        for weights in [vec![3.0, 1.0], vec![2.0, 1.0]] {
            let all = pick_n(&mut Edf::with_picks(weights.clone(), |_, w| w, 0), 220);
            for picks in 0..200 {
                let next = pick_n(&mut Edf::with_picks(weights.clone(), |_, w| w, picks), 20);
                assert_eq!(next, all[picks as usize..picks as usize + 20], "{weights:?} after {picks} picks");
            }
        }
        // Elsewhere equal deadlines may be broken the other way, as in Envoy, but each
        // host still gets its share.
        let weights = vec![25.0, 75.0, 10.0];
        for picks in [23, 50, 99, 12_345] {
            let next = pick_n(&mut Edf::with_picks(weights.clone(), |_, w| w, picks), 110);
            let share: Vec<usize> = (0..3).map(|i| next.iter().filter(|&&n| n == i).count()).collect();
            assert!(share.iter().zip([25, 75, 10]).all(|(&s, e)| s.abs_diff(e) <= 1), "{share:?}");
        }
        // No hosts, no picks.
        assert_eq!(Edf::with_picks(Vec::new(), |_, w| w, 5).pick(|_, w| w), None);
    }
}
