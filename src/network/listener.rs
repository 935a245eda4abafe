//! A listener's configuration, checked and built from `static_resources.listeners[i]`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3::{
    self as listener_pb, filter, listener_filter, Filter as FilterPb, Listener,
};

use super::address::{ipv4_compat, socket_address};
use super::connection::DEFAULT_BUFFER_LIMIT;
use super::filter::{FilterChain, ListenerScope, NetworkFilter, NetworkFilterBuilder};
use super::filter_chain_match::FilterChainMatcher;
use super::listener_filter::ListenerFilterFactory;
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::stats::Store;

define_stats! {
    /// `listener.<address>.*`
    #[derive(Debug)]
    pub struct ListenerStats {
        counter downstream_cx_total,
        counter downstream_cx_destroy,
        counter downstream_cx_overflow,
        counter downstream_cx_transport_socket_connect_timeout,
        counter downstream_cx_overload_reject,
        counter downstream_global_cx_overflow,
        counter downstream_pre_cx_timeout,
        counter no_filter_chain_match,
        counter extension_config_missing,
        counter network_extension_config_missing,
        counter downstream_listener_filter_remote_close,
        counter downstream_listener_filter_error,
        gauge downstream_cx_active,
        gauge downstream_pre_cx_active,
    }
}

define_stats! {
    /// `listener.<address>.worker_<n>.*`: what one worker accepted.
    #[derive(Debug)]
    pub struct PerWorkerListenerStats {
        counter downstream_cx_total,
        gauge downstream_cx_active,
    }
}

/// Everything a worker needs to run a listener.
#[derive(Debug)]
pub struct ListenerConfig {
    pub name: String,
    /// The configured address (port 0 means "any free port").
    pub address: SocketAddr,
    /// `IPV6_V6ONLY` on an IPv6 address (unless `ipv4_compat`).
    pub ipv6_only: bool,
    pub reuse_port: bool,
    pub buffer_limit: u32,
    /// `bypass_overload_manager`: the overload actions do not apply here.
    pub bypass_overload_manager: bool,
    /// `listener_filters`, run in order on each accepted socket.
    pub listener_filters: Vec<Arc<dyn ListenerFilterFactory>>,
    /// `listener_filters_timeout` (default 15 s; `None` when 0 disables it).
    pub listener_filters_timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout`: a socket whose filters time out
    /// goes on to the match with what they found instead of being closed.
    pub continue_on_listener_filters_timeout: bool,
    /// `access_log`: the listener's own, one line per connection
    /// (`connection_log`).
    pub access_logs: super::connection_log::ListenerAccessLogs,
    /// The filter chains and the default one, chosen per connection.
    pub filter_chains: FilterChainMatcher,
    /// `<stat_prefix or address>` in `listener.<...>.`.
    pub stat_scope: String,
    pub stats: ListenerStats,
    /// Per worker, indexed by worker number.
    pub worker_stats: Vec<PerWorkerListenerStats>,
}

impl ListenerConfig {
    pub fn from_proto(
        l: &Listener,
        path: &FieldPath,
        filters: &dyn NetworkFilterBuilder,
        store: &Store,
        workers: usize,
    ) -> Result<Arc<ListenerConfig>, ConfigError> {
        let addr = l.address.as_ref().ok_or_else(|| path.field_error("address", "an address is required"))?;
        let mut addr_path = path.clone();
        addr_path.push_field("address");
        let (host, port) = socket_address(addr, &addr_path)?;
        let ip: IpAddr = host
            .parse()
            .map_err(|_| addr_path.field_error("socket_address.address", format!("'{host}' is not an IP address")))?;
        let address = SocketAddr::new(ip, port);
        let stat_scope = if l.stat_prefix.is_empty() { stat_name_of(&address) } else { l.stat_prefix.clone() };
        let name = if l.name.is_empty() { address.to_string() } else { l.name.clone() };
        let buffer_limit =
            l.per_connection_buffer_limit_bytes.as_ref().map(|v| v.value).unwrap_or(DEFAULT_BUFFER_LIMIT);
        let bypass_overload_manager = l.bypass_overload_manager;
        // TrafficDirection OUTBOUND (2).
        let outbound = l.traffic_direction == 2;
        let scope = ListenerScope { stat_scope: &stat_scope, buffer_limit, bypass_overload_manager, outbound };
        let filter_chains = filter_chains(l, path, &address, filters, scope)?;
        let listener_filters = l
            .listener_filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut fpath = path.clone();
                fpath.push_field("listener_filters");
                fpath.push_index(i);
                let Some(listener_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    return Err(fpath.field_error("typed_config", format!("filter '{}' needs a typed_config", f.name)));
                };
                fpath.push_field("typed_config");
                filters.build_listener_filter(any, &fpath, scope)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let listener_filters_timeout = match &l.listener_filters_timeout {
            None => Some(Duration::from_secs(15)),
            Some(d) => Some(Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)).filter(|d| !d.is_zero()),
        };
        let access_logs = filters.build_access_logs(&l.access_log, &path.child("access_log"))?.into();
        let prefix = format!("listener.{stat_scope}.");
        Ok(Arc::new(ListenerConfig {
            name,
            address,
            ipv6_only: super::socket::ipv6_only(ip, ipv4_compat(addr)),
            reuse_port: l.enable_reuse_port.as_ref().map(|b| b.value).unwrap_or(true),
            buffer_limit,
            bypass_overload_manager,
            listener_filters,
            listener_filters_timeout,
            continue_on_listener_filters_timeout: l.continue_on_listener_filters_timeout,
            access_logs,
            filter_chains,
            stats: ListenerStats::new(store, &prefix),
            worker_stats: (0..workers)
                .map(|w| PerWorkerListenerStats::new(store, &format!("{prefix}worker_{w}.")))
                .collect(),
            stat_scope,
        }))
    }
}

/// The listener's filter chains and its default one, with Envoy's checks of
/// their matches.
fn filter_chains(
    l: &Listener,
    path: &FieldPath,
    address: &SocketAddr,
    filters: &dyn NetworkFilterBuilder,
    scope: ListenerScope<'_>,
) -> Result<FilterChainMatcher, ConfigError> {
    if l.filter_chains.is_empty() && l.default_filter_chain.is_none() {
        return Err(path.field_error("filter_chains", "a listener needs at least one filter chain"));
    }
    let match_error = |(i, e): (usize, String)| {
        path.field_error(
            &format!("filter_chains[{i}].filter_chain_match"),
            format!("error adding listener '{address}': {e}"),
        )
    };
    // Envoy checks the matches before it builds any chain's filters.
    let matches: Vec<_> = l.filter_chains.iter().map(|c| (c.filter_chain_match.as_ref(), c.name.as_str())).collect();
    FilterChainMatcher::check_matches(&matches).map_err(match_error)?;
    let mut chains = Vec::with_capacity(l.filter_chains.len());
    for (i, chain) in l.filter_chains.iter().enumerate() {
        let mut chain_path = path.clone();
        chain_path.push_field("filter_chains");
        chain_path.push_index(i);
        chains.push((chain.filter_chain_match.as_ref(), Arc::new(filter_chain(chain, &chain_path, filters, scope)?)));
    }
    let default = match &l.default_filter_chain {
        Some(chain) => {
            let mut chain_path = path.clone();
            chain_path.push_field("default_filter_chain");
            Some(Arc::new(filter_chain(chain, &chain_path, filters, scope)?))
        }
        None => None,
    };
    FilterChainMatcher::new(chains, default).map_err(match_error)
}

/// One chain: its read filters, then its terminal filter, the last one.
fn filter_chain(
    chain: &listener_pb::FilterChain,
    chain_path: &FieldPath,
    filters: &dyn NetworkFilterBuilder,
    scope: ListenerScope<'_>,
) -> Result<FilterChain, ConfigError> {
    let Some((last, before)) = chain.filters.split_last() else {
        return Err(chain_path
            .field_error("filters", "a filter chain needs a terminal filter (e.g. envoy.filters.network.tcp_proxy)"));
    };
    let build = |i: usize, f: &FilterPb| {
        let mut path = chain_path.clone();
        path.push_field("filters");
        path.push_index(i);
        let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            return Err(path.field_error("typed_config", format!("filter '{}' needs a typed_config", f.name)));
        };
        path.push_field("typed_config");
        Ok((filters.build(any, &path, scope)?, path))
    };
    // Envoy's checks of the order, in its words.
    let mut read_filters = Vec::with_capacity(before.len());
    for (i, f) in before.iter().enumerate() {
        match build(i, f)? {
            (NetworkFilter::Read(read), _) => read_filters.push(read),
            (NetworkFilter::Terminal(_), path) => {
                return Err(path.error(format!(
                    "terminal filter named {} must be the last filter in a network filter chain",
                    f.name
                )))
            }
        }
    }
    let terminal = match build(before.len(), last)? {
        (NetworkFilter::Terminal(t), _) => t,
        (NetworkFilter::Read(_), path) => {
            return Err(path.error(format!(
                "non-terminal filter named {} is the last filter in a network filter chain",
                last.name
            )))
        }
    };
    let transport_socket = super::tls::downstream_of(chain, chain_path, filters, scope)?;
    Ok(FilterChain { name: chain.name.clone(), read_filters: read_filters.into(), terminal, transport_socket })
}

/// Envoy's stat name for an address: `127.0.0.1_10000`, `[__1]_80`.
pub fn stat_name_of(addr: &SocketAddr) -> String {
    addr.to_string().replace(':', "_")
}
