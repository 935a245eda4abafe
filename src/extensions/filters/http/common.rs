//! Pieces the HTTP filters share: the supported-fields check of their configs,
//! Envoy's fractional percentages, request header matching, and header additions.
//!
//! `HeaderMatchers` and `HeaderAdditions` mirror what `router::header_matcher` and
//! `router::header_mutation` do for routes; those types are private to the router, so
//! the filters carry these small versions until one shared module exists.

use std::borrow::Cow;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValueOption, RuntimeFractionalPercent};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, HeaderMatcher as HeaderMatcherProto,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher as StringMatcherProto};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::Any;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::SUPPORTED_FIELDS;
use crate::common::random;
use crate::config::{descriptor, ConfigError, FieldPath};
use crate::formatter::{FormatContext, FormatString};
use crate::router::StringMatcher;

/// Messages whose every field is accepted (well-known value types).
const OPAQUE: &[&str] = &[
    "google.protobuf.Duration",
    "google.protobuf.BoolValue",
    "google.protobuf.UInt32Value",
    "google.protobuf.UInt64Value",
];

/// Rejects the first set field of the config packed in `any` that Courier does not
/// implement (per `SUPPORTED_FIELDS`); `path` points at the `Any`.
pub(crate) fn check_supported(any: &Any, path: &FieldPath) -> Result<(), ConfigError> {
    let name = descriptor::type_name(&any.type_url);
    let desc = descriptor::message(name).ok_or_else(|| path.field_error("@type", format!("unknown type '{name}'")))?;
    let msg = DynamicMessage::decode(desc, any.value.as_slice())
        .map_err(|e| path.error(format!("cannot decode '{}': {e}", any.type_url)))?;
    check_message(&msg, &mut path.clone())
}

fn check_message(msg: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
    let desc = msg.descriptor();
    let name = desc.full_name();
    if OPAQUE.contains(&name) {
        return Ok(());
    }
    let fields = SUPPORTED_FIELDS.iter().find(|(m, _)| *m == name).map_or(&[][..], |(_, f)| *f);
    for (field, value) in msg.fields() {
        path.push_field(field.name());
        if !fields.contains(&field.name()) {
            return Err(path.error(format!("field '{}' of {name} is not supported by Courier", field.name())));
        }
        check_value(value, path)?;
        path.pop();
    }
    Ok(())
}

fn check_value(value: &Value, path: &mut FieldPath) -> Result<(), ConfigError> {
    match value {
        Value::Message(m) => check_message(m, path),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_index(i);
                check_value(item, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Map(entries) => {
            let mut keys: Vec<_> = entries.keys().collect();
            keys.sort();
            for key in keys {
                if let (Some(v), prost_reflect::MapKey::String(k)) = (entries.get(key), key) {
                    path.push_key(k);
                    check_value(v, path)?;
                    path.pop();
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The error for a field Courier does not implement (or a value of it it does not).
pub(crate) fn unsupported(path: &FieldPath, field: &str, what: &str) -> ConfigError {
    path.field_error(field, format!("{what} is not supported by Courier"))
}

/// Envoy's `FractionalPercent`: `numerator / denominator`, sampled per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Percent {
    pub numerator: u64,
    pub denominator: u64,
}

impl Percent {
    pub const ZERO: Percent = Percent { numerator: 0, denominator: 100 };
    pub const HUNDRED: Percent = Percent { numerator: 100, denominator: 100 };

    /// Unknown denominators (only possible from a future schema) count as `HUNDRED`,
    /// as Envoy's `fractionalPercentDenominatorToInt` does for its default.
    pub fn from_proto(p: &FractionalPercent) -> Percent {
        let denominator = match DenominatorType::try_from(p.denominator) {
            Ok(DenominatorType::TenThousand) => 10_000,
            Ok(DenominatorType::Million) => 1_000_000,
            _ => 100,
        };
        Percent { numerator: u64::from(p.numerator), denominator }
    }

    /// A `RuntimeFractionalPercent`'s `default_value` (Courier has no runtime layer,
    /// so this is what Envoy uses when its runtime does not override the key), or
    /// `absent` when the field is not set.
    pub fn from_runtime(p: Option<&RuntimeFractionalPercent>, absent: Percent) -> Percent {
        match p {
            Some(r) => r.default_value.as_ref().map_or(Percent::ZERO, Percent::from_proto),
            None => absent,
        }
    }

    /// The same denominator with the numerator capped at `max` (header-controlled
    /// fault percentages).
    pub fn with_numerator_at_most(self, max: u64) -> Percent {
        Percent { numerator: self.numerator.min(max), ..self }
    }

    /// True for `numerator / denominator` of the calls (always when the numerator is
    /// at least the denominator, never when it is zero).
    pub fn sample(self) -> bool {
        if self.numerator == 0 {
            return false;
        }
        if self.numerator >= self.denominator {
            return true;
        }
        random::below(self.denominator) < self.numerator
    }
}

/// A request header's value as Envoy's header map gives it to matchers.
#[derive(Debug, Clone)]
enum HeaderSource {
    Header(HeaderName),
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

/// One compiled `config.route.v3.HeaderMatcher`, with Envoy's
/// `HeaderUtility::matchHeaders` semantics: several values are matched joined by
/// `,`; a missing header only matches `present_match: false` (or an inverted
/// presence), unless `treat_missing_header_as_empty`.
#[derive(Debug, Clone)]
pub(crate) struct HeaderMatcher {
    source: HeaderSource,
    condition: Condition,
    invert: bool,
    treat_missing_as_empty: bool,
}

impl HeaderMatcher {
    /// Compiles `hm`; `path` points at it. The deprecated `*_match` forms are still
    /// Envoy's API, so they are accepted.
    #[allow(deprecated)]
    pub fn from_proto(hm: &HeaderMatcherProto, path: &FieldPath) -> Result<HeaderMatcher, ConfigError> {
        let source = header_source(&hm.name, path)?;
        let string = |field: &str, pattern: MatchPattern| -> Result<Condition, ConfigError> {
            let mut p = path.clone();
            p.push_field(field);
            let proto = StringMatcherProto { ignore_case: false, match_pattern: Some(pattern) };
            StringMatcher::from_proto(&proto, &p).map(Condition::String).map_err(|mut e| {
                // The legacy forms are the field itself, not a `StringMatcher` in it.
                e.path = p.to_string();
                e
            })
        };
        let condition = match &hm.header_match_specifier {
            Some(HeaderMatchSpecifier::ExactMatch(v)) => string("exact_match", MatchPattern::Exact(v.clone()))?,
            Some(HeaderMatchSpecifier::PrefixMatch(v)) => string("prefix_match", MatchPattern::Prefix(v.clone()))?,
            Some(HeaderMatchSpecifier::SuffixMatch(v)) => string("suffix_match", MatchPattern::Suffix(v.clone()))?,
            Some(HeaderMatchSpecifier::ContainsMatch(v)) => {
                string("contains_match", MatchPattern::Contains(v.clone()))?
            }
            Some(HeaderMatchSpecifier::SafeRegexMatch(rm)) => {
                let mut p = path.clone();
                p.push_field("safe_regex_match");
                let proto =
                    StringMatcherProto { ignore_case: false, match_pattern: Some(MatchPattern::SafeRegex(rm.clone())) };
                // Errors point at `safe_regex_match.safe_regex.<field>`; drop the
                // `safe_regex` segment that only the wrapper has.
                Condition::String(StringMatcher::from_proto(&proto, &p).map_err(|mut e| {
                    e.path = e.path.replacen("safe_regex_match.safe_regex", "safe_regex_match", 1);
                    e
                })?)
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
    pub fn list(list: &[HeaderMatcherProto], path: &FieldPath) -> Result<Vec<HeaderMatcher>, ConfigError> {
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
    pub fn all(list: &[HeaderMatcher], parts: &Parts) -> bool {
        list.iter().all(|m| m.matches(parts))
    }

    pub fn matches(&self, parts: &Parts) -> bool {
        let value = self.value(parts);
        let present = value.is_some() || self.treat_missing_as_empty;
        if !present {
            return match self.condition {
                Condition::Present(want) => want == self.invert,
                _ => false,
            };
        }
        let value = value.unwrap_or(Cow::Borrowed(""));
        let result = match &self.condition {
            Condition::String(m) => m.matches(&value),
            Condition::Range { start, end } => value.parse::<i64>().is_ok_and(|n| n >= *start && n < *end),
            Condition::Present(want) => *want == present,
        };
        result != self.invert
    }

    fn value<'a>(&self, parts: &'a Parts) -> Option<Cow<'a, str>> {
        match &self.source {
            HeaderSource::Method => Some(Cow::Borrowed(parts.method.as_str())),
            HeaderSource::Path => match parts.uri.path_and_query() {
                Some(pq) => Some(Cow::Borrowed(pq.as_str())),
                None if parts.uri.scheme().is_some() => Some(Cow::Borrowed("/")),
                None => None,
            },
            HeaderSource::Authority => match parts.uri.authority() {
                Some(a) => Some(Cow::Borrowed(a.as_str())),
                None => parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).map(Cow::Borrowed),
            },
            HeaderSource::Scheme => Some(Cow::Borrowed(parts.uri.scheme_str().unwrap_or("http"))),
            HeaderSource::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                let first = values.next()?;
                let mut joined = String::from_utf8_lossy(first.as_bytes());
                for v in values {
                    let s = joined.to_mut();
                    s.push(',');
                    s.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
                Some(joined)
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
        _ => HeaderSource::Header(
            HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| path.field_error("name", format!("invalid header name '{name}'")))?,
        ),
    })
}

/// Envoy's `HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppendAction {
    AppendIfExistsOrAdd,
    AddIfAbsent,
    OverwriteIfExistsOrAdd,
    OverwriteIfExists,
}

#[derive(Debug, Clone)]
struct HeaderAddition {
    name: HeaderName,
    value: FormatString,
    action: AppendAction,
    keep_empty_value: bool,
}

/// A compiled list of `HeaderValueOption`s (a filter's `*_headers_to_add`): values
/// are substitution format strings, formatted against the request when applied.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderAdditions {
    adds: Vec<HeaderAddition>,
}

impl HeaderAdditions {
    /// Compiles `list`; `path` points at the list field.
    // `append` is deprecated in favour of `append_action` but still Envoy's API.
    #[allow(deprecated)]
    pub fn from_proto(list: &[HeaderValueOption], path: &FieldPath) -> Result<HeaderAdditions, ConfigError> {
        let mut adds = Vec::with_capacity(list.len());
        for (i, option) in list.iter().enumerate() {
            let mut p = path.clone();
            p.push_index(i);
            let mut hp = p.clone();
            hp.push_field("header");
            let header = option.header.as_ref().ok_or_else(|| hp.error("value is required"))?;
            let lower = header.key.to_ascii_lowercase();
            if lower.starts_with(':') || lower == "host" {
                return Err(hp.field_error("key", ":-prefixed or host headers may not be modified"));
            }
            let name = HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| hp.field_error("key", format!("invalid header name '{}'", header.key)))?;
            let (text, field) = if header.raw_value.is_empty() {
                (header.value.clone(), "value")
            } else if header.value.is_empty() {
                let text = String::from_utf8(header.raw_value.clone())
                    .map_err(|_| hp.field_error("raw_value", "raw_value must be UTF-8 in Courier"))?;
                (text, "raw_value")
            } else {
                return Err(hp.field_error("raw_value", "only one of value or raw_value may be set"));
            };
            let value = FormatString::parse(&text).map_err(|e| hp.field_error(field, e))?;
            let action = match (&option.append, HeaderAppendAction::try_from(option.append_action)) {
                (Some(_), Ok(a)) if a != HeaderAppendAction::AppendIfExistsOrAdd => {
                    return Err(p.field_error("append", "Both append and append_action are set and it's not allowed"))
                }
                (Some(append), _) if append.value => AppendAction::AppendIfExistsOrAdd,
                (Some(_), _) => AppendAction::OverwriteIfExistsOrAdd,
                (None, Ok(HeaderAppendAction::AppendIfExistsOrAdd)) => AppendAction::AppendIfExistsOrAdd,
                (None, Ok(HeaderAppendAction::AddIfAbsent)) => AppendAction::AddIfAbsent,
                (None, Ok(HeaderAppendAction::OverwriteIfExistsOrAdd)) => AppendAction::OverwriteIfExistsOrAdd,
                (None, Ok(HeaderAppendAction::OverwriteIfExists)) => AppendAction::OverwriteIfExists,
                (None, Err(_)) => {
                    return Err(
                        p.field_error("append_action", format!("unknown append action {}", option.append_action))
                    )
                }
            };
            adds.push(HeaderAddition { name, value, action, keep_empty_value: option.keep_empty_value });
        }
        Ok(HeaderAdditions { adds })
    }

    pub fn is_empty(&self) -> bool {
        self.adds.is_empty()
    }

    /// Adds the headers to `headers`; every value is formatted first (against `cx`),
    /// then the overwrites are set and the appends added, as Envoy's `HeaderParser`.
    pub fn apply(&self, headers: &mut HeaderMap, cx: &FormatContext<'_>) {
        let mut overwrite = Vec::new();
        let mut append = Vec::new();
        for add in &self.adds {
            // A missing value prints as `-` in logs but as nothing in headers.
            let mut text = String::new();
            add.value.write(cx, &mut text, "");
            let value = if text.is_empty() {
                if !add.keep_empty_value {
                    continue;
                }
                HeaderValue::from_static("")
            } else {
                match HeaderValue::from_str(&text) {
                    Ok(v) => v,
                    // A value that cannot be a header value (CR, LF, NUL) is dropped.
                    Err(_) => continue,
                }
            };
            let present = headers.contains_key(&add.name);
            match add.action {
                AppendAction::AppendIfExistsOrAdd => append.push((add.name.clone(), value)),
                AppendAction::AddIfAbsent if !present => append.push((add.name.clone(), value)),
                AppendAction::AddIfAbsent | AppendAction::OverwriteIfExists if !present => {}
                AppendAction::AddIfAbsent => {}
                AppendAction::OverwriteIfExists | AppendAction::OverwriteIfExistsOrAdd => {
                    overwrite.push((add.name.clone(), value))
                }
            }
        }
        for (name, value) in overwrite {
            headers.insert(name, value);
        }
        for (name, value) in append {
            headers.append(name, value);
        }
    }
}

/// The format context of a request being decoded.
pub(crate) fn request_format_context<'a>(
    parts: &'a Parts,
    info: &'a crate::http::stream_info::StreamInfo,
) -> FormatContext<'a> {
    FormatContext {
        request_headers: Some(&parts.headers),
        request_method: Some(&parts.method),
        request_uri: Some(&parts.uri),
        response_headers: None,
        response_trailers: None,
        info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{any_from_yaml, request};
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as HeaderValueProto;

    fn matcher(yaml: &str) -> HeaderMatcher {
        let json = crate::config::bootstrap::parse_yaml(yaml).expect("yaml");
        let desc = descriptor::message("envoy.config.route.v3.HeaderMatcher").expect("schema");
        let msg = crate::config::proto_json::decode(&desc, &json, &mut FieldPath::new()).expect("decode");
        let proto: HeaderMatcherProto = msg.transcode_to().expect("transcode");
        HeaderMatcher::from_proto(&proto, &FieldPath::starting_at("headers[0]")).expect("valid matcher")
    }

    #[test]
    fn header_matchers_follow_envoy() {
        let get = |uri: &str, h: &[(&str, &str)]| request("GET", uri, h);
        let m = matcher("{name: ':path', string_match: {exact: /healthz}}");
        assert!(m.matches(&get("/healthz", &[])));
        assert!(!m.matches(&get("/healthz?x=1", &[])), ":path includes the query");
        let m = matcher("{name: x-a, present_match: true}");
        assert!(m.matches(&get("/", &[("x-a", "")])));
        assert!(!m.matches(&get("/", &[])));
        let m = matcher("{name: x-a, present_match: false}");
        assert!(m.matches(&get("/", &[])));
        let m = matcher("{name: x-a, exact_match: v, invert_match: true}");
        assert!(!m.matches(&get("/", &[])), "a missing header never matches a value matcher");
        assert!(m.matches(&get("/", &[("x-a", "w")])));
        let m = matcher("{name: x-a, range_match: {start: 1, end: 10}}");
        assert!(m.matches(&get("/", &[("x-a", "9")])) && !m.matches(&get("/", &[("x-a", "10")])));
        let m = matcher("{name: x-a, string_match: {prefix: a}}");
        assert!(m.matches(&get("/", &[("x-a", "ab"), ("x-a", "c")])), "values are joined by ','");
        let m = matcher("{name: x-a, string_match: {exact: ''}, treat_missing_header_as_empty: true}");
        assert!(m.matches(&get("/", &[])));
        let m = matcher("{name: x-a}");
        assert!(m.matches(&get("/", &[("x-a", "1")])) && !m.matches(&get("/", &[])));
        let m = matcher("{name: ':method', string_match: {exact: POST}}");
        assert!(m.matches(&request("POST", "/", &[])) && !m.matches(&get("/", &[])));
    }

    #[test]
    fn legacy_regex_errors_name_the_field() {
        let proto = HeaderMatcherProto {
            name: "x".into(),
            #[allow(deprecated)]
            header_match_specifier: Some(HeaderMatchSpecifier::SafeRegexMatch(
                envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher { regex: "((".into(), engine_type: None },
            )),
            ..Default::default()
        };
        let err = HeaderMatcher::from_proto(&proto, &FieldPath::starting_at("headers[0]")).unwrap_err();
        assert_eq!(err.path, "headers[0].safe_regex_match.regex");
    }

    #[test]
    fn percent_samples_and_caps() {
        let p = Percent::from_proto(&FractionalPercent { numerator: 5, denominator: DenominatorType::Million as i32 });
        assert_eq!(p, Percent { numerator: 5, denominator: 1_000_000 });
        assert!(Percent::HUNDRED.sample());
        assert!(!Percent::ZERO.sample());
        assert!(Percent { numerator: 200, denominator: 100 }.sample());
        assert_eq!(Percent::HUNDRED.with_numerator_at_most(7).numerator, 7);
        let hits = (0..10_000).filter(|_| Percent { numerator: 50, denominator: 100 }.sample()).count();
        assert!((4_000..6_000).contains(&hits), "{hits}");
        assert_eq!(Percent::from_runtime(None, Percent::HUNDRED), Percent::HUNDRED);
        assert_eq!(Percent::from_runtime(Some(&RuntimeFractionalPercent::default()), Percent::HUNDRED), Percent::ZERO);
    }

    #[allow(deprecated)]
    fn option(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(HeaderValueProto { key: key.into(), value: value.into(), ..Default::default() }),
            append_action: action as i32,
            ..Default::default()
        }
    }

    #[test]
    fn header_additions_apply_actions_and_formats() {
        let adds = HeaderAdditions::from_proto(
            &[
                option("x-a", "1", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-b", "2", HeaderAppendAction::OverwriteIfExistsOrAdd),
                option("x-c", "3", HeaderAppendAction::AddIfAbsent),
                option("x-d", "4", HeaderAppendAction::OverwriteIfExists),
                option("x-m", "%REQ(:METHOD)%", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-e", "%REQ(x-missing)%", HeaderAppendAction::AppendIfExistsOrAdd),
            ],
            &FieldPath::starting_at("response_headers_to_add"),
        )
        .expect("valid");
        let req = request("PUT", "/", &[]);
        let info = crate::extensions::filters::http::test_util::info();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("0"));
        h.insert("x-b", HeaderValue::from_static("0"));
        h.insert("x-c", HeaderValue::from_static("0"));
        adds.apply(&mut h, &request_format_context(&req, &info));
        assert_eq!(h.get_all("x-a").iter().count(), 2);
        assert_eq!(h["x-b"], "2");
        assert_eq!(h["x-c"], "0");
        assert!(!h.contains_key("x-d"));
        assert_eq!(h["x-m"], "PUT");
        assert!(!h.contains_key("x-e"), "an empty value is dropped");

        let err = HeaderAdditions::from_proto(
            &[option(":path", "1", HeaderAppendAction::AppendIfExistsOrAdd)],
            &FieldPath::starting_at("x.response_headers_to_add"),
        )
        .unwrap_err();
        assert_eq!(err.path, "x.response_headers_to_add[0].header.key");
    }

    #[test]
    fn unsupported_fields_are_named() {
        let any = any_from_yaml(
            "envoy.extensions.filters.http.fault.v3.HTTPFault",
            "{abort: {grpc_status: 3, percentage: {numerator: 1}}}",
        );
        let err = check_supported(&any, &FieldPath::starting_at("http_filters[0].typed_config")).unwrap_err();
        assert_eq!(err.path, "http_filters[0].typed_config.abort.grpc_status");
        assert_eq!(
            err.reason,
            "field 'grpc_status' of envoy.extensions.filters.http.fault.v3.FaultAbort is not supported by Courier"
        );
    }
}
