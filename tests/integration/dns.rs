//! DNS clusters against a scripted nameserver on 127.0.0.1 (tests/shared/dns_server.rs):
//! what Courier's c-ares-like resolver asks and when (`dns_resolvers`,
//! `dns_resolution_config`, `typed_dns_resolver_config`, the bootstrap's resolver),
//! `respect_dns_ttl` re-resolving at the answer's TTL, and hostile replies
//! (garbage, another id, truncation, a server failure) counted as Envoy counts them.
//! Envoy 1.40, run against the same server, asks the same queries in the same order.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::*;
use crate::shared_dns::{DnsServer, Record, Script, TYPE_A, TYPE_AAAA};

const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A STRICT_DNS cluster of one name; `extra` holds its other fields.
fn cluster(name: &str, host: &str, port: u16, extra: &str) -> String {
    format!(
        "  - name: {name}\n    type: STRICT_DNS\n    connect_timeout: 1s\n{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }}\n"
    )
}

fn resolvers(dns: &DnsServer) -> String {
    format!("[{{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }}]", dns.port())
}

#[test]
fn dns_resolvers_send_a_strict_dns_cluster_to_the_configured_nameserver() {
    let dns = DnsServer::start();
    dns.set("svc.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    let up = Upstream::echo();
    let extra = format!("    dns_refresh_rate: 60s\n    dns_resolvers: {}\n", resolvers(&dns));
    let c = Courier::start(
        &config(&[tcp_listener("l", "dns", "svc", "")], &[cluster("svc", "svc.test", up.port(), &extra)]),
        1,
    );
    assert_eq!(c.stat("cluster.svc.membership_total"), Some(1));
    let mut s = connect(c.listener("l"));
    s.write_all(b"dns").unwrap();
    let mut b = [0u8; 3];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"dns");
    let (_, clusters) = c.admin_get("/clusters");
    assert!(clusters.contains(&format!("svc::127.0.0.1:{}::hostname::svc.test", up.port())), "{clusters}");
    // dns_lookup_family AUTO, as c-ares in Envoy: AAAA first, then A as AAAA has
    // none; over UDP, with EDNS.
    let asked = dns.asked();
    let order: Vec<(&str, u16, bool, Option<u16>)> =
        asked.iter().map(|a| (a.name.as_str(), a.qtype, a.tcp, a.edns)).collect();
    assert_eq!(order, [("svc.test", TYPE_AAAA, false, Some(1232)), ("svc.test", TYPE_A, false, Some(1232))]);
    assert_ne!(asked[0].id, asked[1].id, "each query has its own id");
    // Each family's lookup is a resolution; the AAAA one found nothing.
    assert_eq!(c.stat("dns.cares.resolve_total"), Some(2));
    assert_eq!(c.stat("dns.cares.not_found"), Some(1));
    assert_eq!(c.stat("dns.cares.pending_resolutions"), Some(0));
}

#[test]
fn respect_dns_ttl_resolves_again_at_the_answers_ttl() {
    let dns = DnsServer::start();
    // The CNAME's TTL (1s) is the chain's least: the name is asked again each second.
    dns.set("web.test", Script::Records(vec![Record::Cname("real.test".into(), 1)]));
    dns.set("real.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    dns.set("plain.test", Script::Records(vec![Record::Address(LOCAL, 1)]));
    dns.set("zero.test", Script::Records(vec![Record::Address(LOCAL, 0)]));
    dns.set("lg.test", Script::Records(vec![Record::Address(LOCAL, 30), Record::Address([127, 0, 0, 2].into(), 1)]));
    let resolution =
        format!("    dns_lookup_family: V4_ONLY\n    dns_resolution_config: {{ resolvers: {} }}\n", resolvers(&dns));
    let clusters = [
        cluster("ttl", "web.test", 80, &format!("    respect_dns_ttl: true\n    dns_refresh_rate: 60s\n{resolution}")),
        cluster("plain", "plain.test", 80, &format!("    dns_refresh_rate: 60s\n{resolution}")),
        // A TTL of 0 leaves dns_refresh_rate in force.
        cluster(
            "zero",
            "zero.test",
            80,
            &format!("    respect_dns_ttl: true\n    dns_refresh_rate: 0.3s\n{resolution}"),
        ),
        // LOGICAL_DNS keeps the first address, and its TTL (30s), not the least.
        cluster(
            "logical",
            "lg.test",
            80,
            &format!("    respect_dns_ttl: true\n    dns_refresh_rate: 60s\n{resolution}"),
        )
        .replace("STRICT_DNS", "LOGICAL_DNS"),
    ];
    let c = Courier::start(&config(&[tcp_listener("l", "dns", "ttl", "")], &clusters), 1);
    let asked = dns.wait_asked("web.test", TYPE_A, 3);
    for pair in asked.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900) && gap < Duration::from_millis(1900), "asked again after {gap:?}");
    }
    assert_eq!(dns.asked_for("plain.test", TYPE_A).len(), 1, "without respect_dns_ttl, dns_refresh_rate (60s) rules");
    assert_eq!(dns.asked_for("lg.test", TYPE_A).len(), 1, "a LOGICAL_DNS name follows its first address's TTL");
    let zero = dns.wait_asked("zero.test", TYPE_A, 3);
    for pair in zero.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(250), "a TTL of 0 is no refresh time");
    }
    // The answer changes: the next resolution follows it.
    dns.set("real.test", Script::Records(vec![Record::Address(LOCAL, 30), Record::Address([127, 0, 0, 2].into(), 30)]));
    c.wait_stat("cluster.ttl.membership_total", |v| v == 2);
    dns.set("web.test", Script::Records(vec![Record::Address([127, 0, 0, 3].into(), 1)]));
    c.wait_until(|c| c.admin_get("/clusters").1.contains("ttl::127.0.0.3:80::"), "the new address");
    assert_eq!(c.stat("cluster.ttl.membership_total"), Some(1));
    assert_eq!(c.stat("cluster.ttl.update_failure"), Some(0));
}

#[test]
fn hostile_replies_fail_the_resolution_and_the_cluster_recovers() {
    let dns = DnsServer::start();
    dns.set("bad.test", Script::Garbage);
    let cares = format!(
        "    dns_lookup_family: V4_ONLY\n    dns_refresh_rate: 0.1s\n    dns_failure_refresh_rate: {{ base_interval: 0.05s, max_interval: 0.1s }}\n    typed_dns_resolver_config:\n      name: envoy.network.dns_resolver.cares\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig\n        resolvers: {}\n        query_timeout_seconds: 1\n        query_tries: 1\n",
        resolvers(&dns)
    );
    let c =
        Courier::start(&config(&[tcp_listener("l", "dns", "bad", "")], &[cluster("bad", "bad.test", 80, &cares)]), 1);
    // A reply that does not parse fails the attempt at once (c-ares's bad answer).
    c.wait_stat("cluster.bad.update_failure", |v| v >= 2);
    c.wait_stat("dns.cares.get_addr_failure", |v| v >= 2);
    assert_eq!(c.stat("cluster.bad.membership_total"), Some(0));
    // A reply under another id is dropped: the attempt times out.
    dns.set("bad.test", Script::WrongId(vec![Record::Address(LOCAL, 30)]));
    c.wait_stat("dns.cares.timeouts", |v| v >= 1);
    assert_eq!(c.stat("cluster.bad.membership_total"), Some(0), "a reply to another id is not taken");
    // A truncated reply is asked again over TCP, with the same id.
    dns.set("bad.test", Script::Truncated(vec![Record::Address(LOCAL, 30)]));
    c.wait_stat("cluster.bad.membership_total", |v| v == 1);
    let asked = dns.asked_for("bad.test", TYPE_A);
    let tcp = asked.iter().position(|a| a.tcp).expect("a query over TCP");
    assert!(!asked[tcp - 1].tcp && asked[tcp - 1].id == asked[tcp].id, "{asked:?}");
    // A server failure fails the resolution; the hosts stay, as in Envoy.
    let failures = c.stat("cluster.bad.update_failure").unwrap();
    dns.set("bad.test", Script::Rcode(2));
    c.wait_stat("cluster.bad.update_failure", |v| v > failures);
    assert_eq!(c.stat("cluster.bad.membership_total"), Some(1));
    // Envoy reinitializes its c-ares channel after a refusal, and counts it.
    c.wait_stat("dns.cares.reinits", |v| v >= 1);
}

#[test]
fn the_bootstraps_resolver_serves_clusters_without_their_own() {
    let dns = DnsServer::start();
    dns.set("a.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    dns.set("b.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    dns.set("c.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    let v4 = "    dns_lookup_family: V4_ONLY\n    dns_refresh_rate: 60s\n";
    let clusters = [
        cluster("a", "a.test", 80, v4),
        cluster("b", "b.test", 80, &format!("{v4}    dns_resolvers: {}\n", resolvers(&dns))),
        cluster(
            "c",
            "c.test",
            80,
            &format!("{v4}    dns_resolvers: {}\n    use_tcp_for_dns_lookups: true\n", resolvers(&dns)),
        ),
    ];
    let statics = config(&[tcp_listener("l", "dns", "a", "")], &clusters);
    // The bootstrap's resolver, by either field, asks over TCP; a cluster with its
    // own asks as that one says.
    let bootstraps = [
        format!(
            "dns_resolution_config:\n  resolvers: {}\n  dns_resolver_options: {{ use_tcp_for_dns_lookups: true }}\n",
            resolvers(&dns)
        ),
        format!(
            "typed_dns_resolver_config:\n  name: envoy.network.dns_resolver.cares\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig\n    resolvers: {}\n    dns_resolver_options: {{ use_tcp_for_dns_lookups: true }}\n",
            resolvers(&dns)
        ),
    ];
    for bootstrap in bootstraps {
        let before = dns.asked().len();
        let c = Courier::start(&format!("{bootstrap}{statics}"), 1);
        for name in ["a", "b", "c"] {
            assert_eq!(c.stat(&format!("cluster.{name}.membership_total")), Some(1), "{name}");
        }
        let transports: Vec<(String, bool)> = dns.asked()[before..].iter().map(|a| (a.name.clone(), a.tcp)).collect();
        for (name, tcp) in [("a.test", true), ("b.test", false), ("c.test", true)] {
            assert!(transports.contains(&(name.to_string(), tcp)), "{name} over TCP {tcp}: {transports:?}");
        }
    }
}

#[test]
fn search_domains_come_from_the_system_unless_refused() {
    let dns = DnsServer::start();
    dns.set("svc.corp.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    dns.set("plain", Script::Records(vec![Record::Address(LOCAL, 30)]));
    let cares = |options: &str| {
        format!(
            "    dns_lookup_family: V4_ONLY\n    dns_refresh_rate: 60s\n    typed_dns_resolver_config:\n      name: envoy.network.dns_resolver.cares\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig\n        resolvers: {}\n{options}",
            resolvers(&dns)
        )
    };
    let clusters = [
        cluster("searched", "svc", 80, &cares("")),
        cluster(
            "plain",
            "plain",
            80,
            &cares("        dns_resolver_options: { no_default_search_domain: true }\n        edns0_max_payload_size: 4096\n"),
        ),
    ];
    // c-ares, as libc, takes LOCALDOMAIN over resolv.conf's search domains.
    let c = Courier::start_with(
        &config(&[tcp_listener("l", "dns", "searched", "")], &clusters),
        1,
        &[],
        &[("LOCALDOMAIN", "corp.test other.test")],
    );
    assert_eq!(c.stat("cluster.searched.membership_total"), Some(1));
    assert_eq!(c.stat("cluster.plain.membership_total"), Some(1));
    let names: Vec<String> = dns.asked().iter().map(|a| a.name.clone()).collect();
    // A name with fewer dots than ndots (1) is tried with the search domains first.
    assert!(names.contains(&"svc.corp.test".to_string()) && !names.contains(&"svc".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("plain.")), "no search domain for plain: {names:?}");
    assert_eq!(dns.asked_for("plain", TYPE_A)[0].edns, Some(4096), "edns0_max_payload_size");
}

/// Whether this host has a non-loopback address of each family (as Envoy's
/// `filter_unroutable_families` checks), from the interface list.
fn routable_families() -> (bool, bool) {
    let (mut v4, mut v6) = (false, false);
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, walked read-only and freed once below.
    assert_eq!(unsafe { libc::getifaddrs(&mut list) }, 0);
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a live node of that list; its ifa_addr matches its family.
        unsafe {
            let a = (*at).ifa_addr;
            if !a.is_null() && i32::from((*a).sa_family) == libc::AF_INET {
                v4 |= u32::from_be((*(a as *const libc::sockaddr_in)).sin_addr.s_addr) >> 24 != 127;
            } else if !a.is_null() && i32::from((*a).sa_family) == libc::AF_INET6 {
                v6 |= (*(a as *const libc::sockaddr_in6)).sin6_addr.s6_addr != std::net::Ipv6Addr::LOCALHOST.octets();
            }
            at = (*at).ifa_next;
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    (v4, v6)
}

#[test]
fn resolver_fallback_and_unroutable_families() {
    let dns = DnsServer::start();
    dns.set("f.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    dns.set("fallback.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    let cares = |options: &str| {
        format!(
            "    dns_refresh_rate: 60s\n    typed_dns_resolver_config:\n      name: envoy.network.dns_resolver.cares\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig\n        resolvers: {}\n        query_timeout_seconds: 1\n        query_tries: 1\n{options}",
            resolvers(&dns)
        )
    };
    let clusters = [
        cluster("filtered", "f.test", 80, &cares("        filter_unroutable_families: true\n")),
        cluster(
            "fallback",
            "fallback.test",
            80,
            &cares("        use_resolvers_as_fallback: true\n").replace("60s", "60s\n    dns_lookup_family: V4_ONLY"),
        ),
    ];
    let c = Courier::start(&config(&[tcp_listener("l", "dns", "filtered", "")], &clusters), 1);
    // AUTO asks AAAA first, unless no interface has an IPv6 address.
    let (v4, v6) = routable_families();
    assert_eq!(dns.asked_for("f.test", TYPE_AAAA).is_empty(), !v6, "v6 routable: {v6}");
    assert_eq!(c.stat("cluster.filtered.membership_total"), Some(i64::from(v4)), "v4 routable: {v4}");
    // With use_resolvers_as_fallback, resolv.conf's nameservers come first.
    let system_has_nameservers = std::fs::read_to_string("/etc/resolv.conf")
        .is_ok_and(|t| t.lines().any(|l| l.split_whitespace().next() == Some("nameserver")));
    c.wait_stat("cluster.fallback.update_attempt", |v| v >= 1);
    assert_eq!(dns.asked_for("fallback.test", TYPE_A).is_empty(), system_has_nameservers);
}

#[test]
fn dns_jitter_adds_a_random_wait_after_each_success() {
    let dns = DnsServer::start();
    dns.set("j.test", Script::Records(vec![Record::Address(LOCAL, 30)]));
    let extra = format!(
        "    dns_lookup_family: V4_ONLY\n    dns_refresh_rate: 0.1s\n    dns_jitter: 0.5s\n    dns_resolvers: {}\n",
        resolvers(&dns)
    );
    let _c = Courier::start(&config(&[tcp_listener("l", "dns", "j", "")], &[cluster("j", "j.test", 80, &extra)]), 1);
    let asked = dns.wait_asked("j.test", TYPE_A, 6);
    let gaps: Vec<Duration> = asked.windows(2).map(|p| p[1].at - p[0].at).collect();
    // Each gap is the refresh rate and up to the jitter more; five never all without.
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(95) && *g < Duration::from_millis(1000)), "{gaps:?}");
    assert!(gaps.iter().any(|g| *g >= Duration::from_millis(160)), "{gaps:?}");
}

#[test]
fn the_getaddrinfo_resolver_fails_a_name_without_address() {
    let getaddrinfo = "    dns_refresh_rate: 60s\n    typed_dns_resolver_config:\n      name: envoy.network.dns_resolver.getaddrinfo\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig\n        num_retries: 1\n";
    let clusters = [
        cluster("found", "localhost", 80, &format!("    dns_lookup_family: V4_ONLY\n{getaddrinfo}")),
        cluster("missing", "does-not-exist.invalid", 80, getaddrinfo),
    ];
    let c = Courier::start(&config(&[tcp_listener("l", "dns", "found", "")], &clusters), 1);
    assert_eq!(c.stat("cluster.found.membership_total"), Some(1));
    // Envoy's getaddrinfo resolver calls no such name a failure, c-ares an empty answer.
    assert_eq!(c.stat("cluster.missing.update_failure"), Some(1));
    assert_eq!(c.stat("dns.cares.resolve_total"), None, "getaddrinfo is not c-ares: no dns.cares.*");
}

#[test]
fn resolver_config_errors_name_the_field() {
    let check = |extra: &str, want: &str| {
        let (ok, out) = validate(&config(&[], &[cluster("c", "x.test", 80, extra)]));
        assert!(!ok && out.contains(want), "{extra}: {out}");
    };
    check("    dns_resolvers: [{ socket_address: { address: dns.test, port_value: 53 } }]\n",
        "static_resources.clusters[0].dns_resolvers[0].socket_address.address: DNS resolver 'dns.test' is not an IP address");
    let cares = |field: &str| {
        format!("    typed_dns_resolver_config:\n      name: envoy.network.dns_resolver.cares\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig\n        {field}\n")
    };
    check(&cares("qcache_max_ttl: 60"), "typed_dns_resolver_config.typed_config.qcache_max_ttl");
    check(&cares("rotate_nameservers: true"), "rotate_nameservers");
}
