//! The main thread's listener manager: builds listeners from config, creates their
//! sockets (or takes those a parent process handed over), and adds every listener
//! to every worker by posting to it (Envoy's `ListenerManagerImpl::addListenerToWorker`).
//!
//! Listeners from LDS come and go while the server runs. A changed one takes
//! over its predecessor's sockets (the manager keeps a copy of each, so no
//! connection waiting in an accept queue is lost between the two), and the
//! predecessor's connections drain through a drain watch of their own, as the
//! server's do on shutdown (`network::drain`).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3::Listener;

use super::active_listener::{self, StopMode};
use super::drain::DrainPhase;
use super::filter::NetworkFilterBuilder;
use super::listener::ListenerConfig;
use super::socket;
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::event::DispatcherHandle;
use crate::stats::{Gauge, Store};

define_stats! {
    /// `listener_manager.*`
    #[derive(Debug)]
    pub struct ListenerManagerStats {
        counter listener_added,
        counter listener_modified,
        counter listener_removed,
        counter listener_stopped,
        counter listener_create_success,
        counter listener_create_failure,
        counter listener_in_place_updated,
        gauge total_listeners_warming,
        gauge total_listeners_active,
        gauge total_listeners_draining,
        gauge total_filter_chains_draining,
        gauge workers_started,
        gauge workers_pinned,
    }
}

/// A listener and the address it actually bound (differs when the port was 0).
#[derive(Debug)]
pub struct ActiveListenerInfo {
    pub config: Arc<ListenerConfig>,
    pub bound: SocketAddr,
    /// An LDS listener's own drain, and a copy of each worker's sockets, which
    /// the listener that replaces it takes over; `None` for a static one.
    dynamic: Option<DynamicListener>,
}

#[derive(Debug)]
struct DynamicListener {
    drain: Rc<tokio::sync::watch::Sender<DrainPhase>>,
    sockets: Vec<Vec<TcpListener>>,
}

/// What running listeners added after start-up need: the workers, the server's
/// connection gauge and `--drain-time-s`.
#[derive(Debug, Clone)]
struct Runtime {
    workers: Vec<DispatcherHandle>,
    total_connections: Arc<Gauge>,
    drain_time: Duration,
}

/// Listen sockets by the configured address of their listener.
pub type SocketsByAddress = HashMap<SocketAddr, Vec<TcpListener>>;

pub struct ListenerManager {
    configs: Vec<Arc<ListenerConfig>>,
    active: RefCell<Vec<ActiveListenerInfo>>,
    /// Copies of the listen sockets, kept to hand to a new process (only when
    /// asked: a kept copy keeps the socket open after the workers close theirs).
    handoff: RefCell<SocketsByAddress>,
    stats: ListenerManagerStats,
    stopped: std::cell::Cell<bool>,
    runtime: RefCell<Option<Runtime>>,
    /// How many replaced or removed listeners (or filter chains) ended their
    /// drain so far: what they held (their route configs) is let go of then.
    drains_ended: Rc<tokio::sync::watch::Sender<u64>>,
}

impl ListenerManager {
    /// `total_listeners_warming`: an LDS listener waiting for what it fetches
    /// (its routes) before it is added, counted by whoever waits.
    pub fn warming(&self) -> &crate::stats::Gauge {
        &self.stats.total_listeners_warming
    }

    /// Checks and builds every listener of `static_resources.listeners`, each
    /// filter through `filters`.
    pub fn from_proto(
        listeners: &[Listener],
        filters: &dyn NetworkFilterBuilder,
        store: &Store,
        workers: usize,
    ) -> Result<Self, ConfigError> {
        let mut configs: Vec<Arc<ListenerConfig>> = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.iter().enumerate() {
            let path = FieldPath::starting_at(&format!("static_resources.listeners[{i}]"));
            let config = ListenerConfig::from_proto(l, &path, filters, store, workers)?;
            if configs.iter().any(|c| c.name == config.name) {
                return Err(path.field_error(
                    "name",
                    format!("error adding listener named '{}': duplicate listener name", config.name),
                ));
            }
            if config.address.port() != 0 && configs.iter().any(|c| c.address == config.address) {
                return Err(path.field_error(
                    "address",
                    format!(
                        "error adding listener '{}': listener '{}' already listens on {}",
                        config.name, config.name, config.address
                    ),
                ));
            }
            configs.push(config);
        }
        Ok(ListenerManager {
            configs,
            active: RefCell::new(Vec::new()),
            handoff: RefCell::new(HashMap::new()),
            stats: ListenerManagerStats::new(store, "listener_manager."),
            stopped: std::cell::Cell::new(false),
            runtime: RefCell::new(None),
            drains_ended: Rc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// The addresses a parent process may have sockets for: those of listeners
    /// with a fixed port (a port 0 listener binds a fresh port of its own).
    pub fn inheritable_addresses(&self) -> Vec<SocketAddr> {
        self.configs.iter().map(|c| c.address).filter(|a| a.port() != 0).collect()
    }

    /// Binds every listener (taking the sockets in `inherited` for its address
    /// when there are some) and starts it on every worker; returns once each
    /// worker has registered each socket, so connections are accepted from then
    /// on. With `keep_for_handoff`, copies of the sockets are kept for
    /// `take_handoff_sockets`.
    pub async fn start_workers(
        &self,
        workers: &[DispatcherHandle],
        total_connections: &Arc<Gauge>,
        mut inherited: SocketsByAddress,
        keep_for_handoff: bool,
        drain_time: Duration,
    ) -> std::io::Result<()> {
        *self.runtime.borrow_mut() =
            Some(Runtime { workers: workers.to_vec(), total_connections: total_connections.clone(), drain_time });
        for config in &self.configs {
            let from_parent = inherited.remove(&config.address).unwrap_or_default();
            let (sockets, bound) = bind(config, from_parent, workers.len())?;
            if keep_for_handoff && config.address.port() != 0 {
                // One copy of each distinct socket: without SO_REUSEPORT the
                // workers share one.
                let distinct =
                    if config.reuse_port { sockets.iter().flatten().collect() } else { vec![&sockets[0][0]] };
                let copies = distinct.into_iter().map(TcpListener::try_clone).collect::<std::io::Result<_>>()?;
                self.handoff.borrow_mut().insert(config.address, copies);
            }
            add_to_workers(config, sockets, workers, total_connections, StopMode::Close).await?;
            tracing::info!("listener '{}' listening on {bound}", config.name);
            self.stats.listener_added.inc();
            self.stats.listener_create_success.add(workers.len() as u64);
            self.stats.total_listeners_active.inc();
            self.active.borrow_mut().push(ActiveListenerInfo { config: config.clone(), bound, dynamic: None });
        }
        self.stats.workers_started.set(1);
        Ok(())
    }

    /// Whether `name` is a listener of `static_resources` (LDS can neither
    /// replace nor remove one).
    pub fn is_static(&self, name: &str) -> bool {
        self.configs.iter().any(|c| c.name == name)
    }

    /// Adds an LDS listener, or replaces the running dynamic one of its name:
    /// the new one accepts on every worker before the old one stops, from the
    /// old one's sockets when the address is the same, and the old one's
    /// connections drain. `drain` is the new listener's drain watch (its
    /// filters hold the receivers). `draining_chains`: the update is Envoy's
    /// in-place update (only filter chains changed), and that many of the old
    /// chains are gone; Envoy counts those as draining rather than the listener.
    pub async fn add_or_update(
        &self,
        config: Arc<ListenerConfig>,
        drain: Rc<tokio::sync::watch::Sender<DrainPhase>>,
        draining_chains: Option<usize>,
    ) -> std::io::Result<()> {
        let Some(rt) = self.runtime.borrow().clone() else {
            return Err(std::io::Error::other("listeners are added once the workers run"));
        };
        let existing = self.active.borrow().iter().position(|l| l.config.name == config.name);
        if existing.is_some_and(|i| self.active.borrow()[i].dynamic.is_none()) {
            return Err(std::io::Error::other(format!("listener '{}' is static", config.name)));
        }
        // The successor of a listener on the same address takes its sockets; one
        // whose address changed binds its own (Envoy allows that too).
        let same_address = existing.filter(|&i| self.active.borrow()[i].config.address == config.address);
        let (sockets, bound) = match same_address {
            Some(i) => {
                let active = self.active.borrow();
                let old = &active[i];
                let copies = copy_sockets(old.dynamic.as_ref().map_or(&[][..], |d| &d.sockets))?;
                (copies, old.bound)
            }
            None => bind(&config, Vec::new(), rt.workers.len())?,
        };
        // The old listener's sockets: let go of when taken over, else closed
        // (their accept queues served first).
        let replaced = if same_address.is_some() { StopMode::HandedOver } else { StopMode::Close };
        let kept = copy_sockets(&sockets)?;
        add_to_workers(&config, sockets, &rt.workers, &rt.total_connections, replaced).await?;
        self.stats.listener_create_success.add(rt.workers.len() as u64);
        let info = ActiveListenerInfo {
            config: config.clone(),
            bound,
            dynamic: Some(DynamicListener { drain, sockets: kept }),
        };
        let mut active = self.active.borrow_mut();
        match existing {
            Some(i) => {
                let old = std::mem::replace(&mut active[i], info);
                self.stats.listener_modified.inc();
                if draining_chains.is_some() {
                    self.stats.listener_in_place_updated.inc();
                }
                tracing::info!("listener '{}' updated on {bound}", config.name);
                if let Some(d) = old.dynamic {
                    self.drain_old(d.drain, draining_chains.map(|n| n as i64), rt.drain_time);
                }
                Ok(())
            }
            None => {
                active.push(info);
                self.stats.listener_added.inc();
                self.stats.total_listeners_active.inc();
                tracing::info!("listener '{}' listening on {bound}", config.name);
                Ok(())
            }
        }
    }

    /// Removes an LDS listener: every worker stops accepting on it (serving its
    /// accept queue first) and its connections drain. `false` when there is
    /// no such dynamic listener.
    pub fn remove(&self, name: &str) -> bool {
        let Some(rt) = self.runtime.borrow().clone() else { return false };
        let mut active = self.active.borrow_mut();
        let Some(i) = active.iter().position(|l| l.config.name == name && l.dynamic.is_some()) else {
            return false;
        };
        let old = active.remove(i);
        // The kept copies go first, so the workers' close closes the sockets.
        let Some(DynamicListener { drain, sockets }) = old.dynamic else { return false };
        drop(sockets);
        for w in &rt.workers {
            let name = name.to_string();
            w.post(move || active_listener::stop_listener(&name, StopMode::Close));
        }
        self.stats.listener_removed.inc();
        self.stats.total_listeners_active.dec();
        tracing::info!("listener '{name}' removed; its connections drain");
        self.drain_old(drain, None, rt.drain_time);
        true
    }

    /// Drains a replaced or removed listener's connections as the server drains
    /// its own: `connection: close` (or GOAWAY) at once, idle ones closed after
    /// the grace, and it counts as draining for the drain time. `chains`: an
    /// in-place update, which Envoy counts as that many draining filter chains.
    fn drain_old(&self, drain: Rc<tokio::sync::watch::Sender<DrainPhase>>, chains: Option<i64>, drain_time: Duration) {
        let gauge = match chains {
            Some(n) => {
                self.stats.total_filter_chains_draining.add(n);
                (self.stats.total_filter_chains_draining.clone(), n)
            }
            None => {
                self.stats.total_listeners_draining.inc();
                (self.stats.total_listeners_draining.clone(), 1)
            }
        };
        super::drain::raise(&drain, DrainPhase::Draining);
        let ended = self.drains_ended.clone();
        // Idle connections close after their own drain_timeout; the drain time bounds it.
        tokio::task::spawn_local(async move {
            tokio::time::sleep(drain_time).await;
            super::drain::raise(&drain, DrainPhase::CloseIdle);
            gauge.0.sub(gauge.1);
            ended.send_modify(|n| *n += 1);
        });
    }

    /// The drain of the running dynamic listener `name`: what a replacement
    /// or removal will drain, for `/config_dump`'s `draining_state`.
    pub fn drain_watch(&self, name: &str) -> Option<tokio::sync::watch::Receiver<DrainPhase>> {
        let active = self.active.borrow();
        active.iter().find(|l| l.config.name == name)?.dynamic.as_ref().map(|d| d.drain.subscribe())
    }

    /// Changes each time a replaced or removed listener (or an in-place
    /// update's old filter chains) ends its drain, as Envoy then destroys it
    /// and what it alone held.
    pub fn drains_ended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drains_ended.subscribe()
    }

    /// The copies kept by `start_workers` for a new process, by configured address.
    pub fn take_handoff_sockets(&self) -> SocketsByAddress {
        std::mem::take(&mut *self.handoff.borrow_mut())
    }

    /// Stops accepting on every worker (Envoy's `stopListeners`); open connections
    /// are left to drain. The sockets of the listeners at `handed_over` addresses
    /// are a new process's now and are let go of; the others close, their
    /// accept queues served first.
    pub fn stop_listeners(&self, workers: &[DispatcherHandle], handed_over: &HashSet<SocketAddr>) {
        if self.stopped.replace(true) {
            return;
        }
        // Copies kept for a new process, or for an LDS listener's successor,
        // would keep closed sockets open.
        self.handoff.borrow_mut().clear();
        for l in self.active.borrow_mut().iter_mut() {
            if let Some(d) = &mut l.dynamic {
                d.sockets.clear();
            }
        }
        let handed: Arc<HashSet<String>> = Arc::new(
            self.configs.iter().filter(|c| handed_over.contains(&c.address)).map(|c| c.name.clone()).collect(),
        );
        for w in workers {
            let handed = handed.clone();
            w.post(move || {
                active_listener::stop_listeners(|name| {
                    if handed.contains(name) {
                        StopMode::HandedOver
                    } else {
                        StopMode::Close
                    }
                })
            });
        }
        let n = self.active.borrow().len() as u64;
        self.stats.listener_stopped.add(n);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// The running listeners and their bound addresses.
    pub fn active(&self) -> std::cell::Ref<'_, Vec<ActiveListenerInfo>> {
        self.active.borrow()
    }
}

/// Binds `config`'s sockets for `workers` (taking `inherited` ones first);
/// returns them with the address bound.
fn bind(
    config: &ListenerConfig,
    inherited: Vec<TcpListener>,
    workers: usize,
) -> std::io::Result<(Vec<Vec<TcpListener>>, SocketAddr)> {
    let sockets = socket::sockets_for_workers(inherited, config.address, config.reuse_port, config.ipv6_only, workers)
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot bind listener '{}' to {}: {e}", config.name, config.address))
        })?;
    let bound = sockets[0][0].local_addr()?;
    Ok((sockets, bound))
}

/// Starts `config` on every worker, each on its sockets; returns once every
/// worker accepts on them. A listener of the same name a worker runs stops
/// as `replaced` says.
async fn add_to_workers(
    config: &Arc<ListenerConfig>,
    sockets: Vec<Vec<TcpListener>>,
    workers: &[DispatcherHandle],
    total_connections: &Arc<Gauge>,
    replaced: StopMode,
) -> std::io::Result<()> {
    let mut acks = Vec::with_capacity(workers.len());
    for (index, (worker, sock)) in workers.iter().zip(sockets).enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (config, total) = (config.clone(), total_connections.clone());
        worker.post(move || {
            let _ = tx.send(active_listener::add_listener(config, sock, index, total, replaced));
        });
        acks.push(rx);
    }
    for ack in acks {
        ack.await.map_err(|_| std::io::Error::other("a worker exited while a listener was added"))??;
    }
    Ok(())
}

/// A copy (a new descriptor of the same socket) of each worker's sockets.
fn copy_sockets(sockets: &[Vec<TcpListener>]) -> std::io::Result<Vec<Vec<TcpListener>>> {
    sockets.iter().map(|w| w.iter().map(TcpListener::try_clone).collect()).collect()
}
