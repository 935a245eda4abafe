//! The part of Envoy's route configuration schema Courier implements.
//!
//! `RouteTable::from_proto` checks a `RouteConfiguration` against this table before
//! compiling it, so a field Courier would not act on is a load error naming the field,
//! never silently ignored, whether the configuration comes inline in a bootstrap or
//! (later) from RDS. The table uses the layout of `config::supported::SUPPORTED_FIELDS`
//! so it can be merged there. `typed_per_filter_config` values (`Any`) are left to the
//! HTTP filter that decodes them.

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use crate::config::{descriptor, ConfigError, FieldPath};

/// `(message full name, supported fields)`, in schema order.
pub const ROUTE_SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        "envoy.config.route.v3.RouteConfiguration",
        &[
            "name",
            "virtual_hosts",
            "response_headers_to_add",
            "response_headers_to_remove",
            "request_headers_to_add",
            "request_headers_to_remove",
            "most_specific_header_mutations_wins",
            "validate_clusters",
            "max_direct_response_body_size_bytes",
            "ignore_port_in_host_matching",
            "vhost_header",
            "ignore_path_parameters_in_path_matching",
            "typed_per_filter_config",
        ],
    ),
    (
        "envoy.config.route.v3.VirtualHost",
        &[
            "name",
            "domains",
            "routes",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
            "retry_policy",
        ],
    ),
    (
        "envoy.config.route.v3.Route",
        &[
            "name",
            "match",
            "route",
            "redirect",
            "direct_response",
            "typed_per_filter_config",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
        ],
    ),
    (
        "envoy.config.route.v3.RouteMatch",
        &["prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive", "headers", "query_parameters"],
    ),
    (
        "envoy.config.route.v3.HeaderMatcher",
        &[
            "name",
            "exact_match",
            "safe_regex_match",
            "range_match",
            "present_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "string_match",
            "invert_match",
            "treat_missing_header_as_empty",
        ],
    ),
    ("envoy.config.route.v3.QueryParameterMatcher", &["name", "string_match", "present_match"]),
    (
        "envoy.config.route.v3.RouteAction",
        &[
            "cluster",
            "cluster_header",
            "weighted_clusters",
            "cluster_not_found_response_code",
            "prefix_rewrite",
            "regex_rewrite",
            "host_rewrite_literal",
            "auto_host_rewrite",
            "timeout",
            "idle_timeout",
            "retry_policy",
        ],
    ),
    ("envoy.config.route.v3.WeightedCluster", &["clusters", "total_weight"]),
    ("envoy.config.route.v3.WeightedCluster.ClusterWeight", &["name", "weight"]),
    (
        "envoy.config.route.v3.RetryPolicy",
        &["retry_on", "num_retries", "per_try_timeout", "retriable_status_codes", "retry_back_off"],
    ),
    ("envoy.config.route.v3.RetryPolicy.RetryBackOff", &["base_interval", "max_interval"]),
    (
        "envoy.config.route.v3.RedirectAction",
        &[
            "https_redirect",
            "scheme_redirect",
            "host_redirect",
            "port_redirect",
            "path_redirect",
            "prefix_rewrite",
            "regex_rewrite",
            "response_code",
            "strip_query",
        ],
    ),
    ("envoy.config.route.v3.DirectResponseAction", &["status", "body"]),
    ("envoy.config.core.v3.DataSource", &["filename", "inline_bytes", "inline_string", "environment_variable"]),
    ("envoy.config.core.v3.HeaderValueOption", &["header", "append", "append_action", "keep_empty_value"]),
    ("envoy.config.core.v3.HeaderValue", &["key", "value", "raw_value"]),
    ("envoy.type.matcher.v3.StringMatcher", &["exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"]),
    ("envoy.type.matcher.v3.RegexMatcher", &["google_re2", "regex"]),
    ("envoy.type.matcher.v3.RegexMatcher.GoogleRE2", &[]),
    ("envoy.type.matcher.v3.RegexMatchAndSubstitute", &["pattern", "substitution"]),
    ("envoy.type.v3.Int64Range", &["start", "end"]),
];

/// Messages whose every field is fine (well-known value types).
const OPAQUE: &[&str] = &[
    "google.protobuf.Duration",
    "google.protobuf.BoolValue",
    "google.protobuf.UInt32Value",
    "google.protobuf.UInt64Value",
    // Decoded by the filter that owns the entry.
    "google.protobuf.Any",
];

/// Rejects the first set field of `rc` that Courier does not implement; `path` points
/// at the `RouteConfiguration`.
pub(crate) fn check(rc: &RouteConfiguration, path: &FieldPath) -> Result<(), ConfigError> {
    let desc = descriptor::message("envoy.config.route.v3.RouteConfiguration")
        .ok_or_else(|| path.error("envoy.config.route.v3.RouteConfiguration missing from the schema"))?;
    let msg = DynamicMessage::decode(desc, rc.encode_to_vec().as_slice())
        .map_err(|e| path.error(format!("internal: re-decoding the route configuration failed: {e}")))?;
    check_message(&msg, &mut path.clone())
}

fn check_message(msg: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
    let desc = msg.descriptor();
    let name = desc.full_name();
    if OPAQUE.contains(&name) {
        return Ok(());
    }
    let fields = ROUTE_SUPPORTED_FIELDS.iter().find(|(m, _)| *m == name).map_or(&[][..], |(_, f)| *f);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_field_exists_in_the_schema() {
        for (message, fields) in ROUTE_SUPPORTED_FIELDS {
            let desc = descriptor::message(message).unwrap_or_else(|| panic!("{message} not in the schema"));
            for f in *fields {
                assert!(desc.get_field_by_name(f).is_some(), "{message} has no field {f}");
            }
        }
    }
}
