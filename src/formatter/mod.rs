//! Envoy's substitution format strings (`%REQ(X)%`, `%RESPONSE_CODE%`, ...), used by
//! access logs and, later, by header values in route configuration.
//!
//! A format is parsed once at config load (unknown operators are a load error, as in
//! Envoy) into literal text and resolved operators; `format` then only walks that list,
//! appending to one `String`. `-` stands for a missing value, as in Envoy.
//!
//! - `parse` — the `%NAME(ARGS):LEN%` grammar
//! - `operator` — each command operator and how it prints
//! - `header` — `%REQ(X?Y):Z%` and its response/trailer siblings
//! - `time` — `%START_TIME(...)%` patterns and the UTC calendar
//! - `json` — `json_format` dictionaries (typed or all-strings)
//! - `substitution` — `SubstitutionFormatString` (and Envoy's default) from config

mod header;
mod json;
mod operator;
mod parse;
mod substitution;
mod time;

/// Where a format reads header values: a whole map, or the few a stream kept for
/// its log line (`KeptHeaders`).
pub trait HeaderLookup: std::fmt::Debug {
    /// The first value of `name`.
    fn get_first(&self, name: &http::HeaderName) -> Option<&http::HeaderValue>;
}

impl HeaderLookup for http::HeaderMap {
    fn get_first(&self, name: &http::HeaderName) -> Option<&http::HeaderValue> {
        self.get(name)
    }
}

/// The first value of each header a log format reads (`HeadersUsed`), copied out
/// of a header map that does not outlive the stream. A handful of entries: found
/// by a scan, with no hash table to build.
#[derive(Debug, Default)]
pub struct KeptHeaders(Vec<(http::HeaderName, http::HeaderValue)>);

impl KeptHeaders {
    /// The values of `names` in `headers`.
    pub fn from_map(headers: &http::HeaderMap, names: &[http::HeaderName]) -> KeptHeaders {
        let mut kept = Vec::new();
        for name in names {
            if let Some(value) = headers.get(name) {
                kept.push((name.clone(), value.clone()));
            }
        }
        KeptHeaders(kept)
    }
}

impl HeaderLookup for KeptHeaders {
    fn get_first(&self, name: &http::HeaderName) -> Option<&http::HeaderValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// The headers a format reads, so the stream keeps only those for its log line
/// instead of copying whole header maps (a copy each way measured most of an
/// access log's cost after formatting).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadersUsed {
    pub request: Vec<http::HeaderName>,
    pub response: Vec<http::HeaderName>,
}

impl HeadersUsed {
    pub(crate) fn add(list: &mut Vec<http::HeaderName>, name: &http::HeaderName) {
        if !list.contains(name) {
            list.push(name.clone());
        }
    }

    /// The union with `other`.
    pub fn merge(&mut self, other: &HeadersUsed) {
        for n in &other.request {
            HeadersUsed::add(&mut self.request, n);
        }
        for n in &other.response {
            HeadersUsed::add(&mut self.response, n);
        }
    }
}

/// Appends `n` in decimal, zero-padded to `width` digits: the formatter's numbers
/// (codes, bytes, durations, dates) without `core::fmt`, which measured a fifth of
/// an access log line's cost.
pub(crate) fn push_number(out: &mut String, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

#[cfg(test)]
mod tests;

pub use json::JsonFormat;
pub use substitution::{data_source_string, SubstitutionFormat};
pub use time::{TimeFormat, DEFAULT_TIME_FORMAT};

use operator::Kind;
use parse::Part;

use crate::stream_info::StreamInfo;

/// Envoy's default access log format (`SubstitutionFormatUtils::DEFAULT_FORMAT`).
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// What was printed for a missing value.
const UNSPECIFIED: &str = "-";

/// Everything an operator may read about one request.
#[derive(Debug, Clone, Copy)]
pub struct FormatContext<'a> {
    pub request_headers: Option<&'a dyn HeaderLookup>,
    pub request_method: Option<&'a http::Method>,
    /// The request target: `%REQ(:PATH)%`, `:AUTHORITY` (else the `Host` header), `:SCHEME`.
    pub request_uri: Option<&'a http::Uri>,
    /// The target as sent, when `request_uri` cannot show it (a `#fragment`):
    /// `%REQ(:PATH)%` then.
    pub request_target: Option<&'a str>,
    pub response_headers: Option<&'a dyn HeaderLookup>,
    pub response_trailers: Option<&'a dyn HeaderLookup>,
    /// A local reply's body (`%LOCAL_REPLY_BODY%`), when one is formatted.
    pub local_reply_body: Option<&'a str>,
    pub info: &'a StreamInfo,
}

impl<'a> FormatContext<'a> {
    /// A context with only the stream info (TCP logs, tests).
    pub fn new(info: &'a StreamInfo) -> Self {
        FormatContext {
            request_headers: None,
            request_method: None,
            request_uri: None,
            request_target: None,
            response_headers: None,
            response_trailers: None,
            local_reply_body: None,
            info,
        }
    }

    /// A context for a request being decoded: its headers, method and target.
    pub fn for_request(parts: &'a http::request::Parts, info: &'a StreamInfo) -> Self {
        FormatContext {
            request_headers: Some(&parts.headers),
            request_method: Some(&parts.method),
            request_uri: Some(&parts.uri),
            ..FormatContext::new(info)
        }
    }
}

/// A parsed format string.
#[derive(Debug, Clone)]
pub struct FormatString {
    parts: Vec<Part>,
    /// Bytes of literal text, to size the output.
    literal_len: usize,
}

impl FormatString {
    /// Adds the headers this format reads to `used`.
    pub fn headers_used(&self, used: &mut HeadersUsed) {
        for part in &self.parts {
            if let Part::Op(operator::Operator::Header(h)) = part {
                h.headers_used(used);
            }
        }
    }

    /// Parses `s`; the error names the bad or unknown operator.
    pub fn parse(s: &str) -> Result<FormatString, String> {
        let parts = parse::parse(s)?;
        let literal_len = parts.iter().map(|p| if let Part::Literal(l) = p { l.len() } else { 0 }).sum();
        Ok(FormatString { parts, literal_len })
    }

    /// The formatted string, `-` for missing values.
    pub fn format(&self, cx: &FormatContext<'_>) -> String {
        let mut out = String::with_capacity(self.literal_len + 16 * self.parts.len());
        self.format_into(cx, &mut out);
        out
    }

    /// Appends the formatted string to `out`, `-` for missing values.
    pub fn format_into(&self, cx: &FormatContext<'_>, out: &mut String) {
        self.write(cx, out, UNSPECIFIED);
    }

    /// True when there is no operator: the text is always the same.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Appends, printing `missing` for missing values (`""` with `omit_empty_values`).
    pub(crate) fn write(&self, cx: &FormatContext<'_>, out: &mut String, missing: &str) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Op(op) => {
                    if op.write(cx, out) == Kind::Missing {
                        out.push_str(missing);
                    }
                }
            }
        }
    }

    /// The operator when the string is exactly one operator (typed JSON values).
    pub(crate) fn single_operator(&self) -> Option<&operator::Operator> {
        match self.parts.as_slice() {
            [Part::Op(op)] => Some(op),
            _ => None,
        }
    }
}
