//! Filter-chain matching: which of a listener's filter chains serves a connection,
//! by Envoy's rules (`FilterChainManagerImpl::findFilterChain`). The criteria are
//! tried in Envoy's fixed order (destination port, destination IP, server name,
//! transport protocol, application protocols, direct source IP, source type, source
//! IP, source port); at each one only the chains with the most specific matching
//! value go on, and there is no going back: a connection whose most specific chains
//! fail a later criterion matches nothing (then the `default_filter_chain`).
//!
//! The matcher is built once on the main thread and shared read-only by every
//! worker. Matching walks the chains once per criterion and keeps only the best
//! value of each criterion on the stack: no allocation per connection, and for the
//! few chains a listener has, fewer instructions than Envoy's nested maps.

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::filter_chain_match::ConnectionSourceType;
use envoy_types::pb::envoy::config::listener::v3::FilterChainMatch;

use super::filter::FilterChain;
pub use crate::matcher::cidr::Cidr;

/// What a connection offers to the match, once the listener filters have run:
/// the addresses as the PROXY protocol may have restored them, the SNI from the
/// TLS inspector (lower case), `tls` or `raw_buffer`, and ALPN or the HTTP
/// inspector's protocol. The generic matcher's network inputs read the same.
pub type MatchInput<'a> = crate::matcher::ConnectionFacts<'a>;

/// `source_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceType {
    Any,
    /// The client is on this host: loopback, or its address is the local one.
    Local,
    External,
}

/// The criteria in Envoy's order of precedence.
const CRITERIA: usize = 9;

/// One chain's `filter_chain_match`, checked and ready to match.
#[derive(Debug, Clone)]
struct ChainMatch {
    destination_port: u16,
    destination_ips: Vec<Cidr>,
    /// Lower case; exact names and `*.suffix` wildcards.
    server_names: Vec<String>,
    transport_protocol: String,
    application_protocols: Vec<String>,
    direct_source_ips: Vec<Cidr>,
    source_type: SourceType,
    source_ips: Vec<Cidr>,
    source_ports: Vec<u16>,
}

impl ChainMatch {
    fn from_proto(m: &FilterChainMatch) -> Result<ChainMatch, String> {
        let cidrs = |ranges: &[CidrRange]| ranges.iter().map(Cidr::parse).collect::<Result<Vec<_>, _>>();
        let server_names: Vec<String> = m.server_names.iter().map(|n| n.to_ascii_lowercase()).collect();
        // Envoy accepts a wildcard only as a whole leading label.
        if server_names.iter().any(|n| n.contains('*') && (!n.starts_with("*.") || n[1..].contains('*'))) {
            return Err("partial wildcards are not supported in \"server_names\"".to_string());
        }
        Ok(ChainMatch {
            destination_port: m.destination_port.as_ref().map_or(0, |p| p.value).try_into().map_err(|_| {
                format!("destination_port {} is not a port", m.destination_port.as_ref().map_or(0, |p| p.value))
            })?,
            destination_ips: cidrs(&m.prefix_ranges)?,
            server_names,
            transport_protocol: m.transport_protocol.clone(),
            application_protocols: m.application_protocols.clone(),
            direct_source_ips: cidrs(&m.direct_source_prefix_ranges)?,
            source_type: match ConnectionSourceType::try_from(m.source_type) {
                Ok(ConnectionSourceType::SameIpOrLoopback) => SourceType::Local,
                Ok(ConnectionSourceType::External) => SourceType::External,
                _ => SourceType::Any,
            },
            source_ips: cidrs(&m.source_prefix_ranges)?,
            source_ports: m
                .source_ports
                .iter()
                .map(|p| u16::try_from(*p).map_err(|_| format!("source port {p} is not a port")))
                .collect::<Result<_, _>>()?,
        })
    }

    /// How specifically this chain matches `input` on `criterion` (higher is more
    /// specific, 0 is "any"), or `None` when it does not.
    fn specificity(&self, criterion: usize, input: &MatchInput<'_>) -> Option<u32> {
        match criterion {
            0 => exact_or_any(self.destination_port, 0, input.local.port()),
            1 => longest_prefix(&self.destination_ips, input.local.ip()),
            2 => server_name(&self.server_names, input.server_name),
            3 => exact_or_any(self.transport_protocol.as_str(), "", input.transport_protocol),
            4 => application_protocol(&self.application_protocols, input.application_protocols),
            5 => longest_prefix(&self.direct_source_ips, input.direct_remote.ip()),
            6 => match self.source_type {
                SourceType::Any => Some(0),
                SourceType::Local => is_local(input).then_some(1),
                SourceType::External => (!is_local(input)).then_some(1),
            },
            7 => longest_prefix(&self.source_ips, input.remote.ip()),
            _ => match self.source_ports.as_slice() {
                [] => Some(0),
                ports => ports.contains(&input.remote.port()).then_some(1),
            },
        }
    }

    /// Whether some connection could match both chains on every criterion: Envoy's
    /// "overlapping matching rules".
    fn overlaps(&self, other: &ChainMatch) -> bool {
        fn meet<T: PartialEq>(a: &[T], b: &[T]) -> bool {
            a.is_empty() && b.is_empty() || a.iter().any(|x| b.contains(x))
        }
        // An empty list is its own key ("any"), as in Envoy's maps.
        self.destination_port == other.destination_port
            && meet(&self.destination_ips, &other.destination_ips)
            && meet(&self.server_names, &other.server_names)
            && self.transport_protocol == other.transport_protocol
            && meet(&self.application_protocols, &other.application_protocols)
            && meet(&self.direct_source_ips, &other.direct_source_ips)
            && self.source_type == other.source_type
            && meet(&self.source_ips, &other.source_ips)
            && meet(&self.source_ports, &other.source_ports)
    }
}

fn exact_or_any<T: PartialEq>(want: T, any: T, got: T) -> Option<u32> {
    if want == any {
        Some(0)
    } else {
        (want == got).then_some(1)
    }
}

/// An empty list matches every address, as `0.0.0.0/0` and `::/0` would.
fn longest_prefix(cidrs: &[Cidr], ip: IpAddr) -> Option<u32> {
    if cidrs.is_empty() {
        return Some(0);
    }
    cidrs.iter().filter(|c| c.contains(ip)).map(|c| u32::from(c.prefix_len())).max()
}

/// Exact name first, then the longest `*.` suffix, then a chain without names.
fn server_name(names: &[String], sni: &str) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    if sni.is_empty() {
        return None;
    }
    names
        .iter()
        .filter_map(|n| match n.strip_prefix('*') {
            // `*.example.com` matches `www.example.com`, not `example.com`.
            Some(suffix) => (sni.len() > suffix.len() && sni.ends_with(suffix)).then(|| 1 + suffix.len() as u32),
            None => (n == sni).then_some(u32::MAX),
        })
        .max()
}

/// The client's first protocol that a chain names wins (Envoy walks the client's
/// list in order).
fn application_protocol(names: &[String], offered: &[String]) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    let first = offered.iter().position(|p| names.contains(p))?;
    Some((offered.len() - first) as u32)
}

/// Envoy's `isSameIpOrLoopback`, on the (possibly restored) client address.
fn is_local(input: &MatchInput<'_>) -> bool {
    let remote = input.remote.ip().to_canonical();
    remote.is_loopback() || remote == input.local.ip().to_canonical()
}

/// A listener's filter chains and how a connection finds its own.
#[derive(Debug)]
pub struct FilterChainMatcher {
    chains: Vec<(ChainMatch, Arc<FilterChain>)>,
    default: Option<Arc<FilterChain>>,
    /// One chain that matches everything: no criterion to walk.
    only: Option<Arc<FilterChain>>,
}

impl FilterChainMatcher {
    /// Checks the chains' matches as Envoy does when it adds a listener; the
    /// error is Envoy's message without its `error adding listener` prefix, and
    /// the index of the chain at fault.
    pub fn new(
        chains: Vec<(Option<&FilterChainMatch>, Arc<FilterChain>)>,
        default: Option<Arc<FilterChain>>,
    ) -> Result<FilterChainMatcher, (usize, String)> {
        let names: Vec<(Option<&FilterChainMatch>, &str)> = chains.iter().map(|(m, c)| (*m, c.name.as_str())).collect();
        let matches = Self::check(&names)?;
        let built: Vec<(ChainMatch, Arc<FilterChain>)> =
            matches.into_iter().zip(chains.iter().map(|(_, c)| c.clone())).collect();
        let empty = FilterChainMatch::default();
        let only = match chains.as_slice() {
            [(m, chain)] if m.is_none_or(|m| *m == empty) => Some(chain.clone()),
            _ => None,
        };
        Ok(FilterChainMatcher { chains: built, default, only })
    }

    /// Checks `(filter_chain_match, chain name)` of every chain, before their
    /// filters are built, as Envoy does; the checked matches on success.
    fn check(chains: &[(Option<&FilterChainMatch>, &str)]) -> Result<Vec<ChainMatch>, (usize, String)> {
        let empty = FilterChainMatch::default();
        let mut built: Vec<ChainMatch> = Vec::with_capacity(chains.len());
        for (i, (proto, name)) in chains.iter().enumerate() {
            let proto = proto.unwrap_or(&empty);
            let m = ChainMatch::from_proto(proto).map_err(|e| (i, e))?;
            for (j, earlier) in built.iter().enumerate() {
                if chains[j].0.unwrap_or(&empty) == proto {
                    let earlier_name = chains[j].1;
                    return Err((
                        i,
                        format!("filter chain '{name}' has the same matching rules defined as '{earlier_name}'"),
                    ));
                }
                if earlier.overlaps(&m) {
                    return Err((i, "multiple filter chains with overlapping matching rules are defined".to_string()));
                }
            }
            built.push(m);
        }
        Ok(built)
    }

    /// `check` alone, for a listener whose chains are not built yet; the error is
    /// as `new`'s.
    pub fn check_matches(chains: &[(Option<&FilterChainMatch>, &str)]) -> Result<(), (usize, String)> {
        Self::check(chains).map(|_| ())
    }

    /// The chain that serves a connection offering `input`, or the default chain,
    /// or `None`: Envoy closes the connection (`no_filter_chain_match`).
    pub fn find(&self, input: &MatchInput<'_>) -> Option<&Arc<FilterChain>> {
        if let Some(only) = &self.only {
            return Some(only);
        }
        let mut best = [0u32; CRITERIA];
        let still_in = |m: &ChainMatch, upto: usize, best: &[u32; CRITERIA]| {
            (0..upto).all(|c| m.specificity(c, input) == Some(best[c]))
        };
        for criterion in 0..CRITERIA {
            let top = self
                .chains
                .iter()
                .filter(|(m, _)| still_in(m, criterion, &best))
                .filter_map(|(m, _)| m.specificity(criterion, input))
                .max();
            match top {
                Some(top) => best[criterion] = top,
                None => return self.default.as_ref(),
            }
        }
        // Overlaps are refused at start-up, so one chain is left.
        self.chains.iter().find(|(m, _)| still_in(m, CRITERIA, &best)).map(|(_, c)| c).or(self.default.as_ref())
    }

    /// Every chain, the default one last (stats and config dumps).
    pub fn chains(&self) -> impl Iterator<Item = &Arc<FilterChain>> {
        self.chains.iter().map(|(_, c)| c).chain(self.default.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::bootstrap::parse_yaml;
    use crate::config::{descriptor, proto_json, FieldPath};
    use crate::network::filter::{LocalBoxFuture, NetworkFilterFactory};
    use crate::network::DownstreamConnection;
    use prost::Message;
    use prost_reflect::DynamicMessage;

    #[derive(Debug)]
    struct Nothing;

    impl NetworkFilterFactory for Nothing {
        fn on_new_connection(&self, _conn: DownstreamConnection) -> LocalBoxFuture {
            Box::pin(async {})
        }
    }

    fn chain_match(yaml: &str) -> FilterChainMatch {
        let desc = descriptor::message("envoy.config.listener.v3.FilterChainMatch").expect("schema");
        let msg: DynamicMessage =
            proto_json::decode(&desc, &parse_yaml(yaml).expect("yaml"), &mut FieldPath::new()).expect("decode");
        FilterChainMatch::decode(msg.encode_to_vec().as_slice()).expect("encode")
    }

    /// A matcher of chains named by their index, from one `filter_chain_match` each.
    fn matcher(matches: &[&str], default: bool) -> Result<FilterChainMatcher, (usize, String)> {
        let protos: Vec<FilterChainMatch> = matches.iter().map(|m| chain_match(m)).collect();
        let chains = protos
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    Some(m),
                    Arc::new(FilterChain {
                        name: i.to_string(),
                        read_filters: [].into(),
                        terminal: Arc::new(Nothing),
                        transport_socket: None,
                    }),
                )
            })
            .collect();
        let default = default.then(|| {
            Arc::new(FilterChain {
                name: "default".into(),
                read_filters: [].into(),
                terminal: Arc::new(Nothing),
                transport_socket: None,
            })
        });
        FilterChainMatcher::new(chains, default)
    }

    struct Conn {
        local: &'static str,
        remote: &'static str,
        direct: Option<&'static str>,
        sni: &'static str,
        transport: &'static str,
        alpn: &'static [&'static str],
    }

    const CONN: Conn = Conn {
        local: "10.0.0.1:443",
        remote: "192.168.1.5:50000",
        direct: None,
        sni: "",
        transport: "raw_buffer",
        alpn: &[],
    };

    fn find(m: &FilterChainMatcher, c: &Conn) -> String {
        let alpn: Vec<String> = c.alpn.iter().map(|s| s.to_string()).collect();
        let remote = c.remote.parse().expect("remote");
        let input = MatchInput {
            local: c.local.parse().expect("local"),
            remote,
            direct_remote: c.direct.map_or(remote, |d| d.parse().expect("direct")),
            server_name: c.sni,
            transport_protocol: c.transport,
            application_protocols: &alpn,
        };
        m.find(&input).map_or("none".to_string(), |c| c.name.clone())
    }

    #[test]
    fn each_criterion_picks_its_most_specific_chain() {
        // (chains' matches, connection, chain expected)
        let cases: &[(&[&str], Conn, &str)] = &[
            (&["destination_port: 443", "{}"], CONN, "0"),
            (&["destination_port: 80", "{}"], CONN, "1"),
            (&["destination_port: 80"], CONN, "none"),
            (
                &[
                    "prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]",
                    "prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 24}]",
                ],
                CONN,
                "1",
            ),
            (&["prefix_ranges: [{address_prefix: 10.9.0.0, prefix_len: 16}]", "{}"], CONN, "1"),
            (
                &["server_names: [www.example.com]", "server_names: ['*.example.com']", "{}"],
                Conn { sni: "www.example.com", ..CONN },
                "0",
            ),
            (
                &["server_names: [www.example.com]", "server_names: ['*.example.com']", "{}"],
                Conn { sni: "api.example.com", ..CONN },
                "1",
            ),
            (
                &["server_names: ['*.com']", "server_names: ['*.example.com']"],
                Conn { sni: "a.b.example.com", ..CONN },
                "1",
            ),
            (&["server_names: ['*.example.com']", "{}"], Conn { sni: "example.com", ..CONN }, "1"),
            (&["server_names: [a.example]", "{}"], CONN, "1"),
            (&["transport_protocol: tls", "transport_protocol: raw_buffer"], Conn { transport: "tls", ..CONN }, "0"),
            (&["transport_protocol: tls", "{}"], CONN, "1"),
            (
                &["application_protocols: [http/1.1]", "application_protocols: [h2]"],
                Conn { alpn: &["h2", "http/1.1"], ..CONN },
                "1",
            ),
            (&["application_protocols: [h2]"], Conn { alpn: &["http/1.1"], ..CONN }, "none"),
            (
                &["direct_source_prefix_ranges: [{address_prefix: 127.0.0.1, prefix_len: 32}]", "{}"],
                Conn { remote: "1.2.3.4:5", direct: Some("127.0.0.1:9"), ..CONN },
                "0",
            ),
            (
                &["source_type: SAME_IP_OR_LOOPBACK", "source_type: EXTERNAL"],
                Conn { remote: "127.0.0.1:1", ..CONN },
                "0",
            ),
            (&["source_type: SAME_IP_OR_LOOPBACK", "source_type: EXTERNAL"], CONN, "1"),
            (&["source_type: SAME_IP_OR_LOOPBACK", "{}"], Conn { remote: "10.0.0.1:7", ..CONN }, "0"),
            (&["source_type: EXTERNAL", "{}"], Conn { remote: "127.0.0.1:1", ..CONN }, "1"),
            (
                &[
                    "source_prefix_ranges: [{address_prefix: 192.168.0.0, prefix_len: 16}]",
                    "source_prefix_ranges: [{address_prefix: 192.168.1.0, prefix_len: 24}]",
                ],
                CONN,
                "1",
            ),
            (
                &["source_prefix_ranges: [{address_prefix: '2001:db8::', prefix_len: 32}]", "{}"],
                Conn { local: "[2001:db8::1]:443", remote: "[2001:db8:0:1::5]:1", ..CONN },
                "0",
            ),
            // An IPv4 client on an IPv6 socket matches IPv4 prefixes.
            (
                &["source_prefix_ranges: [{address_prefix: 192.168.0.0, prefix_len: 16}]", "{}"],
                Conn { local: "[::ffff:10.0.0.1]:443", remote: "[::ffff:192.168.1.5]:1", ..CONN },
                "0",
            ),
            (&["source_ports: [50000]", "{}"], CONN, "0"),
            (&["source_ports: [1]", "{}"], CONN, "1"),
        ];
        for (i, (matches, conn, want)) in cases.iter().enumerate() {
            let m = matcher(matches, false).unwrap_or_else(|e| panic!("case {i}: {e:?}"));
            assert_eq!(find(&m, conn), *want, "case {i}: {matches:?}");
        }
    }

    #[test]
    fn earlier_criteria_win_and_there_is_no_going_back() {
        let cases: &[(&[&str], Conn, &str)] = &[
            // The port is decided before the server name.
            (&["destination_port: 443", "server_names: [a.example]"], Conn { sni: "a.example", ..CONN }, "0"),
            // The exact port's chains fail on SNI: no fall-back to the any-port chain.
            (
                &["{destination_port: 443, server_names: [b.example]}", "server_names: [a.example]"],
                Conn { sni: "a.example", ..CONN },
                "none",
            ),
            // The destination IP is decided before the source.
            (
                &[
                    "prefix_ranges: [{address_prefix: 10.0.0.1, prefix_len: 32}]",
                    "source_prefix_ranges: [{address_prefix: 192.168.1.5, prefix_len: 32}]",
                ],
                CONN,
                "0",
            ),
            // Server name before transport protocol, before source port.
            (
                &["{server_names: [a.example], source_ports: [1]}", "transport_protocol: raw_buffer"],
                Conn { sni: "a.example", ..CONN },
                "none",
            ),
            (
                &["{server_names: [a.example], source_ports: [50000]}", "transport_protocol: raw_buffer"],
                Conn { sni: "a.example", ..CONN },
                "0",
            ),
        ];
        for (i, (matches, conn, want)) in cases.iter().enumerate() {
            let m = matcher(matches, false).unwrap_or_else(|e| panic!("case {i}: {e:?}"));
            assert_eq!(find(&m, conn), *want, "case {i}: {matches:?}");
        }
    }

    #[test]
    fn the_default_chain_takes_what_nothing_matches() {
        let m = matcher(&["destination_port: 80"], true).expect("matcher");
        assert_eq!(find(&m, &CONN), "default");
        let m = matcher(&["{destination_port: 443, server_names: [b.example]}"], true).expect("matcher");
        assert_eq!(find(&m, &Conn { sni: "a.example", ..CONN }), "default");
        let m = matcher(&["{}"], true).expect("matcher");
        assert_eq!(find(&m, &CONN), "0");
    }

    #[test]
    fn duplicate_and_overlapping_matches_are_refused_as_envoy_does() {
        assert_eq!(
            matcher(&["server_names: [b.com]", "server_names: [b.com]"], false).unwrap_err(),
            (1, "filter chain '1' has the same matching rules defined as '0'".to_string())
        );
        assert_eq!(
            matcher(&["server_names: [a.com, b.com]", "server_names: [b.com]"], false).unwrap_err(),
            (1, "multiple filter chains with overlapping matching rules are defined".to_string())
        );
        assert_eq!(
            matcher(&["server_names: ['*b.com']"], false).unwrap_err(),
            (0, "partial wildcards are not supported in \"server_names\"".to_string())
        );
        assert_eq!(matcher(&["{}", "{}"], false).unwrap_err().0, 1);
        matcher(&["server_names: [a.com]", "server_names: [b.com]", "{}"], false).expect("distinct");
        matcher(&["source_ports: [1]", "source_ports: [2]"], false).expect("distinct");
    }
}
