//! An IP prefix (Envoy's `CidrRange`), compiled once: the address masked to its
//! length. Filter-chain matching, RBAC's IP rules and the generic matcher's
//! `envoy.matching.matchers.ip` all test addresses against it, so it sits in this
//! low layer rather than in `network`, which re-exports it.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;

/// An IP prefix (`CidrRange`), the address masked to its length; also what
/// RBAC's IP rules match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// The error is Envoy's words, without the field path.
    pub fn parse(range: &CidrRange) -> Result<Cidr, String> {
        let addr: IpAddr =
            range.address_prefix.parse().map_err(|_| format!("malformed IP address: {}", range.address_prefix))?;
        let len = range.prefix_len.as_ref().map_or(0, |l| l.value);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("invalid prefix length {len} for {addr}"));
        }
        Ok(Cidr { addr: mask(addr, len as u8), len: len as u8 })
    }

    /// The prefix length, in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(bits.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(bits.into())
        }
    }
}
