//! DNS resolution for STRICT_DNS and LOGICAL_DNS clusters, run on the main thread
//! (getaddrinfo on tokio's blocking pool) and filtered by `dns_lookup_family`.

use std::net::SocketAddr;

use super::cluster::DnsLookupFamily;

/// Resolves `name:port` and keeps the addresses `family` asks for, in resolver order.
pub async fn resolve(name: &str, port: u16, family: DnsLookupFamily) -> std::io::Result<Vec<SocketAddr>> {
    let all: Vec<SocketAddr> = tokio::net::lookup_host((name, port)).await?.collect();
    let v4: Vec<SocketAddr> = all.iter().copied().filter(SocketAddr::is_ipv4).collect();
    let v6: Vec<SocketAddr> = all.iter().copied().filter(SocketAddr::is_ipv6).collect();
    let mut picked = match family {
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
        DnsLookupFamily::All => all,
    };
    // getaddrinfo repeats an address once per socket type; a host appears once.
    let mut seen = std::collections::HashSet::new();
    picked.retain(|a| seen.insert(*a));
    if picked.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no addresses of the requested family for '{name}'"),
        ));
    }
    Ok(picked)
}
