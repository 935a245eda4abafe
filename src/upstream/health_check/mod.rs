//! Active health checking (a cluster's `health_checks`), as Envoy 1.40's
//! `HealthCheckerImplBase`: on the main thread, one session per host and per
//! `HealthCheck` (`session`), each a local task that checks the host every
//! interval with its checker (`http`, `tcp`, `grpc`) and sets the host's active
//! health flags (`host::FAILED_ACTIVE_HC`, ...) by the thresholds. A change of a
//! host's health calls back the cluster manager, which posts the same hosts to
//! the workers again so their balancers file them anew.
//!
//! A host added to a cluster with health checks starts failed (`/failed_active_hc`)
//! until its first check passes; the cluster manager waits for every host's first
//! check before a cluster of start-up or of CDS serves (`first_round`), as Envoy's
//! cluster initialization does. Checks connect on their own (not through the
//! workers' pools, and not counted in `upstream_cx_*`), over the cluster's
//! transport socket. A `HealthCheck` with `event_log_path` or `event_logger`
//! writes Envoy's JSON event lines (`event_log`).

mod config;
mod event_log;
mod grpc;
mod http;
mod session;
mod tcp;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

pub use config::{Check, HealthCheckConfig};
pub use event_log::FILE_SINK_TYPE as EVENT_FILE_SINK_TYPE;
use event_log::{Event, FailureType};
use session::{FirstGuard, Session};

use super::cluster::ClusterInfo;
use super::host::{Host, HostSet, PassiveMonitor, ACTIVE_HC_TIMEOUT, DEGRADED_ACTIVE_HC, FAILED_ACTIVE_HC};
use crate::define_stats;
use crate::network::tls::TransportOptions;
use crate::network::{socket, TransportStream};

define_stats! {
    /// `cluster.<name>.health_check.*`, shared by a cluster's health checks.
    #[derive(Debug)]
    pub struct HealthCheckStats {
        counter attempt,
        counter success,
        counter failure,
        counter passive_failure,
        counter network_failure,
        counter verify_cluster,
        gauge healthy,
        gauge degraded,
    }
}

/// What a session calls when a host's health changed: the cluster manager
/// posts the cluster's hosts to the workers again.
pub type OnHealthChange = Rc<dyn Fn(&Arc<ClusterInfo>)>;

/// The sessions of one cluster, by host.
pub struct ClusterHealthChecker {
    info: Arc<ClusterInfo>,
    on_change: OnHealthChange,
    /// Each checked host with its sessions' tasks (aborted when dropped).
    sessions: RefCell<HashMap<*const Host, CheckedHost>>,
    /// Sessions whose first check is still to come, and who waits for them.
    first_round: Rc<FirstRound>,
    /// Where workers report hosts whose responses said
    /// `x-envoy-immediate-health-check-fail` (each checked host holds a copy),
    /// and the task that fails them.
    passive: PassiveMonitor,
    _passive_task: SessionTask,
}

/// A checked host and its sessions, one per `HealthCheck`.
type CheckedHost = (Arc<Host>, Vec<SessionTask>);

/// A session's task: ends when the host leaves the cluster or the checker goes.
struct SessionTask(tokio::task::JoinHandle<()>);

impl Drop for SessionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Default)]
struct FirstRound {
    pending: Cell<usize>,
    done: tokio::sync::Notify,
}

impl FirstRound {
    fn finished_one(&self) {
        self.pending.set(self.pending.get().saturating_sub(1));
        if self.pending.get() == 0 {
            self.done.notify_waiters();
        }
    }
}

impl ClusterHealthChecker {
    pub fn new(info: Arc<ClusterInfo>, on_change: OnHealthChange) -> Rc<ClusterHealthChecker> {
        let (passive, mut reports) = tokio::sync::mpsc::unbounded_channel::<Arc<Host>>();
        Rc::new_cyclic(|me: &std::rc::Weak<ClusterHealthChecker>| {
            let me = me.clone();
            let task = tokio::task::spawn_local(async move {
                while let Some(host) = reports.recv().await {
                    match me.upgrade() {
                        Some(checker) => checker.passive_failure(&host),
                        None => return,
                    }
                }
            });
            ClusterHealthChecker {
                info,
                on_change,
                sessions: RefCell::default(),
                first_round: Rc::default(),
                passive,
                _passive_task: SessionTask(task),
            }
        })
    }

    /// A worker saw `x-envoy-immediate-health-check-fail` from `host` (already
    /// excluded there): as Envoy's `setUnhealthy(PASSIVE)`, a failure that fails
    /// the host at once, counted in `failure` and `passive_failure`.
    fn passive_failure(&self, host: &Arc<Host>) {
        let Some(stats) = self.info.health_check_stats.as_ref() else { return };
        if !self.sessions.borrow().contains_key(&Arc::as_ptr(host)) {
            return;
        }
        stats.failure.inc();
        stats.passive_failure.inc();
        host.set_active_hc(ACTIVE_HC_TIMEOUT, false);
        // As Envoy, only a host that was passing changes the host set (one
        // already failed keeps its place until the next change).
        let ejected = !host.active_hc(FAILED_ACTIVE_HC);
        if ejected {
            host.set_active_hc(FAILED_ACTIVE_HC, true);
            stats.healthy.dec();
        }
        self.log_passive_failure(host, ejected);
        if ejected {
            (self.on_change)(&self.info);
        }
    }

    /// The event log lines of a passive failure, as each `HealthCheck`'s session
    /// of the host writes them in Envoy: the first ejects the host (when it was
    /// passing), each with `always_log_health_check_failures` logs the failure.
    /// Unlike Envoy's sessions, Courier's do not see it: one whose first check is
    /// still to come logs it as not the first.
    fn log_passive_failure(&self, host: &Host, ejected: bool) {
        let failure = FailureType::Passive;
        for (i, config) in self.info.health_checks.iter().enumerate() {
            let Some(log) = &config.event_log else { continue };
            let checker = config.check.type_name();
            if ejected && i == 0 {
                log.log(checker, host, &self.info.name, Event::EjectUnhealthy { failure, http_status: 0 });
            }
            if log.always_log_failures {
                let event = Event::Failure { failure, first_check: false, http_status: 0 };
                log.log(checker, host, &self.info.name, event);
            }
        }
    }

    pub fn info(&self) -> &Arc<ClusterInfo> {
        &self.info
    }

    /// Follows the cluster's membership: a new host (unless its endpoint disables
    /// active checks) is marked failed and gets its sessions, which start at once;
    /// a host gone loses them. Call before the hosts are posted to the workers.
    pub fn update(&self, hosts: &HostSet) {
        let Some(stats) = self.info.health_check_stats.clone() else { return };
        let mut sessions = self.sessions.borrow_mut();
        let current: std::collections::HashSet<*const Host> = hosts.iter().map(Arc::as_ptr).collect();
        sessions.retain(|key, (host, _)| {
            let keep = current.contains(key);
            if !keep {
                host.set_passive_monitor(None);
                // Envoy's `onDeferredDeleteBase`.
                if !host.active_hc(FAILED_ACTIVE_HC) {
                    stats.healthy.dec();
                }
                if host.active_hc(DEGRADED_ACTIVE_HC) {
                    stats.degraded.dec();
                }
            }
            keep
        });
        for host in hosts.iter().filter(|h| !h.health_check.disabled) {
            let key = Arc::as_ptr(host);
            if sessions.contains_key(&key) {
                continue;
            }
            host.set_active_hc(FAILED_ACTIVE_HC, true);
            host.set_passive_monitor(Some(self.passive.clone()));
            let tasks = self
                .info
                .health_checks
                .iter()
                .map(|config| {
                    self.first_round.pending.set(self.first_round.pending.get() + 1);
                    let session = Session::new(self.info.clone(), host.clone(), config.clone(), stats.clone());
                    let first = FirstGuard(self.first_round.clone());
                    SessionTask(tokio::task::spawn_local(session.run(self.on_change.clone(), first)))
                })
                .collect();
            sessions.insert(key, (host.clone(), tasks));
        }
        if self.first_round.pending.get() == 0 {
            self.first_round.done.notify_waiters();
        }
    }

    /// Waits until every session started so far has made its first check (each
    /// is bounded by its `timeout` and `initial_jitter`).
    pub async fn first_round(&self) {
        loop {
            let done = self.first_round.done.notified();
            if self.first_round.pending.get() == 0 {
                return;
            }
            done.await;
        }
    }
}

impl Drop for ClusterHealthChecker {
    fn drop(&mut self) {
        // The sessions end with their tasks; the gauges drop their hosts.
        self.update(&HostSet::default());
    }
}

/// A connection for a check to `host`'s health-check address: TCP, then the
/// cluster's PROXY protocol header and TLS when it has them. As Envoy's checks
/// (without `tls_options`), it offers no ALPN of its own: only the TLS
/// context's `alpn_protocols`.
async fn connect(info: &ClusterInfo, host: &Host) -> std::io::Result<TransportStream> {
    let address = host.health_check_address();
    let mut stream = socket::connect(address, host.ipv6_only, info.tcp_keepalive.as_ref()).await?;
    let _ = stream.set_nodelay(true);
    if let Some(pp) = &info.proxy_protocol {
        tokio::io::AsyncWriteExt::write_all(&mut stream, &pp.header(None)).await?;
    }
    match &info.tls {
        None => Ok(TransportStream::from(stream)),
        Some(tls) => Ok(Box::pin(tls.connect(stream, address.ip(), None, &TransportOptions::NONE)).await?.0),
    }
}

/// The `:authority` of an HTTP or gRPC check: the configured one, else the
/// endpoint's `health_check_config.hostname`, else the cluster's name (Envoy's
/// `HealthCheckerFactory::getHostname`; checked against Envoy 1.40, which does
/// not send the endpoint's own `hostname`).
fn authority(configured: &str, host: &Host, info: &ClusterInfo) -> String {
    if !configured.is_empty() {
        configured.to_owned()
    } else if !host.health_check.hostname.is_empty() {
        host.health_check.hostname.clone()
    } else {
        info.name.clone()
    }
}
