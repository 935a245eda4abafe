//! Parsing a request head (request line and headers) and deciding how its body
//! is framed, with the checks Envoy's HTTP/1 codec makes before a request may go
//! anywhere: one framing only (`Content-Length` or `Transfer-Encoding: chunked`),
//! limits on size and count, and Envoy's leniencies (obs-fold and bare CR are
//! tolerated and normalised, as Envoy's parser does).

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri, Version};

use super::{BodyFraming, CodecError};

/// Limits from the connection manager's config.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// `max_request_headers_kb` in bytes: request line and headers together.
    pub max_bytes: usize,
    /// `common_http_protocol_options.max_headers_count`.
    pub max_headers: usize,
    /// `http_protocol_options.accept_http_10`.
    pub accept_http_10: bool,
}

/// Room for the headers the proxy adds (`x-forwarded-proto`, `x-request-id`,
/// `x-envoy-expected-rq-timeout-ms`, ...), so the map is not regrown per request.
const HEADROOM: usize = 4;

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: BodyFraming,
    /// The connection stays open after this exchange (HTTP/1.1 without
    /// `Connection: close`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was asked for (and removed from `headers`).
    pub expect_continue: bool,
    /// The request target had a `#fragment`, which `uri` no longer shows
    /// (Envoy refuses such a request before routing).
    pub fragment: bool,
}

/// Parses a head from the front of `buf`, removing it from `buf` when complete.
/// `Ok(None)`: more bytes are needed.
pub fn parse(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHead>, CodecError> {
    // Envoy tolerates empty lines before a request line (RFC 9112 §2.2).
    let leading = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if leading > 0 {
        let _ = buf.split_to(leading);
    }
    let Some(end) = head_end(buf) else {
        if buf.len() > limits.max_bytes {
            return Err(CodecError::headers_too_large());
        }
        return Ok(None);
    };
    if end > limits.max_bytes {
        return Err(CodecError::headers_too_large());
    }
    let head = buf.split_to(end).freeze();
    match parse_head(&head, limits) {
        Err(CodecError { details: "http1.codec_error", .. })
        | Err(CodecError { details: "http1.invalid_characters", .. })
            if needs_normalising(&head) =>
        {
            parse_head(&normalise(&head), limits)
        }
        other => other,
    }
    .map(Some)
}

/// The length of the head (through the blank line), once it is all in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(pos) = memchr_lf(&buf[i..]) {
        let lf = i + pos;
        // A blank line: "\n\n" or "\n\r\n".
        match buf.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if buf.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            Some(_) => i = lf + 1,
            None => return None,
        }
    }
    None
}

fn memchr_lf(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// An obs-fold (a line starting with SP/HT) or a CR not followed by LF.
fn needs_normalising(head: &[u8]) -> bool {
    head.windows(2).any(|w| (w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t')) || (w[0] == b'\r' && w[1] != b'\n'))
}

/// Replaces each obs-fold with a space and drops bare CRs, as Envoy's parser
/// does, so the head parses as its sender meant it.
fn normalise(head: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(head.len());
    let mut i = 0;
    while i < head.len() {
        let b = head[i];
        if b == b'\r' && head.get(i + 1) != Some(&b'\n') {
            i += 1;
            continue;
        }
        let line_break = if b == b'\r' {
            2
        } else if b == b'\n' {
            1
        } else {
            0
        };
        if line_break > 0 && matches!(head.get(i + line_break), Some(b' ' | b'\t')) && !out.is_empty() {
            // Fold: the line break and the following whitespace become one space.
            i += line_break;
            while matches!(head.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            out.push(b' ');
            continue;
        }
        out.push(b);
        i += 1;
    }
    Bytes::from(out)
}

/// Header slots parsed without a heap allocation (`max_headers_count` + 1).
const STACK_HEADER_SLOTS: usize = 128;

fn parse_head(head: &Bytes, limits: &HeadLimits) -> Result<RequestHead, CodecError> {
    // Header slots on the stack for the usual limits (Envoy's default is 100), so
    // parsing a head allocates nothing but the header map itself.
    let wanted = limits.max_headers + 1;
    let mut stack = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADER_SLOTS];
    let mut heap = Vec::new();
    let slots: &mut [std::mem::MaybeUninit<httparse::Header<'_>>] = if wanted <= STACK_HEADER_SLOTS {
        &mut stack[..wanted]
    } else {
        heap.resize_with(wanted, std::mem::MaybeUninit::uninit);
        &mut heap
    };
    // The PRI method only opens the HTTP/2 preface: Envoy's HTTP/1 codec answers
    // it 400 whatever version follows (before the version check's 426).
    if head.starts_with(b"PRI ") {
        return Err(CodecError::bad_request("http1.codec_error"));
    }
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(CodecError::bad_request("http1.codec_error")),
        Err(httparse::Error::TooManyHeaders) => return Err(CodecError::too_many_headers()),
        Err(httparse::Error::Version) => return Err(CodecError::upgrade_required()),
        Err(httparse::Error::HeaderValue) => return Err(CodecError::bad_request("http1.invalid_characters")),
        Err(_) => return Err(CodecError::bad_request("http1.codec_error")),
    }
    if req.headers.len() > limits.max_headers {
        return Err(CodecError::too_many_headers());
    }
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        Some(0) if limits.accept_http_10 => Version::HTTP_10,
        _ => return Err(CodecError::upgrade_required()),
    };
    let method = req.method.and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let method = method.ok_or_else(|| CodecError::bad_request("http1.codec_error"))?;
    let path = req.path.unwrap_or_default();
    let fragment = path.contains('#');
    let uri = Uri::from_maybe_shared(head.slice_ref(path.as_bytes()))
        .map_err(|_| CodecError::bad_request("http1.invalid_url"))?;

    let mut headers = crate::http::header_map_pool::take(req.headers.len() + HEADROOM);
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut close = version == Version::HTTP_10;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| CodecError::bad_request("http1.codec_error"))?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(h.value))
            .map_err(|_| CodecError::bad_request("http1.invalid_characters"))?;
        if name == http::header::CONTENT_LENGTH {
            // Envoy rejects any repeated Content-Length, equal or not.
            if content_length.is_some() {
                return Err(CodecError::bad_request("http1.codec_error"));
            }
            content_length = Some(parse_content_length(h.value)?);
        } else if name == http::header::TRANSFER_ENCODING {
            // Only `chunked` alone is implemented (Envoy answers 501 to others).
            if te_seen || !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                return Err(CodecError::not_implemented());
            }
            te_seen = true;
            chunked = true;
        } else if name == http::header::CONNECTION {
            for token in h.value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::HTTP_10 {
                    close = false;
                }
            }
        } else if name == http::header::EXPECT && trim(h.value).eq_ignore_ascii_case(b"100-continue") {
            expect_continue = version == Version::HTTP_11;
            continue;
        }
        headers.append(name, value);
    }
    let framing = match (chunked, content_length) {
        (true, Some(_)) => return Err(CodecError::bad_request("http1.content_length_and_chunked_not_allowed")),
        (true, None) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    Ok(RequestHead {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive: !close,
        // Envoy answers 100 Continue whenever it is asked, body or not.
        expect_continue,
        fragment,
    })
}

fn parse_content_length(v: &[u8]) -> Result<u64, CodecError> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(CodecError::bad_request("http1.codec_error"));
    }
    v.iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or_else(|| CodecError::bad_request("http1.codec_error"))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { max_bytes: 60 * 1024, max_headers: 100, accept_http_10: false };

    fn parse_str(s: &str) -> Result<Option<RequestHead>, CodecError> {
        parse(&mut BytesMut::from(s.as_bytes()), &LIMITS)
    }

    fn details(s: &str) -> &'static str {
        parse_str(s).err().map(|e| e.details).unwrap_or("ok")
    }

    #[test]
    fn parses_a_simple_head_and_leaves_the_body() {
        let mut buf = BytesMut::from(&b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nrest"[..]);
        let head = parse(&mut buf, &LIMITS).unwrap().unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.uri, "/a?b=1");
        assert_eq!(head.headers["host"], "x");
        assert_eq!(head.framing, BodyFraming::None);
        assert!(head.keep_alive);
        assert!(!head.fragment);
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn a_fragment_is_noted_though_the_uri_drops_it() {
        let head = parse_str("GET /a?b=1#frag HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.uri, "/a?b=1");
        assert!(head.fragment);
    }

    #[test]
    fn incomplete_head_waits_for_more() {
        assert!(parse_str("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn framing_rules_follow_envoy() {
        assert_eq!(
            details("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "http1.content_length_and_chunked_not_allowed"
        );
        assert_eq!(
            details("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"),
            "http1.content_length_and_chunked_not_allowed"
        );
        assert_eq!(details("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), "http1.codec_error");
        assert_eq!(details("POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n"), "http1.codec_error");
        assert_eq!(
            details("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            "http1.invalid_transfer_encoding"
        );
        assert_eq!(
            details("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            "http1.invalid_transfer_encoding"
        );
        let head = parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        let head = parse_str("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.framing, BodyFraming::Length(12));
    }

    #[test]
    fn versions_and_limits() {
        assert_eq!(details("GET / HTTP/1.0\r\n\r\n"), "low_version");
        assert_eq!(details("GET / HTTP/2.0\r\n\r\n"), "low_version");
        // The HTTP/2 preface, or any PRI request: 400 as Envoy's HTTP/1 codec.
        assert_eq!(details("PRI * HTTP/2.0\r\n\r\n"), "http1.codec_error");
        assert_eq!(details("PRI / HTTP/1.1\r\nhost: a\r\n\r\n"), "http1.codec_error");
        assert_eq!(details("GET / HTTP/1.2\r\n\r\n"), "low_version");
        assert_eq!(details("GET / HTTP/2.0\r\n\r\n"), "low_version");
        let many: String = (0..101).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(details(&format!("GET / HTTP/1.1\r\n{many}\r\n")), "http1.too_many_headers");
        let big = "a".repeat(70_000);
        assert_eq!(details(&format!("GET /{big} HTTP/1.1\r\n\r\n")), "http1.headers_too_large");
        assert_eq!(details(&format!("GET /{big}")), "http1.headers_too_large");
    }

    #[test]
    fn malformed_heads_are_rejected() {
        assert_eq!(details("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), "http1.invalid_characters");
        assert_eq!(details("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), "http1.codec_error");
        assert_eq!(details("G@T / HTTP/1.1\r\n\r\n"), "http1.codec_error");
    }

    #[test]
    fn obs_fold_bare_lf_and_bare_cr_are_tolerated_as_envoy_does() {
        let head = parse_str("GET / HTTP/1.1\r\nX-Foo: a\r\n b\r\nHost: h\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.headers["x-foo"], "a b");
        assert_eq!(head.headers["host"], "h");
        let head = parse_str("GET / HTTP/1.1\nHost: a\n\n").unwrap().unwrap();
        assert_eq!(head.headers["host"], "a");
        let head = parse_str("GET / HTTP/1.1\r\nX-Foo: a\rb\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.headers["x-foo"], "ab");
    }

    #[test]
    fn connection_and_expect() {
        let head =
            parse_str("POST / HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!head.keep_alive);
        assert!(head.expect_continue);
        assert!(!head.headers.contains_key("expect"));
        let limits = HeadLimits { accept_http_10: true, ..LIMITS };
        let head = parse(&mut BytesMut::from(&b"GET / HTTP/1.0\r\n\r\n"[..]), &limits).unwrap().unwrap();
        assert!(!head.keep_alive);
    }
}
