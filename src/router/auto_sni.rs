//! `upstream_http_protocol_options` (`auto_sni`, `auto_san_validation`): the
//! TLS of a request's upstream connection is named after the request's host,
//! as it goes upstream after the route's host rewrite (an `auto_host_rewrite`
//! comes later, per try, and does not count: Envoy decides before it picks a
//! host). Envoy strips the port, sends no SNI for an address, but still checks
//! an address against the certificate; `override_auto_sni_header` names a
//! header to read first. The result keys the pool, so two hosts never share a
//! connection. A cluster that writes the PROXY protocol also keys its pools by
//! the downstream connection's addresses, which the header names.

use std::sync::Arc;

use http::HeaderMap;

use std::net::SocketAddr;

use crate::network::proxy_protocol::{Downstream, Tlvs};
use crate::network::tls::TransportOptions;
use crate::upstream::cluster::{AutoNames, ClusterInfo};

/// A request's downstream connection: its `(remote, local)` addresses and the
/// TLVs its listener's PROXY filter kept.
pub type DownstreamOfTry = (SocketAddr, SocketAddr, Option<Tlvs>);

/// The transport options of a request with `headers`, from `downstream`, to
/// `cluster`.
pub fn transport_options(cluster: &ClusterInfo, headers: &HeaderMap, downstream: &DownstreamOfTry) -> TransportOptions {
    let downstream = cluster.proxy_protocol.is_some().then(|| Downstream {
        remote: downstream.0,
        local: downstream.1,
        tlvs: downstream.2.clone(),
    });
    TransportOptions { downstream, ..tls_names(&cluster.auto_names, headers) }
}

/// The TLS names of a request with `headers` to a cluster with `names`.
fn tls_names(names: &AutoNames, headers: &HeaderMap) -> TransportOptions {
    if !names.sni && !names.san_validation {
        return TransportOptions::default();
    }
    let overridden = names.override_header.as_ref().and_then(|h| joined(headers, h));
    let value = overridden.or_else(|| headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned));
    let Some(value) = value else { return TransportOptions::default() };
    let (host, is_ip) = parse_authority(&value);
    let host: Arc<str> = host.into();
    TransportOptions {
        server_name: (names.sni && !is_ip).then(|| host.clone()),
        verify_name: names.san_validation.then_some(host),
        downstream: None,
    }
}

/// Every value of `name`, comma-joined (Envoy's `getAllOfHeaderAsString`);
/// `None` when absent or empty.
fn joined(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    Some(values.join(",")).filter(|v| !v.is_empty())
}

/// Envoy's `Http::Utility::parseAuthority`: the host without its port
/// (a port that is no number up to 65535 stays), brackets off an IPv6
/// literal, and whether it is an address.
fn parse_authority(authority: &str) -> (&str, bool) {
    let mut host = authority;
    if let Some(colon) = authority.rfind(':') {
        if !authority.ends_with(']') && authority[colon + 1..].parse::<u16>().is_ok() {
            host = &authority[..colon];
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return (v6, v6.parse::<std::net::Ipv6Addr>().is_ok());
    }
    (host, host.parse::<std::net::Ipv4Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_stripped_and_addresses_are_known_as_envoy_parses_them() {
        assert_eq!(parse_authority("a.test"), ("a.test", false));
        assert_eq!(parse_authority("a.test:8080"), ("a.test", false));
        assert_eq!(parse_authority("a.test:99999"), ("a.test:99999", false), "not a port: kept");
        assert_eq!(parse_authority("127.0.0.1:5"), ("127.0.0.1", true));
        assert_eq!(parse_authority("[::1]:80"), ("::1", true));
        assert_eq!(parse_authority("[::1]"), ("::1", true));
    }

    #[test]
    fn an_address_is_checked_but_not_sent_as_sni_and_the_override_header_wins() {
        let names = AutoNames {
            sni: true,
            san_validation: true,
            override_header: Some(http::HeaderName::from_static("x-sni")),
        };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, http::HeaderValue::from_static("127.0.0.1:80"));
        let o = tls_names(&names, &headers);
        assert_eq!((o.server_name, o.verify_name.as_deref()), (None, Some("127.0.0.1")));
        headers.insert("x-sni", http::HeaderValue::from_static("b.test"));
        assert_eq!(tls_names(&names, &headers).server_name.as_deref(), Some("b.test"));
        headers.insert("x-sni", http::HeaderValue::from_static(""));
        assert_eq!(tls_names(&names, &headers).server_name, None, "empty: the host");
    }
}
