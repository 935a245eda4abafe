//! The request line (RFC 9112 §3) as Envoy's HTTP/1 codec reads it: the
//! method must be one its parser knows, the target one of the four forms in
//! printable ASCII, the version `HTTP/d.d`.
//!
//! What is refused here, and how, follows Envoy 1.40 as observed
//! (tests/compat/cases/hostile_request_line.yaml): a control byte anywhere is
//! `http1.invalid_characters`; an unknown or lowercase method, a target that is
//! no form, a non-ASCII byte, a bare CR or a malformed version is
//! `http1.codec_error`; a well-formed version other than 1.1 (or none at all, an
//! HTTP/0.9 request) is decided later, after the headers, as 426. Runs of SP and
//! HT separate the parts, as in Envoy's parser.

use super::field::{self, is_forbidden_ctl};
use super::CodecError;

/// The version a request line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineVersion {
    Http11,
    Http10,
    /// A well-formed version Courier does not serve (0.9, 1.2, 2.0, ...), or none.
    Other,
}

/// The form of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`
    Origin,
    /// `scheme://authority/path`
    Absolute,
    /// `*`
    Asterisk,
    /// `host:port`, CONNECT's only.
    Authority,
}

/// A parsed request line, borrowing the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub form: TargetForm,
    pub version: LineVersion,
}

/// The methods Envoy's parser accepts without `allow_custom_methods`.
fn is_known_method(m: &[u8]) -> bool {
    matches!(
        m,
        b"GET"
            | b"POST"
            | b"PUT"
            | b"DELETE"
            | b"HEAD"
            | b"OPTIONS"
            | b"PATCH"
            | b"CONNECT"
            | b"TRACE"
            | b"ACL"
            | b"BIND"
            | b"CHECKOUT"
            | b"COPY"
            | b"LINK"
            | b"LOCK"
            | b"MERGE"
            | b"MKACTIVITY"
            | b"MKCALENDAR"
            | b"MKCOL"
            | b"MOVE"
            | b"MSEARCH"
            | b"NOTIFY"
            | b"PROPFIND"
            | b"PROPPATCH"
            | b"PURGE"
            | b"QUERY"
            | b"REBIND"
            | b"REPORT"
            | b"SEARCH"
            | b"SOURCE"
            | b"SUBSCRIBE"
            | b"UNBIND"
            | b"UNLINK"
            | b"UNLOCK"
            | b"UNSUBSCRIBE"
    )
}

/// Parses a request line, given without its line ending; `custom_methods`:
/// any token is a method (`allow_custom_methods`).
pub fn parse(line: &[u8], custom_methods: bool) -> Result<RequestLine<'_>, CodecError> {
    let codec_error = CodecError::bad_request("http1.codec_error");
    if line.iter().any(|&b| is_forbidden_ctl(b)) {
        return Err(CodecError::bad_request("http1.invalid_characters"));
    }
    if line.contains(&b'\r') {
        return Err(codec_error);
    }
    let mut parts = line.split(|&b| b == b' ' || b == b'\t').filter(|p| !p.is_empty());
    let method = parts.next().ok_or(codec_error)?;
    if !(is_known_method(method) || custom_methods && field::is_token(method)) {
        return Err(codec_error);
    }
    let target = parts.next().ok_or(codec_error)?;
    let form = target_form(target).ok_or(codec_error)?;
    // `host:port` is CONNECT's form; Envoy's parser refuses it for any other.
    if form == TargetForm::Authority && method != b"CONNECT" {
        return Err(codec_error);
    }
    let version = match (parts.next(), parts.next()) {
        (None, _) => LineVersion::Other,
        (Some(v), None) => parse_version(v).ok_or(codec_error)?,
        (Some(_), Some(_)) => return Err(codec_error),
    };
    Ok(RequestLine { method, target, form, version })
}

/// The target's form, or `None` for one Envoy's parser refuses.
fn target_form(target: &[u8]) -> Option<TargetForm> {
    if !target.is_ascii() {
        return None;
    }
    Some(match target {
        [b'/', ..] => TargetForm::Origin,
        b"*" => TargetForm::Asterisk,
        _ if has_scheme(target) => TargetForm::Absolute,
        [first, ..] if first.is_ascii_alphanumeric() || *first == b'[' => TargetForm::Authority,
        _ => return None,
    })
}

/// `scheme "://"` at the front (RFC 3986 §3.1).
fn has_scheme(target: &[u8]) -> bool {
    let Some(colon) = target.iter().position(|&b| b == b':') else { return false };
    let scheme = &target[..colon];
    target[colon..].starts_with(b"://")
        && scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// `HTTP/d.d`; `None` for anything else.
fn parse_version(v: &[u8]) -> Option<LineVersion> {
    match v {
        b"HTTP/1.1" => Some(LineVersion::Http11),
        b"HTTP/1.0" => Some(LineVersion::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            Some(LineVersion::Other)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(line: &[u8]) -> &'static str {
        parse_known(line).err().map_or("ok", |e| e.details)
    }

    fn parse_known(line: &[u8]) -> Result<RequestLine<'_>, CodecError> {
        parse(line, false)
    }

    #[test]
    fn methods_are_those_envoy_knows() {
        for m in ["GET", "PURGE", "PROPFIND", "MKCOL", "SEARCH", "QUERY", "LINK", "PATCH", "TRACE"] {
            assert_eq!(details(format!("{m} / HTTP/1.1").as_bytes()), "ok", "{m}");
        }
        for m in ["get", "FOO", "G@T", "PRI"] {
            assert_eq!(details(format!("{m} / HTTP/1.1").as_bytes()), "http1.codec_error", "{m}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_known(b"GET / HTTP/1.1").unwrap().version, LineVersion::Http11);
        assert_eq!(parse_known(b"GET / HTTP/1.0").unwrap().version, LineVersion::Http10);
        for v in ["GET / HTTP/1.2", "GET / HTTP/2.0", "GET / HTTP/0.9", "GET /"] {
            assert_eq!(parse_known(v.as_bytes()).unwrap().version, LineVersion::Other, "{v}");
        }
        for v in ["GET / http/1.1", "GET / HTTP/1.10", "GET / HTTP/01.1", "GET / HTTP/1", "GET /a b HTTP/1.1"] {
            assert_eq!(details(v.as_bytes()), "http1.codec_error", "{v}");
        }
    }

    #[test]
    fn separators_and_targets() {
        // Runs of SP and HT separate the parts, as in Envoy's parser.
        for l in ["GET\t/ HTTP/1.1", "GET  / HTTP/1.1", "GET / HTTP/1.1 "] {
            assert_eq!(parse_known(l.as_bytes()).unwrap().target, b"/", "{l}");
        }
        assert_eq!(parse_known(b"GET http://a/b HTTP/1.1").unwrap().form, TargetForm::Absolute);
        assert_eq!(parse_known(b"GET ftp://a/b HTTP/1.1").unwrap().form, TargetForm::Absolute);
        assert_eq!(parse_known(b"OPTIONS * HTTP/1.1").unwrap().form, TargetForm::Asterisk);
        assert_eq!(parse_known(b"CONNECT a:443 HTTP/1.1").unwrap().form, TargetForm::Authority);
        for l in [&b"GET a/b HTTP/1.1"[..], b"GET ?a HTTP/1.1", b"GET # HTTP/1.1", b"GET /caf\xc3\xa9 HTTP/1.1"] {
            assert_eq!(details(l), "http1.codec_error", "{l:?}");
        }
        assert_eq!(details(b"GET /a\x7fb HTTP/1.1"), "http1.invalid_characters");
        assert_eq!(details(b"GET /a\0b HTTP/1.1"), "http1.invalid_characters");
        assert_eq!(details(b"GET / HTTP/1.1\rX"), "http1.codec_error");
    }
}
