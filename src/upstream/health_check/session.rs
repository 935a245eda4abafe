//! One host checked by one `HealthCheck`, as Envoy's `ActiveHealthCheckSession`:
//! a check every interval, bounded by `timeout` (a timeout is a network failure);
//! `healthy_threshold` passes in a row make a failed host healthy (its very first
//! check alone does), and `unhealthy_threshold` network failures in a row (or a
//! retriable status) fail a healthy one, while any other failure (an unexpected
//! status, a payload that does not match, a gRPC status other than SERVING) fails
//! it at once. The next check waits `interval`, `unhealthy_interval` or an edge
//! interval while a change is pending, or the no-traffic intervals until the
//! cluster has made a connection, plus the jitter. The check's event log
//! (`event_log`) gets a line where Envoy's session writes one.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::config::{Check, HealthCheckConfig};
use super::event_log::{Event, FailureType};
use super::{grpc, http, tcp, FirstRound, HealthCheckStats, OnHealthChange};
use crate::common::random;
use crate::upstream::cluster::ClusterInfo;
use crate::upstream::host::{
    Host, ACTIVE_HC_TIMEOUT, DEGRADED_ACTIVE_HC, EXCLUDED_VIA_IMMEDIATE_HC_FAIL, FAILED_ACTIVE_HC,
};

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    /// Passed, with `x-envoy-degraded`.
    Degraded,
    /// The upstream answered, wrongly (`retriable`: a `retriable_statuses` code;
    /// `http_status`: an HTTP check's status, else 0, for the event log).
    Failed {
        retriable: bool,
        http_status: u16,
    },
    /// No answer: the connection failed or closed.
    Network,
    /// No answer within `timeout`.
    Timeout,
}

/// Envoy's `HealthTransition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transition {
    Unchanged,
    Changed,
    ChangePending,
}

/// A checker's connection, kept between checks with `reuse_connection`.
pub enum Probe {
    Http(http::HttpProbe),
    Tcp(tcp::TcpProbe),
    Grpc(grpc::GrpcProbe),
}

pub struct Session {
    info: Arc<ClusterInfo>,
    host: Arc<Host>,
    config: Arc<HealthCheckConfig>,
    stats: Arc<HealthCheckStats>,
    num_healthy: u32,
    num_unhealthy: u32,
    first_check: bool,
}

impl Session {
    pub fn new(
        info: Arc<ClusterInfo>,
        host: Arc<Host>,
        config: Arc<HealthCheckConfig>,
        stats: Arc<HealthCheckStats>,
    ) -> Self {
        Session { info, host, config, stats, num_healthy: 0, num_unhealthy: 0, first_check: true }
    }

    /// Checks until aborted; `first` is dropped once the first check is over
    /// (or with the task, if aborted before).
    pub async fn run(mut self, on_change: OnHealthChange, first: FirstGuard) {
        let mut probe = match &self.config.check {
            Check::Http(_) => Probe::Http(http::HttpProbe::default()),
            Check::Tcp(_) => Probe::Tcp(tcp::TcpProbe::default()),
            Check::Grpc(_) => Probe::Grpc(grpc::GrpcProbe::default()),
        };
        if !self.config.initial_jitter.is_zero() {
            tokio::time::sleep(self.jittered(0, self.config.initial_jitter)).await;
        }
        let mut first = Some(first);
        loop {
            self.stats.attempt.inc();
            let outcome = match tokio::time::timeout(self.config.timeout, self.check(&mut probe)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    probe.close();
                    Outcome::Timeout
                }
            };
            let (transition, healthy) = self.apply(outcome);
            if transition == Transition::Changed {
                on_change(&self.info);
            }
            first.take();
            let wait = self.interval(healthy, transition);
            tokio::time::sleep(wait).await;
        }
    }

    async fn check(&self, probe: &mut Probe) -> Outcome {
        let reuse = self.config.reuse_connection;
        match (&self.config.check, probe) {
            (Check::Http(c), Probe::Http(p)) => p.check(c, &self.info, &self.host, reuse).await,
            (Check::Tcp(c), Probe::Tcp(p)) => p.check(c, &self.info, &self.host, reuse).await,
            (Check::Grpc(c), Probe::Grpc(p)) => p.check(c, &self.info, &self.host, reuse).await,
            _ => Outcome::Network,
        }
    }

    /// Sets the host's flags and the stats from `outcome`; the transition, and
    /// whether the check passed.
    fn apply(&mut self, outcome: Outcome) -> (Transition, bool) {
        let host = &self.host;
        let transition = match outcome {
            Outcome::Healthy | Outcome::Degraded => {
                self.num_unhealthy = 0;
                let mut transition = Transition::Unchanged;
                if host.active_hc(FAILED_ACTIVE_HC) {
                    self.num_healthy += 1;
                    if self.first_check || self.num_healthy >= self.config.healthy_threshold {
                        host.set_active_hc(ACTIVE_HC_TIMEOUT, false);
                        host.set_active_hc(EXCLUDED_VIA_IMMEDIATE_HC_FAIL, false);
                        host.set_active_hc(FAILED_ACTIVE_HC, false);
                        self.stats.healthy.inc();
                        transition = Transition::Changed;
                        self.log(Event::AddHealthy { first_check: self.first_check });
                    } else {
                        transition = Transition::ChangePending;
                    }
                }
                if transition != Transition::Changed
                    && self.config.event_log.as_ref().is_some_and(|l| l.always_log_success)
                {
                    self.log(Event::Successful);
                }
                let degraded = outcome == Outcome::Degraded;
                if degraded != host.active_hc(DEGRADED_ACTIVE_HC) {
                    host.set_active_hc(DEGRADED_ACTIVE_HC, degraded);
                    if degraded {
                        self.stats.degraded.inc();
                        self.log(Event::Degraded);
                    } else {
                        self.log(Event::NoLongerDegraded);
                        self.stats.degraded.dec();
                    }
                    if transition == Transition::Unchanged {
                        transition = Transition::Changed;
                    }
                }
                self.stats.success.inc();
                transition
            }
            Outcome::Failed { .. } | Outcome::Network | Outcome::Timeout => {
                self.num_healthy = 0;
                let network = matches!(outcome, Outcome::Network | Outcome::Timeout);
                let (failure, retriable, http_status) = match outcome {
                    Outcome::Failed { retriable, http_status } => (FailureType::Active, retriable, http_status),
                    Outcome::Timeout => (FailureType::NetworkTimeout, false, 0),
                    _ => (FailureType::Network, false, 0),
                };
                let mut transition = Transition::Unchanged;
                if !host.active_hc(FAILED_ACTIVE_HC) {
                    self.num_unhealthy += 1;
                    if (!network && !retriable) || self.num_unhealthy >= self.config.unhealthy_threshold {
                        host.set_active_hc(FAILED_ACTIVE_HC, true);
                        self.stats.healthy.dec();
                        transition = Transition::Changed;
                        self.log(Event::EjectUnhealthy { failure, http_status });
                    } else {
                        transition = Transition::ChangePending;
                    }
                }
                let timed_out = outcome == Outcome::Timeout && host.active_hc(FAILED_ACTIVE_HC);
                host.set_active_hc(ACTIVE_HC_TIMEOUT, timed_out);
                if self.first_check || self.config.event_log.as_ref().is_some_and(|l| l.always_log_failures) {
                    self.log(Event::Failure { failure, first_check: self.first_check, http_status });
                }
                self.stats.failure.inc();
                if network {
                    self.stats.network_failure.inc();
                }
                transition
            }
        };
        self.first_check = false;
        (transition, matches!(outcome, Outcome::Healthy | Outcome::Degraded))
    }

    /// Writes `event` about the host to the check's event log, if it has one.
    fn log(&self, event: Event) {
        if let Some(log) = &self.config.event_log {
            log.log(self.config.check.type_name(), &self.host, &self.info.name, event);
        }
    }

    /// Envoy's `interval(state, changed_state)`: the no-traffic intervals until
    /// the cluster has made a connection, then `interval`, `unhealthy_interval`
    /// or, while a change is pending, the edge intervals; plus the jitter.
    fn interval(&self, healthy: bool, transition: Transition) -> Duration {
        let c = &self.config;
        let pending = transition == Transition::ChangePending;
        let base = if self.info.stats.upstream_cx_total.value() > 0 {
            match (healthy, pending) {
                (false, true) => c.unhealthy_edge_interval,
                (false, false) => c.unhealthy_interval,
                (true, true) => c.healthy_edge_interval,
                (true, false) => c.interval,
            }
        } else if healthy && !pending {
            c.no_traffic_healthy_interval
        } else {
            c.no_traffic_interval
        };
        self.jittered(base.as_millis() as u64, c.interval_jitter)
    }

    /// Envoy's `intervalWithJitter`: `base` plus up to `interval_jitter_percent`
    /// of it and up to `jitter`, at least 1 ms.
    fn jittered(&self, base: u64, jitter: Duration) -> Duration {
        let mut ms = base;
        let percent = u64::from(self.config.interval_jitter_percent) * base / 100;
        if percent > 0 {
            ms += random::below(percent);
        }
        let jitter = jitter.as_millis() as u64;
        if jitter > 0 {
            ms += random::below(jitter);
        }
        Duration::from_millis(ms.max(1))
    }
}

impl Probe {
    /// Drops the connection (after a timeout, as Envoy closes it).
    fn close(&mut self) {
        match self {
            Probe::Http(p) => p.close(),
            Probe::Tcp(p) => p.close(),
            Probe::Grpc(p) => p.close(),
        }
    }
}

/// Tells `FirstRound` a session's first check is over when dropped: after the
/// check, or with the task when the host left first.
pub struct FirstGuard(pub Rc<FirstRound>);

impl Drop for FirstGuard {
    fn drop(&mut self) {
        self.0.finished_one();
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::health_check::{HealthChecker, TcpHealthCheck};
    use envoy_types::pb::envoy::config::core::v3::HealthCheck;
    use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};

    use super::*;
    use crate::config::FieldPath;
    use crate::stats::Store;

    fn ms(n: i32) -> Option<PbDuration> {
        Some(PbDuration { seconds: 0, nanos: n * 1_000_000 })
    }

    /// A session over a cluster whose one check has these thresholds and
    /// distinct intervals (ms): interval 10, unhealthy 20, unhealthy edge 30,
    /// healthy edge 40, no traffic 50, no traffic healthy 60.
    fn session(unhealthy_threshold: u32, healthy_threshold: u32) -> Session {
        session_of(check(unhealthy_threshold, healthy_threshold))
    }

    fn check(unhealthy_threshold: u32, healthy_threshold: u32) -> HealthCheck {
        HealthCheck {
            timeout: ms(100),
            interval: ms(10),
            unhealthy_interval: ms(20),
            unhealthy_edge_interval: ms(30),
            healthy_edge_interval: ms(40),
            no_traffic_interval: ms(50),
            no_traffic_healthy_interval: ms(60),
            unhealthy_threshold: Some(UInt32Value { value: unhealthy_threshold }),
            healthy_threshold: Some(UInt32Value { value: healthy_threshold }),
            health_checker: Some(HealthChecker::TcpHealthCheck(TcpHealthCheck::default())),
            ..Default::default()
        }
    }

    fn session_of(hc: HealthCheck) -> Session {
        let cluster = Cluster { name: "c".into(), health_checks: vec![hc], ..Default::default() };
        let store = Arc::new(Store::new());
        let info = Arc::new(ClusterInfo::from_proto(&cluster, &FieldPath::starting_at("c"), &store).expect("cluster"));
        let host = Host::new("127.0.0.1:1".parse().expect("addr"), String::new(), 1);
        host.set_active_hc(FAILED_ACTIVE_HC, true);
        let (config, stats) = (info.health_checks[0].clone(), info.health_check_stats.clone().expect("stats"));
        Session::new(info, host, config, stats)
    }

    #[test]
    fn the_first_pass_heals_then_thresholds_count_in_a_row() {
        let mut s = session(2, 2);
        assert_eq!(s.apply(Outcome::Healthy), (Transition::Changed, true));
        assert!(!s.host.active_hc(FAILED_ACTIVE_HC));
        // Network failures and retriable statuses count toward the threshold; a
        // pass in between starts the count over.
        assert_eq!(s.apply(Outcome::Network).0, Transition::ChangePending);
        assert_eq!(s.apply(Outcome::Healthy).0, Transition::Unchanged);
        assert_eq!(s.apply(Outcome::Failed { retriable: true, http_status: 503 }).0, Transition::ChangePending);
        assert_eq!(s.apply(Outcome::Timeout).0, Transition::Changed);
        assert!(s.host.active_hc(FAILED_ACTIVE_HC) && s.host.active_hc(ACTIVE_HC_TIMEOUT));
        // Failed: healthy_threshold passes in a row bring it back.
        assert_eq!(s.apply(Outcome::Healthy).0, Transition::ChangePending);
        assert_eq!(s.apply(Outcome::Healthy).0, Transition::Changed);
        assert!(!s.host.active_hc(FAILED_ACTIVE_HC) && !s.host.active_hc(ACTIVE_HC_TIMEOUT));
        // Any other failure fails at once; a degraded pass degrades.
        assert_eq!(s.apply(Outcome::Failed { retriable: false, http_status: 503 }).0, Transition::Changed);
        assert_eq!(s.apply(Outcome::Degraded).0, Transition::ChangePending);
        assert_eq!(s.apply(Outcome::Degraded).0, Transition::Changed);
        assert!(s.host.active_hc(DEGRADED_ACTIVE_HC));
        assert_eq!(s.apply(Outcome::Healthy).0, Transition::Changed);
        let stats = &s.stats;
        assert_eq!((stats.success.value(), stats.failure.value(), stats.network_failure.value()), (7, 4, 2));
        assert_eq!((stats.healthy.value(), stats.degraded.value()), (1, 0));
    }

    #[test]
    fn events_are_logged_on_envoys_transitions() {
        let file = std::env::temp_dir().join(format!("courier-hc-events-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&file);
        #[allow(deprecated)]
        let hc = HealthCheck {
            event_log_path: file.display().to_string(),
            always_log_health_check_failures: true,
            ..check(2, 2)
        };
        let mut s = session_of(hc);
        // Without always_log_health_check_success, a pass that adds nothing logs nothing.
        for outcome in [
            Outcome::Failed { retriable: false, http_status: 503 },
            Outcome::Healthy,
            Outcome::Healthy,
            Outcome::Network,
            Outcome::Timeout,
            Outcome::Degraded,
            Outcome::Healthy,
        ] {
            s.apply(outcome);
        }
        assert!(crate::access_log::flush_all(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        // Each line from after the cluster's name to the locality, timestamp masked.
        let events: Vec<String> = text
            .lines()
            .map(|l| {
                let (_, rest) = l.split_once("\"cluster_name\":\"c\",").unwrap_or(("", l));
                let (event, _) = rest.split_once(",\"locality\"").unwrap_or((rest, ""));
                let (before, after) = event.split_once("\"timestamp\":\"").unwrap_or((event, ""));
                let after = after.split_once('"').map_or("", |(_, a)| a);
                format!("{before}\"timestamp\":T{after}")
            })
            .collect();
        assert_eq!(
            events,
            [
                r#""timestamp":T,"health_check_failure_event":{"failure_type":"ACTIVE","first_check":true,"http_status_code":503}"#,
                r#""add_healthy_event":{"first_check":false},"timestamp":T"#,
                r#""timestamp":T,"health_check_failure_event":{"failure_type":"NETWORK","first_check":false,"http_status_code":0}"#,
                r#""eject_unhealthy_event":{"failure_type":"NETWORK_TIMEOUT","http_status_code":0},"timestamp":T"#,
                r#""timestamp":T,"health_check_failure_event":{"failure_type":"NETWORK_TIMEOUT","first_check":false,"http_status_code":0}"#,
                r#""timestamp":T,"degraded_healthy_host":{}"#,
                r#""add_healthy_event":{"first_check":false},"timestamp":T"#,
                r#""timestamp":T,"no_longer_degraded_host":{}"#,
            ],
            "{text}"
        );
    }

    #[test]
    fn intervals_follow_traffic_health_and_pending_changes() {
        let s = session(2, 2);
        let ms = |n| Duration::from_millis(n);
        // No connection yet: the no-traffic intervals.
        assert_eq!(s.interval(true, Transition::Unchanged), ms(60));
        assert_eq!(s.interval(true, Transition::ChangePending), ms(50));
        assert_eq!(s.interval(false, Transition::Changed), ms(50));
        s.info.stats.upstream_cx_total.inc();
        assert_eq!(s.interval(true, Transition::Unchanged), ms(10));
        assert_eq!(s.interval(true, Transition::ChangePending), ms(40));
        assert_eq!(s.interval(false, Transition::Unchanged), ms(20));
        assert_eq!(s.interval(false, Transition::ChangePending), ms(30));
    }
}
