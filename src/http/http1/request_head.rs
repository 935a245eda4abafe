//! Parsing a request head (request line and headers) and deciding how its body
//! is framed, with the checks Envoy's HTTP/1 codec makes before a request may go
//! anywhere: one framing only (`Content-Length` or `Transfer-Encoding: chunked`),
//! names that are tokens and values without control bytes (`field`), a request
//! line Envoy's parser accepts (`request_line`), an authority that is one,
//! limits on size and count. Envoy's leniencies are kept, and only those: an
//! obs-fold continues its value (the line break goes), a bare CR in a value is
//! dropped, a bare LF ends a line, and with `accept_http_10` a request line
//! without a version is a whole HTTP/0.9 request. Every refusal carries Envoy's
//! status and details, as observed against Envoy 1.40
//! (tests/compat/cases/hostile_*.yaml).

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri, Version};

use super::request_line::{self, LineVersion, TargetForm};
use super::{field, BodyFraming, CodecError};

/// Limits and parsing options from the connection manager's config.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// `max_request_headers_kb` in bytes: request line and headers together.
    pub max_bytes: usize,
    /// `common_http_protocol_options.max_headers_count`.
    pub max_headers: usize,
    /// `http_protocol_options.accept_http_10`.
    pub accept_http_10: bool,
    /// `http_protocol_options.allow_custom_methods`.
    pub allow_custom_methods: bool,
    /// `http_protocol_options.allow_chunked_length`.
    pub allow_chunked_length: bool,
    /// `http_protocol_options.allow_absolute_url`.
    pub allow_absolute_url: bool,
}

impl HeadLimits {
    /// Envoy's defaults for a connection manager that sets none of these.
    pub const ENVOY_DEFAULTS: HeadLimits = HeadLimits {
        max_bytes: 60 * 1024,
        max_headers: 100,
        accept_http_10: false,
        allow_custom_methods: false,
        allow_chunked_length: false,
        allow_absolute_url: true,
    };
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
    /// The target as sent, when `uri` cannot show it (a `#fragment`, an
    /// absolute target without `allow_absolute_url`): Envoy logs it as `:path`.
    pub target_as_sent: Option<Bytes>,
}

/// Parses a head from the front of `buf`, removing it from `buf` when complete.
/// `Ok(None)`: more bytes are needed.
pub fn parse(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHead>, CodecError> {
    // Envoy tolerates empty lines before a request line (RFC 9112 §2.2).
    let leading = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if leading > 0 {
        let _ = buf.split_to(leading);
    }
    // With `accept_http_10`, a request line without a version is a whole
    // HTTP/0.9 request: Envoy answers it without waiting for headers.
    if let Some(lf) = simple_request_end(buf, limits) {
        let head = buf.split_to(lf + 1).freeze();
        let line_len = head.len() - if head.ends_with(b"\r\n") { 2 } else { 1 };
        return parse_head(&head, line_len, limits).map(Some);
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
    let lines_len = head_lines(&head).len();
    parse_head(&head, lines_len, limits).map(Some)
}

/// The LF ending an HTTP/0.9 request line (method and target, no version) at
/// the front of `buf`, looked for only with `accept_http_10`.
fn simple_request_end(buf: &[u8], limits: &HeadLimits) -> Option<usize> {
    if !limits.accept_http_10 {
        return None;
    }
    // A line past the limit is left to the usual path, which refuses it.
    let lf = memchr_lf(buf).filter(|&lf| lf < limits.max_bytes)?;
    let line = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
    let parts = line.split(|&b| b == b' ' || b == b'\t').filter(|p| !p.is_empty()).count();
    (parts == 2).then_some(lf)
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

/// `head` without its blank line and the line ending before it: the request
/// line and the header lines, LF- or CRLF-separated.
fn head_lines(head: &[u8]) -> &[u8] {
    let blank = if head.ends_with(b"\r\n") && head.len() >= 3 && head[head.len() - 3] == b'\n' { 2 } else { 1 };
    let block = &head[..head.len() - blank];
    // `block` ends with the last line's LF.
    &block[..block.len().saturating_sub(1)]
}

/// Parses `head`, whose first `lines_len` bytes are the request line and the
/// header lines (without the line ending before the blank line).
fn parse_head(head: &Bytes, lines_len: usize, limits: &HeadLimits) -> Result<RequestHead, CodecError> {
    let codec_error = CodecError::bad_request("http1.codec_error");
    let mut lines = field::lines(&head[..lines_len]).peekable();
    let line = request_line::parse(lines.next().unwrap_or_default(), limits.allow_custom_methods)?;

    // One line per header at most: the map is sized once.
    let lines_in_head = head.iter().filter(|&&b| b == b'\n').count();
    let mut headers = crate::http::header_map_pool::take(lines_in_head.min(limits.max_headers) + HEADROOM);
    let mut count = 0;
    // Its value is judged once the framing is known: `allow_chunked_length`
    // drops it unread beside chunked, as Envoy does.
    let mut content_length: Option<Result<u64, CodecError>> = None;
    let mut te: Option<bool> = None;
    let mut close = line.version != LineVersion::Http11;
    let mut expect_continue = false;
    while let Some(l) = lines.next() {
        // A continuation with no field before it: Envoy refuses it.
        if field::is_continuation(l) {
            return Err(codec_error);
        }
        let f = field::parse_line(l)?;
        count += 1;
        if count > limits.max_headers {
            return Err(CodecError::too_many_headers());
        }
        let value = field_value(head, f, &mut lines)?;
        let name = HeaderName::from_bytes(f.name).map_err(|_| codec_error)?;
        if name == http::header::CONTENT_LENGTH {
            // Envoy rejects any repeated Content-Length, equal or not. A bare CR
            // in it is no digit (`3\r4` is not 34); a folded one is read whole.
            if content_length.is_some() {
                return Err(codec_error);
            }
            content_length = Some(if f.bare_cr { Err(codec_error) } else { parse_content_length(value.as_bytes()) });
        } else if name == http::header::TRANSFER_ENCODING {
            // Only `chunked` alone is implemented; whether the header is there at
            // all decides a conflict with Content-Length, whatever its value.
            let chunked = te.is_none() && value.as_bytes().eq_ignore_ascii_case(b"chunked");
            te = Some(chunked);
        } else if name == http::header::CONNECTION {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = field::trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && line.version != LineVersion::Http11 {
                    close = false;
                }
            }
        } else if name == http::header::EXPECT && value.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            expect_continue = line.version == LineVersion::Http11;
            continue;
        } else if name == http::header::HOST {
            // A repeated Host is joined, as Envoy joins its :authority.
            if let Some(first) = headers.get(&name) {
                let joined = [first.as_bytes(), b",", value.as_bytes()].concat();
                let joined = HeaderValue::from_bytes(&joined).map_err(|_| codec_error)?;
                headers.insert(name, joined);
                continue;
            }
        }
        headers.append(name, value);
    }

    // Headers complete: the checks Envoy's codec makes on the whole head.
    // With `accept_http_10`, Envoy serves any version but 1.1 (0.9, 1.2, 2.0)
    // as HTTP/1.0.
    let version = match line.version {
        LineVersion::Http11 => Version::HTTP_11,
        _ if limits.accept_http_10 => Version::HTTP_10,
        _ => return Err(CodecError::upgrade_required()),
    };
    let framing = match (te, content_length) {
        // `allow_chunked_length`: chunked wins and Content-Length goes.
        (Some(true), Some(_)) if limits.allow_chunked_length => {
            headers.remove(http::header::CONTENT_LENGTH);
            BodyFraming::Chunked
        }
        (Some(_), Some(_)) => return Err(CodecError::bad_request("http1.content_length_and_chunked_not_allowed")),
        (None, Some(Err(e))) => return Err(e),
        (Some(true), None) => BodyFraming::Chunked,
        (Some(false), None) => return Err(CodecError::not_implemented()),
        (None, Some(Ok(0))) | (None, None) => BodyFraming::None,
        (None, Some(Ok(n))) => BodyFraming::Length(n),
    };
    let connect = line.method == b"CONNECT";
    let invalid_url = CodecError::bad_request("http1.invalid_url");
    match line.form {
        TargetForm::Asterisk if line.method != b"OPTIONS" => return Err(invalid_url),
        TargetForm::Origin | TargetForm::Asterisk if connect => return Err(invalid_url),
        _ => {}
    }
    let method = Method::from_bytes(line.method).map_err(|_| codec_error)?;
    let fragment = line.target.contains(&b'#');
    let target = head.slice_ref(line.target);
    // Without `allow_absolute_url`, an absolute target is no path Courier serves:
    // its URI is `*`, which the connection manager answers 404 as it does
    // `OPTIONS *` (Envoy's absolute_path_rejected), with the target kept for the log.
    if line.form == TargetForm::Absolute && !limits.allow_absolute_url {
        let (uri, target_as_sent) = (Uri::from_static("*"), Some(target));
        let keep_alive = !close;
        return Ok(RequestHead {
            method,
            uri,
            version,
            headers,
            framing,
            keep_alive,
            expect_continue,
            fragment,
            target_as_sent,
        });
    }
    let uri = Uri::from_maybe_shared(target.clone()).map_err(|_| invalid_url)?;
    if line.form == TargetForm::Absolute
        && !uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
    {
        return Err(CodecError::bad_request("http1.invalid_scheme"));
    }
    // The request's authority (an absolute target's, else Host) must be one.
    let authority = match uri.authority() {
        Some(a) => Some(a.as_str().as_bytes()),
        None => headers.get(http::header::HOST).map(HeaderValue::as_bytes),
    };
    if authority.is_some_and(|a| !is_valid_authority(a)) {
        return Err(CodecError::bad_request("http.invalid_authority"));
    }
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
        target_as_sent: fragment.then_some(target),
    })
}

/// A field's value as a header value: a slice of the head, or, when the value
/// has a bare CR (dropped) or continues on obs-fold lines (joined to it, as
/// Envoy does), a copy.
fn field_value<'a>(
    head: &Bytes,
    f: field::Field<'_>,
    lines: &mut std::iter::Peekable<impl Iterator<Item = &'a [u8]>>,
) -> Result<HeaderValue, CodecError> {
    let invalid = CodecError::bad_request("http1.invalid_characters");
    if !f.bare_cr && !lines.peek().is_some_and(|l| field::is_continuation(l)) {
        return HeaderValue::from_maybe_shared(head.slice_ref(f.value)).map_err(|_| invalid);
    }
    let mut value: Vec<u8> = f.value.to_vec();
    // The line break goes; the continuation's whitespace stays (Envoy's
    // `a\r\n\tb` is `a\tb`).
    while let Some(cont) = lines.next_if(|l| field::is_continuation(l)) {
        field::check_value(cont)?;
        value.extend_from_slice(cont);
    }
    value.retain(|&b| b != b'\r');
    HeaderValue::from_bytes(field::trim(&value)).map_err(|_| invalid)
}

/// RFC 3986's authority characters, as Envoy checks `:authority` (nghttp2's
/// `nghttp2_check_authority`): no whitespace, `/`, `?`, `#`, `\\`, quotes or
/// non-ASCII. An empty one passes.
fn is_valid_authority(a: &[u8]) -> bool {
    a.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'-'
                    | b'.'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
                    | b'['
                    | b']'
                    | b'_'
                    | b'~'
            )
    })
}

fn parse_content_length(v: &[u8]) -> Result<u64, CodecError> {
    field::content_length(v).ok_or_else(|| CodecError::bad_request("http1.codec_error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits::ENVOY_DEFAULTS;

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
        assert_eq!(head.target_as_sent.as_deref(), Some(&b"/a?b=1#frag"[..]));
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
        // An obs-fold with no field before it.
        assert_eq!(details("GET / HTTP/1.1\r\n X: a\r\nHost: h\r\n\r\n"), "http1.codec_error");
    }

    #[test]
    fn a_bare_cr_in_a_name_decides_no_framing() {
        // The smuggling vector: were the CR dropped, `content-length: 3` would
        // frame a body the server behind reads otherwise.
        let cl = "POST / HTTP/1.1\r\nHost: h\r\nContent-\rLength: 3\r\n\r\nabc";
        assert_eq!(details(cl), "http1.codec_error");
        let te = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-\rEncoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(details(te), "http1.codec_error");
        let te_cl = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-\rEncoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(details(te_cl), "http1.codec_error");
        // A bare CR in a Content-Length value is no digit (not "34").
        assert_eq!(details("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r4\r\n\r\n"), "http1.codec_error");
        // A folded Content-Length is read whole, not as its first line.
        assert_eq!(details("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n 4\r\n\r\n"), "http1.codec_error");
        // Control bytes around a framing header's name.
        assert_eq!(
            details("POST / HTTP/1.1\r\nHost: h\r\n\x0bTransfer-Encoding: chunked\r\n\r\n"),
            "http1.invalid_characters"
        );
    }

    #[test]
    fn any_transfer_encoding_beside_content_length_is_refused() {
        for te in ["chunked", "identity", "xchunked", "chunked, identity", ""] {
            let head = format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\nContent-Length: 5\r\n\r\n");
            assert_eq!(details(&head), "http1.content_length_and_chunked_not_allowed", "{te:?}");
        }
        // Alone, an unknown coding is not implemented.
        assert_eq!(
            details("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"),
            "http1.invalid_transfer_encoding"
        );
        // A value that is folded or holds a bare CR is read as normalised.
        let head = parse_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\rchunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
    }

    #[test]
    fn the_authority_must_be_one() {
        for host in ["a b", "a/b", "a?b", "a#b", "a\\b", "a\"b", "a<b", "a^b", "a|b", "a\tb"] {
            assert_eq!(details(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")), "http.invalid_authority", "{host}");
        }
        for host in ["", "a:8080", "[::1]:80", "user@a", "a%41b", "a,b", "a~!$&'()*+;=b"] {
            assert_eq!(details(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")), "ok", "{host}");
        }
        // A Host folded onto the next line holds a space.
        assert_eq!(details("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"), "http.invalid_authority");
        // A repeated Host is joined, as Envoy's :authority.
        let head = parse_str("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.headers["host"], "a,b");
    }

    #[test]
    fn parsing_options() {
        let opts =
            HeadLimits { allow_custom_methods: true, allow_chunked_length: true, allow_absolute_url: false, ..LIMITS };
        let parse_with = |s: &str| parse(&mut BytesMut::from(s.as_bytes()), &opts);
        let head = parse_with("FOO / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.method.as_str(), "FOO");
        assert_eq!(parse_with("G@T / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err().details, "http1.codec_error");
        // Chunked wins; Content-Length goes unread, even malformed.
        let head = parse_with("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert!(!head.headers.contains_key("content-length"));
        let identity = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: identity\r\n\r\n";
        assert_eq!(parse_with(identity).unwrap_err().details, "http1.content_length_and_chunked_not_allowed");
        // An absolute target stays a path, for the connection manager's 404.
        let head = parse_with("GET http://a/b HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.uri, "*");
        assert_eq!(head.target_as_sent.as_deref(), Some(&b"http://a/b"[..]));
    }

    #[test]
    fn target_forms_after_the_headers() {
        assert_eq!(details("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), "http1.invalid_url");
        assert_eq!(details("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), "ok");
        assert_eq!(details("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n"), "http1.invalid_url");
        assert_eq!(details("GET ftp://a/b HTTP/1.1\r\nHost: h\r\n\r\n"), "http1.invalid_scheme");
        assert_eq!(details("GET http://a b/p HTTP/1.1\r\nHost: h\r\n\r\n"), "http1.codec_error");
        // No version: HTTP/0.9, refused as a low version.
        assert_eq!(details("GET /\r\nHost: h\r\n\r\n"), "low_version");
    }

    #[test]
    fn obs_fold_bare_lf_and_bare_cr_are_tolerated_as_envoy_does() {
        let head = parse_str("GET / HTTP/1.1\r\nX-Foo: a\r\n b\r\nHost: h\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.headers["x-foo"], "a b");
        assert_eq!(head.headers["host"], "h");
        let head = parse_str("GET / HTTP/1.1\r\nX-Foo: a\r\n\tb\r\nX-Bar:\r\n  c\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.headers["x-foo"], "a\tb");
        assert_eq!(head.headers["x-bar"], "c");
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
        // Any other version is HTTP/1.0 then; none (HTTP/0.9) ends the head at
        // the request line.
        let head = parse(&mut BytesMut::from(&b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"[..]), &limits).unwrap().unwrap();
        assert_eq!(head.version, Version::HTTP_10);
        let mut buf = BytesMut::from(&b"GET /\r\nHost: h\r\n\r\n"[..]);
        let head = parse(&mut buf, &limits).unwrap().unwrap();
        assert_eq!((head.version, head.headers.len()), (Version::HTTP_10, 0));
        assert_eq!(&buf[..], b"Host: h\r\n\r\n");
    }
}
