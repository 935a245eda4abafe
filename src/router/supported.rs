//! The part of Envoy's route configuration schema Courier implements.
//!
//! `RouteTable::from_proto` checks a `RouteConfiguration` against this table before
//! compiling it, so a field Courier would not act on is a load error naming the field,
//! never silently ignored, whether the configuration comes inline in a bootstrap or
//! (later) from RDS. The table uses the layout of `config::supported::SUPPORTED_FIELDS`
//! and is merged with the others in `extensions::supported`; `config::supported` walks them.
//! `typed_per_filter_config` values (`Any`) are left to the HTTP filter that decodes
//! them.

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Message;
use prost_reflect::DynamicMessage;

use crate::config::supported::{self, Inventory};
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
            "include_request_attempt_count",
            "cors",
            "matcher",
        ],
    ),
    // A virtual host `matcher`'s action (`virtual_host`).
    ("envoy.config.route.v3.RouteList", &["routes"]),
    // Deprecated; the CORS filter reads it (`extensions::filters::http::cors`).
    (
        "envoy.config.route.v3.CorsPolicy",
        &[
            "allow_origin_string_match",
            "allow_methods",
            "allow_headers",
            "expose_headers",
            "max_age",
            "allow_credentials",
            "filter_enabled",
            "shadow_enabled",
            "allow_private_network_access",
            "forward_not_matching_preflights",
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
            "decorator",
            "tracing",
        ],
    ),
    // Names the route's tracing span (`tracing::http_tracer`).
    ("envoy.config.route.v3.Decorator", &["operation", "propagate"]),
    // The route's sampling and tags, replacing the connection manager's.
    ("envoy.config.route.v3.Tracing", &["client_sampling", "random_sampling", "overall_sampling", "custom_tags"]),
    (
        "envoy.config.route.v3.RouteMatch",
        &[
            "prefix",
            "path",
            "safe_regex",
            "path_separated_prefix",
            "case_sensitive",
            "headers",
            "query_parameters",
            "grpc",
            "runtime_fraction",
        ],
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
            "host_rewrite_header",
            "timeout",
            "idle_timeout",
            "retry_policy",
            "max_stream_duration",
            "request_mirror_policies",
            "upgrade_configs",
        ],
    ),
    // `connect_config` (CONNECT termination) is refused.
    ("envoy.config.route.v3.RouteAction.UpgradeConfig", &["upgrade_type", "enabled"]),
    // `trace_sampled`, `request_headers_mutations` and `host_rewrite_literal`
    // are refused.
    (
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy",
        &["cluster", "cluster_header", "runtime_fraction", "disable_shadow_host_suffix_append"],
    ),
    // `grpc_timeout_header_max` / `_offset` are refused: Courier does not read
    // `grpc-timeout`.
    ("envoy.config.route.v3.RouteAction.MaxStreamDuration", &["max_stream_duration"]),
    ("envoy.config.route.v3.WeightedCluster", &["clusters", "total_weight"]),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        &[
            "name",
            "weight",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "host_rewrite_literal",
        ],
    ),
    (
        "envoy.config.route.v3.RetryPolicy",
        &[
            "retry_on",
            "num_retries",
            "per_try_timeout",
            "retriable_status_codes",
            "retry_back_off",
            "retry_host_predicate",
            "host_selection_retry_max_attempts",
        ],
    ),
    ("envoy.config.route.v3.RetryPolicy.RetryHostPredicate", &["name", "typed_config"]),
    (super::retry_policy::PREVIOUS_HOSTS_TYPE, &[]),
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
    ("envoy.config.core.v3.HeaderValue", &["key", "value"]),
    ("envoy.type.matcher.v3.StringMatcher", &["exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"]),
    ("envoy.type.matcher.v3.RegexMatcher", &["google_re2", "regex"]),
    ("envoy.type.matcher.v3.RegexMatcher.GoogleRE2", &[]),
    ("envoy.type.matcher.v3.RegexMatchAndSubstitute", &["pattern", "substitution"]),
    ("envoy.type.v3.Int64Range", &["start", "end"]),
];

/// Rejects the first set field of `rc` that Courier does not implement; `path` points
/// at the `RouteConfiguration`, checked against `inventory` (Courier's whole one, which
/// the extensions layer assembles). `typed_per_filter_config` values are left to the filters.
pub(crate) fn check(rc: &RouteConfiguration, path: &FieldPath, inventory: &Inventory) -> Result<(), ConfigError> {
    let desc = descriptor::message("envoy.config.route.v3.RouteConfiguration")
        .ok_or_else(|| path.error("envoy.config.route.v3.RouteConfiguration missing from the schema"))?;
    let msg = DynamicMessage::decode(desc, rc.encode_to_vec().as_slice())
        .map_err(|e| path.error(format!("internal: re-decoding the route configuration failed: {e}")))?;
    supported::check_message(inventory, &msg, path)
}
