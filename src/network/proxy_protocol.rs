//! The PROXY protocol header Courier writes first on an upstream connection
//! (`envoy.transport_sockets.upstream_proxy_protocol`), so that the upstream
//! learns the downstream client's address, as HAProxy's spec defines it.
//!
//! As Envoy 1.40: v1 is `PROXY TCP4|TCP6 <source> <destination> <sport> <dport>\r\n`
//! (`PROXY UNKNOWN\r\n` when the two are not of one IP family); v2 is the binary
//! header with the `PROXY` command and the configured `added_tlvs` after the
//! addresses. The source is the downstream connection's remote address and the
//! destination its local one (both as a listener's PROXY filter may have restored
//! them). A connection made for no downstream (none is known) gets v1's
//! `UNKNOWN` or v2's `LOCAL` command. (The listener filter that reads such headers
//! is `extensions::filters::listener::proxy_protocol`.)

use std::net::SocketAddr;

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

/// A cluster's `ProxyProtocolUpstreamTransport`.
#[derive(Debug)]
pub struct UpstreamProxyProtocol {
    pub version: Version,
    /// `added_tlvs`: (type, value), written in order after v2's addresses.
    pub added_tlvs: Vec<(u8, Vec<u8>)>,
    pub stats: UpstreamProxyProtocolStats,
}

impl UpstreamProxyProtocol {
    /// The header for a connection made for a downstream with these
    /// `(remote, local)` addresses, or for none.
    pub fn header(&self, downstream: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
        match self.version {
            Version::V1 => v1(downstream),
            Version::V2 => self.v2(downstream),
        }
    }

    fn v2(&self, downstream: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
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
            for (kind, value) in &self.added_tlvs {
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

    fn pp(version: Version, added_tlvs: Vec<(u8, Vec<u8>)>) -> UpstreamProxyProtocol {
        UpstreamProxyProtocol { version, added_tlvs, stats: UpstreamProxyProtocolStats::new(&Store::new(), "c.") }
    }

    /// The bytes Envoy 1.40 wrote for the same connections.
    #[test]
    fn headers_are_envoys() {
        let d = Some(("127.0.0.1:52490".parse().expect("addr"), "127.0.0.1:23400".parse().expect("addr")));
        assert_eq!(pp(Version::V1, vec![]).header(d), b"PROXY TCP4 127.0.0.1 127.0.0.1 52490 23400\r\n");
        let v2 = pp(Version::V2, vec![(0xe0, b"hello".to_vec())]).header(d);
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(b"!\x11\x00\x14\x7f\x00\x00\x01\x7f\x00\x00\x01\xcd\x0a\x5b\x68\xe0\x00\x05hello");
        assert_eq!(v2, want);
        assert_eq!(pp(Version::V1, vec![]).header(None), b"PROXY UNKNOWN\r\n");
        let six = Some(("[::1]:1".parse().expect("addr"), "[::1]:2".parse().expect("addr")));
        assert_eq!(pp(Version::V1, vec![]).header(six), b"PROXY TCP6 ::1 ::1 1 2\r\n");
        let local = pp(Version::V2, vec![]).header(None);
        assert_eq!(&local[12..], b"\x20\x00\x00\x00");
    }
}
