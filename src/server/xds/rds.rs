//! RDS (Envoy's `RdsRouteConfigSubscription`): a subscription per route config
//! the connection managers named (`RouteConfigProviderManager`), fed to the
//! same `PathSubscription` as CDS and LDS files, counted under
//! `http.<stat_prefix>.rds.<route_config_name>.`. `apply` keeps Envoy's checks
//! and messages: no resource is `update_empty` (accepted, nothing changes),
//! more than one or another name is rejected; a changed table is built by the
//! connection manager's code (`RdsRouteConfig::update`) and counts
//! `config_reload`. A connection manager names its route config as it is
//! built, so the configs of static listeners are read before the listeners
//! accept (`start_pending`), and those of an LDS listener before it is applied.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Message;

use super::start::Started;
use super::{epoch_ms, resource_path, AppliedResource, AppliedState, PathSubscription, ResourceApi};
use crate::config::config_source::Source;
use crate::config::path_source::DiscoveryFile;
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::filters::network::http_connection_manager::rds::{RdsRouteConfig, ROUTE_TYPE};
use crate::server::Server;
use crate::upstream::ClusterManager;

define_stats! {
    /// `http.<stat_prefix>.rds.<name>.*` beside the subscription's own
    /// (Envoy's `ALL_RDS_STATS`).
    #[derive(Debug)]
    pub struct RdsStats {
        counter config_reload,
        counter update_empty,
        gauge config_reload_time_ms,
    }
}

/// One route config's subscription.
pub struct RdsApi {
    config: Arc<RdsRouteConfig>,
    cm: Rc<ClusterManager>,
    /// Shared with the server, for `/config_dump`.
    state: Rc<RefCell<AppliedState>>,
    stats: RdsStats,
}

impl RdsApi {
    /// The `route_config_name` subscribed to.
    pub fn name(&self) -> &str {
        &self.config.route_config_name
    }

    /// `http.<stat_prefix>.rds.<name>.`.
    pub fn stat_prefix(&self) -> &str {
        &self.config.stat_prefix
    }

    pub fn config(&self) -> &Arc<RdsRouteConfig> {
        &self.config
    }

    /// What `/config_dump` shows of it (one of the server's `rds_states`).
    pub fn shared_state(&self) -> &Rc<RefCell<AppliedState>> {
        &self.state
    }
}

impl ResourceApi for RdsApi {
    const TYPE: &'static str = ROUTE_TYPE;
    const NAME: &'static str = "rds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let name = &self.config.route_config_name;
        let resource = match file.resources.as_slice() {
            [] => {
                // Accepted with its version; the running table stays.
                self.stats.update_empty.inc();
                tracing::debug!("Missing RouteConfiguration for {name} in onConfigUpdate()");
                return Ok(());
            }
            [one] => one,
            more => {
                return Err(FieldPath::starting_at("resources")
                    .error(format!("Unexpected RDS resource length: {}", more.len())))
            }
        };
        let path = resource_path(0);
        if &resource.name != name {
            return Err(
                path.field_error("name", format!("Unexpected RDS configuration (expecting {name}): {}", resource.name))
            );
        }
        // The same table again is no reload, as Envoy compares its hash.
        if self.state.borrow().resources.get(name).is_some_and(|a| a.encoded == resource.encoded) {
            return Ok(());
        }
        let rc = RouteConfiguration::decode(resource.encoded.as_slice())
            .map_err(|e| path.error(format!("cannot decode the route configuration: {e}")))?;
        self.config.update(&rc, &path, &|cluster| self.cm.has_cluster(cluster))?;
        let now = SystemTime::now();
        self.stats.config_reload.inc();
        self.stats.config_reload_time_ms.set(epoch_ms(now));
        self.state.borrow_mut().resources.insert(
            name.clone(),
            AppliedResource {
                encoded: resource.encoded.clone(),
                version_info: file.version_info.clone(),
                last_updated: now,
            },
        );
        tracing::info!("rds: loading new configuration: config_name={name} version={}", file.version_info);
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
    }
}

/// Starts a subscription for each route config no one follows yet: a file is
/// read once now, then followed by a local task (its handle returned); a
/// management server (the ADS stream, or one of the source's own) is asked
/// for the config, and its first answer awaited (up to
/// `initial_fetch_timeout`) when `wait` (a listener that must not serve
/// before its routes come).
pub async fn start_pending(
    server: &Server,
    cm: &Rc<ClusterManager>,
    streams: &Started,
    wait: bool,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let mut fetching = Vec::new();
    let store = &server.store;
    for config in server.route_configs.take_unstarted() {
        let prefix = config.stat_prefix.clone();
        let state = Rc::new(RefCell::new(AppliedState::default()));
        server.rds_states.borrow_mut().push(state.clone());
        let source = config.source.clone();
        let api = RdsApi { config, cm: cm.clone(), state, stats: RdsStats::new(store, &prefix) };
        match source.source {
            Source::Path(path) => {
                let sub = PathSubscription::new(path, store, &prefix);
                let watcher = sub.start(&api).await?;
                tasks.push(tokio::task::spawn_local(async move { sub.follow(&api, watcher).await }));
            }
            Source::Ads | Source::Grpc(_) => match streams.rds_watch(&source.source) {
                Some(watch) => fetching.push((super::rds_watch::add(&watch, api, store), source.initial_fetch_timeout)),
                None => {
                    return Err(std::io::Error::other(format!(
                        "{prefix}: ADS must be configured to support an ADS config source"
                    )))
                }
            },
        }
    }
    if wait {
        for (entry, timeout) in fetching {
            entry.initialized(timeout).await;
        }
    }
    Ok(tasks)
}
