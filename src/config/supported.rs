//! Courier's inventory of the Envoy schema it implements.
//!
//! A config that sets a field Courier does not act on must fail at start-up rather
//! than be silently ignored (DESIGN.md §2). This module walks the decoded bootstrap
//! and rejects any set field that is not listed here, and any `Any` whose `@type` is
//! not a registered extension. The table is also the list of supported fields that
//! the README points to, so it is kept in the order of the schema.

use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::{descriptor, ConfigError, FieldPath};
use crate::extensions;

/// `(message full name, supported fields)`; `"*"` accepts every field (purely
/// informational messages such as `Node`, and the well-known types).
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        "envoy.config.bootstrap.v3.Bootstrap",
        &["node", "static_resources", "admin", "watchdogs", "watchdog", "stats_flush_interval"],
    ),
    ("envoy.config.bootstrap.v3.Bootstrap.StaticResources", &["listeners", "clusters"]),
    ("envoy.config.bootstrap.v3.Admin", &["address"]),
    ("envoy.config.bootstrap.v3.Watchdogs", &["main_thread_watchdog", "worker_watchdog"]),
    (
        "envoy.config.bootstrap.v3.Watchdog",
        &["miss_timeout", "megamiss_timeout", "kill_timeout", "multikill_timeout", "multikill_threshold"],
    ),
    ("envoy.config.core.v3.Node", &["*"]),
    ("envoy.config.core.v3.Locality", &["*"]),
    ("envoy.config.core.v3.Address", &["socket_address"]),
    ("envoy.config.core.v3.SocketAddress", &["protocol", "address", "port_value", "ipv4_compat"]),
    (
        "envoy.config.listener.v3.Listener",
        &[
            "name",
            "address",
            "stat_prefix",
            "filter_chains",
            "per_connection_buffer_limit_bytes",
            "enable_reuse_port",
            "traffic_direction",
        ],
    ),
    ("envoy.config.listener.v3.FilterChain", &["filters", "name"]),
    ("envoy.config.listener.v3.Filter", &["name", "typed_config"]),
    (
        "envoy.config.cluster.v3.Cluster",
        &[
            "name",
            "alt_stat_name",
            "type",
            "connect_timeout",
            "per_connection_buffer_limit_bytes",
            "lb_policy",
            "least_request_lb_config",
            "load_assignment",
            "dns_refresh_rate",
            "dns_lookup_family",
            "circuit_breakers",
            "max_requests_per_connection",
            "common_http_protocol_options",
            "typed_extension_protocol_options",
        ],
    ),
    ("envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", &["choice_count", "active_request_bias"]),
    // Courier has no runtime layer: the default value always applies.
    ("envoy.config.core.v3.RuntimeDouble", &["default_value", "runtime_key"]),
    ("envoy.config.cluster.v3.CircuitBreakers", &["thresholds"]),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds",
        &["priority", "max_connections", "max_pending_requests", "max_requests", "max_retries"],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        &["common_http_protocol_options", "explicit_http_config"],
    ),
    ("envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig", &["http_protocol_options"]),
    // `accept_http_10` acts on the connection manager's downstream codec only.
    ("envoy.config.core.v3.Http1ProtocolOptions", &["accept_http_10"]),
    (
        "envoy.config.core.v3.HttpProtocolOptions",
        &[
            "idle_timeout",
            "max_requests_per_connection",
            "max_headers_count",
            "max_stream_duration",
            "headers_with_underscores_action",
        ],
    ),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment", &["cluster_name", "endpoints"]),
    ("envoy.config.endpoint.v3.LocalityLbEndpoints", &["locality", "lb_endpoints"]),
    ("envoy.config.endpoint.v3.LbEndpoint", &["endpoint", "load_balancing_weight"]),
    ("envoy.config.endpoint.v3.Endpoint", &["address", "hostname"]),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        &["stat_prefix", "cluster", "idle_timeout", "max_connect_attempts"],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        &[
            "codec_type",
            "stat_prefix",
            "route_config",
            "http_filters",
            "common_http_protocol_options",
            "server_name",
            "server_header_transformation",
            "max_request_headers_kb",
            "stream_idle_timeout",
            "request_timeout",
            "request_headers_timeout",
            "access_log",
            "use_remote_address",
            "xff_num_trusted_hops",
            "generate_request_id",
            "strip_matching_host_port",
            "strip_any_host_port",
            "http_protocol_options",
        ],
    ),
    ("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", &["name", "typed_config"]),
    ("envoy.extensions.filters.http.router.v3.Router", &[]),
    ("envoy.config.accesslog.v3.AccessLog", &["name", "typed_config"]),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        &["path", "format", "json_format", "typed_json_format", "log_format"],
    ),
    ("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", &["log_format"]),
    ("envoy.extensions.access_loggers.stream.v3.StderrAccessLog", &["log_format"]),
    (
        "envoy.config.core.v3.SubstitutionFormatString",
        &["text_format", "text_format_source", "json_format", "omit_empty_values"],
    ),
    ("envoy.config.core.v3.DataSource", &["inline_string", "inline_bytes", "filename", "environment_variable"]),
    ("google.protobuf.Duration", &["*"]),
    ("google.protobuf.UInt32Value", &["*"]),
    ("google.protobuf.UInt64Value", &["*"]),
    ("google.protobuf.BoolValue", &["*"]),
    ("google.protobuf.DoubleValue", &["*"]),
    ("google.protobuf.StringValue", &["*"]),
    ("google.protobuf.Struct", &["*"]),
    ("google.protobuf.Value", &["*"]),
    ("google.protobuf.ListValue", &["*"]),
];

/// Every table: this one, the route schema's and the HTTP filters' (each kept
/// next to the code that implements it).
const TABLES: &[&[(&str, &[&str])]] =
    &[SUPPORTED_FIELDS, crate::router::ROUTE_SUPPORTED_FIELDS, crate::extensions::filters::http::SUPPORTED_FIELDS];

fn supported_fields(message: &str) -> Option<&'static [&'static str]> {
    TABLES.iter().flat_map(|t| t.iter()).find(|(m, _)| *m == message).map(|(_, f)| *f)
}

/// Rejects the first set field or extension of `msg` that Courier does not support.
pub fn check(msg: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
    let desc = msg.descriptor();
    if desc.full_name() == "google.protobuf.Any" {
        return check_any(msg, path);
    }
    let fields = supported_fields(desc.full_name()).unwrap_or(&[]);
    if fields == ["*"] {
        return Ok(());
    }
    for (field, value) in msg.fields() {
        path.push_field(field.name());
        if !fields.contains(&field.name()) {
            return Err(path.error(format!(
                "field '{}' of {} is not supported by Courier",
                field.name(),
                desc.full_name()
            )));
        }
        check_value(value, path)?;
        path.pop();
    }
    Ok(())
}

fn check_value(value: &Value, path: &mut FieldPath) -> Result<(), ConfigError> {
    match value {
        Value::Message(m) => check(m, path),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_index(i);
                check_value(item, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Map(entries) => {
            for v in entries.values() {
                check_value(v, path)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_any(any: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
    let url = match any.get_field_by_name("type_url").as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    if !extensions::is_registered(descriptor::type_name(&url)) {
        return Err(path.field_error("@type", format!("unsupported extension '{url}'")));
    }
    let desc = descriptor::message(descriptor::type_name(&url))
        .ok_or_else(|| path.field_error("@type", format!("unknown type '{url}'")))?;
    let bytes = match any.get_field_by_name("value").as_deref() {
        Some(Value::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let inner = DynamicMessage::decode(desc, bytes).map_err(|e| path.error(format!("cannot decode '{url}': {e}")))?;
    check(&inner, path)
}
