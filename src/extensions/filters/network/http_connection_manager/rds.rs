//! `rds`: a connection manager whose route table comes from a discovery
//! subscription (Envoy's `RdsRouteConfigProviderImpl`). Every connection
//! manager naming the same source and `route_config_name` shares one
//! `RdsRouteConfig` through the `RouteConfigProviderManager`, as Envoy's
//! `RouteConfigProviderManager` shares one subscription; the server
//! (`server::xds::rds`) subscribes to what the manager holds and hands each
//! accepted `RouteConfiguration` to `RdsRouteConfig::update`.
//!
//! The table is built and checked by the code of an inline `route_config`
//! (`RouteTable::from_proto`), then posted into a thread-local slot on every
//! thread, as Envoy's provider posts its `ConfigImpl` to each worker's
//! `ThreadLocal`: a request reads its worker's copy with no lock and no atomic
//! (an `Rc` clone), and keeps that table for its whole life, so a request in
//! flight finishes on the routes it started with.

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;

use crate::config::config_source::SubscriptionSource;
use crate::config::{ConfigError, FieldPath};
use crate::extensions;
use crate::router::{Route, RouteBuildContext, RouteTable};
use crate::stats::Store;
use crate::thread_local::{Slot, ThreadLocalRegistry};

/// The resource type RDS delivers.
pub const ROUTE_TYPE: &str = "envoy.config.route.v3.RouteConfiguration";

/// One `(source, route_config_name)`: its current table on every thread.
#[derive(Debug)]
pub struct RdsRouteConfig {
    pub route_config_name: String,
    /// A file or the ADS stream (an `api_config_source` is refused as the
    /// connection manager is built).
    pub source: SubscriptionSource,
    /// `http.<stat_prefix>.rds.<route_config_name>.`, from the first connection
    /// manager that named it (Envoy's subscription scope).
    pub stat_prefix: String,
    store: Arc<Store>,
    slot: Slot<Arc<RouteTable>>,
}

impl RdsRouteConfig {
    /// Builds `rc` as an inline route table is built (with `validate_clusters`
    /// off unless it says otherwise, Envoy's default for RDS; `cluster_exists`
    /// asks the cluster manager), then posts it to every thread. A failure
    /// leaves the running table in place.
    pub fn update(
        &self,
        rc: &RouteConfiguration,
        path: &FieldPath,
        cluster_exists: &dyn Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        let validate = rc.validate_clusters.as_ref().is_some_and(|b| b.value);
        let table = build_table(rc, path, &self.store, validate.then_some(cluster_exists))?;
        let table = Arc::new(table);
        self.slot.set(move || table.clone());
        Ok(())
    }

    /// This thread's table, `None` before the first update (no route: 404 `NR`).
    pub fn current(&self) -> Option<Rc<Arc<RouteTable>>> {
        self.slot.get()
    }
}

/// A route table as a connection manager builds it, inline or from RDS: its
/// per-filter configs by the HTTP filters' decoders, its clusters checked by
/// `cluster_exists` (when given and `validate_clusters` allows).
pub fn build_table(
    rc: &RouteConfiguration,
    path: &FieldPath,
    store: &Arc<Store>,
    cluster_exists: Option<&dyn Fn(&str) -> bool>,
) -> Result<RouteTable, ConfigError> {
    let per_route = |name: &str, any: &Any, p: &FieldPath| extensions::create_per_route_config(name, any, p, store);
    RouteTable::from_proto(
        rc,
        path,
        &RouteBuildContext {
            per_route: &per_route,
            vhost_cors: Some(&extensions::filters::http::cors::vhost_policy),
            cluster_exists,
            inventory: &extensions::supported::INVENTORY,
        },
    )
}

/// The route configs connection managers named, by source and name.
pub struct RouteConfigProviderManager {
    registry: ThreadLocalRegistry,
    configs: Mutex<Vec<Arc<RdsRouteConfig>>>,
    /// The configs named since `take_named`, new or shared: what a listener
    /// being built depends on (it warms until they load).
    named: Mutex<Vec<Arc<RdsRouteConfig>>>,
    /// How many of `configs` the server has subscribed to.
    started: Mutex<usize>,
}

impl RouteConfigProviderManager {
    pub fn new(registry: ThreadLocalRegistry) -> Self {
        RouteConfigProviderManager {
            registry,
            configs: Mutex::default(),
            named: Mutex::default(),
            started: Mutex::new(0),
        }
    }

    /// The config of `(source, name)`, shared with any connection manager that
    /// named it before.
    pub fn get_or_add(
        &self,
        source: SubscriptionSource,
        route_config_name: &str,
        stat_prefix: &str,
        store: &Arc<Store>,
    ) -> Arc<RdsRouteConfig> {
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) =
            configs.iter().find(|c| c.source.source == source.source && c.route_config_name == route_config_name)
        {
            named.push(c.clone());
            return c.clone();
        }
        let config = Arc::new(RdsRouteConfig {
            route_config_name: route_config_name.to_string(),
            source,
            stat_prefix: format!("http.{stat_prefix}.rds.{route_config_name}."),
            store: store.clone(),
            slot: self.registry.allocate_slot(),
        });
        configs.push(config.clone());
        named.push(config.clone());
        config
    }

    /// The configs named since the last call.
    pub fn take_named(&self) -> Vec<Arc<RdsRouteConfig>> {
        std::mem::take(&mut self.named.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The configs added since the last call, for the server to subscribe to.
    pub fn take_unstarted(&self) -> Vec<Arc<RdsRouteConfig>> {
        let configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let new = configs[*started..].to_vec();
        *started = configs.len();
        new
    }

    /// Forgets the configs of a management server that no connection manager
    /// names any more (held by nothing but this manager and their
    /// subscription: their listeners drained), and returns them for their
    /// subscriptions to end. A connection manager naming one later gets a
    /// new one, subscribed anew (as Envoy's provider manager).
    pub fn release_unused(&self) -> Vec<Arc<RdsRouteConfig>> {
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let mut released = Vec::new();
        let mut i = 0;
        while i < *started {
            let c = &configs[i];
            let from_server = !matches!(c.source.source, crate::config::config_source::Source::Path(_));
            if from_server && Arc::strong_count(c) <= 2 {
                released.push(configs.remove(i));
                *started -= 1;
            } else {
                i += 1;
            }
        }
        released
    }

    /// Every config, for `/config_dump`.
    pub fn all(&self) -> Vec<Arc<RdsRouteConfig>> {
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where a connection manager's routes come from. One per connection manager,
/// built once and never moved: an inline table stays unboxed, one pointer less
/// on each request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Routes {
    /// `route_config`.
    Inline(RouteTable),
    /// `rds`.
    Rds(Arc<RdsRouteConfig>),
}

impl Routes {
    /// The table a request routes with, taken once as it starts.
    pub fn snapshot(&self) -> RoutesSnapshot<'_> {
        match self {
            Routes::Inline(table) => RoutesSnapshot::Inline(table),
            Routes::Rds(config) => RoutesSnapshot::Rds(config.current()),
        }
    }
}

/// One request's route table: its worker's copy of an RDS table stays alive
/// while the request runs, whatever update comes meanwhile.
pub enum RoutesSnapshot<'a> {
    Inline(&'a RouteTable),
    /// `None`: no table has come yet, so no route matches.
    Rds(Option<Rc<Arc<RouteTable>>>),
}

impl RoutesSnapshot<'_> {
    pub fn find(&self, parts: &http::request::Parts) -> Option<&Arc<Route>> {
        match self {
            RoutesSnapshot::Inline(table) => table.find(parts),
            RoutesSnapshot::Rds(table) => table.as_ref()?.find(parts),
        }
    }
}
