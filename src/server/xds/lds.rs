//! LDS (Envoy's `LdsApiImpl`): a file's listeners against the listener manager's.
//!
//! A listener the file lists and no running one matches byte for byte is built
//! with a drain watch of its own (so it can drain alone, later), against the
//! clusters running now; once every one has built, each is started or
//! replaces its namesake, and a dynamic listener the file no longer lists is
//! removed. As in Envoy, a listener of `static_resources` is neither replaced
//! nor removed: a file that names one has it skipped, not refused. A
//! replacement that changes only filter chains is Envoy's in-place update
//! (counted as such; here too the whole old listener's connections drain).
//! A listener whose routes or TLS secrets come from a management server and
//! have not come yet warms, as Envoy's: it is added (replacing its namesake,
//! which serves meanwhile) once they do or their initial fetch times out,
//! counted in `total_listeners_warming`; start-up waits for the first ones.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use prost::Message;
use tokio::sync::watch;

use super::grpc_subscription::LocalBoxFuture;
use super::named_watch::NamedEntry;
use super::start::Started;
use super::{diff, record, resource_path, AppliedResource, AppliedState, ResourceApi};
use crate::config::path_source::{DiscoveryFile, LISTENER_TYPE};
use crate::config::ConfigError;
use crate::extensions::filters::network::http_connection_manager::rds::RdsRouteConfig;
use crate::extensions::transport_sockets::tls::SdsSecret;
use crate::extensions::FactoryContext;
use crate::network::{drain, DrainPhase, ListenerConfig};
use crate::server::Server;
use crate::upstream::ClusterManager;

/// A built listener, its drain, and the route configs and SDS secrets it names.
type Built = (
    Arc<ListenerConfig>,
    Rc<tokio::sync::watch::Sender<crate::network::DrainPhase>>,
    Vec<Arc<RdsRouteConfig>>,
    Vec<Arc<SdsSecret>>,
);

pub struct LdsApi {
    server: Rc<Server>,
    cm: Rc<ClusterManager>,
    state: Rc<RefCell<AppliedState>>,
    /// Where the route configs of its listeners subscribe (weak: the streams
    /// hold this API).
    streams: Weak<Started>,
    /// How many listeners are warming, and a wake-up as one is done.
    warming: Rc<Cell<usize>>,
    /// Each listener name's count of updates (and removals): a warming
    /// listener is added only if no later one came for its name.
    generations: Rc<RefCell<std::collections::HashMap<String, u64>>>,
    warmed: Rc<tokio::sync::Notify>,
}

impl LdsApi {
    /// A new update (or removal) of listener `name`: a warming one of an
    /// older update is not to be added.
    fn next_generation(&self, name: &str) -> u64 {
        let mut generations = self.generations.borrow_mut();
        let g = generations.entry(name.to_string()).or_default();
        *g += 1;
        *g
    }

    /// Adds `config` once every wait (a route config or secret initialized)
    /// is over, unless a later update replaced or removed it meanwhile.
    fn warm(
        &self,
        config: Arc<ListenerConfig>,
        drain: Rc<tokio::sync::watch::Sender<crate::network::DrainPhase>>,
        chains: Option<usize>,
        waits: Vec<LocalBoxFuture<'static, ()>>,
    ) {
        tracing::info!("lds: listener '{}' warming until its routes and secrets come", config.name);
        let generation = self.next_generation(&config.name);
        self.state.borrow_mut().start_warming(&config.name);
        let (server, generations, state) = (self.server.clone(), self.generations.clone(), self.state.clone());
        let (warming, warmed) = (self.warming.clone(), self.warmed.clone());
        warming.set(warming.get() + 1);
        server.listener_manager.warming().inc();
        tokio::task::spawn_local(async move {
            for wait in waits {
                wait.await;
            }
            let lm = &server.listener_manager;
            lm.warming().dec();
            if generations.borrow().get(&config.name) == Some(&generation) {
                tracing::info!("lds: add/update listener '{}' (warmed)", config.name);
                let outgoing = outgoing(&server, &state, &config.name, chains);
                if let Err(e) = lm.add_or_update(config.clone(), drain, chains).await {
                    tracing::warn!("lds: listener '{}' cannot be added: {e}", config.name);
                }
                let kept = went(&state, &config.name, outgoing);
                keep_version(&state, &config.name, kept);
            }
            warming.set(warming.get() - 1);
            warmed.notify_waiters();
        });
    }

    pub fn new(server: Rc<Server>, cm: Rc<ClusterManager>, streams: &Rc<Started>) -> Self {
        let state = server.lds_state.clone();
        // As a replaced or removed listener's drain ends, the route configs
        // only it named are asked for no longer (Envoy destroys their
        // providers with the listener).
        let mut drains_ended = server.listener_manager.drains_ended();
        let (weak_server, weak_streams) = (Rc::downgrade(&server), Rc::downgrade(streams));
        streams.push_task(tokio::task::spawn_local(async move {
            while drains_ended.changed().await.is_ok() {
                let (Some(server), Some(streams)) = (weak_server.upgrade(), weak_streams.upgrade()) else { return };
                streams.prune_rds(&server);
            }
        }));
        LdsApi {
            server,
            cm,
            state,
            streams: Rc::downgrade(streams),
            warming: Rc::default(),
            warmed: Rc::default(),
            generations: Rc::default(),
        }
    }

    /// Builds one listener, with its own drain watch, as a static one is built.
    fn build(&self, l: &Listener, path: &crate::config::FieldPath) -> Result<Built, ConfigError> {
        let s = &self.server;
        // What was named before is not this listener's.
        s.route_configs.take_named();
        s.secrets.take_named();
        let (drain_tx, drain_rx) = drain::listener_drain(&s.drain.subscribe());
        let cluster_exists = |name: &str| self.cm.has_cluster(name);
        let node = &s.node;
        let ctx = FactoryContext {
            store: &s.store,
            clusters: self.cm.thread_local_slot(),
            cluster_exists: &cluster_exists,
            health_check_failed: &s.health_check_failed,
            drain: &drain_rx,
            service_cluster: &node.cluster,
            service_node: &node.id,
            listener_stat_scope: "",
            listener_buffer_limit: crate::network::connection::DEFAULT_BUFFER_LIMIT,
            listener_bypasses_overload: false,
            listener_outbound: false,
            node_zone: node.locality.as_ref().map_or("", |l| l.zone.as_str()),
            secrets: &s.secrets,
            route_configs: &s.route_configs,
        };
        let config = ListenerConfig::from_proto(l, path, &ctx, &s.store, s.workers.len())?;
        Ok((config, drain_tx, s.route_configs.take_named(), s.secrets.take_named()))
    }
}

/// How many of `old`'s filter chains `new` no longer has, when the two differ
/// in their filter chains only (Envoy's in-place filter chain update); `None`
/// when anything else changed.
fn in_place_update(old: &Listener, new: &Listener) -> Option<usize> {
    let without_chains = |l: &Listener| Listener { filter_chains: Vec::new(), default_filter_chain: None, ..l.clone() };
    if without_chains(old) != without_chains(new) {
        return None;
    }
    let gone = old.filter_chains.iter().filter(|c| !new.filter_chains.contains(c)).count();
    Some(gone + usize::from(old.default_filter_chain.is_some() && old.default_filter_chain != new.default_filter_chain))
}

/// What replacing (in place: `chains`) or removing listener `name` will
/// drain, for `/config_dump`.
struct Outgoing {
    resource: AppliedResource,
    drain: watch::Receiver<DrainPhase>,
    in_place: bool,
}

/// The resource serving under listener `name` and its drain watch, before
/// it is replaced or removed.
fn outgoing(server: &Server, state: &RefCell<AppliedState>, name: &str, chains: Option<usize>) -> Option<Outgoing> {
    let drain = server.listener_manager.drain_watch(name)?;
    let resource = state.borrow().serving(name)?.clone();
    Some(Outgoing { resource, drain, in_place: chains.is_some() })
}

/// Listener `name` was replaced or removed: it no longer warms, and what
/// served under it drains, as `/config_dump` shows. Returns the version an
/// in-place update keeps: Envoy's successor takes its predecessor's.
fn went(state: &RefCell<AppliedState>, name: &str, outgoing: Option<Outgoing>) -> Option<String> {
    let mut state = state.borrow_mut();
    state.end_warming(name);
    let o = outgoing?;
    let kept = o.in_place.then(|| o.resource.version_info.clone());
    state.add_draining(name, o.resource, o.drain, o.in_place);
    kept
}

/// Gives listener `name` the version its in-place update kept (`went`).
fn keep_version(state: &RefCell<AppliedState>, name: &str, version: Option<String>) {
    if let (Some(version), Some(r)) = (version, state.borrow_mut().resources.get_mut(name)) {
        r.version_info = version;
    }
}

impl ResourceApi for LdsApi {
    const TYPE: &'static str = LISTENER_TYPE;
    const NAME: &'static str = "lds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let lm = &self.server.listener_manager;
        let (changed, removed) = diff(file, &self.state.borrow(), |name| lm.is_static(name));
        let mut built = Vec::with_capacity(changed.len());
        let mut kept_versions = Vec::new();
        for (i, r) in &changed {
            let path = resource_path(*i);
            // Envoy names such a listener with a random UUID, which a later
            // update cannot name to replace or remove it: refused here.
            if r.name.is_empty() {
                return Err(path.field_error("name", "a listener from LDS needs a name"));
            }
            let listener = Listener::decode(r.encoded.as_slice())
                .map_err(|e| path.error(format!("cannot decode the listener: {e}")))?;
            let old =
                self.state.borrow().resources.get(&r.name).and_then(|a| Listener::decode(a.encoded.as_slice()).ok());
            let chains = old.and_then(|old| in_place_update(&old, &listener));
            let (config, drain, routes, secrets) = self.build(&listener, &path)?;
            built.push((*i, config, drain, chains, routes, secrets));
        }
        // The SDS files the new listeners named are read before they accept
        // (then followed until the process exits); a secret of a management
        // server is asked for, and the listener warms until it comes.
        let streams = self.streams.upgrade();
        super::sds::start_pending(&self.server.secrets, &self.server.store, streams.as_deref(), |_| true)
            .await
            .map_err(|e| ConfigError::new("sds_config", format!("cannot start SDS: {e}")))?;
        // So are the route config files they name for the first time. One on
        // the ADS stream is asked for and not awaited here (this runs while the
        // stream hands over the LDS response, so its answer cannot come yet):
        // the listener warms instead (`warm`).
        if let Some(streams) = &streams {
            super::rds::start_pending(&self.server, &self.cm, streams, false)
                .await
                .map_err(|e| ConfigError::new("rds", format!("cannot start RDS: {e}")))?;
        }
        // With SO_REUSEPORT a second socket on a listener's address would bind
        // and take half its connections: Envoy refuses the duplicate.
        for (k, (i, config, ..)) in built.iter().enumerate() {
            let taken_by_running = lm.active().iter().any(|l| {
                l.config.name != config.name && l.bound == config.address && !removed.contains(&l.config.name)
            });
            let taken_by_new = built[..k].iter().any(|(_, other, ..)| other.address == config.address);
            if config.address.port() != 0 && (taken_by_running || taken_by_new) {
                return Err(resource_path(*i).field_error(
                    "address",
                    format!(
                        "error adding listener: '{}' has duplicate address '{}' as existing listener",
                        config.name, config.address
                    ),
                ));
            }
        }
        // Binding is the one step that can fail once applying has begun: a
        // listener whose address is taken is refused, the ones before it stay.
        for (done, (i, config, drain, chains, routes, secrets)) in built.into_iter().enumerate() {
            // Envoy's listener warming: one whose routes or secrets have not
            // come stays out (its namesake serving) until they do, or their
            // initial fetch times out.
            let mut waits: Vec<LocalBoxFuture<'static, ()>> = Vec::new();
            for r in &routes {
                let Some(entry) = streams.as_ref().and_then(|s| s.rds_entry(&r.source.source, &r.route_config_name))
                else {
                    continue;
                };
                if !entry.is_initialized() {
                    let timeout = r.source.initial_fetch_timeout;
                    waits.push(Box::pin(async move { entry.initialized(timeout).await }));
                }
            }
            for secret in secrets.into_iter().filter(|s| !s.is_initialized()) {
                waits.push(Box::pin(async move { secret.initialized().await }));
            }
            if !waits.is_empty() {
                self.warm(config, drain, chains, waits);
                continue;
            }
            self.next_generation(&config.name);
            tracing::info!("lds: add/update listener '{}'", config.name);
            let name = config.name.clone();
            let outgoing = outgoing(&self.server, &self.state, &name, chains);
            if let Err(e) = lm.add_or_update(config, drain, chains).await {
                record(&self.state, file, &changed[..done], &[]);
                return Err(resource_path(i).field_error("address", e.to_string()));
            }
            kept_versions.push((name.clone(), went(&self.state, &name, outgoing)));
        }
        for name in &removed {
            self.next_generation(name);
            tracing::info!("lds: remove listener '{name}'");
            let outgoing = outgoing(&self.server, &self.state, name, None);
            lm.remove(name);
            went(&self.state, name, outgoing);
        }
        record(&self.state, file, &changed, &removed);
        for (name, kept) in kept_versions {
            keep_version(&self.state, &name, kept);
        }
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
    }

    /// At start-up, the server is not ready before its first listeners warmed.
    async fn started_initialized(&self) {
        while self.warming.get() > 0 {
            self.warmed.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::listener::v3::FilterChain;

    #[test]
    fn only_a_change_of_filter_chains_is_in_place() {
        let chain = |name: &str| FilterChain { name: name.into(), ..Default::default() };
        let old = Listener { name: "l".into(), filter_chains: vec![chain("a"), chain("b")], ..Default::default() };
        let new = Listener { filter_chains: vec![chain("a"), chain("c")], ..old.clone() };
        assert_eq!(in_place_update(&old, &new), Some(1));
        let moved = Listener { stat_prefix: "other".into(), ..new };
        assert_eq!(in_place_update(&old, &moved), None);
    }
}
