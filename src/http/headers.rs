//! Header rules a proxy applies on every hop: hop-by-hop removal, the
//! `x-forwarded-*` and `x-request-id` headers Envoy adds, and Envoy's notion of an
//! internal request (`x-envoy-internal`).

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
pub const X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER: HeaderName =
    HeaderName::from_static("x-envoy-downstream-service-cluster");
pub const X_ENVOY_DOWNSTREAM_SERVICE_NODE: HeaderName = HeaderName::from_static("x-envoy-downstream-service-node");
pub const X_ENVOY_EXTERNAL_ADDRESS: HeaderName = HeaderName::from_static("x-envoy-external-address");
pub const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
/// An upstream's answer asking to be taken out of rotation at once.
pub const X_ENVOY_IMMEDIATE_HEALTH_CHECK_FAIL: HeaderName =
    HeaderName::from_static("x-envoy-immediate-health-check-fail");
pub const X_ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName = HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
pub const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName = HeaderName::from_static("x-envoy-upstream-service-time");
pub const X_ENVOY_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
pub const X_ENVOY_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-envoy-original-host");
pub const X_ENVOY_DECORATOR_OPERATION: HeaderName = HeaderName::from_static("x-envoy-decorator-operation");
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The first cookie called `name` in the request's `cookie` headers, quotes
/// around its value dropped (Envoy's `Utility::parseCookieValue`).
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_string())
        })
    })
}

/// The comma-separated tokens of every `name` header, trimmed (a list-valued
/// field, RFC 9110 §5.6.1); values that are not text are skipped.
pub fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

/// `cache-control` has the `no-transform` directive (RFC 9111 §5.2): a proxy
/// must not change the content's coding.
pub fn no_transform(headers: &HeaderMap) -> bool {
    tokens(headers, http::header::CACHE_CONTROL).any(|d| d.eq_ignore_ascii_case("no-transform"))
}

/// The comma-separated tokens of every `Connection` header, trimmed.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    tokens(headers, http::header::CONNECTION)
}

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1),
/// plus those named in `Connection`. `TE: trailers` is kept, as Envoy does.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    use http::header::{CONNECTION, PROXY_AUTHENTICATE, TE, TRANSFER_ENCODING, UPGRADE};
    let always = |k: &HeaderName| {
        [CONNECTION, TRANSFER_ENCODING, UPGRADE, PROXY_AUTHENTICATE, TE].contains(k)
            || k == KEEP_ALIVE
            || k == PROXY_CONNECTION
    };
    // Most messages carry none, or only a `Connection` that names no header:
    // one pass over the names settles it.
    let mut present = headers.keys().filter(|k| always(k));
    let Some(first_name) = present.next() else { return };
    if first_name == CONNECTION && present.next().is_none() && names_no_header(headers) {
        headers.remove(CONNECTION);
        return;
    }
    // The names `Connection` lists, read once (from cheap clones of its shared
    // bytes, so they outlive its removal); past a few, the rest is read per name.
    let first = headers.get(CONNECTION).cloned();
    let more: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().skip(1).cloned().collect();
    let mut listed =
        first.iter().chain(&more).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim);
    let mut tokens = [""; 4];
    let mut count = 0;
    for slot in tokens.iter_mut() {
        match listed.next() {
            Some(t) => {
                *slot = t;
                count += 1;
            }
            None => break,
        }
    }
    let overflow: Vec<&str> = listed.collect();
    let named = |k: &HeaderName| {
        // Never let `Connection: host` or similar strip end-to-end essentials.
        k != http::header::HOST
            && k != http::header::CONTENT_LENGTH
            && tokens[..count].iter().chain(&overflow).any(|t| t.eq_ignore_ascii_case(k.as_str()))
    };
    let te_trailers = headers
        .get(TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers")));
    // One removal per header present, found by a scan rather than a lookup per
    // hop-by-hop name.
    while let Some(k) = headers.keys().find(|k| always(k) || named(k)).cloned() {
        headers.remove(k);
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether the message's one `Connection` value is just `keep-alive` or `close`
/// (what nearly every message carries), naming no header it has.
fn names_no_header(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(http::header::CONNECTION).iter();
    let (Some(value), None) = (values.next(), values.next()) else { return false };
    let token = value.as_bytes().trim_ascii();
    token.eq_ignore_ascii_case(b"keep-alive")
        || (token.eq_ignore_ascii_case(b"close") && !headers.contains_key("close"))
}

/// The control headers Envoy honours only from trusted (internal) clients: every
/// request from anyone else has them removed, edge request or not, as Envoy's
/// `cleanInternalHeaders` does (with x-envoy-internal, which only Envoy sets, and
/// x-envoy-upstream-stream-duration-ms, which its router consumes). Envoy 1.40
/// treats no address as internal unless `internal_address_config` says so
/// (Courier does not support it).
pub const UNTRUSTED_CONTROL: &[&str] = &[
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-internal",
    "x-envoy-ip-tags",
    "x-envoy-max-retries",
    "x-envoy-original-url",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-stream-duration-ms",
];

/// Removed as well from an edge request (`use_remote_address`): who the caller
/// is and what an Envoy in front did, which only such a proxy may say
/// (x-envoy-external-address is then set anew, x-envoy-original-path by a rewrite).
pub const EDGE_UNTRUSTED: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-external-address",
    "x-envoy-original-path",
];

/// Removes every header named in `names` (all `x-envoy-*`); when none is present
/// (the usual case), one pass over the map comparing a prefix, and no lookups.
pub fn remove_all(headers: &mut HeaderMap, names: &[&str]) {
    debug_assert!(names.iter().all(|n| n.starts_with("x-envoy-")));
    if headers.keys().any(|k| k.as_str().starts_with("x-envoy-") && names.contains(&k.as_str())) {
        for name in names {
            headers.remove(*name);
        }
    }
}

/// This host's own address as Envoy appends it to `x-forwarded-for` for a
/// loopback peer: the first non-loopback IPv4 of an interface, else loopback.
pub fn local_address() -> IpAddr {
    static LOCAL: std::sync::OnceLock<IpAddr> = std::sync::OnceLock::new();
    *LOCAL.get_or_init(|| first_interface_ipv4().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)))
}

fn first_interface_ipv4() -> Option<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() && found.is_none() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr; AF_INET means sockaddr_in.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found = Some(IpAddr::V4(ip));
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: frees the list returned by getifaddrs above, once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Appends `ip` to `x-forwarded-for` (a comma-separated list).
pub fn append_xff(headers: &mut HeaderMap, ip: IpAddr) {
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing},{ip}"),
        _ => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

/// The entry of `x-forwarded-for` `trusted_hops` positions from the right (0: the
/// last one), for Envoy's `xff_num_trusted_hops`.
pub fn xff_client(headers: &HeaderMap, trusted_hops: u32) -> Option<IpAddr> {
    let list: Vec<&str> = headers.get(&X_FORWARDED_FOR)?.to_str().ok()?.split(',').map(str::trim).collect();
    let idx = list.len().checked_sub(1 + trusted_hops as usize)?;
    list.get(idx)?.parse().ok()
}

/// Envoy's `Utility::appendVia`: `via` joins the request's or response's own
/// `via` after `", "`. Envoy holds `via` as one header, so several arriving
/// lines are first joined with `,` (as its header map does on receipt).
pub fn append_via(headers: &mut HeaderMap, via: &HeaderValue) {
    let mut existing = headers.get_all(http::header::VIA).iter();
    let Some(first) = existing.next() else {
        headers.insert(http::header::VIA, via.clone());
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in existing {
        joined.push(b',');
        joined.extend_from_slice(v.as_bytes());
    }
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(via.as_bytes());
    // Joined valid values with a valid separator are a valid value.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(http::header::VIA, v);
    }
}

/// `n` as a header value (`x-envoy-upstream-service-time`,
/// `x-envoy-expected-rq-timeout-ms`, made for every request). Values under 256
/// come from a table of static values built once, so the common case allocates
/// nothing and shares no reference count between workers; others allocate once
/// (`HeaderValue::from(u64)` allocates twice).
pub fn number_value(n: u64) -> HeaderValue {
    static SMALL: std::sync::OnceLock<Box<[HeaderValue]>> = std::sync::OnceLock::new();
    if let Some(v) = usize::try_from(n).ok().filter(|&i| i < 256) {
        let table = SMALL.get_or_init(|| {
            (0..256u32).map(|i| HeaderValue::from_static(Box::leak(i.to_string().into_boxed_str()))).collect()
        });
        return table[v].clone();
    }
    // Larger ones repeat too (a route's `x-envoy-expected-rq-timeout-ms`): the
    // worker keeps the last one made.
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((m, value)) if *m == n => value.clone(),
            _ => {
                let value = HeaderValue::from_str(itoa::Buffer::new().format(n))
                    .unwrap_or_else(|_| HeaderValue::from_static("0"));
                *last = Some((n, value.clone()));
                value
            }
        }
    })
}

/// A random version-4 UUID, as Envoy generates for `x-request-id`, formatted
/// without intermediate allocations (it is made for every request).
pub fn uuid_v4() -> HeaderValue {
    let hi = crate::common::random::next_u64();
    let lo = crate::common::random::next_u64();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Where each byte's two digits go in 8-4-4-4-12 form; the gaps stay dashes.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [b'-'; 36];
    for (byte, &at) in b.iter().zip(&AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_joins_what_arrived() {
        let via = HeaderValue::from_static("1.1 proxy");
        let mut h = HeaderMap::new();
        append_via(&mut h, &via);
        assert_eq!(h.get_all(http::header::VIA).iter().collect::<Vec<_>>(), ["1.1 proxy"]);
        let mut h = HeaderMap::new();
        h.append(http::header::VIA, HeaderValue::from_static("1.0 a"));
        h.append(http::header::VIA, HeaderValue::from_static("1.1 b"));
        append_via(&mut h, &via);
        assert_eq!(h.get_all(http::header::VIA).iter().collect::<Vec<_>>(), ["1.0 a,1.1 b, 1.1 proxy"]);
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("gzip, trailers"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        remove_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none() && h.get("connection").is_none() && h.get("keep-alive").is_none());
        assert_eq!(h.get("te").map(|v| v.as_bytes()), Some(&b"trailers"[..]));
        assert_eq!(h.get("x-keep").map(|v| v.as_bytes()), Some(&b"yes"[..]));
    }

    #[test]
    fn a_plain_connection_header_is_removed_and_what_it_names_too() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static(" Keep-Alive "));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        remove_hop_by_hop(&mut h);
        assert!(h.get("connection").is_none() && h.get("x-keep").is_some());
        // `close` names a header called close, which goes too.
        h.insert("connection", HeaderValue::from_static("close"));
        h.insert("close", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert!(h.get("connection").is_none() && h.get("close").is_none() && h.get("x-keep").is_some());
        // Two values: each one's tokens count.
        h.append("connection", HeaderValue::from_static("keep-alive"));
        h.append("connection", HeaderValue::from_static("x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert!(h.get("connection").is_none() && h.get("x-secret").is_none() && h.get("x-keep").is_some());
    }

    #[test]
    fn xff_and_internal() {
        let mut h = HeaderMap::new();
        append_xff(&mut h, "10.0.0.1".parse().expect("ip"));
        append_xff(&mut h, "1.2.3.4".parse().expect("ip"));
        assert_eq!(h.get(&X_FORWARDED_FOR).map(|v| v.as_bytes()), Some(&b"10.0.0.1,1.2.3.4"[..]));
        assert_eq!(xff_client(&h, 1), "10.0.0.1".parse().ok());
        assert_eq!(xff_client(&h, 0), "1.2.3.4".parse().ok());
        assert!(!local_address().is_unspecified());
    }

    #[test]
    fn number_values() {
        for n in [0, 7, 255, 256, 15000, 15000, u64::MAX, 15000] {
            assert_eq!(number_value(n), HeaderValue::from(n));
        }
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        let s = u.to_str().expect("ascii");
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert_eq!(s.matches('-').count(), 4);
        assert_ne!(uuid_v4(), u);
    }
}
