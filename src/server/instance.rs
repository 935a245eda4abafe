//! The server instance (Envoy's `InstanceImpl`): loads the bootstrap, builds the
//! listener and cluster managers, starts the workers and the guard dogs, runs the
//! main thread's dispatcher (admin, DNS, signals, the CDS and LDS file
//! subscriptions of `xds`), takes the sockets of the process it upgrades
//! (`handoff`), and drains on shutdown or when a newer process takes over.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::config::bootstrap::v3::Admin;
use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::Notify;

use super::admin;
use super::handoff::{self, DrainRequest, Handoff};
use super::options::Options;
use super::overload_manager::OverloadManager;
use super::watchdog::{GuardDog, WatchdogConfig};
use super::worker::Worker;
use super::xds::grpc_mux::{CDS_METHOD, LDS_METHOD};
use super::xds::start::Started;
use super::xds::{self, cds::CdsApi, lds::LdsApi, sds, AppliedState, DynamicResourcesConfig};
use crate::access_log::AccessLogger;
use crate::config::config_source::Source;
use crate::config::{self, path_source, BootstrapSource, ConfigError, LoadedBootstrap};
use crate::define_stats;
use crate::event::{Dispatcher, DispatcherHandle};
use crate::extensions::filters::network::http_connection_manager::rds::RouteConfigProviderManager;
use crate::extensions::transport_sockets::tls::{SdsSecret, SecretManager};
use crate::extensions::{self, FactoryContext};
use crate::network::address::socket_address;
use crate::network::{DrainPhase, ListenerManager};
use crate::overload::OverloadState;
use crate::runtime::{self, LayerConfig};
use crate::stats::sink::StatSinks;
use crate::stats::{Gauge, StatsConfig, Store};
use crate::thread_local::{Slot, ThreadLocalRegistry};
use crate::upstream::cluster_manager::ClusterManagerConfig;
use crate::upstream::host::Locality;
use crate::upstream::{ClusterManager, ThreadLocalClusterManager};

/// The config used when neither `-c` nor `--config-yaml` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../examples/courier-default.yaml");

define_stats! {
    /// `server.*`
    #[derive(Debug)]
    pub struct ServerStats {
        counter debug_assertion_failures,
        counter envoy_bug_failures,
        counter static_unknown_fields,
        counter dynamic_unknown_fields,
        counter dropped_stat_flushes,
        gauge live,
        gauge state,
        gauge concurrency,
        gauge uptime,
        gauge memory_allocated,
        gauge memory_heap_size,
        gauge memory_physical_size,
        gauge total_connections,
        gauge parent_connections,
        gauge version,
        gauge hot_restart_epoch,
        gauge days_until_first_cert_expiring,
        gauge seconds_until_first_ocsp_response_expiring,
    }
}

/// Envoy's server states, with the values of the `server.state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Live = 0,
    Draining = 1,
    PreInitializing = 2,
    Initializing = 3,
}

impl ServerState {
    pub fn envoy_name(self) -> &'static str {
        match self {
            ServerState::Live => "LIVE",
            ServerState::Draining => "DRAINING",
            ServerState::PreInitializing => "PRE_INITIALIZING",
            ServerState::Initializing => "INITIALIZING",
        }
    }
}

/// Envoy's default `stats_flush_interval`.
const DEFAULT_STATS_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Everything built from config before any thread or socket exists; building it
/// is `--mode validate`.
pub struct ServerConfig {
    pub options: Options,
    pub config_source: String,
    /// The bootstrap as loaded, protobuf-encoded, for `/config_dump`. (The typed
    /// bootstrap is dropped once everything is built from it: with many clusters
    /// it is the largest thing start-up makes.)
    pub bootstrap_dump: Vec<u8>,
    /// The bootstrap's `node`, after `--service-node`/`--service-cluster`.
    pub node: Node,
    pub store: Arc<Store>,
    pub tls: ThreadLocalRegistry,
    pub cluster_slot: Slot<ThreadLocalClusterManager>,
    /// `layered_runtime`'s layers, and the slot each thread's runtime snapshot lives in.
    pub runtime_layers: Vec<LayerConfig>,
    pub runtime_slot: Slot<Arc<runtime::Snapshot>>,
    pub clusters: ClusterManagerConfig,
    pub listeners: ListenerManager,
    /// The admin address, and whether its socket is IPv6-only.
    pub admin_address: Option<(std::net::SocketAddr, bool)>,
    /// `admin.access_log_path` then `admin.access_log`: every admin request is logged.
    pub admin_access_logs: Vec<Arc<dyn AccessLogger>>,
    pub main_watchdog: WatchdogConfig,
    pub worker_watchdog: WatchdogConfig,
    /// `stats_flush_interval`: how often histograms and `server.*` gauges refresh.
    pub stats_flush_interval: Duration,
    /// The bootstrap's `stats_sinks`, sent at every stats flush.
    pub stat_sinks: StatSinks,
    /// `cluster_manager.load_stats_config`: where load reports go.
    pub load_stats: Option<config::config_source::GrpcSource>,
    /// Shared with the filters that answer health checks.
    pub health_check_failed: Arc<AtomicBool>,
    /// Tells connections to finish and close when the server drains.
    pub drain: tokio::sync::watch::Sender<DrainPhase>,
    /// `overload_manager`, and the slot each thread reads the actions' state in.
    pub overload: Option<(OverloadManager, Slot<OverloadState>)>,
    /// `dynamic_resources`: the files CDS and LDS read.
    pub dynamic: DynamicResourcesConfig,
    /// `static_resources.secrets`, and the SDS secrets the contexts named.
    pub secrets: Arc<SecretManager>,
    /// The SDS secrets static clusters named: they initialize before CDS starts.
    pub cluster_secrets: Vec<Arc<SdsSecret>>,
    /// The route configs connection managers named by RDS.
    pub route_configs: Arc<RouteConfigProviderManager>,
}

impl ServerConfig {
    pub fn build(options: Options) -> Result<ServerConfig, ConfigError> {
        let source = bootstrap_source(&options);
        let (source, config_source) = if source.config_path.is_none() && source.config_yaml.is_none() {
            (
                BootstrapSource { config_path: None, config_yaml: Some(DEFAULT_CONFIG_YAML.to_string()) },
                "<embedded default>".to_string(),
            )
        } else {
            let shown =
                source.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "--config-yaml".into());
            (source, shown)
        };
        let mut bootstrap = extensions::supported::load_bootstrap(&source)?;
        apply_node_overrides(&options, &mut bootstrap);
        let stats_config = match &bootstrap.bootstrap.stats_config {
            Some(c) => StatsConfig::from_proto(c, &config::FieldPath::starting_at("stats_config"))?,
            None => StatsConfig::default(),
        };
        let store = Arc::new(Store::with_config(stats_config));
        // Read by the components whose stats Envoy creates on first use.
        let deferred =
            bootstrap.bootstrap.deferred_stat_options.as_ref().is_some_and(|d| d.enable_deferred_creation_stats);
        store.lock().set_deferred_creation(deferred);
        let tls = ThreadLocalRegistry::new();
        let cluster_slot = tls.allocate_slot();
        let runtime_slot = tls.allocate_slot();
        let b = &bootstrap.bootstrap;
        let runtime_layers = match &b.layered_runtime {
            Some(rt) => runtime::layers::from_proto(
                rt,
                b.node.as_ref().map_or("", |n| n.cluster.as_str()),
                &config::FieldPath::starting_at("layered_runtime"),
            )?,
            None => Vec::new(),
        };
        let statics = b.static_resources.as_ref();
        let node_complete = b.node.as_ref().is_some_and(|n| !n.id.is_empty() && !n.cluster.is_empty());
        let secrets = Arc::new(SecretManager::from_proto(statics.map_or(&[], |s| &s.secrets), node_complete)?);
        let local_locality = b.node.as_ref().and_then(|n| n.locality.as_ref()).map(|l| {
            Arc::new(Locality { region: l.region.clone(), zone: l.zone.clone(), sub_zone: l.sub_zone.clone() })
        });
        // The resolver of every DNS cluster that names none of its own.
        #[allow(deprecated)]
        let default_dns = crate::upstream::dns::ResolverFields {
            typed: b.typed_dns_resolver_config.as_ref(),
            resolution: b.dns_resolution_config.as_ref(),
            resolvers: &[],
            use_tcp: b.use_tcp_for_dns_lookups,
        }
        .config(&config::FieldPath::new())?
        .unwrap_or_default();
        let clusters = ClusterManagerConfig::from_proto(
            statics.map_or(&[], |s| &s.clusters),
            local_locality.as_ref(),
            b.cluster_manager.as_ref().map(|c| c.local_cluster_name.as_str()).filter(|n| !n.is_empty()),
            default_dns,
            &store,
            &crate::extensions::transport_sockets::tls::TlsSocketBuilder { store: &store, secrets: &secrets },
        )?;
        let cluster_secrets = secrets.take_named();
        // Envoy 1.40 crashes at start-up on a static cluster whose secret
        // comes over ADS (its ADS stream does not exist yet): refused here.
        if let Some(s) = cluster_secrets.iter().find(|s| s.source.source == Source::Ads) {
            return Err(ConfigError::new(
                "static_resources.clusters",
                format!(
                    "the SDS secret '{}' of a static cluster has sds_config.ads: Envoy 1.40 cannot start with it (it \
                     crashes); give it an api_config_source",
                    s.name
                ),
            ));
        }
        let health_check_failed = Arc::new(AtomicBool::new(false));
        let route_configs = Arc::new(RouteConfigProviderManager::new(tls.clone()));
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(DrainPhase::Serving);
        let cluster_names: std::collections::HashSet<&str> =
            clusters.clusters.iter().map(|c| c.name.as_str()).collect();
        let cluster_exists = |name: &str| cluster_names.contains(name);
        let ctx = FactoryContext {
            store: &store,
            clusters: &cluster_slot,
            cluster_exists: &cluster_exists,
            health_check_failed: &health_check_failed,
            drain: &drain_rx,
            service_cluster: b.node.as_ref().map_or("", |n| n.cluster.as_str()),
            service_node: b.node.as_ref().map_or("", |n| n.id.as_str()),
            listener_stat_scope: "",
            listener_buffer_limit: crate::network::connection::DEFAULT_BUFFER_LIMIT,
            listener_bypasses_overload: false,
            listener_outbound: false,
            node_zone: local_locality.as_ref().map_or("", |l| l.zone.as_str()),
            secrets: &secrets,
            route_configs: &route_configs,
        };
        let listeners =
            ListenerManager::from_proto(statics.map_or(&[], |s| &s.listeners), &ctx, &store, options.workers())?;
        let admin_address = match b.admin.as_ref().and_then(|a| a.address.as_ref()) {
            None => None,
            Some(addr) => {
                let path = config::FieldPath::starting_at("admin.address");
                let (host, port) = socket_address(addr, &path)?;
                let ip = host.parse().map_err(|_| {
                    path.field_error("socket_address.address", format!("'{host}' is not an IP address"))
                })?;
                let ipv6_only = crate::network::socket::ipv6_only(ip, crate::network::address::ipv4_compat(addr));
                Some((std::net::SocketAddr::new(ip, port), ipv6_only))
            }
        };
        let admin_access_logs = match &b.admin {
            Some(a) => admin_access_logs(a, &store)?,
            None => Vec::new(),
        };
        // `watchdog` is deprecated in favour of `watchdogs` but Envoy still reads it.
        #[allow(deprecated)]
        let legacy_watchdog = &b.watchdog;
        let (main_watchdog, worker_watchdog) = match (&b.watchdogs, legacy_watchdog) {
            (Some(w), _) => (
                WatchdogConfig::from_proto(w.main_thread_watchdog.as_ref()),
                WatchdogConfig::from_proto(w.worker_watchdog.as_ref()),
            ),
            (None, Some(w)) => (WatchdogConfig::from_proto(Some(w)), WatchdogConfig::from_proto(Some(w))),
            (None, None) => (WatchdogConfig::default(), WatchdogConfig::default()),
        };
        let stats_flush_interval = match &b.stats_flush_interval {
            Some(d) => {
                let d = config::duration(d);
                if d < Duration::from_millis(1) || d > Duration::from_secs(300) {
                    let path = config::FieldPath::starting_at("stats_flush_interval");
                    return Err(path.error("value must be inside range [1ms, 300s]"));
                }
                d
            }
            None => DEFAULT_STATS_FLUSH_INTERVAL,
        };
        let sink_node = xds::grpc_mux::xds_node(&b.node.clone().unwrap_or_default());
        let stat_sinks = crate::extensions::stat_sinks::from_bootstrap(&b.stats_sinks, &sink_node, &ctx)?;
        let overload = match &b.overload_manager {
            Some(o) => Some((
                OverloadManager::from_proto(o, &store, &config::FieldPath::starting_at("overload_manager"))?,
                tls.allocate_slot(),
            )),
            None => None,
        };
        let dynamic = match &b.dynamic_resources {
            Some(d) => DynamicResourcesConfig::from_proto(d)?,
            None => DynamicResourcesConfig::default(),
        };
        dynamic.check_management_clusters(&clusters.clusters, b.node.as_ref())?;
        let load_stats = load_stats_source(b.cluster_manager.as_ref(), &clusters)?;
        // The management servers of the connection managers' RDS and of the RTDS layers.
        // Each checked as CDS's and LDS's: ADS configured, a static HTTP/2 cluster.
        let check_source = |source: &config::config_source::Source, path: config::FieldPath| match source {
            config::config_source::Source::Ads if dynamic.ads.is_none() => {
                Err(path.field_error("ads", "ADS must be configured to support an ADS config source"))
            }
            config::config_source::Source::Grpc(grpc) => xds::source::check_cluster(
                grpc,
                clusters.clusters.iter().find(|k| k.name == grpc.cluster).map(|k| k.as_ref()),
                &path.child("api_config_source.grpc_services[0].envoy_grpc.cluster_name"),
            ),
            _ => Ok(()),
        };
        for c in route_configs.all() {
            check_source(&c.source.source, config::FieldPath::starting_at(&format!("{}config_source", c.stat_prefix)))?;
        }
        for (i, layer) in runtime_layers.iter().enumerate() {
            let runtime::LayerSource::Rtds { source, .. } = &layer.source else { continue };
            let path = config::FieldPath::starting_at(&format!("layered_runtime.layers[{i}].rtds_layer.rtds_config"));
            check_source(&source.source, path)?;
        }
        // Envoy's check for an EDS (first, as static clusters are built first),
        // CDS or RTDS subscription, from a file too (not for LDS): a management
        // server tells nodes apart by them.
        let node = b.node.as_ref();
        let eds = clusters.clusters.iter().any(|c| c.discovery == crate::upstream::DiscoveryType::Eds);
        let rtds = runtime_layers.iter().any(|l| matches!(l.source, runtime::LayerSource::Rtds { .. }));
        let needs_node = [
            (eds, path_source::ENDPOINT_TYPE),
            (dynamic.cds.is_some(), path_source::CLUSTER_TYPE),
            (rtds, xds::rtds::RUNTIME_TYPE),
        ];
        if let Some((_, type_name)) = needs_node.iter().find(|(subscribed, _)| *subscribed) {
            if node.is_none_or(|n| n.id.is_empty() || n.cluster.is_empty()) {
                return Err(ConfigError::new(
                    "node",
                    format!(
                        "type.googleapis.com/{type_name}: node 'id' and 'cluster' are required. Set it either in \
                         'node' config or via --service-node and --service-cluster options."
                    ),
                ));
            }
        }
        let LoadedBootstrap { bootstrap, encoded } = bootstrap;
        Ok(ServerConfig {
            options,
            config_source,
            bootstrap_dump: encoded,
            node: bootstrap.node.unwrap_or_default(),
            stats_flush_interval,
            stat_sinks,
            load_stats,
            store,
            tls,
            cluster_slot,
            runtime_layers,
            runtime_slot,
            clusters,
            listeners,
            admin_address,
            admin_access_logs,
            main_watchdog,
            worker_watchdog,
            health_check_failed,
            drain: drain_tx,
            overload,
            dynamic,
            secrets,
            cluster_secrets,
            route_configs,
        })
    }
}

/// `cluster_manager.load_stats_config`: a gRPC `ApiConfigSource` whose
/// cluster exists and speaks HTTP/2 (as the management servers' streams).
fn load_stats_source(
    cm: Option<&envoy_types::pb::envoy::config::bootstrap::v3::ClusterManager>,
    clusters: &ClusterManagerConfig,
) -> Result<Option<config::config_source::GrpcSource>, ConfigError> {
    let Some(source) = cm.and_then(|c| c.load_stats_config.as_ref()) else { return Ok(None) };
    let path = config::FieldPath::starting_at("cluster_manager.load_stats_config");
    let grpc = config::config_source::GrpcSource::from_proto(source, &path)?;
    // Envoy's load stats stream is the same whatever the api_type (a delta type
    // included), and sends the node in every message.
    if grpc.set_node_on_first_message_only {
        return Err(path.field_error(
            "set_node_on_first_message_only",
            "not supported by Courier for load_stats_config (every load report carries the node)",
        ));
    }
    let cluster = clusters.clusters.iter().find(|k| k.name == grpc.cluster).map(|k| k.as_ref());
    xds::source::check_cluster(&grpc, cluster, &path.child("grpc_services[0].envoy_grpc.cluster_name"))?;
    Ok(Some(grpc))
}

/// The admin's loggers: the deprecated `access_log_path` first, as Envoy adds it.
fn admin_access_logs(admin: &Admin, store: &Store) -> Result<Vec<Arc<dyn AccessLogger>>, ConfigError> {
    #[allow(deprecated)]
    let legacy = admin.access_log_path.as_str();
    let mut logs = Vec::new();
    if !legacy.is_empty() {
        let path = config::FieldPath::starting_at("admin.access_log_path");
        logs.push(crate::access_log::build_default_file_log(legacy, &path, store)?);
    }
    let path = config::FieldPath::starting_at("admin.access_log");
    logs.extend(crate::access_log::build_access_logs(&admin.access_log, &path, store)?);
    Ok(logs)
}

/// `--service-node` / `--service-cluster` override the bootstrap's node, as in Envoy.
fn apply_node_overrides(options: &Options, b: &mut LoadedBootstrap) {
    if options.service_node.is_none() && options.service_cluster.is_none() {
        return;
    }
    let node = b.bootstrap.node.get_or_insert_with(Default::default);
    if let Some(id) = &options.service_node {
        node.id = id.clone();
    }
    if let Some(cluster) = &options.service_cluster {
        node.cluster = cluster.clone();
    }
}

/// The running server, owned by the main thread.
pub struct Server {
    pub options: Options,
    pub config_source: String,
    /// The bootstrap as loaded, protobuf-encoded, for `/config_dump`.
    pub bootstrap_dump: Vec<u8>,
    /// The bootstrap's `node`, after `--service-node`/`--service-cluster`.
    pub node: Node,
    /// `cluster_manager.load_stats_config`: where load reports go.
    pub load_stats: Option<config::config_source::GrpcSource>,
    pub store: Arc<Store>,
    pub stats: ServerStats,
    pub started: Instant,
    pub started_wall: SystemTime,
    pub cluster_manager: RefCell<Option<Rc<ClusterManager>>>,
    pub runtime: Rc<runtime::Loader>,
    pub listener_manager: ListenerManager,
    pub workers: Vec<DispatcherHandle>,
    pub total_connections: Arc<Gauge>,
    stats_flush_interval: Duration,
    state: Cell<ServerState>,
    pub(super) health_check_failed: Arc<AtomicBool>,
    shutdown: Notify,
    shutdown_requested: Cell<bool>,
    pub(super) drain: tokio::sync::watch::Sender<DrainPhase>,
    /// `dynamic_resources`, and what CDS and LDS have applied (`/config_dump`).
    pub dynamic: DynamicResourcesConfig,
    pub cds_state: Rc<RefCell<AppliedState>>,
    pub lds_state: Rc<RefCell<AppliedState>>,
    /// `static_resources.secrets` and the SDS secrets (`/config_dump`, SDS).
    pub secrets: Arc<SecretManager>,
    /// The SDS secrets static clusters named.
    pub cluster_secrets: Vec<Arc<SdsSecret>>,
    /// The route configs of RDS, and what each has applied (`/config_dump`).
    pub route_configs: Arc<RouteConfigProviderManager>,
    pub rds_states: RefCell<Vec<Rc<RefCell<AppliedState>>>>,
    /// The listen sockets a newer process may take (with handoff on).
    handoff_sockets: RefCell<Option<handoff::parent::HandoffSockets>>,
}

impl Server {
    pub fn state(&self) -> ServerState {
        if self.health_check_failed() && self.state.get() == ServerState::Live {
            ServerState::Draining
        } else {
            self.state.get()
        }
    }

    /// `/healthcheck/fail` and `/healthcheck/ok`.
    pub fn set_health_check_failed(&self, failed: bool) {
        self.health_check_failed.store(failed, Ordering::Relaxed);
        self.refresh_stats();
    }

    pub fn health_check_failed(&self) -> bool {
        self.health_check_failed.load(Ordering::Relaxed)
    }

    /// Starts shutdown (SIGTERM, SIGINT, `/quitquitquit`).
    pub fn request_shutdown(&self) {
        self.shutdown_requested.set(true);
        self.shutdown.notify_one();
    }

    /// `/drain_listeners`: stop accepting new connections, keep serving open ones.
    /// As in Envoy, the server stays LIVE; only shutdown makes it DRAINING.
    pub fn drain_listeners(&self) {
        self.stop_listeners(&HashSet::new());
    }

    /// Stops the listeners, letting go of the sockets at `handed_over` (a newer
    /// process has them) and closing the others. A newer process takes no
    /// socket from this one from now on: a stopped one is no longer served
    /// here, and a copy kept for handoff would keep a closing socket open.
    fn stop_listeners(&self, handed_over: &HashSet<std::net::SocketAddr>) {
        if let Some(sockets) = &*self.handoff_sockets.borrow() {
            sockets.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.listener_manager.stop_listeners(&self.workers, handed_over);
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Brings the `server.*` gauges up to date (Envoy does this on its stats flush).
    pub fn refresh_stats(&self) {
        let s = &self.stats;
        s.uptime.set(self.uptime().as_secs() as i64);
        s.state.set(self.state() as i64);
        s.live.set(i64::from(self.state() == ServerState::Live));
        let m = super::memory::usage();
        s.memory_allocated.set(m.allocated as i64);
        s.memory_heap_size.set(m.heap_size as i64);
        s.memory_physical_size.set(m.physical as i64);
        s.total_connections.set(self.total_connections.value());
        // Envoy's value when no certificate is configured: u32::MAX days.
        let days = super::admin::certs::days_until_first_expiring(self).unwrap_or(i64::from(u32::MAX));
        s.days_until_first_cert_expiring.set(days);
    }
}

/// Runs the server to completion; returns the process exit code.
pub fn run(options: Options) -> i32 {
    if options.hot_restart_version {
        println!("{}", handoff::VERSION);
        return 0;
    }
    let config = match ServerConfig::build(options.clone()) {
        Ok(c) => c,
        Err(e) => {
            let e = config::bootstrap::locate_lines(e, &bootstrap_source(&options));
            eprintln!("error initializing configuration '{}': {e}", config_name(&options));
            return 1;
        }
    };
    if options.mode == super::options::Mode::Validate {
        println!("configuration '{}' OK", config.config_source);
        return 0;
    }
    // Everything is built from config: the schema is not needed any more.
    config::release_schema();
    match serve(config) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("courier: {e}");
            1
        }
    }
}

/// The bootstrap's texts as the command line names them (`-c`, `--config-yaml`).
fn bootstrap_source(options: &Options) -> BootstrapSource {
    BootstrapSource { config_path: options.config_path.clone(), config_yaml: options.config_yaml.clone() }
}

fn config_name(options: &Options) -> String {
    options.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "--config-yaml".into())
}

fn serve(config: ServerConfig) -> std::io::Result<()> {
    let ServerConfig {
        options,
        config_source,
        bootstrap_dump,
        node,
        store,
        tls,
        cluster_slot,
        runtime_layers,
        runtime_slot,
        clusters,
        listeners,
        admin_address,
        admin_access_logs,
        main_watchdog,
        worker_watchdog,
        stats_flush_interval,
        stat_sinks,
        load_stats,
        health_check_failed,
        drain,
        overload,
        dynamic,
        secrets,
        cluster_secrets,
        route_configs,
    } = config;
    // Before any thread starts, so that a panic on any of them follows the policy.
    super::panic_hook::install(store.counter("server.envoy_bug_failures"));
    let workers_n = options.workers();
    // Before any thread starts: a handoff socket in use is a start-up error.
    let handoff = Handoff::open(&options)?;
    let handoff_file = handoff.file.clone();
    tracing::info!("courier {} starting: {workers_n} worker(s), config {config_source}", env!("CARGO_PKG_VERSION"));
    let main_guard = GuardDog::new(main_watchdog, "main_thread", store.clone());
    let worker_guard = GuardDog::new(worker_watchdog, "workers", store.clone());
    let main = Dispatcher::new("main_thread")?;
    tls.register_thread(main.handle());
    let mut workers = Vec::with_capacity(workers_n);
    for i in 0..workers_n {
        let w = Worker::start(i, &worker_guard)?;
        tls.register_thread(w.dispatcher.clone());
        workers.push(w);
    }
    let main_dog = main_guard.create_watchdog("main_thread");
    let guard_threads = [main_guard.start()?, worker_guard.start()?];
    // Every thread is registered: the first snapshot reaches the workers before
    // their listeners, as Envoy's loader is built before them.
    let runtime = Rc::new(runtime::Loader::new(runtime_layers, &store, runtime_slot));
    // No RTDS layer holds anything yet: the first load cannot fail.
    if let Err(e) = runtime.load() {
        tracing::error!("runtime: {e}");
    }
    let stats = ServerStats::new(&store, "server.");
    stats.concurrency.set(workers_n as i64);
    stats.version.set(version_number());
    stats.hot_restart_epoch.set(i64::from(options.epoch()));
    // Envoy's value when no certificate is configured (u32::MAX days), until
    // the first refresh reads the contexts.
    stats.days_until_first_cert_expiring.set(i64::from(u32::MAX));
    stats.state.set(ServerState::PreInitializing as i64);
    let server = Rc::new(Server {
        options: options.clone(),
        config_source,
        bootstrap_dump,
        node,
        load_stats,
        store: store.clone(),
        stats,
        started: Instant::now(),
        started_wall: SystemTime::now(),
        cluster_manager: RefCell::new(None),
        runtime,
        listener_manager: listeners,
        workers: workers.iter().map(|w| w.dispatcher.clone()).collect(),
        total_connections: store.gauge("server.total_connections"),
        stats_flush_interval,
        state: Cell::new(ServerState::PreInitializing),
        health_check_failed,
        shutdown: Notify::new(),
        shutdown_requested: Cell::new(false),
        handoff_sockets: RefCell::new(None),
        drain,
        dynamic,
        cds_state: Rc::default(),
        lds_state: Rc::default(),
        secrets,
        cluster_secrets,
        route_configs,
        rds_states: RefCell::default(),
    });

    let result: Rc<RefCell<std::io::Result<()>>> = Rc::new(RefCell::new(Ok(())));
    let (srv, res) = (server.clone(), result.clone());
    main.run(Some(main_dog), async move {
        if let Some((manager, slot)) = overload {
            manager.start(slot);
        }
        let admin = (admin_address, admin_access_logs);
        if let Err(e) = main_loop(srv, admin, cluster_slot, clusters, stat_sinks, handoff).await {
            *res.borrow_mut() = Err(e);
        }
    });
    for w in &mut workers {
        w.stop();
    }
    main_guard.stop();
    worker_guard.stop();
    for t in guard_threads {
        let _ = t.join();
    }
    if let Some(file) = handoff_file {
        let _ = std::fs::remove_file(file);
    }
    let r = std::mem::replace(&mut *result.borrow_mut(), Ok(()));
    tracing::info!("exiting");
    r
}

/// How long connections closed at the end of the drain get to finish closing
/// (their lingering close) before the process exits.
const CLOSE_IDLE_WAIT: Duration = Duration::from_secs(3);

/// The admin address (and whether it is IPv6-only) and its access logs.
type AdminSetup = (Option<(std::net::SocketAddr, bool)>, Vec<Arc<dyn AccessLogger>>);

async fn main_loop(
    server: Rc<Server>,
    (admin_address, admin_access_logs): AdminSetup,
    cluster_slot: Slot<ThreadLocalClusterManager>,
    clusters: ClusterManagerConfig,
    stat_sinks: StatSinks,
    handoff: Handoff,
) -> std::io::Result<()> {
    let Handoff { listener: handoff_listener, parent, .. } = handoff;
    // Copies of the listen sockets a newer process may take, by address.
    let mut handoff_sockets = crate::network::listener_manager::SocketsByAddress::new();
    let mut admin_task = None;
    if let Some((addr, ipv6_only)) = admin_address {
        let socket = match handoff::inherit(parent.as_ref(), addr).pop() {
            Some(s) => Ok(s),
            None => crate::network::socket::bind_listener(addr, false, ipv6_only),
        }
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind admin address {addr}: {e}")))?;
        if handoff_listener.is_some() && addr.port() != 0 {
            handoff_sockets.insert(addr, vec![socket.try_clone()?]);
        }
        let (bound, task) = admin::start(server.clone(), socket, admin_access_logs).await?;
        admin_task = Some((addr, task));
        tracing::info!("admin address: {bound}");
        if let Some(path) = &server.options.admin_address_path {
            std::fs::write(path, bound.to_string())?;
        }
    }
    server.state.set(ServerState::Initializing);
    // Each SDS secret's file is read before clusters connect or listeners
    // accept, as Envoy's init manager waits for secrets.
    let subscriptions = sds::start_pending(&server.secrets, &server.store, None, |_| true).await?;
    let cm = ClusterManager::start(clusters, cluster_slot).await;
    *server.cluster_manager.borrow_mut() = Some(cm.clone());
    let subscriptions = Rc::new(Started::new(subscriptions, &server, &cm));
    if let Some(source) = server.load_stats.clone() {
        let node = xds::grpc_mux::xds_node(&server.node);
        let reporter = super::load_stats_reporter::LoadStatsReporter::new(source, node, cm.clone());
        subscriptions.push_task(tokio::task::spawn_local(reporter.run()));
    }
    // The secrets of static clusters from a management server (on streams of
    // their own) come first: Envoy initializes those clusters before CDS.
    let cluster_secrets = || server.cluster_secrets.iter().filter(|s| !s.is_initialized());
    let waited: Vec<_> = cluster_secrets().cloned().collect();
    let in_clusters = |s: &SdsSecret| waited.iter().any(|w| std::ptr::eq(w.as_ref(), s));
    for task in sds::start_pending(&server.secrets, &server.store, Some(&subscriptions), in_clusters).await? {
        subscriptions.push_task(task);
    }
    for secret in cluster_secrets() {
        secret.initialized().await;
    }
    // Envoy loads its runtime again once the cluster manager is up (so
    // `runtime.load_success` starts at 2 there too), then starts RTDS and waits
    // for each layer's first update before its secondary clusters (EDS, CDS).
    if let Err(e) = server.runtime.load() {
        tracing::error!("runtime: {e}");
    }
    xds::rtds::start(&server.runtime, &subscriptions).await?;
    // Static EDS clusters are initialized by their first assignment (or the
    // lack of one within initial_fetch_timeout).
    xds::eds::start_static(&cm, &subscriptions).await?;
    // CDS is read once before any listener starts (Envoy initializes CDS
    // clusters first), so listeners may name its clusters.
    let cds = server.dynamic.cds.clone().map(|source| {
        let state = server.cds_state.clone();
        let api = CdsApi::new(cm.clone(), server.store.clone(), server.secrets.clone(), state, &subscriptions);
        subscriptions.subscribe(source, api, "cluster_manager.cds.", CDS_METHOD)
    });
    // Then the secrets of static listeners are asked for (after CDS, as Envoy
    // asks), and awaited before the workers start.
    let listener_secrets: Vec<_> = server.secrets.dynamic().into_iter().filter(|s| !s.is_initialized()).collect();
    for task in sds::start_pending(&server.secrets, &server.store, Some(&subscriptions), |_| true).await? {
        subscriptions.push_task(task);
    }
    if let Some(cds) = cds {
        subscriptions.ready(cds).await?;
    }
    // The route configs static listeners fetch by RDS, before they accept (every
    // thread is registered: their tables reach the workers first).
    for task in xds::rds::start_pending(&server, &cm, &subscriptions, true).await? {
        subscriptions.push_task(task);
    }
    // Listeners are asked for once the clusters are in, and applied once the
    // workers run.
    let lds = server.dynamic.lds.clone().map(|source| {
        let api = LdsApi::new(server.clone(), cm.clone(), &subscriptions);
        subscriptions.subscribe(source, api, "listener_manager.lds.", LDS_METHOD)
    });
    // Static listeners accept once their secrets came (or their initial
    // fetch timed out), as Envoy's init manager waits for them (LDS is asked
    // for meanwhile).
    for secret in listener_secrets {
        secret.initialized().await;
    }
    server.runtime.watch_disk_layers();
    let lm = &server.listener_manager;
    let inherited = lm.inheritable_addresses().into_iter().map(|a| (a, handoff::inherit(parent.as_ref(), a))).collect();
    lm.start_workers(
        &server.workers,
        &server.total_connections,
        inherited,
        handoff_listener.is_some(),
        Duration::from_secs(server.options.drain_time_s),
    )
    .await?;
    if let Some(lds) = lds {
        subscriptions.ready(lds).await?;
    }
    if !server.listener_manager.is_stopped() {
        server.state.set(ServerState::Live);
    }
    // Start-up's garbage (config text, JSON trees, the schema) is freed by now.
    super::memory::release_free_memory();
    server.refresh_stats();
    tracing::info!("all workers started; server is live");
    // Accepting on every socket: the old process may let go of its copies.
    if let Some(parent) = parent {
        let o = &server.options;
        let times = (Duration::from_secs(o.drain_time_s), Duration::from_secs(o.parent_shutdown_time_s));
        match parent.drain(times.0, times.1) {
            Ok(()) => {
                tracing::info!("the previous epoch drains and exits");
                // Not joined: it ends when the previous epoch exits.
                let interval = server.stats_flush_interval.min(Duration::from_secs(1));
                parent.follow_connections(server.stats.parent_connections.clone(), interval)?;
            }
            Err(e) => tracing::warn!("cannot tell the previous epoch to drain: {e}"),
        }
    }
    let (drain_requests, mut drain_requested) = tokio::sync::mpsc::unbounded_channel();
    if let Some(listener) = handoff_listener {
        handoff_sockets.extend(lm.take_handoff_sockets());
        let shared = Arc::new(std::sync::Mutex::new(handoff_sockets));
        // Not joined: it waits in accept until the process exits.
        handoff::parent::spawn(listener, shared.clone(), drain_requests, server.total_connections.clone())?;
        *server.handoff_sockets.borrow_mut() = Some(shared);
    }

    // Shared with the last flush at exit; never borrowed across an await.
    let stat_sinks = Rc::new(RefCell::new(stat_sinks));
    let flush = tokio::task::spawn_local({
        let (server, stat_sinks) = (server.clone(), stat_sinks.clone());
        async move {
            loop {
                tokio::time::sleep(server.stats_flush_interval).await;
                server.refresh_stats();
                server.store.flush_histograms();
                stat_sinks.borrow_mut().flush(&server.store);
            }
        }
    });
    let handed_over = wait_for_shutdown(&server, &mut drain_requested).await;
    // No listener or cluster comes or goes while the server drains.
    for sub in subscriptions.take_tasks() {
        sub.abort();
    }
    let (drain_time, shutdown_time, handed) = match handed_over {
        Some(DrainRequest { drain_time, parent_shutdown_time, handed_over }) => {
            tracing::info!(
                "handed over to a newer process: draining for {}s, exiting within {}s",
                drain_time.as_secs(),
                parent_shutdown_time.as_secs()
            );
            (drain_time, parent_shutdown_time, handed_over)
        }
        None => {
            tracing::info!("shutting down: draining for up to {}s", server.options.drain_time_s);
            (Duration::from_secs(server.options.drain_time_s), Duration::ZERO, HashSet::new())
        }
    };
    // Draining first, so that connections still queued on a closing socket
    // are served as draining ones.
    server.drain.send_replace(DrainPhase::Draining);
    server.stop_listeners(&handed);
    if let Some((addr, task)) = admin_task {
        if handed.contains(&addr) {
            task.abort();
        }
    }
    server.state.set(ServerState::Draining);
    server.refresh_stats();
    let started = tokio::time::Instant::now();
    // Idle keep-alive connections get their connection manager's drain_timeout
    // (Envoy's default, 5 s) to send a last request, answered with
    // `connection: close`; then they close themselves, so that one idle client
    // does not hold the process for the whole drain time (past an
    // orchestrator's grace). Requests in flight finish within the drain time,
    // which also bounds every drain_timeout.
    wait_for_connections(&server, started + drain_time).await;
    server.drain.send_replace(DrainPhase::CloseIdle);
    wait_for_connections(&server, (started + shutdown_time).max(tokio::time::Instant::now() + CLOSE_IDLE_WAIT)).await;
    flush.abort();
    // Envoy flushes its sinks once more when it stops, so what happened since the
    // last interval still reaches the collector.
    if !stat_sinks.borrow().is_empty() {
        server.refresh_stats();
        server.store.flush_histograms();
        stat_sinks.borrow_mut().flush(&server.store);
    }
    if !crate::access_log::flush_all(Duration::from_secs(2)) {
        tracing::warn!("some access log lines were not written before exit");
    }
    Ok(())
}

/// Waits until no connection is open, or `deadline`.
async fn wait_for_connections(server: &Server, deadline: tokio::time::Instant) {
    while server.total_connections.value() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resolves on SIGTERM, SIGINT or a shutdown request from admin (`None`), or
/// when a newer process has taken the listen sockets over and asks this one
/// to drain.
async fn wait_for_shutdown(
    server: &Server,
    handoff: &mut tokio::sync::mpsc::UnboundedReceiver<DrainRequest>,
) -> Option<DrainRequest> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            tracing::warn!("cannot install signal handlers; only /quitquitquit stops the server");
            server.shutdown.notified().await;
            return None;
        }
    };
    if server.shutdown_requested.get() {
        return None;
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("caught SIGTERM"),
        _ = int.recv() => tracing::info!("caught SIGINT"),
        _ = server.shutdown.notified() => {}
        // Without handoff nothing sends; if the handoff thread ends, its sender
        // goes, the pattern fails and the branch is off.
        Some(request) = handoff.recv() => return Some(request),
    }
    None
}

/// `server.version` as Envoy reports a number: here major·10⁴ + minor·10² + patch.
fn version_number() -> i64 {
    let part = |s: &str| s.parse::<i64>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}
