//! The main thread's listener manager: builds listeners from config, creates their
//! sockets (or takes those a parent process handed over), and adds every listener
//! to every worker by posting to it (Envoy's `ListenerManagerImpl::addListenerToWorker`).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::Listener;

use super::active_listener::{self, StopMode};
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
}

impl ListenerManager {
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
    ) -> std::io::Result<()> {
        for config in &self.configs {
            let from_parent = inherited.remove(&config.address).unwrap_or_default();
            let sockets = socket::sockets_for_workers(
                from_parent,
                config.address,
                config.reuse_port,
                config.ipv6_only,
                workers.len(),
            )
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot bind listener '{}' to {}: {e}", config.name, config.address),
                )
            })?;
            let bound = sockets[0][0].local_addr()?;
            if keep_for_handoff && config.address.port() != 0 {
                // One copy of each distinct socket: without SO_REUSEPORT the
                // workers share one.
                let distinct =
                    if config.reuse_port { sockets.iter().flatten().collect() } else { vec![&sockets[0][0]] };
                let copies = distinct.into_iter().map(TcpListener::try_clone).collect::<std::io::Result<_>>()?;
                self.handoff.borrow_mut().insert(config.address, copies);
            }
            let mut acks = Vec::with_capacity(workers.len());
            for (index, (worker, sock)) in workers.iter().zip(sockets).enumerate() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let (config, total) = (config.clone(), total_connections.clone());
                worker.post(move || {
                    let _ = tx.send(active_listener::add_listener(config, sock, index, total));
                });
                acks.push(rx);
            }
            for ack in acks {
                ack.await.map_err(|_| std::io::Error::other("worker exited during start-up"))??;
            }
            tracing::info!("listener '{}' listening on {bound}", config.name);
            self.stats.listener_added.inc();
            self.stats.listener_create_success.add(workers.len() as u64);
            self.stats.total_listeners_active.inc();
            self.active.borrow_mut().push(ActiveListenerInfo { config: config.clone(), bound });
        }
        self.stats.workers_started.set(1);
        Ok(())
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
        // Copies kept for a new process would keep closed sockets open.
        self.handoff.borrow_mut().clear();
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
