//! The PROXY protocol header Courier writes first on an upstream connection
//! (`envoy.transport_sockets.upstream_proxy_protocol`), so that the upstream
//! learns the downstream client's address, as HAProxy's spec defines it.
//!
//! As Envoy 1.40: v1 is `PROXY TCP4|TCP6 <source> <destination> <sport> <dport>\r\n`
//! (`PROXY UNKNOWN\r\n` when the two are not of one IP family); v2 is the binary
//! header with the `PROXY` command, the configured `added_tlvs` after the
//! addresses, then the TLVs of the downstream's own PROXY header that
//! `pass_through_tlvs` names, in their order (a type `added_tlvs` has is not
//! passed; two of another type both are, as Envoy 1.40's default
//! `proxy_protocol_allow_duplicate_tlvs`). The source is the downstream
//! connection's remote address and the destination its local one (both as a
//! listener's PROXY filter may have restored them), and the TLVs are those that
//! filter kept (its own `pass_through_tlvs`). A connection made for no
//! downstream (none is known) gets v1's `UNKNOWN` or v2's `LOCAL` command. (The
//! listener filter that reads such headers is
//! `extensions::filters::listener::proxy_protocol`.)

use std::net::SocketAddr;
use std::sync::Arc;

use crate::define_stats;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The most TLV bytes a v2 header can carry after the addresses (its length
/// field is 16 bits).
const V2_MAX_LEN: usize = u16::MAX as usize;

define_stats! {
    /// `cluster.<name>.upstream.proxyprotocol.*`.
    #[derive(Debug)]
    pub struct UpstreamProxyProtocolStats {
        counter v2_tlvs_exceed_max_length,
    }
}

/// The PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A PROXY v2 TLV: its type and value.
pub type Tlv = (u8, Vec<u8>);

/// The TLVs a listener kept of a downstream's header (a thin pointer: every
/// connection's `ConnectionInfo` has room for one).
pub type Tlvs = Arc<Vec<Tlv>>;

/// What an upstream PROXY header says of the downstream connection it is made
/// for (Envoy's `ProxyProtocolData`): its `(remote, local)` addresses and the
/// TLVs the listener's PROXY filter kept of the header it read. Part of a
/// pool's key, so each downstream connection has upstream connections of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Downstream {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub tlvs: Option<Tlvs>,
}

/// Which TLVs of a PROXY header go on (`ProxyProtocolPassThroughTLVs`, of the
/// listener filter and of the upstream transport alike).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PassThroughTlvs {
    /// Not configured: none.
    #[default]
    None,
    /// `INCLUDE_ALL`.
    All,
    /// `INCLUDE` with these `tlv_type`s.
    Only(Vec<u8>),
}

impl PassThroughTlvs {
    pub fn passes(&self, kind: u8) -> bool {
        match self {
            PassThroughTlvs::None => false,
            PassThroughTlvs::All => true,
            PassThroughTlvs::Only(kinds) => kinds.contains(&kind),
        }
    }
}

/// A cluster's `ProxyProtocolUpstreamTransport`.
#[derive(Debug)]
pub struct UpstreamProxyProtocol {
    pub version: Version,
    /// `added_tlvs`: (type, value), written in order after v2's addresses.
    pub added_tlvs: Vec<Tlv>,
    /// `pass_through_tlvs`: the downstream's TLVs written after them.
    pub pass_through_tlvs: PassThroughTlvs,
    pub stats: UpstreamProxyProtocolStats,
}

impl UpstreamProxyProtocol {
    /// The header for a connection made for `downstream`, or for none.
    pub fn header(&self, downstream: Option<&Downstream>) -> Vec<u8> {
        let addresses = downstream.map(|d| (d.remote, d.local));
        match self.version {
            Version::V1 => v1(addresses),
            Version::V2 => self.v2(addresses, downstream.and_then(|d| d.tlvs.as_deref()).map_or(&[], Vec::as_slice)),
        }
    }

    /// `added_tlvs`, then each passed TLV of `downstream` of a type they lack.
    fn tlvs<'a>(&'a self, downstream: &'a [Tlv]) -> impl Iterator<Item = &'a Tlv> {
        let passed = downstream.iter().filter(move |(kind, _)| {
            self.pass_through_tlvs.passes(*kind) && !self.added_tlvs.iter().any(|(added, _)| added == kind)
        });
        self.added_tlvs.iter().chain(passed)
    }

    fn v2(&self, downstream: Option<(SocketAddr, SocketAddr)>, downstream_tlvs: &[Tlv]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(V2_SIGNATURE);
        let (command, family, addresses) = match downstream {
            Some((SocketAddr::V4(src), SocketAddr::V4(dst))) => {
                let mut a = Vec::with_capacity(12);
                a.extend_from_slice(&src.ip().octets());
                a.extend_from_slice(&dst.ip().octets());
                a.extend_from_slice(&src.port().to_be_bytes());
                a.extend_from_slice(&dst.port().to_be_bytes());
                (0x21, 0x11, a)
            }
            Some((SocketAddr::V6(src), SocketAddr::V6(dst))) => {
                let mut a = Vec::with_capacity(36);
                a.extend_from_slice(&src.ip().octets());
                a.extend_from_slice(&dst.ip().octets());
                a.extend_from_slice(&src.port().to_be_bytes());
                a.extend_from_slice(&dst.port().to_be_bytes());
                (0x21, 0x21, a)
            }
            // No downstream, or families that differ: the LOCAL command, no address.
            _ => (0x20, 0x00, Vec::new()),
        };
        let mut tlvs = Vec::new();
        if command == 0x21 {
            for (kind, value) in self.tlvs(downstream_tlvs) {
                tlvs.push(*kind);
                tlvs.extend_from_slice(&(value.len() as u16).to_be_bytes());
                tlvs.extend_from_slice(value);
            }
            if addresses.len() + tlvs.len() > V2_MAX_LEN {
                self.stats.v2_tlvs_exceed_max_length.inc();
                tlvs.clear();
            }
        }
        out.push(command);
        out.push(family);
        out.extend_from_slice(&((addresses.len() + tlvs.len()) as u16).to_be_bytes());
        out.extend_from_slice(&addresses);
        out.extend_from_slice(&tlvs);
        out
    }
}

fn v1(downstream: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    match downstream {
        Some((src, dst)) if src.is_ipv4() == dst.is_ipv4() => {
            let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!("PROXY {family} {} {} {} {}\r\n", src.ip(), dst.ip(), src.port(), dst.port()).into_bytes()
        }
        _ => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;

    fn pp(version: Version, added_tlvs: Vec<Tlv>) -> UpstreamProxyProtocol {
        UpstreamProxyProtocol {
            version,
            added_tlvs,
            pass_through_tlvs: PassThroughTlvs::None,
            stats: UpstreamProxyProtocolStats::new(&Store::new(), "c."),
        }
    }

    fn downstream(remote: &str, local: &str, tlvs: Option<Vec<Tlv>>) -> Downstream {
        Downstream {
            remote: remote.parse().expect("addr"),
            local: local.parse().expect("addr"),
            tlvs: tlvs.map(Arc::new),
        }
    }

    /// The bytes Envoy 1.40 wrote for the same connections.
    #[test]
    fn headers_are_envoys() {
        let d = downstream("127.0.0.1:52490", "127.0.0.1:23400", None);
        let d = Some(&d);
        assert_eq!(pp(Version::V1, vec![]).header(d), b"PROXY TCP4 127.0.0.1 127.0.0.1 52490 23400\r\n");
        let v2 = pp(Version::V2, vec![(0xe0, b"hello".to_vec())]).header(d);
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(b"!\x11\x00\x14\x7f\x00\x00\x01\x7f\x00\x00\x01\xcd\x0a\x5b\x68\xe0\x00\x05hello");
        assert_eq!(v2, want);
        assert_eq!(pp(Version::V1, vec![]).header(None), b"PROXY UNKNOWN\r\n");
        let six = downstream("[::1]:1", "[::1]:2", None);
        assert_eq!(pp(Version::V1, vec![]).header(Some(&six)), b"PROXY TCP6 ::1 ::1 1 2\r\n");
        let local = pp(Version::V2, vec![]).header(None);
        assert_eq!(&local[12..], b"\x20\x00\x00\x00");
    }

    /// The downstream's TLVs after `added_tlvs`: those passed, none of a type
    /// `added_tlvs` has (compat `proxy_protocol_pass_through_tlvs`).
    #[test]
    fn passed_tlvs_follow_the_added_ones() {
        let tlvs = vec![(0xe1, b"a".to_vec()), (0xe0, b"dup".to_vec()), (0xe2, b"b".to_vec()), (0xe1, b"2".to_vec())];
        let d = downstream("10.0.0.1:1", "10.0.0.2:2", Some(tlvs));
        let mut all = pp(Version::V2, vec![(0xe0, b"hi".to_vec())]);
        all.pass_through_tlvs = PassThroughTlvs::All;
        assert_eq!(&all.header(Some(&d))[28..], b"\xe0\x00\x02hi\xe1\x00\x01a\xe2\x00\x01b\xe1\x00\x012");
        let mut some = pp(Version::V2, vec![]);
        some.pass_through_tlvs = PassThroughTlvs::Only(vec![0xe2, 5]);
        assert_eq!(&some.header(Some(&d))[28..], b"\xe2\x00\x01b");
        assert_eq!(pp(Version::V2, vec![]).header(Some(&d)).len(), 28, "none passed unless asked");
    }
}
