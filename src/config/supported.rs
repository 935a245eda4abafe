//! Courier's inventory of the Envoy schema it implements.
//!
//! A config that sets a field Courier does not act on must fail at start-up rather
//! than be silently ignored (DESIGN.md §2). This module walks the decoded bootstrap
//! and rejects any set field that is not listed here (or in the route and HTTP filter
//! tables that `extensions::supported` merges with these into an [`Inventory`]), and
//! any `Any` whose `@type` is not a registered extension. The same walker checks a
//! route configuration or a filter config on its own (`check_message`). The table is also the list of supported fields that the README
//! points to, so it is kept in the order of the schema.

use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::{descriptor, validate, ConfigError, FieldPath};

/// `(message full name, supported fields)`; `"*"` accepts every field (purely
/// informational messages such as `Node`, and the well-known types).
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        "envoy.config.bootstrap.v3.Bootstrap",
        &[
            "node",
            "static_resources",
            "dynamic_resources",
            "admin",
            "watchdogs",
            "watchdog",
            "stats_flush_interval",
            "stats_config",
            "stats_sinks",
            "layered_runtime",
            "overload_manager",
            "cluster_manager",
            "deferred_stat_options",
            "typed_dns_resolver_config",
            "dns_resolution_config",
        ],
    ),
    // The local cluster zone-aware routing compares the upstream clusters with.
    ("envoy.config.bootstrap.v3.ClusterManager", &["local_cluster_name", "load_stats_config"]),
    ("envoy.config.bootstrap.v3.Bootstrap.DeferredStatOptions", &["enable_deferred_creation_stats"]),
    // `loadshed_points` and `buffer_factory_config` are refused, and so are the
    // actions Courier lacks; only reduce_timeouts takes a typed_config.
    // The gRPC services Courier calls (an OpenTelemetry collector, an ext_authz
    // service, a management server): an envoy_grpc target and a timeout; the
    // OpenTelemetry exporters (`extensions::common::grpc_client`) also send
    // `initial_metadata` (`PLACES` narrows the others) and the `authority`
    // (which ext_authz and xDS refuse in code).
    ("envoy.config.core.v3.GrpcService", &["envoy_grpc", "timeout", "initial_metadata"]),
    ("envoy.config.core.v3.GrpcService.EnvoyGrpc", &["cluster_name", "authority"]),
    ("envoy.config.overload.v3.OverloadManager", &["refresh_interval", "resource_monitors", "actions"]),
    ("envoy.config.overload.v3.ResourceMonitor", &["name", "typed_config"]),
    ("envoy.config.overload.v3.OverloadAction", &["name", "triggers", "typed_config"]),
    ("envoy.config.overload.v3.ScaleTimersOverloadActionConfig", &["timer_scale_factors"]),
    ("envoy.config.overload.v3.ScaleTimersOverloadActionConfig.ScaleTimer", &["timer", "min_timeout", "min_scale"]),
    ("envoy.config.overload.v3.Trigger", &["name", "threshold", "scaled"]),
    ("envoy.config.overload.v3.ThresholdTrigger", &["value"]),
    ("envoy.config.overload.v3.ScaledTrigger", &["scaling_threshold", "saturation_threshold"]),
    // `max_heap_size_bytes_runtime` is refused.
    ("envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig", &["max_heap_size_bytes"]),
    (
        "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
        &["max_active_downstream_connections"],
    ),
    ("envoy.extensions.resource_monitors.cgroup_memory.v3.CgroupMemoryConfig", &["max_memory_bytes"]),
    ("envoy.config.bootstrap.v3.LayeredRuntime", &["layers"]),
    ("envoy.config.bootstrap.v3.RuntimeLayer", &["name", "static_layer", "disk_layer", "admin_layer", "rtds_layer"]),
    // RTDS (`server::xds::rtds`): the `Runtime` resource of `name`, from a file
    // or a management server.
    ("envoy.config.bootstrap.v3.RuntimeLayer.RtdsLayer", &["name", "rtds_config"]),
    ("envoy.service.runtime.v3.Runtime", &["name", "layer"]),
    ("envoy.config.bootstrap.v3.RuntimeLayer.DiskLayer", &["symlink_root", "subdirectory", "append_service_cluster"]),
    ("envoy.config.bootstrap.v3.RuntimeLayer.AdminLayer", &[]),
    (
        "envoy.config.metrics.v3.StatsConfig",
        &["stats_tags", "use_all_default_tags", "stats_matcher", "histogram_bucket_settings"],
    ),
    ("envoy.config.metrics.v3.StatsSink", &["name", "typed_config"]),
    // `tcp_cluster_name` (statsd over TCP through a cluster) is refused.
    ("envoy.config.metrics.v3.StatsdSink", &["address", "prefix"]),
    ("envoy.config.metrics.v3.DogStatsdSink", &["address", "prefix", "max_bytes_per_datagram"]),
    ("envoy.config.metrics.v3.HistogramBucketSettings", &["match", "buckets"]),
    ("envoy.config.metrics.v3.TagSpecifier", &["tag_name", "regex", "fixed_value"]),
    ("envoy.config.metrics.v3.StatsMatcher", &["reject_all", "exclusion_list", "inclusion_list"]),
    ("envoy.type.matcher.v3.ListStringMatcher", &["patterns"]),
    ("envoy.config.bootstrap.v3.Bootstrap.StaticResources", &["listeners", "clusters", "secrets"]),
    // CDS and LDS from files (`config::path_source`) or a management server
    // over state-of-the-world or delta gRPC (`server::xds::grpc_mux`,
    // `server::xds::delta`); `self` and REST are refused, and so is rate limiting.
    ("envoy.config.bootstrap.v3.Bootstrap.DynamicResources", &["lds_config", "cds_config", "ads_config"]),
    (
        "envoy.config.core.v3.ConfigSource",
        &["path", "path_config_source", "api_config_source", "ads", "resource_api_version", "initial_fetch_timeout"],
    ),
    (
        "envoy.config.core.v3.ApiConfigSource",
        &["api_type", "transport_api_version", "grpc_services", "set_node_on_first_message_only"],
    ),
    ("envoy.config.core.v3.AggregatedConfigSource", &[]),
    ("envoy.config.core.v3.PathConfigSource", &["path", "watched_directory"]),
    ("envoy.config.core.v3.WatchedDirectory", &["path"]),
    ("envoy.config.bootstrap.v3.Admin", &["access_log_path", "access_log", "address"]),
    ("envoy.config.bootstrap.v3.Watchdogs", &["main_thread_watchdog", "worker_watchdog"]),
    (
        "envoy.config.bootstrap.v3.Watchdog",
        &["miss_timeout", "megamiss_timeout", "kill_timeout", "multikill_timeout", "multikill_threshold"],
    ),
    ("envoy.type.v3.Percent", &["value"]),
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
            "default_filter_chain",
            "per_connection_buffer_limit_bytes",
            "listener_filters",
            "listener_filters_timeout",
            "continue_on_listener_filters_timeout",
            "enable_reuse_port",
            "traffic_direction",
            "bypass_overload_manager",
            // One line per connection (`network::connection_log`); a format
            // asking what the connection's filters did is refused.
            "access_log",
        ],
    ),
    (
        "envoy.config.listener.v3.FilterChain",
        &["filter_chain_match", "filters", "name", "transport_socket", "transport_socket_connect_timeout"],
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch",
        &[
            "destination_port",
            "prefix_ranges",
            "direct_source_prefix_ranges",
            "source_type",
            "source_prefix_ranges",
            "source_ports",
            "server_names",
            "transport_protocol",
            "application_protocols",
        ],
    ),
    ("envoy.config.core.v3.CidrRange", &["address_prefix", "prefix_len"]),
    ("envoy.config.listener.v3.Filter", &["name", "typed_config"]),
    ("envoy.config.listener.v3.ListenerFilter", &["name", "typed_config"]),
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
            "original_dst_lb_config",
            "cleanup_interval",
            "load_balancing_policy",
            "load_assignment",
            "eds_cluster_config",
            "dns_refresh_rate",
            "dns_failure_refresh_rate",
            "dns_jitter",
            "respect_dns_ttl",
            "dns_lookup_family",
            "dns_resolvers",
            "use_tcp_for_dns_lookups",
            "dns_resolution_config",
            "typed_dns_resolver_config",
            "circuit_breakers",
            "max_requests_per_connection",
            "common_http_protocol_options",
            "http2_protocol_options",
            "protocol_selection",
            "typed_extension_protocol_options",
            "common_lb_config",
            "upstream_connection_options",
            "transport_socket",
            "health_checks",
        ],
    ),
    // Active health checking (`upstream::health_check`), with its event log to
    // files (`event_log_path`, `event_logger` file sinks: `health_check::event_log`).
    // Refused: `event_service`, `tls_options`, `transport_socket_match_criteria`,
    // `alt_port` and custom checkers.
    (
        "envoy.config.core.v3.HealthCheck",
        &[
            "timeout",
            "interval",
            "initial_jitter",
            "interval_jitter",
            "interval_jitter_percent",
            "unhealthy_threshold",
            "healthy_threshold",
            "reuse_connection",
            "http_health_check",
            "tcp_health_check",
            "grpc_health_check",
            "no_traffic_interval",
            "no_traffic_healthy_interval",
            "unhealthy_interval",
            "unhealthy_edge_interval",
            "healthy_edge_interval",
            "event_log_path",
            "event_logger",
            "always_log_health_check_failures",
            "always_log_health_check_success",
        ],
    ),
    ("envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink", &["event_log_path"]),
    // `send` (a request body) and `service_name_matcher` are refused.
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        &[
            "host",
            "path",
            "receive",
            "response_buffer_size",
            "request_headers_to_add",
            "request_headers_to_remove",
            "expected_statuses",
            "retriable_statuses",
            "codec_client_type",
            "method",
        ],
    ),
    // `proxy_protocol_config` is refused.
    ("envoy.config.core.v3.HealthCheck.TcpHealthCheck", &["send", "receive"]),
    // `initial_metadata` is refused.
    ("envoy.config.core.v3.HealthCheck.GrpcHealthCheck", &["service_name", "authority"]),
    ("envoy.config.core.v3.HealthCheck.Payload", &["text", "binary"]),
    // Its `eds_config` is a file, as `dynamic_resources`' sources are.
    ("envoy.config.cluster.v3.Cluster.EdsClusterConfig", &["eds_config", "service_name"]),
    ("envoy.config.cluster.v3.UpstreamConnectionOptions", &["tcp_keepalive"]),
    ("envoy.config.core.v3.TcpKeepalive", &["keepalive_probes", "keepalive_time", "keepalive_interval"]),
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig",
        &["healthy_panic_threshold", "zone_aware_lb_config", "locality_weighted_lb_config"],
    ),
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.ZoneAwareLbConfig",
        &["routing_enabled", "min_cluster_size", "fail_traffic_on_panic"],
    ),
    ("envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig", &[]),
    ("envoy.config.cluster.v3.Cluster.RefreshRate", &["base_interval", "max_interval"]),
    // The DNS resolvers (`upstream::dns`): c-ares's, answered by Courier's stub
    // client, and getaddrinfo. `rotate_nameservers`, `max_udp_channel_duration`,
    // `reinit_channel_on_timeout` and a non-zero `qcache_max_ttl` are refused; see
    // `NO_EFFECT` for `udp_max_queries` and `num_resolver_threads`.
    ("envoy.config.core.v3.DnsResolutionConfig", &["resolvers", "dns_resolver_options"]),
    ("envoy.config.core.v3.DnsResolverOptions", &["use_tcp_for_dns_lookups", "no_default_search_domain"]),
    (
        "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
        &[
            "resolvers",
            "use_resolvers_as_fallback",
            "filter_unroutable_families",
            "dns_resolver_options",
            "udp_max_queries",
            "query_timeout_seconds",
            "query_tries",
            "edns0_max_payload_size",
            "qcache_max_ttl",
        ],
    ),
    (
        "envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig",
        &["num_retries", "num_resolver_threads"],
    ),
    ("envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", &["choice_count", "active_request_bias"]),
    (
        "envoy.config.cluster.v3.Cluster.OriginalDstLbConfig",
        &["use_http_header", "http_header_name", "upstream_port_override"],
    ),
    // Only the policy Envoy uses is checked: see `check_lb_policies`.
    ("envoy.config.cluster.v3.LoadBalancingPolicy", &["policies"]),
    ("envoy.config.cluster.v3.LoadBalancingPolicy.Policy", &["typed_extension_config"]),
    // Only under `LoadBalancingPolicy.Policy` and a compressor's library: see the
    // test `typed_extension_config_is_held_by_known_places_only`.
    ("envoy.config.core.v3.TypedExtensionConfig", &["name", "typed_config"]),
    ("envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin", &["locality_lb_config"]),
    (
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        &["choice_count", "active_request_bias", "locality_lb_config"],
    ),
    ("envoy.extensions.load_balancing_policies.random.v3.Random", &["locality_lb_config"]),
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig",
        &["zone_aware_lb_config", "locality_weighted_lb_config"],
    ),
    // `locality_basis` HEALTHY_HOSTS_WEIGHT is refused: only host counts are compared.
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig.ZoneAwareLbConfig",
        &[
            "routing_enabled",
            "min_cluster_size",
            "fail_traffic_on_panic",
            "force_locality_direct_routing",
            "force_local_zone",
        ],
    ),
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig.ZoneAwareLbConfig.ForceLocalZone",
        &["min_size"],
    ),
    ("envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig.LocalityWeightedLbConfig", &[]),
    ("envoy.config.core.v3.RuntimeDouble", &["default_value", "runtime_key"]),
    ("envoy.config.cluster.v3.CircuitBreakers", &["thresholds"]),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds",
        &["priority", "max_connections", "max_pending_requests", "max_requests", "max_retries"],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        &[
            "common_http_protocol_options",
            "upstream_http_protocol_options",
            "explicit_http_config",
            "use_downstream_protocol_config",
            "auto_config",
        ],
    ),
    (
        "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        &["auto_sni", "auto_san_validation", "override_auto_sni_header"],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
    ),
    // Downstream; where it sits in a cluster, `PLACES` narrows it.
    (
        "envoy.config.core.v3.Http1ProtocolOptions",
        &[
            "accept_http_10",
            "default_host_for_http_10",
            "allow_custom_methods",
            "allow_chunked_length",
            "allow_absolute_url",
            "enable_trailers",
            "override_stream_error_on_invalid_http_message",
            "send_fully_qualified_url",
        ],
    ),
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
    ("envoy.config.endpoint.v3.ClusterLoadAssignment", &["cluster_name", "endpoints", "policy"]),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment.Policy", &["overprovisioning_factor", "drop_overloads"]),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment.Policy.DropOverload", &["category", "drop_percentage"]),
    (
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        &["locality", "lb_endpoints", "load_balancing_weight", "priority"],
    ),
    ("envoy.config.endpoint.v3.LbEndpoint", &["endpoint", "health_status", "metadata", "load_balancing_weight"]),
    ("envoy.config.core.v3.Metadata", &["filter_metadata"]),
    ("envoy.config.endpoint.v3.Endpoint", &["address", "hostname", "health_check_config"]),
    // Where and whether active health checks reach the endpoint.
    (
        "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig",
        &["port_value", "hostname", "address", "disable_active_health_check"],
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        &["stat_prefix", "cluster", "idle_timeout", "max_connect_attempts", "access_log"],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        &[
            "codec_type",
            "stat_prefix",
            "route_config",
            "rds",
            "http_filters",
            "common_http_protocol_options",
            "server_name",
            "server_header_transformation",
            "max_request_headers_kb",
            "stream_idle_timeout",
            "drain_timeout",
            "delayed_close_timeout",
            "local_reply_config",
            "upgrade_configs",
            "request_timeout",
            "request_headers_timeout",
            "access_log",
            "use_remote_address",
            "xff_num_trusted_hops",
            "generate_request_id",
            "strip_matching_host_port",
            "strip_any_host_port",
            "http_protocol_options",
            "normalize_path",
            "merge_slashes",
            "path_with_escaped_slashes_action",
            "via",
            "add_user_agent",
            "proxy_100_continue",
            "http2_protocol_options",
            "tracing",
            "forward_client_cert_details",
            "set_current_client_cert_details",
            "stream_error_on_invalid_http_message",
        ],
    ),
    // RDS from a file, the ADS stream or a stream of its own (`http_connection_manager::rds`).
    ("envoy.extensions.filters.network.http_connection_manager.v3.Rds", &["config_source", "route_config_name"]),
    // An upgrade type tunnelled on HTTP/1 (`filters`, its own filter chain, is refused).
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig",
        &["upgrade_type", "enabled"],
    ),
    // x-forwarded-client-cert's elements.
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails",
        &["subject", "uri", "cert", "chain", "dns"],
    ),
    // `tracing` (see `tracing::HcmTracing`).
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing",
        &[
            "client_sampling",
            "random_sampling",
            "overall_sampling",
            "max_path_tag_length",
            "custom_tags",
            "provider",
            "spawn_upstream_span",
        ],
    ),
    ("envoy.config.trace.v3.Tracing.Http", &["name", "typed_config"]),
    ("envoy.type.tracing.v3.CustomTag", &["tag", "literal", "environment", "request_header"]),
    ("envoy.type.tracing.v3.CustomTag.Literal", &["value"]),
    ("envoy.type.tracing.v3.CustomTag.Environment", &["name", "default_value"]),
    ("envoy.type.tracing.v3.CustomTag.Header", &["name", "default_value"]),
    (
        "envoy.config.core.v3.Http2ProtocolOptions",
        &[
            "hpack_table_size",
            "max_concurrent_streams",
            "initial_stream_window_size",
            "initial_connection_window_size",
            "allow_connect",
            "max_consecutive_inbound_frames_with_empty_payload",
            "max_inbound_priority_frames_per_stream",
            "max_inbound_window_update_frames_per_data_frame_sent",
            "connection_keepalive",
            "max_outbound_frames",
            "max_outbound_control_frames",
            "override_stream_error_on_invalid_http_message",
        ],
    ),
    ("envoy.config.core.v3.KeepaliveSettings", &["interval", "timeout", "interval_jitter"]),
    ("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", &["name", "typed_config"]),
    ("envoy.extensions.filters.http.router.v3.Router", &["start_child_span"]),
    ("envoy.config.accesslog.v3.AccessLog", &["name", "typed_config", "filter"]),
    (
        "envoy.config.accesslog.v3.AccessLogFilter",
        &[
            "status_code_filter",
            "duration_filter",
            "not_health_check_filter",
            "and_filter",
            "or_filter",
            "response_flag_filter",
        ],
    ),
    ("envoy.config.accesslog.v3.StatusCodeFilter", &["comparison"]),
    ("envoy.config.accesslog.v3.DurationFilter", &["comparison"]),
    ("envoy.config.accesslog.v3.ComparisonFilter", &["op", "value"]),
    ("envoy.config.core.v3.RuntimeUInt32", &["default_value", "runtime_key"]),
    ("envoy.config.accesslog.v3.NotHealthCheckFilter", &[]),
    ("envoy.config.accesslog.v3.AndFilter", &["filters"]),
    ("envoy.config.accesslog.v3.OrFilter", &["filters"]),
    ("envoy.config.accesslog.v3.ResponseFlagFilter", &["flags"]),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        &["path", "format", "json_format", "typed_json_format", "log_format"],
    ),
    ("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", &["log_format"]),
    ("envoy.extensions.access_loggers.stream.v3.StderrAccessLog", &["log_format"]),
    (
        "envoy.config.core.v3.SubstitutionFormatString",
        &["text_format", "text_format_source", "json_format", "omit_empty_values", "content_type"],
    ),
    ("envoy.extensions.filters.network.http_connection_manager.v3.LocalReplyConfig", &["mappers", "body_format"]),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        &["filter", "status_code", "body", "body_format_override", "headers_to_add"],
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

/// `(parent message, field, supported fields of the message in that field)`: where
/// a message is supported in one place and not in another, the place's list
/// replaces the message's own. Envoy reads the same `HttpProtocolOptions` for the
/// downstream (connection manager) and the upstream (cluster), and Courier acts on
/// fewer of its fields upstream.
pub const PLACES: &[(&str, &str, &[&str])] = &[
    ("envoy.config.cluster.v3.Cluster", "common_http_protocol_options", UPSTREAM_HTTP_OPTIONS),
    ("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "common_http_protocol_options", UPSTREAM_HTTP_OPTIONS),
    // `accept_http_10` only has a meaning for a server codec: no effect upstream in
    // Envoy either, so an upstream `http_protocol_options: {}` carries nothing.
    ("envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig", "http_protocol_options", &[]),
    ("envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig", "http_protocol_options", &[]),
    ("envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig", "http_protocol_options", &[]),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        "http2_protocol_options",
        UPSTREAM_HTTP2_OPTIONS,
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
        "http2_protocol_options",
        UPSTREAM_HTTP2_OPTIONS,
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig",
        "http2_protocol_options",
        UPSTREAM_HTTP2_OPTIONS,
    ),
    ("envoy.config.cluster.v3.Cluster", "http2_protocol_options", UPSTREAM_HTTP2_OPTIONS),
    // `initial_metadata` only where the OpenTelemetry exporters call. On an
    // xDS or LRS stream `timeout` is accepted and bounds nothing: Envoy 1.40
    // applies no timeout to streaming xDS calls either (checked against a
    // management server that never answers: no reset, no new stream).
    ("envoy.config.core.v3.ApiConfigSource", "grpc_services", &["envoy_grpc", "timeout"]),
    ("envoy.extensions.filters.http.ext_authz.v3.ExtAuthz", "grpc_service", &["envoy_grpc", "timeout"]),
];

/// The `Http2ProtocolOptions` fields a cluster's HTTP/2 client acts on: its
/// SETTINGS (HPACK table, windows, concurrent streams), the pool's per-connection stream
/// limit (`max_concurrent_streams`, with the upstream's own SETTINGS), and the
/// connections' keepalive PINGs. Not `max_outbound_frames` nor
/// `max_outbound_control_frames`: the client is the `h2` crate's, which keeps no
/// outbound queue to count (Courier's own codec, downstream, does).
const UPSTREAM_HTTP2_OPTIONS: &[&str] = &[
    "hpack_table_size",
    "max_concurrent_streams",
    "initial_stream_window_size",
    "initial_connection_window_size",
    "connection_keepalive",
];

/// The `HttpProtocolOptions` fields a cluster acts on. `headers_with_underscores_action`
/// has no effect in a cluster in Envoy itself ("does not have any impact if added to
/// cluster config"), so it is accepted there and does nothing.
const UPSTREAM_HTTP_OPTIONS: &[&str] =
    &["idle_timeout", "max_requests_per_connection", "headers_with_underscores_action"];

/// `(message, field, why)`: supported fields that change nothing in Courier,
/// because they have no effect in Envoy itself given what Courier supports. Every
/// other supported field acts; `tests/integration/supported_fields.rs` holds each
/// one to a test that shows it.
pub const NO_EFFECT: &[(&str, &str, &str)] = &[
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "system_root_certs",
        "Envoy 1.40 on Linux accepts system_root_certs: {} and verifies nothing by it: an upstream whose \
         CA is in no system store is accepted, with or without trusted_ca beside it (compat case \
         tls_upstream)",
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_sni",
        "Envoy 1.40 completes a handshake whose ClientHello has no SNI with require_sni: true all the \
         same (checked with openssl s_client -noservername), so Courier does too",
    ),
    (
        "envoy.config.core.v3.HttpUri",
        "uri",
        "ext_authz's HTTP service sends its check to server_uri.cluster with the original host and \
         path_prefix + path; the uri is only read for being set (tests/compat filter_ext_authz names a \
         uri that resolves nowhere)",
    ),
    (
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version",
        "the version of the gRPC service's API; an HTTP service has none, and V3 is the only value \
         Envoy 1.40 accepts",
    ),
    (
        "envoy.config.core.v3.ConfigSource",
        "resource_api_version",
        "for a path source Envoy reads each resource by its @type: it accepts AUTO (unset, as in \
         envoyproxy/examples' dynamic-config-fs) and V2 alike (checked against Envoy 1.40); over gRPC \
         the type URLs are V3's, the only version Envoy 1.40 has",
    ),
    (
        "envoy.config.core.v3.Http1ProtocolOptions",
        "override_stream_error_on_invalid_http_message",
        "Envoy 1.40's HTTP/1 codec cannot resume parsing after it refuses a request, so it answers and \
         closes the connection either way (compared with the real Envoy: a control byte, an invalid \
         authority, Content-Length with Transfer-Encoding, a bad chunk size; cases/hostile_options.yaml)",
    ),
    (
        "envoy.config.core.v3.Http1ProtocolOptions",
        "send_fully_qualified_url",
        "only Envoy's client codec writes a request line; on a listener (the one place Courier accepts \
         Http1ProtocolOptions) the upstream still gets an origin-form target (cases/hostile_options.yaml)",
    ),
    (
        "envoy.config.core.v3.TransportSocket",
        "name",
        "Envoy finds a transport socket by the type of its typed_config; the name is not read",
    ),
    (
        "envoy.config.core.v3.TypedExtensionConfig",
        "name",
        "Envoy finds a load_balancing_policy's load balancer by the type of typed_config, never by name \
         (a RoundRobin named envoy.load_balancing_policies.random is round robin)",
    ),
    (
        "envoy.config.core.v3.HttpProtocolOptions",
        "headers_with_underscores_action",
        "in a cluster: Envoy documents it as having no impact there (it acts in the connection manager)",
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "always_consume_default_token_bucket",
        "it only decides whether the default bucket is consumed when a descriptor matched; Courier \
         supports no descriptors, so the default bucket is always consumed, as Envoy does without them",
    ),
    (
        "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
        "udp_max_queries",
        "it caps the queries c-ares sends on one UDP socket; Courier opens a socket (a fresh port) per \
         query, within any cap",
    ),
    (
        "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
        "qcache_max_ttl",
        "only 0, Envoy's default (no answer cache), is accepted; Courier caches no answer either",
    ),
    (
        "envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig",
        "num_resolver_threads",
        "it sizes the thread pool Envoy calls getaddrinfo on; Courier calls it on tokio's blocking pool, \
         which grows as needed, and the answers are the same",
    ),
    (
        "envoy.config.core.v3.SocketAddress",
        "protocol",
        "only TCP, the default, is accepted (UDP is refused at start-up)",
    ),
    (
        "envoy.config.listener.v3.FilterChain",
        "name",
        "a name for /config_dump (where Courier shows it too), Envoy's duplicate-match error and \
         %FILTER_CHAIN_NAME%, which Courier refuses",
    ),
    (
        "envoy.config.listener.v3.ListenerFilter",
        "name",
        "the extension is chosen by typed_config's type, which Courier requires, as Envoy does when it is set",
    ),
    (
        "envoy.config.listener.v3.Filter",
        "name",
        "the extension is chosen by typed_config's type, which Courier requires, as Envoy does when it is set",
    ),
    (
        "envoy.config.cluster.v3.Cluster",
        "per_connection_buffer_limit_bytes",
        "for HTTP a flow-control watermark on what Envoy buffers per upstream connection, with no effect on \
         what is sent; Courier reads an HTTP upstream only as fast as the client takes the response, one read \
         (at most 64 KiB) at a time. tcp_proxy reads it as its buffer bound",
    ),
    (
        "envoy.config.accesslog.v3.AccessLog",
        "name",
        "the logger is chosen by typed_config's type, which Courier requires, as Envoy does when it is set",
    ),
    (
        "envoy.config.route.v3.RouteConfiguration",
        "name",
        "names the table for RDS and /config_dump; an inline table is found by its listener",
    ),
    (
        "envoy.config.route.v3.VirtualHost",
        "name",
        "Envoy reads it in virtual-cluster stats (vhost.<name>.vcluster.*), which need virtual_clusters, \
         which Courier refuses",
    ),
    (
        "envoy.type.matcher.v3.RegexMatcher",
        "google_re2",
        "deprecated: RE2-compatible linear-time matching is the only engine, in Envoy and in Courier",
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "local_rate_limit_per_downstream_connection",
        "only false, the default, is accepted (true is refused at start-up)",
    ),
    (
        "envoy.extensions.filters.http.health_check.v3.HealthCheck",
        "cache_time",
        "only acts in pass-through mode, and pass_through_mode: true is refused at start-up",
    ),
];

/// What the walk checks against: the tables of supported fields and the extension
/// registry. Config holds the bootstrap's own tables (`SUPPORTED_FIELDS`, `PLACES`);
/// the layer that knows every table and extension assembles the whole inventory
/// (`extensions::supported::INVENTORY`) and hands it down, so config imports none of
/// the code it checks for.
pub struct Inventory {
    /// Every table: `SUPPORTED_FIELDS` and those kept next to the code that
    /// implements them (the route schema's, the HTTP filters').
    pub tables: &'static [&'static [(&'static str, &'static [&'static str])]],
    /// Where a message's fields are narrowed by the field holding it (`PLACES`).
    pub places: &'static [(&'static str, &'static str, &'static [&'static str])],
    /// True when `type_name` (without the URL host) is the config type of a
    /// registered extension: the walk accepts no other `Any`.
    pub is_extension: fn(&str) -> bool,
    /// True when Envoy skips a `load_balancing_policy` entry of this type (it has no
    /// load balancer for it), so the walk does not check it either.
    pub skips_lb_policy: fn(&str) -> bool,
}

impl Inventory {
    /// Every supported `(message, field)` of every table, `"*"` entries included.
    pub fn all_supported_fields(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        self.tables.iter().flat_map(|t| t.iter()).flat_map(|(m, fields)| fields.iter().map(move |f| (*m, *f)))
    }

    /// The supported fields of `message`, from the first table that lists it.
    pub fn supported_fields(&self, message: &str) -> Option<&'static [&'static str]> {
        self.tables.iter().flat_map(|t| t.iter()).find(|(m, _)| *m == message).map(|(_, f)| *f)
    }

    /// The fields supported in the message held by `parent.field`.
    fn place_fields(&self, parent: &str, field: &str) -> Option<&'static [&'static str]> {
        self.places.iter().find(|(m, f, _)| *m == parent && *f == field).map(|(_, _, fields)| *fields)
    }
}

/// What the walk does with a `google.protobuf.Any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anys {
    /// Its type must be a registered extension, and its payload is walked too.
    Check,
    /// Left to the code that decodes it.
    Skip,
}

/// Rejects every set field or extension of `msg` (a whole bootstrap) that is not in
/// `inventory`: the error names the first and lists the others.
pub fn check(inventory: &Inventory, msg: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
    Walk::new(inventory, Anys::Check).run(msg, path)
}

/// `check` for a message checked on its own rather than as part of a bootstrap: a
/// route configuration (`RouteTable::from_proto`), an HTTP filter's config. Its
/// `Any`s (`typed_per_filter_config`) are left to the filters that decode them.
/// `path` points at `msg`.
pub fn check_message(inventory: &Inventory, msg: &DynamicMessage, path: &FieldPath) -> Result<(), ConfigError> {
    Walk::new(inventory, Anys::Skip).run(msg, &mut path.clone())
}

/// One walk over a message: what it checks against, what it does with `Any`s, and
/// the unsupported fields found so far (the walk goes on past each, not into it).
struct Walk<'a> {
    inventory: &'a Inventory,
    anys: Anys,
    unsupported: std::cell::RefCell<Vec<ConfigError>>,
}

impl<'a> Walk<'a> {
    fn new(inventory: &'a Inventory, anys: Anys) -> Walk<'a> {
        Walk { inventory, anys, unsupported: Default::default() }
    }

    fn run(self, msg: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
        self.fields(msg, path, None)?;
        ConfigError::all(self.unsupported.into_inner())
    }

    /// `place`: the supported fields where this message sits, when `PLACES` narrows
    /// them; else the message's own entry applies.
    fn fields(
        &self,
        msg: &DynamicMessage,
        path: &mut FieldPath,
        place: Option<&'static [&'static str]>,
    ) -> Result<(), ConfigError> {
        let desc = msg.descriptor();
        if desc.full_name() == "google.protobuf.Any" {
            return match self.anys {
                Anys::Check => self.any(msg, path),
                Anys::Skip => Ok(()),
            };
        }
        if desc.full_name() == LB_POLICY {
            return self.lb_policies(msg, path);
        }
        // Only a binary message (an xDS resource) can carry a field the schema
        // lacks: Courier cannot tell what it asks for, so it refuses it.
        if let Some(u) = msg.unknown_fields().next() {
            let name = desc.full_name();
            self.unsupported.borrow_mut().push(path.error(format!("unknown field number {} in {name}", u.number())));
        }
        let fields = place.or_else(|| self.inventory.supported_fields(desc.full_name())).unwrap_or(&[]);
        if fields == ["*"] {
            return Ok(());
        }
        for (field, value) in msg.fields() {
            path.push_field(field.name());
            if !fields.contains(&field.name()) {
                let here = if place.is_some() { " here" } else { "" };
                self.unsupported.borrow_mut().push(path.error(format!(
                    "field '{}' of {} is not supported by Courier{here}",
                    field.name(),
                    desc.full_name()
                )));
                path.pop();
                continue;
            }
            self.value(value, path, self.inventory.place_fields(desc.full_name(), field.name()))?;
            path.pop();
        }
        Ok(())
    }

    /// `Cluster.load_balancing_policy`: Envoy uses the first policy whose type it has a
    /// load balancer for, skips those before it and never reads those after it, so
    /// only that one is checked (`ClusterInfo::from_proto` refuses it when it is not
    /// one of Courier's, and the config with none).
    fn lb_policies(&self, msg: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
        let policies = msg.get_field_by_name("policies");
        let Some(Value::List(policies)) = policies.as_deref() else {
            return Ok(());
        };
        for (i, policy) in policies.iter().enumerate() {
            let type_url = policy_type_url(policy);
            if (self.inventory.skips_lb_policy)(descriptor::type_name(&type_url)) {
                continue;
            }
            path.push_field("policies");
            path.push_index(i);
            self.value(policy, path, None)?;
            path.pop();
            path.pop();
            break;
        }
        Ok(())
    }

    fn value(
        &self,
        value: &Value,
        path: &mut FieldPath,
        place: Option<&'static [&'static str]>,
    ) -> Result<(), ConfigError> {
        match value {
            Value::Message(m) => self.fields(m, path, place),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push_index(i);
                    self.value(item, path, place)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Map(entries) => {
                // Sorted, so that the first error reported does not depend on hash order.
                let mut entries: Vec<_> = entries.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (key, v) in entries {
                    path.push_key(&validate::key_text(key));
                    self.value(v, path, place)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn any(&self, any: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
        let url = match any.get_field_by_name("type_url").as_deref() {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        if !(self.inventory.is_extension)(descriptor::type_name(&url)) {
            self.unsupported.borrow_mut().push(path.field_error("@type", format!("unsupported extension '{url}'")));
            return Ok(());
        }
        let desc = descriptor::message(descriptor::type_name(&url))
            .ok_or_else(|| path.field_error("@type", format!("unknown type '{url}'")))?;
        let bytes = match any.get_field_by_name("value").as_deref() {
            Some(Value::Bytes(b)) => b.clone(),
            _ => Default::default(),
        };
        let inner =
            DynamicMessage::decode(desc, bytes).map_err(|e| path.error(format!("cannot decode '{url}': {e}")))?;
        self.fields(&inner, path, None)
    }
}

const LB_POLICY: &str = "envoy.config.cluster.v3.LoadBalancingPolicy";

/// `policy.typed_extension_config.typed_config.type_url`, empty when unset.
fn policy_type_url(policy: &Value) -> String {
    let field = |v: &Value, name: &str| match v {
        Value::Message(m) => m.get_field_by_name(name).map(|f| f.into_owned()),
        _ => None,
    };
    field(policy, "typed_extension_config")
        .and_then(|c| field(&c, "typed_config"))
        .and_then(|a| field(&a, "type_url"))
        .and_then(|u| u.as_str().map(str::to_owned))
        .unwrap_or_default()
}
