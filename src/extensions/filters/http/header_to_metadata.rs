//! `envoy.filters.http.header_to_metadata`: turns request (and response) header
//! or cookie values into dynamic metadata, for later filters, the access log
//! (`%DYNAMIC_METADATA(...)%`) and header formatters.
//!
//! As Envoy 1.40 (tests/compat `filter_header_to_metadata`): each rule reads
//! its header (all values joined by `,`) or cookie. When it is there and the
//! rule has `on_header_present`, the pair's fixed `value`, else the header's
//! value (after `regex_value_rewrite`, which replaces every match), is stored
//! under `key` in `metadata_namespace` (the filter's own name when empty) as a
//! string, a number (trimmed; a value that is no number is dropped), or a
//! serialized `google.protobuf.Value`, base64-decoded first with `encode:
//! BASE64`. An empty value is not stored; one of 8 KiB or more is dropped and
//! counted. When the header is missing, `on_header_missing`'s value is stored
//! instead. `remove` then deletes the header. A route's config
//! (`typed_per_filter_config`) replaces the filter's. With `stat_prefix`, the
//! counts are `http_filter_name.<stat_prefix>.*`, Envoy's names.

use std::borrow::Cow;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use envoy_types::pb::envoy::extensions::filters::http::header_to_metadata::v3::config::{
    KeyValuePair, Rule as RuleProto, ValueEncode, ValueType,
};
use envoy_types::pb::envoy::extensions::filters::http::header_to_metadata::v3::Config;
use envoy_types::pb::google::protobuf::{Any, Struct, Value};
use http::{HeaderMap, HeaderName};
use prost::Message;

use super::common;
use super::filter::{EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::router::{PerRouteConfig, RegexSubstitution};
use crate::stats::{Counter, Store};
use crate::stream_info::dynamic_metadata::{number_value, string_value};
use crate::stream_info::DynamicMetadata;

pub const NAME: &str = "envoy.filters.http.header_to_metadata";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.header_to_metadata.v3.Config";
const RULE_TYPE: &str = "envoy.extensions.filters.http.header_to_metadata.v3.Config.Rule";
const PAIR_TYPE: &str = "envoy.extensions.filters.http.header_to_metadata.v3.Config.KeyValuePair";

/// Envoy's `MAX_HEADER_VALUE_LEN`: longer values are not stored.
const MAX_VALUE_LEN: usize = 8 * 1024;

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((CONFIG_TYPE, create_per_route)),
};

define_stats! {
    /// `http_filter_name.<stat_prefix>.*`.
    #[derive(Debug)]
    pub struct HeaderToMetadataStats {
        counter request_rules_processed,
        counter response_rules_processed,
        counter request_metadata_added,
        counter response_metadata_added,
        counter request_header_not_found,
        counter response_header_not_found,
        counter base64_decode_failed,
        counter header_value_too_long,
        counter regex_substitution_failed,
    }
}

/// Where a rule reads its value.
#[derive(Debug)]
enum Selector {
    Header(HeaderName),
    /// `:path`, `:authority`, `:method`, `:scheme` or `:status`, which the
    /// codec keeps outside the header map.
    Pseudo(String),
    Cookie(String),
}

/// The pseudo-headers of what the rules run on.
#[derive(Debug, Clone, Copy)]
enum Head<'a> {
    Request(&'a http::Method, &'a http::Uri),
    Response(http::StatusCode),
}

/// What a rule stores, and where.
#[derive(Debug)]
struct Pair {
    namespace: String,
    key: String,
    value: String,
    value_type: ValueType,
    base64: bool,
}

#[derive(Debug)]
struct Rule {
    selector: Selector,
    on_present: Option<Pair>,
    on_missing: Option<Pair>,
    rewrite: Option<RegexSubstitution>,
    remove: bool,
}

/// A compiled `Config`: the filter's, or a route's (which counts nothing, as in Envoy).
#[derive(Debug)]
pub struct HeaderToMetadataConfig {
    request: Vec<Rule>,
    response: Vec<Rule>,
    stats: Option<HeaderToMetadataStats>,
}

/// The request or the response side, for the counters.
#[derive(Debug, Clone, Copy)]
enum Side {
    Request,
    Response,
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    let config = HeaderToMetadataConfig::from_any(any, path, Some(ctx.store))?;
    Ok(Arc::new(HeaderToMetadataFactory { config: Arc::new(config), name: ctx.filter_name.into() }))
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    Ok(Arc::new(HeaderToMetadataConfig::from_any(any, path, None)?))
}

impl HeaderToMetadataConfig {
    fn from_any(any: &Any, path: &FieldPath, store: Option<&Store>) -> Result<HeaderToMetadataConfig, ConfigError> {
        common::check_supported(any, path)?;
        let proto: Config = decode_any(any, path)?;
        let rules = |list: &[RuleProto], field: &str| {
            list.iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut at = path.child(field);
                    at.push_index(i);
                    Rule::new(r, &at)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let stats = match store {
            Some(store) if !proto.stat_prefix.is_empty() => {
                Some(HeaderToMetadataStats::new(store, &format!("http_filter_name.{}.", proto.stat_prefix)))
            }
            _ => None,
        };
        Ok(HeaderToMetadataConfig {
            request: rules(&proto.request_rules, "request_rules")?,
            response: rules(&proto.response_rules, "response_rules")?,
            stats,
        })
    }

    /// Runs `rules` over `headers` into `metadata`.
    fn apply(&self, side: Side, headers: &mut HeaderMap, head: Head<'_>, metadata: &mut DynamicMetadata) {
        let rules = match side {
            Side::Request => &self.request,
            Side::Response => &self.response,
        };
        let mut found: Vec<(&str, Struct)> = Vec::new();
        for rule in rules {
            self.count(|s| pick(side, &s.request_rules_processed, &s.response_rules_processed));
            let value = rule.selector.extract(headers, head);
            let pair = match (&value, &rule.on_present, &rule.on_missing) {
                (Some(v), Some(pair), _) => Some((pair, v.as_str())),
                (None, _, Some(pair)) => {
                    self.count(|s| pick(side, &s.request_header_not_found, &s.response_header_not_found));
                    Some((pair, ""))
                }
                _ => None,
            };
            if let Some((pair, header_value)) = pair {
                let value = match &rule.rewrite {
                    _ if !pair.value.is_empty() => Cow::Borrowed(pair.value.as_str()),
                    Some(rewrite) => rewrite.replace_all(header_value),
                    None => Cow::Borrowed(header_value),
                };
                if let Some(v) = self.to_value(&value, pair) {
                    let at = match found.iter().position(|(ns, _)| *ns == pair.namespace) {
                        Some(at) => at,
                        None => {
                            found.push((&pair.namespace, Struct::default()));
                            found.len() - 1
                        }
                    };
                    found[at].1.fields.insert(pair.key.clone(), v);
                    self.count(|s| pick(side, &s.request_metadata_added, &s.response_metadata_added));
                }
            }
            if value.is_some() && rule.remove {
                rule.selector.remove(headers);
            }
        }
        for (namespace, fields) in found {
            metadata.set_fields(namespace, fields);
        }
    }

    /// The value to store, or `None` (counted where Envoy counts it) when it is
    /// too long or does not decode.
    fn to_value(&self, value: &str, pair: &Pair) -> Option<Value> {
        if value.is_empty() {
            return None;
        }
        if value.len() >= MAX_VALUE_LEN {
            self.count(|s| &s.header_value_too_long);
            return None;
        }
        let decoded;
        let bytes = if pair.base64 {
            decoded = BASE64.decode(value).ok().filter(|d| !d.is_empty());
            let Some(d) = decoded.as_deref() else {
                self.count(|s| &s.base64_decode_failed);
                return None;
            };
            d
        } else {
            value.as_bytes()
        };
        match pair.value_type {
            ValueType::String => Some(string_value(String::from_utf8_lossy(bytes).into_owned())),
            ValueType::Number => std::str::from_utf8(bytes).ok()?.trim().parse::<f64>().ok().map(number_value),
            ValueType::ProtobufValue => Value::decode(bytes).ok(),
        }
    }

    fn count(&self, counter: impl Fn(&HeaderToMetadataStats) -> &Counter) {
        if let Some(stats) = &self.stats {
            counter(stats).inc();
        }
    }
}

/// Envoy's lenient base64: padding may be there or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The request's or the response's counter.
fn pick<'a>(side: Side, request: &'a Counter, response: &'a Counter) -> &'a Counter {
    match side {
        Side::Request => request,
        Side::Response => response,
    }
}

impl Rule {
    fn new(proto: &RuleProto, path: &FieldPath) -> Result<Rule, ConfigError> {
        let selector = match (proto.header.is_empty(), proto.cookie.is_empty()) {
            (false, true) if proto.header.starts_with(':') => Selector::Pseudo(proto.header.to_ascii_lowercase()),
            (false, true) => Selector::Header(
                HeaderName::from_bytes(proto.header.to_ascii_lowercase().as_bytes())
                    .map_err(|_| path.field_error("header", "not a valid header name"))?,
            ),
            (true, false) => Selector::Cookie(proto.cookie.clone()),
            (false, false) => return Err(path.error("Cannot specify both header and cookie in the same rule")),
            (true, true) => return Err(path.error("One of Cookie or Header option needs to be specified")),
        };
        if proto.on_header_present.is_none() && proto.on_header_missing.is_none() {
            return Err(path.error(format!(
                "header to metadata filter: rule for {} has neither `on_header_present` nor `on_header_missing` set",
                selector.describe()
            )));
        }
        if let Some(p) = &proto.on_header_present {
            if !p.value.is_empty() && p.regex_value_rewrite.is_some() {
                return Err(path.child("on_header_present").error("Cannot specify both value and regex_value_rewrite"));
            }
        }
        if matches!(selector, Selector::Cookie(_)) && proto.remove {
            return Err(path.error("Cannot specify remove for cookie"));
        }
        if proto.on_header_missing.as_ref().is_some_and(|p| p.value.is_empty()) {
            return Err(path
                .child("on_header_missing")
                .error("Cannot specify on_header_missing rule with an empty value"));
        }
        let rewrite = match proto.on_header_present.as_ref().and_then(|p| p.regex_value_rewrite.as_ref()) {
            Some(rms) => {
                let mut at = path.child("on_header_present");
                at.push_field("regex_value_rewrite");
                Some(RegexSubstitution::new(rms, &at)?)
            }
            None => None,
        };
        // An empty `key` is refused by the schema's own rules, before this.
        let pair = |p: &Option<KeyValuePair>| {
            p.as_ref().map(|p| Pair {
                namespace: if p.metadata_namespace.is_empty() { NAME.into() } else { p.metadata_namespace.clone() },
                key: p.key.clone(),
                value: p.value.clone(),
                value_type: ValueType::try_from(p.r#type).unwrap_or(ValueType::String),
                base64: p.encode == ValueEncode::Base64 as i32,
            })
        };
        Ok(Rule {
            on_present: pair(&proto.on_header_present),
            on_missing: pair(&proto.on_header_missing),
            selector,
            rewrite,
            remove: proto.remove,
        })
    }
}

impl Selector {
    /// The header's values joined by `,`, or the cookie's value.
    fn extract(&self, headers: &HeaderMap, head: Head<'_>) -> Option<String> {
        match self {
            Selector::Pseudo(name) => match (name.as_str(), head) {
                (":path", Head::Request(_, uri)) => uri.path_and_query().map(|p| p.as_str().to_string()),
                (":authority", Head::Request(_, uri)) => uri
                    .authority()
                    .map(|a| a.as_str())
                    .or_else(|| headers.get(http::header::HOST).and_then(|h| h.to_str().ok()))
                    .map(str::to_string),
                (":method", Head::Request(method, _)) => Some(method.as_str().to_string()),
                (":scheme", Head::Request(_, uri)) => uri.scheme_str().map(str::to_string),
                (":status", Head::Response(status)) => Some(status.as_str().to_string()),
                _ => None,
            },
            Selector::Header(name) => {
                let mut values = headers.get_all(name).iter();
                let first = values.next()?;
                let mut joined = String::from_utf8_lossy(first.as_bytes()).into_owned();
                for v in values {
                    joined.push(',');
                    joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
                Some(joined)
            }
            Selector::Cookie(name) => crate::http::headers::cookie_value(headers, name),
        }
    }

    fn remove(&self, headers: &mut HeaderMap) {
        if let Selector::Header(name) = self {
            headers.remove(name);
        }
    }

    fn describe(&self) -> String {
        match self {
            Selector::Header(name) => format!("header '{name}'"),
            Selector::Pseudo(name) => format!("header '{name}'"),
            Selector::Cookie(name) => format!("cookie '{name}'"),
        }
    }
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct HeaderToMetadataFactory {
    config: Arc<HeaderToMetadataConfig>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

impl StreamFilterFactory for HeaderToMetadataFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(HeaderToMetadataFilter { config: self.config.clone(), name: self.name.clone() })
    }
}

struct HeaderToMetadataFilter {
    config: Arc<HeaderToMetadataConfig>,
    name: Arc<str>,
}

impl HeaderToMetadataFilter {
    /// The route's config, else the filter's.
    fn config<'a>(&'a self, route: Option<&'a Arc<crate::router::Route>>) -> &'a HeaderToMetadataConfig {
        route.and_then(|r| r.per_filter_config::<HeaderToMetadataConfig>(&self.name)).unwrap_or(&self.config)
    }
}

impl StreamFilter for HeaderToMetadataFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let head = Head::Request(&parts.method, &parts.uri);
        self.config(cx.route).apply(Side::Request, &mut parts.headers, head, &mut cx.info.dynamic_metadata);
        FilterStatus::Continue
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        self.config(cx.route).apply(
            Side::Response,
            &mut parts.headers,
            Head::Response(parts.status),
            &mut cx.info.dynamic_metadata,
        );
        EncodeStatus::Continue
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (CONFIG_TYPE, &["request_rules", "response_rules", "stat_prefix"]),
    (RULE_TYPE, &["header", "cookie", "on_header_present", "on_header_missing", "remove"]),
    (PAIR_TYPE, &["metadata_namespace", "key", "value", "regex_value_rewrite", "type", "encode"]),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::any_from_yaml;

    fn error(rule: &str) -> String {
        let any = any_from_yaml(CONFIG_TYPE, &format!("request_rules:\n- {rule}\n"));
        HeaderToMetadataConfig::from_any(&any, &FieldPath::new(), None).expect_err("refused").to_string()
    }

    /// Envoy 1.40's messages for rules it refuses.
    #[test]
    fn rules_envoy_refuses_are_refused_with_its_words() {
        assert!(error("{ header: a, cookie: b, on_header_present: { key: k } }")
            .contains("Cannot specify both header and cookie in the same rule"));
        assert!(error("{ header: a }")
            .contains("rule for header 'a' has neither `on_header_present` nor `on_header_missing` set"));
        assert!(error("{ cookie: a, remove: true, on_header_present: { key: k } }")
            .contains("Cannot specify remove for cookie"));
        assert!(error("{ header: a, on_header_missing: { key: k } }")
            .contains("Cannot specify on_header_missing rule with an empty value"));
        assert!(
            error("{ on_header_present: { key: k } }").contains("One of Cookie or Header option needs to be specified")
        );
        assert!(error(
            "{ header: a, on_header_present: { key: k, value: v, regex_value_rewrite: { pattern: { regex: x }, substitution: s } } }"
        )
        .contains("Cannot specify both value and regex_value_rewrite"));
    }
}
