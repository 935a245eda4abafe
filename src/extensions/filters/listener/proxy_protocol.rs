//! `envoy.filters.listener.proxy_protocol`: reads the PROXY protocol header (v1
//! text or v2 binary, HAProxy's spec) that a load balancer in front sends first,
//! and replaces the connection's remote and local addresses with the ones it
//! carries, for everything after: filter-chain matching by source, access logs,
//! `x-forwarded-for`. The header is consumed (the chain never sees it), and only
//! the header: it is peeked first so that not one byte of the client's data is
//! read. A malformed header closes the connection and is counted, as in Envoy.
//! With `rules`, the v2 header's TLVs of the listed types go into the
//! connection's dynamic metadata (the filter's namespace unless the rule names
//! one), their bytes as a string with each invalid UTF-8 byte as `!`, as Envoy's;
//! with `pass_through_tlvs`, those it names are kept with the connection, for
//! a cluster's `upstream_proxy_protocol` to pass on. A TLV list that does not
//! parse is a v2 error, with neither too, as Envoy 1.40 (a `LOCAL` header's
//! are not looked at). A header of a version in
//! `disallowed_versions` is refused (`versions.<v>.found` and `.disallowed`), or,
//! with requests without a header allowed, left in place as the client's data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::proxy_protocol_config::Version as PbVersion;
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::google::protobuf::{Any, Struct};
use tokio::io::AsyncReadExt;

use super::ListenerFilterExtension;
use crate::common::dynamic_metadata::string_value;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::transport_sockets::proxy_protocol::pass_through_tlvs;
use crate::network::proxy_protocol::Tlv;
use crate::network::{AcceptedSocket, ListenerFilterError, ListenerFilterFactory, ListenerFilterFuture};
use crate::stats::{Counter, Store};

pub const EXTENSION: ListenerFilterExtension = ListenerFilterExtension {
    name: "envoy.filters.listener.proxy_protocol",
    config_type: "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
    create,
};

define_stats! {
    /// `proxy_proto.[<stat_prefix>.]*`
    #[derive(Debug)]
    pub struct ProxyProtocolStats {
        counter not_found_allowed,
        counter not_found_disallowed,
    }
}

define_stats! {
    /// `proxy_proto.[<stat_prefix>.]versions.<v1|v2>.*`
    #[derive(Debug)]
    pub struct ProxyProtocolVersionStats {
        counter found,
        counter disallowed,
        counter error,
    }
}

const V1_SIGNATURE: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header's longest form, CRLF included (the spec's 107 bytes).
const V1_MAX: usize = 107;
/// The fixed part of a v2 header: signature, version/command, family, length.
const V2_FIXED: usize = 16;

/// The namespace of `rules` that name none.
const NAMESPACE: &str = "envoy.filters.listener.proxy_protocol";

/// A `rules` entry: a TLV type and where its value goes.
#[derive(Debug)]
struct TlvRule {
    kind: u8,
    namespace: String,
    key: String,
}

#[derive(Debug)]
struct ProxyProtocolFactory {
    allow_without: bool,
    /// `disallowed_versions`: v1, v2.
    disallowed: [bool; 2],
    rules: Vec<TlvRule>,
    /// The TLVs kept for an upstream PROXY header.
    pass_through: crate::network::proxy_protocol::PassThroughTlvs,
    stats: ProxyProtocolStats,
    v1: ProxyProtocolVersionStats,
    v2: ProxyProtocolVersionStats,
    /// Envoy's legacy root counter for any header error.
    proxy_proto_error: Arc<Counter>,
}

fn create(any: &Any, path: &FieldPath, store: &Store) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError> {
    let cfg: ProxyProtocol = decode_any(any, path)?;
    let prefix = match cfg.stat_prefix.as_str() {
        "" => "proxy_proto.".to_string(),
        p => format!("proxy_proto.{p}."),
    };
    let mut rules = Vec::with_capacity(cfg.rules.len());
    for (i, rule) in cfg.rules.iter().enumerate() {
        let mut at = path.child("rules");
        at.push_index(i);
        // The schema bounds the type below 256 and requires the pair.
        let kind =
            u8::try_from(rule.tlv_type).map_err(|_| at.field_error("tlv_type", "value must be less than 256"))?;
        let pair = rule.on_tlv_present.clone().unwrap_or_default();
        let namespace =
            if pair.metadata_namespace.is_empty() { NAMESPACE.to_string() } else { pair.metadata_namespace };
        rules.push(TlvRule { kind, namespace, key: pair.key });
    }
    let disallowed = |v: PbVersion| cfg.disallowed_versions.contains(&(v as i32));
    Ok(Arc::new(ProxyProtocolFactory {
        allow_without: cfg.allow_requests_without_proxy_protocol,
        disallowed: [disallowed(PbVersion::V1), disallowed(PbVersion::V2)],
        rules,
        pass_through: pass_through_tlvs(cfg.pass_through_tlvs.as_ref()),
        stats: ProxyProtocolStats::new(store, &prefix),
        v1: ProxyProtocolVersionStats::new(store, &format!("{prefix}versions.v1.")),
        v2: ProxyProtocolVersionStats::new(store, &format!("{prefix}versions.v2.")),
        proxy_proto_error: store.counter("downstream_cx_proxy_proto_error"),
    }))
}

/// What a header says.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// The addresses of the client and of the destination it connected to;
    /// v2's TLVs, if any, start at `tlvs_at` (`len` for v1).
    Proxied { len: usize, remote: SocketAddr, local: SocketAddr, tlvs_at: usize },
    /// A header that keeps the connection's own addresses (v1 `UNKNOWN`, v2 `LOCAL`
    /// or an address family other than IPv4/IPv6).
    Local { len: usize },
}

/// The outcome of looking at the first bytes.
#[derive(Debug, PartialEq, Eq)]
enum Parse {
    /// At least this many bytes are needed.
    NeedMore(usize),
    /// Neither signature.
    NotFound,
    Found(Version, Header),
    Error(Version),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl ProxyProtocolFactory {
    fn is_disallowed(&self, v: Version) -> bool {
        self.disallowed[match v {
            Version::V1 => 0,
            Version::V2 => 1,
        }]
    }

    fn version(&self, v: Version) -> &ProxyProtocolVersionStats {
        match v {
            Version::V1 => &self.v1,
            Version::V2 => &self.v2,
        }
    }
}

impl ProxyProtocolFactory {
    /// Each rule's TLV, when present, into the connection's metadata.
    fn apply_rules(&self, tlvs: &[(u8, &[u8])], socket: &mut AcceptedSocket) {
        for rule in &self.rules {
            if let Some((_, value)) = tlvs.iter().find(|(kind, _)| *kind == rule.kind) {
                let fields = [(rule.key.clone(), string_value(sanitize_utf8(value)))].into_iter().collect();
                socket.dynamic_metadata.set_fields(&rule.namespace, Struct { fields });
            }
        }
    }
}

/// The TLVs after a v2 header's addresses: type, 16-bit length, value; `None`
/// when one runs past the end.
fn parse_tlvs(mut data: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut tlvs = Vec::new();
    while !data.is_empty() {
        let len = usize::from(u16::from_be_bytes([*data.get(1)?, *data.get(2)?]));
        tlvs.push((data[0], data.get(3..3 + len)?));
        data = &data[3 + len..];
    }
    Some(tlvs)
}

/// `bytes` as text, each byte of an invalid UTF-8 sequence replaced by `!`
/// (Envoy's `MessageUtil::sanitizeUtf8String`).
fn sanitize_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                out.extend(std::iter::repeat_n('!', bad));
                bytes = &rest[bad..];
            }
        }
    }
}

impl ListenerFilterFactory for ProxyProtocolFactory {
    fn on_accept<'a>(&'a self, socket: &'a mut AcceptedSocket) -> ListenerFilterFuture<'a> {
        Box::pin(async move {
            let mut buf = vec![0u8; V1_MAX];
            let mut have = 0;
            let (version, header) = loop {
                let n = socket.peek_more(&mut buf, have).await.map_err(|_| ListenerFilterError::RemoteClose)?;
                if n <= have && n < buf.len() {
                    return Err(ListenerFilterError::RemoteClose);
                }
                have = n;
                match parse(&buf[..have]) {
                    Parse::NeedMore(want) => {
                        if want > buf.len() {
                            buf.resize(want, 0);
                        } else if have == buf.len() {
                            // Full and still no end: only a v1 line can do that.
                            self.v1.error.inc();
                            self.proxy_proto_error.inc();
                            return Err(ListenerFilterError::Rejected);
                        }
                    }
                    Parse::NotFound if self.allow_without => {
                        self.stats.not_found_allowed.inc();
                        return Ok(());
                    }
                    Parse::NotFound => {
                        self.stats.not_found_disallowed.inc();
                        self.proxy_proto_error.inc();
                        return Err(ListenerFilterError::Rejected);
                    }
                    Parse::Error(v) => {
                        self.version(v).error.inc();
                        self.proxy_proto_error.inc();
                        return Err(ListenerFilterError::Rejected);
                    }
                    // With requests without a header allowed, a disallowed
                    // version's signature is not looked for: its bytes are data.
                    Parse::Found(v, _) if self.is_disallowed(v) && self.allow_without => {
                        self.stats.not_found_allowed.inc();
                        return Ok(());
                    }
                    // Envoy 1.40 counts the header found, then refused; not as an error.
                    Parse::Found(v, _) if self.is_disallowed(v) => {
                        self.version(v).found.inc();
                        self.version(v).disallowed.inc();
                        return Err(ListenerFilterError::Rejected);
                    }
                    Parse::Found(v, header) => break (v, header),
                }
            };
            let len = match header {
                Header::Proxied { len, remote, local, tlvs_at } => {
                    let Some(tlvs) = buf.get(tlvs_at..len).and_then(parse_tlvs) else {
                        self.v2.error.inc();
                        self.proxy_proto_error.inc();
                        return Err(ListenerFilterError::Rejected);
                    };
                    self.apply_rules(&tlvs, socket);
                    let kept: Vec<Tlv> = tlvs
                        .iter()
                        .filter(|(kind, _)| self.pass_through.passes(*kind))
                        .map(|(kind, value)| (*kind, value.to_vec()))
                        .collect();
                    if !kept.is_empty() {
                        socket.proxy_protocol_tlvs = Some(std::sync::Arc::new(kept));
                    }
                    socket.remote = remote;
                    // Restored, as Envoy's `restoreLocalAddress`: an ORIGINAL_DST
                    // cluster connects to the destination the header names.
                    socket.local = local;
                    socket.local_restored = true;
                    len
                }
                Header::Local { len } => len,
            };
            // Consume exactly the header: it was peeked whole, so this read does not wait.
            buf.truncate(len);
            socket.stream.read_exact(&mut buf).await.map_err(|_| ListenerFilterError::RemoteClose)?;
            self.version(version).found.inc();
            Ok(())
        })
    }
}

/// Fuzz target (`crate::fuzz`): the header is read from growing peeks, so each
/// prefix's answer must hold for the whole, and a header never claims more bytes
/// than were given.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    crate::common::fuzzing::prefix_stable(data, parse, |p| match p {
        Parse::NeedMore(n) => Some(*n),
        _ => None,
    });
    if let Parse::Found(_, Header::Proxied { len, .. } | Header::Local { len }) = parse(data) {
        assert!(len <= data.len(), "a header of {len} bytes in {}", data.len());
    }
}

fn parse(data: &[u8]) -> Parse {
    let starts = |sig: &[u8]| data[..data.len().min(sig.len())] == sig[..data.len().min(sig.len())];
    if starts(V1_SIGNATURE) {
        if data.len() < V1_SIGNATURE.len() {
            return Parse::NeedMore(V1_SIGNATURE.len());
        }
        return match data.windows(2).position(|w| w == b"\r\n") {
            // A line past the 107 bytes the spec allows is an error however it
            // arrived (found in one read or not: the answer may not depend on it).
            Some(end) if end + 2 > V1_MAX => Parse::Error(Version::V1),
            Some(end) => parse_v1(&data[..end]).map_or(Parse::Error(Version::V1), |h| Parse::Found(Version::V1, h)),
            None if data.len() >= V1_MAX => Parse::Error(Version::V1),
            None => Parse::NeedMore(data.len() + 1),
        };
    }
    if starts(V2_SIGNATURE) {
        let Some(fixed) = data.get(..V2_FIXED) else { return Parse::NeedMore(V2_FIXED) };
        let len = V2_FIXED + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
        return match data.get(V2_FIXED..len) {
            Some(addresses) => parse_v2(fixed[12], fixed[13], addresses, len)
                .map_or(Parse::Error(Version::V2), |h| Parse::Found(Version::V2, h)),
            None => Parse::NeedMore(len),
        };
    }
    Parse::NotFound
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>` (or `TCP6`, or `UNKNOWN ...`), CRLF cut.
fn parse_v1(line: &[u8]) -> Option<Header> {
    let len = line.len() + 2;
    let line = std::str::from_utf8(line).ok()?;
    let mut fields = line.split(' ');
    fields.next().filter(|p| *p == "PROXY")?;
    let family = fields.next()?;
    if family == "UNKNOWN" {
        return Some(Header::Local { len });
    }
    let (src, dst) = (fields.next()?.parse::<IpAddr>().ok()?, fields.next()?.parse::<IpAddr>().ok()?);
    let (sport, dport) = (fields.next()?.parse::<u16>().ok()?, fields.next()?.parse::<u16>().ok()?);
    if fields.next().is_some() {
        return None;
    }
    let v4 = match family {
        "TCP4" => true,
        "TCP6" => false,
        _ => return None,
    };
    if src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
        return None;
    }
    Some(Header::Proxied { len, remote: SocketAddr::new(src, sport), local: SocketAddr::new(dst, dport), tlvs_at: len })
}

/// The v2 version/command byte, the family/transport byte and the address block.
fn parse_v2(ver_cmd: u8, family: u8, addresses: &[u8], len: usize) -> Option<Header> {
    if ver_cmd >> 4 != 2 {
        return None;
    }
    match ver_cmd & 0x0f {
        0 => return Some(Header::Local { len }),
        1 => {}
        _ => return None,
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match family >> 4 {
        1 => {
            let a = addresses.get(..12)?;
            let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            let (src, dst) = (ip(&a[0..4]), ip(&a[4..8]));
            Some(Header::Proxied {
                len,
                remote: SocketAddr::new(src, port(&a[8..10])),
                local: SocketAddr::new(dst, port(&a[10..12])),
                tlvs_at: V2_FIXED + 12,
            })
        }
        2 => {
            let a = addresses.get(..36)?;
            let ip = |b: &[u8]| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(b);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let (src, dst) = (ip(&a[0..16]), ip(&a[16..32]));
            Some(Header::Proxied {
                len,
                remote: SocketAddr::new(src, port(&a[32..34])),
                local: SocketAddr::new(dst, port(&a[34..36])),
                tlvs_at: V2_FIXED + 36,
            })
        }
        // AF_UNSPEC and AF_UNIX: the connection's own addresses stay.
        _ => Some(Header::Local { len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reads_v1_headers() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\nGET /";
        assert_eq!(
            parse(h),
            Parse::Found(
                Version::V1,
                Header::Proxied {
                    len: 43,
                    remote: addr("192.0.2.1:5000"),
                    local: addr("198.51.100.2:80"),
                    tlvs_at: 43
                }
            )
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parse::Found(Version::V1, Header::Local { len: 15 }));
        assert_eq!(parse(b"PROXY TCP4 ::1 ::1 1 2\r\n"), Parse::Error(Version::V1));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 99999\r\n"), Parse::Error(Version::V1));
        assert_eq!(parse(b"PROXY TCP4 1.2"), Parse::NeedMore(15));
        assert_eq!(parse(b"PRO"), Parse::NeedMore(6));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::NotFound);
        assert_eq!(parse(&[b'x'; 200]), Parse::NotFound);
        // Over 107 bytes is an error even when the CRLF is in the same read (a
        // fuzz find: the answer depended on how the bytes arrived).
        let long = format!("PROXY TCP6 ::1 ::2 {}1 2\r\n", "0".repeat(100));
        assert_eq!(parse(long.as_bytes()), Parse::Error(Version::V1));
    }

    pub(crate) fn v2(cmd: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x20 | cmd, family]);
        h.extend((addresses.len() as u16).to_be_bytes());
        h.extend(addresses);
        h
    }

    #[test]
    fn tlvs_are_split_and_invalid_utf8_becomes_bangs() {
        assert_eq!(parse_tlvs(&[0xe0, 0, 2, b'a', b'b', 5, 0, 0]), Some(vec![(0xe0, &b"ab"[..]), (5, &b""[..])]));
        assert_eq!(parse_tlvs(&[0xe0, 0, 3, b'a']), None, "runs past the end");
        assert_eq!(parse_tlvs(&[0xe0, 0]), None);
        // As Envoy logged `val\xffue`.
        assert_eq!(sanitize_utf8(b"val\xffue"), "val!ue");
        assert_eq!(sanitize_utf8("é\u{1F600}".as_bytes()), "é\u{1F600}");
        assert_eq!(sanitize_utf8(&[b'a', 0xe2, 0x82]), "a!!");
    }

    #[test]
    fn reads_v2_headers() {
        let mut a = vec![10, 0, 0, 1, 10, 0, 0, 2];
        a.extend(4000u16.to_be_bytes());
        a.extend(443u16.to_be_bytes());
        a.extend([1, 0, 3, b'x']); // a TLV, skipped
        let h = v2(1, 0x11, &a);
        assert_eq!(
            parse(&h),
            Parse::Found(
                Version::V2,
                Header::Proxied {
                    len: h.len(),
                    remote: addr("10.0.0.1:4000"),
                    local: addr("10.0.0.2:443"),
                    tlvs_at: 28
                }
            )
        );
        assert_eq!(parse(&v2(0, 0x00, &[])), Parse::Found(Version::V2, Header::Local { len: 16 }));
        assert_eq!(parse(&v2(1, 0x11, &[1, 2, 3])), Parse::Error(Version::V2));
        assert_eq!(parse(&h[..20]), Parse::NeedMore(h.len()));
        let mut bad = h.clone();
        bad[12] = 0x31;
        assert_eq!(parse(&bad), Parse::Error(Version::V2));
        for cut in 0..h.len() {
            assert!(matches!(parse(&h[..cut]), Parse::NeedMore(_)), "cut {cut}");
        }
    }
}
