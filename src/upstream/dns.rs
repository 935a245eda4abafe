//! DNS resolution for STRICT_DNS and LOGICAL_DNS clusters, run on the main thread
//! (getaddrinfo on tokio's blocking pool) and filtered by `dns_lookup_family`. As
//! Envoy's resolver does, a name that does not exist or has no address of the
//! family asked for resolves to no address: an answer, not a failure.

use std::net::SocketAddr;

use super::cluster::DnsLookupFamily;

/// Resolves `name:port` and keeps the addresses `family` asks for, in resolver order
/// (none for a name without any).
pub async fn resolve(name: &str, port: u16, family: DnsLookupFamily) -> std::io::Result<Vec<SocketAddr>> {
    let all: Vec<SocketAddr> = match tokio::net::lookup_host((name, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(e) if is_no_address(&e) => Vec::new(),
        Err(e) => return Err(e),
    };
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
    Ok(picked)
}

/// True when getaddrinfo said the name has no address (`EAI_NONAME`: no such name;
/// `EAI_NODATA`: no address record), which Envoy's resolver reports as an empty
/// answer. The standard library keeps only getaddrinfo's message, so it is compared
/// with the system's text of those two codes.
fn is_no_address(e: &std::io::Error) -> bool {
    let message = e.to_string();
    [libc::EAI_NONAME, libc::EAI_NODATA].into_iter().any(|code| {
        // SAFETY: gai_strerror returns a pointer to a static NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(code)) };
        text.to_str().is_ok_and(|t| message.ends_with(t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_without_addresses_resolves_to_none() {
        let none = resolve("courier-no-such-name.invalid", 80, DnsLookupFamily::Auto).await.expect("an answer");
        assert!(none.is_empty());
        let v6 = resolve("127.0.0.1", 80, DnsLookupFamily::V6Only).await.expect("an answer");
        assert!(v6.is_empty());
        let v4 = resolve("127.0.0.1", 80, DnsLookupFamily::V4Only).await.expect("an answer");
        assert_eq!(v4, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
    }
}
