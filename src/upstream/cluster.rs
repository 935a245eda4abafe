//! A cluster's static description (`ClusterInfo`), built once from config and shared
//! read-only by every thread, and the endpoints it starts from. A `load_assignment`
//! is read here whether the bootstrap holds it or EDS delivers it
//! (`assignment_endpoints`), so both are checked alike.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::LocalityConfigSpecifier;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType as PbDiscoveryType, DnsLookupFamily as PbDnsLookupFamily, LbConfig,
    LbPolicy as PbLbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, LoadBalancingPolicy};
use envoy_types::pb::envoy::config::core::v3::RuntimeDouble;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint};
use envoy_types::pb::envoy::extensions::load_balancing_policies::common::v3::locality_lb_config::LocalityConfigSpecifier as LocalitySpecifier;
use envoy_types::pb::envoy::extensions::load_balancing_policies::common::v3::LocalityLbConfig;
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::random::v3::Random;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::value::Kind;
use prost::Message as _;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;

use super::drop_overload::{DropOverload, DropOverloadConfig};
use super::health_check::{HealthCheckConfig, HealthCheckStats};
use super::host::{EdsHealth, HealthCheckTarget, Locality};
use super::load_balancer::{LbPolicy, DEFAULT_ACTIVE_REQUEST_BIAS, DEFAULT_CHOICE_COUNT};
use super::original_dst::OriginalDst;
use super::resource_manager::ResourceManager;
use super::zone_aware::ZoneAwareConfig;
use crate::config::config_source::{Source, SubscriptionSource};
use crate::config::{self, ConfigError, FieldPath};
use crate::define_stats;
use crate::http::http2::{Http2CodecStats, Http2Options};
use crate::network::address::{ipv4_compat, socket_address};
use crate::network::connection::DEFAULT_BUFFER_LIMIT;
use crate::network::socket::TcpKeepalive;
use crate::stats::{Histogram, Store};

/// Envoy's default `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default `dns_refresh_rate`.
const DEFAULT_DNS_REFRESH_RATE: Duration = Duration::from_millis(5000);
/// Envoy's default `healthy_panic_threshold`, in percent.
pub const DEFAULT_HEALTHY_PANIC_THRESHOLD: u32 = 50;
/// Envoy's default `overprovisioning_factor` (1.4, in percent).
pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;

define_stats! {
    /// `cluster.<name>.*`
    #[derive(Debug)]
    pub struct ClusterStats {
        counter upstream_cx_total,
        counter upstream_cx_connect_fail,
        counter upstream_cx_connect_timeout,
        counter upstream_cx_connect_attempts_exceeded,
        counter upstream_cx_destroy,
        counter upstream_cx_destroy_local,
        counter upstream_cx_destroy_remote,
        counter upstream_cx_rx_bytes_total,
        counter upstream_cx_tx_bytes_total,
        counter upstream_cx_none_healthy,
        counter upstream_rq_total,
        counter upstream_rq_pending_total,
        counter upstream_rq_pending_failure_eject,
        counter upstream_rq_pending_overflow,
        counter upstream_rq_active_overflow,
        counter upstream_rq_completed,
        counter upstream_rq_timeout,
        counter upstream_rq_per_try_timeout,
        counter upstream_rq_retry,
        counter upstream_rq_retry_success,
        counter upstream_rq_retry_overflow,
        counter upstream_rq_retry_limit_exceeded,
        counter upstream_rq_retry_backoff_exponential,
        counter upstream_rq_rx_reset,
        counter upstream_rq_tx_reset,
        counter upstream_rq_cancelled,
        counter upstream_rq_maintenance_mode,
        counter upstream_cx_http1_total,
        counter upstream_cx_http2_total,
        counter upstream_cx_idle_timeout,
        counter upstream_cx_max_requests,
        counter upstream_cx_overflow,
        counter upstream_cx_protocol_error,
        counter upstream_cx_destroy_with_active_rq,
        counter upstream_cx_destroy_local_with_active_rq,
        counter upstream_cx_destroy_remote_with_active_rq,
        counter retry_or_shadow_abandoned,
        counter upstream_internal_redirect_failed_total,
        counter original_dst_host_invalid,
        counter membership_change,
        counter lb_healthy_panic,
        counter lb_local_cluster_not_ok,
        counter lb_recalculate_zone_structures,
        counter lb_zone_cluster_too_small,
        counter lb_zone_no_capacity_left,
        counter lb_zone_routing_all_directly,
        counter lb_zone_routing_cross_zone,
        counter lb_zone_routing_sampled,
        counter update_attempt,
        counter update_success,
        counter update_failure,
        counter update_empty,
        counter update_no_rebuild,
        gauge upstream_cx_active,
        gauge upstream_rq_active,
        gauge upstream_rq_pending_active,
        gauge membership_healthy,
        gauge membership_degraded,
        gauge membership_excluded,
        gauge membership_total,
        gauge max_host_weight,
    }
}

/// The stats of `ClusterStats` that are Envoy's `ClusterTrafficStats`: with
/// `enable_deferred_creation_stats`, Envoy creates them when the cluster is
/// first used, so they are not listed before (`stats::table`).
const TRAFFIC_STATS: &[&str] = &[
    "upstream_cx_total",
    "upstream_cx_connect_fail",
    "upstream_cx_connect_timeout",
    "upstream_cx_connect_attempts_exceeded",
    "upstream_cx_destroy",
    "upstream_cx_destroy_local",
    "upstream_cx_destroy_remote",
    "upstream_cx_rx_bytes_total",
    "upstream_cx_tx_bytes_total",
    "upstream_cx_none_healthy",
    "upstream_rq_total",
    "upstream_rq_pending_total",
    "upstream_rq_pending_failure_eject",
    "upstream_rq_pending_overflow",
    "upstream_rq_active_overflow",
    "upstream_rq_completed",
    "upstream_rq_timeout",
    "upstream_rq_per_try_timeout",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_overflow",
    "upstream_rq_retry_limit_exceeded",
    "upstream_rq_retry_backoff_exponential",
    "upstream_rq_rx_reset",
    "upstream_rq_tx_reset",
    "upstream_rq_cancelled",
    "upstream_rq_maintenance_mode",
    "upstream_cx_http1_total",
    "upstream_cx_http2_total",
    "upstream_cx_idle_timeout",
    "upstream_cx_max_requests",
    "upstream_cx_overflow",
    "upstream_cx_protocol_error",
    "upstream_cx_destroy_with_active_rq",
    "upstream_cx_destroy_local_with_active_rq",
    "upstream_cx_destroy_remote_with_active_rq",
    "retry_or_shadow_abandoned",
    "upstream_internal_redirect_failed_total",
    "original_dst_host_invalid",
    "upstream_cx_active",
    "upstream_rq_active",
    "upstream_rq_pending_active",
];

/// How a cluster finds its hosts (`Cluster.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryType {
    Static,
    StrictDns,
    LogicalDns,
    /// Its membership comes from EDS (`eds_cluster_config`).
    Eds,
    /// Its hosts are the addresses requests ask for (`upstream::original_dst`).
    OriginalDst,
}

impl DiscoveryType {
    pub fn envoy_name(self) -> &'static str {
        match self {
            DiscoveryType::Static => "STATIC",
            DiscoveryType::StrictDns => "STRICT_DNS",
            DiscoveryType::LogicalDns => "LOGICAL_DNS",
            DiscoveryType::Eds => "EDS",
            DiscoveryType::OriginalDst => "ORIGINAL_DST",
        }
    }

    /// Whether its hosts are found by resolving names (a refresh loop runs).
    pub fn is_dns(self) -> bool {
        matches!(self, DiscoveryType::StrictDns | DiscoveryType::LogicalDns)
    }
}

/// `eds_cluster_config` of an EDS cluster: where its assignment comes from and
/// the name it has there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdsClusterConfig {
    pub source: SubscriptionSource,
    /// `service_name`, else the cluster's name: the `cluster_name` of the
    /// `ClusterLoadAssignment` the cluster takes.
    pub service_name: String,
}

/// Which address families DNS answers are used from (`dns_lookup_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsLookupFamily {
    Auto,
    V4Only,
    V6Only,
    V4Preferred,
    All,
}

/// A configured endpoint's address before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddress {
    Ip(SocketAddr),
    Dns { name: String, port: u16 },
}

/// A configured `LbEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredEndpoint {
    pub address: EndpointAddress,
    /// `endpoint.hostname`: the hosts' hostname (`auto_host_rewrite`, `/clusters`).
    /// Empty when unset; a DNS endpoint's hosts then take the name resolved, as
    /// Envoy's do.
    pub hostname: String,
    /// `load_balancing_weight` (1 when unset).
    pub weight: u32,
    /// `health_status`, as Envoy files it.
    pub health: EdsHealth,
    /// `address.socket_address.ipv4_compat`.
    pub ipv4_compat: bool,
    /// Its `LocalityLbEndpoints.locality`, when set.
    pub locality: Option<Arc<Locality>>,
    /// Its `LocalityLbEndpoints.priority` (0, the highest, when unset).
    pub priority: u32,
    /// Its `LocalityLbEndpoints.load_balancing_weight` (0 when unset), read with
    /// `locality_weighted_lb_config`.
    pub locality_weight: u32,
    /// `endpoint.health_check_config`.
    pub health_check: HealthCheckTarget,
    /// `metadata` as protobuf JSON, when set (`metadata_json`).
    pub metadata: Option<Arc<str>>,
}

/// Everything about a cluster that does not change while it exists.
#[derive(Debug)]
pub struct ClusterInfo {
    pub name: String,
    /// `alt_stat_name` or `name`: the `<name>` in `cluster.<name>.*`.
    pub stat_name: String,
    pub discovery: DiscoveryType,
    pub connect_timeout: Duration,
    pub per_connection_buffer_limit_bytes: u32,
    pub dns_refresh_rate: Duration,
    /// `dns_failure_refresh_rate` as `(base_interval, max_interval)`: after a failed
    /// resolution the next one waits a jittered, growing back-off instead of
    /// `dns_refresh_rate`.
    pub dns_failure_refresh_rate: Option<(Duration, Duration)>,
    pub dns_lookup_family: DnsLookupFamily,
    /// `respect_dns_ttl`: after a success, a name is resolved again when its
    /// answer's least TTL has passed (`dns_refresh_rate` when that TTL is 0).
    pub respect_dns_ttl: bool,
    /// `dns_jitter`: after a success, up to this much more (at random) is waited.
    pub dns_jitter: Duration,
    /// The cluster's own resolver (`typed_dns_resolver_config`,
    /// `dns_resolution_config`, `dns_resolvers`, `use_tcp_for_dns_lookups`); `None`
    /// when it sets none and uses the bootstrap's.
    pub dns_resolver: Option<Arc<super::dns::DnsResolver>>,
    pub endpoints: Vec<ConfiguredEndpoint>,
    /// An EDS cluster's source (`None` for every other type).
    pub eds: Option<EdsClusterConfig>,
    /// An ORIGINAL_DST cluster's settings (`None` for every other type).
    pub original_dst: Option<Box<super::original_dst::OriginalDst>>,
    /// `load_assignment.policy.overprovisioning_factor`, in percent (Envoy's default
    /// 140): how much a priority level's health is scaled by before the levels below
    /// it take a share of the load (see `upstream::priority`).
    pub overprovisioning_factor: u32,
    /// `load_assignment.policy.drop_overloads`, then each EDS assignment's: the
    /// share of requests the router drops, and the drops not yet reported.
    pub drop_overload: DropOverload,
    /// `common_lb_config.healthy_panic_threshold`, in whole percent (Envoy rounds
    /// it; 50 when unset): a level whose healthy and degraded share is below it
    /// balances over all its hosts (see `upstream::priority`).
    pub healthy_panic_threshold: u32,
    /// `lb_policy` with `least_request_lb_config`.
    pub lb_policy: LbPolicy,
    /// `common_lb_config.locality_weighted_lb_config` is set: a locality is picked
    /// by its weight before a host of it.
    pub locality_weighted: bool,
    /// The bootstrap `node.locality`, when set: Envoy lists a cluster's hosts of
    /// that locality first among its localities.
    pub local_locality: Option<Arc<Locality>>,
    /// `zone_aware_lb_config` (of `common_lb_config`, or of the policy's
    /// `locality_lb_config`): Envoy's defaults when unset.
    pub zone_aware: ZoneAwareConfig,
    /// The bootstrap's `cluster_manager.local_cluster_name`, set for every cluster
    /// but that one and ORIGINAL_DST ones: zone routing compares this cluster with it.
    pub local_cluster: Option<String>,
    /// Whether this is the bootstrap's local cluster (whose changes the others'
    /// zone routing follows).
    pub is_local_cluster: bool,
    /// The cluster's `transport_socket` (TLS), set by the cluster manager's
    /// builder; `None`: plain TCP.
    pub tls: Option<Arc<crate::network::tls::UpstreamTls>>,
    /// The PROXY protocol header its connections start with
    /// (`envoy.transport_sockets.upstream_proxy_protocol`).
    pub proxy_protocol: Option<Arc<crate::network::proxy_protocol::UpstreamProxyProtocol>>,
    pub stats: ClusterStats,
    /// `health_checks`: one checker per host for each.
    pub health_checks: Vec<Arc<HealthCheckConfig>>,
    /// `cluster.<name>.health_check.*`, made when the cluster has health checks.
    pub health_check_stats: Option<Arc<HealthCheckStats>>,
    /// With `enable_deferred_creation_stats`: set when the cluster is first used,
    /// which lists its traffic stats (`TRAFFIC_STATS`).
    traffic_stats_used: Option<Arc<AtomicBool>>,
    /// Circuit breakers, shared by all workers.
    pub resources: Arc<ResourceManager>,
    /// Requests per upstream connection before it is closed (None: unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// How long an idle pooled HTTP connection is kept (Envoy's default 1 h).
    pub idle_timeout: Duration,
    /// `upstream_connection_options.tcp_keepalive`, set on every upstream socket.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// The HTTP version of upstream requests.
    pub upstream_protocol: UpstreamProtocol,
    /// `auto_sni` / `auto_san_validation` (off unless configured).
    pub auto_names: AutoNames,
    /// The HTTP/2 client codec's settings (Envoy's defaults unless configured);
    /// read only when `upstream_protocol` may speak HTTP/2.
    pub http2_options: Http2Options,
    /// `cluster.<name>.http2.*`, created with the cluster's first HTTP/2
    /// connection as Envoy creates them with its first HTTP/2 codec (boxed: most
    /// clusters never have one, and the stats are ~200 bytes of pointers).
    http2_stats: OnceLock<Box<Http2CodecStats>>,
    /// `upstream_rq_<class>xx`, `upstream_rq_<code>`, `retry.*` and `upstream_rq_time`,
    /// created on first use.
    code_stats: CodeStats,
}

/// The stats Envoy creates with the first response it counts or times
/// (`cluster.<name>.upstream_rq_2xx`, `upstream_rq_200`, `retry.upstream_rq_5xx`,
/// `upstream_rq_time`), so a cluster that never answered a request has none (a
/// tcp_proxy-only cluster, say). Counters by name after the cluster's prefix; each is
/// made once, and the lock is taken only then.
#[derive(Debug)]
struct CodeStats {
    store: Arc<Store>,
    prefix: String,
    counters: std::sync::Mutex<std::collections::HashMap<String, Arc<crate::stats::Counter>>>,
    rq_time: OnceLock<Arc<Histogram>>,
}

impl ClusterInfo {
    /// Marks the cluster used (a request or connection picks a host): with
    /// deferred stat creation, its traffic stats are listed from now on, as
    /// Envoy's are once created. A relaxed load otherwise.
    pub fn use_traffic_stats(&self) {
        if let Some(used) = self.traffic_stats_used.as_ref().filter(|u| !u.load(Ordering::Relaxed)) {
            used.store(true, Ordering::Relaxed);
        }
    }

    /// The `upstream_rq_<code>` counter. Workers cache the result (see
    /// `ThreadLocalCluster::count_response_code`), so the lock is rare.
    pub fn code_counter(&self, code: u16) -> Arc<crate::stats::Counter> {
        self.dynamic_counter(&format!("upstream_rq_{code}"))
    }

    /// The `upstream_rq_<class>xx` counter of `code` (cached by workers as above).
    pub fn class_counter(&self, code: u16) -> Arc<crate::stats::Counter> {
        self.dynamic_counter(&format!("upstream_rq_{}xx", crate::stats::status_class(code)))
    }

    /// `upstream_rq_time`, created when the first response is timed.
    pub fn rq_time(&self) -> &Histogram {
        self.code_stats
            .rq_time
            .get_or_init(|| self.code_stats.store.histogram(&format!("{}upstream_rq_time", self.code_stats.prefix)))
    }

    /// `cluster.<name>.http2.*`, created on first use (the first HTTP/2 connection).
    pub fn http2_stats(&self) -> &Http2CodecStats {
        self.http2_stats.get_or_init(|| {
            Box::new(Http2CodecStats::new(&self.code_stats.store, &format!("{}http2.", self.code_stats.prefix)))
        })
    }

    /// The protocol of a request upstream, given the downstream request's version.
    pub fn protocol_for(&self, downstream: http::Version) -> UpstreamProtocol {
        match self.upstream_protocol {
            UpstreamProtocol::UseDownstream if downstream == http::Version::HTTP_2 => UpstreamProtocol::Http2,
            UpstreamProtocol::UseDownstream => UpstreamProtocol::Http1,
            p => p,
        }
    }

    /// The counter `cluster.<stat_name>.<name>`, created on first use (workers
    /// cache the result).
    pub fn dynamic_counter(&self, name: &str) -> Arc<crate::stats::Counter> {
        let mut counters = self.code_stats.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = counters.get(name) {
            return c.clone();
        }
        let c = self.code_stats.store.counter(&format!("{}{name}", self.code_stats.prefix));
        counters.insert(name.to_owned(), c.clone());
        c
    }
}

impl ClusterInfo {
    /// Builds a cluster from `static_resources.clusters[i]`; `path` points at it.
    pub fn from_proto(c: &Cluster, path: &FieldPath, store: &Arc<Store>) -> Result<ClusterInfo, ConfigError> {
        let discovery = match &c.cluster_discovery_type {
            None => DiscoveryType::Static,
            Some(ClusterDiscoveryType::Type(t)) => match PbDiscoveryType::try_from(*t) {
                Ok(PbDiscoveryType::Static) => DiscoveryType::Static,
                Ok(PbDiscoveryType::StrictDns) => DiscoveryType::StrictDns,
                Ok(PbDiscoveryType::LogicalDns) => DiscoveryType::LogicalDns,
                Ok(PbDiscoveryType::Eds) => DiscoveryType::Eds,
                Ok(PbDiscoveryType::OriginalDst) => DiscoveryType::OriginalDst,
                Err(_) => return Err(path.field_error("type", format!("unknown cluster type {t}"))),
            },
            Some(ClusterDiscoveryType::ClusterType(_)) => {
                return Err(path.field_error("cluster_type", "custom cluster types are not supported by Courier"))
            }
        };
        let original_dst = match discovery {
            DiscoveryType::OriginalDst => Some(Box::new(OriginalDst::from_proto(c, path)?)),
            _ => None,
        };
        let (lb_policy, locality_weighted, zone_aware) = match &c.load_balancing_policy {
            // The cluster provides its load balancer; no other is built.
            _ if original_dst.is_some() => (LbPolicy::RoundRobin, false, ZoneAwareConfig::default()),
            Some(policies) => typed_lb_policy(c, policies, path)?,
            None => (lb_policy(c, path)?, legacy_locality_weighted(c), legacy_zone_aware(c, path)?),
        };
        let dns_lookup_family = match PbDnsLookupFamily::try_from(c.dns_lookup_family) {
            Ok(PbDnsLookupFamily::Auto) | Err(_) => DnsLookupFamily::Auto,
            Ok(PbDnsLookupFamily::V4Only) => DnsLookupFamily::V4Only,
            Ok(PbDnsLookupFamily::V6Only) => DnsLookupFamily::V6Only,
            Ok(PbDnsLookupFamily::V4Preferred) => DnsLookupFamily::V4Preferred,
            Ok(PbDnsLookupFamily::All) => DnsLookupFamily::All,
        };
        let eds = eds_cluster_config(c, path, discovery)?;
        let endpoints = match &c.load_assignment {
            Some(la) => assignment_endpoints(la, &path.child("load_assignment"), discovery)?,
            None => Vec::new(),
        };
        if discovery == DiscoveryType::LogicalDns && endpoints.len() != 1 {
            return Err(path.field_error("load_assignment", "LOGICAL_DNS clusters must have exactly one endpoint"));
        }
        let overprovisioning_factor =
            c.load_assignment.as_ref().map_or(DEFAULT_OVERPROVISIONING_FACTOR, overprovisioning_factor);
        let drop_overload = match &c.load_assignment {
            Some(la) => DropOverloadConfig::from_assignment(la, &path.child("load_assignment"))?,
            None => DropOverloadConfig::default(),
        };
        let http = http_protocol_options(c, path)?;
        let tcp_keepalive = tcp_keepalive(c, path)?;
        // Deprecated in favour of the DnsCluster extension, still honoured by Envoy.
        #[allow(deprecated)]
        let dns_refresh_rate = config::duration_or(&c.dns_refresh_rate, DEFAULT_DNS_REFRESH_RATE);
        let dns_failure_refresh_rate = dns_failure_refresh_rate(c, path)?;
        #[allow(deprecated)]
        let (respect_dns_ttl, dns_jitter) =
            (c.respect_dns_ttl, c.dns_jitter.as_ref().map_or(Duration::ZERO, config::duration));
        #[allow(deprecated)]
        let resolver_fields = super::dns::ResolverFields {
            typed: c.typed_dns_resolver_config.as_ref(),
            resolution: c.dns_resolution_config.as_ref(),
            resolvers: &c.dns_resolvers,
            use_tcp: c.use_tcp_for_dns_lookups,
        };
        let dns_resolver =
            resolver_fields.config(path)?.map(|config| Arc::new(super::dns::DnsResolver::new(config, store.clone())));
        let stat_name = if c.alt_stat_name.is_empty() { c.name.clone() } else { c.alt_stat_name.clone() };
        let prefix = format!("cluster.{stat_name}.");
        let resources =
            Arc::new(ResourceManager::from_proto(c.circuit_breakers.as_ref(), path, store, &c.name, &prefix)?);
        let traffic_stats_used = {
            let mut stats = store.lock();
            stats.deferred_creation().then(|| stats.defer_until_used(&prefix, TRAFFIC_STATS))
        };
        let mut health_checks = Vec::with_capacity(c.health_checks.len());
        for (i, hc) in c.health_checks.iter().enumerate() {
            let hc_path = FieldPath::starting_at(&format!("{path}.health_checks[{i}]"));
            health_checks.push(Arc::new(HealthCheckConfig::from_proto(hc, &hc_path, store)?));
        }
        let health_check_stats = (!health_checks.is_empty())
            .then(|| Arc::new(HealthCheckStats::new(store, &format!("{prefix}health_check."))));
        Ok(ClusterInfo {
            name: c.name.clone(),
            stats: ClusterStats::new(store, &prefix),
            health_checks,
            health_check_stats,
            traffic_stats_used,
            resources,
            max_requests_per_connection: http.max_requests_per_connection,
            idle_timeout: http.idle_timeout,
            tcp_keepalive,
            upstream_protocol: http.protocol,
            auto_names: http.auto_names,
            http2_options: http.http2,
            http2_stats: OnceLock::new(),
            code_stats: CodeStats {
                store: store.clone(),
                prefix: prefix.clone(),
                counters: Default::default(),
                rq_time: OnceLock::new(),
            },
            stat_name,
            discovery,
            connect_timeout: config::duration_or(&c.connect_timeout, DEFAULT_CONNECT_TIMEOUT),
            per_connection_buffer_limit_bytes: c
                .per_connection_buffer_limit_bytes
                .as_ref()
                .map(|v| v.value)
                .unwrap_or(DEFAULT_BUFFER_LIMIT),
            dns_refresh_rate,
            dns_failure_refresh_rate,
            dns_lookup_family,
            respect_dns_ttl,
            dns_jitter,
            dns_resolver,
            lb_policy,
            locality_weighted,
            endpoints,
            eds,
            original_dst,
            overprovisioning_factor,
            drop_overload: DropOverload::new(&drop_overload),
            healthy_panic_threshold: healthy_panic_threshold(c),
            local_locality: None,
            zone_aware,
            local_cluster: None,
            is_local_cluster: false,
            tls: None,
            proxy_protocol: None,
        })
    }
}

/// The HTTP version a cluster speaks upstream (Envoy's `HttpProtocolOptions`
/// `upstream_protocol_options`, or the deprecated cluster fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    Http1,
    /// `explicit_http_config.http2_protocol_options` (prior knowledge, h2c).
    Http2,
    /// `use_downstream_protocol_config`: HTTP/2 for an HTTP/2 downstream request,
    /// else HTTP/1.1. Resolved per request by `ClusterInfo::protocol_for`.
    UseDownstream,
    /// `auto_config`: ALPN offers `h2,http/1.1` and the upstream picks, per
    /// connection (TLS only, as Envoy).
    Auto,
}

/// `upstream_http_protocol_options`: the TLS of a request's connection named
/// after the request's host (Envoy's router sets them in the filter state).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoNames {
    /// `auto_sni`: the host is the SNI (unless it is an address).
    pub sni: bool,
    /// `auto_san_validation`: the upstream's certificate must name the host.
    pub san_validation: bool,
    /// `override_auto_sni_header`: the header read instead of the host, when
    /// the request has it (non-empty).
    pub override_header: Option<http::HeaderName>,
}

/// Upstream HTTP connection settings, from the `HttpProtocolOptions` extension or the
/// deprecated cluster fields Envoy still reads.
struct HttpOptions {
    max_requests_per_connection: Option<u32>,
    idle_timeout: Duration,
    protocol: UpstreamProtocol,
    http2: Http2Options,
    auto_names: AutoNames,
}

pub const HTTP_PROTOCOL_OPTIONS_TYPE: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

#[allow(deprecated)]
fn http_protocol_options(c: &Cluster, path: &FieldPath) -> Result<HttpOptions, ConfigError> {
    let mut common = c.common_http_protocol_options;
    let mut max_requests = c.max_requests_per_connection.as_ref().map(|v| v.value);
    // The deprecated fields, which Envoy reads only when no typed
    // `HttpProtocolOptions` is given.
    let use_downstream = c.protocol_selection
        == envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterProtocolSelection::UseDownstreamProtocol as i32;
    let mut protocol = match (&c.http2_protocol_options, use_downstream) {
        (_, true) => UpstreamProtocol::UseDownstream,
        (Some(_), false) => UpstreamProtocol::Http2,
        (None, false) => UpstreamProtocol::Http1,
    };
    let mut http2 = match &c.http2_protocol_options {
        Some(h2) => Http2Options::from_proto(h2, &path.child("http2_protocol_options"))?,
        None => Http2Options::default(),
    };
    let mut auto_names = AutoNames::default();
    for (key, any) in &c.typed_extension_protocol_options {
        let mut p = path.clone();
        p.push_field("typed_extension_protocol_options");
        p.push_key(key);
        if crate::config::descriptor::type_name(&any.type_url) != HTTP_PROTOCOL_OPTIONS_TYPE {
            return Err(p.field_error("@type", format!("unsupported protocol options '{}'", any.type_url)));
        }
        // Envoy ignores the deprecated fields then: refuse them rather than
        // accept fields that would do nothing.
        if c.http2_protocol_options.is_some() || use_downstream {
            let field = if use_downstream { "protocol_selection" } else { "http2_protocol_options" };
            return Err(path.field_error(
                field,
                "Envoy ignores this deprecated field when typed_extension_protocol_options sets \
                 HttpProtocolOptions: configure the protocol there",
            ));
        }
        let opts: HttpProtocolOptions = crate::config::bootstrap::decode_any(any, &p)?;
        if let Some(cp) = opts.common_http_protocol_options {
            common = Some(cp);
        }
        if let Some(names) = &opts.upstream_http_protocol_options {
            let header = match names.override_auto_sni_header.as_str() {
                "" => None,
                h => Some(http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    p.child("upstream_http_protocol_options")
                        .field_error("override_auto_sni_header", "not a header name")
                })?),
            };
            auto_names =
                AutoNames { sni: names.auto_sni, san_validation: names.auto_san_validation, override_header: header };
        }
        match opts.upstream_protocol_options {
            None => {}
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => match e.protocol_config {
                Some(ProtocolConfig::HttpProtocolOptions(_)) | None => {}
                Some(ProtocolConfig::Http2ProtocolOptions(h2)) => {
                    protocol = UpstreamProtocol::Http2;
                    http2 = Http2Options::from_proto(
                        &h2,
                        &p.child("explicit_http_config").child("http2_protocol_options"),
                    )?;
                }
                Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                    return Err(p
                        .child("explicit_http_config")
                        .field_error("http3_protocol_options", "HTTP/3 upstreams are not supported by Courier"))
                }
            },
            Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(d)) => {
                if d.http3_protocol_options.is_some() {
                    return Err(p
                        .child("use_downstream_protocol_config")
                        .field_error("http3_protocol_options", "HTTP/3 upstreams are not supported by Courier"));
                }
                protocol = UpstreamProtocol::UseDownstream;
                if let Some(h2) = &d.http2_protocol_options {
                    http2 = Http2Options::from_proto(
                        h2,
                        &p.child("use_downstream_protocol_config").child("http2_protocol_options"),
                    )?;
                }
            }
            Some(UpstreamProtocolOptions::AutoConfig(a)) => {
                let auto_path = p.child("auto_config");
                if a.http3_protocol_options.is_some() {
                    return Err(auto_path
                        .field_error("http3_protocol_options", "HTTP/3 upstreams are not supported by Courier"));
                }
                protocol = UpstreamProtocol::Auto;
                if let Some(h2) = &a.http2_protocol_options {
                    http2 = Http2Options::from_proto(h2, &auto_path.child("http2_protocol_options"))?;
                }
            }
        }
    }
    if let Some(m) = common.as_ref().and_then(|cp| cp.max_requests_per_connection.as_ref()) {
        max_requests = Some(m.value);
    }
    Ok(HttpOptions {
        max_requests_per_connection: max_requests.filter(|m| *m > 0),
        idle_timeout: common
            .as_ref()
            .and_then(|cp| cp.idle_timeout.as_ref())
            .map(config::duration)
            .unwrap_or(Duration::from_secs(3600)),
        protocol,
        http2,
        auto_names,
    })
}

/// `dns_failure_refresh_rate`, in whole milliseconds as Envoy reads it: `max_interval`
/// defaults to 10 times `base_interval` and must not be below it (the schema
/// requires `base_interval`, above 1 ms).
#[allow(deprecated)] // In favour of the DnsCluster extension; still honoured by Envoy.
fn dns_failure_refresh_rate(c: &Cluster, path: &FieldPath) -> Result<Option<(Duration, Duration)>, ConfigError> {
    let Some(rate) = &c.dns_failure_refresh_rate else {
        return Ok(None);
    };
    let ms = |d: Duration| Duration::from_millis(d.as_millis() as u64);
    let base = ms(config::duration_or(&rate.base_interval, Duration::ZERO));
    let max = rate.max_interval.as_ref().map_or(base * 10, |m| ms(config::duration(m)));
    if max < base {
        return Err(path.field_error(
            "dns_failure_refresh_rate",
            "dns_failure_refresh_rate must have max_interval greater than or equal to the base_interval",
        ));
    }
    Ok(Some((base, max)))
}

/// `upstream_connection_options.tcp_keepalive`. As in Envoy (checked with 1.40), a
/// value of 0 turns keepalive off for the cluster altogether. Above Linux's
/// maximum, the kernel refuses the option and Envoy fails every connection to the
/// cluster; Courier refuses such a value at start-up instead.
fn tcp_keepalive(c: &Cluster, path: &FieldPath) -> Result<Option<TcpKeepalive>, ConfigError> {
    let Some(k) = c.upstream_connection_options.as_ref().and_then(|o| o.tcp_keepalive.as_ref()) else {
        return Ok(None);
    };
    let mut p = path.clone();
    p.push_field("upstream_connection_options");
    p.push_field("tcp_keepalive");
    let value = |field: &str, v: Option<u32>, max: u32| match v {
        Some(v) if v > max => Err(p.field_error(
            field,
            format!("{v} is above what Linux accepts ({max}); Envoy would fail every upstream connection"),
        )),
        _ => Ok(v),
    };
    let probes = value("keepalive_probes", k.keepalive_probes.map(|v| v.value), MAX_TCP_KEEPCNT)?;
    let time = value("keepalive_time", k.keepalive_time.map(|v| v.value), MAX_TCP_KEEPIDLE)?;
    let interval = value("keepalive_interval", k.keepalive_interval.map(|v| v.value), MAX_TCP_KEEPIDLE)?;
    if [probes, time, interval].contains(&Some(0)) {
        return Ok(None);
    }
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    Ok(Some(TcpKeepalive { probes, time: time.map(secs), interval: interval.map(secs) }))
}

/// Linux's largest `TCP_KEEPCNT`.
const MAX_TCP_KEEPCNT: u32 = 127;
/// Linux's largest `TCP_KEEPIDLE` and `TCP_KEEPINTVL`, in seconds.
const MAX_TCP_KEEPIDLE: u32 = 32767;

/// `lb_policy` and its `least_request_lb_config`.
fn lb_policy(c: &Cluster, path: &FieldPath) -> Result<LbPolicy, ConfigError> {
    let policy = match PbLbPolicy::try_from(c.lb_policy) {
        Ok(PbLbPolicy::RoundRobin) => LbPolicy::RoundRobin,
        Ok(PbLbPolicy::LeastRequest) => LbPolicy::LeastRequest {
            choice_count: DEFAULT_CHOICE_COUNT,
            active_request_bias: DEFAULT_ACTIVE_REQUEST_BIAS,
            active_request_bias_key: None,
        },
        Ok(PbLbPolicy::Random) => LbPolicy::Random,
        Ok(PbLbPolicy::ClusterProvided) => {
            return Err(path.field_error(
                "lb_policy",
                format!("cluster manager: cluster provided LB specified but cluster '{}' did not provide one. Check cluster documentation.", c.name),
            ))
        }
        Ok(other) => {
            return Err(path.field_error(
                "lb_policy",
                format!(
                    "load balancing policy {} is not supported by Courier (ROUND_ROBIN, LEAST_REQUEST, RANDOM are)",
                    other.as_str_name()
                ),
            ))
        }
        Err(_) => return Err(path.field_error("lb_policy", format!("unknown lb_policy {}", c.lb_policy))),
    };
    match (&c.lb_config, policy) {
        (None, _) => Ok(policy),
        (Some(LbConfig::LeastRequestLbConfig(lr)), LbPolicy::LeastRequest { .. }) => {
            let mut p = path.clone();
            p.push_field("least_request_lb_config");
            let choice_count = lr.choice_count.as_ref().map_or(DEFAULT_CHOICE_COUNT, |v| v.value);
            least_request(choice_count, lr.active_request_bias.as_ref(), &p)
        }
        (Some(LbConfig::LeastRequestLbConfig(_)), _) => Err(path.field_error(
            "least_request_lb_config",
            "least_request_lb_config is only used with lb_policy LEAST_REQUEST",
        )),
        (Some(_), _) => Err(path.error("this load balancer config is not supported by Courier")),
    }
}

/// `common_lb_config.locality_weighted_lb_config`, read with `lb_policy` only.
fn legacy_locality_weighted(c: &Cluster) -> bool {
    c.common_lb_config.as_ref().is_some_and(|lb| {
        matches!(lb.locality_config_specifier, Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)))
    })
}

/// `common_lb_config.zone_aware_lb_config`, read with `lb_policy` only.
fn legacy_zone_aware(c: &Cluster, path: &FieldPath) -> Result<ZoneAwareConfig, ConfigError> {
    let Some(LocalityConfigSpecifier::ZoneAwareLbConfig(z)) =
        c.common_lb_config.as_ref().and_then(|lb| lb.locality_config_specifier.as_ref())
    else {
        return Ok(ZoneAwareConfig::default());
    };
    let mut p = path.clone();
    p.push_field("common_lb_config");
    p.push_field("zone_aware_lb_config");
    Ok(ZoneAwareConfig {
        routing_enabled: routing_enabled(z.routing_enabled.as_ref(), &p)?,
        min_cluster_size: z.min_cluster_size.as_ref().map_or(6, |v| v.value),
        fail_traffic_on_panic: z.fail_traffic_on_panic,
        force_local_zone_min_size: None,
    })
}

/// A typed policy's `locality_lb_config.zone_aware_lb_config` (`path` is the
/// policy's config).
fn typed_zone_aware(config: Option<&LocalityLbConfig>, path: &FieldPath) -> Result<ZoneAwareConfig, ConfigError> {
    let Some(LocalitySpecifier::ZoneAwareLbConfig(z)) = config.and_then(|l| l.locality_config_specifier.as_ref())
    else {
        return Ok(ZoneAwareConfig::default());
    };
    let mut p = path.clone();
    p.push_field("locality_lb_config");
    p.push_field("zone_aware_lb_config");
    if z.locality_basis != 0 {
        return Err(p.field_error(
            "locality_basis",
            "only HEALTHY_HOSTS_NUM is supported by Courier (zone shares by healthy host counts)",
        ));
    }
    // `force_local_zone` supersedes the deprecated `force_locality_direct_routing`.
    #[allow(deprecated)]
    let force_local_zone_min_size = match (&z.force_local_zone, z.force_locality_direct_routing) {
        (Some(f), _) => Some(f.min_size.as_ref().map_or(1, |v| v.value)),
        (None, true) => Some(1),
        (None, false) => None,
    };
    Ok(ZoneAwareConfig {
        routing_enabled: routing_enabled(z.routing_enabled.as_ref(), &p)?,
        min_cluster_size: z.min_cluster_size.as_ref().map_or(6, |v| v.value),
        fail_traffic_on_panic: z.fail_traffic_on_panic,
        force_local_zone_min_size,
    })
}

/// `routing_enabled` in whole percent, rounded as Envoy's
/// `PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT` (100 when unset).
fn routing_enabled(percent: Option<&Percent>, path: &FieldPath) -> Result<u32, ConfigError> {
    let Some(p) = percent else { return Ok(100) };
    if !(0.0..=100.0).contains(&p.value) {
        return Err(path.field_error("routing_enabled.value", "value must be inside range [0, 100]"));
    }
    // Within 0..=100, so the cast is exact.
    Ok(p.value.round() as u32)
}

/// The `load_balancing_policy` config types Courier implements.
pub const ROUND_ROBIN_TYPE: &str = "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin";
pub const LEAST_REQUEST_TYPE: &str = "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";
pub const RANDOM_TYPE: &str = "envoy.extensions.load_balancing_policies.random.v3.Random";

/// What Envoy does with `load_balancing_policy.policies[i]`, by the type of its
/// `typed_config` (Envoy looks the factory up by type, never by `name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicyChoice {
    /// One of Courier's: Envoy uses it and reads no later policy.
    Use,
    /// A load balancer Envoy implements and Courier does not (or a `TypedStruct`,
    /// whose inner type Envoy resolves): Envoy would use it, so Courier refuses.
    Refuse,
    /// A type with no load balancer factory: Envoy skips it.
    Skip,
}

pub fn lb_policy_choice(type_name: &str) -> LbPolicyChoice {
    if [ROUND_ROBIN_TYPE, LEAST_REQUEST_TYPE, RANDOM_TYPE].contains(&type_name) {
        LbPolicyChoice::Use
    } else if type_name.starts_with("envoy.extensions.load_balancing_policies.")
        || type_name == "xds.type.v3.TypedStruct"
        || type_name == "udpa.type.v1.TypedStruct"
    {
        LbPolicyChoice::Refuse
    } else {
        LbPolicyChoice::Skip
    }
}

/// `load_balancing_policy`: Envoy takes the first policy it has a factory for and
/// then ignores `lb_policy` and `least_request_lb_config`; the policy's own
/// `locality_lb_config` replaces `common_lb_config`'s. Returns the policy and
/// whether it is locality weighted.
fn typed_lb_policy(
    c: &Cluster,
    lbp: &LoadBalancingPolicy,
    path: &FieldPath,
) -> Result<(LbPolicy, bool, ZoneAwareConfig), ConfigError> {
    let mut p = path.clone();
    p.push_field("load_balancing_policy");
    let Some((i, any)) = lbp
        .policies
        .iter()
        .enumerate()
        .filter_map(|(i, policy)| Some((i, policy.typed_extension_config.as_ref()?.typed_config.as_ref()?)))
        .find(|(_, any)| lb_policy_choice(config::descriptor::type_name(&any.type_url)) != LbPolicyChoice::Skip)
    else {
        return Err(p.field_error("policies", "no load balancing policy Envoy implements is configured"));
    };
    p.push_field("policies");
    p.push_index(i);
    p.push_field("typed_extension_config");
    p.push_field("typed_config");
    if legacy_locality_weighted(c) {
        return Err(path.field_error(
            "common_lb_config.locality_weighted_lb_config",
            "with load_balancing_policy, Envoy reads the locality config from the policy's locality_lb_config, \
             not common_lb_config: set it there",
        ));
    }
    let decode_error = |e: prost::DecodeError| p.error(format!("cannot decode '{}': {e}", any.type_url));
    match config::descriptor::type_name(&any.type_url) {
        ROUND_ROBIN_TYPE => {
            let rr = RoundRobin::decode(any.value.as_slice()).map_err(decode_error)?;
            refuse_slow_start(rr.slow_start_config.is_some(), &p)?;
            let locality = rr.locality_lb_config.as_ref();
            Ok((LbPolicy::RoundRobin, locality_weighted(locality), typed_zone_aware(locality, &p)?))
        }
        LEAST_REQUEST_TYPE => {
            let lr = LeastRequest::decode(any.value.as_slice()).map_err(decode_error)?;
            refuse_slow_start(lr.slow_start_config.is_some(), &p)?;
            let choice_count = lr.choice_count.as_ref().map_or(DEFAULT_CHOICE_COUNT, |v| v.value);
            let policy = least_request(choice_count, lr.active_request_bias.as_ref(), &p)?;
            let locality = lr.locality_lb_config.as_ref();
            Ok((policy, locality_weighted(locality), typed_zone_aware(locality, &p)?))
        }
        RANDOM_TYPE => {
            let r = Random::decode(any.value.as_slice()).map_err(decode_error)?;
            let locality = r.locality_lb_config.as_ref();
            Ok((LbPolicy::Random, locality_weighted(locality), typed_zone_aware(locality, &p)?))
        }
        other => Err(p.field_error(
            "@type",
            format!(
                "Envoy would balance with '{other}', which Courier does not implement \
                 (RoundRobin, LeastRequest and Random are)"
            ),
        )),
    }
}

/// `slow_start_config` (the config checker refuses it too; this keeps the reason).
fn refuse_slow_start(set: bool, path: &FieldPath) -> Result<(), ConfigError> {
    if set {
        return Err(path.field_error("slow_start_config", "slow start is not supported by Courier"));
    }
    Ok(())
}

/// A typed policy's `locality_lb_config.locality_weighted_lb_config`.
fn locality_weighted(config: Option<&LocalityLbConfig>) -> bool {
    config.is_some_and(|l| matches!(l.locality_config_specifier, Some(LocalitySpecifier::LocalityWeightedLbConfig(_))))
}

/// A least-request policy, its values checked as the legacy
/// `least_request_lb_config`'s schema checks them; `path` points at the config.
fn least_request(choice_count: u32, bias: Option<&RuntimeDouble>, path: &FieldPath) -> Result<LbPolicy, ConfigError> {
    let active_request_bias = bias.map_or(DEFAULT_ACTIVE_REQUEST_BIAS, |b| b.default_value);
    if choice_count < 2 {
        return Err(path.field_error("choice_count", "value must be greater than or equal to 2"));
    }
    if !(active_request_bias.is_finite() && active_request_bias >= 0.0) {
        return Err(path.field_error(
            "active_request_bias.default_value",
            format!("active_request_bias must be a finite number >= 0.0, not {active_request_bias}"),
        ));
    }
    // Leaked once per cluster, which is built once: the policy stays `Copy`.
    let active_request_bias_key =
        bias.filter(|b| !b.runtime_key.is_empty()).map(|b| &*Box::leak(b.runtime_key.clone().into_boxed_str()));
    Ok(LbPolicy::LeastRequest { choice_count, active_request_bias, active_request_bias_key })
}

/// Envoy's message.
const NO_EDS_CONFIG: &str = "cannot create an EDS cluster without an EDS config";

/// An EDS cluster's `eds_cluster_config`, which only it may set, and which it
/// needs; its `load_assignment` would be replaced by the first EDS update (Envoy
/// never reads it), so it is refused rather than ignored.
fn eds_cluster_config(
    c: &Cluster,
    path: &FieldPath,
    discovery: DiscoveryType,
) -> Result<Option<EdsClusterConfig>, ConfigError> {
    let Some(eds) = &c.eds_cluster_config else {
        return match discovery {
            DiscoveryType::Eds => Err(path.field_error("eds_cluster_config", NO_EDS_CONFIG)),
            _ => Ok(None),
        };
    };
    if discovery != DiscoveryType::Eds {
        return Err(path.field_error("eds_cluster_config", "only an EDS cluster reads eds_cluster_config"));
    }
    if c.load_assignment.is_some() {
        return Err(path.field_error(
            "load_assignment",
            "an EDS cluster takes its endpoints from eds_cluster_config, not load_assignment",
        ));
    }
    let field = path.child("eds_cluster_config");
    let source = eds.eds_config.as_ref().ok_or_else(|| field.field_error("eds_config", NO_EDS_CONFIG))?;
    let source_path = field.child("eds_config");
    let source = SubscriptionSource::from_proto(source, &source_path)?;
    if let Source::Path(path) = &source.source {
        path.check_exists(&source_path)?;
    }
    let service_name = if eds.service_name.is_empty() { c.name.clone() } else { eds.service_name.clone() };
    Ok(Some(EdsClusterConfig { source, service_name }))
}

/// `common_lb_config.healthy_panic_threshold` rounded, as Envoy's
/// `PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT` (validation keeps it in 0..=100).
fn healthy_panic_threshold(c: &Cluster) -> u32 {
    let threshold = c.common_lb_config.as_ref().and_then(|lb| lb.healthy_panic_threshold.as_ref());
    threshold.map_or(DEFAULT_HEALTHY_PANIC_THRESHOLD, |p| p.value.clamp(0.0, 100.0).round() as u32)
}

/// `policy.overprovisioning_factor` of an assignment (its schema requires it above 0).
pub fn overprovisioning_factor(la: &ClusterLoadAssignment) -> u32 {
    la.policy
        .as_ref()
        .and_then(|p| p.overprovisioning_factor.as_ref())
        .map_or(DEFAULT_OVERPROVISIONING_FACTOR, |f| f.value)
}

/// The endpoints of an assignment (a cluster's `load_assignment`, or an EDS
/// resource), in order; `path` points at the assignment. A STATIC or EDS
/// cluster's endpoints are IP addresses, a DNS cluster's names to resolve.
pub fn assignment_endpoints(
    la: &ClusterLoadAssignment,
    path: &FieldPath,
    discovery: DiscoveryType,
) -> Result<Vec<ConfiguredEndpoint>, ConfigError> {
    let mut out = Vec::new();
    for (i, locality) in la.endpoints.iter().enumerate() {
        let mut locality_weight: u64 = 0;
        let named = locality.locality.as_ref().map(|l| {
            Arc::new(Locality { region: l.region.clone(), zone: l.zone.clone(), sub_zone: l.sub_zone.clone() })
        });
        for (j, lb_endpoint) in locality.lb_endpoints.iter().enumerate() {
            let p = format!("{path}.endpoints[{i}].lb_endpoints[{j}]");
            let weight = lb_endpoint.load_balancing_weight.as_ref().map_or(1, |w| w.value);
            if weight == 0 {
                return Err(ConfigError::new(
                    format!("{p}.load_balancing_weight"),
                    "value must be greater than or equal to 1",
                ));
            }
            locality_weight += u64::from(weight);
            if locality_weight > u64::from(u32::MAX) {
                return Err(ConfigError::new(
                    format!("{path}.endpoints[{i}]"),
                    "the sum of the load_balancing_weight of a locality's endpoints must not exceed 4294967295",
                ));
            }
            refuse_canary(lb_endpoint, &p)?;
            let endpoint = match &lb_endpoint.host_identifier {
                Some(envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(e)) => e,
                _ => return Err(ConfigError::new(p, "an endpoint is required")),
            };
            let addr = endpoint
                .address
                .as_ref()
                .ok_or_else(|| ConfigError::new(format!("{p}.endpoint"), "address is required"))?;
            let (host, port) = socket_address(addr, &FieldPath::starting_at(&format!("{p}.endpoint.address")))?;
            let parsed = host.parse::<IpAddr>();
            let address = match (discovery, parsed) {
                (DiscoveryType::Static | DiscoveryType::Eds, Ok(ip)) => EndpointAddress::Ip(SocketAddr::new(ip, port)),
                (DiscoveryType::Static | DiscoveryType::Eds, Err(_)) => {
                    return Err(ConfigError::new(
                        format!("{p}.endpoint.address.socket_address.address"),
                        format!(
                            "'{host}' is not an IP address; a {} cluster needs IP addresses (use STRICT_DNS for names)",
                            discovery.envoy_name()
                        ),
                    ))
                }
                (_, _) => EndpointAddress::Dns { name: host, port },
            };
            out.push(ConfiguredEndpoint {
                address,
                hostname: endpoint.hostname.clone(),
                weight,
                health: EdsHealth::from_proto(lb_endpoint.health_status),
                ipv4_compat: ipv4_compat(addr),
                locality: named.clone(),
                priority: locality.priority,
                locality_weight: locality.load_balancing_weight.map_or(0, |w| w.value),
                health_check: health_check_target(endpoint, &p)?,
                metadata: metadata_json(lb_endpoint),
            });
        }
    }
    Ok(out)
}

/// An endpoint's `health_check_config`; its `address` must be an IP address
/// (Envoy resolves it at once, without DNS).
fn health_check_target(endpoint: &Endpoint, path: &str) -> Result<HealthCheckTarget, ConfigError> {
    let Some(hc) = &endpoint.health_check_config else { return Ok(HealthCheckTarget::default()) };
    let p = FieldPath::starting_at(&format!("{path}.endpoint.health_check_config"));
    let address = match &hc.address {
        None => None,
        Some(a) => {
            let (host, port) = socket_address(a, &p.child("address"))?;
            let ip = host.parse::<IpAddr>().map_err(|_| {
                p.field_error(
                    "address",
                    format!("'{host}' is not an IP address (a health check address is not resolved)"),
                )
            })?;
            Some(SocketAddr::new(ip, port))
        }
    };
    let port = u16::try_from(hc.port_value)
        .map_err(|_| p.field_error("port_value", "value must be less than or equal to 65535"))?;
    Ok(HealthCheckTarget { address, port, hostname: hc.hostname.clone(), disabled: hc.disable_active_health_check })
}

/// An endpoint's `metadata`, when set, as Envoy's protobuf JSON prints it with
/// primitive fields (health check event logs): namespaces and keys sorted (Envoy's
/// order is its hash maps'), `typed_filter_metadata` empty (Courier refuses it).
fn metadata_json(lb_endpoint: &LbEndpoint) -> Option<Arc<str>> {
    let metadata = lb_endpoint.metadata.as_ref()?;
    let mut namespaces: Vec<_> = metadata.filter_metadata.iter().collect();
    namespaces.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::from("{\"filter_metadata\":{");
    for (i, (name, value)) in namespaces.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::common::json::escape_into(name, &mut out);
        out.push(':');
        crate::common::dynamic_metadata::write_struct_json(value, &mut out);
    }
    out.push_str("},\"typed_filter_metadata\":{}}");
    Some(out.into())
}

/// Refuses an endpoint whose `metadata` marks it a canary (`envoy.lb` `canary: true`):
/// Envoy then shows it as one in `/clusters` and counts its responses again in
/// `cluster.<name>.canary.*`, which Courier does not. Nothing else in `metadata`
/// acts without features Courier refuses (see `NO_EFFECT`).
fn refuse_canary(lb_endpoint: &LbEndpoint, path: &str) -> Result<(), ConfigError> {
    let canary = lb_endpoint
        .metadata
        .as_ref()
        .and_then(|m| m.filter_metadata.get("envoy.lb"))
        .and_then(|s| s.fields.get("canary"))
        .and_then(|v| v.kind.as_ref());
    match canary {
        Some(Kind::BoolValue(true)) => Err(ConfigError::new(
            format!("{path}.metadata.filter_metadata[\"envoy.lb\"].canary"),
            "canary hosts are not supported by Courier (Envoy shows them in /clusters and counts their \
             responses in canary.* stats)",
        )),
        // Envoy reads it as a bool: anything else is not a canary.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::supported::{Inventory, PLACES, SUPPORTED_FIELDS};
    use crate::config::{load_bootstrap, BootstrapSource};
    use crate::upstream::host::Host;

    /// The bootstrap's tables and the extension types a cluster names itself (its
    /// protocol options and load-balancing policies): what the cluster tests load
    /// against, with no listener or filter extension.
    const CLUSTER_INVENTORY: Inventory = Inventory {
        tables: &[SUPPORTED_FIELDS],
        places: PLACES,
        is_extension: |t| [HTTP_PROTOCOL_OPTIONS_TYPE, ROUND_ROBIN_TYPE, LEAST_REQUEST_TYPE, RANDOM_TYPE].contains(&t),
        skips_lb_policy: |t| lb_policy_choice(t) == LbPolicyChoice::Skip,
    };

    /// Loads `static_resources.clusters` from YAML through every config check, and
    /// builds the first cluster.
    fn load(clusters_yaml: &str) -> Result<ClusterInfo, ConfigError> {
        let source = BootstrapSource {
            config_yaml: Some(format!("static_resources:\n  clusters:\n{clusters_yaml}")),
            ..Default::default()
        };
        let loaded = load_bootstrap(&source, &CLUSTER_INVENTORY)?;
        let c = &loaded.bootstrap.static_resources.as_ref().expect("static_resources").clusters[0];
        ClusterInfo::from_proto(c, &FieldPath::starting_at("static_resources.clusters[0]"), &Arc::new(Store::new()))
    }

    fn cluster(kind: &str, extra: &str, endpoints: &[(&str, Option<u32>)]) -> String {
        let endpoints: String = endpoints
            .iter()
            .map(|(addr, w)| {
                let (host, port) = addr.rsplit_once(':').expect("host:port");
                let weight = w.map(|w| format!(", load_balancing_weight: {w}")).unwrap_or_default();
                format!("        - {{ endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }}{weight} }}\n")
            })
            .collect();
        format!("  - name: c\n    type: {kind}\n    connect_timeout: 1s\n{extra}    load_assignment:\n      cluster_name: c\n      endpoints:\n      - lb_endpoints:\n{endpoints}")
    }

    fn error(yaml: &str) -> String {
        load(yaml).map(|_| ()).expect_err("config was accepted").to_string()
    }

    #[test]
    fn upstream_lb_policies_are_parsed() {
        let eps = [("127.0.0.1:1", None)];
        assert_eq!(load(&cluster("STATIC", "", &eps)).unwrap().lb_policy, LbPolicy::RoundRobin);
        assert_eq!(load(&cluster("STATIC", "    lb_policy: RANDOM\n", &eps)).unwrap().lb_policy, LbPolicy::Random);
        assert_eq!(
            load(&cluster("STATIC", "    lb_policy: LEAST_REQUEST\n", &eps)).unwrap().lb_policy,
            LbPolicy::LeastRequest { choice_count: 2, active_request_bias: 1.0, active_request_bias_key: None }
        );
        let lr = "    lb_policy: LEAST_REQUEST\n    least_request_lb_config:\n      choice_count: 5\n      active_request_bias: { default_value: 0.5, runtime_key: lb.bias }\n";
        assert_eq!(
            load(&cluster("STATIC", lr, &eps)).unwrap().lb_policy,
            LbPolicy::LeastRequest {
                choice_count: 5,
                active_request_bias: 0.5,
                active_request_bias_key: Some("lb.bias")
            }
        );
    }

    /// `use_downstream_protocol_config` speaks HTTP/2 upstream for an HTTP/2
    /// request (with its `http2_protocol_options`), HTTP/1.1 otherwise; an
    /// `http_protocol_options: {}` beside it changes nothing upstream.
    #[test]
    fn use_downstream_protocol_config_follows_the_request_version() {
        let eps = [("127.0.0.1:1", None)];
        let options = "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        use_downstream_protocol_config:\n          http_protocol_options: {}\n          http2_protocol_options: { max_concurrent_streams: 10 }\n";
        let c = load(&cluster("STATIC", options, &eps)).unwrap();
        assert_eq!(c.upstream_protocol, UpstreamProtocol::UseDownstream);
        assert_eq!(c.protocol_for(http::Version::HTTP_2), UpstreamProtocol::Http2);
        assert_eq!(c.protocol_for(http::Version::HTTP_11), UpstreamProtocol::Http1);
        assert_eq!(c.protocol_for(http::Version::HTTP_10), UpstreamProtocol::Http1);
        assert_eq!(c.http2_options.max_concurrent_streams, 10);
        // The deprecated protocol_selection does the same, with the cluster's
        // http2_protocol_options (Envoy's defaults when absent).
        let deprecated = "    protocol_selection: USE_DOWNSTREAM_PROTOCOL\n";
        let c = load(&cluster("STATIC", deprecated, &eps)).unwrap();
        assert_eq!(c.protocol_for(http::Version::HTTP_2), UpstreamProtocol::Http2);
        assert_eq!(c.http2_options, Http2Options::default());
        let plain = load(&cluster("STATIC", "", &eps)).unwrap();
        assert_eq!(plain.protocol_for(http::Version::HTTP_2), UpstreamProtocol::Http1);
    }

    #[test]
    fn upstream_lb_config_errors_name_the_field() {
        let eps = [("127.0.0.1:1", None)];
        let cases = [
            (
                "    lb_policy: MAGLEV\n",
                "static_resources.clusters[0].lb_policy: load balancing policy MAGLEV is not supported",
            ),
            ("    lb_policy: RING_HASH\n", "static_resources.clusters[0].lb_policy: load balancing policy RING_HASH"),
            (
                "    least_request_lb_config: { choice_count: 3 }\n",
                "static_resources.clusters[0].least_request_lb_config: least_request_lb_config is only used with lb_policy LEAST_REQUEST",
            ),
            (
                "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 1 }\n",
                "static_resources.clusters[0].least_request_lb_config.choice_count",
            ),
            (
                "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { active_request_bias: { default_value: -1, runtime_key: k } }\n",
                "static_resources.clusters[0].least_request_lb_config.active_request_bias.default_value: active_request_bias must be a finite number >= 0.0",
            ),
            (
                "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { slow_start_config: { slow_start_window: 1s } }\n",
                "static_resources.clusters[0].least_request_lb_config.slow_start_config: field 'slow_start_config'",
            ),
            (
                "    round_robin_lb_config: {}\n",
                "static_resources.clusters[0].round_robin_lb_config: field 'round_robin_lb_config'",
            ),
        ];
        for (extra, expected) in cases {
            let e = error(&cluster("STATIC", extra, &eps));
            assert!(e.contains(expected), "expected `{expected}` in `{e}`");
        }
    }

    #[test]
    fn upstream_endpoint_weights_are_parsed_and_checked() {
        let info = load(&cluster("STATIC", "", &[("127.0.0.1:1", Some(3)), ("127.0.0.1:2", None)])).unwrap();
        assert_eq!(info.endpoints.iter().map(|e| e.weight).collect::<Vec<_>>(), vec![3, 1]);
        let e = error(&cluster("STATIC", "", &[("127.0.0.1:1", Some(0))]));
        assert!(
            e.starts_with(
                "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight"
            ),
            "{e}"
        );
        let e = error(&cluster("STATIC", "", &[("127.0.0.1:1", Some(u32::MAX)), ("127.0.0.1:2", Some(1))]));
        assert!(e.starts_with("static_resources.clusters[0].load_assignment.endpoints[0]: the sum"), "{e}");
        // A locality's weight, read with locality weighted load balancing.
        let yaml = cluster("STATIC", "", &[("127.0.0.1:1", None)])
            .replace("      - lb_endpoints:", "      - load_balancing_weight: 2\n        lb_endpoints:");
        let info = load(&yaml).expect("a locality weight");
        assert_eq!((info.endpoints[0].locality_weight, info.locality_weighted), (2, false));
        let weighted = yaml.replace(
            "    load_assignment:",
            "    common_lb_config: { locality_weighted_lb_config: {} }\n    load_assignment:",
        );
        assert!(load(&weighted).expect("locality weighted").locality_weighted);
    }

    /// `load_balancing_policy` with these `policies` entries (YAML flow maps of
    /// `typed_config`), beside `extra` cluster fields.
    fn typed_policies(extra: &str, configs: &[&str]) -> String {
        let policies: String = configs
            .iter()
            .map(|c| format!("      - typed_extension_config: {{ name: p, typed_config: {c} }}\n"))
            .collect();
        let extra = format!("{extra}    load_balancing_policy:\n      policies:\n{policies}");
        cluster("STATIC", &extra, &[("127.0.0.1:1", None)])
    }

    const RR: &str =
        r#"{ "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin }"#;
    const STRUCT: &str = r#"{ "@type": type.googleapis.com/google.protobuf.Struct, value: {} }"#;

    #[test]
    fn load_balancing_policy_takes_the_first_policy_envoy_implements() {
        // A type with no load balancer is skipped; `lb_policy` and
        // `least_request_lb_config` are then ignored, as in Envoy.
        let info = load(&typed_policies(
            "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 9 }\n",
            &[STRUCT, RR],
        ))
        .expect("skips the Struct");
        assert_eq!((info.lb_policy, info.locality_weighted), (LbPolicy::RoundRobin, false));
        let lr = r#"{ "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest, choice_count: 3, active_request_bias: { default_value: 0.5 } }"#;
        // Policies after the chosen one are never read, whatever they hold.
        let maglev = r#"{ "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin, slow_start_config: {} }"#;
        let info = load(&typed_policies("", &[lr, maglev])).expect("least request");
        assert_eq!(
            info.lb_policy,
            LbPolicy::LeastRequest { choice_count: 3, active_request_bias: 0.5, active_request_bias_key: None }
        );
        let random = r#"{ "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.random.v3.Random, locality_lb_config: { locality_weighted_lb_config: {} } }"#;
        let info = load(&typed_policies("", &[random])).expect("random");
        assert_eq!((info.lb_policy, info.locality_weighted), (LbPolicy::Random, true));
        let locality = "locality_lb_config: { locality_weighted_lb_config: {} } }";
        let rr = RR.replace(" }", &format!(", {locality}"));
        assert!(load(&typed_policies("", &[&rr])).expect("round robin").locality_weighted);
        let lr = lr.replace(" } }", &format!(" }}, {locality}"));
        assert!(load(&typed_policies("", &[&lr])).expect("least request").locality_weighted);
    }

    #[test]
    fn load_balancing_policy_refuses_what_courier_cannot_honour() {
        let at = "static_resources.clusters[0].load_balancing_policy.policies";
        let e = error(&typed_policies("", &[STRUCT]));
        assert!(e.contains("load_balancing_policy.policies: no load balancing policy Envoy implements"), "{e}");
        let e = error(&typed_policies("", &[]));
        assert!(e.contains("no load balancing policy Envoy implements"), "{e}");
        let maglev = r#"{ "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.maglev.v3.Maglev }"#;
        let e = error(&typed_policies("", &[STRUCT, maglev, RR]));
        assert!(e.starts_with(&format!("{at}[1].typed_extension_config.typed_config.@type")), "{e}");
        let slow = RR.replace(" }", ", slow_start_config: { slow_start_window: 1s } }");
        let e = error(&typed_policies("", &[&slow]));
        assert!(e.starts_with(&format!("{at}[0].typed_extension_config.typed_config.slow_start_config")), "{e}");
        // Zone awareness is read; weighing localities by host weights is not.
        let zone = RR.replace(" }", ", locality_lb_config: { zone_aware_lb_config: { min_cluster_size: 1, force_local_zone: { min_size: 2 } } } }");
        let config = load(&typed_policies("", &[&zone])).expect("zone aware").zone_aware;
        assert_eq!((config.min_cluster_size, config.force_local_zone_min_size), (1, Some(2)));
        let forced = RR
            .replace(" }", ", locality_lb_config: { zone_aware_lb_config: { force_locality_direct_routing: true } } }");
        assert_eq!(
            load(&typed_policies("", &[&forced])).expect("forced").zone_aware.force_local_zone_min_size,
            Some(1)
        );
        let by_weight = RR.replace(
            " }",
            ", locality_lb_config: { zone_aware_lb_config: { locality_basis: HEALTHY_HOSTS_WEIGHT } } }",
        );
        let e = error(&typed_policies("", &[&by_weight]));
        assert!(e.contains("locality_lb_config.zone_aware_lb_config.locality_basis"), "{e}");
        let lr = r#"{ "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest, choice_count: 1 }"#;
        let e = error(&typed_policies("", &[lr]));
        assert!(e.starts_with(&format!("{at}[0].typed_extension_config.typed_config.choice_count")), "{e}");
        let e = error(&typed_policies("    common_lb_config: { locality_weighted_lb_config: {} }\n", &[RR]));
        assert!(e.starts_with("static_resources.clusters[0].common_lb_config.locality_weighted_lb_config"), "{e}");
    }

    #[tokio::test]
    async fn tcp_keepalive_is_set_on_upstream_connections() {
        use crate::upstream::upstream_connection::UpstreamConnection;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let eps = [(addr.as_str(), None)];
        let keepalive = "    upstream_connection_options:\n      tcp_keepalive: { keepalive_probes: 3, keepalive_time: 70, keepalive_interval: 9 }\n";
        let info = Arc::new(load(&cluster("STATIC", keepalive, &eps)).expect("tcp_keepalive"));
        let host = Host::new(listener.local_addr().expect("addr"), String::new(), 1);
        let conn = UpstreamConnection::connect(&info, &host).await.expect("connect");
        let sock = socket2::SockRef::from(conn.stream.tcp().expect("a TCP transport"));
        assert!(sock.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(sock.tcp_keepalive_retries().expect("TCP_KEEPCNT"), 3);
        assert_eq!(sock.tcp_keepalive_time().expect("TCP_KEEPIDLE"), Duration::from_secs(70));
        assert_eq!(sock.tcp_keepalive_interval().expect("TCP_KEEPINTVL"), Duration::from_secs(9));
        drop(conn);

        // Only what is set is changed: the interval and probes stay the system's.
        let only_time = "    upstream_connection_options: { tcp_keepalive: { keepalive_time: 30 } }\n";
        let info = Arc::new(load(&cluster("STATIC", only_time, &eps)).expect("keepalive_time only"));
        let conn = UpstreamConnection::connect(&info, &host).await.expect("connect");
        let plain = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("plain");
        let sock = socket2::SockRef::from(conn.stream.tcp().expect("a TCP transport"));
        let default = socket2::SockRef::from(&plain);
        assert!(sock.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(sock.tcp_keepalive_time().expect("TCP_KEEPIDLE"), Duration::from_secs(30));
        assert_eq!(sock.tcp_keepalive_interval().ok(), default.tcp_keepalive_interval().ok());
        assert_eq!(sock.tcp_keepalive_retries().ok(), default.tcp_keepalive_retries().ok());
        drop(conn);

        // Without tcp_keepalive, no SO_KEEPALIVE (the system's default).
        let info = Arc::new(load(&cluster("STATIC", "", &eps)).expect("plain"));
        let conn = UpstreamConnection::connect(&info, &host).await.expect("connect");
        assert!(!socket2::SockRef::from(conn.stream.tcp().expect("a TCP transport"))
            .keepalive()
            .expect("SO_KEEPALIVE"));
    }

    #[test]
    fn tcp_keepalive_values_linux_refuses_are_refused_and_0_turns_it_off() {
        let eps = [("127.0.0.1:1", None)];
        let keepalive = |k: &str| format!("    upstream_connection_options: {{ tcp_keepalive: {{ {k} }} }}\n");
        for (field, v) in [("keepalive_probes", 128), ("keepalive_time", 32768), ("keepalive_interval", 32768)] {
            let e = error(&cluster("STATIC", &keepalive(&format!("{field}: {v}")), &eps));
            assert!(
                e.starts_with(&format!(
                    "static_resources.clusters[0].upstream_connection_options.tcp_keepalive.{field}: {v} is above"
                )),
                "{e}"
            );
        }
        for off in ["keepalive_probes: 0", "keepalive_time: 0, keepalive_interval: 5", "keepalive_interval: 0"] {
            assert_eq!(load(&cluster("STATIC", &keepalive(off), &eps)).expect(off).tcp_keepalive, None, "{off}");
        }
        let all_default = load(&cluster("STATIC", &keepalive(""), &eps)).expect("{}").tcp_keepalive;
        assert_eq!(all_default, Some(TcpKeepalive::default()));
        let extra = "    upstream_connection_options: { set_local_interface_name_on_upstream_connections: true }\n";
        assert!(
            error(&cluster("STATIC", extra, &eps)).contains("field 'set_local_interface_name_on_upstream_connections'")
        );
    }

    #[test]
    fn endpoint_metadata_is_kept_out_of_the_way_but_a_canary_is_refused() {
        let with = |metadata: &str| {
            cluster("STATIC", "", &[("127.0.0.1:1", None)])
                .replace(" } } } }\n", &format!(" }} }} }}, metadata: {{ filter_metadata: {metadata} }} }}\n"))
        };
        load(&with("{ envoy.lb: { canary: false, hash_key: h }, acme: { team: a } }")).expect("metadata");
        load(&with("{ envoy.lb: { canary: \"true\" } }")).expect("a string is not a canary, as in Envoy");
        let e = error(&with("{ envoy.lb: { canary: true } }"));
        assert!(
            e.starts_with(
                "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].metadata.filter_metadata[\"envoy.lb\"].canary: canary hosts"
            ),
            "{e}"
        );
        let e = error(&cluster("STATIC", "", &[("127.0.0.1:1", None)]).replace(
            " } } } }\n",
            " } } }, metadata: { typed_filter_metadata: { a: { \"@type\": type.googleapis.com/google.protobuf.Struct, value: {} } } } }\n",
        ));
        assert!(e.contains("field 'typed_filter_metadata'"), "{e}");
    }

    #[test]
    fn dns_failure_refresh_rate_is_read_in_milliseconds_and_checked() {
        let eps = [("localhost:1", None)];
        let rate = |r: &str| format!("    dns_failure_refresh_rate: {r}\n");
        let info = load(&cluster("STRICT_DNS", &rate("{ base_interval: 1.5s, max_interval: 4.0009s }"), &eps));
        let ms = Duration::from_millis;
        assert_eq!(info.expect("rate").dns_failure_refresh_rate, Some((ms(1500), ms(4000))));
        let info = load(&cluster("STRICT_DNS", &rate("{ base_interval: 0.2s }"), &eps)).expect("default max");
        assert_eq!(info.dns_failure_refresh_rate, Some((ms(200), ms(2000))));
        let e = error(&cluster("STRICT_DNS", &rate("{ base_interval: 7s, max_interval: 2s }"), &eps));
        assert_eq!(
            e,
            "static_resources.clusters[0].dns_failure_refresh_rate: dns_failure_refresh_rate must have \
             max_interval greater than or equal to the base_interval"
        );
        let e = error(&cluster("STRICT_DNS", &rate("{ max_interval: 2s }"), &eps));
        assert!(e.starts_with("static_resources.clusters[0].dns_failure_refresh_rate.base_interval"), "{e}");
    }

    #[test]
    fn common_lb_config_takes_the_panic_threshold_locality_weighting_and_zone_awareness_only() {
        let eps = [("127.0.0.1:1", None)];
        load(&cluster("STATIC", "    common_lb_config: { healthy_panic_threshold: { value: 30 } }\n", &eps))
            .expect("healthy_panic_threshold");
        let e = error(&cluster("STATIC", "    common_lb_config: { healthy_panic_threshold: { value: 130 } }\n", &eps));
        assert!(e.contains("common_lb_config.healthy_panic_threshold.value"), "{e}");
        let zone = "    common_lb_config: { zone_aware_lb_config: { routing_enabled: { value: 49.5 }, min_cluster_size: 2, fail_traffic_on_panic: true } }\n";
        let expected = ZoneAwareConfig {
            routing_enabled: 50,
            min_cluster_size: 2,
            fail_traffic_on_panic: true,
            force_local_zone_min_size: None,
        };
        assert_eq!(load(&cluster("STATIC", zone, &eps)).expect("zone aware").zone_aware, expected);
        assert_eq!(load(&cluster("STATIC", "", &eps)).expect("plain").zone_aware, ZoneAwareConfig::default());
        let e = error(&cluster("STATIC", &zone.replace("49.5", "101"), &eps));
        assert!(e.contains("common_lb_config.zone_aware_lb_config.routing_enabled.value"), "{e}");
        for field in ["ignore_new_hosts_until_first_hc: true", "update_merge_window: 1s"] {
            let e = error(&cluster("STATIC", &format!("    common_lb_config: {{ {field} }}\n"), &eps));
            let name = field.split(':').next().unwrap_or_default();
            assert!(e.contains(&format!("common_lb_config.{name}: field '{name}'")), "{e}");
        }
    }

    #[test]
    fn an_eds_cluster_needs_its_eds_config_and_nothing_else_reads_one() {
        let file = std::env::temp_dir().join(format!("courier-eds-config-{}.yaml", std::process::id()));
        std::fs::write(&file, "resources: []\n").expect("write");
        let eds = format!("    eds_cluster_config: {{ eds_config: {{ path: {} }} }}\n", file.display());
        let eds = eds.as_str();
        let cluster =
            |kind: &str, extra: &str| format!("  - name: c\n    type: {kind}\n    connect_timeout: 1s\n{extra}");
        let info = load(&cluster("EDS", eds)).expect("an EDS cluster");
        assert_eq!(info.discovery, DiscoveryType::Eds);
        let config = info.eds.expect("eds");
        // Without a service_name, the assignment is the cluster's own name's.
        let Source::Path(source) = &config.source.source else { panic!("a file source") };
        assert_eq!((&source.path, config.service_name.as_str()), (&file, "c"));
        let errors = [
            (cluster("EDS", ""), "eds_cluster_config: cannot create an EDS cluster without an EDS config"),
            (
                cluster("EDS", "    eds_cluster_config: { service_name: s }\n"),
                "eds_cluster_config.eds_config: cannot create an EDS cluster without an EDS config",
            ),
            (
                cluster("EDS", &format!("{eds}    load_assignment: {{ cluster_name: c }}\n")),
                "load_assignment: an EDS cluster takes its endpoints from eds_cluster_config",
            ),
            (cluster("STATIC", eds), "eds_cluster_config: only an EDS cluster reads eds_cluster_config"),
            // As Envoy 1.40: the file must be there.
            (
                cluster("EDS", "    eds_cluster_config: { eds_config: { path: /nonexistent/eds.yaml } }\n"),
                "eds_cluster_config.eds_config: paths must refer to an existing path in the system: \
                 '/nonexistent/eds.yaml' does not exist",
            ),
        ];
        for (yaml, want) in errors {
            let e = load(&yaml).map(|_| ()).expect_err(want).to_string();
            assert!(e.starts_with(&format!("static_resources.clusters[0].{want}")), "{e}");
        }
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn original_dst_destination_is_the_header_else_the_restored_address_with_the_port_overridden() {
        use super::super::original_dst::LbContext;
        let yaml = "  - name: od\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    original_dst_lb_config: { use_http_header: true, http_header_name: X-Dst }\n";
        let info = load(yaml).unwrap();
        let od = info.original_dst.as_ref().unwrap();
        let restored: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        fn ctx(headers: &http::HeaderMap) -> LbContext<'_> {
            LbContext { restored_local: Some(SocketAddr::from(([10, 0, 0, 1], 80))), headers: Some(headers) }
        }
        assert_eq!(od.destination(&info, &ctx(&headers)), Some(restored));
        // The first value only; IPv6 in brackets.
        headers.append("x-dst", http::HeaderValue::from_static("[::1]:8443"));
        headers.append("x-dst", http::HeaderValue::from_static("10.9.9.9:1"));
        assert_eq!(od.destination(&info, &ctx(&headers)), Some("[::1]:8443".parse().unwrap()));
        // No port, or a name: counted, and the restored address is used.
        for bad in ["10.0.0.2", "host.example:80"] {
            headers.insert("x-dst", http::HeaderValue::from_static(bad));
            assert_eq!(od.destination(&info, &ctx(&headers)), Some(restored));
        }
        assert_eq!(info.stats.original_dst_host_invalid.value(), 2);
        assert_eq!(od.destination(&info, &LbContext::default()), None);

        let yaml = "  - name: od\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    cleanup_interval: 2s\n    original_dst_lb_config: { upstream_port_override: 9000 }\n";
        let info = load(yaml).unwrap();
        let od = info.original_dst.as_ref().unwrap();
        assert_eq!(od.cleanup_interval, Duration::from_secs(2));
        let ctx = LbContext { restored_local: Some(restored), headers: None };
        assert_eq!(od.destination(&info, &ctx), Some("10.0.0.1:9000".parse().unwrap()));
    }
}
