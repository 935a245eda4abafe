//! `%REQ(X?Y):Z%`, `%RESP(X?Y):Z%`, `%TRAILER(X?Y):Z%`: a header, else its
//! alternative, cut to Z bytes. Request pseudo-headers (`:path`, `:method`,
//! `:authority`, `:scheme`) come from the request line, since `http::HeaderMap` holds
//! none; `:authority` falls back to `Host` (HTTP/1.1). `RESP(:status)` is the
//! response code. Names are matched case-insensitively, as Envoy lower-cases them.

use http::header::{HeaderName, HOST};

use super::operator::Kind;
use super::FormatContext;

/// One header operator.
#[derive(Debug, Clone)]
pub(crate) struct HeaderOperator {
    source: HeaderSource,
    main: HeaderKey,
    alt: Option<HeaderKey>,
    max_len: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderSource {
    Request,
    Response,
    Trailer,
}

/// A header to look up: a pseudo-header served from the request line or the status,
/// a regular header, or a name that can never be present.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeaderKey {
    Path,
    Method,
    Authority,
    Scheme,
    Status,
    Name(HeaderName),
    Never,
}

impl HeaderOperator {
    /// `X?Y` of `%REQ(X?Y):Z%`.
    pub(crate) fn parse(source: HeaderSource, args: &str, max_len: Option<usize>) -> Result<HeaderOperator, String> {
        let mut names = args.split('?');
        let main = names.next().unwrap_or("");
        let alt = names.next();
        if names.next().is_some() {
            return Err(format!("More than 1 alternative header specified in token: {args}"));
        }
        if args.contains('\n') {
            return Err("Invalid header configuration. Format string contains newline.".to_string());
        }
        let main = header_key(source, main);
        let alt = alt.filter(|a| !a.is_empty()).map(|a| header_key(source, a));
        Ok(HeaderOperator { source, main, alt, max_len })
    }

    /// Adds the headers this operator may read to `used`.
    pub(crate) fn headers_used(&self, used: &mut super::HeadersUsed) {
        for key in std::iter::once(&self.main).chain(self.alt.as_ref()) {
            let list = match self.source {
                HeaderSource::Request => &mut used.request,
                HeaderSource::Response => &mut used.response,
                // Trailers are handed to the log as they are, not copied.
                HeaderSource::Trailer => continue,
            };
            match key {
                HeaderKey::Name(n) => super::HeadersUsed::add(list, n),
                // `:authority` falls back to `Host`.
                HeaderKey::Authority => super::HeadersUsed::add(list, &HOST),
                _ => {}
            }
        }
    }

    /// Appends the first header found, cut to the maximum length.
    pub(crate) fn write(&self, cx: &FormatContext<'_>, out: &mut String) -> Kind {
        let start = out.len();
        let found = lookup(cx, self.source, &self.main, out)
            || self.alt.as_ref().is_some_and(|a| lookup(cx, self.source, a, out));
        if !found {
            return Kind::Missing;
        }
        if let Some(n) = self.max_len {
            truncate_at(out, start, n);
        }
        Kind::Text
    }
}

fn header_key(source: HeaderSource, name: &str) -> HeaderKey {
    let lower = name.to_ascii_lowercase();
    match (source, lower.as_str()) {
        (HeaderSource::Request, ":path") => HeaderKey::Path,
        (HeaderSource::Request, ":method") => HeaderKey::Method,
        (HeaderSource::Request, ":authority") => HeaderKey::Authority,
        (HeaderSource::Request, ":scheme") => HeaderKey::Scheme,
        (HeaderSource::Response, ":status") => HeaderKey::Status,
        // Envoy looks any name up; one that is not a valid header name is never found.
        _ => HeaderName::from_bytes(lower.as_bytes()).map(HeaderKey::Name).unwrap_or(HeaderKey::Never),
    }
}

/// Appends the header's value; false when it is not there.
fn lookup(cx: &FormatContext<'_>, source: HeaderSource, key: &HeaderKey, out: &mut String) -> bool {
    let map: Option<&dyn super::HeaderLookup> = match source {
        HeaderSource::Request => cx.request_headers,
        HeaderSource::Response => cx.response_headers,
        HeaderSource::Trailer => cx.response_trailers,
    };
    let value: Option<&str> = match key {
        HeaderKey::Path => {
            cx.request_target.or_else(|| cx.request_uri.and_then(|u| u.path_and_query()).map(|pq| pq.as_str()))
        }
        HeaderKey::Method => cx.request_method.map(|m| m.as_str()),
        HeaderKey::Authority => match cx.request_uri.and_then(|u| u.authority()) {
            Some(a) => Some(a.as_str()),
            None => return push_header(map.and_then(|m| m.get_first(&HOST)), out),
        },
        HeaderKey::Scheme => cx.request_uri.and_then(|u| u.scheme_str()),
        HeaderKey::Status => {
            return match cx.info.response_code {
                Some(code) => {
                    super::push_number(out, u64::from(code), 0);
                    true
                }
                None => false,
            };
        }
        HeaderKey::Name(name) => return push_header(map.and_then(|m| m.get_first(name)), out),
        HeaderKey::Never => None,
    };
    match value {
        Some(v) => {
            out.push_str(v);
            true
        }
        None => false,
    }
}

fn push_header(value: Option<&http::HeaderValue>, out: &mut String) -> bool {
    let Some(v) = value else { return false };
    match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(v.as_bytes())),
    }
    true
}

/// Cuts `out` to `max` bytes after `start` (backing off to a character boundary).
pub(crate) fn truncate_at(out: &mut String, start: usize, max: usize) {
    let mut end = start.saturating_add(max);
    if end >= out.len() {
        return;
    }
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
}
