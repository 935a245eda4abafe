//! A cluster's static description (`ClusterInfo`), built once from config and shared
//! read-only by every thread, and the endpoints it starts from.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType as PbDiscoveryType, DnsLookupFamily as PbDnsLookupFamily,
    LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address};

use crate::config::{self, ConfigError, FieldPath};
use crate::define_stats;
use crate::stats::Store;

/// Envoy's default `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default `dns_refresh_rate`.
const DEFAULT_DNS_REFRESH_RATE: Duration = Duration::from_millis(5000);
/// Envoy's default `per_connection_buffer_limit_bytes`.
pub const DEFAULT_BUFFER_LIMIT: u32 = 1024 * 1024;

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
        counter membership_change,
        counter update_attempt,
        counter update_success,
        counter update_failure,
        counter update_empty,
        counter update_no_rebuild,
        gauge upstream_cx_active,
        gauge membership_healthy,
        gauge membership_degraded,
        gauge membership_excluded,
        gauge membership_total,
        gauge max_host_weight,
    }
}

/// How a cluster finds its hosts (`Cluster.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryType {
    Static,
    StrictDns,
    LogicalDns,
}

impl DiscoveryType {
    pub fn envoy_name(self) -> &'static str {
        match self {
            DiscoveryType::Static => "STATIC",
            DiscoveryType::StrictDns => "STRICT_DNS",
            DiscoveryType::LogicalDns => "LOGICAL_DNS",
        }
    }
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

/// A configured endpoint before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddress {
    Ip(SocketAddr),
    Dns { name: String, port: u16 },
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
    pub dns_lookup_family: DnsLookupFamily,
    pub endpoints: Vec<EndpointAddress>,
    pub stats: ClusterStats,
}

impl ClusterInfo {
    /// Builds a cluster from `static_resources.clusters[i]`; `path` points at it.
    pub fn from_proto(
        c: &Cluster,
        path: &FieldPath,
        store: &Store,
    ) -> Result<ClusterInfo, ConfigError> {
        let discovery = match &c.cluster_discovery_type {
            None => DiscoveryType::Static,
            Some(ClusterDiscoveryType::Type(t)) => match PbDiscoveryType::try_from(*t) {
                Ok(PbDiscoveryType::Static) => DiscoveryType::Static,
                Ok(PbDiscoveryType::StrictDns) => DiscoveryType::StrictDns,
                Ok(PbDiscoveryType::LogicalDns) => DiscoveryType::LogicalDns,
                Ok(other) => {
                    return Err(path.field_error(
                        "type",
                        format!("cluster type {} is not supported by Courier (STATIC, STRICT_DNS, LOGICAL_DNS are)", other.as_str_name()),
                    ))
                }
                Err(_) => return Err(path.field_error("type", format!("unknown cluster type {t}"))),
            },
            Some(ClusterDiscoveryType::ClusterType(_)) => {
                return Err(path.field_error("cluster_type", "custom cluster types are not supported by Courier"))
            }
        };
        match LbPolicy::try_from(c.lb_policy) {
            Ok(LbPolicy::RoundRobin) => {}
            Ok(other) => {
                return Err(path.field_error(
                    "lb_policy",
                    format!(
                        "load balancing policy {} is not supported by Courier yet (ROUND_ROBIN is)",
                        other.as_str_name()
                    ),
                ))
            }
            Err(_) => {
                return Err(
                    path.field_error("lb_policy", format!("unknown lb_policy {}", c.lb_policy))
                )
            }
        }
        let dns_lookup_family = match PbDnsLookupFamily::try_from(c.dns_lookup_family) {
            Ok(PbDnsLookupFamily::Auto) | Err(_) => DnsLookupFamily::Auto,
            Ok(PbDnsLookupFamily::V4Only) => DnsLookupFamily::V4Only,
            Ok(PbDnsLookupFamily::V6Only) => DnsLookupFamily::V6Only,
            Ok(PbDnsLookupFamily::V4Preferred) => DnsLookupFamily::V4Preferred,
            Ok(PbDnsLookupFamily::All) => DnsLookupFamily::All,
        };
        let endpoints = endpoints(c, path, discovery)?;
        // Deprecated in favour of the DnsCluster extension, still honoured by Envoy.
        #[allow(deprecated)]
        let dns_refresh_rate = config::duration_or(&c.dns_refresh_rate, DEFAULT_DNS_REFRESH_RATE);
        let stat_name = if c.alt_stat_name.is_empty() {
            c.name.clone()
        } else {
            c.alt_stat_name.clone()
        };
        Ok(ClusterInfo {
            name: c.name.clone(),
            stats: ClusterStats::new(store, &format!("cluster.{stat_name}.")),
            stat_name,
            discovery,
            connect_timeout: config::duration_or(&c.connect_timeout, DEFAULT_CONNECT_TIMEOUT),
            per_connection_buffer_limit_bytes: c
                .per_connection_buffer_limit_bytes
                .as_ref()
                .map(|v| v.value)
                .unwrap_or(DEFAULT_BUFFER_LIMIT),
            dns_refresh_rate,
            dns_lookup_family,
            endpoints,
        })
    }
}

fn endpoints(
    c: &Cluster,
    path: &FieldPath,
    discovery: DiscoveryType,
) -> Result<Vec<EndpointAddress>, ConfigError> {
    let mut out = Vec::new();
    let Some(la) = &c.load_assignment else {
        return Ok(out);
    };
    for (i, locality) in la.endpoints.iter().enumerate() {
        for (j, lb_endpoint) in locality.lb_endpoints.iter().enumerate() {
            let p = format!("{path}.load_assignment.endpoints[{i}].lb_endpoints[{j}]");
            let endpoint = match &lb_endpoint.host_identifier {
                Some(envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(e)) => e,
                _ => return Err(ConfigError::new(p, "an endpoint is required")),
            };
            let addr = endpoint
                .address
                .as_ref()
                .ok_or_else(|| ConfigError::new(format!("{p}.endpoint"), "address is required"))?;
            let (host, port) = socket_address(
                addr,
                &FieldPath::starting_at(&format!("{p}.endpoint.address")),
            )?;
            let parsed = host.parse::<IpAddr>();
            out.push(match (discovery, parsed) {
                (DiscoveryType::Static, Ok(ip)) => EndpointAddress::Ip(SocketAddr::new(ip, port)),
                (DiscoveryType::Static, Err(_)) => {
                    return Err(ConfigError::new(
                        format!("{p}.endpoint.address.socket_address.address"),
                        format!("'{host}' is not an IP address; a STATIC cluster needs IP addresses (use STRICT_DNS for names)"),
                    ))
                }
                (_, _) => EndpointAddress::Dns { name: host, port },
            });
        }
    }
    if discovery == DiscoveryType::LogicalDns && out.len() != 1 {
        return Err(path.field_error(
            "load_assignment",
            "LOGICAL_DNS clusters must have exactly one endpoint",
        ));
    }
    Ok(out)
}

/// The `(address, port)` of an `Address` that must be a TCP socket address.
pub fn socket_address(addr: &Address, path: &FieldPath) -> Result<(String, u16), ConfigError> {
    match &addr.address {
        Some(address::Address::SocketAddress(sa)) => {
            if socket_address::Protocol::try_from(sa.protocol) != Ok(socket_address::Protocol::Tcp)
            {
                return Err(path.field_error(
                    "socket_address.protocol",
                    "only TCP is supported by Courier",
                ));
            }
            let port = match &sa.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) => {
                    u16::try_from(*p).map_err(|_| {
                        path.field_error(
                            "socket_address.port_value",
                            format!("port {p} is out of range"),
                        )
                    })?
                }
                Some(socket_address::PortSpecifier::NamedPort(_)) => {
                    return Err(path
                        .field_error("socket_address.named_port", "named ports are not supported"))
                }
                None => 0,
            };
            Ok((sa.address.clone(), port))
        }
        Some(_) => Err(path.error("only socket_address is supported by Courier")),
        None => Err(path.error("an address is required")),
    }
}
