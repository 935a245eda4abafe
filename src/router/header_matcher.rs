//! Envoy's `HeaderMatcher` and `QueryParameterMatcher`, the non-path conditions of a
//! route's `match`.
//!
//! Header matching follows Envoy 1.40's header matchers: a header sent several times
//! is matched value by value, and matches when any value does (`invert_match` then
//! inverts that: no value may match). Headers Envoy keeps inline in its request
//! header map ([`INLINE_REQUEST_HEADERS`]) hold their repeated values as one value
//! joined by `,`, which is matched as a whole. A missing header never matches
//! (inverted or not) unless `treat_missing_header_as_empty` is set, except for
//! `present_match`, which is about absence itself. Pseudo-headers (`:method`,
//! `:path`, `:authority`, `:scheme`) are read from the request line, and `host` is
//! `:authority`, as in Envoy's header map. Query parameters are the `&`-separated
//! `key[=value]` items of `:path`'s query string, not percent-decoded, and only the
//! first occurrence of a key counts; `present_match` only requires the key, whatever
//! its value (Envoy ignores the boolean).

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    HeaderMatcher as HeaderMatcherProto, QueryParameterMatcher as QueryParameterMatcherProto,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher as StringMatcherProto;
use http::request::Parts;
use http::HeaderName;

use super::request;
use crate::config::{ConfigError, FieldPath};
use crate::matcher::string_matcher::{full_match_regex, StringMatcher};

/// The request headers Envoy 1.40 keeps inline (O(1)) in its request header map, as
/// its startup log lists them: a repeated one is one entry whose values are joined
/// by `,`, so matchers see the joined value rather than each value.
pub(crate) const INLINE_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "access-control-request-headers",
    "access-control-request-method",
    "access-control-request-private-network",
    "authentication",
    "authorization",
    "cache-control",
    "cdn-loop",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "expect",
    "grpc-accept-encoding",
    "grpc-timeout",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "origin",
    "pragma",
    "proxy-connection",
    "proxy-status",
    "referer",
    "te",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
    "x-client-trace-id",
    "x-envoy-attempt-count",
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-external-address",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-internal",
    "x-envoy-ip-tags",
    "x-envoy-is-timeout-retry",
    "x-envoy-max-retries",
    "x-envoy-original-host",
    "x-envoy-original-path",
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
    "x-forwarded-client-cert",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-request-id",
];

/// Where a matched header's value comes from.
#[derive(Debug, Clone)]
enum HeaderSource {
    /// A header matched value by value.
    Header(HeaderName),
    /// An inline header: its values joined by `,` are one value.
    JoinedHeader(HeaderName),
    Method,
    Path,
    Authority,
    Scheme,
}

#[derive(Debug, Clone)]
enum Condition {
    String(StringMatcher),
    /// `[start, end)` over the value parsed as a base-10 `i64`.
    Range {
        start: i64,
        end: i64,
    },
    Present(bool),
}

/// One compiled `HeaderMatcher`.
#[derive(Debug, Clone)]
pub(crate) struct HeaderMatcher {
    source: HeaderSource,
    condition: Condition,
    invert: bool,
    treat_missing_as_empty: bool,
}

impl HeaderMatcher {
    /// Compiles `hm`; `path` points at it. The deprecated `*_match` forms are
    /// still Envoy's API, so they are supported.
    #[allow(deprecated)]
    pub(crate) fn from_proto(hm: &HeaderMatcherProto, path: &FieldPath) -> Result<HeaderMatcher, ConfigError> {
        let source = header_source(&hm.name, path)?;
        let legacy = |field: &str, pattern: MatchPattern| -> Result<Condition, ConfigError> {
            let mut p = path.clone();
            p.push_field(field);
            if matches!(&pattern, MatchPattern::Prefix(s) | MatchPattern::Suffix(s) | MatchPattern::Contains(s) if s.is_empty())
            {
                return Err(p.error("value length must be at least 1 characters"));
            }
            let proto = StringMatcherProto { ignore_case: false, match_pattern: Some(pattern) };
            Ok(Condition::String(StringMatcher::from_proto(&proto, &p)?))
        };
        let condition = match &hm.header_match_specifier {
            Some(HeaderMatchSpecifier::ExactMatch(v)) => legacy("exact_match", MatchPattern::Exact(v.clone()))?,
            Some(HeaderMatchSpecifier::PrefixMatch(v)) => legacy("prefix_match", MatchPattern::Prefix(v.clone()))?,
            Some(HeaderMatchSpecifier::SuffixMatch(v)) => legacy("suffix_match", MatchPattern::Suffix(v.clone()))?,
            Some(HeaderMatchSpecifier::ContainsMatch(v)) => {
                legacy("contains_match", MatchPattern::Contains(v.clone()))?
            }
            Some(HeaderMatchSpecifier::SafeRegexMatch(rm)) => {
                let mut p = path.clone();
                p.push_field("safe_regex_match");
                Condition::String(StringMatcher::Regex(full_match_regex(rm, &p)?))
            }
            Some(HeaderMatchSpecifier::RangeMatch(r)) => Condition::Range { start: r.start, end: r.end },
            Some(HeaderMatchSpecifier::PresentMatch(b)) => Condition::Present(*b),
            Some(HeaderMatchSpecifier::StringMatch(sm)) => {
                let mut p = path.clone();
                p.push_field("string_match");
                Condition::String(StringMatcher::from_proto(sm, &p)?)
            }
            // No specifier: the header must be present (Envoy's default).
            None => Condition::Present(true),
        };
        Ok(HeaderMatcher {
            source,
            condition,
            invert: hm.invert_match,
            treat_missing_as_empty: hm.treat_missing_header_as_empty,
        })
    }

    /// Compiles a list; `path` points at the list field.
    pub(crate) fn list(list: &[HeaderMatcherProto], path: &FieldPath) -> Result<Vec<HeaderMatcher>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, hm)| {
                let mut p = path.clone();
                p.push_index(i);
                HeaderMatcher::from_proto(hm, &p)
            })
            .collect()
    }

    /// True when every matcher of `list` matches (an empty list always does).
    pub(crate) fn all(list: &[HeaderMatcher], parts: &Parts) -> bool {
        list.iter().all(|m| m.matches(parts))
    }

    pub(crate) fn matches(&self, parts: &Parts) -> bool {
        let condition = |value: &str| match &self.condition {
            Condition::String(m) => m.matches(value),
            Condition::Range { start, end } => value.parse::<i64>().is_ok_and(|n| n >= *start && n < *end),
            // Presence is decided below, whatever the values.
            Condition::Present(_) => true,
        };
        let Some(any) = self.any_value(parts, condition) else { return self.matches_missing() };
        let result = match self.condition {
            Condition::Present(want) => want,
            _ => any,
        };
        result != self.invert
    }

    /// Whether the matcher accepts a request without the header (or with no
    /// headers at all: RBAC at network level). Treated as empty, the header is
    /// present with an empty value; otherwise only a presence matcher can succeed
    /// on it: one that wants absence, or an inverted one that wants presence.
    pub(crate) fn matches_missing(&self) -> bool {
        if !self.treat_missing_as_empty {
            return matches!(self.condition, Condition::Present(want) if want == self.invert);
        }
        let result = match &self.condition {
            Condition::Present(want) => *want,
            Condition::String(m) => m.matches(""),
            Condition::Range { .. } => false,
        };
        result != self.invert
    }

    /// Whether `f` accepts any of the header's values (an inline header's values
    /// joined by `,` are one value), or `None` when the header is absent.
    fn any_value(&self, parts: &Parts, mut f: impl FnMut(&str) -> bool) -> Option<bool> {
        match &self.source {
            HeaderSource::Method => Some(f(parts.method.as_str())),
            HeaderSource::Path => request::path_and_query(parts).map(f),
            HeaderSource::Authority => request::authority(parts).map(f),
            HeaderSource::Scheme => Some(f(request::scheme(parts))),
            HeaderSource::Header(name) => {
                let mut values = parts.headers.get_all(name).iter().peekable();
                values.peek()?;
                Some(values.any(|v| f(&String::from_utf8_lossy(v.as_bytes()))))
            }
            HeaderSource::JoinedHeader(name) => {
                let mut values = parts.headers.get_all(name).iter();
                let first = values.next()?;
                let mut joined = String::from_utf8_lossy(first.as_bytes());
                for v in values {
                    let s = joined.to_mut();
                    s.push(',');
                    s.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
                Some(f(&joined))
            }
        }
    }
}

fn header_source(name: &str, path: &FieldPath) -> Result<HeaderSource, ConfigError> {
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        ":method" => HeaderSource::Method,
        ":path" => HeaderSource::Path,
        ":authority" | "host" => HeaderSource::Authority,
        ":scheme" => HeaderSource::Scheme,
        _ => {
            let header = HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| path.field_error("name", format!("invalid header name '{name}'")))?;
            if INLINE_REQUEST_HEADERS.contains(&header.as_str()) {
                HeaderSource::JoinedHeader(header)
            } else {
                HeaderSource::Header(header)
            }
        }
    })
}

/// One compiled `QueryParameterMatcher`.
#[derive(Debug, Clone)]
pub(crate) struct QueryParameterMatcher {
    name: String,
    /// `None`: the key only has to be present.
    value: Option<StringMatcher>,
}

impl QueryParameterMatcher {
    /// Compiles `qm`; `path` points at it.
    pub(crate) fn from_proto(
        qm: &QueryParameterMatcherProto,
        path: &FieldPath,
    ) -> Result<QueryParameterMatcher, ConfigError> {
        if qm.name.is_empty() {
            return Err(path.field_error("name", "value length must be at least 1 characters"));
        }
        let value = match &qm.query_parameter_match_specifier {
            Some(QueryParameterMatchSpecifier::StringMatch(sm)) => {
                let mut p = path.clone();
                p.push_field("string_match");
                Some(StringMatcher::from_proto(sm, &p)?)
            }
            Some(QueryParameterMatchSpecifier::PresentMatch(_)) | None => None,
        };
        Ok(QueryParameterMatcher { name: qm.name.clone(), value })
    }

    /// Matches against a query string (without the `?`).
    pub(crate) fn matches(&self, query: Option<&str>) -> bool {
        let Some(query) = query else { return false };
        let found = query.split('&').find_map(|item| {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            (key == self.name).then_some(value)
        });
        match (found, &self.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(m)) => m.matches(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::r#type::v3::Int64Range;

    fn request(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method("POST").uri("/p?q=1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn hm(name: &str, spec: Option<HeaderMatchSpecifier>, invert: bool, missing_empty: bool) -> HeaderMatcher {
        let proto = HeaderMatcherProto {
            name: name.to_string(),
            invert_match: invert,
            treat_missing_header_as_empty: missing_empty,
            header_match_specifier: spec,
        };
        HeaderMatcher::from_proto(&proto, &FieldPath::starting_at("h")).expect("valid")
    }

    fn exact(v: &str) -> Option<HeaderMatchSpecifier> {
        Some(HeaderMatchSpecifier::StringMatch(StringMatcherProto {
            ignore_case: false,
            match_pattern: Some(MatchPattern::Exact(v.to_string())),
        }))
    }

    #[test]
    fn string_match_and_invert() {
        let r = request(&[("x-a", "yes")]);
        assert!(hm("x-a", exact("yes"), false, false).matches(&r));
        assert!(!hm("x-a", exact("no"), false, false).matches(&r));
        assert!(hm("x-a", exact("no"), true, false).matches(&r));
        assert!(!hm("x-a", exact("yes"), true, false).matches(&r));
        // Header names are case-insensitive.
        assert!(hm("X-A", exact("yes"), false, false).matches(&r));
    }

    #[test]
    fn missing_header_never_matches_unless_treated_as_empty() {
        let r = request(&[]);
        assert!(!hm("x-a", exact("v"), false, false).matches(&r));
        assert!(!hm("x-a", exact("v"), true, false).matches(&r));
        assert!(hm("x-a", exact(""), false, true).matches(&r));
        assert!(hm("x-a", exact("v"), true, true).matches(&r));
    }

    #[test]
    fn present_match() {
        let with = request(&[("x-a", "")]);
        let without = request(&[]);
        let present = |b, inv| hm("x-a", Some(HeaderMatchSpecifier::PresentMatch(b)), inv, false);
        assert!(present(true, false).matches(&with));
        assert!(!present(true, false).matches(&without));
        assert!(present(false, false).matches(&without));
        assert!(!present(false, false).matches(&with));
        assert!(present(true, true).matches(&without));
        assert!(!present(true, true).matches(&with));
        // No specifier at all: presence.
        assert!(hm("x-a", None, false, false).matches(&with));
        assert!(!hm("x-a", None, false, false).matches(&without));
    }

    #[test]
    #[allow(deprecated)]
    fn legacy_forms_range_and_multiple_values() {
        let r = request(&[("x-v", "abcdef"), ("x-n", "-3"), ("x-m", "a"), ("x-m", "b")]);
        let m = |n, s| hm(n, Some(s), false, false).matches(&r);
        assert!(m("x-v", HeaderMatchSpecifier::ExactMatch("abcdef".into())));
        assert!(m("x-v", HeaderMatchSpecifier::PrefixMatch("abc".into())));
        assert!(m("x-v", HeaderMatchSpecifier::SuffixMatch("def".into())));
        assert!(m("x-v", HeaderMatchSpecifier::ContainsMatch("cd".into())));
        let regex =
            envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher { regex: "a.*f".into(), engine_type: None };
        assert!(m("x-v", HeaderMatchSpecifier::SafeRegexMatch(regex)));
        assert!(m("x-n", HeaderMatchSpecifier::RangeMatch(Int64Range { start: -10, end: 0 })));
        assert!(!m("x-n", HeaderMatchSpecifier::RangeMatch(Int64Range { start: -3 + 1, end: 0 })));
        assert!(!m("x-v", HeaderMatchSpecifier::RangeMatch(Int64Range { start: 0, end: 10 })));
        assert!(!m("x-m", HeaderMatchSpecifier::ExactMatch("a,b".into())), "values are not joined");
        assert!(m("x-m", HeaderMatchSpecifier::ExactMatch("b".into())), "any value matches");
    }

    #[test]
    fn repeated_headers_match_value_by_value() {
        let r = request(&[("x-r", "a"), ("x-r", "b"), ("x-n", "abc"), ("x-n", "5")]);
        assert!(hm("x-r", exact("a"), false, false).matches(&r));
        assert!(hm("x-r", exact("b"), false, false).matches(&r));
        assert!(!hm("x-r", exact("a,b"), false, false).matches(&r));
        // Inverted: no value may match.
        assert!(!hm("x-r", exact("a"), true, false).matches(&r));
        assert!(hm("x-r", exact("c"), true, false).matches(&r));
        assert!(hm("x-r", exact("a,b"), true, false).matches(&r));
        let range =
            |s, e, inv| hm("x-n", Some(HeaderMatchSpecifier::RangeMatch(Int64Range { start: s, end: e })), inv, false);
        assert!(range(0, 10, false).matches(&r));
        assert!(!range(0, 10, true).matches(&r));
        // Presence does not depend on the values.
        let present = |b, inv| hm("x-r", Some(HeaderMatchSpecifier::PresentMatch(b)), inv, false);
        assert!(present(true, false).matches(&r));
        assert!(!present(true, true).matches(&r));
        assert!(!present(false, false).matches(&r));
        // A single value holding a comma is one value.
        assert!(hm("x-r", exact("a,b"), false, false).matches(&request(&[("x-r", "a,b")])));
    }

    #[test]
    fn inline_headers_match_their_joined_values() {
        let r = request(&[("user-agent", "a"), ("user-agent", "b"), ("accept", "x")]);
        assert!(hm("user-agent", exact("a,b"), false, false).matches(&r));
        assert!(!hm("user-agent", exact("b"), false, false).matches(&r));
        assert!(hm("user-agent", exact("b"), true, false).matches(&r));
        assert!(hm("accept", exact("x"), false, false).matches(&r));
    }

    #[test]
    fn pseudo_headers() {
        let r = request(&[("host", "example.com")]);
        assert!(hm(":method", exact("POST"), false, false).matches(&r));
        assert!(hm(":path", exact("/p?q=1"), false, false).matches(&r));
        assert!(hm(":authority", exact("example.com"), false, false).matches(&r));
        assert!(hm("host", exact("example.com"), false, false).matches(&r));
        assert!(hm(":scheme", exact("http"), false, false).matches(&r));
    }

    #[test]
    #[allow(deprecated)]
    fn header_matcher_errors() {
        let proto = HeaderMatcherProto {
            name: "bad name".into(),
            invert_match: false,
            treat_missing_header_as_empty: false,
            header_match_specifier: None,
        };
        assert_eq!(HeaderMatcher::from_proto(&proto, &FieldPath::starting_at("h")).unwrap_err().path, "h.name");
        let proto = HeaderMatcherProto {
            name: "x".into(),
            invert_match: false,
            treat_missing_header_as_empty: false,
            header_match_specifier: Some(HeaderMatchSpecifier::PrefixMatch(String::new())),
        };
        assert_eq!(HeaderMatcher::from_proto(&proto, &FieldPath::starting_at("h")).unwrap_err().path, "h.prefix_match");
    }

    #[test]
    fn legacy_regex_errors_name_the_field() {
        #[allow(deprecated)]
        let spec = HeaderMatchSpecifier::SafeRegexMatch(envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
            regex: "((".into(),
            engine_type: None,
        });
        let proto = HeaderMatcherProto { name: "x".into(), header_match_specifier: Some(spec), ..Default::default() };
        let err = HeaderMatcher::from_proto(&proto, &FieldPath::starting_at("headers[0]")).unwrap_err();
        assert_eq!(err.path, "headers[0].safe_regex_match.regex");
    }

    fn qm(name: &str, spec: Option<QueryParameterMatchSpecifier>) -> QueryParameterMatcher {
        let proto = QueryParameterMatcherProto { name: name.to_string(), query_parameter_match_specifier: spec };
        QueryParameterMatcher::from_proto(&proto, &FieldPath::starting_at("q")).expect("valid")
    }

    #[test]
    fn query_parameters() {
        let value = |v: &str| {
            Some(QueryParameterMatchSpecifier::StringMatch(StringMatcherProto {
                ignore_case: false,
                match_pattern: Some(MatchPattern::Exact(v.to_string())),
            }))
        };
        let q = Some("a=1&b&c=x%20y&a=2");
        assert!(qm("a", value("1")).matches(q));
        assert!(!qm("a", value("2")).matches(q), "only the first value counts");
        assert!(qm("b", value("")).matches(q));
        assert!(qm("c", value("x%20y")).matches(q), "values are not decoded");
        assert!(qm("b", Some(QueryParameterMatchSpecifier::PresentMatch(true))).matches(q));
        assert!(qm("b", None).matches(q));
        assert!(!qm("d", Some(QueryParameterMatchSpecifier::PresentMatch(true))).matches(q));
        assert!(!qm("a", None).matches(None));
    }
}
