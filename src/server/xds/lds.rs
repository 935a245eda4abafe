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

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use prost::Message;

use super::start::Started;
use super::{diff, record, resource_path, AppliedState, ResourceApi};
use crate::config::path_source::{DiscoveryFile, LISTENER_TYPE};
use crate::config::ConfigError;
use crate::extensions::FactoryContext;
use crate::network::{drain, ListenerConfig};
use crate::server::Server;
use crate::upstream::ClusterManager;

pub struct LdsApi {
    server: Rc<Server>,
    cm: Rc<ClusterManager>,
    state: Rc<RefCell<AppliedState>>,
    /// Where the route configs of its listeners subscribe (weak: the streams
    /// hold this API).
    streams: Weak<Started>,
}

impl LdsApi {
    pub fn new(server: Rc<Server>, cm: Rc<ClusterManager>, streams: &Rc<Started>) -> Self {
        let state = server.lds_state.clone();
        LdsApi { server, cm, state, streams: Rc::downgrade(streams) }
    }

    /// Builds one listener, with its own drain watch, as a static one is built.
    fn build(
        &self,
        l: &Listener,
        path: &crate::config::FieldPath,
    ) -> Result<(Arc<ListenerConfig>, Rc<tokio::sync::watch::Sender<crate::network::DrainPhase>>), ConfigError> {
        let s = &self.server;
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
        Ok((config, drain_tx))
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

impl ResourceApi for LdsApi {
    const TYPE: &'static str = LISTENER_TYPE;
    const NAME: &'static str = "lds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let lm = &self.server.listener_manager;
        let (changed, removed) = diff(file, &self.state.borrow(), |name| lm.is_static(name));
        let mut built = Vec::with_capacity(changed.len());
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
            let (config, drain) = self.build(&listener, &path)?;
            built.push((*i, config, drain, chains));
        }
        // The SDS secrets the new listeners named are read before they accept
        // (their files are then followed until the process exits).
        super::sds::start_pending(&self.server.secrets, &self.server.store)
            .await
            .map_err(|e| ConfigError::new("sds_config", format!("cannot watch an SDS file: {e}")))?;
        // So are the route config files they name for the first time. One on
        // the ADS stream is asked for and not awaited: this runs while the
        // stream hands over the LDS response, so its answer cannot come yet
        // (Envoy warms the listener meanwhile; here it answers 404 until then).
        if let Some(streams) = self.streams.upgrade() {
            super::rds::start_pending(&self.server, &self.cm, &streams, false)
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
        for (done, (i, config, drain, chains)) in built.into_iter().enumerate() {
            tracing::info!("lds: add/update listener '{}'", config.name);
            if let Err(e) = lm.add_or_update(config, drain, chains).await {
                record(&self.state, file, &changed[..done], &[]);
                return Err(resource_path(i).field_error("address", e.to_string()));
            }
        }
        for name in &removed {
            tracing::info!("lds: remove listener '{name}'");
            lm.remove(name);
        }
        record(&self.state, file, &changed, &removed);
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
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
