//! What the HTTP path knows of gRPC without speaking it: a request is gRPC by its
//! content type, and a reply Courier makes itself to a gRPC request is written
//! the way a gRPC client reads an error (Envoy's `sendLocalReply` for gRPC): HTTP
//! 200, `content-type: application/grpc`, the error in `grpc-status` (mapped
//! from the HTTP status) and `grpc-message` (the reply's body), and no body.

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

/// Envoy's `Grpc::Common::hasGrpcContentType`: `content-type` is
/// `application/grpc`, or it followed by `+` and a codec
/// (`application/grpc+proto`); parameters (`;...`) make it not gRPC, as in Envoy.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.strip_prefix(b"application/grpc").is_some_and(|rest| matches!(rest.first(), None | Some(b'+')))
    })
}

/// Envoy's `Grpc::Common::isProtobufRequestHeaders`: `content-type` is exactly
/// `application/x-protobuf` (what the gRPC HTTP/1.1 bridge upgrades).
pub fn is_protobuf(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/x-protobuf")
}

/// The bytes before each gRPC message: a compressed flag and the length.
pub const FRAME_HEADER_SIZE: usize = 5;

/// The header of an uncompressed gRPC message of `len` bytes (Envoy's
/// `prependGrpcFrameHeader`): flag 0, the length big-endian; `None` past 4 GiB.
pub fn frame_header(len: usize) -> Option<[u8; FRAME_HEADER_SIZE]> {
    let len = u32::try_from(len).ok()?.to_be_bytes();
    Some([0, len[0], len[1], len[2], len[3]])
}

pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Envoy's `Grpc::Utility::httpToGrpcStatus` (after the gRPC spec's
/// "HTTP to gRPC Status Code Mapping"): the gRPC status for an HTTP status.
pub fn status_for_http(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// `grpc-message` as the gRPC spec encodes it: bytes outside printable ASCII,
/// and `%`, as `%XX`.
pub fn encode_message(text: &[u8]) -> Option<HeaderValue> {
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    HeaderValue::from_bytes(&out).ok()
}

/// Turns a local reply's headers into a gRPC error response's: `headers` keep
/// what the reply carried (e.g. `location`), and gain the content type and the
/// status (`grpc_status`, or mapped from `status`) and message, for a reply
/// with a body.
pub fn error_headers(headers: &mut HeaderMap, status: StatusCode, grpc_status: Option<u8>, body: &[u8]) {
    let grpc_status = grpc_status.unwrap_or_else(|| status_for_http(status));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(GRPC_STATUS, crate::http::headers::number_value(u64::from(grpc_status)));
    if let Some(message) = (!body.is_empty()).then(|| encode_message(body)).flatten() {
        headers.insert(GRPC_MESSAGE, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        let with = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            is_grpc(&h)
        };
        assert!(with("application/grpc") && with("application/grpc+proto"));
        assert!(!with("application/grpc;x=1") && !with("application/grpc-web") && !with("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn frame_headers_and_protobuf() {
        assert_eq!(frame_header(0x0102), Some([0, 0, 0, 1, 2]));
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
        assert!(is_protobuf(&h));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf; x=1"));
        assert!(!is_protobuf(&h));
    }

    #[test]
    fn http_statuses_map_as_envoys() {
        let map = |s: u16| status_for_http(StatusCode::from_u16(s).expect("status"));
        assert_eq!([map(400), map(401), map(403), map(404)], [13, 16, 7, 12]);
        assert_eq!([map(429), map(502), map(503), map(504)], [14, 14, 14, 14]);
        assert_eq!([map(200), map(302), map(413), map(500)], [2, 2, 2, 2]);
    }

    #[test]
    fn messages_are_percent_encoded_outside_printable_ascii() {
        let v = encode_message("50% off\n — now".as_bytes()).expect("valid");
        assert_eq!(v, "50%25 off%0A %E2%80%94 now");
        let mut h = HeaderMap::new();
        error_headers(&mut h, StatusCode::NOT_FOUND, None, b"");
        assert_eq!((h["grpc-status"].to_str().ok(), h.get("grpc-message")), (Some("12"), None));
    }
}
