//! DNS resolution for STRICT_DNS and LOGICAL_DNS clusters, run on the main
//! thread, with Envoy's two resolvers. The default, `envoy.network.dns_resolver.cares`,
//! resolves as c-ares does: an IP address is itself; `/etc/hosts` and the
//! `localhost` names are answered locally; any other name is asked of the
//! configured nameservers, else resolv.conf's, by Courier's stub client
//! (`dns_client`), whose answers carry the TTLs `respect_dns_ttl` follows. Each
//! family is a lookup of its own, in the order `dns_lookup_family` gives (AUTO asks
//! AAAA, then A when there is no AAAA), counted in `dns.cares.*` as Envoy counts
//! them. `envoy.network.dns_resolver.getaddrinfo`, chosen in config, calls the
//! system's getaddrinfo on tokio's blocking pool, as Envoy's does on its thread.
//!
//! As Envoy's c-ares resolver, a name that does not exist or has no address of
//! the family asked resolves to no address: an answer, not a failure. Envoy's
//! getaddrinfo resolver reports such a name as a failure.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    address, Address, DnsResolutionConfig, DnsResolverOptions, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::network::dns_resolver::cares::v3::CaresDnsResolverConfig;
use envoy_types::pb::envoy::extensions::network::dns_resolver::getaddrinfo::v3::GetAddrInfoDnsResolverConfig;
use prost::Message;

use super::cluster::DnsLookupFamily;
use super::dns_client::{self, Lookup, StubSettings};
use super::dns_message::{QueryType, EDNS_PAYLOAD_SIZE};
use super::dns_system::{self, ResolvConf, DEFAULT_NAMESERVER, DNS_PORT};
use crate::config::{self, ConfigError, FieldPath};
use crate::define_stats;
use crate::stats::Store;

/// The config types of the two resolvers, for the extension registry.
pub const CARES_TYPE: &str = "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";
pub const GETADDRINFO_TYPE: &str = "envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig";

/// Envoy's defaults for c-ares (not c-ares's own 2 s and 3 tries).
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_QUERY_TRIES: u32 = 4;
/// The TTL Envoy's getaddrinfo resolver gives every address (getaddrinfo has none).
const GETADDRINFO_TTL: Duration = Duration::from_secs(60);

define_stats! {
    /// `dns.cares.*`, shared by every c-ares resolver as in Envoy, and made with
    /// the first resolution as Envoy makes them with its first resolver (a config
    /// without DNS clusters has none). `reinits` counts the refused lookups after
    /// which Envoy reinitializes its channel.
    #[derive(Debug)]
    pub struct CaresStats {
        counter get_addr_failure,
        counter not_found,
        counter reinits,
        counter resolve_total,
        counter timeouts,
        gauge pending_resolutions,
    }
}

impl CaresStats {
    /// The process's `dns.cares.*`.
    pub fn of(store: &Store) -> Arc<CaresStats> {
        Arc::new(CaresStats::new(store, "dns.cares."))
    }
}

/// A resolver's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsResolverConfig {
    Cares(CaresConfig),
    /// `num_retries` on EAI_AGAIN (unbounded when unset, as Envoy).
    GetAddrInfo {
        num_retries: Option<u32>,
    },
}

impl Default for DnsResolverConfig {
    fn default() -> Self {
        DnsResolverConfig::Cares(CaresConfig::default())
    }
}

/// `CaresDnsResolverConfig`, of the fields Courier acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaresConfig {
    pub resolvers: Vec<SocketAddr>,
    /// Use `resolvers` only when resolv.conf names no nameserver.
    pub use_resolvers_as_fallback: bool,
    pub filter_unroutable_families: bool,
    pub use_tcp: bool,
    pub no_default_search_domain: bool,
    pub query_timeout: Duration,
    pub query_tries: u32,
    pub edns_payload: u16,
}

impl Default for CaresConfig {
    fn default() -> Self {
        CaresConfig {
            resolvers: Vec::new(),
            use_resolvers_as_fallback: false,
            filter_unroutable_families: false,
            use_tcp: false,
            no_default_search_domain: false,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            query_tries: DEFAULT_QUERY_TRIES,
            edns_payload: EDNS_PAYLOAD_SIZE,
        }
    }
}

/// The resolver config of a cluster or of the bootstrap, from the fields Envoy
/// reads in its order: `typed_dns_resolver_config`, else `dns_resolution_config`,
/// else the deprecated `dns_resolvers` (a cluster's) and `use_tcp_for_dns_lookups`.
/// `None` when none is set: a cluster then uses the bootstrap's.
pub struct ResolverFields<'a> {
    pub typed: Option<&'a TypedExtensionConfig>,
    pub resolution: Option<&'a DnsResolutionConfig>,
    pub resolvers: &'a [Address],
    pub use_tcp: bool,
}

impl ResolverFields<'_> {
    pub fn config(&self, path: &FieldPath) -> Result<Option<DnsResolverConfig>, ConfigError> {
        if let Some(typed) = self.typed {
            return typed_config(typed, &path.child("typed_dns_resolver_config")).map(Some);
        }
        if let Some(resolution) = self.resolution {
            let p = path.child("dns_resolution_config");
            let mut config = CaresConfig {
                resolvers: resolver_addresses(&resolution.resolvers, &p.child("resolvers"))?,
                ..CaresConfig::default()
            };
            apply_options(&mut config, resolution.dns_resolver_options.as_ref());
            return Ok(Some(DnsResolverConfig::Cares(config)));
        }
        if self.resolvers.is_empty() && !self.use_tcp {
            return Ok(None);
        }
        Ok(Some(DnsResolverConfig::Cares(CaresConfig {
            resolvers: resolver_addresses(self.resolvers, &path.child("dns_resolvers"))?,
            use_tcp: self.use_tcp,
            ..CaresConfig::default()
        })))
    }
}

fn typed_config(typed: &TypedExtensionConfig, path: &FieldPath) -> Result<DnsResolverConfig, ConfigError> {
    let Some(any) = &typed.typed_config else {
        return Err(path.field_error("typed_config", "a DNS resolver needs a typed_config"));
    };
    let p = path.child("typed_config");
    let decode_error = |e: prost::DecodeError| p.error(format!("cannot decode '{}': {e}", any.type_url));
    match config::descriptor::type_name(&any.type_url) {
        CARES_TYPE => {
            let c = CaresDnsResolverConfig::decode(any.value.as_slice()).map_err(decode_error)?;
            let mut config = CaresConfig {
                resolvers: resolver_addresses(&c.resolvers, &p.child("resolvers"))?,
                use_resolvers_as_fallback: c.use_resolvers_as_fallback,
                filter_unroutable_families: c.filter_unroutable_families,
                ..CaresConfig::default()
            };
            apply_options(&mut config, c.dns_resolver_options.as_ref());
            if let Some(t) = &c.query_timeout_seconds {
                if t.value == 0 {
                    return Err(p.field_error("query_timeout_seconds", "value must be greater than or equal to 1"));
                }
                config.query_timeout = Duration::from_secs(t.value.min(u64::from(u32::MAX)));
            }
            if let Some(t) = &c.query_tries {
                if t.value == 0 {
                    return Err(p.field_error("query_tries", "value must be greater than or equal to 1"));
                }
                config.query_tries = t.value;
            }
            if let Some(size) = &c.edns0_max_payload_size {
                if !(512..=4096).contains(&size.value) {
                    return Err(p.field_error("edns0_max_payload_size", "value must be inside range [512, 4096]"));
                }
                config.edns_payload = size.value as u16;
            }
            if c.qcache_max_ttl.as_ref().is_some_and(|t| t.value != 0) {
                return Err(p.field_error(
                    "qcache_max_ttl",
                    "Courier keeps no DNS answer cache; only 0 (Envoy's default: no cache) is supported",
                ));
            }
            // `udp_max_queries` caps the queries sent on one UDP socket: Courier
            // opens a socket per query, within any cap.
            Ok(DnsResolverConfig::Cares(config))
        }
        GETADDRINFO_TYPE => {
            let c = GetAddrInfoDnsResolverConfig::decode(any.value.as_slice()).map_err(decode_error)?;
            Ok(DnsResolverConfig::GetAddrInfo { num_retries: c.num_retries.map(|n| n.value) })
        }
        other => Err(p.field_error("@type", format!("'{other}' is not a DNS resolver Courier implements"))),
    }
}

fn apply_options(config: &mut CaresConfig, options: Option<&DnsResolverOptions>) {
    if let Some(o) = options {
        config.use_tcp = o.use_tcp_for_dns_lookups;
        config.no_default_search_domain = o.no_default_search_domain;
    }
}

/// Nameserver addresses: IPs, the port 53 when none is given (c-ares's).
fn resolver_addresses(addresses: &[Address], path: &FieldPath) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out = Vec::with_capacity(addresses.len());
    for (i, a) in addresses.iter().enumerate() {
        let mut p = path.clone();
        p.push_index(i);
        let Some(address::Address::SocketAddress(sa)) = &a.address else {
            return Err(p.error("a DNS resolver must be a socket_address"));
        };
        let ip: IpAddr = sa.address.parse().map_err(|_| {
            // Envoy's words.
            p.field_error("socket_address.address", format!("DNS resolver '{}' is not an IP address", sa.address))
        })?;
        use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
        let port = match &sa.port_specifier {
            Some(PortSpecifier::PortValue(0)) | None => DNS_PORT,
            Some(PortSpecifier::PortValue(n)) => u16::try_from(*n)
                .map_err(|_| p.field_error("socket_address.port_value", format!("port {n} is out of range")))?,
            Some(PortSpecifier::NamedPort(_)) => {
                return Err(p.field_error("socket_address.named_port", "named ports are not supported"))
            }
        };
        out.push(SocketAddr::new(ip, port));
    }
    Ok(out)
}

/// A name's addresses, each with its TTL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    pub addresses: Vec<SocketAddr>,
    /// One per address.
    pub ttls: Vec<Duration>,
}

impl Resolution {
    /// The least TTL of the addresses, or the first's when `first_only` (Envoy's
    /// LOGICAL_DNS cluster keeps that one); `None` when there are none.
    pub fn least_ttl(&self, first_only: bool) -> Option<Duration> {
        if first_only {
            self.ttls.first().copied()
        } else {
            self.ttls.iter().min().copied()
        }
    }
}

/// A resolver: its config and the process's `dns.cares.*`, made at its first
/// c-ares resolution.
#[derive(Debug)]
pub struct DnsResolver {
    pub config: DnsResolverConfig,
    store: Arc<Store>,
    stats: std::sync::OnceLock<Arc<CaresStats>>,
}

impl DnsResolver {
    pub fn new(config: DnsResolverConfig, store: Arc<Store>) -> DnsResolver {
        DnsResolver { config, store, stats: std::sync::OnceLock::new() }
    }

    fn stats(&self) -> &CaresStats {
        self.stats.get_or_init(|| CaresStats::of(&self.store))
    }

    /// Resolves `name` and gives its addresses of `family` with `port`, in the
    /// resolver's order; an error says why it failed.
    pub async fn resolve(&self, name: &str, port: u16, family: DnsLookupFamily) -> Result<Resolution, String> {
        let found = match &self.config {
            DnsResolverConfig::Cares(c) => {
                let stats = self.stats();
                stats.pending_resolutions.inc();
                let found = resolve_cares(c, stats, name, family).await;
                stats.pending_resolutions.dec();
                found?
            }
            DnsResolverConfig::GetAddrInfo { num_retries } => resolve_getaddrinfo(name, family, *num_retries).await?,
        };
        // A host appears once.
        let mut seen = std::collections::HashSet::new();
        let found: Vec<(IpAddr, u32)> = found.into_iter().filter(|(ip, _)| seen.insert(*ip)).collect();
        Ok(Resolution {
            ttls: found.iter().map(|(_, ttl)| Duration::from_secs(u64::from(*ttl))).collect(),
            addresses: found.into_iter().map(|(ip, _)| SocketAddr::new(ip, port)).collect(),
        })
    }
}

/// c-ares's resolution: each family a lookup, in `family`'s order.
async fn resolve_cares(
    c: &CaresConfig,
    stats: &CaresStats,
    name: &str,
    family: DnsLookupFamily,
) -> Result<Vec<(IpAddr, u32)>, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        stats.resolve_total.inc();
        return Ok(vec![(ip, 0)]);
    }
    let conf = ResolvConf::system();
    // `use_resolvers_as_fallback`: the configured ones only when the system has none.
    let use_configured = !c.use_resolvers_as_fallback || conf.nameservers.is_empty();
    let servers = if !c.resolvers.is_empty() && use_configured {
        c.resolvers.clone()
    } else if conf.nameservers.is_empty() {
        vec![DEFAULT_NAMESERVER]
    } else {
        conf.nameservers
    };
    let settings = StubSettings {
        servers,
        search: if c.no_default_search_domain { Vec::new() } else { conf.search },
        ndots: conf.ndots,
        use_tcp: c.use_tcp,
        timeout: c.query_timeout,
        tries: c.query_tries,
        edns_payload: Some(c.edns_payload),
    };
    let (v4_routable, v6_routable) =
        if c.filter_unroutable_families { dns_system::routable_families() } else { (true, true) };
    let lookup = |qtypes: &'static [QueryType]| {
        // Envoy skips a family without a routable interface, without asking.
        let qtypes: Vec<QueryType> = qtypes
            .iter()
            .copied()
            .filter(|t| match t {
                QueryType::A => v4_routable,
                QueryType::Aaaa => v6_routable,
            })
            .collect();
        let settings = &settings;
        async move {
            if qtypes.is_empty() {
                return Lookup::NotFound;
            }
            stats.resolve_total.inc();
            let looked_up = lookup_families(settings, name, &qtypes).await;
            match &looked_up {
                Lookup::Found(_) => {}
                Lookup::NotFound => stats.not_found.inc(),
                Lookup::TimedOut(n) => stats.timeouts.add(u64::from(*n)),
                Lookup::Failed { refused, .. } => {
                    stats.get_addr_failure.inc();
                    // Envoy then reinitializes its c-ares channel; Courier has
                    // none (a socket per query) but counts it alike.
                    if *refused {
                        stats.reinits.inc();
                    }
                }
            }
            looked_up
        }
    };
    const A: &[QueryType] = &[QueryType::A];
    const AAAA: &[QueryType] = &[QueryType::Aaaa];
    let lookups = match family {
        DnsLookupFamily::V4Only => vec![lookup(A).await],
        DnsLookupFamily::V6Only => vec![lookup(AAAA).await],
        DnsLookupFamily::Auto | DnsLookupFamily::V4Preferred => {
            let (first, second) = if family == DnsLookupFamily::Auto { (AAAA, A) } else { (A, AAAA) };
            let first = lookup(first).await;
            if matches!(first, Lookup::Found(_)) {
                vec![first]
            } else {
                vec![first, lookup(second).await]
            }
        }
        // One lookup of both types, as c-ares's AF_UNSPEC: an address of either
        // ends the search domains.
        DnsLookupFamily::All => vec![lookup(&[QueryType::A, QueryType::Aaaa]).await],
    };
    // Envoy's answer succeeds when a lookup answered, even with no address.
    let mut answered = false;
    let mut why = String::new();
    let mut found = Vec::new();
    for l in lookups {
        match l {
            Lookup::Found(addresses) => {
                answered = true;
                found.extend(addresses);
            }
            Lookup::NotFound => answered = true,
            Lookup::TimedOut(n) => why = format!("timed out ({n} attempts)"),
            Lookup::Failed { why: reason, .. } => why = reason,
        }
    }
    if answered {
        Ok(found)
    } else {
        Err(why)
    }
}

/// One c-ares lookup of `qtypes`: the hosts file, then the `localhost` names'
/// loopback, then the nameservers. Local answers have a TTL of 0.
async fn lookup_families(settings: &StubSettings, name: &str, qtypes: &[QueryType]) -> Lookup {
    let wanted = |v6: bool| qtypes.contains(&if v6 { QueryType::Aaaa } else { QueryType::A });
    let local: Vec<(IpAddr, u32)> = dns_system::hosts_file_addresses(name)
        .into_iter()
        .filter(|ip| wanted(ip.is_ipv6()))
        .map(|ip| (ip, 0))
        .collect();
    if !local.is_empty() {
        return Lookup::Found(local);
    }
    if dns_system::is_localhost(name) {
        let loopbacks = [false, true].into_iter().filter(|v6| wanted(*v6));
        return Lookup::Found(loopbacks.map(|v6| (dns_system::loopback(v6), 0)).collect());
    }
    dns_client::lookup(settings, name, qtypes).await
}

/// Envoy's getaddrinfo resolver: both families asked at once, kept by `family`;
/// EAI_AGAIN retried `num_retries` times (without end when unset); no name or no
/// address is a failure.
async fn resolve_getaddrinfo(
    name: &str,
    family: DnsLookupFamily,
    num_retries: Option<u32>,
) -> Result<Vec<(IpAddr, u32)>, String> {
    let mut retries_left = num_retries;
    let all: Vec<IpAddr> = loop {
        match tokio::net::lookup_host((name, 0)).await {
            Ok(addrs) => break addrs.map(|a| a.ip()).collect(),
            Err(e) if is_gai_error(&e, &[libc::EAI_AGAIN]) && retries_left != Some(0) => {
                retries_left = retries_left.map(|n| n - 1);
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let v4: Vec<IpAddr> = all.iter().copied().filter(IpAddr::is_ipv4).collect();
    let v6: Vec<IpAddr> = all.iter().copied().filter(IpAddr::is_ipv6).collect();
    let picked = match family {
        DnsLookupFamily::V4Only => v4,
        DnsLookupFamily::V6Only => v6,
        DnsLookupFamily::Auto => {
            if v6.is_empty() {
                v4
            } else {
                v6
            }
        }
        DnsLookupFamily::V4Preferred => {
            if v4.is_empty() {
                v6
            } else {
                v4
            }
        }
        DnsLookupFamily::All => v4.into_iter().chain(v6).collect(),
    };
    let ttl = GETADDRINFO_TTL.as_secs() as u32;
    Ok(picked.into_iter().map(|ip| (ip, ttl)).collect())
}

/// True when getaddrinfo failed with one of `codes`. The standard library keeps
/// only getaddrinfo's message, so it is compared with the system's text of each.
fn is_gai_error(e: &std::io::Error, codes: &[i32]) -> bool {
    let message = e.to_string();
    codes.iter().any(|code| {
        // SAFETY: gai_strerror returns a pointer to a static NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(*code)) };
        text.to_str().is_ok_and(|t| message.ends_with(t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(config: DnsResolverConfig) -> (DnsResolver, Arc<CaresStats>) {
        let store = Arc::new(Store::new());
        (DnsResolver::new(config, store.clone()), CaresStats::of(&store))
    }

    #[tokio::test]
    async fn addresses_and_localhost_are_answered_without_asking() {
        let (r, stats) = resolver(DnsResolverConfig::default());
        let literal = r.resolve("127.0.0.9", 80, DnsLookupFamily::Auto).await.expect("an answer");
        assert_eq!(literal.addresses, vec![SocketAddr::from(([127, 0, 0, 9], 80))]);
        assert_eq!(literal.least_ttl(false), Some(Duration::ZERO));
        let v4 = r.resolve("localhost", 80, DnsLookupFamily::V4Only).await.expect("an answer");
        assert_eq!(v4.addresses, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
        let v6 = r.resolve("LOCALHOST.", 80, DnsLookupFamily::V6Only).await.expect("an answer");
        assert_eq!(v6.addresses, vec!["[::1]:80".parse().unwrap()]);
        assert_eq!(stats.resolve_total.value(), 3);
        assert_eq!(stats.pending_resolutions.value(), 0);
    }

    #[tokio::test]
    async fn getaddrinfo_reports_a_missing_name_as_a_failure() {
        let (r, _) = resolver(DnsResolverConfig::GetAddrInfo { num_retries: Some(0) });
        assert!(r.resolve("courier-no-such-name.invalid", 80, DnsLookupFamily::Auto).await.is_err());
        let v4 = r.resolve("127.0.0.1", 80, DnsLookupFamily::V4Only).await.expect("an answer");
        assert_eq!(v4.addresses, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
        assert_eq!(v4.least_ttl(true), Some(GETADDRINFO_TTL));
        assert!(r.resolve("127.0.0.1", 80, DnsLookupFamily::V6Only).await.expect("an answer").addresses.is_empty());
    }

    #[test]
    fn resolver_fields_are_read_in_envoys_order() {
        let path = FieldPath::starting_at("c");
        let addr = |ip: &str, port: u32| Address {
            address: Some(address::Address::SocketAddress(envoy_types::pb::envoy::config::core::v3::SocketAddress {
                address: ip.to_string(),
                port_specifier: Some(
                    envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port),
                ),
                ..Default::default()
            })),
        };
        let none = ResolverFields { typed: None, resolution: None, resolvers: &[], use_tcp: false };
        assert_eq!(none.config(&path).unwrap(), None);
        let legacy = [addr("127.0.0.1", 5353), addr("::1", 0)];
        let fields = ResolverFields { typed: None, resolution: None, resolvers: &legacy, use_tcp: true };
        let Some(DnsResolverConfig::Cares(c)) = fields.config(&path).unwrap() else { panic!("c-ares") };
        assert_eq!(c.resolvers, vec!["127.0.0.1:5353".parse().unwrap(), "[::1]:53".parse().unwrap()]);
        assert!(c.use_tcp);
        let named = [addr("dns.example", 53)];
        let fields = ResolverFields { typed: None, resolution: None, resolvers: &named, use_tcp: false };
        let e = fields.config(&path).unwrap_err().to_string();
        assert!(
            e.contains("c.dns_resolvers[0].socket_address.address: DNS resolver 'dns.example' is not an IP address"),
            "{e}"
        );
    }
}
