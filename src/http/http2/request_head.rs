//! A decoded request header list checked against RFC 9113 §8.2 and §8.3 and
//! made the request's head (`http::request::Parts`), as `h2` hands it over
//! today: an absolute URI from `:scheme`, `:authority` and `:path`, the
//! regular fields in order (cookie crumbs still apart: the connection loop
//! counts and joins them), and an extended CONNECT's `:protocol` beside.
//!
//! A list that breaks a rule is malformed, and RFC 9113 §8.1.1 makes that a
//! stream error PROTOCOL_ERROR; Envoy's default
//! (`stream_error_on_invalid_http_message` false) ends the whole connection
//! instead, which is the caller's choice to make, so `Malformed` says which
//! rule broke and leaves the reaction to it. Trailers have their own check:
//! any pseudo-header in them is malformed.
//!
//! Where the RFC leaves a choice, Envoy 1.40's, checked by sending each case to
//! it: `te: Trailers` passes (compared without case); a `:path` starts with
//! `/`, or is `*` for OPTIONS; a `host` that differs from `:authority` passes
//! (the connection loop makes `:authority` the request's host), and a `host`
//! without `:authority` stands for it, but a request with neither is refused;
//! values with leading or trailing spaces and obs-text pass, controls other
//! than HTAB do not (what `http::HeaderValue` admits); names must be
//! lower-case tokens.
//!
//! The downstream connection loop applies it to each request's decoded list.

use std::fmt;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use super::hpack::Field;

/// RFC 9113's PROTOCOL_ERROR, the code a malformed message's stream is reset with.
pub const PROTOCOL_ERROR: u32 = 0x1;

/// A request's head as decoded from its header list.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: http::request::Parts,
    /// An extended CONNECT's `:protocol` (RFC 8441), e.g. `websocket`.
    pub protocol: Option<HeaderValue>,
}

/// Which rule a header list broke (each makes the message malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A field name with upper-case letters (§8.2.1).
    UppercaseName,
    /// A field name that is empty or not a token (§8.2.1).
    InvalidName,
    /// A field value with NUL, CR, LF or another control character (§8.2.1).
    InvalidValue,
    /// A pseudo-header after a regular field (§8.3).
    PseudoAfterRegular,
    /// A pseudo-header twice (§8.3.1).
    DuplicatePseudo,
    /// A pseudo-header RFC 9113 does not define for requests (§8.3).
    UnknownPseudo,
    /// `:status` in a request (§8.3).
    ResponsePseudo,
    /// `connection`, `keep-alive`, `proxy-connection`, `transfer-encoding` or `upgrade` (§8.2.2).
    ConnectionSpecific,
    /// `te` with another value than `trailers` (§8.2.2).
    TeNotTrailers,
    /// No `:method`, `:scheme` or `:path` in a request other than CONNECT (§8.3.1).
    MissingPseudo,
    /// Neither `:authority` nor `host` (RFC 9113 §8.3.1 allows it; Envoy does not).
    MissingAuthority,
    /// An empty `:path` (§8.3.1).
    EmptyPath,
    /// A `:path` that is neither `/...` nor OPTIONS' `*` (§8.3.1).
    InvalidPath,
    InvalidMethod,
    InvalidScheme,
    /// An `:authority` that is not a URI authority (§8.3.1).
    InvalidAuthority,
    /// An `:authority` with userinfo (§8.3.1).
    AuthorityUserinfo,
    /// CONNECT with `:scheme` or `:path`, or without `:authority` (§8.5).
    ConnectPseudo,
    /// `:protocol` when extended CONNECT is off, or not on a CONNECT (RFC 8441 §4).
    ProtocolNotAllowed,
    /// An extended CONNECT without `:scheme`, `:path` or `:authority` (RFC 8441 §4).
    ExtendedConnectPseudo,
    /// A pseudo-header in trailers (§8.1).
    PseudoInTrailers,
}

impl Malformed {
    /// The rule, with where the RFC says it.
    pub fn rule(self) -> &'static str {
        match self {
            Self::UppercaseName => "RFC 9113 8.2.1: field names are lower-case",
            Self::InvalidName => "RFC 9113 8.2.1: field names are tokens",
            Self::InvalidValue => "RFC 9113 8.2.1: field values hold no NUL, CR, LF or control characters",
            Self::PseudoAfterRegular => "RFC 9113 8.3: pseudo-headers come before regular fields",
            Self::DuplicatePseudo => "RFC 9113 8.3.1: a pseudo-header appears at most once",
            Self::UnknownPseudo => "RFC 9113 8.3: only defined pseudo-headers",
            Self::ResponsePseudo => "RFC 9113 8.3: no response pseudo-header in a request",
            Self::ConnectionSpecific => "RFC 9113 8.2.2: no connection-specific fields",
            Self::TeNotTrailers => "RFC 9113 8.2.2: te holds only \"trailers\"",
            Self::MissingPseudo => "RFC 9113 8.3.1: :method, :scheme and :path are required",
            Self::MissingAuthority => "RFC 9113 8.3.1 (as Envoy applies it): :authority or host is required",
            Self::EmptyPath => "RFC 9113 8.3.1: :path is not empty",
            Self::InvalidPath => "RFC 9113 8.3.1: :path is an origin form, or * for OPTIONS",
            Self::InvalidMethod => "RFC 9110 9.1: :method is a token",
            Self::InvalidScheme => "RFC 9113 8.3.1: :scheme is a URI scheme",
            Self::InvalidAuthority => "RFC 9113 8.3.1: :authority is a URI authority",
            Self::AuthorityUserinfo => "RFC 9113 8.3.1: :authority has no userinfo",
            Self::ConnectPseudo => "RFC 9113 8.5: CONNECT has :authority and no :scheme or :path",
            Self::ProtocolNotAllowed => "RFC 8441 4: :protocol only on CONNECT, with SETTINGS_ENABLE_CONNECT_PROTOCOL",
            Self::ExtendedConnectPseudo => "RFC 8441 4: extended CONNECT has :scheme, :path and :authority",
            Self::PseudoInTrailers => "RFC 9113 8.1: no pseudo-headers in trailers",
        }
    }

    /// RFC 9113 §8.1.1 makes every malformed message a stream error
    /// PROTOCOL_ERROR (Envoy's default escalates it to the connection).
    pub fn is_stream_error(self) -> bool {
        true
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rule())
    }
}

impl std::error::Error for Malformed {}

/// The request pseudo-headers, as found.
#[derive(Default)]
struct Pseudo {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    protocol: Option<Bytes>,
}

/// Room in a request's map for the headers the proxy adds to it.
const REQUEST_HEADROOM: usize = 4;

/// Checks a request's decoded header list and makes its head.
/// `extended_connect`: this side advertised SETTINGS_ENABLE_CONNECT_PROTOCOL.
pub fn request_head(fields: Vec<Field>, extended_connect: bool) -> Result<RequestHead, Malformed> {
    let mut pseudo = Pseudo::default();
    let mut pseudo_count = 0;
    for f in &fields {
        if !f.is_pseudo() {
            break;
        }
        let slot = match &f.name[..] {
            b":method" => &mut pseudo.method,
            b":scheme" => &mut pseudo.scheme,
            b":authority" => &mut pseudo.authority,
            b":path" => &mut pseudo.path,
            b":protocol" => &mut pseudo.protocol,
            b":status" => return Err(Malformed::ResponsePseudo),
            _ => return Err(Malformed::UnknownPseudo),
        };
        if slot.replace(f.value.clone()).is_some() {
            return Err(Malformed::DuplicatePseudo);
        }
        pseudo_count += 1;
    }
    // A spare map with room for what the proxy adds (`host` from `:authority`,
    // `x-forwarded-proto`, `x-request-id`, ...), so it is not regrown per request.
    let regular = fields.len() - pseudo_count;
    let map = crate::http::header_map_pool::take(regular + REQUEST_HEADROOM);
    let headers = regular_fields(map, fields.into_iter().skip(pseudo_count), false)?;
    let method = Method::from_bytes(pseudo.method.as_deref().ok_or(Malformed::MissingPseudo)?)
        .map_err(|_| Malformed::InvalidMethod)?;
    let protocol = match pseudo.protocol.take() {
        Some(_) if !extended_connect || method != Method::CONNECT => return Err(Malformed::ProtocolNotAllowed),
        Some(p) => Some(HeaderValue::from_maybe_shared(p).map_err(|_| Malformed::InvalidValue)?),
        None => None,
    };
    let authority = pseudo.authority.map(authority).transpose()?;
    let mut uri = http::uri::Parts::default();
    if method == Method::CONNECT && protocol.is_none() {
        if pseudo.scheme.is_some() || pseudo.path.is_some() || authority.is_none() {
            return Err(Malformed::ConnectPseudo);
        }
        uri.authority = authority;
    } else {
        let (Some(scheme), Some(path)) = (pseudo.scheme, pseudo.path) else {
            return Err(if protocol.is_some() { Malformed::ExtendedConnectPseudo } else { Malformed::MissingPseudo });
        };
        if protocol.is_some() && authority.is_none() {
            return Err(Malformed::ExtendedConnectPseudo);
        }
        if path.is_empty() {
            return Err(Malformed::EmptyPath);
        }
        if !(path.starts_with(b"/") || (&path[..] == b"*" && method == Method::OPTIONS)) {
            return Err(Malformed::InvalidPath);
        }
        uri.scheme = Some(Scheme::try_from(&scheme[..]).map_err(|_| Malformed::InvalidScheme)?);
        uri.authority = authority;
        uri.path_and_query = Some(PathAndQuery::from_maybe_shared(path).map_err(|_| Malformed::InvalidPath)?);
    }
    // A request with `host` and no `:authority`: relative URI, `host` as it is.
    if uri.authority.is_none() {
        if !headers.contains_key(http::header::HOST) {
            return Err(Malformed::MissingAuthority);
        }
        uri.scheme = None;
    }
    let uri = Uri::from_parts(uri).map_err(|_| Malformed::InvalidPath)?;
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_2;
    parts.headers = headers;
    Ok(RequestHead { parts, protocol })
}

/// Checks a trailer section's decoded list and makes its fields.
pub fn trailers(fields: Vec<Field>) -> Result<HeaderMap, Malformed> {
    regular_fields(HeaderMap::with_capacity(fields.len()), fields.into_iter(), true)
}

fn authority(value: Bytes) -> Result<Authority, Malformed> {
    if value.contains(&b'@') {
        return Err(Malformed::AuthorityUserinfo);
    }
    Authority::from_maybe_shared(value).map_err(|_| Malformed::InvalidAuthority)
}

/// The regular fields (everything past the pseudo-headers) checked and made a `HeaderMap`.
fn regular_fields(
    mut headers: HeaderMap,
    fields: impl Iterator<Item = Field>,
    trailers: bool,
) -> Result<HeaderMap, Malformed> {
    for f in fields {
        if f.is_pseudo() {
            return Err(if trailers { Malformed::PseudoInTrailers } else { Malformed::PseudoAfterRegular });
        }
        if f.name.iter().any(u8::is_ascii_uppercase) {
            return Err(Malformed::UppercaseName);
        }
        let name = HeaderName::from_bytes(&f.name).map_err(|_| Malformed::InvalidName)?;
        if is_connection_specific(&name) {
            return Err(Malformed::ConnectionSpecific);
        }
        if name == http::header::TE && !f.value.eq_ignore_ascii_case(b"trailers") {
            return Err(Malformed::TeNotTrailers);
        }
        let mut value = HeaderValue::from_maybe_shared(f.value).map_err(|_| Malformed::InvalidValue)?;
        value.set_sensitive(f.sensitive);
        headers.append(name, value);
    }
    Ok(headers)
}

fn is_connection_specific(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter().map(|(n, v)| Field::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    const GET: [(&str, &str); 4] =
        [(":method", "GET"), (":scheme", "https"), (":path", "/a?b=c"), (":authority", "example.com")];

    fn with(extra: &[(&str, &str)]) -> Vec<Field> {
        let mut list = fields(&GET);
        list.extend(fields(extra));
        list
    }

    fn refused(list: Vec<Field>) -> Malformed {
        match request_head(list, true) {
            Err(m) => m,
            Ok(head) => panic!("accepted: {:?}", head.parts),
        }
    }

    #[test]
    fn a_request_becomes_its_head() {
        let head = request_head(with(&[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")]), false);
        let head = head.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.parts.method, Method::GET);
        assert_eq!(head.parts.uri, "https://example.com/a?b=c");
        assert_eq!(head.parts.version, Version::HTTP_2);
        let cookies: Vec<_> = head.parts.headers.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(head.parts.headers.len(), 3);
        assert!(head.protocol.is_none());
    }

    #[test]
    fn pseudo_headers_come_first_once_and_only_known_ones() {
        let mut list = fields(&GET[..3]);
        list.push(Field::new("accept", "*/*"));
        list.push(Field::new(":authority", "example.com"));
        assert_eq!(refused(list), Malformed::PseudoAfterRegular);
        assert_eq!(refused(with(&[(":path", "/again")])), Malformed::DuplicatePseudo);
        let mut dup = fields(&GET);
        dup.insert(1, Field::new(":method", "POST"));
        assert_eq!(refused(dup), Malformed::DuplicatePseudo);
        let mut unknown = fields(&GET);
        unknown.insert(0, Field::new(":foo", "bar"));
        assert_eq!(refused(unknown), Malformed::UnknownPseudo);
        let mut status = fields(&GET);
        status.insert(0, Field::new(":status", "200"));
        assert_eq!(refused(status), Malformed::ResponsePseudo);
    }

    #[test]
    fn names_are_lower_case_tokens_and_values_have_no_controls() {
        assert_eq!(refused(with(&[("Accept", "*/*")])), Malformed::UppercaseName);
        assert_eq!(refused(with(&[("x a", "v")])), Malformed::InvalidName);
        assert_eq!(refused(with(&[("", "v")])), Malformed::InvalidName);
        assert_eq!(refused(with(&[("x-a", "v\r\nx-b: w")])), Malformed::InvalidValue);
        assert_eq!(refused(with(&[("x-a", "v\0")])), Malformed::InvalidValue);
        assert_eq!(refused(with(&[("x-a", "v\x01")])), Malformed::InvalidValue);
        // As Envoy: surrounding spaces and obs-text pass.
        assert!(request_head(with(&[("x-a", " v "), ("x-b", "caf\u{e9}")]), false).is_ok());
    }

    #[test]
    fn connection_specific_fields_are_refused_and_te_is_only_trailers() {
        for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] {
            assert_eq!(refused(with(&[(name, "x")])), Malformed::ConnectionSpecific, "{name}");
        }
        assert_eq!(refused(with(&[("te", "gzip")])), Malformed::TeNotTrailers);
        assert_eq!(refused(with(&[("te", "trailers, gzip")])), Malformed::TeNotTrailers);
        assert!(request_head(with(&[("te", "trailers")]), false).is_ok());
        assert!(request_head(with(&[("te", "Trailers")]), false).is_ok());
    }

    #[test]
    fn method_scheme_and_path_are_required_and_well_formed() {
        for missing in [":method", ":scheme", ":path"] {
            let list = fields(&GET).into_iter().filter(|f| f.name != missing.as_bytes()).collect();
            assert_eq!(refused(list), Malformed::MissingPseudo, "{missing}");
        }
        let with_path = |method: &str, path: &str| {
            fields(&[(":method", method), (":scheme", "http"), (":path", path), (":authority", "a")])
        };
        assert_eq!(refused(with_path("GET", "")), Malformed::EmptyPath);
        assert_eq!(refused(with_path("GET", "up")), Malformed::InvalidPath);
        assert_eq!(refused(with_path("GET", "*")), Malformed::InvalidPath);
        assert!(request_head(with_path("OPTIONS", "*"), false).is_ok());
        assert_eq!(refused(with_path("G E T", "/")), Malformed::InvalidMethod);
        let bad_scheme = fields(&[(":method", "GET"), (":scheme", "ht tp"), (":path", "/"), (":authority", "a")]);
        assert_eq!(refused(bad_scheme), Malformed::InvalidScheme);
    }

    #[test]
    fn authority_and_host() {
        let bare = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
        assert_eq!(refused(fields(&bare)), Malformed::MissingAuthority);
        // `host` alone stands for the authority (as Envoy: the request is served).
        let mut host_only = fields(&bare);
        host_only.push(Field::new("host", "example.com"));
        let head = request_head(host_only, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.parts.uri, "/");
        assert_eq!(head.parts.headers["host"], "example.com");
        // A `host` unlike `:authority` passes (as Envoy); `:authority` is the URI's.
        let head = request_head(with(&[("host", "other.example")]), false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.parts.uri.authority().map(|a| a.as_str()), Some("example.com"));
        let userinfo = fields(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "u@a")]);
        assert_eq!(refused(userinfo), Malformed::AuthorityUserinfo);
        let bad = fields(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a b")]);
        assert_eq!(refused(bad), Malformed::InvalidAuthority);
    }

    #[test]
    fn connect_has_an_authority_and_no_scheme_or_path() {
        let head = request_head(fields(&[(":method", "CONNECT"), (":authority", "example.com:443")]), false);
        let head = head.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.parts.method, Method::CONNECT);
        assert_eq!(head.parts.uri.authority().map(|a| a.as_str()), Some("example.com:443"));
        assert_eq!(refused(fields(&[(":method", "CONNECT")])), Malformed::ConnectPseudo);
        let with_path = fields(&[(":method", "CONNECT"), (":authority", "a:1"), (":path", "/")]);
        assert_eq!(refused(with_path), Malformed::ConnectPseudo);
        let with_scheme = fields(&[(":method", "CONNECT"), (":scheme", "https"), (":authority", "a:1")]);
        assert_eq!(refused(with_scheme), Malformed::ConnectPseudo);
    }

    #[test]
    fn extended_connect_carries_its_protocol() {
        let ws = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", "/chat"),
            (":authority", "a"),
        ];
        let head = request_head(fields(&ws), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.protocol.as_ref().map(|p| p.as_bytes()), Some(&b"websocket"[..]));
        assert_eq!(head.parts.uri, "https://a/chat");
        // Not advertised, or not on CONNECT.
        assert_eq!(request_head(fields(&ws), false).err(), Some(Malformed::ProtocolNotAllowed));
        let on_get =
            [(":method", "GET"), (":protocol", "websocket"), (":scheme", "https"), (":path", "/"), (":authority", "a")];
        assert_eq!(refused(fields(&on_get)), Malformed::ProtocolNotAllowed);
        // Missing :path, :scheme or :authority.
        for missing in [":path", ":scheme", ":authority"] {
            let list = fields(&ws).into_iter().filter(|f| f.name != missing.as_bytes()).collect();
            assert_eq!(refused(list), Malformed::ExtendedConnectPseudo, "{missing}");
        }
    }

    /// h2spec 8.3/4, which Courier on `h2` fails: `:method` in trailers.
    #[test]
    fn trailers_have_no_pseudo_headers() {
        assert_eq!(trailers(fields(&[(":method", "GET")])), Err(Malformed::PseudoInTrailers));
        assert_eq!(trailers(fields(&[("x-t", "1"), (":path", "/")])), Err(Malformed::PseudoInTrailers));
        assert_eq!(trailers(fields(&[("connection", "close")])), Err(Malformed::ConnectionSpecific));
        assert_eq!(trailers(fields(&[("X-T", "1")])), Err(Malformed::UppercaseName));
        let ok = trailers(fields(&[("grpc-status", "0"), ("grpc-message", "")])).unwrap_or_default();
        assert_eq!(ok.len(), 2);
        assert!(Malformed::PseudoInTrailers.is_stream_error());
    }

    #[test]
    fn sensitive_fields_stay_sensitive() {
        let mut list = with(&[]);
        list.push(Field { name: "authorization".into(), value: "secret".into(), sensitive: true });
        let head = request_head(list, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(head.parts.headers["authorization"].is_sensitive());
    }
}
