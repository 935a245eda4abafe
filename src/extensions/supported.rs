//! Courier's whole inventory of supported configuration, assembled here because
//! this layer sees every part of it: config's bootstrap tables, the route schema's
//! table (`router`), the HTTP filters' table and the extension registry. Config
//! provides the walker (`config::supported`) and takes this inventory as an argument,
//! so it imports none of the code whose config it checks.

use prost_reflect::DynamicMessage;

use super::{filters, HTTP_FILTERS, LISTENER_FILTERS, NETWORK_FILTERS};
use crate::config::supported::{self, Inventory, PLACES, SUPPORTED_FIELDS};
use crate::config::{BootstrapSource, ConfigError, FieldPath, LoadedBootstrap};
use crate::router::ROUTE_SUPPORTED_FIELDS;
use crate::upstream::cluster::{lb_policy_choice, LbPolicyChoice};

/// What Courier accepts: every field table, each kept next to the code that
/// implements it, and every registered extension type.
pub const INVENTORY: Inventory = Inventory {
    tables: &[
        SUPPORTED_FIELDS,
        ROUTE_SUPPORTED_FIELDS,
        crate::matcher::supported::MATCHER_SUPPORTED_FIELDS,
        filters::http::SUPPORTED_FIELDS,
        filters::http::compressor::SUPPORTED_FIELDS,
        filters::http::decompressor::SUPPORTED_FIELDS,
        filters::http::grpc_http1_bridge::SUPPORTED_FIELDS,
        filters::http::grpc_http1_reverse_bridge::SUPPORTED_FIELDS,
        filters::http::csrf::SUPPORTED_FIELDS,
        filters::http::set_metadata::SUPPORTED_FIELDS,
        filters::http::header_to_metadata::SUPPORTED_FIELDS,
        filters::http::rbac::SUPPORTED_FIELDS,
        filters::common::rbac::SUPPORTED_FIELDS,
        filters::network::rbac::SUPPORTED_FIELDS,
        filters::network::connection_limit::SUPPORTED_FIELDS,
        filters::network::local_ratelimit::SUPPORTED_FIELDS,
        filters::http::match_delegate::SUPPORTED_FIELDS,
        filters::http::ext_authz::SUPPORTED_FIELDS,
        filters::http::jwt_authn::SUPPORTED_FIELDS,
        filters::listener::SUPPORTED_FIELDS,
        super::transport_sockets::tls::SUPPORTED_FIELDS,
        super::transport_sockets::proxy_protocol::SUPPORTED_FIELDS,
        super::tracers::SUPPORTED_FIELDS,
        super::stat_sinks::SUPPORTED_FIELDS,
    ],
    places: PLACES,
    is_extension: is_registered,
    skips_lb_policy: |type_name| lb_policy_choice(type_name) == LbPolicyChoice::Skip,
};

/// True when `type_name` (without the URL host) is the config type of a registered
/// extension; the config checker accepts no other `Any`.
pub fn is_registered(type_name: &str) -> bool {
    NETWORK_FILTERS.iter().any(|e| e.config_type == type_name)
        || LISTENER_FILTERS.iter().any(|e| e.config_type == type_name)
        || HTTP_FILTERS.iter().any(|e| e.config_type == type_name || e.per_route.is_some_and(|(t, _)| t == type_name))
        || crate::access_log::ACCESS_LOGGERS.iter().any(|(_, t)| *t == type_name)
        || crate::stats::sink::STAT_SINKS.iter().any(|(_, t)| *t == type_name)
        || super::stat_sinks::STAT_SINKS.iter().any(|(_, t)| *t == type_name)
        || super::common::otlp::resource::CONFIG_TYPES.contains(&type_name)
        || OTHER_TYPES.contains(&type_name)
        || crate::matcher::supported::INPUT_TYPES.contains(&type_name)
        || crate::router::MATCHER_ACTION_TYPES.contains(&type_name)
        || super::tracers::CONFIG_TYPES.contains(&type_name)
        || super::compression::CONFIG_TYPES.contains(&type_name)
}

/// `Any` payloads accepted outside the filter tables.
const OTHER_TYPES: &[&str] = &[
    filters::http::router::CONFIG_TYPE,
    filters::http::rbac::ACTION_TYPE,
    filters::http::match_delegate::SKIP_FILTER_TYPE,
    crate::router::PREVIOUS_HOSTS_TYPE,
    crate::upstream::cluster::HTTP_PROTOCOL_OPTIONS_TYPE,
    crate::upstream::cluster::ROUND_ROBIN_TYPE,
    crate::upstream::cluster::LEAST_REQUEST_TYPE,
    crate::upstream::cluster::RANDOM_TYPE,
    crate::upstream::health_check::EVENT_FILE_SINK_TYPE,
    crate::upstream::dns::CARES_TYPE,
    crate::upstream::dns::GETADDRINFO_TYPE,
    super::transport_sockets::tls::DOWNSTREAM_TYPE,
    super::transport_sockets::tls::UPSTREAM_TYPE,
    super::transport_sockets::proxy_protocol::CONFIG_TYPE,
    crate::network::tls::RAW_BUFFER_TYPE,
    crate::overload::FIXED_HEAP_TYPE,
    crate::overload::SCALE_TIMERS_TYPE,
    crate::overload::DOWNSTREAM_CONNECTIONS_TYPE,
    crate::overload::CGROUP_MEMORY_TYPE,
];

/// Every supported `(message, field)` of every table, `"*"` entries included.
pub fn all_supported_fields() -> impl Iterator<Item = (&'static str, &'static str)> {
    INVENTORY.all_supported_fields()
}

/// Loads the bootstrap (`config::load_bootstrap`) and checks it against Courier's
/// inventory.
pub fn load_bootstrap(source: &BootstrapSource) -> Result<LoadedBootstrap, ConfigError> {
    crate::config::load_bootstrap(source, &INVENTORY)
}

/// Rejects the first set field of `msg`, checked on its own (a route configuration,
/// an HTTP filter's config), that Courier does not implement; `path` points at `msg`.
pub(crate) fn check_message(msg: &DynamicMessage, path: &FieldPath) -> Result<(), ConfigError> {
    supported::check_message(&INVENTORY, msg, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{bootstrap::parse_yaml, descriptor, proto_json, FieldPath};

    /// build.rs keeps only the schema reachable from its ROOTS: every type an
    /// extension registers must be among them.
    #[test]
    fn every_registered_type_is_in_the_embedded_schema() {
        let mut types: Vec<&str> = NETWORK_FILTERS.iter().map(|e| e.config_type).collect();
        types.extend(LISTENER_FILTERS.iter().map(|e| e.config_type));
        for e in HTTP_FILTERS {
            types.push(e.config_type);
            types.extend(e.per_route.map(|(t, _)| t));
        }
        types.extend(crate::access_log::ACCESS_LOGGERS.iter().map(|(_, t)| *t));
        types.extend(crate::stats::sink::STAT_SINKS.iter().map(|(_, t)| *t));
        types.extend(crate::extensions::stat_sinks::STAT_SINKS.iter().map(|(_, t)| *t));
        types.extend(crate::extensions::common::otlp::resource::CONFIG_TYPES);
        types.extend(OTHER_TYPES);
        types.extend(crate::matcher::supported::INPUT_TYPES);
        types.extend(crate::router::MATCHER_ACTION_TYPES);
        types.extend(crate::extensions::tracers::CONFIG_TYPES);
        types.extend(crate::extensions::compression::CONFIG_TYPES);
        for t in types {
            assert!(descriptor::message(t).is_some(), "{t} is registered but not in build.rs ROOTS");
        }
    }

    #[test]
    fn every_listed_field_exists_in_the_schema() {
        for (message, fields) in INVENTORY.tables.iter().flat_map(|t| t.iter()) {
            let desc = descriptor::message(message).unwrap_or_else(|| panic!("{message} not in the schema"));
            for f in fields.iter().filter(|f| **f != "*") {
                assert!(desc.get_field_by_name(f).is_some(), "{message} has no field {f}");
            }
        }
    }

    /// `TypedExtensionConfig` is supported only where its two fields mean what
    /// they say (one day a field of it elsewhere would otherwise be accepted with
    /// the same list): a load-balancing policy, a compressor library, a generic
    /// matcher's input or action, the filter an `ExtensionWithMatcher` wraps.
    #[test]
    fn typed_extension_config_is_held_by_known_places_only() {
        for (message, field) in all_supported_fields() {
            let Some(f) = descriptor::message(message).and_then(|d| d.get_field_by_name(field)) else { continue };
            if let prost_reflect::Kind::Message(child) = f.kind() {
                if child.full_name() == "envoy.config.core.v3.TypedExtensionConfig" {
                    assert!(
                        [
                            ("envoy.config.cluster.v3.LoadBalancingPolicy.Policy", "typed_extension_config"),
                            // The DNS resolver of a cluster and of the bootstrap.
                            ("envoy.config.cluster.v3.Cluster", "typed_dns_resolver_config"),
                            ("envoy.config.bootstrap.v3.Bootstrap", "typed_dns_resolver_config"),
                            ("envoy.extensions.filters.http.compressor.v3.Compressor", "compressor_library"),
                            ("envoy.extensions.filters.http.decompressor.v3.Decompressor", "decompressor_library"),
                            ("envoy.extensions.common.matching.v3.ExtensionWithMatcher", "extension_config"),
                            // The deprecated generic matcher: its inputs and actions.
                            ("envoy.config.common.matcher.v3.Matcher.OnMatch", "action"),
                            ("envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate", "input"),
                            ("envoy.config.common.matcher.v3.Matcher.MatcherTree", "input"),
                            // The OpenTelemetry stat sink's resource detectors.
                            ("envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig", "resource_detectors"),
                            // A health check's event sinks (found by type, as Envoy does).
                            ("envoy.config.core.v3.HealthCheck", "event_logger"),
                        ]
                        .contains(&(message, field)),
                        "{message}.{field}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_place_names_a_message_field_and_narrows_its_list() {
        for (parent, field, fields) in INVENTORY.places {
            let desc = descriptor::message(parent).unwrap_or_else(|| panic!("{parent} not in the schema"));
            let f = desc.get_field_by_name(field).unwrap_or_else(|| panic!("{parent} has no field {field}"));
            let prost_reflect::Kind::Message(child) = f.kind() else { panic!("{parent}.{field} is not a message") };
            let all = INVENTORY.supported_fields(child.full_name()).unwrap_or(&[]);
            for name in *fields {
                assert!(all.contains(name), "{parent}.{field}: {name} is not supported by {}", child.full_name());
            }
        }
    }

    #[test]
    fn a_message_is_checked_against_the_list_of_its_place() {
        let hcm = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
        check_yaml(hcm, "common_http_protocol_options: {max_stream_duration: 1s, max_headers_count: 5}", true)
            .expect("downstream options");
        let cluster = "envoy.config.cluster.v3.Cluster";
        let e =
            check_yaml(cluster, "name: c\ncommon_http_protocol_options: {max_stream_duration: 1s}", true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.common_http_protocol_options.max_stream_duration: field 'max_stream_duration' of \
             envoy.config.core.v3.HttpProtocolOptions is not supported by Courier here"
        );
        check_yaml(cluster, "name: c\ncommon_http_protocol_options: {idle_timeout: 1s}", true).expect("upstream idle");
        let opts = r#"
            name: c
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                common_http_protocol_options: {max_headers_count: 10}
        "#;
        let e = check_yaml(cluster, opts, true).unwrap_err();
        assert!(e.to_string().ends_with("common_http_protocol_options.max_headers_count: field 'max_headers_count' of envoy.config.core.v3.HttpProtocolOptions is not supported by Courier here"), "{e}");
    }

    fn check_yaml(type_name: &str, yaml: &str, anys_checked: bool) -> Result<(), ConfigError> {
        let json = parse_yaml(yaml).expect("yaml");
        let desc = descriptor::message(type_name).expect("schema");
        let msg = proto_json::decode(&desc, &json, &mut FieldPath::new()).expect("decode");
        if anys_checked {
            supported::check(&INVENTORY, &msg, &mut FieldPath::starting_at("m"))
        } else {
            supported::check_message(&INVENTORY, &msg, &FieldPath::starting_at("m"))
        }
    }

    #[test]
    fn every_unsupported_field_and_extension_is_named_at_once() {
        let cluster = r#"
            name: c
            upstream_bind_config: {source_address: {address: 127.0.0.1, port_value: 0}}
            outlier_detection: {}
            transport_socket:
              name: t
              typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.quic.v3.QuicUpstreamTransport}
        "#;
        let e = check_yaml("envoy.config.cluster.v3.Cluster", cluster, true).unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(lines[0].starts_with("m.outlier_detection: field 'outlier_detection'"), "{e}");
        assert_eq!(lines[1], "  and 2 more:");
        assert!(lines[2].starts_with("  m.upstream_bind_config: field 'upstream_bind_config'"), "{e}");
        assert!(lines[3].starts_with("  m.transport_socket.typed_config.@type: unsupported extension"), "{e}");
    }

    #[test]
    fn map_entries_are_named_by_key_and_anys_checked_or_left() {
        let cluster = r#"
            name: c
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                http_filters: [{name: f}]
        "#;
        let e = check_yaml("envoy.config.cluster.v3.Cluster", cluster, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"]\
             .http_filters: field 'http_filters' of \
             envoy.extensions.upstreams.http.v3.HttpProtocolOptions is not supported by Courier"
        );
        // Outside a bootstrap, an `Any` is left to whoever decodes it.
        let route = r#"
            virtual_hosts:
            - name: v
              domains: ["*"]
              typed_per_filter_config:
                f: {"@type": type.googleapis.com/google.protobuf.StringValue, value: x}
        "#;
        check_yaml("envoy.config.route.v3.RouteConfiguration", route, false).expect("Any left alone");
        let e = check_yaml("envoy.config.route.v3.RouteConfiguration", route, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.virtual_hosts[0].typed_per_filter_config[\"f\"].@type: unsupported extension \
             'type.googleapis.com/google.protobuf.StringValue'"
        );
    }

    #[test]
    fn a_message_in_several_tables_has_the_same_fields_in_each() {
        let all: Vec<_> = INVENTORY.tables.iter().flat_map(|t| t.iter()).collect();
        for (message, fields) in &all {
            let mut first: Vec<_> = INVENTORY.supported_fields(message).unwrap_or(&[]).to_vec();
            let mut these = fields.to_vec();
            first.sort_unstable();
            these.sort_unstable();
            assert_eq!(first, these, "{message} is listed twice with different fields");
        }
    }
}
